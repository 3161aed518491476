//! The WorkOS user record: what WorkOS says about a user, mirrored into
//! `workosUsers` and `workosMemberships`, from two sources:
//!
//! * **webhooks** — the server verifies `POST /webhooks/workos` (signature,
//!   timestamp tolerance) and hands the event to the internal mutation
//!   `users/workos:applyWebhookEvent`, which also records the event id in
//!   `workosWebhookEvents` so a replayed request is refused and a re-delivery
//!   is acknowledged without being applied twice;
//! * **the user API** — when an API key is configured, [`register_api`]
//!   registers the internal action `users/workos:syncUserFromApi`
//!   (`GET /user_management/users/{id}`), which `upsertUser` schedules when
//!   neither the token nor a stored record gives the user's email.
//!
//! Events can arrive out of order: a record older (by WorkOS `updated_at`)
//! than the stored one is ignored, and a deleted user never comes back.
//! Applying a record also updates the matching `users` row (email, name,
//! avatar; `user.deleted` deactivates it), and membership events revoke the
//! stored organization of a user whose membership was removed.

use std::time::Duration;

use database::{Document, Order};
use errors::{Error, ErrorCode, Result};
use runtime::{
    ActionCtx, CronSchedule, DbReader, DbWriter, FunctionDef, MutationCtx, Registry, RetryPolicy,
    Visibility,
};
use serde::{Deserialize, Serialize};
use values::{Validator, Value, v};

use super::{str_field, user_by_workos_id};
use crate::system::audit::{self, AuditEntry};

/// How long webhook event ids are remembered (longer than WorkOS's 3-day
/// retry window).
pub const EVENT_RETENTION_MS: f64 = 7.0 * 24.0 * 3600.0 * 1000.0;
/// Event ids pruned per run of `users/workos:pruneWebhookEvents`.
const PRUNE_BATCH: usize = 256;

/// The WorkOS user API, when configured (`--workos-api-key`).
#[derive(Clone)]
pub struct WorkosApi {
    /// The secret API key (`sk_…`), sent as a bearer token.
    pub api_key: String,
    /// The API base URL (`https://api.workos.com`, or a local fake).
    pub api_base: String,
}

impl std::fmt::Debug for WorkosApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkosApi")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// A WorkOS user record, as the server (webhooks) or the API action pass it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkosUser {
    /// `user_01…`.
    pub id: String,
    /// The email address.
    pub email: String,
    /// Whether WorkOS verified the email.
    #[serde(default)]
    pub email_verified: bool,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_picture_url: Option<String>,
    /// WorkOS `updated_at` (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl WorkosUser {
    /// The user's full name from the first and last names, if any.
    pub fn name(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.first_name, &self.last_name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// A WorkOS organization membership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkosMembership {
    /// `om_…`.
    pub id: String,
    /// The member's WorkOS user id.
    pub user_id: String,
    /// `org_…`.
    pub organization_id: String,
    /// `active`, `inactive` or `pending`.
    pub status: String,
    /// The role slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// WorkOS `updated_at` (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// The validator of [`WorkosUser`].
pub fn workos_user_validator() -> Validator {
    v::object([
        ("id", v::string()),
        ("email", v::string()),
        ("emailVerified", v::optional(v::boolean())),
        ("firstName", v::optional(v::string())),
        ("lastName", v::optional(v::string())),
        ("profilePictureUrl", v::optional(v::string())),
        ("updatedAt", v::optional(v::string())),
    ])
}

/// The validator of [`WorkosMembership`].
pub fn workos_membership_validator() -> Validator {
    v::object([
        ("id", v::string()),
        ("userId", v::string()),
        ("organizationId", v::string()),
        ("status", v::string()),
        ("role", v::optional(v::string())),
        ("updatedAt", v::optional(v::string())),
    ])
}

/// Milliseconds since the epoch of an ISO-8601 timestamp.
fn parse_ms(iso: Option<&str>) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(iso?).ok()?;
    Some(t.timestamp_millis() as f64)
}

