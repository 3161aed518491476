//! Property test: random histories of concurrent read-modify-write
//! transactions (counters and list appends over several documents) produce
//! exactly what the serial execution in commit-timestamp order produces, and
//! every transaction observed exactly the state that serial order gives it.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use database::{Database, Timestamp};
use errors::ErrorCode;
use proptest::prelude::*;
use values::{DocumentId, Value};

#[derive(Debug, Clone)]
struct TxPlan {
    /// Documents read (by index into the counter list).
    reads: Vec<usize>,
    /// Documents incremented and appended to.
    writes: Vec<usize>,
    /// Yields between reads and commit (to interleave).
    yields: u8,
}

fn plan() -> impl Strategy<Value = TxPlan> {
    (
        proptest::collection::vec(0usize..4, 0..3),
        proptest::collection::vec(0usize..4, 1..3),
        0u8..4,
    )
        .prop_map(|(reads, writes, yields)| TxPlan {
            reads,
            writes,
            yields,
        })
}

#[derive(Debug, Clone)]
struct Observed {
    tx: usize,
    ts: Timestamp,
    /// (counter index, value, log length) as read.
    seen: Vec<(usize, f64, usize)>,
}

async fn run_one(db: Database, ids: Arc<Vec<DocumentId>>, tx_no: usize, plan: TxPlan) -> Observed {
    loop {
        let mut tx = db.begin(true).await.unwrap();
        let mut seen = Vec::new();
        let mut touched: Vec<usize> = plan
            .reads
            .iter()
            .chain(plan.writes.iter())
            .copied()
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let mut current = BTreeMap::new();
        for &i in &touched {
            let doc = tx.get(ids[i]).await.unwrap().unwrap();
            let value = doc.field("value").and_then(Value::as_f64).unwrap();
            let log = match doc.field("log") {
                Some(Value::Array(items)) => items.clone(),
                _ => panic!("log missing"),
            };
            seen.push((i, value, log.len()));
            current.insert(i, (value, log));
        }
        for _ in 0..plan.yields {
            tokio::task::yield_now().await;
        }
        let mut writes: Vec<usize> = plan.writes.clone();
        writes.sort_unstable();
        writes.dedup();
        for &i in &writes {
            let (value, mut log) = current.remove(&i).unwrap();
            log.push(Value::Float64(tx_no as f64));
            let mut patch = BTreeMap::new();
            patch.insert("value".to_owned(), Some(Value::Float64(value + 1.0)));
            patch.insert("log".to_owned(), Some(Value::Array(log)));
            tx.patch(ids[i], patch).await.unwrap();
        }
        match db.commit(tx).await {
            Ok(ts) => {
                return Observed {
                    tx: tx_no,
                    ts,
                    seen,
                };
            }
            Err(e) if e.code() == ErrorCode::WriteConflict => continue,
            Err(e) => panic!("unexpected commit error: {e}"),
        }
    }
}

/// `slow_sync_us`: run over a store whose commits become durable up to
/// that long late, so groups overlap in the engine's commit pipeline.
fn check_history(plans: Vec<TxPlan>, slow_sync_us: Option<u64>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let db = match slow_sync_us {
            None => common::open(dir.path()).await,
            Some(us) => common::open_slow(dir.path(), us).await.0,
        };
        let mut tx = db.begin(true).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(
                tx.insert(
                    "counters",
                    Value::object([
                        ("name".to_owned(), Value::from(format!("c{i}"))),
                        ("value".to_owned(), Value::Float64(0.0)),
                        ("log".to_owned(), Value::Array(vec![])),
                    ]),
                )
                .unwrap(),
            );
        }
        db.commit(tx).await.unwrap();
        let ids = Arc::new(ids);
        let handles: Vec<_> = plans
            .iter()
            .cloned()
            .enumerate()
            .map(|(n, p)| tokio::spawn(run_one(db.clone(), Arc::clone(&ids), n, p)))
            .collect();
        let mut observed = Vec::new();
        for h in handles {
            observed.push(h.await.unwrap());
        }
        // Serial model in commit order.
        observed.sort_by_key(|o| o.ts);
        let mut model: Vec<(f64, Vec<f64>)> = vec![(0.0, Vec::new()); 4];
        for o in &observed {
            for &(i, value, log_len) in &o.seen {
                assert_eq!(
                    model[i].0, value,
                    "tx {} saw a non-serial value of c{i}",
                    o.tx
                );
                assert_eq!(
                    model[i].1.len(),
                    log_len,
                    "tx {} saw a non-serial log of c{i}",
                    o.tx
                );
            }
            let mut writes = plans[o.tx].writes.clone();
            writes.sort_unstable();
            writes.dedup();
            for i in writes {
                model[i].0 += 1.0;
                model[i].1.push(o.tx as f64);
            }
        }
        let mut tx = db.begin(false).await.unwrap();
        for (i, id) in ids.iter().enumerate() {
            let doc = tx.get(*id).await.unwrap().unwrap();
            assert_eq!(doc.field("value").and_then(Value::as_f64), Some(model[i].0));
            let log: Vec<f64> = match doc.field("log") {
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_f64).collect(),
                _ => panic!(),
            };
            assert_eq!(
                log, model[i].1,
                "final log of c{i} differs from the serial model"
            );
        }
        // Commit timestamps are unique.
        let mut ts: Vec<_> = observed.iter().map(|o| o.ts).collect();
        ts.dedup();
        assert_eq!(ts.len(), observed.len());
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn concurrent_histories_are_serializable(plans in proptest::collection::vec(plan(), 2..24)) {
        check_history(plans, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// The same with commits durable up to 2 ms late: later groups are
    /// validated against groups still in flight.
    #[test]
    fn histories_stay_serializable_while_groups_are_in_flight(
        plans in proptest::collection::vec(plan(), 2..24)
    ) {
        check_history(plans, Some(2_000));
    }
}
