//! The engine's read caches return exactly what storage holds: reads at one
//! snapshot timestamp are shared, reads are carried to later (and earlier)
//! snapshots only across commits that did not write into them, later
//! snapshots see later commits, pending
//! writes still overlay cached rows, and versions cached by the committer
//! equal their stored decoding; a limited scan fetches extra committed rows
//! only for pending writes that can hide one.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;

use database::{Database, Document, Order, ReadCacheStats};
use values::Value;

fn item(group: &str, n: f64) -> Value {
    Value::object([
        ("group".to_owned(), Value::from(group)),
        ("n".to_owned(), Value::Float64(n)),
    ])
}

async fn scan_ns(tx: &mut database::Transaction, group: &str) -> Vec<f64> {
    common::scan_group_ns(tx, group, Order::Asc).await
}

async fn seed(db: &Database, ns: &[f64]) -> Vec<values::DocumentId> {
    let mut tx = db.begin(true).await.unwrap();
    let ids = ns
        .iter()
        .map(|n| tx.insert("items", item("g", *n)).unwrap())
        .collect();
    db.commit(tx).await.unwrap();
    ids
}

#[tokio::test]
async fn reads_at_one_snapshot_timestamp_go_to_storage_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let ids = seed(&db, &[1.0, 2.0, 3.0]).await;

    let mut a = db.begin(false).await.unwrap();
    let mut b = db.begin(false).await.unwrap();
    assert_eq!(a.ts(), b.ts(), "no commit in between");
    let before = db.read_cache_stats();
    assert_eq!(scan_ns(&mut a, "g").await, vec![1.0, 2.0, 3.0]);
    assert_eq!(scan_ns(&mut b, "g").await, vec![1.0, 2.0, 3.0]);
    let got_a = a.get(ids[0]).await.unwrap().unwrap();
    let got_b = b.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(got_a, got_b);
    let after = db.read_cache_stats();
    assert_eq!(after.read_misses - before.read_misses, 2, "{after:?}");
    assert_eq!(after.read_hits - before.read_hits, 2, "{after:?}");
    // Both transactions still recorded their reads.
    assert!(!a.read_set().is_empty() && !b.read_set().is_empty());

    // A later snapshot sees the later commit, not the cached rows.
    seed(&db, &[4.0]).await;
    let mut c = db.begin(false).await.unwrap();
    assert!(c.ts() > a.ts());
    assert_eq!(scan_ns(&mut c, "g").await, vec![1.0, 2.0, 3.0, 4.0]);
    // The older snapshot keeps its own (cached) view.
    assert_eq!(scan_ns(&mut a, "g").await, vec![1.0, 2.0, 3.0]);
}

/// At a new snapshot: group `g`'s `n`s and document `id`'s `n`, with the
/// cache counts before and after those two reads.
async fn read_at_new_snapshot(
    db: &Database,
    id: values::DocumentId,
) -> (
    database::Transaction,
    Vec<f64>,
    f64,
    ReadCacheStats,
    ReadCacheStats,
) {
    let before = db.read_cache_stats();
    let mut tx = db.begin(false).await.unwrap();
    let ns = scan_ns(&mut tx, "g").await;
    let doc = tx.get(id).await.unwrap().unwrap();
    let n = doc.field("n").and_then(Value::as_f64).unwrap();
    let after = db.read_cache_stats();
    (tx, ns, n, before, after)
}

#[tokio::test]
async fn reads_are_carried_across_commits_that_do_not_touch_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let ids = seed(&db, &[1.0, 2.0]).await;

    let mut t1 = db.begin(false).await.unwrap();
    assert_eq!(scan_ns(&mut t1, "g").await, vec![1.0, 2.0]);
    assert!(t1.get(ids[0]).await.unwrap().is_some());

    // A commit into another group and of another document.
    let mut tx = db.begin(true).await.unwrap();
    tx.insert("items", item("h", 7.0)).unwrap();
    db.commit(tx).await.unwrap();
    let (mut t2, ns, n, before, after) = read_at_new_snapshot(&db, ids[0]).await;
    assert!(t2.ts() > t1.ts());
    assert_eq!((ns, n), (vec![1.0, 2.0], 1.0));
    assert_eq!(after.read_carried - before.read_carried, 2, "{after:?}");
    assert_eq!(after.read_misses, before.read_misses, "{after:?}");
    // Both reads are in the read set as usual.
    assert!(!t2.read_set().is_empty());

    // A commit that writes inside the scanned range and to the document.
    let mut tx = db.begin(true).await.unwrap();
    let mut p = BTreeMap::new();
    p.insert("n".to_owned(), Some(Value::Float64(1.5)));
    tx.patch(ids[0], p).await.unwrap();
    db.commit(tx).await.unwrap();
    let (_t3, ns, n, before, after) = read_at_new_snapshot(&db, ids[0]).await;
    assert_eq!((ns, n), (vec![1.5, 2.0], 1.5));
    assert_eq!(after.read_misses - before.read_misses, 2, "{after:?}");
    assert_eq!(after.read_carried, before.read_carried, "{after:?}");

    // The older snapshots still read their own state: the entries now hold
    // t3's rows, and the log shows a write in between.
    assert_eq!(scan_ns(&mut t2, "g").await, vec![1.0, 2.0]);
    let doc = t1.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(doc.field("n"), Some(&Value::Float64(1.0)));
    // And a read carried backwards over the unrelated commit is a hit.
    let before = db.read_cache_stats();
    let mut t2b = db.begin(false).await.unwrap();
    assert_eq!(scan_ns(&mut t2b, "g").await, vec![1.5, 2.0]);
    assert_eq!(db.read_cache_stats().read_misses, before.read_misses);
}

