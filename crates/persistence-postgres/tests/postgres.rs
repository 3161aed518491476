//! PostgreSQL-specific behaviour: connection errors, durability across
//! reconnects, migrations, several nodes on one schema, lock timeouts and
//! dead nodes, TLS, batching limits.
//!
//! Each test uses its own schema (dropped afterwards) on
//! `CONNVO_TEST_POSTGRES_URL`; see `persistence_postgres::testing` for what
//! happens when the database is unreachable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use errors::ErrorCode;
use persistence::{
    CommitLogEntry, CommitRecord, DocumentWrite, IndexId, IndexMeta, IndexWrite, KeyRange, Order,
    Persistence, StoredDocument, TableNumber, Timestamp,
};
use persistence_postgres::testing::{self, TestSchema};
use persistence_postgres::{PostgresOptions, PostgresPersistence, SCHEMA_VERSION};

const T: TableNumber = TableNumber(7);
const IDX: IndexId = IndexId(3);

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

async fn commit(p: &dyn Persistence, records: &[CommitRecord]) {
    let mut txn = p.begin_write().await.expect("begin_write");
    for r in records {
        txn.write(r).await.expect("write");
    }
    txn.commit().await.expect("commit");
}

/// Commits one record at `latest + 1` and returns its timestamp.
async fn commit_next(p: &dyn Persistence, id: &[u8]) -> Timestamp {
    let mut txn = p.begin_write().await.expect("begin_write");
    let ts = txn.latest_ts().await.expect("latest_ts").succ();
    txn.write(&CommitRecord {
        ts,
        documents: vec![DocumentWrite {
            id: id.to_vec(),
            table: T,
            json: Some(format!("{{\"ts\":{}}}", ts.0)),
        }],
        index_writes: vec![IndexWrite {
            index: IDX,
            key: ts.0.to_be_bytes().to_vec(),
            doc_id: Some(id.to_vec()),
        }],
        log: id.to_vec(),
    })
    .await
    .expect("write");
    txn.commit().await.expect("commit");
    ts
}

async fn scalar_i64(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

// ---------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unreachable_database_is_a_clear_error() {
    // Nothing listens on port 1: refused at once.
    let started = Instant::now();
    let err = PostgresPersistence::connect(
        "postgres://connvo@127.0.0.1:1/nowhere",
        PostgresOptions {
            connect_timeout: Duration::from_secs(2),
            ..PostgresOptions::default()
        },
    )
    .await
    .expect_err("nothing listens on port 1");
    let message = err.message();
    eprintln!("refused: {message}");
    assert!(
        message.contains("cannot connect to 127.0.0.1:1"),
        "{message}"
    );
    assert!(message.contains("database \"nowhere\""), "{message}");
    assert!(message.contains("user \"connvo\""), "{message}");
    assert!(message.contains("is PostgreSQL running"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5), "{message}");

    // A blackholed address: bounded by the connect timeout, not the OS's
    // minutes-long TCP timeout.
    let started = Instant::now();
    let err = PostgresPersistence::connect(
        "postgres://connvo:secret@10.255.255.1:5432/app",
        PostgresOptions {
            connect_timeout: Duration::from_millis(500),
            ..PostgresOptions::default()
        },
    )
    .await
    .expect_err("unroutable address");
    let message = err.message();
    eprintln!("blackholed: {message}");
    assert!(message.contains("10.255.255.1:5432"), "{message}");
    assert!(
        !message.contains("secret"),
        "the password must not leak: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}: {message}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // Accepts TCP connections and never says a word: the PostgreSQL handshake
    // hangs, and only the connect timeout ends the attempt.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let err = PostgresPersistence::connect(
        &format!("postgres://connvo@127.0.0.1:{port}/app?sslmode=disable"),
        PostgresOptions {
            connect_timeout: Duration::from_millis(700),
            ..PostgresOptions::default()
        },
    )
    .await
    .expect_err("silent server");
    let elapsed = started.elapsed();
    let message = err.message();
    eprintln!("silent: {message} (after {elapsed:?})");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("connect timeout"), "{message}");
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    silent.abort();
}

