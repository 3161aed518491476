//! Running functions: argument and return validation, transactions, OCC
//! retries, WebSocket mutation de-duplication, timeouts, panics and metrics.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth::Identity;
use database::readset::ReadSet;
use database::{Database, Order, Timestamp, limits};
use errors::{Error, ErrorCode, Result};
use futures::FutureExt;
use persistence::Snapshot;
use values::Value;

use crate::context::{ActionCtx, Auth, LogLines, MutationCtx, QueryCtx, TxState};
use crate::registry::{FunctionKind, FunctionSpec, Handler, Registry, Visibility};
use crate::scheduler::SESSION_REQUESTS_TABLE;

/// Time limits of function execution.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeConfig {
    /// Wall-clock limit of one query run.
    pub query_timeout: Duration,
    /// Wall-clock limit of one mutation attempt.
    pub mutation_timeout: Duration,
    /// Wall-clock limit of one action run.
    pub action_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            query_timeout: Duration::from_secs(10),
            mutation_timeout: Duration::from_secs(10),
            action_timeout: Duration::from_secs(600),
        }
    }
}

pub(crate) struct RuntimeInner {
    pub(crate) db: Database,
    pub(crate) registry: Arc<Registry>,
    pub(crate) http: reqwest::Client,
    pub(crate) config: RuntimeConfig,
}

/// The function runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// The outcome of a query run.
#[derive(Debug)]
pub struct QueryOutcome {
    /// The return value or error.
    pub result: Result<Value>,
    /// Log lines.
    pub log_lines: Vec<String>,
    /// Everything the query read (for its subscription).
    pub read_set: Arc<ReadSet>,
    /// The timestamp the result is the query's value at: its snapshot's,
    /// or an earlier one when the commits in between, not yet durable,
    /// touched nothing it read (see `Database::settle_read`).
    pub ts: Timestamp,
    /// The pagination journal to send back to the client.
    pub journal: Option<String>,
}

/// Which part of a query to run ([`Runtime::run_query_part`]).
///
/// A query declared with `FunctionDef::query_with_access` has an access
/// check that sees the caller and an identity-free body; live subscriptions
/// run the two apart so one body execution serves every identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryPart {
    /// The whole query: the access check (if declared apart) then the body.
    Whole,
    /// Only the access check, with the caller's identity; `Ok(null)` when
    /// the caller may run the query.
    Access,
    /// Only the body, without any identity (the caller passed in is
    /// ignored); the result is validated against the return validator.
    Body,
}

/// The outcome of a mutation.
#[derive(Debug)]
pub struct MutationOutcome {
    /// The return value or error.
    pub result: Result<Value>,
    /// Log lines.
    pub log_lines: Vec<String>,
    /// The commit timestamp (success only).
    pub ts: Option<Timestamp>,
}

/// The outcome of an action.
#[derive(Debug)]
pub struct ActionOutcome {
    /// The return value or error.
    pub result: Result<Value>,
    /// Log lines.
    pub log_lines: Vec<String>,
}

/// Which socket of its session a WebSocket mutation arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSocket {
    /// The session's first socket (`Connect.connectionCount` 0): no earlier
    /// socket of this session can have committed a request, so there is no
    /// stored result to look up and the lookup is skipped. A client that
    /// claims this on a later socket only loses its own de-duplication.
    First,
    /// A later socket (`connectionCount` > 0): the client re-sends requests
    /// it saw no response to, so every request is looked up first.
    Later,
}

/// Identifies a WebSocket mutation for exactly-once execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The client's `Connect.sessionId`.
    pub session_id: Arc<str>,
    /// Which socket of the session sent it (whether to look for a stored
    /// result; the result is stored either way).
    pub socket: SessionSocket,
    /// The mutation's `requestId`.
    pub request_id: u32,
    /// If the mutation has not started by then, it is not run and fails with
    /// `OVERLOADED` (the WebSocket queue's time limit) — unless this request
    /// already committed earlier, whose stored result is returned as always.
    pub start_by: Option<Instant>,
}

