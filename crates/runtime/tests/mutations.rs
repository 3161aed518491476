//! Mutations: atomicity, optimistic concurrency with automatic retries (no
//! lost updates), read-your-writes inside a transaction, and exactly-once
//! execution of WebSocket mutations keyed by `(sessionId, requestId)`,
//! including across a restart.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Env, add_helpers, expect_err, json};
use database::Order;
use errors::{Error, ErrorCode};
use runtime::{FunctionDef, FunctionKind, Registry, SessionRequest, SessionSocket, Visibility};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Barrier;
use values::{Value, v};

#[derive(Deserialize)]
struct NameArgs {
    name: String,
}

#[derive(Deserialize)]
struct TagArgs {
    tag: String,
}

/// Counters shared between a test and its handlers.
#[derive(Default)]
struct Probes {
    increments: AtomicUsize,
    dedup_runs: AtomicUsize,
    /// When set, the first `n` increment executions wait for each other after
    /// reading, so they all read the same version and must conflict.
    barrier: Option<(usize, Barrier)>,
}

fn registry(p: Arc<Probes>) -> Registry {
    let mut r = Registry::new();
    add_helpers(&mut r);
    r.register(
        FunctionDef::new("counters:create", Visibility::Public)
            .args(v::object([("name", v::string())]))
            .mutation(|ctx, a: NameArgs| async move {
                let id = ctx
                    .db
                    .insert("counters", json!({ "name": a.name, "value": 0 }))
                    .await?;
                Ok(id.encode())
            }),
    );
    let probes = Arc::clone(&p);
    r.register(
        FunctionDef::new("counters:increment", Visibility::Public)
            .args(v::object([("name", v::string())]))
            .returns(v::number())
            .mutation(move |ctx, a: NameArgs| {
                let p = Arc::clone(&probes);
                async move {
                    let run = p.increments.fetch_add(1, Ordering::SeqCst);
                    let doc = ctx
                        .db
                        .query("counters")
                        .with_index("by_name", |r| r.eq("name", a.name.as_str()))
                        .unique()
                        .await?
                        .ok_or_else(|| Error::not_found("no counter"))?;
                    let value = doc.field("value").and_then(Value::as_f64).unwrap_or(0.0);
                    if let Some((n, barrier)) = &p.barrier
                        && run < *n
                    {
                        barrier.wait().await;
                    }
                    ctx.db
                        .patch(doc.id(), json!({ "value": value + 1.0 }))
                        .await?;
                    Ok(value + 1.0)
                }
            }),
    );
    r.register(
        FunctionDef::new("effects:writeThenFail", Visibility::Public)
            .args(v::object([("tag", v::string())]))
            .mutation(|ctx, a: TagArgs| async move {
                let id = ctx.db.insert("effects", json!({ "tag": a.tag })).await?;
                ctx.db.patch(id, json!({ "tag": "patched" })).await?;
                ctx.db
                    .insert("counters", json!({ "name": "side", "value": 1 }))
                    .await?;
                Err::<Value, _>(Error::conflict("changed my mind"))
            }),
    );
    r.register(
        FunctionDef::new("effects:readYourWrites", Visibility::Public)
            .args(v::object([("tag", v::string())]))
            .mutation(|ctx, a: TagArgs| async move {
                let id = ctx.db.insert("effects", json!({ "tag": a.tag })).await?;
                let got = ctx.db.get(id).await?.expect("own insert is visible");
                let tag_after_insert = got.field("tag").cloned();
                ctx.db.patch(id, json!({ "tag": "second" })).await?;
                let by_index = ctx
                    .db
                    .query("effects")
                    .with_index("by_tag", |r| r.eq("tag", "second"))
                    .collect()
                    .await?;
                let old_tag = ctx
                    .db
                    .query("effects")
                    .with_index("by_tag", |r| r.eq("tag", a.tag.as_str()))
                    .collect()
                    .await?;
                let all = ctx.db.query("effects").order(Order::Desc).take(10).await?;
                let gone = ctx.db.insert("effects", json!({ "tag": "temp" })).await?;
                ctx.db.delete(gone).await?;
                let after_delete = ctx.db.get(gone).await?;
                Ok(json!({
                    "tagAfterInsert": tag_after_insert.map(|v| v.to_json()),
                    "byIndex": by_index.iter().map(|d| d.id().encode()).collect::<Vec<_>>(),
                    "oldTagMatches": old_tag.len(),
                    "allCount": all.len(),
                    "deletedVisible": after_delete.is_some(),
                    "id": id.encode(),
                }))
            }),
    );
    let probes = Arc::clone(&p);
    r.register(
        FunctionDef::new("effects:once", Visibility::Public)
            .args(v::object([("tag", v::string())]))
            .mutation(move |ctx, a: TagArgs| {
                let p = Arc::clone(&probes);
                async move {
                    let n = p.dedup_runs.fetch_add(1, Ordering::SeqCst) + 1;
                    ctx.log(&format!("run {n}"));
                    let id = ctx.db.insert("effects", json!({ "tag": a.tag })).await?;
                    Ok(json!({ "run": n, "id": id.encode() }))
                }
            }),
    );
    r
}

