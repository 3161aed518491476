//! `connvo-bench engine`: microbenchmarks of the storage engine.
//!
//! Everything runs in-process against the real stack — a [`SqlitePersistence`]
//! store in a data directory on disk (WAL mode, `synchronous=FULL` unless
//! `--sync normal`), the real [`Database`] with its group committer and
//! [`SubscriptionManager`], and for mutations the real [`Runtime`] — on a
//! multi-threaded Tokio runtime with one worker per core. Nothing is mocked
//! and no network is involved.
//!
//! # Data set
//!
//! Table `items` (`group: string, n: number, payload: string`, index
//! `by_group` over `group`) is seeded with 100 groups (`g000`…`g099`) of 100
//! documents each (10 groups in `--quick` mode), plus a group `hot` of 100
//! documents (10 in `--quick` mode) that only the invalidation benchmark
//! reads and writes, and a group `spare` nobody subscribes to. Every document
//! carries a 100-byte `payload`, so a stored document is about 210 bytes of
//! JSON. Table `events` (`session, n, payload`, index
//! `by_session`) receives the mutation benchmark's inserts.
//!
//! # What is measured
//!
//! 1. **Point read** — one operation is `db.begin(false)` (borrow a pooled
//!    read connection, `BEGIN`, read `max_ts`: the snapshot open),
//!    `Transaction::get` of a uniformly random seeded document, and dropping
//!    the transaction (which ends the SQLite read transaction). Reported:
//!    operations per second of one task issuing them back to back, and the
//!    per-operation latency (p50, p99, mean).
//! 2. **Indexed range of 100 documents** — `db.begin(false)`, compile
//!    `by_group == gNNN` for a random group, `Transaction::scan` with limit
//!    1000 (returns the group's 100 documents, parsed), drop. Same figures.
//! 3. **Single-document insert mutation** — `Runtime::run_mutation` of the
//!    registered mutation `bench:insertEvent`, which validates its arguments,
//!    opens a write transaction, inserts one `events` document and commits
//!    durably. (a) *Sequential*: one caller, one mutation at a time — the
//!    latency is dominated by one storage commit (an fsync with
//!    `synchronous=FULL`). (b) *Concurrent*: 64 tasks each issuing mutations
//!    back to back; the committer writes everything queued while the previous
//!    group was being made durable as one group with one fsync, so commits/s
//!    should be far above 1 / fsync time. The average group size and the
//!    committer's time per group (write lock, validation, writes, the durable
//!    COMMIT, publishing to subscriptions) come from the engine's own
//!    `connvo_commit_group_size` / `connvo_commit_group_seconds` histograms,
//!    captured by a small [`metrics::Recorder`] installed by this command.
//! 4. **One commit invalidating 1,000 subscriptions** — 10,000 subscriptions
//!    are registered over the read sets of real queries of the other groups
//!    (one query per group, its read set shared by that group's ~100
//!    subscriptions), and stay registered for the whole benchmark. Each run
//!    then runs 1,000 real queries of group `hot` (each in its own read
//!    transaction), registers each read set with
//!    `db.subscriptions().subscribe(read_set, ts)`, and parks one Tokio task
//!    per subscription in `wait_invalidated()`. A write transaction inserting
//!    one document into `hot` is prepared; the clock starts just before
//!    `db.commit(tx)` and stops when the last of the 1,000 waiting tasks has
//!    woken (each records the instant it woke). The run then asserts that all
//!    1,000 were invalidated at exactly that commit's timestamp and that none
//!    of the 10,000 others was invalidated (the command fails otherwise).
//!    For comparison each run also reports when `db.commit` returned, the
//!    latency of an identical commit into the unsubscribed group `spare`
//!    (same store, same 10,000 live subscriptions), and the time of
//!    [`SubscriptionManager::apply`] alone for the same write against a fresh
//!    in-memory manager holding the same 11,000 read sets.
//!
//! # Runs, warm-up and statistics
//!
//! Every benchmark first does an unrecorded warm-up (a fifth of a run for the
//! per-operation benchmarks, one full run for the invalidation benchmark),
//! then `--runs` measured runs (default 5). Each run yields one value per
//! figure (e.g. "p99 latency of this run"); the report gives the **median**
//! over runs with the minimum and maximum. Per-run percentiles use the
//! nearest-rank method.
//!
//! Default operations per run — point reads 20,000, range reads 3,000,
//! sequential inserts 500, concurrent inserts 64 × 80 — keep the whole command
//! well under a minute on a 2-core machine; `--iterations N` sets all four to
//! `N` (the concurrent count rounded up to a multiple of 64). `--quick` uses
//! tiny counts for smoke tests. The invalidation benchmark always performs
//! one commit per run against 1,000 + 10,000 subscriptions.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};
use database::document::index_key;
use database::readset::{ReadSet, WriteSet, WrittenKey};
use database::schema::Table;
use database::subscriptions::WriteLogLimits;
use database::{
    Database, DatabaseOptions, IndexRange, Order, RandomIds, Schema, Subscription,
    SubscriptionManager, SystemClock, TableDef, Timestamp,
};
use persistence_sqlite::{DB_FILE_NAME, SqliteOptions, SqlitePersistence};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use runtime::{
    FunctionDef, FunctionSpec, MutationCtx, Registry, Runtime, RuntimeConfig, Visibility,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use values::{DocumentId, Value, v};

use crate::report::{BenchResult, Figure, Report, Samples, per_second};

/// Arguments of `connvo-bench engine`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Measured runs per benchmark, after one warm-up; every figure is the
    /// median over the runs (min and max are shown too).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,

    /// Operations per run of the point-read, range-read, sequential-insert and
    /// concurrent-insert benchmarks (default: tuned per benchmark to keep the
    /// total under a minute).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub iterations: Option<u64>,

    /// Write machine-readable results (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write a Markdown table of the results to this file.
    #[arg(long, value_name = "FILE")]
    pub md: Option<PathBuf>,

    /// Store directory (created if missing; must not already hold a store).
    /// Default: a fresh temporary directory, removed afterwards.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// SQLite durability: `full` fsyncs every commit (power-loss safe),
    /// `normal` only survives process crashes.
    #[arg(long, value_enum, default_value_t = SyncMode::Full)]
    pub sync: SyncMode,

    /// Tiny iteration counts (a smoke test that finishes in seconds).
    #[arg(long)]
    pub quick: bool,
}