fn record_metrics(spec: &FunctionSpec, started: Instant, ok: bool) {
    // The handles are looked up once per function: by labels on every run,
    // the recorder hashes the key (cloning the path) and takes a lock.
    let timers = spec.timers.get_or_init(|| {
        ["success", "error"].map(|status| {
            metrics::histogram!(
                "connvo_function_seconds",
                "path" => spec.path.clone(),
                "kind" => spec.kind.as_str(),
                "status" => status
            )
        })
    });
    timers[usize::from(!ok)].record(started.elapsed().as_secs_f64());
}

async fn guarded<F>(timeout: Duration, what: &str, fut: F) -> Result<Value>
where
    F: std::future::Future<Output = Result<Value>>,
{
    match tokio::time::timeout(timeout, AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            tracing::error!(function = what, panic = %msg, "function panicked");
            Err(Error::internal(
                "Server Error: the function failed unexpectedly",
            ))
        }
        Err(_) => Err(Error::new(
            ErrorCode::Timeout,
            format!("{what} timed out after {} ms", timeout.as_millis()),
        )),
    }
}

impl Runtime {
    /// A runtime over `db` with the functions of `registry`.
    pub fn new(db: Database, mut registry: Registry, config: RuntimeConfig) -> Self {
        crate::scheduler::register_system(&mut registry);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            inner: Arc::new(RuntimeInner {
                db,
                registry: Arc::new(registry),
                http,
                config,
            }),
        }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The public function at a canonical path, checking its kind when given.
    /// Unknown and internal functions are both "not found" to clients.
    pub fn resolve_public(
        &self,
        path: &str,
        kind: Option<FunctionKind>,
    ) -> Result<Arc<FunctionSpec>> {
        let spec = self
            .inner
            .registry
            .get(path)
            .filter(|s| s.visibility == Visibility::Public)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::FunctionNotFound,
                    format!("Could not find public function for '{path}'"),
                )
            })?;
        if let Some(kind) = kind
            && spec.kind != kind
        {
            return Err(Error::bad_request(format!(
                "Trying to execute {path} as {}, but it is defined as {}",
                kind.as_str(),
                spec.kind.as_str()
            )));
        }
        Ok(Arc::clone(spec))
    }

    /// Runs the registry's denial hook (see [`Registry::set_denial_hook`])
    /// in the background when a public function refused a signed-in caller.
    fn report_denial(
        &self,
        spec: &FunctionSpec,
        identity: &Option<Arc<Identity>>,
        result: &Result<Value>,
    ) {
        let (Some(hook), Some(identity), Err(e)) =
            (self.inner.registry.denial_hook(), identity, result)
        else {
            return;
        };
        if spec.visibility != Visibility::Public
            || !matches!(
                e.code(),
                ErrorCode::Forbidden | ErrorCode::InsufficientPermissions
            )
        {
            return;
        }
        let args = Value::object([
            ("function".to_owned(), Value::String(spec.path.clone())),
            (
                "code".to_owned(),
                Value::String(e.code().as_str().to_owned()),
            ),
            ("message".to_owned(), Value::String(e.message().to_owned())),
        ]);
        let runtime = self.clone();
        let hook = hook.to_owned();
        let identity = Arc::clone(identity);
        metrics::counter!("connvo_access_denied_total").increment(1);
        tokio::spawn(async move {
            if let Err(err) = runtime
                .call(FunctionKind::Mutation, &hook, args, Some(identity))
                .await
            {
                tracing::warn!(hook = %hook, error = %err, "could not record a denied access");
            }
        });
    }

    /// Runs a query at `snapshot` (a fresh one when `None`).
    pub async fn run_query(
        &self,
        spec: &FunctionSpec,
        args: Value,
        identity: Option<Arc<Identity>>,
        snapshot: Option<Arc<dyn Snapshot>>,
        journal: Option<String>,
    ) -> QueryOutcome {
        self.run_query_part(spec, QueryPart::Whole, args, identity, snapshot, journal)
            .await
    }

    /// Runs one part of a query at `snapshot` (a fresh one when `None`):
    /// see [`QueryPart`]. The parts of a query declared without a separate
    /// access check ([`FunctionSpec::shares_body_across_identities`] false)
    /// are an `INTERNAL` error.
    pub async fn run_query_part(
        &self,
        spec: &FunctionSpec,
        part: QueryPart,
        args: Value,
        identity: Option<Arc<Identity>>,
        snapshot: Option<Arc<dyn Snapshot>>,
        journal: Option<String>,
    ) -> QueryOutcome {
        // The body sees no identity, whoever asked.
        let identity = match part {
            QueryPart::Body => None,
            QueryPart::Whole | QueryPart::Access => identity,
        };
        let identity_for_hook = identity.clone();
        let started = Instant::now();
        let log = LogLines::default();
        let snapshot = match snapshot {
            Some(s) => s,
            None => match self.inner.db.snapshot().await {
                Ok(s) => s,
                Err(e) => {
                    return QueryOutcome {
                        result: Err(e),
                        log_lines: Vec::new(),
                        read_set: Arc::new(ReadSet::new()),
                        ts: Timestamp::ZERO,
                        journal: None,
                    };
                }
            },
        };
        let ts = snapshot.ts();
        let handler = match (&spec.handler, part, &spec.split) {
            (Handler::Query(h), QueryPart::Whole, _) => h,
            (Handler::Query(_), QueryPart::Access, Some(split)) => &split.access,
            (Handler::Query(_), QueryPart::Body, Some(split)) => &split.body,
            (Handler::Query(_), _, None) => {
                return QueryOutcome {
                    result: Err(Error::internal(format!(
                        "{} has no separate access check",
                        spec.path
                    ))),
                    log_lines: Vec::new(),
                    read_set: Arc::new(ReadSet::new()),
                    ts,
                    journal: None,
                };
            }
            _ => {
                return QueryOutcome {
                    result: Err(Error::bad_request(format!("{} is not a query", spec.path))),
                    log_lines: Vec::new(),
                    read_set: Arc::new(ReadSet::new()),
                    ts,
                    journal: None,
                };
            }
        };
        let state = Arc::new(tokio::sync::Mutex::new(TxState {
            tx: self.inner.db.begin_at(snapshot, false),
            journal_in: journal,
            journal_out: None,
            paginated: false,
        }));
        let result = match validate_args(spec, &args) {
            Err(e) => Err(e),
            Ok(()) => {
                let ctx = QueryCtx::new(
                    Arc::clone(&state),
                    Auth::new(identity),
                    log.clone(),
                    self.inner.db.clock().now_ms(),
                );
                let out = guarded(
                    self.inner.config.query_timeout,
                    &spec.path,
                    handler(ctx, args),
                )
                .await;
                match part {
                    // The check's value is not the query's.
                    QueryPart::Access => out.map(|_| Value::Null),
                    QueryPart::Whole | QueryPart::Body => {
                        out.and_then(|v| validate_returns(spec, v))
                    }
                }
            }
        };
        let (read_set, journal) = match Arc::try_unwrap(state) {
            Ok(state) => {
                let state = state.into_inner();
                (state.tx.into_read_set(), state.journal_out)
            }
            Err(shared) => {
                // A handler leaked its context into a task; copy what we can.
                let guard = shared.lock().await;
                (guard.tx.read_set().clone(), guard.journal_out.clone())
            }
        };
        // Nothing read at `ts` leaves before the commits it saw in what it
        // read are durable; the result is reported at the timestamp where
        // that holds (see `Database::settle_read`).
        let (result, ts) = match self.inner.db.settle_read(ts, &read_set).await {
            Ok(settled) => (result, settled),
            Err(e) => (Err(e), ts),
        };
        match part {
            QueryPart::Whole | QueryPart::Body => record_metrics(spec, started, result.is_ok()),
            QueryPart::Access => metrics::counter!("connvo_query_access_checks_total").increment(1),
        }
        self.report_denial(spec, &identity_for_hook, &result);
        QueryOutcome {
            result,
            log_lines: log.take(),
            read_set: Arc::new(read_set),
            ts,
            journal,
        }
    }

    /// Runs a mutation with automatic retries on write conflicts. With a
    /// `session` request id, a mutation that already committed is not run
    /// again: its stored result is returned.
    pub async fn run_mutation(
        &self,
        spec: &FunctionSpec,
        args: Value,
        identity: Option<Arc<Identity>>,
        session: Option<SessionRequest>,
    ) -> MutationOutcome {
        let started = Instant::now();
        let identity_for_hook = identity.clone();
        let outcome = self
            .run_mutation_inner(spec, args, identity, session, None)
            .await;
        record_metrics(spec, started, outcome.result.is_ok());
        self.report_denial(spec, &identity_for_hook, &outcome.result);
        outcome
    }

    /// [`Runtime::run_mutation`] without metrics: the attempts, then the
    /// wait until nothing the mutation read is still undurable (see
    /// `Database::wait_published`; a committed mutation's own commit is
    /// published already, so only failures and read-only results wait).
    pub(crate) async fn run_mutation_inner(
        &self,
        spec: &FunctionSpec,
        args: Value,
        identity: Option<Arc<Identity>>,
        session: Option<SessionRequest>,
        job: Option<&crate::scheduler::JobRun>,
    ) -> MutationOutcome {
        let mut outcome = self
            .run_mutation_attempts(spec, args, identity, session, job)
            .await;
        let published = match outcome.ts {
            Some(ts) => self.inner.db.wait_published(ts).await,
            None => self.inner.db.wait_published_now().await,
        };
        if let Err(e) = published {
            outcome.result = Err(e);
        }
        outcome
    }

    async fn run_mutation_attempts(
        &self,
        spec: &FunctionSpec,
        args: Value,
        identity: Option<Arc<Identity>>,
        session: Option<SessionRequest>,
        job: Option<&crate::scheduler::JobRun>,
    ) -> MutationOutcome {
        let fail = |e: Error, log: Vec<String>| MutationOutcome {
            result: Err(e),
            log_lines: log,
            ts: None,
        };
        let Handler::Mutation(handler) = &spec.handler else {
            return fail(
                Error::bad_request(format!("{} is not a mutation", spec.path)),
                Vec::new(),
            );
        };
        if let Err(e) = validate_args(spec, &args) {
            return fail(e, Vec::new());
        }
        let mut attempt = 0usize;
        loop {
            let log = LogLines::default();
            let tx = match self.inner.db.begin(true).await {
                Ok(tx) => tx,
                Err(e) => return fail(e, Vec::new()),
            };
            let read_ts = tx.ts();
            let state = Arc::new(tokio::sync::Mutex::new(TxState {
                tx,
                journal_in: None,
                journal_out: None,
                paginated: false,
            }));
            let ctx = MutationCtx::new(
                Arc::clone(&state),
                Auth::new(identity.clone()),
                log.clone(),
                Arc::clone(&self.inner),
                self.inner.db.clock().now_ms(),
                false,
            );
            if let Some(session) = &session {
                if session.socket == SessionSocket::Later {
                    match lookup_session_request(&ctx, session, identity.as_deref()).await {
                        Ok(Some((result, lines))) => {
                            return MutationOutcome {
                                result: Ok(result),
                                log_lines: lines,
                                ts: Some(read_ts),
                            };
                        }
                        Ok(None) => {}
                        Err(e) => return fail(e, Vec::new()),
                    }
                }
                if attempt == 0
                    && let Some(start_by) = session.start_by
                    && Instant::now() > start_by
                {
                    metrics::counter!("connvo_mutations_shed_total").increment(1);
                    return fail(
                        Error::new(
                            ErrorCode::Overloaded,
                            "The server is overloaded: this mutation waited in its \
                             connection's queue past the time limit and was not run; retry later",
                        ),
                        Vec::new(),
                    );
                }
            }
            if let Some(job) = job {
                match crate::scheduler::claim_for_mutation(&ctx, job).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return fail(Error::conflict("scheduled job already ran"), Vec::new());
                    }
                    Err(e) => return fail(e, Vec::new()),
                }
            }
            let result = guarded(
                self.inner.config.mutation_timeout,
                &spec.path,
                handler(ctx.clone(), args.clone()),
            )
            .await
            .and_then(|v| validate_returns(spec, v));
            let value = match result {
                Ok(v) => v,
                Err(e) => return fail(e, log.take()),
            };
            if let Some(session) = &session {
                let lines = Value::Array(log.snapshot().into_iter().map(Value::String).collect());
                let record = Value::object([
                    ("sessionId".to_owned(), Value::from(&*session.session_id)),
                    (
                        "tokenIdentifier".to_owned(),
                        caller_key(identity.as_deref()),
                    ),
                    (
                        "requestId".to_owned(),
                        Value::Float64(f64::from(session.request_id)),
                    ),
                    ("result".to_owned(), value.clone()),
                    ("logLines".to_owned(), lines),
                ]);
                if let Err(e) = ctx
                    .db
                    .system_writer()
                    .insert(SESSION_REQUESTS_TABLE, record)
                    .await
                {
                    return fail(e, log.take());
                }
            }
            if let Some(job) = job
                && let Err(e) = crate::scheduler::complete_in_tx(&ctx, job, &value).await
            {
                return fail(e, log.take());
            }
            drop(ctx);
            let tx = match Arc::try_unwrap(state) {
                Ok(state) => state.into_inner().tx,
                Err(_) => {
                    return fail(
                        Error::internal(
                            "a mutation's context outlived the mutation (spawned task?)",
                        ),
                        log.take(),
                    );
                }
            };
            match self.inner.db.commit(tx).await {
                Ok(ts) => {
                    return MutationOutcome {
                        result: Ok(value),
                        log_lines: log.take(),
                        ts: Some(ts),
                    };
                }
                Err(e)
                    if e.code() == ErrorCode::WriteConflict
                        && attempt < limits::MAX_OCC_RETRIES =>
                {
                    attempt += 1;
                    metrics::counter!("connvo_mutation_retries_total").increment(1);
                    let backoff = 1u64 << attempt.min(6);
                    let jitter = rand::random::<u64>() % backoff.max(1);
                    tokio::time::sleep(Duration::from_millis(backoff + jitter)).await;
                }
                Err(e) => return fail(e, log.take()),
            }
        }
    }

    /// Runs an action.
    pub async fn run_action(
        &self,
        spec: &FunctionSpec,
        args: Value,
        identity: Option<Arc<Identity>>,
    ) -> ActionOutcome {
        let identity_for_hook = identity.clone();
        let started = Instant::now();
        let log = LogLines::default();
        let result = match (&spec.handler, validate_args(spec, &args)) {
            (_, Err(e)) => Err(e),
            (Handler::Action(handler), Ok(())) => {
                let ctx = ActionCtx::new(Auth::new(identity), Arc::clone(&self.inner), log.clone());
                guarded(
                    self.inner.config.action_timeout,
                    &spec.path,
                    handler(ctx, args),
                )
                .await
                .and_then(|v| validate_returns(spec, v))
            }
            _ => Err(Error::bad_request(format!(
                "{} is not an action",
                spec.path
            ))),
        };
        record_metrics(spec, started, result.is_ok());
        self.report_denial(spec, &identity_for_hook, &result);
        ActionOutcome {
            result,
            log_lines: log.take(),
        }
    }

    /// Runs any function (public or internal) by path; used by actions and tests.
    pub async fn call(
        &self,
        kind: FunctionKind,
        path: &str,
        args: Value,
        identity: Option<Arc<Identity>>,
    ) -> Result<Value> {
        self.inner.call_nested(kind, path, args, identity).await
    }
}

