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
use crate::ids::{Id, Meetings};

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
///     "_id": "fz6gvzfdz3jc5wqn7tdjegrbwrr5x1szqndg",
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
    access = crate::meetings::observer_access,
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::union([notes_doc_validator(), v::null()])
)]
async fn get_meeting_notes(ctx: QueryCtx, args: MeetingArgs) -> Result<Value> {
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
    access = crate::meetings::observer_access,
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
    for (expected, doc) in (from + 1..).zip(docs.iter()) {
        let c = Committed::from_doc(doc)?;
        if c.sequence != expected || (expected == from + 1 && c.composed_into.is_some()) {
            return Ok(resync(&notes));
        }
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

/// Meetings whose notes one search looks at (the caller's newest).
pub const SEARCH_MEETINGS: usize = 50;
/// Default and largest number of search results.
const DEFAULT_SEARCH_RESULTS: u64 = 10;
const MAX_SEARCH_RESULTS: u64 = 50;
/// Characters of context on each side of a snippet's match.
const SNIPPET_CONTEXT: usize = 40;

/// The search's terms: lowercase runs of alphanumeric characters (the
/// index's tokenizer).
fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
    {
        let t = t.to_lowercase();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Up to `SNIPPET_CONTEXT` characters either side of the first occurrence
/// of a query term (case-insensitive), with `…` where text was cut.
fn snippet(content: &str, terms: &[String]) -> String {
    let chars: Vec<char> = content.chars().collect();
    let lower: Vec<char> = chars
        .iter()
        .map(|c| c.to_lowercase().next().unwrap_or(*c))
        .collect();
    let hit = terms
        .iter()
        .filter_map(|t| {
            let t: Vec<char> = t.chars().collect();
            (t.len() <= lower.len())
                .then(|| lower.windows(t.len()).position(|w| w == t.as_slice()))
                .flatten()
        })
        .min()
        .unwrap_or(0);
    let start = hit.saturating_sub(SNIPPET_CONTEXT);
    let end = (hit + 2 * SNIPPET_CONTEXT).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(chars[start..end].iter());
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchArgs {
    query: String,
    limit: Option<f64>,
}

/// @summary Searches the notes of the caller's meetings
///
/// @description Full-text search (the `search_content` index: terms are
/// runs of letters and digits, case-insensitive, the last term also matches
/// as a prefix) over the notes of the meetings the caller takes part in,
/// observers included. Returns at most `limit` (default 10, at most 50)
/// `{meetingId, meetingTitle, snippet, matchedTerms, version, updatedAt}`,
/// most query terms matched first, then most recently edited; `snippet` is
/// the text around the first match. The search runs once per meeting over
/// the caller's 50 most recent meetings (by when they joined), filtered by
/// `meetingId`: the work is bounded by the caller's own meetings and a
/// result can never come from a meeting the caller cannot read — searching
/// everyone's notes first and checking access afterwards would let other
/// meetings' notes crowd the caller's out of the bounded result set and
/// make the query depend on documents the caller may not see. Authorization:
/// any signed-in user (`UNAUTHORIZED` without a token). Errors:
/// `VALIDATION_ERROR` for a query without a searchable term or a bad
/// `limit`. A live query: it updates when matching notes change.
///
/// @example request
/// ```json
/// {"args": {"query": "beta"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": [
///     {
///       "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///       "meetingTitle": "Q1 planning kickoff",
///       "snippet": "Goals: ship the beta by March 1",
///       "matchedTerms": 1,
///       "version": 1,
///       "updatedAt": 1768469400000
///     }
///   ]
/// }
/// ```
#[macros::function(
    query,
    path = "notes/queries:searchMeetingNotes",
    args = v::object([("query", v::string()), ("limit", v::optional(v::number()))]),
    returns = v::array(v::object([
        ("meetingId", v::id("meetings")),
        ("meetingTitle", v::optional(v::string())),
        ("snippet", v::string()),
        ("matchedTerms", v::number()),
        ("version", v::number()),
        ("updatedAt", v::number()),
    ]))
)]
async fn search_meeting_notes(ctx: QueryCtx, args: SearchArgs) -> Result<serde_json::Value> {
    let user = crate::auth::require_user(&ctx.db, &ctx.auth).await?;
    let terms = terms(&args.query);
    if terms.is_empty() {
        return Err(Error::validation(
            "The search query needs at least one letter or digit",
        ));
    }
    let limit = match args.limit {
        Some(l) => whole(l, "limit")?,
        None => DEFAULT_SEARCH_RESULTS,
    };
    if limit == 0 || limit > MAX_SEARCH_RESULTS {
        return Err(Error::validation(format!(
            "limit must be between 1 and {MAX_SEARCH_RESULTS}"
        )));
    }
    let memberships = ctx
        .db
        .query("meetingParticipants")
        .with_index("by_user", |r| r.eq("userId", user.id.to_value()))
        .order(Order::Desc)
        .take(SEARCH_MEETINGS)
        .await?;
    let mut hits = Vec::new();
    for row in &memberships {
        let Some(meeting) = row.field("meetingId").cloned() else {
            continue;
        };
        let docs = ctx
            .db
            .query("meetingNotes")
            .with_search_index("search_content", |q| {
                q.search("content", &args.query)
                    .eq("meetingId", meeting.clone())
            })
            .take(1)
            .await?;
        let Some(doc) = docs.into_iter().next() else {
            continue;
        };
        let content = doc
            .field("content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let lower = content.to_lowercase();
        let matched = terms.iter().filter(|t| lower.contains(t.as_str())).count();
        let mut hit = json!({
            "meetingId": meeting.as_str().unwrap_or_default(),
            "snippet": snippet(content, &terms),
            "matchedTerms": matched as f64,
            "version": doc.field("version").and_then(Value::as_f64).unwrap_or(0.0),
            "updatedAt": doc.field("updatedAt").and_then(Value::as_f64).unwrap_or(0.0),
        });
        if let Some(id) = meeting.as_str().and_then(Id::<Meetings>::parse)
            && let Some(m) = ctx.db.get(id.raw()).await?
            && let Some(title) = m.field("title").and_then(Value::as_str)
        {
            hit["meetingTitle"] = json!(title);
        }
        hits.push((matched, hit));
    }
    hits.sort_by(|(ma, a), (mb, b)| {
        mb.cmp(ma).then_with(|| {
            let t = |h: &serde_json::Value| h["updatedAt"].as_f64().unwrap_or(0.0);
            t(b).total_cmp(&t(a))
        })
    });
    Ok(serde_json::Value::Array(
        hits.into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(_, h)| h)
            .collect(),
    ))
}

/// Registers `notes/queries:*`.
pub fn register(r: &mut Registry) {
    r.register(get_meeting_notes_spec());
    r.register(get_note_operations_spec());
    r.register(search_meeting_notes_spec());
}
