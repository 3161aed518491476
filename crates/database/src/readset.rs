//! Read sets and write sets: what a transaction observed and what a commit
//! changed, both expressed over index keys.
//!
//! A read is a half-open interval of keys of one index; a write is the set of
//! index keys (old and new) of every document it touched, in every index of
//! its table. A commit invalidates a read set exactly when one of its written
//! keys lies inside one of the read intervals. Point reads (`db.get`) are
//! intervals of the built-in `by_id` index, so they follow the same rule.
//!
//! Intervals whose keys all share one first index component (every query with
//! at least one `eq`) carry that component as their *bucket*; the
//! subscription index looks them up by bucket instead of scanning.
//!
//! Validating a transaction walks every commit logged since its snapshot,
//! which at a thousand commits per second is hundreds of write sets per
//! transaction. A [`WriteFilter`] (computed once per write set) and a
//! [`ReadProbe`] (once per read set) rule out almost all of them with a few
//! bit tests; only a possible overlap pays for the exact key comparison.
//! That comparison is a merge of two sorted lists: the probe holds the read
//! intervals per index sorted and merged, and a write set's keys are sorted
//! by `(index, key)` when it is built, so a check costs `min(R, W) · log
//! max(R, W)` instead of `R · W` (a 200-chunk batch ingest reads ~200
//! intervals and writes ~2,600 keys).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use errors::{Error, Result};
use persistence::{IndexId, KeyRange};

/// Up to this many intervals, overlap checks compare every written key with
/// every interval (a comparison of index ids first, so a few nanoseconds per
/// pair); above it they group the intervals by index in a map first.
const LINEAR_INTERVALS: usize = 32;

/// One observed key interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadInterval {
    /// The index the keys belong to.
    pub index: IndexId,
    /// The keys observed.
    pub range: KeyRange,
    /// The encoded first component shared by every key in the range, if any.
    pub bucket: Option<Vec<u8>>,
}

/// Everything a transaction read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadSet {
    intervals: Vec<ReadInterval>,
}

impl ReadSet {
    /// An empty read set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an interval.
    pub fn add(&mut self, interval: ReadInterval) {
        // Cheap de-duplication of repeated identical reads (a common pattern:
        // access checks re-reading the same document).
        if self.intervals.last() == Some(&interval) {
            return;
        }
        self.intervals.push(interval);
    }

    /// The recorded intervals.
    pub fn intervals(&self) -> &[ReadInterval] {
        &self.intervals
    }

    /// Number of intervals.
    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// The bit patterns [`ReadProbe::may_overlap`] tests write filters with.
    pub fn probe(&self) -> ReadProbe {
        let mut checks: Vec<(u64, BucketBits)> = self
            .intervals
            .iter()
            .map(|r| {
                let bits = match &r.bucket {
                    Some(bucket) => BucketBits::of(r.index, bucket),
                    None => BucketBits::default(),
                };
                (index_bit(r.index), bits)
            })
            .collect();
        // Many intervals share one bucket (every read of one meeting).
        checks.sort_unstable();
        checks.dedup();
        ReadProbe {
            indexes: self
                .intervals
                .iter()
                .fold(0, |bits, r| bits | index_bit(r.index)),
            checks,
            ranges: merge_intervals(&self.intervals),
        }
    }

    /// Whether any key of `writes` falls in this read set, checking the
    /// filter first (see [`ReadProbe`]): same answer as
    /// [`ReadSet::overlaps`], usually without touching a key. When the
    /// filter passes, keys of indexes this read set never touched are
    /// skipped with one bit test each.
    pub fn overlaps_filtered(
        &self,
        probe: &ReadProbe,
        writes: &WriteSet,
        filter: &WriteFilter,
    ) -> bool {
        if !probe.may_overlap(filter) {
            return false;
        }
        if filter.sorted {
            return probe.overlaps_sorted(writes);
        }
        if self.intervals.len() > LINEAR_INTERVALS {
            return self.overlaps(writes);
        }
        writes.keys.iter().any(|w| {
            probe.indexes & index_bit(w.index) != 0
                && self
                    .intervals
                    .iter()
                    .any(|r| r.index == w.index && r.range.contains(&w.key))
        })
    }

