//! The [`Database`]: opens a persistence backend under a schema, hands out
//! transactions, and runs the committer.
//!
//! # Commit pipeline
//!
//! Mutations run concurrently, each in its own [`Transaction`] at its own
//! snapshot. Their [`CommitRequest`]s go through one bounded queue to a single
//! committer task, which takes every request waiting in the queue as one
//! *group*:
//!
//! 1. take the backend's write lock ([`Persistence::begin_write`]) and ingest
//!    commits other nodes made since the last group (none on SQLite);
//! 2. validate each request in order (optimistic concurrency control): it
//!    conflicts if a commit after its snapshot — already published, or
//!    earlier in this group — wrote a key inside its read set;
//! 3. give each survivor the next timestamp and write its documents, index
//!    entries and commit-log entry;
//! 4. commit the group with one backend commit, in order
//!    ([`persistence::WriteTxn::commit_pipelined`]), hand it to the
//!    publisher task, and go on with the next group;
//! 5. the publisher waits, group by group, until each is durable, then
//!    publishes each commit's write set to the [`SubscriptionManager`] in
//!    timestamp order and answers the callers.
//!
//! So a caller hears "committed" only after its writes are durable and every
//! affected subscription has been invalidated (read-your-writes for live
//! queries), and the cost of an fsync is shared by everything that queued up
//! meanwhile. On PostgreSQL and default SQLite a commit is durable when the
//! backend commit returns, so step 5 only takes publishing off the
//! committer's path; with SQLite's `pipelined_sync` the backend commit
//! returns before the WAL fsync (one fsync covers every group committed
//! before it began) and the committer writes the next group while it runs.
//! The backend shows no snapshot a commit before it is durable, so nothing
//! is read that a crash could take back; validation checks the groups still
//! in flight (written, not yet published) itself.
//!
//! A conflicting request gets `WRITE_CONFLICT`; the function runtime retries
//! the whole mutation at a fresh snapshot.
//!
//! # Several nodes: the commit-log tailer
//!
//! On a shared backend (PostgreSQL) other nodes commit too. The committer
//! ingests their commits under the write lock, but only when this node
//! commits; subscribers need them promptly regardless.
//! [`Database::start_commit_tailer`] polls [`Persistence::commits_after`]
//! from the newest applied timestamp and applies each entry in order. That is
//! correct next to the committer because the backend serializes commits (on
//! PostgreSQL by an advisory lock), so commit visibility order equals
//! timestamp order and the poll never skips a commit; entries applied twice
//! are ignored by [`SubscriptionManager::apply`].
//!
//! The log is bounded: [`Database::start_commit_log_pruner`] deletes entries
//! older than a retention, raising the log's floor
//! ([`Persistence::commit_log_floor`]) in the same transaction. Readers check
//! the floor after reading entries; a node whose position fell below it
//! missed commits and resets its subscriptions
//! ([`SubscriptionManager::reset`]) instead of missing updates.
//!
//! Why polling and not `LISTEN/NOTIFY`: a `NOTIFY` inside every commit cost
//! 72% of commit throughput (it takes a database-wide lock at commit), while
//! one indexed range query per node every few milliseconds is cheap. The poll
//! runs every 5 ms while commits arrive and backs off to 50 ms when idle. A
//! message bus (NATS) can replace the poll later without changing the
//! invariant.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use errors::{Error, ErrorCode, Result};
use parking_lot::Mutex;
use persistence::{
    CommitRecord, DocumentWrite, Durable, IndexId, IndexMeta, IndexWrite, KeyRange, Order,
    Persistence, Snapshot, Timestamp,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use values::DocumentId;

use crate::cache::{ReadCache, ReadCacheLimits};
use crate::document::{Document, IndexKey, index_keys};
use crate::readset::{ReadProbe, ReadSet, WriteFilter, WriteSet, WrittenKey};
use crate::schema::{BY_ID, IndexKind, Schema};
use crate::subscriptions::{SubscriptionManager, WriteLogLimits};
use crate::transaction::{CommitRequest, PendingWrite, Transaction, TxEnv};
use crate::{Clock, IdGenerator};

/// Tunables of the engine.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseOptions {
    /// How much commit history the write log keeps for validation.
    pub write_log: WriteLogLimits,
    /// Most transactions written in one group commit.
    pub max_group: usize,
    /// Capacity of the commit queue (callers wait when it is full).
    pub queue_capacity: usize,
    /// Byte budgets of the read caches (see [`crate::cache`]).
    pub read_cache: ReadCacheLimits,
    /// Whether commit-log entries carry the commit's write set, which the
    /// tailers of *other* nodes apply to their subscriptions. A deployment
    /// with no other node (SQLite: its data directory is locked to one
    /// process) has no reader for it and logs an empty write set instead:
    /// for a 100-chunk transcript batch the write set is ~50 KiB, a third of
    /// the database file's growth and ~12% of the WAL frames. This node's
    /// own subscriptions and validation never read the log either way.
    pub log_write_sets: bool,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            write_log: WriteLogLimits::default(),
            max_group: 1024,
            queue_capacity: 8192,
            read_cache: ReadCacheLimits::default(),
            log_write_sets: true,
        }
    }
}

