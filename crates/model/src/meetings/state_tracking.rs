//! `meetings/stateTracking:*`: speaking statistics, lull detection and
//! topics of a running meeting (`meetingState`).
//!
//! Fixed from the original: speaking time is credited only to the person
//! who spoke — `updateSpeakingStats` accepts only the caller's own user id
//! (`FORBIDDEN` for anyone else's, hosts included; the original let any
//! participant credit any user id), and final transcript chunks credit
//! their speaker (`transcripts/ingestion:*` calls [`record_speech`]);
//! observers write nothing; these mutations need an active meeting instead
//! of creating an "active" state for any meeting; `getSpeakingTimeRatios`
//! is a query (it was a mutation that only read).
//!
//! Lull detection: every write here and every ingested transcript chunk
//! resets `lullState.lastActivity`; `detectLull` compares it (or the
//! meeting's start when nothing happened yet) with a threshold, and the
//! cron `meetings/stateTracking:detectLulls` runs it for every active
//! meeting every 10 seconds, writing only when the detected flag changes.

use std::collections::BTreeMap;
use std::time::Duration;

use errors::{Error, ErrorCode, Result};
use runtime::{CronSchedule, DbWriter, MutationCtx, QueryCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

use super::{Access, MeetingStatus, require_access, state_doc};
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
/// How often the lull cron checks the active meetings.
pub const LULL_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Most active meetings one lull-cron run checks.
pub const LULL_CHECK_BATCH: usize = 500;
/// The lull cron's internal mutation.
pub const DETECT_LULLS_PATH: &str = "meetings/stateTracking:detectLulls";

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

/// A user id argument must be the caller: speaking time and activity are
/// credited only to the person who spoke (`FORBIDDEN` otherwise, hosts
/// included).
fn check_subject(access: &Access, user: Id<Users>) -> Result<()> {
    if user != access.user.id {
        return Err(Error::forbidden(
            "You can only report your own activity in this meeting",
        ));
    }
    Ok(())
}

/// Adds speaking time to users' statistics and resets the lull state (in
/// the caller's transaction): `credits` holds `(user, ms)` pairs, possibly
/// empty (activity without credit). The caller decides who spoke.
pub(crate) async fn record_speech(
    db: &DbWriter,
    meeting: Id<Meetings>,
    credits: &[(Id<Users>, f64)],
    now: f64,
) -> Result<()> {
    let id = state_id(db, meeting, now).await?;
    let mut fields = vec![
        ("lullState".to_owned(), values::to_value(&lull_reset(now))?),
        ("updatedAt".to_owned(), Value::Float64(now)),
    ];
    if !credits.is_empty() {
        let doc = db
            .get(id)
            .await?
            .ok_or_else(|| Error::internal("meeting state vanished"))?;
        let mut total = doc
            .field("speakingStats.totalMs")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let mut by_user: BTreeMap<String, Value> = match doc.field("speakingStats.byUserMs") {
            Some(Value::Object(m)) => m.clone(),
            _ => BTreeMap::new(),
        };
        for (user, ms) in credits {
            let key = user.to_string();
            let mine = by_user.get(&key).and_then(Value::as_f64).unwrap_or(0.0);
            by_user.insert(key, Value::Float64(mine + ms));
            total += ms;
        }
        fields.push((
            "speakingStats".to_owned(),
            Value::object([
                ("totalMs".to_owned(), Value::Float64(total)),
                ("byUserMs".to_owned(), Value::Object(by_user)),
            ]),
        ));
    }
    db.patch(id, Value::object(fields)).await
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
/// state (someone spoke). Speaking time is credited only to the speaker:
/// `userId` must be the caller, else `FORBIDDEN`, hosts included (the
/// original let anyone credit anyone; the argument is kept for
/// compatibility). Final transcript chunks credit their speaker
/// automatically. Authorization: a participant or host of the meeting;
/// observers get `INSUFFICIENT_PERMISSIONS`, non-participants `FORBIDDEN`,
/// no token `UNAUTHORIZED`. Errors: `MEETING_NOT_ACTIVE` unless the
/// meeting is active, `VALIDATION_ERROR` for a duration outside
/// 0–3,600,000 ms. Reads and writes one state document; concurrent reports
/// are serialized (retried), none is lost.
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
    check_subject(&access, args.user_id)?;
    let d = args.speaking_duration_ms;
    if !d.is_finite() || !(0.0..=MAX_SPEAKING_REPORT_MS).contains(&d) {
        return Err(Error::validation(format!(
            "speakingDurationMs must be between 0 and {MAX_SPEAKING_REPORT_MS}"
        )));
    }
    record_speech(
        &ctx.db,
        access.meeting.id,
        &[(args.user_id, d)],
        ctx.now_ms(),
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
/// `screen_share` or `reaction`; `userId`, if given, must be the caller. Authorization: a participant or host
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
        check_subject(&access, user)?;
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
/// (default 30 s) since the last activity (speech, transcript chunks,
/// activity reports), or since the start when nothing happened yet. Writes
/// the lull state and returns `{lullDetected, duration,
/// shouldGeneratePrompts}`, the latter true only when the lull is newly
/// detected. Inactive or unknown meetings give no lull and write nothing.
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
    let Some(state) = state_doc(&ctx.db, args.meeting_id).await? else {
        return Ok(json!({ "lullDetected": false, "duration": 0, "shouldGeneratePrompts": false }));
    };
    let threshold = args.lull_threshold_ms.unwrap_or(DEFAULT_LULL_THRESHOLD_MS);
    let out = evaluate_lull(
        &ctx.db,
        &state,
        args.current_time,
        threshold,
        true,
        ctx.now_ms(),
    )
    .await?;
    Ok(json!({
        "lullDetected": out.detected,
        "duration": out.duration,
        "shouldGeneratePrompts": out.newly_detected,
    }))
}

/// The outcome of one lull check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LullCheck {
    /// Silence longer than the threshold.
    pub detected: bool,
    /// Silence so far (ms).
    pub duration: f64,
    /// Detected now and not at the previous check.
    pub newly_detected: bool,
}

/// Checks one `meetingState` document at `current_time`: silence since the
/// last activity, or since the meeting started when nothing happened yet
/// (the original used `currentTime` then, so a silent meeting never had a
/// lull). Inactive states give no lull and write nothing. Writes the lull
/// state always (`write_always`, as `detectLull`) or only when the
/// detected flag changes (the cron).
async fn evaluate_lull(
    db: &DbWriter,
    state: &database::Document,
    current_time: f64,
    threshold: f64,
    write_always: bool,
    now: f64,
) -> Result<LullCheck> {
    let none = LullCheck {
        detected: false,
        duration: 0.0,
        newly_detected: false,
    };
    if state.field("active") != Some(&Value::Boolean(true)) || !current_time.is_finite() {
        return Ok(none);
    }
    let last = state
        .field("lullState.lastActivity")
        .and_then(Value::as_f64)
        .or_else(|| state.field("startedAt").and_then(Value::as_f64))
        .unwrap_or(current_time);
    let was = state.field("lullState.detected") == Some(&Value::Boolean(true));
    let duration = (current_time - last).max(0.0);
    let detected = duration > threshold;
    if write_always || detected != was {
        db.patch(
            state.id(),
            json!({
                "lullState": { "detected": detected, "lastActivity": last, "duration": duration },
                "updatedAt": now,
            }),
        )
        .await?;
    }
    Ok(LullCheck {
        detected,
        duration,
        newly_detected: detected && !was,
    })
}

/// @summary Runs lull detection for every active meeting
///
/// @description Internal, run every 10 seconds by a cron: checks up to 500
/// active meetings' states (`by_active`) with the default 30-second
/// threshold and writes a state only when its detected flag changes.
/// Returns how many meetings are newly in a lull (prompt generation, a
/// later issue, reacts to `meetingState.lullState`).
#[macros::function(
    internal_mutation,
    path = "meetings/stateTracking:detectLulls",
    returns = v::number()
)]
async fn detect_lulls(ctx: MutationCtx, _args: Value) -> Result<f64> {
    let now = ctx.now_ms();
    let states = ctx
        .db
        .query("meetingState")
        .with_index("by_active", |r| r.eq("active", true))
        .take(LULL_CHECK_BATCH)
        .await?;
    let mut newly = 0.0;
    for state in &states {
        let check =
            evaluate_lull(&ctx.db, state, now, DEFAULT_LULL_THRESHOLD_MS, false, now).await?;
        if check.newly_detected {
            newly += 1.0;
        }
    }
    Ok(newly)
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
    r.register(detect_lulls_spec());
    r.register(get_speaking_time_ratios_spec());
    r.cron(
        "meetings: detect conversation lulls",
        CronSchedule::Interval(LULL_CHECK_INTERVAL),
        DETECT_LULLS_PATH,
        Value::object(Vec::<(String, Value)>::new()),
    );
}
