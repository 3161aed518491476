//! Meetings: the lifecycle state machine, participants and their roles,
//! runtime state (speaking statistics, lull detection, topics) and the event
//! trail.
//!
//! * [`lifecycle`] — `meetings/lifecycle:*`: create, start, end, cancel,
//!   participants (add, remove, role change), presence (join, leave),
//!   connection info, and the scheduled jobs (auto-end, reminders);
//! * [`queries`] — `meetings/queries:*`: `getMeeting`, `listUserMeetings`,
//!   `listMeetingParticipants` and internal readers for other domains;
//! * [`state_tracking`] — `meetings/stateTracking:*`;
//! * [`permissions`] — `auth/permissions:*`: the permission strings of
//!   realtime subscriptions, derived from the caller's role.
//!
//! # Roles
//!
//! Access to a meeting comes only from the caller's `meetingParticipants`
//! row, read through the transaction on every call (so a live query of a
//! removed participant re-runs and fails with `FORBIDDEN`):
//!
//! | role | may |
//! |---|---|
//! | `observer` | read the meeting, its participants and chat; join and leave (presence) |
//! | `participant` | the above, plus chat and state tracking (speaking time, topics, activity) |
//! | `host` | everything: start, end, cancel, add and remove participants, change roles, delete any chat message |
//!
//! A caller who is not a participant gets `FORBIDDEN`; a role too low gets
//! `INSUFFICIENT_PERMISSIONS`; no token `UNAUTHORIZED`. Organization admins
//! have no implicit access to meetings they do not take part in (the
//! audit log is where they see what happened). A meeting always keeps at
//! least one host: the last host cannot be removed, demoted, or leave an
//! active meeting (`CONFLICT`). Only the organizer (while a host) may remove
//! or demote *another* host.
//!
//! # State machine
//!
//! `scheduled → active → concluded`, or `scheduled → cancelled`. Nothing
//! leaves `concluded` or `cancelled`; any other transition is `CONFLICT`.
//! Starting schedules `meetings/lifecycle:autoEndMeeting` after the
//! meeting's duration; creating a meeting with a start time schedules
//! `meetings/lifecycle:sendMeetingReminder` ten minutes before it. Both are
//! state-aware and idempotent: they do nothing once the meeting has moved
//! on.

use database::{Document, TableDef};
use errors::{Error, Result};
use runtime::{Auth, DbReader, DbWriter, QueryCtx, Registry};
use serde::{Deserialize, Serialize};
use values::{Validator, Value, v};

use crate::auth::{CurrentUser, MeetingRole, require_meeting_role, require_user};
use crate::ids::{Id, MeetingParticipants, Meetings, Users};
use crate::system::audit::{self, AuditEntry};

pub mod data_protection;
pub mod lifecycle;
pub mod permissions;
pub mod queries;
pub mod state_tracking;

/// Default meeting duration: 30 minutes (ms).
pub const DEFAULT_DURATION_MS: f64 = 1_800_000.0;
/// Longest allowed meeting duration: 24 hours (ms).
pub const MAX_DURATION_MS: f64 = 86_400_000.0;
/// How long before `scheduledAt` the reminder fires (ms).
pub const REMINDER_LEAD_MS: f64 = 600_000.0;
/// Participants of a WebRTC (free tier) meeting.
pub const WEBRTC_MAX_PARTICIPANTS: f64 = 4.0;
/// Participants of a GetStream meeting.
pub const GETSTREAM_MAX_PARTICIPANTS: f64 = 100.0;
/// The public STUN servers handed to WebRTC clients.
pub const STUN_SERVERS: [&str; 2] = [
    "stun:stun.l.google.com:19302",
    "stun:stun1.l.google.com:19302",
];

/// A meeting's lifecycle state (`meetings.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeetingStatus {
    /// Created, not started.
    Scheduled,
    /// Running.
    Active,
    /// Ended (final).
    Concluded,
    /// Cancelled before it started (final).
    Cancelled,
}

impl MeetingStatus {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::Concluded => "concluded",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the meeting is over (`concluded` or `cancelled`).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Concluded | Self::Cancelled)
    }
}

/// A participant's presence (`meetingParticipants.presence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// Added, never joined.
    Invited,
    /// In the meeting.
    Joined,
    /// Joined, then left.
    Left,
}

impl Presence {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Joined => "joined",
            Self::Left => "left",
        }
    }
}