#[tokio::test]
async fn invalid_options_are_refused() {
    let err = PostgresPersistence::connect(
        &testing::url(),
        PostgresOptions {
            read_pool_size: 0,
            ..PostgresOptions::default()
        },
    )
    .await
    .expect_err("zero pool");
    assert!(err.message().contains("read_pool_size"), "{err}");
    let err = PostgresPersistence::connect(
        &testing::url(),
        PostgresOptions {
            schema: "x".repeat(64),
            ..PostgresOptions::default()
        },
    )
    .await
    .expect_err("long schema name");
    assert!(err.message().contains("invalid schema name"), "{err}");
}

#[tokio::test]
async fn wrong_credentials_name_the_target() {
    let schema = TestSchema::new();
    // Reachability first, so an unreachable server skips/fails as usual.
    drop(schema.connect().await);
    let url = testing::url();
    let Some(at) = url.find('@') else { return };
    let bad = format!("postgres://no_such_role_connvo{}", &url[at..]);
    let err = PostgresPersistence::connect(&bad, schema.options())
        .await
        .expect_err("unknown role");
    assert!(err.message().contains("cannot connect to"), "{err}");
    assert!(err.message().contains("no_such_role_connvo"), "{err}");
}

// ---------------------------------------------------------------------------
// Durability and migrations
// ---------------------------------------------------------------------------

#[tokio::test]
async fn committed_data_survives_reconnect() {
    let schema = TestSchema::new();
    {
        let p = schema.connect().await;
        assert_eq!(p.kind(), "postgres");
        assert_eq!(p.schema(), schema.name());
        assert!(format!("{p:?}").contains(schema.name()));
        commit(
            &*p,
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

    let p = schema.connect().await;
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
    drop(s);
    let log = p.commits_after(Timestamp::ZERO, 10).await.unwrap();
    assert_eq!(log.iter().map(|e| e.ts.0).collect::<Vec<_>>(), vec![10, 11]);
    assert_eq!(p.index_metadata().await.unwrap().len(), 1);

    // Timestamps keep increasing across the reconnect.
    let mut txn = p.begin_write().await.unwrap();
    assert!(txn.write(&record(11, b"x", "{}", b"kx")).await.is_err());
    drop(txn);
    commit(&*p, &[record(12, b"c", "{}", b"kc")]).await;

    // Migrations ran once and are recorded.
    let admin = schema.admin().await.unwrap();
    let q = format!(
        "SELECT count(*) FROM \"{}\".schema_migrations",
        schema.name()
    );
    assert_eq!(scalar_i64(&admin, &q).await, i64::from(SCHEMA_VERSION));
    let q = format!(
        "SELECT max(version)::bigint FROM \"{}\".schema_migrations",
        schema.name()
    );
    assert_eq!(scalar_i64(&admin, &q).await, i64::from(SCHEMA_VERSION));
}

#[tokio::test]
async fn concurrent_first_connects_migrate_once() {
    let schema = Arc::new(TestSchema::new());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let schema = Arc::clone(&schema);
        tasks.push(tokio::spawn(async move { schema.connect().await }));
    }
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.expect("connect task"));
    }
    let admin = schema.admin().await.unwrap();
    let q = format!(
        "SELECT count(*) FROM \"{}\".schema_migrations",
        schema.name()
    );
    assert_eq!(scalar_i64(&admin, &q).await, i64::from(SCHEMA_VERSION));
    for s in &stores {
        assert_eq!(s.latest_ts().await.unwrap(), Timestamp::ZERO);
    }
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let schema = TestSchema::new();
    drop(schema.connect().await);
    let admin = schema.admin().await.unwrap();
    admin
        .batch_execute(&format!(
            "INSERT INTO \"{}\".schema_migrations (version, description) VALUES (99, 'future')",
            schema.name()
        ))
        .await
        .unwrap();
    let err = PostgresPersistence::connect(schema.url(), schema.options())
        .await
        .expect_err("newer schema");
    assert!(err.message().contains("newer"), "{err}");
    assert!(err.message().contains("99"), "{err}");
}

