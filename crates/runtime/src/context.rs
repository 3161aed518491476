//! Function contexts, mirroring Convex's `ctx`: `db`, `auth`, `scheduler`,
//! and for actions `runQuery` / `runMutation` / `runAction` and an HTTP client.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use auth::Identity;
use database::query::{CursorPos, decode_cursor, encode_cursor};
use database::schema::{BY_CREATION_TIME, BY_ID, IndexKind, Table};
use database::search::MAX_SEARCH_RESULTS;
use database::{
    Document, IndexRange, Order, Page, PaginationOpts, SearchFilter, Transaction, limits,
};
use errors::{Error, Result};
use parking_lot::Mutex;
use persistence::KeyRange;
use serde::Serialize;
use serde::de::DeserializeOwned;
use values::{DocumentId, Value};

use crate::exec::RuntimeInner;
use crate::scheduler::{self, JobId};

pub(crate) struct TxState {
    pub(crate) tx: Transaction,
    pub(crate) journal_in: Option<String>,
    pub(crate) journal_out: Option<String>,
    pub(crate) paginated: bool,
}

/// Collected `console.log`-style lines of one function run.
#[derive(Debug, Clone, Default)]
pub struct LogLines {
    lines: Arc<Mutex<Vec<String>>>,
}

const MAX_LOG_LINES: usize = 256;
const MAX_LOG_LINE_BYTES: usize = 4096;

impl LogLines {
    fn push(&self, level: &str, message: &str) {
        let mut lines = self.lines.lock();
        if lines.len() >= MAX_LOG_LINES {
            return;
        }
        let mut msg = message.to_owned();
        if msg.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
            msg.push_str(" (truncated due to length)");
        }
        lines.push(format!("[{level}] {msg}"));
    }

    /// A copy of the lines collected so far.
    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.lines.lock().clone()
    }

    /// Takes the lines collected so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock())
    }
}

/// The caller's identity (`ctx.auth`).
#[derive(Debug, Clone, Default)]
pub struct Auth {
    identity: Option<Arc<Identity>>,
}

impl Auth {
    /// An auth handle for an identity (or anonymous).
    pub fn new(identity: Option<Arc<Identity>>) -> Self {
        Self { identity }
    }

    /// The verified identity of the caller, if any (`ctx.auth.getUserIdentity()`).
    pub fn get_user_identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// The identity, or an `UNAUTHORIZED` error.
    pub fn require(&self) -> Result<&Identity> {
        self.get_user_identity()
            .ok_or_else(|| Error::unauthorized("Authentication required"))
    }

    pub(crate) fn shared(&self) -> Option<Arc<Identity>> {
        self.identity.clone()
    }
}

/// Read access to the database inside a query or mutation (`ctx.db`).
#[derive(Clone)]
pub struct DbReader {
    pub(crate) state: Arc<tokio::sync::Mutex<TxState>>,
}

impl std::fmt::Debug for DbReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbReader")
    }
}

impl DbReader {
    /// Reads a document by id (`ctx.db.get`).
    pub async fn get(&self, id: DocumentId) -> Result<Option<Document>> {
        self.state.lock().await.tx.get(id).await
    }

    /// Reads a document by id string, checking that the id belongs to
    /// `table`; a malformed id or one of another table is a validation error.
    pub async fn get_by_str(&self, table: &str, id: &str) -> Result<Option<Document>> {
        let id = self.normalize_id(table, id).await.ok_or_else(|| {
            Error::validation(format!("Invalid id \"{id}\" for table \"{table}\""))
        })?;
        self.get(id).await
    }

    /// Parses an id string for `table` (`ctx.db.normalizeId`).
    pub async fn normalize_id(&self, table: &str, id: &str) -> Option<DocumentId> {
        self.state.lock().await.tx.normalize_id(table, id)
    }

    /// Starts a query over `table` (`ctx.db.query`).
    pub fn query(&self, table: &str) -> QueryBuilder {
        QueryBuilder {
            db: self.clone(),
            table: table.to_owned(),
            index: None,
            range: IndexRange::all(),
            order: Order::Asc,
            order_set: false,
            filter: None,
            search: None,
            misuse: None,
        }
    }
}

/// Read-write access to the database inside a mutation.
///
/// System tables (names starting with `_`: scheduled jobs, crons, WebSocket
/// mutation results) are readable, but only the runtime writes them: a
/// function's `ctx.db` refuses such writes with `FORBIDDEN`, so no public
/// function can forge a job state or a stored mutation result.
#[derive(Clone, Debug)]
pub struct DbWriter {
    reader: DbReader,
    system: bool,
}

