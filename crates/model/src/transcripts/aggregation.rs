//! `transcripts/aggregation:*`: speaker runs of final chunks into
//! `transcriptSegments` once a meeting has ended, and their weekly
//! retention.
//!
//! [`Aggregator`] folds chunks in sequence order: a new segment starts on a
//! speaker change or a gap over 5 seconds, interim chunks are skipped, and
//! the open segment is carried from one page of chunks to the next (the
//! original flushed it at every 500-chunk page boundary, splitting a
//! speaker's run in two). The job first deletes the meeting's segments, so
//! a re-run rebuilds the same segments.

use std::time::Duration;

use errors::{Error, Result};
use runtime::{ActionCtx, MutationCtx, Registry};
use serde::{Deserialize, Serialize};
use serde_json::json;
use values::{Value, v};

use super::{RETENTION_BATCH, SEGMENT_RETENTION_MS};
use crate::ids::{Id, Meetings};
use crate::system::audit::{self, AuditEntry};

/// A gap longer than this (ms) starts a new segment.
pub const SEGMENT_GAP_MS: f64 = 5_000.0;
/// Chunks read per page.
pub const DEFAULT_PAGE_SIZE: usize = 500;
/// Segments written per mutation on the batched path.
pub const WRITE_BATCH: usize = 100;
/// Up to this many segments, the old ones are replaced by the new ones in
/// one transaction (so concurrent runs cannot interleave and duplicate
/// segments; the last commit wins with the same result). Longer meetings
/// fall back to clear-then-write batches.
pub const ATOMIC_REPLACE_MAX: usize = 4_000;
/// Keywords reported as a segment's topics when they occur in its text.
pub const TOPIC_KEYWORDS: [&str; 7] = [
    "action",
    "follow-up",
    "deadline",
    "risk",
    "plan",
    "decision",
    "owner",
];
/// The aggregation action's path.
pub const AGGREGATE_PATH: &str = "transcripts/aggregation:aggregateTranscriptSegments";
/// The segment retention mutation (weekly cron).
pub const CLEANUP_PATH: &str = "transcripts/aggregation:cleanupOldTranscriptSegments";
/// Delay between a meeting's end and its aggregation (late provider text).
pub const AGGREGATE_DELAY: Duration = Duration::from_secs(5);

/// A built segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// Start of the first chunk (ms).
    pub start_ms: f64,
    /// End of the last chunk (ms).
    pub end_ms: f64,
    /// The run's speaker (empty when chunks had none).
    pub speakers: Vec<String>,
    /// Texts joined with spaces.
    pub text: String,
    /// [`TOPIC_KEYWORDS`] found in the text.
    pub topics: Vec<String>,
}

/// Folds chunks (in sequence order) into segments; see the module docs.
#[derive(Debug, Default)]
pub struct Aggregator {
    open: Option<(Option<String>, Segment)>,
    done: Vec<Segment>,
}

impl Aggregator {
    /// Adds one chunk.
    pub fn push(&mut self, speaker: Option<&str>, text: &str, start: f64, end: f64, interim: bool) {
        let text = text.trim();
        if interim || text.is_empty() {
            return;
        }
        if let Some((who, seg)) = &mut self.open
            && who.as_deref() == speaker
            && start - seg.end_ms <= SEGMENT_GAP_MS
        {
            seg.text.push(' ');
            seg.text.push_str(text);
            seg.end_ms = seg.end_ms.max(end);
            return;
        }
        self.flush();
        self.open = Some((
            speaker.map(str::to_owned),
            Segment {
                start_ms: start,
                end_ms: end,
                speakers: speaker.map(str::to_owned).into_iter().collect(),
                text: text.to_owned(),
                topics: Vec::new(),
            },
        ));
    }

