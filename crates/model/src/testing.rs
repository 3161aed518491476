//! Test functions: a tiny chat and counters, used to exercise the engine and
//! the protocol end to end (subscriptions, mutations, pagination, errors,
//! auth, actions, the scheduler) before and independently of the domain.
//! Registered only with `connvo serve --test-functions`.
//!
//! Every public function here follows the API documentation standard (see
//! the `docs` crate): its doc comment is its published documentation, and
//! its examples are checked against real responses by
//! `crates/connvo/tests/doc_examples.rs`.

use database::{Order, TableDef};
use errors::{Error, ErrorCode};
use runtime::{
    ActionCtx, MutationCtx, PaginationOptsArg, QueryCtx, Registry, page_to_value,
    pagination_opts_validator,
};
use serde::Deserialize;
use values::{Value, v};

/// Test tables.
pub fn tables() -> Vec<TableDef> {
    vec![
        TableDef::new("test_messages")
            .field("channel", v::string())
            .field("body", v::string())
            .field("author", v::optional(v::string()))
            .index("by_channel", &["channel"]),
        TableDef::new("test_counters")
            .field("name", v::string())
            .field("value", v::number())
            .index("by_name", &["name"]),
    ]
}

#[derive(Deserialize)]
struct Channel {
    channel: String,
}

#[derive(Deserialize)]
struct Send {
    channel: String,
    body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageArgs {
    channel: String,
    pagination_opts: PaginationOptsArg,
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

#[derive(Deserialize)]
struct Fail {
    code: String,
    message: String,
}

#[derive(Deserialize)]
struct Echo {
    value: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleSend {
    channel: String,
    body: String,
    delay_ms: f64,
}

fn message_validator() -> values::Validator {
    v::object([
        ("_id", v::id("test_messages")),
        ("_creationTime", v::number()),
        ("channel", v::string()),
        ("body", v::string()),
        ("author", v::optional(v::string())),
    ])
}

fn page_validator() -> values::Validator {
    v::object([
        ("page", v::array(message_validator())),
        ("isDone", v::boolean()),
        ("continueCursor", v::string()),
    ])
}

fn identity_validator() -> values::Validator {
    let claim = || v::union([v::string(), v::null()]);
    v::union([
        v::null(),
        v::object([
            ("subject", v::string()),
            ("issuer", v::string()),
            ("tokenIdentifier", v::string()),
            ("email", claim()),
            ("name", claim()),
            ("orgId", claim()),
            ("role", claim()),
        ]),
    ])
}

fn fail_args() -> values::Validator {
    v::object([("code", v::string()), ("message", v::string())])
}

/// @summary Lists the test messages of a channel
///
/// @description Returns every message of `channel`, oldest first, as stored
/// documents (`_id`, `_creationTime`, `channel`, `body` and `author` when a
/// signed-in caller sent it). No authorization: anyone, anonymous callers
/// included, may read any channel. Reads one range of the `by_channel` index,
/// so the cost grows with the size of the channel; as a live query it updates
/// whenever a message is sent to that channel. An unknown channel gives an
/// empty list. Test-only (registered with `--test-functions`).
///
/// @example request
/// ```json
/// {"args": {"channel": "general"}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": [
///     {
///       "_id": "hw9t4q04v5q73c1trmkst674a9t1fvfqc2ag",
///       "_creationTime": 1768469400000.001,
///       "channel": "general",
///       "body": "Welcome to the launch channel",
///       "author": "user_01JH7ZK3QX5T8B2M9W4N6P0RCD"
///     },
///     {
///       "_id": "5dz90563b3x0crej9ym3q58cwxt1fvfq0v6g",
///       "_creationTime": 1768469400000.002,
///       "channel": "general",
///       "body": "Standup starts in five minutes"
///     }
///   ]
/// }
/// ```
#[macros::function(
    query,
    path = "testing/messages:list",
    args = v::object([("channel", v::string())]),
    returns = v::array(message_validator())
)]
async fn list(ctx: QueryCtx, args: Channel) -> errors::Result<Vec<Value>> {
    let docs = ctx
        .db
        .query("test_messages")
        .with_index("by_channel", |r| r.eq("channel", args.channel.as_str()))
        .collect()
        .await?;
    Ok(docs.into_iter().map(|d| d.into_value()).collect())
}

async fn insert_message(ctx: MutationCtx, args: Send) -> errors::Result<String> {
    let author = ctx.auth.get_user_identity().map(|i| i.subject.clone());
    let mut fields = vec![
        ("channel".to_owned(), Value::from(args.channel)),
        ("body".to_owned(), Value::from(args.body)),
    ];
    if let Some(author) = author {
        fields.push(("author".to_owned(), Value::from(author)));
    }
    let id = ctx
        .db
        .insert("test_messages", Value::object(fields))
        .await?;
    Ok(id.encode())
}

/// @summary Sends a test message to a channel
///
/// @description Inserts a message into `channel` and returns its id. Any
/// caller may send: a signed-in caller (bearer token) is recorded as the
/// `author` (the token's subject); an anonymous message has no author. One
/// document write; every live `testing/messages:list` and `paginate` query of
/// that channel updates when the mutation commits. Fails only with the
/// engine's validation and limit errors (e.g. a body over 1 MiB).
/// Test-only.
///
/// @example request
/// ```json
/// {"args": {"channel": "general", "body": "Shipping the beta on Friday"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": "bm0ygyhpqy94r43bty1tjbqn91t1fvfqf7t0"}
/// ```
#[macros::function(
    mutation,
    path = "testing/messages:send",
    args = v::object([("channel", v::string()), ("body", v::string())]),
    returns = v::id("test_messages")
)]
async fn send(ctx: MutationCtx, args: Send) -> errors::Result<String> {
    insert_message(ctx, args).await
}

