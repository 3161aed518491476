//! `users/mutations:*`.
//!
//! # `upsertUser`: who the caller is, and where their email comes from
//!
//! * The user is always the token's subject; without a token the call is
//!   `UNAUTHORIZED` (the original let anyone create or overwrite any user).
//! * `orgId` / `orgRole` are stored from the token's `org_id` / `role`
//!   claims only (absent claims clear them). Arguments of the same name are
//!   accepted only when they equal the claims, else `FORBIDDEN`.
//! * Email and display name, in order of trust: the token's `email` / `name`
//!   claims (`profileSource: "token"`); the stored WorkOS record from
//!   webhooks or the user API (`"workos"`); the values already stored from
//!   one of those; and only when none exists, the arguments
//!   (`"client"`, `emailVerified: false`). An argument that disagrees with
//!   the token's claim is `FORBIDDEN`; one that disagrees with the WorkOS
//!   record is ignored (the record may be newer than the client's session).
//! * When the email came from the client and the WorkOS user API is
//!   configured, `users/workos:syncUserFromApi` is scheduled to replace it
//!   with the verified record.

use std::time::Duration;

use errors::{Error, ErrorCode, Result};
use runtime::{MutationCtx, Registry};
use serde::{Deserialize, Serialize};
use values::{Validator, Value, v};

use super::{bool_field, email_local_part, get_user, str_field, workos};
use crate::auth::{CurrentUser, require_identity, require_user};
use crate::ids::{Id, Users};
use crate::interests::{self, CUSTOM_CATEGORY, MAX_CUSTOM_PER_CALL};
use crate::profiles::{self, ProfileFields, check_age};
use crate::settings;
use crate::system::audit::{self, AuditEntry};
use crate::system::idempotency;

/// The idempotency scope of `saveOnboarding`.
pub const ONBOARDING_SCOPE: &str = "users.onboarding.saveOnboarding";
/// How long a `saveOnboarding` result is replayed.
pub const ONBOARDING_TTL_MS: f64 = 24.0 * 3600.0 * 1000.0;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpsertUserArgs {
    workos_user_id: Option<String>,
    email: Option<String>,
    display_name: Option<String>,
    org_id: Option<String>,
    org_role: Option<String>,
}

