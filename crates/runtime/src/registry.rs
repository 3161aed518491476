//! The function registry: every query, mutation and action by path.
//!
//! Paths are Convex's canonical `dir/file:export` (e.g.
//! `meetings/lifecycle:createMeeting`). Each entry holds the function's kind,
//! visibility, argument and return validators, doc comment and handler.
//!
//! ```
//! use runtime::{FunctionDef, Registry, Visibility};
//! use values::v;
//! # #[derive(serde::Deserialize)] struct Args { name: String }
//! let mut registry = Registry::new();
//! registry.register(
//!     FunctionDef::new("greetings:hello", Visibility::Public)
//!         .args(v::object([("name", v::string())]))
//!         .returns(v::string())
//!         .doc("@summary Greets someone")
//!         .query(|_ctx, args: Args| async move { Ok(format!("hello {}", args.name)) }),
//! );
//! assert!(registry.get("greetings:hello").is_some());
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use errors::Result;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use values::Value;
use values::validator::Validator;

use crate::context::{ActionCtx, MutationCtx, QueryCtx};

/// What kind of function this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FunctionKind {
    /// Read-only, deterministic, reactive.
    Query,
    /// A serializable read-write transaction.
    Mutation,
    /// Arbitrary code (HTTP calls); reads and writes via queries and mutations.
    Action,
}

impl FunctionKind {
    /// Lower-case name (`query`, `mutation`, `action`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Mutation => "mutation",
            Self::Action => "action",
        }
    }
}

/// Who may call a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Callable by clients.
    Public,
    /// Callable only from other functions, the scheduler and crons.
    Internal,
}

pub(crate) type QueryHandler =
    Arc<dyn Fn(QueryCtx, Value) -> BoxFuture<'static, Result<Value>> + Send + Sync>;
pub(crate) type MutationHandler =
    Arc<dyn Fn(MutationCtx, Value) -> BoxFuture<'static, Result<Value>> + Send + Sync>;
pub(crate) type ActionHandler =
    Arc<dyn Fn(ActionCtx, Value) -> BoxFuture<'static, Result<Value>> + Send + Sync>;

/// A function's implementation.
#[derive(Clone)]
pub(crate) enum Handler {
    Query(QueryHandler),
    Mutation(MutationHandler),
    Action(ActionHandler),
}

/// What happens when a scheduled action fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Run at most once: a failure or an interruption (restart) is final.
    AtMostOnce,
    /// Retry failures and interruptions up to `max_attempts` runs in total,
    /// waiting `initial_backoff * 2^(attempt-1)` between runs.
    Retry {
        /// Total runs allowed.
        max_attempts: u32,
        /// Wait before the second run.
        initial_backoff: Duration,
    },
}

/// One registered function.
#[derive(Clone)]
pub struct FunctionSpec {
    /// Canonical path.
    pub path: String,
    /// Kind.
    pub kind: FunctionKind,
    /// Visibility.
    pub visibility: Visibility,
    /// Argument validator (an object validator).
    pub args: Validator,
    /// Return validator.
    pub returns: Validator,
    /// The doc comment (see the API documentation standard).
    pub doc: String,
    /// Retry policy when run by the scheduler (actions only).
    pub retry: RetryPolicy,
    pub(crate) handler: Handler,
    /// For a query declared with an access check apart from its body
    /// ([`FunctionDef::query_with_access`]): the two parts. `handler` then
    /// runs both in order.
    pub(crate) split: Option<SplitQuery>,
    /// `connvo_function_seconds` for this function, `[success, error]`,
    /// registered on first use (see `exec::record_metrics`).
    pub(crate) timers: std::sync::OnceLock<[metrics::Histogram; 2]>,
}

/// A query whose result does not depend on who asks, once they may ask.
///
/// `access` sees the caller and decides whether they may run the query (its
/// `Ok` value is ignored); `body` computes the result and sees no identity
/// at all (`ctx.auth` is anonymous), so its result, and the work of
/// computing it, can be shared by every caller the access check let in.
#[derive(Clone)]
pub(crate) struct SplitQuery {
    pub(crate) access: QueryHandler,
    pub(crate) body: QueryHandler,
}

