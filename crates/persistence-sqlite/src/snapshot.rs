//! Read snapshots: one pooled connection holding one WAL read transaction.
//!
//! Opening a snapshot runs `BEGIN` (deferred) and then reads `max_ts`; that
//! first statement is what makes SQLite pin the WAL read mark, so every later
//! read on the connection sees exactly the commit `max_ts` belongs to (with
//! the WAL syncer, possibly before that commit is synced; the engine waits
//! for it before anything read here leaves the server). The
//! transaction ends (and the connection returns to the pool) when the last
//! `Arc` of the snapshot drops. Long-lived snapshots keep the WAL from being
//! checkpointed past their read mark, so callers should not hoard them.
//!
//! Reads run synchronously on the calling task: an indexed point or range
//! read on a warm page cache takes microseconds, less than the round trip of
//! a `spawn_blocking` hop, so the read path has no thread handoff. The
//! connection sits behind a `std::sync::Mutex` so the `&self` methods can use
//! it; the guard is never held across an `.await` (the methods do not await).

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use errors::{Error, Result};
use persistence::{
    IndexId, IndexRow, KeyRange, Order, Snapshot, StoredDocument, TableNumber, Timestamp,
};
use rusqlite::Connection;

use crate::conn::SqlContext;
use crate::durability::Durability;
use crate::pool::{PooledConn, ReadPool};
use crate::read;

/// A consistent read view at [`Snapshot::ts`].
pub(crate) struct SqliteSnapshot {
    ts: Timestamp,
    conn: Mutex<PooledConn>,
}

impl SqliteSnapshot {
    /// Borrows a read connection (waiting if the pool is exhausted) and
    /// starts its read transaction (refused once a WAL sync failed).
    pub(crate) async fn open(pool: &Arc<ReadPool>, durability: &Durability) -> Result<Self> {
        let pooled = pool.checkout().await?;
        let ts = {
            let conn = pooled.conn()?;
            conn.prepare_cached("BEGIN")
                .and_then(|mut s| s.execute([]))
                .context("BEGIN")?;
            // If this fails, dropping `pooled` rolls the transaction back.
            read::max_ts(conn)?
        };
        // With the syncer the snapshot may show commits not yet synced
        // (`Persistence::reads_precede_durability`): the engine holds back
        // what is read here until they are. A failed store reads nothing.
        durability.check()?;
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
