//! `meetings/lifecycle:*`: the meeting state machine, participants and
//! presence, connection info, and the scheduled auto-end and reminder jobs.
//!
//! Fixed from the original: `createMeeting` needs a signed-in caller and
//! never acts for another organizer; `co-host` is refused instead of being
//! silently stored as `participant`; `updateParticipantRole` can set
//! `observer`; only the organizer may remove or demote another host; the
//! last host cannot be removed, demoted or leave an active meeting;
//! invalid transitions are `CONFLICT`; meetings end on their own after
//! their duration; `getMeetingConnectionInfo` stays a mutation (the web app
//! calls it as one) but writes nothing.

use std::time::Duration;

use errors::{Error, ErrorCode, Result};
use runtime::{DbWriter, MutationCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Validator, Value, v};

use super::{
    Access, Meeting, MeetingStatus, Participant, REMINDER_LEAD_MS, find_participant, host_rows,
    ice_servers, ice_servers_validator, load_meeting, record_audit, require_access, state_doc,
    track_event,
};
use crate::auth::{CurrentUser, MeetingRole, OrgRole, require_user};
use crate::ids::{Id, Meetings, Users};

/// Longest title (characters).
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest description (characters).
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Most participants added in one call (`createMeeting`'s invitees or
/// `addMultipleParticipants`).
pub const MAX_BATCH_PARTICIPANTS: usize = 100;
/// How far in the past `scheduledAt` may be (clock skew), in ms.
const SCHEDULE_SKEW_MS: f64 = 60_000.0;

fn role_input_validator() -> Validator {
    v::union([
        v::literal("host"),
        v::literal("co-host"),
        v::literal("participant"),
        v::literal("observer"),
    ])
}

fn features_validator() -> Validator {
    v::object([
        ("recording", v::boolean()),
        ("transcription", v::boolean()),
        ("maxParticipants", v::number()),
    ])
}

fn provider_validator() -> Validator {
    v::union([v::literal("webrtc"), v::literal("getstream")])
}

/// Parses a role argument; `co-host` (which the original stored silently
/// as `participant`) is refused.
fn parse_role_input(role: &str) -> Result<MeetingRole> {
    MeetingRole::parse(role).ok_or_else(|| {
        Error::validation(format!(
            "Role \"{role}\" is not supported: use host, participant or observer"
        ))
    })
}

/// The target of a participant operation: an existing, active user.
async fn require_target_user(db: &DbWriter, user: Id<Users>) -> Result<()> {
    let doc = db
        .get(user.raw())
        .await?
        .ok_or_else(|| Error::not_found(format!("User with ID {user} not found")))?;
    if doc.field("isActive") == Some(&Value::Boolean(false)) {
        return Err(Error::not_found(format!("User with ID {user} not found")));
    }
    Ok(())
}

fn ensure_not_final(meeting: &Meeting, what: &str) -> Result<()> {
    if meeting.state.is_final() {
        return Err(Error::conflict(format!(
            "Cannot {what}: the meeting is {}",
            meeting.state.as_str()
        )));
    }
    Ok(())
}

async fn insert_participant(
    db: &DbWriter,
    meeting: Id<Meetings>,
    user: Id<Users>,
    role: MeetingRole,
    now_ms: f64,
) -> Result<String> {
    let id = db
        .insert(
            "meetingParticipants",
            json!({
                "meetingId": meeting,
                "userId": user,
                "role": role.as_str(),
                "presence": "invited",
                "createdAt": now_ms,
            }),
        )
        .await?;
    Ok(id.encode())
}

async fn set_participant_count(
    db: &DbWriter,
    meeting: &Meeting,
    delta: f64,
    now_ms: f64,
) -> Result<()> {
    let count = (meeting.participant_count.unwrap_or(0.0) + delta).max(0.0);
    db.patch(
        meeting.id.raw(),
        json!({ "participantCount": count, "updatedAt": now_ms }),
    )
    .await
}

// ---------------------------------------------------------------- createMeeting

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateMeetingArgs {
    organizer_id: Option<Id<Users>>,
    title: String,
    description: Option<String>,
    scheduled_at: Option<f64>,
    duration: Option<f64>,
    participant_emails: Option<Vec<String>>,
    participant_ids: Option<Vec<Id<Users>>>,
    recording_enabled: Option<bool>,
    transcription_enabled: Option<bool>,
    max_participants: Option<f64>,
    meeting_type: Option<String>,
}

/// The provider and features a new meeting gets.
struct ProviderChoice {
    webrtc: bool,
    recording: bool,
    transcription: bool,
    max_participants: f64,
}

fn choose_provider(user: &CurrentUser, args: &CreateMeetingArgs) -> ProviderChoice {
    // The "paid plan" is an org admin by the token's claims (the original
    // trusted a client-supplied orgRole).
    let paid = user.org_role == Some(OrgRole::Admin) && user.org_id.is_some();
    let requested = args.max_participants;
    let large = requested.is_some_and(|n| n > super::WEBRTC_MAX_PARTICIPANTS)
        || matches!(
            args.meeting_type.as_deref(),
            Some("large-meeting" | "webinar")
        );
    let recording = args.recording_enabled.unwrap_or(false);
    let getstream = paid && (large || recording);
    let cap = if getstream {
        super::GETSTREAM_MAX_PARTICIPANTS
    } else {
        super::WEBRTC_MAX_PARTICIPANTS
    };
    ProviderChoice {
        webrtc: !getstream,
        recording: getstream && recording,
        transcription: args.transcription_enabled.unwrap_or(true),
        max_participants: requested.unwrap_or(cap).min(cap),
    }
}

fn validate_create(args: &CreateMeetingArgs, now_ms: f64) -> Result<()> {
    let title = args.title.trim();
    if title.is_empty() {
        return Err(Error::validation("Meeting title cannot be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::validation(format!(
            "Meeting title is too long: at most {MAX_TITLE_CHARS} characters"
        )));
    }
    if let Some(d) = &args.description
        && d.trim().chars().count() > MAX_DESCRIPTION_CHARS
    {
        return Err(Error::validation(format!(
            "Meeting description is too long: at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    if let Some(at) = args.scheduled_at
        && (!at.is_finite() || at < now_ms - SCHEDULE_SKEW_MS)
    {
        return Err(Error::validation("Cannot schedule a meeting in the past"));
    }
    if let Some(d) = args.duration
        && (!d.is_finite() || d <= 0.0 || d > super::MAX_DURATION_MS)
    {
        return Err(Error::validation(
            "duration must be between 1 ms and 24 hours (in milliseconds)",
        ));
    }
    if let Some(n) = args.max_participants
        && (!n.is_finite() || n < 1.0 || n.fract() != 0.0)
    {
        return Err(Error::validation(
            "maxParticipants must be a whole number of at least 1",
        ));
    }
    if let Some(t) = &args.meeting_type
        && !matches!(
            t.as_str(),
            "one-on-one" | "small-group" | "large-meeting" | "webinar"
        )
    {
        return Err(Error::validation(format!("Unknown meetingType \"{t}\"")));
    }
    let invitees = args.participant_ids.as_ref().map_or(0, Vec::len)
        + args.participant_emails.as_ref().map_or(0, Vec::len);
    if invitees > MAX_BATCH_PARTICIPANTS {
        return Err(Error::validation(format!(
            "At most {MAX_BATCH_PARTICIPANTS} participants can be invited at creation"
        )));
    }
    Ok(())
}

/// Users invited by email: active users of the caller's organization only
/// (so the call cannot probe which addresses have accounts elsewhere).
async fn users_by_email(
    db: &DbWriter,
    user: &CurrentUser,
    emails: &[String],
) -> Result<Vec<Id<Users>>> {
    let Some(org) = user.org_id.as_deref() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for email in emails {
        let email = email.trim().to_lowercase();
        if email.is_empty() {
            continue;
        }
        let docs = db
            .query("users")
            .with_index("by_email", |r| r.eq("email", email.as_str()))
            .take(10)
            .await?;
        for doc in docs {
            let same_org = doc.field("orgId").and_then(Value::as_str) == Some(org);
            let active = doc.field("isActive") != Some(&Value::Boolean(false));
            if same_org
                && active
                && let Some(id) = Id::new(doc.id())
            {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// @summary Creates a meeting with the caller as its host
///
/// @description Creates a meeting in state `scheduled` with the signed-in
/// caller as organizer and host (participant row with presence `invited`),
/// its `meetingState` (inactive) and a `meeting_created` event, and returns
/// its id with the chosen video provider and features. Authorization: any
/// signed-in, provisioned, active user; `organizerId`, if given, must be the
/// caller's own user id (`FORBIDDEN` otherwise — the original let anonymous
/// callers create meetings for anyone). The provider is GetStream only for
/// an organization admin (token claims) asking for recording, more than 4
/// participants or a `large-meeting`/`webinar`; otherwise free-tier WebRTC
/// (at most 4 participants, no recording). `participantIds` (active users)
/// are added as participants; `participantEmails` are matched only against
/// active users of the caller's organization, others are skipped. When
/// `scheduledAt` is more than ten minutes ahead a reminder job is scheduled
/// ten minutes before it. Errors: `UNAUTHORIZED` without a token or user,
/// `VALIDATION_ERROR` for an empty or over-long title (200 characters), a
/// start in the past, a duration outside 1 ms–24 h, `maxParticipants` < 1 or
/// more than 100 invitees, `NOT_FOUND` for an unknown participant id. Cost:
/// a handful of writes plus one per invitee.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "title": "Q1 planning kickoff",
///     "description": "Goals, owners and timeline for the first quarter",
///     "scheduledAt": 1768473000000,
///     "duration": 2700000
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "webrtcReady": true,
///     "videoProvider": "webrtc",
///     "features": {"recording": false, "transcription": true, "maxParticipants": 4}
///   }
/// }
/// ```
///
/// @example request-error
/// ```json
/// {"args": {"title": "   "}}
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "Meeting title cannot be empty",
///   "errorData": {"code": "VALIDATION_ERROR", "message": "Meeting title cannot be empty", "statusCode": 400}
/// }
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:createMeeting",
    args = v::object([
        ("organizerId", v::optional(v::id("users"))),
        ("title", v::string()),
        ("description", v::optional(v::string())),
        ("scheduledAt", v::optional(v::number())),
        ("duration", v::optional(v::number())),
        ("participantEmails", v::optional(v::array(v::string()))),
        ("participantIds", v::optional(v::array(v::id("users")))),
        ("recordingEnabled", v::optional(v::boolean())),
        ("transcriptionEnabled", v::optional(v::boolean())),
        ("maxParticipants", v::optional(v::number())),
        ("meetingType", v::optional(v::union([
            v::literal("one-on-one"),
            v::literal("small-group"),
            v::literal("large-meeting"),
            v::literal("webinar"),
        ]))),
    ]),
    returns = v::object([
        ("meetingId", v::id("meetings")),
        ("webrtcReady", v::boolean()),
        ("videoProvider", provider_validator()),
        ("features", features_validator()),
    ])
)]
async fn create_meeting(ctx: MutationCtx, args: CreateMeetingArgs) -> Result<serde_json::Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    if let Some(organizer) = args.organizer_id
        && organizer != user.id
    {
        return Err(Error::forbidden(
            "organizerId must be the caller: meetings cannot be created on someone else's behalf",
        ));
    }
    let now = ctx.now_ms();
    validate_create(&args, now)?;
    let choice = choose_provider(&user, &args);

    let mut invitees: Vec<Id<Users>> = Vec::new();
    for id in args.participant_ids.iter().flatten() {
        require_target_user(&ctx.db, *id).await?;
        invitees.push(*id);
    }
    if let Some(emails) = &args.participant_emails {
        invitees.extend(users_by_email(&ctx.db, &user, emails).await?);
    }
    let mut seen = std::collections::BTreeSet::new();
    seen.insert(user.id.to_string());
    invitees.retain(|id| seen.insert(id.to_string()));

    let mut doc = serde_json::Map::new();
    doc.insert("organizerId".into(), json!(user.id));
    doc.insert("title".into(), json!(args.title.trim()));
    if let Some(d) = args.description.as_deref().map(str::trim)
        && !d.is_empty()
    {
        doc.insert("description".into(), json!(d));
    }
    if let Some(at) = args.scheduled_at {
        doc.insert("scheduledAt".into(), json!(at));
    }
    doc.insert(
        "duration".into(),
        json!(args.duration.unwrap_or(super::DEFAULT_DURATION_MS)),
    );
    doc.insert("webrtcEnabled".into(), json!(choice.webrtc));
    doc.insert("state".into(), json!("scheduled"));
    doc.insert("participantCount".into(), json!(1 + invitees.len()));
    if let Some(org) = &user.org_id {
        doc.insert("orgId".into(), json!(org));
    }
    doc.insert("createdAt".into(), json!(now));
    doc.insert("updatedAt".into(), json!(now));
    let meeting_raw = ctx.db.insert("meetings", doc).await?;
    let meeting_id: Id<Meetings> =
        Id::new(meeting_raw).ok_or_else(|| Error::internal("meeting id of another table"))?;

    insert_participant(&ctx.db, meeting_id, user.id, MeetingRole::Host, now).await?;
    for invitee in &invitees {
        insert_participant(&ctx.db, meeting_id, *invitee, MeetingRole::Participant, now).await?;
    }
    ctx.db
        .insert(
            "meetingState",
            json!({
                "meetingId": meeting_id,
                "active": false,
                "topics": [],
                "recordingEnabled": choice.recording,
                "updatedAt": now,
            }),
        )
        .await?;
    track_event(
        &ctx.db,
        meeting_id,
        "meeting_created",
        Some(user.id),
        json!({
            "videoProvider": if choice.webrtc { "webrtc" } else { "getstream" },
            "invited": invitees.len(),
        }),
        now,
    )
    .await?;
    if let Some(at) = args.scheduled_at
        && at - REMINDER_LEAD_MS > now
    {
        ctx.scheduler
            .run_at(
                at - REMINDER_LEAD_MS,
                SEND_REMINDER_PATH,
                json!({ "meetingId": meeting_id, "scheduledAt": at }),
            )
            .await?;
    }
    Ok(json!({
        "meetingId": meeting_id,
        "webrtcReady": choice.webrtc,
        "videoProvider": if choice.webrtc { "webrtc" } else { "getstream" },
        "features": {
            "recording": choice.recording,
            "transcription": choice.transcription,
            "maxParticipants": choice.max_participants,
        },
    }))
}

// ---------------------------------------------------------------- participants

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddParticipantArgs {
    meeting_id: Id<Meetings>,
    user_id: Id<Users>,
    role: String,
}

/// Adds one participant; the caller has checked that it is a host and that
/// the meeting is not over.
async fn add_one(
    ctx: &MutationCtx,
    access: &Access,
    user: Id<Users>,
    role: MeetingRole,
) -> Result<String> {
    require_target_user(&ctx.db, user).await?;
    if find_participant(&ctx.db, access.meeting.id, user)
        .await?
        .is_some()
    {
        return Err(Error::validation(format!(
            "User {user} is already a participant of this meeting"
        )));
    }
    let now = ctx.now_ms();
    let id = insert_participant(&ctx.db, access.meeting.id, user, role, now).await?;
    track_event(
        &ctx.db,
        access.meeting.id,
        "participant_added",
        Some(access.user.id),
        json!({ "targetUserId": user.to_string(), "role": role.as_str() }),
        now,
    )
    .await?;
    Ok(id)
}

/// @summary Adds a user to a meeting as host, participant or observer
///
/// @description Adds `userId` to the meeting with `role` (`host`,
/// `participant` or `observer`) and presence `invited`, increments the
/// meeting's `participantCount` and records a `participant_added` event.
/// Returns the new participant row's id. Authorization: the caller must be a
/// host of the meeting (`FORBIDDEN` for non-participants,
/// `INSUFFICIENT_PERMISSIONS` for participants and observers, `UNAUTHORIZED`
/// without a token). Errors: `VALIDATION_ERROR` if the user already takes
/// part or for role `co-host` (which the original silently stored as
/// `participant`), `NOT_FOUND` for an unknown or deactivated user or
/// meeting, `CONFLICT` once the meeting is concluded or cancelled. The added
/// user's live queries of the meeting start succeeding at once. A few point
/// reads and two writes.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "userId": "9t3rk41mh68ymd9wetypndjsj5yzpk7prpc0",
///     "role": "participant"
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": {"participantId": "d9fgqrvf74r11dh6zqzyrwyhfr7xvmfkjbfg", "success": true}}
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:addParticipant",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("userId", v::id("users")),
        ("role", role_input_validator()),
    ]),
    returns = v::object([
        ("participantId", v::id("meetingParticipants")),
        ("success", v::boolean()),
    ])
)]
async fn add_participant(ctx: MutationCtx, args: AddParticipantArgs) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Host).await?;
    ensure_not_final(&access.meeting, "add participants")?;
    let role = parse_role_input(&args.role)?;
    let id = add_one(&ctx, &access, args.user_id, role).await?;
    set_participant_count(&ctx.db, &access.meeting, 1.0, ctx.now_ms()).await?;
    Ok(json!({ "participantId": id, "success": true }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddMultipleArgs {
    meeting_id: Id<Meetings>,
    participants: Vec<AddItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddItem {
    user_id: Id<Users>,
    role: String,
}

/// @summary Adds several users to a meeting in one transaction
///
/// @description Adds each `{userId, role}` of `participants` (at most 100)
/// like `meetings/lifecycle:addParticipant`, in one transaction. Entries
/// that cannot be added are skipped with a reason instead of failing the
/// call: `Already a participant`, `User not found` (unknown or
/// deactivated), `Duplicate in request`, or the role error for `co-host`.
/// Returns the new participant ids in order and the skipped entries;
/// `participantCount` grows by the number added. Authorization: the caller
/// must be a host (`FORBIDDEN` for non-participants,
/// `INSUFFICIENT_PERMISSIONS` for other roles, `UNAUTHORIZED` without a
/// token). Errors: `VALIDATION_ERROR` for more than 100 entries, `CONFLICT`
/// once the meeting is concluded or cancelled, `NOT_FOUND` for an unknown
/// meeting. About three reads and two writes per entry.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "participants": [
///       {"userId": "9t3rk41mh68ymd9wetypndjsj5yzpk7prpc0", "role": "participant"},
///       {"userId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0", "role": "observer"}
///     ]
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "added": ["d9fgqrvf74r11dh6zqzyrwyhfr7xvmfkjbfg"],
///     "skipped": [{"userId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0", "reason": "Already a participant"}],
///     "success": true
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:addMultipleParticipants",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("participants", v::array(v::object([
            ("userId", v::id("users")),
            ("role", role_input_validator()),
        ]))),
    ]),
    returns = v::object([
        ("added", v::array(v::id("meetingParticipants"))),
        ("skipped", v::array(v::object([
            ("userId", v::id("users")),
            ("reason", v::string()),
        ]))),
        ("success", v::boolean()),
    ])
)]
async fn add_multiple_participants(
    ctx: MutationCtx,
    args: AddMultipleArgs,
) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Host).await?;
    ensure_not_final(&access.meeting, "add participants")?;
    if args.participants.len() > MAX_BATCH_PARTICIPANTS {
        return Err(Error::validation(format!(
            "At most {MAX_BATCH_PARTICIPANTS} participants can be added per call"
        )));
    }
    let mut added = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for item in args.participants {
        if !seen.insert(item.user_id.to_string()) {
            skipped.push(json!({ "userId": item.user_id, "reason": "Duplicate in request" }));
            continue;
        }
        let outcome = match parse_role_input(&item.role) {
            Ok(role) => add_one(&ctx, &access, item.user_id, role).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(id) => added.push(id),
            Err(e) => {
                let reason = match e.code() {
                    ErrorCode::NotFound => "User not found".to_owned(),
                    ErrorCode::ValidationError if e.message().contains("already") => {
                        "Already a participant".to_owned()
                    }
                    ErrorCode::ValidationError => e.message().to_owned(),
                    _ => return Err(e),
                };
                skipped.push(json!({ "userId": item.user_id, "reason": reason }));
            }
        }
    }
    if !added.is_empty() {
        set_participant_count(&ctx.db, &access.meeting, added.len() as f64, ctx.now_ms()).await?;
    }
    Ok(json!({ "added": added, "skipped": skipped, "success": true }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetArgs {
    meeting_id: Id<Meetings>,
    user_id: Id<Users>,
}

/// The target's participant row, or `NOT_FOUND`.
async fn target_row(db: &DbWriter, meeting: Id<Meetings>, user: Id<Users>) -> Result<Participant> {
    find_participant(db, meeting, user)
        .await?
        .ok_or_else(|| {
            Error::not_found(format!(
                "User {user} is not a participant of meeting {meeting}"
            ))
        })?
        .parse()
}

/// Checks the host rules for taking the host role away from `target`
/// (removal or demotion): only the organizer may do it to another host,
/// and never to the last host.
async fn check_host_loss(db: &DbWriter, access: &Access, target: &Participant) -> Result<()> {
    if target.role() != MeetingRole::Host {
        return Ok(());
    }
    if target.user_id != access.user.id && access.meeting.organizer_id != access.user.id {
        return Err(Error::forbidden(
            "Only the meeting's organizer can remove or demote another host",
        ));
    }
    let hosts = host_rows(db, access.meeting.id).await?;
    if hosts.iter().all(|h| h.user_id == target.user_id) {
        return Err(Error::conflict(
            "The meeting must keep at least one host: promote another participant to host first",
        ));
    }
    Ok(())
}

/// @summary Removes a participant from a meeting
///
/// @description Deletes `userId`'s participant row, decrements
/// `participantCount`, records a `participant_removed` event and an audit
/// entry (`participant.removed`). The removed user loses access at once:
/// their live queries of the meeting (meeting, participants, chat) re-run
/// and fail with `FORBIDDEN`. Authorization: the caller must be a host
/// (`FORBIDDEN` for non-participants, `INSUFFICIENT_PERMISSIONS` for other
/// roles, `UNAUTHORIZED` without a token); only the organizer may remove
/// another host (`FORBIDDEN`). Errors: `CONFLICT` when the target is the
/// last host (the meeting would be left without one), `NOT_FOUND` when
/// the user is not a participant or the meeting does not exist. Allowed in
/// any meeting state. A few reads and three writes.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "userId": "9t3rk41mh68ymd9wetypndjsj5yzpk7prpc0"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": null}
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:removeParticipant",
    args = v::object([("meetingId", v::id("meetings")), ("userId", v::id("users"))]),
    returns = v::null()
)]
async fn remove_participant(ctx: MutationCtx, args: TargetArgs) -> Result<Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Host).await?;
    let target = target_row(&ctx.db, args.meeting_id, args.user_id).await?;
    check_host_loss(&ctx.db, &access, &target).await?;
    let now = ctx.now_ms();
    ctx.db.delete(target.id.raw()).await?;
    set_participant_count(&ctx.db, &access.meeting, -1.0, now).await?;
    track_event(
        &ctx.db,
        access.meeting.id,
        "participant_removed",
        Some(access.user.id),
        json!({ "targetUserId": args.user_id.to_string(), "role": target.role }),
        now,
    )
    .await?;
    record_audit(
        &ctx.db,
        access
            .audit("participant.removed", now)
            .with("targetUserId", args.user_id.to_string())
            .with("role", target.role.clone()),
    )
    .await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleArgs {
    meeting_id: Id<Meetings>,
    user_id: Id<Users>,
    new_role: String,
}

