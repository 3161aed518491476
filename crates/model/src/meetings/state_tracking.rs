//! `meetings/stateTracking:*`: speaking statistics, lull detection and
//! topics of a running meeting (`meetingState`).
//!
//! Fixed from the original: a participant reports only their own speaking
//! time (a host may report anyone's in the meeting; the original let any
//! participant credit any user id); observers write nothing; these
//! mutations need an active meeting instead of creating an "active" state
//! for any meeting; `getSpeakingTimeRatios` is a query (it was a mutation
//! that only read).

use std::collections::BTreeMap;

use errors::{Error, ErrorCode, Result};
use runtime::{DbWriter, MutationCtx, QueryCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

use super::{Access, MeetingStatus, find_participant, require_access, state_doc};
use crate::auth::MeetingRole;
use crate::ids::{Id, Meetings, Users};

/// Largest speaking duration one report may add (1 hour, in ms).
pub const MAX_SPEAKING_REPORT_MS: f64 = 3_600_000.0;
/// Most topics kept.
pub const MAX_TOPICS: usize = 20;
/// Longest topic (characters).
pub const MAX_TOPIC_CHARS: usize = 100;
/// Default silence before a lull is detected (ms).
pub const DEFAULT_LULL_THRESHOLD_MS: f64 = 30_000.0;

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

/// The meeting's state document id, creating an inactive one if missing.
async fn state_id(db: &DbWriter, meeting: Id<Meetings>, now: f64) -> Result<values::DocumentId> {
    if let Some(doc) = state_doc(db, meeting).await? {
        return Ok(doc.id());
    }
    db.insert(
        "meetingState",
        json!({
            "meetingId": meeting,
            "active": true,
            "topics": [],
            "recordingEnabled": false,
            "updatedAt": now,
        }),
    )
    .await
}

/// A user id argument that must be the caller unless the caller is a host;
/// a host may name any participant of the meeting.
async fn check_subject(db: &DbWriter, access: &Access, user: Id<Users>) -> Result<()> {
    if user == access.user.id {
        return Ok(());
    }
    if access.role != MeetingRole::Host {
        return Err(Error::forbidden(
            "You can only report your own activity in this meeting",
        ));
    }
    if find_participant(db, access.meeting.id, user)
        .await?
        .is_none()
    {
        return Err(Error::not_found(format!(
            "User {user} is not a participant of meeting {}",
            access.meeting.id
        )));
    }
    Ok(())
}

fn lull_reset(now: f64) -> serde_json::Value {
    json!({ "detected": false, "lastActivity": now, "duration": 0 })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpeakingArgs {
    meeting_id: Id<Meetings>,
    user_id: Id<Users>,
    speaking_duration_ms: f64,
}

/// @summary Adds speaking time to a participant's statistics
///
/// @description Adds `speakingDurationMs` to the meeting's
/// `speakingStats.totalMs` and to `byUserMs[userId]`, and resets the lull
/// state (someone spoke). Authorization: a participant or host of the
/// meeting; participants may only report their own time (`userId` must be
/// the caller, else `FORBIDDEN` — the original let anyone credit anyone), a
/// host may report any participant's; observers get
/// `INSUFFICIENT_PERMISSIONS`, non-participants `FORBIDDEN`, no token
/// `UNAUTHORIZED`. Errors: `MEETING_NOT_ACTIVE` unless the meeting is
/// active, `VALIDATION_ERROR` for a duration outside 0–3,600,000 ms,
/// `NOT_FOUND` when a host names a non-participant. Reads and writes one
/// state document; concurrent reports are serialized (retried), none is
/// lost.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "userId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///     "speakingDurationMs": 4500
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": null}
/// ```
#[macros::function(
    mutation,
    path = "meetings/stateTracking:updateSpeakingStats",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("userId", v::id("users")),
        ("speakingDurationMs", v::number()),
    ]),
    returns = v::null()
)]
async fn update_speaking_stats(ctx: MutationCtx, args: SpeakingArgs) -> Result<Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    require_active(&access)?;
    check_subject(&ctx.db, &access, args.user_id).await?;
    let d = args.speaking_duration_ms;
    if !d.is_finite() || !(0.0..=MAX_SPEAKING_REPORT_MS).contains(&d) {
        return Err(Error::validation(format!(
            "speakingDurationMs must be between 0 and {MAX_SPEAKING_REPORT_MS}"
        )));
    }
    let now = ctx.now_ms();
    let id = state_id(&ctx.db, access.meeting.id, now).await?;
    let doc = ctx
        .db
        .get(id)
        .await?
        .ok_or_else(|| Error::internal("meeting state vanished"))?;
    let total = doc
        .field("speakingStats.totalMs")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let mut by_user: BTreeMap<String, Value> = match doc.field("speakingStats.byUserMs") {
        Some(Value::Object(m)) => m.clone(),
        _ => BTreeMap::new(),
    };
    let key = args.user_id.to_string();
    let mine = by_user.get(&key).and_then(Value::as_f64).unwrap_or(0.0);
    by_user.insert(key, Value::Float64(mine + d));
    ctx.db
        .patch(
            id,
            Value::object([
                (
                    "speakingStats".to_owned(),
                    Value::object([
                        ("totalMs".to_owned(), Value::Float64(total + d)),
                        ("byUserMs".to_owned(), Value::Object(by_user)),
                    ]),
                ),
                ("lullState".to_owned(), values::to_value(&lull_reset(now))?),
                ("updatedAt".to_owned(), Value::Float64(now)),
            ]),
        )
        .await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicsArgs {
    meeting_id: Id<Meetings>,
    topics: Vec<String>,
}

