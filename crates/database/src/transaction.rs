//! Transactions: reads at one snapshot, buffered writes, a recorded read set.
//!
//! A [`Transaction`] reads from one persistence [`Snapshot`] (so every read of
//! a query sees one consistent state), overlays its own pending writes (so a
//! mutation reads what it wrote), and records every key interval it observed
//! in its [`ReadSet`]. Committing hands the read set and writes to the
//! committer, which validates them against every commit made since the
//! snapshot (optimistic concurrency control).

use std::collections::BTreeMap;
use std::sync::Arc;

use errors::{Error, Result};
use persistence::{KeyRange, Order, Snapshot, Timestamp};
use values::{DocumentId, Value, keys};

use crate::cache::{CachedGet, CachedRead, CachedScan, ReadCache, ReadKey};
use crate::document::{CREATION_TIME_FIELD, Document, ID_FIELD, IndexKey, index_keys};
use crate::limits;
use crate::query::CursorPos;
use crate::readset::{IntervalProbe, ReadInterval, ReadSet};
use crate::schema::{BY_ID, IndexDef, IndexKind, Schema, Table};
use crate::{Clock, IdGenerator};

/// The parts of the engine a transaction needs.
#[derive(Clone)]
pub struct TxEnv {
    /// The schema.
    pub schema: Arc<Schema>,
    /// The clock (for `_creationTime`).
    pub clock: Arc<dyn Clock>,
    /// The id generator.
    pub ids: Arc<dyn IdGenerator>,
    /// Hands out strictly increasing `_creationTime`s.
    pub creation_times: Arc<CreationTimes>,
    /// Decoded reads shared by every transaction (see [`crate::cache`]).
    pub(crate) cache: Arc<ReadCache>,
}

/// Strictly increasing `_creationTime` values (ms, fractional): the clock's
/// time, or just above the previous value when the clock has not moved, so
/// documents inserted in the same millisecond keep their insertion order in
/// every index (ties are otherwise broken by the random id).
#[derive(Debug, Default)]
pub struct CreationTimes {
    last_bits: std::sync::atomic::AtomicU64,
}

impl CreationTimes {
    /// The step added when the clock has not advanced (representable at
    /// epoch-millisecond magnitudes, whose resolution is 2^-12 ms).
    const STEP_MS: f64 = 1.0 / 1024.0;

    /// The next creation time for a clock reading of `now_ms`.
    pub fn next(&self, now_ms: f64) -> f64 {
        use std::sync::atomic::Ordering;
        let mut prev_bits = self.last_bits.load(Ordering::Acquire);
        loop {
            let prev = f64::from_bits(prev_bits);
            let next = if now_ms > prev {
                now_ms
            } else {
                prev + Self::STEP_MS
            };
            match self.last_bits.compare_exchange_weak(
                prev_bits,
                next.to_bits(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return next,
                Err(actual) => prev_bits = actual,
            }
        }
    }
}

impl std::fmt::Debug for TxEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxEnv").finish_non_exhaustive()
    }
}

/// A document write waiting for commit.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    /// The document's table.
    pub table: Arc<Table>,
    /// The document id.
    pub id: DocumentId,
    /// The version in the snapshot (`None` for an insert).
    pub old: Option<Document>,
    /// The new version (`None` for a delete).
    pub new: Option<Document>,
    /// Keys of `new` per index, computed when a scan of this transaction
    /// first overlays the write on that index (a batch mutation that scans
    /// once per inserted document would otherwise re-encode every earlier
    /// insert's keys on every scan). Cleared whenever `new` changes.
    overlay_keys: Vec<(persistence::IndexId, Vec<IndexKey>)>,
}

impl PendingWrite {
    /// The new version and its keys in `index` (memoized); `None` for a
    /// delete.
    fn new_keys(&mut self, index: &IndexDef) -> Option<(&Document, &[IndexKey])> {
        let new = self.new.as_ref()?;
        let at = match self.overlay_keys.iter().position(|(id, _)| *id == index.id) {
            Some(at) => at,
            None => {
                self.overlay_keys.push((index.id, index_keys(index, new)));
                self.overlay_keys.len() - 1
            }
        };
        Some((new, &self.overlay_keys[at].1))
    }
}

/// Counters checked against [`crate::limits`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TxStats {
    /// Index rows and documents read.
    pub documents_scanned: usize,
    /// Bytes of document JSON read.
    pub bytes_read: usize,
    /// Index ranges read.
    pub ranges_read: usize,
    /// Documents written.
    pub documents_written: usize,
    /// Bytes written.
    pub bytes_written: usize,
}

