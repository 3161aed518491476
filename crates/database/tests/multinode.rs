//! Two engines over one PostgreSQL schema (two "nodes"): the commit-log
//! tailer carries commits of one node to the subscriptions of the other, and
//! optimistic concurrency control holds across nodes.
//!
//! Skipped with a loud banner when PostgreSQL is unreachable (fails with
//! `CI=true`); see `persistence_postgres::testing`.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use database::{Database, DatabaseOptions, RandomIds, SystemClock};
use errors::ErrorCode;
use persistence_postgres::testing::TestSchema;
use values::Value;

async fn node(schema: &TestSchema) -> Database {
    let db = node_without_tailer(schema).await;
    db.start_commit_tailer(Duration::from_millis(5));
    db
}

/// A node that only learns of other nodes' commits when asked
/// (`catch_up`) or when it commits itself.
async fn node_without_tailer(schema: &TestSchema) -> Database {
    let store = schema.connect().await;
    Database::open(
        store,
        common::schema(),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        DatabaseOptions::default(),
    )
    .await
    .expect("open database")
}

fn counter(value: f64) -> Value {
    Value::object([
        ("name".to_owned(), Value::from("c")),
        ("value".to_owned(), Value::Float64(value)),
        ("log".to_owned(), Value::Array(Vec::new())),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_on_one_node_invalidates_a_subscription_on_another() {
    let schema = TestSchema::new();
    let a = node(&schema).await;
    let b = node(&schema).await;

    let mut tx = a.begin(true).await.unwrap();
    let id = tx.insert("counters", counter(0.0)).unwrap();
    let created = a.commit(tx).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        b.subscriptions().wait_processed(created),
    )
    .await
    .expect("node B applies node A's commit");

    let mut latencies = Vec::new();
    for round in 1..=20 {
        let mut read = b.begin(false).await.unwrap();
        let seen = read.get(id).await.unwrap().expect("document visible on B");
        assert_eq!(
            seen.field("value"),
            Some(&Value::Float64(f64::from(round - 1)))
        );
        let ts = read.ts();
        let sub = b
            .subscriptions()
            .subscribe(Arc::new(read.into_read_set()), ts);

        let started = Instant::now();
        let mut w = a.begin(true).await.unwrap();
        let mut p = BTreeMap::new();
        p.insert("value".to_owned(), Some(Value::Float64(f64::from(round))));
        w.patch(id, p).await.unwrap();
        let committed = a.commit(w).await.unwrap();
        let invalidated = tokio::time::timeout(Duration::from_secs(2), sub.wait_invalidated())
            .await
            .expect("subscription on B invalidated within 2 s of a commit on A");
        latencies.push(started.elapsed());
        assert_eq!(invalidated, committed);
    }
    latencies.sort();
    eprintln!(
        "cross-node invalidation (commit on A -> subscription on B): median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

async fn increment(db: &Database, id: values::DocumentId) -> usize {
    let mut retries = 0;
    loop {
        let mut tx = db.begin(true).await.unwrap();
        let doc = tx.get(id).await.unwrap().unwrap();
        let value = doc.field("value").and_then(Value::as_f64).unwrap();
        let mut p = BTreeMap::new();
        p.insert("value".to_owned(), Some(Value::Float64(value + 1.0)));
        tx.patch(id, p).await.unwrap();
        match db.commit(tx).await {
            Ok(_) => return retries,
            Err(e) if e.code() == ErrorCode::WriteConflict => retries += 1,
            Err(e) => panic!("commit failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_increments_through_two_nodes_lose_no_update() {
    let schema = TestSchema::new();
    let a = node(&schema).await;
    let b = node(&schema).await;

    let mut tx = a.begin(true).await.unwrap();
    let id = tx.insert("counters", counter(0.0)).unwrap();
    a.commit(tx).await.unwrap();

    const WORKERS: usize = 4;
    const EACH: usize = 25;
    let mut tasks = Vec::new();
    for w in 0..WORKERS * 2 {
        let db = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut retries = 0;
            for _ in 0..EACH {
                retries += increment(&db, id).await;
            }
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    let mut tx = b.begin(false).await.unwrap();
    let value = tx
        .get(id)
        .await
        .unwrap()
        .unwrap()
        .field("value")
        .and_then(Value::as_f64)
        .unwrap();
    eprintln!(
        "{} increments through two nodes, {retries} conflicts retried",
        WORKERS * 2 * EACH
    );
    assert_eq!(value, (WORKERS * 2 * EACH) as f64);
}

fn patch_value(value: f64) -> BTreeMap<String, Option<Value>> {
    let mut p = BTreeMap::new();
    p.insert("value".to_owned(), Some(Value::Float64(value)));
    p
}

/// Node B stops following the log; node A commits and prunes the log past
/// B's position. B must notice the gap (the log's floor), invalidate its
/// live subscriptions instead of silently missing the pruned commits, and
/// refuse a transaction that read before the gap; after the reset it
/// follows the log normally again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_behind_the_pruned_commit_log_resets_instead_of_missing_updates() {
    let schema = TestSchema::new();
    let a = node(&schema).await;
    let b = node_without_tailer(&schema).await;

    let mut tx = a.begin(true).await.unwrap();
    let id = tx.insert("counters", counter(0.0)).unwrap();
    let created = a.commit(tx).await.unwrap();
    b.catch_up().await.unwrap();
    assert_eq!(b.subscriptions().processed_ts(), created);

    // B reads and subscribes at `created`, and starts a read-modify-write.
    let mut read = b.begin(false).await.unwrap();
    read.get(id).await.unwrap().expect("visible on B");
    let sub = b
        .subscriptions()
        .subscribe(Arc::new(read.into_read_set()), created);
    let mut stale = b.begin(true).await.unwrap();
    stale.get(id).await.unwrap();
    stale.patch(id, patch_value(100.0)).await.unwrap();

    // A changes the document three times and then commits something else,
    // and prunes everything but that newest entry: the surviving log alone
    // says nothing about the document B read.
    for v in 1..=3 {
        let mut w = a.begin(true).await.unwrap();
        w.patch(id, patch_value(f64::from(v))).await.unwrap();
        a.commit(w).await.unwrap();
    }
    let mut w = a.begin(true).await.unwrap();
    w.insert("counters", counter(-1.0)).unwrap();
    let newest = a.commit(w).await.unwrap();
    let pruned = a.prune_commit_log(Duration::ZERO).await.unwrap();
    assert!(pruned >= 3, "pruned {pruned} entries");
    assert!(sub.invalidated_at().is_none(), "B has not looked yet");

    // B looks: the floor shows the gap, so every live query is invalidated.
    b.catch_up().await.unwrap();
    assert_eq!(sub.invalidated_at(), Some(newest));
    assert_eq!(b.subscriptions().processed_ts(), newest);

    // The transaction that read before the gap cannot commit (no lost update).
    let err = b.commit(stale).await.expect_err("stale write refused");
    assert_eq!(err.code(), ErrorCode::WriteConflict);

    // After the reset B follows the log again, incrementally.
    let mut read = b.begin(false).await.unwrap();
    let doc = read.get(id).await.unwrap().unwrap();
    assert_eq!(doc.field("value"), Some(&Value::Float64(3.0)));
    let ts = read.ts();
    let sub = b
        .subscriptions()
        .subscribe(Arc::new(read.into_read_set()), ts);
    let mut w = a.begin(true).await.unwrap();
    w.patch(id, patch_value(4.0)).await.unwrap();
    let fourth = a.commit(w).await.unwrap();
    b.catch_up().await.unwrap();
    assert_eq!(sub.invalidated_at(), Some(fourth));

    // A node that is up to date is never reset by pruning, even when idle.
    let mut read = b.begin(false).await.unwrap();
    read.get(id).await.unwrap();
    let ts = read.ts();
    let idle = b
        .subscriptions()
        .subscribe(Arc::new(read.into_read_set()), ts);
    a.prune_commit_log(Duration::ZERO).await.unwrap();
    b.prune_commit_log(Duration::ZERO).await.unwrap();
    b.catch_up().await.unwrap();
    assert!(
        idle.invalidated_at().is_none(),
        "an up-to-date node keeps its subscriptions"
    );

    // And B's own commits keep working next to the pruned log.
    let retries = increment(&b, id).await;
    assert!(retries <= 1);
}
