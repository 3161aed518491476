//! Caches of decoded reads, shared by every transaction of one engine.
//!
//! Both caches are exact — a hit returns what storage would have returned:
//!
//! * **Document versions**, keyed by `(document id, version timestamp)`. A
//!   stored version never changes, so a hit only skips decoding its JSON.
//!   Reads fill it after decoding, and the committer fills it with every
//!   version it wrote once the group is durable, so the queries a commit
//!   invalidates find the new versions already decoded.
//! * **Reads of the committed state** — point reads and index scans —,
//!   keyed by the read (id, or index, range, order and limit). An entry
//!   holds the rows and the timestamps `[lo, hi]` at which they are known to
//!   be the committed state. The state at a timestamp never changes (every
//!   commit gets a new, larger timestamp; a failed group's timestamps were
//!   never visible), so a read at a snapshot inside `[lo, hi]` is a hit. A
//!   read at another snapshot `ts` is a hit too when the subscription
//!   manager's write log shows that no commit between `hi` and `ts` (or `ts`
//!   and `lo`) wrote a key inside the read's interval — the same test as
//!   optimistic concurrency control — and the entry's range then grows to
//!   include `ts`. Only reads whose rows change exactly when a key inside
//!   their interval is written are carried: point reads and database-index
//!   scans, not search-index scans (an edit keeping a term writes no key
//!   for it). The log cannot tell for commits not applied yet, commits
//!   older than its horizon, or more than [`MAX_CHECKED_COMMITS`] commits;
//!   those are misses. So the access checks every function starts with
//!   (the meeting, the caller's participant row) and the scans of a meeting
//!   whose other subscribers re-ran a moment earlier are read from the
//!   backend once per change, not once per snapshot. Reads of a
//!   transaction's *pending* writes are overlaid afterwards by
//!   [`crate::Transaction`], so the cache holds committed state only.
//!
//! Each cache is an LRU list with a byte budget. An entry weighs its keys, a
//! fixed overhead, and [`DECODED_PER_JSON_BYTE`] times the JSON length of
//! its documents (a decoded document — a map of owned strings and values —
//! takes several times its JSON text; with the JSON length alone an 8 MiB
//! budget grew the server by ~40 MiB). Entries
//! heavier than an eighth of the budget are not cached. Hits and misses are
//! counted in `connvo_read_cache_total{cache, outcome}`; a read served at a
//! snapshot outside its entry's range after the log check counts as
//! `outcome="carried"`.
//!
//! `hashlink::LruCache` (already in the tree through rusqlite) provides the
//! ordered map; only the byte accounting is ours.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use errors::Result;
use hashlink::LruCache;
use parking_lot::Mutex;
use persistence::{IndexId, KeyRange, Order, StoredDocument, TableNumber, Timestamp};
use values::DocumentId;

use crate::document::Document;
use crate::readset::IntervalProbe;
use crate::subscriptions::SubscriptionManager;

/// Bookkeeping bytes charged per entry on top of its payload.
const ENTRY_OVERHEAD: usize = 96;

/// Most logged commits a lookup checks before it counts as a miss (the check
/// holds the subscription manager's lock; a few hundred filter tests take a
/// few microseconds, about one backend read).
pub const MAX_CHECKED_COMMITS: usize = 512;

/// Estimated heap bytes of a decoded document per byte of its JSON.
pub const DECODED_PER_JSON_BYTE: usize = 6;

/// Byte budgets of the two caches.
#[derive(Debug, Clone, Copy)]
pub struct ReadCacheLimits {
    /// Budget of decoded document versions.
    pub document_bytes: usize,
    /// Budget of per-snapshot read results.
    pub read_bytes: usize,
}

impl ReadCacheLimits {
    /// A total budget of `mib` MiB (estimated), three quarters for decoded
    /// versions and a quarter for per-snapshot reads (which only help
    /// within milliseconds of a commit). 0 disables both caches.
    pub fn total_mib(mib: usize) -> Self {
        let total = mib.saturating_mul(1 << 20);
        Self {
            document_bytes: total / 4 * 3,
            read_bytes: total / 4,
        }
    }
}

