//! Shared helpers for the engine's integration tests.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use database::{Database, DatabaseOptions, Schema, SeededIds, SystemClock, TableDef};
use persistence_sqlite::{SqliteOptions, SqlitePersistence};
use values::v;

pub fn schema() -> Arc<Schema> {
    Arc::new(
        Schema::builder()
            .table(
                TableDef::new("items")
                    .field("group", v::string())
                    .field("n", v::number())
                    .field("tags", v::optional(v::array(v::string())))
                    .index("by_group_n", &["group", "n"]),
            )
            .table(
                TableDef::new("counters")
                    .field("name", v::string())
                    .field("value", v::number())
                    .field("log", v::array(v::number())),
            )
            .build()
            .expect("schema"),
    )
}

pub async fn open(dir: &std::path::Path) -> Database {
    open_with(dir, DatabaseOptions::default()).await
}

pub async fn open_with(dir: &std::path::Path, options: DatabaseOptions) -> Database {
    let p = SqlitePersistence::open(
        dir,
        SqliteOptions {
            synchronous_full: false,
            ..Default::default()
        },
    )
    .expect("open sqlite");
    Database::open(
        p,
        schema(),
        Arc::new(SystemClock),
        SeededIds::new(7),
        options,
    )
    .await
    .expect("open database")
}

/// The `n` of every `items` row of `group` (index `by_group_n`) in `tx`, in `order`.
pub async fn scan_group_ns(
    tx: &mut database::Transaction,
    group: &str,
    order: database::Order,
) -> Vec<f64> {
    let table = Arc::clone(tx.schema().table("items").unwrap());
    let index = table.index("by_group_n").unwrap().clone();
    let (range, bucket) = database::IndexRange::all()
        .eq("group", group)
        .compile(&index)
        .unwrap();
    let res = tx
        .scan(&table, &index, &range, bucket, order, None, 1000)
        .await
        .unwrap();
    res.rows
        .iter()
        .map(|(_, d)| d.field("n").and_then(values::Value::as_f64).unwrap())
        .collect()
}

/// Controls a [`SlowSync`] store.
pub struct SyncControl {
    /// Commits numbered so far (taken before each backend commit).
    taken: std::sync::atomic::AtomicU64,
    /// Commits the backend has finished writing (visible to new snapshots),
    /// durable or not.
    written: std::sync::atomic::AtomicU64,
    /// The newest commit made durable.
    durable: tokio::sync::watch::Sender<u64>,
    /// While `true`, no commit becomes durable.
    held: tokio::sync::watch::Sender<bool>,
    /// Each commit becomes durable up to this long after the one before.
    max_delay_us: u64,
    /// While `true`, syncs fail (the commit's `Durable` yields an error).
    failing: std::sync::atomic::AtomicBool,
}