/// @summary Changes a participant's role in a meeting
///
/// @description Sets `userId`'s role to `newRole` (`host`, `participant` or
/// `observer`; the original could not set observer) and records a
/// `participant_role_changed` event and an audit entry
/// (`participant.role_changed`, with the caller as actor — the original
/// recorded the target). The change applies to the user's next call and
/// re-runs their live queries. Setting the current role is a no-op.
/// Authorization: the caller must be a host (`FORBIDDEN` for
/// non-participants, `INSUFFICIENT_PERMISSIONS` for other roles,
/// `UNAUTHORIZED` without a token); only the organizer may demote another
/// host (`FORBIDDEN`). Errors: `CONFLICT` when demoting the last host,
/// `NOT_FOUND` when the user is not a participant or the meeting does not
/// exist. A few reads and up to three writes.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "userId": "9t3rk41mh68ymd9wetypndjsj5yzpk7prpc0",
///     "newRole": "host"
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
    path = "meetings/lifecycle:updateParticipantRole",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("userId", v::id("users")),
        ("newRole", v::union([
            v::literal("host"),
            v::literal("participant"),
            v::literal("observer"),
        ])),
    ]),
    returns = v::null()
)]
async fn update_participant_role(ctx: MutationCtx, args: RoleArgs) -> Result<Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Host).await?;
    let new_role = parse_role_input(&args.new_role)?;
    let target = target_row(&ctx.db, args.meeting_id, args.user_id).await?;
    let old_role = target.role();
    if old_role == new_role {
        return Ok(Value::Null);
    }
    if new_role != MeetingRole::Host {
        check_host_loss(&ctx.db, &access, &target).await?;
    }
    let now = ctx.now_ms();
    ctx.db
        .patch(target.id.raw(), json!({ "role": new_role.as_str() }))
        .await?;
    track_event(
        &ctx.db,
        access.meeting.id,
        "participant_role_changed",
        Some(access.user.id),
        json!({
            "targetUserId": args.user_id.to_string(),
            "oldRole": old_role.as_str(),
            "newRole": new_role.as_str(),
        }),
        now,
    )
    .await?;
    record_audit(
        &ctx.db,
        access
            .audit("participant.role_changed", now)
            .with("targetUserId", args.user_id.to_string())
            .with("oldRole", old_role.as_str())
            .with("newRole", new_role.as_str()),
    )
    .await?;
    Ok(Value::Null)
}