    /// Whether any key of `writes` falls in this read set.
    pub fn overlaps(&self, writes: &WriteSet) -> bool {
        if self.intervals.len() <= LINEAR_INTERVALS
            || self.intervals.len() * writes.keys.len() <= 64
        {
            return writes.keys.iter().any(|w| {
                self.intervals
                    .iter()
                    .any(|r| r.index == w.index && r.range.contains(&w.key))
            });
        }
        let mut by_index: HashMap<IndexId, Vec<&KeyRange>> = HashMap::new();
        for r in &self.intervals {
            by_index.entry(r.index).or_default().push(&r.range);
        }
        writes.keys.iter().any(|w| {
            by_index
                .get(&w.index)
                .is_some_and(|ranges| ranges.iter().any(|r| r.contains(&w.key)))
        })
    }
}

/// `intervals` as disjoint ranges sorted by `(index, start)`: overlapping or
/// touching ranges of one index are merged and empty ones dropped, so a key
/// lies in the read set exactly when it lies in the last range starting at
/// or before it.
fn merge_intervals(intervals: &[ReadInterval]) -> Vec<(IndexId, KeyRange)> {
    let mut sorted: Vec<(IndexId, &KeyRange)> = intervals
        .iter()
        .filter(|r| r.range.end.as_ref().is_none_or(|end| r.range.start < *end))
        .map(|r| (r.index, &r.range))
        .collect();
    sorted.sort_unstable_by(|a, b| (a.0, &a.1.start).cmp(&(b.0, &b.1.start)));
    let mut merged: Vec<(IndexId, KeyRange)> = Vec::with_capacity(sorted.len());
    for (index, range) in sorted {
        if let Some((last_index, last)) = merged.last_mut()
            && *last_index == index
        {
            // `last.start <= range.start` by the sort order.
            match &last.end {
                None => continue,
                Some(end) if range.start <= *end => {
                    last.end = match &range.end {
                        None => None,
                        Some(e) if e > end => Some(e.clone()),
                        Some(_) => Some(end.clone()),
                    };
                    continue;
                }
                Some(_) => {}
            }
        }
        merged.push((index, range.clone()));
    }
    merged
}

/// Orders written keys by `(index, key)`, the order [`WriteSet`]s are built
/// in and [`ReadProbe::overlaps_sorted`] searches.
fn key_order(a: &WrittenKey, b: &WrittenKey) -> std::cmp::Ordering {
    (a.index, &a.key).cmp(&(b.index, &b.key))
}

/// The bit of an index in [`WriteFilter::indexes`].
fn index_bit(index: IndexId) -> u64 {
    1u64 << (index.0 % 64)
}

/// Words of [`WriteFilter::buckets`]: 1,024 bits. With 256, a one-chunk
/// transcript ingest (~15 keys) set ~30 bits, so each two-bit test of a
/// read set passed by chance ~1.4% of the time, ~10% per write set for a
/// read set of ten buckets; at saturation (snapshots seconds old, so
/// hundreds of newer commits to validate against) the exact checks that
/// followed took ~8% of server CPU. 1,024 bits cut those chance passes
/// ~16-fold for 96 more bytes per logged commit. (Large batches set most
/// bits either way; they are few.)
const FILTER_WORDS: usize = 16;

/// The two bits of an `(index, bucket)` pair in the 1,024-bit
/// [`WriteFilter::buckets`] (a Bloom filter with two hash functions), each
/// as `(word, mask)`; both masks zero for an interval without a bucket
/// (which then tests only its index bit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct BucketBits([(u8, u64); 2]);

impl BucketBits {
    fn of(index: IndexId, bucket: &[u8]) -> Self {
        // SipHash with fixed keys: deterministic, and fast enough for a few
        // dozen keys per commit.
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one((index.0, bucket));
        let bits = (FILTER_WORDS * 64) as u64;
        let bit = |position: u64| ((position / 64) as u8, 1u64 << (position % 64));
        Self([bit(h % bits), bit((h >> 32) % bits)])
    }

    /// Whether both bits are set in `buckets`.
    fn in_filter(&self, buckets: &[u64; FILTER_WORDS]) -> bool {
        self.0
            .iter()
            .all(|(word, mask)| buckets[*word as usize] & mask == *mask)
    }
}

/// A summary of one write set: which indexes it touches (one bit per index
/// id modulo 64) and a 1,024-bit Bloom filter of its `(index, bucket)` pairs.
/// No false negatives: a key of the write set always sets its bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteFilter {
    indexes: u64,
    buckets: [u64; FILTER_WORDS],
    /// Whether the write set's keys are sorted by `(index, key)` (they are
    /// when the engine built or decoded it), enabling binary searches.
    sorted: bool,
}