#[tokio::test]
async fn foreign_tables_are_refused() {
    let schema = TestSchema::new();
    // Make sure the schema gets dropped, then put a foreign table in it.
    drop(schema.connect().await);
    let admin = schema.admin().await.unwrap();
    admin
        .batch_execute(&format!(
            "DROP SCHEMA \"{0}\" CASCADE; CREATE SCHEMA \"{0}\"; \
             CREATE TABLE \"{0}\".documents (x int)",
            schema.name()
        ))
        .await
        .unwrap();
    let err = PostgresPersistence::connect(schema.url(), schema.options())
        .await
        .expect_err("foreign table");
    assert!(err.message().contains("apply version 1"), "{err}");
    assert!(err.message().contains("already exists"), "{err}");
}

// ---------------------------------------------------------------------------
// Storage details
// ---------------------------------------------------------------------------

#[tokio::test]
async fn keys_and_ids_compare_bytewise() {
    let schema = TestSchema::new();
    let p = schema.connect().await;
    let keys: Vec<Vec<u8>> = vec![
        vec![0xff],
        vec![],
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x00, 0xff],
        vec![0x7f],
        vec![0x80],
        vec![0xff, 0x00],
        vec![0xff, 0xff],
        b"B".to_vec(),
        b"a".to_vec(),
        b"A".to_vec(),
        "é".as_bytes().to_vec(),
    ];
    let docs = keys
        .iter()
        .enumerate()
        .map(|(i, k)| DocumentWrite {
            id: k.iter().chain(&[0x00]).copied().collect(),
            table: T,
            json: Some(i.to_string()),
        })
        .collect();
    let entries = keys
        .iter()
        .map(|k| IndexWrite {
            index: IDX,
            key: k.clone(),
            doc_id: Some(k.iter().chain(&[0x00]).copied().collect()),
        })
        .collect();
    commit(
        &*p,
        &[CommitRecord {
            ts: Timestamp(1),
            documents: docs,
            index_writes: entries,
            log: vec![],
        }],
    )
    .await;
    let mut sorted = keys.clone();
    sorted.sort();
    let s = p.snapshot().await.unwrap();
    let scanned: Vec<Vec<u8>> = s
        .index_scan(IDX, &KeyRange::all(), Order::Asc, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(scanned, sorted);
    let range = KeyRange {
        start: vec![0x00, 0x00],
        end: Some(vec![0xff, 0x00]),
    };
    let expected: Vec<Vec<u8>> = sorted
        .iter()
        .filter(|k| range.contains(k))
        .cloned()
        .collect();
    let scanned: Vec<Vec<u8>> = s
        .index_scan(IDX, &range, Order::Desc, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(scanned, expected.into_iter().rev().collect::<Vec<_>>());
    let ids: Vec<Vec<u8>> = s
        .scan_table(T, None, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    let mut sorted_ids: Vec<Vec<u8>> = sorted
        .iter()
        .map(|k| k.iter().chain(&[0x00]).copied().collect())
        .collect();
    sorted_ids.sort();
    assert_eq!(ids, sorted_ids);
}

#[tokio::test]
async fn large_batches_are_split_and_applied() {
    let schema = TestSchema::new();
    let p = schema.connect().await;
    // One record far above the per-statement chunk (an index rebuild), then a
    // group of small records, in one transaction.
    let n = 25_000u32;
    let mut txn = p.begin_write().await.unwrap();
    txn.write(&CommitRecord {
        ts: Timestamp(1),
        documents: (0..n)
            .map(|i| DocumentWrite {
                id: i.to_be_bytes().to_vec(),
                table: T,
                json: Some(i.to_string()),
            })
            .collect(),
        index_writes: (0..n)
            .map(|i| IndexWrite {
                index: IDX,
                key: i.to_be_bytes().to_vec(),
                doc_id: Some(i.to_be_bytes().to_vec()),
            })
            .collect(),
        log: b"big".to_vec(),
    })
    .await
    .unwrap();
    for ts in 2..=101u64 {
        txn.write(&record(ts, &ts.to_le_bytes(), "{}", &ts.to_le_bytes()))
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    let s = p.snapshot().await.unwrap();
    assert_eq!(s.ts(), Timestamp(101));
    let rows = s
        .index_scan(IDX, &KeyRange::all(), Order::Asc, usize::MAX)
        .await
        .unwrap();
    assert_eq!(rows.len(), n as usize + 100);
    assert_eq!(
        s.scan_table(T, None, usize::MAX).await.unwrap().len(),
        n as usize + 100
    );
    assert_eq!(
        p.commits_after(Timestamp::ZERO, usize::MAX)
            .await
            .unwrap()
            .len(),
        101
    );
}

#[tokio::test]
async fn oversized_index_keys_fail_cleanly() {
    let schema = TestSchema::new();
    let p = schema.connect().await;
    // Incompressible bytes well above PostgreSQL's ~2.7 KB B-tree entry limit.
    let mut key = Vec::with_capacity(8192);
    let mut x: u32 = 0x1234_5678;
    while key.len() < 8192 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        key.extend_from_slice(&x.to_le_bytes());
    }
    let mut txn = p.begin_write().await.unwrap();
    txn.write(&record(1, b"a", "{}", &key)).await.unwrap();
    let err = txn.commit().await.expect_err("key too long for a B-tree");
    assert!(err.message().contains("index row"), "{err}");
    assert!(err.message().contains("2.7 KB"), "{err}");
    // Nothing was committed and the store keeps working.
    assert_eq!(p.latest_ts().await.unwrap(), Timestamp::ZERO);
    commit(&*p, &[record(1, b"a", "{}", b"short")]).await;
    assert_eq!(p.latest_ts().await.unwrap(), Timestamp(1));
}

#[tokio::test]
async fn connections_return_to_the_pool_without_open_transactions() {
    let schema = TestSchema::new();
    let p = schema
        .connect_with(|o| {
            o.read_pool_size = 1;
        })
        .await;
    commit(&*p, &[record(1, b"a", "{}", b"k")]).await;
    for _ in 0..50 {
        let s = p.snapshot().await.unwrap();
        assert!(s.get(b"a").await.unwrap().is_some());
    }
    for i in 0..20u64 {
        let mut txn = p.begin_write().await.unwrap();
        txn.write(&record(100 + i, b"b", "{}", b"k2"))
            .await
            .unwrap();
        drop(txn);
    }
    // Background rollbacks finish promptly; no session stays in a transaction.
    let admin = schema.admin().await.unwrap();
    let q = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{}' \
         AND state <> 'idle'",
        schema.name()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let busy = scalar_i64(&admin, &q).await;
        if busy == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{busy} sessions still busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.latest_ts().await.unwrap(), Timestamp(1));
}

// ---------------------------------------------------------------------------
// Several nodes on one schema
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_serialize_commits_and_see_each_other() {
    const WRITERS_PER_NODE: usize = 4;
    const COMMITS_PER_WRITER: usize = 10;
    let schema = TestSchema::new();
    let a = schema.connect().await;
    let b = schema.connect().await;

    // A commit through one node is visible to the other: under its write
    // lock, in its commit-log tail and in its snapshots.
    let t1 = commit_next(&*a, b"from-a").await;
    assert_eq!(t1, Timestamp(1));
    {
        let mut txn = b.begin_write().await.unwrap();
        assert_eq!(txn.latest_ts().await.unwrap(), t1);
        assert_eq!(
            txn.commits_after(Timestamp::ZERO).await.unwrap(),
            vec![CommitLogEntry {
                ts: t1,
                log: b"from-a".to_vec()
            }]
        );
    }
    assert_eq!(b.latest_ts().await.unwrap(), t1);
    assert!(
        b.snapshot()
            .await
            .unwrap()
            .get(b"from-a")
            .await
            .unwrap()
            .is_some()
    );
    let t2 = commit_next(&*b, b"from-b").await;
    assert_eq!(t2, Timestamp(2));
    assert_eq!(
        a.commits_after(t1, 10).await.unwrap(),
        vec![CommitLogEntry {
            ts: t2,
            log: b"from-b".to_vec()
        }]
    );

    // While node A holds the write lock, node B waits for it.
    let mut held = a.begin_write().await.unwrap();
    let waiter = {
        let b = Arc::clone(&b);
        tokio::spawn(async move { commit_next(&*b, b"waited").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "node B must wait for node A's lock");
    let t3 = held.latest_ts().await.unwrap().succ();
    held.write(&record(t3.0, b"held", "{}", b"held"))
        .await
        .unwrap();
    held.commit().await.unwrap();
    let t4 = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("node B never got the lock")
        .unwrap();
    assert_eq!((t3, t4), (Timestamp(3), Timestamp(4)));

    // Concurrent writers on both nodes: every commit gets a distinct,
    // increasing timestamp and none is lost.
    let mut tasks = Vec::new();
    for (node_name, node) in [("a", &a), ("b", &b)] {
        for w in 0..WRITERS_PER_NODE {
            let node = Arc::clone(node);
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for c in 0..COMMITS_PER_WRITER {
                    let id = format!("{node_name}-w{w}-c{c}").into_bytes();
                    mine.push((commit_next(&*node, &id).await, id));
                }
                mine
            }));
        }
    }
    let mut committed = BTreeMap::new();
    for t in tasks {
        let mine = t.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0));
        for (ts, id) in mine {
            assert!(committed.insert(ts, id).is_none(), "{ts:?} committed twice");
        }
    }
    let total = 2 * WRITERS_PER_NODE * COMMITS_PER_WRITER;
    assert_eq!(committed.len(), total);
    let expected: Vec<u64> = (5..5 + total as u64).collect();
    assert_eq!(committed.keys().map(|t| t.0).collect::<Vec<_>>(), expected);
    // Each node's commit log holds every commit, with its payload.
    for node in [&a, &b] {
        let log = node.commits_after(t4, usize::MAX).await.unwrap();
        assert_eq!(log.len(), total);
        for e in log {
            assert_eq!(committed.get(&e.ts), Some(&e.log));
        }
        let s = node.snapshot().await.unwrap();
        assert_eq!(s.ts(), Timestamp(4 + total as u64));
        assert_eq!(
            s.scan_table(T, None, usize::MAX).await.unwrap().len(),
            total + 4
        );
    }
}

