//! SQLite-specific behaviour: durability across reopen, the data-directory
//! lock, the read pool bound, schema versioning and file layout.

use std::sync::Arc;
use std::time::Duration;

use persistence::{
    CommitRecord, DocumentWrite, IndexId, IndexMeta, IndexWrite, KeyRange, Order, Persistence,
    StoredDocument, TableNumber, Timestamp,
};
use persistence_sqlite::{DB_FILE_NAME, LOCK_FILE_NAME, SqliteOptions, SqlitePersistence};

const T: TableNumber = TableNumber(7);
const IDX: IndexId = IndexId(3);

fn open(dir: &std::path::Path) -> Arc<SqlitePersistence> {
    SqlitePersistence::open(dir, SqliteOptions::default()).expect("open")
}

fn record(ts: u64, id: &[u8], json: &str, key: &[u8]) -> CommitRecord {
    CommitRecord {
        ts: Timestamp(ts),
        documents: vec![DocumentWrite {
            id: id.to_vec(),
            table: T,
            json: Some(json.to_owned()),
        }],
        index_writes: vec![IndexWrite {
            index: IDX,
            key: key.to_vec(),
            doc_id: Some(id.to_vec()),
        }],
        log: format!("log-{ts}").into_bytes(),
    }
}

async fn commit(p: &SqlitePersistence, records: &[CommitRecord]) {
    let mut txn = p.begin_write().await.expect("begin_write");
    for r in records {
        txn.write(r).await.expect("write");
    }
    txn.commit().await.expect("commit");
}

#[tokio::test]
async fn committed_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = open(dir.path());
        commit(
            &p,
            &[
                record(10, b"a", r#"{"v":"a"}"#, b"ka"),
                record(11, b"b", "{}", b"kb"),
            ],
        )
        .await;
        let mut txn = p.begin_write().await.unwrap();
        txn.put_index_meta(&IndexMeta {
            index: IDX,
            table: T,
            signature: "sig".into(),
        })
        .await
        .unwrap();
        txn.commit().await.unwrap();
        // An uncommitted transaction at "shutdown" leaves nothing behind.
        let mut txn = p.begin_write().await.unwrap();
        txn.write(&record(12, b"c", "{}", b"kc")).await.unwrap();
        drop(txn);
    }
    assert!(dir.path().join(DB_FILE_NAME).is_file());
    assert!(dir.path().join(LOCK_FILE_NAME).is_file());
    // A clean shutdown checkpoints the WAL into the database file.
    assert!(!dir.path().join(format!("{DB_FILE_NAME}-wal")).exists());

    let p = open(dir.path());
    assert_eq!(p.latest_ts().await.unwrap(), Timestamp(11));
    let s = p.snapshot().await.unwrap();
    assert_eq!(s.ts(), Timestamp(11));
    assert_eq!(
        s.get(b"a").await.unwrap(),
        Some(StoredDocument {
            id: b"a".to_vec(),
            table: T,
            ts: Timestamp(10),
            json: r#"{"v":"a"}"#.into()
        })
    );
    assert_eq!(s.get(b"c").await.unwrap(), None);
    let keys: Vec<Vec<u8>> = s
        .index_scan(IDX, &KeyRange::all(), Order::Asc, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, vec![b"ka".to_vec(), b"kb".to_vec()]);
    drop(s);
    let log = p.commits_after(Timestamp::ZERO, 10).await.unwrap();
    assert_eq!(log.iter().map(|e| e.ts.0).collect::<Vec<_>>(), vec![10, 11]);
    assert_eq!(log[1].log, b"log-11".to_vec());
    assert_eq!(
        p.index_metadata().await.unwrap(),
        vec![IndexMeta {
            index: IDX,
            table: T,
            signature: "sig".into()
        }]
    );

    // Timestamps keep increasing across the restart.
    let mut txn = p.begin_write().await.unwrap();
    assert!(txn.write(&record(11, b"x", "{}", b"kx")).await.is_err());
    drop(txn);
    commit(&p, &[record(12, b"c", "{}", b"kc")]).await;
    drop(p);
    let p = open(dir.path());
    assert_eq!(p.latest_ts().await.unwrap(), Timestamp(12));
}

