//! `transcripts/initialization:*`: the transcription session of a meeting
//! (`transcriptionSessions`), one per meeting.
//!
//! Fixed from the original: starting a meeting again (or a duplicate
//! webhook) inserted another session row, after which `.unique()` reads
//! threw; here every writer upserts the meeting's one row.

use errors::{Error, Result};
use runtime::{DbWriter, MutationCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{DocumentId, Value, v};

use super::aggregation::{AGGREGATE_DELAY, AGGREGATE_PATH};
use crate::ids::{Id, Meetings};
use crate::meetings::load_meeting;

/// The meeting's session row, if any.
async fn session_id(db: &DbWriter, meeting: Id<Meetings>) -> Result<Option<DocumentId>> {
    Ok(db
        .query("transcriptionSessions")
        .with_index("by_meeting", |r| r.eq("meetingId", meeting.to_value()))
        .first()
        .await?
        .map(|d| d.id()))
}

/// Creates the meeting's session, or patches it (upsert).
async fn upsert(
    db: &DbWriter,
    meeting: Id<Meetings>,
    fields: serde_json::Value,
    provider: &str,
    now: f64,
) -> Result<DocumentId> {
    match session_id(db, meeting).await? {
        Some(id) => {
            let mut patch = fields;
            patch["updatedAt"] = json!(now);
            db.patch(id, patch).await?;
            Ok(id)
        }
        None => {
            let mut doc = json!({
                "meetingId": meeting,
                "provider": provider,
                "status": "initializing",
                "startedAt": now,
                "createdAt": now,
                "updatedAt": now,
            });
            if let (Some(doc), Some(extra)) = (doc.as_object_mut(), fields.as_object()) {
                for (k, val) in extra {
                    doc.insert(k.clone(), val.clone());
                }
            }
            db.insert("transcriptionSessions", doc).await
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingArgs {
    meeting_id: Id<Meetings>,
}

/// @summary Creates or resets a meeting's transcription session
///
/// @description Internal: upserts the meeting's one session with status
/// `initializing` and provider `whisper` for WebRTC meetings, else
/// `getstream`. Returns `{success, transcriptionProvider}`. `NOT_FOUND` for
/// an unknown meeting.
#[macros::function(
    internal_mutation,
    path = "transcripts/initialization:initializeTranscription",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::object([
        ("success", v::boolean()),
        ("transcriptionProvider", v::union([
            v::literal("whisper"), v::literal("assemblyai"), v::literal("getstream"),
        ])),
    ])
)]
async fn initialize(ctx: MutationCtx, args: MeetingArgs) -> Result<serde_json::Value> {
    let meeting = load_meeting(&ctx.db, args.meeting_id).await?;
    let provider = start_session(
        &ctx.db,
        meeting.id,
        meeting.webrtc_enabled == Some(true),
        ctx.now_ms(),
    )
    .await?;
    Ok(json!({ "success": true, "transcriptionProvider": provider }))
}

/// Creates or resets the meeting's one transcription session (status
/// `initializing`; provider `whisper` for WebRTC meetings, else
/// `getstream`) and returns the provider. Called by `startMeeting` in its
/// own transaction (the original scheduled `initializeTranscription` one
/// second later, adding a row per restart).
pub(crate) async fn start_session(
    db: &DbWriter,
    meeting: Id<Meetings>,
    webrtc: bool,
    now: f64,
) -> Result<&'static str> {
    let provider = if webrtc { "whisper" } else { "getstream" };
    upsert(
        db,
        meeting,
        json!({ "status": "initializing", "provider": provider, "startedAt": now }),
        provider,
        now,
    )
    .await?;
    Ok(provider)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusArgs {
    meeting_id: Id<Meetings>,
    status: String,
    metadata: Option<serde_json::Value>,
}

/// @summary Sets the status of a meeting's transcription session
///
/// @description Internal (provider webhooks): upserts the meeting's session
/// with `status` (and `metadata`); `completed` and `failed` set `endedAt`.
#[macros::function(
    internal_mutation,
    path = "transcripts/initialization:updateTranscriptionStatus",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("status", v::union([
            v::literal("initializing"), v::literal("active"), v::literal("paused"),
            v::literal("completed"), v::literal("failed"),
        ])),
        ("metadata", v::optional(crate::meetings::metadata_validator())),
    ]),
    returns = v::null()
)]
async fn update_status(ctx: MutationCtx, args: StatusArgs) -> Result<Value> {
    let meeting = load_meeting(&ctx.db, args.meeting_id).await?;
    let now = ctx.now_ms();
    let mut fields = json!({ "status": args.status });
    if matches!(args.status.as_str(), "completed" | "failed") {
        fields["endedAt"] = json!(now);
    }
    if let Some(m) = args.metadata {
        fields["metadata"] = m;
    }
    upsert(&ctx.db, meeting.id, fields, "getstream", now).await?;
    Ok(Value::Null)
}

/// @summary Completes a meeting's transcription and schedules aggregation
///
/// @description Internal: sets the session `completed` (creating it if
/// missing), schedules `transcripts/aggregation:aggregateTranscriptSegments`
/// in 5 seconds and returns `{success, totalChunks}` (the meeting's last
/// sequence).
#[macros::function(
    internal_mutation,
    path = "transcripts/initialization:finalizeTranscription",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::object([("success", v::boolean()), ("totalChunks", v::number())])
)]
async fn finalize(ctx: MutationCtx, args: MeetingArgs) -> Result<serde_json::Value> {
    let meeting = load_meeting(&ctx.db, args.meeting_id).await?;
    let now = ctx.now_ms();
    upsert(
        &ctx.db,
        meeting.id,
        json!({ "status": "completed", "endedAt": now }),
        "getstream",
        now,
    )
    .await?;
    let total = ctx
        .db
        .query("meetingCounters")
        .with_index("by_meeting", |r| r.eq("meetingId", meeting.id.to_value()))
        .first()
        .await?
        .and_then(|d| d.field("lastSequence").and_then(Value::as_f64))
        .unwrap_or(0.0);
    ctx.scheduler
        .run_after(
            AGGREGATE_DELAY,
            AGGREGATE_PATH,
            json!({ "meetingId": meeting.id }),
        )
        .await
        .map_err(|e| Error::internal(format!("cannot schedule aggregation: {e}")))?;
    Ok(json!({ "success": true, "totalChunks": total }))
}

/// Registers `transcripts/initialization:*`.
pub fn register(r: &mut Registry) {
    r.register(initialize_spec());
    r.register(update_status_spec());
    r.register(finalize_spec());
}
