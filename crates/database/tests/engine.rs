//! Functional tests of the engine: documents, indexes, pagination, limits,
//! read-your-writes and snapshot isolation.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use database::query::{CursorPos, decode_cursor, encode_cursor};
use database::{IndexRange, Order};
use errors::ErrorCode;
use values::Value;

fn item(group: &str, n: f64) -> Value {
    Value::object([
        ("group".to_owned(), Value::from(group)),
        ("n".to_owned(), Value::Float64(n)),
    ])
}

async fn scan_ns(db: &database::Database, group: &str, order: Order) -> Vec<f64> {
    let mut tx = db.begin(false).await.unwrap();
    common::scan_group_ns(&mut tx, group, order).await
}

#[tokio::test]
async fn insert_get_patch_replace_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    let id = tx.insert("items", item("a", 1.0)).unwrap();
    // Read-your-writes inside the transaction.
    let doc = tx.get(id).await.unwrap().unwrap();
    assert_eq!(doc.field("n"), Some(&Value::Float64(1.0)));
    assert_eq!(
        doc.field("_id").and_then(Value::as_str),
        Some(id.encode().as_str())
    );
    let ts1 = db.commit(tx).await.unwrap();
    assert!(ts1 > persistence::Timestamp::ZERO);

    let mut tx = db.begin(true).await.unwrap();
    assert!(tx.ts() >= ts1);
    let mut patch = BTreeMap::new();
    patch.insert("n".to_owned(), Some(Value::Float64(2.0)));
    patch.insert(
        "tags".to_owned(),
        Some(Value::Array(vec![Value::from("x")])),
    );
    tx.patch(id, patch).await.unwrap();
    let ts2 = db.commit(tx).await.unwrap();
    assert!(ts2 > ts1);

    let mut tx = db.begin(false).await.unwrap();
    let doc = tx.get(id).await.unwrap().unwrap();
    assert_eq!(doc.field("n"), Some(&Value::Float64(2.0)));
    assert!(doc.creation_time() > 0.0);

    let mut tx = db.begin(true).await.unwrap();
    tx.replace(id, item("b", 9.0)).await.unwrap();
    db.commit(tx).await.unwrap();
    assert_eq!(scan_ns(&db, "a", Order::Asc).await, Vec::<f64>::new());
    assert_eq!(scan_ns(&db, "b", Order::Asc).await, vec![9.0]);

    let mut tx = db.begin(true).await.unwrap();
    tx.delete(id).await.unwrap();
    db.commit(tx).await.unwrap();
    let mut tx = db.begin(false).await.unwrap();
    assert!(tx.get(id).await.unwrap().is_none());
    assert!(scan_ns(&db, "b", Order::Asc).await.is_empty());
}

