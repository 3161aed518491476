//! The durable scheduler and crons.
//!
//! Scheduled functions are documents of the system table
//! `_scheduled_functions`, so `ctx.scheduler.runAfter` inside a mutation is
//! part of that mutation's transaction (the job exists only if it commits) and
//! a job's status is an ordinary, reactive document:
//!
//! | field | meaning |
//! |---|---|
//! | `name` | function path |
//! | `args` | argument object |
//! | `scheduledTime` | ms since the epoch |
//! | `state` | `pending`, `inProgress` (actions), `success`, `failed`, `canceled` |
//! | `attempts` | runs started |
//! | `completedTime`, `error` | set when finished |
//! | `leaseNode`, `leaseUntil` | running actions: the node running it and until when (ms) its lease holds |
//!
//! **Exactly once for mutations**: a scheduled mutation runs in one
//! transaction with the check that its job is still `pending` and the update
//! to `success`; two runners racing for it conflict, and only one commits.
//! **Actions** are claimed (`pending → inProgress`) in a transaction, run, then
//! finished. Their [`RetryPolicy`] is explicit: `AtMostOnce` (default) marks an
//! interrupted or failed action `failed`; `Retry` puts it back to `pending`
//! with exponential backoff until its attempts are used up.
//!
//! **Leases (several nodes).** Claiming an action also writes a lease:
//! `leaseNode` (the claiming process) and `leaseUntil` (now +
//! [`ACTION_LEASE_MS`]); the runner renews it every third of that while the
//! action runs. [`Runtime::recover_interrupted_jobs`] — at start-up and then
//! periodically from the scheduler loop — only takes over `inProgress`
//! actions whose lease expired (or that have none, from before leases), so a
//! node starting up never grabs an action another live node is running, and
//! the actions of a node that died are recovered within a lease period.
//!
//! **Crons** are declared in code ([`crate::Registry::cron`]); their state
//! (`nextRun`) lives in `_cron_jobs`. A due cron advances `nextRun` and
//! enqueues a job in one transaction, so it fires once per period even with
//! several runners.

use std::sync::Arc;
use std::time::Duration;

use database::{Document, Order, TableDef};
use errors::{Error, ErrorCode, Result};
use values::{DocumentId, Value};

use crate::context::{DbWriter, MutationCtx};
use crate::exec::{Runtime, RuntimeInner};
use crate::registry::{FunctionKind, RetryPolicy};

/// A scheduled job's id (its document id in `_scheduled_functions`).
pub type JobId = DocumentId;

/// The table of scheduled jobs.
pub const SCHEDULED_TABLE: &str = "_scheduled_functions";
/// The table of cron state.
pub const CRONS_TABLE: &str = "_cron_jobs";
/// The table of WebSocket mutation results (exactly-once across reconnects).
pub const SESSION_REQUESTS_TABLE: &str = "_session_requests";

/// How long WebSocket mutation results are kept (14 days, as Convex).
pub const SESSION_REQUEST_RETENTION_MS: f64 = 14.0 * 24.0 * 3600.0 * 1000.0;
/// How long finished jobs are kept (7 days).
pub const FINISHED_JOB_RETENTION_MS: f64 = 7.0 * 24.0 * 3600.0 * 1000.0;

/// How long a claimed action's lease lasts without renewal (ms).
pub const ACTION_LEASE_MS: f64 = 30_000.0;

/// How often a running action's lease is renewed.
const LEASE_RENEW_EVERY: Duration = Duration::from_millis(ACTION_LEASE_MS as u64 / 3);

/// How often the scheduler loop looks for actions whose lease expired.
const RECOVERY_EVERY: Duration = Duration::from_millis(ACTION_LEASE_MS as u64 / 2);

/// This process's name in `leaseNode`: pid and start time.
fn node_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{nanos:x}", std::process::id())
    })
}

/// Whether an `inProgress` job's lease has expired at `now_ms` (a job
/// without a lease, claimed before leases existed, counts as expired).
fn lease_expired(doc: &Document, now_ms: f64) -> bool {
    doc.field("leaseUntil")
        .and_then(Value::as_f64)
        .is_none_or(|until| until <= now_ms)
}

