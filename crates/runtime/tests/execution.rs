//! Registry and execution: typed arguments for queries, mutations and
//! actions, argument and return validation, public/internal resolution,
//! kind mismatches, panics, read-only queries, application errors, log
//! lines and timeouts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, add_helpers, expect_err, json};
use errors::{Error, ErrorCode};
use runtime::{FunctionDef, FunctionKind, Registry, RuntimeConfig, Visibility};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

#[derive(Deserialize)]
struct AddArgs {
    a: f64,
    b: f64,
}

#[derive(Deserialize)]
struct NameArgs {
    name: String,
}

#[derive(Deserialize)]
struct XArgs {
    x: f64,
}

#[derive(Deserialize)]
struct Empty {}

fn registry(mutation_runs: Arc<AtomicUsize>) -> Registry {
    let mut r = Registry::new();
    add_helpers(&mut r);
    r.register(
        FunctionDef::new("math:add", Visibility::Public)
            .args(v::object([("a", v::number()), ("b", v::number())]))
            .returns(v::number())
            .query(|ctx, a: AddArgs| async move {
                ctx.log(&format!("adding {} and {}", a.a, a.b));
                ctx.warn("careful");
                Ok(a.a + a.b)
            }),
    );
    r.register(
        FunctionDef::new("counters:create", Visibility::Public)
            .args(v::object([("name", v::string())]))
            .returns(v::string())
            .mutation(move |ctx, a: NameArgs| {
                let runs = Arc::clone(&mutation_runs);
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let id = ctx
                        .db
                        .insert("counters", json!({ "name": a.name, "value": 0 }))
                        .await?;
                    Ok(id.encode())
                }
            }),
    );
    r.register(
        FunctionDef::new("math:double", Visibility::Public)
            .args(v::object([("x", v::number())]))
            .returns(v::number())
            .action(|ctx, a: XArgs| async move {
                let sum: f64 = ctx
                    .run_query("math:add", json!({ "a": a.x, "b": a.x }))
                    .await?;
                let _: String = ctx
                    .run_mutation("counters:create", json!({ "name": "from-action" }))
                    .await?;
                let secret: String = ctx.run_query("secret:internal", json!({})).await?;
                ctx.log(&format!("secret={secret}"));
                Ok(sum)
            }),
    );
    r.register(
        FunctionDef::new("secret:internal", Visibility::Internal)
            .returns(v::string())
            .query(|_ctx, _: Empty| async move { Ok("s3cr3t") }),
    );
    r.register(
        FunctionDef::new("bad:returns", Visibility::Public)
            .returns(v::number())
            .query(|_ctx, _: Empty| async move { Ok("not a number") }),
    );
    r.register(FunctionDef::new("bad:panic", Visibility::Public).query(
        |_ctx, _: Empty| async move {
            if std::hint::black_box(true) {
                panic!("handler exploded");
            }
            Ok(0.0)
        },
    ));
    r.register(FunctionDef::new("bad:forbidden", Visibility::Public).query(
        |_ctx, _: Empty| async move {
            Err::<Value, _>(Error::forbidden("You are not a member of this meeting"))
        },
    ));
    r.register(FunctionDef::new("slow:query", Visibility::Public).query(
        |_ctx, _: Empty| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(1.0)
        },
    ));
    r
}

async fn env() -> (Env, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    (Env::new(registry(Arc::clone(&runs))).await, runs)
}

#[tokio::test]
async fn public_query_mutation_and_action_run_with_typed_args() {
    let (env, runs) = env().await;
    let rt = &env.rt;

    let add = rt
        .resolve_public("math:add", Some(FunctionKind::Query))
        .unwrap();
    let out = rt
        .run_query(&add, json(json!({ "a": 2, "b": 40.5 })), None, None, None)
        .await;
    assert_eq!(out.result.unwrap().as_f64(), Some(42.5));

    let create = rt
        .resolve_public("counters:create", Some(FunctionKind::Mutation))
        .unwrap();
    let out = rt
        .run_mutation(&create, json(json!({ "name": "visits" })), None, None)
        .await;
    let id = common::id_of(&out.result.unwrap());
    assert!(out.ts.is_some(), "a committed mutation reports its ts");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let docs = env.docs("counters").await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["name"], "visits");
    assert_eq!(docs[0]["_id"], id.encode());

    let double = rt
        .resolve_public("math:double", Some(FunctionKind::Action))
        .unwrap();
    let out = rt.run_action(&double, json(json!({ "x": 21 })), None).await;
    assert_eq!(out.result.unwrap().as_f64(), Some(42.0));
    assert_eq!(out.log_lines, vec!["[LOG] secret=s3cr3t".to_owned()]);
    // The action's nested mutation committed.
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(env.count("counters").await, 2);
}

