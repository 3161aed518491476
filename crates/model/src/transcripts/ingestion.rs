//! `transcripts/ingestion:*`: ingesting chunks (one, a batch, coalesced),
//! the compatibility readers the original declared as mutations, and the
//! daily retention of raw chunks.
//!
//! Who may ingest: participants and hosts of an *active* meeting. Observers
//! may not (`INSUFFICIENT_PERMISSIONS`): they only read, as for chat and
//! state tracking, and the original's permission table gives them only
//! `read` on transcripts (its ingestion accepted any role, which let a
//! read-only observer put words in the transcript).
//!
//! Cost: one chunk is one mutation (the counter, the chunk, the meeting
//! state and two rate-limit windows); a batch of N chunks is still one
//! mutation and one commit, so a burst costs a bounded number of commits.

use std::time::{Duration, Instant};

use database::Document;
use errors::{Error, ErrorCode, Result};
use runtime::{MutationCtx, QueryCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

use super::chunks::{self, ChunkInput, IngestSource, Prepared, chunk_validator};
use super::queries::{chunk_json, chunk_out_validator};
use super::{CHUNK_RETENTION_MS, DEFAULT_COALESCING_WINDOW_MS, MAX_BATCH_CHUNKS, RETENTION_BATCH};
use crate::auth::MeetingRole;
use crate::ids::{Id, Meetings};
use crate::meetings::{Access, MeetingStatus, load_meeting, require_access};
use crate::system::audit::{self, AuditEntry};
use crate::system::rate_limit::{self, RateLimit};

/// Rate-limit action of single chunks, burst window.
pub const BURST_ACTION: &str = "transcriptIngestionBurst";
/// At most 30 chunks per second per user (bursts of real speech with
/// interim hypotheses).
pub const BURST_LIMIT: RateLimit = RateLimit {
    max: 30,
    window_ms: 1_000.0,
};
/// Rate-limit action of single chunks, sustained window.
pub const SUSTAINED_ACTION: &str = "transcriptIngestion";
/// At most 1,200 chunks per minute per user (20 per second sustained).
pub const SUSTAINED_LIMIT: RateLimit = RateLimit::per_minute(1_200);
/// Rate-limit action of public batches.
pub const BATCH_ACTION: &str = "transcriptBatchIngestion";
/// At most 10 batches per second per user.
pub const BATCH_LIMIT: RateLimit = RateLimit {
    max: 10,
    window_ms: 1_000.0,
};
/// At most 300 batches per minute per user.
pub const BATCH_SUSTAINED_LIMIT: RateLimit = RateLimit::per_minute(300);
/// The retention mutation of raw chunks (daily cron).
pub const CLEANUP_PATH: &str = "transcripts/ingestion:cleanupOldTranscripts";

fn require_active(access: &Access) -> Result<()> {
    if access.meeting.state != MeetingStatus::Active {
        return Err(Error::app(
            ErrorCode::MeetingNotActive,
            format!(
                "Meeting is not active (it is {})",
                access.meeting.state.as_str()
            ),
        ));
    }
    Ok(())
}

/// Consumes one slot of both windows; returns the smaller remainder.
async fn consume_pair(
    ctx: &MutationCtx,
    access: &Access,
    limits: [(&str, RateLimit); 2],
) -> Result<f64> {
    let now = ctx.now_ms();
    let mut remaining = u32::MAX;
    for (action, limit) in limits {
        let status = rate_limit::consume(&ctx.db, access.user.id, action, limit, now).await?;
        remaining = remaining.min(status.remaining);
    }
    Ok(f64::from(remaining))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IngestArgs {
    meeting_id: Id<Meetings>,
    #[serde(flatten)]
    chunk: ChunkInput,
}

/// @summary Ingests one transcript chunk into an active meeting
///
/// @description Stores a chunk of live speech with the meeting's next
/// `sequence` (dense, 1, 2, 3, … per meeting; concurrent ingests are
/// serialized) and its 5-minute `bucketMs` (from `startTime` when that is
/// epoch milliseconds, else from the server time). `text` is trimmed
/// (1–10,000 characters); `confidence` in [0, 1]; `startTime < endTime`,
/// both finite non-negative milliseconds, at most 10 minutes apart, not in
/// the future; `language` defaults to `en`; `speakerId` defaults to the
/// caller's user id and may be any label. An interim chunk
/// (`isInterim: true`) is replaced by the next chunk of the same
/// `utteranceId` — or, without one, by the same speaker's next chunk: the
/// interim row is deleted and the replacement gets a new sequence, so live
/// readers past the interim still receive the final text. A final chunk
/// spoken by the caller (no `speakerId`, or the caller's id) adds
/// `endTime − startTime` to the caller's speaking time; any chunk resets the
/// meeting's lull state. Authorization: a participant or host
/// (`INSUFFICIENT_PERMISSIONS` for observers, `FORBIDDEN` for
/// non-participants, `UNAUTHORIZED` without a token). Errors:
/// `MEETING_NOT_ACTIVE` unless the meeting is active, then
/// `VALIDATION_ERROR`, then `RATE_LIMIT_EXCEEDED` over 30 chunks per second
/// or 1,200 per minute per user (`rateLimitRemaining` is what is left of
/// the tighter window). Live `listTranscriptChunks` queries update on
/// commit. About six writes.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "text": "Let's start with the hiring plan",
///     "confidence": 0.94,
///     "startTime": 1768469395000,
///     "endTime": 1768469398000
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {"success": true, "sequence": 1, "bucketMs": 1768469100000, "rateLimitRemaining": 29}
/// }
/// ```
///
/// @example request-error
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "text": "   ",
///     "confidence": 0.94,
///     "startTime": 1768469395000,
///     "endTime": 1768469398000
///   }
/// }
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "Transcript text cannot be empty",
///   "errorData": {"code": "VALIDATION_ERROR", "message": "Transcript text cannot be empty", "statusCode": 400}
/// }
/// ```
#[macros::function(
    mutation,
    path = "transcripts/ingestion:ingestTranscriptChunk",
    args = {
        let mut fields = vec![("meetingId", v::id("meetings"))];
        fields.extend(chunks::chunk_fields());
        v::object(fields)
    },
    returns = v::object([
        ("success", v::boolean()),
        ("sequence", v::number()),
        ("bucketMs", v::number()),
        ("rateLimitRemaining", v::number()),
    ])
)]
async fn ingest_transcript_chunk(ctx: MutationCtx, args: IngestArgs) -> Result<serde_json::Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    require_active(&access)?;
    let now = ctx.now_ms();
    let prepared = chunks::prepare(&args.chunk, now)?;
    let remaining = consume_pair(
        &ctx,
        &access,
        [
            (BURST_ACTION, BURST_LIMIT),
            (SUSTAINED_ACTION, SUSTAINED_LIMIT),
        ],
    )
    .await?;
    let stored = chunks::store(
        &ctx.db,
        access.meeting.id,
        vec![prepared],
        IngestSource::Client(access.user.id),
        now,
    )
    .await?;
    let first = stored
        .first()
        .ok_or_else(|| Error::internal("chunk was not stored"))?;
    Ok(json!({
        "success": true,
        "sequence": first.sequence,
        "bucketMs": first.bucket_ms,
        "rateLimitRemaining": remaining,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicBatchArgs {
    meeting_id: Id<Meetings>,
    chunks: Vec<ChunkInput>,
    coalescing_window_ms: Option<f64>,
}

fn check_window(window: Option<f64>) -> Result<Option<f64>> {
    match window {
        Some(w) if !w.is_finite() || !(0.0..=10_000.0).contains(&w) => Err(Error::validation(
            "coalescingWindowMs must be between 0 and 10000",
        )),
        w => Ok(w),
    }
}

/// @summary Ingests a batch of transcript chunks in one commit
///
/// @description For clients that buffer speech (or relay a provider's
/// stream): stores 1–200 chunks, sorted by `startTime`, in one mutation —
/// each validated as in `ingestTranscriptChunk`, with its own sequence,
/// interim replacement and speaking credit to the caller. With
/// `coalescingWindowMs` (0–10,000), adjacent final chunks of one speaker,
/// language and utterance at most that far apart are merged first (text
/// joined, mean confidence). All or nothing: one invalid chunk fails the
/// batch with `VALIDATION_ERROR` naming its index. Returns `{success,
/// processed, sequences, rateLimitRemaining}`. Authorization: a
/// participant or host (`INSUFFICIENT_PERMISSIONS` for observers,
/// `FORBIDDEN` for non-participants, `UNAUTHORIZED` without a token).
/// Errors: `MEETING_NOT_ACTIVE` unless the meeting is active,
/// `VALIDATION_ERROR`, `RATE_LIMIT_EXCEEDED` over 10 batches per second or
/// 300 per minute per user.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "chunks": [
///       {"text": "First the hiring plan,", "confidence": 0.9, "startTime": 1768469390000, "endTime": 1768469392000},
///       {"text": "then the Q1 roadmap.", "confidence": 0.8, "startTime": 1768469392100, "endTime": 1768469394000}
///     ]
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {"success": true, "processed": 2, "sequences": [1, 2], "rateLimitRemaining": 9}
/// }
/// ```
#[macros::function(
    mutation,
    path = "transcripts/ingestion:ingestTranscriptBatch",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("chunks", v::array(chunk_validator())),
        ("coalescingWindowMs", v::optional(v::number())),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("processed", v::number()),
        ("sequences", v::array(v::number())),
        ("rateLimitRemaining", v::number()),
    ])
)]
async fn ingest_transcript_batch(
    ctx: MutationCtx,
    args: PublicBatchArgs,
) -> Result<serde_json::Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    require_active(&access)?;
    if args.chunks.is_empty() || args.chunks.len() > MAX_BATCH_CHUNKS {
        return Err(Error::validation(format!(
            "A batch holds 1 to {MAX_BATCH_CHUNKS} chunks"
        )));
    }
    let window = check_window(args.coalescing_window_ms)?;
    let now = ctx.now_ms();
    let mut input = args.chunks;
    input = match window {
        Some(w) => chunks::coalesce(input, w),
        None => {
            input.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
            input
        }
    };
    let mut prepared = Vec::with_capacity(input.len());
    for (i, chunk) in input.iter().enumerate() {
        prepared.push(
            chunks::prepare(chunk, now)
                .map_err(|e| Error::validation(format!("chunks[{i}]: {}", e.message())))?,
        );
    }
    let remaining = consume_pair(
        &ctx,
        &access,
        [
            (BATCH_ACTION, BATCH_LIMIT),
            (BATCH_ACTION, BATCH_SUSTAINED_LIMIT),
        ],
    )
    .await?;
    let stored = chunks::store(
        &ctx.db,
        access.meeting.id,
        prepared,
        IngestSource::Client(access.user.id),
        now,
    )
    .await?;
    Ok(json!({
        "success": true,
        "processed": stored.len(),
        "sequences": stored.iter().map(|s| s.sequence).collect::<Vec<_>>(),
        "rateLimitRemaining": remaining,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchArgs {
    meeting_id: Id<Meetings>,
    chunks: Vec<ChunkInput>,
    batch_id: Option<String>,
}

/// Internal ingestion of a trusted source: the meeting must exist and be
/// active or concluded (providers deliver final text shortly after the
/// call ends); empty texts are dropped uncounted and invalid chunks are
/// counted in `failed` (the original's semantics).
async fn ingest_provider(
    ctx: &MutationCtx,
    meeting: Id<Meetings>,
    chunks_in: Vec<ChunkInput>,
) -> Result<(usize, usize)> {
    let m = load_meeting(&ctx.db, meeting).await?;
    if !matches!(m.state, MeetingStatus::Active | MeetingStatus::Concluded) {
        return Err(Error::app(
            ErrorCode::MeetingNotActive,
            format!("Meeting is not active (it is {})", m.state.as_str()),
        ));
    }
    if chunks_in.len() > 5 * MAX_BATCH_CHUNKS {
        return Err(Error::validation(format!(
            "A batch holds at most {} chunks",
            5 * MAX_BATCH_CHUNKS
        )));
    }
    let now = ctx.now_ms();
    let mut input: Vec<ChunkInput> = chunks_in
        .into_iter()
        .filter(|c| !c.text.trim().is_empty())
        .collect();
    input.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    let mut failed = 0;
    let prepared: Vec<Prepared> = input
        .iter()
        .filter_map(|c| match chunks::prepare(c, now) {
            Ok(p) => Some(p),
            Err(_) => {
                failed += 1;
                None
            }
        })
        .collect();
    let stored = chunks::store(&ctx.db, meeting, prepared, IngestSource::Provider, now).await?;
    Ok((stored.len(), failed))
}

/// @summary Ingests a batch of chunks from a trusted source
///
/// @description Internal (transcription webhooks, relays): stores the
/// chunks in one transaction, sorted by start time, each with its own
/// sequence; a chunk whose `speakerId` is a participant's user id credits
/// that user's speaking time. The meeting must be active or concluded
/// (`MEETING_NOT_ACTIVE`; late final text after the end is kept); at most
/// 1,000 chunks. Empty texts are dropped uncounted; invalid chunks count in
/// `failed`. Returns `{success: processed > 0, processed, failed, batchId,
/// performance}`.
#[macros::function(
    internal_mutation,
    path = "transcripts/ingestion:batchIngestTranscriptChunks",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("chunks", v::array(chunk_validator())),
        ("batchId", v::optional(v::string())),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("processed", v::number()),
        ("failed", v::number()),
        ("batchId", v::string()),
        ("performance", v::object([
            ("processingTimeMs", v::number()),
            ("chunksPerSecond", v::number()),
        ])),
    ])
)]
async fn batch_ingest(ctx: MutationCtx, args: BatchArgs) -> Result<serde_json::Value> {
    let started = Instant::now();
    let (processed, failed) = ingest_provider(&ctx, args.meeting_id, args.chunks).await?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let batch_id = args
        .batch_id
        .unwrap_or_else(|| format!("batch_{}_{}", ctx.now_ms(), args.meeting_id));
    Ok(json!({
        "success": processed > 0,
        "processed": processed,
        "failed": failed,
        "batchId": batch_id,
        "performance": {
            "processingTimeMs": elapsed,
            "chunksPerSecond": if elapsed > 0.0 { processed as f64 * 1000.0 / elapsed } else { 0.0 },
        },
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CoalescedArgs {
    meeting_id: Id<Meetings>,
    chunks: Vec<ChunkInput>,
    coalescing_window_ms: Option<f64>,
}

/// @summary Coalesces a burst of chunks and ingests it in one commit
///
/// @description Internal: merges adjacent final chunks of one speaker,
/// language and utterance at most `coalescingWindowMs` (default 250 ms)
/// apart — text joined with a space, the later end time, the true mean
/// confidence — then ingests the result like `batchIngestTranscriptChunks`
/// in the same transaction (the original ran a nested mutation). Returns
/// `{success, processed, coalesced, performance: {originalChunks,
/// coalescedChunks, compressionRatio}}`.
#[macros::function(
    internal_mutation,
    path = "transcripts/ingestion:coalescedIngestTranscriptChunks",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("chunks", v::array(chunk_validator())),
        ("coalescingWindowMs", v::optional(v::number())),
    ]),
    returns = v::object([
        ("success", v::boolean()),
        ("processed", v::number()),
        ("coalesced", v::number()),
        ("performance", v::object([
            ("originalChunks", v::number()),
            ("coalescedChunks", v::number()),
            ("compressionRatio", v::number()),
        ])),
    ])
)]
async fn coalesced_ingest(ctx: MutationCtx, args: CoalescedArgs) -> Result<serde_json::Value> {
    let window = check_window(args.coalescing_window_ms)?.unwrap_or(DEFAULT_COALESCING_WINDOW_MS);
    let original = args.chunks.len();
    let merged = chunks::coalesce(args.chunks, window);
    let coalesced = merged.len();
    let (processed, _) = ingest_provider(&ctx, args.meeting_id, merged).await?;
    Ok(json!({
        "success": processed > 0,
        "processed": processed,
        "coalesced": coalesced,
        "performance": {
            "originalChunks": original,
            "coalescedChunks": coalesced,
            "compressionRatio": if original > 0 { coalesced as f64 / original as f64 } else { 1.0 },
        },
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChunksArgs {
    meeting_id: Id<Meetings>,
    from_sequence: Option<f64>,
    limit: Option<f64>,
    bucket_ms: Option<f64>,
}

/// @summary Reads transcript chunks after a sequence (compatibility)
///
/// @description Kept as a mutation at its original path for existing
/// callers; live clients use the query `transcripts/queries:listTranscriptChunks`.
/// Returns up to `limit` (default 100, at most 200) chunks with `sequence >
/// fromSequence` (default 0) in sequence order, across all buckets (the
/// original returned nothing unless the current 5-minute bucket had data);
/// with `bucketMs`, only that bucket's. Authorization: any participant,
/// observers included (`FORBIDDEN` for non-participants, `UNAUTHORIZED`
/// without a token). Writes nothing.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "fromSequence": 0, "limit": 50}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": [
///     {
///       "_id": "b8bs6b2113q72ey4kng15bw56s974hzbwn70",
///       "sequence": 1,
///       "speakerId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///       "text": "Let's start with the hiring plan",
///       "confidence": 0.94,
///       "startMs": 1768469395000,
///       "endMs": 1768469398000,
///       "wordCount": 6,
///       "language": "en",
///       "createdAt": 1768469400000
///     }
///   ]
/// }
/// ```
#[macros::function(
    mutation,
    path = "transcripts/ingestion:getTranscriptChunks",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("fromSequence", v::optional(v::number())),
        ("limit", v::optional(v::number())),
        ("bucketMs", v::optional(v::number())),
    ]),
    returns = v::array(chunk_out_validator())
)]
async fn get_transcript_chunks(ctx: MutationCtx, args: ChunksArgs) -> Result<serde_json::Value> {
    require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    let from = super::queries::check_cursor(args.from_sequence)?;
    let limit = super::queries::check_limit(args.limit, 100, 200)?;
    let meeting = args.meeting_id;
    let docs = match args.bucket_ms {
        Some(bucket) => {
            ctx.db
                .query("transcripts")
                .with_index("by_meeting_bucket_seq", |r| {
                    r.eq("meetingId", meeting.to_value())
                        .eq("bucketMs", bucket)
                        .gt("sequence", from)
                })
                .take(limit)
                .await?
        }
        None => super::queries::after_sequence(&ctx.db, meeting, from, limit).await?,
    };
    Ok(serde_json::Value::Array(
        docs.iter().map(chunk_json).collect(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingArgs {
    meeting_id: Id<Meetings>,
}

/// Every chunk of a meeting, in sequence order.
async fn all_chunks(db: &runtime::DbReader, meeting: Id<Meetings>) -> Result<Vec<Document>> {
    db.query("transcripts")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value())
        })
        .collect()
        .await
}

/// @summary Computes statistics of a meeting's transcript (compatibility mutation)
///
/// @description Kept as a mutation at its original path. Returns
/// `{totalChunks, totalWords, averageConfidence, duration, speakers,
/// languages, bucketCount}` over the meeting's stored chunks: `duration` is
/// the latest end minus the earliest start (0 without chunks), `speakers`
/// and `languages` are sorted distinct values. Authorization: any
/// participant, observers included (`FORBIDDEN` for non-participants,
/// `UNAUTHORIZED` without a token). Reads every chunk of the meeting;
/// writes nothing.
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
///     "totalChunks": 1,
///     "totalWords": 6,
///     "averageConfidence": 0.94,
///     "duration": 3000,
///     "speakers": ["f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0"],
///     "languages": ["en"],
///     "bucketCount": 1
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "transcripts/ingestion:getTranscriptStats",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::object([
        ("totalChunks", v::number()),
        ("totalWords", v::number()),
        ("averageConfidence", v::number()),
        ("duration", v::number()),
        ("speakers", v::array(v::string())),
        ("languages", v::array(v::string())),
        ("bucketCount", v::number()),
    ])
)]
async fn get_transcript_stats(ctx: MutationCtx, args: MeetingArgs) -> Result<serde_json::Value> {
    require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    let docs = all_chunks(&ctx.db, args.meeting_id).await?;
    let num = |d: &Document, f: &str| d.field(f).and_then(Value::as_f64).unwrap_or(0.0);
    let text = |d: &Document, f: &str| d.field(f).and_then(Value::as_str).map(str::to_owned);
    let mut speakers = std::collections::BTreeSet::new();
    let mut languages = std::collections::BTreeSet::new();
    let mut buckets = std::collections::BTreeSet::new();
    let (mut words, mut conf) = (0.0, 0.0);
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for d in &docs {
        words += num(d, "wordCount");
        conf += num(d, "confidence");
        first = first.min(num(d, "startMs"));
        last = last.max(num(d, "endMs"));
        speakers.extend(text(d, "speakerId"));
        languages.extend(text(d, "language"));
        buckets.insert(num(d, "bucketMs").to_bits());
    }
    let n = docs.len();
    Ok(json!({
        "totalChunks": n,
        "totalWords": words,
        "averageConfidence": if n > 0 { conf / n as f64 } else { 0.0 },
        "duration": if n > 0 { (last - first).max(0.0) } else { 0.0 },
        "speakers": speakers,
        "languages": languages,
        "bucketCount": buckets.len(),
    }))
}

