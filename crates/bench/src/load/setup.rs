//! Setting up a run: spawning `connvo serve`, minting dev tokens and
//! provisioning users and active meetings through the sync protocol.
//!
//! Everything happens concurrently (`--setup-concurrency`) over the same
//! WebSocket connections that later carry the load: each participant's
//! socket authenticates, calls `users/mutations:upsertUser`, and each
//! meeting's host socket calls `meetings/lifecycle:createMeeting` (with the
//! other participants as `participantIds`) and `startMeeting`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::client::{Conn, WireStats};
use super::config::LoadArgs;

/// Timeout of one setup call.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// A `connvo serve` process started by the bench (killed on drop).
pub struct ServerProc {
    /// The process.
    pub child: Child,
    /// Its deployment URL.
    pub url: String,
    /// Its pid.
    pub pid: u32,
}

/// The servers of a run and how to mint tokens for them.
pub struct Target {
    /// Deployment URLs, connections are spread round-robin over them.
    pub urls: Vec<String>,
    /// Pids to sample from /proc (may be empty).
    pub pids: Vec<u32>,
    /// Spawned processes (kept alive for the run).
    pub procs: Vec<ServerProc>,
    /// Signs dev tokens the servers trust.
    pub keys: auth::DevKeys,
    /// The temporary data dir of spawned servers (removed on drop).
    pub _tmp: Option<tempfile::TempDir>,
}

impl Target {
    /// Stops spawned servers (SIGKILL; the data dir is thrown away).
    pub async fn stop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.start_kill();
            let _ = p.child.wait().await;
        }
        self.procs.clear();
    }
}

fn connvo_bin(args: &LoadArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.connvo_bin {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("locating connvo-bench")?;
    let bin = exe
        .parent()
        .map(|d| d.join("connvo"))
        .ok_or_else(|| anyhow!("connvo-bench has no parent directory"))?;
    if !bin.exists() {
        bail!(
            "{} not found: build it (`cargo build -p connvo`, or --release) or pass --connvo-bin",
            bin.display()
        );
    }
    Ok(bin)
}

async fn spawn_one(
    bin: &Path,
    data_dir: &Path,
    args: &LoadArgs,
    node: usize,
) -> anyhow::Result<ServerProc> {
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--port", "0", "--host", "127.0.0.1", "--dev-auth", "on"])
        .args(["--sqlite-sync", &args.sqlite_sync])
        .args(["--max-connections", "100000"]);
    if let Some(db) = &args.database_url {
        cmd.arg("--database-url").arg(db);
    }
    let log_path = data_dir.join(format!("serve-{node}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("connvo serve exited at once"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout of connvo serve"))?;
    let mut lines = BufReader::new(stdout).lines();
    let find = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split("connvo listening on ").nth(1) {
                return Ok::<_, std::io::Error>(Some(rest.trim().to_owned()));
            }
        }
        Ok(None)
    };
    let url = match tokio::time::timeout(Duration::from_secs(60), find).await {
        Ok(Ok(Some(url))) => url,
        _ => bail!(
            "connvo serve did not report its address within 60 s; see {}",
            log_path.display()
        ),
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(ServerProc { child, url, pid })
}

