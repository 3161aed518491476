//! User settings (`userSettings`, one per user): notification channels and
//! the privacy switches.
//!
//! The privacy switches are enforced (the original stored them and checked
//! them nowhere):
//!
//! * `profileVisibility: false` — other users read no profile
//!   (`profiles/queries:getProfileByUserIdPublic` gives `null`) and no avatar
//!   (`users/queries:getUserById`, `getUserProfile`, `listActiveUsersInOrg`
//!   show only the id, the display name and whether the account is active);
//! * `activityTracking: false` — `lastSeenAt` is no longer recorded
//!   (`users/mutations:updateLastSeen` and `upsertUser` leave it unset);
//! * `dataSharing: false` — other domains that share or analyse a user's data
//!   (matching, insights) ask [`data_sharing_allowed`] first.
//!
//! A user without a settings document has the defaults of [`Settings::default`].

use database::{Document, TableDef};
use errors::Result;
use runtime::{DbReader, Registry};
use serde::{Deserialize, Serialize};
use values::{Validator, v};

use crate::ids::{Id, Users};

pub mod mutations;
pub mod queries;

/// `userSettings`.
pub fn tables() -> Vec<TableDef> {
    vec![
        TableDef::new("userSettings")
            .field("userId", v::id("users"))
            .field("emailNotifications", v::boolean())
            .field("pushNotifications", v::boolean())
            .field("smsNotifications", v::boolean())
            .field("profileVisibility", v::boolean())
            .field("dataSharing", v::boolean())
            .field("activityTracking", v::boolean())
            .field("createdAt", v::number())
            .field("updatedAt", v::number())
            .index("by_user", &["userId"]),
    ]
}

/// Registers `settings/queries:*` and `settings/mutations:*`.
pub fn register(registry: &mut Registry) {
    queries::register(registry);
    mutations::register(registry);
}

/// A user's effective settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Email notifications on.
    pub email_notifications: bool,
    /// Push notifications on.
    pub push_notifications: bool,
    /// SMS notifications on.
    pub sms_notifications: bool,
    /// The profile is public (others can read it).
    pub profile_visibility: bool,
    /// Data may be shared with other features (matching, insights).
    pub data_sharing: bool,
    /// `lastSeenAt` is recorded.
    pub activity_tracking: bool,
}

impl Default for Settings {
    /// The original's defaults: email and push on, SMS off, public profile,
    /// no data sharing, activity tracking on.
    fn default() -> Self {
        Self {
            email_notifications: true,
            push_notifications: true,
            sms_notifications: false,
            profile_visibility: true,
            data_sharing: false,
            activity_tracking: true,
        }
    }
}

/// The stored settings document of a user, if any.
pub(crate) async fn settings_doc(db: &DbReader, user: Id<Users>) -> Result<Option<Document>> {
    db.query("userSettings")
        .with_index("by_user", |r| r.eq("userId", user.to_value()))
        .first()
        .await
}

/// A user's effective settings (the defaults when none are stored). Reads
/// through the transaction, so a live query re-runs when they change.
pub async fn effective(db: &DbReader, user: Id<Users>) -> Result<Settings> {
    Ok(match settings_doc(db, user).await? {
        Some(doc) => doc.parse().unwrap_or_default(),
        None => Settings::default(),
    })
}

/// Whether `user`'s profile is public.
pub async fn profile_public(db: &DbReader, user: Id<Users>) -> Result<bool> {
    Ok(effective(db, user).await?.profile_visibility)
}

/// Whether `user` allows their data to be shared with other features
/// (matching, insights, analytics). Other domains call this before using a
/// user's data beyond what the user asked for.
pub async fn data_sharing_allowed(db: &DbReader, user: Id<Users>) -> Result<bool> {
    Ok(effective(db, user).await?.data_sharing)
}

/// A stored `userSettings` document.
pub fn settings_validator() -> Validator {
    v::object([
        ("_id", v::id("userSettings")),
        ("_creationTime", v::number()),
        ("userId", v::id("users")),
        ("emailNotifications", v::boolean()),
        ("pushNotifications", v::boolean()),
        ("smsNotifications", v::boolean()),
        ("profileVisibility", v::boolean()),
        ("dataSharing", v::boolean()),
        ("activityTracking", v::boolean()),
        ("createdAt", v::number()),
        ("updatedAt", v::number()),
    ])
}
