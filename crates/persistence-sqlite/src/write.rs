//! The single writer connection and write transactions.
//!
//! [`Writer`] is the only read-write connection; it lives behind a
//! `tokio::sync::Mutex`, which is the global write lock. A write transaction
//! owns the mutex guard (`lock_owned`, so the transaction is `Send` and
//! `'static`) and runs `BEGIN IMMEDIATE` on it. Dropping the transaction
//! without committing rolls it back and releases the lock.
//!
//! Statements inside the transaction (`write`, `clear_index`, …) run
//! synchronously on the calling task: they only touch the page cache and take
//! microseconds per row. `COMMIT` is different — it writes the WAL frames
//! (and, with `synchronous=NORMAL` chosen by the user, that is all; with the
//! default durability the `durability` module's syncer fsyncs them after) —
//! so it runs on tokio's blocking pool; see [`SqliteWriteTxn::commit`].

use std::sync::Arc;

use async_trait::async_trait;
use errors::{Error, Result};
use persistence::{CommitLogEntry, CommitRecord, Durable, IndexId, IndexMeta, Timestamp, WriteTxn};
use rusqlite::{Connection, params};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::conn::{SqlContext, rollback_if_open, ts_to_sql};
use crate::durability::{CommitSeq, Durability, Syncer};
use crate::lock::DirLock;
use crate::read;

// An update of a document in place leaves `table_num` out of its SET list:
// SQLite maintains an index on every UPDATE whose SET names one of its
// columns, whatever the value, so naming `table_num` deleted and re-inserted
// the document's `documents_by_table` entry on every update (~9 dirty pages
// per 100-chunk ingest: counters, rate limits, meeting state). A document
// moving to another table (the persistence contract allows it; the engine's
// ids never do) matches no row here and takes `MOVE_DOCUMENT`.
const UPSERT_DOCUMENT: &str = "INSERT INTO documents (id, table_num, ts, json) \
     VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (id) DO UPDATE SET ts = excluded.ts, json = excluded.json \
     WHERE table_num = excluded.table_num";
const MOVE_DOCUMENT: &str = "UPDATE documents SET table_num = ?2, ts = ?3, json = ?4 WHERE id = ?1";
const DELETE_DOCUMENT: &str = "DELETE FROM documents WHERE id = ?1";
const PUT_ENTRY: &str = "INSERT OR REPLACE INTO index_entries (index_id, key, doc_id) \
     VALUES (?1, ?2, ?3)";
const DELETE_ENTRY: &str = "DELETE FROM index_entries WHERE index_id = ?1 AND key = ?2";
const INSERT_LOG: &str = "INSERT INTO commit_log (ts, log) VALUES (?1, ?2)";
const SET_MAX_TS: &str = "UPDATE globals SET value = ?1 WHERE name = 'max_ts'";
const CLEAR_INDEX: &str = "DELETE FROM index_entries WHERE index_id = ?1";
const DELETE_INDEX_META: &str = "DELETE FROM index_meta WHERE index_id = ?1";
const PUT_INDEX_META: &str = "INSERT INTO index_meta (index_id, table_num, signature) \
     VALUES (?1, ?2, ?3) \
     ON CONFLICT (index_id) DO UPDATE SET \
     table_num = excluded.table_num, signature = excluded.signature";
const PRUNE_LOG: &str = "DELETE FROM commit_log WHERE ts < ?1";
const PRUNE_LOG_ALL: &str = "DELETE FROM commit_log";
/// Raises the commit log's floor (a `globals` row, absent until the first
/// prune, so no schema migration is needed).
const RAISE_FLOOR: &str = "INSERT INTO globals (name, value) VALUES ('log_floor', ?1) \
     ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)";

/// The writer connection.
pub(crate) struct Writer {
    /// Stopped (after a last sync) before the connection closes, which folds
    /// the WAL into the database and deletes it.
    _syncer: Option<Syncer>,
    /// Declared before `_lock`: the connection closes first.
    conn: Connection,
    durability: Arc<Durability>,
    _lock: Arc<DirLock>,
}

impl Writer {
    /// Wraps the (already migrated) writer connection; `syncer` syncs its
    /// commits when `durability` says they wait for it.
    pub(crate) fn new(
        conn: Connection,
        lock: Arc<DirLock>,
        durability: Arc<Durability>,
        syncer: Option<Syncer>,
    ) -> Self {
        Self {
            _syncer: syncer,
            conn,
            durability,
            _lock: lock,
        }
    }