impl RuntimeInner {
    pub(crate) async fn call_nested(
        self: &Arc<Self>,
        kind: FunctionKind,
        path: &str,
        args: Value,
        identity: Option<Arc<Identity>>,
    ) -> Result<Value> {
        let runtime = Runtime {
            inner: Arc::clone(self),
        };
        let spec = self.registry.get(path).cloned().ok_or_else(|| {
            Error::new(
                ErrorCode::FunctionNotFound,
                format!("Could not find function for '{path}'"),
            )
        })?;
        if spec.kind != kind {
            return Err(Error::bad_request(format!(
                "{path} is a {}, not a {}",
                spec.kind.as_str(),
                kind.as_str()
            )));
        }
        match kind {
            FunctionKind::Query => {
                runtime
                    .run_query(&spec, args, identity, None, None)
                    .await
                    .result
            }
            FunctionKind::Mutation => {
                runtime
                    .run_mutation(&spec, args, identity, None)
                    .await
                    .result
            }
            FunctionKind::Action => {
                Box::pin(runtime.run_action(&spec, args, identity))
                    .await
                    .result
            }
        }
    }
}

fn validate_args(spec: &FunctionSpec, args: &Value) -> Result<()> {
    if args.size() > limits::MAX_ARGS_BYTES {
        return Err(Error::limit(format!(
            "Arguments are too large: {} bytes > {} bytes",
            args.size(),
            limits::MAX_ARGS_BYTES
        )));
    }
    spec.args.validate(args).map_err(|e| {
        Error::validation(format!(
            "ArgumentValidationError: {} (calling {})",
            e.message(),
            spec.path
        ))
    })
}