// ---------------------------------------------------------------- state machine

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingArgs {
    meeting_id: Id<Meetings>,
}

/// Path of the auto-end job.
pub const AUTO_END_PATH: &str = "meetings/lifecycle:autoEndMeeting";
/// Path of the reminder job.
pub const SEND_REMINDER_PATH: &str = "meetings/lifecycle:sendMeetingReminder";

fn room_id(meeting: &Meeting) -> Option<String> {
    if meeting.webrtc_enabled == Some(true) {
        Some(format!("webrtc_{}", meeting.id))
    } else {
        meeting.stream_room_id.clone().filter(|s| !s.is_empty())
    }
}

/// @summary Starts a scheduled meeting
///
/// @description Moves the meeting from `scheduled` to `active`: sets
/// `meetingState.active` and `startedAt`, opens the meeting's transcription
/// session (`transcriptionSessions`, status `initializing`), records a
/// `meeting_started` event and schedules `meetings/lifecycle:autoEndMeeting`
/// to end it after its
/// `duration` (30 minutes by default) if nobody ends it first. Returns the
/// video provider and, for WebRTC meetings, the room id and ICE servers.
/// GetStream call creation and tokens come with the video-provider work:
/// a GetStream meeting currently returns `webrtcReady: false` and no
/// `roomInfo`. Authorization: the caller must be a host (`FORBIDDEN` for
/// non-participants, `INSUFFICIENT_PERMISSIONS` for other roles,
/// `UNAUTHORIZED` without a token). Errors: `CONFLICT` when the meeting is
/// already active, concluded or cancelled (there is no way back),
/// `NOT_FOUND` for an unknown meeting. Four writes plus the scheduled job.
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
///     "success": true,
///     "webrtcReady": true,
///     "videoProvider": "webrtc",
///     "roomInfo": {
///       "roomId": "webrtc_xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///       "iceServers": [
///         {"urls": "stun:stun.l.google.com:19302"},
///         {"urls": "stun:stun1.l.google.com:19302"}
///       ]
///     }
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:startMeeting",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::object([
        ("success", v::boolean()),
        ("webrtcReady", v::boolean()),
        ("videoProvider", provider_validator()),
        ("roomInfo", v::optional(v::object([
            ("roomId", v::optional(v::string())),
            ("iceServers", v::optional(ice_servers_validator())),
        ]))),
    ])
)]
async fn start_meeting(ctx: MutationCtx, args: MeetingArgs) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Host).await?;
    let meeting = &access.meeting;
    match meeting.state {
        MeetingStatus::Scheduled => {}
        MeetingStatus::Active => return Err(Error::conflict("Meeting is already active")),
        s => {
            return Err(Error::conflict(format!(
                "Cannot start a {} meeting",
                s.as_str()
            )));
        }
    }
    let now = ctx.now_ms();
    ctx.db
        .patch(
            meeting.id.raw(),
            json!({ "state": "active", "updatedAt": now }),
        )
        .await?;
    match state_doc(&ctx.db, meeting.id).await? {
        Some(state) => {
            ctx.db
                .patch(
                    state.id(),
                    json!({ "active": true, "startedAt": now, "updatedAt": now }),
                )
                .await?;
        }
        None => {
            ctx.db
                .insert(
                    "meetingState",
                    json!({
                        "meetingId": meeting.id,
                        "active": true,
                        "startedAt": now,
                        "topics": [],
                        "recordingEnabled": false,
                        "updatedAt": now,
                    }),
                )
                .await?;
        }
    }
    crate::transcripts::initialization::start_session(
        &ctx.db,
        meeting.id,
        meeting.webrtc_enabled == Some(true),
        now,
    )
    .await?;
    track_event(
        &ctx.db,
        meeting.id,
        "meeting_started",
        Some(access.user.id),
        json!({ "videoProvider": meeting.video_provider() }),
        now,
    )
    .await?;
    ctx.scheduler
        .run_after(
            Duration::from_millis(meeting.duration_ms() as u64),
            AUTO_END_PATH,
            json!({ "meetingId": meeting.id, "startedAt": now }),
        )
        .await?;
    let webrtc = meeting.webrtc_enabled == Some(true);
    let mut out = json!({
        "success": true,
        "webrtcReady": webrtc,
        "videoProvider": meeting.video_provider(),
    });
    if webrtc {
        out["roomInfo"] = json!({ "roomId": room_id(meeting), "iceServers": ice_servers() });
    }
    Ok(out)
}