/// The SQLite `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncMode {
    /// `synchronous=FULL`: durable against power loss.
    Full,
    /// `synchronous=NORMAL`: durable against process crashes only.
    Normal,
}

impl SyncMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Normal => "normal",
        }
    }
}

const ITEMS: &str = "items";
const EVENTS: &str = "events";
const BY_GROUP: &str = "by_group";
const HOT: &str = "hot";
const SPARE: &str = "spare";
const INSERT_FN: &str = "bench:insertEvent";
const DOCS_PER_GROUP: usize = 100;
const HOT_SUBSCRIPTIONS: usize = 1_000;
const OTHER_SUBSCRIPTIONS: usize = 10_000;
const CONCURRENT_TASKS: usize = 64;
const RANGE_LIMIT: usize = 1_000;
/// 100 bytes of filler so documents have a realistic size.
const PAYLOAD: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.";
/// How long a waiting subscription may take to be woken before the run fails.
const WAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Operation counts of one session.
#[derive(Debug, Clone, Copy)]
struct Plan {
    runs: usize,
    groups: usize,
    point_reads: usize,
    range_reads: usize,
    seq_inserts: usize,
    concurrent_per_task: usize,
    /// Documents seeded into the group the 1,000 subscriptions watch.
    hot_docs: usize,
}

impl Plan {
    fn new(args: &EngineArgs) -> Self {
        let mut plan = if args.quick {
            Self {
                runs: 0,
                groups: 10,
                point_reads: 200,
                range_reads: 50,
                seq_inserts: 10,
                concurrent_per_task: 2,
                hot_docs: 10,
            }
        } else {
            Self {
                runs: 0,
                groups: 100,
                point_reads: 20_000,
                range_reads: 3_000,
                seq_inserts: 500,
                concurrent_per_task: 80,
                hot_docs: DOCS_PER_GROUP,
            }
        };
        plan.runs = args.runs as usize;
        if let Some(n) = args.iterations {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            plan.point_reads = n;
            plan.range_reads = n;
            plan.seq_inserts = n;
            plan.concurrent_per_task = n.div_ceil(CONCURRENT_TASKS);
        }
        plan
    }

    fn concurrent_inserts(&self) -> usize {
        self.concurrent_per_task * CONCURRENT_TASKS
    }
}

/// Warm-up size for a run of `n` operations.
fn warmup(n: usize) -> usize {
    n.div_ceil(5).max(1)
}

// ---------------------------------------------------------------------------
// Commit-group statistics, read from the engine's metrics.

/// Totals of the committer's `connvo_commit_group_*` histograms.
struct GroupTotals {
    groups: AtomicU64,
    requests: AtomicU64,
    nanos: AtomicU64,
}

static GROUP_TOTALS: GroupTotals = GroupTotals {
    groups: AtomicU64::new(0),
    requests: AtomicU64::new(0),
    nanos: AtomicU64::new(0),
};

/// A point-in-time copy of [`GROUP_TOTALS`].
#[derive(Debug, Clone, Copy, Default)]
struct GroupSnapshot {
    groups: u64,
    requests: u64,
    nanos: u64,
}

impl GroupSnapshot {
    fn now() -> Self {
        Self {
            groups: GROUP_TOTALS.groups.load(Ordering::Acquire),
            requests: GROUP_TOTALS.requests.load(Ordering::Acquire),
            nanos: GROUP_TOTALS.nanos.load(Ordering::Acquire),
        }
    }