/// The result of one index scan.
#[derive(Debug, Clone)]
pub struct ScanResult {
    /// `(index key, document)` in scan order.
    pub rows: Vec<(Vec<u8>, Document)>,
    /// Whether the range was read to its end.
    pub exhausted: bool,
}

/// A unit of reads and writes at one snapshot.
pub struct Transaction {
    env: TxEnv,
    snapshot: Arc<dyn Snapshot>,
    read_set: ReadSet,
    writes: BTreeMap<[u8; 20], PendingWrite>,
    stats: TxStats,
    writable: bool,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("ts", &self.snapshot.ts())
            .field("reads", &self.read_set.len())
            .field("writes", &self.writes.len())
            .finish()
    }
}

/// What the committer needs from a finished transaction.
#[derive(Debug)]
pub struct CommitRequest {
    /// The snapshot timestamp the transaction read at.
    pub read_ts: Timestamp,
    /// Everything it read.
    pub read_set: ReadSet,
    /// Everything it wrote, in id order.
    pub writes: Vec<PendingWrite>,
}

fn write_limit(what: &str, limit: usize, actual: usize) -> Error {
    Error::limit(format!(
        "Transaction {what} limit exceeded: {actual} > {limit}"
    ))
}

impl Transaction {
    /// A transaction over `snapshot`. Read-only unless `writable`.
    pub fn new(env: TxEnv, snapshot: Arc<dyn Snapshot>, writable: bool) -> Self {
        Self {
            env,
            snapshot,
            read_set: ReadSet::new(),
            writes: BTreeMap::new(),
            stats: TxStats::default(),
            writable,
        }
    }

    /// The snapshot timestamp.
    pub fn ts(&self) -> Timestamp {
        self.snapshot.ts()
    }

