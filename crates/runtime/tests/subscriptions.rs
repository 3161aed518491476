//! Live subscriptions at the runtime level: the read set of a query run is
//! subscribed at the query's timestamp; mutations that write into it
//! invalidate it (and wake waiters), mutations elsewhere do not, and an
//! access-checked query is invalidated when the document granting access
//! changes — so revoking access updates live queries.

mod common;

use std::sync::Arc;

use common::{Env, add_helpers, expect_err, id_of, json, within};
use database::Subscription;
use errors::{Error, ErrorCode};
use runtime::{FunctionDef, FunctionKind, QueryOutcome, Registry, Visibility};
use serde::Deserialize;
use serde_json::json;
use values::{Value, v};

#[derive(Deserialize)]
struct GroupArgs {
    group: String,
}

#[derive(Deserialize)]
struct MemberArgs {
    group: String,
    user: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupDocArgs {
    group_id: String,
}

#[derive(Deserialize)]
struct PostArgs {
    group: String,
    body: String,
}

#[derive(Deserialize)]
struct IdArgs {
    id: String,
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
        FunctionDef::new("messages:list", Visibility::Public)
            .args(v::object([("group", v::string())]))
            .query(|ctx, a: GroupArgs| async move {
                let docs = ctx
                    .db
                    .query("messages")
                    .with_index("by_group", |r| r.eq("group", a.group.as_str()))
                    .collect()
                    .await?;
                Ok(bodies(&docs))
            }),
    );
    // Access check through a membership document found by index.
    r.register(
        FunctionDef::new("messages:listAsMember", Visibility::Public)
            .args(v::object([("group", v::string()), ("user", v::string())]))
            .query(|ctx, a: MemberArgs| async move {
                let member = ctx
                    .db
                    .query("members")
                    .with_index("by_group_user", |r| {
                        r.eq("group", a.group.as_str()).eq("user", a.user.as_str())
                    })
                    .unique()
                    .await?;
                if member.is_none() {
                    return Err(Error::forbidden("Not a member of this group"));
                }
                let docs = ctx
                    .db
                    .query("messages")
                    .with_index("by_group", |r| r.eq("group", a.group.as_str()))
                    .collect()
                    .await?;
                Ok(bodies(&docs))
            }),
    );
    // Access check through a document read by id.
    r.register(
        FunctionDef::new("messages:listUnlessArchived", Visibility::Public)
            .args(v::object([("groupId", v::string())]))
            .query(|ctx, a: GroupDocArgs| async move {
                let group = ctx
                    .db
                    .get_by_str("groups", &a.group_id)
                    .await?
                    .ok_or_else(|| Error::not_found("no such group"))?;
                if group.field("archived").and_then(Value::as_bool) == Some(true) {
                    return Err(Error::forbidden("The group is archived"));
                }
                let name = group.field("name").and_then(Value::as_str).unwrap_or("");
                let docs = ctx
                    .db
                    .query("messages")
                    .with_index("by_group", |r| r.eq("group", name))
                    .collect()
                    .await?;
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
    r.register(
        FunctionDef::new("members:add", Visibility::Public)
            .args(v::object([("group", v::string()), ("user", v::string())]))
            .mutation(|ctx, a: MemberArgs| async move {
                let id = ctx
                    .db
                    .insert("members", json!({ "group": a.group, "user": a.user }))
                    .await?;
                Ok(id.encode())
            }),
    );
    r.register(
        FunctionDef::new("members:remove", Visibility::Public)
            .args(v::object([("id", v::string())]))
            .mutation(|ctx, a: IdArgs| async move {
                let id = ctx
                    .db
                    .normalize_id("members", &a.id)
                    .await
                    .ok_or_else(|| Error::validation("bad id"))?;
                ctx.db.delete(id).await?;
                Ok(Value::Null)
            }),
    );
    r.register(
        FunctionDef::new("groups:create", Visibility::Public)
            .args(v::object([("name", v::string())]))
            .mutation(|ctx, a: GroupArgs2| async move {
                let id = ctx
                    .db
                    .insert("groups", json!({ "name": a.name, "archived": false }))
                    .await?;
                Ok(id.encode())
            }),
    );
    r
}

#[derive(Deserialize)]
struct GroupArgs2 {
    name: String,
}

async fn run(env: &Env, path: &str, args: serde_json::Value) -> QueryOutcome {
    let spec = env
        .rt
        .resolve_public(path, Some(FunctionKind::Query))
        .unwrap();
    env.rt.run_query(&spec, json(args), None, None, None).await
}

fn subscribe(env: &Env, out: &QueryOutcome) -> Subscription {
    env.rt
        .database()
        .subscriptions()
        .subscribe(Arc::clone(&out.read_set), out.ts)
}

/// Runs a mutation and returns its commit timestamp.
async fn commit(env: &Env, path: &str, args: serde_json::Value) -> (Value, database::Timestamp) {
    let spec = env.rt.resolve_public(path, None).unwrap();
    let out = env.rt.run_mutation(&spec, json(args), None, None).await;
    let ts = out.ts.expect("committed");
    (out.result.unwrap(), ts)
}

#[tokio::test]
async fn a_write_into_the_read_set_invalidates_and_a_write_elsewhere_does_not() {
    let env = Env::new(registry()).await;
    commit(&env, "messages:post", json!({ "group": "a", "body": "hi" })).await;
    let out = run(&env, "messages:list", json!({ "group": "a" })).await;
    assert_eq!(out.result.as_ref().unwrap().to_json(), json!(["hi"]));
    let sub = subscribe(&env, &out);
    assert_eq!(sub.ts(), out.ts);

    // Another group: outside the read set.
    commit(&env, "messages:post", json!({ "group": "b", "body": "x" })).await;
    commit(&env, "members:add", json!({ "group": "a", "user": "u" })).await;
    assert_eq!(sub.invalidated_at(), None);
    assert!(sub.valid_at(env.rt.database().latest_ts()));

    // The same group: invalidated at that commit, waiters wake.
    let waiter = {
        let env_rt = env.rt.clone();
        let out_ts = out.ts;
        let read_set = Arc::clone(&out.read_set);
        tokio::spawn(async move {
            let sub = env_rt
                .database()
                .subscriptions()
                .subscribe(read_set, out_ts);
            sub.wait_invalidated().await
        })
    };
    // `_creationTime` has millisecond resolution and the test clock is
    // frozen: move it so the index orders "yo" after "hi".
    env.clock.advance_ms(1);
    let (_, ts) = commit(&env, "messages:post", json!({ "group": "a", "body": "yo" })).await;
    assert_eq!(sub.invalidated_at(), Some(ts));
    assert_eq!(within(2_000, sub.wait_invalidated()).await, ts);
    assert_eq!(within(2_000, waiter).await.unwrap(), ts);

    // The re-run sees the new state and, subscribed again, is valid.
    let out = run(&env, "messages:list", json!({ "group": "a" })).await;
    assert_eq!(out.result.as_ref().unwrap().to_json(), json!(["hi", "yo"]));
    let sub = subscribe(&env, &out);
    assert_eq!(sub.invalidated_at(), None);
}

#[tokio::test]
async fn a_subscription_registered_late_sees_commits_since_its_timestamp() {
    let env = Env::new(registry()).await;
    let out = run(&env, "messages:list", json!({ "group": "a" })).await;
    let (_, ts) = commit(
        &env,
        "messages:post",
        json!({ "group": "a", "body": "early" }),
    )
    .await;
    // Subscribing after the commit at the query's (older) timestamp: already stale.
    let sub = subscribe(&env, &out);
    assert_eq!(sub.invalidated_at(), Some(ts));
}

#[tokio::test]
async fn revoking_membership_invalidates_an_access_checked_query() {
    let env = Env::new(registry()).await;
    let (alice, _) = commit(
        &env,
        "members:add",
        json!({ "group": "g", "user": "alice" }),
    )
    .await;
    commit(
        &env,
        "messages:post",
        json!({ "group": "g", "body": "secret plan" }),
    )
    .await;

    let args = json!({ "group": "g", "user": "alice" });
    let out = run(&env, "messages:listAsMember", args.clone()).await;
    assert_eq!(
        out.result.as_ref().unwrap().to_json(),
        json!(["secret plan"])
    );
    let sub = subscribe(&env, &out);

    // Someone else joining the group does not touch alice's access check.
    commit(&env, "members:add", json!({ "group": "g", "user": "bob" })).await;
    assert_eq!(sub.invalidated_at(), None);

    // Removing alice does.
    let (_, ts) = commit(
        &env,
        "members:remove",
        json!({ "id": id_of(&alice).encode() }),
    )
    .await;
    assert_eq!(within(2_000, sub.wait_invalidated()).await, ts);
    let out = run(&env, "messages:listAsMember", args.clone()).await;
    expect_err(out.result.clone(), ErrorCode::Forbidden);

    // The failed (forbidden) result is reactive too: re-adding alice
    // invalidates it.
    let sub = subscribe(&env, &out);
    let (_, ts) = commit(
        &env,
        "members:add",
        json!({ "group": "g", "user": "alice" }),
    )
    .await;
    assert_eq!(sub.invalidated_at(), Some(ts));
    let out = run(&env, "messages:listAsMember", args).await;
    assert_eq!(out.result.unwrap().to_json(), json!(["secret plan"]));
}

#[tokio::test]
async fn changing_a_document_read_by_id_invalidates_the_query() {
    let env = Env::new(registry()).await;
    let (group, _) = commit(&env, "groups:create", json!({ "name": "g" })).await;
    let (other, _) = commit(&env, "groups:create", json!({ "name": "h" })).await;
    commit(&env, "messages:post", json!({ "group": "g", "body": "m" })).await;
    let group_id = id_of(&group);
    let args = json!({ "groupId": group_id.encode() });
    let out = run(&env, "messages:listUnlessArchived", args.clone()).await;
    assert_eq!(out.result.as_ref().unwrap().to_json(), json!(["m"]));
    let sub = subscribe(&env, &out);

    // Archiving another group: no effect.
    env.patch("groups", id_of(&other), json!({ "archived": true }))
        .await;
    assert_eq!(sub.invalidated_at(), None);

    // Archiving this group revokes access.
    env.patch("groups", group_id, json!({ "archived": true }))
        .await;
    assert!(sub.invalidated_at().is_some());
    within(2_000, sub.wait_invalidated()).await;
    let out = run(&env, "messages:listUnlessArchived", args).await;
    expect_err(out.result, ErrorCode::Forbidden);
}
