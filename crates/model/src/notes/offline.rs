//! `notes/offline:*`: the offline operation queue and client checkpoints.
//!
//! A client that loses its connection keeps editing and queues its
//! operations (`queueOfflineOperations`), each with `sequence` = the last
//! server sequence it had seen (its base). `syncOfflineOperations` applies
//! **the caller's own** pending operations of one client (the original
//! synced any `queueId`, anyone's, authored as the caller) in
//! `clientSequence` order, then queue order, as *sequential* edits (see
//! [`super::Rebaser`]): an operation is transformed against the operations
//! committed after its base, never against the queue's own earlier ones.

use std::time::Duration;

use database::Document;
use errors::{Error, ErrorCode, Result};
use runtime::{CronSchedule, DbReader, MutationCtx, QueryCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

use super::{
    LogWriter, MAX_BATCH_OPS, OperationArg, Rebaser, content_at, content_hash, ensure_editable,
    load_notes, op_from_value, op_json, whole,
};
use crate::auth::MeetingRole;
use crate::ids::{Id, Meetings, Users};
use crate::meetings::{Access, require_access};
use crate::system::audit::{self, AuditEntry};

/// The offline clean-up job's path.
pub const CLEANUP_PATH: &str = "notes/offline:cleanupOfflineData";
/// Default age of the rows `cleanupOfflineData` deletes (7 days).
pub const DEFAULT_OFFLINE_RETENTION_MS: f64 = 7.0 * 86_400_000.0;
/// Default `maxOperations` of a sync.
pub const DEFAULT_SYNC_OPS: u64 = 50;
/// Most rows one status or sync call looks at.
const MAX_QUEUE_SCAN: usize = 10_000;
/// Rows deleted per clean-up run (the job reschedules itself).
const CLEANUP_BATCH: usize = 500;
/// Longest client or operation id.
const MAX_CLIENT_ID_CHARS: usize = 200;

fn queued_operation_validator() -> values::Validator {
    v::object([
        (
            "type",
            v::union([
                v::literal("insert"),
                v::literal("delete"),
                v::literal("retain"),
            ]),
        ),
        ("position", v::number()),
        ("content", v::optional(v::string())),
        ("length", v::optional(v::number())),
        ("id", v::string()),
        ("timestamp", v::number()),
        ("sequence", v::number()),
        // Accepted for compatibility with the original's client; ignored.
        ("authorId", v::optional(v::string())),
        ("transformedFrom", v::optional(v::array(v::string()))),
        ("clientId", v::optional(v::string())),
        ("queuedAt", v::optional(v::number())),
        ("attempts", v::optional(v::number())),
        ("lastAttempt", v::optional(v::number())),
        ("error", v::optional(v::string())),
        (
            "status",
            v::optional(v::union([
                v::literal("pending"),
                v::literal("syncing"),
                v::literal("synced"),
                v::literal("failed"),
            ])),
        ),
    ])
}

fn check_client_id(client_id: &str) -> Result<()> {
    if client_id.is_empty() || client_id.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err(Error::validation(format!(
            "clientId must be 1 to {MAX_CLIENT_ID_CHARS} characters"
        )));
    }
    Ok(())
}

fn audit_entry(access: &Access, action: &str, now: f64) -> AuditEntry {
    AuditEntry::new("meetingNotes", access.meeting.id.to_string(), action, now)
        .by(&access.user)
        .org(access.meeting.audit_org(&access.user))
}

/// The caller's queue rows of one client in one meeting with `status`, in
/// `clientSequence` then queue order.
async fn own_rows(
    db: &DbReader,
    author: Id<Users>,
    meeting: Id<Meetings>,
    client_id: &str,
    status: Option<&str>,
) -> Result<Vec<Document>> {
    let client = client_id.to_owned();
    let status = status.map(str::to_owned);
    db.query("offlineOperationQueue")
        .with_index("by_author_client_status", move |r| {
            let r = r
                .eq("authorId", author.to_value())
                .eq("meetingId", meeting.to_value())
                .eq("clientId", client.as_str());
            match &status {
                Some(s) => r.eq("status", s.as_str()),
                None => r,
            }
        })
        .take(MAX_QUEUE_SCAN)
        .await
}