/// A `meetings` document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meeting {
    /// Its id.
    #[serde(rename = "_id")]
    pub id: Id<Meetings>,
    /// The user who created it.
    pub organizer_id: Id<Users>,
    /// Title.
    pub title: String,
    /// Planned start (ms since the epoch).
    pub scheduled_at: Option<f64>,
    /// Planned length (ms).
    pub duration: Option<f64>,
    /// `true`: free-tier WebRTC; otherwise GetStream.
    pub webrtc_enabled: Option<bool>,
    /// The GetStream call id, once created.
    pub stream_room_id: Option<String>,
    /// Lifecycle state.
    pub state: MeetingStatus,
    /// Number of participant rows.
    pub participant_count: Option<f64>,
    /// The organizer's organization (from the token) at creation.
    pub org_id: Option<String>,
}

impl Meeting {
    /// The planned length in ms (default 30 minutes).
    pub fn duration_ms(&self) -> f64 {
        self.duration
            .filter(|d| d.is_finite() && *d > 0.0)
            .unwrap_or(DEFAULT_DURATION_MS)
    }

    /// `"webrtc"` or `"getstream"`.
    pub fn video_provider(&self) -> &'static str {
        if self.webrtc_enabled == Some(true) {
            "webrtc"
        } else {
            "getstream"
        }
    }

    /// The organization audit entries about this meeting belong to: the
    /// meeting's, else the actor's.
    pub(crate) fn audit_org(&self, actor: &CurrentUser) -> Option<String> {
        self.org_id.clone().or_else(|| actor.org_id.clone())
    }
}

/// A `meetingParticipants` document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// Its id.
    #[serde(rename = "_id")]
    pub id: Id<MeetingParticipants>,
    /// The meeting.
    pub meeting_id: Id<Meetings>,
    /// The user.
    pub user_id: Id<Users>,
    /// `host`, `participant` or `observer`.
    pub role: String,
    /// Presence.
    pub presence: Presence,
}

impl Participant {
    /// The parsed role (an unknown stored role counts as observer).
    pub fn role(&self) -> MeetingRole {
        MeetingRole::parse(&self.role).unwrap_or(MeetingRole::Observer)
    }
}

/// What a meeting-scoped function knows about its caller.
#[derive(Debug, Clone)]
pub struct Access {
    /// The caller.
    pub user: CurrentUser,
    /// The meeting.
    pub meeting: Meeting,
    /// The caller's participant row.
    pub participant: Participant,
    /// The caller's role.
    pub role: MeetingRole,
}

impl Access {
    /// An audit entry about this meeting by the caller.
    pub(crate) fn audit(&self, action: &str, now_ms: f64) -> AuditEntry {
        AuditEntry::new("meeting", self.meeting.id.to_string(), action, now_ms)
            .by(&self.user)
            .org(self.meeting.audit_org(&self.user))
    }
}

/// Reads a meeting, or `NOT_FOUND`.
pub async fn load_meeting(db: &DbReader, id: Id<Meetings>) -> Result<Meeting> {
    let doc = db
        .get(id.raw())
        .await?
        .ok_or_else(|| Error::not_found(format!("Meeting with ID {id} not found")))?;
    doc.parse()
}

/// The participant row of `user` in `meeting`, if any.
pub async fn find_participant(
    db: &DbReader,
    meeting: Id<Meetings>,
    user: Id<Users>,
) -> Result<Option<Document>> {
    db.query("meetingParticipants")
        .with_index("by_meeting_and_user", |r| {
            r.eq("meetingId", meeting.to_value())
                .eq("userId", user.to_value())
        })
        .first()
        .await
}

/// The signed-in caller's access to `meeting` with at least role `min`
/// (`UNAUTHORIZED`, `FORBIDDEN`, `INSUFFICIENT_PERMISSIONS`, `NOT_FOUND`).
/// Every read goes through the transaction, so live queries that called it
/// re-run when the caller's participant row changes or disappears.
pub async fn require_access(
    db: &DbReader,
    auth: &Auth,
    meeting: Id<Meetings>,
    min: MeetingRole,
) -> Result<Access> {
    let user = require_user(db, auth).await?;
    access_for(db, user, meeting, min).await
}

/// The arguments a meeting-scoped query's access check reads (the others
/// are ignored here and validated by the query's own validator).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeetingScope {
    /// The meeting.
    pub meeting_id: Id<Meetings>,
}

