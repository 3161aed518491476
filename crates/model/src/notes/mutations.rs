//! `notes/mutations:*`: applying operations, rollback, and the internal
//! maintenance of the operation log (rebase, compose, compaction).

use std::time::Duration;

use errors::{Error, Result};
use runtime::{CronSchedule, DbWriter, MutationCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

use super::{
    Committed, LogWriter, MAX_BATCH_OPS, OperationArg, Rebaser, content_at, content_hash,
    ensure_editable, load_notes, op_json, operation_validator, ot, whole, write_notes,
};
use crate::auth::MeetingRole;
use crate::ids::{Id, Meetings};
use crate::meetings::{Access, require_access};
use crate::system::audit::{self, AuditEntry};
use database::Order;
use ot::Operation;

/// The compaction job's path.
pub const CLEANUP_PATH: &str = "notes/mutations:cleanupOldNoteOperations";
/// Operations younger than this are never compacted (90 days).
pub const DEFAULT_RETENTION_MS: f64 = 90.0 * 86_400_000.0;
/// The newest operations kept per meeting by compaction.
pub const DEFAULT_KEEP_OPS: u64 = 100;
/// Most operations folded into one snapshot per meeting and run.
pub const COMPACT_BATCH: u64 = 1_000;
/// Meetings visited per compaction run (the job reschedules itself).
pub const COMPACT_MEETINGS_PER_RUN: usize = 50;

fn audit_entry(access: &Access, action: &str, now: f64) -> AuditEntry {
    AuditEntry::new("meetingNotes", access.meeting.id.to_string(), action, now)
        .by(&access.user)
        .org(access.meeting.audit_org(&access.user))
}

fn check_expected_version(expected: Option<f64>, version: f64) -> Result<()> {
    match expected {
        Some(e) if e != version => Err(Error::conflict(format!(
            "Version mismatch: expected {e}, got {version}"
        ))
        .with_metadata(json!({"expectedVersion": e, "currentVersion": version}))),
        _ => Ok(()),
    }
}

fn ops_json(ops: &[Operation]) -> serde_json::Value {
    serde_json::Value::Array(ops.iter().map(op_json).collect())
}

/// `{type, position, content?, length?}` as returned.
fn returned_op() -> values::Validator {
    operation_validator()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplyArgs {
    meeting_id: Id<Meetings>,
    operation: OperationArg,
    client_sequence: f64,
    expected_version: Option<f64>,
}

/// @summary Applies one edit to a meeting's collaborative notes
///
/// @description Transforms `operation` — generated on the notes at
/// `clientSequence`, the highest server sequence the client has applied —
/// against every operation committed after it, applies it, appends it to
/// the log and bumps `version` by one. Positions and lengths count UTF-16
/// code units (JavaScript string indices); an offset inside a surrogate
/// pair is refused. A delete whose range received a concurrent insert
/// becomes two deletes: each is stored with its own consecutive sequence;
/// `serverSequence` and `transformedOperation` are the first,
/// `transformedOperations` all of them (apply them in order), and
/// `conflicts` lists the ids of the committed operations that changed it.
/// With `expectedVersion` the call fails unless the notes are at that
/// version. Authorization: a participant or host (`INSUFFICIENT_PERMISSIONS`
/// for observers, `FORBIDDEN` for non-participants, `UNAUTHORIZED` without a
/// token). Errors: `VALIDATION_ERROR` for a malformed operation, one that
/// does not apply, or a `clientSequence` ahead of the log; `CONFLICT` for a
/// version mismatch, a concluded or cancelled meeting, or a
/// `clientSequence` whose later operations were compacted (metadata
/// `resync: true`: reload with `getNoteOperations`). Live `getMeetingNotes`
/// and `getNoteOperations` queries update on commit.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "operation": {"type": "insert", "position": 0, "content": "Decisions: "},
///     "clientSequence": 1
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
///     "serverSequence": 2,
///     "transformedOperation": {"type": "insert", "position": 0, "content": "Decisions: "},
///     "transformedOperations": [{"type": "insert", "position": 0, "content": "Decisions: "}],
///     "newVersion": 2,
///     "conflicts": []
///   }
/// }
/// ```
///
/// @example request-error
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "operation": {"type": "delete", "position": 0, "length": 500},
///     "clientSequence": 2
///   }
/// }
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "Failed to apply operation: operation at 0 with length 500 is out of bounds for a document of 42 UTF-16 code units",
///   "errorData": {
///     "code": "VALIDATION_ERROR",
///     "message": "Failed to apply operation: operation at 0 with length 500 is out of bounds for a document of 42 UTF-16 code units",
///     "statusCode": 400
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "notes/mutations:applyNoteOperation",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("operation", operation_validator()),
        ("clientSequence", v::number()),
        ("expectedVersion", v::optional(v::number())),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("serverSequence", v::number()),
        ("transformedOperation", returned_op()),
        ("transformedOperations", v::array(returned_op())),
        ("newVersion", v::number()),
        ("conflicts", v::array(v::id("noteOps"))),
    ])
)]
async fn apply_note_operation(ctx: MutationCtx, args: ApplyArgs) -> Result<serde_json::Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    ensure_editable(&access)?;
    let op = args.operation.parse()?;
    let base = whole(args.client_sequence, "clientSequence")?;
    let notes = load_notes(&ctx.db, args.meeting_id).await?;
    check_expected_version(args.expected_version, notes.version)?;
    let now = ctx.now_ms();
    let mut rebaser = Rebaser::load(&ctx.db, args.meeting_id, base, notes.head).await?;
    let rebased = rebaser.rebase(&op, base)?;
    let mut writer = LogWriter::new(args.meeting_id, notes, now);
    let sequence = writer
        .append(&ctx.db, access.user.id, &rebased.ops, None)
        .await?;
    let content_length = ot::utf16_len(&writer.notes.content);
    let version = writer.finish(&ctx.db).await?;
    let conflicts: Vec<String> = rebased.conflicts.iter().map(|id| id.encode()).collect();
    audit::record(
        &ctx.db,
        audit_entry(&access, "apply_operation", now).metadata(json!({
            "operationType": op_json(&op)["type"],
            "sequence": sequence as f64,
            "conflicts": conflicts.len() as f64,
            "contentLength": content_length as f64,
        })),
    )
    .await?;
    let first = rebased
        .ops
        .first()
        .cloned()
        .unwrap_or_else(|| Operation::retain(0, 0));
    Ok(json!({
        "success": true,
        "serverSequence": sequence as f64,
        "transformedOperation": op_json(&first),
        "transformedOperations": ops_json(&rebased.ops),
        "newVersion": version,
        "conflicts": conflicts,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchItem {
    operation: OperationArg,
    client_sequence: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchArgs {
    meeting_id: Id<Meetings>,
    operations: Vec<BatchItem>,
    expected_version: Option<f64>,
}

/// @summary Applies a batch of sequential edits to a meeting's notes
///
/// @description Applies up to 100 operations in one transaction. The
/// operations of a batch are **sequential** edits by the calling client:
/// each was generated on the notes at its `clientSequence` *after* the
/// batch's earlier operations (so a client typing offline sends them all
/// with the same base). Each is transformed against the operations
/// committed after its base as they look after the batch's earlier
/// operations — never against the batch's own earlier operations, which
/// the original did (it treated a batch as concurrent with itself and
/// scrambled it). `clientSequence` must not decrease within a batch. The
/// batch is all or nothing: a malformed operation or one that does not
/// apply fails the whole call with `VALIDATION_ERROR` naming its index, and
/// nothing is written (the original skipped it, which shifts every later
/// edit, and still bumped the version). `version` goes up by one per batch;
/// every stored operation gets its own sequence. `results[i]` is the first
/// stored piece of operation `i` (`transformedOperations`: all pieces).
/// Authorization, errors and reactivity as `applyNoteOperation`.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "operations": [
///       {"operation": {"type": "insert", "position": 0, "content": "Owners"}, "clientSequence": 1},
///       {"operation": {"type": "insert", "position": 6, "content": ": Ada. "}, "clientSequence": 1}
///     ]
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
///     "processed": 2,
///     "failed": 0,
///     "results": [
///       {
///         "serverSequence": 2,
///         "transformedOperation": {"type": "insert", "position": 0, "content": "Owners"},
///         "transformedOperations": [{"type": "insert", "position": 0, "content": "Owners"}],
///         "conflicts": []
///       },
///       {
///         "serverSequence": 3,
///         "transformedOperation": {"type": "insert", "position": 6, "content": ": Ada. "},
///         "transformedOperations": [{"type": "insert", "position": 6, "content": ": Ada. "}],
///         "conflicts": []
///       }
///     ],
///     "newVersion": 2
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "notes/mutations:batchApplyNoteOperations",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("operations", v::array(v::object([
            ("operation", operation_validator()),
            ("clientSequence", v::number()),
        ]))),
        ("expectedVersion", v::optional(v::number())),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("processed", v::number()),
        ("failed", v::number()),
        ("results", v::array(v::object([
            ("serverSequence", v::number()),
            ("transformedOperation", returned_op()),
            ("transformedOperations", v::array(returned_op())),
            ("conflicts", v::array(v::id("noteOps"))),
        ]))),
        ("newVersion", v::number()),
    ])
)]
async fn batch_apply_note_operations(
    ctx: MutationCtx,
    args: BatchArgs,
) -> Result<serde_json::Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    ensure_editable(&access)?;
    if args.operations.is_empty() {
        return Err(Error::validation("A batch needs at least one operation"));
    }
    if args.operations.len() > MAX_BATCH_OPS {
        return Err(Error::validation(format!(
            "A batch holds at most {MAX_BATCH_OPS} operations, got {}",
            args.operations.len()
        )));
    }
    let at =
        |i: usize| move |e: Error| Error::validation(format!("operations[{i}]: {}", e.message()));
    let mut parsed = Vec::with_capacity(args.operations.len());
    for (i, item) in args.operations.iter().enumerate() {
        let op = item.operation.parse().map_err(at(i))?;
        let base = whole(item.client_sequence, "clientSequence").map_err(at(i))?;
        parsed.push((op, base));
    }
    let notes = load_notes(&ctx.db, args.meeting_id).await?;
    check_expected_version(args.expected_version, notes.version)?;
    let now = ctx.now_ms();
    let min_base = parsed.iter().map(|(_, b)| *b).min().unwrap_or(0);
    if min_base > notes.head {
        return Err(Error::validation(format!(
            "clientSequence {min_base} is ahead of the notes' newest sequence {}",
            notes.head
        )));
    }
    let mut rebaser = Rebaser::load(&ctx.db, args.meeting_id, min_base, notes.head).await?;
    let mut writer = LogWriter::new(args.meeting_id, notes, now);
    let mut results = Vec::with_capacity(parsed.len());
    for (i, (op, base)) in parsed.into_iter().enumerate() {
        let rebased = rebaser
            .rebase(&op, base)
            .map_err(|e| e.with_prefix_if_validation(i))?;
        let sequence = writer
            .append(&ctx.db, access.user.id, &rebased.ops, None)
            .await
            .map_err(|e| e.with_prefix_if_validation(i))?;
        rebaser.accept(op);
        let first = rebased
            .ops
            .first()
            .cloned()
            .unwrap_or_else(|| Operation::retain(0, 0));
        results.push(json!({
            "serverSequence": sequence as f64,
            "transformedOperation": op_json(&first),
            "transformedOperations": ops_json(&rebased.ops),
            "conflicts": rebased.conflicts.iter().map(|id| id.encode()).collect::<Vec<_>>(),
        }));
    }
    let processed = results.len();
    let version = writer.finish(&ctx.db).await?;
    audit::record(
        &ctx.db,
        audit_entry(&access, "batch_apply_operations", now).metadata(json!({
            "processed": processed as f64,
            "failed": 0.0,
        })),
    )
    .await?;
    Ok(json!({
        "success": true,
        "processed": processed as f64,
        "failed": 0.0,
        "results": results,
        "newVersion": version,
    }))
}