async fn counter_value(env: &Env, name: &str) -> f64 {
    env.docs("counters")
        .await
        .into_iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["value"].as_f64())
        .expect("counter exists")
}

#[tokio::test]
async fn a_failing_mutation_leaves_nothing_behind() {
    let env = Env::new(registry(Arc::default())).await;
    let out = env
        .rt
        .run_mutation(
            env.rt.registry().get("effects:writeThenFail").unwrap(),
            json(json!({ "tag": "t" })),
            None,
            None,
        )
        .await;
    let e = expect_err(out.result, ErrorCode::Conflict);
    assert_eq!(e.message(), "changed my mind");
    assert!(out.ts.is_none());
    assert_eq!(env.count("effects").await, 0);
    assert_eq!(env.count("counters").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_increments_are_retried_and_none_is_lost() {
    const N: usize = 6; // below the SQLite read pool size: all hold a snapshot at once
    let probes = Arc::new(Probes {
        barrier: Some((N, Barrier::new(N))),
        ..Probes::default()
    });
    let env = Env::new(registry(Arc::clone(&probes))).await;
    env.mutation("counters:create", json!({ "name": "c" }))
        .await
        .unwrap();
    let spec = env.rt.registry().get("counters:increment").unwrap().clone();
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let rt = env.rt.clone();
            let spec = spec.clone();
            tokio::spawn(async move {
                rt.run_mutation(&spec, json(json!({ "name": "c" })), None, None)
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        let out = t.await.unwrap();
        results.push(out.result.expect("every increment eventually commits"));
    }
    let mut seen: Vec<f64> = results.iter().map(|v| v.as_f64().unwrap()).collect();
    seen.sort_by(f64::total_cmp);
    let expected: Vec<f64> = (1..=N).map(|i| i as f64).collect();
    assert_eq!(seen, expected, "each increment saw a distinct serial value");
    assert_eq!(counter_value(&env, "c").await, N as f64);
    // All first attempts read value 0 before any committed, so all but one
    // conflicted and were re-executed at least once.
    let runs = probes.increments.load(Ordering::SeqCst);
    assert!(
        runs >= 2 * N - 1,
        "only {runs} executions for {N} increments"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_increments_without_coordination_all_commit() {
    const N: usize = 16;
    let env = Env::new(registry(Arc::default())).await;
    env.mutation("counters:create", json!({ "name": "c" }))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let rt = env.rt.clone();
            tokio::spawn(async move {
                rt.call(
                    FunctionKind::Mutation,
                    "counters:increment",
                    json(json!({ "name": "c" })),
                    None,
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("increment commits");
    }
    assert_eq!(counter_value(&env, "c").await, N as f64);
}

#[tokio::test]
async fn a_mutation_reads_its_own_writes() {
    let env = Env::new(registry(Arc::default())).await;
    let v = env
        .mutation("effects:readYourWrites", json!({ "tag": "first" }))
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["tagAfterInsert"], "first");
    assert_eq!(v["byIndex"], json!([v["id"].clone()]));
    assert_eq!(v["oldTagMatches"], 0, "the index no longer has the old key");
    assert_eq!(v["allCount"], 1);
    assert_eq!(v["deletedVisible"], false);
    let docs = env.docs("effects").await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["tag"], "second");
}

fn session(request_id: u32) -> Option<SessionRequest> {
    Some(SessionRequest {
        session_id: "3f1c2a7e-session".into(),
        socket: SessionSocket::Later,
        request_id,
        start_by: None,
    })
}

/// Runs `effects:once` anonymously with tag `x` as `session`.
async fn run_once(env: &Env, session: Option<SessionRequest>) -> runtime::MutationOutcome {
    let spec = env.rt.registry().get("effects:once").unwrap().clone();
    env.rt
        .run_mutation(&spec, json(json!({ "tag": "x" })), None, session)
        .await
}

/// A stored result is returned only to the caller that stored it: someone
/// else re-sending the same (session, request) ids gets a run of their own,
/// never the other caller's result.
#[tokio::test]
async fn a_stored_result_is_returned_only_to_the_caller_that_stored_it() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(Arc::clone(&probes))).await;
    let spec = env.rt.registry().get("effects:once").unwrap().clone();
    let person = |sub: &str| {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), json!(sub));
        claims.insert("iss".into(), json!("https://issuer.test"));
        Some(Arc::new(auth::Identity::from_claims(claims)))
    };
    let run = |who: Option<Arc<auth::Identity>>| {
        let rt = env.rt.clone();
        let spec = spec.clone();
        async move {
            rt.run_mutation(&spec, json(json!({ "tag": "x" })), who, session(7))
                .await
                .result
                .unwrap()
                .to_json()
        }
    };
    let alice = run(person("alice")).await;
    assert_eq!(alice["run"], 1);
    // Alice re-sends: her stored result.
    assert_eq!(run(person("alice")).await, alice);
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 1);
    // Mallory (or nobody) with Alice's session and request ids: a run of
    // their own, not Alice's result.
    let mallory = run(person("mallory")).await;
    assert_eq!(mallory["run"], 2, "{mallory}");
    let anonymous = run(None).await;
    assert_eq!(anonymous["run"], 3, "{anonymous}");
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 3);
    // Each of them re-sending gets their own stored result back.
    assert_eq!(run(person("mallory")).await, mallory);
    assert_eq!(run(None).await, anonymous);
    assert_eq!(run(person("alice")).await, alice);
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 3);
}