/// Concludes an active meeting: state, meetingState, presence of everyone
/// still joined, and the event. Returns the duration in ms.
pub(crate) async fn conclude(
    db: &DbWriter,
    meeting: &Meeting,
    actor: Option<Id<Users>>,
    event: &str,
    now: f64,
) -> Result<Option<f64>> {
    db.patch(
        meeting.id.raw(),
        json!({ "state": "concluded", "updatedAt": now }),
    )
    .await?;
    let mut duration = None;
    if let Some(state) = state_doc(db, meeting.id).await? {
        duration = state
            .field("startedAt")
            .and_then(Value::as_f64)
            .map(|s| (now - s).max(0.0));
        db.patch(
            state.id(),
            json!({ "active": false, "endedAt": now, "updatedAt": now }),
        )
        .await?;
    }
    let joined = db
        .query("meetingParticipants")
        .with_index("by_meeting", |r| r.eq("meetingId", meeting.id.to_value()))
        .filter(|d| d.field("presence").and_then(Value::as_str) == Some("joined"))
        .collect()
        .await?;
    for row in joined {
        db.patch(row.id(), json!({ "presence": "left", "leftAt": now }))
            .await?;
    }
    let mut metadata = serde_json::Map::new();
    if let Some(d) = duration {
        metadata.insert("durationMs".into(), json!(d));
    }
    track_event(
        db,
        meeting.id,
        event,
        actor,
        serde_json::Value::Object(metadata),
        now,
    )
    .await?;
    Ok(duration)
}