#[tokio::test]
async fn schema_validation_rejects_bad_documents() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    let err = tx
        .insert(
            "items",
            Value::object([("group".to_owned(), Value::from("a"))]),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    let mut bad = BTreeMap::new();
    bad.insert("group".to_owned(), Value::from("a"));
    bad.insert("n".to_owned(), Value::Float64(1.0));
    bad.insert("extra".to_owned(), Value::Null);
    let err = tx.insert("items", Value::Object(bad)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    let err = tx.insert("nope", item("a", 1.0)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationError);
    let mut sys = BTreeMap::new();
    sys.insert("_id".to_owned(), Value::from("x"));
    assert_eq!(
        tx.insert("items", Value::Object(sys)).unwrap_err().code(),
        ErrorCode::ValidationError
    );
    // Queries cannot write.
    let mut ro = db.begin(false).await.unwrap();
    assert_eq!(
        ro.insert("items", item("a", 1.0)).unwrap_err().code(),
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn document_size_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    let big = Value::Array(
        (0..8000)
            .map(|_| Value::from("x".repeat(200).as_str()))
            .collect(),
    );
    let doc = Value::object([
        ("group".to_owned(), Value::from("a")),
        ("n".to_owned(), Value::Float64(1.0)),
        ("tags".to_owned(), big),
    ]);
    let err = tx.insert("items", doc).unwrap_err();
    assert_eq!(err.code(), ErrorCode::LimitExceeded, "{err}");
}

#[tokio::test]
async fn index_ranges_order_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    for n in [5.0, 1.0, 3.0, 2.0, 4.0] {
        tx.insert("items", item("g", n)).unwrap();
    }
    tx.insert("items", item("h", 0.0)).unwrap();
    db.commit(tx).await.unwrap();
    assert_eq!(
        scan_ns(&db, "g", Order::Asc).await,
        vec![1.0, 2.0, 3.0, 4.0, 5.0]
    );
    assert_eq!(
        scan_ns(&db, "g", Order::Desc).await,
        vec![5.0, 4.0, 3.0, 2.0, 1.0]
    );

    let mut tx = db.begin(false).await.unwrap();
    let table = Arc::clone(tx.schema().table("items").unwrap());
    let index = table.index("by_group_n").unwrap().clone();
    let cases: Vec<(IndexRange, Vec<f64>)> = vec![
        (
            IndexRange::all().eq("group", "g").gt("n", 2.0),
            vec![3.0, 4.0, 5.0],
        ),
        (
            IndexRange::all()
                .eq("group", "g")
                .gte("n", 2.0)
                .lt("n", 4.0),
            vec![2.0, 3.0],
        ),
        (
            IndexRange::all().eq("group", "g").lte("n", 2.0),
            vec![1.0, 2.0],
        ),
        (IndexRange::all().eq("group", "g").eq("n", 3.0), vec![3.0]),
        (IndexRange::all(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 0.0]),
    ];
    for (range, want) in cases {
        let (r, b) = range.compile(&index).unwrap();
        let got: Vec<f64> = tx
            .scan(&table, &index, &r, b, Order::Asc, None, 100)
            .await
            .unwrap()
            .rows
            .iter()
            .map(|(_, d)| d.field("n").and_then(Value::as_f64).unwrap())
            .collect();
        assert_eq!(got, want);
    }
    // Field order is enforced.
    assert!(IndexRange::all().eq("n", 1.0).compile(&index).is_err());
    assert!(IndexRange::all().gt("n", 1.0).compile(&index).is_err());
}

#[tokio::test]
async fn scans_overlay_pending_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    let ids: Vec<_> = (1..=4)
        .map(|n| tx.insert("items", item("g", f64::from(n))).unwrap())
        .collect();
    db.commit(tx).await.unwrap();

    let mut tx = db.begin(true).await.unwrap();
    tx.delete(ids[1]).await.unwrap(); // n = 2
    let mut p = BTreeMap::new();
    p.insert("n".to_owned(), Some(Value::Float64(10.0)));
    tx.patch(ids[0], p).await.unwrap(); // 1 -> 10
    tx.insert("items", item("g", 2.5)).unwrap();
    let table = Arc::clone(tx.schema().table("items").unwrap());
    let index = table.index("by_group_n").unwrap().clone();
    let (r, b) = IndexRange::all().eq("group", "g").compile(&index).unwrap();
    let got: Vec<f64> = tx
        .scan(&table, &index, &r, b.clone(), Order::Asc, None, 100)
        .await
        .unwrap()
        .rows
        .iter()
        .map(|(_, d)| d.field("n").and_then(Value::as_f64).unwrap())
        .collect();
    assert_eq!(got, vec![2.5, 3.0, 4.0, 10.0]);
    // With a limit the overlay still gives the right prefix.
    let limited = tx
        .scan(&table, &index, &r, b, Order::Asc, None, 2)
        .await
        .unwrap();
    assert_eq!(limited.rows.len(), 2);
    assert!(!limited.exhausted);
    assert_eq!(limited.rows[0].1.field("n"), Some(&Value::Float64(2.5)));
}

#[tokio::test]
async fn cursors_resume_scans_and_are_bound_to_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    for n in 0..25 {
        tx.insert("items", item("g", f64::from(n))).unwrap();
    }
    db.commit(tx).await.unwrap();
    let mut tx = db.begin(false).await.unwrap();
    let table = Arc::clone(tx.schema().table("items").unwrap());
    let index = table.index("by_group_n").unwrap().clone();
    let (r, b) = IndexRange::all().eq("group", "g").compile(&index).unwrap();
    let mut after: Option<CursorPos> = None;
    let mut seen = Vec::new();
    loop {
        let page = tx
            .scan(
                &table,
                &index,
                &r,
                b.clone(),
                Order::Desc,
                after.as_ref(),
                10,
            )
            .await
            .unwrap();
        seen.extend(
            page.rows
                .iter()
                .map(|(_, d)| d.field("n").and_then(Value::as_f64).unwrap()),
        );
        if page.exhausted {
            break;
        }
        let cursor = encode_cursor(
            index.id,
            &CursorPos::After(page.rows.last().unwrap().0.clone()),
        );
        after = Some(decode_cursor(index.id, &cursor).unwrap());
    }
    assert_eq!(seen, (0..25).rev().map(f64::from).collect::<Vec<_>>());
    let cursor = encode_cursor(index.id, &CursorPos::End);
    let other = table.index("by_creation_time").unwrap();
    let err = decode_cursor(other.id, &cursor).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidCursor);
    assert!(decode_cursor(index.id, "not a cursor!").is_err());
}