/// Prefixes a validation error with the batch index it came from.
trait BatchIndex {
    fn with_prefix_if_validation(self, i: usize) -> Error;
}

impl BatchIndex for Error {
    fn with_prefix_if_validation(self, i: usize) -> Error {
        if self.code() == errors::ErrorCode::ValidationError {
            Error::validation(format!("operations[{i}]: {}", self.message()))
        } else {
            self
        }
    }
}

/// The operations that turn `from` into `to`: one delete of the changed
/// middle and one insert of the new middle (offsets in UTF-16 code units,
/// at character boundaries).
pub(crate) fn diff(from: &str, to: &str) -> Vec<Operation> {
    let a: Vec<char> = from.chars().collect();
    let b: Vec<char> = to.chars().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let units = |cs: &[char]| cs.iter().map(|c| c.len_utf16()).sum::<usize>();
    let position = units(&a[..prefix]);
    let removed = units(&a[prefix..a.len() - suffix]);
    let inserted: String = b[prefix..b.len() - suffix].iter().collect();
    let mut ops = Vec::new();
    if removed > 0 {
        ops.push(Operation::delete(position, removed));
    }
    if !inserted.is_empty() {
        ops.push(Operation::insert(position, inserted));
    }
    ops
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RollbackArgs {
    meeting_id: Id<Meetings>,
    target_sequence: f64,
    reason: Option<String>,
}

/// @summary Restores a meeting's notes to an earlier sequence
///
/// @description Restores the content the notes had at `targetSequence`.
/// History is never deleted: the content at the target is rebuilt from the
/// newest snapshot at or before it plus the logged operations after that,
/// and the difference to the current content is **appended** as new
/// operations (a delete and/or an insert, authored by the host), so the log
/// stays replayable and live clients receive the rollback through
/// `getNoteOperations` like any edit. `operationsRemoved` is how many
/// operations' effects were undone (those after the target), `newVersion`
/// the bumped version, `headSequence` the new newest sequence. Records an
/// audit entry `rollback_operations` with `reason`. Authorization: hosts
/// only (`INSUFFICIENT_PERMISSIONS` for participants and observers,
/// `FORBIDDEN` for non-participants, `UNAUTHORIZED` without a token).
/// Errors: `VALIDATION_ERROR` for a target above the newest sequence;
/// `CONFLICT` when the operations before the target were compacted away,
/// or the meeting is concluded or cancelled.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "targetSequence": 1,
///     "reason": "Accidental paste"
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {"success": true, "operationsRemoved": 1, "newVersion": 3, "headSequence": 3}
/// }
/// ```
#[macros::function(
    mutation,
    path = "notes/mutations:rollbackToSequence",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("targetSequence", v::number()),
        ("reason", v::optional(v::string())),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("operationsRemoved", v::number()),
        ("newVersion", v::number()),
        ("headSequence", v::number()),
    ])
)]
async fn rollback_to_sequence(ctx: MutationCtx, args: RollbackArgs) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Host).await?;
    ensure_editable(&access)?;
    let target = whole(args.target_sequence, "targetSequence")?;
    let notes = load_notes(&ctx.db, args.meeting_id).await?;
    if target > notes.head {
        return Err(Error::validation(format!(
            "targetSequence {target} is ahead of the notes' newest sequence {}",
            notes.head
        )));
    }
    let restored = content_at(&ctx.db, args.meeting_id, target)
        .await?
        .ok_or_else(|| {
            Error::conflict(format!(
                "Cannot roll back to sequence {target}: the operations before it were compacted"
            ))
        })?;
    let undone = notes.head - target;
    let now = ctx.now_ms();
    let ops = diff(&notes.content, &restored);
    let mut writer = LogWriter::new(args.meeting_id, notes, now);
    if !ops.is_empty() {
        writer.append(&ctx.db, access.user.id, &ops, None).await?;
    }
    let head = writer.notes.head;
    let version = write_notes(&ctx.db, args.meeting_id, &writer.notes, now, true).await?;
    let mut entry = audit_entry(&access, "rollback_operations", now)
        .with("targetSequence", target as f64)
        .with("operationsRemoved", undone as f64)
        .with("appended", ops.len() as f64);
    if let Some(reason) = args.reason {
        entry = entry.with("reason", reason);
    }
    audit::record(&ctx.db, entry).await?;
    Ok(json!({
        "success": true,
        "operationsRemoved": undone as f64,
        "newVersion": version,
        "headSequence": head as f64,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RebaseArgs {
    meeting_id: Id<Meetings>,
    from_sequence: Option<f64>,
}

/// @summary Rebuilds a meeting's notes content from its operation log
///
/// @description Internal. Starts from the newest snapshot at or before
/// `fromSequence` (default: the newest snapshot; `""` at 0 without one) and
/// replays every logged operation after it in order, which is the content
/// by construction; an operation that does not apply is marked
/// `applied: false` and skipped. Sets the content, `version + 1` and
/// `lastRebasedAt`. The original started from the *current* content when
/// `fromSequence > 0` and applied operations twice. Returns
/// `{success, newVersion, operationsProcessed, contentLength, matched}`
/// (`matched`: the stored content already equalled the replay).
/// `NOT_FOUND` without notes; `CONFLICT` when the operations after the
/// starting snapshot are incomplete.
#[macros::function(
    internal_mutation,
    path = "notes/mutations:rebaseNotesDocument",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("fromSequence", v::optional(v::number())),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("newVersion", v::number()),
        ("operationsProcessed", v::number()),
        ("contentLength", v::number()),
        ("matched", v::boolean()),
    ])
)]
async fn rebase_notes_document(ctx: MutationCtx, args: RebaseArgs) -> Result<serde_json::Value> {
    let mut notes = load_notes(&ctx.db, args.meeting_id).await?;
    if notes.doc_id.is_none() {
        return Err(Error::not_found("Meeting notes not found"));
    }
    let from = match args.from_sequence {
        Some(s) => whole(s, "fromSequence")?.min(notes.head),
        None => notes.head,
    };
    let (start, mut content) = super::snapshot_at_or_before(&ctx.db, args.meeting_id, from)
        .await?
        .unwrap_or((0, String::new()));
    let docs = ctx
        .db
        .query("noteOps")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", args.meeting_id.to_value())
                .gt("sequence", start as f64)
        })
        .collect()
        .await?;
    if docs.len() as u64 != notes.head - start {
        return Err(Error::conflict(format!(
            "The operations after sequence {start} are incomplete; cannot rebase"
        )));
    }
    let mut processed = 0usize;
    for doc in &docs {
        let c = Committed::from_doc(doc)?;
        match ot::apply(&content, &c.op) {
            Ok(next) => {
                content = next;
                processed += 1;
            }
            Err(_) => ctx.db.patch(c.id, json!({"applied": false})).await?,
        }
    }
    let matched = content == notes.content;
    notes.content = content;
    let now = ctx.now_ms();
    let version = write_notes(&ctx.db, args.meeting_id, &notes, now, true).await?;
    Ok(json!({
        "success": true,
        "newVersion": version,
        "operationsProcessed": processed as f64,
        "contentLength": ot::utf16_len(&notes.content) as f64,
        "matched": matched,
    }))
}