#[tokio::test]
async fn invalid_args_are_an_argument_validation_error() {
    let (env, runs) = env().await;
    let rt = &env.rt;
    let add = rt.resolve_public("math:add", None).unwrap();
    for bad in [
        json!({ "a": 1 }),
        json!({ "a": 1, "b": "two" }),
        json!({ "a": 1, "b": 2, "c": 3 }),
    ] {
        let out = rt
            .run_query(&add, json(bad.clone()), None, None, None)
            .await;
        let e = expect_err(out.result, ErrorCode::ValidationError);
        assert!(
            e.message().contains("ArgumentValidationError"),
            "{bad}: {}",
            e.message()
        );
    }
    let create = rt.resolve_public("counters:create", None).unwrap();
    let out = rt
        .run_mutation(&create, json(json!({ "name": 7 })), None, None)
        .await;
    let e = expect_err(out.result, ErrorCode::ValidationError);
    assert!(e.message().contains("ArgumentValidationError"));
    assert_eq!(runs.load(Ordering::SeqCst), 0, "handler must not run");
    let double = rt.resolve_public("math:double", None).unwrap();
    let out = rt.run_action(&double, json(json!({})), None).await;
    let e = expect_err(out.result, ErrorCode::ValidationError);
    assert!(e.message().contains("ArgumentValidationError"));
}

#[tokio::test]
async fn a_return_value_failing_returns_is_an_internal_error() {
    let (env, _) = env().await;
    let spec = env.rt.resolve_public("bad:returns", None).unwrap();
    let out = env
        .rt
        .run_query(&spec, json(json!({})), None, None, None)
        .await;
    let e = expect_err(out.result, ErrorCode::Internal);
    assert!(e.message().contains("ReturnsValidationError"), "{e}");
    assert!(!e.is_application(), "details must not reach clients");
    assert!(e.error_data().is_none());
}