/// A transaction waiting for the committer, with everything about it that
/// does not depend on the commit timestamp already computed by the task
/// that ran it (so the one committer only validates, stamps and writes).
struct Pending {
    request: CommitRequest,
    /// The storage record (its `ts` is set by the committer).
    record: CommitRecord,
    /// The write set (keys sorted) and its filter.
    writes: WriteSet,
    filter: WriteFilter,
    /// The read set's probe, for validation.
    probe: ReadProbe,
    reply: oneshot::Sender<Result<Timestamp>>,
}

struct Inner {
    persistence: Arc<dyn Persistence>,
    env: TxEnv,
    subscriptions: Arc<SubscriptionManager>,
    commits: mpsc::Sender<Pending>,
    log_write_sets: bool,
    /// What the committer has handed to the backend and not yet published.
    handed: Arc<Handed>,
    /// Set by the publisher when a group failed to become durable: what
    /// waits for publication gets this error instead of waiting forever.
    failed: watch::Receiver<Option<Error>>,
}

/// The transactional document engine. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.inner.persistence.kind())
            .finish()
    }
}

impl Database {
    /// Opens the engine: (re)builds indexes whose definition changed, then
    /// starts the committer task on the current Tokio runtime.
    pub async fn open(
        persistence: Arc<dyn Persistence>,
        schema: Arc<Schema>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        options: DatabaseOptions,
    ) -> Result<Self> {
        let env = TxEnv {
            schema,
            clock,
            ids,
            creation_times: Default::default(),
            cache: Arc::new(ReadCache::new(options.read_cache)),
        };
        rebuild_changed_indexes(&persistence, &env).await?;
        let latest = persistence.latest_ts().await?;
        let subscriptions = SubscriptionManager::new(latest, options.write_log);
        env.cache.attach_log(Arc::clone(&subscriptions));
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let handed = Arc::new(Handed::new(latest, persistence.reads_precede_durability()));
        let (failed_tx, failed) = watch::channel(None);
        let committer = run_committer(
            Arc::clone(&persistence),
            Arc::clone(&subscriptions),
            Arc::clone(&env.cache),
            Arc::clone(&env.clock),
            rx,
            latest,
            options.max_group.max(1),
            Arc::clone(&handed),
            failed_tx,
        );
        // On the shared runtime, not a thread of its own: under load a woken
        // committer waits behind the socket and query tasks, and the commits
        // that queue meanwhile make its groups large (~130 transactions
        // against ~20 on a dedicated thread, 1,000 meetings × 3 × 10/s
        // offered), which is what makes a commit cheap; a dedicated thread
        // measured 740 commits/s there against 973-1,047 (one run each).
        tokio::spawn(committer);
        Ok(Self {
            inner: Arc::new(Inner {
                persistence,
                env,
                subscriptions,
                commits: tx,
                log_write_sets: options.log_write_sets,
                handed,
                failed,
            }),
        })
    }

