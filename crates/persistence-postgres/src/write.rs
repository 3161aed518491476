//! Write transactions.
//!
//! # Locking
//! Two locks make a writer exclusive:
//! * **In this process**, the write pool has exactly one connection; holding
//!   it is the node-local write lock (waiters queue in the pool, not on the
//!   server, so a node never parks more than one connection on the lock).
//! * **Across nodes**, [`PgWriteTxn::begin`] runs `pg_advisory_xact_lock`
//!   on a key derived from the schema. PostgreSQL releases it when the
//!   transaction ends — on `COMMIT`, `ROLLBACK`, or when the connection dies
//!   (a killed node cannot keep the lock). `lock_timeout` bounds the wait for
//!   a lock held by a hung node and `idle_in_transaction_session_timeout`
//!   makes the server abort a write transaction whose node stopped talking.
//!
//! The transaction runs at `READ COMMITTED`, so every statement after the
//! lock sees every commit made before it: `max_ts` (read in the same round
//! trip as `BEGIN` and the lock) and [`WriteTxn::commits_after`] include
//! other nodes' commits. Commit order equals lock order equals timestamp
//! order, because a writer only picks timestamps above `max_ts` under the
//! lock.
//!
//! # Batching
//! [`WriteTxn::write`] only validates the record and merges it into a
//! pending batch: per document id and per `(index, key)` the last write wins,
//! which is what applying the records in order would leave behind. The batch
//! becomes one statement (data-modifying CTEs over `UNNEST`ed arrays: delete
//! documents, upsert documents, delete entries, upsert entries, append the
//! commit-log rows, set `max_ts`), split into chunks of [`CHUNK_ROWS`] rows
//! for very large batches. [`WriteTxn::commit`] pipelines that statement with
//! `COMMIT`, so a group commit of any number of records costs two round trips
//! in total (`BEGIN`+lock+`max_ts`, then batch+`COMMIT`) plus the server's
//! WAL flush. Reads inside the transaction ([`WriteTxn::commits_after`]) and
//! [`WriteTxn::clear_index`] / [`WriteTxn::put_index_meta`] flush the batch
//! first, so they observe and order against earlier writes.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use errors::{Error, ErrorCode, Result};
use persistence::{CommitLogEntry, CommitRecord, IndexId, IndexMeta, Timestamp, WriteTxn};
use tokio_postgres::Statement;
use tokio_postgres::error::SqlState;

use crate::conn::{
    ConnState, PgContext, TxnConn, checkout, describe, last_i64, ts_from_sql, ts_to_sql,
};
use crate::connect::Endpoint;
use crate::read;
use crate::schema::Sql;

/// Most rows of one kind (document deletes, document upserts, …) sent in one
/// statement; larger batches (an index rebuild) are split.
pub(crate) const CHUNK_ROWS: usize = 10_000;

/// The merged, not yet sent writes of a transaction.
#[derive(Default)]
struct Batch {
    /// Document id → `(table, ts, json)`, or `None` to delete.
    docs: HashMap<Vec<u8>, Option<(i64, i64, String)>>,
    /// `(index, key)` → document id, or `None` to delete.
    entries: HashMap<(i64, Vec<u8>), Option<Vec<u8>>>,
    /// Commit-log rows, ascending.
    log_ts: Vec<i64>,
    logs: Vec<Vec<u8>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        // Every record appends a commit-log row.
        self.log_ts.is_empty()
    }

    /// Merges `record` (already validated; `ts` is its stored timestamp).
    fn add(&mut self, record: &CommitRecord, ts: i64) {
        for doc in &record.documents {
            let value = doc
                .json
                .as_ref()
                .map(|json| (i64::from(doc.table.0), ts, json.clone()));
            self.docs.insert(doc.id.clone(), value);
        }
        for write in &record.index_writes {
            self.entries.insert(
                (i64::from(write.index.0), write.key.clone()),
                write.doc_id.clone(),
            );
        }
        self.log_ts.push(ts);
        self.logs.push(record.log.clone());
    }

    /// Turns the batch into statement parameters and empties it.
    fn take(&mut self) -> Option<BatchParams> {
        if self.is_empty() {
            return None;
        }
        let batch = std::mem::take(self);
        let mut p = BatchParams {
            max_ts: batch.log_ts.last().copied().unwrap_or_default(),
            log_ts: batch.log_ts,
            logs: batch.logs,
            ..BatchParams::default()
        };
        for (id, value) in batch.docs {
            match value {
                Some((table, ts, json)) => {
                    p.put_ids.push(id);
                    p.put_tables.push(table);
                    p.put_ts.push(ts);
                    p.put_json.push(json);
                }
                None => p.del_docs.push(id),
            }
        }
        for ((index, key), doc_id) in batch.entries {
            match doc_id {
                Some(doc_id) => {
                    p.put_idx.push(index);
                    p.put_keys.push(key);
                    p.put_doc_ids.push(doc_id);
                }
                None => {
                    p.del_idx.push(index);
                    p.del_keys.push(key);
                }
            }
        }
        Some(p)
    }
}