/// The stored WorkOS record of a user (deleted ones included).
pub(crate) async fn record(db: &DbReader, workos_id: &str) -> Result<Option<Document>> {
    db.query("workosUsers")
        .with_index("by_workos_id", |r| r.eq("workosUserId", workos_id))
        .first()
        .await
}

/// What applying a record or event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied.
    Processed,
    /// Older than what is stored (or about a deleted user): ignored.
    Stale,
    /// An event type this server does not use: acknowledged and ignored.
    Ignored,
    /// The same event id was delivered again with a new signature
    /// timestamp (a WorkOS retry): acknowledged, not applied again.
    Duplicate,
    /// The same event id with the same signature timestamp: a replayed
    /// request, refused.
    Replayed,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
            Self::Duplicate => "duplicate",
            Self::Replayed => "replayed",
        }
    }
}

fn outcome_validator() -> Validator {
    v::object([(
        "outcome",
        v::union([
            v::literal("processed"),
            v::literal("stale"),
            v::literal("ignored"),
            v::literal("duplicate"),
            v::literal("replayed"),
        ]),
    )])
}

fn outcome_value(o: Outcome) -> Value {
    Value::object([("outcome".to_owned(), Value::from(o.as_str()))])
}

/// Stores a WorkOS user record (`deleted` for `user.deleted`) and updates
/// the matching `users` row.
pub(crate) async fn apply_user(
    db: &DbWriter,
    user: &WorkosUser,
    deleted: bool,
    source: &str,
    now: f64,
) -> Result<Outcome> {
    let updated = parse_ms(user.updated_at.as_deref()).unwrap_or(now);
    let existing = record(db, &user.id).await?;
    if let Some(doc) = &existing {
        let stored_deleted = doc.field("deleted").and_then(Value::as_bool) == Some(true);
        let stored_updated = doc
            .field("workosUpdatedAt")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if stored_deleted || (updated < stored_updated && !deleted) {
            return Ok(Outcome::Stale);
        }
    }
    let mut fields = vec![
        ("workosUserId".to_owned(), Value::from(user.id.as_str())),
        ("email".to_owned(), Value::from(user.email.as_str())),
        (
            "emailVerified".to_owned(),
            Value::Boolean(user.email_verified),
        ),
        ("workosUpdatedAt".to_owned(), Value::Float64(updated)),
        ("deleted".to_owned(), Value::Boolean(deleted)),
        ("source".to_owned(), Value::from(source)),
        ("updatedAt".to_owned(), Value::Float64(now)),
    ];
    for (name, value) in [
        ("firstName", &user.first_name),
        ("lastName", &user.last_name),
        ("profilePictureUrl", &user.profile_picture_url),
    ] {
        if let Some(value) = value {
            fields.push((name.to_owned(), Value::from(value.as_str())));
        }
    }
    let doc = Value::object(fields);
    match &existing {
        Some(old) => db.replace(old.id(), doc).await?,
        None => {
            db.insert("workosUsers", doc).await?;
        }
    }
    if let Some(row) = user_by_workos_id(db, &user.id).await? {
        let mut patch: std::collections::BTreeMap<String, Option<Value>> = [
            ("email".to_owned(), Some(Value::from(user.email.as_str()))),
            (
                "emailVerified".to_owned(),
                Some(Value::Boolean(user.email_verified)),
            ),
            ("profileSource".to_owned(), Some(Value::from("workos"))),
            ("updatedAt".to_owned(), Some(Value::Float64(now))),
        ]
        .into_iter()
        .collect();
        if let Some(name) = user.name() {
            patch.insert("displayName".to_owned(), Some(Value::from(name)));
        }
        if let Some(url) = &user.profile_picture_url {
            patch.insert("avatarUrl".to_owned(), Some(Value::from(url.as_str())));
        }
        if deleted && row.field("isActive") != Some(&Value::Boolean(false)) {
            patch.insert("isActive".to_owned(), Some(Value::Boolean(false)));
            audit::record(
                db,
                AuditEntry::new("user", row.id().encode(), "user.deactivated", now)
                    .org(str_field(&row, "orgId").map(str::to_owned))
                    .with("reason", "workos_user_deleted"),
            )
            .await?;
        }
        db.patch_fields(row.id(), patch).await?;
    }
    Ok(Outcome::Processed)
}

