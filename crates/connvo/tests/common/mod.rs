//! Shared helpers for the `connvo` binary tests: spawn a real
//! `connvo serve` on a temp data dir and port 0, kill it (SIGKILL or
//! SIGTERM), restart it on the same dir, talk to it over HTTP and raw
//! WebSockets.
//!
//! Every server is owned by a [`Server`] whose `Drop` SIGKILLs the child,
//! so a failing (panicking) test never leaves a process behind.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// How long a server may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait for one WebSocket message.
pub const WS_TIMEOUT: Duration = Duration::from_secs(10);
/// Default HTTP request timeout.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// The path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_connvo")
}

/// A temp directory holding the data dir and the server logs.
pub struct TestDir {
    root: tempfile::TempDir,
}

impl TestDir {
    /// A fresh directory.
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("connvo-test-")
            .tempdir()
            .expect("create temp dir");
        std::fs::create_dir_all(root.path().join("data")).expect("create data dir");
        Self { root }
    }

    /// The `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Where server logs go.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

/// Options for [`Server::start`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Pass `--sqlite-sync full`.
    pub sqlite_sync_full: bool,
    /// Extra arguments.
    pub extra_args: Vec<String>,
}

static LOG_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running `connvo serve` child process.
pub struct Server {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Its stderr log file.
    pub log_path: PathBuf,
    options: ServerOptions,
}

impl Server {
    /// Starts a server on `dir`'s data dir with `--test-functions` and port 0,
    /// and waits for its `connvo listening on http://127.0.0.1:<port>` line.
    pub fn start(dir: &TestDir, options: ServerOptions) -> Server {
        Self::start_on(dir.data_dir(), dir.root(), options)
    }

    fn start_on(data_dir: PathBuf, log_dir: &Path, options: ServerOptions) -> Server {
        let n = LOG_COUNTER.fetch_add(1, Ordering::SeqCst);
        let log_path = log_dir.join(format!("server-{n}.log"));
        let log = std::fs::File::create(&log_path).expect("create server log");
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--port", "0", "--test-functions"]);
        if options.sqlite_sync_full {
            cmd.args(["--sqlite-sync", "full"]);
        }
        cmd.args(&options.extra_args)
            .env("RUST_LOG", "info")
            .env_remove("CONNVO_PORT")
            .env_remove("CONNVO_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("spawn connvo serve");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let port = line
                    .trim()
                    .strip_prefix("connvo listening on http://")
                    .and_then(|rest| rest.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
                if let (false, Some(port)) = (sent, port) {
                    let _ = tx.send(port);
                    sent = true;
                }
                // Keep draining stdout so the child never blocks on a full pipe.
            }
        });
        let mut server = Server {
            child: Some(child),
            port: 0,
            data_dir,
            log_path,
            options,
        };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(port) => server.port = port,
            Err(_) => {
                let status = server
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!(
                    "connvo serve did not report its port within {STARTUP_TIMEOUT:?} \
                     (exit status {status:?}); log:\n{}",
                    server.log_tail()
                );
            }
        }
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// The last ~8 KiB of the server's stderr log.
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        let start = s.len().saturating_sub(8192);
        let mut start = start;
        while !s.is_char_boundary(start) {
            start += 1;
        }
        s[start..].to_owned()
    }

    /// SIGKILLs the process (`Child::kill` sends SIGKILL on Unix) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (via `kill -TERM <pid>`); the process keeps being owned
    /// (and is SIGKILLed on drop if it has not exited).
    pub fn sigterm(&self) {
        let pid = self.pid();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {pid} failed: {status:?}");
    }

    /// Waits for the process to exit, up to `timeout`. `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a new server on the same data dir (after a kill).
    pub fn restart(&mut self) {
        self.kill9();
        let log_dir = self.log_path.parent().expect("log dir").to_path_buf();
        let next = Self::start_on(self.data_dir.clone(), &log_dir, self.options.clone());
        *self = next;
    }

    /// Asserts `GET /health` answers 200 with `status: ok`.
    pub async fn assert_healthy(&self) {
        let client = http_client();
        let resp = client
            .get(format!("{}/health", self.base_url()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /health failed: {e}\nlog:\n{}", self.log_tail()));
        assert_eq!(resp.status(), 200, "GET /health status");
        let body: Value = resp.json().await.expect("health json");
        assert_eq!(body["status"], "ok", "health body: {body}");
    }

    /// The `ts` of `GET /health`, decoded.
    pub async fn health_ts(&self, client: &reqwest::Client) -> u64 {
        let resp = client
            .get(format!("{}/health", self.base_url()))
            .send()
            .await
            .expect("GET /health");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("health json");
        decode_ts(&body["ts"])
    }

    /// Mints a dev token trusted by this server (`connvo dev-token`).
    pub fn dev_token(&self, subject: &str, email: Option<&str>) -> String {
        let mut cmd = Command::new(bin());
        cmd.arg("dev-token")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--subject", subject]);
        if let Some(email) = email {
            cmd.args(["--email", email]);
        }
        let out = cmd.output().expect("run connvo dev-token");
        assert!(
            out.status.success(),
            "dev-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8 token")
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .expect("a token line")
            .trim()
            .to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP client with a request timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("http client")
}

/// Decodes a wire timestamp: standard base64 (padded) of 8 little-endian bytes.
pub fn decode_ts(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    assert_eq!(s.len() % 4, 0, "timestamp {s:?} is not padded base64");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("timestamp {s:?} is not base64: {e}"));
    let arr: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| panic!("timestamp {s:?} is not 8 bytes"));
    u64::from_le_bytes(arr)
}