/// The parameters of `Sql::write_batch`, as column arrays.
#[derive(Default)]
struct BatchParams {
    del_docs: Vec<Vec<u8>>,
    put_ids: Vec<Vec<u8>>,
    put_tables: Vec<i64>,
    put_ts: Vec<i64>,
    put_json: Vec<String>,
    del_idx: Vec<i64>,
    del_keys: Vec<Vec<u8>>,
    put_idx: Vec<i64>,
    put_keys: Vec<Vec<u8>>,
    put_doc_ids: Vec<Vec<u8>>,
    log_ts: Vec<i64>,
    logs: Vec<Vec<u8>>,
    max_ts: i64,
}

impl BatchParams {
    /// How many statements the batch needs.
    fn chunks(&self) -> usize {
        let longest = [
            self.del_docs.len(),
            self.put_ids.len(),
            self.del_idx.len(),
            self.put_idx.len(),
            self.log_ts.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        longest.div_ceil(CHUNK_ROWS).max(1)
    }
}

/// Rows `[i * CHUNK_ROWS, (i + 1) * CHUNK_ROWS)` of `v` (possibly empty).
fn chunk<T>(v: &[T], i: usize) -> &[T] {
    let start = i.saturating_mul(CHUNK_ROWS).min(v.len());
    let end = start.saturating_add(CHUNK_ROWS).min(v.len());
    &v[start..end]
}

/// Sends chunk `i` of the batch. The keys of one batch are distinct, so the
/// chunks are independent and may run in any order; each sets `max_ts` to
/// the batch's newest timestamp.
async fn execute_chunk(
    client: &tokio_postgres::Client,
    stmt: &Statement,
    p: &BatchParams,
    i: usize,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let del_docs = chunk(&p.del_docs, i);
    let put_ids = chunk(&p.put_ids, i);
    let put_tables = chunk(&p.put_tables, i);
    let put_ts = chunk(&p.put_ts, i);
    let put_json = chunk(&p.put_json, i);
    let del_idx = chunk(&p.del_idx, i);
    let del_keys = chunk(&p.del_keys, i);
    let put_idx = chunk(&p.put_idx, i);
    let put_keys = chunk(&p.put_keys, i);
    let put_doc_ids = chunk(&p.put_doc_ids, i);
    let log_ts = chunk(&p.log_ts, i);
    let logs = chunk(&p.logs, i);
    client
        .execute(
            stmt,
            &[
                &del_docs,
                &put_ids,
                &put_tables,
                &put_ts,
                &put_json,
                &del_idx,
                &del_keys,
                &put_idx,
                &put_keys,
                &put_doc_ids,
                &log_ts,
                &logs,
                &p.max_ts,
            ],
        )
        .await
}

/// An open write transaction holding the write lock.
pub(crate) struct PgWriteTxn {
    conn: TxnConn,
    sql: Arc<Sql>,
    /// The newest timestamp committed or written in this transaction.
    latest: Timestamp,
    pending: Batch,
}

impl PgWriteTxn {
    /// Takes the node-local lock (the write pool's only connection), then
    /// begins a transaction, takes the advisory write lock and reads
    /// `max_ts`, in one round trip.
    pub(crate) async fn begin(pool: &Pool, endpoint: &Endpoint, sql: &Arc<Sql>) -> Result<Self> {
        let mut conn = TxnConn::new(checkout(pool, endpoint).await?);
        conn.set_state(ConnState::InTransaction);
        let messages = conn
            .client()?
            .simple_query(&sql.begin_write)
            .await
            .map_err(|e| begin_error(&e, &sql.schema))?;
        let latest = ts_from_sql(last_i64(&messages, "begin write transaction")?)?;
        Ok(Self {
            conn,
            sql: Arc::clone(sql),
            latest,
            pending: Batch::default(),
        })
    }

