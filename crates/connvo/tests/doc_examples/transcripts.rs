//! Example-alignment cases of the `transcripts/*` functions (one per public
//! function; see the parent module for how a case is checked).

use super::Caller::Dev;
use super::{ADA, Caller, Case, FunctionKind, Harness, Seeded, case, json, meeting_examples};

/// The example id of the meeting (see `meeting_examples`).
const EX_MEETING: &str = "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg";

/// The kickoff meeting, started, with Ada's first chunk: "Let's start with
/// the hiring plan".
fn meeting_with_chunk(h: &Harness) -> Seeded<'_> {
    Box::pin(async move {
        let s = meeting_examples::active_meeting(h).await?;
        h.call(
            Caller::Dev(&ADA),
            FunctionKind::Mutation,
            "transcripts/ingestion:ingestTranscriptChunk",
            json!({
                "meetingId": s[EX_MEETING],
                "text": "Let's start with the hiring plan",
                "confidence": 0.94,
                "startTime": 1_768_469_395_000_u64,
                "endTime": 1_768_469_398_000_u64,
            }),
        )
        .await?;
        Ok(s)
    })
}

/// The cases of the `transcripts/*` public functions.
pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "transcripts/ingestion:ingestTranscriptChunk",
            Dev(&ADA),
            meeting_examples::active_meeting,
        ),
        case(
            "transcripts/ingestion:ingestTranscriptBatch",
            Dev(&ADA),
            meeting_examples::active_meeting,
        ),
        case(
            "transcripts/ingestion:getTranscriptChunks",
            Dev(&ADA),
            meeting_with_chunk,
        ),
        case(
            "transcripts/ingestion:getTranscriptStats",
            Dev(&ADA),
            meeting_with_chunk,
        ),
        case(
            "transcripts/queries:listTranscriptChunks",
            Dev(&ADA),
            meeting_with_chunk,
        ),
        case(
            "transcripts/queries:getTranscriptSegments",
            Dev(&ADA),
            meeting_examples::active_meeting,
        ),
        case(
            "transcripts/queries:searchTranscripts",
            Dev(&ADA),
            meeting_with_chunk,
        ),
    ]
}