/// @summary Sends a test message on behalf of the scheduler
///
/// @description The internal twin of `testing/messages:send`, run by
/// `testing/messages:scheduleSend` through the scheduler. Not callable by
/// clients.
#[macros::function(
    internal_mutation,
    path = "testing/messages:sendInternal",
    args = v::object([("channel", v::string()), ("body", v::string())]),
    returns = v::id("test_messages")
)]
async fn send_internal(ctx: MutationCtx, args: Send) -> errors::Result<String> {
    insert_message(ctx, args).await
}

/// @summary Pages through the messages of a channel, newest first
///
/// @description Returns up to `paginationOpts.numItems` messages of
/// `channel`, newest first, with Convex's pagination contract: pass
/// `continueCursor` back as `cursor` for the next page; `isDone` is true on
/// the last page. No authorization: anyone may read. Reads one bounded index
/// range (at most 8,192 items per page). A negative or non-numeric page size
/// is a `VALIDATION_ERROR`; a cursor from another query is `InvalidCursor`.
/// Test-only.
///
/// @example request
/// ```json
/// {"args": {"channel": "general", "paginationOpts": {"numItems": 2, "cursor": null}}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "page": [
///       {
///         "_id": "rhmhzcwe4nyymmrfk9gxghxj3ht1fvfqjzdg",
///         "_creationTime": 1768469400000.003,
///         "channel": "general",
///         "body": "Retro notes are in the doc"
///       },
///       {
///         "_id": "5dz90563b3x0crej9ym3q58cwxt1fvfq0v6g",
///         "_creationTime": 1768469400000.002,
///         "channel": "general",
///         "body": "Standup starts in five minutes"
///       }
///     ],
///     "isDone": false,
///     "continueCursor": "ag5nZW5lcmFsAAE2ZDJkNTVkZmYwYjM0YjYw"
///   }
/// }
/// ```
///
/// @example request-error
/// ```json
/// {"args": {"channel": "general", "paginationOpts": {"numItems": -1, "cursor": null}}}
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "paginationOpts.numItems must be a non-negative number",
///   "errorData": {
///     "code": "VALIDATION_ERROR",
///     "message": "paginationOpts.numItems must be a non-negative number",
///     "statusCode": 400
///   }
/// }
/// ```
#[macros::function(
    query,
    path = "testing/messages:paginate",
    args = v::object([
        ("channel", v::string()),
        ("paginationOpts", pagination_opts_validator()),
    ]),
    returns = page_validator()
)]
async fn paginate(ctx: QueryCtx, args: PageArgs) -> errors::Result<Value> {
    let page = ctx
        .db
        .query("test_messages")
        .with_index("by_channel", |r| r.eq("channel", args.channel.as_str()))
        .order(Order::Desc)
        .paginate(args.pagination_opts.to_opts()?)
        .await?;
    page_to_value(database::Page {
        page: page
            .page
            .into_iter()
            .map(|d| d.into_value())
            .collect::<Vec<_>>(),
        is_done: page.is_done,
        continue_cursor: page.continue_cursor,
    })
}