/// Schedules the meeting's transcript segments to be built shortly after
/// it ended (`transcripts/aggregation:aggregateTranscriptSegments`).
async fn schedule_transcript_aggregation(ctx: &MutationCtx, meeting: Id<Meetings>) -> Result<()> {
    ctx.scheduler
        .run_after(
            crate::transcripts::aggregation::AGGREGATE_DELAY,
            crate::transcripts::aggregation::AGGREGATE_PATH,
            json!({ "meetingId": meeting }),
        )
        .await?;
    Ok(())
}

/// @summary Ends an active meeting
///
/// @description Moves the meeting from `active` to `concluded` (final):
/// clears `meetingState.active`, sets `endedAt`, marks everyone still
/// joined as `left`, records a `meeting_ended` event, and schedules the
/// transcript's segment aggregation 5 seconds later. Returns the
/// meeting's duration in ms (from `startedAt`). The pending auto-end job
/// then finds the meeting concluded and does nothing. Authorization: the
/// caller must be a host (`FORBIDDEN` for non-participants,
/// `INSUFFICIENT_PERMISSIONS` for other roles, `UNAUTHORIZED` without a
/// token). Errors: `CONFLICT` unless the meeting is active (a concluded or
/// cancelled meeting never comes back), `NOT_FOUND` for an unknown meeting.
/// Writes one document per joined participant plus three.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": {"success": true, "duration": 0}}
/// ```
///
/// @example request-error
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg"}}
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "Can only end active meetings (this one is concluded)",
///   "errorData": {"code": "CONFLICT", "message": "Can only end active meetings (this one is concluded)", "statusCode": 409}
/// }
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:endMeeting",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::object([("success", v::boolean()), ("duration", v::optional(v::number()))])
)]
async fn end_meeting(ctx: MutationCtx, args: MeetingArgs) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Host).await?;
    if access.meeting.state != MeetingStatus::Active {
        return Err(Error::conflict(format!(
            "Can only end active meetings (this one is {})",
            access.meeting.state.as_str()
        )));
    }
    let duration = conclude(
        &ctx.db,
        &access.meeting,
        Some(access.user.id),
        "meeting_ended",
        ctx.now_ms(),
    )
    .await?;
    schedule_transcript_aggregation(&ctx, access.meeting.id).await?;
    let mut out = json!({ "success": true });
    if let Some(d) = duration {
        out["duration"] = json!(d);
    }
    Ok(out)
}

