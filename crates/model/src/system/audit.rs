//! The audit log of sensitive actions (`auditLogs`).
//!
//! Domains call [`record`] inside their mutation, so an entry exists exactly
//! when the audited change commits. Entries carry the organization they
//! belong to (normally the actor's org from the token, see
//! [`AuditEntry::by`]); org admins read their own organization's entries
//! with `audit/logging:listAuditLogs`, nobody else can read them. Entries
//! without an organization are readable only by internal functions.
//!
//! The original's `audit/logging:createAuditLog` was callable by anyone
//! (and `getAuditLogs` returned the whole trail to anyone); here
//! `createAuditLog` is internal and the reader is admin-only and org-scoped.

use std::collections::BTreeMap;

use database::{Order, Page};
use errors::{Error, Result};
use runtime::{
    DbWriter, MutationCtx, PaginationOptsArg, QueryCtx, Registry, page_to_value,
    pagination_opts_validator,
};
use serde::Deserialize;
use values::{Validator, Value, v};

use super::metadata_validator;
use crate::auth::{CurrentUser, OrgRole, require_user};
use crate::ids::{Id, Users};

/// One audit log entry, as domains record it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who did it (absent for system actions such as crons and webhooks).
    pub actor: Option<Id<Users>>,
    /// The organization the entry belongs to; only that org's admins can
    /// read it. Take it from the token ([`CurrentUser::org_id`]).
    pub org_id: Option<String>,
    /// What kind of resource was acted on (`meeting`, `user`, `featureFlag`, …).
    pub resource_type: String,
    /// The resource's id (usually a document id).
    pub resource_id: String,
    /// What happened (`participant.removed`, `role.changed`, …).
    pub action: String,
    /// Extra details: a JSON object whose values are strings, numbers or
    /// booleans. Nulls are dropped; nested arrays and objects are stored as
    /// their JSON text; a non-object is stored as `{"value": …}`.
    pub metadata: serde_json::Value,
    /// When it happened (ms since the epoch; use `ctx.now_ms()`).
    pub timestamp: f64,
}

impl AuditEntry {
    /// An entry with no actor, no organization and empty metadata.
    pub fn new(
        resource_type: impl Into<String>,
        resource_id: impl Into<String>,
        action: impl Into<String>,
        timestamp: f64,
    ) -> Self {
        Self {
            actor: None,
            org_id: None,
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            action: action.into(),
            metadata: serde_json::Value::Object(serde_json::Map::new()),
            timestamp,
        }
    }

    /// Sets the actor and the organization from the caller (org id from the
    /// token).
    pub fn by(mut self, user: &CurrentUser) -> Self {
        self.actor = Some(user.id);
        self.org_id.clone_from(&user.org_id);
        self
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: Id<Users>) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sets the organization.
    pub fn org(mut self, org_id: Option<String>) -> Self {
        self.org_id = org_id;
        self
    }

    /// Replaces the metadata (a JSON object of primitives).
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Adds one metadata field.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if !self.metadata.is_object() {
            self.metadata = serde_json::Value::Object(serde_json::Map::new());
        }
        if let Some(map) = self.metadata.as_object_mut() {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// A metadata key as a valid Convex field name: printable ASCII, no leading
/// `$`, at most 1024 characters.
fn field_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '_' })
        .take(1024)
        .collect();
    if out.is_empty() || out.starts_with('$') {
        out.insert(0, '_');
        out.truncate(1024);
    }
    out
}

fn primitive(json: &serde_json::Value) -> Option<Value> {
    match json {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(Value::Boolean(*b)),
        serde_json::Value::Number(n) => n.as_f64().map(Value::Float64),
        serde_json::Value::String(s) => Some(Value::String(s.clone())),
        other => Some(Value::String(other.to_string())),
    }
}

/// Converts metadata to a record of primitives (see [`AuditEntry::metadata`]).
pub(crate) fn metadata_value(metadata: &serde_json::Value) -> Value {
    let mut out = BTreeMap::new();
    match metadata {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if let Some(v) = primitive(v) {
                    out.insert(field_name(k), v);
                }
            }
        }
        other => {
            if let Some(v) = primitive(other) {
                out.insert("value".to_owned(), v);
            }
        }
    }
    Value::Object(out)
}

/// Appends `entry` to the audit log inside the caller's transaction (it
/// exists only if the caller's mutation commits). `resourceType`,
/// `resourceId` and `action` must be non-empty (`VALIDATION_ERROR`).
pub async fn record(db: &DbWriter, entry: AuditEntry) -> Result<()> {
    for (name, value) in [
        ("resourceType", &entry.resource_type),
        ("resourceId", &entry.resource_id),
        ("action", &entry.action),
    ] {
        if value.is_empty() {
            return Err(Error::validation(format!(
                "audit entry: {name} must not be empty"
            )));
        }
    }
    let mut fields = vec![
        (
            "resourceType".to_owned(),
            Value::String(entry.resource_type),
        ),
        ("resourceId".to_owned(), Value::String(entry.resource_id)),
        ("action".to_owned(), Value::String(entry.action)),
        ("metadata".to_owned(), metadata_value(&entry.metadata)),
        ("timestamp".to_owned(), Value::Float64(entry.timestamp)),
    ];
    if let Some(actor) = entry.actor {
        fields.push(("actorUserId".to_owned(), actor.to_value()));
    }
    if let Some(org) = entry.org_id {
        fields.push(("orgId".to_owned(), Value::String(org)));
    }
    db.insert("auditLogs", Value::object(fields)).await?;
    Ok(())
}