/// Composes two consecutive operations (`b` applied after `a`) into one,
/// with the original's rules: adjacent inserts, deletes at the same place,
/// an insert deleted right away. `None` when they do not compose.
pub(crate) fn compose(a: &Operation, b: &Operation) -> Option<Operation> {
    use Operation::{Delete, Insert, Retain};
    match (a, b) {
        (_, Retain { .. }) => Some(a.clone()),
        (Retain { .. }, _) => Some(b.clone()),
        (
            Insert { position, content },
            Insert {
                position: q,
                content: t,
            },
        ) if *q == position + ot::utf16_len(content) => {
            Some(Operation::insert(*position, format!("{content}{t}")))
        }
        (
            Delete { position, length },
            Delete {
                position: q,
                length: m,
            },
        ) if q == position => Some(Operation::delete(*position, length + m)),
        (
            Insert { position, content },
            Delete {
                position: q,
                length: m,
            },
        ) if q == position && *m == ot::utf16_len(content) => Some(Operation::retain(*position, 0)),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComposeArgs {
    meeting_id: Id<Meetings>,
    author_id: Id<crate::ids::Users>,
    max_operations: Option<f64>,
}

/// @summary Composes an author's consecutive operations in a meeting's log
///
/// @description Internal. Looks at the author's newest `maxOperations`
/// (default 100) logged operations and merges runs of consecutive
/// sequences that compose (adjacent inserts, deletes at the same place, an
/// insert deleted right away). Sequences stay dense: the run's first row
/// holds the composed operation (`composedThrough`: the run's last
/// sequence) and the other rows become no-op retains (`composedInto`: the
/// first sequence), so a replay gives the same content. A client whose base
/// lies inside a composed run is told to resync. The original deleted and
/// re-inserted rows, leaving holes. Returns `{composed, originalCount,
/// newCount}`.
#[macros::function(
    internal_mutation,
    path = "notes/mutations:composeConsecutiveOperations",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("authorId", v::id("users")),
        ("maxOperations", v::optional(v::number())),
    ]),
    returns = v::object([
        ("composed", v::number()),
        ("originalCount", v::number()),
        ("newCount", v::number()),
    ])
)]
async fn compose_consecutive_operations(
    ctx: MutationCtx,
    args: ComposeArgs,
) -> Result<serde_json::Value> {
    let max =
        whole(args.max_operations.unwrap_or(100.0), "maxOperations")?.clamp(1, 1_000) as usize;
    let author = args.author_id.to_value();
    let mut docs = ctx
        .db
        .query("noteOps")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", args.meeting_id.to_value())
        })
        .order(Order::Desc)
        .filter(move |d| d.field("authorId") == Some(&author) && d.field("composedInto").is_none())
        .take(max)
        .await?;
    docs.reverse();
    let ops = docs
        .iter()
        .map(Committed::from_doc)
        .collect::<Result<Vec<_>>>()?;
    let original = ops.len();
    let mut new_count = 0usize;
    let mut composed = 0usize;
    let mut i = 0;
    while i < ops.len() {
        let start = &ops[i];
        let mut acc = start.op.clone();
        let mut j = i + 1;
        while j < ops.len() && ops[j].sequence == ops[j - 1].sequence + 1 {
            match compose(&acc, &ops[j].op) {
                Some(next) => acc = next,
                None => break,
            }
            j += 1;
        }
        new_count += 1;
        if j > i + 1 {
            let last = ops[j - 1].sequence;
            ctx.db
                .patch(
                    start.id,
                    json!({"operation": op_json(&acc), "composedThrough": last as f64}),
                )
                .await?;
            for c in &ops[i + 1..j] {
                ctx.db
                    .patch(
                        c.id,
                        json!({
                            "operation": op_json(&Operation::retain(0, 0)),
                            "composedInto": start.sequence as f64,
                        }),
                    )
                    .await?;
                composed += 1;
            }
        }
        i = j;
    }
    Ok(json!({
        "composed": composed as f64,
        "originalCount": original as f64,
        "newCount": new_count as f64,
    }))
}

