//! `meetings/queries:*`: reading meetings and their participants.
//!
//! Every public query checks the caller's participant row through the
//! transaction, so a live query re-runs (and fails with `FORBIDDEN`) as soon
//! as the caller is removed. Results are whole documents plus the caller's
//! role: the return validators derive from the table schema (the original's
//! omitted `_creationTime`, `webrtcEnabled`, `streamRoomId` and
//! `averageRating` and rejected real documents).

use std::collections::BTreeMap;

use database::{Document, Order};
use errors::{Error, Result};
use runtime::{QueryCtx, Registry};
use serde::Deserialize;
use values::{Validator, Value, v};

use super::{
    MeetingStatus, Participant, access_for, meeting_fields, participant_fields, state_doc,
    with_system_fields,
};
use crate::auth::{MeetingRole, require_user};
use crate::ids::{Id, Meetings};

/// Default and largest `limit` of `listUserMeetings`.
pub const DEFAULT_LIST_LIMIT: usize = 50;
/// Largest `limit` of `listUserMeetings`.
pub const MAX_LIST_LIMIT: usize = 200;
/// How many of the caller's most recent participations `listUserMeetings`
/// looks at.
pub const MAX_PARTICIPATIONS_SCANNED: usize = 1_000;

fn role_and_presence() -> Vec<(&'static str, Validator)> {
    vec![
        (
            "userRole",
            v::union([
                v::literal("host"),
                v::literal("participant"),
                v::literal("observer"),
            ]),
        ),
        (
            "userPresence",
            v::union([
                v::literal("invited"),
                v::literal("joined"),
                v::literal("left"),
            ]),
        ),
    ]
}