    fn flush(&mut self) {
        if let Some((_, mut seg)) = self.open.take() {
            let lower = seg.text.to_lowercase();
            seg.topics = TOPIC_KEYWORDS
                .iter()
                .filter(|k| lower.contains(*k))
                .map(|k| (*k).to_owned())
                .collect();
            self.done.push(seg);
        }
    }

    /// Closes the open segment and returns all segments.
    pub fn finish(mut self) -> Vec<Segment> {
        self.flush();
        self.done
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingArgs {
    meeting_id: Id<Meetings>,
}

/// @summary Deletes a batch of a meeting's transcript segments
///
/// @description Internal: deletes up to 500 of the meeting's segments and
/// returns how many it deleted (call again until it returns less than 500).
#[macros::function(
    internal_mutation,
    path = "transcripts/aggregation:clearTranscriptSegmentsForMeeting",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::number()
)]
async fn clear_segments(ctx: MutationCtx, args: MeetingArgs) -> Result<f64> {
    let docs = ctx
        .db
        .query("transcriptSegments")
        .with_index("by_meeting", |r| {
            r.eq("meetingId", args.meeting_id.to_value())
        })
        .take(RETENTION_BATCH)
        .await?;
    for d in &docs {
        ctx.db.delete(d.id()).await?;
    }
    Ok(docs.len() as f64)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteArgs {
    meeting_id: Id<Meetings>,
    segments: Vec<SegmentIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SegmentIn {
    start_ms: f64,
    end_ms: f64,
    speakers: Vec<String>,
    text: String,
    topics: Vec<String>,
    sentiment: Option<f64>,
}

/// @summary Writes a batch of transcript segments
///
/// @description Internal: inserts the segments (at most 500) of the
/// meeting and returns how many it inserted.
#[macros::function(
    internal_mutation,
    path = "transcripts/aggregation:writeTranscriptSegmentsBatch",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("segments", v::array(v::object([
            ("startMs", v::number()),
            ("endMs", v::number()),
            ("speakers", v::array(v::string())),
            ("text", v::string()),
            ("topics", v::array(v::string())),
            ("sentiment", v::optional(v::number())),
        ]))),
    ]),
    returns = v::number()
)]
async fn write_segments(ctx: MutationCtx, args: WriteArgs) -> Result<f64> {
    if args.segments.len() > RETENTION_BATCH {
        return Err(Error::validation(format!(
            "At most {RETENTION_BATCH} segments per batch"
        )));
    }
    insert_segments(&ctx, args.meeting_id, &args.segments, ctx.now_ms()).await?;
    Ok(args.segments.len() as f64)
}

/// @summary Replaces a meeting's transcript segments in one transaction
///
/// @description Internal: deletes every segment of the meeting and inserts
/// `segments` (at most 4,000) atomically, then records an audit entry
/// (`aggregate_segments`). Two aggregation runs for one meeting serialize
/// on it, so they cannot leave duplicated segments. Returns how many it
/// inserted.
#[macros::function(
    internal_mutation,
    path = "transcripts/aggregation:replaceTranscriptSegments",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("segments", v::array(v::object([
            ("startMs", v::number()),
            ("endMs", v::number()),
            ("speakers", v::array(v::string())),
            ("text", v::string()),
            ("topics", v::array(v::string())),
            ("sentiment", v::optional(v::number())),
        ]))),
    ]),
    returns = v::number()
)]
async fn replace_segments(ctx: MutationCtx, args: WriteArgs) -> Result<f64> {
    if args.segments.len() > ATOMIC_REPLACE_MAX {
        return Err(Error::validation(format!(
            "At most {ATOMIC_REPLACE_MAX} segments per replacement"
        )));
    }
    let old = ctx
        .db
        .query("transcriptSegments")
        .with_index("by_meeting", |r| {
            r.eq("meetingId", args.meeting_id.to_value())
        })
        .collect()
        .await?;
    for d in &old {
        ctx.db.delete(d.id()).await?;
    }
    let now = ctx.now_ms();
    insert_segments(&ctx, args.meeting_id, &args.segments, now).await?;
    audit::record(
        &ctx.db,
        AuditEntry::new(
            "transcription",
            "transcriptSegments",
            "aggregate_segments",
            now,
        )
        .with("meetingId", args.meeting_id.to_string())
        .with("replaced", old.len())
        .with("segments", args.segments.len()),
    )
    .await?;
    Ok(args.segments.len() as f64)
}