/// `POST {base}{endpoint}` with a Convex-encoded JSON body; returns the status and
/// the parsed body (`Value::Null` if not JSON).
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    bearer: Option<&str>,
) -> reqwest::Result<(u16, Value)> {
    let mut req = client.post(url).json(body);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Runs a function over the HTTP API (`kind` is `query`, `mutation` or
/// `action`) with `format: convex_encoded_json`.
pub async fn call(
    client: &reqwest::Client,
    base: &str,
    kind: &str,
    path: &str,
    args: Value,
) -> reqwest::Result<(u16, Value)> {
    post_json(
        client,
        &format!("{base}/api/{kind}"),
        &json!({"path": path, "args": args, "format": "convex_encoded_json"}),
        None,
    )
    .await
}

/// Like [`call`] but panics unless the call succeeded; returns `value`.
pub async fn call_ok(
    client: &reqwest::Client,
    base: &str,
    kind: &str,
    path: &str,
    args: Value,
) -> Value {
    let (status, body) = call(client, base, kind, path, args.clone())
        .await
        .unwrap_or_else(|e| panic!("{kind} {path} {args}: {e}"));
    assert_eq!(status, 200, "{kind} {path} {args}: {body}");
    assert_eq!(body["status"], "success", "{kind} {path} {args}: {body}");
    body["value"].clone()
}

/// What a raw WebSocket read produced.
#[derive(Debug)]
pub enum WsEvent {
    /// A text frame, parsed as JSON.
    Json(Value),
    /// A close frame (with its code and reason, if any).
    Close(Option<(u16, String)>),
    /// The stream ended or failed without a close frame.
    Ended(String),
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw protocol client.
pub struct Ws {
    stream: WsStream,
}

fn close_parts(frame: Option<CloseFrame>) -> Option<(u16, String)> {
    frame.map(|f| (u16::from(f.code), f.reason.to_string()))
}

impl Ws {
    /// Opens `url`.
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio::time::timeout(WS_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("timed out connecting to {url}"))
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        Ws { stream }
    }

    /// Sends a JSON text frame.
    pub async fn send(&mut self, v: Value) {
        self.send_text(v.to_string()).await.expect("send frame");
    }

    /// Sends raw text.
    pub async fn send_text(
        &mut self,
        text: String,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        tokio::time::timeout(WS_TIMEOUT, self.stream.send(Message::text(text)))
            .await
            .map_err(|_| {
                tokio_tungstenite::tungstenite::Error::Io(std::io::Error::other("send timed out"))
            })?
    }

    /// Sends `Connect`.
    pub async fn connect_msg(&mut self, session_id: &str, connection_count: u32) {
        self.send(json!({
            "type": "Connect",
            "sessionId": session_id,
            "connectionCount": connection_count,
            "lastCloseReason": if connection_count == 0 { json!("InitialConnect") } else { json!("closed with code 1006") },
            "clientTs": now_ms(),
        }))
        .await;
    }

    /// The next event, skipping WebSocket ping/pong and application `Ping`s.
    /// Panics after `WS_TIMEOUT`.
    pub async fn next_event(&mut self) -> WsEvent {
        self.next_event_within(WS_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no WebSocket message within {WS_TIMEOUT:?}"))
    }

    /// Like [`Ws::next_event`] but returns `None` on timeout.
    pub async fn next_event_within(&mut self, timeout: Duration) -> Option<WsEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            return Some(match msg {
                None => WsEvent::Ended("stream ended".into()),
                Some(Err(e)) => WsEvent::Ended(e.to_string()),
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("server sent non-JSON text {t:?}: {e}"));
                    if v["type"] == "Ping" {
                        continue;
                    }
                    WsEvent::Json(v)
                }
                Some(Ok(Message::Close(frame))) => WsEvent::Close(close_parts(frame)),
                Some(Ok(Message::Binary(b))) => {
                    panic!("server sent a binary frame of {} bytes", b.len())
                }
                Some(Ok(_)) => continue,
            });
        }
    }

    /// The next JSON message; panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        match self.next_event().await {
            WsEvent::Json(v) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Reads until the socket closes; returns the JSON messages received
    /// before and the close frame (`None` if the stream just ended).
    pub async fn until_closed(&mut self) -> (Vec<Value>, Option<(u16, String)>) {
        let mut messages = Vec::new();
        loop {
            match self.next_event().await {
                WsEvent::Json(v) => messages.push(v),
                WsEvent::Close(frame) => return (messages, frame),
                WsEvent::Ended(_) => return (messages, None),
            }
        }
    }

    /// Closes from the client side (best effort).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.close(None)).await;
    }
}

/// A random-enough unique id for session ids and names.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A UUIDv4-shaped session id (the client sends one; the server treats it
/// as an opaque string).
pub fn session_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst) as u128;
    let x = nanos ^ (u128::from(std::process::id()) << 64) ^ (n << 96);
    let h = format!("{x:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
