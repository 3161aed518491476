//! The persistence boundary of Connvo Server.
//!
//! The engine (`database` crate) stores *documents* and *index entries* through
//! the [`Persistence`] trait. A backend knows nothing about Convex values,
//! schemas or subscriptions: documents are opaque JSON strings keyed by opaque
//! id bytes, index entries are `(index id, key bytes) -> document id` rows whose
//! keys compare bytewise (memcmp order), and the commit log is a list of
//! `(timestamp, opaque bytes)` rows.
//!
//! # Model
//!
//! * **Latest state plus a commit log.** Backends keep only the latest version
//!   of each document. Consistent reads come from the backend's own snapshot
//!   isolation ([`Persistence::snapshot`] opens a read transaction whose
//!   [`Snapshot::ts`] is the timestamp of the newest commit it can see).
//! * **One writer at a time.** [`Persistence::begin_write`] takes the global
//!   write lock (SQLite: `BEGIN IMMEDIATE` on the single writer connection;
//!   PostgreSQL: a transaction-scoped advisory lock). Inside it the engine reads
//!   [`WriteTxn::latest_ts`] and any commits made by *other nodes*
//!   ([`WriteTxn::commits_after`]) to validate optimistic transactions, then
//!   writes one or more [`CommitRecord`]s and makes them durable with
//!   [`WriteTxn::commit`]. Grouping several records in one write transaction is
//!   how the engine amortises fsyncs (group commit).
//! * **Commit log.** Every [`CommitRecord`] carries an opaque `log` payload (the
//!   engine's write set). Other nodes tail it with [`Persistence::commits_after`]
//!   to invalidate their subscriptions.
//!
//! Every backend must pass the suite in `testing` (feature `testing`).
//!
//! # Layout
//! * [`Persistence`], [`Snapshot`], [`WriteTxn`] — the traits; [`Durable`],
//!   the pending durability of a pipelined commit.
//! * Plain data types: [`Timestamp`], [`TableNumber`], [`IndexId`],
//!   [`StoredDocument`], [`IndexRow`], [`KeyRange`], [`CommitRecord`], …
//! * `testing` — the conformance suite.

use std::sync::Arc;

use async_trait::async_trait;
pub use errors::{Error, Result};

#[cfg(feature = "testing")]
pub mod testing;

/// A commit timestamp: nanoseconds since the Unix epoch, strictly increasing
/// across commits and across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The timestamp before any commit.
    pub const ZERO: Timestamp = Timestamp(0);

    /// The next timestamp.
    pub fn succ(self) -> Timestamp {
        Timestamp(self.0 + 1)
    }
}

/// The number that identifies a table inside document ids and storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableNumber(pub u32);

/// The number that identifies one index (of one table) in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexId(pub u32);

/// One stored document: its id bytes, its table, the timestamp of its last
/// write and its JSON text (which includes `_id` and `_creationTime`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// Opaque id bytes (unique across all tables).
    pub id: Vec<u8>,
    /// The table the document belongs to.
    pub table: TableNumber,
    /// Timestamp of the commit that last wrote the document.
    pub ts: Timestamp,
    /// The document as JSON text (engine-defined encoding).
    pub json: String,
}

/// One row of an index scan: the entry's key and the document it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    /// The full index key (engine-defined, compared bytewise).
    pub key: Vec<u8>,
    /// The document the entry points to.
    pub doc: StoredDocument,
}

/// A half-open range of index keys: `start <= key < end` (no `end`: unbounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub start: Vec<u8>,
    /// Exclusive upper bound; `None` means no upper bound.
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// The whole key space.
    pub fn all() -> Self {
        Self {
            start: Vec::new(),
            end: None,
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

/// Scan direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// Ascending key order.
    Asc,
    /// Descending key order.
    Desc,
}

/// A write of one document: a new latest version, or a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentWrite {
    /// The document's id bytes.
    pub id: Vec<u8>,
    /// Its table.
    pub table: TableNumber,
    /// The new JSON text, or `None` to delete the document.
    pub json: Option<String>,
}

/// A change to one index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexWrite {
    /// The index.
    pub index: IndexId,
    /// The entry key.
    pub key: Vec<u8>,
    /// The document the key now points to, or `None` to remove the entry.
    pub doc_id: Option<Vec<u8>>,
}

/// Everything one logical commit writes, at one timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    /// The commit timestamp (greater than every earlier commit's).
    pub ts: Timestamp,
    /// Document writes, applied in order.
    pub documents: Vec<DocumentWrite>,
    /// Index entry changes, applied in order (removals before insertions of the
    /// same key are the engine's responsibility).
    pub index_writes: Vec<IndexWrite>,
    /// Opaque engine payload stored in the commit log.
    pub log: Vec<u8>,
}

/// One row of the commit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLogEntry {
    /// The commit timestamp.
    pub ts: Timestamp,
    /// The engine payload written with it.
    pub log: Vec<u8>,
}

/// What the engine remembers about an index so it can rebuild entries when an
/// index definition changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexMeta {
    /// The index.
    pub index: IndexId,
    /// The table it indexes.
    pub table: TableNumber,
    /// A string that changes whenever the index's key definition changes.
    pub signature: String,
}