/// Compacts one meeting: snapshot at the cut, then delete the operations at
/// or below it. Returns how many operations were deleted.
pub(crate) async fn compact_meeting(
    db: &DbWriter,
    meeting: Id<Meetings>,
    cutoff_ms: f64,
    keep: u64,
    now: f64,
) -> Result<u64> {
    let notes = load_notes(db, meeting).await?;
    if notes.head <= keep {
        return Ok(0);
    }
    // The newest operation older than the cutoff (timestamps are server
    // commit times, so they grow with the sequence).
    let old = db
        .query("noteOps")
        .with_index("by_meeting_timestamp", |r| {
            r.eq("meetingId", meeting.to_value())
                .lt("timestamp", cutoff_ms)
        })
        .order(Order::Desc)
        .first()
        .await?;
    let Some(old) = old else { return Ok(0) };
    let (snap_seq, _) = super::snapshot_at_or_before(db, meeting, notes.head)
        .await?
        .unwrap_or((0, String::new()));
    let old_seq = old.field("sequence").and_then(Value::as_f64).unwrap_or(0.0) as u64;
    let cut = old_seq.min(notes.head - keep).min(snap_seq + COMPACT_BATCH);
    if cut <= snap_seq {
        return Ok(0);
    }
    // A composed run must not be cut in half.
    let cut_row = db
        .query("noteOps")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value())
                .eq("sequence", (cut + 1) as f64)
        })
        .first()
        .await?;
    if cut_row.is_some_and(|d| d.field("composedInto").is_some()) {
        return Ok(0);
    }
    let Some(content) = content_at(db, meeting, cut).await? else {
        return Ok(0);
    };
    // The snapshot first, so that the content stays reachable.
    db.insert(
        "noteSnapshots",
        json!({
            "meetingId": meeting,
            "sequence": cut as f64,
            "contentHash": content_hash(&content),
            "content": content,
            "createdAt": now,
        }),
    )
    .await?;
    let doomed = db
        .query("noteOps")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value())
                .lte("sequence", cut as f64)
        })
        .collect()
        .await?;
    for doc in &doomed {
        db.delete(doc.id()).await?;
    }
    let older = db
        .query("noteSnapshots")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value())
                .lt("sequence", cut as f64)
        })
        .collect()
        .await?;
    for doc in &older {
        db.delete(doc.id()).await?;
    }
    Ok(doomed.len() as u64)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CleanupArgs {
    meeting_id: Option<Id<Meetings>>,
    older_than_ms: Option<f64>,
    keep_minimum_ops: Option<f64>,
    after_creation_time: Option<f64>,
}

