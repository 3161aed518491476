//! Live meeting transcripts (issue 5): ingestion with a per-meeting
//! sequence, 5-minute buckets, live reads by sequence cursor, segment
//! aggregation, full-text search and retention.
//!
//! * [`ingestion`] — `transcripts/ingestion:*`: one chunk (clients), a batch
//!   (clients, and an internal entry for webhooks and other sources), the
//!   coalescing entry, the compatibility readers declared as mutations, and
//!   the daily retention of raw chunks;
//! * [`queries`] — `transcripts/queries:*`: the live cursor read
//!   `listTranscriptChunks`, segments, full-text search, internal readers;
//! * [`aggregation`] — `transcripts/aggregation:*`: speaker runs into
//!   `transcriptSegments` after the meeting ends, and their weekly retention;
//! * [`initialization`] — `transcripts/initialization:*`: the one
//!   transcription session of a meeting (upserted);
//! * [`data_protection`] — chunks spoken by a user in export and erasure.
//!
//! # Sequences and buckets
//!
//! Every chunk of a meeting gets the next number of the meeting's one
//! `meetingCounters` document, read and patched in the ingesting
//! transaction, so concurrent ingests conflict on it and optimistic
//! concurrency control serialises them: numbers are handed out densely
//! (1, 2, 3, …) and never twice. Readers page by `(meetingId, sequence >
//! cursor)` on `by_meeting_sequence`; the 5-minute `bucketMs` is only a
//! storage and clean-up key (the original read by bucket and lost chunks
//! outside the current bucket).
//!
//! # Interim chunks
//!
//! A speech recogniser sends interim hypotheses and then the final text of
//! an utterance. An interim chunk is *replaced* by the next chunk of the
//! same utterance: the one with the same `utteranceId`, or — without
//! utterance ids — the next chunk of the same speaker while that speaker's
//! latest chunk is interim. Replacing deletes the interim row and inserts
//! the new one with a **new** sequence, so a live reader whose cursor is
//! past the interim still receives the final text; a display replaces the
//! speaker's interim row by the speaker's next row. Consequently a replaced
//! interim leaves a gap in the sequence; without interim chunks the
//! sequence is gap-free.

use database::TableDef;
use runtime::Registry;
use values::{Validator, v};

pub mod aggregation;
pub mod data_protection;
pub mod ingestion;
pub mod initialization;
pub mod queries;

mod chunks;

pub use chunks::{ChunkInput, IngestSource};

/// `transcripts` (typed ids of transcript chunks).
#[derive(Debug, Clone, Copy)]
pub enum Transcripts {}
impl crate::ids::Table for Transcripts {
    const NAME: &'static str = "transcripts";
}

/// Length of a time bucket: 5 minutes (ms).
pub const BUCKET_MS: f64 = 300_000.0;
/// Longest chunk text (characters, after trimming).
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Longest chunk (end − start, ms): 10 minutes.
pub const MAX_CHUNK_MS: f64 = 600_000.0;
/// How far in the future a chunk may end (clock skew allowance, ms).
pub const MAX_FUTURE_SKEW_MS: f64 = 60_000.0;
/// Longest `speakerId`, `language` or `utteranceId` (characters).
pub const MAX_LABEL_CHARS: usize = 200;
/// Most chunks in one batch.
pub const MAX_BATCH_CHUNKS: usize = 200;
/// Default coalescing window (ms).
pub const DEFAULT_COALESCING_WINDOW_MS: f64 = 250.0;
/// Raw chunks are kept 90 days.
pub const CHUNK_RETENTION_MS: f64 = 90.0 * 86_400_000.0;
/// Segments are kept 365 days.
pub const SEGMENT_RETENTION_MS: f64 = 365.0 * 86_400_000.0;
/// Documents one retention run deletes before rescheduling itself.
pub const RETENTION_BATCH: usize = 500;