/// The stored shape of an audit log entry.
pub fn audit_log_validator() -> Validator {
    v::object([
        ("_id", v::id("auditLogs")),
        ("_creationTime", v::number()),
        ("actorUserId", v::optional(v::id("users"))),
        ("orgId", v::optional(v::string())),
        ("resourceType", v::string()),
        ("resourceId", v::string()),
        ("action", v::string()),
        ("metadata", metadata_validator()),
        ("timestamp", v::number()),
    ])
}

fn audit_page_validator() -> Validator {
    v::object([
        ("page", v::array(audit_log_validator())),
        ("isDone", v::boolean()),
        ("continueCursor", v::string()),
    ])
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListArgs {
    org_id: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    pagination_opts: PaginationOptsArg,
}

/// @summary Lists the audit log of the caller's organization, newest first
///
/// @description Returns one page of the audit log entries (role changes,
/// removals, deletions, denied access, flag changes, …) of the caller's
/// organization, newest first by `timestamp`, optionally only those of one
/// `resourceType` or one resource (`resourceType` and `resourceId`).
/// Authorization: the caller must be signed in and be an admin of an
/// organization (`role: admin` and `org_id` in the token); only that
/// organization's entries are visible. A member, or an admin without an
/// organization, gets `FORBIDDEN`; passing an `orgId` other than the token's
/// is `FORBIDDEN`; no token is `UNAUTHORIZED`. `resourceId` without
/// `resourceType` is a `VALIDATION_ERROR`. Reads one bounded index range per
/// page (Convex pagination: pass `continueCursor` back as `cursor`); as a
/// live query it updates when a new entry of that organization is recorded.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "resourceType": "meeting",
///     "resourceId": "q2dwfyhwpqr470r58knfvptxp5vz3bpmgb50",
///     "paginationOpts": {"numItems": 20, "cursor": null}
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "page": [
///       {
///         "_id": "jvaf9xa2hsxxjzfpjbcphapf2chvx17b72jg",
///         "_creationTime": 1768469460000.001,
///         "actorUserId": "awnxd9x975dmq9g6sejd33w69xyzpk7pgpdg",
///         "orgId": "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX",
///         "resourceType": "meeting",
///         "resourceId": "q2dwfyhwpqr470r58knfvptxp5vz3bpmgb50",
///         "action": "participant.removed",
///         "metadata": {"targetUserId": "gytpd6kevz7e77cjwfqhp74dc5yzpk7prrk0", "reason": "host_removed"},
///         "timestamp": 1768469460000
///       },
///       {
///         "_id": "5jnb7f1qckv10yv8y9d4s84y6whvx17b68r0",
///         "_creationTime": 1768469400000.001,
///         "actorUserId": "awnxd9x975dmq9g6sejd33w69xyzpk7pgpdg",
///         "orgId": "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX",
///         "resourceType": "meeting",
///         "resourceId": "q2dwfyhwpqr470r58knfvptxp5vz3bpmgb50",
///         "action": "participant.role_changed",
///         "metadata": {"targetUserId": "gytpd6kevz7e77cjwfqhp74dc5yzpk7prrk0", "from": "participant", "to": "observer"},
///         "timestamp": 1768469400000
///       }
///     ],
///     "isDone": true,
///     "continueCursor": "ag5hdWRpdExvZ3MAATJkNTVkZmYwYjM0YjYw"
///   }
/// }
/// ```
///
/// @example request-error
/// ```json
/// {
///   "args": {
///     "orgId": "org_01JH8B4D6F8H0K2M4P6R8T0V2X",
///     "paginationOpts": {"numItems": 20, "cursor": null}
///   }
/// }
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "Audit logs of another organization are not accessible",
///   "errorData": {
///     "code": "FORBIDDEN",
///     "message": "Audit logs of another organization are not accessible",
///     "statusCode": 403
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "audit/logging:listAuditLogs",
    args = v::object([
        ("orgId", v::optional(v::string())),
        ("resourceType", v::optional(v::string())),
        ("resourceId", v::optional(v::string())),
        ("paginationOpts", pagination_opts_validator()),
    ]),
    returns = audit_page_validator()
)]
async fn list_audit_logs(ctx: QueryCtx, args: ListArgs) -> Result<Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let org = match (&user.org_id, user.org_role) {
        (Some(org), Some(OrgRole::Admin)) => org.clone(),
        _ => {
            return Err(Error::forbidden(
                "Only organization admins can read audit logs",
            ));
        }
    };
    if args.org_id.as_ref().is_some_and(|o| *o != org) {
        return Err(Error::forbidden(
            "Audit logs of another organization are not accessible",
        ));
    }
    let opts = args.pagination_opts.to_opts()?;
    let query = match (args.resource_type, args.resource_id) {
        (Some(rt), Some(rid)) => {
            ctx.db
                .query("auditLogs")
                .with_index("by_org_resource_time", |r| {
                    r.eq("orgId", org.as_str())
                        .eq("resourceType", rt)
                        .eq("resourceId", rid)
                })
        }
        (Some(rt), None) => ctx
            .db
            .query("auditLogs")
            .with_index("by_org_type_time", |r| {
                r.eq("orgId", org.as_str()).eq("resourceType", rt)
            }),
        (None, Some(_)) => {
            return Err(Error::validation("resourceId requires resourceType"));
        }
        (None, None) => ctx
            .db
            .query("auditLogs")
            .with_index("by_org_time", |r| r.eq("orgId", org.as_str())),
    };
    let page = query.order(Order::Desc).paginate(opts).await?;
    page_to_value(Page {
        page: page
            .page
            .into_iter()
            .map(database::Document::into_value)
            .collect::<Vec<_>>(),
        is_done: page.is_done,
        continue_cursor: page.continue_cursor,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateArgs {
    actor_user_id: Option<Id<Users>>,
    org_id: Option<String>,
    resource_type: String,
    resource_id: String,
    action: String,
    category: Option<String>,
    metadata: Option<serde_json::Value>,
    success: Option<bool>,
}

/// @summary Records an audit log entry on behalf of another function
///
/// @description Internal: appends one entry to `auditLogs` (the original's
/// path and arguments; `category` and `success` are folded into `metadata`,
/// the timestamp is the mutation's time). The original exposed this to
/// every client, so anyone could forge audit entries; here only functions,
/// the scheduler and crons can call it. Domain code inside a mutation should
/// call `model::system::audit::record` directly instead.
#[macros::function(
    internal_mutation,
    path = "audit/logging:createAuditLog",
    args = v::object([
        ("actorUserId", v::optional(v::id("users"))),
        ("orgId", v::optional(v::string())),
        ("resourceType", v::string()),
        ("resourceId", v::string()),
        ("action", v::string()),
        ("category", v::optional(v::string())),
        ("metadata", v::optional(metadata_validator())),
        ("success", v::optional(v::boolean())),
    ]),
    returns = v::null()
)]
async fn create_audit_log(ctx: MutationCtx, args: CreateArgs) -> Result<()> {
    let mut metadata = match args.metadata {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    if let Some(category) = args.category {
        metadata.insert("category".to_owned(), category.into());
    }
    if let Some(success) = args.success {
        metadata.insert("success".to_owned(), success.into());
    }
    let mut entry = AuditEntry::new(
        args.resource_type,
        args.resource_id,
        args.action,
        ctx.now_ms(),
    )
    .org(args.org_id)
    .metadata(serde_json::Value::Object(metadata));
    entry.actor = args.actor_user_id;
    record(&ctx.db, entry).await
}

/// The path of the denied-access recorder (the runtime's denial hook).
pub const RECORD_DENIED_ACCESS: &str = "audit/logging:recordDeniedAccess";

#[derive(Deserialize)]
struct DeniedArgs {
    function: String,
    code: String,
    message: String,
}

/// @summary Records that a public function refused the caller
///
/// @description Internal: the runtime runs this in its own transaction, with
/// the refused caller's identity, whenever a public function answers a
/// signed-in caller with FORBIDDEN or INSUFFICIENT_PERMISSIONS (the refused
/// function's own transaction never commits, so it cannot record this
/// itself). Writes an `access.denied` entry for the function, with the
/// caller as actor and the org from the token; a caller without a user row
/// is recorded without actor.
#[macros::function(
    internal_mutation,
    path = "audit/logging:recordDeniedAccess",
    args = v::object([("function", v::string()), ("code", v::string()), ("message", v::string())]),
    returns = v::null()
)]
async fn record_denied_access(ctx: MutationCtx, args: DeniedArgs) -> Result<()> {
    let mut entry = AuditEntry::new("function", args.function, "access.denied", ctx.now_ms())
        .with("code", args.code)
        .with("message", args.message);
    match require_user(&ctx.db, &ctx.auth).await {
        Ok(user) => entry = entry.by(&user),
        Err(_) => {
            let identity = ctx.auth.get_user_identity();
            entry = entry.org(identity.and_then(|i| i.org_id.clone())).with(
                "subject",
                identity.map(|i| i.subject.clone()).unwrap_or_default(),
            );
        }
    }
    record(&ctx.db, entry).await
}

/// Registers `audit/logging:*` and makes the denied-access recorder the
/// runtime's denial hook.
pub fn register(registry: &mut Registry) {
    registry.register(list_audit_logs_spec());
    registry.register(create_audit_log_spec());
    registry.register(record_denied_access_spec());
    registry.set_denial_hook(RECORD_DENIED_ACCESS);
}