impl FunctionSpec {
    /// Whether the query was declared with its access check apart from an
    /// identity-free body, so live subscribers with different identities
    /// can share the body's executions (see `runtime::QueryPart`).
    pub fn shares_body_across_identities(&self) -> bool {
        self.split.is_some()
    }
}

impl std::fmt::Debug for FunctionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionSpec")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("visibility", &self.visibility)
            .finish_non_exhaustive()
    }
}

/// Builder for a [`FunctionSpec`].
#[derive(Debug, Clone)]
pub struct FunctionDef {
    path: String,
    visibility: Visibility,
    args: Validator,
    returns: Validator,
    doc: String,
    retry: RetryPolicy,
}

fn adapt<A, R, C, Fut>(
    f: impl Fn(C, A) -> Fut + Send + Sync + 'static,
) -> Arc<dyn Fn(C, Value) -> BoxFuture<'static, Result<Value>> + Send + Sync>
where
    A: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    C: Send + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |ctx: C, args: Value| {
        let f = Arc::clone(&f);
        async move {
            let args: A = values::from_value(args)?;
            let out = f(ctx, args).await?;
            values::to_value(&out)
        }
        .boxed()
    })
}

impl FunctionDef {
    /// Starts a definition at `path` (`dir/file:export`).
    pub fn new(path: &str, visibility: Visibility) -> Self {
        Self {
            path: path.to_owned(),
            visibility,
            args: Validator::Object(Vec::new()),
            returns: Validator::Any,
            doc: String::new(),
            retry: RetryPolicy::AtMostOnce,
        }
    }

    /// Sets the argument validator (must be an object validator).
    pub fn args(mut self, args: Validator) -> Self {
        self.args = args;
        self
    }

    /// Sets the return validator.
    pub fn returns(mut self, returns: Validator) -> Self {
        self.returns = returns;
        self
    }

    /// Sets the doc comment.
    pub fn doc(mut self, doc: &str) -> Self {
        self.doc = doc.to_owned();
        self
    }

    /// Sets the retry policy for scheduled runs (actions).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn finish(self, kind: FunctionKind, handler: Handler) -> FunctionSpec {
        FunctionSpec {
            path: self.path,
            kind,
            visibility: self.visibility,
            args: self.args,
            returns: self.returns,
            doc: self.doc,
            retry: self.retry,
            handler,
            split: None,
            timers: std::sync::OnceLock::new(),
        }
    }

    /// Finishes as a query with a typed handler.
    pub fn query<A, R, Fut>(
        self,
        f: impl Fn(QueryCtx, A) -> Fut + Send + Sync + 'static,
    ) -> FunctionSpec
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
    {
        self.finish(FunctionKind::Query, Handler::Query(adapt(f)))
    }

    /// Finishes as a query made of an access check and an identity-free
    /// body.
    ///
    /// Called directly (HTTP, one-shot WebSocket runs, other functions), the
    /// query runs `access` and then, if it allowed the caller, `body`, in one
    /// snapshot: the same as a handler that starts with the check. Live
    /// subscriptions keep one `body` execution per distinct arguments and
    /// one (rarely re-run) `access` result per identity, so a write re-runs
    /// the body once however many people watch it. `body` gets a context
    /// with no identity: whatever depends on the caller belongs in `access`
    /// (a body that asks for the caller fails closed, `UNAUTHORIZED`).
    pub fn query_with_access<A, B, R, FutA, FutB>(
        self,
        access: impl Fn(QueryCtx, A) -> FutA + Send + Sync + 'static,
        body: impl Fn(QueryCtx, B) -> FutB + Send + Sync + 'static,
    ) -> FunctionSpec
    where
        A: DeserializeOwned + Send + 'static,
        B: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        FutA: Future<Output = Result<()>> + Send + 'static,
        FutB: Future<Output = Result<R>> + Send + 'static,
    {
        let access = adapt(access);
        let body = adapt(body);
        let (a, b) = (Arc::clone(&access), Arc::clone(&body));
        let whole: QueryHandler = Arc::new(move |ctx: QueryCtx, args: Value| {
            let (a, b) = (Arc::clone(&a), Arc::clone(&b));
            async move {
                a(ctx.clone(), args.clone()).await?;
                b(ctx.anonymous(), args).await
            }
            .boxed()
        });
        let mut spec = self.finish(FunctionKind::Query, Handler::Query(whole));
        spec.split = Some(SplitQuery { access, body });
        spec
    }

    /// Finishes as a mutation with a typed handler.
    pub fn mutation<A, R, Fut>(
        self,
        f: impl Fn(MutationCtx, A) -> Fut + Send + Sync + 'static,
    ) -> FunctionSpec
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
    {
        self.finish(FunctionKind::Mutation, Handler::Mutation(adapt(f)))
    }

    /// Finishes as an action with a typed handler.
    pub fn action<A, R, Fut>(
        self,
        f: impl Fn(ActionCtx, A) -> Fut + Send + Sync + 'static,
    ) -> FunctionSpec
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
    {
        self.finish(FunctionKind::Action, Handler::Action(adapt(f)))
    }
}

