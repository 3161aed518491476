//! Authorization-matrix rows of the `transcripts/*` functions (see the parent
//! module for callers, fixtures and outcomes).
//!
//! Ingestion is for participants and hosts of an active meeting (observers
//! only read); every reader admits observers; nobody outside the meeting
//! gets anything, organization admins included.

use errors::ErrorCode;
use runtime::FunctionKind::{Mutation, Query};
use serde_json::{Value as Json, json};

use super::{FORBID, Fixture, Outcome, READ, Row, State, UNAUTH, WRITE, row};

/// 2026-01-15T09:29:55Z, before the harness's clock.
const START: f64 = 1_768_469_395_000.0;

const NOT_ACTIVE: Outcome = Outcome::Denied(ErrorCode::MeetingNotActive);
const ROLE: Outcome = Outcome::Denied(ErrorCode::InsufficientPermissions);

fn chunk(f: &Fixture) -> Json {
    json!({
        "meetingId": f.meeting,
        "text": "Matrix words",
        "confidence": 0.9,
        "startTime": START,
        "endTime": START + 1_000.0,
    })
}

fn batch(f: &Fixture) -> Json {
    json!({
        "meetingId": f.meeting,
        "chunks": [{"text": "Matrix words", "confidence": 0.9, "startTime": START, "endTime": START + 1_000.0}],
    })
}

fn cursor(f: &Fixture) -> Json {
    json!({ "meetingId": f.meeting, "fromSequence": 0 })
}

fn m(f: &Fixture) -> Json {
    json!({ "meetingId": f.meeting })
}

fn search(f: &Fixture) -> Json {
    json!({ "meetingId": f.meeting, "query": "matrix" })
}

fn variant(r: Row, variant: &'static str) -> Row {
    Row { variant, ..r }
}

/// One or more rows per public `transcripts/*` function.
pub(super) fn rows() -> Vec<Row> {
    let ended = [UNAUTH, FORBID, FORBID, ROLE, NOT_ACTIVE, NOT_ACTIVE, FORBID];
    vec![
        row(
            "transcripts/ingestion:ingestTranscriptChunk",
            Mutation,
            State::Active,
            chunk,
            WRITE,
        ),
        variant(
            row(
                "transcripts/ingestion:ingestTranscriptChunk",
                Mutation,
                State::Concluded,
                chunk,
                ended,
            ),
            "concluded",
        ),
        row(
            "transcripts/ingestion:ingestTranscriptBatch",
            Mutation,
            State::Active,
            batch,
            WRITE,
        ),
        variant(
            row(
                "transcripts/ingestion:ingestTranscriptBatch",
                Mutation,
                State::Scheduled,
                batch,
                ended,
            ),
            "scheduled",
        ),
        row(
            "transcripts/ingestion:getTranscriptChunks",
            Mutation,
            State::Active,
            cursor,
            READ,
        ),
        row(
            "transcripts/ingestion:getTranscriptStats",
            Mutation,
            State::Active,
            m,
            READ,
        ),
        row(
            "transcripts/queries:listTranscriptChunks",
            Query,
            State::Active,
            cursor,
            READ,
        ),
        variant(
            row(
                "transcripts/queries:listTranscriptChunks",
                Query,
                State::Concluded,
                cursor,
                READ,
            ),
            "concluded",
        ),
        row(
            "transcripts/queries:getTranscriptSegments",
            Query,
            State::Concluded,
            m,
            READ,
        ),
        row(
            "transcripts/queries:searchTranscripts",
            Query,
            State::Active,
            search,
            READ,
        ),
    ]
}