/// @summary Cancels a scheduled meeting
///
/// @description Moves the meeting from `scheduled` to `cancelled` (final),
/// records a `meeting_cancelled` event and an audit entry
/// (`meeting.cancelled`). A pending reminder then does nothing.
/// Participants keep read access to the cancelled meeting and its chat.
/// Authorization: the caller must be a host (`FORBIDDEN` for
/// non-participants, `INSUFFICIENT_PERMISSIONS` for other roles,
/// `UNAUTHORIZED` without a token). Errors: `CONFLICT` for an active
/// meeting (end it instead) or one already concluded or cancelled,
/// `NOT_FOUND` for an unknown meeting. Three writes.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": null}
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:cancelMeeting",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::null()
)]
async fn cancel_meeting(ctx: MutationCtx, args: MeetingArgs) -> Result<Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Host).await?;
    match access.meeting.state {
        MeetingStatus::Scheduled => {}
        MeetingStatus::Active => {
            return Err(Error::conflict(
                "Cannot cancel an active meeting: end it instead",
            ));
        }
        s => {
            return Err(Error::conflict(format!(
                "Cannot cancel a {} meeting",
                s.as_str()
            )));
        }
    }
    let now = ctx.now_ms();
    ctx.db
        .patch(
            access.meeting.id.raw(),
            json!({ "state": "cancelled", "updatedAt": now }),
        )
        .await?;
    track_event(
        &ctx.db,
        access.meeting.id,
        "meeting_cancelled",
        Some(access.user.id),
        json!({}),
        now,
    )
    .await?;
    record_audit(&ctx.db, access.audit("meeting.cancelled", now)).await?;
    Ok(Value::Null)
}

