//! `notes/queries:*`: the notes document, the operation stream clients
//! catch up from, and search.

use database::Order;
use errors::{Error, Result};
use runtime::{QueryCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

use super::{
    Committed, load_notes, notes_doc, notes_doc_validator, op_json, operation_validator, whole,
};
use crate::auth::MeetingRole;
use crate::ids::{Id, Meetings};
use crate::meetings::require_access;

/// Default and largest page of `getNoteOperations`.
pub const DEFAULT_OPS_PAGE: u64 = 200;
/// Largest page of `getNoteOperations`.
pub const MAX_OPS_PAGE: u64 = 1_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingArgs {
    meeting_id: Id<Meetings>,
}

/// @summary Reads a meeting's collaborative notes
///
/// @description Returns the meeting's notes document `{_id, _creationTime,
/// meetingId, content, version, lastRebasedAt, updatedAt, headSequence}` or
/// `null` before the first edit. `content` is the text after every logged
/// operation up to `headSequence`; `version` goes up by one per accepted
/// call. Authorization: any participant, observers included (`FORBIDDEN`
/// for non-participants, `UNAUTHORIZED` without a token). One indexed read;
/// as a live query it updates on every edit.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "_id": "8n9vg30cc7cyy0hxkxf8pxt9nh0ap3a1sy78",
///     "_creationTime": 1768469400000.004,
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "content": "Goals: ship the beta by March 1",
///     "version": 1,
///     "lastRebasedAt": 1768469400000,
///     "updatedAt": 1768469400000,
///     "headSequence": 1
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "notes/queries:getMeetingNotes",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::union([notes_doc_validator(), v::null()])
)]
async fn get_meeting_notes(ctx: QueryCtx, args: MeetingArgs) -> Result<Value> {
    require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    Ok(notes_doc(&ctx.db, args.meeting_id)
        .await?
        .map_or(Value::Null, |d| d.into_value()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpsArgs {
    meeting_id: Id<Meetings>,
    from_sequence: f64,
    limit: Option<f64>,
}

/// @summary Streams a meeting's note operations after a sequence
///
/// @description The live feed collaborative editors follow: returns the
/// logged operations with `sequence > fromSequence` in order (at most
/// `limit`, default 200, at most 1,000; `hasMore` when there are more),
/// each `{sequence, operation, authorId?, timestamp}` with the operation
/// as the server transformed and applied it, plus `headSequence` and
/// `version`. A client applies the operations of others after transforming
/// its own pending operations against them, skips the sequences the server
/// acknowledged as its own, and sends its next operation with
/// `clientSequence` = the last sequence it processed. If the operations
/// after `fromSequence` were compacted away (or composed), the result has
/// `resync: true`, no operations, and `content` — the text at
/// `headSequence` — to reset the replica from. Authorization: any
/// participant, observers included (`FORBIDDEN` for non-participants,
/// `UNAUTHORIZED` without a token). Errors: `VALIDATION_ERROR` for a
/// `fromSequence` ahead of `headSequence` or a bad `limit`. One indexed
/// read of the notes and one bounded index range; as a live query it
/// updates on every edit.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "fromSequence": 0}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "operations": [
///       {
///         "sequence": 1,
///         "operation": {"type": "insert", "position": 0, "content": "Goals: ship the beta by March 1"},
///         "authorId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///         "timestamp": 1768469400000
///       }
///     ],
///     "headSequence": 1,
///     "version": 1,
///     "hasMore": false,
///     "resync": false
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "notes/queries:getNoteOperations",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("fromSequence", v::number()),
        ("limit", v::optional(v::number())),
    ]),
    returns = v::object([
        ("operations", v::array(v::object([
            ("sequence", v::number()),
            ("operation", operation_validator()),
            ("authorId", v::optional(v::id("users"))),
            ("timestamp", v::number()),
        ]))),
        ("headSequence", v::number()),
        ("version", v::number()),
        ("hasMore", v::boolean()),
        ("resync", v::boolean()),
        ("content", v::optional(v::string())),
    ])
)]
async fn get_note_operations(ctx: QueryCtx, args: OpsArgs) -> Result<serde_json::Value> {
    require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    let from = whole(args.from_sequence, "fromSequence")?;
    let limit = match args.limit {
        Some(l) => whole(l, "limit")?,
        None => DEFAULT_OPS_PAGE,
    };
    if limit == 0 || limit > MAX_OPS_PAGE {
        return Err(Error::validation(format!(
            "limit must be between 1 and {MAX_OPS_PAGE}"
        )));
    }
    let notes = load_notes(&ctx.db, args.meeting_id).await?;
    if from > notes.head {
        return Err(Error::validation(format!(
            "fromSequence {from} is ahead of the notes' newest sequence {}",
            notes.head
        )));
    }
    let resync = |notes: &super::Notes| {
        json!({
            "operations": [],
            "headSequence": notes.head as f64,
            "version": notes.version,
            "hasMore": false,
            "resync": true,
            "content": notes.content,
        })
    };
    let docs = ctx
        .db
        .query("noteOps")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", args.meeting_id.to_value())
                .gt("sequence", from as f64)
                .lte("sequence", notes.head as f64)
        })
        .order(Order::Asc)
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .await?;
    let mut operations = Vec::with_capacity(docs.len());
    let mut expected = from + 1;
    for doc in &docs {
        let c = Committed::from_doc(doc)?;
        if c.sequence != expected || (expected == from + 1 && c.composed_into.is_some()) {
            return Ok(resync(&notes));
        }
        expected += 1;
        let mut entry = json!({
            "sequence": c.sequence as f64,
            "operation": op_json(&c.op),
            "timestamp": doc.field("timestamp").and_then(Value::as_f64).unwrap_or(0.0),
        });
        if let Some(author) = doc.field("authorId").and_then(Value::as_str) {
            entry["authorId"] = json!(author);
        }
        operations.push(entry);
    }
    if docs.is_empty() && from < notes.head {
        return Ok(resync(&notes));
    }
    let last = from + docs.len() as u64;
    Ok(json!({
        "operations": operations,
        "headSequence": notes.head as f64,
        "version": notes.version,
        "hasMore": last < notes.head,
        "resync": false,
    }))
}

/// Registers `notes/queries:*`.
pub fn register(r: &mut Registry) {
    r.register(get_meeting_notes_spec());
    r.register(get_note_operations_spec());
}
