//! The SQLite backend of Connvo Server's [`Persistence`] trait.
//!
//! One process, one data directory, one database file (`connvo.db`) in WAL
//! mode. Built on `rusqlite` (bundled SQLite) rather than `sqlx`: the engine
//! funnels every write through one committer task, so what matters is a fast
//! *synchronous* single-writer path — plain `sqlite3_step` calls on a
//! connection we own, with cached prepared statements and no async driver
//! machinery (sqlx's SQLite driver runs each connection on a worker thread and
//! pays a channel round trip per statement).
//!
//! # Architecture
//! * **Data-directory lock.** [`SqlitePersistence::open`] takes an exclusive
//!   lock on `connvo.lock` so a second server cannot open the same directory.
//!   It is held until the store and every snapshot and transaction made from
//!   it are dropped.
//! * **One writer.** A single read-write connection behind a
//!   `tokio::sync::Mutex`; that mutex is the global write lock.
//!   [`Persistence::begin_write`] takes it and runs `BEGIN IMMEDIATE`;
//!   [`WriteTxn::commit`] runs `COMMIT` on the blocking pool (and, with
//!   `pipelined_sync`, waits for the WAL sync, which
//!   [`WriteTxn::commit_pipelined`] does not).
//! * **Read pool.** `read_pool_size` read-only connections. A snapshot
//!   borrows one for its whole life and holds a WAL read transaction on it;
//!   when all are borrowed, new snapshots wait. Reads run synchronously on the
//!   calling task (microseconds; no thread hop).
//! * **Checkpoints.** A background thread copies the WAL back into the
//!   database file (PASSIVE, never blocking anyone) and, once the WAL passes
//!   256 MiB, restarts it: it closes the read pool's gate, waits for the read
//!   transactions in flight, and only then takes the write lock for the
//!   short RESTART (see the `checkpoint` and `gate` modules).
//! * **Durability.** By default a commit that returned `Ok` survives
//!   `kill -9` and power loss: the writer runs `synchronous=NORMAL` and a
//!   syncer thread fdatasyncs the WAL after each `COMMIT` (`pipelined_sync`),
//!   so that the writer goes on writing meanwhile; snapshots may then show a
//!   commit before its sync, and the engine holds back what was read from it
//!   until then (the `durability` module). Without `pipelined_sync`,
//!   `synchronous=FULL` syncs inside `COMMIT`. `synchronous_full: false` uses `NORMAL`, which
//!   survives a process crash but may lose the last commits on power loss,
//!   in exchange for no fsyncs per commit.
//! * **Schema** versioned with `PRAGMA user_version`; see the `schema` module.
//!
//! Modules: `conn` (connection setup, conversions), `durability` (the WAL
//! syncer and the reads' wait for it), `lock` (data-directory
//! lock), `schema` (tables and migrations), `pool` (read pool), `gate` (the
//! pool's reader gate), `checkpoint` (background checkpoints), `read` (read
//! queries), `snapshot` (read snapshots), `write` (writer and write
//! transactions).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use errors::{Error, Result};
use persistence::{CommitLogEntry, IndexMeta, Persistence, Snapshot, Timestamp, WriteTxn};
use tokio::sync::Mutex;

mod checkpoint;
mod conn;
mod durability;
mod gate;
mod lock;
mod pool;
mod read;
mod schema;
mod snapshot;
mod write;

use crate::durability::{Durability, Syncer};
use crate::lock::DirLock;
use crate::pool::ReadPool;
use crate::snapshot::SqliteSnapshot;
use crate::write::{SqliteWriteTxn, Writer};

/// The database file inside the data directory.
pub const DB_FILE_NAME: &str = "connvo.db";

/// The lock file inside the data directory.
pub const LOCK_FILE_NAME: &str = "connvo.lock";

/// Tuning knobs of [`SqlitePersistence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Number of read connections (at least 1), i.e. how many snapshots can
    /// be open at once. Default 16.
    pub read_pool_size: usize,
    /// `synchronous=FULL` (durable against power loss) when `true`, the
    /// default; `synchronous=NORMAL` (durable against process crashes only)
    /// when `false`.
    pub synchronous_full: bool,
    /// With `synchronous_full`: sync the WAL from a thread of its own, so
    /// the writer commits the next group while the last one syncs (the
    /// `durability` module). On by default: as durable as syncing inside
    /// `COMMIT`, and it shortens the commit tail under heavy batched ingest
    /// (20,000 writes/s: p99 ~34 → ~21 ms). Snapshots may then show a commit
    /// before its sync (`Persistence::reads_precede_durability`); the
    /// engine holds a query result back only until the commits that wrote
    /// into what it read are synced (`Database::settle_read`), which at
    /// 1,000 small commits/s costs ~1 ms of delivery p95 (0.3 → ~1.2 ms).
    pub pipelined_sync: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            read_pool_size: 16,
            synchronous_full: true,
            pipelined_sync: true,
        }
    }
}