fn validate_returns(spec: &FunctionSpec, value: Value) -> Result<Value> {
    match spec.returns.validate(&value) {
        Ok(()) => Ok(value),
        Err(e) => {
            tracing::error!(function = %spec.path, error = %e, "return value does not match the returns validator");
            Err(Error::internal(format!(
                "ReturnsValidationError: {}",
                e.message()
            )))
        }
    }
}

/// Most stored records of one (session, request) a lookup examines (one per
/// caller that used those ids; normally one).
const SESSION_RECORDS_SCANNED: usize = 16;

/// Who stored a session request's result: the caller's token identifier,
/// or null when anonymous.
fn caller_key(identity: Option<&Identity>) -> Value {
    identity.map_or(Value::Null, |i| Value::from(i.token_identifier.as_str()))
}

/// The stored result of a re-sent request, if this session stored one for
/// the same caller. A record of another caller (someone who learned the
/// session id, or the client after a change of user) is not returned: its
/// result passed that caller's access checks, not this one's, and the
/// request runs afresh. Records written before callers were stored match
/// anyone (their session ids were as unguessable as today's, and a server
/// upgrade is exactly when clients re-send). At most
/// [`SESSION_RECORDS_SCANNED`] records of one (session, request) are
/// examined, oldest first: someone who learned a session id and planted
/// more records for a request id before its owner sent it can make the
/// owner's re-send run again, never see another caller's result.
async fn lookup_session_request(
    ctx: &MutationCtx,
    session: &SessionRequest,
    identity: Option<&Identity>,
) -> Result<Option<(Value, Vec<String>)>> {
    let docs = ctx
        .db
        .query(SESSION_REQUESTS_TABLE)
        .with_index("by_request", |r| {
            r.eq("sessionId", &*session.session_id)
                .eq("requestId", f64::from(session.request_id))
        })
        .order(Order::Asc)
        .take(SESSION_RECORDS_SCANNED)
        .await?;
    let caller = caller_key(identity);
    let doc = docs.into_iter().find(|d| {
        d.field("tokenIdentifier")
            .is_none_or(|stored| *stored == caller)
    });
    Ok(doc.map(|d| {
        let result = d.field("result").cloned().unwrap_or(Value::Null);
        let lines = match d.field("logLines") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        (result, lines)
    }))
}
