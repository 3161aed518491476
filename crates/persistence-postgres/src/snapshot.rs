//! Read snapshots: one pooled connection holding one `REPEATABLE READ, READ
//! ONLY` transaction.
//!
//! Opening a snapshot sends `START TRANSACTION …; SELECT max_ts` as one
//! simple query (one round trip). Under `REPEATABLE READ` PostgreSQL takes
//! the transaction's snapshot at its first statement, the `SELECT`, so every
//! later read sees exactly the commits up to the returned `max_ts`.
//!
//! Why that is a *consistent prefix* of the commit order: write transactions
//! hold the advisory write lock until they end, and PostgreSQL releases a
//! transaction's locks only after it became visible. So commit *n + 1* cannot
//! even start before commit *n* is visible, and any snapshot that sees commit
//! *n + 1* sees every earlier one. (The same argument makes a commit-log tail
//! `ts > last_seen` from another node gap-free.)
//!
//! The transaction ends (and the connection returns to the pool) when the
//! last `Arc` of the snapshot drops, by a `ROLLBACK` sent on a background
//! task (see `conn::TxnConn`). A snapshot holds back vacuum while it is open,
//! so callers should not hoard them. Reads from several tasks on one snapshot
//! are pipelined on its connection.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use errors::Result;
use persistence::{
    IndexId, IndexRow, KeyRange, Order, Snapshot, StoredDocument, TableNumber, Timestamp,
};
use std::sync::Arc;

use crate::conn::{ConnState, PgContext, TxnConn, checkout, last_i64, ts_from_sql};
use crate::connect::Endpoint;
use crate::read;
use crate::schema::Sql;

/// A consistent read view at [`Snapshot::ts`].
pub(crate) struct PgSnapshot {
    ts: Timestamp,
    conn: TxnConn,
    sql: Arc<Sql>,
}

impl PgSnapshot {
    /// Checks out a read connection (waiting if the pool is exhausted) and
    /// starts its read transaction.
    pub(crate) async fn open(pool: &Pool, endpoint: &Endpoint, sql: &Arc<Sql>) -> Result<Self> {
        let mut conn = TxnConn::new(checkout(pool, endpoint).await?);
        conn.set_state(ConnState::InTransaction);
        let messages = conn
            .client()?
            .simple_query(&sql.begin_snapshot)
            .await
            .context("begin snapshot")?;
        // On error, dropping `conn` rolls the transaction back.
        let ts = ts_from_sql(last_i64(&messages, "begin snapshot")?)?;
        Ok(Self {
            ts,
            conn,
            sql: Arc::clone(sql),
        })
    }
}

#[async_trait]
impl Snapshot for PgSnapshot {
    fn ts(&self) -> Timestamp {
        self.ts
    }

    async fn get(&self, id: &[u8]) -> Result<Option<StoredDocument>> {
        read::get(self.conn.client()?, &self.sql, id).await
    }

    async fn index_scan(
        &self,
        index: IndexId,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<IndexRow>> {
        read::index_scan(self.conn.client()?, &self.sql, index, range, order, limit).await
    }

    async fn scan_table(
        &self,
        table: TableNumber,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<StoredDocument>> {
        read::scan_table(self.conn.client()?, &self.sql, table, after, limit).await
    }
}