/// The access check of a meeting-scoped query any participant may run,
/// observers included (`UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND` as
/// [`require_access`]). Declared as the query's `access`, it keeps the
/// caller out of the body, whose live executions are then shared by every
/// participant watching (`runtime::FunctionDef::query_with_access`).
pub async fn observer_access(ctx: QueryCtx, args: MeetingScope) -> Result<()> {
    require_access(&ctx.db, &ctx.auth, args.meeting_id, MeetingRole::Observer)
        .await
        .map(drop)
}

/// [`require_access`] for an already resolved caller.
pub async fn access_for(
    db: &DbReader,
    user: CurrentUser,
    meeting: Id<Meetings>,
    min: MeetingRole,
) -> Result<Access> {
    let (row, role) = require_meeting_role(db, &user, meeting, min).await?;
    let meeting = load_meeting(db, meeting).await?;
    Ok(Access {
        user,
        meeting,
        participant: row.parse()?,
        role,
    })
}

/// Records an audit entry in the caller's transaction.
pub(crate) async fn record_audit(db: &DbWriter, entry: AuditEntry) -> Result<()> {
    audit::record(db, entry).await
}

/// Hosts of a meeting.
pub(crate) async fn host_rows(db: &DbReader, meeting: Id<Meetings>) -> Result<Vec<Participant>> {
    let docs = db
        .query("meetingParticipants")
        .with_index("by_meeting_and_role", |r| {
            r.eq("meetingId", meeting.to_value()).eq("role", "host")
        })
        .collect()
        .await?;
    docs.iter().map(Document::parse).collect()
}

/// `Record<string, string | number | boolean>`.
pub fn metadata_validator() -> Validator {
    v::record(
        v::string(),
        v::union([v::string(), v::number(), v::boolean()]),
    )
}

fn state_validator() -> Validator {
    v::union([
        v::literal("scheduled"),
        v::literal("active"),
        v::literal("concluded"),
        v::literal("cancelled"),
    ])
}

fn role_validator() -> Validator {
    v::union([
        v::literal("host"),
        v::literal("participant"),
        v::literal("observer"),
    ])
}

fn presence_validator() -> Validator {
    v::union([
        v::literal("invited"),
        v::literal("joined"),
        v::literal("left"),
    ])
}

/// The user fields of a `meetings` document.
pub(crate) fn meeting_fields() -> Vec<(&'static str, Validator)> {
    vec![
        ("organizerId", v::id("users")),
        ("title", v::string()),
        ("description", v::optional(v::string())),
        ("scheduledAt", v::optional(v::number())),
        ("duration", v::optional(v::number())),
        ("webrtcEnabled", v::optional(v::boolean())),
        ("streamRoomId", v::optional(v::string())),
        ("state", state_validator()),
        ("participantCount", v::optional(v::number())),
        ("averageRating", v::optional(v::number())),
        ("orgId", v::optional(v::string())),
        ("createdAt", v::number()),
        ("updatedAt", v::number()),
    ]
}

pub(crate) fn participant_fields() -> Vec<(&'static str, Validator)> {
    vec![
        ("meetingId", v::id("meetings")),
        ("userId", v::id("users")),
        ("role", role_validator()),
        ("joinedAt", v::optional(v::number())),
        ("leftAt", v::optional(v::number())),
        ("presence", presence_validator()),
        ("createdAt", v::number()),
    ]
}

pub(crate) fn meeting_state_fields() -> Vec<(&'static str, Validator)> {
    vec![
        ("meetingId", v::id("meetings")),
        ("active", v::boolean()),
        ("startedAt", v::optional(v::number())),
        ("endedAt", v::optional(v::number())),
        (
            "speakingStats",
            v::optional(v::object([
                ("totalMs", v::number()),
                ("byUserMs", v::record(v::string(), v::number())),
            ])),
        ),
        (
            "lullState",
            v::optional(v::object([
                ("detected", v::boolean()),
                ("lastActivity", v::number()),
                ("duration", v::number()),
            ])),
        ),
        ("topics", v::array(v::string())),
        ("recordingEnabled", v::boolean()),
        ("updatedAt", v::number()),
    ]
}