/// @summary Replaces the current topics of an active meeting
///
/// @description Sets `meetingState.topics` to `topics` (trimmed, empty and
/// duplicate entries dropped), which prompts and insights read.
/// Authorization: a participant or host (`INSUFFICIENT_PERMISSIONS` for
/// observers, `FORBIDDEN` for non-participants, `UNAUTHORIZED` without a
/// token). Errors: `MEETING_NOT_ACTIVE` unless the meeting is active,
/// `VALIDATION_ERROR` for more than 20 topics or a topic over 100
/// characters. One read and one write.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "topics": ["hiring plan", "Q1 roadmap"]
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": null}
/// ```
#[macros::function(
    mutation,
    path = "meetings/stateTracking:updateCurrentTopics",
    args = v::object([("meetingId", v::id("meetings")), ("topics", v::array(v::string()))]),
    returns = v::null()
)]
async fn update_current_topics(ctx: MutationCtx, args: TopicsArgs) -> Result<Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    require_active(&access)?;
    if args.topics.len() > MAX_TOPICS {
        return Err(Error::validation(format!(
            "At most {MAX_TOPICS} topics are allowed"
        )));
    }
    let mut topics: Vec<String> = Vec::new();
    for topic in &args.topics {
        let t = topic.trim();
        if t.chars().count() > MAX_TOPIC_CHARS {
            return Err(Error::validation(format!(
                "Topics are limited to {MAX_TOPIC_CHARS} characters"
            )));
        }
        if !t.is_empty() && !topics.iter().any(|x| x == t) {
            topics.push(t.to_owned());
        }
    }
    let now = ctx.now_ms();
    let id = state_id(&ctx.db, access.meeting.id, now).await?;
    ctx.db
        .patch(id, json!({ "topics": topics, "updatedAt": now }))
        .await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityArgs {
    meeting_id: Id<Meetings>,
    activity_type: String,
    user_id: Option<Id<Users>>,
}

/// @summary Records activity in an active meeting and clears its lull
///
/// @description Resets the meeting's lull state (`detected: false`,
/// `lastActivity` now), so lull detection and prompt generation see the
/// conversation as alive. `activityType` is `speaking`, `message`,
/// `screen_share` or `reaction`; `userId`, if given, must be the caller
/// unless the caller is a host. Authorization: a participant or host
/// (`INSUFFICIENT_PERMISSIONS` for observers, `FORBIDDEN` for
/// non-participants or for naming another user, `UNAUTHORIZED` without a
/// token). Errors: `MEETING_NOT_ACTIVE` unless the meeting is active. One
/// read and one write.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "activityType": "reaction"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": null}
/// ```
#[macros::function(
    mutation,
    path = "meetings/stateTracking:recordActivity",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("activityType", v::union([
            v::literal("speaking"),
            v::literal("message"),
            v::literal("screen_share"),
            v::literal("reaction"),
        ])),
        ("userId", v::optional(v::id("users"))),
    ]),
    returns = v::null()
)]
async fn record_activity(ctx: MutationCtx, args: ActivityArgs) -> Result<Value> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    require_active(&access)?;
    if let Some(user) = args.user_id {
        check_subject(&ctx.db, &access, user).await?;
    }
    let _ = args.activity_type;
    let now = ctx.now_ms();
    let id = state_id(&ctx.db, access.meeting.id, now).await?;
    ctx.db
        .patch(
            id,
            json!({ "lullState": lull_reset(now), "updatedAt": now }),
        )
        .await?;
    Ok(Value::Null)
}