    /// Average group size and average group time (ms) since `earlier`.
    fn since(self, earlier: Self) -> (f64, f64) {
        let groups = self.groups.saturating_sub(earlier.groups);
        if groups == 0 {
            return (0.0, 0.0);
        }
        let requests = self.requests.saturating_sub(earlier.requests);
        let nanos = self.nanos.saturating_sub(earlier.nanos);
        (
            requests as f64 / groups as f64,
            nanos as f64 / groups as f64 / 1e6,
        )
    }
}

struct GroupSizeHistogram;

impl metrics::HistogramFn for GroupSizeHistogram {
    fn record(&self, value: f64) {
        GROUP_TOTALS.groups.fetch_add(1, Ordering::AcqRel);
        GROUP_TOTALS
            .requests
            .fetch_add(value.max(0.0) as u64, Ordering::AcqRel);
    }
}

struct GroupSecondsHistogram;

impl metrics::HistogramFn for GroupSecondsHistogram {
    fn record(&self, value: f64) {
        GROUP_TOTALS
            .nanos
            .fetch_add((value.max(0.0) * 1e9) as u64, Ordering::AcqRel);
    }
}

/// A recorder that keeps only the two commit-group histograms and drops
/// every other metric.
struct GroupRecorder;

impl metrics::Recorder for GroupRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        match key.name() {
            "connvo_commit_group_size" => {
                metrics::Histogram::from_arc(Arc::new(GroupSizeHistogram))
            }
            "connvo_commit_group_seconds" => {
                metrics::Histogram::from_arc(Arc::new(GroupSecondsHistogram))
            }
            _ => metrics::Histogram::noop(),
        }
    }
}

// ---------------------------------------------------------------------------
// Setup.

fn schema() -> Result<Arc<Schema>> {
    let schema = Schema::builder()
        .table(
            TableDef::new(ITEMS)
                .field("group", v::string())
                .field("n", v::number())
                .field("payload", v::string())
                .index(BY_GROUP, &["group"]),
        )
        .table(
            TableDef::new(EVENTS)
                .field("session", v::string())
                .field("n", v::number())
                .field("payload", v::string())
                .index("by_session", &["session"]),
        )
        .tables(runtime::system_tables())
        .build()?;
    Ok(Arc::new(schema))
}

#[derive(Debug, Deserialize)]
struct InsertArgs {
    session: String,
    n: f64,
}

#[derive(Debug, Serialize)]
struct Event {
    session: String,
    n: f64,
    payload: &'static str,
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(
        FunctionDef::new(INSERT_FN, Visibility::Public)
            .args(v::object([("session", v::string()), ("n", v::number())]))
            .returns(v::string())
            .doc("@summary Inserts one event (benchmark)")
            .mutation(|ctx: MutationCtx, args: InsertArgs| async move {
                let id = ctx
                    .db
                    .insert(
                        EVENTS,
                        Event {
                            session: args.session,
                            n: args.n,
                            payload: PAYLOAD,
                        },
                    )
                    .await?;
                Ok::<String, errors::Error>(id.encode())
            }),
    );
    registry
}

fn item(group: &str, n: usize) -> Value {
    Value::object([
        ("group", Value::from(group)),
        ("n", Value::from(n as f64)),
        ("payload", Value::from(PAYLOAD)),
    ])
}

fn group_name(i: usize) -> String {
    format!("g{i:03}")
}

/// Inserts `count` documents into each `(group, count)`, ten groups per
/// transaction; returns the ids in order.
async fn seed(db: &Database, groups: &[(String, usize)]) -> Result<Vec<DocumentId>> {
    let mut ids = Vec::new();
    for chunk in groups.chunks(10) {
        let mut tx = db.begin(true).await?;
        for (group, count) in chunk {
            for n in 0..*count {
                ids.push(tx.insert(ITEMS, item(group, n))?);
            }
        }
        db.commit(tx).await?;
    }
    Ok(ids)
}

/// The engine under test plus what the benchmarks need to address it.
struct Fixture {
    db: Database,
    runtime: Runtime,
    insert: Arc<FunctionSpec>,
    items: Arc<Table>,
    groups: Vec<String>,
    ids: Vec<DocumentId>,
}

async fn open_fixture(dir: &std::path::Path, plan: &Plan, sync: SyncMode) -> Result<Fixture> {
    let store = SqlitePersistence::open(
        dir,
        SqliteOptions {
            synchronous_full: sync == SyncMode::Full,
            ..SqliteOptions::default()
        },
    )
    .with_context(|| format!("opening the SQLite store in {}", dir.display()))?;
    let db = Database::open(
        store,
        schema()?,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        DatabaseOptions::default(),
    )
    .await
    .context("opening the database")?;
    let runtime = Runtime::new(db.clone(), registry(), RuntimeConfig::default());
    let insert = Arc::clone(
        runtime
            .registry()
            .get(INSERT_FN)
            .context("the insert mutation is not registered")?,
    );
    let items = Arc::clone(db.schema().require_table(ITEMS)?);
    let groups: Vec<String> = (0..plan.groups).map(group_name).collect();
    let mut seeded: Vec<(String, usize)> =
        groups.iter().map(|g| (g.clone(), DOCS_PER_GROUP)).collect();
    seeded.push((HOT.to_owned(), plan.hot_docs));
    seeded.push((SPARE.to_owned(), DOCS_PER_GROUP));
    let mut ids = seed(&db, &seeded).await.context("seeding the store")?;
    // Point reads pick among the read groups' documents only.
    ids.truncate(groups.len() * DOCS_PER_GROUP);
    Ok(Fixture {
        db,
        runtime,
        insert,
        items,
        groups,
        ids,
    })
}

