//! Live queries shared across sockets.
//!
//! Every subscription is keyed by (function path, arguments, identity,
//! initial pagination journal). All sockets with the same key share one
//! [`SharedQuery`]: one execution per invalidation, whatever the number of
//! subscribers. A watcher task per shared query waits for its current
//! result's read set to be invalidated, re-runs the query at a fresh
//! snapshot, stores the new result and wakes every attached socket. Sockets
//! then assemble a Transition at one timestamp at which all their results are
//! valid (see `sync`).
//!
//! A query declared with its access check apart from an identity-free body
//! (`runtime::FunctionDef::query_with_access`: most meeting-scoped feeds)
//! goes further: its subscribers with different identities share one *body*
//! query, keyed without identity, and each identity keeps only the result of
//! its access check. A write into the feed re-runs the body once for all
//! subscribers; the access checks, which read users and participant rows,
//! re-run only when those change. An identity's result is the body's value
//! when its check passed (the check's error otherwise), valid where both
//! parts are.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use auth::Identity;
use database::Subscription;
use errors::Error;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use persistence::Timestamp;
use runtime::{FunctionSpec, QueryPart, Runtime};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use values::Value;

/// The identity of a live query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryKey {
    /// Canonical function path.
    pub path: String,
    /// Arguments as canonical (sorted-key) Convex JSON.
    pub args: String,
    /// The identity fields functions can see (empty for anonymous).
    pub identity: String,
    /// The pagination journal the subscription started with.
    pub journal: Option<String>,
}

/// The identity field of a shared body's key: no identity key has this
/// form ([`identity_key`] gives `""` or a JSON array).
const BODY_IDENTITY: &str = "*";

/// The part of an identity that functions observe, as a stable key.
pub fn identity_key(identity: Option<&Identity>) -> String {
    match identity {
        None => String::new(),
        Some(i) => serde_json::json!([
            i.token_identifier,
            i.email,
            i.name,
            i.org_id,
            i.role,
            i.permissions
        ])
        .to_string(),
    }
}

/// One execution's result, valid from `ts` until its subscription is invalidated.
#[derive(Debug)]
pub struct QueryResult {
    /// The value as Convex-encoded JSON text, serialized once and shared by
    /// every subscriber's Transition, or the error.
    pub outcome: Result<Arc<RawValue>, Error>,
    /// Log lines.
    pub log_lines: Vec<String>,
    /// The pagination journal to send to the client.
    pub journal: Option<String>,
    /// The timestamp the result is the query's value at (its snapshot's,
    /// or earlier: see `runtime::QueryOutcome::ts`).
    pub ts: Timestamp,
    /// A hash of the outcome and log lines (unchanged results are not re-sent).
    pub hash: u64,
    validity: Validity,
}

/// What a result's validity rests on.
#[derive(Debug)]
enum Validity {
    /// Its own execution's read set.
    Own(Subscription),
    /// An identity's access check and, if the check passed, the shared body.
    Parts {
        access: Arc<QueryResult>,
        body: Option<Arc<QueryResult>>,
    },
}

impl QueryResult {
    /// Whether this result is the query's value at `ts` (the caller has made
    /// sure every commit up to `ts` was processed).
    pub fn valid_at(&self, ts: Timestamp) -> bool {
        match &self.validity {
            Validity::Own(s) => s.valid_at(ts),
            Validity::Parts { access, body } => {
                ts >= self.ts && access.valid_at(ts) && body.as_ref().is_none_or(|b| b.valid_at(ts))
            }
        }
    }

    /// Whether a later commit has invalidated it.
    pub fn is_invalidated(&self) -> bool {
        match &self.validity {
            Validity::Own(s) => s.invalidated_at().is_some(),
            Validity::Parts { access, body } => {
                access.is_invalidated() || body.as_ref().is_some_and(|b| b.is_invalidated())
            }
        }
    }

    /// Waits until a commit invalidates it.
    fn wait_invalidated(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match &self.validity {
                Validity::Own(s) => {
                    s.wait_invalidated().await;
                }
                Validity::Parts { access, body: None } => access.wait_invalidated().await,
                Validity::Parts {
                    access,
                    body: Some(body),
                } => {
                    tokio::select! {
                        _ = access.wait_invalidated() => {}
                        _ = body.wait_invalidated() => {}
                    }
                }
            }
        })
    }

    /// An identity's result from its access check and the shared body's
    /// result (`None` when the check failed: the body is not needed).
    fn compose(access: Arc<QueryResult>, body: Option<Arc<QueryResult>>) -> QueryResult {
        let (outcome, log_lines, journal, hash, ts) = match (&access.outcome, &body) {
            (Ok(_), Some(b)) => {
                let hash = if access.log_lines.is_empty() {
                    b.hash
                } else {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    access.hash.hash(&mut h);
                    b.hash.hash(&mut h);
                    h.finish()
                };
                let mut log_lines = access.log_lines.clone();
                log_lines.extend(b.log_lines.iter().cloned());
                (
                    b.outcome.clone(),
                    log_lines,
                    b.journal.clone(),
                    hash,
                    access.ts.max(b.ts),
                )
            }
            _ => (
                access.outcome.clone(),
                access.log_lines.clone(),
                None,
                access.hash,
                access.ts,
            ),
        };
        QueryResult {
            outcome,
            log_lines,
            journal,
            ts,
            hash,
            validity: Validity::Parts { access, body },
        }
    }
}

