//! Users: the `users` table and its WorkOS mirror, provisioning from the
//! verified token, onboarding, the WorkOS webhook write-through and user
//! API sync, and the caller's data export and account deletion.
//!
//! * [`queries`] — `users/queries:*` (current user, other users through a
//!   privacy-aware view, onboarding state, the org directory, data export);
//! * [`mutations`] — `users/mutations:*` (`upsertUser`, profile and interest
//!   updates, deactivation, last seen, onboarding, account deletion);
//! * [`workos`] — the WorkOS user record (`workosUsers`,
//!   `workosMemberships`): webhook events (`POST /webhooks/workos`, verified
//!   by the server) and the optional user API action;
//! * [`data_protection`] — export and erasure sections, the extension point
//!   other domains add their tables to;
//! * [`migrations`] — `migrations/createMissingProfiles`.
//!
//! # Where identity fields come from
//!
//! The caller is the token's subject. Organization id and role come only
//! from the token's `org_id` / `role` claims. Email and name come from the
//! token's claims when present (dev tokens, WorkOS JWT templates), else from
//! the stored WorkOS user record; client arguments fill them only when
//! neither exists, and the row then says so (`emailVerified: false`,
//! `profileSource: "client"`). See [`mutations`] for the exact rules.

use database::{Document, TableDef};
use errors::{Error, Result};
use runtime::{DbReader, Registry};
use values::{Validator, Value, v};

use crate::ids::{Id, Users};

pub mod data_protection;
pub mod migrations;
pub mod mutations;
pub mod queries;
pub mod workos;

/// `users`, `workosUsers`, `workosMemberships`, `workosWebhookEvents`.
pub fn tables() -> Vec<TableDef> {
    vec![
        TableDef::new("users")
            .field("workosUserId", v::string())
            .field("email", v::string())
            .field("emailVerified", v::optional(v::boolean()))
            .field("profileSource", v::optional(profile_source_validator()))
            .field("orgId", v::optional(v::string()))
            .field("orgRole", v::optional(v::string()))
            .field("displayName", v::optional(v::string()))
            .field("avatarUrl", v::optional(v::string()))
            .field("isActive", v::boolean())
            .field("lastSeenAt", v::optional(v::number()))
            .field("onboardingComplete", v::optional(v::boolean()))
            .field("onboardingStartedAt", v::optional(v::number()))
            .field("onboardingCompletedAt", v::optional(v::number()))
            .field("deletedAt", v::optional(v::number()))
            .field("createdAt", v::number())
            .field("updatedAt", v::number())
            .index("by_workos_id", &["workosUserId"])
            .index("by_org_and_active", &["orgId", "isActive"])
            .index("by_email", &["email"])
            .index("by_last_seen", &["lastSeenAt"])
            .index("by_org_and_role", &["orgId", "orgRole"])
            .index("by_onboarding_complete", &["onboardingComplete"]),
        TableDef::new("workosUsers")
            .field("workosUserId", v::string())
            .field("email", v::string())
            .field("emailVerified", v::boolean())
            .field("firstName", v::optional(v::string()))
            .field("lastName", v::optional(v::string()))
            .field("profilePictureUrl", v::optional(v::string()))
            .field("workosUpdatedAt", v::number())
            .field("deleted", v::boolean())
            .field(
                "source",
                v::union([v::literal("webhook"), v::literal("api")]),
            )
            .field("updatedAt", v::number())
            .index("by_workos_id", &["workosUserId"]),
        TableDef::new("workosMemberships")
            .field("membershipId", v::string())
            .field("workosUserId", v::string())
            .field("organizationId", v::string())
            .field("role", v::optional(v::string()))
            .field("status", v::string())
            .field("workosUpdatedAt", v::number())
            .field("deleted", v::boolean())
            .field("updatedAt", v::number())
            .index("by_membership_id", &["membershipId"])
            .index("by_workos_user", &["workosUserId"]),
        TableDef::new("workosWebhookEvents")
            .field("eventId", v::string())
            .field("event", v::string())
            .field("signatureTs", v::number())
            .field("outcome", v::string())
            .field("receivedAt", v::number())
            .index("by_event_id", &["eventId"])
            .index("by_received_at", &["receivedAt"]),
    ]
}