fn session_status_validator() -> Validator {
    v::union([
        v::literal("initializing"),
        v::literal("active"),
        v::literal("paused"),
        v::literal("completed"),
        v::literal("failed"),
    ])
}

fn provider_validator() -> Validator {
    v::union([
        v::literal("whisper"),
        v::literal("assemblyai"),
        v::literal("getstream"),
    ])
}

/// The fields of a `transcriptSegments` document.
pub(crate) fn segment_fields() -> Vec<(&'static str, Validator)> {
    vec![
        ("meetingId", v::id("meetings")),
        ("startMs", v::number()),
        ("endMs", v::number()),
        ("speakers", v::array(v::string())),
        ("text", v::string()),
        ("topics", v::array(v::string())),
        ("sentiment", v::optional(v::number())),
        ("createdAt", v::number()),
    ]
}

/// The transcript tables: `transcripts`, `transcriptSegments`,
/// `transcriptionSessions` and `meetingCounters`.
pub fn tables() -> Vec<TableDef> {
    let mut segments = TableDef::new("transcriptSegments");
    for (name, validator) in segment_fields() {
        segments = segments.field(name, validator);
    }
    vec![
        TableDef::new("transcripts")
            .field("meetingId", v::id("meetings"))
            .field("bucketMs", v::number())
            .field("sequence", v::number())
            .field("speakerId", v::optional(v::string()))
            .field("text", v::string())
            .field("confidence", v::number())
            .field("startMs", v::number())
            .field("endMs", v::number())
            .field("isInterim", v::optional(v::boolean()))
            .field("utteranceId", v::optional(v::string()))
            .field("wordCount", v::number())
            .field("language", v::optional(v::string()))
            .field("createdAt", v::number())
            // Only indexes something reads: every index is one more B-tree
            // entry (usually one more dirty page) per ingested chunk. The
            // original's by_meeting_bucket, by_meeting_time_range and
            // by_bucket_global had no reader here; its by_created_at and
            // by_meeting_and_created_at are served by the built-in
            // by_creation_time and by by_meeting_sequence (see retention in
            // `ingestion`).
            .index("by_meeting_sequence", &["meetingId", "sequence"])
            .index(
                "by_meeting_bucket_seq",
                &["meetingId", "bucketMs", "sequence"],
            )
            .index("by_meeting_and_speaker", &["meetingId", "speakerId"])
            .index("by_meeting_and_utterance", &["meetingId", "utteranceId"])
            .index("by_speaker", &["speakerId"])
            .search_index("search_text", "text", &["meetingId"]),
        segments
            .index("by_meeting", &["meetingId"])
            .index("by_meeting_time", &["meetingId", "startMs"])
            .index("by_created_at", &["createdAt"])
            .search_index("search_text", "text", &["meetingId"]),
        TableDef::new("transcriptionSessions")
            .field("meetingId", v::id("meetings"))
            .field("provider", provider_validator())
            .field("status", session_status_validator())
            .field("startedAt", v::number())
            .field("endedAt", v::optional(v::number()))
            .field(
                "metadata",
                v::optional(crate::meetings::metadata_validator()),
            )
            .field("createdAt", v::number())
            .field("updatedAt", v::number())
            .index("by_meeting", &["meetingId"])
            .index("by_status", &["status"])
            .index("by_provider", &["provider"]),
        TableDef::new("meetingCounters")
            .field("meetingId", v::id("meetings"))
            .field("lastSequence", v::number())
            .field("updatedAt", v::number())
            .index("by_meeting", &["meetingId"]),
    ]
}

/// Registers the transcript functions and crons.
pub fn register(registry: &mut Registry) {
    ingestion::register(registry);
    queries::register(registry);
    aggregation::register(registry);
    initialization::register(registry);
}

/// The transcripts domain's personal-data sections (export and erasure).
pub fn data_sections() -> Vec<crate::users::data_protection::DataSection> {
    data_protection::sections()
}
