//! The subscription manager: turns the stream of commits into invalidations.
//!
//! A [`Subscription`] is a read set taken at a timestamp. It stays *valid*
//! until the first commit after that timestamp writes a key inside the read
//! set; then it is *invalidated* at that commit's timestamp (once, for good)
//! and its waiters wake. Whoever holds it re-runs the query and subscribes
//! again.
//!
//! The manager also keeps the **write log**: the write sets of recent commits.
//! It serves two purposes:
//! * optimistic concurrency control: a mutation that read at `ts` conflicts
//!   if a commit after `ts` wrote into its read set ([`SubscriptionManager::first_conflict`]);
//! * late registration: a subscription registered for a result computed at
//!   `ts` is checked against commits published after `ts` first;
//! * the read cache ([`crate::cache`]): a read cached at one timestamp is
//!   served at another when no commit between them wrote into its interval.
//!
//! Commits are applied in timestamp order by the committer (and, on a
//! multi-node deployment, by the commit-log tailer). Matching a write key to
//! subscriptions is a hash lookup by the key's first index component (the
//! *bucket*) plus a scan of the few intervals without a bucket.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use persistence::{IndexId, Timestamp};
use tokio::sync::{Notify, watch};

use crate::readset::{IntervalProbe, ReadInterval, ReadProbe, ReadSet, WriteFilter, WriteSet};

/// How much history the write log keeps.
#[derive(Debug, Clone, Copy)]
pub struct WriteLogLimits {
    /// Keep at most this many commits.
    pub max_commits: usize,
    /// Keep at most this many written keys in total.
    pub max_keys: usize,
}

impl Default for WriteLogLimits {
    fn default() -> Self {
        Self {
            max_commits: 200_000,
            max_keys: 2_000_000,
        }
    }
}

#[derive(Debug)]
struct SubState {
    /// 0 while valid, else the timestamp of the invalidating commit.
    invalidated_at: AtomicU64,
    notify: Notify,
}

impl SubState {
    fn invalidate(&self, ts: Timestamp) {
        if self
            .invalidated_at
            .compare_exchange(0, ts.0.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_waiters();
            self.notify.notify_one();
        }
    }
}

#[derive(Debug)]
struct Entry {
    ts: Timestamp,
    read_set: Arc<ReadSet>,
    state: Arc<SubState>,
}

#[derive(Debug, Default)]
struct IndexSubs {
    // Sets, not lists: invalidating k of n subscriptions in one bucket must
    // cost O(k), not O(k·n) (measured: 4,000 hits took 4 ms with lists).
    by_bucket: HashMap<Vec<u8>, HashSet<u64>>,
    wide: HashSet<u64>,
}

#[derive(Debug)]
struct Inner {
    next_id: u64,
    entries: HashMap<u64, Entry>,
    indexes: HashMap<IndexId, IndexSubs>,
    /// Recent commits, ascending by ts, each with its filter.
    log: VecDeque<(Timestamp, Arc<WriteSet>, WriteFilter)>,
    log_keys: usize,
    /// Every commit with ts <= horizon may be missing from the log.
    horizon: Timestamp,
    processed: Timestamp,
    limits: WriteLogLimits,
}

/// Tracks live read sets and invalidates them as commits are applied.
#[derive(Debug)]
pub struct SubscriptionManager {
    inner: Mutex<Inner>,
    processed_tx: watch::Sender<Timestamp>,
}

/// A registered read set. Dropping it unregisters it.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    ts: Timestamp,
    state: Arc<SubState>,
    manager: Arc<SubscriptionManager>,
}

impl Subscription {
    /// The timestamp the read set was taken at.
    pub fn ts(&self) -> Timestamp {
        self.ts
    }

    /// The commit that invalidated the read set, if one did.
    pub fn invalidated_at(&self) -> Option<Timestamp> {
        match self.state.invalidated_at.load(Ordering::Acquire) {
            0 => None,
            ts => Some(Timestamp(ts)),
        }
    }

    /// Whether the result is still valid at `ts` (the caller must first make
    /// sure the manager has processed every commit up to `ts`).
    pub fn valid_at(&self, ts: Timestamp) -> bool {
        ts >= self.ts && self.invalidated_at().is_none_or(|inv| inv > ts)
    }