/// What a [`SharedQuery`] runs.
enum Role {
    /// An ordinary query, run whole.
    Whole,
    /// One identity's query of a function with a separate access check: the
    /// check's newest result, composed with the shared body.
    Access {
        body: Arc<SharedQuery>,
        check: Mutex<Option<Arc<QueryResult>>>,
    },
    /// The identity-free body of such a function, shared by every identity.
    Body,
}

impl Role {
    /// The part of the function this role executes on its own.
    fn part(&self) -> QueryPart {
        match self {
            Role::Whole => QueryPart::Whole,
            Role::Access { .. } => QueryPart::Access,
            Role::Body => QueryPart::Body,
        }
    }
}

/// A query shared by every socket subscribed to its key.
pub struct SharedQuery {
    key: QueryKey,
    spec: Arc<FunctionSpec>,
    args: Value,
    identity: Option<Arc<Identity>>,
    role: Role,
    journal: Mutex<Option<String>>,
    current: Mutex<Option<Arc<QueryResult>>>,
    exec: tokio::sync::Mutex<()>,
    watchers: Mutex<Vec<Weak<Notify>>>,
    closed: Arc<Notify>,
    runtime: Runtime,
}

impl std::fmt::Debug for SharedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedQuery")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Drop for SharedQuery {
    fn drop(&mut self) {
        self.closed.notify_one();
    }
}

fn hash_outcome(
    outcome: &Result<Arc<RawValue>, Error>,
    log_lines: &[String],
    journal: &Option<String>,
) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match outcome {
        Ok(v) => {
            0u8.hash(&mut h);
            v.get().hash(&mut h);
        }
        Err(e) => {
            1u8.hash(&mut h);
            e.code().as_str().hash(&mut h);
            e.message().hash(&mut h);
            e.error_data().map(|d| d.to_string()).hash(&mut h);
        }
    }
    log_lines.hash(&mut h);
    journal.hash(&mut h);
    h.finish()
}

impl SharedQuery {
    /// The key.
    pub fn key(&self) -> &QueryKey {
        &self.key
    }

    /// The newest result, if the query has run.
    pub fn current(&self) -> Option<Arc<QueryResult>> {
        self.current.lock().clone()
    }

    /// Wakes `notify` whenever a new result is stored.
    pub fn attach(&self, notify: &Arc<Notify>) {
        let mut w = self.watchers.lock();
        w.retain(|x| x.strong_count() > 0);
        w.push(Arc::downgrade(notify));
    }

    /// Runs the query privately at `snapshot` (not stored as the shared
    /// result): used when a socket must report results at exactly that
    /// snapshot and the shared result is stale there.
    pub async fn run_at(&self, snapshot: Arc<dyn persistence::Snapshot>) -> Arc<QueryResult> {
        // An identity's query runs whole (check and body) here; the body
        // holds the pagination journal.
        let (part, journal) = match &self.role {
            Role::Access { body, .. } => (QueryPart::Whole, body.journal.lock().clone()),
            role => (role.part(), self.journal.lock().clone()),
        };
        let out = self.run(part, Some(snapshot), journal).await;
        Arc::new(self.make_result(out))
    }

    /// Runs `part` of this query's function with its arguments and identity.
    async fn run(
        &self,
        part: QueryPart,
        snapshot: Option<Arc<dyn persistence::Snapshot>>,
        journal: Option<String>,
    ) -> runtime::QueryOutcome {
        self.runtime
            .run_query_part(
                &self.spec,
                part,
                self.args.clone(),
                self.identity.clone(),
                snapshot,
                journal,
            )
            .await
    }

    /// Runs this query's own part at a fresh snapshot.
    async fn execute(&self, part: QueryPart) -> QueryResult {
        let journal = self.journal.lock().clone();
        let out = self.run(part, None, journal).await;
        if out.journal.is_some() {
            *self.journal.lock() = out.journal.clone();
        }
        self.make_result(out)
    }