/// @summary Counts a meeting's stored transcript chunks
///
/// @description Internal: the number of `transcripts` rows of the meeting.
#[macros::function(
    internal_query,
    path = "transcripts/ingestion:countTranscriptsForMeeting",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::number()
)]
async fn count_transcripts(ctx: QueryCtx, args: MeetingArgs) -> Result<f64> {
    Ok(all_chunks(&ctx.db, args.meeting_id).await?.len() as f64)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CleanupArgs {
    older_than_ms: Option<f64>,
    meeting_id: Option<Id<Meetings>>,
}

/// @summary Deletes transcript chunks past their retention
///
/// @description Internal, run daily by a cron: deletes up to 500 chunks
/// created more than `olderThanMs` (default 90 days) ago — of one meeting
/// with `meetingId` — and, when it deleted a full batch, schedules itself
/// again with the same arguments, so no run is an unbounded transaction
/// (the original deleted everything in one). Records an audit entry
/// (`cleanup_transcripts`) when it deleted something. Returns `{deleted}`.
#[macros::function(
    internal_mutation,
    path = "transcripts/ingestion:cleanupOldTranscripts",
    args = v::object([
        ("olderThanMs", v::optional(v::number())),
        ("meetingId", v::optional(v::id("meetings"))),
    ]),
    returns = v::object([("deleted", v::number())])
)]
async fn cleanup_old_transcripts(ctx: MutationCtx, args: CleanupArgs) -> Result<serde_json::Value> {
    let older = args.older_than_ms.unwrap_or(CHUNK_RETENTION_MS);
    if !older.is_finite() || older < 0.0 {
        return Err(Error::validation(
            "olderThanMs must be a non-negative number",
        ));
    }
    let now = ctx.now_ms();
    let cutoff = now - older;
    // No `createdAt` index: a chunk's `createdAt` is the clock reading of
    // the transaction that inserted it, and so is its `_creationTime` (same
    // clock; inserts within one millisecond are nudged ~1 µs apart), so the built-in
    // creation-time index orders chunks the same way. Within a meeting,
    // `sequence` is taken from the meeting's counter in commit order, so the
    // oldest chunks are a prefix of the sequence order: the batch is the
    // first chunks by sequence, cut at the first one that is not old enough.
    // Two index entries fewer per ingested chunk.
    let docs = match args.meeting_id {
        Some(meeting) => {
            let mut docs = ctx
                .db
                .query("transcripts")
                .with_index("by_meeting_sequence", |r| {
                    r.eq("meetingId", meeting.to_value())
                })
                .take(RETENTION_BATCH)
                .await?;
            let old = docs
                .iter()
                .take_while(|d| {
                    d.field("createdAt")
                        .and_then(Value::as_f64)
                        .is_some_and(|t| t < cutoff)
                })
                .count();
            docs.truncate(old);
            docs
        }
        None => {
            ctx.db
                .query("transcripts")
                .with_index("by_creation_time", |r| r.lt("_creationTime", cutoff))
                .take(RETENTION_BATCH)
                .await?
        }
    };
    for doc in &docs {
        ctx.db.delete(doc.id()).await?;
    }
    if docs.len() == RETENTION_BATCH {
        let mut again = json!({ "olderThanMs": older });
        if let Some(meeting) = args.meeting_id {
            again["meetingId"] = json!(meeting);
        }
        ctx.scheduler
            .run_after(Duration::ZERO, CLEANUP_PATH, again)
            .await?;
    }
    if !docs.is_empty() {
        audit::record(
            &ctx.db,
            AuditEntry::new("transcription", "transcripts", "cleanup_transcripts", now)
                .with("deleted", docs.len())
                .with("olderThanMs", older),
        )
        .await?;
    }
    Ok(json!({ "deleted": docs.len() }))
}

/// Registers `transcripts/ingestion:*` and the daily retention cron.
pub fn register(r: &mut Registry) {
    r.register(ingest_transcript_chunk_spec());
    r.register(ingest_transcript_batch_spec());
    r.register(batch_ingest_spec());
    r.register(coalesced_ingest_spec());
    r.register(get_transcript_chunks_spec());
    r.register(get_transcript_stats_spec());
    r.register(count_transcripts_spec());
    r.register(cleanup_old_transcripts_spec());
    r.cron(
        "transcripts: delete chunks older than 90 days",
        runtime::CronSchedule::Interval(Duration::from_secs(86_400)),
        CLEANUP_PATH,
        Value::object([("olderThanMs".to_owned(), Value::Float64(CHUNK_RETENTION_MS))]),
    );
}