    /// Waits until the subscription is invalidated; returns the timestamp.
    pub async fn wait_invalidated(&self) -> Timestamp {
        loop {
            let notified = self.state.notify.notified();
            if let Some(ts) = self.invalidated_at() {
                return ts;
            }
            notified.await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.manager.remove(self.id);
    }
}

impl SubscriptionManager {
    /// A manager whose write log starts at `horizon` (the newest commit at start-up).
    pub fn new(horizon: Timestamp, limits: WriteLogLimits) -> Arc<Self> {
        let (processed_tx, _) = watch::channel(horizon);
        Arc::new(Self {
            inner: Mutex::new(Inner {
                next_id: 1,
                entries: HashMap::new(),
                indexes: HashMap::new(),
                log: VecDeque::new(),
                log_keys: 0,
                horizon,
                processed: horizon,
                limits,
            }),
            processed_tx,
        })
    }

    /// The newest commit applied.
    pub fn processed_ts(&self) -> Timestamp {
        *self.processed_tx.borrow()
    }

    /// A receiver that sees every advance of the processed timestamp.
    pub fn watch_processed(&self) -> watch::Receiver<Timestamp> {
        self.processed_tx.subscribe()
    }

    /// Waits until every commit up to `ts` has been applied.
    pub async fn wait_processed(&self, ts: Timestamp) {
        let mut rx = self.processed_tx.subscribe();
        // The sender lives as long as `self`, so this only ends when satisfied.
        let _ = rx.wait_for(|p| *p >= ts).await;
    }

    /// Number of live (registered, not yet invalidated) subscriptions.
    pub fn live_count(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Registers a read set taken at `ts`.
    pub fn subscribe(self: &Arc<Self>, read_set: Arc<ReadSet>, ts: Timestamp) -> Subscription {
        let state = Arc::new(SubState {
            invalidated_at: AtomicU64::new(0),
            notify: Notify::new(),
        });
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let sub = Subscription {
            id,
            ts,
            state: Arc::clone(&state),
            manager: Arc::clone(self),
        };
        if ts < inner.horizon {
            state.invalidate(inner.horizon);
            return sub;
        }
        if let Some(conflict) = inner.first_overlap_after(ts, &read_set, &read_set.probe()) {
            state.invalidate(conflict);
            return sub;
        }
        for interval in read_set.intervals() {
            let subs = inner.indexes.entry(interval.index).or_default();
            match &interval.bucket {
                Some(bucket) => {
                    subs.by_bucket.entry(bucket.clone()).or_default().insert(id);
                }
                None => {
                    subs.wide.insert(id);
                }
            }
        }
        inner.entries.insert(
            id,
            Entry {
                ts,
                read_set,
                state,
            },
        );
        sub
    }

    /// The timestamp of the first logged commit after `ts` that writes into
    /// `read_set`, or `Some(horizon)` if the log no longer reaches back to `ts`.
    pub fn first_conflict(&self, ts: Timestamp, read_set: &ReadSet) -> Option<Timestamp> {
        self.first_conflict_probed(ts, read_set, &read_set.probe())
    }

    /// [`SubscriptionManager::first_conflict`] with the read set's probe
    /// already computed (the committer gets it from the transaction's task).
    pub fn first_conflict_probed(
        &self,
        ts: Timestamp,
        read_set: &ReadSet,
        probe: &ReadProbe,
    ) -> Option<Timestamp> {
        let inner = self.inner.lock();
        if ts < inner.horizon {
            return Some(inner.horizon);
        }
        inner.first_overlap_after(ts, read_set, probe)
    }

    /// Whether the log shows that no commit in `(from, to]` wrote into the
    /// interval of `probe`; `None` when it cannot tell: the log no longer
    /// reaches back to `from`, `to` is after the newest applied commit (its
    /// write set is not logged yet), or more than `max_commits` commits lie
    /// between (the read cache would rather read again than hold the lock
    /// that long).
    pub(crate) fn unchanged_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        probe: &IntervalProbe<'_>,
        max_commits: usize,
    ) -> Option<bool> {
        let inner = self.inner.lock();
        if from < inner.horizon || to > inner.processed {
            return None;
        }
        let start = inner.log.partition_point(|(t, _, _)| *t <= from);
        let end = inner.log.partition_point(|(t, _, _)| *t <= to);
        if end.saturating_sub(start) > max_commits {
            return None;
        }
        Some(
            !inner
                .log
                .range(start..end.max(start))
                .any(|(_, ws, filter)| probe.written(ws, filter)),
        )
    }

