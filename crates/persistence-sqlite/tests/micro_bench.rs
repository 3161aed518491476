//! A micro-check of commit and read throughput, ignored by default (it takes
//! tens of seconds and measures the disk as much as the code). Run it with
//!
//! ```text
//! cargo test -p persistence-sqlite --release --test micro_bench -- --ignored --nocapture
//! ```
//!
//! Each "row" is one document plus one index entry; every commit also writes
//! its commit-log row and `max_ts`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use persistence::{
    CommitRecord, DocumentWrite, IndexId, IndexWrite, KeyRange, Order, Persistence, TableNumber,
    Timestamp,
};
use persistence_sqlite::{SqliteOptions, SqlitePersistence};

const T: TableNumber = TableNumber(1);
const IDX: IndexId = IndexId(1);

fn record(ts: u64, first_row: u64, rows: u64) -> CommitRecord {
    let mut documents = Vec::new();
    let mut index_writes = Vec::new();
    for n in first_row..first_row + rows {
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
    CommitRecord {
        ts: Timestamp(ts),
        documents,
        index_writes,
        log: vec![0u8; 64],
    }
}

/// `commits` write transactions of `records_per_txn` records of
/// `rows_per_record` rows each. Returns the elapsed time.
async fn run_writes(
    p: &Arc<SqlitePersistence>,
    next_row: &mut u64,
    commits: u64,
    records_per_txn: u64,
    rows_per_record: u64,
) -> Duration {
    let mut ts = p.latest_ts().await.unwrap().0;
    let start = Instant::now();
    for _ in 0..commits {
        let mut txn = p.begin_write().await.unwrap();
        for _ in 0..records_per_txn {
            ts += 1;
            txn.write(&record(ts, *next_row, rows_per_record))
                .await
                .unwrap();
            *next_row += rows_per_record;
        }
        txn.commit().await.unwrap();
    }
    start.elapsed()
}

fn report(label: &str, elapsed: Duration, commits: u64, rows: u64) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{label:<58} {secs:>7.2} s  {:>8.1} µs/commit  {:>9.0} commits/s  {:>9.0} rows/s",
        secs * 1e6 / commits as f64,
        commits as f64 / secs,
        rows as f64 / secs,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "micro-benchmark; run explicitly with --ignored --nocapture"]
async fn micro_bench() {
    for synchronous_full in [true, false] {
        let sync = if synchronous_full { "FULL" } else { "NORMAL" };
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let options = SqliteOptions {
            synchronous_full,
            ..SqliteOptions::default()
        };
        let p = SqlitePersistence::open(dir.path(), options).unwrap();

        let mut next_row = 0;
        let n = 10_000;
        let e = run_writes(&p, &mut next_row, n, 1, 1).await;
        report(&format!("[{sync}] {n} commits x 1 row"), e, n, n);

        let n = 1_000;
        let e = run_writes(&p, &mut next_row, n, 1, 100).await;
        report(&format!("[{sync}] {n} commits x 100 rows"), e, n, n * 100);

        let n = 100;
        let e = run_writes(&p, &mut next_row, n, 100, 1).await;
        report(
            &format!("[{sync}] {n} txns x 100 records x 1 row (group commit)"),
            e,
            n,
            n * 100,
        );

        if synchronous_full {
            let s = p.snapshot().await.unwrap();
            let rows = next_row;
            let gets = 100_000u64;
            let start = Instant::now();
            for i in 0..gets {
                let id = ((i * 7919) % rows).to_be_bytes();
                assert!(s.get(&id).await.unwrap().is_some());
            }
            let e = start.elapsed();
            println!(
                "[reads] {gets} point gets on one snapshot: {:.2} s, {:.2} µs/get",
                e.as_secs_f64(),
                e.as_secs_f64() * 1e6 / gets as f64
            );
            let scans = 20_000u64;
            let start = Instant::now();
            for i in 0..scans {
                let start_key = format!("u{}", (i * 31) % rows).into_bytes();
                let r = KeyRange {
                    start: start_key,
                    end: None,
                };
                let got = s.index_scan(IDX, &r, Order::Asc, 10).await.unwrap();
                assert!(!got.is_empty());
            }
            let e = start.elapsed();
            println!(
                "[reads] {scans} index scans of 10 rows: {:.2} s, {:.2} µs/scan",
                e.as_secs_f64(),
                e.as_secs_f64() * 1e6 / scans as f64
            );
            drop(s);
            let start = Instant::now();
            for _ in 0..10_000 {
                drop(p.snapshot().await.unwrap());
            }
            println!(
                "[reads] open+drop snapshot: {:.2} µs",
                start.elapsed().as_secs_f64() * 1e6 / 10_000.0
            );
        }
    }
}
