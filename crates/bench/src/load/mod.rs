//! `connvo-bench load`: the WebSocket load generator and SLO benchmark.
//!
//! A run (see [`run`]):
//!
//! 1. **target** ([`setup::target`]): `--spawn` starts `connvo serve` on a
//!    fresh data dir (or several nodes on one PostgreSQL), `--url` uses
//!    running servers; dev tokens are minted in-process with the data dir's
//!    dev key;
//! 2. **setup** ([`setup::provision`]): one authenticated sync connection
//!    per participant, users upserted, meetings created and started;
//! 3. **subscribe** ([`scenario::Subscriber::subscribe`]): every participant
//!    subscribes like the web app;
//! 4. **load**: each meeting's host socket sends chat / transcript / note
//!    updates at the configured rates (open loop: a slow server does not
//!    slow the senders down); the first `--warmup` seconds are not measured;
//! 5. **drain**: wait for every acknowledgement and delivery, then count
//!    lost, duplicated and reordered updates;
//! 6. **report** ([`report`]): terminal summary, `--json`, `--md`, `--plot`;
//!    with `--baseline`, the raw references of [`baseline`].
//!
//! The process exits non-zero when any update was lost, duplicated,
//! reordered, or failed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::time::MissedTickBehavior;

pub mod baseline;
pub mod client;
pub mod config;
pub mod metrics;
pub mod report;
pub mod scenario;
pub mod setup;

pub use config::LoadArgs;

use client::WireStats;
use metrics::{ProcSample, Quantiles};
use scenario::{Counters, ErrorSamples, Kind, MeetingLog, Subscriber};