/// @summary Gets the value of a named counter
///
/// @description Returns the current value of the counter `name`, or 0 when it
/// has never been incremented. No authorization: anyone may read any counter.
/// One index point read (`by_name`); as a live query it updates on every
/// increment of that counter. Never fails for a string name. Test-only.
///
/// @example request
/// ```json
/// {"args": {"name": "page-views"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": 3}
/// ```
#[macros::function(
    query,
    path = "testing/counter:get",
    args = v::object([("name", v::string())]),
    returns = v::number()
)]
async fn counter_get(ctx: QueryCtx, args: Name) -> errors::Result<f64> {
    let doc = ctx
        .db
        .query("test_counters")
        .with_index("by_name", |r| r.eq("name", args.name.as_str()))
        .first()
        .await?;
    Ok(doc
        .and_then(|d| d.field("value").and_then(Value::as_f64))
        .unwrap_or(0.0))
}

/// @summary Increments a named counter and returns its new value
///
/// @description Adds 1 to the counter `name`, creating it at 1 on first use,
/// and returns the new value. No authorization: any caller may increment.
/// Reads and writes one document; concurrent increments of the same counter
/// conflict and are retried by the engine, so none is lost (after 8 retries
/// the error is `WRITE_CONFLICT`). Used by the serializability tests.
/// Test-only.
///
/// @example request
/// ```json
/// {"args": {"name": "page-views"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": 3}
/// ```
#[macros::function(
    mutation,
    path = "testing/counter:increment",
    args = v::object([("name", v::string())]),
    returns = v::number()
)]
async fn counter_increment(ctx: MutationCtx, args: Name) -> errors::Result<f64> {
    let doc = ctx
        .db
        .query("test_counters")
        .with_index("by_name", |r| r.eq("name", args.name.as_str()))
        .first()
        .await?;
    match doc {
        Some(doc) => {
            let next = doc.field("value").and_then(Value::as_f64).unwrap_or(0.0) + 1.0;
            ctx.db
                .patch(
                    doc.id(),
                    Value::object([("value".to_owned(), Value::Float64(next))]),
                )
                .await?;
            Ok(next)
        }
        None => {
            ctx.db
                .insert(
                    "test_counters",
                    Value::object([
                        ("name".to_owned(), Value::from(args.name)),
                        ("value".to_owned(), Value::Float64(1.0)),
                    ]),
                )
                .await?;
            Ok(1.0)
        }
    }
}

fn app_error(args: &Fail) -> Error {
    let code = match args.code.as_str() {
        "FORBIDDEN" => ErrorCode::Forbidden,
        "NOT_FOUND" => ErrorCode::NotFound,
        "UNAUTHORIZED" => ErrorCode::Unauthorized,
        "CONFLICT" => ErrorCode::Conflict,
        _ => ErrorCode::ValidationError,
    };
    Error::app(code, args.message.clone())
}