impl Default for ReadCacheLimits {
    /// 8 MiB: about 2 KiB of RSS per connection at 3,000 connections. At
    /// 1,000 meetings × 3 × 10/s offered, 48 MiB (~30 MiB more RSS) turned
    /// ~80% of document decodes into hits against ~20% with this budget.
    fn default() -> Self {
        Self::total_mib(8)
    }
}

/// An LRU map with a byte budget.
struct Lru<K: Hash + Eq, V> {
    map: LruCache<K, (V, usize)>,
    bytes: usize,
    budget: usize,
}

impl<K: Hash + Eq, V: Clone> Lru<K, V> {
    fn new(budget: usize) -> Self {
        Self {
            map: LruCache::new_unbounded(),
            bytes: 0,
            budget,
        }
    }

    fn get(&mut self, key: &K) -> Option<V> {
        self.map.get(key).map(|(v, _)| v.clone())
    }

    /// The entry, marked most recently used.
    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|(v, _)| v)
    }

    fn insert(&mut self, key: K, value: V, weight: usize) {
        let weight = weight + ENTRY_OVERHEAD;
        if weight > self.budget / 8 {
            return;
        }
        if let Some((_, old)) = self.map.insert(key, (value, weight)) {
            self.bytes -= old;
        }
        self.bytes += weight;
        while self.bytes > self.budget {
            match self.map.remove_lru() {
                Some((_, (_, w))) => self.bytes -= w,
                None => {
                    self.bytes = 0;
                    break;
                }
            }
        }
    }
}

/// The weight of a decoded document (or rows) of `json_len` JSON bytes.
fn decoded_weight(json_len: usize) -> usize {
    json_len.saturating_mul(DECODED_PER_JSON_BYTE) + 20
}

/// What identifies one read of the committed state (at any timestamp).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ReadKey {
    /// `db.get(id)`.
    Get { id: [u8; 20] },
    /// An index scan.
    Scan {
        index: IndexId,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        order: Order,
        limit: usize,
    },
}

impl ReadKey {
    /// The key of a scan request.
    pub(crate) fn scan(index: IndexId, range: &KeyRange, order: Order, limit: usize) -> Self {
        ReadKey::Scan {
            index,
            start: range.start.clone(),
            end: range.end.clone(),
            order,
            limit,
        }
    }

    fn weight(&self) -> usize {
        match self {
            ReadKey::Get { .. } => 36,
            ReadKey::Scan { start, end, .. } => 48 + start.len() + end.as_ref().map_or(0, Vec::len),
        }
    }
}

/// A cached read and the snapshot timestamps it is known valid at.
#[derive(Debug, Clone)]
struct ReadEntry {
    lo: Timestamp,
    hi: Timestamp,
    read: CachedRead,
}

/// A point read's result: the document's table, its JSON length (for the
/// read limits) and the decoded document.
#[derive(Debug, Clone)]
pub(crate) struct CachedGet {
    pub table: TableNumber,
    pub json_len: usize,
    pub doc: Document,
}

/// An index scan's committed rows, in scan order.
#[derive(Debug)]
pub(crate) struct CachedScan {
    /// `(index key, document)`.
    pub rows: Vec<(Vec<u8>, Document)>,
    /// Total JSON bytes of the rows (for the read limits).
    pub bytes: usize,
}

/// A cached read result.
#[derive(Debug, Clone)]
pub(crate) enum CachedRead {
    Get(Option<CachedGet>),
    Scan(Arc<CachedScan>),
}

/// Hit and miss counts of the read caches since the engine opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCacheStats {
    /// Decoded versions found.
    pub document_hits: u64,
    /// Versions decoded from storage.
    pub document_misses: u64,
    /// Reads answered without the backend.
    pub read_hits: u64,
    /// Reads that went to the backend.
    pub read_misses: u64,
    /// Of the read hits, those served at a snapshot outside the entry's
    /// timestamps after the write-log check.
    pub read_carried: u64,
}