fn num(doc: &Document, field: &str) -> f64 {
    doc.field(field).and_then(Value::as_f64).unwrap_or(0.0)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueuedOperation {
    #[serde(flatten)]
    operation: OperationArg,
    id: String,
    timestamp: f64,
    sequence: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueArgs {
    meeting_id: Id<Meetings>,
    operations: Vec<QueuedOperation>,
    client_id: String,
}

/// @summary Enqueues operations a client made while offline
///
/// @description Stores up to 100 operations under a new `queueId`
/// (`queue_<ms>_<id>`) with status `pending` and the caller as author;
/// nothing is applied until `syncOfflineOperations`. Each operation carries
/// the original's metadata: `id` (the client's operation id), `timestamp`
/// (when it was made) and `sequence` (the last server sequence the client
/// had seen: its base); the other metadata fields are accepted and ignored.
/// Records an audit entry `queue_offline_operations`. Authorization: a
/// participant or host (`INSUFFICIENT_PERMISSIONS` for observers,
/// `FORBIDDEN` for non-participants, `UNAUTHORIZED` without a token).
/// Errors: `VALIDATION_ERROR` "Invalid operation: <id>" for a malformed
/// operation, a bad `clientId` or too many operations; `CONFLICT` once the
/// meeting is concluded or cancelled.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "clientId": "laptop-7f3a",
///     "operations": [
///       {"type": "insert", "position": 0, "content": "Offline: ", "id": "op-1", "timestamp": 1768469300000, "sequence": 1}
///     ]
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {"success": true, "queued": 1, "queueId": "queue_1768469400000_hm0gw9dtygcks25xs4k5ffs1142eqphqfx00"}
/// }
/// ```
#[macros::function(
    mutation,
    path = "notes/offline:queueOfflineOperations",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("operations", v::array(queued_operation_validator())),
        ("clientId", v::string()),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("queued", v::number()),
        ("queueId", v::string()),
    ])
)]
async fn queue_offline_operations(ctx: MutationCtx, args: QueueArgs) -> Result<serde_json::Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    ensure_editable(&access)?;
    check_client_id(&args.client_id)?;
    if args.operations.is_empty() || args.operations.len() > MAX_BATCH_OPS {
        return Err(Error::validation(format!(
            "Queue 1 to {MAX_BATCH_OPS} operations at a time"
        )));
    }
    let mut rows = Vec::with_capacity(args.operations.len());
    for op in &args.operations {
        let invalid = || Error::validation(format!("Invalid operation: {}", op.id));
        if op.id.is_empty() || op.id.chars().count() > MAX_CLIENT_ID_CHARS {
            return Err(invalid());
        }
        let parsed = op.operation.parse().map_err(|_| invalid())?;
        let base = whole(op.sequence, "sequence").map_err(|_| invalid())?;
        if !op.timestamp.is_finite() {
            return Err(invalid());
        }
        rows.push((parsed, base, op));
    }
    let now = ctx.now_ms();
    let mut queue_id = String::new();
    for (i, (parsed, base, op)) in rows.iter().enumerate() {
        let row = json!({
            "meetingId": args.meeting_id,
            "clientId": args.client_id,
            "queueId": queue_id,
            "operation": op_json(parsed),
            "operationId": op.id,
            "authorId": access.user.id,
            "clientSequence": *base as f64,
            "timestamp": op.timestamp,
            "queuedAt": now,
            "attempts": 0.0,
            "status": "pending",
        });
        let id = ctx.db.insert("offlineOperationQueue", row).await?;
        if i == 0 {
            // The queue is named after its first row (ids come from the
            // injected generator, so the name is unique and reproducible).
            queue_id = format!("queue_{}_{}", now as u64, id.encode());
            ctx.db.patch(id, json!({"queueId": queue_id})).await?;
        }
    }
    audit::record(
        &ctx.db,
        audit_entry(&access, "queue_offline_operations", now)
            .with("queueId", queue_id.clone())
            .with("clientId", args.client_id.clone())
            .with("queued", rows.len() as f64),
    )
    .await?;
    Ok(json!({"success": true, "queued": rows.len() as f64, "queueId": queue_id}))
}

