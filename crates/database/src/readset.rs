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

use std::collections::HashMap;

use errors::{Error, Result};
use persistence::{IndexId, KeyRange};

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

    /// Whether any key of `writes` falls in this read set.
    pub fn overlaps(&self, writes: &WriteSet) -> bool {
        if self.intervals.len() * writes.keys.len() <= 64 {
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
    /// The keys, in no particular order.
    pub keys: Vec<WrittenKey>,
}

const WRITE_SET_VERSION: u8 = 1;

impl WriteSet {
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
        Ok(Self { keys })
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