fn meeting_view_validator(extra: Vec<(&'static str, Validator)>) -> Validator {
    let mut fields = meeting_fields();
    fields.extend(role_and_presence());
    fields.extend(extra);
    with_system_fields("meetings", fields)
}

/// A document's value with extra fields.
fn extend(doc: Document, extra: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    let mut value = doc.into_value();
    if let Value::Object(map) = &mut value {
        for (k, v) in extra {
            map.insert(k.to_owned(), v);
        }
    }
    value
}

/// A meeting as its participants see it: the organizer's organization id
/// only for members of that organization (participants may come from
/// other organizations).
fn meeting_view(
    doc: Document,
    caller: &crate::auth::CurrentUser,
    extra: impl IntoIterator<Item = (&'static str, Value)>,
) -> Value {
    let mut value = extend(doc, extra);
    if let Value::Object(map) = &mut value {
        let same_org = match (map.get("orgId"), caller.org_id.as_deref()) {
            (Some(Value::String(org)), Some(mine)) => org == mine,
            _ => false,
        };
        if !same_org {
            map.remove("orgId");
        }
    }
    value
}

fn role_fields(p: &Participant) -> [(&'static str, Value); 2] {
    [
        ("userRole", Value::from(p.role().as_str())),
        ("userPresence", Value::from(p.presence.as_str())),
    ]
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingArgs {
    meeting_id: Id<Meetings>,
}

/// @summary Gets a meeting with the caller's role in it
///
/// @description Returns the meeting document (every stored field, including
/// `_creationTime`; `orgId` only to members of that organization) plus the
/// caller's `userRole` and `userPresence` and
/// `activeWebRTCSessions` (0 until WebRTC signaling lands), or null when no
/// such meeting exists. Authorization: any participant — host, participant
/// or observer; a signed-in non-participant gets `FORBIDDEN` (organization
/// admins included), no token `UNAUTHORIZED`, a deactivated account
/// `FORBIDDEN`. As a live query it updates when the meeting or the caller's
/// participant row changes, and fails with `FORBIDDEN` once the caller is
/// removed. Three point reads.
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
///     "_id": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "_creationTime": 1768469400000.001,
///     "organizerId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///     "title": "Q1 planning kickoff",
///     "description": "Goals, owners and timeline for the first quarter",
///     "scheduledAt": 1768473000000,
///     "duration": 2700000,
///     "webrtcEnabled": true,
///     "state": "scheduled",
///     "participantCount": 1,
///     "orgId": "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX",
///     "createdAt": 1768469400000,
///     "updatedAt": 1768469400000,
///     "userRole": "host",
///     "userPresence": "invited",
///     "activeWebRTCSessions": 0
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "meetings/queries:getMeeting",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::union([
        meeting_view_validator(vec![("activeWebRTCSessions", v::number())]),
        v::null(),
    ])
)]
async fn get_meeting(ctx: QueryCtx, args: MeetingArgs) -> Result<Value> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let Some(doc) = ctx.db.get(args.meeting_id.raw()).await? else {
        return Ok(Value::Null);
    };
    let access = access_for(&ctx.db, user, args.meeting_id, MeetingRole::Observer).await?;
    let mut extra = role_fields(&access.participant).to_vec();
    extra.push(("activeWebRTCSessions", Value::Float64(0.0)));
    Ok(meeting_view(doc, &access.user, extra))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListArgs {
    state: Option<MeetingStatus>,
    limit: Option<f64>,
}

/// @summary Lists the meetings the caller takes part in, newest first
///
/// @description Returns the meetings in which the caller has a participant
/// row (any role), optionally only those in `state`, sorted by `createdAt`
/// descending, at most `limit` (default 50, at most 200). Each item is the
/// whole meeting document (`orgId` only when the caller belongs to that
/// organization) plus the caller's `userRole` and `userPresence`
/// (the original's return validator dropped `_creationTime` and other
/// stored fields and failed on real documents). Authorization: any
/// signed-in, provisioned, active user; only their own meetings are
/// listed (`UNAUTHORIZED` without a token). Looks at the caller's 1,000
/// most recent participations, with one point read per meeting; as a live
/// query it updates when the caller is added to or removed from a meeting
/// or one of those meetings changes. `VALIDATION_ERROR` for a `limit` below
/// 1.
///
/// @example request
/// ```json
/// {"args": {"state": "scheduled", "limit": 10}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": [
///     {
///       "_id": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///       "_creationTime": 1768469400000.001,
///       "organizerId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///       "title": "Q1 planning kickoff",
///       "duration": 1800000,
///       "webrtcEnabled": true,
///       "state": "scheduled",
///       "participantCount": 1,
///       "orgId": "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX",
///       "createdAt": 1768469400000,
///       "updatedAt": 1768469400000,
///       "userRole": "host",
///       "userPresence": "invited"
///     }
///   ]
/// }
/// ```
#[macros::function(
    query,
    path = "meetings/queries:listUserMeetings",
    args = v::object([
        ("state", v::optional(v::union([
            v::literal("scheduled"),
            v::literal("active"),
            v::literal("concluded"),
            v::literal("cancelled"),
        ]))),
        ("limit", v::optional(v::number())),
    ]),
    returns = v::array(meeting_view_validator(Vec::new()))
)]
async fn list_user_meetings(ctx: QueryCtx, args: ListArgs) -> Result<Vec<Value>> {
    let user = require_user(&ctx.db, &ctx.auth).await?;
    let limit = match args.limit {
        None => DEFAULT_LIST_LIMIT,
        Some(n) if n.is_finite() && n >= 1.0 => (n as usize).min(MAX_LIST_LIMIT),
        Some(_) => return Err(Error::validation("limit must be at least 1")),
    };
    let rows = ctx
        .db
        .query("meetingParticipants")
        .with_index("by_user", |r| r.eq("userId", user.id.to_value()))
        .order(Order::Desc)
        .take(MAX_PARTICIPATIONS_SCANNED)
        .await?;
    let mut out: Vec<(f64, Value)> = Vec::new();
    for row in rows {
        let participant: Participant = row.parse()?;
        let Some(doc) = ctx.db.get(participant.meeting_id.raw()).await? else {
            continue;
        };
        let meeting: super::Meeting = doc.parse()?;
        if args.state.is_some_and(|s| s != meeting.state) {
            continue;
        }
        let created = doc
            .field("createdAt")
            .and_then(Value::as_f64)
            .unwrap_or_else(|| doc.creation_time());
        out.push((created, meeting_view(doc, &user, role_fields(&participant))));
    }
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    out.truncate(limit);
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

fn participant_view_validator() -> Validator {
    let mut fields = participant_fields();
    fields.extend([
        (
            "user",
            v::object([
                ("_id", v::id("users")),
                ("displayName", v::optional(v::string())),
                ("avatarUrl", v::optional(v::string())),
            ]),
        ),
        ("webrtcConnected", v::boolean()),
        ("webrtcSessionCount", v::number()),
    ]);
    with_system_fields("meetingParticipants", fields)
}

/// @summary Lists the participants of a meeting with their public profile
///
/// @description Returns every participant row of the meeting (role,
/// presence, `joinedAt`/`leftAt`) in the order they were added, each with
/// `user` (`_id`, `displayName` when set, and `avatarUrl` when set and the
/// user's profile is public — never email or token ids) and the WebRTC connection summary (`webrtcConnected`
/// false and `webrtcSessionCount` 0 until WebRTC signaling lands). Rows
/// whose user no longer exists are skipped. Authorization: any participant,
/// observers included (`FORBIDDEN` for non-participants, `UNAUTHORIZED`
/// without a token). One index range plus one point read per participant
/// (at most a few hundred); as a live query it updates on adds, removals,
/// role and presence changes, and fails with `FORBIDDEN` once the caller is
/// removed.
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
///   "value": [
///     {
///       "_id": "g40tq3tzqm7qh6f65p79s3fdnw7xvmfkx4cg",
///       "_creationTime": 1768469400000.002,
///       "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///       "userId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///       "role": "host",
///       "presence": "invited",
///       "createdAt": 1768469400000,
///       "user": {"_id": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0", "displayName": "Ada Lovelace"},
///       "webrtcConnected": false,
///       "webrtcSessionCount": 0
///     },
///     {
///       "_id": "d9fgqrvf74r11dh6zqzyrwyhfr7xvmfkjbfg",
///       "_creationTime": 1768469400000.003,
///       "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///       "userId": "9t3rk41mh68ymd9wetypndjsj5yzpk7prpc0",
///       "role": "participant",
///       "presence": "invited",
///       "createdAt": 1768469400000,
///       "user": {"_id": "9t3rk41mh68ymd9wetypndjsj5yzpk7prpc0", "displayName": "Grace Hopper"},
///       "webrtcConnected": false,
///       "webrtcSessionCount": 0
///     }
///   ]
/// }
/// ```
#[macros::function(
    query,
    path = "meetings/queries:listMeetingParticipants",
    access = crate::meetings::observer_access,
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::array(participant_view_validator())
)]
async fn list_meeting_participants(ctx: QueryCtx, args: MeetingArgs) -> Result<Vec<Value>> {
    let rows = ctx
        .db
        .query("meetingParticipants")
        .with_index("by_meeting", |r| {
            r.eq("meetingId", args.meeting_id.to_value())
        })
        .collect()
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let participant: Participant = row.parse()?;
        let Some(user) = ctx.db.get(participant.user_id.raw()).await? else {
            continue;
        };
        let mut summary = BTreeMap::new();
        summary.insert("_id".to_owned(), participant.user_id.to_value());
        if let Some(Value::String(name)) = user.field("displayName") {
            summary.insert("displayName".to_owned(), Value::String(name.clone()));
        }
        // The avatar follows the user's privacy setting, as everywhere else.
        if let Some(Value::String(url)) = user.field("avatarUrl")
            && crate::settings::profile_public(&ctx.db, participant.user_id).await?
        {
            summary.insert("avatarUrl".to_owned(), Value::String(url.clone()));
        }
        out.push(extend(
            row,
            [
                ("user", Value::Object(summary)),
                ("webrtcConnected", Value::Boolean(false)),
                ("webrtcSessionCount", Value::Float64(0.0)),
            ],
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------- internal

/// @summary Gets a meeting document by id
///
/// @description Internal: the meeting document or null. No authorization:
/// callers (other domains' internal functions) check access themselves.
#[macros::function(
    internal_query,
    path = "meetings/queries:getMeetingById",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::union([super::meeting_doc_validator(), v::null()])
)]
async fn get_meeting_by_id(ctx: QueryCtx, args: MeetingArgs) -> Result<Value> {
    Ok(ctx
        .db
        .get(args.meeting_id.raw())
        .await?
        .map_or(Value::Null, Document::into_value))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParticipantLookupArgs {
    meeting_id: Id<Meetings>,
    workos_user_id: String,
}

/// @summary Gets a user's participant row by WorkOS user id
///
/// @description Internal: the participant row of the user whose
/// `workosUserId` is given, or null. For actions, which resolve their
/// caller's identity themselves.
#[macros::function(
    internal_query,
    path = "meetings/queries:getMeetingParticipant",
    args = v::object([("meetingId", v::id("meetings")), ("workosUserId", v::string())]),
    returns = v::union([super::participant_doc_validator(), v::null()])
)]
async fn get_meeting_participant(ctx: QueryCtx, args: ParticipantLookupArgs) -> Result<Value> {
    let Some(user) = ctx
        .db
        .query("users")
        .with_index("by_workos_id", |r| {
            r.eq("workosUserId", args.workos_user_id.as_str())
        })
        .first()
        .await?
    else {
        return Ok(Value::Null);
    };
    let Some(user_id) = Id::new(user.id()) else {
        return Ok(Value::Null);
    };
    Ok(super::find_participant(&ctx.db, args.meeting_id, user_id)
        .await?
        .map_or(Value::Null, Document::into_value))
}

