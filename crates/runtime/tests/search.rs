//! Full-text search through the runtime API: `with_search_index` with
//! `SearchFilter::search`/`eq`, most relevant first, `take`/`first`/`collect`,
//! live invalidation of a searching query, and `VALIDATION_ERROR` for a search
//! combined with `order`, `with_index` or `paginate`, or naming the wrong fields.

mod common;

use std::sync::Arc;

use common::{Env, add_helpers, expect_err, json};
use database::{Order, PaginationOpts};
use errors::ErrorCode;
use runtime::{FunctionDef, FunctionKind, QueryOutcome, Registry, Visibility};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

#[derive(Deserialize)]
struct SearchArgs {
    group: String,
    text: String,
    mode: String,
}

#[derive(Deserialize)]
struct PostArgs {
    group: String,
    body: String,
}

fn bodies(docs: &[database::Document]) -> Value {
    Value::Array(
        docs.iter()
            .filter_map(|d| d.field("body").cloned())
            .collect(),
    )
}

fn registry() -> Registry {
    let mut r = Registry::new();
    add_helpers(&mut r);
    r.register(
        FunctionDef::new("messages:search", Visibility::Public)
            .args(v::object([
                ("group", v::string()),
                ("text", v::string()),
                ("mode", v::string()),
            ]))
            .query(|ctx, a: SearchArgs| async move {
                let q = ctx.db.query("messages");
                let search = |q: runtime::SearchFilter| {
                    q.search("body", &a.text).eq("group", a.group.as_str())
                };
                let docs = match a.mode.as_str() {
                    "take2" => q.with_search_index("search_body", search).take(2).await?,
                    "first" => q
                        .with_search_index("search_body", search)
                        .first()
                        .await?
                        .into_iter()
                        .collect(),
                    "collect" => q.with_search_index("search_body", search).collect().await?,
                    "filter" => {
                        q.with_search_index("search_body", search)
                            .filter(|d| {
                                d.field("body")
                                    .and_then(Value::as_str)
                                    .is_some_and(|b| b.contains('!'))
                            })
                            .take(10)
                            .await?
                    }
                    "order" => {
                        q.with_search_index("search_body", search)
                            .order(Order::Desc)
                            .take(10)
                            .await?
                    }
                    "withIndex" => {
                        q.with_search_index("search_body", search)
                            .with_index("by_group", |r| r)
                            .take(10)
                            .await?
                    }
                    "paginate" => {
                        q.with_search_index("search_body", search)
                            .paginate(PaginationOpts {
                                num_items: 5,
                                ..Default::default()
                            })
                            .await?
                            .page
                    }
                    "searchIndexAsRange" => q.with_index("search_body", |r| r).take(10).await?,
                    "wrongField" => {
                        q.with_search_index("search_body", |s| s.search("group", &a.text))
                            .take(10)
                            .await?
                    }
                    "wrongFilter" => {
                        q.with_search_index("search_body", |s| {
                            s.search("body", &a.text).eq("body", "x")
                        })
                        .take(10)
                        .await?
                    }
                    "unknownIndex" => q.with_search_index("nope", search).take(10).await?,
                    other => return Err(errors::Error::validation(format!("mode {other}"))),
                };
                Ok(bodies(&docs))
            }),
    );
    r.register(
        FunctionDef::new("messages:post", Visibility::Public)
            .args(v::object([("group", v::string()), ("body", v::string())]))
            .mutation(|ctx, a: PostArgs| async move {
                let id = ctx
                    .db
                    .insert("messages", json!({ "group": a.group, "body": a.body }))
                    .await?;
                Ok(id.encode())
            }),
    );
    r
}

async fn post(env: &Env, group: &str, body: &str) {
    env.mutation("messages:post", json!({ "group": group, "body": body }))
        .await
        .unwrap();
}

async fn search(env: &Env, group: &str, text: &str, mode: &str) -> errors::Result<Vec<String>> {
    let v = env
        .query(
            "messages:search",
            json!({ "group": group, "text": text, "mode": mode }),
        )
        .await?;
    Ok(v.to_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_owned())
        .collect())
}

#[tokio::test]
async fn with_search_index_returns_the_most_relevant_first() {
    let env = Env::new(registry()).await;
    post(&env, "g", "roadmap review").await;
    post(&env, "g", "hiring hiring roadmap!").await;
    post(&env, "g", "lunch menu").await;
    post(&env, "other", "roadmap hiring hiring hiring").await;
    assert_eq!(
        search(&env, "g", "roadmap hiring", "collect")
            .await
            .unwrap(),
        ["hiring hiring roadmap!", "roadmap review"]
    );
    assert_eq!(
        search(&env, "g", "roadmap hiring", "take2").await.unwrap(),
        ["hiring hiring roadmap!", "roadmap review"]
    );
    assert_eq!(
        search(&env, "g", "hiring", "first").await.unwrap(),
        ["hiring hiring roadmap!"]
    );
    // Type-ahead on the last term.
    assert_eq!(
        search(&env, "g", "lun", "collect").await.unwrap(),
        ["lunch menu"]
    );
    // `.filter` applies to the ranked results.
    assert_eq!(
        search(&env, "g", "roadmap", "filter").await.unwrap(),
        ["hiring hiring roadmap!"]
    );
    assert!(search(&env, "g", "", "collect").await.unwrap().is_empty());
}

#[tokio::test]
async fn search_misuse_is_a_validation_error() {
    let env = Env::new(registry()).await;
    post(&env, "g", "roadmap").await;
    for mode in [
        "order",
        "withIndex",
        "paginate",
        "searchIndexAsRange",
        "wrongField",
        "wrongFilter",
        "unknownIndex",
    ] {
        let err = expect_err(
            search(&env, "g", "roadmap", mode).await,
            ErrorCode::ValidationError,
        );
        assert!(!err.message().is_empty(), "{mode}");
    }
}

#[tokio::test]
async fn a_live_search_is_invalidated_by_a_matching_post_only() {
    let env = Env::new(registry()).await;
    post(&env, "g", "standup notes").await;
    let spec = env
        .rt
        .resolve_public("messages:search", Some(FunctionKind::Query))
        .unwrap();
    let out: QueryOutcome = env
        .rt
        .run_query(
            &spec,
            json(json!({ "group": "g", "text": "standup", "mode": "collect" })),
            None,
            None,
            None,
        )
        .await;
    assert_eq!(out.result.unwrap().to_json(), json!(["standup notes"]));
    let sub = env
        .rt
        .database()
        .subscriptions()
        .subscribe(Arc::clone(&out.read_set), out.ts);
    post(&env, "other", "standup elsewhere").await;
    post(&env, "g", "unrelated").await;
    assert_eq!(sub.invalidated_at(), None);
    post(&env, "g", "standup tomorrow").await;
    assert!(sub.invalidated_at().is_some());
}