    /// The schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.inner.env.schema
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.env.clock
    }

    /// The subscription manager.
    pub fn subscriptions(&self) -> &Arc<SubscriptionManager> {
        &self.inner.subscriptions
    }

    /// The backend.
    pub fn persistence(&self) -> &Arc<dyn Persistence> {
        &self.inner.persistence
    }

    /// Hit and miss counts of the read caches (see [`crate::cache`]).
    pub fn read_cache_stats(&self) -> crate::ReadCacheStats {
        self.inner.env.cache.stats()
    }

    /// The newest commit published to subscriptions.
    pub fn latest_ts(&self) -> Timestamp {
        self.inner.subscriptions.processed_ts()
    }

    /// Waits until what a read at a snapshot of timestamp `ts` saw may leave
    /// the server: every commit up to `ts` is durable (and published). A
    /// no-op unless the backend shows commits before they are durable
    /// ([`Persistence::reads_precede_durability`]); fails if a group failed
    /// to become durable. Every query and mutation result goes through this
    /// (the function runtime), and live query results are sent only at a
    /// published timestamp anyway.
    pub async fn wait_published(&self, ts: Timestamp) -> Result<()> {
        if !self.inner.persistence.reads_precede_durability()
            || self.inner.subscriptions.processed_ts() >= ts
        {
            return Ok(());
        }
        let mut failed = self.inner.failed.clone();
        tokio::select! {
            () = self.inner.subscriptions.wait_processed(ts) => Ok(()),
            changed = failed.wait_for(Option::is_some) => match changed {
                Ok(e) => Err(e.clone().unwrap_or_else(|| Error::internal("commit failed"))),
                Err(_) => Err(Error::internal("the committer has stopped")),
            },
        }
    }

    /// [`Database::wait_published`] for whatever a read that began before
    /// now may have seen (when its snapshot's timestamp is not at hand):
    /// waits for every commit handed to the backend so far.
    pub async fn wait_published_now(&self) -> Result<()> {
        let written = Timestamp(self.inner.handed.written.load(Ordering::SeqCst));
        self.wait_published(written).await
    }

    /// [`Database::wait_published`] for a read at a snapshot of timestamp
    /// `ts` that read `read_set`, waiting only for the commits it could
    /// have seen *and* that wrote into its read set. Returns the timestamp
    /// to report the result at: the newest commit it waited for, or the
    /// newest published one if none — its value there is the same as at
    /// `ts`, since nothing in between touched what it read. So a result
    /// does not queue behind in-flight groups it did not read from
    /// (queries of other meetings, say), which near saturation is most of
    /// them. Same guarantees otherwise: nothing undurable leaves, and a
    /// failed group fails the reads that depend on it.
    pub async fn settle_read(&self, ts: Timestamp, read_set: &ReadSet) -> Result<Timestamp> {
        if !self.inner.persistence.reads_precede_durability()
            || self.inner.subscriptions.processed_ts() >= ts
        {
            return Ok(ts);
        }
        let need = self.inner.handed.newest_read(ts, read_set);
        self.wait_published(need).await?;
        Ok(need)
    }

    /// Opens a read snapshot of the newest committed state.
    pub async fn snapshot(&self) -> Result<Arc<dyn Snapshot>> {
        self.inner.persistence.snapshot().await
    }

    /// A transaction at a fresh snapshot.
    pub async fn begin(&self, writable: bool) -> Result<Transaction> {
        let snapshot = self.snapshot().await?;
        Ok(self.begin_at(snapshot, writable))
    }

    /// A transaction at a given snapshot (queries of one Transition share one).
    pub fn begin_at(&self, snapshot: Arc<dyn Snapshot>, writable: bool) -> Transaction {
        Transaction::new(self.inner.env.clone(), snapshot, writable)
    }

    /// Starts the commit-log tailer (see the module documentation): polls the
    /// backend's commit log every `interval` while it finds commits, doubling
    /// the pause up to [`TAILER_IDLE_INTERVAL`] (or `interval`, if longer)
    /// while idle, and applies foreign commits to the subscriptions. The task
    /// ends when the last clone of this `Database` is dropped. Needed only
    /// when other nodes commit to the same backend.
    pub fn start_commit_tailer(&self, interval: Duration) -> JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(run_tailer(weak, interval))
    }

    /// Starts a task that every `every` deletes commit-log entries older than
    /// `retention` (never the newest). A node that falls further behind than
    /// that (stopped, partitioned) notices the gap through the log's floor
    /// and re-runs its live queries instead of missing updates.
    pub fn start_commit_log_pruner(&self, retention: Duration, every: Duration) -> JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(run_pruner(weak, retention, every))
    }

    /// One pruning pass (see [`Database::start_commit_log_pruner`]); returns
    /// how many entries went.
    pub async fn prune_commit_log(&self, retention: Duration) -> Result<u64> {
        prune_log(&self.inner, retention).await
    }

    /// Applies every commit in the backend's log after the newest applied one;
    /// returns how many entries were read. (One step of the tailer.)
    pub async fn catch_up(&self) -> Result<usize> {
        catch_up(&self.inner).await
    }

    /// Commits a transaction. Returns its commit timestamp (the snapshot's
    /// timestamp for a transaction that wrote nothing), or `WRITE_CONFLICT`.
    pub async fn commit(&self, tx: Transaction) -> Result<Timestamp> {
        if !tx.has_writes() {
            return Ok(tx.ts());
        }
        let started = Instant::now();
        let (reply, rx) = oneshot::channel();
        let request = tx.into_commit();
        // Off the committer's serial path: encoding documents and index keys
        // costs about as much as writing them to SQLite.
        let (record, writes) =
            build_record(Timestamp::ZERO, &request.writes, self.inner.log_write_sets);
        let filter = WriteFilter::of(&writes);
        let probe = request.read_set.probe();
        self.inner
            .commits
            .send(Pending {
                request,
                record,
                writes,
                filter,
                probe,
                reply,
            })
            .await
            .map_err(|_| Error::internal("the committer has stopped"))?;
        let outcome = rx
            .await
            .map_err(|_| Error::internal("the committer dropped a commit"))?;
        // Per transaction: building its record, waiting in the queue and for
        // the group it joins to be durable.
        metrics::histogram!("connvo_commit_seconds").record(started.elapsed().as_secs_f64());
        outcome
    }
}

/// The longest pause of an idle commit-log tailer.
pub const TAILER_IDLE_INTERVAL: Duration = Duration::from_millis(50);

/// Entries read per commit-log query.
const TAIL_BATCH: usize = 1024;