#[tokio::test]
async fn snapshots_are_isolated_from_later_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    let id = tx.insert("items", item("g", 1.0)).unwrap();
    db.commit(tx).await.unwrap();
    let mut reader = db.begin(false).await.unwrap();
    let mut writer = db.begin(true).await.unwrap();
    let mut p = BTreeMap::new();
    p.insert("n".to_owned(), Some(Value::Float64(2.0)));
    writer.patch(id, p).await.unwrap();
    db.commit(writer).await.unwrap();
    assert_eq!(
        reader.get(id).await.unwrap().unwrap().field("n"),
        Some(&Value::Float64(1.0))
    );
    let mut fresh = db.begin(false).await.unwrap();
    assert_eq!(
        fresh.get(id).await.unwrap().unwrap().field("n"),
        Some(&Value::Float64(2.0))
    );
}

#[tokio::test]
async fn conflicting_commit_is_rejected_and_disjoint_commit_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path()).await;
    let mut tx = db.begin(true).await.unwrap();
    let a = tx.insert("items", item("a", 1.0)).unwrap();
    let b = tx.insert("items", item("b", 1.0)).unwrap();
    db.commit(tx).await.unwrap();

    let mut t1 = db.begin(true).await.unwrap();
    let mut t2 = db.begin(true).await.unwrap();
    let mut t3 = db.begin(true).await.unwrap();
    t1.get(a).await.unwrap();
    t2.get(a).await.unwrap();
    t3.get(b).await.unwrap();
    let mut p = BTreeMap::new();
    p.insert("n".to_owned(), Some(Value::Float64(2.0)));
    t1.patch(a, p.clone()).await.unwrap();
    t2.patch(a, p.clone()).await.unwrap();
    t3.patch(b, p).await.unwrap();
    db.commit(t1).await.unwrap();
    let err = db.commit(t2).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::WriteConflict);
    db.commit(t3).await.unwrap();
}

#[tokio::test]
async fn data_survives_reopen_and_indexes_are_rebuilt_when_added() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = common::open(dir.path()).await;
        let mut tx = db.begin(true).await.unwrap();
        tx.insert("items", item("g", 1.0)).unwrap();
        tx.insert("items", item("g", 2.0)).unwrap();
        db.commit(tx).await.unwrap();
    }
    // Give the committer task time to drop its handle on the store.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let db = common::open(dir.path()).await;
    assert_eq!(scan_ns(&db, "g", Order::Asc).await, vec![1.0, 2.0]);
}

/// Up to 100 `items` rows by the built-in creation-time index.
async fn items_by_creation_time(db: &database::Database) -> Vec<(Vec<u8>, database::Document)> {
    let mut tx = db.begin(false).await.unwrap();
    let table = Arc::clone(tx.schema().table("items").unwrap());
    let index = table.index("by_creation_time").unwrap().clone();
    let (r, b) = IndexRange::all().compile(&index).unwrap();
    tx.scan(&table, &index, &r, b, Order::Asc, None, 100)
        .await
        .unwrap()
        .rows
}

