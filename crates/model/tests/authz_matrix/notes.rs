//! Authorization-matrix rows of the `notes/*` functions (see the parent
//! module for callers, fixtures and outcomes).
//!
//! Reading (notes, the operation stream, the caller's own offline status,
//! checkpoints) is open to every participant, observers included; editing
//! (operations, the offline queue) needs a participant or host and an
//! editable meeting (`CONFLICT` once concluded); rollback is for hosts.
//! Search is open to any signed-in user and only ever returns the caller's
//! meetings.

use errors::ErrorCode;
use runtime::FunctionKind::{Mutation, Query};
use serde_json::{Value as Json, json};

use super::{
    Denied, FORBID, Fixture, HOST, Outcome, READ, ROLE, Row, SIGNED_IN, State, UNAUTH, WRITE, row,
    variant,
};

/// Edits of a concluded meeting: roles are checked first, then the state.
const CLOSED: Outcome = Denied(ErrorCode::Conflict);
const WRITE_CONCLUDED: [Outcome; 7] = [UNAUTH, FORBID, FORBID, ROLE, CLOSED, CLOSED, FORBID];
const HOST_CONCLUDED: [Outcome; 7] = [UNAUTH, FORBID, FORBID, ROLE, ROLE, CLOSED, FORBID];

fn apply(f: &Fixture) -> Json {
    json!({
        "meetingId": f.meeting,
        "operation": {"type": "insert", "position": 0, "content": "Matrix"},
        "clientSequence": 0,
    })
}

fn batch(f: &Fixture) -> Json {
    json!({
        "meetingId": f.meeting,
        "operations": [
            {"operation": {"type": "insert", "position": 0, "content": "Mat"}, "clientSequence": 0},
            {"operation": {"type": "insert", "position": 3, "content": "rix"}, "clientSequence": 0},
        ],
    })
}

fn rollback(f: &Fixture) -> Json {
    json!({ "meetingId": f.meeting, "targetSequence": 0 })
}

fn client(f: &Fixture) -> Json {
    json!({ "meetingId": f.meeting, "clientId": "matrix-client" })
}

fn queue(f: &Fixture) -> Json {
    json!({
        "meetingId": f.meeting,
        "clientId": "matrix-client",
        "operations": [
            {"type": "insert", "position": 0, "content": "x", "id": "op-1", "timestamp": 1, "sequence": 0},
        ],
    })
}

fn checkpoint(f: &Fixture) -> Json {
    json!({
        "meetingId": f.meeting,
        "clientId": "matrix-client",
        "checkpointData": {
            "sequence": 0,
            "version": 0,
            "contentHash": model::notes::content_hash(""),
            "timestamp": 1,
        },
    })
}

/// One or more rows per public `notes/*` function.
pub(super) fn rows() -> Vec<Row> {
    vec![
        row(
            "notes/mutations:applyNoteOperation",
            Mutation,
            State::Active,
            apply,
            WRITE,
        ),
        variant(
            "concluded meeting",
            row(
                "notes/mutations:applyNoteOperation",
                Mutation,
                State::Concluded,
                apply,
                WRITE_CONCLUDED,
            ),
        ),
        row(
            "notes/mutations:batchApplyNoteOperations",
            Mutation,
            State::Active,
            batch,
            WRITE,
        ),
        variant(
            "concluded meeting",
            row(
                "notes/mutations:batchApplyNoteOperations",
                Mutation,
                State::Concluded,
                batch,
                WRITE_CONCLUDED,
            ),
        ),
        row(
            "notes/mutations:rollbackToSequence",
            Mutation,
            State::Active,
            rollback,
            HOST,
        ),
        variant(
            "concluded meeting",
            row(
                "notes/mutations:rollbackToSequence",
                Mutation,
                State::Concluded,
                rollback,
                HOST_CONCLUDED,
            ),
        ),
        row(
            "notes/queries:getMeetingNotes",
            Query,
            State::Scheduled,
            |f| json!({ "meetingId": f.meeting }),
            READ,
        ),
        variant(
            "concluded meeting",
            row(
                "notes/queries:getMeetingNotes",
                Query,
                State::Concluded,
                |f| json!({ "meetingId": f.meeting }),
                READ,
            ),
        ),
        row(
            "notes/queries:getNoteOperations",
            Query,
            State::Scheduled,
            |f| json!({ "meetingId": f.meeting, "fromSequence": 0 }),
            READ,
        ),
        row(
            "notes/queries:searchMeetingNotes",
            Query,
            State::None,
            |_| json!({ "query": "matrix" }),
            SIGNED_IN,
        ),
        row(
            "notes/offline:queueOfflineOperations",
            Mutation,
            State::Active,
            queue,
            WRITE,
        ),
        variant(
            "concluded meeting",
            row(
                "notes/offline:queueOfflineOperations",
                Mutation,
                State::Concluded,
                queue,
                WRITE_CONCLUDED,
            ),
        ),
        row(
            "notes/offline:syncOfflineOperations",
            Mutation,
            State::Active,
            client,
            WRITE,
        ),
        row(
            "notes/offline:retryFailedOperations",
            Mutation,
            State::Active,
            client,
            WRITE,
        ),
        row(
            "notes/offline:getOfflineQueueStatus",
            Mutation,
            State::Active,
            client,
            READ,
        ),
        row(
            "notes/offline:getOfflineQueueStatusQuery",
            Query,
            State::Active,
            client,
            READ,
        ),
        row(
            "notes/offline:clearSyncedOperations",
            Mutation,
            State::Active,
            client,
            READ,
        ),
        row(
            "notes/offline:createOfflineCheckpoint",
            Mutation,
            State::Active,
            checkpoint,
            READ,
        ),
        row(
            "notes/offline:restoreFromCheckpoint",
            Mutation,
            State::Active,
            |f| json!({ "meetingId": f.meeting, "clientId": "matrix-client", "checkpointId": "checkpoint_0_unknown" }),
            READ,
        ),
    ]
}