impl WriteFilter {
    /// The filter of `writes`.
    pub fn of(writes: &WriteSet) -> Self {
        let mut filter = Self::default();
        for key in &writes.keys {
            filter.indexes |= index_bit(key.index);
            for (word, mask) in BucketBits::of(key.index, key.bucket()).0 {
                filter.buckets[word as usize] |= mask;
            }
        }
        filter.sorted = writes
            .keys
            .is_sorted_by(|a, b| key_order(a, b) != std::cmp::Ordering::Greater);
        filter
    }
}

/// A read set's tests against [`WriteFilter`]s: one `(index bit, bucket
/// bits)` pair per interval; an interval without a bucket tests only its
/// index. Sound because a bucketed interval only holds keys whose first
/// component is its bucket (the same rule the subscription index uses).
#[derive(Debug, Clone, Default)]
pub struct ReadProbe {
    /// The union of the intervals' index bits.
    indexes: u64,
    checks: Vec<(u64, BucketBits)>,
    /// The intervals, merged (see [`merge_intervals`]).
    ranges: Vec<(IndexId, KeyRange)>,
}

impl ReadProbe {
    /// `false` when no key summarized by `filter` can fall in the read set;
    /// `true` when one might.
    pub fn may_overlap(&self, filter: &WriteFilter) -> bool {
        self.checks
            .iter()
            .any(|(index, bits)| filter.indexes & index != 0 && bits.in_filter(&filter.buckets))
    }

    /// Whether a key of `writes` (sorted by `(index, key)`) lies in one of
    /// the probe's ranges: binary searches from the shorter side.
    fn overlaps_sorted(&self, writes: &WriteSet) -> bool {
        let keys = &writes.keys;
        if self.ranges.len() <= keys.len() {
            self.ranges
                .iter()
                .any(|(index, range)| sorted_keys_in(keys, *index, range))
        } else {
            keys.iter().any(|k| {
                self.indexes & index_bit(k.index) != 0 && {
                    let at = self.ranges.partition_point(|(index, range)| {
                        (*index, range.start.as_slice()) <= (k.index, k.key.as_slice())
                    });
                    at > 0 && {
                        let (index, range) = &self.ranges[at - 1];
                        *index == k.index && range.end.as_ref().is_none_or(|end| k.key < *end)
                    }
                }
            })
        }
    }
}

/// One read interval's test against logged write sets, for the read cache
/// ([`crate::cache`]): the rule of a one-interval [`ReadProbe`] (index bit,
/// bucket bits, then a binary search of the sorted keys) without building
/// one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntervalProbe<'a> {
    index: IndexId,
    range: &'a KeyRange,
    /// Zero when the interval has no bucket (only the index bit is tested).
    bucket_bits: BucketBits,
}

impl<'a> IntervalProbe<'a> {
    /// The probe of `range` of `index`, whose keys all start with `bucket`
    /// when one is given.
    pub(crate) fn new(index: IndexId, range: &'a KeyRange, bucket: Option<&[u8]>) -> Self {
        Self {
            index,
            range,
            bucket_bits: bucket.map_or_else(BucketBits::default, |b| BucketBits::of(index, b)),
        }
    }

    /// Whether a key of `writes` lies in the interval.
    pub(crate) fn written(&self, writes: &WriteSet, filter: &WriteFilter) -> bool {
        if filter.indexes & index_bit(self.index) == 0
            || !self.bucket_bits.in_filter(&filter.buckets)
        {
            return false;
        }
        if filter.sorted {
            sorted_keys_in(&writes.keys, self.index, self.range)
        } else {
            writes
                .keys
                .iter()
                .any(|k| k.index == self.index && self.range.contains(&k.key))
        }
    }
}

/// Whether one of `keys` (sorted by `(index, key)`) lies in `range` of
/// `index`: a binary search for the first key at or after the range start.
fn sorted_keys_in(keys: &[WrittenKey], index: IndexId, range: &KeyRange) -> bool {
    let at = keys.partition_point(|k| (k.index, k.key.as_slice()) < (index, &range.start[..]));
    keys.get(at)
        .is_some_and(|k| k.index == index && range.end.as_ref().is_none_or(|end| k.key < *end))
}