async fn insert_segments(
    ctx: &MutationCtx,
    meeting: Id<Meetings>,
    segments: &[SegmentIn],
    now: f64,
) -> Result<()> {
    for s in segments {
        let mut doc = json!({
            "meetingId": meeting,
            "startMs": s.start_ms,
            "endMs": s.end_ms,
            "speakers": s.speakers,
            "text": s.text,
            "topics": s.topics,
            "createdAt": now,
        });
        if let Some(x) = s.sentiment {
            doc["sentiment"] = json!(x);
        }
        ctx.db.insert("transcriptSegments", doc).await?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AggregateArgs {
    meeting_id: Id<Meetings>,
    page_size: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChunkRow {
    sequence: f64,
    speaker_id: Option<String>,
    text: String,
    start_ms: f64,
    end_ms: f64,
    is_interim: Option<bool>,
}

/// @summary Builds a meeting's transcript segments from its chunks
///
/// @description Internal action, scheduled 5 seconds after a meeting ends
/// (`endMeeting`, `autoEndMeeting`): pages through the meeting's chunks in
/// sequence order (`pageSize`, default 500), folds final chunks into
/// speaker runs — a new segment on a speaker change or a gap over 5 s, the
/// open run carried across pages — with the keyword topics {action,
/// follow-up, deadline, risk, plan, decision, owner}, and replaces the
/// meeting's segments with them in one transaction (up to 4,000 segments;
/// longer meetings are cleared and written in batches of 100). Re-running
/// rebuilds the same segments, and concurrent runs cannot duplicate them.
/// Returns `{success, segmentsCreated}`.
#[macros::function(
    internal_action,
    path = "transcripts/aggregation:aggregateTranscriptSegments",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("pageSize", v::optional(v::number())),
    ]),
    returns = v::object([("success", v::boolean()), ("segmentsCreated", v::number())])
)]
async fn aggregate(ctx: ActionCtx, args: AggregateArgs) -> Result<serde_json::Value> {
    let meeting = args.meeting_id;
    let page = match args.page_size {
        None => DEFAULT_PAGE_SIZE,
        Some(p) if p.is_finite() && p >= 1.0 => (p as usize).min(1000),
        Some(_) => return Err(Error::validation("pageSize must be at least 1")),
    };
    let mut agg = Aggregator::default();
    let mut cursor = 0.0;
    loop {
        let rows: Vec<ChunkRow> = ctx
            .run_query(
                "transcripts/queries:listTranscriptsAfterSequence",
                json!({ "meetingId": meeting, "fromSequence": cursor, "limit": page }),
            )
            .await?;
        for r in &rows {
            agg.push(
                r.speaker_id.as_deref(),
                &r.text,
                r.start_ms,
                r.end_ms,
                r.is_interim == Some(true),
            );
            cursor = r.sequence;
        }
        if rows.len() < page {
            break;
        }
    }
    let segments = agg.finish();
    if segments.len() <= ATOMIC_REPLACE_MAX {
        let _: f64 = ctx
            .run_mutation(
                "transcripts/aggregation:replaceTranscriptSegments",
                json!({ "meetingId": meeting, "segments": segments }),
            )
            .await?;
        return Ok(json!({ "success": true, "segmentsCreated": segments.len() }));
    }
    // Very long meetings: clear, then write in batches (not atomic).
    loop {
        let deleted: f64 = ctx
            .run_mutation(
                "transcripts/aggregation:clearTranscriptSegmentsForMeeting",
                json!({ "meetingId": meeting }),
            )
            .await?;
        if deleted < RETENTION_BATCH as f64 {
            break;
        }
    }
    for batch in segments.chunks(WRITE_BATCH) {
        let _: f64 = ctx
            .run_mutation(
                "transcripts/aggregation:writeTranscriptSegmentsBatch",
                json!({ "meetingId": meeting, "segments": batch }),
            )
            .await?;
    }
    Ok(json!({ "success": true, "segmentsCreated": segments.len() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CleanupArgs {
    older_than_ms: Option<f64>,
}

/// @summary Deletes transcript segments past their retention
///
/// @description Internal, run weekly by a cron: deletes up to 500 segments
/// created more than `olderThanMs` (default 365 days) ago and, when it
/// deleted a full batch, schedules itself again. Records an audit entry
/// (`cleanup_segments`) when it deleted something. Returns `{deleted}`.
#[macros::function(
    internal_mutation,
    path = "transcripts/aggregation:cleanupOldTranscriptSegments",
    args = v::object([("olderThanMs", v::optional(v::number()))]),
    returns = v::object([("deleted", v::number())])
)]
async fn cleanup_segments(ctx: MutationCtx, args: CleanupArgs) -> Result<serde_json::Value> {
    let older = args.older_than_ms.unwrap_or(SEGMENT_RETENTION_MS);
    if !older.is_finite() || older < 0.0 {
        return Err(Error::validation(
            "olderThanMs must be a non-negative number",
        ));
    }
    let now = ctx.now_ms();
    let docs = ctx
        .db
        .query("transcriptSegments")
        .with_index("by_created_at", |r| r.lt("createdAt", now - older))
        .take(RETENTION_BATCH)
        .await?;
    for d in &docs {
        ctx.db.delete(d.id()).await?;
    }
    if docs.len() == RETENTION_BATCH {
        ctx.scheduler
            .run_after(
                Duration::ZERO,
                CLEANUP_PATH,
                json!({ "olderThanMs": older }),
            )
            .await?;
    }
    if !docs.is_empty() {
        audit::record(
            &ctx.db,
            AuditEntry::new(
                "transcription",
                "transcriptSegments",
                "cleanup_segments",
                now,
            )
            .with("deleted", docs.len())
            .with("olderThanMs", older),
        )
        .await?;
    }
    Ok(json!({ "deleted": docs.len() }))
}

/// Registers `transcripts/aggregation:*` and the weekly retention cron.
pub fn register(r: &mut Registry) {
    r.register(clear_segments_spec());
    r.register(write_segments_spec());
    r.register(replace_segments_spec());
    r.register(aggregate_spec());
    r.register(cleanup_segments_spec());
    r.cron(
        "transcripts: delete segments older than 365 days",
        runtime::CronSchedule::Interval(Duration::from_secs(7 * 86_400)),
        CLEANUP_PATH,
        Value::object([(
            "olderThanMs".to_owned(),
            Value::Float64(SEGMENT_RETENTION_MS),
        )]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_on_speaker_change_and_long_gaps_and_skip_interims() {
        let mut a = Aggregator::default();
        a.push(Some("a"), "We have a plan", 0.0, 1000.0, false);
        a.push(Some("a"), "ignored", 1000.0, 1500.0, true);
        a.push(Some("a"), "with an owner", 2000.0, 3000.0, false);
        a.push(Some("b"), "Risk noted", 3100.0, 4000.0, false);
        a.push(Some("b"), "much later", 9001.0 + 1.0, 10_000.0, false);
        let s = a.finish();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].text, "We have a plan with an owner");
        assert_eq!(s[0].topics, ["plan", "owner"]);
        assert_eq!(s[0].end_ms, 3000.0);
        assert_eq!(s[1].speakers, ["b"]);
        assert_eq!(s[1].topics, ["risk"]);
        assert_eq!(s[2].text, "much later");
    }
}