/// The system tables the runtime needs; add them to every schema.
pub fn system_tables() -> Vec<TableDef> {
    vec![
        TableDef::new(SCHEDULED_TABLE)
            .any_shape()
            .index("by_state_time", &["state", "scheduledTime"]),
        TableDef::new(CRONS_TABLE)
            .any_shape()
            .index("by_name", &["name"])
            .index("by_next_run", &["nextRun"]),
        TableDef::new(SESSION_REQUESTS_TABLE)
            .any_shape()
            .index("by_request", &["sessionId", "requestId"]),
    ]
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for its time.
    Pending,
    /// An action that is running.
    InProgress,
    /// Finished successfully.
    Success,
    /// Failed (see `error`).
    Failed,
    /// Canceled before it ran.
    Canceled,
}

impl JobState {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "inProgress",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "inProgress" => Self::InProgress,
            "success" => Self::Success,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }
}

/// A job's status as read from its document.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    /// The function path.
    pub name: String,
    /// Its state.
    pub state: JobState,
    /// When it is (or was) due.
    pub scheduled_time: f64,
    /// Runs started.
    pub attempts: u32,
    /// The failure message, if it failed.
    pub error: Option<String>,
}

impl JobStatus {
    /// Parses a `_scheduled_functions` document.
    pub fn from_document(doc: &Document) -> Option<Self> {
        Some(Self {
            name: doc.field("name")?.as_str()?.to_owned(),
            state: JobState::parse(doc.field("state")?.as_str()?)?,
            scheduled_time: doc.field("scheduledTime")?.as_f64()?,
            attempts: doc.field("attempts").and_then(Value::as_f64).unwrap_or(0.0) as u32,
            error: doc
                .field("error")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

fn job_doc(function: &str, args: Value, at_ms: f64, cron: Option<&str>) -> Value {
    let mut fields = vec![
        ("name".to_owned(), Value::String(function.to_owned())),
        ("args".to_owned(), args),
        ("scheduledTime".to_owned(), Value::Float64(at_ms)),
        (
            "state".to_owned(),
            Value::String(JobState::Pending.as_str().to_owned()),
        ),
        ("attempts".to_owned(), Value::Float64(0.0)),
    ];
    if let Some(cron) = cron {
        fields.push(("cron".to_owned(), Value::String(cron.to_owned())));
    }
    Value::object(fields)
}

fn check_target(runtime: &RuntimeInner, function: &str, args: &Value) -> Result<()> {
    let spec = runtime.registry.get(function).ok_or_else(|| {
        Error::validation(format!("Cannot schedule unknown function '{function}'"))
    })?;
    if spec.kind == FunctionKind::Query {
        return Err(Error::validation(format!(
            "Cannot schedule query '{function}'"
        )));
    }
    spec.args.validate(args).map_err(|e| {
        Error::validation(format!(
            "Invalid arguments for scheduled '{function}': {}",
            e.message()
        ))
    })
}

pub(crate) async fn schedule(
    runtime: &RuntimeInner,
    db: &DbWriter,
    at_ms: f64,
    function: &str,
    args: Value,
) -> Result<JobId> {
    check_target(runtime, function, &args)?;
    db.insert(SCHEDULED_TABLE, job_doc(function, args, at_ms, None))
        .await
}

pub(crate) async fn schedule_standalone(
    runtime: &Arc<RuntimeInner>,
    at_ms: f64,
    function: &str,
    args: Value,
) -> Result<JobId> {
    check_target(runtime, function, &args)?;
    let rt = Runtime {
        inner: Arc::clone(runtime),
    };
    let doc = job_doc(function, args, at_ms, None);
    with_mutation(&rt, |ctx| {
        let doc = doc.clone();
        async move { ctx.db.insert(SCHEDULED_TABLE, doc).await }
    })
    .await
}

pub(crate) async fn cancel(db: &DbWriter, job: JobId, now_ms: f64) -> Result<()> {
    let doc = db
        .get(job)
        .await?
        .ok_or_else(|| Error::not_found(format!("Scheduled job {job} not found")))?;
    if doc.field("state").and_then(Value::as_str) == Some(JobState::Pending.as_str()) {
        db.patch(
            job,
            Value::object([
                (
                    "state".to_owned(),
                    Value::String(JobState::Canceled.as_str().into()),
                ),
                ("completedTime".to_owned(), Value::Float64(now_ms)),
            ]),
        )
        .await?;
    }
    Ok(())
}

/// Runs a closure as a system mutation (no function spec), retrying on conflicts.
pub(crate) async fn with_mutation<T, F, Fut>(runtime: &Runtime, f: F) -> Result<T>
where
    F: Fn(MutationCtx) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let db = runtime.database();
    for attempt in 0..=database::limits::MAX_OCC_RETRIES {
        let tx = db.begin(true).await?;
        let state = Arc::new(tokio::sync::Mutex::new(crate::context::TxState {
            tx,
            journal_in: None,
            journal_out: None,
            paginated: false,
        }));
        let ctx = MutationCtx::new(
            Arc::clone(&state),
            crate::context::Auth::default(),
            crate::context::LogLines::default(),
            Arc::clone(&runtime.inner),
            db.clock().now_ms(),
            true,
        );
        let out = f(ctx).await?;
        let tx = Arc::try_unwrap(state)
            .map_err(|_| Error::internal("system mutation context escaped"))?
            .into_inner()
            .tx;
        match db.commit(tx).await {
            Ok(_) => return Ok(out),
            Err(e)
                if e.code() == ErrorCode::WriteConflict
                    && attempt < database::limits::MAX_OCC_RETRIES =>
            {
                tokio::time::sleep(Duration::from_millis(1 << attempt.min(6))).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(
        ErrorCode::WriteConflict,
        "system mutation kept conflicting",
    ))
}

/// A job being run by the scheduler.
#[derive(Debug, Clone)]
pub(crate) struct JobRun {
    pub(crate) id: JobId,
}

pub(crate) async fn claim_for_mutation(ctx: &MutationCtx, job: &JobRun) -> Result<bool> {
    let doc = ctx.db.get(job.id).await?;
    Ok(doc.is_some_and(|d| {
        d.field("state").and_then(Value::as_str) == Some(JobState::Pending.as_str())
    }))
}

pub(crate) async fn complete_in_tx(ctx: &MutationCtx, job: &JobRun, _value: &Value) -> Result<()> {
    let attempts = ctx
        .db
        .get(job.id)
        .await?
        .and_then(|d| d.field("attempts").and_then(Value::as_f64))
        .unwrap_or(0.0);
    ctx.db
        .system_writer()
        .patch(
            job.id,
            Value::object([
                (
                    "state".to_owned(),
                    Value::String(JobState::Success.as_str().into()),
                ),
                ("completedTime".to_owned(), Value::Float64(ctx.now_ms())),
                ("attempts".to_owned(), Value::Float64(attempts + 1.0)),
            ]),
        )
        .await
}

/// What one scheduler pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Crons that fired.
    pub crons_fired: usize,
    /// Jobs started (mutations run to completion, actions started).
    pub jobs_started: usize,
}

impl Runtime {
    /// Reads a job's status (outside any function).
    pub async fn job_status(&self, job: JobId) -> Result<Option<JobStatus>> {
        let mut tx = self.database().begin(false).await?;
        Ok(tx
            .get(job)
            .await?
            .as_ref()
            .and_then(JobStatus::from_document))
    }

    /// Creates state for newly declared crons, updates changed ones and
    /// removes state of crons no longer declared.
    pub async fn sync_crons(&self) -> Result<()> {
        let crons = self.registry().crons().to_vec();
        let now = self.database().clock().now_ms();
        with_mutation(self, |ctx| {
            let crons = crons.clone();
            async move {
                let existing = ctx.db.query(CRONS_TABLE).collect().await?;
                for cron in &crons {
                    let doc = existing.iter().find(|d| {
                        d.field("name").and_then(Value::as_str) == Some(cron.name.as_str())
                    });
                    match doc {
                        None => {
                            ctx.db
                                .insert(
                                    CRONS_TABLE,
                                    Value::object([
                                        ("name".to_owned(), Value::String(cron.name.clone())),
                                        (
                                            "function".to_owned(),
                                            Value::String(cron.function.clone()),
                                        ),
                                        (
                                            "nextRun".to_owned(),
                                            Value::Float64(cron.schedule.next_after(now)),
                                        ),
                                    ]),
                                )
                                .await?;
                        }
                        Some(d)
                            if d.field("function").and_then(Value::as_str)
                                != Some(cron.function.as_str()) =>
                        {
                            ctx.db
                                .patch(
                                    d.id(),
                                    Value::object([(
                                        "function".to_owned(),
                                        Value::String(cron.function.clone()),
                                    )]),
                                )
                                .await?;
                        }
                        Some(_) => {}
                    }
                }
                for d in &existing {
                    let name = d.field("name").and_then(Value::as_str).unwrap_or_default();
                    if !crons.iter().any(|c| c.name == name) {
                        ctx.db.delete(d.id()).await?;
                    }
                }
                Ok(())
            }
        })
        .await
    }

    /// Marks actions left `inProgress` by a stopped or dead node as
    /// interrupted: `failed`, or back to `pending` if their retry policy
    /// allows. Only actions whose lease expired are touched (see the module
    /// documentation), so actions running on live nodes are left alone.
    pub async fn recover_interrupted_jobs(&self) -> Result<usize> {
        let registry = Arc::clone(&self.inner.registry);
        with_mutation(self, |ctx| {
            let registry = Arc::clone(&registry);
            async move {
                let now = ctx.now_ms();
                let stuck: Vec<Document> = ctx
                    .db
                    .query(SCHEDULED_TABLE)
                    .with_index("by_state_time", |r| {
                        r.eq("state", JobState::InProgress.as_str())
                    })
                    .collect()
                    .await?
                    .into_iter()
                    .filter(|d| lease_expired(d, now))
                    .collect();
                for doc in &stuck {
                    let status = JobStatus::from_document(doc);
                    let policy = status
                        .as_ref()
                        .and_then(|s| registry.get(&s.name))
                        .map(|s| s.retry);
                    let attempts = status.as_ref().map_or(0, |s| s.attempts);
                    finish_action_state(
                        &ctx,
                        doc.id(),
                        policy,
                        attempts,
                        Err("Interrupted: the server stopped while the action was running"),
                    )
                    .await?;
                }
                Ok(stuck.len())
            }
        })
        .await
    }

    /// One scheduler pass at the clock's current time: fires due crons, runs
    /// due mutations to completion and starts due actions (awaiting them too
    /// when `wait_for_actions`). Returns what it did.
    pub async fn scheduler_tick(&self, wait_for_actions: bool) -> Result<TickReport> {
        let mut report = TickReport::default();
        let now = self.database().clock().now_ms();
        // Crons.
        let due_crons = {
            let mut tx = self.database().begin(false).await?;
            let table = Arc::clone(tx.schema().require_table(CRONS_TABLE)?);
            let index = table
                .index("by_next_run")
                .cloned()
                .ok_or_else(|| Error::internal("missing cron index"))?;
            let (range, bucket) = database::IndexRange::all()
                .lte("nextRun", now)
                .compile(&index)?;
            tx.scan(&table, &index, &range, bucket, Order::Asc, None, 64)
                .await?
                .rows
        };
        for (_, doc) in due_crons {
            let name = doc
                .field("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let Some(cron) = self
                .registry()
                .crons()
                .iter()
                .find(|c| c.name == name)
                .cloned()
            else {
                continue;
            };
            let doc_id = doc.id();
            let fired = with_mutation(self, |ctx| {
                let cron = cron.clone();
                async move {
                    let Some(current) = ctx.db.get(doc_id).await? else {
                        return Ok(false);
                    };
                    let next = current
                        .field("nextRun")
                        .and_then(Value::as_f64)
                        .unwrap_or(f64::MAX);
                    if next > now {
                        return Ok(false);
                    }
                    ctx.db
                        .patch(
                            doc_id,
                            Value::object([
                                (
                                    "nextRun".to_owned(),
                                    Value::Float64(cron.schedule.next_after(now)),
                                ),
                                ("lastRun".to_owned(), Value::Float64(now)),
                            ]),
                        )
                        .await?;
                    ctx.db
                        .insert(
                            SCHEDULED_TABLE,
                            job_doc(&cron.function, cron.args.clone(), now, Some(&cron.name)),
                        )
                        .await?;
                    Ok(true)
                }
            })
            .await?;
            if fired {
                report.crons_fired += 1;
            }
        }
        // Jobs.
        let due = {
            let mut tx = self.database().begin(false).await?;
            let table = Arc::clone(tx.schema().require_table(SCHEDULED_TABLE)?);
            let index = table
                .index("by_state_time")
                .cloned()
                .ok_or_else(|| Error::internal("missing job index"))?;
            let (range, bucket) = database::IndexRange::all()
                .eq("state", JobState::Pending.as_str())
                .lte("scheduledTime", now)
                .compile(&index)?;
            tx.scan(&table, &index, &range, bucket, Order::Asc, None, 256)
                .await?
                .rows
        };
        let mut actions = Vec::new();
        for (_, doc) in due {
            let Some(status) = JobStatus::from_document(&doc) else {
                continue;
            };
            let Some(spec) = self.registry().get(&status.name).cloned() else {
                let id = doc.id();
                with_mutation(self, |ctx| async move {
                    finish_action_state(
                        &ctx,
                        id,
                        None,
                        0,
                        Err("The scheduled function no longer exists"),
                    )
                    .await
                })
                .await?;
                continue;
            };
            let args = doc
                .field("args")
                .cloned()
                .unwrap_or(Value::Object(Default::default()));
            report.jobs_started += 1;
            match spec.kind {
                FunctionKind::Mutation => {
                    let run = JobRun { id: doc.id() };
                    let outcome = self
                        .run_mutation_inner(&spec, args, None, None, Some(&run))
                        .await;
                    if let Err(e) = outcome.result
                        && (e.code() != ErrorCode::Conflict
                            || e.message() != "scheduled job already ran")
                    {
                        tracing::warn!(job = %doc.id(), function = %spec.path, error = %e, "scheduled mutation failed");
                        let id = doc.id();
                        let msg = e.message().to_owned();
                        with_mutation(self, |ctx| {
                            let msg = msg.clone();
                            async move {
                                if claim_for_mutation(&ctx, &JobRun { id }).await? {
                                    finish_action_state(
                                        &ctx,
                                        id,
                                        None,
                                        status.attempts + 1,
                                        Err(&msg),
                                    )
                                    .await?;
                                    // The failed run counts as an attempt, as a
                                    // successful one does in `complete_in_tx`
                                    // (`finish_action_state` does not store it).
                                    ctx.db
                                        .patch(
                                            id,
                                            Value::object([(
                                                "attempts".to_owned(),
                                                Value::Float64(f64::from(status.attempts + 1)),
                                            )]),
                                        )
                                        .await?;
                                }
                                Ok(())
                            }
                        })
                        .await?;
                    }
                }
                FunctionKind::Action => {
                    let id = doc.id();
                    let claimed = with_mutation(self, |ctx| async move {
                        let Some(current) = ctx.db.get(id).await? else {
                            return Ok(None);
                        };
                        if current.field("state").and_then(Value::as_str)
                            != Some(JobState::Pending.as_str())
                        {
                            return Ok(None);
                        }
                        let attempts = current
                            .field("attempts")
                            .and_then(Value::as_f64)
                            .unwrap_or(0.0)
                            + 1.0;
                        ctx.db
                            .patch(
                                id,
                                Value::object([
                                    (
                                        "state".to_owned(),
                                        Value::String(JobState::InProgress.as_str().into()),
                                    ),
                                    ("attempts".to_owned(), Value::Float64(attempts)),
                                    ("leaseNode".to_owned(), Value::String(node_id().to_owned())),
                                    (
                                        "leaseUntil".to_owned(),
                                        Value::Float64(ctx.now_ms() + ACTION_LEASE_MS),
                                    ),
                                ]),
                            )
                            .await?;
                        Ok(Some(attempts as u32))
                    })
                    .await?;
                    let Some(attempts) = claimed else { continue };
                    let rt = self.clone();
                    let task = tokio::spawn(async move {
                        let outcome = {
                            let run = rt.run_action(&spec, args, None);
                            tokio::pin!(run);
                            let mut renew = tokio::time::interval(LEASE_RENEW_EVERY);
                            renew.tick().await;
                            loop {
                                tokio::select! {
                                    outcome = &mut run => break outcome,
                                    _ = renew.tick() => {
                                        if let Err(e) = renew_lease(&rt, id, attempts).await {
                                            tracing::warn!(job = %id, error = %e, "could not renew a scheduled action's lease");
                                        }
                                    }
                                }
                            }
                        };
                        let msg = outcome
                            .result
                            .as_ref()
                            .err()
                            .map(|e| e.message().to_owned());
                        let policy = Some(spec.retry);
                        let res = with_mutation(&rt, |ctx| {
                            let msg = msg.clone();
                            async move {
                                let result = match &msg {
                                    None => Ok(()),
                                    Some(m) => Err(m.as_str()),
                                };
                                // Check-and-set: only the run that claimed this
                                // attempt may finish it (a recovery or another
                                // node may have moved the job on meanwhile).
                                let current = ctx.db.get(id).await?;
                                let still_ours = current.as_ref().is_some_and(|d| {
                                    d.field("state").and_then(Value::as_str)
                                        == Some(JobState::InProgress.as_str())
                                        && d.field("attempts").and_then(Value::as_f64)
                                            == Some(f64::from(attempts))
                                });
                                if !still_ours {
                                    tracing::warn!(job = %id, "a scheduled action finished after its job was taken over; result dropped");
                                    return Ok(());
                                }
                                finish_action_state(&ctx, id, policy, attempts, result).await
                            }
                        })
                        .await;
                        if let Err(e) = res {
                            tracing::error!(job = %id, error = %e, "could not record the end of a scheduled action");
                        }
                    });
                    actions.push(task);
                }
                FunctionKind::Query => {}
            }
        }
        if wait_for_actions {
            for task in actions {
                let _ = task.await;
            }
        }
        Ok(report)
    }

    /// The earliest time anything is due (pending job or cron), if any.
    async fn next_due(
        &self,
    ) -> Result<(
        Option<f64>,
        Arc<database::readset::ReadSet>,
        persistence::Timestamp,
    )> {
        let mut tx = self.database().begin(false).await?;
        let jobs = Arc::clone(tx.schema().require_table(SCHEDULED_TABLE)?);
        let index = jobs
            .index("by_state_time")
            .cloned()
            .ok_or_else(|| Error::internal("missing job index"))?;
        let (range, bucket) = database::IndexRange::all()
            .eq("state", JobState::Pending.as_str())
            .compile(&index)?;
        let next_job = tx
            .scan(&jobs, &index, &range, bucket, Order::Asc, None, 1)
            .await?
            .rows;
        let crons = Arc::clone(tx.schema().require_table(CRONS_TABLE)?);
        let index = crons
            .index("by_next_run")
            .cloned()
            .ok_or_else(|| Error::internal("missing cron index"))?;
        let (range, bucket) = database::IndexRange::all().compile(&index)?;
        let next_cron = tx
            .scan(&crons, &index, &range, bucket, Order::Asc, None, 1)
            .await?
            .rows;
        let ts = tx.ts();
        let times = next_job
            .iter()
            .filter_map(|(_, d)| d.field("scheduledTime").and_then(Value::as_f64))
            .chain(
                next_cron
                    .iter()
                    .filter_map(|(_, d)| d.field("nextRun").and_then(Value::as_f64)),
            );
        let next = times.fold(None, |acc: Option<f64>, t| {
            Some(acc.map_or(t, |a| a.min(t)))
        });
        Ok((next, Arc::new(tx.into_read_set()), ts))
    }

    /// Runs the scheduler until `shutdown` resolves: syncs crons, recovers
    /// interrupted actions, then loops — run what is due, then sleep until
    /// the next due time or until a commit changes the pending jobs or crons.
    pub async fn run_scheduler(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        if let Err(e) = self.sync_crons().await {
            tracing::error!(error = %e, "could not sync crons");
        }
        let mut last_recovery: Option<std::time::Instant> = None;
        loop {
            if last_recovery.is_none_or(|t| t.elapsed() >= RECOVERY_EVERY) {
                last_recovery = Some(std::time::Instant::now());
                match self.recover_interrupted_jobs().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(
                        jobs = n,
                        "recovered actions whose node stopped (lease expired)"
                    ),
                    Err(e) => tracing::error!(error = %e, "could not recover interrupted jobs"),
                }
            }
            if let Err(e) = self.scheduler_tick(false).await {
                tracing::error!(error = %e, "scheduler pass failed");
            }
            let (next, read_set, ts) = match self.next_due().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "scheduler could not read due jobs");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = &mut shutdown => return,
                    }
                }
            };
            let subscription = self.database().subscriptions().subscribe(read_set, ts);
            let now = self.database().clock().now_ms();
            let wait = next
                .map_or(Duration::from_secs(60), |t| {
                    Duration::from_millis(((t - now).max(0.0) as u64).min(60_000))
                })
                .min(RECOVERY_EVERY);
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = subscription.wait_invalidated() => {}
                _ = &mut shutdown => return,
            }
        }
    }
}