async fn catch_up(inner: &Inner) -> Result<usize> {
    let mut total = 0;
    loop {
        let after = inner.subscriptions.processed_ts();
        let entries = inner.persistence.commits_after(after, TAIL_BATCH).await?;
        // Read after the entries: see `Persistence::commit_log_floor`.
        let floor = inner.persistence.commit_log_floor().await?;
        if log_gap(after, floor) {
            reset_after_gap(inner.persistence.as_ref(), &inner.subscriptions, after).await?;
            total += 1;
            continue;
        }
        let n = entries.len();
        for entry in entries {
            inner
                .subscriptions
                .apply(entry.ts, Arc::new(WriteSet::decode(&entry.log)?));
        }
        total += n;
        if n < TAIL_BATCH {
            return Ok(total);
        }
    }
}

async fn run_tailer(weak: Weak<Inner>, interval: Duration) {
    let interval = interval.max(Duration::from_millis(1));
    let idle_max = TAILER_IDLE_INTERVAL.max(interval);
    let mut pause = interval;
    loop {
        let Some(inner) = weak.upgrade() else { break };
        match catch_up(&inner).await {
            Ok(0) => pause = (pause * 2).min(idle_max),
            Ok(n) => {
                metrics::counter!("connvo_tailer_entries_total").increment(n as u64);
                pause = interval;
            }
            Err(e) => {
                tracing::warn!(error = %e, "commit-log tailer: poll failed");
                pause = idle_max;
            }
        }
        drop(inner);
        tokio::time::sleep(pause).await;
    }
    tracing::debug!("commit-log tailer stopped");
}

/// Whether a reader positioned at `after` missed pruned commits.
fn log_gap(after: Timestamp, floor: Timestamp) -> bool {
    after.0.saturating_add(1) < floor.0
}

/// This node fell behind the pruned commit log: forget everything derived
/// from it (see [`SubscriptionManager::reset`]) and go on from the newest
/// commit.
async fn reset_after_gap(
    persistence: &dyn Persistence,
    subscriptions: &SubscriptionManager,
    after: Timestamp,
) -> Result<()> {
    let latest = persistence.latest_ts().await?;
    tracing::warn!(
        applied = after.0,
        latest = latest.0,
        "the commit log was pruned past this node's position; re-running every live query"
    );
    metrics::counter!("connvo_commit_log_gap_resets_total").increment(1);
    subscriptions.reset(latest);
    Ok(())
}

/// Deletes commit-log entries older than `retention` by the clock, never the
/// newest one (so an idle, up-to-date node is never behind the floor).
async fn prune_log(inner: &Inner, retention: Duration) -> Result<u64> {
    let retention_ns = u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX);
    let cutoff = inner.env.clock.now_nanos().saturating_sub(retention_ns);
    let latest = inner.persistence.latest_ts().await?;
    let before = Timestamp(cutoff.min(latest.0));
    if before.0 == 0 {
        return Ok(0);
    }
    let deleted = inner.persistence.prune_commit_log(before).await?;
    metrics::counter!("connvo_commit_log_pruned_total").increment(deleted);
    Ok(deleted)
}

async fn run_pruner(weak: Weak<Inner>, retention: Duration, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = weak.upgrade() else { break };
        match prune_log(&inner, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "commit log pruned"),
            Err(e) => tracing::warn!(error = %e, "commit-log pruning failed; retrying later"),
        }
    }
    tracing::debug!("commit-log pruner stopped");
}

fn conflict() -> Error {
    Error::new(
        ErrorCode::WriteConflict,
        "Write conflict: documents read by this mutation changed concurrently",
    )
}