impl Deref for DbWriter {
    type Target = DbReader;
    fn deref(&self) -> &DbReader {
        &self.reader
    }
}

impl DbWriter {
    /// A writer that may also write system tables. For the runtime's own
    /// bookkeeping and for tests; domain code has no reason to use it.
    pub fn system_writer(&self) -> DbWriter {
        DbWriter {
            reader: self.reader.clone(),
            system: true,
        }
    }

    fn check_table(&self, table: &str) -> Result<()> {
        if !self.system && table.starts_with('_') {
            return Err(Error::forbidden(format!(
                "System table \"{table}\" is written only by the runtime"
            )));
        }
        Ok(())
    }

    async fn check_id(&self, id: DocumentId) -> Result<()> {
        if self.system {
            return Ok(());
        }
        let name = self
            .state
            .lock()
            .await
            .tx
            .schema()
            .table_by_number(id.table())
            .map(|t| t.name.clone());
        match name {
            Some(name) => self.check_table(&name),
            None => Ok(()),
        }
    }

    /// Inserts a document (`ctx.db.insert`); `value` serializes to an object.
    pub async fn insert(&self, table: &str, value: impl Serialize) -> Result<DocumentId> {
        self.insert_value(table, values::to_value(&value)?).await
    }

    /// [`DbWriter::insert`] of a [`Value`] built by the caller: no round
    /// trip through `serde_json` (for documents written on hot paths, such
    /// as every ingested transcript chunk).
    pub async fn insert_value(&self, table: &str, value: Value) -> Result<DocumentId> {
        self.check_table(table)?;
        self.state.lock().await.tx.insert(table, value)
    }

    /// Shallow-merges the fields of `fields` (an object) into a document
    /// (`ctx.db.patch`). Use [`DbWriter::patch_fields`] to remove fields.
    pub async fn patch(&self, id: DocumentId, fields: impl Serialize) -> Result<()> {
        let Value::Object(map) = values::to_value(&fields)? else {
            return Err(Error::validation("patch: fields must be an object"));
        };
        self.patch_fields(id, map.into_iter().map(|(k, v)| (k, Some(v))).collect())
            .await
    }

    /// Patches with explicit removals (`None` removes the field).
    pub async fn patch_fields(
        &self,
        id: DocumentId,
        fields: BTreeMap<String, Option<Value>>,
    ) -> Result<()> {
        self.check_id(id).await?;
        self.state.lock().await.tx.patch(id, fields).await
    }

    /// Replaces a document (`ctx.db.replace`).
    pub async fn replace(&self, id: DocumentId, value: impl Serialize) -> Result<()> {
        self.check_id(id).await?;
        let value = values::to_value(&value)?;
        self.state.lock().await.tx.replace(id, value).await
    }

    /// Deletes a document (`ctx.db.delete`).
    pub async fn delete(&self, id: DocumentId) -> Result<()> {
        self.check_id(id).await?;
        self.state.lock().await.tx.delete(id).await
    }
}

type Filter = Arc<dyn Fn(&Document) -> bool + Send + Sync>;

/// A query under construction (`ctx.db.query(table).withIndex(…).order(…)`),
/// or a full-text search (`ctx.db.query(table).withSearchIndex(…)`).
///
/// A search query returns at most [`MAX_SEARCH_RESULTS`] documents, most
/// relevant first: `collect()` returns them all, `take(n)` with a larger `n`
/// is clamped to that limit. `order`, `with_index` and `paginate` do not
/// apply to a search query and fail with `VALIDATION_ERROR`.
pub struct QueryBuilder {
    db: DbReader,
    table: String,
    index: Option<String>,
    range: IndexRange,
    order: Order,
    order_set: bool,
    filter: Option<Filter>,
    search: Option<SearchFilter>,
    /// The first builder call that a search query does not allow.
    misuse: Option<String>,
}

impl std::fmt::Debug for QueryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryBuilder")
            .field("table", &self.table)
            .field("index", &self.index)
            .finish()
    }
}

struct Resolved {
    table: Arc<Table>,
    index: database::schema::IndexDef,
    range: KeyRange,
    bucket: Option<Vec<u8>>,
}

