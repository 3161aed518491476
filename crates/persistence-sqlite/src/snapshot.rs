//! Read snapshots: one pooled connection holding one WAL read transaction.
//!
//! Opening a snapshot runs `BEGIN` (deferred) and then reads `max_ts`; that
//! first statement is what makes SQLite pin the WAL read mark, so every later
//! read on the connection sees exactly the commit `max_ts` belongs to. The
//! transaction ends (and the connection returns to the pool) when the last
//! `Arc` of the snapshot drops. Long-lived snapshots keep the WAL from being
//! checkpointed past their read mark, so callers should not hoard them.
//!
//! Reads run synchronously on the calling task: an indexed point or range
//! read on a warm page cache takes microseconds, less than the round trip of
//! a `spawn_blocking` hop, so the read path has no thread handoff. The
//! connection sits behind a `std::sync::Mutex` so the `&self` methods can use
//! it; the guard is never held across an `.await` (the methods do not await).
//!
//! # Shared snapshots
//!
//! Opening a read transaction after another connection committed is not
//! cheap: SQLite re-reads the WAL index, drops the connection's page cache
//! and unmaps its whole memory map (`munmap`, with a TLB shoot-down on every
//! core), and the first reads then fault the pages back in. Profiled at
//! 1,000 commits/s with three subscribers per meeting, opening snapshots
//! was ~7% of server CPU, most of it in `munmap`. Yet between two commits
//! every new snapshot would see the same state. So [`SharedSnapshots`] keeps
//! the newest snapshot and hands it to every caller until the writer
//! commits again: the writer bumps a commit counter right after each
//! `COMMIT` (before the engine publishes it), and a snapshot is shared only
//! while the counter still reads what it read before the snapshot was
//! opened. A caller never gets a snapshot older than a commit it could have
//! heard of, and one shared snapshot is exactly as consistent as a private
//! one (it is read-only).
//!
//! The kept snapshot holds one pooled connection and a WAL read mark; it is
//! replaced by the first caller after the next commit, and dropped whenever
//! the reader gate closes (the checkpointer calls
//! [`SharedSnapshots::release`]) so that a WAL restart's drain never waits
//! for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use errors::{Error, Result};
use persistence::{
    IndexId, IndexRow, KeyRange, Order, Snapshot, StoredDocument, TableNumber, Timestamp,
};
use rusqlite::Connection;

use crate::conn::SqlContext;
use crate::pool::{PooledConn, ReadPool};
use crate::read;

/// A consistent read view at [`Snapshot::ts`].
pub(crate) struct SqliteSnapshot {
    ts: Timestamp,
    conn: Mutex<PooledConn>,
}

impl SqliteSnapshot {
    /// Borrows a read connection (waiting if the pool is exhausted) and starts
    /// its read transaction.
    pub(crate) async fn open(pool: &Arc<ReadPool>) -> Result<Self> {
        let pooled = pool.checkout().await?;
        let ts = {
            let conn = pooled.conn()?;
            conn.prepare_cached("BEGIN")
                .and_then(|mut s| s.execute([]))
                .context("BEGIN")?;
            // If this fails, dropping `pooled` rolls the transaction back.
            read::max_ts(conn)?
        };
        Ok(Self {
            ts,
            conn: Mutex::new(pooled),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, PooledConn>> {
        self.conn
            .lock()
            .map_err(|_| Error::internal("sqlite: snapshot connection poisoned by a panic"))
    }

    /// Runs `f` on the snapshot's connection.
    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let guard = self.lock()?;
        f(guard.conn()?)
    }
}

#[async_trait]
impl Snapshot for SqliteSnapshot {
    fn ts(&self) -> Timestamp {
        self.ts
    }

    async fn get(&self, id: &[u8]) -> Result<Option<StoredDocument>> {
        self.with_conn(|conn| read::get(conn, id))
    }

    async fn index_scan(
        &self,
        index: IndexId,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<IndexRow>> {
        self.with_conn(|conn| read::index_scan(conn, index, range, order, limit))
    }

    async fn scan_table(
        &self,
        table: TableNumber,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<StoredDocument>> {
        self.with_conn(|conn| read::scan_table(conn, table, after, limit))
    }
}

/// The newest snapshot, shared by every caller until the next commit (see
/// the module documentation).
pub(crate) struct SharedSnapshots {
    pool: Arc<ReadPool>,
    /// The writer's commit counter.
    commits: Arc<AtomicU64>,
    /// The kept snapshot and the counter value read before it was opened.
    kept: Mutex<Option<(u64, Arc<SqliteSnapshot>)>>,
}

impl SharedSnapshots {
    /// Shares snapshots of `pool`, current while `commits` does not move.
    pub(crate) fn new(pool: Arc<ReadPool>, commits: Arc<AtomicU64>) -> Self {
        Self {
            pool,
            commits,
            kept: Mutex::new(None),
        }
    }

    fn kept(&self) -> MutexGuard<'_, Option<(u64, Arc<SqliteSnapshot>)>> {
        // The guarded value is a plain slot: a panic elsewhere leaves it valid.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot that sees every commit made before this call.
    pub(crate) async fn get(&self) -> Result<Arc<SqliteSnapshot>> {
        let count = self.commits.load(Ordering::SeqCst);
        let stale = {
            let mut kept = self.kept();
            match &*kept {
                Some((at, snapshot)) if *at == count && !self.pool.gate().is_closed() => {
                    return Ok(Arc::clone(snapshot));
                }
                // Released before opening a new one: with a small pool the
                // kept snapshot may hold the connection the new one needs.
                Some(_) => kept.take(),
                None => None,
            }
        };
        // Outside the lock: the last reference ends the read transaction.
        drop(stale);
        let snapshot = Arc::new(SqliteSnapshot::open(&self.pool).await?);
        let replaced = {
            let mut kept = self.kept();
            match &*kept {
                // Someone kept a newer one meanwhile.
                Some((at, _)) if *at > count => None,
                _ => kept.replace((count, Arc::clone(&snapshot))),
            }
        };
        drop(replaced);
        // Sequentially consistent with `ReaderGate::close` followed by
        // `release`: either the checkpointer's release saw this snapshot
        // kept, or this check sees the gate closed.
        if self.pool.gate().is_closed() {
            self.release();
        }
        Ok(snapshot)
    }

    /// Drops the kept snapshot (callers holding it keep theirs).
    pub(crate) fn release(&self) {
        let kept = self.kept().take();
        drop(kept);
    }
}
