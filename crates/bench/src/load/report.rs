//! Renderings of a load run's [`Results`]: a terminal summary, JSON
//! (`--json`), a Markdown table (`--md`) and a PNG of the delivery latency
//! distribution (`--plot`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde_json::{Value, json};

use super::Results;

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The JSON document of `--json`.
pub fn to_json(r: &Results) -> Value {
    let mut v = json!({
        "config": r.config,
        "connections": r.connections,
        "setup_s": round(r.setup_secs, 2),
        "duration_s": r.duration_secs,
        "delivery_ms": r.delivery_ms.to_json(),
        "delivery_from_send_ms": r.delivery_from_send_ms.to_json(),
        "mutation_ms": r.mutation_ms.to_json(),
        "query_ms": r.query_ms.to_json(),
        "query_ms_by_path": r.query_paths,
        "transition_ms": r.transition_ms.to_json(),
        "commit_ms": r.commit_ms.to_json(),
        "group_commit_ms": r.group_commit_ms.to_json(),
        "transcript_writes_per_s": round(r.transcript_writes_per_s, 1),
        "deliveries_per_s": round(r.deliveries_per_s, 1),
        "commits_per_s": round(r.commits_per_s, 1),
        "server_commits_per_s": r.server_commits_per_s.map(|x| round(x, 1)),
        "query_executions_per_s": r.query_executions_per_s.map(|x| round(x, 1)),
        "wal_frames_per_commit": r.wal_frames_per_commit.map(|x| round(x, 1)),
        "sent": r.sent,
        "acked": r.acked,
        "failed": r.failed,
        "lost_updates": r.lost_updates,
        "out_of_order": r.out_of_order,
        "duplicates": r.duplicates,
        "malformed": r.malformed,
        "protocol_errors": r.protocol_errors,
        "disconnects": r.disconnects,
        "missed_ticks": r.missed_ticks,
        "bytes_received": r.bytes_received,
        "bytes_per_s": round(r.bytes_per_s, 0),
        "mean_frame_bytes": round(r.mean_frame_bytes, 1),
        "server_cpu_cores": r.server_cpu_cores.map(|x| round(x, 3)),
        "client_cpu_cores": r.client_cpu_cores.map(|x| round(x, 3)),
        "server_rss_bytes": r.server_rss_bytes,
        "server_rss_start_bytes": r.server_rss_start_bytes,
        "rss_per_idle_connection_bytes": r.rss_per_idle_connection_bytes.map(|x| round(x, 0)),
        "rss_per_subscribed_connection_bytes": r.rss_per_subscribed_connection_bytes.map(|x| round(x, 0)),
        "per_stream": r.per_kind,
        "error_samples": r.error_samples,
        "correct": r.correct(),
    });
    if let Some(b) = &r.baseline {
        v["baseline"] = b.to_json(r);
    }
    v
}

/// Writes `--json`.
pub fn write_json(r: &Results, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&to_json(r))?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

fn q_row(out: &mut String, name: &str, q: &super::Quantiles) {
    let _ = writeln!(
        out,
        "| {name} | {:.2} | {:.2} | {:.2} | {:.2} |",
        q.p50, q.p95, q.p99, q.max
    );
}