    fn make_result(&self, out: runtime::QueryOutcome) -> QueryResult {
        let subscription = self
            .runtime
            .database()
            .subscriptions()
            .subscribe(out.read_set, out.ts);
        // Straight from the value to JSON text (no `serde_json::Value`
        // tree): hashed here, then copied into each subscriber's frame.
        let outcome = out.result.and_then(|v| {
            serde_json::value::to_raw_value(&v)
                .map(Arc::from)
                .map_err(|e| Error::internal(format!("cannot serialize a query result: {e}")))
        });
        let hash = hash_outcome(&outcome, &out.log_lines, &out.journal);
        QueryResult {
            outcome,
            log_lines: out.log_lines,
            journal: out.journal,
            ts: out.ts,
            hash,
            validity: Validity::Own(subscription),
        }
    }

    /// Returns a result that has not been invalidated, running the query if needed.
    /// Concurrent callers share one execution.
    pub async fn refresh(&self) -> Arc<QueryResult> {
        if let Some(cur) = self.current()
            && !cur.is_invalidated()
        {
            return cur;
        }
        let _exec = self.exec.lock().await;
        if let Some(cur) = self.current()
            && !cur.is_invalidated()
        {
            return cur;
        }
        let result = match &self.role {
            Role::Access { body, check } => {
                // The check re-runs only when what it read changed; the
                // body is shared (one execution per invalidation).
                let current = check.lock().clone();
                let access = match current {
                    Some(a) if !a.is_invalidated() => a,
                    _ => {
                        let a = Arc::new(self.execute(QueryPart::Access).await);
                        *check.lock() = Some(Arc::clone(&a));
                        a
                    }
                };
                let body = match access.outcome {
                    Ok(_) => Some(Box::pin(body.refresh()).await),
                    Err(_) => None,
                };
                Arc::new(QueryResult::compose(access, body))
            }
            role => {
                metrics::counter!("connvo_query_executions_total").increment(1);
                Arc::new(self.execute(role.part()).await)
            }
        };
        *self.current.lock() = Some(Arc::clone(&result));
        for w in self.watchers.lock().iter() {
            if let Some(n) = w.upgrade() {
                n.notify_one();
            }
        }
        result
    }
}

/// The table of shared live queries.
pub struct LiveQueries {
    runtime: Runtime,
    map: Mutex<HashMap<QueryKey, Weak<SharedQuery>>>,
}

impl std::fmt::Debug for LiveQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveQueries")
            .field("queries", &self.map.lock().len())
            .finish()
    }
}

impl LiveQueries {
    /// An empty table.
    pub fn new(runtime: Runtime) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            map: Mutex::new(HashMap::new()),
        })
    }

    /// Number of distinct live queries.
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared query for `key`, created (with its watcher task) if needed;
    /// for a query with a separate access check, with the shared body it
    /// composes with (created too if needed).
    pub fn get_or_create(
        &self,
        key: QueryKey,
        spec: Arc<FunctionSpec>,
        args: Value,
        identity: Option<Arc<Identity>>,
    ) -> Arc<SharedQuery> {
        let mut map = self.map.lock();
        if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        if map.len() > 1024 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        if !spec.shares_body_across_identities() {
            return self.create(&mut map, key, spec, args, identity, Role::Whole);
        }
        let body_key = QueryKey {
            identity: BODY_IDENTITY.to_owned(),
            ..key.clone()
        };
        let body = match map.get(&body_key).and_then(Weak::upgrade) {
            Some(body) => body,
            None => self.create(
                &mut map,
                body_key,
                Arc::clone(&spec),
                args.clone(),
                None,
                Role::Body,
            ),
        };
        let role = Role::Access {
            body,
            check: Mutex::new(None),
        };
        self.create(&mut map, key, spec, args, identity, role)
    }

    fn create(
        &self,
        map: &mut HashMap<QueryKey, Weak<SharedQuery>>,
        key: QueryKey,
        spec: Arc<FunctionSpec>,
        args: Value,
        identity: Option<Arc<Identity>>,
        role: Role,
    ) -> Arc<SharedQuery> {
        let closed = Arc::new(Notify::new());
        let query = Arc::new(SharedQuery {
            journal: Mutex::new(key.journal.clone()),
            key: key.clone(),
            spec,
            args,
            identity,
            role,
            current: Mutex::new(None),
            exec: tokio::sync::Mutex::new(()),
            watchers: Mutex::new(Vec::new()),
            closed: Arc::clone(&closed),
            runtime: self.runtime.clone(),
        });
        map.insert(key, Arc::downgrade(&query));
        metrics::gauge!("connvo_live_queries").set(map.len() as f64);
        tokio::spawn(watch(Arc::downgrade(&query), closed));
        query
    }
}

/// Re-runs a shared query each time its result is invalidated, until every
/// socket has let go of it.
async fn watch(query: Weak<SharedQuery>, closed: Arc<Notify>) {
    loop {
        let result = match query.upgrade() {
            Some(q) => q.refresh().await,
            None => return,
        };
        tokio::select! {
            _ = result.wait_invalidated() => {}
            _ = closed.notified() => return,
        }
    }
}