#[tokio::test]
async fn write_lock_wait_is_bounded() {
    let schema = TestSchema::new();
    let a = schema.connect().await;
    let b = schema
        .connect_with(|o| o.write_lock_timeout = Duration::from_millis(300))
        .await;
    let held = a.begin_write().await.unwrap();
    let started = Instant::now();
    let err = b.begin_write().await.err().expect("lock timeout");
    assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
    assert!(err.message().contains("write lock"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(held);
    // The failed attempt left node B usable.
    assert_eq!(commit_next(&*b, b"x").await, Timestamp(1));
}

#[tokio::test]
async fn a_dead_node_releases_the_write_lock() {
    let schema = TestSchema::new();
    let dead_name = format!("{}-dead", schema.name());
    let dying = {
        let name = dead_name.clone();
        schema
            .connect_with(move |o| o.application_name = name)
            .await
    };
    let survivor = schema.connect().await;
    commit_next(&*survivor, b"before").await;

    // Node "dying" holds the lock with an uncommitted write, then its
    // connections are killed (as if the process had died).
    let mut txn = dying.begin_write().await.unwrap();
    txn.write(&record(2, b"lost", "{}", b"lost")).await.unwrap();
    let admin = schema.admin().await.unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&dead_name],
        )
        .await
        .unwrap();
    let ts = tokio::time::timeout(Duration::from_secs(10), commit_next(&*survivor, b"after"))
        .await
        .expect("the lock of a dead node must be released");
    assert_eq!(ts, Timestamp(2));
    assert!(
        txn.commit().await.is_err(),
        "the dead node's commit must fail"
    );
    let s = survivor.snapshot().await.unwrap();
    assert!(s.get(b"lost").await.unwrap().is_none());
    drop(s);
    // The dying node's pool replaces the dead connection.
    assert_eq!(commit_next(&*dying, b"revived").await, Timestamp(3));
}