// ---------------------------------------------------------------------------
// Benchmarks.

/// Runs `op_count` point reads; returns the samples and the wall time.
async fn point_read_run(
    fx: &Fixture,
    rng: &mut StdRng,
    op_count: usize,
) -> Result<(Samples, Duration)> {
    let mut samples = Samples::with_capacity(op_count);
    let started = Instant::now();
    for _ in 0..op_count {
        let id = fx.ids[rng.random_range(0..fx.ids.len())];
        let t = Instant::now();
        let mut tx = fx.db.begin(false).await?;
        let doc = tx.get(id).await?;
        drop(tx);
        samples.push(t.elapsed());
        ensure!(doc.is_some(), "seeded document {id} was not found");
    }
    Ok((samples, started.elapsed()))
}

/// Runs one 100-document range read of `group`; returns the row count.
async fn range_read(fx: &Fixture, group: &str) -> Result<(usize, ReadSet, Timestamp)> {
    let index = fx
        .items
        .index(BY_GROUP)
        .context("index by_group is missing")?;
    let mut tx = fx.db.begin(false).await?;
    let (range, bucket) = IndexRange::all().eq("group", group).compile(index)?;
    let result = tx
        .scan(
            &fx.items,
            index,
            &range,
            bucket,
            Order::Asc,
            None,
            RANGE_LIMIT,
        )
        .await?;
    let ts = tx.ts();
    Ok((result.rows.len(), tx.into_read_set(), ts))
}

async fn range_read_run(
    fx: &Fixture,
    rng: &mut StdRng,
    op_count: usize,
) -> Result<(Samples, Duration)> {
    let mut samples = Samples::with_capacity(op_count);
    let started = Instant::now();
    for _ in 0..op_count {
        let group = &fx.groups[rng.random_range(0..fx.groups.len())];
        let t = Instant::now();
        let (rows, read_set, _) = range_read(fx, group).await?;
        drop(read_set);
        samples.push(t.elapsed());
        ensure!(
            rows == DOCS_PER_GROUP,
            "group {group} returned {rows} documents, expected {DOCS_PER_GROUP}"
        );
    }
    Ok((samples, started.elapsed()))
}

/// The figures of a per-operation read benchmark.
fn read_figures() -> Vec<Figure> {
    vec![
        Figure::new("ops_per_sec", "throughput (1 task)", "ops/s"),
        Figure::new("latency_p50_us", "latency p50", "us"),
        Figure::new("latency_p99_us", "latency p99", "us"),
        Figure::new("latency_mean_us", "latency mean", "us"),
    ]
}

fn record_read_run(figures: &mut [Figure], mut samples: Samples, elapsed: Duration) {
    let values = [
        per_second(samples.len(), elapsed),
        samples.percentile_us(50.0),
        samples.percentile_us(99.0),
        samples.mean_us(),
    ];
    for (f, v) in figures.iter_mut().zip(values) {
        f.runs.push(v);
    }
}

async fn bench_point_read(fx: &Fixture, plan: &Plan, rng: &mut StdRng) -> Result<BenchResult> {
    let mut figures = read_figures();
    point_read_run(fx, rng, warmup(plan.point_reads)).await?;
    for _ in 0..plan.runs {
        let (samples, elapsed) = point_read_run(fx, rng, plan.point_reads).await?;
        record_read_run(&mut figures, samples, elapsed);
    }
    Ok(BenchResult::new(
        "point_read",
        "point read",
        format!(
            "db.begin(false) + Transaction::get of a random one of {} documents + drop",
            fx.ids.len()
        ),
        plan.point_reads,
        figures,
    ))
}

async fn bench_range_read(fx: &Fixture, plan: &Plan, rng: &mut StdRng) -> Result<BenchResult> {
    let mut figures = read_figures();
    range_read_run(fx, rng, warmup(plan.range_reads)).await?;
    for _ in 0..plan.runs {
        let (samples, elapsed) = range_read_run(fx, rng, plan.range_reads).await?;
        record_read_run(&mut figures, samples, elapsed);
    }
    Ok(BenchResult::new(
        "range_read_100",
        "indexed range (100 docs)",
        format!(
            "db.begin(false) + Transaction::scan of by_group == <random of {} groups> \
             (limit {RANGE_LIMIT}, returns {DOCS_PER_GROUP} documents) + drop",
            fx.groups.len()
        ),
        plan.range_reads,
        figures,
    ))
}

fn insert_args(session: &str, n: usize) -> Value {
    Value::object([
        ("session", Value::from(session)),
        ("n", Value::from(n as f64)),
    ])
}