/// @summary Gets every participant row of a meeting
///
/// @description Internal: all participant rows of the meeting, in the order
/// they were added.
#[macros::function(
    internal_query,
    path = "meetings/queries:getMeetingParticipants",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::array(super::participant_doc_validator())
)]
async fn get_meeting_participants(ctx: QueryCtx, args: MeetingArgs) -> Result<Vec<Value>> {
    let rows = ctx
        .db
        .query("meetingParticipants")
        .with_index("by_meeting", |r| {
            r.eq("meetingId", args.meeting_id.to_value())
        })
        .collect()
        .await?;
    Ok(rows.into_iter().map(Document::into_value).collect())
}

/// @summary Gets the runtime state of a meeting with derived statistics
///
/// @description Internal (for prompts and analytics): the `meetingState`
/// document plus `participantCount` (rows), `averageSpeakingTime`
/// (`speakingStats.totalMs / participants`) and WebRTC session counts (0
/// until signaling lands), or null. The original also accepted a user
/// token here; it is internal only now.
#[macros::function(
    internal_query,
    path = "meetings/queries:getMeetingState",
    args = v::object([("meetingId", v::id("meetings"))]),
    returns = v::union([
        {
            let mut f = super::meeting_state_fields();
            f.extend([
                ("totalWebRTCSessions", v::number()),
                ("connectedWebRTCSessions", v::number()),
                ("participantCount", v::number()),
                ("averageSpeakingTime", v::number()),
            ]);
            with_system_fields("meetingState", f)
        },
        v::null(),
    ])
)]
async fn get_meeting_state(ctx: QueryCtx, args: MeetingArgs) -> Result<Value> {
    let Some(state) = state_doc(&ctx.db, args.meeting_id).await? else {
        return Ok(Value::Null);
    };
    let participants = ctx
        .db
        .query("meetingParticipants")
        .with_index("by_meeting", |r| {
            r.eq("meetingId", args.meeting_id.to_value())
        })
        .collect()
        .await?
        .len();
    let total = state
        .field("speakingStats.totalMs")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    Ok(extend(
        state,
        [
            ("totalWebRTCSessions", Value::Float64(0.0)),
            ("connectedWebRTCSessions", Value::Float64(0.0)),
            ("participantCount", Value::Float64(participants as f64)),
            (
                "averageSpeakingTime",
                Value::Float64(total / (participants.max(1) as f64)),
            ),
        ],
    ))
}

