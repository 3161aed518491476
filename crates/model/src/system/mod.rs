//! System services shared by every domain: the audit log, a durable rate
//! limiter, idempotency keys and feature flags.
//!
//! * [`audit`] — [`audit::record`] appends an [`audit::AuditEntry`] to
//!   `auditLogs` inside the caller's transaction; org admins read their own
//!   organization's entries with `audit/logging:listAuditLogs`.
//! * [`rate_limit`] — [`rate_limit::check_and_consume`]: a fixed-window
//!   counter per (user, action, window) in `rateLimits`, consumed inside the
//!   caller's transaction, so concurrent calls serialize through optimistic
//!   concurrency control and never over-admit.
//! * [`idempotency`] — [`idempotency::lookup`] / [`idempotency::store`]: a
//!   stored result per (scope, key, user) replayed until it expires.
//! * [`flags`] — [`flags::evaluate`]: feature flags per environment with a
//!   deterministic rollout percentage, read through the transaction (so live
//!   queries re-run when a flag changes).
//!
//! Everything here reads and writes through the caller's `ctx.db`: an
//! audit entry, a consumed rate-limit slot or a stored idempotency result
//! exists exactly when the caller's mutation commits.
//!
//! [`register`] registers the functions and the two hourly clean-up crons.

use database::TableDef;
use runtime::Registry;
use values::{Validator, v};

pub mod audit;
pub mod flags;
pub mod idempotency;
pub mod rate_limit;

/// How many documents one run of a clean-up function deletes. A run that
/// deletes a full batch schedules itself again at once, so clean-ups never
/// turn into one unbounded transaction.
pub(crate) const CLEANUP_BATCH: usize = 256;

/// `string | number | boolean`: a metadata or flag value.
pub(crate) fn primitive_validator() -> Validator {
    v::union([v::string(), v::number(), v::boolean()])
}

/// `Record<string, string | number | boolean>` (the original's `metadataRecordV`).
pub(crate) fn metadata_validator() -> Validator {
    v::record(v::string(), primitive_validator())
}

/// The system tables: `auditLogs`, `rateLimits`, `idempotencyKeys` and
/// `featureFlags`.
pub fn tables() -> Vec<TableDef> {
    vec![
        TableDef::new("auditLogs")
            .field("actorUserId", v::optional(v::id("users")))
            .field("orgId", v::optional(v::string()))
            .field("resourceType", v::string())
            .field("resourceId", v::string())
            .field("action", v::string())
            .field("metadata", metadata_validator())
            .field("timestamp", v::number())
            .index("by_actor", &["actorUserId"])
            .index("by_resource", &["resourceType", "resourceId"])
            .index("by_timestamp", &["timestamp"])
            .index("by_action", &["action"])
            .index("by_org_time", &["orgId", "timestamp"])
            .index("by_org_type_time", &["orgId", "resourceType", "timestamp"])
            .index(
                "by_org_resource_time",
                &["orgId", "resourceType", "resourceId", "timestamp"],
            ),
        TableDef::new("rateLimits")
            .field("userId", v::id("users"))
            .field("action", v::string())
            .field("windowStartMs", v::number())
            .field("count", v::number())
            .field("createdAt", v::number())
            .field("updatedAt", v::number())
            .index(
                "by_user_action_window",
                &["userId", "action", "windowStartMs"],
            )
            .index("by_window_start", &["windowStartMs"]),
        TableDef::new("idempotencyKeys")
            .field("key", v::string())
            .field("scope", v::string())
            .field("userId", v::optional(v::id("users")))
            .field("result", v::optional(v::any()))
            .field("expiresAt", v::number())
            .field("createdAt", v::number())
            .index("by_key_scope", &["key", "scope"])
            .index("by_expires", &["expiresAt"]),
        TableDef::new("featureFlags")
            .field("key", v::string())
            .field("value", primitive_validator())
            .field("environment", v::string())
            .field("rolloutPercentage", v::number())
            .field("updatedBy", v::optional(v::id("users")))
            .field("createdAt", v::number())
            .field("updatedAt", v::number())
            .index("by_key_env", &["key", "environment"])
            .index("by_environment", &["environment"]),
    ]
}

/// Registers every function and cron of the system services.
pub fn register(registry: &mut Registry) {
    audit::register(registry);
    rate_limit::register(registry);
    idempotency::register(registry);
    flags::register(registry);
}