async fn insert_sequential_run(fx: &Fixture, op_count: usize) -> Result<(Samples, Duration)> {
    let mut samples = Samples::with_capacity(op_count);
    let started = Instant::now();
    for i in 0..op_count {
        let t = Instant::now();
        let outcome = fx
            .runtime
            .run_mutation(&fx.insert, insert_args("sequential", i), None, None)
            .await;
        samples.push(t.elapsed());
        outcome.result.context("insert mutation failed")?;
    }
    Ok((samples, started.elapsed()))
}

async fn insert_concurrent_run(fx: &Fixture, per_task: usize) -> Result<(Samples, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CONCURRENT_TASKS);
    for t in 0..CONCURRENT_TASKS {
        let runtime = fx.runtime.clone();
        let spec = Arc::clone(&fx.insert);
        let session = format!("concurrent-{t}");
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::with_capacity(per_task);
            for i in 0..per_task {
                let t = Instant::now();
                let outcome = runtime
                    .run_mutation(&spec, insert_args(&session, i), None, None)
                    .await;
                samples.push(t.elapsed());
                outcome.result.context("insert mutation failed")?;
            }
            Ok::<Samples, anyhow::Error>(samples)
        }));
    }
    let mut all = Samples::with_capacity(per_task * CONCURRENT_TASKS);
    for task in tasks {
        all.extend(task.await.context("an insert task panicked")??);
    }
    Ok((all, started.elapsed()))
}

async fn bench_insert(fx: &Fixture, plan: &Plan) -> Result<BenchResult> {
    let mut seq_rate = Figure::new(
        "seq_commits_per_sec",
        "sequential: durable commits/s",
        "commits/s",
    );
    let mut seq_p50 = Figure::new("seq_latency_p50_us", "sequential: latency p50", "us");
    let mut seq_p99 = Figure::new("seq_latency_p99_us", "sequential: latency p99", "us");
    let mut seq_group_ms = Figure::new(
        "seq_committer_ms_per_group",
        "sequential: committer time per group",
        "ms",
    );
    let mut conc_rate = Figure::new(
        "concurrent_commits_per_sec",
        "64 tasks: durable commits/s",
        "commits/s",
    );
    let mut conc_p50 = Figure::new("concurrent_latency_p50_us", "64 tasks: latency p50", "us");
    let mut conc_p99 = Figure::new("concurrent_latency_p99_us", "64 tasks: latency p99", "us");
    let mut conc_group = Figure::new(
        "concurrent_avg_group_size",
        "64 tasks: avg commit group size",
        "commits",
    );
    let mut conc_group_ms = Figure::new(
        "concurrent_committer_ms_per_group",
        "64 tasks: committer time per group",
        "ms",
    );

    insert_sequential_run(fx, warmup(plan.seq_inserts)).await?;
    for _ in 0..plan.runs {
        let before = GroupSnapshot::now();
        let (mut samples, elapsed) = insert_sequential_run(fx, plan.seq_inserts).await?;
        let (_, group_ms) = GroupSnapshot::now().since(before);
        seq_rate.runs.push(per_second(samples.len(), elapsed));
        seq_p50.runs.push(samples.percentile_us(50.0));
        seq_p99.runs.push(samples.percentile_us(99.0));
        seq_group_ms.runs.push(group_ms);
    }

    insert_concurrent_run(fx, warmup(plan.concurrent_per_task)).await?;
    for _ in 0..plan.runs {
        let before = GroupSnapshot::now();
        let (mut samples, elapsed) = insert_concurrent_run(fx, plan.concurrent_per_task).await?;
        let (group_size, group_ms) = GroupSnapshot::now().since(before);
        conc_rate.runs.push(per_second(samples.len(), elapsed));
        conc_p50.runs.push(samples.percentile_us(50.0));
        conc_p99.runs.push(samples.percentile_us(99.0));
        conc_group.runs.push(group_size);
        conc_group_ms.runs.push(group_ms);
    }
    let figures = vec![
        seq_rate,
        seq_p50,
        seq_p99,
        seq_group_ms,
        conc_rate,
        conc_p50,
        conc_p99,
        conc_group,
        conc_group_ms,
    ];
    Ok(BenchResult::new(
        "insert_mutation",
        "insert mutation",
        format!(
            "Runtime::run_mutation of {INSERT_FN} (inserts one document, durable commit): \
             {} one at a time, then {CONCURRENT_TASKS} tasks x {} back to back",
            plan.seq_inserts, plan.concurrent_per_task
        ),
        plan.seq_inserts,
        figures,
    ))
}

/// Subscriptions over the other groups, kept for the whole benchmark.
struct Others {
    subs: Vec<Subscription>,
    /// One read set per group, each shared by that group's subscriptions.
    read_sets: Vec<(Arc<ReadSet>, Timestamp)>,
}