/// The Markdown of `--md`.
pub fn to_md(r: &Results) -> String {
    let mut out = String::new();
    let c = &r.config;
    let _ = writeln!(
        out,
        "Load: {} meetings × {} participants ({} connections), transcript {}/s, chat {}/s, notes {}/s per meeting; {} s measured after {} s warm-up.\n",
        c["meetings"],
        c["participants"],
        r.connections,
        c["transcriptRate"],
        c["chatRate"],
        c["noteRate"],
        c["duration"],
        c["warmup"]
    );
    out.push_str("| latency (ms) | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|\n");
    q_row(
        &mut out,
        "delivery (ack read → subscriber read)",
        &r.delivery_ms,
    );
    q_row(
        &mut out,
        "delivery (mutation sent → subscriber read)",
        &r.delivery_from_send_ms,
    );
    q_row(&mut out, "mutation (sent → ack read)", &r.mutation_ms);
    q_row(
        &mut out,
        "query execution (server, worst function)",
        &r.query_ms,
    );
    q_row(
        &mut out,
        "transition computation (server)",
        &r.transition_ms,
    );
    q_row(
        &mut out,
        "commit of a transaction: queued → durable (server)",
        &r.commit_ms,
    );
    q_row(
        &mut out,
        "group commit: lock, validate, write, sync (server)",
        &r.group_commit_ms,
    );
    out.push_str("\n| figure | value |\n|---|---:|\n");
    let opt = |x: Option<f64>, d: usize| x.map_or("n/a".to_owned(), |x| format!("{x:.d$}"));
    let rows: Vec<(&str, String)> = vec![
        (
            "commits/s (acknowledged updates)",
            format!("{:.0}", r.commits_per_s),
        ),
        (
            "server commits/s (/metrics)",
            opt(r.server_commits_per_s, 0),
        ),
        (
            "durable transcript writes/s (acknowledged chunks)",
            format!("{:.0}", r.transcript_writes_per_s),
        ),
        ("deliveries/s", format!("{:.0}", r.deliveries_per_s)),
        (
            "query executions/s (/metrics)",
            opt(r.query_executions_per_s, 0),
        ),
        (
            "SQLite WAL pages per server commit (/metrics)",
            opt(r.wal_frames_per_commit, 1),
        ),
        ("bytes received/s", format!("{:.0}", r.bytes_per_s)),
        (
            "lost / out of order / duplicated",
            format!("{} / {} / {}", r.lost_updates, r.out_of_order, r.duplicates),
        ),
        ("failed mutations", r.failed.to_string()),
        ("server CPU (cores)", opt(r.server_cpu_cores, 2)),
        ("load generator CPU (cores)", opt(r.client_cpu_cores, 2)),
        (
            "server RSS (MiB)",
            r.server_rss_bytes
                .map_or("n/a".into(), |b| format!("{:.1}", mib(b))),
        ),
        (
            "RSS per idle connection (KiB)",
            opt(r.rss_per_idle_connection_bytes.map(|b| b / 1024.0), 1),
        ),
        (
            "RSS per subscribed connection (KiB)",
            opt(r.rss_per_subscribed_connection_bytes.map(|b| b / 1024.0), 1),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    if let Some(b) = &r.baseline {
        let _ = writeln!(
            out,
            "\n| baseline | raw | ours | ours ÷ raw |\n|---|---:|---:|---:|\n\
             | updates/s (raw: SQLite insert loop, {} rows per transaction, synchronous={}) | {:.0} | {:.0} | {:.2} |\n\
             | commit p99 ms (raw) vs mutation p99 ms | {:.2} | {:.2} | {:.2} |\n\
             | delivery p50 ms (raw: tokio-tungstenite broadcast, {} B frames) | {:.2} | {:.2} | {:.2} |\n\
             | delivery p95 ms | {:.2} | {:.2} | {:.2} |\n\
             | delivery p99 ms | {:.2} | {:.2} | {:.2} |",
            b.sqlite_rows_per_commit,
            b.sqlite_synchronous,
            b.sqlite_commits_per_s,
            r.commits_per_s,
            r.commits_per_s / b.sqlite_commits_per_s.max(1e-9),
            b.sqlite_commit_ms.p99,
            r.mutation_ms.p99,
            r.mutation_ms.p99 / b.sqlite_commit_ms.p99.max(1e-9),
            b.ws_frame_bytes,
            b.ws_delivery_ms.p50,
            r.delivery_ms.p50,
            r.delivery_ms.p50 / b.ws_delivery_ms.p50.max(1e-9),
            b.ws_delivery_ms.p95,
            r.delivery_ms.p95,
            r.delivery_ms.p95 / b.ws_delivery_ms.p95.max(1e-9),
            b.ws_delivery_ms.p99,
            r.delivery_ms.p99,
            r.delivery_ms.p99 / b.ws_delivery_ms.p99.max(1e-9),
        );
    }
    out
}

/// Writes `--md`.
pub fn write_md(r: &Results, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, to_md(r)).with_context(|| format!("writing {}", path.display()))
}

/// Prints the summary to stdout.
pub fn print(r: &Results) {
    println!("{}", to_md(r));
    println!(
        "correct: {} (lost={} out_of_order={} duplicates={} failed={})",
        r.correct(),
        r.lost_updates,
        r.out_of_order,
        r.duplicates,
        r.failed
    );
}

/// Registers a system TrueType font for plot labels, if one is installed.
fn register_font() -> bool {
    const CANDIDATES: [&str; 3] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ];
    for p in CANDIDATES {
        if let Ok(bytes) = std::fs::read(p) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// Writes `--plot`: the delivery latency CDF (x: ms, log scale; y: share
/// of deliveries at or below), with p50/p95/p99 marked.
pub fn write_plot(r: &Results, path: &Path) -> anyhow::Result<()> {
    let mut lat: Vec<f64> = r.delivery_us.iter().map(|&u| u as f64 / 1000.0).collect();
    lat.sort_by(f64::total_cmp);
    let fonts = register_font();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let min_x = lat.first().copied().unwrap_or(0.01).max(0.01);
    let max_x = lat.last().copied().unwrap_or(1.0).max(min_x * 10.0);
    let caption = format!(
        "Delivery latency CDF: {} deliveries, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        lat.len(),
        r.delivery_ms.p50,
        r.delivery_ms.p95,
        r.delivery_ms.p99
    );
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if fonts {
        builder
            .caption(caption, ("sans-serif", 20))
            .x_label_area_size(40)
            .y_label_area_size(50);
    }
    let mut chart = builder
        .build_cartesian_2d((min_x..max_x).log_scale(), 0.0..1.0)
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let mut mesh = chart.configure_mesh();
    if fonts {
        mesh.x_desc("delivery latency (ms, log)")
            .y_desc("share of deliveries");
    } else {
        mesh.disable_x_mesh().disable_y_mesh();
    }
    mesh.draw().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let n = lat.len().max(1) as f64;
    let step = (lat.len() / 2000).max(1);
    let points: Vec<(f64, f64)> = lat
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i + 1 == lat.len())
        .map(|(i, &x)| (x.max(min_x), (i + 1) as f64 / n))
        .collect();
    chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    for (q, color) in [
        (r.delivery_ms.p50, GREEN),
        (r.delivery_ms.p95, MAGENTA),
        (r.delivery_ms.p99, RED),
    ] {
        let x = q.max(min_x);
        chart
            .draw_series(LineSeries::new(
                vec![(x, 0.0), (x, 1.0)],
                color.stroke_width(1),
            ))
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    Ok(())
}