impl QueryBuilder {
    /// Uses an index with a range (`.withIndex(name, q => q.eq(…))`).
    pub fn with_index(mut self, name: &str, range: impl FnOnce(IndexRange) -> IndexRange) -> Self {
        if self.search.is_some() {
            self.misuse.get_or_insert_with(|| {
                "with_index cannot be combined with with_search_index".into()
            });
        }
        self.index = Some(name.to_owned());
        self.range = range(IndexRange::all());
        self
    }

    /// Runs a full-text search over a search index
    /// (`.withSearchIndex(name, q => q.search(field, text).eq(…))`). Results
    /// come most relevant first; see [`database::search`] for matching and
    /// ranking.
    ///
    /// ```ignore
    /// let notes = ctx.db.query("meetingNotes")
    ///     .with_search_index("search_content", |q| {
    ///         q.search("content", "roadmap hiring").eq("meetingId", meeting_id)
    ///     })
    ///     .take(10)
    ///     .await?;
    /// ```
    pub fn with_search_index(
        mut self,
        name: &str,
        search: impl FnOnce(SearchFilter) -> SearchFilter,
    ) -> Self {
        if self.index.is_some() {
            self.misuse.get_or_insert_with(|| {
                "with_search_index cannot be combined with with_index".into()
            });
        }
        self.index = Some(name.to_owned());
        self.search = Some(search(SearchFilter::new()));
        self
    }

