//! `messaging/mutations:*`: sending, editing and deleting chat messages.

use std::collections::BTreeMap;

use errors::{Error, Result};
use runtime::{MutationCtx, Registry};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

use super::{
    MAX_ATTACHMENT_TEXT_CHARS, MAX_ATTACHMENTS, MAX_CONTENT_CHARS, MAX_THREAD_REPLIES,
    MAX_URL_CHARS, SEND_ACTION, SEND_LIMIT, attachment_validator, load_message,
};
use crate::auth::MeetingRole;
use crate::ids::{Id, Meetings, Messages};
use crate::meetings::{Access, require_access};
use crate::system::rate_limit;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    kind: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
}

/// Trims and checks message content; empty content is allowed only with
/// attachments.
fn check_content(content: &str, has_attachments: bool) -> Result<String> {
    let content = content.trim();
    if content.is_empty() && !has_attachments {
        return Err(Error::validation("Message content cannot be empty"));
    }
    let chars = content.chars().count();
    if chars > MAX_CONTENT_CHARS {
        return Err(Error::validation(format!(
            "Message is too long: {chars} characters (at most {MAX_CONTENT_CHARS})"
        ))
        .with_metadata(
            json!({ "field": "content", "maxLength": MAX_CONTENT_CHARS, "length": chars }),
        ));
    }
    Ok(content.to_owned())
}

fn check_attachments(attachments: &[Attachment]) -> Result<()> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(Error::validation(format!(
            "At most {MAX_ATTACHMENTS} attachments per message"
        )));
    }
    for (i, a) in attachments.iter().enumerate() {
        let url = a.url.trim();
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(Error::validation(format!(
                "attachments[{i}].url must be an http(s) URL"
            )));
        }
        if url.chars().count() > MAX_URL_CHARS {
            return Err(Error::validation(format!(
                "attachments[{i}].url is too long (at most {MAX_URL_CHARS} characters)"
            )));
        }
        for (field, text) in [("name", &a.name), ("contentType", &a.content_type)] {
            if text
                .as_ref()
                .is_some_and(|t| t.chars().count() > MAX_ATTACHMENT_TEXT_CHARS)
            {
                return Err(Error::validation(format!(
                    "attachments[{i}].{field} is too long (at most {MAX_ATTACHMENT_TEXT_CHARS} characters)"
                )));
            }
        }
        if a.size.is_some_and(|s| !s.is_finite() || s < 0.0) {
            return Err(Error::validation(format!(
                "attachments[{i}].size must be a non-negative number"
            )));
        }
    }
    Ok(())
}