pub(crate) fn with_system_fields(table: &str, fields: Vec<(&'static str, Validator)>) -> Validator {
    let mut all = vec![("_id", v::id(table)), ("_creationTime", v::number())];
    all.extend(fields);
    v::object(all)
}

/// A whole `meetings` document, system fields included (the original's
/// return validators omitted `_creationTime` and several optional fields
/// and rejected real documents; these are derived from the table schema).
pub fn meeting_doc_validator() -> Validator {
    with_system_fields("meetings", meeting_fields())
}

/// A whole `meetingParticipants` document.
pub fn participant_doc_validator() -> Validator {
    with_system_fields("meetingParticipants", participant_fields())
}

/// A whole `meetingState` document.
pub fn meeting_state_doc_validator() -> Validator {
    with_system_fields("meetingState", meeting_state_fields())
}

/// The meeting tables: `meetings`, `meetingParticipants`, `meetingState`,
/// `meetingEvents`.
pub fn tables() -> Vec<TableDef> {
    let mut meetings = TableDef::new("meetings");
    for (name, validator) in meeting_fields() {
        meetings = meetings.field(name, validator);
    }
    let mut participants = TableDef::new("meetingParticipants");
    for (name, validator) in participant_fields() {
        participants = participants.field(name, validator);
    }
    let mut state = TableDef::new("meetingState");
    for (name, validator) in meeting_state_fields() {
        state = state.field(name, validator);
    }
    vec![
        meetings
            .index("by_organizer", &["organizerId"])
            .index("by_state", &["state"])
            .index("by_scheduled", &["scheduledAt"])
            .index("by_state_and_scheduled", &["state", "scheduledAt"])
            .index("by_organizer_and_state", &["organizerId", "state"])
            .index("by_stream_room_id", &["streamRoomId"]),
        participants
            .index("by_meeting", &["meetingId"])
            .index("by_user", &["userId"])
            .index("by_meeting_and_user", &["meetingId", "userId"])
            .index("by_meeting_and_role", &["meetingId", "role"]),
        state
            .index("by_meeting", &["meetingId"])
            .index("by_active", &["active"]),
        TableDef::new("meetingEvents")
            .field("meetingId", v::id("meetings"))
            .field("event", v::string())
            .field("userId", v::optional(v::id("users")))
            .field("duration", v::optional(v::number()))
            .field("success", v::boolean())
            .field("error", v::optional(v::string()))
            .field("metadata", metadata_validator())
            .field("timestamp", v::number())
            .field("createdAt", v::number())
            .index("by_meeting", &["meetingId"])
            .index("by_event", &["event"])
            .index("by_success", &["success"])
            .index("by_timestamp", &["timestamp"])
            .index("by_meeting_and_event", &["meetingId", "event"])
            .index("by_user", &["userId"]),
    ]
}

/// Appends a `meetingEvents` row.
pub(crate) async fn track_event(
    db: &DbWriter,
    meeting: Id<Meetings>,
    event: &str,
    user: Option<Id<Users>>,
    metadata: serde_json::Value,
    now_ms: f64,
) -> Result<()> {
    let mut fields = vec![
        ("meetingId".to_owned(), meeting.to_value()),
        ("event".to_owned(), Value::from(event)),
        ("success".to_owned(), Value::Boolean(true)),
        (
            "metadata".to_owned(),
            crate::system::audit::metadata_value(&metadata),
        ),
        ("timestamp".to_owned(), Value::Float64(now_ms)),
        ("createdAt".to_owned(), Value::Float64(now_ms)),
    ];
    if let Some(user) = user {
        fields.push(("userId".to_owned(), user.to_value()));
    }
    db.insert("meetingEvents", Value::object(fields)).await?;
    Ok(())
}

/// The `meetingState` document of a meeting, if any.
pub(crate) async fn state_doc(db: &DbReader, meeting: Id<Meetings>) -> Result<Option<Document>> {
    db.query("meetingState")
        .with_index("by_meeting", |r| r.eq("meetingId", meeting.to_value()))
        .first()
        .await
}

/// The ICE servers of a WebRTC meeting, as `{urls}` objects.
pub(crate) fn ice_servers() -> serde_json::Value {
    serde_json::Value::Array(
        STUN_SERVERS
            .iter()
            .map(|url| serde_json::json!({ "urls": url }))
            .collect(),
    )
}

/// The validator of an ICE server list.
pub(crate) fn ice_servers_validator() -> Validator {
    v::array(v::object([
        ("urls", v::union([v::string(), v::array(v::string())])),
        ("username", v::optional(v::string())),
        ("credential", v::optional(v::string())),
    ]))
}

/// The meetings domain's data-export and account-deletion sections (see
/// [`data_protection`]).
pub fn data_sections() -> Vec<crate::users::data_protection::DataSection> {
    data_protection::sections()
}

/// Registers every meeting function.
pub fn register(registry: &mut Registry) {
    lifecycle::register(registry);
    permissions::register(registry);
    queries::register(registry);
    state_tracking::register(registry);
}
