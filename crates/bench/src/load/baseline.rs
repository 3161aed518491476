//! `--baseline`: raw references measured in the same invocation, so that
//! our figures can be read as multiples of what the machine does without
//! Connvo in the way.
//!
//! * **SQLite insert loop**: one row (the update's payload as a JSON
//!   document) per update, as many rows per transaction as the run puts
//!   updates in one mutation (`--transcript-batch`, else 1), WAL,
//!   `synchronous` as the server was run (`FULL` by default: an fsync per
//!   commit), one writer — the cost of a durable commit with nothing else.
//! * **WebSocket broadcast**: a bare tokio + tokio-tungstenite server with
//!   as many connections as the run, grouped like the meetings, pushing
//!   frames of the run's mean frame size at the run's update rate to every
//!   member of each group — the cost of fan-out with no query, no
//!   serialization of results and no database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::metrics::{self, Quantiles};
use super::{LoadArgs, Results};

/// Results of the baselines.
#[derive(Debug, Default)]
pub struct BaselineResults {
    /// Raw SQLite rows (updates) per second.
    pub sqlite_commits_per_s: f64,
    /// Rows per raw SQLite transaction.
    pub sqlite_rows_per_commit: usize,
    /// Raw SQLite commit latency.
    pub sqlite_commit_ms: Quantiles,
    /// `synchronous` used.
    pub sqlite_synchronous: String,
    /// Raw broadcast delivery latency.
    pub ws_delivery_ms: Quantiles,
    /// Raw broadcast deliveries per second.
    pub ws_deliveries_per_s: f64,
    /// Frame size used, bytes.
    pub ws_frame_bytes: usize,
    /// Connections used.
    pub ws_connections: usize,
}

impl BaselineResults {
    /// JSON form, with our figures as multiples of the baselines.
    pub fn to_json(&self, ours: &Results) -> Value {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                (a / b * 100.0).round() / 100.0
            } else {
                0.0
            }
        };
        json!({
            "sqlite": {
                "synchronous": self.sqlite_synchronous,
                "commits_per_s": self.sqlite_commits_per_s.round(),
                "rows_per_commit": self.sqlite_rows_per_commit,
                "commit_ms": self.sqlite_commit_ms.to_json(),
            },
            "ws_broadcast": {
                "connections": self.ws_connections,
                "frame_bytes": self.ws_frame_bytes,
                "deliveries_per_s": self.ws_deliveries_per_s.round(),
                "delivery_ms": self.ws_delivery_ms.to_json(),
            },
            "ratios": {
                "commits_per_s_vs_raw_sqlite": ratio(ours.commits_per_s, self.sqlite_commits_per_s),
                "mutation_p99_vs_raw_commit_p99": ratio(ours.mutation_ms.p99, self.sqlite_commit_ms.p99),
                "delivery_p50_vs_raw_ws_p50": ratio(ours.delivery_ms.p50, self.ws_delivery_ms.p50),
                "delivery_p95_vs_raw_ws_p95": ratio(ours.delivery_ms.p95, self.ws_delivery_ms.p95),
                "delivery_p99_vs_raw_ws_p99": ratio(ours.delivery_ms.p99, self.ws_delivery_ms.p99),
            },
        })
    }
}

/// Runs both baselines for at most 10 s each.
pub async fn run(args: &LoadArgs, ours: &Results) -> anyhow::Result<BaselineResults> {
    let secs = args.duration.clamp(1.0, 10.0);
    let sync = if args.sqlite_sync == "normal" {
        "NORMAL"
    } else {
        "FULL"
    };
    let payload = args.payload_bytes;
    let rows = if args.transcript_rate > 0.0 {
        args.transcript_batch.max(1)
    } else {
        1
    };
    let (commits, commit_ms) =
        tokio::task::spawn_blocking(move || sqlite_loop(secs, sync, payload, rows)).await??;
    let frame = ours.mean_frame_bytes.round().max(64.0) as usize;
    let rate_per_group = args.chat_rate + args.transcript_rate + args.note_rate;
    let (ws_ms, ws_rate) = ws_broadcast(
        args.meetings,
        args.participants,
        rate_per_group,
        frame,
        secs,
    )
    .await?;
    Ok(BaselineResults {
        sqlite_commits_per_s: commits,
        sqlite_rows_per_commit: rows,
        sqlite_commit_ms: commit_ms,
        sqlite_synchronous: sync.to_owned(),
        ws_delivery_ms: ws_ms,
        ws_deliveries_per_s: ws_rate,
        ws_frame_bytes: frame,
        ws_connections: args.meetings * args.participants,
    })
}