#[derive(Deserialize)]
struct LimitArgs {
    limit: Option<f64>,
}

/// @summary Lists active meetings for background jobs
///
/// @description Internal (prompts scheduler): up to `limit` (1–200,
/// default 100) active meetings with `_id`, `organizerId`, `title`,
/// `participantCount`, `createdAt`, `startedAt` and `webrtcSessionCount`.
#[macros::function(
    internal_query,
    path = "meetings/queries:getActiveMeetings",
    args = v::object([("limit", v::optional(v::number()))]),
    returns = v::array(v::object([
        ("_id", v::id("meetings")),
        ("organizerId", v::id("users")),
        ("title", v::string()),
        ("participantCount", v::optional(v::number())),
        ("createdAt", v::number()),
        ("startedAt", v::optional(v::number())),
        ("webrtcSessionCount", v::number()),
    ]))
)]
async fn get_active_meetings(ctx: QueryCtx, args: LimitArgs) -> Result<Vec<Value>> {
    let limit = args.limit.unwrap_or(100.0).clamp(1.0, 200.0) as usize;
    let docs = ctx
        .db
        .query("meetings")
        .with_index("by_state", |r| r.eq("state", "active"))
        .take(limit)
        .await?;
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let meeting: super::Meeting = doc.parse()?;
        let mut item = BTreeMap::new();
        item.insert("_id".to_owned(), meeting.id.to_value());
        item.insert("organizerId".to_owned(), meeting.organizer_id.to_value());
        item.insert("title".to_owned(), Value::String(meeting.title.clone()));
        if let Some(c) = meeting.participant_count {
            item.insert("participantCount".to_owned(), Value::Float64(c));
        }
        item.insert(
            "createdAt".to_owned(),
            doc.field("createdAt")
                .cloned()
                .unwrap_or(Value::Float64(doc.creation_time())),
        );
        if let Some(started) = state_doc(&ctx.db, meeting.id)
            .await?
            .and_then(|s| s.field("startedAt").cloned())
        {
            item.insert("startedAt".to_owned(), started);
        }
        item.insert("webrtcSessionCount".to_owned(), Value::Float64(0.0));
        out.push(Value::Object(item));
    }
    Ok(out)
}

/// Registers `meetings/queries:*`.
pub fn register(r: &mut Registry) {
    r.register(get_meeting_spec());
    r.register(list_user_meetings_spec());
    r.register(list_meeting_participants_spec());
    r.register(get_meeting_by_id_spec());
    r.register(get_meeting_participant_spec());
    r.register(get_meeting_participants_spec());
    r.register(get_meeting_state_spec());
    r.register(get_active_meetings_spec());
}