    /// Sets the order (`.order("desc")`).
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self.order_set = true;
        self
    }

    /// Runs a search query: at most `n` (clamped to [`MAX_SEARCH_RESULTS`])
    /// documents, most relevant first, that also pass `.filter`.
    async fn run_search(self, search: &SearchFilter, n: usize) -> Result<Vec<Document>> {
        if let Some(misuse) = &self.misuse {
            return Err(Error::validation(format!("Invalid search query: {misuse}")));
        }
        if self.order_set {
            return Err(Error::validation(
                "Invalid search query: search results are ordered by relevance; order() is not allowed",
            ));
        }
        let n = n.min(MAX_SEARCH_RESULTS);
        let mut state = self.db.state.lock().await;
        let table = Arc::clone(state.tx.schema().require_table(&self.table)?);
        let name = self.index.as_deref().unwrap_or_default();
        let index = table.index(name).cloned().ok_or_else(|| {
            Error::validation(format!(
                "Unknown search index \"{name}\" on table \"{}\"",
                table.name
            ))
        })?;
        let want = if self.filter.is_some() {
            MAX_SEARCH_RESULTS
        } else {
            n
        };
        let mut docs = state.tx.search(&table, &index, search, want).await?;
        if let Some(f) = &self.filter {
            docs.retain(|d| f(d));
        }
        docs.truncate(n);
        Ok(docs)
    }

    /// Keeps only documents for which `f` is true (`.filter(…)`). Filtered-out
    /// documents still count as scanned.
    pub fn filter(mut self, f: impl Fn(&Document) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(f));
        self
    }

    fn resolve(&self, tx: &Transaction) -> Result<Resolved> {
        let table = Arc::clone(tx.schema().require_table(&self.table)?);
        let index_name = self.index.as_deref().unwrap_or(BY_CREATION_TIME);
        if index_name == BY_ID {
            return Err(Error::validation(
                "Query the by_id index with db.get instead",
            ));
        }
        let index = table.index(index_name).cloned().ok_or_else(|| {
            Error::validation(format!(
                "Unknown index \"{index_name}\" on table \"{}\"",
                table.name
            ))
        })?;
        if !matches!(index.kind, IndexKind::Database { .. }) {
            return Err(Error::validation(format!(
                "Index \"{index_name}\" on table \"{}\" is not a database index; query a search index with with_search_index",
                table.name
            )));
        }
        let (range, bucket) = self.range.compile(&index)?;
        Ok(Resolved {
            table,
            index,
            range,
            bucket,
        })
    }

    /// Reads documents until `want` pass the filter or the range ends.
    /// Returns them, the last scanned key and whether the range was exhausted.
    async fn read(
        &self,
        tx: &mut Transaction,
        r: &Resolved,
        after: Option<CursorPos>,
        want: usize,
    ) -> Result<(Vec<Document>, Option<Vec<u8>>, bool)> {
        let mut out = Vec::new();
        let mut after = after;
        let mut last_key = None;
        loop {
            let remaining = want.saturating_sub(out.len());
            if remaining == 0 {
                return Ok((out, last_key, false));
            }
            let chunk = if self.filter.is_some() {
                remaining.clamp(16, 1024)
            } else {
                remaining.min(1024)
            };
            let res = tx
                .scan(
                    &r.table,
                    &r.index,
                    &r.range,
                    r.bucket.clone(),
                    self.order,
                    after.as_ref(),
                    chunk,
                )
                .await?;
            let fetched = res.rows.len();
            let mut consumed = 0;
            for (key, doc) in res.rows {
                if out.len() >= want {
                    break;
                }
                consumed += 1;
                last_key = Some(key);
                if self.filter.as_ref().is_none_or(|f| f(&doc)) {
                    out.push(doc);
                }
            }
            if consumed < fetched {
                // With a filter a chunk can hold more rows than still wanted:
                // the page filled up before the rows after `last_key` were
                // looked at, so the range is not exhausted even if the scan
                // reached its end (otherwise `paginate` would report
                // `isDone` and skip those rows).
                return Ok((out, last_key, false));
            }
            if res.exhausted && out.len() < want {
                return Ok((out, last_key, true));
            }
            if res.exhausted {
                // Exactly enough rows and the range ended: still exhausted.
                return Ok((out, last_key, true));
            }
            match &last_key {
                Some(k) => after = Some(CursorPos::After(k.clone())),
                None => return Ok((out, last_key, true)),
            }
        }
    }

    /// All matching documents (`.collect()`; a search query returns at most
    /// [`MAX_SEARCH_RESULTS`]).
    pub async fn collect(mut self) -> Result<Vec<Document>> {
        if let Some(search) = self.search.take() {
            return self.run_search(&search, MAX_SEARCH_RESULTS).await;
        }
        let mut state = self.db.state.lock().await;
        let r = self.resolve(&state.tx)?;
        let (docs, _, _) = self.read(&mut state.tx, &r, None, usize::MAX).await?;
        Ok(docs)
    }

    /// At most `n` documents (`.take(n)`; clamped to [`MAX_SEARCH_RESULTS`]
    /// for a search query).
    pub async fn take(mut self, n: usize) -> Result<Vec<Document>> {
        if let Some(search) = self.search.take() {
            return self.run_search(&search, n).await;
        }
        let mut state = self.db.state.lock().await;
        let r = self.resolve(&state.tx)?;
        let (docs, _, _) = self.read(&mut state.tx, &r, None, n).await?;
        Ok(docs)
    }

    /// The first document (`.first()`).
    pub async fn first(self) -> Result<Option<Document>> {
        Ok(self.take(1).await?.into_iter().next())
    }

    /// The only document, or an error if there are several (`.unique()`).
    pub async fn unique(self) -> Result<Option<Document>> {
        let table = self.table.clone();
        let mut docs = self.take(2).await?;
        if docs.len() > 1 {
            return Err(Error::internal(format!(
                "unique() found more than one document in {table}"
            )));
        }
        Ok(docs.pop())
    }

    /// One page (`.paginate(opts)`). On reactive re-runs the page ends where
    /// it ended the first time (the query journal), so pages never shift.
    pub async fn paginate(self, opts: PaginationOpts) -> Result<Page<Document>> {
        if opts.num_items > limits::MAX_PAGE_SIZE {
            return Err(Error::limit(format!(
                "numItems {} exceeds the maximum page size {}",
                opts.num_items,
                limits::MAX_PAGE_SIZE
            )));
        }
        if self.search.is_some() {
            return Err(Error::validation(
                "Invalid search query: paginate() is not supported on a search query; use take(n)",
            ));
        }
        let mut state = self.db.state.lock().await;
        if state.paginated {
            return Err(Error::bad_request(
                "MultiplePaginatedDatabaseQueries: a function may call paginate() only once",
            ));
        }
        state.paginated = true;
        let mut r = self.resolve(&state.tx)?;
        let start = opts
            .cursor
            .as_deref()
            .map(|c| decode_cursor(r.index.id, c))
            .transpose()?;
        let end_cursor = opts.end_cursor.clone().or_else(|| state.journal_in.clone());
        let end = end_cursor
            .as_deref()
            .map(|c| decode_cursor(r.index.id, c))
            .transpose()?;
        let (page, continue_cursor, is_done) = match end {
            Some(end) => {
                if let CursorPos::After(key) = &end {
                    match self.order {
                        Order::Asc => {
                            let mut bound = key.clone();
                            bound.push(0);
                            if r.range.end.as_ref().is_none_or(|e| bound < *e) {
                                r.range.end = Some(bound);
                            }
                        }
                        Order::Desc => {
                            if *key > r.range.start {
                                r.range.start = key.clone();
                            }
                        }
                    }
                }
                let (docs, _, exhausted) = self
                    .read(&mut state.tx, &r, start, limits::MAX_DOCUMENTS_SCANNED)
                    .await?;
                let done = matches!(end, CursorPos::End) && exhausted;
                (docs, encode_cursor(r.index.id, &end), done)
            }
            None if opts.num_items == 0 => {
                // An empty page continues where it started.
                let pos = start.unwrap_or_else(|| CursorPos::After(r.range.start.clone()));
                let done = matches!(pos, CursorPos::End);
                (Vec::new(), encode_cursor(r.index.id, &pos), done)
            }
            None => {
                let (docs, last, exhausted) =
                    self.read(&mut state.tx, &r, start, opts.num_items).await?;
                let pos = match (exhausted, last) {
                    (false, Some(k)) => CursorPos::After(k),
                    _ => CursorPos::End,
                };
                (docs, encode_cursor(r.index.id, &pos), exhausted)
            }
        };
        state.journal_out = Some(continue_cursor.clone());
        Ok(Page {
            page,
            is_done,
            continue_cursor,
        })
    }
}