/// Adds the index writes and written keys of one document in one index.
///
/// Keys present before and after stay stored as they are (a search index
/// keeps the entries of unchanged terms); removed keys are deleted and new
/// ones inserted. Changed keys go to the write set. Unchanged keys go to it
/// only when `kept_in_write_set`: a database index read returns the
/// documents behind its keys, so a changed document must invalidate the
/// ranges holding its unchanged key. A search index does not need that (a
/// search records a `by_id` read of every candidate document instead, see
/// [`crate::search`]), which keeps the write set of an edit to a long text
/// proportional to the terms that changed, not to all of its terms.
// The arguments are the parts of one index's diff plus the two outputs.
#[allow(clippy::too_many_arguments)]
fn diff_index_keys(
    index: IndexId,
    stored: bool,
    kept_in_write_set: bool,
    id: &[u8],
    old: Vec<IndexKey>,
    new: Vec<IndexKey>,
    index_writes: &mut Vec<IndexWrite>,
    ws: &mut WriteSet,
) {
    let (kept, removed, added): (Vec<IndexKey>, Vec<IndexKey>, Vec<IndexKey>) =
        if old.len() <= 1 && new.len() <= 1 {
            // Database indexes: at most one key on each side.
            match (old.into_iter().next(), new.into_iter().next()) {
                (Some(o), Some(n)) if o == n => (vec![n], Vec::new(), Vec::new()),
                (o, n) => (Vec::new(), o.into_iter().collect(), n.into_iter().collect()),
            }
        } else {
            let old_set: HashSet<&[u8]> = old.iter().map(|k| k.bytes.as_slice()).collect();
            let new_set: HashSet<&[u8]> = new.iter().map(|k| k.bytes.as_slice()).collect();
            let removed: Vec<IndexKey> = old
                .iter()
                .filter(|k| !new_set.contains(k.bytes.as_slice()))
                .cloned()
                .collect();
            let (kept, added): (Vec<IndexKey>, Vec<IndexKey>) = new
                .iter()
                .cloned()
                .partition(|k| old_set.contains(k.bytes.as_slice()));
            (kept, removed, added)
        };
    for k in kept.into_iter().filter(|_| kept_in_write_set) {
        ws.keys.push(WrittenKey {
            index,
            key: k.bytes,
            first_len: k.first_len,
        });
    }
    for (k, doc_id) in removed
        .into_iter()
        .map(|k| (k, None))
        .chain(added.into_iter().map(|k| (k, Some(id.to_vec()))))
    {
        if stored {
            index_writes.push(IndexWrite {
                index,
                key: k.bytes.clone(),
                doc_id,
            });
        }
        ws.keys.push(WrittenKey {
            index,
            key: k.bytes,
            first_len: k.first_len,
        });
    }
}

/// Builds the storage record and write set of one transaction; the record's
/// log carries the write set when `log_write_set`, else an empty one (see
/// [`DatabaseOptions::log_write_sets`]).
fn build_record(
    ts: Timestamp,
    writes: &[PendingWrite],
    log_write_set: bool,
) -> (CommitRecord, WriteSet) {
    let mut documents = Vec::with_capacity(writes.len());
    let mut index_writes = Vec::new();
    let mut ws = WriteSet::default();
    for w in writes {
        let id = w.id.to_bytes().to_vec();
        documents.push(DocumentWrite {
            id: id.clone(),
            table: w.table.number,
            json: w.new.as_ref().map(Document::to_json_string),
        });
        for index in &w.table.indexes {
            let old = w
                .old
                .as_ref()
                .map(|d| index_keys(index, d))
                .unwrap_or_default();
            let new = w
                .new
                .as_ref()
                .map(|d| index_keys(index, d))
                .unwrap_or_default();
            // `by_id` entries are not stored (point reads use the document
            // table) but its keys still go to the write set for `db.get` reads.
            let stored = index.name != BY_ID;
            let kept_in_write_set = !matches!(index.kind, IndexKind::Search { .. });
            diff_index_keys(
                index.id,
                stored,
                kept_in_write_set,
                &id,
                old,
                new,
                &mut index_writes,
                &mut ws,
            );
        }
    }
    ws.sort();
    let log = if log_write_set {
        ws.encode()
    } else {
        WriteSet::default().encode()
    };
    (
        CommitRecord {
            ts,
            documents,
            index_writes,
            log,
        },
        ws,
    )
}

/// Groups a committer may have written whose durability it has not heard
/// of yet (see [`run_committer`]).
const PIPELINE_DEPTH: usize = 8;

/// A commit of this node's that is written but not yet published: the
/// committer validates later transactions against it.
type InFlight = (Timestamp, Arc<WriteSet>, WriteFilter);

/// What the committer has handed to the backend, shared with readers.
struct Handed {
    /// The newest timestamp handed to the backend, set before its commit
    /// (so no snapshot can show a newer commit of this node's).
    written: AtomicU64,
    /// Whether `state.commits` is kept: only when snapshots may show
    /// commits before they are durable.
    track: bool,
    state: Mutex<HandedState>,
}

#[derive(Default)]
struct HandedState {
    /// Every commit up to this is published (or another node's, applied).
    published: Timestamp,
    /// This node's commits newer than `published`, handed to the backend
    /// before it committed them, oldest first.
    commits: VecDeque<InFlight>,
}

impl Handed {
    fn new(latest: Timestamp, track: bool) -> Self {
        Self {
            written: AtomicU64::new(latest.0),
            track,
            state: Mutex::new(HandedState {
                published: latest,
                commits: VecDeque::new(),
            }),
        }
    }

    /// Called before the backend commit of a group whose newest commit is `newest`.
    fn hand(&self, accepted: &[InFlight], newest: Timestamp) {
        if self.track {
            self.state.lock().commits.extend(accepted.iter().cloned());
        }
        self.written.fetch_max(newest.0, Ordering::SeqCst);
    }

    /// Forgets commits newer than `before`: their group failed to commit.
    fn withdraw(&self, before: Timestamp) {
        if self.track {
            let mut state = self.state.lock();
            while state.commits.back().is_some_and(|(ts, _, _)| *ts > before) {
                state.commits.pop_back();
            }
        }
    }