// ---------------------------------------------------------------- presence

/// @summary Joins an active meeting
///
/// @description Marks the caller's presence as `joined` (with `joinedAt`)
/// and records a `participant_joined` event; joining again after leaving is
/// allowed. Returns whether the meeting's WebRTC room is usable
/// (`webrtcReady` is false for GetStream meetings until the video-provider
/// integration lands). Authorization: any participant of the meeting,
/// observers included (`FORBIDDEN` for non-participants, `UNAUTHORIZED`
/// without a token). Errors: `MEETING_NOT_ACTIVE` unless the meeting is
/// active, `NOT_FOUND` for an unknown meeting. Two writes.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": {"success": true, "webrtcReady": true}}
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:joinMeeting",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::object([("success", v::boolean()), ("webrtcReady", v::boolean())])
)]
async fn join_meeting(ctx: MutationCtx, args: MeetingArgs) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    if access.meeting.state != MeetingStatus::Active {
        return Err(Error::app(
            ErrorCode::MeetingNotActive,
            format!(
                "Cannot join: the meeting is {}",
                access.meeting.state.as_str()
            ),
        ));
    }
    let now = ctx.now_ms();
    if access.participant.presence != super::Presence::Joined {
        ctx.db
            .patch(
                access.participant.id.raw(),
                json!({ "presence": "joined", "joinedAt": now }),
            )
            .await?;
        track_event(
            &ctx.db,
            access.meeting.id,
            "participant_joined",
            Some(access.user.id),
            json!({}),
            now,
        )
        .await?;
    }
    Ok(json!({
        "success": true,
        "webrtcReady": access.meeting.webrtc_enabled == Some(true),
    }))
}

/// @summary Leaves a meeting
///
/// @description Marks the caller's presence as `left` (with `leftAt`) and
/// records a `participant_left` event; the caller keeps their role and may
/// join again. Allowed in any meeting state. Authorization: any participant,
/// observers included (`FORBIDDEN` for non-participants, `UNAUTHORIZED`
/// without a token). Errors: `CONFLICT` when the caller is the only host of
/// an active meeting (promote someone to host or end the meeting first),
/// `NOT_FOUND` for an unknown meeting. Up to two writes.
///
/// @example request
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": {"success": true}}
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:leaveMeeting",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::object([("success", v::boolean())])
)]
async fn leave_meeting(ctx: MutationCtx, args: MeetingArgs) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    if access.role == MeetingRole::Host && access.meeting.state == MeetingStatus::Active {
        let hosts = host_rows(&ctx.db, access.meeting.id).await?;
        if hosts.iter().all(|h| h.user_id == access.user.id) {
            return Err(Error::conflict(
                "You are the only host: promote another participant to host or end the meeting before leaving",
            ));
        }
    }
    let now = ctx.now_ms();
    if access.participant.presence != super::Presence::Left {
        ctx.db
            .patch(
                access.participant.id.raw(),
                json!({ "presence": "left", "leftAt": now }),
            )
            .await?;
        track_event(
            &ctx.db,
            access.meeting.id,
            "participant_left",
            Some(access.user.id),
            json!({}),
            now,
        )
        .await?;
    }
    Ok(json!({ "success": true }))
}

/// @summary Gets the video connection details of an active meeting
///
/// @description Returns the meeting's video provider, connection details
/// and features. Read-only: the original declared it as a mutation and the
/// web app calls it as one (`convex.mutation`), so it stays a mutation at
/// this path, but it writes nothing. WebRTC meetings get the room id
/// `webrtc_<meetingId>` and the STUN servers (TURN comes with the
/// video-provider work); GetStream meetings get their call id once it
/// exists and, for now, no `streamToken` (GetStream tokens are minted by
/// the video-provider functions, not here). `features.recording` is the
/// meeting's current recording flag; `maxParticipants` is 4 for WebRTC and
/// 100 for GetStream. Authorization: any participant, observers included
/// (`FORBIDDEN` for non-participants, `UNAUTHORIZED` without a token).
/// Errors: `MEETING_NOT_ACTIVE` unless the meeting is active, `NOT_FOUND`
/// for an unknown meeting. Three point reads.
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
///     "success": true,
///     "videoProvider": "webrtc",
///     "connectionInfo": {
///       "roomId": "webrtc_xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///       "iceServers": [
///         {"urls": "stun:stun.l.google.com:19302"},
///         {"urls": "stun:stun1.l.google.com:19302"}
///       ]
///     },
///     "features": {"recording": false, "transcription": true, "maxParticipants": 4}
///   }
/// }
/// ```
#[macros::function(
    mutation,
    path = "meetings/lifecycle:getMeetingConnectionInfo",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::object([
        ("success", v::boolean()),
        ("videoProvider", provider_validator()),
        ("connectionInfo", v::object([
            ("roomId", v::optional(v::string())),
            ("iceServers", v::optional(ice_servers_validator())),
            ("streamToken", v::optional(v::string())),
        ])),
        ("features", features_validator()),
    ])
)]
async fn get_meeting_connection_info(
    ctx: MutationCtx,
    args: MeetingArgs,
) -> Result<serde_json::Value> {
    let access = require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer).await?;
    let meeting = &access.meeting;
    if meeting.state != MeetingStatus::Active {
        return Err(Error::app(
            ErrorCode::MeetingNotActive,
            format!("Meeting is not active (it is {})", meeting.state.as_str()),
        ));
    }
    let recording = state_doc(&ctx.db, meeting.id)
        .await?
        .and_then(|d| d.field("recordingEnabled").and_then(Value::as_bool))
        .unwrap_or(false);
    let webrtc = meeting.webrtc_enabled == Some(true);
    let mut connection = serde_json::Map::new();
    if let Some(room) = room_id(meeting) {
        connection.insert("roomId".into(), json!(room));
    }
    if webrtc {
        connection.insert("iceServers".into(), ice_servers());
    }
    Ok(json!({
        "success": true,
        "videoProvider": meeting.video_provider(),
        "connectionInfo": connection,
        "features": {
            "recording": recording,
            "transcription": true,
            "maxParticipants": if webrtc {
                super::WEBRTC_MAX_PARTICIPANTS
            } else {
                super::GETSTREAM_MAX_PARTICIPANTS
            },
        },
    }))
}