/// Raises the soft open-file limit to the hard limit (each connection is a
/// file descriptor); returns the new soft limit.
pub fn raise_fd_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// Runs the load test; `Ok(false)` when correctness checks failed.
pub fn run(args: LoadArgs) -> anyhow::Result<bool> {
    args.validate()?;
    let fds = raise_fd_limit();
    let needed = (args.meetings * args.participants) as u64 + 64;
    if let Some(limit) = fds
        && limit < needed
    {
        eprintln!(
            "connvo-bench: warning: the open-file limit is {limit}, below the {needed} sockets needed; raise `ulimit -n`"
        );
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(t) = args.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.build().context("building the tokio runtime")?;
    rt.block_on(run_async(args))
}

/// Everything measured in one run (rendered by [`report`]).
#[derive(Debug, Default)]
pub struct Results {
    /// The configuration (echoed in reports).
    pub config: serde_json::Value,
    /// Sync connections open during the load.
    pub connections: usize,
    /// Setup time (connect, provision, subscribe) in s.
    pub setup_secs: f64,
    /// Measured seconds.
    pub duration_secs: f64,
    /// Delivery latency from the writer reading the acknowledgement.
    pub delivery_ms: Quantiles,
    /// Delivery latency from the writer queuing the mutation.
    pub delivery_from_send_ms: Quantiles,
    /// Mutation latency: queued → acknowledgement read.
    pub mutation_ms: Quantiles,
    /// Server-side query execution time (worst path, from /metrics).
    pub query_ms: Quantiles,
    /// Per-path query quantiles.
    pub query_paths: serde_json::Value,
    /// Server-side `connvo_transition_seconds` quantiles (worst), ms.
    pub transition_ms: Quantiles,
    /// Server-side `connvo_commit_seconds` quantiles: one transaction's
    /// commit, from handing it to the committer (record building, queueing,
    /// validation, writes) until durable, ms.
    pub commit_ms: Quantiles,
    /// Server-side `connvo_commit_group_seconds` quantiles: one group
    /// commit (write lock, validation, writes and the durable sync), ms.
    pub group_commit_ms: Quantiles,
    /// Acknowledged transcript chunks per second (each chunk is one
    /// durable `transcripts` document).
    pub transcript_writes_per_s: f64,
    /// Deliveries of measured updates per second.
    pub deliveries_per_s: f64,
    /// Acknowledged measured updates per second.
    pub commits_per_s: f64,
    /// Server commits per second during the window (from /metrics).
    pub server_commits_per_s: Option<f64>,
    /// Server query executions per second (from /metrics).
    pub query_executions_per_s: Option<f64>,
    /// SQLite WAL frames (~4 KiB pages) appended per server commit during
    /// the window (from /metrics; SQLite servers only): the write volume of
    /// one transaction.
    pub wal_frames_per_commit: Option<f64>,
    /// Updates sent, acknowledged, failed (whole run).
    pub sent: u64,
    /// Acknowledged updates.
    pub acked: u64,
    /// Failed updates (error responses, lost connections, no answer).
    pub failed: u64,
    /// Acknowledged updates some subscriber never saw (one per subscriber).
    pub lost_updates: u64,
    /// Updates first seen after a later one.
    pub out_of_order: u64,
    /// Updates seen as two different documents.
    pub duplicates: u64,
    /// Unreadable results and failed subscriptions.
    pub malformed: u64,
    /// Bytes the clients received (the server's sync payload bytes).
    pub bytes_received: u64,
    /// Received bytes per second during the window.
    pub bytes_per_s: f64,
    /// Mean size of a server frame, bytes.
    pub mean_frame_bytes: f64,
    /// Server CPU during the window, in cores.
    pub server_cpu_cores: Option<f64>,
    /// Server RSS at the end of the window.
    pub server_rss_bytes: Option<u64>,
    /// Server RSS before any connection.
    pub server_rss_start_bytes: Option<u64>,
    /// RSS per idle (authenticated, unsubscribed) connection.
    pub rss_per_idle_connection_bytes: Option<f64>,
    /// RSS per subscribed connection (before the load).
    pub rss_per_subscribed_connection_bytes: Option<f64>,
    /// Load-generator CPU during the window, in cores.
    pub client_cpu_cores: Option<f64>,
    /// Disconnects and protocol errors seen.
    pub disconnects: u64,
    /// FatalError / AuthError / undecodable frames.
    pub protocol_errors: u64,
    /// Ticks a writer could not keep up with (the generator was the bottleneck).
    pub missed_ticks: u64,
    /// First mutation error messages.
    pub error_samples: Vec<String>,
    /// Per-stream counts.
    pub per_kind: serde_json::Value,
    /// All delivery latencies in µs (for the plot).
    pub delivery_us: Vec<u64>,
    /// The baselines (with `--baseline`).
    pub baseline: Option<baseline::BaselineResults>,
}

impl Results {
    /// Whether the run is free of lost, duplicated, reordered and failed updates.
    pub fn correct(&self) -> bool {
        self.lost_updates == 0
            && self.out_of_order == 0
            && self.duplicates == 0
            && self.failed == 0
            && self.malformed == 0
            && self.protocol_errors == 0
    }
}

async fn run_async(args: LoadArgs) -> anyhow::Result<bool> {
    let streams: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| rate_of(&args, *k) > 0.0)
        .collect();
    let mut target = setup::target(&args).await?;
    let http = reqwest::Client::new();
    let stats = Arc::new(WireStats::default());
    let counters = Arc::new(Counters::default());
    let errors: Arc<ErrorSamples> = Arc::new(ErrorSamples::default());
    let self_pid = [std::process::id()];

    let setup_started = Instant::now();
    let rss_start = metrics::sample_procs(&target.pids);
    let meetings = setup::provision(&target, &args, stats.clone()).await?;
    let connections = args.meetings * args.participants;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = metrics::sample_procs(&target.pids);

    // Subscribe every participant like the web app.
    let mut subscribers: Vec<(usize, Arc<Subscriber>)> = Vec::with_capacity(connections);
    let mut jobs = Vec::with_capacity(connections);
    for (mi, m) in meetings.iter().enumerate() {
        for p in &m.participants {
            let sub = Subscriber::new(
                mi,
                m.id.clone(),
                counters.clone(),
                args.effective_transcript_window(),
            );
            subscribers.push((mi, sub.clone()));
            let conn = p.conn.clone();
            let streams = streams.clone();
            jobs.push(async move { sub.subscribe(&conn, &streams, setup::SETUP_TIMEOUT).await });
        }
    }
    {
        use futures::StreamExt;
        let mut s = futures::stream::iter(jobs).buffer_unordered(args.setup_concurrency.max(1));
        while let Some(r) = s.next().await {
            r.context("subscribing")?;
        }
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_subscribed = metrics::sample_procs(&target.pids);
    eprintln!(
        "connvo-bench: {} connections subscribed ({:.1} s setup); load for {:.0} s warm-up + {:.0} s",
        connections, setup_secs, args.warmup, args.duration
    );

    // Writers.
    let logs: Vec<Arc<MeetingLog>> = meetings
        .iter()
        .map(|_| Arc::new(MeetingLog::default()))
        .collect();
    let load_start = Instant::now();
    let measure_start = load_start + Duration::from_secs_f64(args.warmup);
    let measure_end = measure_start + Duration::from_secs_f64(args.duration);
    let missed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    for (mi, m) in meetings.iter().enumerate() {
        for &kind in &streams {
            let rate = rate_of(&args, kind);
            let period = Duration::from_secs_f64(1.0 / rate);
            let writer = scenario::Writer {
                conn: m.participants[0].conn.clone(),
                meeting_index: mi,
                meeting_id: m.id.clone(),
                log: logs[mi].clone(),
                counters: counters.clone(),
                errors: errors.clone(),
                payload_bytes: args.payload_bytes,
                transcript_batch: args.transcript_batch,
            };
            let missed = missed.clone();
            // Spread the first tick of the meetings over one period.
            let offset = period.mul_f64((mi as f64 * 0.618_033_988_75).fract());
            writers.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(
                    tokio::time::Instant::from_std(load_start + offset),
                    period,
                );
                tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
                loop {
                    let at = tick.tick().await;
                    if at.into_std() >= measure_end {
                        break;
                    }
                    if Instant::now().duration_since(at.into_std()) > period {
                        missed.fetch_add(1, Ordering::Relaxed);
                    }
                    writer.send(kind);
                }
            }));
        }
    }

    // Progress and window samples.
    let mut proc_at_start: Option<ProcSample> = None;
    let mut self_at_start: Option<ProcSample> = None;
    let mut prom_at_start = None;
    let mut window_started = false;
    let mut last = (Instant::now(), 0u64, 0u64);
    let progress_every = if args.duration > 30.0 { 5 } else { 1 };
    let mut ticks = 0u64;
    loop {
        let now = Instant::now();
        // Once, when the measured window opens (not gated on a /proc sample,
        // which is missing with --url and no --server-pid).
        if !window_started && now >= measure_start {
            window_started = true;
            proc_at_start = metrics::sample_procs(&target.pids);
            self_at_start = metrics::sample_procs(&self_pid);
            prom_at_start = metrics::scrape_all(&http, &target.urls).await;
        }
        if now >= measure_end {
            break;
        }
        let next = (now + Duration::from_secs(1)).min(if proc_at_start.is_none() {
            measure_start
        } else {
            measure_end
        });
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            next.max(now + Duration::from_millis(5)),
        ))
        .await;
        ticks += 1;
        if ticks.is_multiple_of(progress_every) {
            let (t, s0, d0) = last;
            let s1 = counters.acked.load(Ordering::Relaxed);
            let d1 = counters.delivered.load(Ordering::Relaxed);
            let dt = t.elapsed().as_secs_f64().max(1e-3);
            eprintln!(
                "connvo-bench: t={:>5.1}s {} acked/s={:>8.0} delivered/s={:>8.0} failed={} disconnects={}",
                load_start.elapsed().as_secs_f64(),
                if Instant::now() < measure_start {
                    "warm-up "
                } else {
                    "measured"
                },
                (s1 - s0) as f64 / dt,
                (d1 - d0) as f64 / dt,
                counters.failed.load(Ordering::Relaxed),
                stats.disconnects.load(Ordering::Relaxed),
            );
            last = (Instant::now(), s1, d1);
        }
    }
    let proc_at_end = metrics::sample_procs(&target.pids);
    let self_at_end = metrics::sample_procs(&self_pid);
    let prom_at_end = metrics::scrape_all(&http, &target.urls).await;
    let bytes_at_end = stats.bytes_received.load(Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }

    // Drain: acknowledgements, then deliveries.
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    loop {
        let sent = counters.sent.load(Ordering::Relaxed);
        let settled =
            counters.acked.load(Ordering::Relaxed) + counters.failed.load(Ordering::Relaxed);
        let all_seen = settled >= sent && all_delivered(&subscribers, &logs);
        if all_seen || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Mutations still unanswered count as failed.
    for log in &logs {
        for k in &log.kinds {
            let mut l = k.lock();
            for i in 0..l.sent.len() {
                if l.acked[i].is_none() && !l.failed[i] {
                    l.failed[i] = true;
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    let mut r = Results {
        config: serde_json::json!({
            "meetings": args.meetings,
            "participants": args.participants,
            "transcriptRate": args.transcript_rate,
            "noteRate": args.note_rate,
            "chatRate": args.chat_rate,
            "duration": args.duration,
            "warmup": args.warmup,
            "payloadBytes": args.payload_bytes,
            "transcriptWindow": args.effective_transcript_window(),
            "transcriptBatch": args.transcript_batch,
            "nodes": target.urls.len(),
            "spawned": args.spawn,
            "sqliteSync": if args.database_url.is_some() { "n/a (postgres)" } else { args.sqlite_sync.as_str() },
            "streams": streams.iter().map(|k| k.name()).collect::<Vec<_>>(),
        }),
        connections,
        setup_secs,
        duration_secs: args.duration,
        ..Results::default()
    };
    evaluate(
        &mut r,
        &subscribers,
        &logs,
        measure_start,
        measure_end,
        &streams,
    );
    r.sent = counters.sent.load(Ordering::Relaxed);
    r.acked = counters.acked.load(Ordering::Relaxed);
    r.failed = counters.failed.load(Ordering::Relaxed);
    r.error_samples = errors.lock().clone();
    r.missed_ticks = missed.load(Ordering::Relaxed);
    r.disconnects = stats.disconnects.load(Ordering::Relaxed);
    r.protocol_errors = stats.protocol_errors.load(Ordering::Relaxed);
    r.bytes_received = stats.bytes_received.load(Ordering::Relaxed);
    let _ = bytes_at_end;
    let frames = stats.frames_received.load(Ordering::Relaxed);
    r.mean_frame_bytes = if frames > 0 {
        r.bytes_received as f64 / frames as f64
    } else {
        0.0
    };
    if let (Some(a), Some(b)) = (&proc_at_start, &proc_at_end) {
        r.server_cpu_cores = Some(metrics::cpu_cores(a, b));
        r.server_rss_bytes = Some(b.rss_bytes);
    }
    if let (Some(a), Some(b)) = (&self_at_start, &self_at_end) {
        r.client_cpu_cores = Some(metrics::cpu_cores(a, b));
    }
    r.server_rss_start_bytes = rss_start.map(|s| s.rss_bytes);
    if let (Some(a), Some(b)) = (&rss_start, &rss_idle) {
        r.rss_per_idle_connection_bytes =
            Some((b.rss_bytes as f64 - a.rss_bytes as f64) / connections as f64);
    }
    if let (Some(a), Some(b)) = (&rss_start, &rss_subscribed) {
        r.rss_per_subscribed_connection_bytes =
            Some((b.rss_bytes as f64 - a.rss_bytes as f64) / connections as f64);
    }
    if let Some(end) = &prom_at_end {
        let (q, paths) = metrics::query_quantiles(end);
        r.query_ms = q;
        r.query_paths = paths;
        r.transition_ms = summary_quantiles(end, "connvo_transition_seconds");
        r.commit_ms = summary_quantiles(end, "connvo_commit_seconds");
        r.group_commit_ms = summary_quantiles(end, "connvo_commit_group_seconds");
        if let Some(start) = &prom_at_start {
            let secs = args.duration;
            let d = |name: &str| {
                (metrics::counter_sum(end, name) - metrics::counter_sum(start, name)) / secs
            };
            r.server_commits_per_s = Some(d("connvo_commits_total"));
            r.query_executions_per_s = Some(d("connvo_query_executions_total"));
            let commits = d("connvo_commits_total");
            let frames = d("connvo_sqlite_wal_frames_total");
            if commits > 0.0 && frames > 0.0 {
                r.wal_frames_per_commit = Some(frames / commits);
            }
        }
    }
    // Bytes during the window are approximated by the whole-run average
    // rate over the load period (setup frames are small).
    r.bytes_per_s = r.bytes_received as f64 / (args.warmup + args.duration).max(1e-3);

    for m in &meetings {
        for p in &m.participants {
            p.conn.close();
        }
    }
    drop(meetings);

    if args.baseline {
        eprintln!("connvo-bench: running the baselines…");
        r.baseline = Some(baseline::run(&args, &r).await?);
    }
    target.stop().await;

    report::print(&r);
    if let Some(p) = &args.json {
        report::write_json(&r, p)?;
    }
    if let Some(p) = &args.md {
        report::write_md(&r, p)?;
    }
    if let Some(p) = &args.plot {
        report::write_plot(&r, p)?;
    }
    let ok = r.correct();
    if !ok {
        eprintln!(
            "connvo-bench: FAILED: lost={} out_of_order={} duplicates={} failed={} malformed={} protocol_errors={}",
            r.lost_updates, r.out_of_order, r.duplicates, r.failed, r.malformed, r.protocol_errors
        );
        for e in &r.error_samples {
            eprintln!("connvo-bench:   {e}");
        }
    }
    Ok(ok)
}

fn rate_of(args: &LoadArgs, kind: Kind) -> f64 {
    match kind {
        Kind::Chat => args.chat_rate,
        Kind::Transcript => args.transcript_rate,
        Kind::Notes => args.note_rate,
    }
}

/// Quantiles (ms) of a server summary, the worst over nodes and labels.
fn summary_quantiles(samples: &[metrics::PromSample], name: &str) -> Quantiles {
    let mut q = Quantiles::default();
    for s in samples.iter().filter(|s| s.name == name) {
        let ms = s.value * 1000.0;
        match s.labels.get("quantile").map(String::as_str) {
            Some("0.5") => q.p50 = q.p50.max(ms),
            Some("0.95") => q.p95 = q.p95.max(ms),
            Some("0.99") => q.p99 = q.p99.max(ms),
            Some("1") => q.max = q.max.max(ms),
            _ => {}
        }
    }
    q
}

/// Whether every subscriber has seen every acknowledged update.
fn all_delivered(subs: &[(usize, Arc<Subscriber>)], logs: &[Arc<MeetingLog>]) -> bool {
    for (mi, sub) in subs {
        for kind in Kind::ALL {
            let acked: usize = logs[*mi].kinds[kind.index()]
                .lock()
                .acked
                .iter()
                .filter(|a| a.is_some())
                .count();
            let seen = sub.with_view(kind, |v| v.deliveries.len());
            if seen < acked {
                return false;
            }
        }
    }
    true
}

fn evaluate(
    r: &mut Results,
    subs: &[(usize, Arc<Subscriber>)],
    logs: &[Arc<MeetingLog>],
    start: Instant,
    end: Instant,
    streams: &[Kind],
) {
    let mut delivery = Vec::new();
    let mut from_send = Vec::new();
    let mut mutation = Vec::new();
    let mut per_kind = serde_json::Map::new();
    for &kind in streams {
        let (mut lost, mut ooo, mut dup, mut bad, mut delivered, mut phantom) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        let mut acked_in_window = 0u64;
        for log in logs {
            let l = log.kinds[kind.index()].lock();
            for (i, sent) in l.sent.iter().enumerate() {
                if *sent >= start
                    && *sent < end
                    && let Some(a) = l.acked[i]
                {
                    acked_in_window += 1;
                    mutation.push(metrics::us(a.saturating_duration_since(*sent)));
                }
            }
        }
        for (mi, sub) in subs {
            let l = logs[*mi].kinds[kind.index()].lock();
            sub.with_view(kind, |v| {
                ooo += v.out_of_order;
                dup += v.duplicates;
                bad += v.malformed + v.query_failures;
                for (i, acked) in l.acked.iter().enumerate() {
                    let seen = v.seen.get(i).is_some_and(|h| *h != 0);
                    if acked.is_some() && !seen {
                        lost += 1;
                    }
                    if acked.is_none() && seen {
                        phantom += 1;
                    }
                }
                for (seq, at) in &v.deliveries {
                    let i = (*seq - 1) as usize;
                    let Some(sent) = l.sent.get(i) else {
                        continue;
                    };
                    if *sent < start || *sent >= end {
                        continue;
                    }
                    delivered += 1;
                    from_send.push(metrics::us(at.saturating_duration_since(*sent)));
                    if let Some(Some(ack)) = l.acked.get(i) {
                        delivery.push(metrics::us(at.saturating_duration_since(*ack)));
                    }
                }
            });
        }
        per_kind.insert(
            kind.name().into(),
            serde_json::json!({
                "committedPerS": acked_in_window as f64 / r.duration_secs,
                "deliveriesPerS": delivered as f64 / r.duration_secs,
                "lost": lost,
                "outOfOrder": ooo,
                "duplicates": dup,
                "malformed": bad,
                "deliveredButFailed": phantom,
            }),
        );
        r.lost_updates += lost;
        r.out_of_order += ooo;
        r.duplicates += dup;
        r.malformed += bad;
        r.deliveries_per_s += delivered as f64 / r.duration_secs;
        r.commits_per_s += acked_in_window as f64 / r.duration_secs;
        if kind == Kind::Transcript {
            r.transcript_writes_per_s = acked_in_window as f64 / r.duration_secs;
        }
    }
    r.delivery_ms = Quantiles::from_us(&mut delivery);
    r.delivery_from_send_ms = Quantiles::from_us(&mut from_send);
    r.mutation_ms = Quantiles::from_us(&mut mutation);
    r.delivery_us = delivery;
    r.per_kind = serde_json::Value::Object(per_kind);
}