/// The `paginationOpts` argument as clients send it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaginationOptsArg {
    /// Requested page size.
    pub num_items: f64,
    /// Start cursor (`null` for the first page).
    pub cursor: Option<String>,
    /// End cursor (split pages).
    #[serde(default)]
    pub end_cursor: Option<String>,
}

impl PaginationOptsArg {
    /// Converts to engine options, checking the page size.
    pub fn to_opts(&self) -> Result<PaginationOpts> {
        if !(self.num_items.is_finite() && self.num_items >= 0.0) {
            return Err(Error::validation(
                "paginationOpts.numItems must be a non-negative number",
            ));
        }
        Ok(PaginationOpts {
            num_items: self.num_items as usize,
            cursor: self.cursor.clone(),
            end_cursor: self.end_cursor.clone(),
        })
    }
}

/// The validator of Convex's `paginationOpts` argument.
pub fn pagination_opts_validator() -> values::validator::Validator {
    use values::v;
    v::object([
        ("numItems", v::number()),
        ("cursor", v::union([v::string(), v::null()])),
        ("endCursor", v::optional(v::union([v::string(), v::null()]))),
        ("id", v::optional(v::number())),
        ("maximumRowsRead", v::optional(v::number())),
        ("maximumBytesRead", v::optional(v::number())),
    ])
}

/// A page of documents as clients receive it.
pub fn page_to_value<T: Serialize>(page: Page<T>) -> Result<Value> {
    let items = page
        .page
        .iter()
        .map(values::to_value)
        .collect::<Result<Vec<_>>>()?;
    Ok(Value::object([
        ("page".to_owned(), Value::Array(items)),
        ("isDone".to_owned(), Value::Boolean(page.is_done)),
        (
            "continueCursor".to_owned(),
            Value::String(page.continue_cursor),
        ),
    ]))
}

/// `ctx.scheduler` inside a mutation: scheduling is part of the transaction.
#[derive(Clone)]
pub struct MutationScheduler {
    db: DbWriter,
    runtime: Arc<RuntimeInner>,
}

impl std::fmt::Debug for MutationScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MutationScheduler")
    }
}

impl MutationScheduler {
    /// Runs `function` with `args` after `delay` (only if this mutation commits).
    pub async fn run_after(
        &self,
        delay: Duration,
        function: &str,
        args: impl Serialize,
    ) -> Result<JobId> {
        let at = self.runtime.db.clock().now_ms() + delay.as_millis() as f64;
        self.run_at(at, function, args).await
    }

    /// Runs `function` with `args` at `ts_ms` (ms since the epoch).
    pub async fn run_at(&self, ts_ms: f64, function: &str, args: impl Serialize) -> Result<JobId> {
        let args = values::to_value(&args)?;
        scheduler::schedule(&self.runtime, &self.db, ts_ms, function, args).await
    }

    /// Cancels a pending job (`ctx.scheduler.cancel`).
    pub async fn cancel(&self, job: JobId) -> Result<()> {
        scheduler::cancel(&self.db, job, self.runtime.db.clock().now_ms()).await
    }
}

/// The context of a query.
#[derive(Clone, Debug)]
pub struct QueryCtx {
    /// The database (read-only).
    pub db: DbReader,
    /// The caller's identity.
    pub auth: Auth,
    log: LogLines,
    now_ms: f64,
}

