//! Commit and read throughput of the PostgreSQL backend, comparable with
//! `persistence-sqlite`'s `micro_bench`. Ignored by default; run with
//!
//! ```text
//! cargo test -p persistence-postgres --release --test bench -- --ignored --nocapture
//! ```
//!
//! Each "row" is one document plus one index entry; every commit also writes
//! its commit-log row and `max_ts`. Writers that share a store queue for its
//! write connection; writers on different stores ("nodes") queue on the
//! PostgreSQL advisory lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use persistence::{
    CommitRecord, DocumentWrite, IndexId, IndexWrite, KeyRange, Order, Persistence, TableNumber,
    Timestamp,
};
use persistence_postgres::PostgresPersistence;
use persistence_postgres::testing::TestSchema;

const T: TableNumber = TableNumber(1);
const IDX: IndexId = IndexId(1);

fn rows(ts: u64, first_row: u64, count: u64) -> (Vec<DocumentWrite>, Vec<IndexWrite>) {
    let mut documents = Vec::new();
    let mut index_writes = Vec::new();
    for n in first_row..first_row + count {
        let id = n.to_be_bytes().to_vec();
        let json = format!(
            r#"{{"_id":"{n:016x}","_creationTime":{ts},"name":"user {n}","email":"u{n}@example.com","n":{n}}}"#
        );
        documents.push(DocumentWrite {
            id: id.clone(),
            table: T,
            json: Some(json),
        });
        let mut key = format!("u{n}@example.com").into_bytes();
        key.push(0);
        index_writes.push(IndexWrite {
            index: IDX,
            key,
            doc_id: Some(id),
        });
    }
    (documents, index_writes)
}

/// One write transaction of `records` records of `rows_per_record` rows
/// each, at timestamps after the newest. Row numbers come from a disjoint
/// range per caller (`first_row`).
async fn write_txn(p: &dyn Persistence, first_row: u64, records: u64, rows_per_record: u64) {
    let mut txn = p.begin_write().await.expect("begin_write");
    let mut ts = txn.latest_ts().await.expect("latest_ts").0;
    for r in 0..records {
        ts += 1;
        let (documents, index_writes) = rows(ts, first_row + r * rows_per_record, rows_per_record);
        txn.write(&CommitRecord {
            ts: Timestamp(ts),
            documents,
            index_writes,
            log: vec![0u8; 64],
        })
        .await
        .expect("write");
    }
    txn.commit().await.expect("commit");
}