#[tokio::test]
async fn indexes_the_schema_no_longer_defines_are_dropped_on_open() {
    use database::{Schema, TableDef};
    use persistence::{KeyRange, Persistence};
    use values::v;

    let dir = tempfile::tempdir().unwrap();
    let dropped = {
        let db = common::open(dir.path()).await;
        let mut tx = db.begin(true).await.unwrap();
        tx.insert("items", item("g", 1.0)).unwrap();
        tx.insert("items", item("g", 2.0)).unwrap();
        db.commit(tx).await.unwrap();
        db.schema()
            .table("items")
            .unwrap()
            .index("by_group_n")
            .unwrap()
            .id
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let entries = |p: Arc<persistence_sqlite::SqlitePersistence>| async move {
        let snapshot = p.snapshot().await.unwrap();
        let rows = snapshot
            .index_scan(dropped, &KeyRange::all(), Order::Asc, 100)
            .await
            .unwrap();
        let meta = p.index_metadata().await.unwrap();
        (rows.len(), meta.iter().any(|m| m.index == dropped))
    };
    let open_store =
        || persistence_sqlite::SqlitePersistence::open(dir.path(), Default::default()).unwrap();
    assert_eq!(entries(open_store()).await, (2, true));
    // The same table without `by_group_n`.
    let schema = Arc::new(
        Schema::builder()
            .table(
                TableDef::new("items")
                    .field("group", v::string())
                    .field("n", v::number())
                    .field("tags", v::optional(v::array(v::string()))),
            )
            .build()
            .unwrap(),
    );
    {
        let db = database::Database::open(
            open_store(),
            schema,
            Arc::new(database::SystemClock),
            database::SeededIds::new(7),
            database::DatabaseOptions::default(),
        )
        .await
        .unwrap();
        // The documents are still there.
        assert_eq!(items_by_creation_time(&db).await.len(), 2);
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(entries(open_store()).await, (0, false));
}

#[tokio::test]
async fn inserts_in_the_same_millisecond_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = persistence_sqlite::SqlitePersistence::open(dir.path(), Default::default()).unwrap();
    let clock = database::TestClock::at_ms(1_700_000_000_000);
    let db = database::Database::open(
        p,
        common::schema(),
        clock,
        database::SeededIds::new(1),
        database::DatabaseOptions::default(),
    )
    .await
    .unwrap();
    // A frozen clock: every insert happens "in the same millisecond".
    for batch in 0..5 {
        let mut tx = db.begin(true).await.unwrap();
        for i in 0..10 {
            tx.insert("items", item("g", f64::from(batch * 10 + i)))
                .unwrap();
        }
        db.commit(tx).await.unwrap();
    }
    let rows = items_by_creation_time(&db).await;
    let ns: Vec<f64> = rows
        .iter()
        .map(|(_, d)| d.field("n").and_then(Value::as_f64).unwrap())
        .collect();
    assert_eq!(ns, (0..50).map(f64::from).collect::<Vec<_>>());
    let times: Vec<f64> = rows.iter().map(|(_, d)| d.creation_time()).collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "creation times must strictly increase"
    );
}

#[tokio::test]
async fn a_single_node_logs_empty_write_sets_and_still_invalidates() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open_with(
        dir.path(),
        database::DatabaseOptions {
            log_write_sets: false,
            ..Default::default()
        },
    )
    .await;
    let mut read = db.begin(false).await.unwrap();
    assert!(
        common::scan_group_ns(&mut read, "g", Order::Asc)
            .await
            .is_empty()
    );
    let at = read.ts();
    let sub = db
        .subscriptions()
        .subscribe(Arc::new(read.into_read_set()), at);

    let mut tx = db.begin(true).await.unwrap();
    tx.insert("items", item("g", 1.0)).unwrap();
    let committed = db.commit(tx).await.unwrap();
    assert_eq!(sub.invalidated_at(), Some(committed));
    // The log entry exists (timestamps stay contiguous) with no keys.
    let entries = db.persistence().commits_after(at, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    let ws = database::readset::WriteSet::decode(&entries[0].log).unwrap();
    assert!(ws.keys.is_empty());
    // A concurrent writer that read the same range still conflicts: OCC
    // validation uses the in-memory write sets, not the log.
    let mut a = db.begin(true).await.unwrap();
    assert_eq!(
        common::scan_group_ns(&mut a, "g", Order::Asc).await,
        vec![1.0]
    );
    a.insert("items", item("g", 2.0)).unwrap();
    let mut b = db.begin(true).await.unwrap();
    assert_eq!(
        common::scan_group_ns(&mut b, "g", Order::Asc).await,
        vec![1.0]
    );
    b.insert("items", item("g", 3.0)).unwrap();
    db.commit(a).await.unwrap();
    let e = db.commit(b).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::WriteConflict);
}