/// @summary Fails a query with the application error it is given
///
/// @description Always fails with an application error (`ConvexError` in the
/// client) whose code is `code` (`FORBIDDEN`, `NOT_FOUND`, `UNAUTHORIZED` or
/// `CONFLICT`; anything else becomes `VALIDATION_ERROR`) and whose message is
/// `message`. No authorization: anyone may call it. Reads nothing. Used to
/// test error delivery over HTTP and to live subscriptions. Test-only.
///
/// @example request
/// ```json
/// {"args": {"code": "FORBIDDEN", "message": "Only the host can end this meeting"}}
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "Only the host can end this meeting",
///   "errorData": {
///     "code": "FORBIDDEN",
///     "message": "Only the host can end this meeting",
///     "statusCode": 403
///   }
/// }
/// ```
#[macros::function(query, path = "testing/errors:failQuery", args = fail_args())]
async fn fail_query(_ctx: QueryCtx, args: Fail) -> errors::Result<Value> {
    Err(app_error(&args))
}

/// @summary Fails a mutation with the application error it is given
///
/// @description Always fails with an application error whose code is `code`
/// (`FORBIDDEN`, `NOT_FOUND`, `UNAUTHORIZED` or `CONFLICT`; anything else
/// becomes `VALIDATION_ERROR`) and whose message is `message`; nothing is
/// written, since a failing mutation never commits. No authorization: anyone
/// may call it. Used to test mutation error delivery. Test-only.
///
/// @example request
/// ```json
/// {"args": {"code": "CONFLICT", "message": "The meeting has already ended"}}
/// ```
///
/// @example response-error
/// ```json
/// {
///   "status": "error",
///   "errorMessage": "The meeting has already ended",
///   "errorData": {
///     "code": "CONFLICT",
///     "message": "The meeting has already ended",
///     "statusCode": 409
///   }
/// }
/// ```
#[macros::function(mutation, path = "testing/errors:failMutation", args = fail_args())]
async fn fail_mutation(_ctx: MutationCtx, args: Fail) -> errors::Result<Value> {
    Err(app_error(&args))
}

/// @summary Gets the identity of the caller
///
/// @description Returns the verified identity of the caller — `subject`,
/// `issuer`, `tokenIdentifier` (`issuer|subject`) and the `email`, `name`,
/// `orgId` and `role` claims (null when absent) — or null for an anonymous
/// caller. Any caller may ask; the identity comes only from a verified bearer
/// token, and an invalid token is rejected with 401 before the query runs.
/// Reads nothing. Test-only.
///
/// @example request
/// ```json
/// {"args": {}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {
///     "subject": "user_01JH7ZK3QX5T8B2M9W4N6P0RCD",
///     "issuer": "connvo-dev",
///     "tokenIdentifier": "connvo-dev|user_01JH7ZK3QX5T8B2M9W4N6P0RCD",
///     "email": "ada@example.com",
///     "name": "Ada Lovelace",
///     "orgId": "org_01JH7ZM2V8K4R6T1Y3B5N7Q9WX",
///     "role": "admin"
///   }
/// }
/// ```
#[macros::function(query, path = "testing/auth:whoami", returns = identity_validator())]
async fn whoami(ctx: QueryCtx, _args: Value) -> errors::Result<Option<serde_json::Value>> {
    Ok(ctx.auth.get_user_identity().map(|i| {
        serde_json::json!({
            "subject": i.subject, "issuer": i.issuer, "tokenIdentifier": i.token_identifier,
            "email": i.email, "name": i.name, "orgId": i.org_id, "role": i.role,
        })
    }))
}