    /// Everything up to `ts` is published.
    fn published(&self, ts: Timestamp) {
        if self.track {
            let mut state = self.state.lock();
            state.published = state.published.max(ts);
            while state.commits.front().is_some_and(|(t, _, _)| *t <= ts) {
                state.commits.pop_front();
            }
        }
    }

    /// The newest commit a read at snapshot `ts` of `read_set` depends on
    /// that may not be published yet (see [`Database::settle_read`]): the
    /// newest commit up to `ts` that wrote into the read set, else the
    /// newest published one. `ts` itself when the commits up to it are
    /// not all this node's own, known ones.
    fn newest_read(&self, ts: Timestamp, read_set: &ReadSet) -> Timestamp {
        if !self.track || ts.0 > self.written.load(Ordering::SeqCst) {
            return ts;
        }
        // Built before taking the lock the committer and publisher share.
        let probe = read_set.probe();
        let state = self.state.lock();
        if state.published >= ts {
            return ts;
        }
        state
            .commits
            .iter()
            .rev()
            .filter(|(t, _, _)| *t <= ts)
            .find(|(_, ws, filter)| read_set.overlaps_filtered(&probe, ws, filter))
            .map_or(state.published, |(t, _, _)| *t)
    }
}

/// A group committed in order, on its way to durable and published.
struct Written {
    group: Vec<Pending>,
    /// One per request of `group`; `None` is a bug ("commit skipped").
    outcomes: Vec<Option<Result<Timestamp>>>,
    accepted: Vec<InFlight>,
    /// Versions written by the group, for the read cache once durable.
    versions: Vec<(DocumentId, Timestamp, Document, usize)>,
    durable: Durable,
    /// When the group was taken, and when its backend commit began.
    started: Instant,
    committing: Instant,
}

/// The committer: takes every waiting request as one group, validates and
/// writes it under the write lock and commits it in order
/// ([`persistence::WriteTxn::commit_pipelined`]), then hands it to the
/// publisher task and goes on with the next group while this one syncs.
/// The publisher waits for each group to be durable, in order, then
/// publishes it to the subscriptions and answers its callers. So a caller
/// still hears "committed" only once its writes are durable and published,
/// but the committer no longer publishes, and with a backend whose commit
/// returns before its sync (SQLite's `pipelined_sync`) no longer idles
/// through each fsync either (at 20,000 durable writes/s that was half its
/// busy time).
///
/// A group written but not yet published is *in flight*: requests of later
/// groups are validated against its write sets too (the subscriptions'
/// write log does not hold them yet), for every in-flight commit newer than
/// the request's snapshot.
// The committer's shared state, each piece with its own role; bundling them
// in a struct would only rename the arguments.
#[allow(clippy::too_many_arguments)]
async fn run_committer(
    persistence: Arc<dyn Persistence>,
    subscriptions: Arc<SubscriptionManager>,
    cache: Arc<ReadCache>,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Pending>,
    mut last_ts: Timestamp,
    max_group: usize,
    handed: Arc<Handed>,
    failed: watch::Sender<Option<Error>>,
) {
    let (publish, to_publish) = mpsc::channel(PIPELINE_DEPTH);
    let (handled_tx, handled) = watch::channel(last_ts);
    tokio::spawn(run_publisher(
        Arc::clone(&subscriptions),
        cache,
        to_publish,
        handled_tx,
        Arc::clone(&handed),
        failed,
    ));
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut group: Vec<Pending> = Vec::with_capacity(max_group);
    while let Some(first) = rx.recv().await {
        group.push(first);
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let size = group.len();
        // Published (or failed) groups are in the write log now, or never.
        let published = *handled.borrow();
        while in_flight.front().is_some_and(|(ts, _, _)| *ts <= published) {
            in_flight.pop_front();
        }
        let outcome = write_group(
            &*persistence,
            &subscriptions,
            &*clock,
            &mut last_ts,
            &mut in_flight,
            handled.clone(),
            &handed,
            std::mem::replace(&mut group, Vec::with_capacity(max_group)),
        )
        .await;
        metrics::histogram!("connvo_commit_group_size").record(size as f64);
        if let Some(outcome) = outcome
            && publish.send(outcome).await.is_err()
        {
            break;
        }
    }
    tracing::debug!("committer stopped");
}

