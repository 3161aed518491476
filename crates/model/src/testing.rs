//! Test functions: a tiny chat and counters, used to exercise the engine and
//! the protocol end to end (subscriptions, mutations, pagination, errors,
//! auth, actions, the scheduler) before and independently of the domain.
//! Registered only with `connvo serve --test-functions`.

use database::{Order, TableDef};
use errors::{Error, ErrorCode};
use runtime::{
    FunctionDef, MutationCtx, PaginationOptsArg, QueryCtx, Registry, Visibility, page_to_value,
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

/// @summary Lists the test messages of a channel
/// @description Returns every message of `channel` in creation order. Test-only
/// function (registered with `--test-functions`); no authorization.
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

async fn send(ctx: MutationCtx, args: Send) -> errors::Result<String> {
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

/// Registers the test functions under `testing/…`.
pub fn register(r: &mut Registry) {
    r.register(list_spec());
    r.register(
        FunctionDef::new("testing/messages:send", Visibility::Public)
            .args(v::object([("channel", v::string()), ("body", v::string())]))
            .returns(v::id("test_messages"))
            .doc("@summary Sends a test message")
            .mutation(send),
    );
    r.register(
        FunctionDef::new("testing/messages:paginate", Visibility::Public)
            .args(v::object([
                ("channel", v::string()),
                ("paginationOpts", pagination_opts_validator()),
            ]))
            .doc("@summary Pages through a channel, newest first")
            .query(paginate),
    );
    r.register(
        FunctionDef::new("testing/counter:get", Visibility::Public)
            .args(v::object([("name", v::string())]))
            .returns(v::number())
            .doc("@summary Gets a counter")
            .query(counter_get),
    );
    r.register(
        FunctionDef::new("testing/counter:increment", Visibility::Public)
            .args(v::object([("name", v::string())]))
            .returns(v::number())
            .doc("@summary Increments a counter")
            .mutation(counter_increment),
    );
    r.register(
        FunctionDef::new("testing/errors:failQuery", Visibility::Public)
            .args(v::object([("code", v::string()), ("message", v::string())]))
            .doc("@summary Fails with an application error")
            .query(|_ctx: QueryCtx, args: Fail| async move { Err::<Value, _>(app_error(&args)) }),
    );
    r.register(
        FunctionDef::new("testing/errors:failMutation", Visibility::Public)
            .args(v::object([("code", v::string()), ("message", v::string())]))
            .doc("@summary Fails with an application error")
            .mutation(
                |_ctx: MutationCtx, args: Fail| async move { Err::<Value, _>(app_error(&args)) },
            ),
    );
    r.register(
        FunctionDef::new("testing/auth:whoami", Visibility::Public)
            .doc("@summary Gets the caller's identity")
            .query(|ctx: QueryCtx, _args: Value| async move {
                Ok(ctx.auth.get_user_identity().map(|i| {
                    serde_json::json!({
                        "subject": i.subject, "issuer": i.issuer, "tokenIdentifier": i.token_identifier,
                        "email": i.email, "name": i.name, "orgId": i.org_id, "role": i.role,
                    })
                }))
            }),
    );
    r.register(
        FunctionDef::new("testing/actions:echo", Visibility::Public)
            .args(v::object([("value", v::any())]))
            .doc("@summary Echoes a value from an action")
            .action(|ctx: runtime::ActionCtx, args: Echo| async move {
                ctx.log("echo");
                Ok(args.value)
            }),
    );
    r.register(
        FunctionDef::new("testing/actions:sendViaMutation", Visibility::Public)
            .args(v::object([("channel", v::string()), ("body", v::string())]))
            .doc("@summary Sends a message from an action through runMutation")
            .action(|ctx: runtime::ActionCtx, args: Send| async move {
                ctx.run_mutation::<String>(
                    "testing/messages:send",
                    serde_json::json!({"channel": args.channel, "body": args.body}),
                )
                .await
            }),
    );
    r.register(
        FunctionDef::new("testing/messages:scheduleSend", Visibility::Public)
            .args(v::object([
                ("channel", v::string()),
                ("body", v::string()),
                ("delayMs", v::number()),
            ]))
            .doc("@summary Schedules a message to be sent later")
            .mutation(|ctx: MutationCtx, args: ScheduleSend| async move {
                let job = ctx
                    .scheduler
                    .run_after(
                        std::time::Duration::from_millis(args.delay_ms.max(0.0) as u64),
                        "testing/messages:sendInternal",
                        serde_json::json!({"channel": args.channel, "body": args.body}),
                    )
                    .await?;
                Ok(job.encode())
            }),
    );
    r.register(
        FunctionDef::new("testing/messages:sendInternal", Visibility::Internal)
            .args(v::object([("channel", v::string()), ("body", v::string())]))
            .doc("@summary Sends a test message (internal)")
            .mutation(send),
    );
}