/// What a sync did.
struct SyncOutcome {
    synced: usize,
    failed: usize,
    conflicts: usize,
    version: f64,
    errors: Vec<String>,
}

/// Applies the given queue rows (the caller's own, pending, sorted by
/// `clientSequence` then queue order) as sequential edits.
async fn sync_rows(ctx: &MutationCtx, access: &Access, rows: &[Document]) -> Result<SyncOutcome> {
    let meeting = access.meeting.id;
    let now = ctx.now_ms();
    let notes = load_notes(&ctx.db, meeting).await?;
    let mut out = SyncOutcome {
        synced: 0,
        failed: 0,
        conflicts: 0,
        version: notes.version,
        errors: Vec::new(),
    };
    if rows.is_empty() {
        return Ok(out);
    }
    let fail = |row: &Document, message: &str| {
        json!({
            "status": "failed",
            "error": message,
            "attempts": num(row, "attempts") + 1.0,
            "lastAttempt": now,
        })
    };
    let min_base = rows
        .iter()
        .map(|r| num(r, "clientSequence") as u64)
        .min()
        .unwrap_or(0)
        .min(notes.head);
    let mut rebaser = match Rebaser::load(&ctx.db, meeting, min_base, notes.head).await {
        Ok(r) => r,
        Err(e) if e.code() == ErrorCode::Conflict => {
            for row in rows {
                ctx.db.patch(row.id(), fail(row, e.message())).await?;
                out.failed += 1;
                out.errors.push(e.message().to_owned());
            }
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    let mut writer = LogWriter::new(meeting, notes, now);
    for row in rows {
        let op_id = row
            .field("operationId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let result = async {
            let op = op_from_value(
                row.field("operation")
                    .ok_or_else(|| Error::internal("queue row without an operation"))?,
            )?;
            let base = num(row, "clientSequence") as u64;
            let rebased = rebaser.rebase(&op, base)?;
            let sequence = writer
                .append(
                    &ctx.db,
                    access.user.id,
                    &rebased.ops,
                    Some(num(row, "timestamp")),
                )
                .await?;
            Ok::<_, Error>((op, sequence, rebased.conflicts.len()))
        }
        .await;
        match result {
            Ok((op, sequence, conflicts)) => {
                rebaser.accept(op);
                out.synced += 1;
                out.conflicts += conflicts;
                ctx.db
                    .patch(
                        row.id(),
                        json!({
                            "status": "synced",
                            "attempts": num(row, "attempts") + 1.0,
                            "lastAttempt": now,
                            "serverSequence": sequence as f64,
                        }),
                    )
                    .await?;
            }
            Err(e) if e.code() == ErrorCode::ValidationError => {
                out.failed += 1;
                out.errors.push(format!("{op_id}: {}", e.message()));
                ctx.db.patch(row.id(), fail(row, e.message())).await?;
            }
            Err(e) => return Err(e),
        }
    }
    if out.synced > 0 {
        out.version = writer.finish(&ctx.db).await?;
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyncArgs {
    meeting_id: Id<Meetings>,
    client_id: String,
    queue_id: Option<String>,
    max_operations: Option<f64>,
}

/// @summary Applies the caller's queued offline operations
///
/// @description Takes up to `maxOperations` (default 50, at most 100) of
/// the **caller's own** pending operations queued by `clientId` in this
/// meeting (only those of `queueId` if given; another user's queue is never
/// touched — the original let anyone sync any queue, authored as
/// themselves), in `clientSequence` then queue order, and applies them as
/// sequential edits: each is transformed against the operations committed
/// after its base, not against the queue's own earlier operations. An
/// operation that does not apply is marked `failed` with the error (the
/// others still sync); synced rows get `serverSequence`. The version goes
/// up by one if anything synced; `newVersion` is the notes' version after
/// the call. Records an audit entry `sync_offline_operations`.
/// Authorization: a participant or host (`INSUFFICIENT_PERMISSIONS` for
/// observers, `FORBIDDEN` for non-participants, `UNAUTHORIZED` without a
/// token). Errors: `CONFLICT` once the meeting is concluded or cancelled.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "clientId": "laptop-7f3a"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "success": true,
///     "synced": 1,
///     "failed": 0,
///     "conflicts": 0,
///     "newVersion": 2,
///     "errors": [],
///     "remainingInQueue": 0
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "notes/offline:syncOfflineOperations",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("clientId", v::string()),
        ("queueId", v::optional(v::string())),
        ("maxOperations", v::optional(v::number())),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("synced", v::number()),
        ("failed", v::number()),
        ("conflicts", v::number()),
        ("newVersion", v::number()),
        ("errors", v::array(v::string())),
        ("remainingInQueue", v::number()),
    ])
)]
async fn sync_offline_operations(ctx: MutationCtx, args: SyncArgs) -> Result<serde_json::Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    ensure_editable(&access)?;
    check_client_id(&args.client_id)?;
    let max = match args.max_operations {
        Some(m) => whole(m, "maxOperations")?,
        None => DEFAULT_SYNC_OPS,
    }
    .min(MAX_BATCH_OPS as u64) as usize;
    let pending = own_rows(
        &ctx.db,
        access.user.id,
        args.meeting_id,
        &args.client_id,
        Some("pending"),
    )
    .await?;
    let selected: Vec<Document> = pending
        .iter()
        .filter(|r| {
            args.queue_id
                .as_deref()
                .is_none_or(|q| r.field("queueId").and_then(Value::as_str) == Some(q))
        })
        .take(max)
        .cloned()
        .collect();
    let out = sync_rows(&ctx, &access, &selected).await?;
    let remaining = pending.len() - selected.len();
    let now = ctx.now_ms();
    audit::record(
        &ctx.db,
        audit_entry(&access, "sync_offline_operations", now)
            .with("clientId", args.client_id.clone())
            .with("synced", out.synced as f64)
            .with("failed", out.failed as f64),
    )
    .await?;
    Ok(json!({
        "success": out.synced > 0 || out.failed == 0,
        "synced": out.synced as f64,
        "failed": out.failed as f64,
        "conflicts": out.conflicts as f64,
        "newVersion": out.version,
        "errors": out.errors,
        "remainingInQueue": remaining as f64,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientArgs {
    meeting_id: Id<Meetings>,
    client_id: String,
}

async fn queue_status(
    db: &DbReader,
    access: &Access,
    client_id: &str,
    now: f64,
) -> Result<serde_json::Value> {
    let rows = own_rows(db, access.user.id, access.meeting.id, client_id, None).await?;
    let count = |s: &str| {
        rows.iter()
            .filter(|r| r.field("status").and_then(Value::as_str) == Some(s))
            .count()
    };
    let (pending, syncing, synced, failed) = (
        count("pending"),
        count("syncing"),
        count("synced"),
        count("failed"),
    );
    let pending_times: Vec<f64> = rows
        .iter()
        .filter(|r| r.field("status").and_then(Value::as_str) == Some("pending"))
        .map(|r| num(r, "queuedAt"))
        .collect();
    let oldest = pending_times.iter().copied().reduce(f64::min);
    let newest = pending_times.iter().copied().reduce(f64::max);
    let age = oldest.map_or(0.0, |o| now - o);
    let health = if failed > 10 || age > 300_000.0 {
        "critical"
    } else if pending > 50 || age > 60_000.0 {
        "warning"
    } else {
        "healthy"
    };
    let mut out = json!({
        "totalQueued": rows.len() as f64,
        "pending": pending as f64,
        "syncing": syncing as f64,
        "synced": synced as f64,
        "failed": failed as f64,
        "queueHealth": health,
    });
    if let Some(o) = oldest {
        out["oldestPending"] = json!(o);
    }
    if let Some(n) = newest {
        out["newestPending"] = json!(n);
    }
    Ok(out)
}

fn status_validator() -> values::Validator {
    v::object([
        ("totalQueued", v::number()),
        ("pending", v::number()),
        ("syncing", v::number()),
        ("synced", v::number()),
        ("failed", v::number()),
        ("oldestPending", v::optional(v::number())),
        ("newestPending", v::optional(v::number())),
        (
            "queueHealth",
            v::union([
                v::literal("healthy"),
                v::literal("warning"),
                v::literal("critical"),
            ]),
        ),
    ])
}

/// @summary Reports the state of the caller's offline queue
///
/// @description Counts the caller's queued operations of `clientId` in this
/// meeting by status, with the oldest and newest pending `queuedAt` and a
/// health grade: `critical` with more than 10 failed or a pending operation
/// older than 5 minutes, `warning` with more than 50 pending or one older
/// than a minute, else `healthy`. Read-only, but kept a mutation for
/// compatibility with the original's clients; `getOfflineQueueStatusQuery`
/// is the same as a (live) query. Authorization: any participant, observers
/// included (`FORBIDDEN` for non-participants, `UNAUTHORIZED` without a
/// token).
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "clientId": "laptop-7f3a"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "totalQueued": 1,
///     "pending": 1,
///     "syncing": 0,
///     "synced": 0,
///     "failed": 0,
///     "oldestPending": 1768469400000,
///     "newestPending": 1768469400000,
///     "queueHealth": "healthy"
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "notes/offline:getOfflineQueueStatus",
    args = v::object([("meetingId", v::id("meetings")), ("clientId", v::string())]),
    returns = status_validator()
)]
async fn get_offline_queue_status(ctx: MutationCtx, args: ClientArgs) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    queue_status(&ctx.db, &access, &args.client_id, ctx.now_ms()).await
}

