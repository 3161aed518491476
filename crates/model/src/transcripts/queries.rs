//! `transcripts/queries:*`: the live cursor read of chunks, segments,
//! full-text search and internal readers.
//!
//! Chunks are read by `(meetingId, sequence > cursor)` on
//! `by_meeting_sequence`, so a reader sees every chunk once, in order,
//! whatever bucket or age it has; a live query's read set is that index
//! interval, so an ingest into the meeting re-runs it and nothing else does.
//! `searchTranscripts` uses the `search_text` full-text indexes.

use std::collections::BTreeMap;

use database::Document;
use errors::{Error, Result};
use runtime::{DbReader, QueryCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Validator, Value, v};

use super::segment_fields;
use crate::ids::{Id, Meetings};
use crate::meetings::with_system_fields;

/// The validator of one chunk as readers return it.
pub(crate) fn chunk_out_validator() -> Validator {
    v::object([
        ("_id", v::id("transcripts")),
        ("sequence", v::number()),
        ("speakerId", v::optional(v::string())),
        ("text", v::string()),
        ("confidence", v::number()),
        ("startMs", v::number()),
        ("endMs", v::number()),
        ("isInterim", v::optional(v::boolean())),
        ("wordCount", v::number()),
        ("language", v::optional(v::string())),
        ("createdAt", v::number()),
    ])
}

/// One chunk as readers return it.
///
/// Built as a [`Value`] straight from the document's fields: the live
/// transcript re-runs on every ingest and returns up to 500 chunks, and a
/// `serde_json` tree (then converted to a `Value` by the runtime) cost two
/// maps of owned keys per chunk.
pub(crate) fn chunk_value(d: &Document) -> Value {
    let num = |f: &str| Value::Float64(d.field(f).and_then(Value::as_f64).unwrap_or(0.0));
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_owned(), v);
    };
    put("_id", Value::String(d.id().encode()));
    put("sequence", num("sequence"));
    put(
        "text",
        Value::from(d.field("text").and_then(Value::as_str).unwrap_or_default()),
    );
    put("confidence", num("confidence"));
    put("startMs", num("startMs"));
    put("endMs", num("endMs"));
    put("wordCount", num("wordCount"));
    put("createdAt", num("createdAt"));
    if let Some(s) = d.field("speakerId").and_then(Value::as_str) {
        put("speakerId", Value::from(s));
    }
    if d.field("isInterim") == Some(&Value::Boolean(true)) {
        put("isInterim", Value::Boolean(true));
    }
    if let Some(l) = d.field("language").and_then(Value::as_str) {
        put("language", Value::from(l));
    }
    Value::Object(out)
}

/// [`chunk_value`] as Convex-encoded JSON, for results built with `json!`.
pub(crate) fn chunk_json(d: &Document) -> serde_json::Value {
    chunk_value(d).to_json()
}

/// A sequence cursor: finite and non-negative (default 0).
pub(crate) fn check_cursor(from: Option<f64>) -> Result<f64> {
    let from = from.unwrap_or(0.0);
    if !from.is_finite() || from < 0.0 {
        return Err(Error::validation(
            "fromSequence must be a non-negative number",
        ));
    }
    Ok(from)
}

/// A page size: 1..=max (default `default`).
pub(crate) fn check_limit(limit: Option<f64>, default: usize, max: usize) -> Result<usize> {
    match limit {
        None => Ok(default),
        Some(l) if l.is_finite() && l >= 1.0 => Ok((l.floor() as usize).min(max)),
        Some(_) => Err(Error::validation(format!(
            "limit must be between 1 and {max}"
        ))),
    }
}

/// Up to `limit` chunks of `meeting` with `sequence > from`, ascending.
pub(crate) async fn after_sequence(
    db: &DbReader,
    meeting: Id<Meetings>,
    from: f64,
    limit: usize,
) -> Result<Vec<Document>> {
    db.query("transcripts")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value()).gt("sequence", from)
        })
        .take(limit)
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListArgs {
    meeting_id: Id<Meetings>,
    from_sequence: Option<f64>,
    limit: Option<f64>,
}