#[tokio::test]
async fn pending_writes_overlay_cached_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let ids = seed(&db, &[1.0, 2.0, 3.0]).await;

    let mut reader = db.begin(false).await.unwrap();
    let mut writer = db.begin(true).await.unwrap();
    assert_eq!(reader.ts(), writer.ts());
    assert_eq!(scan_ns(&mut reader, "g").await, vec![1.0, 2.0, 3.0]);
    // The same scan before any write is served from the reader's rows.
    let hits = db.read_cache_stats().read_hits;
    assert_eq!(scan_ns(&mut writer, "g").await, vec![1.0, 2.0, 3.0]);
    assert_eq!(db.read_cache_stats().read_hits, hits + 1);
    writer.delete(ids[1]).await.unwrap();
    let mut p = BTreeMap::new();
    p.insert("n".to_owned(), Some(Value::Float64(10.0)));
    writer.patch(ids[0], p).await.unwrap();
    writer.insert("items", item("g", 2.5)).unwrap();
    assert_eq!(scan_ns(&mut writer, "g").await, vec![2.5, 3.0, 10.0]);
    let patched = writer.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(patched.field("n"), Some(&Value::Float64(10.0)));
    assert!(writer.get(ids[1]).await.unwrap().is_none());
    // The cached committed rows are unchanged by the writer's overlay.
    assert_eq!(scan_ns(&mut reader, "g").await, vec![1.0, 2.0, 3.0]);
    db.commit(writer).await.unwrap();
    let mut after = db.begin(false).await.unwrap();
    assert_eq!(scan_ns(&mut after, "g").await, vec![2.5, 3.0, 10.0]);
}

#[tokio::test]
async fn versions_cached_at_commit_equal_their_stored_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    let tags = Value::Array(vec![Value::from("ü ✓"), Value::from("\"quoted\"\n")]);
    let id = tx
        .insert(
            "items",
            Value::object([
                ("group".to_owned(), Value::from("g")),
                ("n".to_owned(), Value::Float64(-1.5e300)),
                ("tags".to_owned(), tags),
            ]),
        )
        .unwrap();
    db.commit(tx).await.unwrap();

    let before = db.read_cache_stats();
    let mut tx = db.begin(false).await.unwrap();
    let cached = tx.get(id).await.unwrap().unwrap();
    let after = db.read_cache_stats();
    assert_eq!(
        after.document_hits - before.document_hits,
        1,
        "the committer cached the version: {after:?}"
    );
    let stored = db
        .persistence()
        .snapshot()
        .await
        .unwrap()
        .get(&id.to_bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached, Document::from_stored(&stored).unwrap());
}

/// `n` of the first `limit` rows of group `g` in `order`, and how many
/// committed rows the scan fetched from storage.
async fn scan_limited(
    tx: &mut database::Transaction,
    order: Order,
    limit: usize,
) -> (Vec<f64>, usize) {
    let table = std::sync::Arc::clone(tx.schema().table("items").unwrap());
    let index = table.index("by_group_n").unwrap().clone();
    let (range, bucket) = database::IndexRange::all()
        .eq("group", "g")
        .compile(&index)
        .unwrap();
    let before = tx.stats().documents_scanned;
    let res = tx
        .scan(&table, &index, &range, bucket, order, None, limit)
        .await
        .unwrap();
    let ns = res
        .rows
        .iter()
        .map(|(_, d)| d.field("n").and_then(Value::as_f64).unwrap())
        .collect();
    (ns, tx.stats().documents_scanned - before)
}

#[tokio::test]
async fn pending_inserts_do_not_widen_a_limited_scan() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let ns: Vec<f64> = (1..=50).map(f64::from).collect();
    let ids = seed(&db, &ns).await;

    let mut tx = db.begin(true).await.unwrap();
    // A batch mutation: insert, then look at the newest row, 30 times.
    for i in 1..=30 {
        let n = 100.0 + f64::from(i);
        tx.insert("items", item("g", n)).unwrap();
        let (newest, fetched) = scan_limited(&mut tx, Order::Desc, 1).await;
        assert_eq!(newest, vec![n]);
        assert_eq!(fetched, 1, "inserts cannot hide committed rows");
    }
    let (oldest, fetched) = scan_limited(&mut tx, Order::Asc, 3).await;
    assert_eq!(oldest, vec![1.0, 2.0, 3.0]);
    assert_eq!(fetched, 3);

    // Writes to committed documents can hide committed rows: one extra row
    // is fetched per such write, and the results stay exact.
    let mut p = BTreeMap::new();
    p.insert("n".to_owned(), Some(Value::Float64(1000.0)));
    tx.patch(ids[0], p).await.unwrap();
    tx.delete(ids[1]).await.unwrap();
    let (oldest, fetched) = scan_limited(&mut tx, Order::Asc, 3).await;
    assert_eq!(oldest, vec![3.0, 4.0, 5.0]);
    assert_eq!(fetched, 5);
    let (newest, _) = scan_limited(&mut tx, Order::Desc, 2).await;
    assert_eq!(newest, vec![1000.0, 130.0]);
    // A pending insert patched again is overlaid with its latest keys.
    let id = tx.insert("items", item("g", 0.5)).unwrap();
    assert_eq!(scan_limited(&mut tx, Order::Asc, 1).await.0, vec![0.5]);
    let mut p = BTreeMap::new();
    p.insert("n".to_owned(), Some(Value::Float64(2000.0)));
    tx.patch(id, p).await.unwrap();
    assert_eq!(scan_limited(&mut tx, Order::Asc, 1).await.0, vec![3.0]);
    assert_eq!(scan_limited(&mut tx, Order::Desc, 1).await.0, vec![2000.0]);
    db.commit(tx).await.unwrap();
}