/// A storage backend.
#[async_trait]
pub trait Persistence: Send + Sync + 'static {
    /// A short name for logs and metrics (`"sqlite"`, `"postgres"`).
    fn kind(&self) -> &'static str;

    /// Opens a consistent read snapshot of the newest committed state.
    async fn snapshot(&self) -> Result<Arc<dyn Snapshot>>;

    /// Whether a snapshot may show a commit whose [`Durable`] has not
    /// resolved yet (see [`WriteTxn::commit_pipelined`]). The engine then
    /// holds back what it read at such a snapshot until those commits are
    /// durable. `false` (the default): every commit a snapshot shows is
    /// durable.
    fn reads_precede_durability(&self) -> bool {
        false
    }

    /// Takes the global write lock and opens a write transaction.
    async fn begin_write(&self) -> Result<Box<dyn WriteTxn>>;

    /// The timestamp of the newest commit (0 for an empty store).
    async fn latest_ts(&self) -> Result<Timestamp>;

    /// Commit-log entries with `ts > after`, ascending, at most `limit`.
    async fn commits_after(&self, after: Timestamp, limit: usize) -> Result<Vec<CommitLogEntry>>;

    /// Deletes commit-log entries with `ts < before`; returns how many went.
    /// In the same transaction it raises the log's floor (see
    /// [`Persistence::commit_log_floor`]) to `before`; the floor never goes
    /// down.
    async fn prune_commit_log(&self, before: Timestamp) -> Result<u64>;

    /// The commit log's floor: entries with `ts < floor` may have been
    /// pruned (0 when nothing ever was). A reader that asked for
    /// [`Persistence::commits_after`]`(after)` saw every commit after
    /// `after` exactly when `after + 1 >= floor` **read after** the entries
    /// (a prune that removed entries it needed committed before its read,
    /// so the floor read afterwards shows it). Otherwise it missed commits
    /// and must treat everything it derived from the log as stale.
    async fn commit_log_floor(&self) -> Result<Timestamp>;

    /// Every stored [`IndexMeta`].
    async fn index_metadata(&self) -> Result<Vec<IndexMeta>>;
}

/// A read-only view of the store at one timestamp. Shared by all functions
/// that must read at the same timestamp, so methods take `&self`.
#[async_trait]
pub trait Snapshot: Send + Sync {
    /// The timestamp of the newest commit visible in this snapshot.
    fn ts(&self) -> Timestamp;

    /// The document with this id, if it exists.
    async fn get(&self, id: &[u8]) -> Result<Option<StoredDocument>>;

    /// Index entries of `index` whose key lies in `range`, in `order`, at most
    /// `limit`, each joined with its document.
    async fn index_scan(
        &self,
        index: IndexId,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<IndexRow>>;

    /// Documents of `table` with id bytes greater than `after` (all when
    /// `None`), ascending by id, at most `limit`. Used to (re)build indexes.
    async fn scan_table(
        &self,
        table: TableNumber,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<StoredDocument>>;
}

/// An exclusive write transaction. Dropping it without [`WriteTxn::commit`]
/// rolls it back.
#[async_trait]
pub trait WriteTxn: Send {
    /// The newest committed timestamp, read under the write lock.
    async fn latest_ts(&mut self) -> Result<Timestamp>;

    /// Commit-log entries with `ts > after` (commits by other nodes that this
    /// node has not seen yet), ascending.
    async fn commits_after(&mut self, after: Timestamp) -> Result<Vec<CommitLogEntry>>;

    /// Applies one commit record. Its `ts` must exceed every earlier commit's.
    async fn write(&mut self, record: &CommitRecord) -> Result<()>;

    /// Removes every entry of an index (before a rebuild).
    async fn clear_index(&mut self, index: IndexId) -> Result<()>;

    /// Inserts or replaces an index's metadata.
    async fn put_index_meta(&mut self, meta: &IndexMeta) -> Result<()>;

    /// Forgets an index: removes its entries and its metadata (an index the
    /// schema no longer defines).
    async fn drop_index(&mut self, index: IndexId) -> Result<()>;

    /// Makes everything written durable and releases the write lock. When this
    /// returns `Ok`, the writes survive a crash of the process.
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Commits in two steps: returns once the transaction is committed in
    /// order and the write lock is released, with a [`Durable`] that
    /// resolves when its writes are durable (as [`WriteTxn::commit`]
    /// promises). The next write transaction can begin meanwhile, so a
    /// caller can write its next group while this one syncs.
    ///
    /// Until the [`Durable`] resolves, the writes are visible to later
    /// write transactions (whose own durability implies this one's), to
    /// snapshots only if [`Persistence::reads_precede_durability`] says so
    /// (and then the caller must not let what it read escape before they
    /// are durable), and never to [`Persistence::latest_ts`] or
    /// [`Persistence::commits_after`]. If the sync fails the [`Durable`]
    /// yields the error, and so does every later write's.
    ///
    /// The default commits fully and returns a resolved [`Durable`].
    async fn commit_pipelined(self: Box<Self>) -> Result<Durable> {
        self.commit().await?;
        Ok(Durable::done())
    }
}

/// The pending durability of a commit (see [`WriteTxn::commit_pipelined`]).
#[must_use = "a commit is not known to be durable until its `Durable` resolves"]
pub struct Durable(Option<std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send>>>);

impl Durable {
    /// Already durable.
    pub fn done() -> Self {
        Self(None)
    }

    /// Durable when `sync` resolves to `Ok`.
    pub fn pending(sync: impl Future<Output = Result<()>> + Send + 'static) -> Self {
        Self(Some(Box::pin(sync)))
    }

    /// Whether the commit is known durable without waiting.
    pub fn is_done(&self) -> bool {
        self.0.is_none()
    }

    /// Waits until the commit is durable, or its sync failed.
    pub async fn wait(self) -> Result<()> {
        match self.0 {
            None => Ok(()),
            Some(sync) => sync.await,
        }
    }
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Durable")
            .field(&if self.is_done() { "done" } else { "pending" })
            .finish()
    }
}