/// A [`Persistence`] backed by one SQLite database in a data directory.
pub struct SqlitePersistence {
    /// Stopped first, so the writer still closes last.
    _checkpointer: Option<checkpoint::Checkpointer>,
    /// Dropped before `writer`: read-only connections cannot checkpoint, so
    /// the writer closing last is what folds the WAL back into the database.
    readers: Arc<ReadPool>,
    /// The WAL syncer's state (`latest_ts` and `commits_after` wait on it).
    durability: Arc<Durability>,
    writer: Arc<Mutex<Writer>>,
    db_path: PathBuf,
    options: SqliteOptions,
}

impl fmt::Debug for SqlitePersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlitePersistence")
            .field("db_path", &self.db_path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SqlitePersistence {
    /// Opens (creating if needed) the store in `dir`: creates the directory,
    /// takes the data-directory lock, opens `connvo.db` in WAL mode, creates
    /// or migrates the schema and opens the read pool.
    ///
    /// Fails — with a message naming the lock file — if another live store
    /// (in this or another process) holds the directory. This function does
    /// blocking file I/O; call it at startup or from a blocking context.
    pub fn open(dir: &Path, options: SqliteOptions) -> Result<Arc<Self>> {
        if options.read_pool_size == 0 {
            return Err(Error::internal("sqlite: read_pool_size must be at least 1"));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::internal(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let lock = Arc::new(DirLock::acquire(&dir.join(LOCK_FILE_NAME))?);
        let db_path = dir.join(DB_FILE_NAME);
        let mut conn = conn::open_writer(&db_path, &options)?;
        schema::migrate(&mut conn)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| Error::internal(format!("sqlite: set wal_autocheckpoint: {e}")))?;
        conn::count_wal_frames(&mut conn)?;
        // The migration committed with the chosen `synchronous`; from now on
        // a pipelined store's commits are synced by the syncer instead.
        let pipelined = options.synchronous_full && options.pipelined_sync;
        let durability = Durability::new(pipelined);
        let syncer = if pipelined {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| Error::internal(format!("sqlite: set synchronous: {e}")))?;
            Some(Syncer::start(&db_path, Arc::clone(&durability))?)
        } else {
            None
        };
        let readers = Arc::new(ReadPool::open(
            db_path.clone(),
            options.read_pool_size,
            Arc::clone(&lock),
        )?);
        tracing::debug!(path = %db_path.display(), lock = %lock.path().display(), "sqlite store opened");
        let writer = Arc::new(Mutex::new(Writer::new(
            conn,
            lock,
            Arc::clone(&durability),
            syncer,
        )));
        let checkpointer = checkpoint::Checkpointer::start(
            db_path.clone(),
            checkpoint::Coordination {
                gate: Arc::clone(readers.gate()),
                writer: Arc::clone(&writer),
            },
        );
        Ok(Arc::new(Self {
            _checkpointer: checkpointer,
            durability,
            writer,
            readers,
            db_path,
            options,
        }))
    }

    /// The path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.options
    }
}

#[async_trait]
impl Persistence for SqlitePersistence {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn snapshot(&self) -> Result<Arc<dyn Snapshot>> {
        Ok(Arc::new(
            SqliteSnapshot::open(&self.readers, &self.durability).await?,
        ))
    }

    fn reads_precede_durability(&self) -> bool {
        self.durability.is_synced()
    }

    async fn begin_write(&self) -> Result<Box<dyn WriteTxn>> {
        Ok(Box::new(SqliteWriteTxn::begin(&self.writer).await?))
    }

    async fn latest_ts(&self) -> Result<Timestamp> {
        let ts = {
            let pooled = self.readers.checkout().await?;
            read::max_ts(pooled.conn()?)?
        };
        self.durability.wait_visible().await?;
        Ok(ts)
    }

    async fn commits_after(&self, after: Timestamp, limit: usize) -> Result<Vec<CommitLogEntry>> {
        let entries = {
            let pooled = self.readers.checkout().await?;
            read::commits_after(pooled.conn()?, after, limit)?
        };
        self.durability.wait_visible().await?;
        Ok(entries)
    }

