//! Reactivity test: subscriptions over different index ranges; random writes;
//! each subscription is invalidated if and only if a write touched its range,
//! and after re-running, its value equals a fresh query.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use database::{Database, IndexRange, Order, Subscription};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use values::{DocumentId, Value};

#[derive(Debug, Clone)]
struct Range {
    group: String,
    lo: Option<f64>,
    hi: Option<f64>,
}

impl Range {
    fn contains(&self, group: &str, n: f64) -> bool {
        group == self.group && self.lo.is_none_or(|lo| n >= lo) && self.hi.is_none_or(|hi| n < hi)
    }
}

async fn run_range(db: &Database, r: &Range) -> (Vec<(String, f64)>, Subscription) {
    let mut tx = db.begin(false).await.unwrap();
    let table = Arc::clone(tx.schema().table("items").unwrap());
    let index = table.index("by_group_n").unwrap().clone();
    let mut range = IndexRange::all().eq("group", r.group.as_str());
    if let Some(lo) = r.lo {
        range = range.gte("n", lo);
    }
    if let Some(hi) = r.hi {
        range = range.lt("n", hi);
    }
    let (kr, bucket) = range.compile(&index).unwrap();
    let rows = tx
        .scan(&table, &index, &kr, bucket, Order::Asc, None, 10_000)
        .await
        .unwrap()
        .rows;
    let value = rows
        .iter()
        .map(|(_, d)| {
            (
                d.id().encode(),
                d.field("n").and_then(Value::as_f64).unwrap(),
            )
        })
        .collect();
    let ts = tx.ts();
    let sub = db
        .subscriptions()
        .subscribe(Arc::new(tx.into_read_set()), ts);
    (value, sub)
}

#[derive(Debug, Clone)]
enum Op {
    Insert { group: u8, n: u8 },
    Move { which: usize, group: u8, n: u8 },
    Delete { which: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 0u8..20).prop_map(|(group, n)| Op::Insert { group, n }),
        (0usize..64, 0u8..3, 0u8..20).prop_map(|(which, group, n)| Op::Move { which, group, n }),
        (0usize..64).prop_map(|which| Op::Delete { which }),
    ]
}

fn range_strategy() -> impl Strategy<Value = Range> {
    (
        0u8..3,
        proptest::option::of(0u8..20),
        proptest::option::of(0u8..20),
    )
        .prop_map(|(g, lo, hi)| Range {
            group: format!("g{g}"),
            lo: lo.map(f64::from),
            hi: hi.map(f64::from),
        })
}

#[test]
fn subscriptions_are_invalidated_exactly_when_their_range_is_touched() {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(range_strategy(), 20..40),
        proptest::collection::vec(op(), 10..60),
    );
    runner
        .run(&strategy, |(ranges, ops)| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(check(ranges, ops));
            Ok(())
        })
        .unwrap();
}

async fn check(ranges: Vec<Range>, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    // Live documents: id -> (group, n).
    let mut live: BTreeMap<DocumentId, (String, f64)> = BTreeMap::new();
    let mut subs = Vec::new();
    for r in &ranges {
        subs.push(run_range(&db, r).await);
    }
    let mut reruns = 0usize;
    for op in ops {
        let mut tx = db.begin(true).await.unwrap();
        // The (group, n) keys this write touches: old and new.
        let mut touched: Vec<(String, f64)> = Vec::new();
        match op {
            Op::Insert { group, n } => {
                let g = format!("g{group}");
                let id = tx
                    .insert(
                        "items",
                        Value::object([
                            ("group".to_owned(), Value::from(g.as_str())),
                            ("n".to_owned(), Value::Float64(f64::from(n))),
                        ]),
                    )
                    .unwrap();
                touched.push((g.clone(), f64::from(n)));
                live.insert(id, (g, f64::from(n)));
            }
            Op::Move { which, group, n } => {
                if live.is_empty() {
                    continue;
                }
                let id = *live.keys().nth(which % live.len()).unwrap();
                let g = format!("g{group}");
                let mut p = BTreeMap::new();
                p.insert("group".to_owned(), Some(Value::from(g.as_str())));
                p.insert("n".to_owned(), Some(Value::Float64(f64::from(n))));
                tx.patch(id, p).await.unwrap();
                touched.push(live[&id].clone());
                touched.push((g.clone(), f64::from(n)));
                live.insert(id, (g, f64::from(n)));
            }
            Op::Delete { which } => {
                if live.is_empty() {
                    continue;
                }
                let id = *live.keys().nth(which % live.len()).unwrap();
                tx.delete(id).await.unwrap();
                touched.push(live.remove(&id).unwrap());
            }
        }
        let ts = db.commit(tx).await.unwrap();
        for (i, r) in ranges.iter().enumerate() {
            let expected = touched.iter().any(|(g, n)| r.contains(g, *n));
            let (_, sub) = &subs[i];
            let invalidated = sub.invalidated_at();
            assert_eq!(
                invalidated.is_some(),
                expected,
                "range {r:?}, write touching {touched:?}"
            );
            if let Some(at) = invalidated {
                assert_eq!(at, ts);
                subs[i] = run_range(&db, r).await;
                reruns += 1;
            }
        }
    }
    // Every live value equals a fresh query.
    for (i, r) in ranges.iter().enumerate() {
        let (fresh, _) = run_range(&db, r).await;
        assert_eq!(subs[i].0, fresh, "stale subscription for {r:?}");
    }
    let _ = reruns;
}