/// `writers` tasks spread over `stores`, each running `txns` transactions.
/// Returns the elapsed time.
async fn run(
    stores: &[Arc<PostgresPersistence>],
    next_row: &mut u64,
    writers: u64,
    txns: u64,
    records: u64,
    rows_per_record: u64,
) -> Duration {
    let per_txn = records * rows_per_record;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = Arc::clone(&stores[(w as usize) % stores.len()]);
        let base = *next_row + w * txns * per_txn;
        tasks.push(tokio::spawn(async move {
            for t in 0..txns {
                write_txn(&*store, base + t * per_txn, records, rows_per_record).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    *next_row += writers * txns * per_txn;
    start.elapsed()
}

fn report_commits(label: &str, elapsed: Duration, txns: u64, records: u64, rows: u64) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{label:<58} {secs:>6.2} s {:>8.0} µs/txn {:>7.0} txn/s {:>8.0} commits/s {:>8.0} rows/s",
        secs * 1e6 / txns as f64,
        txns as f64 / secs,
        records as f64 / secs,
        rows as f64 / secs,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly with --ignored --nocapture"]
async fn commit_throughput() {
    for synchronous_commit in [true, false] {
        let mode = if synchronous_commit {
            "sync=on"
        } else {
            "sync=off"
        };
        let schema = TestSchema::new();
        let a = schema
            .connect_with(|o| o.synchronous_commit = synchronous_commit)
            .await;
        let b = schema
            .connect_with(|o| o.synchronous_commit = synchronous_commit)
            .await;
        let one = [Arc::clone(&a)];
        let two = [Arc::clone(&a), Arc::clone(&b)];
        let mut next = 0u64;

        // Warm up connections and statement caches.
        run(&two, &mut next, 2, 20, 1, 1).await;

        let n = 2_000;
        let e = run(&one, &mut next, 1, n, 1, 1).await;
        report_commits(
            &format!("[{mode}] 1 writer: {n} commits x 1 row"),
            e,
            n,
            n,
            n,
        );

        let per = 250;
        let e = run(&one, &mut next, 8, per, 1, 1).await;
        report_commits(
            &format!("[{mode}] 8 writers, 1 node: {} commits x 1 row", 8 * per),
            e,
            8 * per,
            8 * per,
            8 * per,
        );

        let e = run(&two, &mut next, 8, per, 1, 1).await;
        report_commits(
            &format!("[{mode}] 8 writers, 2 nodes: {} commits x 1 row", 8 * per),
            e,
            8 * per,
            8 * per,
            8 * per,
        );

        let txns = 200;
        let e = run(&one, &mut next, 1, txns, 100, 1).await;
        report_commits(
            &format!("[{mode}] group commit: {txns} txns x 100 records x 1 row"),
            e,
            txns,
            txns * 100,
            txns * 100,
        );

        let e = run(&one, &mut next, 1, txns, 1, 100).await;
        report_commits(
            &format!("[{mode}] {txns} commits x 1 record of 100 rows"),
            e,
            txns,
            txns,
            txns * 100,
        );

        if synchronous_commit {
            read_throughput(&a, next).await;
        }
    }
}

async fn read_throughput(p: &Arc<PostgresPersistence>, rows: u64) {
    let s = p.snapshot().await.expect("snapshot");
    let gets = 20_000u64;
    let start = Instant::now();
    for i in 0..gets {
        let id = ((i * 7919) % rows).to_be_bytes();
        assert!(s.get(&id).await.expect("get").is_some());
    }
    let e = start.elapsed();
    println!(
        "[reads] {gets} point gets on one snapshot: {:.2} s, {:.1} µs/get",
        e.as_secs_f64(),
        e.as_secs_f64() * 1e6 / gets as f64
    );
    let scans = 10_000u64;
    let start = Instant::now();
    for i in 0..scans {
        let r = KeyRange {
            start: format!("u{}", (i * 31) % rows).into_bytes(),
            end: None,
        };
        let got = s
            .index_scan(IDX, &r, Order::Asc, 10)
            .await
            .expect("index_scan");
        assert!(!got.is_empty());
    }
    let e = start.elapsed();
    println!(
        "[reads] {scans} index scans of 10 rows: {:.2} s, {:.1} µs/scan",
        e.as_secs_f64(),
        e.as_secs_f64() * 1e6 / scans as f64
    );
    drop(s);
    let opens = 5_000u64;
    let start = Instant::now();
    for _ in 0..opens {
        drop(p.snapshot().await.expect("snapshot"));
    }
    println!(
        "[reads] open+drop snapshot: {:.1} µs",
        start.elapsed().as_secs_f64() * 1e6 / opens as f64
    );
    // Concurrent snapshot reads from 8 tasks.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let p = Arc::clone(p);
        tasks.push(tokio::spawn(async move {
            let s = p.snapshot().await.expect("snapshot");
            for i in 0..2_500u64 {
                let id = ((t * 100_003 + i * 7919) % rows).to_be_bytes();
                assert!(s.get(&id).await.expect("get").is_some());
            }
        }));
    }
    for t in tasks {
        t.await.expect("reader");
    }
    let e = start.elapsed();
    println!(
        "[reads] 8 tasks x 2500 point gets: {:.2} s, {:.0} gets/s",
        e.as_secs_f64(),
        20_000.0 / e.as_secs_f64()
    );
}