/// What a cache lookup found; indexes [`ReadCache`]'s counters.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    DocumentHit,
    DocumentMiss,
    ReadHit,
    ReadMiss,
    /// A read hit at a snapshot outside the entry's timestamps.
    ReadCarried,
}

/// The engine's read caches.
pub struct ReadCache {
    docs: Mutex<Lru<([u8; 20], Timestamp), Document>>,
    reads: Mutex<Lru<ReadKey, ReadEntry>>,
    /// The write log that carries reads across timestamps (set once the
    /// engine has opened; until then only exact timestamps hit).
    log: OnceLock<Arc<SubscriptionManager>>,
    counts: [AtomicU64; 5],
    /// `connvo_read_cache_total` per outcome, registered on first use: a
    /// counter looked up by its labels on every read was ~1.4% of server CPU
    /// at saturation (the recorder hashes the key and takes a lock).
    counters: OnceLock<[metrics::Counter; 5]>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("document_bytes", &self.docs.lock().bytes)
            .field("read_bytes", &self.reads.lock().bytes)
            .finish()
    }
}

impl ReadCache {
    /// Empty caches with the given budgets.
    pub(crate) fn new(limits: ReadCacheLimits) -> Self {
        Self {
            docs: Mutex::new(Lru::new(limits.document_bytes)),
            reads: Mutex::new(Lru::new(limits.read_bytes)),
            log: OnceLock::new(),
            counts: Default::default(),
            counters: OnceLock::new(),
        }
    }

    /// Lets reads be carried across timestamps with `log`'s write log.
    pub(crate) fn attach_log(&self, log: Arc<SubscriptionManager>) {
        // Set once, by `Database::open`; a second call changes nothing.
        let _ = self.log.set(log);
    }

    fn count(&self, outcome: Outcome) {
        self.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
        let counters = self.counters.get_or_init(|| {
            [
                Outcome::DocumentHit,
                Outcome::DocumentMiss,
                Outcome::ReadHit,
                Outcome::ReadMiss,
                Outcome::ReadCarried,
            ]
            .map(|o| {
                let (cache, label) = match o {
                    Outcome::DocumentHit => ("document", "hit"),
                    Outcome::DocumentMiss => ("document", "miss"),
                    Outcome::ReadHit => ("read", "hit"),
                    Outcome::ReadMiss => ("read", "miss"),
                    Outcome::ReadCarried => ("read", "carried"),
                };
                metrics::counter!("connvo_read_cache_total", "cache" => cache, "outcome" => label)
            })
        });
        counters[outcome as usize].increment(1);
    }

    /// Hit and miss counts so far.
    pub fn stats(&self) -> ReadCacheStats {
        let c = |o: Outcome| self.counts[o as usize].load(Ordering::Relaxed);
        ReadCacheStats {
            document_hits: c(Outcome::DocumentHit),
            document_misses: c(Outcome::DocumentMiss),
            read_hits: c(Outcome::ReadHit) + c(Outcome::ReadCarried),
            read_misses: c(Outcome::ReadMiss),
            read_carried: c(Outcome::ReadCarried),
        }
    }

    /// Decodes a stored version, or returns the cached decoding.
    pub(crate) fn decode(&self, stored: &StoredDocument) -> Result<Document> {
        let Ok(id) = <[u8; 20]>::try_from(stored.id.as_slice()) else {
            // Not a document id; decoding reports the corruption.
            return Document::from_stored(stored);
        };
        let key = (id, stored.ts);
        if let Some(doc) = self.docs.lock().get(&key) {
            self.count(Outcome::DocumentHit);
            return Ok(doc);
        }
        self.count(Outcome::DocumentMiss);
        let doc = Document::from_stored(stored)?;
        self.docs
            .lock()
            .insert(key, doc.clone(), decoded_weight(stored.json.len()));
        Ok(doc)
    }