// ---------------------------------------------------------------- internal

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamRoomArgs {
    meeting_id: Id<Meetings>,
    stream_room_id: String,
}

/// @summary Sets the GetStream call id of a meeting
///
/// @description Internal: stores `streamRoomId` on the meeting (used by the
/// video-provider integration once a call exists). `NOT_FOUND` for an
/// unknown meeting.
#[macros::function(
    internal_mutation,
    path = "meetings/lifecycle:updateStreamRoomId",
    args = v::object([("meetingId", v::id("meetings")), ("streamRoomId", v::string())]),
    returns = v::null()
)]
async fn update_stream_room_id(ctx: MutationCtx, args: StreamRoomArgs) -> Result<Value> {
    load_meeting(&ctx.db, args.meeting_id).await?;
    ctx.db
        .patch(
            args.meeting_id.raw(),
            json!({ "streamRoomId": args.stream_room_id, "updatedAt": ctx.now_ms() }),
        )
        .await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AutoEndArgs {
    meeting_id: Id<Meetings>,
    started_at: f64,
}

/// @summary Ends a meeting whose planned duration has passed
///
/// @description Internal, scheduled by `startMeeting` at `startedAt +
/// duration`. Concludes the meeting (like `endMeeting`, event
/// `meeting_auto_ended`) only if it is still active and is the same run
/// (`meetingState.startedAt == startedAt`); otherwise it does nothing, so a
/// manual end, a missing meeting or a duplicate run are harmless. Returns
/// whether it ended the meeting.
#[macros::function(
    internal_mutation,
    path = "meetings/lifecycle:autoEndMeeting",
    args = v::object([("meetingId", v::id("meetings")), ("startedAt", v::number())]),
    returns = v::object([("ended", v::boolean())])
)]
async fn auto_end_meeting(ctx: MutationCtx, args: AutoEndArgs) -> Result<serde_json::Value> {
    let Some(doc) = ctx.db.get(args.meeting_id.raw()).await? else {
        return Ok(json!({ "ended": false }));
    };
    let meeting: Meeting = doc.parse()?;
    if meeting.state != MeetingStatus::Active {
        return Ok(json!({ "ended": false }));
    }
    let started = state_doc(&ctx.db, meeting.id)
        .await?
        .and_then(|d| d.field("startedAt").and_then(Value::as_f64));
    if started != Some(args.started_at) {
        return Ok(json!({ "ended": false }));
    }
    conclude(&ctx.db, &meeting, None, "meeting_auto_ended", ctx.now_ms()).await?;
    schedule_transcript_aggregation(&ctx, meeting.id).await?;
    Ok(json!({ "ended": true }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReminderArgs {
    meeting_id: Id<Meetings>,
    scheduled_at: f64,
}

/// @summary Records the reminder of an upcoming meeting
///
/// @description Internal, scheduled by `createMeeting` ten minutes before
/// `scheduledAt`. If the meeting is still `scheduled` for that time and no
/// reminder was recorded yet, records a `meeting_reminder` event with the
/// number of participants to remind (the notification channel reads these
/// events); otherwise does nothing. Returns whether a reminder was recorded.
#[macros::function(
    internal_mutation,
    path = "meetings/lifecycle:sendMeetingReminder",
    args = v::object([("meetingId", v::id("meetings")), ("scheduledAt", v::number())]),
    returns = v::object([("sent", v::boolean())])
)]
async fn send_meeting_reminder(ctx: MutationCtx, args: ReminderArgs) -> Result<serde_json::Value> {
    let Some(doc) = ctx.db.get(args.meeting_id.raw()).await? else {
        return Ok(json!({ "sent": false }));
    };
    let meeting: Meeting = doc.parse()?;
    if meeting.state != MeetingStatus::Scheduled || meeting.scheduled_at != Some(args.scheduled_at)
    {
        return Ok(json!({ "sent": false }));
    }
    let already = ctx
        .db
        .query("meetingEvents")
        .with_index("by_meeting_and_event", |r| {
            r.eq("meetingId", meeting.id.to_value())
                .eq("event", "meeting_reminder")
        })
        .filter(move |d| {
            d.field("metadata.scheduledAt").and_then(Value::as_f64) == Some(args.scheduled_at)
        })
        .first()
        .await?;
    if already.is_some() {
        return Ok(json!({ "sent": false }));
    }
    let recipients = ctx
        .db
        .query("meetingParticipants")
        .with_index("by_meeting", |r| r.eq("meetingId", meeting.id.to_value()))
        .collect()
        .await?
        .len();
    track_event(
        &ctx.db,
        meeting.id,
        "meeting_reminder",
        None,
        json!({ "scheduledAt": args.scheduled_at, "recipients": recipients }),
        ctx.now_ms(),
    )
    .await?;
    Ok(json!({ "sent": true }))
}

/// Registers `meetings/lifecycle:*`.
pub fn register(r: &mut Registry) {
    r.register(create_meeting_spec());
    r.register(add_participant_spec());
    r.register(add_multiple_participants_spec());
    r.register(remove_participant_spec());
    r.register(update_participant_role_spec());
    r.register(start_meeting_spec());
    r.register(end_meeting_spec());
    r.register(cancel_meeting_spec());
    r.register(join_meeting_spec());
    r.register(leave_meeting_spec());
    r.register(get_meeting_connection_info_spec());
    r.register(update_stream_room_id_spec());
    r.register(auto_end_meeting_spec());
    r.register(send_meeting_reminder_spec());
}