#[tokio::test]
async fn a_hung_writer_is_aborted_by_the_server() {
    let schema = TestSchema::new();
    let hung = schema
        .connect_with(|o| o.write_idle_timeout = Duration::from_millis(300))
        .await;
    let other = schema.connect().await;
    let mut txn = hung.begin_write().await.unwrap();
    txn.write(&record(1, b"stuck", "{}", b"stuck"))
        .await
        .unwrap();
    // The holder goes quiet; the server aborts it and the other node proceeds.
    let ts = tokio::time::timeout(Duration::from_secs(10), commit_next(&*other, b"other"))
        .await
        .expect("idle_in_transaction_session_timeout must free the lock");
    assert_eq!(ts, Timestamp(1));
    assert!(txn.commit().await.is_err());
    assert_eq!(commit_next(&*hung, b"again").await, Timestamp(2));
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// Whether the test server has TLS on, and its certificate file.
async fn server_tls(schema: &TestSchema) -> Option<String> {
    let admin = schema.admin().await.unwrap();
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.ok()?.get(0);
    if ssl != "on" {
        eprintln!("test server has ssl=off; TLS test skipped");
        return None;
    }
    admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .ok()
        .map(|row| row.get(0))
}

fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

#[tokio::test]
async fn sslmode_require_encrypts_the_connections() {
    let schema = TestSchema::new();
    drop(schema.connect().await);
    if server_tls(&schema).await.is_none() {
        return;
    }
    let url = with_param(schema.url(), "sslmode=require");
    let p = PostgresPersistence::connect(&url, schema.options())
        .await
        .expect("TLS connect");
    commit(&*p, &[record(1, b"a", "{}", b"k")]).await;
    let s = p.snapshot().await.unwrap();
    let admin = schema.admin().await.unwrap();
    let row = admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
            &[&schema.name()],
        )
        .await
        .unwrap();
    let (all, encrypted): (i64, i64) = (row.get(0), row.get(1));
    assert!(all >= 2, "read and write connections: {all}");
    assert_eq!(all, encrypted, "every connection must use TLS");
    drop(s);
}