/// Validates, stamps and writes one group and commits it in order; `None`
/// if the group failed (its callers have their error then).
#[allow(clippy::too_many_arguments)]
async fn write_group(
    persistence: &dyn Persistence,
    subscriptions: &SubscriptionManager,
    clock: &dyn Clock,
    last_ts: &mut Timestamp,
    in_flight: &mut VecDeque<InFlight>,
    mut handled: watch::Receiver<Timestamp>,
    handed: &Handed,
    mut group: Vec<Pending>,
) -> Option<Written> {
    let started = Instant::now();
    let before = *last_ts;
    let mut outcomes: Vec<Option<Result<Timestamp>>> = (0..group.len()).map(|_| None).collect();
    let mut accepted: Vec<InFlight> = Vec::new();
    let mut versions: Vec<(DocumentId, Timestamp, Document, usize)> = Vec::new();
    let result: Result<(Durable, Instant)> = async {
        let phase = Instant::now();
        let mut wtx = persistence.begin_write().await?;
        let latest = wtx.latest_ts().await?;
        if latest > *last_ts {
            // Commits made by other nodes since our last group. Ours in
            // flight go to the subscriptions first (timestamp order); on a
            // backend with other nodes a commit is durable when it returns,
            // so this waits only for the publisher's turn.
            if let Some((newest, _, _)) = in_flight.back() {
                let newest = *newest;
                // An error means the publisher is gone (shutting down).
                let _ = handled.wait_for(|h| *h >= newest).await;
                in_flight.clear();
            }
            let entries = wtx.commits_after(*last_ts).await?;
            let processed = subscriptions.processed_ts().max(*last_ts);
            if log_gap(processed, persistence.commit_log_floor().await?) {
                reset_after_gap(persistence, subscriptions, processed).await?;
            } else {
                for entry in entries {
                    subscriptions.apply(entry.ts, Arc::new(WriteSet::decode(&entry.log)?));
                }
            }
            handed.published(latest);
            *last_ts = latest;
        }
        // Wall time per phase, summed over the group (`validate` includes
        // waiting for the subscription manager's lock).
        let mut validate = Duration::ZERO;
        let mut write = Duration::ZERO;
        metrics::histogram!("connvo_commit_phase_seconds", "phase" => "begin")
            .record(phase.elapsed().as_secs_f64());
        for (i, pending) in group.iter_mut().enumerate() {
            let started = Instant::now();
            let req = &pending.request;
            let overlaps = |(ts, ws, filter): &InFlight| {
                *ts > req.read_ts && req.read_set.overlaps_filtered(&pending.probe, ws, filter)
            };
            let conflicts = subscriptions
                .first_conflict_probed(req.read_ts, &req.read_set, &pending.probe)
                .is_some()
                || in_flight.iter().any(overlaps)
                || accepted.iter().any(overlaps);
            let built = Instant::now();
            validate += built - started;
            if conflicts {
                outcomes[i] = Some(Err(conflict()));
                continue;
            }
            let ts = Timestamp(clock.now_nanos().max(last_ts.0 + 1));
            pending.record.ts = ts;
            wtx.write(&pending.record).await?;
            write += built.elapsed();
            for (w, stored) in req.writes.iter().zip(&pending.record.documents) {
                if let (Some(doc), Some(json)) = (&w.new, &stored.json) {
                    versions.push((w.id, ts, doc.clone(), json.len()));
                }
            }
            *last_ts = ts;
            outcomes[i] = Some(Ok(ts));
            accepted.push((
                ts,
                Arc::new(std::mem::take(&mut pending.writes)),
                pending.filter,
            ));
        }
        for (phase, took) in [("validate", validate), ("write", write)] {
            metrics::histogram!("connvo_commit_phase_seconds", "phase" => phase)
                .record(took.as_secs_f64());
        }
        let committing = Instant::now();
        if accepted.is_empty() {
            // Nothing written: dropping `wtx` rolls it back.
            return Ok((Durable::done(), committing));
        }
        // Before the backend commit: a snapshot that can show the group
        // begins after this (see `Database::wait_published_now` and
        // `Database::settle_read`).
        handed.hand(&accepted, *last_ts);
        let durable = wtx.commit_pipelined().await?;
        metrics::histogram!("connvo_commit_phase_seconds", "phase" => "commit")
            .record(committing.elapsed().as_secs_f64());
        Ok((durable, committing))
    }
    .await;
    match result {
        Ok((durable, committing)) => {
            in_flight.extend(accepted.iter().cloned());
            Some(Written {
                group,
                outcomes,
                accepted,
                versions,
                durable,
                started,
                committing,
            })
        }
        Err(e) => {
            // Nothing of the group was committed: its timestamps are reused.
            tracing::error!(error = %e, "group commit failed");
            *last_ts = before;
            handed.withdraw(before);
            for pending in group.drain(..) {
                let _ = pending.reply.send(Err(e.clone()));
            }
            None
        }
    }
}