    /// The schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.env.schema
    }

    /// The engine environment (clock, ids).
    pub fn env(&self) -> &TxEnv {
        &self.env
    }

    /// The read set so far.
    pub fn read_set(&self) -> &ReadSet {
        &self.read_set
    }

    /// Counters so far.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    /// Whether any write is pending.
    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// Splits the transaction into what the committer needs.
    pub fn into_commit(self) -> CommitRequest {
        CommitRequest {
            read_ts: self.snapshot.ts(),
            read_set: self.read_set,
            writes: self.writes.into_values().collect(),
        }
    }

    /// Consumes the transaction, returning its read set (for queries).
    pub fn into_read_set(self) -> ReadSet {
        self.read_set
    }

    fn table_of(&self, id: &DocumentId) -> Result<Arc<Table>> {
        self.env
            .schema
            .table_by_number(id.table())
            .cloned()
            .ok_or_else(|| Error::validation(format!("Invalid id \"{id}\": unknown table")))
    }

    /// Parses an id string and checks that it belongs to `table`.
    pub fn normalize_id(&self, table: &str, id: &str) -> Option<DocumentId> {
        let table = self.env.schema.table(table)?;
        DocumentId::decode(id).filter(|d| d.table() == table.number)
    }

    fn note_read(&mut self, interval: ReadInterval) -> Result<()> {
        self.stats.ranges_read += 1;
        if self.stats.ranges_read > limits::MAX_INDEX_RANGES {
            return Err(write_limit(
                "index ranges read",
                limits::MAX_INDEX_RANGES,
                self.stats.ranges_read,
            ));
        }
        self.read_set.add(interval);
        Ok(())
    }

    fn note_scanned(&mut self, docs: usize, bytes: usize) -> Result<()> {
        self.stats.documents_scanned += docs;
        self.stats.bytes_read += bytes;
        if self.stats.documents_scanned > limits::MAX_DOCUMENTS_SCANNED {
            return Err(write_limit(
                "documents scanned",
                limits::MAX_DOCUMENTS_SCANNED,
                self.stats.documents_scanned,
            ));
        }
        if self.stats.bytes_read > limits::MAX_BYTES_READ {
            return Err(write_limit(
                "bytes read",
                limits::MAX_BYTES_READ,
                self.stats.bytes_read,
            ));
        }
        Ok(())
    }

    /// Reads one document by id (`db.get`). Records the point in the read set.
    pub async fn get(&mut self, id: DocumentId) -> Result<Option<Document>> {
        let table = self.table_of(&id)?;
        let id_bytes = id.to_bytes();
        if let Some(w) = self.writes.get(&id_bytes) {
            return Ok(w.new.clone());
        }
        let by_id = table
            .index(BY_ID)
            .ok_or_else(|| Error::internal("table without by_id"))?;
        let mut key = Vec::with_capacity(21);
        keys::encode_id(&mut key, &id);
        let mut end = key.clone();
        end.push(0);
        let interval = ReadInterval {
            index: by_id.id,
            range: KeyRange {
                start: key.clone(),
                end: Some(end),
            },
            bucket: Some(key),
        };
        let ts = self.snapshot.ts();
        let key = ReadKey::Get { id: id_bytes };
        let cached = self.env.cache.read(
            &key,
            ts,
            Some(&IntervalProbe::new(
                interval.index,
                &interval.range,
                interval.bucket.as_deref(),
            )),
        );
        self.note_read(interval)?;
        let found = match cached {
            Some(CachedRead::Get(found)) => found,
            _ => {
                let cache = &self.env.cache;
                let found = match self.snapshot.get(&id_bytes).await? {
                    None => None,
                    Some(stored) => Some(CachedGet {
                        table: stored.table,
                        json_len: stored.json.len(),
                        doc: cache.decode(&stored)?,
                    }),
                };
                cache.put_read(key, ts, CachedRead::Get(found.clone()));
                found
            }
        };
        let Some(found) = found else {
            return Ok(None);
        };
        self.note_scanned(1, found.json_len)?;
        if found.table != table.number {
            return Ok(None);
        }
        Ok(Some(found.doc))
    }

    /// The committed rows of an index scan at this snapshot (no pending
    /// writes), from the engine's read cache when the same scan already ran
    /// at this snapshot's timestamp or, for a database index, at one with
    /// the same rows in `range` (see [`crate::cache`]).
    ///
    /// Search-index scans are not carried across timestamps: an edit that
    /// keeps a term writes no key for it (see `engine::diff_index_keys`), so
    /// the log cannot tell that the rows' documents changed.
    async fn committed_scan(
        &self,
        index: &IndexDef,
        range: &KeyRange,
        bucket: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Arc<CachedScan>> {
        let cache = &self.env.cache;
        let ts = self.snapshot.ts();
        let key = ReadKey::scan(index.id, range, order, limit);
        let carry = match index.kind {
            IndexKind::Search { .. } => None,
            _ => Some(IntervalProbe::new(index.id, range, bucket)),
        };
        if let Some(CachedRead::Scan(found)) = cache.read(&key, ts, carry.as_ref()) {
            return Ok(found);
        }
        let stored = self
            .snapshot
            .index_scan(index.id, range, order, limit)
            .await?;
        let bytes = stored.iter().map(|r| r.doc.json.len()).sum();
        let mut rows = Vec::with_capacity(stored.len());
        for row in stored {
            let doc = cache.decode(&row.doc)?;
            rows.push((row.key, doc));
        }
        let scan = Arc::new(CachedScan { rows, bytes });
        cache.put_read(key, ts, CachedRead::Scan(Arc::clone(&scan)));
        Ok(scan)
    }

    /// Scans `range` of `index` of `table` in `order`, starting after `after`,
    /// returning at most `limit` rows (pending writes included).
    // The arguments are the parts of one index scan request; callers build
    // them from different sources (query builder, scheduler), so a struct
    // would only move the same list elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub async fn scan(
        &mut self,
        table: &Arc<Table>,
        index: &IndexDef,
        range: &KeyRange,
        bucket: Option<Vec<u8>>,
        order: Order,
        after: Option<&CursorPos>,
        limit: usize,
    ) -> Result<ScanResult> {
        let mut range = range.clone();
        match after {
            None => {}
            Some(CursorPos::End) => {
                return Ok(ScanResult {
                    rows: Vec::new(),
                    exhausted: true,
                });
            }
            Some(CursorPos::After(key)) => match order {
                Order::Asc => {
                    let mut start = key.clone();
                    start.push(0);
                    if start > range.start {
                        range.start = start;
                    }
                }
                Order::Desc => {
                    if range.end.as_ref().is_none_or(|end| key < end) {
                        range.end = Some(key.clone());
                    }
                }
            },
        }
        if limit == 0 {
            return Ok(ScanResult {
                rows: Vec::new(),
                exhausted: false,
            });
        }
        // Only a pending write that replaces or deletes a committed document
        // can hide a committed row of the range (its committed version is
        // skipped below), so only those need extra rows fetched; inserts
        // never hide anything.
        let hiding = self
            .writes
            .values()
            .filter(|w| w.table.number == table.number && w.old.is_some())
            .count();
        let fetch = limit.saturating_add(hiding);
        let committed = self
            .committed_scan(index, &range, bucket.as_deref(), order, fetch)
            .await?;
        let persisted_exhausted = committed.rows.len() < fetch;
        let horizon = committed.rows.last().map(|(key, _)| key.clone());
        let bytes = committed.bytes;
        let scanned = committed.rows.len();
        let mut rows: Vec<(Vec<u8>, Document)> = Vec::with_capacity(scanned);
        for (key, doc) in &committed.rows {
            if !self.writes.is_empty() && self.writes.contains_key(&doc.id().to_bytes()) {
                continue;
            }
            rows.push((key.clone(), doc.clone()));
        }
        for w in self.writes.values_mut() {
            if w.table.number != table.number {
                continue;
            }
            let Some((new, keys)) = w.new_keys(index) else {
                continue;
            };
            // A search index has one key per term; several may lie in range.
            for IndexKey { bytes: key, .. } in keys {
                if !range.contains(key) {
                    continue;
                }
                let within = persisted_exhausted
                    || horizon.as_ref().is_some_and(|h| match order {
                        Order::Asc => key <= h,
                        Order::Desc => key >= h,
                    });
                if within {
                    rows.push((key.clone(), new.clone()));
                }
            }
        }
        match order {
            Order::Asc => rows.sort_by(|a, b| a.0.cmp(&b.0)),
            Order::Desc => rows.sort_by(|a, b| b.0.cmp(&a.0)),
        }
        let exhausted = persisted_exhausted && rows.len() <= limit;
        rows.truncate(limit);
        let observed = if exhausted {
            range.clone()
        } else {
            match (order, rows.last()) {
                (Order::Asc, Some((last, _))) => {
                    let mut end = last.clone();
                    end.push(0);
                    KeyRange {
                        start: range.start.clone(),
                        end: Some(end),
                    }
                }
                (Order::Desc, Some((last, _))) => KeyRange {
                    start: last.clone(),
                    end: range.end.clone(),
                },
                (_, None) => range.clone(),
            }
        };
        self.note_read(ReadInterval {
            index: index.id,
            range: observed,
            bucket,
        })?;
        self.note_scanned(scanned, bytes)?;
        Ok(ScanResult { rows, exhausted })
    }

    /// Records point reads (`by_id`) of documents of `table` that a search
    /// looked at, so that any later write to one of them conflicts with
    /// this transaction and invalidates its subscription. Not counted
    /// against [`limits::MAX_INDEX_RANGES`]: the documents were already
    /// counted as scanned.
    pub(crate) fn note_documents_read(
        &mut self,
        table: &Table,
        ids: impl IntoIterator<Item = DocumentId>,
    ) -> Result<()> {
        let by_id = table
            .index(BY_ID)
            .ok_or_else(|| Error::internal("table without by_id"))?
            .id;
        for id in ids {
            let mut key = Vec::with_capacity(21);
            keys::encode_id(&mut key, &id);
            let mut end = key.clone();
            end.push(0);
            self.read_set.add(ReadInterval {
                index: by_id,
                range: KeyRange {
                    start: key.clone(),
                    end: Some(end),
                },
                bucket: Some(key),
            });
        }
        Ok(())
    }

    /// Runs a full-text search over the search index `index` of `table`
    /// (`withSearchIndex`): at most `limit` documents (capped at
    /// [`crate::search::MAX_SEARCH_RESULTS`]), most relevant first. Reads
    /// pending writes and records every scanned interval in the read set.
    pub async fn search(
        &mut self,
        table: &Arc<Table>,
        index: &IndexDef,
        filter: &crate::search::SearchFilter,
        limit: usize,
    ) -> Result<Vec<Document>> {
        crate::search::search(self, table, index, filter, limit).await
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::bad_request(
                "This function is read-only: queries cannot write to the database",
            ))
        }
    }

    fn put(
        &mut self,
        table: Arc<Table>,
        id: DocumentId,
        old: Option<Document>,
        new: Option<Document>,
    ) -> Result<()> {
        if let Some(doc) = &new {
            if let Some(validator) = &table.validator {
                validator
                    .validate_document(doc.value(), &[ID_FIELD, CREATION_TIME_FIELD])
                    .map_err(|e| {
                        Error::validation(format!(
                            "Document for table \"{}\" does not match the schema: {}",
                            table.name,
                            e.message()
                        ))
                    })?;
            }
            values::check_document_limits(doc.value())?;
            self.stats.bytes_written += doc.value().size();
        }
        self.stats.documents_written += 1;
        if self.stats.documents_written > limits::MAX_DOCUMENTS_WRITTEN {
            return Err(write_limit(
                "documents written",
                limits::MAX_DOCUMENTS_WRITTEN,
                self.stats.documents_written,
            ));
        }
        if self.stats.bytes_written > limits::MAX_BYTES_WRITTEN {
            return Err(write_limit(
                "bytes written",
                limits::MAX_BYTES_WRITTEN,
                self.stats.bytes_written,
            ));
        }
        let key = id.to_bytes();
        match self.writes.get_mut(&key) {
            Some(existing) => {
                existing.new = new;
                existing.overlay_keys.clear();
            }
            None => {
                self.writes.insert(
                    key,
                    PendingWrite {
                        table,
                        id,
                        old,
                        new,
                        overlay_keys: Vec::new(),
                    },
                );
            }
        }
        Ok(())
    }

    fn user_object(value: Value, what: &str) -> Result<BTreeMap<String, Value>> {
        let Value::Object(fields) = value else {
            return Err(Error::validation(format!(
                "{what}: a document must be an object"
            )));
        };
        if let Some(k) = fields.keys().find(|k| k.starts_with('_')) {
            return Err(Error::validation(format!(
                "{what}: field \"{k}\" starts with '_', which is reserved for system fields"
            )));
        }
        Ok(fields)
    }

    /// Inserts a new document (`db.insert`) and returns its id.
    pub fn insert(&mut self, table: &str, value: Value) -> Result<DocumentId> {
        self.check_writable()?;
        let table = Arc::clone(self.env.schema.require_table(table)?);
        let fields = Self::user_object(value, "insert")?;
        let id = DocumentId::new(table.number, self.env.ids.document_id_bytes());
        let creation_time = self.env.creation_times.next(self.env.clock.now_ms());
        let doc = Document::new(id, creation_time, fields);
        self.put(table, id, None, Some(doc))?;
        Ok(id)
    }

    async fn existing(&mut self, id: DocumentId) -> Result<(Arc<Table>, Document)> {
        let table = self.table_of(&id)?;
        match self.get(id).await? {
            Some(doc) => Ok((table, doc)),
            None => Err(Error::not_found(format!("Document {id} not found"))),
        }
    }

    fn original(&self, id: &DocumentId, current: &Document) -> Option<Document> {
        match self.writes.get(&id.to_bytes()) {
            Some(w) => w.old.clone(),
            None => Some(current.clone()),
        }
    }

    /// Shallow-merges fields into a document (`db.patch`). A `None` value
    /// removes the field (JavaScript's `undefined`).
    pub async fn patch(
        &mut self,
        id: DocumentId,
        fields: BTreeMap<String, Option<Value>>,
    ) -> Result<()> {
        self.check_writable()?;
        let (table, current) = self.existing(id).await?;
        let mut merged = current.user_fields();
        for (k, v) in fields {
            if k.starts_with('_') {
                return Err(Error::validation(format!(
                    "patch: field \"{k}\" starts with '_', which is reserved for system fields"
                )));
            }
            match v {
                Some(v) => merged.insert(k, v),
                None => merged.remove(&k),
            };
        }
        let old = self.original(&id, &current);
        let doc = Document::new(id, current.creation_time(), merged);
        self.put(table, id, old, Some(doc))
    }

    /// Replaces a document's fields (`db.replace`).
    pub async fn replace(&mut self, id: DocumentId, value: Value) -> Result<()> {
        self.check_writable()?;
        let (table, current) = self.existing(id).await?;
        let fields = Self::user_object(value, "replace")?;
        let old = self.original(&id, &current);
        let doc = Document::new(id, current.creation_time(), fields);
        self.put(table, id, old, Some(doc))
    }

    /// Deletes a document (`db.delete`).
    pub async fn delete(&mut self, id: DocumentId) -> Result<()> {
        self.check_writable()?;
        let (table, current) = self.existing(id).await?;
        let old = self.original(&id, &current);
        if old.is_none() {
            // Inserted and deleted in the same transaction: nothing to commit.
            self.writes.remove(&id.to_bytes());
            return Ok(());
        }
        self.put(table, id, old, None)
    }
}