fn ensure_chat_open(access: &Access) -> Result<()> {
    if access.meeting.state.is_final() {
        return Err(Error::conflict(format!(
            "The meeting is {}: its chat is read-only",
            access.meeting.state.as_str()
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendArgs {
    meeting_id: Id<Meetings>,
    content: String,
    parent_id: Option<Id<Messages>>,
    attachments: Option<Vec<Attachment>>,
}

/// @summary Sends a chat message to a meeting
///
/// @description Posts `content` (trimmed, at most 4,000 characters; may be
/// empty only with attachments) to the meeting's chat as the caller and
/// returns the new message's id. With `parentId` the message is a reply in
/// that top-level message's thread (same meeting; at most 500 replies),
/// whose `replyCount` and `lastReplyAt` are updated. `attachments` holds at
/// most 10 `{kind, url, name?, size?, contentType?}` with http(s) URLs.
/// Authorization: a participant or host of the meeting
/// (`INSUFFICIENT_PERMISSIONS` for observers, who only read; `FORBIDDEN`
/// for non-participants; `UNAUTHORIZED` without a token). Rate limit: 30
/// messages per 10 seconds per user (`RATE_LIMIT_EXCEEDED` with
/// `retryAfterSeconds`). Errors: `VALIDATION_ERROR` for empty or too long
/// content, bad attachments, a parent in another meeting or a reply to a
/// reply; `NOT_FOUND` for an unknown meeting or parent; `CONFLICT` when the
/// meeting is concluded or cancelled or the thread is full. Live
/// `listMessages`/`listThread` queries update on commit. Two to four
/// writes.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "content": "Agenda: hiring plan, then the Q1 roadmap"
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": "13t09r4v4n00qvshgscd0sr5y9twskxqgfkg"}
/// ```
///
/// @example request-error
/// ```json
/// {"args": {"meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg", "content": "  "}}
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "Message content cannot be empty",
///   "errorData": {"code": "VALIDATION_ERROR", "message": "Message content cannot be empty", "statusCode": 400}
/// }
/// ```
#[macros::function(
    mutation,
    path = "messaging/mutations:sendMessage",
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("content", v::string()),
        ("parentId", v::optional(v::id("messages"))),
        ("attachments", v::optional(v::array(attachment_validator()))),
    ]),
    returns = v::id("messages")
)]
async fn send_message(ctx: MutationCtx, args: SendArgs) -> Result<String> {
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        args.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    ensure_chat_open(&access)?;
    let attachments = args.attachments.unwrap_or_default();
    check_attachments(&attachments)?;
    let content = check_content(&args.content, !attachments.is_empty())?;
    let now = ctx.now_ms();
    let parent = match args.parent_id {
        None => None,
        Some(parent_id) => {
            let (_, parent) = load_message(&ctx.db, parent_id).await?;
            if parent.meeting_id != args.meeting_id {
                return Err(Error::validation(
                    "parentId must be a message of the same meeting",
                ));
            }
            if parent.parent_id.is_some() {
                return Err(Error::validation(
                    "Replies can only be made to top-level messages",
                ));
            }
            let replies = parent.reply_count.unwrap_or(0.0);
            if replies >= MAX_THREAD_REPLIES as f64 {
                return Err(Error::conflict(format!(
                    "This thread is full ({MAX_THREAD_REPLIES} replies)"
                )));
            }
            Some((parent, replies))
        }
    };
    rate_limit::check_and_consume(&ctx.db, access.user.id, SEND_ACTION, SEND_LIMIT, now).await?;
    let mut doc = json!({
        "meetingId": args.meeting_id,
        "userId": access.user.id,
        "content": content,
        "timestamp": now,
        "parentId": parent.as_ref().map(|(p, _)| p.id),
    });
    if !attachments.is_empty() {
        doc["attachments"] = serde_json::to_value(&attachments)?;
    }
    let id = ctx.db.insert("messages", doc).await?;
    if let Some((parent, replies)) = parent {
        ctx.db
            .patch(
                parent.id.raw(),
                json!({ "replyCount": replies + 1.0, "lastReplyAt": now }),
            )
            .await?;
    }
    Ok(id.encode())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EditArgs {
    message_id: Id<Messages>,
    content: String,
}

/// @summary Edits the content of one of the caller's chat messages
///
/// @description Replaces the content of the caller's own message (same
/// rules as sending: trimmed, at most 4,000 characters, empty only if the
/// message has attachments) and sets `editedAt`. Authorization: only the
/// message's author, who must still be a participant or host of the
/// meeting — hosts cannot edit others' messages (`FORBIDDEN`), observers
/// get `INSUFFICIENT_PERMISSIONS`, non-participants `FORBIDDEN`, no token
/// `UNAUTHORIZED`. Errors: `NOT_FOUND` for an unknown or deleted message,
/// `VALIDATION_ERROR` for bad content, `CONFLICT` once the meeting is
/// concluded or cancelled. One read and one write.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "messageId": "13t09r4v4n00qvshgscd0sr5y9twskxqgfkg",
///     "content": "Agenda: hiring plan, Q1 roadmap, then open questions"
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
    path = "messaging/mutations:editMessage",
    args = v::object([("messageId", v::id("messages")), ("content", v::string())]),
    returns = v::null()
)]
async fn edit_message(ctx: MutationCtx, args: EditArgs) -> Result<Value> {
    let (doc, message) = load_message(&ctx.db, args.message_id).await?;
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        message.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    if message.deleted_at.is_some() {
        return Err(Error::not_found(format!(
            "Message with ID {} not found",
            args.message_id
        )));
    }
    if message.user_id != Some(access.user.id) {
        return Err(Error::forbidden("You can only edit your own messages"));
    }
    ensure_chat_open(&access)?;
    let has_attachments =
        matches!(doc.field("attachments"), Some(Value::Array(a)) if !a.is_empty());
    let content = check_content(&args.content, has_attachments)?;
    ctx.db
        .patch(
            message.id.raw(),
            json!({ "content": content, "editedAt": ctx.now_ms() }),
        )
        .await?;
    Ok(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteArgs {
    message_id: Id<Messages>,
}

/// @summary Deletes a chat message
///
/// @description Deletes a message: one without replies is removed (a reply
/// also decrements its parent's `replyCount`, and removes a deleted parent
/// once its last reply is gone); one with replies becomes a tombstone
/// (empty `content`, attachments dropped, `deletedAt` set) so its thread
/// stays readable. Records an audit entry (`message.deleted`, with
/// the author and whether a host deleted someone else's message).
/// Authorization: the author (a participant or host of the meeting) may
/// delete their own message; a host may delete any message of the meeting;
/// a participant deleting another's message gets `FORBIDDEN`, observers
/// `INSUFFICIENT_PERMISSIONS`, non-participants `FORBIDDEN`, no token
/// `UNAUTHORIZED`. Allowed in any meeting state. Errors: `NOT_FOUND` for an
/// unknown or already deleted message. Up to three writes.
///
/// @example request
/// ```json
/// {"args": {"messageId": "13t09r4v4n00qvshgscd0sr5y9twskxqgfkg"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": null}
/// ```
#[macros::function(
    mutation,
    path = "messaging/mutations:deleteMessage",
    args = v::object([("messageId", v::id("messages"))]),
    returns = v::null()
)]
async fn delete_message(ctx: MutationCtx, args: DeleteArgs) -> Result<Value> {
    let (_, message) = load_message(&ctx.db, args.message_id).await?;
    let access = require_access(
        &ctx.db,
        &ctx.auth,
        message.meeting_id,
        MeetingRole::Participant,
    )
    .await?;
    if message.deleted_at.is_some() {
        return Err(Error::not_found(format!(
            "Message with ID {} not found",
            args.message_id
        )));
    }
    let own = message.user_id == Some(access.user.id);
    if !own && access.role != MeetingRole::Host {
        return Err(Error::forbidden(
            "You can only delete your own messages (hosts can delete any)",
        ));
    }
    let now = ctx.now_ms();
    if message.reply_count.unwrap_or(0.0) > 0.0 {
        let mut fields = BTreeMap::new();
        fields.insert("content".to_owned(), Some(Value::from("")));
        fields.insert("attachments".to_owned(), None);
        fields.insert("deletedAt".to_owned(), Some(Value::Float64(now)));
        ctx.db.patch_fields(message.id.raw(), fields).await?;
    } else {
        ctx.db.delete(message.id.raw()).await?;
        if let Some(parent_id) = message.parent_id {
            super::detach_reply(&ctx.db, parent_id).await?;
        }
    }
    let mut entry = crate::system::audit::AuditEntry::new(
        "message",
        message.id.to_string(),
        "message.deleted",
        now,
    )
    .by(&access.user)
    .org(access.meeting.audit_org(&access.user))
    .with("meetingId", message.meeting_id.to_string())
    .with("byHost", !own);
    if let Some(author) = message.user_id {
        entry = entry.with("authorId", author.to_string());
    }
    crate::system::audit::record(&ctx.db, entry).await?;
    Ok(Value::Null)
}

/// Registers `messaging/mutations:*`.
pub fn register(r: &mut Registry) {
    r.register(send_message_spec());
    r.register(edit_message_spec());
    r.register(delete_message_spec());
}