/// @summary Echoes a value back from an action
///
/// @description Returns `value` unchanged after logging `echo` (the log line
/// `[LOG] echo` comes back in `logLines`), so
/// every Convex value type (int64, bytes, special floats, nested objects)
/// makes the round trip through an action's argument and result encoding.
/// No authorization: anyone may call it. Reads and writes nothing. Test-only.
///
/// @example request
/// ```json
/// {"args": {"value": {"meetingId": "mtg_2026_q1_kickoff", "attendees": 4, "tags": ["planning", "q1"]}}}
/// ```
///
/// @example response
/// ```json
/// {
///   "status": "success",
///   "value": {"meetingId": "mtg_2026_q1_kickoff", "attendees": 4, "tags": ["planning", "q1"]},
///   "logLines": ["[LOG] echo"]
/// }
/// ```
#[macros::function(action, path = "testing/actions:echo", args = v::object([("value", v::any())]))]
async fn echo(ctx: ActionCtx, args: Echo) -> errors::Result<Value> {
    ctx.log("echo");
    Ok(args.value)
}

/// @summary Sends a test message from an action through a mutation
///
/// @description Runs `testing/messages:send` from an action (`runMutation`)
/// with the caller's identity, so a signed-in caller becomes the message's
/// author, and returns the new message's id. Any caller may use it. One
/// mutation (one document write); fails as `testing/messages:send` does.
/// Test-only.
///
/// @example request
/// ```json
/// {"args": {"channel": "general", "body": "Posted from an action"}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": "bm0ygyhpqy94r43bty1tjbqn91t1fvfqf7t0"}
/// ```
#[macros::function(
    action,
    path = "testing/actions:sendViaMutation",
    args = v::object([("channel", v::string()), ("body", v::string())]),
    returns = v::id("test_messages")
)]
async fn send_via_mutation(ctx: ActionCtx, args: Send) -> errors::Result<String> {
    ctx.run_mutation::<String>(
        "testing/messages:send",
        serde_json::json!({"channel": args.channel, "body": args.body}),
    )
    .await
}

/// @summary Schedules a test message to be sent after a delay
///
/// @description Schedules `testing/messages:sendInternal` to run after
/// `delayMs` milliseconds (negative counts as 0) and returns the job's id in
/// `_scheduled_functions`, whose `state` can be watched. The job is part of
/// this mutation's transaction: it exists only if the mutation commits, and
/// it runs exactly once. The scheduled message has no author. No
/// authorization: anyone may schedule. Test-only.
///
/// @example request
/// ```json
/// {"args": {"channel": "general", "body": "Reminder: demo at 3pm", "delayMs": 60000}}
/// ```
///
/// @example response
/// ```json
/// {"status": "success", "value": "hw9t4q04v5q73c1trmkst674a8wzgdfxnp4g"}
/// ```
#[macros::function(
    mutation,
    path = "testing/messages:scheduleSend",
    args = v::object([
        ("channel", v::string()),
        ("body", v::string()),
        ("delayMs", v::number()),
    ]),
    returns = v::id(runtime::scheduler::SCHEDULED_TABLE)
)]
async fn schedule_send(ctx: MutationCtx, args: ScheduleSend) -> errors::Result<String> {
    let job = ctx
        .scheduler
        .run_after(
            std::time::Duration::from_millis(args.delay_ms.max(0.0) as u64),
            "testing/messages:sendInternal",
            serde_json::json!({"channel": args.channel, "body": args.body}),
        )
        .await?;
    Ok(job.encode())
}

/// Registers the test functions under `testing/…`.
pub fn register(r: &mut Registry) {
    r.register(list_spec());
    r.register(send_spec());
    r.register(send_internal_spec());
    r.register(paginate_spec());
    r.register(counter_get_spec());
    r.register(counter_increment_spec());
    r.register(fail_query_spec());
    r.register(fail_mutation_spec());
    r.register(whoami_spec());
    r.register(echo_spec());
    r.register(send_via_mutation_spec());
    r.register(schedule_send_spec());
}