/// Extends the lease of a running action, if the job is still the attempt
/// this node claimed.
async fn renew_lease(runtime: &Runtime, id: JobId, attempts: u32) -> Result<()> {
    with_mutation(runtime, |ctx| async move {
        let current = ctx.db.get(id).await?;
        let ours = current.as_ref().is_some_and(|d| {
            d.field("state").and_then(Value::as_str) == Some(JobState::InProgress.as_str())
                && d.field("attempts").and_then(Value::as_f64) == Some(f64::from(attempts))
        });
        if ours {
            ctx.db
                .patch(
                    id,
                    Value::object([(
                        "leaseUntil".to_owned(),
                        Value::Float64(ctx.now_ms() + ACTION_LEASE_MS),
                    )]),
                )
                .await?;
        }
        Ok(())
    })
    .await
}

async fn finish_action_state(
    ctx: &MutationCtx,
    id: JobId,
    policy: Option<RetryPolicy>,
    attempts: u32,
    result: std::result::Result<(), &str>,
) -> Result<()> {
    let now = ctx.now_ms();
    let fields = match (result, policy) {
        (Ok(()), _) => vec![
            (
                "state".to_owned(),
                Value::String(JobState::Success.as_str().into()),
            ),
            ("completedTime".to_owned(), Value::Float64(now)),
        ],
        (
            Err(msg),
            Some(RetryPolicy::Retry {
                max_attempts,
                initial_backoff,
            }),
        ) if attempts < max_attempts => {
            let backoff =
                initial_backoff.as_millis() as f64 * 2f64.powi(attempts.saturating_sub(1) as i32);
            vec![
                (
                    "state".to_owned(),
                    Value::String(JobState::Pending.as_str().into()),
                ),
                ("scheduledTime".to_owned(), Value::Float64(now + backoff)),
                ("error".to_owned(), Value::String(msg.to_owned())),
            ]
        }
        (Err(msg), _) => vec![
            (
                "state".to_owned(),
                Value::String(JobState::Failed.as_str().into()),
            ),
            ("completedTime".to_owned(), Value::Float64(now)),
            ("error".to_owned(), Value::String(msg.to_owned())),
        ],
    };
    ctx.db.patch(id, Value::object(fields)).await
}