async fn subscribe_others(fx: &Fixture) -> Result<Others> {
    let mut read_sets = Vec::with_capacity(fx.groups.len());
    for group in &fx.groups {
        let (rows, read_set, ts) = range_read(fx, group).await?;
        ensure!(
            rows == DOCS_PER_GROUP,
            "group {group} returned {rows} documents"
        );
        read_sets.push((Arc::new(read_set), ts));
    }
    let manager = fx.db.subscriptions();
    let subs = (0..OTHER_SUBSCRIPTIONS)
        .map(|i| {
            let (read_set, ts) = &read_sets[i % read_sets.len()];
            manager.subscribe(Arc::clone(read_set), *ts)
        })
        .collect();
    Ok(Others { subs, read_sets })
}

/// One invalidation run's measurements.
struct InvalidationRun {
    all_woken: Duration,
    commit_returned: Duration,
    baseline: Duration,
    apply: Duration,
    invalidated: usize,
    false_positives: usize,
    apply_invalidated: usize,
    apply_false_positives: usize,
}

async fn invalidation_run(
    fx: &Fixture,
    plan: &Plan,
    others: &Others,
    run: usize,
) -> Result<InvalidationRun> {
    // 1. 1,000 real queries of the hot group, each subscribed.
    let manager = fx.db.subscriptions();
    let mut hot_read_sets = Vec::with_capacity(HOT_SUBSCRIPTIONS);
    let mut subs = Vec::with_capacity(HOT_SUBSCRIPTIONS);
    for _ in 0..HOT_SUBSCRIPTIONS {
        let (rows, read_set, ts) = range_read(fx, HOT).await?;
        ensure!(
            rows >= plan.hot_docs,
            "group {HOT} returned {rows} documents"
        );
        let read_set = Arc::new(read_set);
        hot_read_sets.push((Arc::clone(&read_set), ts));
        subs.push(manager.subscribe(read_set, ts));
    }
    ensure!(
        subs.iter().all(|s| s.invalidated_at().is_none()),
        "a fresh subscription was already invalidated"
    );

    // 2. One parked task per subscription.
    let started = Arc::new(AtomicUsize::new(0));
    let mut waiters = Vec::with_capacity(subs.len());
    for sub in subs {
        let started = Arc::clone(&started);
        waiters.push(tokio::spawn(async move {
            started.fetch_add(1, Ordering::AcqRel);
            let ts = sub.wait_invalidated().await;
            (ts, Instant::now(), sub)
        }));
    }
    while started.load(Ordering::Acquire) < HOT_SUBSCRIPTIONS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Let every task reach its first `.await` and park.
    tokio::time::sleep(Duration::from_millis(5)).await;

    // 3. The measured commit.
    let mut tx = fx.db.begin(true).await?;
    let written = tx.insert(ITEMS, item(HOT, 1_000_000 + run))?;
    let t0 = Instant::now();
    let commit_ts = fx.db.commit(tx).await?;
    let commit_returned = t0.elapsed();
    let deadline = tokio::time::Instant::now() + WAKE_TIMEOUT;
    let mut last_wake = t0;
    let mut invalidated = 0;
    let mut woken_subs = Vec::with_capacity(HOT_SUBSCRIPTIONS);
    for waiter in waiters {
        let abort = waiter.abort_handle();
        match tokio::time::timeout_at(deadline, waiter).await {
            Ok(joined) => {
                let (ts, woke, sub) = joined.context("a subscription waiter panicked")?;
                if ts == commit_ts {
                    invalidated += 1;
                }
                last_wake = last_wake.max(woke);
                woken_subs.push(sub);
            }
            Err(_) => abort.abort(),
        }
    }
    let all_woken = last_wake.saturating_duration_since(t0);
    let false_positives = others
        .subs
        .iter()
        .filter(|s| s.invalidated_at().is_some())
        .count();
    drop(woken_subs);

    // 4. The same commit into a group nobody watches.
    let mut tx = fx.db.begin(true).await?;
    tx.insert(ITEMS, item(SPARE, 1_000_000 + run))?;
    let t0 = Instant::now();
    fx.db.commit(tx).await?;
    let baseline = t0.elapsed();

    // 5. SubscriptionManager::apply alone, same read sets, same write.
    let doc = fx
        .db
        .begin(false)
        .await?
        .get(written)
        .await?
        .context("the committed document is missing")?;
    let mut write_set = WriteSet::default();
    for index in &fx.items.indexes {
        if let Some(key) = index_key(index, &doc) {
            write_set.keys.push(WrittenKey {
                index: index.id,
                key: key.bytes,
                first_len: key.first_len,
            });
        }
    }
    let base = hot_read_sets
        .iter()
        .chain(&others.read_sets)
        .map(|(_, ts)| *ts)
        .max()
        .unwrap_or_default();
    let local = SubscriptionManager::new(base, WriteLogLimits::default());
    let local_hot: Vec<Subscription> = hot_read_sets
        .iter()
        .map(|(rs, _)| local.subscribe(Arc::clone(rs), base))
        .collect();
    let local_others: Vec<Subscription> = (0..OTHER_SUBSCRIPTIONS)
        .map(|i| {
            let (rs, _) = &others.read_sets[i % others.read_sets.len()];
            local.subscribe(Arc::clone(rs), base)
        })
        .collect();
    let t0 = Instant::now();
    local.apply(Timestamp(base.0 + 1), Arc::new(write_set));
    let apply = t0.elapsed();
    let apply_invalidated = local_hot
        .iter()
        .filter(|s| s.invalidated_at().is_some())
        .count();
    let apply_false_positives = local_others
        .iter()
        .filter(|s| s.invalidated_at().is_some())
        .count();

    Ok(InvalidationRun {
        all_woken,
        commit_returned,
        baseline,
        apply,
        invalidated,
        false_positives,
        apply_invalidated,
        apply_false_positives,
    })
}

