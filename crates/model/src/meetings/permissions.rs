//! `auth/permissions:*`: the permission strings realtime clients check for a
//! meeting-scoped resource, computed from the caller's participant row.
//!
//! Permissions are never stored: each call derives them from the current
//! `meetingParticipants` row, read through the transaction, so these live
//! queries update on role changes and report no access once the caller is
//! removed. Fixed from the original: an observer gets read-only permissions
//! (the original treated observers as participants, so they could write
//! notes), chat (`messages`) and the meeting itself are known resource
//! types, and `refreshSubscriptionPermissions` checks the permissions each
//! subscription holds instead of ignoring them. The original's audit-only
//! placeholders (`handleParticipantRemoval`, …) are not needed: revocation
//! happens through the reactive re-run.

use errors::{Error, ErrorCode, Result};
use runtime::{QueryCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Validator, v};

use super::require_access;
use crate::auth::MeetingRole;
use crate::ids::{Id, Meetings};

/// Most subscriptions one `refreshSubscriptionPermissions` call checks.
pub const MAX_REFRESH_ITEMS: usize = 100;

/// The permissions of `role` on `resource_type`, or `None` for an unknown
/// resource type.
pub fn permissions_for(resource_type: &str, role: MeetingRole) -> Option<&'static [&'static str]> {
    use MeetingRole::{Host, Observer, Participant};
    Some(match (resource_type, role) {
        ("meetingNotes", Host) => &["read", "write", "manage", "export"],
        ("meetingNotes", Participant) => &["read", "write"],
        ("meetingNotes", Observer) => &["read"],
        ("transcripts", Host) => &["read", "export", "manage"],
        ("transcripts", Participant | Observer) => &["read"],
        ("meetingParticipants" | "participants", Host) => &["read", "invite", "remove", "manage"],
        ("meetingParticipants" | "participants", Participant | Observer) => &["read"],
        ("messages", Host) => &["read", "write", "manage"],
        ("messages", Participant) => &["read", "write"],
        ("messages", Observer) => &["read"],
        ("meeting", Host) => &["read", "write", "manage"],
        ("meeting", Participant | Observer) => &["read"],
        _ => return None,
    })
}

fn permission_validator() -> Validator {
    v::union([
        v::literal("read"),
        v::literal("write"),
        v::literal("manage"),
        v::literal("export"),
        v::literal("invite"),
        v::literal("remove"),
    ])
}