/// @summary Lists a meeting's transcript chunks after a sequence cursor
///
/// @description The live transcript read: up to `limit` (default 100, at
/// most 500) chunks with `sequence > fromSequence` (exclusive, default 0) in
/// sequence order, and `nextSequence`, the cursor for the next call (the
/// last returned sequence, or `fromSequence` when nothing is newer). Reads
/// across all 5-minute buckets and any age (the original returned nothing
/// unless the current bucket had data). Subscribed, it re-runs whenever a
/// chunk is ingested into the meeting. An interim chunk (`isInterim`) is
/// superseded by its speaker's next chunk, which has a higher sequence.
/// Authorization: any participant, observers included (`FORBIDDEN` for
/// non-participants, `UNAUTHORIZED` without a token). Errors:
/// `VALIDATION_ERROR` for a negative cursor or a limit below 1.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "fromSequence": 0, "limit": 100}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "chunks": [
///       {
///         "_id": "b8bs6b2113q72ey4kng15bw56s974hzbwn70",
///         "sequence": 1,
///         "speakerId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///         "text": "Let's start with the hiring plan",
///         "confidence": 0.94,
///         "startMs": 1768469395000,
///         "endMs": 1768469398000,
///         "wordCount": 6,
///         "language": "en",
///         "createdAt": 1768469400000
///       }
///     ],
///     "nextSequence": 1
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "transcripts/queries:listTranscriptChunks",
    access = crate::meetings::observer_access,
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("fromSequence", v::optional(v::number())),
        ("limit", v::optional(v::number())),
    ]),
    returns = v::object([
        ("chunks", v::array(chunk_out_validator())),
        ("nextSequence", v::number()),
    ])
)]
async fn list_transcript_chunks(ctx: QueryCtx, args: ListArgs) -> Result<Value> {
    let from = check_cursor(args.from_sequence)?;
    let limit = check_limit(args.limit, 100, 500)?;
    let docs = after_sequence(&ctx.db, args.meeting_id, from, limit).await?;
    let next = docs
        .last()
        .and_then(|d| d.field("sequence").and_then(Value::as_f64))
        .unwrap_or(from);
    Ok(Value::object([
        (
            "chunks",
            Value::Array(docs.iter().map(chunk_value).collect()),
        ),
        ("nextSequence", Value::Float64(next)),
    ]))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SegmentsArgs {
    meeting_id: Id<Meetings>,
    limit: Option<f64>,
}

fn segment_doc_validator() -> Validator {
    with_system_fields("transcriptSegments", segment_fields())
}

async fn segments(db: &DbReader, meeting: Id<Meetings>, limit: Option<f64>) -> Result<Value> {
    let limit = match limit {
        None => 100,
        Some(l) if l.is_finite() => (l.floor().clamp(1.0, 1000.0)) as usize,
        Some(_) => return Err(Error::validation("limit must be a number")),
    };
    let docs = db
        .query("transcriptSegments")
        .with_index("by_meeting_time", |r| r.eq("meetingId", meeting.to_value()))
        .take(limit)
        .await?;
    Ok(Value::Array(
        docs.into_iter().map(Document::into_value).collect(),
    ))
}

/// @summary Lists a meeting's transcript segments
///
/// @description The speaker runs built when the meeting ended
/// (`transcripts/aggregation:aggregateTranscriptSegments`), in time order:
/// whole `transcriptSegments` documents `{_id, _creationTime, meetingId,
/// startMs, endMs, speakers, text, topics, sentiment?, createdAt}`, at most
/// `limit` (default 100, clamped to 1–1,000). Empty until the meeting has
/// ended and been aggregated. Authorization: any participant, observers
/// included (`FORBIDDEN` for non-participants, `UNAUTHORIZED` without a
/// token).
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "limit": 20}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": []}
/// ```
#[macros::function(
    query,
    path = "transcripts/queries:getTranscriptSegments",
    access = crate::meetings::observer_access,
    args = v::object([("meetingId", v::id("meetings")), ("limit", v::optional(v::number()))]),
    returns = v::array(segment_doc_validator())
)]
async fn get_transcript_segments(ctx: QueryCtx, args: SegmentsArgs) -> Result<Value> {
    segments(&ctx.db, args.meeting_id, args.limit).await
}