#[tokio::test]
async fn a_ca_file_verifies_the_server_certificate() {
    let schema = TestSchema::new();
    drop(schema.connect().await);
    let Some(cert_file) = server_tls(&schema).await else {
        return;
    };
    let url = schema.url().to_owned();
    if !url.contains("@127.0.0.1:") || std::fs::metadata(&cert_file).is_err() {
        eprintln!("server certificate {cert_file} not readable or server not local; skipped");
        return;
    }
    let options = PostgresOptions {
        tls_ca_file: Some(cert_file.clone().into()),
        ..schema.options()
    };
    // The certificate names the host "localhost" (Debian's snakeoil
    // certificate does); connecting by that name verifies.
    let by_name = url.replace("@127.0.0.1:", "@localhost:");
    match PostgresPersistence::connect(&by_name, options.clone()).await {
        Ok(p) => assert_eq!(p.latest_ts().await.unwrap(), Timestamp::ZERO),
        Err(e) => {
            // Only acceptable if the certificate is not for "localhost".
            assert!(e.message().contains("certificate"), "{e}");
            eprintln!("server certificate does not name localhost: {e}");
        }
    }
    // The IP address is not a name in the certificate: refused.
    let err = PostgresPersistence::connect(&url, options)
        .await
        .expect_err("certificate not valid for 127.0.0.1");
    eprintln!("wrong name: {err}");
    assert!(
        err.message().contains("cannot connect to 127.0.0.1"),
        "{err}"
    );
    assert!(
        err.message().to_lowercase().contains("certificate"),
        "the error should name the certificate problem: {err}"
    );
}