    async fn prune_commit_log(&self, before: Timestamp) -> Result<u64> {
        let writer = Arc::clone(&self.writer).lock_owned().await;
        // A COMMIT writes the WAL: run it on the blocking pool like the
        // engine's commits.
        let (deleted, seq) =
            tokio::task::spawn_blocking(move || write::prune_commit_log(&writer, before))
                .await
                .map_err(|e| Error::internal(format!("sqlite: prune task failed: {e}")))??;
        self.durability.wait(seq).await?;
        Ok(deleted)
    }

    async fn commit_log_floor(&self) -> Result<Timestamp> {
        let pooled = self.readers.checkout().await?;
        read::log_floor(pooled.conn()?)
    }

    async fn index_metadata(&self) -> Result<Vec<IndexMeta>> {
        let pooled = self.readers.checkout().await?;
        read::index_metadata(pooled.conn()?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use persistence::{CommitRecord, DocumentWrite, TableNumber};

    use super::*;

    fn pipelined() -> SqliteOptions {
        SqliteOptions {
            pipelined_sync: true,
            ..SqliteOptions::default()
        }
    }

    fn record(ts: u64) -> CommitRecord {
        CommitRecord {
            ts: Timestamp(ts),
            documents: vec![DocumentWrite {
                id: ts.to_be_bytes().to_vec(),
                table: TableNumber(1),
                json: Some(format!("{{\"n\":{ts}}}")),
            }],
            index_writes: Vec::new(),
            log: Vec::new(),
        }
    }

    /// A pipelined commit releases the writer before its WAL sync; a
    /// snapshot may then show it (the store says so, and the engine holds
    /// back what is read until the sync), `latest_ts` does not.
    #[tokio::test]
    async fn latest_ts_waits_for_the_wal_sync_and_snapshots_say_they_may_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlitePersistence::open(dir.path(), pipelined()).unwrap();
        assert!(store.reads_precede_durability());
        store.durability.hold_syncer(true);
        let mut w = store.begin_write().await.unwrap();
        w.write(&record(1)).await.unwrap();
        let durable = w.commit_pipelined().await.unwrap();
        assert!(!durable.is_done());

        let p: Arc<dyn Persistence> = store.clone();
        let latest = tokio::spawn({
            let p = Arc::clone(&p);
            async move { p.latest_ts().await }
        });
        // The next writer does not wait, and sees the commit.
        let mut next = store.begin_write().await.unwrap();
        assert_eq!(next.latest_ts().await.unwrap(), Timestamp(1));
        next.write(&record(2)).await.unwrap();
        let second = next.commit_pipelined().await.unwrap();
        assert_eq!(p.snapshot().await.unwrap().ts(), Timestamp(2));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!latest.is_finished(), "latest_ts saw an un-synced commit");

        store.durability.hold_syncer(false);
        durable.wait().await.unwrap();
        second.wait().await.unwrap();
        assert!(latest.await.unwrap().unwrap() >= Timestamp(1));
    }

    /// `commit` returns only once the WAL is synced.
    #[tokio::test]
    async fn commit_waits_for_the_wal_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlitePersistence::open(dir.path(), pipelined()).unwrap();
        store.durability.hold_syncer(true);
        let mut w = store.begin_write().await.unwrap();
        w.write(&record(1)).await.unwrap();
        let commit = tokio::spawn(w.commit());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!commit.is_finished(), "commit returned before the sync");
        store.durability.hold_syncer(false);
        commit.await.unwrap().unwrap();
    }

    /// Without `pipelined_sync` (FULL or NORMAL) a commit is done when
    /// `COMMIT` returns, and readers never wait for one.
    #[tokio::test]
    async fn without_pipelining_there_is_no_sync_to_wait_for() {
        for synchronous_full in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let options = SqliteOptions {
                synchronous_full,
                pipelined_sync: false,
                ..SqliteOptions::default()
            };
            let store = SqlitePersistence::open(dir.path(), options).unwrap();
            assert!(!store.reads_precede_durability());
            store.durability.hold_syncer(true);
            let mut w = store.begin_write().await.unwrap();
            w.write(&record(1)).await.unwrap();
            w.commit().await.unwrap();
            let mut w = store.begin_write().await.unwrap();
            w.write(&record(2)).await.unwrap();
            assert!(w.commit_pipelined().await.unwrap().is_done());
            // A commit in progress does not hold `latest_ts` up either (with
            // the syncer it would wait for that commit's sync).
            let _taken = store.durability.begin_commit();
            let latest = tokio::time::timeout(Duration::from_secs(5), store.latest_ts())
                .await
                .expect("latest_ts waited for a commit in progress")
                .unwrap();
            assert_eq!(latest, Timestamp(2));
        }
    }
}