#[tokio::test]
async fn synchronous_normal_also_persists_on_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        synchronous_full: false,
        ..SqliteOptions::default()
    };
    let p = SqlitePersistence::open(dir.path(), options.clone()).unwrap();
    assert_eq!(p.options(), &options);
    commit(&p, &[record(1, b"a", "{}", b"k")]).await;
    drop(p);
    let p = open(dir.path());
    assert_eq!(p.latest_ts().await.unwrap(), Timestamp(1));
}

#[tokio::test]
async fn data_dir_lock_excludes_a_second_store() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = SqlitePersistence::open(dir.path(), SqliteOptions::default()).unwrap_err();
    let lock_path = dir.path().join(LOCK_FILE_NAME);
    assert!(
        err.message().contains(&lock_path.display().to_string()),
        "{err}"
    );
    assert!(err.message().contains("already in use"), "{err}");

    // Snapshots and write transactions keep the directory locked after the
    // store handle itself is gone, and keep working.
    commit(&first, &[record(1, b"a", "{}", b"k")]).await;
    let snapshot = first.snapshot().await.unwrap();
    let mut txn = first.begin_write().await.unwrap();
    drop(first);
    assert!(SqlitePersistence::open(dir.path(), SqliteOptions::default()).is_err());
    assert!(snapshot.get(b"a").await.unwrap().is_some());
    txn.write(&record(2, b"b", "{}", b"k2")).await.unwrap();
    txn.commit().await.unwrap();
    assert!(SqlitePersistence::open(dir.path(), SqliteOptions::default()).is_err());
    drop(snapshot);

    let second = open(dir.path());
    assert_eq!(second.latest_ts().await.unwrap(), Timestamp(2));
}

#[tokio::test]
async fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    let p = open(&nested);
    assert_eq!(p.db_path(), nested.join(DB_FILE_NAME));
    assert_eq!(p.kind(), "sqlite");
    assert!(format!("{p:?}").contains(DB_FILE_NAME));
}

#[tokio::test]
async fn zero_read_pool_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqlitePersistence::open(
        dir.path(),
        SqliteOptions {
            read_pool_size: 0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.message().contains("read_pool_size"), "{err}");
}

