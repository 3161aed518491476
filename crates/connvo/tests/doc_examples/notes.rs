//! Example-alignment cases of the `notes/*` functions (one per public
//! function; see the parent module for how a case is checked).
//!
//! Every seed starts from `meeting_examples::meeting_with_grace` (Ada hosts
//! the kickoff meeting, Grace takes part) and has Ada write the first line
//! of the notes, "Goals: ship the beta by March 1" (sequence 1, version 1).

use super::{ADA, Caller, Case, FunctionKind, Harness, Seeded, Substitutions, case, json};

/// The example id of the meeting (see `meeting_examples`).
const EX_MEETING: &str = "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg";
/// The example checkpoint id of `restoreFromCheckpoint`.
const EX_CHECKPOINT: &str = "checkpoint_1768469400000_3hd5vj6rjmjkt5ewd5g6yx8ntmsk6p8tbc1g";
/// The first line of the notes.
const FIRST_LINE: &str = "Goals: ship the beta by March 1";

async fn mutation(
    h: &Harness,
    path: &str,
    args: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    h.call(Caller::Dev(&ADA), FunctionKind::Mutation, path, args)
        .await
}

/// The meeting with Grace, and the first line of the notes.
async fn notes(h: &Harness) -> anyhow::Result<(Substitutions, String)> {
    let s = super::meeting_examples::meeting_with_grace(h).await?;
    let meeting = s
        .get(EX_MEETING)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no meeting"))?;
    mutation(
        h,
        "notes/mutations:applyNoteOperation",
        json!({
            "meetingId": meeting,
            "operation": {"type": "insert", "position": 0, "content": FIRST_LINE},
            "clientSequence": 0,
        }),
    )
    .await?;
    Ok((s, meeting))
}

fn with_notes(h: &Harness) -> Seeded<'_> {
    Box::pin(async move { Ok(notes(h).await?.0) })
}

/// The notes with a second edit (sequence 2).
fn two_edits(h: &Harness) -> Seeded<'_> {
    Box::pin(async move {
        let (s, meeting) = notes(h).await?;
        mutation(
            h,
            "notes/mutations:applyNoteOperation",
            json!({
                "meetingId": meeting,
                "operation": {"type": "insert", "position": 31, "content": " (pasted twice)"},
                "clientSequence": 1,
            }),
        )
        .await?;
        Ok(s)
    })
}

async fn queue_one(h: &Harness, meeting: &str) -> anyhow::Result<()> {
    mutation(
        h,
        "notes/offline:queueOfflineOperations",
        json!({
            "meetingId": meeting,
            "clientId": "laptop-7f3a",
            "operations": [
                {"type": "insert", "position": 0, "content": "Offline: ", "id": "op-1", "timestamp": 1_768_469_300_000_u64, "sequence": 1}
            ],
        }),
    )
    .await?;
    Ok(())
}

/// The notes and one queued offline operation of `laptop-7f3a`.
fn queued(h: &Harness) -> Seeded<'_> {
    Box::pin(async move {
        let (s, meeting) = notes(h).await?;
        queue_one(h, &meeting).await?;
        Ok(s)
    })
}

/// The notes and one offline operation, queued and synced.
fn synced(h: &Harness) -> Seeded<'_> {
    Box::pin(async move {
        let (s, meeting) = notes(h).await?;
        queue_one(h, &meeting).await?;
        mutation(
            h,
            "notes/offline:syncOfflineOperations",
            json!({"meetingId": meeting, "clientId": "laptop-7f3a"}),
        )
        .await?;
        Ok(s)
    })
}

/// The notes and a verified checkpoint of `laptop-7f3a` at sequence 1.
fn checkpoint(h: &Harness) -> Seeded<'_> {
    Box::pin(async move {
        let (mut s, meeting) = notes(h).await?;
        let out = mutation(
            h,
            "notes/offline:createOfflineCheckpoint",
            json!({
                "meetingId": meeting,
                "clientId": "laptop-7f3a",
                "checkpointData": {
                    "sequence": 1,
                    "version": 1,
                    "contentHash": model::notes::content_hash(FIRST_LINE),
                    "timestamp": 1_768_469_400_000_u64,
                },
            }),
        )
        .await?;
        let id = out["checkpointId"].as_str().unwrap_or_default().to_owned();
        s.insert(EX_CHECKPOINT.to_owned(), id);
        Ok(s)
    })
}

/// The cases of the `notes/*` public functions.
pub(super) fn cases() -> Vec<Case> {
    let ada = Caller::Dev(&ADA);
    vec![
        case("notes/mutations:applyNoteOperation", ada, with_notes),
        case("notes/mutations:batchApplyNoteOperations", ada, with_notes),
        case("notes/mutations:rollbackToSequence", ada, two_edits),
        case("notes/queries:getMeetingNotes", ada, with_notes),
        case("notes/queries:getNoteOperations", ada, with_notes),
        case("notes/queries:searchMeetingNotes", ada, with_notes),
        case("notes/offline:queueOfflineOperations", ada, with_notes),
        case("notes/offline:syncOfflineOperations", ada, queued),
        case("notes/offline:getOfflineQueueStatus", ada, queued),
        case("notes/offline:getOfflineQueueStatusQuery", ada, queued),
        case("notes/offline:retryFailedOperations", ada, with_notes),
        case("notes/offline:clearSyncedOperations", ada, synced),
        case("notes/offline:createOfflineCheckpoint", ada, with_notes),
        case("notes/offline:restoreFromCheckpoint", ada, checkpoint),
    ]
}