/// @summary Lists a meeting's transcript segments (internal)
///
/// @description Internal: `getTranscriptSegments` without the access check.
#[macros::function(
    internal_query,
    path = "transcripts/queries:getTranscriptSegmentsInternal",
    args = v::object([("meetingId", v::id("meetings")), ("limit", v::optional(v::number()))]),
    returns = v::array(segment_doc_validator())
)]
async fn get_transcript_segments_internal(ctx: QueryCtx, args: SegmentsArgs) -> Result<Value> {
    segments(&ctx.db, args.meeting_id, args.limit).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AfterArgs {
    meeting_id: Id<Meetings>,
    from_sequence: f64,
    limit: f64,
}

/// @summary Lists whole transcript documents after a sequence (internal)
///
/// @description Internal (aggregation, later consumers): up to `limit`
/// (clamped to 1–1,000) whole `transcripts` documents with `sequence >
/// fromSequence`, ascending.
#[macros::function(
    internal_query,
    path = "transcripts/queries:listTranscriptsAfterSequence",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("fromSequence", v::number()),
        ("limit", v::number()),
    ]),
    returns = v::array(v::any())
)]
async fn list_transcripts_after_sequence(ctx: QueryCtx, args: AfterArgs) -> Result<Value> {
    let from = check_cursor(Some(args.from_sequence))?;
    let limit = if args.limit.is_finite() {
        args.limit.floor().clamp(1.0, 1000.0) as usize
    } else {
        1
    };
    let docs = after_sequence(&ctx.db, args.meeting_id, from, limit).await?;
    Ok(Value::Array(
        docs.into_iter().map(Document::into_value).collect(),
    ))
}

/// Longest search query (characters).
pub const MAX_SEARCH_CHARS: usize = 500;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchArgs {
    meeting_id: Id<Meetings>,
    query: String,
    limit: Option<f64>,
}

/// @summary Searches a meeting's transcript by text
///
/// @description Full-text search (the `search_text` indexes, filtered by
/// meeting) over the meeting's final transcript chunks and its segments,
/// most relevant first: `{chunks, segments}`, each at most `limit`
/// (default 20, at most 100); chunks have the `listTranscriptChunks` shape,
/// segments are whole `transcriptSegments` documents (present once the
/// meeting ended). Terms match whole words; the last term also matches as
/// a prefix. Reactive: a subscribed search re-runs when matching text is
/// ingested. Authorization: any participant, observers included
/// (`FORBIDDEN` for non-participants, `UNAUTHORIZED` without a token).
/// Errors: `VALIDATION_ERROR` for an empty query or one over 500
/// characters.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "query": "hiring"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "chunks": [
///       {
///         "_id": "b8bs6b2113q72ey4kng15bw56s974hzbwn70",
///         "sequence": 1,
///         "speakerId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///         "text": "Let's start with the hiring plan",
///         "confidence": 0.94,
///         "startMs": 1768469395000,
///         "endMs": 1768469398000,
///         "wordCount": 6,
///         "language": "en",
///         "createdAt": 1768469400000
///       }
///     ],
///     "segments": []
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "transcripts/queries:searchTranscripts",
    access = crate::meetings::observer_access,
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("query", v::string()),
        ("limit", v::optional(v::number())),
    ]),
    returns = v::object([
        ("chunks", v::array(chunk_out_validator())),
        ("segments", v::array(segment_doc_validator())),
    ])
)]
async fn search_transcripts(ctx: QueryCtx, args: SearchArgs) -> Result<serde_json::Value> {
    let text = args.query.trim();
    if text.is_empty() {
        return Err(Error::validation("Search query cannot be empty"));
    }
    if text.chars().count() > MAX_SEARCH_CHARS {
        return Err(Error::validation(format!(
            "Search query is too long (at most {MAX_SEARCH_CHARS} characters)"
        )));
    }
    let limit = check_limit(args.limit, 20, 100)?;
    let meeting = args.meeting_id;
    let chunks = ctx
        .db
        .query("transcripts")
        .with_search_index("search_text", |q| {
            q.search("text", text).eq("meetingId", meeting.to_value())
        })
        .filter(|d| d.field("isInterim") != Some(&Value::Boolean(true)))
        .take(limit)
        .await?;
    let segments = ctx
        .db
        .query("transcriptSegments")
        .with_search_index("search_text", |q| {
            q.search("text", text).eq("meetingId", meeting.to_value())
        })
        .take(limit)
        .await?;
    Ok(json!({
        "chunks": chunks.iter().map(chunk_json).collect::<Vec<_>>(),
        "segments": segments.into_iter().map(|d| d.into_value().to_json()).collect::<Vec<_>>(),
    }))
}

/// Registers `transcripts/queries:*`.
pub fn register(r: &mut Registry) {
    r.register(list_transcript_chunks_spec());
    r.register(get_transcript_segments_spec());
    r.register(get_transcript_segments_internal_spec());
    r.register(list_transcripts_after_sequence_spec());
    r.register(search_transcripts_spec());
}