/// Stores a membership event and revokes the stored organization of a user
/// whose membership in it was removed or deactivated.
async fn apply_membership(
    db: &DbWriter,
    m: &WorkosMembership,
    deleted: bool,
    now: f64,
) -> Result<Outcome> {
    let updated = parse_ms(m.updated_at.as_deref()).unwrap_or(now);
    let existing = db
        .query("workosMemberships")
        .with_index("by_membership_id", |r| r.eq("membershipId", m.id.as_str()))
        .first()
        .await?;
    if let Some(doc) = &existing {
        let stored_deleted = doc.field("deleted").and_then(Value::as_bool) == Some(true);
        let stored_updated = doc
            .field("workosUpdatedAt")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if stored_deleted || (updated < stored_updated && !deleted) {
            return Ok(Outcome::Stale);
        }
    }
    let mut fields = vec![
        ("membershipId".to_owned(), Value::from(m.id.as_str())),
        ("workosUserId".to_owned(), Value::from(m.user_id.as_str())),
        (
            "organizationId".to_owned(),
            Value::from(m.organization_id.as_str()),
        ),
        ("status".to_owned(), Value::from(m.status.as_str())),
        ("workosUpdatedAt".to_owned(), Value::Float64(updated)),
        ("deleted".to_owned(), Value::Boolean(deleted)),
        ("updatedAt".to_owned(), Value::Float64(now)),
    ];
    if let Some(role) = &m.role {
        fields.push(("role".to_owned(), Value::from(role.as_str())));
    }
    let doc = Value::object(fields);
    match &existing {
        Some(old) => db.replace(old.id(), doc).await?,
        None => {
            db.insert("workosMemberships", doc).await?;
        }
    }
    if let Some(row) = user_by_workos_id(db, &m.user_id).await?
        && str_field(&row, "orgId") == Some(m.organization_id.as_str())
    {
        if deleted || m.status != "active" {
            db.patch_fields(
                row.id(),
                [
                    ("orgId".to_owned(), None),
                    ("orgRole".to_owned(), None),
                    ("updatedAt".to_owned(), Some(Value::Float64(now))),
                ]
                .into_iter()
                .collect(),
            )
            .await?;
            audit::record(
                db,
                AuditEntry::new("user", row.id().encode(), "org.membership_revoked", now)
                    .org(Some(m.organization_id.clone()))
                    .with("membershipId", m.id.as_str())
                    .with(
                        "status",
                        if deleted {
                            "deleted"
                        } else {
                            m.status.as_str()
                        },
                    ),
            )
            .await?;
        } else if let Some(role) = &m.role
            && str_field(&row, "orgRole") != Some(role.as_str())
        {
            db.patch(
                row.id(),
                Value::object([
                    ("orgRole".to_owned(), Value::from(role.as_str())),
                    ("updatedAt".to_owned(), Value::Float64(now)),
                ]),
            )
            .await?;
        }
    }
    Ok(Outcome::Processed)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookEventArgs {
    event_id: String,
    event: String,
    signature_ts: f64,
    user: Option<WorkosUser>,
    membership: Option<WorkosMembership>,
}

/// @summary Applies a verified WorkOS webhook event
///
/// @description Internal, called by the server's `POST /webhooks/workos`
/// after it verified the `WorkOS-Signature` header. Records the event id
/// (a repeat with the same signature timestamp is `replayed`, with a new
/// one `duplicate`; neither is applied again), then applies `user.created`,
/// `user.updated`, `user.deleted` and `organization_membership.*` events;
/// other event types are `ignored`.
#[macros::function(
    internal_mutation,
    path = "users/workos:applyWebhookEvent",
    args = v::object([
        ("eventId", v::string()),
        ("event", v::string()),
        ("signatureTs", v::number()),
        ("user", v::optional(workos_user_validator())),
        ("membership", v::optional(workos_membership_validator())),
    ]),
    returns = outcome_validator()
)]
async fn apply_webhook_event(ctx: MutationCtx, args: WebhookEventArgs) -> Result<Value> {
    let now = ctx.now_ms();
    if let Some(seen) = ctx
        .db
        .query("workosWebhookEvents")
        .with_index("by_event_id", |r| r.eq("eventId", args.event_id.as_str()))
        .first()
        .await?
    {
        let same_ts = seen.field("signatureTs").and_then(Value::as_f64) == Some(args.signature_ts);
        return Ok(outcome_value(if same_ts {
            Outcome::Replayed
        } else {
            Outcome::Duplicate
        }));
    }
    let outcome = match (args.event.as_str(), &args.user, &args.membership) {
        ("user.created" | "user.updated", Some(user), _) => {
            apply_user(&ctx.db, user, false, "webhook", now).await?
        }
        ("user.deleted", Some(user), _) => apply_user(&ctx.db, user, true, "webhook", now).await?,
        ("organization_membership.created" | "organization_membership.updated", _, Some(m)) => {
            apply_membership(&ctx.db, m, false, now).await?
        }
        ("organization_membership.deleted", _, Some(m)) => {
            apply_membership(&ctx.db, m, true, now).await?
        }
        _ => Outcome::Ignored,
    };
    ctx.db
        .insert(
            "workosWebhookEvents",
            Value::object([
                ("eventId".to_owned(), Value::from(args.event_id.as_str())),
                ("event".to_owned(), Value::from(args.event.as_str())),
                ("signatureTs".to_owned(), Value::Float64(args.signature_ts)),
                ("outcome".to_owned(), Value::from(outcome.as_str())),
                ("receivedAt".to_owned(), Value::Float64(now)),
            ]),
        )
        .await?;
    Ok(outcome_value(outcome))
}