/// One index key written by a commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WrittenKey {
    /// The index.
    pub index: IndexId,
    /// The key (old or new) of a written document.
    pub key: Vec<u8>,
    /// Length of the key's first encoded component.
    pub first_len: usize,
}

impl WrittenKey {
    /// The key's first encoded component.
    pub fn bucket(&self) -> &[u8] {
        &self.key[..self.first_len.min(self.key.len())]
    }
}

/// Every index key a commit touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    /// The keys; the engine keeps them sorted by `(index, key)` (see
    /// [`WriteSet::sort`]), which makes overlap checks binary searches. Any
    /// order is correct, unsorted sets are only checked more slowly.
    pub keys: Vec<WrittenKey>,
}

const WRITE_SET_VERSION: u8 = 1;

impl WriteSet {
    /// Sorts the keys by `(index, key)`.
    pub fn sort(&mut self) {
        self.keys.sort_unstable_by(key_order);
    }

    /// Serializes the write set for the commit log (a compact binary form:
    /// version, count, then `index u32 | first_len u32 | key_len u32 | key`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(5 + self.keys.iter().map(|k| 12 + k.key.len()).sum::<usize>());
        out.push(WRITE_SET_VERSION);
        out.extend_from_slice(&(self.keys.len() as u32).to_be_bytes());
        for k in &self.keys {
            out.extend_from_slice(&k.index.0.to_be_bytes());
            out.extend_from_slice(&(k.first_len as u32).to_be_bytes());
            out.extend_from_slice(&(k.key.len() as u32).to_be_bytes());
            out.extend_from_slice(&k.key);
        }
        out
    }

    /// Parses [`WriteSet::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let corrupt = || Error::internal("corrupt write set in commit log");
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(corrupt());
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let u32_of = |b: &[u8]| -> u32 { u32::from_be_bytes([b[0], b[1], b[2], b[3]]) };
        if take(1)?[0] != WRITE_SET_VERSION {
            return Err(corrupt());
        }
        let count = u32_of(take(4)?) as usize;
        let mut keys = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let index = IndexId(u32_of(take(4)?));
            let first_len = u32_of(take(4)?) as usize;
            let len = u32_of(take(4)?) as usize;
            let key = take(len)?.to_vec();
            keys.push(WrittenKey {
                index,
                key,
                first_len,
            });
        }
        let mut ws = Self { keys };
        ws.sort();
        Ok(ws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_set_round_trips() {
        let ws = WriteSet {
            keys: vec![
                WrittenKey {
                    index: IndexId(7),
                    key: vec![1, 2, 3],
                    first_len: 2,
                },
                WrittenKey {
                    index: IndexId(9),
                    key: vec![],
                    first_len: 0,
                },
            ],
        };
        assert_eq!(WriteSet::decode(&ws.encode()).unwrap(), ws);
        assert!(WriteSet::decode(&ws.encode()[..5]).is_err());
    }

    proptest::proptest! {
        /// The filter never hides an overlap, whatever the keys and
        /// intervals, for a whole read set and for one interval alone (bucketed intervals hold keys with their bucket as the
        /// first component, as the engine builds them).
        #[test]
        fn the_filter_has_no_false_negatives(
            reads in proptest::collection::vec((0u32..4, 0u8..4, proptest::option::of(0u8..4), 0u8..8, 1u8..8), 1..6),
            writes in proptest::collection::vec((0u32..4, 0u8..4, 0u8..8), 1..12),
        ) {
            let mut rs = ReadSet::new();
            for (index, first, bucketed, from, width) in reads {
                // Keys are `[first, second]` with first_len 1.
                let (start, end, bucket) = match bucketed {
                    Some(_) => (vec![first, from], vec![first, from.saturating_add(width)], Some(vec![first])),
                    None => (vec![first], vec![first.saturating_add(width)], None),
                };
                rs.add(ReadInterval {
                    index: IndexId(index),
                    range: KeyRange { start, end: Some(end) },
                    bucket,
                });
            }
            let ws = WriteSet {
                keys: writes
                    .into_iter()
                    .map(|(index, first, second)| WrittenKey {
                        index: IndexId(index),
                        key: vec![first, second],
                        first_len: 1,
                    })
                    .collect(),
            };
            let filter = WriteFilter::of(&ws);
            let probe = rs.probe();
            let naive = rs.overlaps(&ws);
            proptest::prop_assert_eq!(rs.overlaps_filtered(&probe, &ws, &filter), naive);
            // Each interval alone, as the read cache tests it.
            let one_by_one = |ws: &WriteSet, filter: &WriteFilter| {
                rs.intervals().iter().map(|r| {
                    let alone = ReadSet { intervals: vec![r.clone()] }.overlaps(ws);
                    (IntervalProbe::new(r.index, &r.range, r.bucket.as_deref()).written(ws, filter), alone)
                }).collect::<Vec<_>>()
            };
            for (probed, alone) in one_by_one(&ws, &filter) {
                proptest::prop_assert_eq!(probed, alone);
            }
            // The same keys sorted take the binary-search path.
            let mut sorted = ws;
            sorted.sort();
            let filter = WriteFilter::of(&sorted);
            proptest::prop_assert!(filter.sorted);
            proptest::prop_assert_eq!(rs.overlaps_filtered(&probe, &sorted, &filter), naive);
            for (probed, alone) in one_by_one(&sorted, &filter) {
                proptest::prop_assert_eq!(probed, alone);
            }
        }

        /// Merged ranges hold exactly the keys of the intervals, for
        /// nested, overlapping, touching, empty and unbounded intervals.
        #[test]
        fn merged_ranges_agree_with_the_intervals(
            reads in proptest::collection::vec((0u32..3, 0u8..6, proptest::option::of(0u8..8)), 1..40),
            writes in proptest::collection::vec((0u32..3, 0u8..9, proptest::option::of(0u8..3)), 1..60),
        ) {
            let mut rs = ReadSet::new();
            for (index, start, end) in reads {
                rs.add(ReadInterval {
                    index: IndexId(index),
                    range: KeyRange { start: vec![start], end: end.map(|e| vec![e]) },
                    bucket: None,
                });
            }
            let mut ws = WriteSet {
                keys: writes
                    .into_iter()
                    .map(|(index, first, second)| WrittenKey {
                        index: IndexId(index),
                        key: std::iter::once(first).chain(second).collect(),
                        first_len: 1,
                    })
                    .collect(),
            };
            ws.sort();
            let probe = rs.probe();
            // Each key on its own, and all of them at once (both search
            // directions: fewer ranges than keys and the reverse).
            for key in &ws.keys {
                let one = WriteSet { keys: vec![key.clone()] };
                proptest::prop_assert_eq!(probe.overlaps_sorted(&one), rs.overlaps(&one), "{:?}", key);
            }
            proptest::prop_assert_eq!(probe.overlaps_sorted(&ws), rs.overlaps(&ws));
        }
    }

    #[test]
    fn the_filter_rules_out_other_buckets_and_indexes() {
        let mut rs = ReadSet::new();
        rs.add(ReadInterval {
            index: IndexId(3),
            range: KeyRange {
                start: vec![7, 0],
                end: Some(vec![7, 255]),
            },
            bucket: Some(vec![7]),
        });
        let probe = rs.probe();
        let ws = |index, first| WriteSet {
            keys: vec![WrittenKey {
                index: IndexId(index),
                key: vec![first, 1],
                first_len: 1,
            }],
        };
        assert!(probe.may_overlap(&WriteFilter::of(&ws(3, 7))));
        assert!(!probe.may_overlap(&WriteFilter::of(&ws(4, 7))));
        // Other buckets of the same index: ruled out unless the two-bit
        // Bloom filter collides (fixed hash, so this is deterministic).
        let others = (0u8..=255)
            .filter(|b| *b != 7 && probe.may_overlap(&WriteFilter::of(&ws(3, *b))))
            .count();
        assert!(others < 8, "{others} of 255 other buckets pass the filter");
    }

    #[test]
    fn overlap_is_exact() {
        let mut rs = ReadSet::new();
        rs.add(ReadInterval {
            index: IndexId(1),
            range: KeyRange {
                start: vec![5],
                end: Some(vec![9]),
            },
            bucket: None,
        });
        let w = |index, key: Vec<u8>| WriteSet {
            keys: vec![WrittenKey {
                index: IndexId(index),
                key,
                first_len: 1,
            }],
        };
        assert!(rs.overlaps(&w(1, vec![5])));
        assert!(rs.overlaps(&w(1, vec![8, 255])));
        assert!(!rs.overlaps(&w(1, vec![9])));
        assert!(!rs.overlaps(&w(1, vec![4, 255])));
        assert!(!rs.overlaps(&w(2, vec![6])));
    }
}