/// The caller's permissions on a resource of a meeting, or the reason there
/// are none (access problems only; other failures propagate).
async fn resolve(
    ctx: &QueryCtx,
    resource_type: &str,
    meeting: Id<Meetings>,
) -> Result<std::result::Result<Vec<String>, String>> {
    let access = match require_access(&ctx.db, &ctx.auth, meeting, MeetingRole::Observer).await {
        Ok(access) => access,
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::Unauthorized
                    | ErrorCode::Forbidden
                    | ErrorCode::InsufficientPermissions
                    | ErrorCode::NotFound
            ) =>
        {
            return Ok(Err(e.message().to_owned()));
        }
        Err(e) => return Err(e),
    };
    Ok(permissions_for(resource_type, access.role)
        .map(|perms| perms.iter().map(|p| (*p).to_owned()).collect())
        .ok_or_else(|| format!("Unknown resource type \"{resource_type}\"")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValidateArgs {
    resource_type: String,
    resource_id: Id<Meetings>,
    required_permissions: Vec<String>,
}

/// @summary Checks the caller's permissions on a meeting resource
///
/// @description Returns the caller's permissions on a resource of the
/// meeting `resourceId` — `resourceType` is `meetingNotes`, `transcripts`,
/// `meetingParticipants` (or `participants`), `messages` or `meeting` —
/// and whether they include every one of `requiredPermissions`. Hosts get
/// manage rights, participants read and write notes and chat, observers
/// only read. Never fails for an access problem: a caller who is signed
/// out, not a participant or deactivated, an unknown meeting or an unknown
/// resource type gives `granted: false`, no permissions and the reason in
/// `metadata.error`. As a live query it re-evaluates when the caller's
/// role changes or they are removed. Three point reads.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "resourceType": "meetingNotes",
///     "resourceId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "requiredPermissions": ["read", "write"]
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {"granted": true, "permissions": ["read", "write", "manage", "export"], "metadata": {}}
/// }
/// ```
#[macros::function(
    query,
    path = "auth/permissions:validateSubscriptionPermissions",
    args = v::object([
        ("resourceType", v::string()),
        ("resourceId", v::id("meetings")),
        ("requiredPermissions", v::array(permission_validator())),
    ]),
    returns = v::object([
        ("granted", v::boolean()),
        ("permissions", v::array(v::string())),
        ("metadata", v::object([("error", v::optional(v::string()))])),
    ])
)]
async fn validate_subscription_permissions(
    ctx: QueryCtx,
    args: ValidateArgs,
) -> Result<serde_json::Value> {
    Ok(
        match resolve(&ctx, &args.resource_type, args.resource_id).await? {
            Ok(perms) => {
                let granted = args
                    .required_permissions
                    .iter()
                    .all(|p| perms.iter().any(|q| q == p));
                json!({ "granted": granted, "permissions": perms, "metadata": {} })
            }
            Err(reason) => json!({
                "granted": false,
                "permissions": [],
                "metadata": { "error": reason },
            }),
        },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshArgs {
    subscriptions: Vec<RefreshItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshItem {
    resource_type: String,
    resource_id: Id<Meetings>,
    permissions: Vec<String>,
}

/// @summary Refreshes the permissions of several realtime subscriptions
///
/// @description For each of up to 100 `subscriptions` (`resourceType`,
/// meeting `resourceId`, the `permissions` it relies on, `lastValidated`),
/// returns the caller's current permissions on that resource and whether
/// the subscription is still `valid` (the caller still takes part and still
/// holds every permission it relies on — the original ignored them), with
/// the `reason` when it is not. Same rules as
/// `auth/permissions:validateSubscriptionPermissions`; never fails for an
/// access problem, which shows as `valid: false`. `VALIDATION_ERROR` for
/// more than 100 items. Three point reads per item; as a live query it
/// re-evaluates when any of those participant rows change.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "subscriptions": [
///       {
///         "resourceType": "messages",
///         "resourceId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///         "permissions": ["read", "write"],
///         "lastValidated": 1768469400000
///       }
///     ]
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": [
///     {
///       "resourceType": "messages",
///       "resourceId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///       "valid": true,
///       "updatedPermissions": ["read", "write", "manage"]
///     }
///   ]
/// }
/// ```
#[macros::function(
    query,
    path = "auth/permissions:refreshSubscriptionPermissions",
    args = v::object([
        ("subscriptions", v::array(v::object([
            ("resourceType", v::string()),
            ("resourceId", v::id("meetings")),
            ("permissions", v::array(v::string())),
            ("lastValidated", v::number()),
        ]))),
    ]),
    returns = v::array(v::object([
        ("resourceType", v::string()),
        ("resourceId", v::id("meetings")),
        ("valid", v::boolean()),
        ("updatedPermissions", v::array(v::string())),
        ("reason", v::optional(v::string())),
    ]))
)]
async fn refresh_subscription_permissions(
    ctx: QueryCtx,
    args: RefreshArgs,
) -> Result<Vec<serde_json::Value>> {
    if args.subscriptions.len() > MAX_REFRESH_ITEMS {
        return Err(Error::validation(format!(
            "At most {MAX_REFRESH_ITEMS} subscriptions per call"
        )));
    }
    let mut out = Vec::with_capacity(args.subscriptions.len());
    for item in args.subscriptions {
        let mut entry = json!({
            "resourceType": item.resource_type,
            "resourceId": item.resource_id,
        });
        match resolve(&ctx, &item.resource_type, item.resource_id).await? {
            Ok(perms) => {
                let missing: Vec<&String> = item
                    .permissions
                    .iter()
                    .filter(|p| !perms.contains(p))
                    .collect();
                entry["valid"] = json!(missing.is_empty());
                if !missing.is_empty() {
                    entry["reason"] = json!(format!(
                        "Permission no longer held: {}",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                entry["updatedPermissions"] = json!(perms);
            }
            Err(reason) => {
                entry["valid"] = json!(false);
                entry["updatedPermissions"] = json!([]);
                entry["reason"] = json!(reason);
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// Registers `auth/permissions:*`.
pub fn register(r: &mut Registry) {
    r.register(validate_subscription_permissions_spec());
    r.register(refresh_subscription_permissions_spec());
}