async fn bench_invalidation(fx: &Fixture, plan: &Plan) -> Result<BenchResult> {
    let others = subscribe_others(fx).await?;
    let mut all = Figure::new("invalidate_1000_ms", "commit -> 1,000 waiters woken", "ms");
    let mut returned = Figure::new("commit_returned_ms", "commit -> db.commit returned", "ms");
    let mut baseline = Figure::new(
        "baseline_commit_ms",
        "same commit, no subscriber (baseline)",
        "ms",
    );
    let mut apply = Figure::new("manager_apply_us", "SubscriptionManager::apply alone", "us");
    let mut min_invalidated = usize::MAX;
    let mut max_false_positives = 0;
    for run in 0..=plan.runs {
        let r = invalidation_run(fx, plan, &others, run).await?;
        ensure!(
            r.invalidated == HOT_SUBSCRIPTIONS && r.false_positives == 0,
            "run {run}: {} of {HOT_SUBSCRIPTIONS} subscriptions invalidated by the commit, \
             {} of {OTHER_SUBSCRIPTIONS} others invalidated (expected {HOT_SUBSCRIPTIONS} and 0)",
            r.invalidated,
            r.false_positives
        );
        ensure!(
            r.apply_invalidated == HOT_SUBSCRIPTIONS && r.apply_false_positives == 0,
            "run {run}: SubscriptionManager::apply invalidated {} hot / {} other subscriptions",
            r.apply_invalidated,
            r.apply_false_positives
        );
        if run == 0 {
            continue; // warm-up
        }
        min_invalidated = min_invalidated.min(r.invalidated);
        max_false_positives = max_false_positives.max(r.false_positives);
        all.runs.push(r.all_woken.as_secs_f64() * 1e3);
        returned.runs.push(r.commit_returned.as_secs_f64() * 1e3);
        baseline.runs.push(r.baseline.as_secs_f64() * 1e3);
        apply.runs.push(r.apply.as_secs_f64() * 1e6);
    }
    let live = fx.db.subscriptions().live_count();
    ensure!(
        live == OTHER_SUBSCRIPTIONS,
        "{live} live subscriptions after the runs, expected {OTHER_SUBSCRIPTIONS}"
    );
    drop(others);
    let mut result = BenchResult::new(
        "invalidate_1000",
        "1 commit invalidating 1,000 subs",
        format!(
            "db.commit of one insert into a group watched by {HOT_SUBSCRIPTIONS} subscriptions \
             (real queries, one parked task each) while {OTHER_SUBSCRIPTIONS} subscriptions \
             watch {} other groups; timed until the last waiter woke",
            fx.groups.len()
        ),
        1,
        vec![all, returned, baseline, apply],
    );
    result
        .checks
        .insert("subscriptions".into(), json!(HOT_SUBSCRIPTIONS));
    result
        .checks
        .insert("invalidated".into(), json!(min_invalidated));
    result
        .checks
        .insert("other_subscriptions".into(), json!(OTHER_SUBSCRIPTIONS));
    result
        .checks
        .insert("false_positives".into(), json!(max_false_positives));
    Ok(result)
}

// ---------------------------------------------------------------------------
// Driver.

async fn run_all(dir: &std::path::Path, plan: &Plan, sync: SyncMode) -> Result<Vec<BenchResult>> {
    let mut rng = StdRng::seed_from_u64(0x00C0_FFEE);
    let t = Instant::now();
    let fx = open_fixture(dir, plan, sync).await?;
    eprintln!(
        "seeded {} documents in {:.1} s",
        (plan.groups + 1) * DOCS_PER_GROUP + plan.hot_docs,
        t.elapsed().as_secs_f64()
    );
    let mut results = Vec::with_capacity(4);
    let steps: [&str; 4] = [
        "point read",
        "indexed range read",
        "insert mutation",
        "subscription invalidation",
    ];
    for (i, step) in steps.iter().enumerate() {
        let t = Instant::now();
        eprint!("[{}/4] {step} ... ", i + 1);
        let result = match i {
            0 => bench_point_read(&fx, plan, &mut rng).await?,
            1 => bench_range_read(&fx, plan, &mut rng).await?,
            2 => bench_insert(&fx, plan).await?,
            _ => bench_invalidation(&fx, plan).await?,
        };
        eprintln!("{:.1} s", t.elapsed().as_secs_f64());
        results.push(result);
    }
    Ok(results)
}