/// @summary Reports the state of the caller's offline queue (live query)
///
/// @description The query form of `getOfflineQueueStatus` (same arguments,
/// result and authorization), so a client can subscribe to it. The health
/// grade's ages are measured at the time the query last ran.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "clientId": "laptop-7f3a"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "totalQueued": 1,
///     "pending": 1,
///     "syncing": 0,
///     "synced": 0,
///     "failed": 0,
///     "oldestPending": 1768469400000,
///     "newestPending": 1768469400000,
///     "queueHealth": "healthy"
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "notes/offline:getOfflineQueueStatusQuery",
    args = v::object([("meetingId", v::id("meetings")), ("clientId", v::string())]),
    returns = status_validator()
)]
async fn get_offline_queue_status_query(
    ctx: QueryCtx,
    args: ClientArgs,
) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    queue_status(&ctx.db, &access, &args.client_id, ctx.now_ms()).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetryArgs {
    meeting_id: Id<Meetings>,
    client_id: String,
    max_retries: Option<f64>,
}

/// @summary Resets the caller's failed offline operations and syncs them
///
/// @description Puts the caller's failed operations of `clientId` that
/// were attempted fewer than `maxRetries` times (default 3) back to
/// `pending` and syncs **exactly those** (at most 100), as
/// `syncOfflineOperations` would (the original synced the oldest pending
/// rows instead, which were not necessarily the retried ones). Returns
/// `{retriedCount, successCount}`. Authorization and errors as
/// `syncOfflineOperations`.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "clientId": "laptop-7f3a"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": {"retriedCount": 0, "successCount": 0}}
/// ```
#[macros::function(
    mutation,
    path = "notes/offline:retryFailedOperations",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("clientId", v::string()),
        ("maxRetries", v::optional(v::number())),
    ]),
    returns = v::object([("retriedCount", v::number()), ("successCount", v::number())])
)]
async fn retry_failed_operations(ctx: MutationCtx, args: RetryArgs) -> Result<serde_json::Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    ensure_editable(&access)?;
    check_client_id(&args.client_id)?;
    let max_retries = whole(args.max_retries.unwrap_or(3.0), "maxRetries")? as f64;
    let failed = own_rows(
        &ctx.db,
        access.user.id,
        args.meeting_id,
        &args.client_id,
        Some("failed"),
    )
    .await?;
    let retried: Vec<Document> = failed
        .into_iter()
        .filter(|r| num(r, "attempts") < max_retries)
        .take(MAX_BATCH_OPS)
        .collect();
    for row in &retried {
        ctx.db.patch(row.id(), json!({"status": "pending"})).await?;
    }
    let out = sync_rows(&ctx, &access, &retried).await?;
    Ok(json!({"retriedCount": retried.len() as f64, "successCount": out.synced as f64}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClearArgs {
    meeting_id: Id<Meetings>,
    client_id: String,
    older_than_ms: Option<f64>,
}

/// @summary Deletes the caller's synced offline operations
///
/// @description Deletes the caller's `synced` queue rows of `clientId` in
/// this meeting queued more than `olderThanMs` ago (default one hour).
/// Returns `{cleared}`. Authorization: any participant, observers included
/// (they only ever clear their own rows; `FORBIDDEN` for non-participants,
/// `UNAUTHORIZED` without a token).
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "clientId": "laptop-7f3a", "olderThanMs": 0}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": {"cleared": 1}}
/// ```
#[macros::function(
    mutation,
    path = "notes/offline:clearSyncedOperations",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("clientId", v::string()),
        ("olderThanMs", v::optional(v::number())),
    ]),
    returns = v::object([("cleared", v::number())])
)]
async fn clear_synced_operations(ctx: MutationCtx, args: ClearArgs) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    let cutoff = ctx.now_ms() - args.older_than_ms.unwrap_or(3_600_000.0).max(0.0);
    let synced = own_rows(
        &ctx.db,
        access.user.id,
        args.meeting_id,
        &args.client_id,
        Some("synced"),
    )
    .await?;
    let mut cleared = 0usize;
    for row in synced.iter().filter(|r| num(r, "queuedAt") <= cutoff) {
        ctx.db.delete(row.id()).await?;
        cleared += 1;
    }
    Ok(json!({"cleared": cleared as f64}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckpointData {
    sequence: f64,
    version: f64,
    content_hash: String,
    timestamp: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckpointArgs {
    meeting_id: Id<Meetings>,
    client_id: String,
    checkpoint_data: CheckpointData,
}

/// @summary Records a client's checkpoint of the notes
///
/// @description Stores `{sequence, version, contentHash, timestamp}` for
/// the caller's `clientId` and returns its `checkpointId`
/// (`checkpoint_<ms>_<id>`). `contentHash` is the lowercase hex SHA-256 of
/// the UTF-8 content at `sequence`; the server recomputes it from its
/// snapshot and log and returns `verified` (true when they agree, false
/// when they differ) and `serverContentHash`, or leaves both out when the
/// content at that sequence was compacted away. The original never checked
/// the hash. Authorization: any participant, observers included
/// (`FORBIDDEN` for non-participants, `UNAUTHORIZED` without a token).
/// Errors: `VALIDATION_ERROR` for a sequence ahead of the notes, a bad
/// `clientId` or a malformed hash.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "clientId": "laptop-7f3a",
///     "checkpointData": {
///       "sequence": 1,
///       "version": 1,
///       "contentHash": "7a8d2cfc4d1fbbe8e84e1ea1dc5dba3939e3b9bbe7c4e2ee9e0a91c8b0d4a5b3",
///       "timestamp": 1768469400000
///     }
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "checkpointId": "checkpoint_1768469400000_hm0gw9dtygcks25xs4k5ffs115kxqk37y2tg",
///     "success": true,
///     "verified": false,
///     "serverContentHash": "d487ddaf86d28e89c8d2867b540fdbe17b8f7e59d9580693b69fc12a75f483f4"
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "notes/offline:createOfflineCheckpoint",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("clientId", v::string()),
        ("checkpointData", v::object([
            ("sequence", v::number()),
            ("version", v::number()),
            ("contentHash", v::string()),
            ("timestamp", v::number()),
        ])),
    ]),
    returns = v::object([
        ("checkpointId", v::string()),
        ("success", v::boolean()),
        ("verified", v::optional(v::boolean())),
        ("serverContentHash", v::optional(v::string())),
    ])
)]
async fn create_offline_checkpoint(
    ctx: MutationCtx,
    args: CheckpointArgs,
) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    check_client_id(&args.client_id)?;
    let data = &args.checkpoint_data;
    let sequence = whole(data.sequence, "checkpointData.sequence")?;
    let hash = data.content_hash.to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::validation(
            "checkpointData.contentHash must be a hex SHA-256 (64 characters)",
        ));
    }
    let notes = load_notes(&ctx.db, args.meeting_id).await?;
    if sequence > notes.head {
        return Err(Error::validation(format!(
            "checkpointData.sequence {sequence} is ahead of the notes' newest sequence {}",
            notes.head
        )));
    }
    let server_hash = content_at(&ctx.db, args.meeting_id, sequence)
        .await?
        .map(|c| content_hash(&c));
    let verified = server_hash.as_ref().map(|h| *h == hash);
    let now = ctx.now_ms();
    let mut row = json!({
        "checkpointId": "",
        "meetingId": args.meeting_id,
        "clientId": args.client_id,
        "authorId": access.user.id,
        "sequence": sequence as f64,
        "version": data.version,
        "contentHash": hash,
        "timestamp": data.timestamp,
        "createdAt": now,
    });
    if let Some(v) = verified {
        row["verified"] = json!(v);
    }
    let id = ctx.db.insert("offlineCheckpoints", row).await?;
    let checkpoint_id = format!("checkpoint_{}_{}", now as u64, id.encode());
    ctx.db
        .patch(id, json!({"checkpointId": checkpoint_id}))
        .await?;
    let mut out = json!({"checkpointId": checkpoint_id, "success": true});
    if let (Some(v), Some(h)) = (verified, server_hash) {
        out["verified"] = json!(v);
        out["serverContentHash"] = json!(h);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestoreArgs {
    meeting_id: Id<Meetings>,
    client_id: String,
    checkpoint_id: String,
}

/// @summary Restores a client's checkpoint of the notes
///
/// @description Looks up the caller's checkpoint `checkpointId` of
/// `clientId` in this meeting and returns it with `content`, the notes'
/// text at the checkpoint's sequence rebuilt from the snapshot and log, and
/// `contentHash` of that text, so the client can reset its replica to the
/// checkpoint and catch up with `getNoteOperations` from its `sequence`.
/// `content` is left out when that point of the log was compacted away.
/// `{success: false}` for an unknown checkpoint or one of another user,
/// meeting or client. Authorization: any participant, observers included
/// (`FORBIDDEN` for non-participants, `UNAUTHORIZED` without a token).
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "clientId": "laptop-7f3a",
///     "checkpointId": "checkpoint_1768469400000_3hd5vj6rjmjkt5ewd5g6yx8ntmsk6p8tbc1g"
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "success": true,
///     "checkpoint": {
///       "sequence": 1,
///       "version": 1,
///       "contentHash": "d487ddaf86d28e89c8d2867b540fdbe17b8f7e59d9580693b69fc12a75f483f4",
///       "timestamp": 1768469400000,
///       "verified": true
///     },
///     "content": "Goals: ship the beta by March 1",
///     "contentHash": "d487ddaf86d28e89c8d2867b540fdbe17b8f7e59d9580693b69fc12a75f483f4"
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "notes/offline:restoreFromCheckpoint",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("clientId", v::string()),
        ("checkpointId", v::string()),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("checkpoint", v::optional(v::object([
            ("sequence", v::number()),
            ("version", v::number()),
            ("contentHash", v::string()),
            ("timestamp", v::number()),
            ("verified", v::optional(v::boolean())),
        ]))),
        ("content", v::optional(v::string())),
        ("contentHash", v::optional(v::string())),
    ])
)]
async fn restore_from_checkpoint(ctx: MutationCtx, args: RestoreArgs) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    let checkpoint_id = args.checkpoint_id.clone();
    let row = ctx
        .db
        .query("offlineCheckpoints")
        .with_index("by_checkpoint_id", move |r| {
            r.eq("checkpointId", checkpoint_id.as_str())
        })
        .first()
        .await?;
    let owner = access.user.id.to_value();
    let meeting = args.meeting_id.to_value();
    let Some(row) = row.filter(|r| {
        r.field("authorId") == Some(&owner)
            && r.field("meetingId") == Some(&meeting)
            && r.field("clientId").and_then(Value::as_str) == Some(args.client_id.as_str())
    }) else {
        return Ok(json!({"success": false}));
    };
    let sequence = num(&row, "sequence") as u64;
    let mut checkpoint = json!({
        "sequence": sequence as f64,
        "version": num(&row, "version"),
        "contentHash": row.field("contentHash").and_then(Value::as_str).unwrap_or_default(),
        "timestamp": num(&row, "timestamp"),
    });
    if let Some(v) = row.field("verified").and_then(Value::as_bool) {
        checkpoint["verified"] = json!(v);
    }
    let mut out = json!({"success": true, "checkpoint": checkpoint});
    if let Some(content) = content_at(&ctx.db, args.meeting_id, sequence).await? {
        out["contentHash"] = json!(content_hash(&content));
        out["content"] = json!(content);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OfflineCleanupArgs {
    older_than_ms: Option<f64>,
}

/// @summary Deletes old offline queue rows and checkpoints
///
/// @description Internal, run daily by a cron: deletes queue rows that are
/// no longer pending (synced, failed or syncing) and checkpoints, queued or
/// created more than `olderThanMs` ago (default 7 days), at most 500 of
/// each per run (the job reschedules itself while there is more). Returns
/// `{queueItemsDeleted, checkpointsDeleted}`.
#[macros::function(
    internal_mutation,
    path = "notes/offline:cleanupOfflineData",
    args = v::object([("olderThanMs", v::optional(v::number()))]),
    returns = v::object([
        ("queueItemsDeleted", v::number()),
        ("checkpointsDeleted", v::number()),
    ])
)]
async fn cleanup_offline_data(
    ctx: MutationCtx,
    args: OfflineCleanupArgs,
) -> Result<serde_json::Value> {
    let older_than = args
        .older_than_ms
        .unwrap_or(DEFAULT_OFFLINE_RETENTION_MS)
        .max(0.0);
    let cutoff = ctx.now_ms() - older_than;
    let mut queue_deleted = 0usize;
    let mut more = false;
    for status in ["synced", "failed", "syncing"] {
        let rows = ctx
            .db
            .query("offlineOperationQueue")
            .with_index("by_status_and_queued_at", |r| {
                r.eq("status", status).lt("queuedAt", cutoff)
            })
            .take(CLEANUP_BATCH)
            .await?;
        more |= rows.len() == CLEANUP_BATCH;
        for row in &rows {
            ctx.db.delete(row.id()).await?;
        }
        queue_deleted += rows.len();
    }
    let checkpoints = ctx
        .db
        .query("offlineCheckpoints")
        .with_index("by_created_at", |r| r.lt("createdAt", cutoff))
        .take(CLEANUP_BATCH)
        .await?;
    more |= checkpoints.len() == CLEANUP_BATCH;
    for row in &checkpoints {
        ctx.db.delete(row.id()).await?;
    }
    if more {
        ctx.scheduler
            .run_after(
                Duration::ZERO,
                CLEANUP_PATH,
                json!({"olderThanMs": older_than}),
            )
            .await?;
    }
    Ok(json!({
        "queueItemsDeleted": queue_deleted as f64,
        "checkpointsDeleted": checkpoints.len() as f64,
    }))
}

/// Registers `notes/offline:*` and the daily clean-up cron.
pub fn register(r: &mut Registry) {
    r.register(queue_offline_operations_spec());
    r.register(sync_offline_operations_spec());
    r.register(get_offline_queue_status_spec());
    r.register(get_offline_queue_status_query_spec());
    r.register(retry_failed_operations_spec());
    r.register(clear_synced_operations_spec());
    r.register(create_offline_checkpoint_spec());
    r.register(restore_from_checkpoint_spec());
    r.register(cleanup_offline_data_spec());
    r.cron(
        "notes: delete old offline queue rows and checkpoints",
        CronSchedule::Interval(Duration::from_secs(86_400)),
        CLEANUP_PATH,
        Value::object(Vec::<(String, Value)>::new()),
    );
}