/// On a session's first socket no stored result can exist, so the lookup
/// is skipped; the result is still stored for the client's later sockets.
#[tokio::test]
async fn a_first_socket_request_skips_the_lookup_and_still_stores_its_result() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(Arc::clone(&probes))).await;
    let first_socket = |request_id: u32| {
        let mut s = session(request_id).unwrap();
        s.socket = SessionSocket::First;
        Some(s)
    };
    let first = run_once(&env, first_socket(1)).await.result.unwrap();
    assert_eq!(first.get("run").and_then(Value::as_f64), Some(1.0));
    assert_eq!(env.count("_session_requests").await, 1, "stored");

    // Re-sent on a later socket (the client saw no response): the stored
    // result, not a second run.
    let resent = run_once(&env, session(1)).await;
    assert_eq!(resent.result.unwrap().to_json(), first.to_json());
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 1);

    // A client that (wrongly) repeats a request id on its first socket is
    // not looked up: it only loses its own de-duplication.
    let repeated = run_once(&env, first_socket(1)).await;
    assert_eq!(
        repeated.result.unwrap().get("run").and_then(Value::as_f64),
        Some(2.0)
    );
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 2);
}

/// A request past its start deadline is not run (`OVERLOADED`, nothing
/// written), but one that already committed still gets its stored result.
#[tokio::test]
async fn a_request_past_its_start_deadline_is_shed_unless_it_already_committed() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(Arc::clone(&probes))).await;
    let late = |request_id: u32| {
        let mut s = session(request_id).unwrap();
        s.start_by = Some(std::time::Instant::now() - std::time::Duration::from_millis(1));
        Some(s)
    };
    let first = run_once(&env, session(1)).await.result.unwrap();

    let shed = run_once(&env, late(2)).await;
    let err = expect_err(shed.result, ErrorCode::Overloaded);
    assert!(err.message().contains("was not run"), "{err}");
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 1, "not run");
    assert_eq!(env.count("effects").await, 1, "nothing written");

    // The committed request, re-sent and queued past the deadline: its result.
    let resent = run_once(&env, late(1)).await;
    assert_eq!(resent.result.unwrap().to_json(), first.to_json());
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 1);

    // The shed request may be sent again in time.
    let again = run_once(&env, session(2)).await;
    assert!(again.result.is_ok());
    assert_eq!(env.count("effects").await, 2);
}