/// The path of the built-in cleanup of old WebSocket mutation results.
pub const CLEANUP_SESSION_REQUESTS: &str = "_system/cleanup:sessionRequests";
/// The path of the built-in cleanup of finished jobs.
pub const CLEANUP_FINISHED_JOBS: &str = "_system/cleanup:finishedJobs";
/// Most documents one cleanup run deletes (the cron runs hourly).
pub const CLEANUP_BATCH: usize = 2000;

/// A cleanup run that deleted a full batch schedules its next run at once,
/// so a backlog drains in batches of [`CLEANUP_BATCH`] (each its own
/// commit) instead of 2,000 per hour: a server taking more mutations per
/// hour than that would otherwise never catch up.
async fn drain_backlog(ctx: &MutationCtx, function: &str, deleted: usize) -> Result<()> {
    if deleted >= CLEANUP_BATCH {
        ctx.scheduler
            .run_after(Duration::ZERO, function, serde_json::json!({}))
            .await?;
    }
    Ok(())
}

/// Registers the runtime's own internal functions and crons: hourly removal
/// of `_session_requests` older than 14 days and of finished jobs older
/// than 7 days, each run followed at once by another while it deleted a
/// full batch.
pub(crate) fn register_system(registry: &mut crate::Registry) {
    use crate::registry::{CronSchedule, FunctionDef, Visibility};
    use values::v;

    registry.register(
        FunctionDef::new(CLEANUP_SESSION_REQUESTS, Visibility::Internal)
            .args(v::object([] as [(&str, values::Validator); 0]))
            .returns(v::number())
            .doc("@summary Deletes WebSocket mutation results older than 14 days")
            .mutation(|ctx: MutationCtx, _args: Value| async move {
                let cutoff = ctx.now_ms() - SESSION_REQUEST_RETENTION_MS;
                let old = ctx
                    .db
                    .query(SESSION_REQUESTS_TABLE)
                    .with_index(database::schema::BY_CREATION_TIME, |r| {
                        r.lt("_creationTime", cutoff)
                    })
                    .take(CLEANUP_BATCH)
                    .await?;
                let db = ctx.db.system_writer();
                for doc in &old {
                    db.delete(doc.id()).await?;
                }
                drain_backlog(&ctx, CLEANUP_SESSION_REQUESTS, old.len()).await?;
                Ok(old.len() as f64)
            }),
    );
    registry.register(
        FunctionDef::new(CLEANUP_FINISHED_JOBS, Visibility::Internal)
            .args(v::object([] as [(&str, values::Validator); 0]))
            .returns(v::number())
            .doc("@summary Deletes finished scheduled jobs older than 7 days")
            .mutation(|ctx: MutationCtx, _args: Value| async move {
                let cutoff = ctx.now_ms() - FINISHED_JOB_RETENTION_MS;
                let db = ctx.db.system_writer();
                let mut deleted = 0usize;
                for state in [JobState::Success, JobState::Failed, JobState::Canceled] {
                    let old = ctx
                        .db
                        .query(SCHEDULED_TABLE)
                        .with_index("by_state_time", |r| {
                            r.eq("state", state.as_str()).lt("scheduledTime", cutoff)
                        })
                        .take(CLEANUP_BATCH - deleted)
                        .await?;
                    for doc in &old {
                        db.delete(doc.id()).await?;
                    }
                    deleted += old.len();
                    if deleted >= CLEANUP_BATCH {
                        break;
                    }
                }
                drain_backlog(&ctx, CLEANUP_FINISHED_JOBS, deleted).await?;
                Ok(deleted as f64)
            }),
    );
    let hourly = || CronSchedule::Interval(Duration::from_secs(3600));
    registry.cron(
        "_system.cleanupSessionRequests",
        hourly(),
        CLEANUP_SESSION_REQUESTS,
        Value::Object(Default::default()),
    );
    registry.cron(
        "_system.cleanupFinishedJobs",
        hourly(),
        CLEANUP_FINISHED_JOBS,
        Value::Object(Default::default()),
    );
}