#[derive(Debug, Deserialize)]
struct StoreUserArgs {
    user: WorkosUser,
}

/// @summary Stores a WorkOS user record fetched from the user API
///
/// @description Internal, called by `users/workos:syncUserFromApi`: stores
/// the record (unless a newer one is stored) and updates the user's row.
#[macros::function(
    internal_mutation,
    path = "users/workos:storeUserRecord",
    args = v::object([("user", workos_user_validator())]),
    returns = outcome_validator()
)]
async fn store_user_record(ctx: MutationCtx, args: StoreUserArgs) -> Result<Value> {
    let outcome = apply_user(&ctx.db, &args.user, false, "api", ctx.now_ms()).await?;
    Ok(outcome_value(outcome))
}

/// @summary Prunes old webhook event ids
///
/// @description Internal, hourly cron: deletes remembered webhook event ids
/// older than seven days, in batches (a full batch schedules the next one).
#[macros::function(
    internal_mutation,
    path = "users/workos:pruneWebhookEvents",
    returns = v::number()
)]
async fn prune_webhook_events(ctx: MutationCtx, _args: Value) -> Result<f64> {
    let cutoff = ctx.now_ms() - EVENT_RETENTION_MS;
    let old = ctx
        .db
        .query("workosWebhookEvents")
        .with_index("by_received_at", |r| r.lt("receivedAt", cutoff))
        .order(Order::Asc)
        .take(PRUNE_BATCH)
        .await?;
    for doc in &old {
        ctx.db.delete(doc.id()).await?;
    }
    if old.len() == PRUNE_BATCH {
        ctx.scheduler
            .run_after(
                Duration::ZERO,
                "users/workos:pruneWebhookEvents",
                serde_json::json!({}),
            )
            .await?;
    }
    Ok(old.len() as f64)
}