impl SyncControl {
    /// Holds (or releases) durability.
    pub fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }

    /// Makes the syncs that finish from now on fail (or succeed again).
    pub fn fail_syncs(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many commits the backend has received.
    pub fn taken(&self) -> u64 {
        self.taken.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many commits the backend has written (new snapshots show them).
    pub fn written(&self) -> u64 {
        self.written.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn wait_durable(&self, seq: u64) {
        let mut rx = self.durable.subscribe();
        let _ = rx.wait_for(|d| *d >= seq).await;
    }
}

/// A store whose commits become durable late (after a pseudo-random delay,
/// or when released), keeping the backend contract of
/// `WriteTxn::commit_pipelined`: in order; snapshots may show them before
/// (`reads_precede_durability`), `latest_ts` does not. Exercises the
/// engine's pipeline (groups in flight) and `Database::wait_published`.
pub struct SlowSync {
    inner: Arc<dyn persistence::Persistence>,
    control: Arc<SyncControl>,
}

struct SlowTxn {
    inner: Box<dyn persistence::WriteTxn>,
    control: Arc<SyncControl>,
}

#[async_trait::async_trait]
impl persistence::Persistence for SlowSync {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn snapshot(&self) -> errors::Result<Arc<dyn persistence::Snapshot>> {
        self.inner.snapshot().await
    }

    fn reads_precede_durability(&self) -> bool {
        true
    }

    async fn begin_write(&self) -> errors::Result<Box<dyn persistence::WriteTxn>> {
        Ok(Box::new(SlowTxn {
            inner: self.inner.begin_write().await?,
            control: Arc::clone(&self.control),
        }))
    }

    async fn latest_ts(&self) -> errors::Result<persistence::Timestamp> {
        let ts = self.inner.latest_ts().await?;
        self.control.wait_durable(self.control.taken()).await;
        Ok(ts)
    }

    async fn commits_after(
        &self,
        after: persistence::Timestamp,
        limit: usize,
    ) -> errors::Result<Vec<persistence::CommitLogEntry>> {
        let entries = self.inner.commits_after(after, limit).await?;
        self.control.wait_durable(self.control.taken()).await;
        Ok(entries)
    }

    async fn prune_commit_log(&self, before: persistence::Timestamp) -> errors::Result<u64> {
        self.inner.prune_commit_log(before).await
    }

    async fn commit_log_floor(&self) -> errors::Result<persistence::Timestamp> {
        self.inner.commit_log_floor().await
    }

    async fn index_metadata(&self) -> errors::Result<Vec<persistence::IndexMeta>> {
        self.inner.index_metadata().await
    }
}

#[async_trait::async_trait]
impl persistence::WriteTxn for SlowTxn {
    async fn latest_ts(&mut self) -> errors::Result<persistence::Timestamp> {
        self.inner.latest_ts().await
    }

    async fn commits_after(
        &mut self,
        after: persistence::Timestamp,
    ) -> errors::Result<Vec<persistence::CommitLogEntry>> {
        self.inner.commits_after(after).await
    }

    async fn write(&mut self, record: &persistence::CommitRecord) -> errors::Result<()> {
        self.inner.write(record).await
    }

    async fn clear_index(&mut self, index: persistence::IndexId) -> errors::Result<()> {
        self.inner.clear_index(index).await
    }

    async fn put_index_meta(&mut self, meta: &persistence::IndexMeta) -> errors::Result<()> {
        self.inner.put_index_meta(meta).await
    }

    async fn drop_index(&mut self, index: persistence::IndexId) -> errors::Result<()> {
        self.inner.drop_index(index).await
    }

    async fn commit(self: Box<Self>) -> errors::Result<()> {
        self.commit_pipelined().await?.wait().await
    }

    async fn commit_pipelined(self: Box<Self>) -> errors::Result<persistence::Durable> {
        let control = self.control;
        let seq = control
            .taken
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.inner.commit().await?;
        control
            .written
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(persistence::Durable::pending(async move {
            let mut held = control.held.subscribe();
            let _ = held.wait_for(|h| !*h).await;
            // A splitmix-style scramble of the number: a repeatable delay.
            let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^= x >> 31;
            let delay = x % control.max_delay_us.max(1);
            tokio::time::sleep(std::time::Duration::from_micros(delay)).await;
            if control.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(errors::Error::internal("test: the sync failed"));
            }
            // In order: this future runs only after the previous commit's.
            control.durable.send_modify(|d| *d = (*d).max(seq));
            Ok(())
        }))
    }
}

/// Opens the engine over a [`SlowSync`] SQLite store whose commits become
/// durable up to `max_delay_us` after the previous one.
pub async fn open_slow(dir: &std::path::Path, max_delay_us: u64) -> (Database, Arc<SyncControl>) {
    let inner = SqlitePersistence::open(
        dir,
        SqliteOptions {
            synchronous_full: false,
            ..Default::default()
        },
    )
    .expect("open sqlite");
    let control = Arc::new(SyncControl {
        taken: Default::default(),
        written: Default::default(),
        durable: tokio::sync::watch::Sender::new(0),
        held: tokio::sync::watch::Sender::new(false),
        max_delay_us,
        failing: Default::default(),
    });
    let store = Arc::new(SlowSync {
        inner,
        control: Arc::clone(&control),
    });
    let db = Database::open(
        store,
        schema(),
        Arc::new(SystemClock),
        SeededIds::new(7),
        DatabaseOptions::default(),
    )
    .await
    .expect("open database");
    (db, control)
}