    /// The connection, for tests that write outside a transaction.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Deletes commit-log entries with `ts < before`, as its own transaction on
/// the writer; returns the count and the commit's sequence number (durable
/// once [`Durability::wait`] says so). Blocking: call it on the blocking pool.
pub(crate) fn prune_commit_log(writer: &Writer, before: Timestamp) -> Result<(u64, CommitSeq)> {
    writer.durability.check()?;
    let conn = &writer.conn;
    rollback_if_open(conn)?;
    // The floor and the delete commit together.
    let tx = conn.unchecked_transaction().context("begin prune")?;
    let deleted = match i64::try_from(before.0) {
        Ok(before) => {
            tx.prepare_cached(RAISE_FLOOR)
                .and_then(|mut s| s.execute(params![before]))
                .context("raise commit-log floor")?;
            tx.prepare_cached(PRUNE_LOG)
                .and_then(|mut s| s.execute(params![before]))
                .context("prune commit log")?
        }
        // Every stored timestamp is below 2^63, so the floor saturates there.
        Err(_) => {
            tx.prepare_cached(RAISE_FLOOR)
                .and_then(|mut s| s.execute(params![i64::MAX]))
                .context("raise commit-log floor")?;
            tx.prepare_cached(PRUNE_LOG_ALL)
                .and_then(|mut s| s.execute([]))
                .context("prune commit log")?
        }
    };
    let seq = writer.durability.begin_commit();
    let committed = tx.commit().context("commit prune");
    writer.durability.finish_commit(seq);
    committed?;
    let deleted = u64::try_from(deleted)
        .map_err(|_| Error::internal("sqlite: deleted row count overflows"))?;
    Ok((deleted, seq))
}

/// An open `BEGIN IMMEDIATE` transaction on the writer connection.
pub(crate) struct SqliteWriteTxn {
    /// The write lock; `None` once committed.
    writer: Option<OwnedMutexGuard<Writer>>,
    /// The newest timestamp seen or written in this transaction (read lazily).
    latest: Option<Timestamp>,
}

impl SqliteWriteTxn {
    /// Takes the write lock (waiting for the current transaction to end) and
    /// begins an immediate transaction.
    pub(crate) async fn begin(writer: &Arc<Mutex<Writer>>) -> Result<Self> {
        let guard = Arc::clone(writer).lock_owned().await;
        guard.durability.check()?;
        // A previous transaction whose rollback failed may have left one open.
        rollback_if_open(&guard.conn)?;
        guard
            .conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .context("BEGIN IMMEDIATE")?;
        Ok(Self {
            writer: Some(guard),
            latest: None,
        })
    }

    fn conn(&self) -> Result<&Connection> {
        self.writer
            .as_ref()
            .map(|w| &w.conn)
            .ok_or_else(|| Error::internal("sqlite: write transaction already finished"))
    }

    fn current_latest(&mut self) -> Result<Timestamp> {
        if let Some(ts) = self.latest {
            return Ok(ts);
        }
        let ts = read::max_ts(self.conn()?)?;
        self.latest = Some(ts);
        Ok(ts)
    }
}

/// Length of a document id as the engine encodes it; every engine index key
/// ends with the id it points to (`values::keys::encode_id`).
pub(crate) const SUFFIX_ID_LEN: usize = 20;

/// What `index_entries.doc_id` stores for an entry: empty when the key ends
/// with the (20-byte) id, which the read joins take from the key instead
/// (`read::scan_sql`), else the id itself. Every engine entry takes the empty
/// form: ~20 bytes less per entry (about a fifth of an index cell), so fewer
/// B-tree pages are dirtied, written to the WAL and checkpointed per commit.
/// Rows written before this keep their id and read the same. Document ids
/// are never empty, so an empty `doc_id` is unambiguous.
pub(crate) fn stored_doc_id<'a>(key: &[u8], doc_id: &'a [u8]) -> &'a [u8] {
    if doc_id.len() == SUFFIX_ID_LEN && key.len() > SUFFIX_ID_LEN && key.ends_with(doc_id) {
        &[]
    } else {
        doc_id
    }
}

/// Applies one record's rows. On error the transaction is left partially
/// written; the caller drops it (rolls back).
fn apply(conn: &Connection, record: &CommitRecord) -> Result<()> {
    let ts = ts_to_sql(record.ts)?;
    if !record.documents.is_empty() {
        let mut upsert = conn
            .prepare_cached(UPSERT_DOCUMENT)
            .context("prepare upsert")?;
        let mut delete = conn
            .prepare_cached(DELETE_DOCUMENT)
            .context("prepare delete")?;
        for doc in &record.documents {
            match &doc.json {
                Some(json) => {
                    let params = params![doc.id, doc.table.0, ts, json];
                    let changed = upsert.execute(params).context("write document")?;
                    if changed == 0 {
                        conn.prepare_cached(MOVE_DOCUMENT)
                            .and_then(|mut s| s.execute(params))
                            .context("move document to another table")?;
                    }
                }
                None => {
                    delete.execute(params![doc.id]).context("delete document")?;
                }
            }
        }
    }
    if !record.index_writes.is_empty() {
        let mut put = conn
            .prepare_cached(PUT_ENTRY)
            .context("prepare index put")?;
        let mut delete = conn
            .prepare_cached(DELETE_ENTRY)
            .context("prepare index delete")?;
        for write in &record.index_writes {
            match &write.doc_id {
                Some(doc_id) => put.execute(params![
                    write.index.0,
                    write.key,
                    stored_doc_id(&write.key, doc_id)
                ]),
                None => delete.execute(params![write.index.0, write.key]),
            }
            .context("write index entry")?;
        }
    }
    conn.prepare_cached(INSERT_LOG)
        .and_then(|mut s| s.execute(params![ts, record.log]))
        .context("insert commit log entry")?;
    conn.prepare_cached(SET_MAX_TS)
        .and_then(|mut s| s.execute(params![ts]))
        .context("update max_ts")?;
    Ok(())
}