    /// Records a version written at `ts` (its JSON length as the weight).
    pub(crate) fn put_version(
        &self,
        id: DocumentId,
        ts: Timestamp,
        doc: Document,
        json_len: usize,
    ) {
        self.docs
            .lock()
            .insert((id.to_bytes(), ts), doc, decoded_weight(json_len));
    }

    /// The cached result of the read `key` at snapshot `ts`, if the cache
    /// holds it at `ts` or, with `interval` (the read's keys) given, the
    /// write log shows that no commit between the entry's timestamps and
    /// `ts` wrote into it. Without `interval` only an exact hit counts (for
    /// reads whose rows can change without a key inside the interval being
    /// written).
    pub(crate) fn read(
        &self,
        key: &ReadKey,
        ts: Timestamp,
        interval: Option<&IntervalProbe<'_>>,
    ) -> Option<CachedRead> {
        let (lo, hi, read) = {
            let mut reads = self.reads.lock();
            let Some(entry) = reads.get_mut(key) else {
                drop(reads);
                self.count(Outcome::ReadMiss);
                return None;
            };
            if entry.lo <= ts && ts <= entry.hi {
                let read = entry.read.clone();
                drop(reads);
                self.count(Outcome::ReadHit);
                return Some(read);
            }
            (entry.lo, entry.hi, entry.read.clone())
        };
        let (from, to) = if ts > hi { (hi, ts) } else { (ts, lo) };
        let unchanged = self.log.get().zip(interval).and_then(|(log, interval)| {
            log.unchanged_between(from, to, interval, MAX_CHECKED_COMMITS)
        });
        if unchanged != Some(true) {
            self.count(Outcome::ReadMiss);
            return None;
        }
        {
            let mut reads = self.reads.lock();
            // Unless another read replaced the entry meanwhile.
            if let Some(entry) = reads.get_mut(key)
                && (entry.lo, entry.hi) == (lo, hi)
            {
                entry.lo = lo.min(ts);
                entry.hi = hi.max(ts);
            }
        }
        self.count(Outcome::ReadCarried);
        Some(read)
    }

    /// Stores the result of the read `key` at snapshot `ts`, unless the
    /// cache already holds it at `ts` or at a later snapshot.
    pub(crate) fn put_read(&self, key: ReadKey, ts: Timestamp, value: CachedRead) {
        let payload = match &value {
            CachedRead::Get(None) => 0,
            CachedRead::Get(Some(g)) => decoded_weight(g.json_len),
            CachedRead::Scan(s) => {
                decoded_weight(s.bytes) + s.rows.iter().map(|(k, _)| k.len() + 16).sum::<usize>()
            }
        };
        let weight = key.weight() + payload;
        let mut reads = self.reads.lock();
        if reads.get_mut(&key).is_some_and(|entry| entry.hi >= ts) {
            return;
        }
        reads.insert(
            key,
            ReadEntry {
                lo: ts,
                hi: ts,
                read: value,
            },
            weight,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_evicts_the_least_recently_used() {
        let mut lru: Lru<u32, u32> = Lru::new(8 * (ENTRY_OVERHEAD + 100));
        for k in 0..8 {
            lru.insert(k, k, 100);
        }
        assert_eq!(lru.map.len(), 8);
        // Touch 0 so that 1 is the least recently used.
        assert_eq!(lru.get(&0), Some(0));
        lru.insert(8, 8, 100);
        assert_eq!(lru.get(&1), None);
        assert_eq!(lru.get(&0), Some(0));
        assert_eq!(lru.get(&8), Some(8));
        assert!(lru.bytes <= lru.budget);
    }

    #[test]
    fn heavy_entries_are_not_cached_and_replacements_are_reweighed() {
        let mut lru: Lru<u32, u32> = Lru::new(8000);
        lru.insert(1, 1, 2000);
        assert_eq!(lru.get(&1), None);
        lru.insert(2, 2, 100);
        lru.insert(2, 3, 300);
        assert_eq!(lru.get(&2), Some(3));
        assert_eq!(lru.bytes, 300 + ENTRY_OVERHEAD);
    }
}