/// The path of the user API action (registered by [`register_api`]).
pub const SYNC_ACTION: &str = "users/workos:syncUserFromApi";

/// Registers the webhook write-through functions and the pruning cron.
pub fn register(registry: &mut Registry) {
    registry.register(apply_webhook_event_spec());
    registry.register(store_user_record_spec());
    registry.register(prune_webhook_events_spec());
    registry.cron(
        "users.pruneWebhookEvents",
        CronSchedule::Interval(Duration::from_secs(3600)),
        "users/workos:pruneWebhookEvents",
        Value::object(Vec::<(String, Value)>::new()),
    );
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyncArgs {
    workos_user_id: String,
}

/// The WorkOS REST user object (snake_case).
#[derive(Debug, Deserialize)]
struct ApiUser {
    id: String,
    email: String,
    #[serde(default)]
    email_verified: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    profile_picture_url: Option<String>,
    updated_at: Option<String>,
}

async fn sync_user(ctx: ActionCtx, api: WorkosApi, args: SyncArgs) -> Result<Value> {
    if args.workos_user_id.is_empty()
        || !args
            .workos_user_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::validation(format!(
            "Invalid WorkOS user id \"{}\"",
            args.workos_user_id
        )));
    }
    let url = format!(
        "{}/user_management/users/{}",
        api.api_base.trim_end_matches('/'),
        args.workos_user_id
    );
    let response = ctx
        .http()
        .get(&url)
        .bearer_auth(&api.api_key)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| {
            let code = if e.is_timeout() {
                ErrorCode::ExternalServiceTimeout
            } else {
                ErrorCode::ExternalServiceError
            };
            Error::new(code, format!("WorkOS user API: {e}"))
        })?;
    let status = response.status();
    if status.as_u16() == 404 {
        ctx.warn(&format!("WorkOS has no user {}", args.workos_user_id));
        return Ok(outcome_value(Outcome::Ignored));
    }
    if !status.is_success() {
        return Err(Error::new(
            ErrorCode::ExternalServiceError,
            format!("WorkOS user API answered {status}"),
        ));
    }
    let user: ApiUser = response.json().await.map_err(|e| {
        Error::new(
            ErrorCode::ExternalServiceError,
            format!("WorkOS user API: malformed user: {e}"),
        )
    })?;
    if user.id != args.workos_user_id {
        return Err(Error::new(
            ErrorCode::ExternalServiceError,
            "WorkOS user API returned another user",
        ));
    }
    let record = WorkosUser {
        id: user.id,
        email: user.email,
        email_verified: user.email_verified,
        first_name: user.first_name,
        last_name: user.last_name,
        profile_picture_url: user.profile_picture_url,
        updated_at: user.updated_at,
    };
    ctx.run_mutation(
        "users/workos:storeUserRecord",
        serde_json::json!({ "user": record }),
    )
    .await
}

/// Registers `users/workos:syncUserFromApi`, the internal action that reads
/// a user from the WorkOS user API with `api`'s key. Without it (no API key
/// configured) `upsertUser` schedules nothing and email/name come from the
/// token, the webhook record or, as a last resort, the client.
pub fn register_api(registry: &mut Registry, api: WorkosApi) {
    registry.register(
        FunctionDef::new(SYNC_ACTION, Visibility::Internal)
            .args(v::object([("workosUserId", v::string())]))
            .returns(outcome_validator())
            .retry(RetryPolicy::Retry {
                max_attempts: 3,
                initial_backoff: Duration::from_secs(2),
            })
            .doc("@summary Reads a user from the WorkOS user API\n\n@description Internal: `GET /user_management/users/{id}` with the configured API key, then stores the record through `users/workos:storeUserRecord`. Scheduled by `users/mutations:upsertUser` when neither the token nor a stored record gives the user's email.")
            .action(move |ctx, args: SyncArgs| sync_user(ctx, api.clone(), args)),
    );
}