/// The publisher (see [`run_committer`]): for each written group in commit
/// order, waits until it is durable, then fills the read cache, publishes
/// its write sets to the subscriptions and answers its callers; then
/// reports the group's newest timestamp on `handled`.
async fn run_publisher(
    subscriptions: Arc<SubscriptionManager>,
    cache: Arc<ReadCache>,
    mut groups: mpsc::Receiver<Written>,
    handled: watch::Sender<Timestamp>,
    handed: Arc<Handed>,
    failed: watch::Sender<Option<Error>>,
) {
    while let Some(written) = groups.recv().await {
        let Written {
            mut group,
            outcomes,
            accepted,
            versions,
            durable,
            started,
            committing,
        } = written;
        let newest = accepted.last().map(|(ts, _, _)| *ts);
        let synced = durable.wait().await;
        if newest.is_some() {
            metrics::histogram!("connvo_commit_phase_seconds", "phase" => "durable")
                .record(committing.elapsed().as_secs_f64());
        }
        match synced {
            Ok(()) => {
                for (id, ts, doc, json_len) in versions {
                    cache.put_version(id, ts, doc, json_len);
                }
                for (ts, ws, filter) in accepted {
                    subscriptions.apply_filtered(ts, ws, filter);
                }
                if let Some(ts) = newest {
                    handed.published(ts);
                }
                let committed = outcomes.iter().filter(|o| matches!(o, Some(Ok(_)))).count();
                metrics::counter!("connvo_commits_total").increment(committed as u64);
                let conflicts = outcomes
                    .iter()
                    .filter(|o| matches!(o, Some(Err(_))))
                    .count();
                if conflicts > 0 {
                    metrics::counter!("connvo_commit_conflicts_total").increment(conflicts as u64);
                }
                for (pending, outcome) in group.drain(..).zip(outcomes) {
                    let outcome = outcome.unwrap_or_else(|| Err(Error::internal("commit skipped")));
                    let _ = pending.reply.send(outcome);
                }
            }
            Err(e) => {
                // The backend failed to make the group durable (it refuses
                // every later commit too, see `WriteTxn::commit_pipelined`).
                tracing::error!(error = %e, "group commit failed to become durable");
                failed.send_replace(Some(e.clone()));
                for pending in group.drain(..) {
                    let _ = pending.reply.send(Err(e.clone()));
                }
            }
        }
        if let Some(ts) = newest {
            handled.send_modify(|h| *h = (*h).max(ts));
        }
        metrics::histogram!("connvo_commit_group_seconds").record(started.elapsed().as_secs_f64());
    }
    tracing::debug!("commit publisher stopped");
}

/// Rebuilds every stored index (database and search) whose definition
/// changed (or is new), and drops the stored indexes the schema no longer
/// defines (their entries would otherwise stay in the database for good).
async fn rebuild_changed_indexes(persistence: &Arc<dyn Persistence>, env: &TxEnv) -> Result<()> {
    let stored = persistence.index_metadata().await?;
    for meta in &stored {
        let defined = env
            .schema
            .tables()
            .any(|t| t.indexes.iter().any(|i| i.id == meta.index));
        if defined {
            continue;
        }
        let mut wtx = persistence.begin_write().await?;
        wtx.drop_index(meta.index).await?;
        wtx.commit().await?;
        tracing::info!(index = meta.index.0, signature = %meta.signature, "index no longer in the schema: dropped");
    }
    for table in env.schema.tables() {
        for index in &table.indexes {
            if index.name == BY_ID || matches!(index.kind, IndexKind::Vector { .. }) {
                continue;
            }
            let signature = index.signature();
            if stored
                .iter()
                .any(|m| m.index == index.id && m.signature == signature)
            {
                continue;
            }
            let mut wtx = persistence.begin_write().await?;
            let ts = wtx.latest_ts().await?.succ();
            wtx.clear_index(index.id).await?;
            let snapshot = persistence.snapshot().await?;
            let mut after: Option<Vec<u8>> = None;
            let mut count = 0usize;
            let mut index_writes = Vec::new();
            loop {
                let docs = snapshot
                    .scan_table(table.number, after.as_deref(), 1000)
                    .await?;
                let Some(last) = docs.last() else { break };
                after = Some(last.id.clone());
                for stored_doc in &docs {
                    let doc = Document::from_stored(stored_doc)?;
                    for key in index_keys(index, &doc) {
                        index_writes.push(IndexWrite {
                            index: index.id,
                            key: key.bytes,
                            doc_id: Some(stored_doc.id.clone()),
                        });
                        count += 1;
                    }
                }
            }
            drop(snapshot);
            if !index_writes.is_empty() {
                let record = CommitRecord {
                    ts,
                    documents: Vec::new(),
                    index_writes,
                    log: WriteSet::default().encode(),
                };
                wtx.write(&record).await?;
            }
            wtx.put_index_meta(&IndexMeta {
                index: index.id,
                table: table.number,
                signature,
            })
            .await?;
            wtx.commit().await?;
            if count > 0 {
                tracing::info!(table = %table.name, index = %index.name, entries = count, "index built");
            }
        }
    }
    Ok(())
}

/// A whole-index key range (used by table scans).
pub fn full_range() -> KeyRange {
    KeyRange::all()
}

/// Scan order re-export for callers that only import the engine.
pub type ScanOrder = Order;