#[tokio::test]
async fn exhausted_read_pool_waits_for_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    let p = SqlitePersistence::open(
        dir.path(),
        SqliteOptions {
            read_pool_size: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let held = p.snapshot().await.unwrap();
    let waiter = {
        let p = Arc::clone(&p);
        tokio::spawn(async move { p.snapshot().await.unwrap().ts() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiter.is_finished(),
        "the second snapshot must wait for the only connection"
    );
    // Writes are not blocked by readers.
    commit(&p, &[record(5, b"a", "{}", b"k")]).await;
    assert_eq!(held.ts(), Timestamp::ZERO);
    drop(held);
    let ts = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ts,
        Timestamp(5),
        "the returned connection starts a fresh read transaction"
    );
}

#[tokio::test]
async fn database_is_in_wal_mode_with_versioned_schema() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    commit(&p, &[record(1, b"a", "{}", b"k")]).await;
    let conn = rusqlite::Connection::open(p.db_path()).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let max_ts: i64 = conn
        .query_row("SELECT value FROM globals WHERE name = 'max_ts'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(max_ts, 1);
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqlitePersistence::open(dir.path(), SqliteOptions::default()).unwrap_err();
    assert!(err.message().contains("newer"), "{err}");
}

#[tokio::test]
async fn foreign_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    conn.execute_batch("CREATE TABLE other (x); PRAGMA user_version = 3;")
        .unwrap();
    drop(conn);
    let err = SqlitePersistence::open(dir.path(), SqliteOptions::default()).unwrap_err();
    assert!(err.message().contains("not a Connvo database"), "{err}");
}

#[tokio::test]
async fn timestamps_from_2_pow_63_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let mut txn = p.begin_write().await.unwrap();
    let err = txn
        .write(&record(1 << 63, b"a", "{}", b"k"))
        .await
        .unwrap_err();
    assert!(err.message().contains("2^63"), "{err}");
    drop(txn);
    assert_eq!(p.latest_ts().await.unwrap(), Timestamp::ZERO);
    // The largest storable timestamp works, and queries past it are empty.
    commit(&p, &[record(i64::MAX as u64, b"a", "{}", b"k")]).await;
    assert_eq!(p.latest_ts().await.unwrap(), Timestamp(i64::MAX as u64));
    assert!(
        p.commits_after(Timestamp(u64::MAX), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(p.prune_commit_log(Timestamp(u64::MAX)).await.unwrap(), 1);
}

/// An entry whose key ends with its 20-byte document id (every engine entry)
/// stores an empty `doc_id` and still joins its document; any other entry
/// stores the id. Rows of both forms read the same, in key order.
#[tokio::test]
async fn entries_keyed_by_their_document_id_store_no_second_copy() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let engine_id = [7u8; 20];
    let mut engine_key = b"m".to_vec();
    engine_key.push(0x0B);
    engine_key.extend_from_slice(&engine_id);
    // A 20-byte id that the key does not end with, and a short id it does.
    let other_id = [9u8; 20];
    commit(
        &p,
        &[
            record(1, &engine_id, r#"{"v":"engine"}"#, &engine_key),
            record(2, &other_id, r#"{"v":"other"}"#, b"n"),
            record(3, b"short", r#"{"v":"short"}"#, b"o-short"),
        ],
    )
    .await;
    let s = p.snapshot().await.unwrap();
    let rows = s
        .index_scan(IDX, &KeyRange::all(), Order::Asc, 10)
        .await
        .unwrap();
    let got: Vec<(Vec<u8>, Vec<u8>, String)> = rows
        .into_iter()
        .map(|r| (r.key, r.doc.id, r.doc.json))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                engine_key.clone(),
                engine_id.to_vec(),
                r#"{"v":"engine"}"#.to_owned()
            ),
            (
                b"n".to_vec(),
                other_id.to_vec(),
                r#"{"v":"other"}"#.to_owned()
            ),
            (
                b"o-short".to_vec(),
                b"short".to_vec(),
                r#"{"v":"short"}"#.to_owned()
            ),
        ]
    );
    drop(s);
    let conn = rusqlite::Connection::open(p.db_path()).unwrap();
    let stored: Vec<(Vec<u8>, Vec<u8>)> = conn
        .prepare("SELECT key, doc_id FROM index_entries ORDER BY key")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stored,
        vec![
            (engine_key, Vec::new()),
            (b"n".to_vec(), other_id.to_vec()),
            (b"o-short".to_vec(), b"short".to_vec()),
        ]
    );
}

/// Updating a document in place keeps its table; writing it with another
/// table moves it (the persistence contract allows it).
#[tokio::test]
async fn a_document_rewritten_with_another_table_moves() {
    const T2: TableNumber = TableNumber(8);
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    commit(&p, &[record(1, b"d", r#"{"v":1}"#, b"k")]).await;
    commit(&p, &[record(2, b"d", r#"{"v":2}"#, b"k")]).await;
    let s = p.snapshot().await.unwrap();
    let ids = |docs: Vec<StoredDocument>| {
        docs.into_iter()
            .map(|d| (d.id, d.table, d.json))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s.scan_table(T, None, 10).await.unwrap()),
        vec![(b"d".to_vec(), T, r#"{"v":2}"#.to_owned())]
    );
    drop(s);
    let mut moved = record(3, b"d", r#"{"v":3}"#, b"k");
    moved.documents[0].table = T2;
    commit(&p, &[moved]).await;
    let s = p.snapshot().await.unwrap();
    assert!(s.scan_table(T, None, 10).await.unwrap().is_empty());
    assert_eq!(
        ids(s.scan_table(T2, None, 10).await.unwrap()),
        vec![(b"d".to_vec(), T2, r#"{"v":3}"#.to_owned())]
    );
    let got = s.get(b"d").await.unwrap().unwrap();
    assert_eq!((got.table, got.ts), (T2, Timestamp(3)));
}
