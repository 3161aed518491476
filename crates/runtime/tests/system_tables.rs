//! System tables are written only by the runtime: a function's `ctx.db`
//! cannot forge scheduled jobs, cron state or stored mutation results.

mod common;

use common::{Env, expect_err, helpers_registry, json};
use errors::ErrorCode;
use runtime::{FunctionDef, MutationCtx, Visibility};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

#[derive(Deserialize)]
struct Args {
    id: Option<String>,
}

#[tokio::test]
async fn functions_cannot_write_system_tables() {
    let mut registry = helpers_registry();
    registry.register(
        FunctionDef::new("forge:insertJob", Visibility::Public)
            .args(v::object([("id", v::optional(v::string()))]))
            .mutation(|ctx: MutationCtx, _a: Args| async move {
                ctx.db
                    .insert(
                        "_scheduled_functions",
                        json!({"name": "x", "state": "success"}),
                    )
                    .await?;
                Ok(Value::Null)
            }),
    );
    registry.register(
        FunctionDef::new("forge:deleteJob", Visibility::Public)
            .args(v::object([("id", v::optional(v::string()))]))
            .mutation(|ctx: MutationCtx, a: Args| async move {
                let id = values::DocumentId::decode(a.id.as_deref().unwrap_or_default())
                    .ok_or_else(|| errors::Error::validation("bad id"))?;
                ctx.db.delete(id).await?;
                Ok(Value::Null)
            }),
    );
    let env = Env::new(registry).await;
    let err = expect_err(
        env.mutation("forge:insertJob", json!({})).await,
        ErrorCode::Forbidden,
    );
    assert!(err.message().contains("_scheduled_functions"), "{err}");
    assert_eq!(env.count("_scheduled_functions").await, 0);

    // A job created by the runtime (a cron) cannot be deleted by a function either.
    env.rt.sync_crons().await.unwrap();
    let cron = env
        .docs("_cron_jobs")
        .await
        .into_iter()
        .next()
        .expect("system crons exist");
    let id = cron["_id"].as_str().unwrap().to_owned();
    expect_err(
        env.mutation("forge:deleteJob", json!({ "id": id })).await,
        ErrorCode::Forbidden,
    );
    assert!(!env.docs("_cron_jobs").await.is_empty());
    let _ = json(json!({}));
}