/// Short derived observations printed under the table.
fn notes(results: &[BenchResult]) -> Vec<String> {
    let median = |bench: &str, fig: &str| {
        results
            .iter()
            .find(|b| b.name == bench)
            .and_then(|b| b.figure(fig))
            .map(Figure::median)
    };
    let mut notes = Vec::new();
    if let (Some(seq), Some(conc), Some(group)) = (
        median("insert_mutation", "seq_commits_per_sec"),
        median("insert_mutation", "concurrent_commits_per_sec"),
        median("insert_mutation", "concurrent_avg_group_size"),
    ) && seq > 0.0
    {
        notes.push(format!(
            "group commit: {CONCURRENT_TASKS} concurrent tasks commit {:.1}x as fast as one \
             (avg {group:.1} commits per durable storage commit)",
            conc / seq
        ));
    }
    if let (Some(all), Some(base), Some(apply)) = (
        median("invalidate_1000", "invalidate_1000_ms"),
        median("invalidate_1000", "baseline_commit_ms"),
        median("invalidate_1000", "manager_apply_us"),
    ) {
        notes.push(format!(
            "invalidation: commit + waking 1,000 waiters took {all:.2} ms vs {base:.2} ms for \
             the same commit with no subscriber; the in-memory apply of the write is {apply:.0} us"
        ));
    }
    notes
}

/// Runs `connvo-bench engine`.
pub fn run(args: EngineArgs) -> Result<()> {
    let plan = Plan::new(&args);
    // The engine reports commit-group sizes only through `metrics`; if a
    // recorder is already installed we simply report no group statistics.
    let _ = metrics::set_global_recorder(GroupRecorder);

    // Declared before the Tokio runtime so that it is removed after the
    // runtime (and with it the store) has shut down.
    let mut temp = None;
    let dir = match &args.data_dir {
        Some(dir) => {
            if dir.join(DB_FILE_NAME).exists() {
                bail!(
                    "{} already holds a store; point --data-dir at an empty or new directory",
                    dir.display()
                );
            }
            dir.clone()
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("connvo-bench-")
                .tempdir()
                .context("creating a temporary data directory")?;
            let path = t.path().to_owned();
            temp = Some(t);
            path
        }
    };
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let started = Instant::now();
    let results = tokio_rt.block_on(run_all(&dir, &plan, args.sync))?;
    let elapsed = started.elapsed();
    drop(tokio_rt);
    drop(temp);

    let config = json!({
        "runs": plan.runs,
        "quick": args.quick,
        "sync": args.sync.as_str(),
        "data_dir": args.data_dir.as_ref().map_or_else(|| "(temporary)".to_owned(), |d| d.display().to_string()),
        "worker_threads": workers,
        "groups": plan.groups,
        "docs_per_group": DOCS_PER_GROUP,
        "hot_group_docs": plan.hot_docs,
        "point_reads_per_run": plan.point_reads,
        "range_reads_per_run": plan.range_reads,
        "sequential_inserts_per_run": plan.seq_inserts,
        "concurrent_inserts_per_run": plan.concurrent_inserts(),
        "concurrent_tasks": CONCURRENT_TASKS,
        "hot_subscriptions": HOT_SUBSCRIPTIONS,
        "other_subscriptions": OTHER_SUBSCRIPTIONS,
    });
    let report = Report {
        command: "engine",
        config,
        notes: notes(&results),
        benchmarks: results,
        elapsed,
    };
    println!(
        "connvo-bench engine — median of {} runs (min/max across runs), sync={}, {:.1} s total\n",
        plan.runs,
        args.sync.as_str(),
        elapsed.as_secs_f64()
    );
    print!("{}", report.to_table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.md {
        std::fs::write(path, report.to_markdown())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: EngineArgs,
    }

    #[test]
    fn iterations_override_every_per_op_count() {
        let w = Wrapper::parse_from(["x", "--iterations", "100", "--runs", "3"]);
        let plan = Plan::new(&w.args);
        assert_eq!(plan.runs, 3);
        assert_eq!(plan.point_reads, 100);
        assert_eq!(plan.range_reads, 100);
        assert_eq!(plan.seq_inserts, 100);
        assert_eq!(plan.concurrent_inserts(), 128);
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(Wrapper::try_parse_from(["x", "--runs", "0"]).is_err());
        assert!(Wrapper::try_parse_from(["x", "--sync", "off"]).is_err());
        assert!(Wrapper::try_parse_from(["x", "--iterations", "-1"]).is_err());
        let w = Wrapper::parse_from(["x", "--sync", "normal", "--quick"]);
        assert_eq!(w.args.sync, SyncMode::Normal);
        assert!(w.args.quick);
    }

    #[test]
    fn warmup_is_a_fifth_and_at_least_one() {
        assert_eq!(warmup(1), 1);
        assert_eq!(warmup(20_000), 4_000);
        assert_eq!(warmup(7), 2);
    }
}