    /// Applies one commit: logs it and invalidates every overlapping
    /// subscription taken before it. Commits must arrive in ts order.
    pub fn apply(&self, ts: Timestamp, writes: Arc<WriteSet>) {
        let filter = WriteFilter::of(&writes);
        self.apply_filtered(ts, writes, filter);
    }

    /// [`SubscriptionManager::apply`] with the write set's filter already
    /// computed (the committer has it from validation).
    pub fn apply_filtered(&self, ts: Timestamp, writes: Arc<WriteSet>, filter: WriteFilter) {
        let mut inner = self.inner.lock();
        if ts <= inner.processed {
            return;
        }
        let mut hits: Vec<u64> = Vec::new();
        for key in &writes.keys {
            let Some(subs) = inner.indexes.get(&key.index) else {
                continue;
            };
            let candidates = subs
                .by_bucket
                .get(key.bucket())
                .into_iter()
                .flatten()
                .chain(subs.wide.iter());
            for id in candidates {
                if let Some(entry) = inner.entries.get(id)
                    && entry.ts < ts
                    && entry
                        .read_set
                        .intervals()
                        .iter()
                        .any(|r: &ReadInterval| r.index == key.index && r.range.contains(&key.key))
                {
                    hits.push(*id);
                }
            }
        }
        for id in hits {
            if let Some(entry) = inner.remove_entry(id) {
                entry.state.invalidate(ts);
            }
        }
        inner.log_keys += writes.keys.len();
        inner.log.push_back((ts, writes, filter));
        inner.processed = ts;
        while inner.log.len() > inner.limits.max_commits || inner.log_keys > inner.limits.max_keys {
            let Some((old_ts, old, _)) = inner.log.pop_front() else {
                break;
            };
            inner.log_keys -= old.keys.len();
            inner.horizon = old_ts;
        }
        drop(inner);
        self.processed_tx.send_replace(ts);
    }

    /// Forgets everything before `ts` because the commits between the last
    /// applied one and `ts` can no longer be read (the commit log was pruned
    /// past this node's position): invalidates every live subscription at
    /// `ts`, empties the write log and moves the horizon and the processed
    /// timestamp to `ts`. Live queries re-run at a snapshot at or after
    /// `ts`, and transactions that read before it get `WRITE_CONFLICT` and
    /// retry — correct, just more work than applying the missing commits.
    /// Does nothing when `ts` is not after the processed timestamp.
    pub fn reset(&self, ts: Timestamp) {
        let mut inner = self.inner.lock();
        if ts <= inner.processed {
            return;
        }
        let ids: Vec<u64> = inner.entries.keys().copied().collect();
        for id in ids {
            if let Some(entry) = inner.remove_entry(id) {
                entry.state.invalidate(ts);
            }
        }
        inner.log.clear();
        inner.log_keys = 0;
        inner.horizon = ts;
        inner.processed = ts;
        drop(inner);
        self.processed_tx.send_replace(ts);
    }

    fn remove(&self, id: u64) {
        self.inner.lock().remove_entry(id);
    }
}

impl Inner {
    fn first_overlap_after(
        &self,
        ts: Timestamp,
        read_set: &ReadSet,
        probe: &ReadProbe,
    ) -> Option<Timestamp> {
        if read_set.is_empty() {
            return None;
        }
        let start = self.log.partition_point(|(t, _, _)| *t <= ts);
        self.log
            .range(start..)
            .find(|(_, ws, filter)| read_set.overlaps_filtered(probe, ws, filter))
            .map(|(t, _, _)| *t)
    }

    fn remove_entry(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        for interval in entry.read_set.intervals() {
            if let Some(subs) = self.indexes.get_mut(&interval.index) {
                match &interval.bucket {
                    Some(bucket) => {
                        if let Some(ids) = subs.by_bucket.get_mut(bucket) {
                            ids.remove(&id);
                            if ids.is_empty() {
                                subs.by_bucket.remove(bucket);
                            }
                        }
                    }
                    None => {
                        subs.wide.remove(&id);
                    }
                }
            }
        }
        Some(entry)
    }
}
