//! `messaging/queries:*`: reading a meeting's chat, live.

use database::{Order, Page};
use errors::Result;
use runtime::{PaginationOptsArg, QueryCtx, Registry, page_to_value, pagination_opts_validator};
use serde::Deserialize;
use values::{Value, v};

use super::{MAX_THREAD_REPLIES, load_message, message_validator, view};
use crate::auth::MeetingRole;
use crate::ids::{Id, Meetings, Messages};
use crate::meetings::require_access;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListArgs {
    meeting_id: Id<Meetings>,
    pagination_opts: PaginationOptsArg,
}

/// @summary Lists a meeting's chat messages, newest first
///
/// @description Returns one page of the meeting's top-level messages,
/// newest first, with Convex's pagination contract (pass `continueCursor`
/// back as `cursor`; `isDone` on the last page; pages never shift while
/// subscribed). Replies are not in the page: a message with a thread
/// carries `replyCount` and `lastReplyAt`, and `listThread` returns its
/// replies (each with `parentId`). Edited messages carry `editedAt`;
/// deleted messages that still have replies appear as tombstones (empty
/// `content`, `deletedAt`). Authorization: any participant of the meeting,
/// observers included (`FORBIDDEN` for non-participants, `UNAUTHORIZED`
/// without a token). One bounded index range per page (at most 8,192
/// items); as a live query it updates when a message is sent, edited or
/// deleted, and fails with `FORBIDDEN` once the caller is removed. A
/// negative page size is a `VALIDATION_ERROR`.
///
/// @example request
/// ```json
/// {
///   "args": {
///     "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///     "paginationOpts": {"numItems": 20, "cursor": null}
///   }
/// }
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "page": [
///       {
///         "_id": "13t09r4v4n00qvshgscd0sr5y9twskxqgfkg",
///         "_creationTime": 1768469400000.004,
///         "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///         "userId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///         "content": "Agenda: hiring plan, then the Q1 roadmap",
///         "timestamp": 1768469400000,
///         "replyCount": 1,
///         "lastReplyAt": 1768469400000
///       }
///     ],
///     "isDone": true,
///     "continueCursor": "ag5nZW5lcmFsAAE2ZDJkNTVkZmYwYjM0YjYw"
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "messaging/queries:listMessages",
    access = crate::meetings::observer_access,
    args = v::object([
        ("meetingId", v::id("meetings")),
        ("paginationOpts", pagination_opts_validator()),
    ]),
    returns = v::object([
        ("page", v::array(message_validator())),
        ("isDone", v::boolean()),
        ("continueCursor", v::string()),
    ])
)]
async fn list_messages(ctx: QueryCtx, args: ListArgs) -> Result<Value> {
    let opts = args.pagination_opts.to_opts()?;
    let page = ctx
        .db
        .query("messages")
        .with_index("by_meeting_parent_time", |r| {
            r.eq("meetingId", args.meeting_id.to_value())
                .eq("parentId", Value::Null)
        })
        .order(Order::Desc)
        .paginate(opts)
        .await?;
    page_to_value(Page {
        page: page.page.into_iter().map(view).collect::<Vec<_>>(),
        is_done: page.is_done,
        continue_cursor: page.continue_cursor,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThreadArgs {
    message_id: Id<Messages>,
}

/// @summary Lists a message and its thread of replies
///
/// @description Returns `{message, replies}`: the top-level message and
/// all its replies (at most 500), oldest first, each reply carrying
/// `parentId`. Given a reply's id, returns that reply's thread.
/// Authorization: any participant of the message's meeting, observers
/// included (`FORBIDDEN` for non-participants, `UNAUTHORIZED` without a
/// token). Errors: `NOT_FOUND` for an unknown or fully deleted message.
/// One point read and one bounded index range; as a live query it updates
/// when a reply is added, edited or deleted.
///
/// @example request
/// ```json
/// {"args": {"messageId": "13t09r4v4n00qvshgscd0sr5y9twskxqgfkg"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "message": {
///       "_id": "13t09r4v4n00qvshgscd0sr5y9twskxqgfkg",
///       "_creationTime": 1768469400000.004,
///       "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///       "userId": "f8smf5b6ntftmc6f61pj1h7et9yzpk7ptvn0",
///       "content": "Agenda: hiring plan, then the Q1 roadmap",
///       "timestamp": 1768469400000,
///       "replyCount": 1,
///       "lastReplyAt": 1768469400000
///     },
///     "replies": [
///       {
///         "_id": "84haeam1pjv5jk5e0afns4tnx1twskxq8080",
///         "_creationTime": 1768469400000.005,
///         "meetingId": "xqxdwss3njq9ptkdm2t4kmqxmnvz3bpmz8hg",
///         "userId": "9t3rk41mh68ymd9wetypndjsj5yzpk7prpc0",
///         "content": "Can we add the onboarding metrics?",
///         "timestamp": 1768469400000,
///         "parentId": "13t09r4v4n00qvshgscd0sr5y9twskxqgfkg"
///       }
///     ]
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "messaging/queries:listThread",
    args = v::object([("messageId", v::id("messages"))]),
    returns = v::object([
        ("message", message_validator()),
        ("replies", v::array(message_validator())),
    ])
)]
async fn list_thread(ctx: QueryCtx, args: ThreadArgs) -> Result<Value> {
    let (_, message) = load_message(&ctx.db, args.message_id).await?;
    require_access(
        &ctx.db,
        &ctx.auth,
        message.meeting_id,
        MeetingRole::Observer,
    )
    .await?;
    let (root_doc, root) = match message.parent_id {
        Some(parent) => load_message(&ctx.db, parent).await?,
        None => load_message(&ctx.db, args.message_id).await?,
    };
    let replies = ctx
        .db
        .query("messages")
        .with_index("by_meeting_parent_time", |r| {
            r.eq("meetingId", root.meeting_id.to_value())
                .eq("parentId", root.id.to_value())
        })
        .take(MAX_THREAD_REPLIES)
        .await?;
    Ok(Value::object([
        ("message".to_owned(), view(root_doc)),
        (
            "replies".to_owned(),
            Value::Array(replies.into_iter().map(view).collect()),
        ),
    ]))
}

/// Registers `messaging/queries:*`.
pub fn register(r: &mut Registry) {
    r.register(list_messages_spec());
    r.register(list_thread_spec());
}
