//! Authorization guards shared by every domain.
//!
//! Identity comes only from the verified token (`ctx.auth`); the caller's
//! user document is found by the token's subject (`users.by_workos_id`), and
//! organization id and role come from the token's claims, never from
//! arguments or from a stored copy. Every read a guard makes goes through the
//! transaction, so revoking access (deactivating a user, removing a
//! participant) re-runs the live queries that depended on it.

use database::Document;
use errors::{Error, ErrorCode, Result};
use runtime::{Auth, DbReader};
use values::Value;

use crate::ids::{Id, Meetings, Users};

/// The caller, resolved from the token.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// The caller's `users` document id.
    pub id: Id<Users>,
    /// The caller's `users` document.
    pub doc: Document,
    /// The token subject (WorkOS user id).
    pub subject: String,
    /// Organization id from the token (`org_id`).
    pub org_id: Option<String>,
    /// Organization role from the token (`role`).
    pub org_role: Option<OrgRole>,
}

/// An organization role from the token's `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    /// Organization administrator.
    Admin,
    /// Any other member.
    Member,
}

impl OrgRole {
    /// Parses the claim (`admin` is admin; anything else a member).
    pub fn from_claim(role: &str) -> Self {
        if role.eq_ignore_ascii_case("admin") {
            Self::Admin
        } else {
            Self::Member
        }
    }
}

impl CurrentUser {
    /// Whether the caller is an admin of `org_id` (same org, admin role).
    pub fn is_admin_of(&self, org_id: Option<&str>) -> bool {
        self.org_role == Some(OrgRole::Admin)
            && org_id.is_some()
            && self.org_id.as_deref() == org_id
    }
}

/// The caller's identity subject, or `UNAUTHORIZED`.
pub fn require_identity(auth: &Auth) -> Result<&auth::Identity> {
    auth.get_user_identity()
        .ok_or_else(|| Error::unauthorized("Authentication required"))
}

/// The caller's active user, or `UNAUTHORIZED` (no token / not provisioned)
/// or `FORBIDDEN` (deactivated account).
pub async fn require_user(db: &DbReader, auth: &Auth) -> Result<CurrentUser> {
    let identity = require_identity(auth)?;
    let doc = db
        .query("users")
        .with_index("by_workos_id", |r| {
            r.eq("workosUserId", identity.subject.as_str())
        })
        .first()
        .await?
        .ok_or_else(|| {
            Error::unauthorized("User not provisioned: call users/mutations:upsertUser first")
        })?;
    if doc.field("isActive") == Some(&Value::Boolean(false)) {
        return Err(Error::forbidden("This account is deactivated"));
    }
    let id =
        Id::new(doc.id()).ok_or_else(|| Error::internal("users document with a foreign id"))?;
    Ok(CurrentUser {
        id,
        doc,
        subject: identity.subject.clone(),
        org_id: identity.org_id.clone(),
        org_role: identity.role.as_deref().map(OrgRole::from_claim),
    })
}

/// A meeting role, ordered by privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MeetingRole {
    /// Reads, never writes.
    Observer,
    /// Takes part.
    Participant,
    /// Manages the meeting.
    Host,
}

impl MeetingRole {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observer => "observer",
            Self::Participant => "participant",
            Self::Host => "host",
        }
    }

    /// Parses the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "observer" => Some(Self::Observer),
            "participant" => Some(Self::Participant),
            "host" => Some(Self::Host),
            _ => None,
        }
    }
}

/// The caller's participant row in a meeting, checking that the meeting
/// exists and that the caller's role is at least `min`.
/// `FORBIDDEN` for non-participants, `INSUFFICIENT_PERMISSIONS` for a role
/// below `min`, `NOT_FOUND` for a missing meeting.
pub async fn require_meeting_role(
    db: &DbReader,
    user: &CurrentUser,
    meeting: Id<Meetings>,
    min: MeetingRole,
) -> Result<(Document, MeetingRole)> {
    db.get(meeting.raw())
        .await?
        .ok_or_else(|| Error::not_found(format!("Meeting with ID {meeting} not found")))?;
    let row = db
        .query("meetingParticipants")
        .with_index("by_meeting_and_user", |r| {
            r.eq("meetingId", meeting.to_value())
                .eq("userId", user.id.to_value())
        })
        .first()
        .await?
        .ok_or_else(|| Error::forbidden("Access denied: Not a meeting participant"))?;
    let role = row
        .field("role")
        .and_then(Value::as_str)
        .and_then(MeetingRole::parse)
        .ok_or_else(|| Error::internal("participant row without a valid role"))?;
    if role < min {
        return Err(Error::app(
            ErrorCode::InsufficientPermissions,
            format!("Requires {} role", min.as_str()),
        )
        .with_metadata(
            serde_json::json!({"requiredRole": min.as_str(), "currentRole": role.as_str()}),
        ));
    }
    Ok((row, role))
}