// ---------------------------------------------------------------- internal

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LullArgs {
    meeting_id: Id<Meetings>,
    lull_detected: bool,
    last_activity: f64,
    duration: f64,
}

/// @summary Sets the lull state of a meeting
///
/// @description Internal: writes `meetingState.lullState`. `NOT_FOUND`
/// when the meeting has no state document.
#[macros::function(
    internal_mutation,
    path = "meetings/stateTracking:updateLullState",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("lullDetected", v::boolean()),
        ("lastActivity", v::number()),
        ("duration", v::number()),
    ]),
    returns = v::null()
)]
async fn update_lull_state(ctx: MutationCtx, args: LullArgs) -> Result<Value> {
    let state = state_doc(&ctx.db, args.meeting_id).await?.ok_or_else(|| {
        Error::not_found(format!(
            "Meeting state of meeting {} not found",
            args.meeting_id
        ))
    })?;
    ctx.db
        .patch(
            state.id(),
            json!({
                "lullState": {
                    "detected": args.lull_detected,
                    "lastActivity": args.last_activity,
                    "duration": args.duration,
                },
                "updatedAt": ctx.now_ms(),
            }),
        )
        .await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DetectArgs {
    meeting_id: Id<Meetings>,
    current_time: f64,
    lull_threshold_ms: Option<f64>,
}

/// @summary Detects a conversation lull in an active meeting
///
/// @description Internal (prompts): a lull is more than `lullThresholdMs`
/// (default 30 s) since the last activity. Writes the lull state and returns
/// `{lullDetected, duration, shouldGeneratePrompts}`, the latter true only
/// when the lull is newly detected. Inactive or unknown meetings give no
/// lull and write nothing.
#[macros::function(
    internal_mutation,
    path = "meetings/stateTracking:detectLull",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("currentTime", v::number()),
        ("lullThresholdMs", v::optional(v::number())),
    ]),
    returns = v::object([
        ("lullDetected", v::boolean()),
        ("duration", v::number()),
        ("shouldGeneratePrompts", v::boolean()),
    ])
)]
async fn detect_lull(ctx: MutationCtx, args: DetectArgs) -> Result<serde_json::Value> {
    let none = json!({ "lullDetected": false, "duration": 0, "shouldGeneratePrompts": false });
    let Some(state) = state_doc(&ctx.db, args.meeting_id).await? else {
        return Ok(none);
    };
    if state.field("active") != Some(&Value::Boolean(true)) {
        return Ok(none);
    }
    let last = state
        .field("lullState.lastActivity")
        .and_then(Value::as_f64)
        .unwrap_or(args.current_time);
    let was = state.field("lullState.detected") == Some(&Value::Boolean(true));
    let duration = (args.current_time - last).max(0.0);
    let lull = duration > args.lull_threshold_ms.unwrap_or(DEFAULT_LULL_THRESHOLD_MS);
    ctx.db
        .patch(
            state.id(),
            json!({
                "lullState": { "detected": lull, "lastActivity": last, "duration": duration },
                "updatedAt": ctx.now_ms(),
            }),
        )
        .await?;
    Ok(json!({
        "lullDetected": lull,
        "duration": duration,
        "shouldGeneratePrompts": lull && !was,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingArgs {
    meeting_id: Id<Meetings>,
}

/// @summary Computes each participant's share of speaking time
///
/// @description Internal: `byUserMs[user] / totalMs` per user (0..1), or
/// `{}` without statistics. A query (the original declared it as a
/// mutation though it only reads).
#[macros::function(
    internal_query,
    path = "meetings/stateTracking:getSpeakingTimeRatios",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::record(v::string(), v::number())
)]
async fn get_speaking_time_ratios(ctx: QueryCtx, args: MeetingArgs) -> Result<Value> {
    let mut out = BTreeMap::new();
    if let Some(state) = state_doc(&ctx.db, args.meeting_id).await? {
        let total = state
            .field("speakingStats.totalMs")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if total > 0.0
            && let Some(Value::Object(by_user)) = state.field("speakingStats.byUserMs")
        {
            for (user, ms) in by_user {
                out.insert(
                    user.clone(),
                    Value::Float64(ms.as_f64().unwrap_or(0.0) / total),
                );
            }
        }
    }
    Ok(Value::Object(out))
}

/// Registers `meetings/stateTracking:*`.
pub fn register(r: &mut Registry) {
    r.register(update_speaking_stats_spec());
    r.register(update_current_topics_spec());
    r.register(record_activity_spec());
    r.register(update_lull_state_spec());
    r.register(detect_lull_spec());
    r.register(get_speaking_time_ratios_spec());
}