/// Commits `tx` in a task and returns once its group has reached the backend
/// (`taken` is the store's commit count before it; durability held).
async fn commit_in_flight(
    db: &database::Database,
    sync: &common::SyncControl,
    taken: u64,
    tx: database::Transaction,
) -> tokio::task::JoinHandle<errors::Result<persistence::Timestamp>> {
    let commit = tokio::spawn({
        let db = db.clone();
        async move { db.commit(tx).await }
    });
    // Until the backend has written it (counting it as taken is not enough:
    // a snapshot begun before the write finishes would not show it).
    while sync.written() == taken {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    commit
}

/// A group written but not yet durable (so not yet published to the
/// subscriptions' write log) still conflicts with a later transaction that
/// read what it wrote before it; and no caller hears of its commit before
/// it is durable.
#[tokio::test]
async fn transactions_are_validated_against_groups_still_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (db, sync) = common::open_slow(dir.path(), 1).await;
    let mut tx = db.begin(true).await.unwrap();
    let a = tx.insert("items", item("a", 1.0)).unwrap();
    let b = tx.insert("items", item("b", 1.0)).unwrap();
    db.commit(tx).await.unwrap();

    // Reads `a` now, writes `b`; commits after `a` changed.
    let mut reader = db.begin(true).await.unwrap();
    reader.get(a).await.unwrap();
    let mut p = BTreeMap::new();
    p.insert("n".to_owned(), Some(Value::Float64(2.0)));
    reader.patch(b, p.clone()).await.unwrap();

    sync.hold(true);
    let taken = sync.taken();
    let published = db.latest_ts();
    let mut writer = db.begin(true).await.unwrap();
    writer.patch(a, p).await.unwrap();
    let first = commit_in_flight(&db, &sync, taken, writer).await;
    // The writer's group is committed in the backend, not durable.
    let second = tokio::spawn({
        let db = db.clone();
        async move { db.commit(reader).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !first.is_finished(),
        "a commit was acknowledged before it was durable"
    );
    assert!(!second.is_finished());
    assert_eq!(db.latest_ts(), published, "published before durable");

    sync.hold(false);
    first.await.unwrap().unwrap();
    let err = second.await.unwrap().unwrap_err();
    assert_eq!(err.code(), ErrorCode::WriteConflict);
    let mut tx = db.begin(false).await.unwrap();
    let b_now = tx.get(b).await.unwrap().unwrap();
    assert_eq!(b_now.field("n"), Some(&Value::Float64(1.0)));
}

/// A group whose sync fails is answered with the error, not left hanging,
/// and never published (no subscriber or cache learns of it).
#[tokio::test]
async fn a_group_that_fails_to_become_durable_is_answered_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (db, sync) = common::open_slow(dir.path(), 1).await;
    let published = db.latest_ts();
    sync.hold(true);
    let mut tx = db.begin(true).await.unwrap();
    tx.insert("items", item("a", 1.0)).unwrap();
    let taken = sync.taken();
    let commit = commit_in_flight(&db, &sync, taken, tx).await;
    sync.fail_syncs(true);
    sync.hold(false);
    let err = tokio::time::timeout(std::time::Duration::from_secs(5), commit)
        .await
        .expect("the caller was never answered")
        .unwrap()
        .unwrap_err();
    assert!(err.message().contains("the sync failed"), "{err}");
    assert_eq!(db.latest_ts(), published, "a failed group was published");
}

/// A snapshot may show a group that is not durable yet; what is read there
/// is held back (`wait_published`) until it is.
#[tokio::test]
async fn reads_of_a_group_in_flight_are_held_back_until_it_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (db, sync) = common::open_slow(dir.path(), 1).await;
    sync.hold(true);
    let taken = sync.taken();
    let mut tx = db.begin(true).await.unwrap();
    let id = tx.insert("items", item("a", 1.0)).unwrap();
    let commit = commit_in_flight(&db, &sync, taken, tx).await;
    let mut reader = db.begin(false).await.unwrap();
    assert!(
        reader.get(id).await.unwrap().is_some(),
        "the snapshot shows the group"
    );
    let read_at = reader.ts();
    let held = tokio::spawn({
        let db = db.clone();
        async move { db.wait_published(read_at).await }
    });
    let now = tokio::spawn({
        let db = db.clone();
        async move { db.wait_published_now().await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !held.is_finished(),
        "a read of an undurable group was let out"
    );
    assert!(!now.is_finished());
    sync.hold(false);
    let ts = commit.await.unwrap().unwrap();
    assert_eq!(ts, read_at);
    held.await.unwrap().unwrap();
    now.await.unwrap().unwrap();
}

/// When a group fails to become durable, what waits for it to be published
/// gets the error.
#[tokio::test]
async fn waiting_for_a_group_that_failed_to_become_durable_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (db, sync) = common::open_slow(dir.path(), 1).await;
    sync.hold(true);
    let taken = sync.taken();
    let mut tx = db.begin(true).await.unwrap();
    tx.insert("items", item("a", 1.0)).unwrap();
    let commit = commit_in_flight(&db, &sync, taken, tx).await;
    let waiting = tokio::spawn({
        let db = db.clone();
        async move { db.wait_published_now().await }
    });
    sync.fail_syncs(true);
    sync.hold(false);
    assert!(commit.await.unwrap().is_err());
    let err = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("a waiter was left hanging")
        .unwrap()
        .unwrap_err();
    assert!(err.message().contains("the sync failed"), "{err}");
}

/// A read waits only for the in-flight commits that wrote into what it
/// read (`settle_read`): one that did not touch them is let out at once and
/// reported at the newest published timestamp, where its value is the same;
/// one that did is held until that commit is durable and reported there;
/// and if that commit fails to become durable, only the reads that depend
/// on it fail.
#[tokio::test]
async fn reads_wait_only_for_in_flight_commits_that_wrote_what_they_read() {
    let dir = tempfile::tempdir().unwrap();
    let (db, sync) = common::open_slow(dir.path(), 1).await;
    let mut tx = db.begin(true).await.unwrap();
    let a = tx.insert("items", item("a", 1.0)).unwrap();
    db.commit(tx).await.unwrap();
    let published = db.latest_ts();

    sync.hold(true);
    let taken = sync.taken();
    let mut tx = db.begin(true).await.unwrap();
    let b = tx.insert("items", item("b", 2.0)).unwrap();
    let commit = commit_in_flight(&db, &sync, taken, tx).await;

    // Reads of group "a" (a point read and a range read): untouched.
    let mut untouched = db.begin(false).await.unwrap();
    assert!(untouched.get(a).await.unwrap().is_some());
    assert_eq!(
        common::scan_group_ns(&mut untouched, "a", Order::Asc).await,
        [1.0]
    );
    assert!(
        untouched.ts() > published,
        "the snapshot shows the group in flight"
    );
    let settled = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        db.settle_read(untouched.ts(), untouched.read_set()),
    )
    .await
    .expect("a read the in-flight group did not touch was held back")
    .unwrap();
    assert_eq!(settled, published);

    // A range read over group "b" and a point read of `b` depend on it.
    let mut range = db.begin(false).await.unwrap();
    assert_eq!(
        common::scan_group_ns(&mut range, "b", Order::Asc).await,
        [2.0]
    );
    let mut point = db.begin(false).await.unwrap();
    assert!(point.get(b).await.unwrap().is_some());
    let held = tokio::spawn({
        let db = db.clone();
        async move {
            let ts = range.ts();
            db.settle_read(ts, range.read_set()).await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !held.is_finished(),
        "a read of an undurable commit was let out"
    );
    sync.hold(false);
    let ts = commit.await.unwrap().unwrap();
    assert_eq!(held.await.unwrap().unwrap(), ts);
    assert_eq!(
        db.settle_read(point.ts(), point.read_set()).await.unwrap(),
        point.ts()
    );

    // A group that fails: the reads that depend on it fail, the others not.
    let published = db.latest_ts();
    sync.hold(true);
    let taken = sync.taken();
    let mut tx = db.begin(true).await.unwrap();
    tx.insert("items", item("c", 3.0)).unwrap();
    let commit = commit_in_flight(&db, &sync, taken, tx).await;
    let mut dependent = db.begin(false).await.unwrap();
    assert_eq!(
        common::scan_group_ns(&mut dependent, "c", Order::Asc).await,
        [3.0]
    );
    let mut other = db.begin(false).await.unwrap();
    assert!(other.get(a).await.unwrap().is_some());
    let waiting = tokio::spawn({
        let db = db.clone();
        async move {
            let ts = dependent.ts();
            db.settle_read(ts, dependent.read_set()).await
        }
    });
    assert_eq!(
        db.settle_read(other.ts(), other.read_set()).await.unwrap(),
        published
    );
    sync.fail_syncs(true);
    sync.hold(false);
    assert!(commit.await.unwrap().is_err());
    let err = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("a dependent read was left hanging")
        .unwrap()
        .unwrap_err();
    assert!(err.message().contains("the sync failed"), "{err}");
}