/// Starts the servers (`--spawn`) or connects to the given ones (`--url`).
pub async fn target(args: &LoadArgs) -> anyhow::Result<Target> {
    if args.spawn {
        let bin = connvo_bin(args)?;
        let tmp = tempfile::Builder::new()
            .prefix("connvo-bench-")
            .tempdir()
            .context("creating a temporary data dir")?;
        let keys =
            auth::DevKeys::load_or_create(tmp.path()).map_err(|e| anyhow!("dev key: {e}"))?;
        let mut procs = Vec::new();
        for node in 0..args.spawn_nodes.max(1) {
            procs.push(spawn_one(&bin, tmp.path(), args, node).await?);
        }
        eprintln!(
            "connvo-bench: started {} node(s): {} (data dir {})",
            procs.len(),
            procs
                .iter()
                .map(|p| p.url.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            tmp.path().display()
        );
        Ok(Target {
            urls: procs.iter().map(|p| p.url.clone()).collect(),
            pids: procs.iter().map(|p| p.pid).collect(),
            procs,
            keys,
            _tmp: Some(tmp),
        })
    } else {
        let dir = args
            .data_dir
            .as_deref()
            .ok_or_else(|| anyhow!("--url needs --data-dir"))?;
        let keys = auth::DevKeys::load_or_create(dir).map_err(|e| anyhow!("dev key: {e}"))?;
        Ok(Target {
            urls: args.url.clone(),
            pids: args.server_pid.clone(),
            procs: Vec::new(),
            keys,
            _tmp: None,
        })
    }
}

/// One provisioned participant: its socket and user id.
pub struct Participant {
    /// The sync connection.
    pub conn: Arc<Conn>,
    /// `users` id.
    pub user_id: String,
}

/// One provisioned, active meeting.
pub struct Meeting {
    /// `meetings` id.
    pub id: String,
    /// Participants; index 0 is the host (the writer).
    pub participants: Vec<Participant>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn provision_participant(
    url: String,
    token: String,
    stats: Arc<WireStats>,
) -> anyhow::Result<Participant> {
    let conn = Conn::connect(&url, stats).await?;
    conn.authenticate(token, SETUP_TIMEOUT)
        .await
        .context("authenticating")?;
    let user = conn
        .mutation("users/mutations:upsertUser", json!({}), SETUP_TIMEOUT)
        .await?;
    let user_id = user
        .as_str()
        .ok_or_else(|| anyhow!("upsertUser returned {user}, not an id"))?
        .to_owned();
    Ok(Participant { conn, user_id })
}

async fn provision_meeting(
    index: usize,
    participants: Vec<Participant>,
) -> anyhow::Result<Meeting> {
    let host = &participants[0].conn;
    let others: Vec<Value> = participants[1..]
        .iter()
        .map(|p| Value::String(p.user_id.clone()))
        .collect();
    let created = host
        .mutation(
            "meetings/lifecycle:createMeeting",
            json!({
                "title": format!("Load meeting {index}"),
                "participantIds": others,
                "transcriptionEnabled": true,
                "maxParticipants": participants.len().max(2) as f64,
            }),
            SETUP_TIMEOUT,
        )
        .await?;
    let id = created
        .get("meetingId")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("createMeeting returned {created}"))?
        .to_owned();
    host.mutation(
        "meetings/lifecycle:startMeeting",
        json!({ "meetingId": id }),
        SETUP_TIMEOUT,
    )
    .await?;
    Ok(Meeting { id, participants })
}

/// Opens and authenticates every participant's socket, provisions the
/// users, then creates and starts every meeting.
pub async fn provision(
    target: &Target,
    args: &LoadArgs,
    stats: Arc<WireStats>,
) -> anyhow::Result<Vec<Meeting>> {
    let started = Instant::now();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = &run[..8];
    let total = args.meetings * args.participants;
    let mut jobs = Vec::with_capacity(total);
    for i in 0..total {
        let (m, p) = (i / args.participants, i % args.participants);
        let mut claims = auth::DevTokenClaims::new(format!("bench-{run}-{m}-{p}"));
        claims.email = Some(format!("bench-{run}-{m}-{p}@load.example.com"));
        claims.name = Some(format!("Load {m}.{p}"));
        claims.ttl_secs = 6 * 3600;
        let token = target
            .keys
            .mint(claims, now_secs())
            .map_err(|e| anyhow!("minting a dev token: {e}"))?;
        let url = target.urls[i % target.urls.len()].clone();
        jobs.push((url, token));
    }
    let mut done = 0usize;
    let mut participants: Vec<Option<Participant>> = (0..total).map(|_| None).collect();
    let mut stream =
        futures::stream::iter(jobs.into_iter().enumerate().map(|(i, (url, token))| {
            let stats = stats.clone();
            async move { (i, provision_participant(url, token, stats).await) }
        }))
        .buffer_unordered(args.setup_concurrency.max(1));
    while let Some((i, res)) = stream.next().await {
        participants[i] = Some(res.with_context(|| format!("provisioning participant {i}"))?);
        done += 1;
        if done.is_multiple_of(1000) {
            eprintln!("connvo-bench: setup: {done}/{total} participants connected and provisioned");
        }
    }
    drop(stream);
    let mut groups = Vec::with_capacity(args.meetings);
    let mut iter = participants.into_iter().flatten();
    for _ in 0..args.meetings {
        groups.push(iter.by_ref().take(args.participants).collect::<Vec<_>>());
    }
    let mut meetings: Vec<Option<Meeting>> = (0..args.meetings).map(|_| None).collect();
    let mut stream = futures::stream::iter(
        groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| async move { (i, provision_meeting(i, g).await) }),
    )
    .buffer_unordered(args.setup_concurrency.max(1));
    while let Some((i, res)) = stream.next().await {
        meetings[i] = Some(res.with_context(|| format!("creating meeting {i}"))?);
    }
    drop(stream);
    eprintln!(
        "connvo-bench: setup: {} meetings × {} participants ready in {:.1} s",
        args.meetings,
        args.participants,
        started.elapsed().as_secs_f64()
    );
    Ok(meetings.into_iter().flatten().collect())
}
