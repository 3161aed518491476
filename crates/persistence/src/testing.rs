//! The backend conformance suite (feature `testing`).
//!
//! Every [`Persistence`] backend must pass every case in this module. Each case
//! is a public `async fn` that takes a *fresh, empty* store and panics with a
//! descriptive message when the backend misbehaves. Backends do not call the
//! cases one by one; they instantiate the whole suite with
//! [`run_conformance_suite!`](crate::run_conformance_suite), which expands to
//! one `#[tokio::test]` per case:
//!
//! ```ignore
//! // tests/conformance.rs of a backend crate (needs `tokio` as a dev-dependency)
//! async fn fresh_store() -> Arc<dyn Persistence> {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = MyBackend::open(dir.path()).unwrap();
//!     // Keep the directory alive for as long as the store is.
//!     persistence::testing::with_guard(store, dir)
//! }
//! persistence::run_conformance_suite!(fresh_store);
//! ```
//!
//! The factory is called once per test, so a server backend (PostgreSQL) can
//! create a fresh schema or database for each case. It may be a path to an
//! `async fn`, a closure returning a future (`|| async { ... }`) or an async
//! closure; it must produce an `Arc<dyn Persistence>`.
//!
//! # What the suite assumes of a backend
//! * Cases run on tokio's default *current-thread* runtime, except
//!   [`concurrent_writers_are_serialized`], which runs on a two-worker
//!   multi-thread runtime. A backend must therefore not rely on
//!   `tokio::task::block_in_place` (it panics on a current-thread runtime).
//! * A single task never holds more than three read handles at once
//!   (snapshots plus the short reads of [`Persistence::latest_ts`] and
//!   friends), so a backend with a small bounded read pool cannot deadlock.
//! * A write transaction reads its own writes: [`WriteTxn::latest_ts`] and
//!   [`WriteTxn::commits_after`] include records written earlier in the same
//!   transaction.
//! * [`WriteTxn::write`] rejects a record whose timestamp does not exceed the
//!   newest one (committed or written earlier in the transaction).
//! * Index keys and document ids are arbitrary byte strings (including the
//!   empty string for keys, `0x00` and `0xFF` bytes) compared bytewise, a
//!   shorter prefix sorting first.
//!
//! Durability across a restart is backend-specific (it needs the backend's own
//! way to reopen the same data) and is tested by each backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    CommitLogEntry, CommitRecord, DocumentWrite, IndexId, IndexMeta, IndexRow, IndexWrite,
    KeyRange, Order, Persistence, Result, Snapshot, StoredDocument, TableNumber, Timestamp,
    WriteTxn,
};

/// Expands to one `#[tokio::test]` per conformance case, each calling
/// `factory` to get a fresh, empty store.
///
/// `factory` is anything callable with no arguments that returns a future of
/// `Arc<dyn Persistence>`: a path to an `async fn`, `|| async { ... }` or an
/// async closure. It is evaluated (and called) once per test. The crate that
/// invokes the macro needs `tokio` (with the `macros` and `rt-multi-thread`
/// features) as a dev-dependency. The generated test functions are named after
/// the cases; invoke the macro inside a module to namespace them.
#[macro_export]
macro_rules! run_conformance_suite {
    ($factory:expr $(,)?) => {
        $crate::__conformance_case!($factory, empty_store);
        $crate::__conformance_case!($factory, kind_is_named);
        $crate::__conformance_case!($factory, get_after_write);
        $crate::__conformance_case!($factory, overwrite_document);
        $crate::__conformance_case!($factory, delete_document_and_index_entry);
        $crate::__conformance_case!($factory, index_entry_insert_replaces);
        $crate::__conformance_case!($factory, index_scan_bounds);
        $crate::__conformance_case!($factory, index_scan_order_and_limit);
        $crate::__conformance_case!($factory, index_scan_bytewise_key_order);
        $crate::__conformance_case!($factory, index_scan_ignores_other_indexes);
        $crate::__conformance_case!($factory, index_scan_joins_current_document);
        $crate::__conformance_case!($factory, snapshot_isolation);
        $crate::__conformance_case!($factory, no_dirty_reads);
        $crate::__conformance_case!($factory, rollback_on_drop);
        $crate::__conformance_case!($factory, write_lock_is_exclusive);
        $crate::__conformance_case!($factory, group_commit);
        $crate::__conformance_case!($factory, empty_commits);
        $crate::__conformance_case!($factory, commits_after_order_and_limit);
        $crate::__conformance_case!($factory, prune_commit_log);
        $crate::__conformance_case!($factory, commit_log_floor);
        $crate::__conformance_case!($factory, write_txn_reads);
        $crate::__conformance_case!($factory, write_rejects_non_increasing_ts);
        $crate::__conformance_case!($factory, clear_index);
        $crate::__conformance_case!($factory, index_meta_upsert);
        $crate::__conformance_case!($factory, drop_index);
        $crate::__conformance_case!($factory, scan_table_paging);
        $crate::__conformance_case!($factory, concurrent_writers_are_serialized, multi_thread);
    };
}

/// Implementation detail of [`run_conformance_suite!`]: one test function.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case {
    ($factory:expr, $case:ident) => {
        #[::tokio::test]
        async fn $case() {
            let store: ::std::sync::Arc<dyn $crate::Persistence> = ($factory)().await;
            $crate::testing::$case(store).await;
        }
    };
    ($factory:expr, $case:ident, multi_thread) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let store: ::std::sync::Arc<dyn $crate::Persistence> = ($factory)().await;
            $crate::testing::$case(store).await;
        }
    };
}

/// Wraps `store` so that `guard` lives exactly as long as the store handle
/// (for example the temporary directory a file-based backend lives in).
///
/// The store is dropped before the guard.
pub fn with_guard<G>(store: Arc<dyn Persistence>, guard: G) -> Arc<dyn Persistence>
where
    G: Send + Sync + 'static,
{
    Arc::new(Guarded {
        store,
        _guard: guard,
    })
}

/// A store plus something that must outlive it. Fields drop in order.
struct Guarded<G> {
    store: Arc<dyn Persistence>,
    _guard: G,
}