/// Inserts `rows` rows per transaction for `secs`; returns rows per second
/// and the latency of each transaction.
fn sqlite_loop(
    secs: f64,
    sync: &str,
    payload: usize,
    rows: usize,
) -> anyhow::Result<(f64, Quantiles)> {
    let dir = tempfile::tempdir()?;
    let conn = rusqlite::Connection::open(dir.path().join("baseline.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", sync)?;
    conn.execute_batch(
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, meeting INTEGER NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL);
         CREATE INDEX docs_by_meeting ON docs (meeting, ts);",
    )?;
    let body = json!({
        "meetingId": "k57bd2x8dsqs3yk7d5xmr1ghpd7yzpk7",
        "text": "x".repeat(payload),
        "confidence": 0.9,
        "startTime": 1000.0,
        "endTime": 1900.0,
        "sequence": 1.0,
    })
    .to_string();
    let mut lat = Vec::new();
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let mut i: i64 = 0;
    while Instant::now() < until {
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut insert =
                conn.prepare_cached("INSERT INTO docs (meeting, ts, body) VALUES (?1, ?2, ?3)")?;
            for _ in 0..rows {
                insert.execute(rusqlite::params![i % 1000, i, body])?;
                i += 1;
            }
        }
        conn.execute_batch("COMMIT")?;
        lat.push(metrics::us(t.elapsed()));
    }
    let rate = i as f64 / start.elapsed().as_secs_f64();
    Ok((rate, Quantiles::from_us(&mut lat)))
}

async fn ws_broadcast(
    groups: usize,
    per_group: usize,
    rate: f64,
    frame: usize,
    secs: f64,
) -> anyhow::Result<(Quantiles, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let total = groups * per_group;
    let epoch = Instant::now();
    // Server: accept every socket, one writer task per socket.
    let server = tokio::spawn(async move {
        let mut outs = Vec::with_capacity(total);
        while outs.len() < total {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .write_buffer_size(0)
                .read_buffer_size(8 * 1024);
            let ws = tokio_tungstenite::accept_async_with_config(tcp, Some(cfg)).await?;
            let (mut sink, mut stream) = ws.split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
                let _ = sink.close().await;
            });
            tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            outs.push(tx);
        }
        Ok::<_, anyhow::Error>(outs)
    });
    // Clients.
    let samples: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::with_capacity(total);
    for chunk in (0..total).collect::<Vec<_>>().chunks(256) {
        let mut batch = Vec::new();
        for _ in chunk {
            batch.push(tokio_tungstenite::connect_async(format!("ws://{addr}/")));
        }
        for r in futures::future::join_all(batch).await {
            let (ws, _) = r.context("baseline websocket connect")?;
            let samples = samples.clone();
            clients.push(tokio::spawn(async move {
                let (_sink, mut stream) = ws.split();
                let mut local = Vec::new();
                while let Some(Ok(msg)) = stream.next().await {
                    if let Message::Text(t) = msg {
                        let now = epoch.elapsed().as_micros() as u64;
                        if let Some(sent) = t
                            .as_str()
                            .split(' ')
                            .next()
                            .and_then(|s| s.parse::<u64>().ok())
                        {
                            local.push(now.saturating_sub(sent));
                        }
                    }
                }
                samples.lock().extend(local);
            }));
        }
    }
    let outs = server.await??;
    let outs = Arc::new(outs);
    let mut tasks = Vec::new();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let rate = rate.max(0.1);
    for g in 0..groups {
        let outs = outs.clone();
        let period = Duration::from_secs_f64(1.0 / rate);
        let offset = period.mul_f64((g as f64 * 0.618_033_988_75).fract());
        tasks.push(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::from_std(start + offset), period);
            loop {
                let at = tick.tick().await;
                if at.into_std() >= end {
                    break;
                }
                let mut text = format!("{} ", epoch.elapsed().as_micros());
                text.extend(std::iter::repeat_n('x', frame.saturating_sub(text.len())));
                let msg = Message::text(text);
                for c in 0..per_group {
                    let _ = outs[g * per_group + c].send(msg.clone());
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for o in outs.iter() {
        let _ = o.send(Message::Close(None));
    }
    drop(outs);
    for c in clients {
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
    }
    let mut all = std::mem::take(&mut *samples.lock());
    let n = all.len();
    let q = Quantiles::from_us(&mut all);
    Ok((q, n as f64 / secs))
}