/// @summary Compacts old note operations behind a snapshot
///
/// @description Internal, run hourly by a cron. For one meeting
/// (`meetingId`) or for every meeting with notes (50 per run; the job
/// reschedules itself with `afterCreationTime` until all were visited): picks
/// the cut — the newest operation older than `olderThanMs` (default 90
/// days), but keeping at least the newest `keepMinimumOps` (default 100)
/// and folding at most 1,000 operations per run — writes a snapshot of the
/// content at the cut, then deletes the operations at or below it and the
/// older snapshots. Replaying the snapshot and the remaining operations
/// always gives the content (the original deleted operations without a
/// snapshot, which made rebase and rollback lossy). Returns `{deleted}`.
#[macros::function(
    internal_mutation,
    path = "notes/mutations:cleanupOldNoteOperations",
    args = v::object([
        ("meetingId", v::optional(v::id("meetings"))),
        ("olderThanMs", v::optional(v::number())),
        ("keepMinimumOps", v::optional(v::number())),
        ("afterCreationTime", v::optional(v::number())),
    ]),
    returns = v::object([("deleted", v::number())])
)]
async fn cleanup_old_note_operations(
    ctx: MutationCtx,
    args: CleanupArgs,
) -> Result<serde_json::Value> {
    let now = ctx.now_ms();
    let older_than = args.older_than_ms.unwrap_or(DEFAULT_RETENTION_MS).max(0.0);
    let keep = match args.keep_minimum_ops {
        Some(k) => whole(k, "keepMinimumOps")?,
        None => DEFAULT_KEEP_OPS,
    };
    let cutoff = now - older_than;
    let mut deleted = 0;
    if let Some(meeting) = args.meeting_id {
        deleted += compact_meeting(&ctx.db, meeting, cutoff, keep, now).await?;
        return Ok(json!({"deleted": deleted as f64}));
    }
    let after = args.after_creation_time.unwrap_or(-1.0);
    let docs = ctx
        .db
        .query("meetingNotes")
        .with_index("by_creation_time", |r| r.gt("_creationTime", after))
        .take(COMPACT_MEETINGS_PER_RUN)
        .await?;
    for doc in &docs {
        let Some(meeting) = doc
            .field("meetingId")
            .and_then(Value::as_str)
            .and_then(Id::<Meetings>::parse)
        else {
            continue;
        };
        deleted += compact_meeting(&ctx.db, meeting, cutoff, keep, now).await?;
    }
    if docs.len() == COMPACT_MEETINGS_PER_RUN
        && let Some(last) = docs.last()
    {
        ctx.scheduler
            .run_after(
                Duration::ZERO,
                CLEANUP_PATH,
                json!({
                    "olderThanMs": older_than,
                    "keepMinimumOps": keep as f64,
                    "afterCreationTime": last.creation_time(),
                }),
            )
            .await?;
    }
    Ok(json!({"deleted": deleted as f64}))
}

/// Registers `notes/mutations:*` and the hourly compaction cron.
pub fn register(r: &mut Registry) {
    r.register(apply_note_operation_spec());
    r.register(batch_apply_note_operations_spec());
    r.register(rollback_to_sequence_spec());
    r.register(rebase_notes_document_spec());
    r.register(compose_consecutive_operations_spec());
    r.register(cleanup_old_note_operations_spec());
    r.cron(
        "notes: compact operation logs behind snapshots",
        CronSchedule::Interval(Duration::from_secs(3600)),
        CLEANUP_PATH,
        Value::object(Vec::<(String, Value)>::new()),
    );
}