    /// Sends the pending batch, if any.
    async fn flush(&mut self) -> Result<()> {
        let Some(params) = self.pending.take() else {
            return Ok(());
        };
        let client = self.conn.client()?;
        let stmt = client
            .prepare_cached(&self.sql.write_batch)
            .await
            .context("prepare write")?;
        let results = futures::future::join_all(
            (0..params.chunks()).map(|i| execute_chunk(client, &stmt, &params, i)),
        )
        .await;
        for result in results {
            result.map_err(write_error)?;
        }
        Ok(())
    }
}

/// The error of a failed `begin_write`: a lock timeout is a `TIMEOUT`.
fn begin_error(e: &tokio_postgres::Error, schema: &str) -> Error {
    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        return Error::new(
            ErrorCode::Timeout,
            format!(
                "postgres: timed out waiting for the write lock of schema {schema:?} (another \
                 node's write transaction holds it; see PostgresOptions::write_lock_timeout): {}",
                describe(e)
            ),
        );
    }
    Error::internal(format!(
        "postgres: begin write transaction: {}",
        describe(e)
    ))
}

/// The error of a failed batch statement.
fn write_error(e: tokio_postgres::Error) -> Error {
    let hint = if e.code() == Some(&SqlState::PROGRAM_LIMIT_EXCEEDED) {
        " (a PostgreSQL size limit: a B-tree entry — index key or document id — holds at \
         most about 2.7 KB after compression)"
    } else {
        ""
    };
    Error::internal(format!("postgres: write records: {}{hint}", describe(&e)))
}

#[async_trait]
impl WriteTxn for PgWriteTxn {
    async fn latest_ts(&mut self) -> Result<Timestamp> {
        Ok(self.latest)
    }

    async fn commits_after(&mut self, after: Timestamp) -> Result<Vec<CommitLogEntry>> {
        self.flush().await?;
        read::commits_after(self.conn.client()?, &self.sql, after, usize::MAX).await
    }

    async fn write(&mut self, record: &CommitRecord) -> Result<()> {
        if record.ts <= self.latest {
            return Err(Error::internal(format!(
                "postgres: commit timestamp {} does not exceed the latest timestamp {}",
                record.ts.0, self.latest.0
            )));
        }
        let ts = ts_to_sql(record.ts)?;
        self.pending.add(record, ts);
        self.latest = record.ts;
        Ok(())
    }

    async fn clear_index(&mut self, index: IndexId) -> Result<()> {
        self.flush().await?;
        let client = self.conn.client()?;
        let stmt = client
            .prepare_cached(&self.sql.clear_index)
            .await
            .context("prepare clear_index")?;
        client
            .execute(&stmt, &[&i64::from(index.0)])
            .await
            .context("clear index")?;
        Ok(())
    }

    async fn drop_index(&mut self, index: IndexId) -> Result<()> {
        self.flush().await?;
        let client = self.conn.client()?;
        for (sql, what) in [
            (&self.sql.clear_index, "drop index entries"),
            (&self.sql.delete_index_meta, "drop index metadata"),
        ] {
            let stmt = client.prepare_cached(sql).await.context(what)?;
            client
                .execute(&stmt, &[&i64::from(index.0)])
                .await
                .context(what)?;
        }
        Ok(())
    }

    async fn put_index_meta(&mut self, meta: &IndexMeta) -> Result<()> {
        self.flush().await?;
        let client = self.conn.client()?;
        let stmt = client
            .prepare_cached(&self.sql.put_index_meta)
            .await
            .context("prepare put_index_meta")?;
        client
            .execute(
                &stmt,
                &[
                    &i64::from(meta.index.0),
                    &i64::from(meta.table.0),
                    &meta.signature,
                ],
            )
            .await
            .context("put index metadata")?;
        Ok(())
    }