/// Registers `users/*`, the WorkOS write-through functions (without the user
/// API action: see [`workos::register_api`]) and the migrations.
pub fn register(registry: &mut Registry) {
    queries::register(registry);
    mutations::register(registry);
    workos::register(registry);
    migrations::register(registry);
}

/// Where a user's email and name came from.
pub(crate) fn profile_source_validator() -> Validator {
    v::union([
        v::literal("token"),
        v::literal("workos"),
        v::literal("client"),
    ])
}

/// A stored `users` document, as its owner (and admins of its organization)
/// read it.
pub fn user_validator() -> Validator {
    v::object([
        ("_id", v::id("users")),
        ("_creationTime", v::number()),
        ("workosUserId", v::string()),
        ("email", v::string()),
        ("emailVerified", v::optional(v::boolean())),
        ("profileSource", v::optional(profile_source_validator())),
        ("orgId", v::optional(v::string())),
        ("orgRole", v::optional(v::string())),
        ("displayName", v::optional(v::string())),
        ("avatarUrl", v::optional(v::string())),
        ("isActive", v::boolean()),
        ("lastSeenAt", v::optional(v::number())),
        ("onboardingComplete", v::optional(v::boolean())),
        ("onboardingStartedAt", v::optional(v::number())),
        ("onboardingCompletedAt", v::optional(v::number())),
        ("deletedAt", v::optional(v::number())),
        ("createdAt", v::number()),
        ("updatedAt", v::number()),
    ])
}

/// What any other signed-in user may read about a user: no email, no WorkOS
/// id, no activity; the avatar only when the profile is public.
pub fn public_user_validator() -> Validator {
    v::object([
        ("_id", v::id("users")),
        ("displayName", v::optional(v::string())),
        ("avatarUrl", v::optional(v::string())),
        ("isActive", v::boolean()),
    ])
}

/// A string field of a document.
pub(crate) fn str_field<'a>(doc: &'a Document, name: &str) -> Option<&'a str> {
    doc.field(name).and_then(Value::as_str)
}

/// A boolean field of a document.
pub(crate) fn bool_field(doc: &Document, name: &str) -> Option<bool> {
    doc.field(name).and_then(Value::as_bool)
}

/// The typed id of a `users` document.
pub(crate) fn user_id(doc: &Document) -> Result<Id<Users>> {
    Id::new(doc.id()).ok_or_else(|| Error::internal("not a users document"))
}

/// The `users` document of `id`, or `NOT_FOUND`.
pub(crate) async fn get_user(db: &DbReader, id: Id<Users>) -> Result<Document> {
    db.get(id.raw())
        .await?
        .ok_or_else(|| Error::not_found(format!("User with ID {id} not found")))
}

/// The `users` document of a WorkOS user id.
pub(crate) async fn user_by_workos_id(db: &DbReader, workos_id: &str) -> Result<Option<Document>> {
    db.query("users")
        .with_index("by_workos_id", |r| r.eq("workosUserId", workos_id))
        .first()
        .await
}

/// The public view of a user (see [`public_user_validator`]). `private`
/// drops the avatar (the user's profile is not public).
pub(crate) fn public_user_view(doc: &Document, private: bool) -> Value {
    let mut fields = vec![
        ("_id".to_owned(), Value::String(doc.id().encode())),
        (
            "isActive".to_owned(),
            Value::Boolean(bool_field(doc, "isActive").unwrap_or(false)),
        ),
    ];
    if let Some(name) = str_field(doc, "displayName") {
        fields.push(("displayName".to_owned(), Value::from(name)));
    }
    if !private && let Some(url) = str_field(doc, "avatarUrl") {
        fields.push(("avatarUrl".to_owned(), Value::from(url)));
    }
    Value::object(fields)
}

/// The local part of an email address (`ada` for `ada@example.com`).
pub(crate) fn email_local_part(email: &str) -> &str {
    email.split('@').next().unwrap_or(email)
}