/// The context of a mutation.
#[derive(Clone, Debug)]
pub struct MutationCtx {
    /// The database.
    pub db: DbWriter,
    /// The caller's identity.
    pub auth: Auth,
    /// The transactional scheduler.
    pub scheduler: MutationScheduler,
    log: LogLines,
    now_ms: f64,
}

/// The context of an action.
#[derive(Clone)]
pub struct ActionCtx {
    /// The caller's identity.
    pub auth: Auth,
    runtime: Arc<RuntimeInner>,
    log: LogLines,
}

impl std::fmt::Debug for ActionCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActionCtx")
    }
}

macro_rules! logging_methods {
    () => {
        /// Adds a `[LOG]` line to the function's log lines.
        pub fn log(&self, message: &str) {
            self.log.push("LOG", message);
        }
        /// Adds a `[WARN]` line.
        pub fn warn(&self, message: &str) {
            self.log.push("WARN", message);
        }
        /// Adds an `[ERROR]` line.
        pub fn error(&self, message: &str) {
            self.log.push("ERROR", message);
        }
    };
}

impl QueryCtx {
    pub(crate) fn new(
        state: Arc<tokio::sync::Mutex<TxState>>,
        auth: Auth,
        log: LogLines,
        now_ms: f64,
    ) -> Self {
        Self {
            db: DbReader { state },
            auth,
            log,
            now_ms,
        }
    }

    /// The same context without the caller's identity (the body of a query
    /// declared with `FunctionDef::query_with_access`).
    pub(crate) fn anonymous(&self) -> Self {
        Self {
            auth: Auth::new(None),
            ..self.clone()
        }
    }

    /// The time the function started (ms since the epoch). Queries should
    /// not depend on time for reactivity; use it for display only.
    pub fn now_ms(&self) -> f64 {
        self.now_ms
    }

    logging_methods!();
}

impl MutationCtx {
    pub(crate) fn new(
        state: Arc<tokio::sync::Mutex<TxState>>,
        auth: Auth,
        log: LogLines,
        runtime: Arc<RuntimeInner>,
        now_ms: f64,
        system: bool,
    ) -> Self {
        let db = DbWriter {
            reader: DbReader { state },
            system,
        };
        Self {
            scheduler: MutationScheduler {
                db: db.system_writer(),
                runtime,
            },
            db,
            auth,
            log,
            now_ms,
        }
    }

    /// The time the mutation started (ms since the epoch), from the injected clock.
    pub fn now_ms(&self) -> f64 {
        self.now_ms
    }

    logging_methods!();
}

impl ActionCtx {
    pub(crate) fn new(auth: Auth, runtime: Arc<RuntimeInner>, log: LogLines) -> Self {
        Self { auth, runtime, log }
    }

    /// The current time (ms since the epoch), from the injected clock.
    pub fn now_ms(&self) -> f64 {
        self.runtime.db.clock().now_ms()
    }

    /// The shared outbound HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.runtime.http
    }

    async fn run_nested<T: DeserializeOwned>(
        &self,
        kind: crate::FunctionKind,
        path: &str,
        args: impl Serialize,
    ) -> Result<T> {
        let args = values::to_value(&args)?;
        let v = self
            .runtime
            .call_nested(kind, path, args, self.auth.shared())
            .await?;
        values::from_value(v)
    }

    /// Runs a query (public or internal) with the caller's identity.
    pub async fn run_query<T: DeserializeOwned>(
        &self,
        path: &str,
        args: impl Serialize,
    ) -> Result<T> {
        self.run_nested(crate::FunctionKind::Query, path, args)
            .await
    }

    /// Runs a mutation (public or internal) with the caller's identity.
    pub async fn run_mutation<T: DeserializeOwned>(
        &self,
        path: &str,
        args: impl Serialize,
    ) -> Result<T> {
        self.run_nested(crate::FunctionKind::Mutation, path, args)
            .await
    }

    /// Runs another action with the caller's identity.
    pub async fn run_action<T: DeserializeOwned>(
        &self,
        path: &str,
        args: impl Serialize,
    ) -> Result<T> {
        self.run_nested(crate::FunctionKind::Action, path, args)
            .await
    }

    /// Schedules a function (in its own small transaction).
    pub async fn schedule_after(
        &self,
        delay: Duration,
        function: &str,
        args: impl Serialize,
    ) -> Result<JobId> {
        let at = self.now_ms() + delay.as_millis() as f64;
        scheduler::schedule_standalone(&self.runtime, at, function, values::to_value(&args)?).await
    }

    logging_methods!();
}