fn non_blank(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The resolved email / name and where they came from.
struct Resolved {
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    avatar: Option<String>,
    source: &'static str,
}

/// @summary Creates or updates the signed-in user
///
/// @description Provisions the caller from the verified token and returns
/// their user id; the web app calls it after every sign-in. The user is the
/// token's subject (no token: `UNAUTHORIZED`; a `workosUserId` argument for
/// another subject: `FORBIDDEN`). Organization id and role are taken only
/// from the token's `org_id` / `role` claims; `orgId` / `orgRole` arguments
/// must equal them or the call is `FORBIDDEN`. Email and name come from the
/// token's claims, else from the WorkOS record (webhooks, user API), and the
/// arguments fill them only when neither exists, marked `emailVerified:
/// false`, `profileSource: "client"`; an argument that disagrees with a
/// token claim is `FORBIDDEN`. Also creates a default profile, records
/// `lastSeenAt` (unless activity tracking is off). A deactivated account is
/// `FORBIDDEN`; a new user without any email is a `VALIDATION_ERROR`.
///
/// @example request
/// ```json
/// {"args": {"workosUserId": "user_01JH7ZK3QX5T8B2M9W4N6P0RCD", "email": "ada@example.com", "displayName": "Ada Lovelace"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20"}
/// ```
///
/// @example request-error
/// ```json
/// {"args": {"workosUserId": "user_01JH7ZK3QX5T8B2M9W4N6P0RCD", "email": "ada@example.com", "orgRole": "member"}}
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "orgRole must match the token's role claim",
///   "errorData": {"code": "FORBIDDEN", "message": "orgRole must match the token's role claim", "statusCode": 403}
/// }
/// ```
#[macros::function(
    mutation,
    path = "users/mutations:upsertUser",
    args = v::object([
        ("workosUserId", v::optional(v::string())),
        ("email", v::optional(v::string())),
        ("displayName", v::optional(v::string())),
        ("orgId", v::optional(v::string())),
        ("orgRole", v::optional(v::string())),
    ]),
    returns = v::id("users")
)]
async fn upsert_user(ctx: MutationCtx, args: UpsertUserArgs) -> Result<String> {
    let identity = require_identity(&ctx.auth)?.clone();
    if identity.subject.is_empty() {
        return Err(Error::unauthorized("The token has no subject"));
    }
    if let Some(w) = &args.workos_user_id
        && *w != identity.subject
    {
        return Err(Error::forbidden(
            "Cannot create user for different WorkOS ID",
        ));
    }
    if let Some(org) = &args.org_id
        && Some(org) != identity.org_id.as_ref()
    {
        return Err(Error::forbidden(
            "orgId must match the token's org_id claim",
        ));
    }
    if let Some(role) = &args.org_role
        && Some(role) != identity.role.as_ref()
    {
        return Err(Error::forbidden(
            "orgRole must match the token's role claim",
        ));
    }
    let token_email = non_blank(identity.email.as_deref());
    let token_name = non_blank(identity.name.as_deref()).or_else(|| {
        let parts: Vec<&str> = [&identity.given_name, &identity.family_name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    let arg_email = non_blank(args.email.as_deref());
    let arg_name = non_blank(args.display_name.as_deref());
    if let (Some(t), Some(a)) = (&token_email, &arg_email)
        && !t.eq_ignore_ascii_case(a)
    {
        return Err(Error::forbidden("email must match the token's email claim"));
    }
    if let (Some(t), Some(a)) = (&token_name, &arg_name)
        && t != a
    {
        return Err(Error::forbidden(
            "displayName must match the token's name claim",
        ));
    }

    let record = workos::record(&ctx.db, &identity.subject).await?;
    if let Some(r) = &record
        && r.field("deleted").and_then(Value::as_bool) == Some(true)
    {
        return Err(Error::forbidden("This account was deleted in WorkOS"));
    }
    let existing = match require_user(&ctx.db, &ctx.auth).await {
        Ok(user) => Some(user),
        Err(e) if e.code() == ErrorCode::Unauthorized => None,
        Err(e) => return Err(e),
    };
    let stored_trusted = existing
        .as_ref()
        .is_some_and(|u| matches!(str_field(&u.doc, "profileSource"), Some("token" | "workos")));

    let record_name = record.as_ref().and_then(|r| {
        let parts: Vec<&str> = ["firstName", "lastName"]
            .into_iter()
            .filter_map(|f| str_field(r, f))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    let resolved = if let Some(email) = token_email {
        Resolved {
            email: Some(email),
            email_verified: identity.email_verified.unwrap_or(true),
            name: token_name.or(record_name),
            avatar: non_blank(identity.picture.as_deref()),
            source: "token",
        }
    } else if let Some(r) = &record {
        Resolved {
            email: str_field(r, "email").map(str::to_owned),
            email_verified: bool_field(r, "emailVerified").unwrap_or(false),
            name: token_name.or(record_name),
            avatar: non_blank(identity.picture.as_deref())
                .or_else(|| str_field(r, "profilePictureUrl").map(str::to_owned)),
            source: "workos",
        }
    } else if stored_trusted {
        let doc = existing.as_ref().map(|u| &u.doc);
        Resolved {
            email: None,
            email_verified: doc
                .and_then(|d| bool_field(d, "emailVerified"))
                .unwrap_or(false),
            name: token_name,
            avatar: non_blank(identity.picture.as_deref()),
            source: if doc.and_then(|d| str_field(d, "profileSource")) == Some("token") {
                "token"
            } else {
                "workos"
            },
        }
    } else {
        Resolved {
            email: arg_email,
            email_verified: false,
            name: token_name.clone().or(arg_name),
            avatar: non_blank(identity.picture.as_deref()),
            source: "client",
        }
    };

    let now = ctx.now_ms();
    let user_id = match existing {
        Some(user) => {
            let mut patch: std::collections::BTreeMap<String, Option<Value>> =
                std::collections::BTreeMap::new();
            if let Some(email) = &resolved.email {
                patch.insert("email".into(), Some(Value::from(email.as_str())));
                patch.insert(
                    "emailVerified".into(),
                    Some(Value::Boolean(resolved.email_verified)),
                );
                patch.insert("profileSource".into(), Some(Value::from(resolved.source)));
            }
            if let Some(name) = &resolved.name {
                patch.insert("displayName".into(), Some(Value::from(name.as_str())));
            }
            if let Some(url) = &resolved.avatar {
                patch.insert("avatarUrl".into(), Some(Value::from(url.as_str())));
            }
            patch.insert("orgId".into(), identity.org_id.as_deref().map(Value::from));
            patch.insert("orgRole".into(), identity.role.as_deref().map(Value::from));
            if settings::effective(&ctx.db, user.id)
                .await?
                .activity_tracking
            {
                patch.insert("lastSeenAt".into(), Some(Value::Float64(now)));
            }
            patch.insert("updatedAt".into(), Some(Value::Float64(now)));
            ctx.db.patch_fields(user.id.raw(), patch).await?;
            user.id
        }
        None => {
            let email = resolved.email.clone().ok_or_else(|| {
                Error::validation(
                    "email is required: the token has no email claim and no WorkOS record exists",
                )
                .with_metadata(serde_json::json!({"field": "email"}))
            })?;
            let mut fields = vec![
                (
                    "workosUserId".to_owned(),
                    Value::from(identity.subject.as_str()),
                ),
                ("email".to_owned(), Value::from(email.as_str())),
                (
                    "emailVerified".to_owned(),
                    Value::Boolean(resolved.email_verified),
                ),
                ("profileSource".to_owned(), Value::from(resolved.source)),
                ("isActive".to_owned(), Value::Boolean(true)),
                ("lastSeenAt".to_owned(), Value::Float64(now)),
                ("createdAt".to_owned(), Value::Float64(now)),
                ("updatedAt".to_owned(), Value::Float64(now)),
            ];
            if let Some(name) = &resolved.name {
                fields.push(("displayName".to_owned(), Value::from(name.as_str())));
            }
            if let Some(url) = &resolved.avatar {
                fields.push(("avatarUrl".to_owned(), Value::from(url.as_str())));
            }
            if let Some(org) = &identity.org_id {
                fields.push(("orgId".to_owned(), Value::from(org.as_str())));
            }
            if let Some(role) = &identity.role {
                fields.push(("orgRole".to_owned(), Value::from(role.as_str())));
            }
            let id = ctx.db.insert("users", Value::object(fields)).await?;
            Id::<Users>::new(id).ok_or_else(|| Error::internal("users id of another table"))?
        }
    };
    if profiles::profile_doc(&ctx.db, user_id).await?.is_none() {
        let doc = get_user(&ctx.db, user_id).await?;
        let name = str_field(&doc, "displayName")
            .map(str::to_owned)
            .unwrap_or_else(|| email_local_part(str_field(&doc, "email").unwrap_or("")).to_owned());
        profiles::upsert_profile(&ctx.db, user_id, &ProfileFields::default(), &name, now).await?;
    }
    if resolved.source == "client" {
        schedule_workos_sync(&ctx, &identity.subject).await?;
    }
    Ok(user_id.raw().encode())
}

/// Schedules the WorkOS user API read, if the API is configured (the action
/// is registered only then; scheduling an unregistered function fails
/// before writing anything, which here means "not configured").
async fn schedule_workos_sync(ctx: &MutationCtx, workos_id: &str) -> Result<()> {
    match ctx
        .scheduler
        .run_after(
            Duration::ZERO,
            workos::SYNC_ACTION,
            serde_json::json!({ "workosUserId": workos_id }),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.code() == ErrorCode::ValidationError
                && e.message().contains("unknown function") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The target user of an owner-or-admin function: the caller themself, or
/// (for an admin of the target's organization, by the caller's token) any
/// user of that organization. `NOT_FOUND` for an unknown or deleted user,
/// `FORBIDDEN` otherwise (the original let an admin of any organization,
/// or anyone who called themselves admin, act on every user).
async fn owner_or_org_admin(
    ctx: &MutationCtx,
    target: Id<Users>,
) -> Result<(CurrentUser, database::Document)> {
    let caller = require_user(&ctx.db, &ctx.auth).await?;
    let doc = get_user(&ctx.db, target).await?;
    if doc.field("deletedAt").is_some() {
        return Err(Error::not_found(format!("User with ID {target} not found")));
    }
    if caller.id != target && !caller.is_admin_of(str_field(&doc, "orgId")) {
        return Err(Error::forbidden(
            "Access denied: only the user or an admin of their organization may do this",
        ));
    }
    Ok((caller, doc))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateUserProfileArgs {
    user_id: Id<Users>,
    display_name: Option<String>,
    bio: Option<String>,
    goals: Option<String>,
    languages: Option<Vec<String>>,
    experience: Option<String>,
}

/// @summary Updates a user's profile as the user or an org admin
///
/// @description Sets `displayName`, `bio`, `goals`, `languages` and
/// `experience` of the profile of `userId`; fields left out keep their
/// value. Allowed for the user themself and for admins (token role
/// `admin`) of the user's organization; everyone else is `FORBIDDEN` (the
/// original let an admin of any organization edit anyone, and anyone could
/// make themselves admin). An admin's edit is written to the audit log.
/// A blank display name or a bio over 1000 characters is a
/// `VALIDATION_ERROR`; an unknown user is `NOT_FOUND`. Creates the profile
/// if missing. Returns the profile id.
///
/// @example request
/// ```json
/// {"args": {"userId": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20", "bio": "Analytical engine programmer and mathematician.", "goals": "Meet people building compilers"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": "wqp5t42e06tcw43j1pg76q8615ajzmsqjes0"}
/// ```
#[macros::function(
    mutation,
    path = "users/mutations:updateUserProfile",
    args = v::object([
        ("userId", v::id("users")),
        ("displayName", v::optional(v::string())),
        ("bio", v::optional(v::string())),
        ("goals", v::optional(v::string())),
        ("languages", v::optional(v::array(v::string()))),
        ("experience", v::optional(v::string())),
    ]),
    returns = v::id("profiles")
)]
async fn update_user_profile(ctx: MutationCtx, args: UpdateUserProfileArgs) -> Result<String> {
    let (caller, target) = owner_or_org_admin(&ctx, args.user_id).await?;
    let fields = ProfileFields {
        display_name: args.display_name,
        bio: args.bio,
        goals: args.goals,
        languages: args.languages,
        experience: args.experience,
        ..ProfileFields::default()
    };
    let now = ctx.now_ms();
    let default_name = str_field(&target, "displayName")
        .map(str::to_owned)
        .unwrap_or_else(|| email_local_part(str_field(&target, "email").unwrap_or("")).to_owned());
    let id = profiles::upsert_profile(&ctx.db, args.user_id, &fields, &default_name, now).await?;
    if caller.id != args.user_id {
        audit::record(
            &ctx.db,
            AuditEntry::new(
                "user",
                args.user_id.to_string(),
                "user.profile_updated_by_admin",
                now,
            )
            .by(&caller)
            .with("profileId", id.to_string()),
        )
        .await?;
    }
    Ok(id.raw().encode())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateUserInterestsArgs {
    user_id: Id<Users>,
    interests: Vec<String>,
}

/// @summary Replaces a user's interests
///
/// @description Sets the interests of `userId` to the given catalog keys
/// (duplicates ignored, at most 50), keeping each catalog entry's
/// `usageCount` in step. Allowed for the user themself and admins (token
/// role `admin`) of the user's organization, else `FORBIDDEN`; an admin's
/// change is audited. A key missing from the catalog is a
/// `VALIDATION_ERROR` listing them (`Invalid interests: a, b`,
/// `metadata.field = "interests"`); an unknown user is `NOT_FOUND`.
///
/// @example request
/// ```json
/// {"args": {"userId": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20", "interests": ["ai-ml", "startups"]}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": null}
/// ```
#[macros::function(
    mutation,
    path = "users/mutations:updateUserInterests",
    args = v::object([
        ("userId", v::id("users")),
        ("interests", v::array(v::string())),
    ]),
    returns = v::null()
)]
async fn update_user_interests(ctx: MutationCtx, args: UpdateUserInterestsArgs) -> Result<Value> {
    let (caller, _) = owner_or_org_admin(&ctx, args.user_id).await?;
    let now = ctx.now_ms();
    let keys: Vec<String> = args.interests.iter().map(|k| k.trim().to_owned()).collect();
    let count = interests::replace_user_interests(&ctx.db, args.user_id, &keys, now).await?;
    if caller.id != args.user_id {
        audit::record(
            &ctx.db,
            AuditEntry::new(
                "user",
                args.user_id.to_string(),
                "user.interests_updated_by_admin",
                now,
            )
            .by(&caller)
            .with("interestsCount", count as f64),
        )
        .await?;
    }
    Ok(Value::Null)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdArgs {
    user_id: Id<Users>,
}

/// @summary Disables (deactivates) a user account
///
/// @description Sets `isActive: false` on `userId`. From then on the user is
/// refused by every function (`FORBIDDEN`), including sign-in provisioning,
/// and disappears from the organization directory (the original stored the
/// flag and never checked it). Allowed for the user themself and admins
/// (token role `admin`) of the user's organization, else `FORBIDDEN`.
/// Audited. An unknown user is `NOT_FOUND`; an already deactivated one a
/// `VALIDATION_ERROR`.
///
/// @example request
/// ```json
/// {"args": {"userId": "3w2bffyqxsrdzstkfq19r8c86xyzpk7p4hkg"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": null}
/// ```
#[macros::function(
    mutation,
    path = "users/mutations:deactivateUser",
    args = v::object([("userId", v::id("users"))]),
    returns = v::null()
)]
async fn deactivate_user(ctx: MutationCtx, args: UserIdArgs) -> Result<Value> {
    let (caller, target) = owner_or_org_admin(&ctx, args.user_id).await?;
    if bool_field(&target, "isActive") == Some(false) {
        return Err(Error::validation("User is already deactivated"));
    }
    let now = ctx.now_ms();
    ctx.db
        .patch(
            args.user_id.raw(),
            Value::object([
                ("isActive".to_owned(), Value::Boolean(false)),
                ("updatedAt".to_owned(), Value::Float64(now)),
            ]),
        )
        .await?;
    audit::record(
        &ctx.db,
        AuditEntry::new("user", args.user_id.to_string(), "user.deactivated", now)
            .by(&caller)
            .org(str_field(&target, "orgId").map(str::to_owned))
            .with("self", caller.id == args.user_id),
    )
    .await?;
    Ok(Value::Null)
}

/// @summary Records that the caller is online now
///
/// @description Sets the caller's `lastSeenAt` and `updatedAt` to now. When
/// the caller turned `activityTracking` off in their settings nothing is
/// recorded (the call still succeeds). Only the caller's own row: requires
/// a signed-in, provisioned, active caller (`UNAUTHORIZED` / `FORBIDDEN`).
/// One document write.
///
/// @example request
/// ```json
/// {"args": {}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": null}
/// ```
#[macros::function(mutation, path = "users/mutations:updateLastSeen", returns = v::null())]
async fn update_last_seen(ctx: MutationCtx, _args: Value) -> Result<Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    if settings::effective(&ctx.db, user.id)
        .await?
        .activity_tracking
    {
        let now = ctx.now_ms();
        ctx.db
            .patch(
                user.id.raw(),
                Value::object([
                    ("lastSeenAt".to_owned(), Value::Float64(now)),
                    ("updatedAt".to_owned(), Value::Float64(now)),
                ]),
            )
            .await?;
    }
    Ok(Value::Null)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnboardingInterest {
    id: String,
    name: String,
    category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    icon_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaveOnboardingArgs {
    age: f64,
    gender: String,
    field: String,
    job_title: String,
    company: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    linkedin_url: Option<String>,
    bio: String,
    interests: Vec<OnboardingInterest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnboardingResult {
    user_id: String,
    profile_id: String,
    interests_count: f64,
    onboarding_completed: bool,
}

fn onboarding_result_validator() -> Validator {
    v::object([
        ("userId", v::id("users")),
        ("profileId", v::id("profiles")),
        ("interestsCount", v::number()),
        ("onboardingCompleted", v::literal(true)),
    ])
}

/// A short, stable digest of the request for the default idempotency key.
fn request_digest(args: &SaveOnboardingArgs) -> String {
    let mut args = args.clone();
    args.idempotency_key = None;
    let json = serde_json::to_string(&args).unwrap_or_default();
    // FNV-1a, 64-bit: the key only needs to tell requests apart for one
    // user, not to resist forgery (keys are scoped per user).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("auto:{h:016x}:{}", json.len())
}

/// @summary Saves the caller's onboarding answers
///
/// @description Writes the onboarding form in one transaction: the profile
/// (`age` 13..120, `gender`, `field`, `jobTitle`, `company`, `linkedinUrl`,
/// `bio` of 10..1000 characters), the interests (catalog ids; unknown items
/// of category `personal` become custom interests, at most 5 per call), the
/// onboarding flags, and an `onboarding.save` audit entry. Idempotent per
/// user: the same `idempotencyKey` (or, without one, the same form) from the
/// same user within 24 hours returns the first result without writing; the
/// same key from another user is a different request (the original's keys
/// were global). Requires a signed-in, provisioned, active caller. Invalid
/// values are `VALIDATION_ERROR` with `metadata.field`.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "age": 36,
///     "gender": "female",
///     "field": "Mathematics",
///     "jobTitle": "Lead Engineer",
///     "company": "Analytical Engines Ltd",
///     "bio": "Analytical engine programmer and mathematician.",
///     "interests": [
///       {"id": "ai-ml", "name": "AI / ML", "category": "academic"},
///       {"id": "poetry", "name": "Poetry", "category": "personal"}
///     ],
///     "idempotencyKey": "onboarding-7f3a9c"
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "userId": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20",
///     "profileId": "wqp5t42e06tcw43j1pg76q8615ajzmsqjes0",
///     "interestsCount": 2,
///     "onboardingCompleted": true
///   }
/// }
/// ```
///
/// @example request-error
/// ```json
/// {
///   "args": {
///     "age": 9,
///     "gender": "female",
///     "field": "Mathematics",
///     "jobTitle": "Lead Engineer",
///     "company": "Analytical Engines Ltd",
///     "bio": "Analytical engine programmer and mathematician.",
///     "interests": []
///   }
/// }
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "Invalid age: must be a whole number from 13 to 120",
///   "errorData": {
///     "code": "VALIDATION_ERROR",
///     "message": "Invalid age: must be a whole number from 13 to 120",
///     "statusCode": 400,
///     "metadata": {"field": "age"}
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "users/mutations:saveOnboarding",
    args = v::object([
        ("age", v::number()),
        ("gender", profiles::gender_validator()),
        ("field", v::string()),
        ("jobTitle", v::string()),
        ("company", v::string()),
        ("linkedinUrl", v::optional(v::string())),
        ("bio", v::string()),
        ("interests", v::array(v::object([
            ("id", v::string()),
            ("name", v::string()),
            ("category", v::union([
                v::literal("academic"),
                v::literal("industry"),
                v::literal("skill"),
                v::literal("personal"),
            ])),
            ("iconName", v::optional(v::string())),
        ]))),
        ("idempotencyKey", v::optional(v::string())),
    ]),
    returns = onboarding_result_validator()
)]
async fn save_onboarding(ctx: MutationCtx, args: SaveOnboardingArgs) -> Result<Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let now = ctx.now_ms();
    let key = match non_blank(args.idempotency_key.as_deref()) {
        Some(k) => k.chars().take(512).collect(),
        None => request_digest(&args),
    };
    if let Some(done) =
        idempotency::lookup(&ctx.db, ONBOARDING_SCOPE, &key, Some(user.id), now).await?
    {
        return Ok(done);
    }

    check_age(args.age)?;
    let bio_len = args.bio.trim().chars().count();
    if !(10..=1000).contains(&bio_len) {
        return Err(
            Error::validation("Bio must be between 10 and 1000 characters")
                .with_metadata(serde_json::json!({"field": "bio"})),
        );
    }
    let fields = ProfileFields {
        bio: Some(args.bio.trim().to_owned()),
        age: Some(args.age),
        gender: Some(args.gender.clone()),
        field: Some(args.field.clone()),
        job_title: Some(args.job_title.clone()),
        company: Some(args.company.clone()),
        linkedin_url: args.linkedin_url.clone(),
        ..ProfileFields::default()
    };
    fields.validate()?;

    let mut keys = Vec::new();
    let mut custom = 0usize;
    for item in &args.interests {
        let id = item.id.trim();
        if !id.is_empty()
            && interests::by_key(&ctx.db, id)
                .await?
                .is_some_and(|d| str_field(&d, "category") != Some(CUSTOM_CATEGORY))
        {
            keys.push(id.to_owned());
        } else if item.category == "personal" {
            custom += 1;
            if custom > MAX_CUSTOM_PER_CALL {
                return Err(Error::validation(format!(
                    "At most {MAX_CUSTOM_PER_CALL} custom interests per call"
                ))
                .with_metadata(serde_json::json!({"field": "interests"})));
            }
            keys.push(interests::ensure_custom(&ctx.db, user.id, &item.name, now).await?);
        } else {
            return Err(Error::validation(format!("Invalid interest key: {id}"))
                .with_metadata(serde_json::json!({"field": "interests"})));
        }
    }

    let default_name = str_field(&user.doc, "displayName")
        .map(str::to_owned)
        .unwrap_or_else(|| args.job_title.clone());
    let profile_id =
        profiles::upsert_profile(&ctx.db, user.id, &fields, &default_name, now).await?;
    let count = interests::replace_user_interests(&ctx.db, user.id, &keys, now).await?;
    let started = user
        .doc
        .field("onboardingStartedAt")
        .cloned()
        .unwrap_or(Value::Float64(now));
    ctx.db
        .patch(
            user.id.raw(),
            Value::object([
                ("onboardingComplete".to_owned(), Value::Boolean(true)),
                ("onboardingCompletedAt".to_owned(), Value::Float64(now)),
                ("onboardingStartedAt".to_owned(), started),
                ("updatedAt".to_owned(), Value::Float64(now)),
            ]),
        )
        .await?;
    audit::record(
        &ctx.db,
        AuditEntry::new("user", user.id.to_string(), "onboarding.save", now)
            .by(&user)
            .with("profileId", profile_id.to_string())
            .with("interestsCount", count as f64)
            .with("category", "auth")
            .with("success", true),
    )
    .await?;
    let result = values::to_value(&OnboardingResult {
        user_id: user.id.to_string(),
        profile_id: profile_id.to_string(),
        interests_count: count as f64,
        onboarding_completed: true,
    })?;
    idempotency::store(
        &ctx.db,
        ONBOARDING_SCOPE,
        &key,
        Some(user.id),
        result.clone(),
        ONBOARDING_TTL_MS,
        now,
    )
    .await?;
    Ok(result)
}

#[derive(Debug, Deserialize)]
struct DeleteArgs {
    #[allow(dead_code)]
    confirm: bool,
}

/// @summary Deletes the caller's account and personal data
///
/// @description Erases everything stored about the caller, in one
/// transaction, table by table as the README's "Data protection" section
/// lists: profile, settings, interests and the WorkOS mirror are deleted,
/// custom interests nobody else chose are deleted, and the `users` row is
/// anonymised (kept so meetings and messages that refer to it stay
/// consistent; a later sign-in creates a new, empty account). Other domains
/// erase their rows the same way. An `account.deleted` audit entry is
/// written. Requires `confirm: true` and a signed-in, provisioned, active
/// caller (`UNAUTHORIZED` / `FORBIDDEN`). Returns what was done per section.
///
/// @example request
/// ```json
/// {"args": {"confirm": true}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "userId": "22k2b8faxw354j6qw680mkfk75yzpk7pgt20",
///     "deletedAt": 1768469400000,
///     "sections": {
///       "users": {"deleted": 0, "anonymised": 1},
///       "profiles": {"deleted": 1, "anonymised": 0},
///       "userSettings": {"deleted": 0, "anonymised": 0},
///       "userInterests": {"deleted": 0, "anonymised": 0},
///       "customInterests": {"deleted": 0, "anonymised": 0},
///       "workos": {"deleted": 0, "anonymised": 0},
///       "meetings": {"deleted": 0, "anonymised": 0},
///       "meetingParticipants": {"deleted": 0, "anonymised": 0},
///       "meetingEvents": {"deleted": 0, "anonymised": 0},
///       "messages": {"deleted": 0, "anonymised": 0},
///       "noteOps": {"deleted": 0, "anonymised": 0},
///       "offlineCheckpoints": {"deleted": 0, "anonymised": 0},
///       "offlineOperationQueue": {"deleted": 0, "anonymised": 0},
///       "transcripts": {"deleted": 0, "anonymised": 0},
///       "transcriptSegments": {"deleted": 0, "anonymised": 0}
///     }
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "users/mutations:deleteMyAccount",
    args = v::object([("confirm", v::literal(true))]),
    returns = v::object([
        ("userId", v::id("users")),
        ("deletedAt", v::number()),
        ("sections", v::record(v::string(), v::object([
            ("deleted", v::number()),
            ("anonymised", v::number()),
        ]))),
    ])
)]
async fn delete_my_account(ctx: MutationCtx, _args: DeleteArgs) -> Result<Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let now = ctx.now_ms();
    audit::record(
        &ctx.db,
        AuditEntry::new("user", user.id.to_string(), "account.deleted", now).by(&user),
    )
    .await?;
    let mut report = Vec::new();
    for section in crate::data_sections().into_iter().rev() {
        let erasure = (section.erase)(&ctx.db, &user, now).await?;
        report.push((section.name.to_owned(), erasure.to_value()));
    }
    Ok(Value::object([
        ("userId".to_owned(), user.id.to_value()),
        ("deletedAt".to_owned(), Value::Float64(now)),
        ("sections".to_owned(), Value::object(report)),
    ]))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateUserArgs {
    workos_user_id: String,
    email: String,
    display_name: Option<String>,
    is_active: Option<bool>,
    org_id: Option<String>,
    org_role: Option<String>,
}

/// @summary Creates a user without a token
///
/// @description Internal: idempotent upsert by `workosUserId` for seeding
/// and tests; creates no profile. Not callable by clients.
#[macros::function(
    internal_mutation,
    path = "users/mutations:createUser",
    args = v::object([
        ("workosUserId", v::string()),
        ("email", v::string()),
        ("displayName", v::optional(v::string())),
        ("isActive", v::optional(v::boolean())),
        ("orgId", v::optional(v::string())),
        ("orgRole", v::optional(v::string())),
    ]),
    returns = v::id("users")
)]
async fn create_user(ctx: MutationCtx, args: CreateUserArgs) -> Result<String> {
    if args.workos_user_id.trim().is_empty() || args.email.trim().is_empty() {
        return Err(Error::validation("workosUserId and email are required"));
    }
    let now = ctx.now_ms();
    let mut fields = vec![
        (
            "workosUserId".to_owned(),
            Value::from(args.workos_user_id.as_str()),
        ),
        ("email".to_owned(), Value::from(args.email.as_str())),
        (
            "isActive".to_owned(),
            Value::Boolean(args.is_active.unwrap_or(true)),
        ),
        ("updatedAt".to_owned(), Value::Float64(now)),
    ];
    for (name, value) in [
        ("displayName", &args.display_name),
        ("orgId", &args.org_id),
        ("orgRole", &args.org_role),
    ] {
        if let Some(value) = value {
            fields.push((name.to_owned(), Value::from(value.as_str())));
        }
    }
    if let Some(doc) = super::user_by_workos_id(&ctx.db, &args.workos_user_id).await? {
        ctx.db.patch(doc.id(), Value::object(fields)).await?;
        return Ok(doc.id().encode());
    }
    fields.push(("createdAt".to_owned(), Value::Float64(now)));
    Ok(ctx
        .db
        .insert("users", Value::object(fields))
        .await?
        .encode())
}

/// Registers `users/mutations:*`.
pub fn register(registry: &mut Registry) {
    registry.register(upsert_user_spec());
    registry.register(update_user_profile_spec());
    registry.register(update_user_interests_spec());
    registry.register(deactivate_user_spec());
    registry.register(update_last_seen_spec());
    registry.register(save_onboarding_spec());
    registry.register(delete_my_account_spec());
    registry.register(create_user_spec());
}