    /// Sends the pending batch and `COMMIT` pipelined (one round trip).
    ///
    /// If a batch statement fails, the server turns the `COMMIT` behind it
    /// into a rollback and the error is returned. If the `COMMIT` itself fails
    /// (for example the connection drops while it is in flight), the outcome
    /// is unknown to this node — the commit may be durable — and the
    /// connection is closed rather than reused; another node (or this one,
    /// at its next `begin_write`) sees such a commit in the commit log. If the
    /// caller's future is dropped mid-commit, the `ROLLBACK` sent afterwards
    /// arrives after the `COMMIT` and has no effect.
    async fn commit(mut self: Box<Self>) -> Result<()> {
        let params = self.pending.take();
        let client = self.conn.client()?;
        let stmt = match params {
            Some(_) => Some(
                client
                    .prepare_cached(&self.sql.write_batch)
                    .await
                    .context("prepare write")?,
            ),
            None => None,
        };
        let writes = async {
            let (Some(params), Some(stmt)) = (&params, &stmt) else {
                return Vec::new();
            };
            futures::future::join_all(
                (0..params.chunks()).map(|i| execute_chunk(client, stmt, params, i)),
            )
            .await
        };
        let (written, committed) = futures::join!(writes, client.batch_execute("COMMIT"));
        for result in written {
            result.map_err(write_error)?;
        }
        match committed {
            Ok(()) => {
                self.conn.set_state(ConnState::Idle);
                Ok(())
            }
            Err(e) => {
                self.conn.set_state(ConnState::Broken);
                Err(Error::internal(format!(
                    "postgres: COMMIT failed (the outcome is unknown): {}",
                    describe(&e)
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use persistence::{DocumentWrite, IndexWrite, TableNumber};

    use super::*;

    fn record(
        ts: u64,
        documents: Vec<DocumentWrite>,
        index_writes: Vec<IndexWrite>,
    ) -> CommitRecord {
        CommitRecord {
            ts: Timestamp(ts),
            documents,
            index_writes,
            log: ts.to_string().into_bytes(),
        }
    }

    fn doc(id: &[u8], json: Option<&str>) -> DocumentWrite {
        DocumentWrite {
            id: id.to_vec(),
            table: TableNumber(1),
            json: json.map(str::to_owned),
        }
    }

    fn entry(key: &[u8], doc_id: Option<&[u8]>) -> IndexWrite {
        IndexWrite {
            index: IndexId(3),
            key: key.to_vec(),
            doc_id: doc_id.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn batches_merge_last_write_wins() {
        let mut batch = Batch::default();
        assert!(batch.take().is_none());
        batch.add(
            &record(
                1,
                vec![doc(b"a", Some("1")), doc(b"b", Some("1")), doc(b"a", None)],
                vec![
                    entry(b"k", Some(b"a")),
                    entry(b"k", None),
                    entry(b"j", None),
                ],
            ),
            1,
        );
        batch.add(
            &record(
                2,
                vec![doc(b"b", None), doc(b"a", Some("2"))],
                vec![entry(b"j", Some(b"b"))],
            ),
            2,
        );
        let p = batch.take().expect("params");
        assert!(batch.is_empty());
        assert_eq!(p.put_ids, vec![b"a".to_vec()]);
        assert_eq!((p.put_ts[0], p.put_json[0].as_str()), (2, "2"));
        assert_eq!(p.del_docs, vec![b"b".to_vec()]);
        assert_eq!(p.put_keys, vec![b"j".to_vec()]);
        assert_eq!(p.put_doc_ids, vec![b"b".to_vec()]);
        assert_eq!(p.del_keys, vec![b"k".to_vec()]);
        assert_eq!(p.log_ts, vec![1, 2]);
        assert_eq!(p.max_ts, 2);
        assert_eq!(p.chunks(), 1);
    }

    #[test]
    fn large_batches_are_chunked() {
        let p = BatchParams {
            put_idx: vec![0; CHUNK_ROWS * 2 + 1],
            log_ts: vec![1],
            ..BatchParams::default()
        };
        assert_eq!(p.chunks(), 3);
        assert_eq!(chunk(&p.put_idx, 0).len(), CHUNK_ROWS);
        assert_eq!(chunk(&p.put_idx, 2).len(), 1);
        assert_eq!(chunk(&p.log_ts, 0).len(), 1);
        assert!(chunk(&p.log_ts, 1).is_empty());
        assert!(chunk(&p.log_ts, 2).is_empty());
    }
}