/// Runs `COMMIT` and releases the write lock (by dropping `writer`); returns
/// the commit's sequence number. On failure the transaction is rolled back
/// if SQLite left it open.
fn commit_blocking(writer: OwnedMutexGuard<Writer>) -> Result<CommitSeq> {
    let conn = &writer.conn;
    let seq = writer.durability.begin_commit();
    let result = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .context("COMMIT");
    if result.is_err()
        && let Err(e) = rollback_if_open(conn)
    {
        tracing::error!(error = %e, "sqlite: rollback after a failed COMMIT failed");
    }
    // Before the lock is released, so sequence numbers finish in order.
    writer.durability.finish_commit(seq);
    result.map(|()| seq)
}

#[async_trait]
impl WriteTxn for SqliteWriteTxn {
    async fn latest_ts(&mut self) -> Result<Timestamp> {
        self.current_latest()
    }

    async fn commits_after(&mut self, after: Timestamp) -> Result<Vec<CommitLogEntry>> {
        read::commits_after(self.conn()?, after, usize::MAX)
    }

    async fn write(&mut self, record: &CommitRecord) -> Result<()> {
        let latest = self.current_latest()?;
        if record.ts <= latest {
            return Err(Error::internal(format!(
                "sqlite: commit timestamp {} does not exceed the latest timestamp {}",
                record.ts.0, latest.0
            )));
        }
        apply(self.conn()?, record)?;
        self.latest = Some(record.ts);
        Ok(())
    }

    async fn clear_index(&mut self, index: IndexId) -> Result<()> {
        self.conn()?
            .prepare_cached(CLEAR_INDEX)
            .and_then(|mut s| s.execute(params![index.0]))
            .context("clear index")?;
        Ok(())
    }

    async fn put_index_meta(&mut self, meta: &IndexMeta) -> Result<()> {
        self.conn()?
            .prepare_cached(PUT_INDEX_META)
            .and_then(|mut s| s.execute(params![meta.index.0, meta.table.0, meta.signature]))
            .context("put index metadata")?;
        Ok(())
    }

    async fn drop_index(&mut self, index: IndexId) -> Result<()> {
        let conn = self.conn()?;
        for (sql, what) in [
            (CLEAR_INDEX, "drop index entries"),
            (DELETE_INDEX_META, "drop index metadata"),
        ] {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.execute(params![index.0]))
                .context(what)?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.commit_pipelined().await?.wait().await
    }

    /// Runs `COMMIT` on tokio's blocking pool (`spawn_blocking`), not with
    /// `block_in_place`, and returns without waiting for the WAL sync (see
    /// the `durability` module):
    /// * `block_in_place` panics on a current-thread runtime, which is what
    ///   `#[tokio::test]` and small embeddings use; `spawn_blocking` works on
    ///   every runtime flavour.
    /// * The hop costs tens of microseconds against a COMMIT that writes
    ///   hundreds of KiB of WAL frames (sometimes checkpoint-sized syncs:
    ///   the WAL header after a restart), and a group commit pays it once
    ///   per group.
    /// * The lock guard moves into the blocking task, so if the caller's
    ///   future is dropped mid-commit the COMMIT still finishes and only then
    ///   releases the write lock: the outcome is unknown to that caller, but
    ///   the next writer never sees a half-finished transaction.
    async fn commit_pipelined(mut self: Box<Self>) -> Result<Durable> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| Error::internal("sqlite: write transaction already finished"))?;
        let durability = Arc::clone(&writer.durability);
        let seq = tokio::task::spawn_blocking(move || commit_blocking(writer))
            .await
            .map_err(|e| Error::internal(format!("sqlite: commit task failed: {e}")))??;
        if !durability.is_synced() {
            // No syncer: as durable as it gets once COMMIT returned.
            return Ok(Durable::done());
        }
        Ok(Durable::pending(async move { durability.wait(seq).await }))
    }
}

impl Drop for SqliteWriteTxn {
    fn drop(&mut self) {
        // Not committed: roll back. ROLLBACK in WAL mode discards pages from
        // the cache without any fsync, so doing it inline is cheap.
        if let Some(writer) = self.writer.take()
            && let Err(e) = rollback_if_open(&writer.conn)
        {
            tracing::error!(error = %e, "sqlite: rollback of a dropped write transaction failed");
        }
    }
}