#[async_trait]
impl<G: Send + Sync + 'static> Persistence for Guarded<G> {
    fn kind(&self) -> &'static str {
        self.store.kind()
    }

    async fn snapshot(&self) -> Result<Arc<dyn Snapshot>> {
        self.store.snapshot().await
    }

    fn reads_precede_durability(&self) -> bool {
        self.store.reads_precede_durability()
    }

    async fn begin_write(&self) -> Result<Box<dyn WriteTxn>> {
        self.store.begin_write().await
    }

    async fn latest_ts(&self) -> Result<Timestamp> {
        self.store.latest_ts().await
    }

    async fn commits_after(&self, after: Timestamp, limit: usize) -> Result<Vec<CommitLogEntry>> {
        self.store.commits_after(after, limit).await
    }

    async fn prune_commit_log(&self, before: Timestamp) -> Result<u64> {
        self.store.prune_commit_log(before).await
    }

    async fn commit_log_floor(&self) -> Result<Timestamp> {
        self.store.commit_log_floor().await
    }

    async fn index_metadata(&self) -> Result<Vec<IndexMeta>> {
        self.store.index_metadata().await
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const T1: TableNumber = TableNumber(1);
const T2: TableNumber = TableNumber(2);
const IDX: IndexId = IndexId(10);
const IDX_OTHER: IndexId = IndexId(11);

fn ts(n: u64) -> Timestamp {
    Timestamp(n)
}

fn put(id: &[u8], table: TableNumber, json: &str) -> DocumentWrite {
    DocumentWrite {
        id: id.to_vec(),
        table,
        json: Some(json.to_owned()),
    }
}

fn delete(id: &[u8], table: TableNumber) -> DocumentWrite {
    DocumentWrite {
        id: id.to_vec(),
        table,
        json: None,
    }
}

fn entry(index: IndexId, key: &[u8], doc_id: &[u8]) -> IndexWrite {
    IndexWrite {
        index,
        key: key.to_vec(),
        doc_id: Some(doc_id.to_vec()),
    }
}

fn unentry(index: IndexId, key: &[u8]) -> IndexWrite {
    IndexWrite {
        index,
        key: key.to_vec(),
        doc_id: None,
    }
}

fn record(
    at: u64,
    documents: Vec<DocumentWrite>,
    index_writes: Vec<IndexWrite>,
    log: &[u8],
) -> CommitRecord {
    CommitRecord {
        ts: ts(at),
        documents,
        index_writes,
        log: log.to_vec(),
    }
}

fn stored(id: &[u8], table: TableNumber, at: u64, json: &str) -> StoredDocument {
    StoredDocument {
        id: id.to_vec(),
        table,
        ts: ts(at),
        json: json.to_owned(),
    }
}

fn range(start: &[u8], end: Option<&[u8]>) -> KeyRange {
    KeyRange {
        start: start.to_vec(),
        end: end.map(<[u8]>::to_vec),
    }
}

/// Writes `records` in one write transaction and commits it.
async fn commit_all(p: &dyn Persistence, records: &[CommitRecord]) {
    let mut txn = p.begin_write().await.expect("begin_write");
    for r in records {
        txn.write(r)
            .await
            .unwrap_or_else(|e| panic!("write of ts {}: {e}", r.ts.0));
    }
    txn.commit().await.expect("commit");
}

async fn commit_one(p: &dyn Persistence, r: CommitRecord) {
    commit_all(p, &[r]).await;
}

async fn snap(p: &dyn Persistence) -> Arc<dyn Snapshot> {
    p.snapshot().await.expect("snapshot")
}

async fn get(s: &dyn Snapshot, id: &[u8]) -> Option<StoredDocument> {
    s.get(id).await.expect("get")
}

async fn scan(
    s: &dyn Snapshot,
    index: IndexId,
    r: &KeyRange,
    order: Order,
    limit: usize,
) -> Vec<IndexRow> {
    s.index_scan(index, r, order, limit)
        .await
        .expect("index_scan")
}

/// The keys of an index scan.
async fn scan_keys(
    s: &dyn Snapshot,
    index: IndexId,
    r: &KeyRange,
    order: Order,
    limit: usize,
) -> Vec<Vec<u8>> {
    scan(s, index, r, order, limit)
        .await
        .into_iter()
        .map(|row| row.key)
        .collect()
}

async fn table_ids(s: &dyn Snapshot, table: TableNumber) -> Vec<Vec<u8>> {
    s.scan_table(table, None, usize::MAX)
        .await
        .expect("scan_table")
        .into_iter()
        .map(|d| d.id)
        .collect()
}

async fn all_commits(p: &dyn Persistence) -> Vec<CommitLogEntry> {
    p.commits_after(Timestamp::ZERO, usize::MAX)
        .await
        .expect("commits_after")
}

fn log_ts(entries: &[CommitLogEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.ts.0).collect()
}

fn owned(keys: &[&[u8]]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.to_vec()).collect()
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/// An empty store: timestamp 0 everywhere, nothing to read.
pub async fn empty_store(p: Arc<dyn Persistence>) {
    assert_eq!(p.latest_ts().await.expect("latest_ts"), Timestamp::ZERO);
    let s = snap(&*p).await;
    assert_eq!(s.ts(), Timestamp::ZERO, "snapshot ts of an empty store");
    assert_eq!(get(&*s, b"missing").await, None);
    assert_eq!(get(&*s, b"").await, None);
    assert!(
        scan(&*s, IDX, &KeyRange::all(), Order::Asc, 100)
            .await
            .is_empty()
    );
    assert!(
        scan(&*s, IDX, &KeyRange::all(), Order::Desc, 100)
            .await
            .is_empty()
    );
    assert!(
        s.scan_table(T1, None, 100)
            .await
            .expect("scan_table")
            .is_empty()
    );
    assert!(all_commits(&*p).await.is_empty());
    assert!(p.index_metadata().await.expect("index_metadata").is_empty());
    assert_eq!(p.prune_commit_log(ts(1000)).await.expect("prune"), 0);
}

/// [`Persistence::kind`] names the backend.
pub async fn kind_is_named(p: Arc<dyn Persistence>) {
    let kind = p.kind();
    assert!(!kind.is_empty(), "kind() must not be empty");
    assert!(
        kind.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
}

/// A committed record is visible in a new snapshot: documents, index entries,
/// timestamps and the commit log.
pub async fn get_after_write(p: Arc<dyn Persistence>) {
    let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(256 * 1024));
    let unicode = r#"{"name":"Zoë – 東京 🚀","nested":{"a":[1,2.5,null,true]}}"#;
    let id_nul: &[u8] = &[0x00, 0x01, 0x00];
    let id_ff: &[u8] = &[0xff, 0xff, 0xfe];
    let r = record(
        5,
        vec![
            put(b"a", T1, r#"{"_id":"a","n":1}"#),
            put(id_nul, T1, unicode),
            put(id_ff, T2, &big),
        ],
        vec![entry(IDX, b"k-a", b"a"), entry(IDX, b"k-nul", id_nul)],
        b"log-5",
    );
    commit_one(&*p, r).await;

    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(5));
    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(5));
    assert_eq!(
        get(&*s, b"a").await,
        Some(stored(b"a", T1, 5, r#"{"_id":"a","n":1}"#))
    );
    assert_eq!(get(&*s, id_nul).await, Some(stored(id_nul, T1, 5, unicode)));
    assert_eq!(get(&*s, id_ff).await, Some(stored(id_ff, T2, 5, &big)));
    assert_eq!(get(&*s, b"b").await, None);
    // Ids are exact byte strings: prefixes and extensions are other ids.
    assert_eq!(get(&*s, &[0x00, 0x01]).await, None);
    assert_eq!(get(&*s, &[0x00, 0x01, 0x00, 0x00]).await, None);

    let rows = scan(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await;
    assert_eq!(
        rows,
        vec![
            IndexRow {
                key: b"k-a".to_vec(),
                doc: stored(b"a", T1, 5, r#"{"_id":"a","n":1}"#)
            },
            IndexRow {
                key: b"k-nul".to_vec(),
                doc: stored(id_nul, T1, 5, unicode)
            },
        ]
    );
    assert_eq!(
        all_commits(&*p).await,
        vec![CommitLogEntry {
            ts: ts(5),
            log: b"log-5".to_vec()
        }]
    );
    assert!(
        p.commits_after(ts(5), 10)
            .await
            .expect("commits_after")
            .is_empty()
    );
}

/// Writing an existing document replaces its JSON, table and timestamp.
pub async fn overwrite_document(p: Arc<dyn Persistence>) {
    commit_one(
        &*p,
        record(1, vec![put(b"d", T1, r#"{"v":1}"#)], vec![], b"1"),
    )
    .await;
    commit_one(
        &*p,
        record(2, vec![put(b"d", T1, r#"{"v":2}"#)], vec![], b"2"),
    )
    .await;
    let s = snap(&*p).await;
    assert_eq!(
        get(&*s, b"d").await,
        Some(stored(b"d", T1, 2, r#"{"v":2}"#))
    );
    assert_eq!(table_ids(&*s, T1).await, owned(&[b"d"]));
    drop(s);

    // Several writes of one document in one record: the last one wins.
    commit_one(
        &*p,
        record(
            3,
            vec![put(b"d", T1, r#"{"v":3}"#), put(b"d", T1, r#"{"v":4}"#)],
            vec![],
            b"3",
        ),
    )
    .await;
    let s = snap(&*p).await;
    assert_eq!(
        get(&*s, b"d").await,
        Some(stored(b"d", T1, 3, r#"{"v":4}"#))
    );
    drop(s);

    // Delete then re-create in one record.
    commit_one(
        &*p,
        record(
            4,
            vec![delete(b"d", T1), put(b"d", T1, r#"{"v":5}"#)],
            vec![],
            b"4",
        ),
    )
    .await;
    let s = snap(&*p).await;
    assert_eq!(
        get(&*s, b"d").await,
        Some(stored(b"d", T1, 4, r#"{"v":5}"#))
    );
}

/// Deleting a document and removing its index entry.
pub async fn delete_document_and_index_entry(p: Arc<dyn Persistence>) {
    commit_one(
        &*p,
        record(
            1,
            vec![put(b"a", T1, "{}"), put(b"b", T1, "{}")],
            vec![entry(IDX, b"ka", b"a"), entry(IDX, b"kb", b"b")],
            b"1",
        ),
    )
    .await;
    commit_one(
        &*p,
        record(2, vec![delete(b"a", T1)], vec![unentry(IDX, b"ka")], b"2"),
    )
    .await;

    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(2));
    assert_eq!(get(&*s, b"a").await, None);
    assert_eq!(get(&*s, b"b").await, Some(stored(b"b", T1, 1, "{}")));
    assert_eq!(
        scan_keys(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await,
        owned(&[b"kb"])
    );
    assert_eq!(table_ids(&*s, T1).await, owned(&[b"b"]));
    drop(s);

    // Deleting a missing document and removing a missing entry are no-ops.
    commit_one(
        &*p,
        record(3, vec![delete(b"zz", T1)], vec![unentry(IDX, b"zz")], b"3"),
    )
    .await;
    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(3));
    assert_eq!(get(&*s, b"b").await, Some(stored(b"b", T1, 1, "{}")));
    assert_eq!(
        scan_keys(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await,
        owned(&[b"kb"])
    );
    assert_eq!(log_ts(&all_commits(&*p).await), vec![1, 2, 3]);
}

/// Inserting an index entry under an existing key replaces the entry.
pub async fn index_entry_insert_replaces(p: Arc<dyn Persistence>) {
    commit_one(
        &*p,
        record(
            1,
            vec![put(b"a", T1, r#""a""#), put(b"b", T1, r#""b""#)],
            vec![entry(IDX, b"k", b"a")],
            b"1",
        ),
    )
    .await;
    commit_one(&*p, record(2, vec![], vec![entry(IDX, b"k", b"b")], b"2")).await;
    let s = snap(&*p).await;
    let rows = scan(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await;
    assert_eq!(
        rows,
        vec![IndexRow {
            key: b"k".to_vec(),
            doc: stored(b"b", T1, 1, r#""b""#)
        }]
    );
    drop(s);

    // Remove then insert the same key in one record (the engine's order).
    commit_one(
        &*p,
        record(
            3,
            vec![],
            vec![unentry(IDX, b"k"), entry(IDX, b"k", b"a")],
            b"3",
        ),
    )
    .await;
    let s = snap(&*p).await;
    let rows = scan(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await;
    assert_eq!(
        rows,
        vec![IndexRow {
            key: b"k".to_vec(),
            doc: stored(b"a", T1, 1, r#""a""#)
        }]
    );
}

/// Writes one document per key, each indexed under `index`.
async fn seed_keys(p: &dyn Persistence, at: u64, index: IndexId, keys: &[&[u8]]) {
    let mut documents = Vec::new();
    let mut index_writes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let id = format!("doc-{}-{i:04}", index.0).into_bytes();
        documents.push(put(&id, T1, &format!("{{\"i\":{i}}}")));
        index_writes.push(entry(index, key, &id));
    }
    commit_one(p, record(at, documents, index_writes, b"seed")).await;
}

/// Inclusive start, exclusive end, unbounded end, empty and inverted ranges.
pub async fn index_scan_bounds(p: Arc<dyn Persistence>) {
    seed_keys(&*p, 1, IDX, &[b"a", b"b", b"c", b"d", b"e"]).await;
    let s = snap(&*p).await;
    let s = &*s;
    let all = usize::MAX;
    assert_eq!(
        scan_keys(s, IDX, &range(b"b", Some(b"d")), Order::Asc, all).await,
        owned(&[b"b", b"c"]),
        "start inclusive, end exclusive"
    );
    assert_eq!(
        scan_keys(s, IDX, &range(b"b", Some(b"d")), Order::Desc, all).await,
        owned(&[b"c", b"b"])
    );
    assert_eq!(
        scan_keys(s, IDX, &range(b"c", None), Order::Asc, all).await,
        owned(&[b"c", b"d", b"e"]),
        "unbounded end"
    );
    assert_eq!(
        scan_keys(s, IDX, &range(b"c", None), Order::Desc, all).await,
        owned(&[b"e", b"d", b"c"])
    );
    assert_eq!(
        scan_keys(s, IDX, &range(b"bb", Some(b"dd")), Order::Asc, all).await,
        owned(&[b"c", b"d"]),
        "bounds between keys"
    );
    assert_eq!(
        scan_keys(s, IDX, &range(b"", Some(b"c")), Order::Asc, all).await,
        owned(&[b"a", b"b"])
    );
    assert_eq!(
        scan_keys(s, IDX, &range(b"a", Some(b"f")), Order::Asc, all).await,
        owned(&[b"a", b"b", b"c", b"d", b"e"])
    );
    assert!(
        scan_keys(s, IDX, &range(b"c", Some(b"c")), Order::Asc, all)
            .await
            .is_empty()
    );
    assert!(
        scan_keys(s, IDX, &range(b"d", Some(b"b")), Order::Asc, all)
            .await
            .is_empty()
    );
    assert!(
        scan_keys(s, IDX, &range(b"d", Some(b"b")), Order::Desc, all)
            .await
            .is_empty()
    );
    assert!(
        scan_keys(s, IDX, &range(b"f", None), Order::Asc, all)
            .await
            .is_empty()
    );
    assert_eq!(
        scan_keys(s, IDX, &range(b"e", Some(b"e\x00")), Order::Asc, all).await,
        owned(&[b"e"]),
        "single-key range"
    );
}

/// Ascending and descending order, limits (including 0 and `usize::MAX`).
pub async fn index_scan_order_and_limit(p: Arc<dyn Persistence>) {
    let keys: Vec<Vec<u8>> = (0u8..20).map(|i| vec![b'k', i]).collect();
    let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    seed_keys(&*p, 1, IDX, &key_refs).await;
    let s = snap(&*p).await;
    let s = &*s;
    let all = KeyRange::all();
    assert_eq!(scan_keys(s, IDX, &all, Order::Asc, usize::MAX).await, keys);
    let mut desc = keys.clone();
    desc.reverse();
    assert_eq!(scan_keys(s, IDX, &all, Order::Desc, usize::MAX).await, desc);
    assert_eq!(
        scan_keys(s, IDX, &all, Order::Asc, 3).await,
        keys[..3].to_vec()
    );
    assert_eq!(
        scan_keys(s, IDX, &all, Order::Desc, 3).await,
        desc[..3].to_vec()
    );
    assert!(scan_keys(s, IDX, &all, Order::Asc, 0).await.is_empty());
    assert!(scan_keys(s, IDX, &all, Order::Desc, 0).await.is_empty());
    assert_eq!(scan_keys(s, IDX, &all, Order::Asc, 20).await, keys);
    assert_eq!(scan_keys(s, IDX, &all, Order::Asc, 21).await, keys);
    // Limit within a bounded range, both directions.
    let r = range(&keys[5], Some(&keys[15]));
    assert_eq!(
        scan_keys(s, IDX, &r, Order::Asc, 4).await,
        keys[5..9].to_vec()
    );
    assert_eq!(
        scan_keys(s, IDX, &r, Order::Desc, 4).await,
        vec![
            keys[14].clone(),
            keys[13].clone(),
            keys[12].clone(),
            keys[11].clone()
        ]
    );
    // Paging by moving the start bound past the last key returned.
    let mut paged = Vec::new();
    let mut start = Vec::new();
    loop {
        let page = scan_keys(s, IDX, &range(&start, None), Order::Asc, 7).await;
        let Some(last) = page.last() else { break };
        start = last.clone();
        start.push(0);
        paged.extend(page);
    }
    assert_eq!(paged, keys);
}

/// Keys compare bytewise: `0x00` and `0xFF` bytes, prefixes sort first.
pub async fn index_scan_bytewise_key_order(p: Arc<dyn Persistence>) {
    let keys: Vec<&[u8]> = vec![
        &[0xff, 0x00],
        &[0x00],
        &[0x7f],
        &[],
        &[0xff, 0xff, 0xff],
        &[0x00, 0xff],
        &[0x80],
        &[0x01],
        &[0xff],
        &[0x00, 0x00],
        &[0xff, 0xff],
        &[0x01, 0x00, 0x00],
        &[0x01, 0x00],
        &[0x61, 0x62, 0x63],
        &[0x61, 0x62],
    ];
    seed_keys(&*p, 1, IDX, &keys).await;
    let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    sorted.sort();
    let s = snap(&*p).await;
    let s = &*s;
    let max = usize::MAX;
    assert_eq!(
        scan_keys(s, IDX, &KeyRange::all(), Order::Asc, max).await,
        sorted
    );
    let mut reversed = sorted.clone();
    reversed.reverse();
    assert_eq!(
        scan_keys(s, IDX, &KeyRange::all(), Order::Desc, max).await,
        reversed
    );

    // Every range between two listed keys (and unbounded) agrees with the model.
    let mut bounds: Vec<Vec<u8>> = sorted.clone();
    bounds.push(vec![0x00, 0x00, 0x00]);
    bounds.push(vec![0xff, 0xff, 0xff, 0xff]);
    for start in &bounds {
        for end in bounds.iter().map(Some).chain([None]) {
            let r = KeyRange {
                start: start.clone(),
                end: end.cloned(),
            };
            let expected: Vec<Vec<u8>> = sorted.iter().filter(|k| r.contains(k)).cloned().collect();
            assert_eq!(
                scan_keys(s, IDX, &r, Order::Asc, max).await,
                expected,
                "ascending scan of {r:?}"
            );
            let mut expected_desc = expected.clone();
            expected_desc.reverse();
            assert_eq!(
                scan_keys(s, IDX, &r, Order::Desc, max).await,
                expected_desc,
                "descending scan of {r:?}"
            );
        }
    }
}

/// Entries of other indexes (including neighbouring and extreme ids) are not
/// returned.
pub async fn index_scan_ignores_other_indexes(p: Arc<dyn Persistence>) {
    let keys: &[&[u8]] = &[b"a", b"m", b"z"];
    seed_keys(&*p, 1, IndexId(0), keys).await;
    seed_keys(&*p, 2, IndexId(9), &[b"b", b"n"]).await;
    seed_keys(&*p, 3, IDX, &[b"c"]).await;
    seed_keys(&*p, 4, IndexId(11), &[b"a", b"d", b"\xff"]).await;
    seed_keys(&*p, 5, IndexId(u32::MAX), &[b"e", b""]).await;
    let s = snap(&*p).await;
    let s = &*s;
    let all = KeyRange::all();
    assert_eq!(
        scan_keys(s, IDX, &all, Order::Asc, 100).await,
        owned(&[b"c"])
    );
    assert_eq!(
        scan_keys(s, IDX, &all, Order::Desc, 100).await,
        owned(&[b"c"])
    );
    assert_eq!(
        scan_keys(s, IndexId(0), &all, Order::Asc, 100).await,
        owned(keys)
    );
    assert_eq!(
        scan_keys(s, IndexId(9), &all, Order::Desc, 100).await,
        owned(&[b"n", b"b"])
    );
    assert_eq!(
        scan_keys(s, IndexId(11), &all, Order::Asc, 100).await,
        owned(&[b"a", b"d", b"\xff"])
    );
    assert_eq!(
        scan_keys(s, IndexId(u32::MAX), &all, Order::Asc, 100).await,
        owned(&[b"", b"e"])
    );
    assert!(
        scan_keys(s, IndexId(12), &all, Order::Asc, 100)
            .await
            .is_empty()
    );
    assert!(
        scan_keys(s, IndexId(u32::MAX - 1), &all, Order::Desc, 100)
            .await
            .is_empty()
    );
    let rows = scan(s, IndexId(9), &all, Order::Asc, 100).await;
    assert_eq!(rows[0].doc.id, b"doc-9-0000".to_vec());
    assert_eq!(rows[0].doc.ts, ts(2));
}

/// An index row carries the document's *current* state, and several entries
/// (of one or more indexes) may point at one document.
pub async fn index_scan_joins_current_document(p: Arc<dyn Persistence>) {
    commit_one(
        &*p,
        record(
            1,
            vec![put(b"d1", T1, r#"{"v":1}"#), put(b"d2", T2, r#"{"w":1}"#)],
            vec![
                entry(IDX, b"x", b"d1"),
                entry(IDX, b"y", b"d1"),
                entry(IDX, b"z", b"d2"),
                entry(IDX_OTHER, b"x", b"d2"),
            ],
            b"1",
        ),
    )
    .await;
    // Update the document without touching its entries.
    commit_one(
        &*p,
        record(7, vec![put(b"d1", T1, r#"{"v":2}"#)], vec![], b"7"),
    )
    .await;
    let s = snap(&*p).await;
    let rows = scan(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await;
    assert_eq!(
        rows,
        vec![
            IndexRow {
                key: b"x".to_vec(),
                doc: stored(b"d1", T1, 7, r#"{"v":2}"#)
            },
            IndexRow {
                key: b"y".to_vec(),
                doc: stored(b"d1", T1, 7, r#"{"v":2}"#)
            },
            IndexRow {
                key: b"z".to_vec(),
                doc: stored(b"d2", T2, 1, r#"{"w":1}"#)
            },
        ]
    );
    let rows = scan(&*s, IDX_OTHER, &KeyRange::all(), Order::Asc, 10).await;
    assert_eq!(
        rows,
        vec![IndexRow {
            key: b"x".to_vec(),
            doc: stored(b"d2", T2, 1, r#"{"w":1}"#)
        }]
    );
}

/// A snapshot keeps seeing the state it was opened at; a new snapshot sees the
/// newest state.
pub async fn snapshot_isolation(p: Arc<dyn Persistence>) {
    commit_one(
        &*p,
        record(
            10,
            vec![put(b"a", T1, r#""a1""#), put(b"b", T1, r#""b1""#)],
            vec![entry(IDX, b"ka", b"a"), entry(IDX, b"kb", b"b")],
            b"10",
        ),
    )
    .await;
    let old = snap(&*p).await;
    assert_eq!(old.ts(), ts(10));

    commit_one(
        &*p,
        record(
            20,
            vec![
                put(b"a", T1, r#""a2""#),
                delete(b"b", T1),
                put(b"c", T1, r#""c2""#),
            ],
            vec![
                unentry(IDX, b"kb"),
                entry(IDX, b"kc", b"c"),
                entry(IDX, b"ka", b"c"),
            ],
            b"20",
        ),
    )
    .await;
    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(20));

    let check_old = |s: Arc<dyn Snapshot>| async move {
        assert_eq!(s.ts(), ts(10), "old snapshot's ts must not move");
        assert_eq!(get(&*s, b"a").await, Some(stored(b"a", T1, 10, r#""a1""#)));
        assert_eq!(get(&*s, b"b").await, Some(stored(b"b", T1, 10, r#""b1""#)));
        assert_eq!(get(&*s, b"c").await, None);
        assert_eq!(
            scan(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await,
            vec![
                IndexRow {
                    key: b"ka".to_vec(),
                    doc: stored(b"a", T1, 10, r#""a1""#)
                },
                IndexRow {
                    key: b"kb".to_vec(),
                    doc: stored(b"b", T1, 10, r#""b1""#)
                },
            ]
        );
        assert_eq!(
            scan_keys(&*s, IDX, &KeyRange::all(), Order::Desc, 10).await,
            owned(&[b"kb", b"ka"])
        );
        assert_eq!(table_ids(&*s, T1).await, owned(&[b"a", b"b"]));
        s
    };
    let old = check_old(old).await;

    let new = snap(&*p).await;
    assert_eq!(new.ts(), ts(20));
    assert_eq!(
        get(&*new, b"a").await,
        Some(stored(b"a", T1, 20, r#""a2""#))
    );
    assert_eq!(get(&*new, b"b").await, None);
    assert_eq!(
        get(&*new, b"c").await,
        Some(stored(b"c", T1, 20, r#""c2""#))
    );
    assert_eq!(
        scan(&*new, IDX, &KeyRange::all(), Order::Asc, 10).await,
        vec![
            IndexRow {
                key: b"ka".to_vec(),
                doc: stored(b"c", T1, 20, r#""c2""#)
            },
            IndexRow {
                key: b"kc".to_vec(),
                doc: stored(b"c", T1, 20, r#""c2""#)
            },
        ]
    );
    assert_eq!(table_ids(&*new, T1).await, owned(&[b"a", b"c"]));
    drop(new);

    // More commits (and clearing the index) still do not reach the old snapshot.
    let mut txn = p.begin_write().await.expect("begin_write");
    txn.clear_index(IDX).await.expect("clear_index");
    txn.write(&record(30, vec![delete(b"a", T1)], vec![], b"30"))
        .await
        .expect("write");
    txn.commit().await.expect("commit");
    let old = check_old(old).await;
    drop(old);

    let newest = snap(&*p).await;
    assert_eq!(newest.ts(), ts(30));
    assert!(
        scan(&*newest, IDX, &KeyRange::all(), Order::Asc, 10)
            .await
            .is_empty()
    );
    assert_eq!(get(&*newest, b"a").await, None);
}

/// Uncommitted writes are invisible to snapshots and to `latest_ts` and
/// `commits_after` of the store.
pub async fn no_dirty_reads(p: Arc<dyn Persistence>) {
    commit_one(
        &*p,
        record(
            1,
            vec![put(b"a", T1, "1")],
            vec![entry(IDX, b"k", b"a")],
            b"1",
        ),
    )
    .await;
    let mut txn = p.begin_write().await.expect("begin_write");
    txn.write(&record(
        2,
        vec![put(b"a", T1, "2"), put(b"b", T1, "2")],
        vec![],
        b"2",
    ))
    .await
    .expect("write");
    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(1));
    assert_eq!(get(&*s, b"a").await, Some(stored(b"a", T1, 1, "1")));
    assert_eq!(get(&*s, b"b").await, None);
    assert_eq!(
        scan(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await.len(),
        1
    );
    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(1));
    assert_eq!(log_ts(&all_commits(&*p).await), vec![1]);
    txn.commit().await.expect("commit");
    // The open snapshot still sees ts 1; a new one sees ts 2.
    assert_eq!(get(&*s, b"a").await, Some(stored(b"a", T1, 1, "1")));
    drop(s);
    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(2));
    assert_eq!(get(&*s, b"a").await, Some(stored(b"a", T1, 2, "2")));
}

/// A write transaction dropped without commit leaves nothing behind and
/// releases the write lock.
pub async fn rollback_on_drop(p: Arc<dyn Persistence>) {
    commit_one(
        &*p,
        record(
            1,
            vec![put(b"a", T1, "1")],
            vec![entry(IDX, b"ka", b"a")],
            b"1",
        ),
    )
    .await;

    let mut txn = p.begin_write().await.expect("begin_write");
    txn.write(&record(
        2,
        vec![put(b"a", T1, "2"), put(b"b", T1, "2"), delete(b"a", T1)],
        vec![unentry(IDX, b"ka"), entry(IDX, b"kb", b"b")],
        b"2",
    ))
    .await
    .expect("write");
    txn.write(&record(3, vec![put(b"c", T2, "3")], vec![], b"3"))
        .await
        .expect("write");
    txn.clear_index(IDX).await.expect("clear_index");
    txn.put_index_meta(&IndexMeta {
        index: IDX,
        table: T1,
        signature: "s".into(),
    })
    .await
    .expect("put_index_meta");
    drop(txn);

    // The lock is free again; the state is the one before the transaction.
    let mut txn = p.begin_write().await.expect("begin_write after rollback");
    assert_eq!(txn.latest_ts().await.expect("latest_ts"), ts(1));
    assert_eq!(
        log_ts(
            &txn.commits_after(Timestamp::ZERO)
                .await
                .expect("commits_after")
        ),
        vec![1]
    );
    drop(txn);

    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(1));
    assert_eq!(log_ts(&all_commits(&*p).await), vec![1]);
    assert!(p.index_metadata().await.expect("index_metadata").is_empty());
    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(1));
    assert_eq!(get(&*s, b"a").await, Some(stored(b"a", T1, 1, "1")));
    assert_eq!(get(&*s, b"b").await, None);
    assert_eq!(get(&*s, b"c").await, None);
    assert_eq!(
        scan_keys(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await,
        owned(&[b"ka"])
    );
    drop(s);

    // The same timestamps can be used again after the rollback.
    commit_one(
        &*p,
        record(2, vec![put(b"b", T1, "again")], vec![], b"2-again"),
    )
    .await;
    assert_eq!(
        all_commits(&*p).await,
        vec![
            CommitLogEntry {
                ts: ts(1),
                log: b"1".to_vec()
            },
            CommitLogEntry {
                ts: ts(2),
                log: b"2-again".to_vec()
            },
        ]
    );
}

/// While one write transaction is open, `begin_write` waits; it proceeds once
/// the first transaction ends (by commit or by drop).
pub async fn write_lock_is_exclusive(p: Arc<dyn Persistence>) {
    for finish_by_commit in [true, false] {
        let base = if finish_by_commit { 0 } else { 10 };
        let mut first = p.begin_write().await.expect("begin_write");
        let first_ts = first.latest_ts().await.expect("latest_ts");
        let waiter = {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                let mut txn = p.begin_write().await.expect("second begin_write");
                let seen = txn.latest_ts().await.expect("latest_ts");
                txn.write(&record(
                    base + 2,
                    vec![put(b"second", T1, "2")],
                    vec![],
                    b"second",
                ))
                .await
                .expect("write");
                txn.commit().await.expect("commit");
                seen
            })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !waiter.is_finished(),
            "begin_write must wait while another WriteTxn is open"
        );
        // Reads are not blocked by the open write transaction.
        assert_eq!(p.latest_ts().await.expect("latest_ts"), first_ts);
        let s = snap(&*p).await;
        assert_eq!(s.ts(), first_ts);
        drop(s);
        if finish_by_commit {
            first
                .write(&record(
                    base + 1,
                    vec![put(b"first", T1, "1")],
                    vec![],
                    b"first",
                ))
                .await
                .expect("write");
            first.commit().await.expect("commit");
        } else {
            drop(first);
        }
        let seen = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("second writer never got the lock")
            .expect("second writer panicked");
        if finish_by_commit {
            assert_eq!(
                seen,
                ts(base + 1),
                "second writer must see the first's commit"
            );
        } else {
            assert_eq!(seen, first_ts);
        }
    }
    assert_eq!(log_ts(&all_commits(&*p).await), vec![1, 2, 12]);
}

/// Several records in one write transaction (group commit) are all visible,
/// each with its own timestamp, in the order written.
pub async fn group_commit(p: Arc<dyn Persistence>) {
    commit_all(
        &*p,
        &[
            record(
                100,
                vec![put(b"a", T1, "a100")],
                vec![entry(IDX, b"a", b"a")],
                b"r100",
            ),
            record(
                101,
                vec![put(b"b", T1, "b101")],
                vec![entry(IDX, b"b", b"b")],
                b"r101",
            ),
            record(
                105,
                vec![put(b"a", T1, "a105"), put(b"c", T2, "c105")],
                vec![],
                b"r105",
            ),
            record(
                106,
                vec![delete(b"b", T1)],
                vec![unentry(IDX, b"b")],
                b"r106",
            ),
        ],
    )
    .await;
    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(106));
    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(106));
    assert_eq!(get(&*s, b"a").await, Some(stored(b"a", T1, 105, "a105")));
    assert_eq!(get(&*s, b"b").await, None);
    assert_eq!(get(&*s, b"c").await, Some(stored(b"c", T2, 105, "c105")));
    assert_eq!(
        scan_keys(&*s, IDX, &KeyRange::all(), Order::Asc, 10).await,
        owned(&[b"a"])
    );
    assert_eq!(
        all_commits(&*p).await,
        vec![
            CommitLogEntry {
                ts: ts(100),
                log: b"r100".to_vec()
            },
            CommitLogEntry {
                ts: ts(101),
                log: b"r101".to_vec()
            },
            CommitLogEntry {
                ts: ts(105),
                log: b"r105".to_vec()
            },
            CommitLogEntry {
                ts: ts(106),
                log: b"r106".to_vec()
            },
        ]
    );
}

/// A record without documents still advances the timestamp and is logged; a
/// write transaction committed without records changes nothing.
pub async fn empty_commits(p: Arc<dyn Persistence>) {
    commit_one(&*p, record(3, vec![], vec![], b"")).await;
    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(3));
    assert_eq!(
        all_commits(&*p).await,
        vec![CommitLogEntry {
            ts: ts(3),
            log: Vec::new()
        }]
    );
    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(3));
    drop(s);

    commit_all(&*p, &[]).await;
    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(3));
    assert_eq!(log_ts(&all_commits(&*p).await), vec![3]);
}

/// `commits_after(after, limit)`: strictly after, ascending, limited.
pub async fn commits_after_order_and_limit(p: Arc<dyn Persistence>) {
    let stamps = [
        2u64,
        3,
        7,
        8,
        20,
        21,
        1_000_000_007,
        1_700_000_000_000_000_000,
    ];
    // Some in separate transactions, some grouped.
    commit_one(&*p, record(stamps[0], vec![], vec![], b"2")).await;
    commit_one(&*p, record(stamps[1], vec![], vec![], b"3")).await;
    let grouped: Vec<CommitRecord> = stamps[2..]
        .iter()
        .map(|&t| record(t, vec![], vec![], t.to_string().as_bytes()))
        .collect();
    commit_all(&*p, &grouped).await;

    let all = all_commits(&*p).await;
    assert_eq!(log_ts(&all), stamps.to_vec());
    for e in &all {
        assert_eq!(
            e.log,
            e.ts.0.to_string().into_bytes(),
            "log payload of {:?}",
            e.ts
        );
    }
    let after = |a: u64, limit: usize| {
        let p = Arc::clone(&p);
        async move { log_ts(&p.commits_after(ts(a), limit).await.expect("commits_after")) }
    };
    assert_eq!(after(0, 3).await, vec![2, 3, 7]);
    assert_eq!(after(2, 3).await, vec![3, 7, 8], "strictly after");
    assert_eq!(after(4, 2).await, vec![7, 8]);
    assert_eq!(after(8, 100).await, stamps[4..].to_vec());
    assert_eq!(after(21, 1).await, vec![1_000_000_007]);
    assert!(after(1_700_000_000_000_000_000, 10).await.is_empty());
    assert!(after(u64::MAX, 10).await.is_empty());
    assert!(after(0, 0).await.is_empty());
    assert_eq!(
        p.latest_ts().await.expect("latest_ts"),
        ts(1_700_000_000_000_000_000)
    );
    assert_eq!(snap(&*p).await.ts(), ts(1_700_000_000_000_000_000));
}

/// `prune_commit_log(before)` deletes entries with `ts < before` only and does
/// not touch documents or the latest timestamp.
pub async fn prune_commit_log(p: Arc<dyn Persistence>) {
    for t in 1..=6u64 {
        commit_one(
            &*p,
            record(t * 10, vec![put(b"d", T1, &t.to_string())], vec![], b"x"),
        )
        .await;
    }
    assert_eq!(
        p.prune_commit_log(ts(10)).await.expect("prune"),
        0,
        "before is exclusive"
    );
    assert_eq!(p.prune_commit_log(ts(30)).await.expect("prune"), 2);
    assert_eq!(log_ts(&all_commits(&*p).await), vec![30, 40, 50, 60]);
    assert_eq!(p.prune_commit_log(ts(30)).await.expect("prune"), 0);
    assert_eq!(p.prune_commit_log(ts(45)).await.expect("prune"), 2);
    assert_eq!(log_ts(&all_commits(&*p).await), vec![50, 60]);
    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(60));
    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(60));
    assert_eq!(get(&*s, b"d").await, Some(stored(b"d", T1, 60, "6")));
    drop(s);

    // Pruning everything keeps the latest timestamp; new commits continue.
    assert_eq!(
        p.prune_commit_log(Timestamp(u64::MAX))
            .await
            .expect("prune"),
        2
    );
    assert!(all_commits(&*p).await.is_empty());
    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(60));
    let mut txn = p.begin_write().await.expect("begin_write");
    assert_eq!(txn.latest_ts().await.expect("latest_ts"), ts(60));
    assert!(
        txn.write(&record(60, vec![], vec![], b"dup"))
            .await
            .is_err()
    );
    drop(txn);
    commit_one(&*p, record(70, vec![], vec![], b"70")).await;
    assert_eq!(log_ts(&all_commits(&*p).await), vec![70]);
}

/// The commit log's floor starts at 0, rises to `before` with every prune
/// (in the same transaction as the delete), never goes down, and survives
/// later commits; it tells a reader whether `commits_after` was complete.
pub async fn commit_log_floor(p: Arc<dyn Persistence>) {
    assert_eq!(p.commit_log_floor().await.expect("floor"), Timestamp::ZERO);
    for t in 1..=5u64 {
        commit_one(&*p, record(t * 10, vec![], vec![], b"x")).await;
    }
    p.prune_commit_log(ts(25)).await.expect("prune");
    assert_eq!(p.commit_log_floor().await.expect("floor"), ts(25));
    // A reader at 20 (saw the entry at 20) is complete: 20 + 1 >= 25 is false,
    // so it is not; a reader at 30 is.
    let floor = p.commit_log_floor().await.expect("floor").0;
    assert!(20 + 1 < floor, "a reader behind the floor sees the gap");
    assert!(30 + 1 >= floor);
    // The floor never goes down.
    p.prune_commit_log(ts(15)).await.expect("prune");
    assert_eq!(p.commit_log_floor().await.expect("floor"), ts(25));
    p.prune_commit_log(ts(40)).await.expect("prune");
    assert_eq!(p.commit_log_floor().await.expect("floor"), ts(40));
    assert_eq!(log_ts(&all_commits(&*p).await), vec![40, 50]);
    commit_one(&*p, record(60, vec![], vec![], b"y")).await;
    assert_eq!(p.commit_log_floor().await.expect("floor"), ts(40));
    // Pruning everything saturates the floor.
    p.prune_commit_log(Timestamp(u64::MAX))
        .await
        .expect("prune");
    assert!(p.commit_log_floor().await.expect("floor") >= ts(60));
}

/// Reads inside a write transaction: the committed state under the lock, plus
/// the transaction's own writes.
pub async fn write_txn_reads(p: Arc<dyn Persistence>) {
    let mut txn = p.begin_write().await.expect("begin_write");
    assert_eq!(txn.latest_ts().await.expect("latest_ts"), Timestamp::ZERO);
    assert!(
        txn.commits_after(Timestamp::ZERO)
            .await
            .expect("commits_after")
            .is_empty()
    );
    drop(txn);

    commit_all(
        &*p,
        &[
            record(5, vec![], vec![], b"5"),
            record(6, vec![], vec![], b"6"),
        ],
    )
    .await;
    commit_one(&*p, record(9, vec![], vec![], b"9")).await;

    let mut txn = p.begin_write().await.expect("begin_write");
    assert_eq!(txn.latest_ts().await.expect("latest_ts"), ts(9));
    assert_eq!(
        txn.commits_after(ts(5)).await.expect("commits_after"),
        vec![
            CommitLogEntry {
                ts: ts(6),
                log: b"6".to_vec()
            },
            CommitLogEntry {
                ts: ts(9),
                log: b"9".to_vec()
            },
        ]
    );
    assert_eq!(
        log_ts(&txn.commits_after(Timestamp::ZERO).await.expect("c")),
        vec![5, 6, 9]
    );
    assert!(
        txn.commits_after(ts(9))
            .await
            .expect("commits_after")
            .is_empty()
    );

    // Own writes are visible inside the transaction.
    txn.write(&record(12, vec![], vec![], b"12"))
        .await
        .expect("write");
    assert_eq!(txn.latest_ts().await.expect("latest_ts"), ts(12));
    assert_eq!(
        log_ts(&txn.commits_after(ts(6)).await.expect("commits_after")),
        vec![9, 12]
    );
    // ... but not outside it until commit.
    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(9));
    txn.commit().await.expect("commit");
    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(12));
}

/// A record whose timestamp does not exceed the newest one is rejected.
pub async fn write_rejects_non_increasing_ts(p: Arc<dyn Persistence>) {
    commit_one(&*p, record(10, vec![], vec![], b"10")).await;

    let mut txn = p.begin_write().await.expect("begin_write");
    assert!(
        txn.write(&record(10, vec![put(b"x", T1, "{}")], vec![], b""))
            .await
            .is_err()
    );
    drop(txn);
    let mut txn = p.begin_write().await.expect("begin_write");
    assert!(
        txn.write(&record(9, vec![put(b"x", T1, "{}")], vec![], b""))
            .await
            .is_err()
    );
    drop(txn);
    let mut txn = p.begin_write().await.expect("begin_write");
    txn.write(&record(11, vec![], vec![], b"11"))
        .await
        .expect("write");
    assert!(
        txn.write(&record(11, vec![], vec![], b"")).await.is_err(),
        "a record must also exceed records written earlier in the transaction"
    );
    drop(txn);

    assert_eq!(p.latest_ts().await.expect("latest_ts"), ts(10));
    assert_eq!(log_ts(&all_commits(&*p).await), vec![10]);
    assert_eq!(get(&*snap(&*p).await, b"x").await, None);
}

/// `clear_index` removes every entry of one index and nothing else.
pub async fn clear_index(p: Arc<dyn Persistence>) {
    seed_keys(&*p, 1, IDX, &[b"a", b"b", b"c"]).await;
    seed_keys(&*p, 2, IDX_OTHER, &[b"a", b"b"]).await;
    seed_keys(&*p, 3, IndexId(IDX.0 - 1), &[b"z"]).await;

    let mut txn = p.begin_write().await.expect("begin_write");
    txn.clear_index(IDX).await.expect("clear_index");
    txn.clear_index(IndexId(999))
        .await
        .expect("clear_index of an unknown index");
    // Rebuild part of it in the same transaction.
    txn.write(&record(
        4,
        vec![],
        vec![entry(IDX, b"new", b"doc-10-0000")],
        b"4",
    ))
    .await
    .expect("write");
    txn.commit().await.expect("commit");

    let s = snap(&*p).await;
    let s = &*s;
    let all = KeyRange::all();
    assert_eq!(
        scan_keys(s, IDX, &all, Order::Asc, 10).await,
        owned(&[b"new"])
    );
    assert_eq!(
        scan_keys(s, IDX_OTHER, &all, Order::Asc, 10).await,
        owned(&[b"a", b"b"])
    );
    assert_eq!(
        scan_keys(s, IndexId(IDX.0 - 1), &all, Order::Asc, 10).await,
        owned(&[b"z"])
    );
    // Documents are untouched.
    assert_eq!(table_ids(s, T1).await.len(), 6);
    assert_eq!(get(s, b"doc-10-0001").await.map(|d| d.ts), Some(ts(1)));
}

/// `put_index_meta` inserts or replaces; `index_metadata` lists all.
pub async fn index_meta_upsert(p: Arc<dyn Persistence>) {
    let meta = |index: u32, table: u32, signature: &str| IndexMeta {
        index: IndexId(index),
        table: TableNumber(table),
        signature: signature.to_owned(),
    };
    let mut txn = p.begin_write().await.expect("begin_write");
    txn.put_index_meta(&meta(3, 1, "by_name:v1"))
        .await
        .expect("put_index_meta");
    txn.put_index_meta(&meta(1, 1, "by_id"))
        .await
        .expect("put_index_meta");
    txn.put_index_meta(&meta(u32::MAX, u32::MAX, ""))
        .await
        .expect("put_index_meta");
    txn.commit().await.expect("commit");

    let sorted = |mut v: Vec<IndexMeta>| {
        v.sort_by_key(|m| m.index);
        v
    };
    assert_eq!(
        sorted(p.index_metadata().await.expect("index_metadata")),
        vec![
            meta(1, 1, "by_id"),
            meta(3, 1, "by_name:v1"),
            meta(u32::MAX, u32::MAX, "")
        ]
    );

    let mut txn = p.begin_write().await.expect("begin_write");
    txn.put_index_meta(&meta(3, 2, "by_name:v2 ✓"))
        .await
        .expect("put_index_meta");
    txn.put_index_meta(&meta(3, 2, "by_name:v3 ✓"))
        .await
        .expect("put_index_meta");
    txn.commit().await.expect("commit");
    assert_eq!(
        sorted(p.index_metadata().await.expect("index_metadata")),
        vec![
            meta(1, 1, "by_id"),
            meta(3, 2, "by_name:v3 ✓"),
            meta(u32::MAX, u32::MAX, "")
        ]
    );
    // Index metadata does not need a commit record and does not move the ts.
    assert_eq!(p.latest_ts().await.expect("latest_ts"), Timestamp::ZERO);
}

/// `drop_index` removes one index's entries and metadata, nothing else.
pub async fn drop_index(p: Arc<dyn Persistence>) {
    seed_keys(&*p, 1, IDX, &[b"a", b"b", b"c"]).await;
    seed_keys(&*p, 2, IDX_OTHER, &[b"a", b"b"]).await;
    let meta = |index: IndexId, signature: &str| IndexMeta {
        index,
        table: T1,
        signature: signature.to_owned(),
    };
    let mut txn = p.begin_write().await.expect("begin_write");
    txn.put_index_meta(&meta(IDX, "dropped"))
        .await
        .expect("put_index_meta");
    txn.put_index_meta(&meta(IDX_OTHER, "kept"))
        .await
        .expect("put_index_meta");
    txn.commit().await.expect("commit");

    let mut txn = p.begin_write().await.expect("begin_write");
    txn.drop_index(IDX).await.expect("drop_index");
    txn.drop_index(IndexId(999))
        .await
        .expect("drop_index of an unknown index");
    txn.commit().await.expect("commit");

    assert_eq!(
        p.index_metadata().await.expect("index_metadata"),
        vec![meta(IDX_OTHER, "kept")]
    );
    let s = snap(&*p).await;
    let s = &*s;
    let all = KeyRange::all();
    assert!(scan_keys(s, IDX, &all, Order::Asc, 10).await.is_empty());
    assert_eq!(
        scan_keys(s, IDX_OTHER, &all, Order::Asc, 10).await,
        owned(&[b"a", b"b"])
    );
    // Documents are untouched.
    assert_eq!(table_ids(s, T1).await.len(), 5);
}

/// `scan_table` pages through one table by id, bytewise ascending.
pub async fn scan_table_paging(p: Arc<dyn Persistence>) {
    let t1_ids: Vec<&[u8]> = vec![
        &[0xff, 0xff],
        &[0x00],
        &[0x01, 0x00],
        &[0x7f],
        &[0x01],
        &[0xff],
        &[0x00, 0x00],
        &[0x00, 0xff],
        &[0x80, 0x00, 0x01],
    ];
    let t2_ids: Vec<&[u8]> = vec![&[0x00, 0x01], &[0x01, 0x01], &[0x80], &[0xfe]];
    let mut docs: Vec<DocumentWrite> = Vec::new();
    for id in &t1_ids {
        docs.push(put(id, T1, &format!("{id:?}")));
    }
    for id in &t2_ids {
        docs.push(put(id, T2, "t2"));
    }
    commit_one(&*p, record(1, docs, vec![], b"1")).await;
    // A later update keeps the document in place with its new ts.
    commit_one(
        &*p,
        record(2, vec![put(&[0x7f], T1, "updated")], vec![], b"2"),
    )
    .await;

    let mut expected: Vec<Vec<u8>> = t1_ids.iter().map(|id| id.to_vec()).collect();
    expected.sort();
    let s = snap(&*p).await;
    let s = &*s;

    let all = s
        .scan_table(T1, None, usize::MAX)
        .await
        .expect("scan_table");
    assert_eq!(
        all.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(all.iter().all(|d| d.table == T1));
    let updated = all.iter().find(|d| d.id == [0x7f]).expect("doc 0x7f");
    assert_eq!((updated.ts, updated.json.as_str()), (ts(2), "updated"));
    assert_eq!(
        all.iter()
            .find(|d| d.id == [0x00])
            .map(|d| (d.ts, d.json.clone())),
        Some((ts(1), format!("{:?}", [0x00u8].as_slice())))
    );

    for page_size in [1usize, 2, 4, 100] {
        let mut paged = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = s
                .scan_table(T1, after.as_deref(), page_size)
                .await
                .expect("scan_table page");
            assert!(page.len() <= page_size);
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            paged.extend(page.into_iter().map(|d| d.id));
        }
        assert_eq!(paged, expected, "paging with page size {page_size}");
    }

    // `after` need not be an existing id; an empty id is before every id.
    let ids = |v: Vec<StoredDocument>| v.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .scan_table(T1, Some(&[0x02]), 100)
            .await
            .expect("scan_table")),
        owned(&[&[0x7f], &[0x80, 0x00, 0x01], &[0xff], &[0xff, 0xff]])
    );
    assert_eq!(
        ids(s.scan_table(T1, Some(&[]), 100).await.expect("scan_table")),
        expected
    );
    assert!(
        s.scan_table(T1, Some(&[0xff, 0xff]), 100)
            .await
            .expect("scan_table")
            .is_empty()
    );
    assert!(
        s.scan_table(T1, None, 0)
            .await
            .expect("scan_table")
            .is_empty()
    );
    let mut t2_sorted: Vec<Vec<u8>> = t2_ids.iter().map(|id| id.to_vec()).collect();
    t2_sorted.sort();
    assert_eq!(table_ids(s, T2).await, t2_sorted);
    assert!(table_ids(s, TableNumber(3)).await.is_empty());
    assert_eq!(
        ids(s
            .scan_table(T2, Some(&[0x01]), 2)
            .await
            .expect("scan_table")),
        owned(&[&[0x01, 0x01], &[0x80]])
    );
}

/// Many tasks calling `begin_write` concurrently are serialized (no lost
/// commit, every timestamp distinct and increasing) while other tasks read
/// consistent snapshots.
pub async fn concurrent_writers_are_serialized(p: Arc<dyn Persistence>) {
    const WRITERS: usize = 16;
    const COMMITS_PER_WRITER: usize = 8;
    const READERS: usize = 4;
    const TOTAL: usize = WRITERS * COMMITS_PER_WRITER;

    let writers_done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let p = Arc::clone(&p);
        let done = Arc::clone(&writers_done);
        readers.push(tokio::spawn(async move {
            let mut last = Timestamp::ZERO;
            let mut reads = 0usize;
            loop {
                let finished = done.load(Ordering::Acquire);
                let s = p.snapshot().await.expect("snapshot");
                let at = s.ts();
                assert!(at >= last, "snapshot ts went backwards: {at:?} < {last:?}");
                last = at;
                // Commit n (ts n) adds one entry with key n: a snapshot at ts
                // T must see exactly T entries, all written at or before T.
                let rows = s
                    .index_scan(IDX, &KeyRange::all(), Order::Asc, usize::MAX)
                    .await
                    .expect("index_scan");
                let n = usize::try_from(at.0).expect("ts fits usize");
                assert_eq!(
                    rows.len(),
                    n,
                    "snapshot at {at:?} must see exactly its commits"
                );
                for (i, row) in rows.iter().enumerate() {
                    let expected = u64::try_from(i + 1).expect("fits");
                    assert_eq!(row.key, expected.to_be_bytes().to_vec());
                    assert_eq!(row.doc.ts, ts(expected));
                }
                let counter = s.get(b"counter").await.expect("get");
                assert_eq!(counter.map(|d| d.ts).unwrap_or(Timestamp::ZERO), at);
                drop(s);
                assert!(p.latest_ts().await.expect("latest_ts") >= at);
                reads += 1;
                if finished {
                    break;
                }
                tokio::task::yield_now().await;
            }
            reads
        }));
    }

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let p = Arc::clone(&p);
        writers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for c in 0..COMMITS_PER_WRITER {
                let mut txn = p.begin_write().await.expect("begin_write");
                let latest = txn.latest_ts().await.expect("latest_ts");
                let at = latest.succ();
                let key = at.0.to_be_bytes();
                let id = format!("w{w}-c{c}").into_bytes();
                // Give other tasks a chance to run while the lock is held.
                tokio::task::yield_now().await;
                txn.write(&CommitRecord {
                    ts: at,
                    documents: vec![
                        put(&id, T1, &format!("{{\"w\":{w},\"c\":{c}}}")),
                        put(b"counter", T2, &at.0.to_string()),
                    ],
                    index_writes: vec![entry(IDX, &key, &id)],
                    log: id.clone(),
                })
                .await
                .expect("write");
                txn.commit().await.expect("commit");
                mine.push((at, id));
            }
            mine
        }));
    }

    let mut committed: BTreeMap<Timestamp, Vec<u8>> = BTreeMap::new();
    for w in writers {
        let mine = w.await.expect("writer task panicked");
        for pair in mine.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "one writer's timestamps must increase"
            );
        }
        for (at, id) in mine {
            assert!(
                committed.insert(at, id).is_none(),
                "timestamp {at:?} committed twice"
            );
        }
    }
    writers_done.store(true, Ordering::Release);
    for r in readers {
        let reads = r.await.expect("reader task panicked");
        assert!(reads >= 1);
    }

    assert_eq!(committed.len(), TOTAL, "lost commits");
    let expected_ts: Vec<u64> = (1..=u64::try_from(TOTAL).expect("fits")).collect();
    assert_eq!(
        committed.keys().map(|t| t.0).collect::<Vec<_>>(),
        expected_ts
    );
    assert_eq!(
        p.latest_ts().await.expect("latest_ts"),
        ts(expected_ts[TOTAL - 1])
    );
    let log = all_commits(&*p).await;
    assert_eq!(log_ts(&log), expected_ts);
    for e in &log {
        assert_eq!(
            Some(&e.log),
            committed.get(&e.ts),
            "log payload of {:?}",
            e.ts
        );
    }
    let s = snap(&*p).await;
    assert_eq!(s.ts(), ts(expected_ts[TOTAL - 1]));
    let rows = scan(&*s, IDX, &KeyRange::all(), Order::Asc, usize::MAX).await;
    assert_eq!(rows.len(), TOTAL);
    for row in rows {
        assert_eq!(committed.get(&row.doc.ts), Some(&row.doc.id));
    }
    assert_eq!(table_ids(&*s, T1).await.len(), TOTAL);
}