/// When a cron fires.
#[derive(Debug, Clone)]
pub enum CronSchedule {
    /// Every fixed interval.
    Interval(Duration),
    /// A cron expression with seconds (`sec min hour day-of-month month day-of-week`), UTC.
    Cron(Box<cron::Schedule>),
}

impl CronSchedule {
    /// Parses a cron expression (6 or 7 fields, seconds first).
    pub fn parse(expr: &str) -> Result<Self> {
        expr.parse::<cron::Schedule>()
            .map(|s| Self::Cron(Box::new(s)))
            .map_err(|e| errors::Error::internal(format!("invalid cron expression {expr:?}: {e}")))
    }

    /// The first firing strictly after `after_ms`.
    pub fn next_after(&self, after_ms: f64) -> f64 {
        match self {
            Self::Interval(d) => after_ms + (d.as_millis().max(1) as f64),
            Self::Cron(s) => {
                let after =
                    chrono::DateTime::from_timestamp_millis(after_ms as i64).unwrap_or_default();
                s.after(&after)
                    .next()
                    .map(|t| t.timestamp_millis() as f64)
                    .unwrap_or(f64::MAX)
            }
        }
    }
}

/// A cron job declared in code.
#[derive(Debug, Clone)]
pub struct CronSpec {
    /// Unique name.
    pub name: String,
    /// When it fires.
    pub schedule: CronSchedule,
    /// The function it runs (any kind, usually internal).
    pub function: String,
    /// The arguments it passes.
    pub args: Value,
}

/// All functions and crons of the server.
#[derive(Debug, Default)]
pub struct Registry {
    functions: BTreeMap<String, Arc<FunctionSpec>>,
    crons: Vec<CronSpec>,
    denial_hook: Option<String>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a function. Panics on a duplicate path: registration happens at
    /// start-up from code, so a duplicate is a programming error.
    pub fn register(&mut self, spec: FunctionSpec) {
        let path = spec.path.clone();
        assert!(
            self.functions
                .insert(path.clone(), Arc::new(spec))
                .is_none(),
            "function {path} registered twice"
        );
    }

    /// Declares a cron job.
    pub fn cron(&mut self, name: &str, schedule: CronSchedule, function: &str, args: Value) {
        assert!(
            !self.crons.iter().any(|c| c.name == name),
            "cron {name} declared twice"
        );
        self.crons.push(CronSpec {
            name: name.to_owned(),
            schedule,
            function: function.to_owned(),
            args,
        });
    }

    /// Names an internal mutation the runtime runs — in its own
    /// transaction, with the caller's identity — whenever a public function
    /// refuses a signed-in caller with `FORBIDDEN` or
    /// `INSUFFICIENT_PERMISSIONS`. Its arguments are
    /// `{function, code, message}`. This is how denied access reaches the
    /// audit log even though the refused function's own transaction never
    /// commits.
    pub fn set_denial_hook(&mut self, path: &str) {
        self.denial_hook = Some(path.to_owned());
    }

    /// The denial hook, if any.
    pub fn denial_hook(&self) -> Option<&str> {
        self.denial_hook.as_deref()
    }

    /// The function at a canonical path.
    pub fn get(&self, path: &str) -> Option<&Arc<FunctionSpec>> {
        self.functions.get(path)
    }

    /// All functions in path order.
    pub fn functions(&self) -> impl Iterator<Item = &Arc<FunctionSpec>> {
        self.functions.values()
    }

    /// All crons.
    pub fn crons(&self) -> &[CronSpec] {
        &self.crons
    }
}