#[tokio::test]
async fn unknown_and_internal_functions_are_not_found_and_kinds_are_checked() {
    let (env, _) = env().await;
    let rt = &env.rt;
    expect_err(
        rt.resolve_public("math:nope", None),
        ErrorCode::FunctionNotFound,
    );
    expect_err(
        rt.resolve_public("secret:internal", Some(FunctionKind::Query)),
        ErrorCode::FunctionNotFound,
    );
    // Internal functions are still callable from the server side.
    let v = rt
        .call(
            FunctionKind::Query,
            "secret:internal",
            json(json!({})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(v.as_str(), Some("s3cr3t"));

    let e = expect_err(
        rt.resolve_public("math:add", Some(FunctionKind::Mutation)),
        ErrorCode::BadRequest,
    );
    assert!(e.message().contains("math:add"), "{e}");
    expect_err(
        rt.resolve_public("counters:create", Some(FunctionKind::Action)),
        ErrorCode::BadRequest,
    );
    expect_err(
        rt.call(FunctionKind::Action, "math:add", json(json!({})), None)
            .await,
        ErrorCode::BadRequest,
    );
}

#[tokio::test]
async fn a_panicking_handler_is_an_internal_error_and_the_runtime_survives() {
    let (env, _) = env().await;
    let rt = &env.rt;
    let spec = rt.resolve_public("bad:panic", None).unwrap();
    for _ in 0..2 {
        let out = rt.run_query(&spec, json(json!({})), None, None, None).await;
        let e = expect_err(out.result, ErrorCode::Internal);
        assert!(
            !e.message().contains("exploded"),
            "panic text must not leak: {e}"
        );
    }
    // Still serving queries and mutations.
    let v = env
        .query("math:add", json!({ "a": 1, "b": 2 }))
        .await
        .unwrap();
    assert_eq!(v.as_f64(), Some(3.0));
    env.mutation("counters:create", json!({ "name": "after-panic" }))
        .await
        .unwrap();
    assert_eq!(env.count("counters").await, 1);
}

#[tokio::test]
async fn queries_cannot_write() {
    let (env, runs) = env().await;
    let rt = &env.rt;
    // A query's context only exposes a `DbReader` (no write methods), and the
    // transaction underneath is read-only: writing through it is refused.
    let mut tx = rt.database().begin(false).await.unwrap();
    let e = expect_err(
        tx.insert("counters", json(json!({ "name": "x", "value": 1 }))),
        ErrorCode::BadRequest,
    );
    assert!(e.message().contains("read-only"), "{e}");
    // Running a mutation as a query is refused before its handler runs.
    let create = rt.registry().get("counters:create").unwrap().clone();
    let out = rt
        .run_query(&create, json(json!({ "name": "x" })), None, None, None)
        .await;
    expect_err(out.result, ErrorCode::BadRequest);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(env.count("counters").await, 0);
}

#[tokio::test]
async fn application_errors_keep_their_code_and_data() {
    let (env, _) = env().await;
    let spec = env.rt.resolve_public("bad:forbidden", None).unwrap();
    let out = env
        .rt
        .run_query(&spec, json(json!({})), None, None, None)
        .await;
    let e = expect_err(out.result, ErrorCode::Forbidden);
    assert!(e.is_application());
    let data = e.error_data().expect("application errors carry data");
    assert_eq!(
        data,
        json!({
            "code": "FORBIDDEN",
            "message": "You are not a member of this meeting",
            "statusCode": 403,
        })
    );
}

#[tokio::test]
async fn log_lines_are_returned_with_their_level() {
    let (env, _) = env().await;
    let spec = env.rt.resolve_public("math:add", None).unwrap();
    let out = env
        .rt
        .run_query(&spec, json(json!({ "a": 1, "b": 2 })), None, None, None)
        .await;
    assert_eq!(out.result.unwrap().as_f64(), Some(3.0));
    assert_eq!(
        out.log_lines,
        vec![
            "[LOG] adding 1 and 2".to_owned(),
            "[WARN] careful".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_query_exceeding_its_timeout_fails_with_timeout() {
    let config = RuntimeConfig {
        query_timeout: Duration::from_millis(50),
        ..RuntimeConfig::default()
    };
    let env = Env::with_config(registry(Arc::new(AtomicUsize::new(0))), config).await;
    let spec = env.rt.resolve_public("slow:query", None).unwrap();
    let started = std::time::Instant::now();
    let out = env
        .rt
        .run_query(&spec, json(json!({})), None, None, None)
        .await;
    let e = expect_err(out.result, ErrorCode::Timeout);
    assert!(e.message().contains("slow:query"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout must cut the query short"
    );
    // Fast queries still run under the same config.
    let v = env
        .query("math:add", json!({ "a": 1, "b": 1 }))
        .await
        .unwrap();
    assert_eq!(v.as_f64(), Some(2.0));
}

/// `query_with_access`: the whole query runs the check and then a body
/// that sees no identity; the parts run apart as live subscriptions use
/// them; a query declared without a separate check has no parts.
#[tokio::test]
async fn a_query_with_a_separate_access_check_keeps_the_caller_out_of_its_body() {
    use runtime::QueryPart;

    #[derive(Deserialize)]
    struct Room {
        room: String,
    }
    let mut r = Registry::new();
    r.register(
        FunctionDef::new("rooms:peek", Visibility::Public)
            .args(v::object([("room", v::string())]))
            .returns(v::object([
                ("room", v::string()),
                ("seenAs", v::union([v::string(), v::null()])),
            ]))
            .query_with_access(
                |ctx, a: Room| async move {
                    let who = ctx.auth.require()?;
                    if a.room == "secret" && who.subject != "alice" {
                        return Err(Error::forbidden("only alice may peek"));
                    }
                    Ok(())
                },
                |ctx, a: Room| async move {
                    let seen = ctx.auth.get_user_identity().map(|i| i.subject.clone());
                    Ok(json!({ "room": a.room, "seenAs": seen }))
                },
            ),
    );
    r.register(
        FunctionDef::new("math:add", Visibility::Public)
            .args(v::object([("a", v::number()), ("b", v::number())]))
            .query(|_ctx, a: AddArgs| async move { Ok(a.a + a.b) }),
    );
    let env = Env::new(r).await;
    let person = |sub: &str| {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), json!(sub));
        claims.insert("iss".into(), json!("https://issuer.test"));
        Some(Arc::new(auth::Identity::from_claims(claims)))
    };
    let rt = &env.rt;
    let peek = rt.registry().get("rooms:peek").expect("registered");
    assert!(peek.shares_body_across_identities());
    let args = |room: &str| json(json!({ "room": room }));

    // Whole: the check, then a body that does not see the caller.
    let whole = rt
        .run_query(peek, args("secret"), person("alice"), None, None)
        .await;
    assert_eq!(
        whole.result.expect("alice may peek"),
        json(json!({ "room": "secret", "seenAs": null }))
    );
    let denied = rt
        .run_query(peek, args("secret"), person("bob"), None, None)
        .await;
    expect_err(denied.result, ErrorCode::Forbidden);
    let anonymous = rt.run_query(peek, args("lobby"), None, None, None).await;
    expect_err(anonymous.result, ErrorCode::Unauthorized);
    // Through the public entry point too.
    expect_err(
        rt.call(
            FunctionKind::Query,
            "rooms:peek",
            args("secret"),
            person("bob"),
        )
        .await,
        ErrorCode::Forbidden,
    );

    // The parts: the check's value is null; the body ignores the caller.
    let check = rt
        .run_query_part(
            peek,
            QueryPart::Access,
            args("secret"),
            person("alice"),
            None,
            None,
        )
        .await;
    assert_eq!(check.result.expect("allowed"), Value::Null);
    let check = rt
        .run_query_part(
            peek,
            QueryPart::Access,
            args("secret"),
            person("bob"),
            None,
            None,
        )
        .await;
    expect_err(check.result, ErrorCode::Forbidden);
    let body = rt
        .run_query_part(
            peek,
            QueryPart::Body,
            args("lobby"),
            person("alice"),
            None,
            None,
        )
        .await;
    assert_eq!(
        body.result.expect("body runs"),
        json(json!({ "room": "lobby", "seenAs": null }))
    );

    // An ordinary query has no parts.
    let add = rt.registry().get("math:add").expect("registered");
    assert!(!add.shares_body_across_identities());
    let part = rt
        .run_query_part(
            add,
            QueryPart::Body,
            json(json!({"a": 1, "b": 2})),
            None,
            None,
            None,
        )
        .await;
    expect_err(part.result, ErrorCode::Internal);
}