#[tokio::test]
async fn session_requests_execute_once_even_across_a_restart() {
    let probes = Arc::new(Probes::default());
    let mut env = Env::new(registry(Arc::clone(&probes))).await;
    let run = |env: &Env, request_id: u32| {
        let rt = env.rt.clone();
        async move {
            let spec = rt.registry().get("effects:once").unwrap().clone();
            rt.run_mutation(
                &spec,
                json(json!({ "tag": "x" })),
                None,
                session(request_id),
            )
            .await
        }
    };
    let first = run(&env, 1).await;
    let first_value = first.result.unwrap();
    assert_eq!(first_value.get("run").and_then(Value::as_f64), Some(1.0));
    assert_eq!(first.log_lines, vec!["[LOG] run 1".to_owned()]);

    let again = run(&env, 1).await;
    assert_eq!(
        probes.dedup_runs.load(Ordering::SeqCst),
        1,
        "not re-executed"
    );
    assert_eq!(again.result.unwrap().to_json(), first_value.to_json());
    assert_eq!(
        again.log_lines, first.log_lines,
        "stored log lines replayed"
    );
    assert_eq!(env.count("effects").await, 1);

    // Restart: new Database, new Runtime, same directory.
    env = env.restart(registry(Arc::clone(&probes))).await;
    let after_restart = run(&env, 1).await;
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        after_restart.result.unwrap().to_json(),
        first_value.to_json()
    );
    assert_eq!(env.count("effects").await, 1);

    // Another request id of the same session executes.
    let second = run(&env, 2).await;
    assert_eq!(
        second.result.unwrap().get("run").and_then(Value::as_f64),
        Some(2.0)
    );
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 2);
    assert_eq!(env.count("effects").await, 2);

    // Without a session request id, nothing is de-duplicated.
    for _ in 0..2 {
        let spec = env.rt.registry().get("effects:once").unwrap().clone();
        env.rt
            .run_mutation(&spec, json(json!({ "tag": "y" })), None, None)
            .await
            .result
            .unwrap();
    }
    assert_eq!(probes.dedup_runs.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_failed_session_request_stores_nothing_and_may_be_retried() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(Arc::clone(&probes))).await;
    let spec = env
        .rt
        .registry()
        .get("effects:writeThenFail")
        .unwrap()
        .clone();
    for _ in 0..2 {
        let out = env
            .rt
            .run_mutation(&spec, json(json!({ "tag": "t" })), None, session(9))
            .await;
        expect_err(out.result, ErrorCode::Conflict);
    }
    assert_eq!(env.count("_session_requests").await, 0);
    assert_eq!(env.count("effects").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_of_a_session_request_commit_once() {
    let probes = Arc::new(Probes::default());
    let env = Env::new(registry(Arc::clone(&probes))).await;
    let spec = env.rt.registry().get("effects:once").unwrap().clone();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let rt = env.rt.clone();
            let spec = spec.clone();
            tokio::spawn(async move {
                rt.run_mutation(&spec, json(json!({ "tag": "dup" })), None, session(5))
                    .await
                    .result
                    .expect("duplicate request succeeds")
                    .to_json()
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    // Handlers may have run speculatively, but exactly one commit happened
    // and every duplicate got its result.
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    assert_eq!(env.count("effects").await, 1);
    assert_eq!(env.count("_session_requests").await, 1);
    let id = results[0]["id"].as_str().unwrap();
    assert_eq!(env.docs("effects").await[0]["_id"], id);
}
