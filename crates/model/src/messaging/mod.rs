//! Meeting chat (`messages`): the original declared the table and never
//! built it.
//!
//! * [`mutations`] — `messaging/mutations:sendMessage`, `editMessage`,
//!   `deleteMessage`;
//! * [`queries`] — `messaging/queries:listMessages` (top-level messages,
//!   newest first, paginated) and `listThread` (a message and its replies).
//!
//! Threads are one level deep: a reply's `parentId` is a top-level message
//! of the same meeting, which carries `replyCount` and `lastReplyAt`.
//! Top-level messages are stored with `parentId: null` so that one index
//! (`by_meeting_parent_time`) serves both the channel and every thread;
//! results leave the null out. A deleted message without replies is
//! removed; one with replies becomes a tombstone (`content` empty,
//! attachments dropped, `deletedAt` set) so its thread stays readable,
//! until its last reply is deleted too.
//!
//! Authorization follows the meeting roles: every participant (observers
//! included) reads; participants and hosts send; authors edit their own
//! messages; authors delete their own and hosts delete any. Sending is
//! rate-limited per user ([`SEND_LIMIT`]). Chat is read-only once the
//! meeting is concluded or cancelled (deleting stays possible).

use database::{Document, TableDef};
use errors::{Error, Result};
use runtime::{DbReader, DbWriter, Registry};
use serde::Deserialize;
use values::{Validator, Value, v};

use crate::ids::{Id, Meetings, Messages, Users};
use crate::system::rate_limit::RateLimit;

pub mod data_protection;
pub mod mutations;
pub mod queries;

/// Longest message (characters, after trimming).
pub const MAX_CONTENT_CHARS: usize = 4_000;
/// Most attachments per message.
pub const MAX_ATTACHMENTS: usize = 10;
/// Longest attachment URL (characters).
pub const MAX_URL_CHARS: usize = 2_048;
/// Longest attachment name or content type (characters).
pub const MAX_ATTACHMENT_TEXT_CHARS: usize = 255;
/// Most replies in one thread.
pub const MAX_THREAD_REPLIES: usize = 500;
/// The rate limit of `sendMessage`: 30 messages per 10 seconds per user.
pub const SEND_LIMIT: RateLimit = RateLimit {
    max: 30,
    window_ms: 10_000.0,
};
/// The rate-limit action name of `sendMessage`.
pub const SEND_ACTION: &str = "messaging.sendMessage";

/// `{kind, url, name?, size?, contentType?}` (the original's `attachmentV`).
pub fn attachment_validator() -> Validator {
    v::object([
        (
            "kind",
            v::union([v::literal("file"), v::literal("url"), v::literal("image")]),
        ),
        ("url", v::string()),
        ("name", v::optional(v::string())),
        ("size", v::optional(v::number())),
        ("contentType", v::optional(v::string())),
    ])
}

fn message_fields(parent: Validator) -> Vec<(&'static str, Validator)> {
    vec![
        ("meetingId", v::id("meetings")),
        ("userId", v::optional(v::id("users"))),
        ("content", v::string()),
        ("attachments", v::optional(v::array(attachment_validator()))),
        ("timestamp", v::number()),
        ("parentId", parent),
        ("replyCount", v::optional(v::number())),
        ("lastReplyAt", v::optional(v::number())),
        ("editedAt", v::optional(v::number())),
        ("deletedAt", v::optional(v::number())),
    ]
}

/// A message as functions return it (a reply has `parentId`; a top-level
/// message has none).
pub fn message_validator() -> Validator {
    let mut fields = vec![("_id", v::id("messages")), ("_creationTime", v::number())];
    fields.extend(message_fields(v::optional(v::id("messages"))));
    v::object(fields)
}

/// The `messages` table.
pub fn tables() -> Vec<TableDef> {
    let mut messages = TableDef::new("messages");
    for (name, validator) in message_fields(v::optional(v::union([v::id("messages"), v::null()]))) {
        messages = messages.field(name, validator);
    }
    vec![
        messages
            .index("by_meeting", &["meetingId"])
            .index("by_meeting_time", &["meetingId", "timestamp"])
            .index(
                "by_meeting_parent_time",
                &["meetingId", "parentId", "timestamp"],
            )
            .index("by_user", &["userId"]),
    ]
}

/// A `messages` document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Its id.
    #[serde(rename = "_id")]
    pub id: Id<Messages>,
    /// The meeting.
    pub meeting_id: Id<Meetings>,
    /// The author.
    pub user_id: Option<Id<Users>>,
    /// The parent of a reply.
    pub parent_id: Option<Id<Messages>>,
    /// Replies of a top-level message.
    pub reply_count: Option<f64>,
    /// When it was deleted (a tombstone).
    pub deleted_at: Option<f64>,
}

/// Reads a message (tombstones included), or `NOT_FOUND`.
pub(crate) async fn load_message(db: &DbReader, id: Id<Messages>) -> Result<(Document, Message)> {
    let doc = db
        .get(id.raw())
        .await?
        .ok_or_else(|| Error::not_found(format!("Message with ID {id} not found")))?;
    let message = doc.parse()?;
    Ok((doc, message))
}

/// Updates a thread after one of its replies was deleted: decrements the
/// parent's `replyCount`, and removes a deleted parent (tombstone) once its
/// last reply is gone.
pub(crate) async fn detach_reply(db: &DbWriter, parent: Id<Messages>) -> Result<()> {
    let Some(doc) = db.get(parent.raw()).await? else {
        return Ok(());
    };
    let count = (doc
        .field("replyCount")
        .and_then(Value::as_f64)
        .unwrap_or(1.0)
        - 1.0)
        .max(0.0);
    if count == 0.0 && doc.field("deletedAt").is_some() {
        return db.delete(doc.id()).await;
    }
    db.patch(
        doc.id(),
        Value::object([("replyCount".to_owned(), Value::Float64(count))]),
    )
    .await
}

/// A stored message as returned to clients (without `parentId: null`).
pub(crate) fn view(doc: Document) -> Value {
    let mut value = doc.into_value();
    if let Value::Object(map) = &mut value
        && map.get("parentId") == Some(&Value::Null)
    {
        map.remove("parentId");
    }
    value
}

/// The chat's data-export and account-deletion sections (see
/// [`data_protection`]).
pub fn data_sections() -> Vec<crate::users::data_protection::DataSection> {
    data_protection::sections()
}

/// Registers every messaging function.
pub fn register(registry: &mut Registry) {
    mutations::register(registry);
    queries::register(registry);
}
