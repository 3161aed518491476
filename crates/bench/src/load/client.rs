//! A minimal sync-protocol client over one WebSocket, speaking the wire
//! types of the `protocol` crate.
//!
//! One [`Conn`] is one participant's socket. Frames are written by a writer
//! task fed through an unbounded channel (so any task may send), and read by
//! a reader task that
//!
//! * resolves mutation acknowledgements ([`Ack`]): either a one-shot for
//!   setup calls, or a direct record into the meeting's send log (the hot
//!   path, no extra task per mutation);
//! * hands every `Transition` to the connection's [`TransitionSink`] (the
//!   subscriber's verification state, see [`super::scenario`]) with the
//!   instant the frame was read;
//! * publishes the last `endVersion` on a watch channel, which is how setup
//!   waits for "authenticated" and "subscribed".

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use protocol::{
    AuthToken, ClientMessage, QuerySetModification, ServerMessage, StateModification, StateVersion,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Where a mutation's acknowledgement goes.
pub enum Ack {
    /// Setup calls: the caller awaits the outcome.
    Reply(oneshot::Sender<Result<Value, String>>),
    /// Load mutations: recorded into the shared send log by the reader.
    Record(Box<dyn FnOnce(Instant, Result<Value, String>) + Send>),
}

/// Receives the Transitions read on one connection.
pub trait TransitionSink: Send + Sync {
    /// Called by the reader task for each Transition, with the instant its
    /// frame was read and the connection (to modify the query set).
    fn on_transition(&self, conn: &Conn, modifications: &[StateModification], read_at: Instant);
}

/// Counters shared by every connection of a run.
#[derive(Debug, Default)]
pub struct WireStats {
    /// Text bytes received from the server.
    pub bytes_received: AtomicU64,
    /// Frames received from the server.
    pub frames_received: AtomicU64,
    /// Transitions received.
    pub transitions: AtomicU64,
    /// Connections that closed or failed while the run was live.
    pub disconnects: AtomicU64,
    /// Frames that could not be decoded, FatalError / AuthError messages.
    pub protocol_errors: AtomicU64,
}

/// One participant's sync connection.
pub struct Conn {
    out: mpsc::UnboundedSender<Message>,
    next_request: AtomicU32,
    pending: Mutex<HashMap<u32, Ack>>,
    version: watch::Receiver<StateVersion>,
    /// The query-set version last sent (ModifyQuerySet.newVersion).
    query_set_sent: AtomicU32,
    next_query_id: AtomicU32,
    sink: Mutex<Option<Arc<dyn TransitionSink>>>,
}

/// WebSocket settings for load connections: small buffers so that
/// thousands of client sockets stay cheap, and messages up to 8 MiB.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(8 << 20))
        .max_frame_size(Some(8 << 20))
}

/// The sync URL of a deployment URL (`http://h:p` → `ws://h:p/api/1.48.0/sync`).
pub fn sync_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/api/1.48.0/sync")
}

impl Conn {
    /// Opens a socket to `base_url` and sends `Connect`.
    pub async fn connect(base_url: &str, stats: Arc<WireStats>) -> anyhow::Result<Arc<Conn>> {
        let url = sync_url(base_url);
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true)
                .await
                .with_context(|| format!("connecting to {url}"))?;
        let (mut write, mut read) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (ver_tx, ver_rx) = watch::channel(StateVersion::initial());
        let conn = Arc::new(Conn {
            out: out_tx,
            next_request: AtomicU32::new(0),
            pending: Mutex::new(HashMap::new()),
            version: ver_rx,
            query_set_sent: AtomicU32::new(0),
            next_query_id: AtomicU32::new(0),
            sink: Mutex::new(None),
        });
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if write.send(msg).await.is_err() {
                    break;
                }
            }
            let _ = write.close().await;
        });
        let reader_conn = Arc::downgrade(&conn);
        tokio::spawn(async move {
            while let Some(frame) = read.next().await {
                let read_at = Instant::now();
                let text = match frame {
                    Ok(Message::Text(t)) => t,
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => continue,
                };
                stats
                    .bytes_received
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
                stats.frames_received.fetch_add(1, Ordering::Relaxed);
                let Some(conn) = reader_conn.upgrade() else {
                    break;
                };
                match serde_json::from_str::<ServerMessage>(text.as_str()) {
                    Ok(ServerMessage::Transition {
                        end_version,
                        modifications,
                        ..
                    }) => {
                        stats.transitions.fetch_add(1, Ordering::Relaxed);
                        let sink = conn.sink.lock().clone();
                        if let Some(sink) = sink {
                            sink.on_transition(&conn, &modifications, read_at);
                        }
                        let _ = ver_tx.send(end_version);
                    }
                    Ok(ServerMessage::MutationResponse { request_id, result }) => {
                        let ack = conn.pending.lock().remove(&request_id);
                        let outcome = result.map(|s| s.value).map_err(|f| f.error_message);
                        match ack {
                            Some(Ack::Reply(tx)) => {
                                let _ = tx.send(outcome);
                            }
                            Some(Ack::Record(f)) => f(read_at, outcome),
                            None => {}
                        }
                    }
                    Ok(ServerMessage::Ping | ServerMessage::ActionResponse { .. }) => {}
                    Ok(ServerMessage::TransitionChunk { .. }) => {
                        // Only sent for Transitions over 5 MB; load queries stay far below.
                        stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(ServerMessage::FatalError { error })
                    | Ok(ServerMessage::AuthError { error, .. }) => {
                        stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("connvo-bench: server error on a load connection: {error}");
                    }
                    Err(e) => {
                        stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("connvo-bench: undecodable server frame: {e}");
                    }
                }
            }
            if let Some(conn) = reader_conn.upgrade() {
                // Fail every pending call so that nobody waits forever.
                let pending: Vec<Ack> = conn.pending.lock().drain().map(|(_, a)| a).collect();
                for ack in pending {
                    match ack {
                        Ack::Reply(tx) => {
                            let _ = tx.send(Err("connection closed".into()));
                        }
                        Ack::Record(f) => f(Instant::now(), Err("connection closed".into())),
                    }
                }
            }
            stats.disconnects.fetch_add(1, Ordering::Relaxed);
        });
        conn.send(&ClientMessage::Connect {
            session_id: uuid::Uuid::new_v4().to_string(),
            connection_count: 0,
            last_close_reason: Some("InitialConnect".into()),
            client_ts: None,
            max_observed_timestamp: None,
        })?;
        Ok(conn)
    }

    /// Installs the receiver of this connection's Transitions.
    pub fn set_sink(&self, sink: Arc<dyn TransitionSink>) {
        *self.sink.lock() = Some(sink);
    }

    /// Queues one client message.
    pub fn send(&self, msg: &ClientMessage) -> anyhow::Result<()> {
        self.out
            .send(Message::text(msg.to_json_string()))
            .map_err(|_| anyhow!("connection closed"))
    }

    /// Authenticates with a user JWT and waits until a Transition confirms
    /// the new identity (`endVersion.identity >= 1`).
    pub async fn authenticate(&self, token: String, timeout: Duration) -> anyhow::Result<()> {
        self.send(&ClientMessage::Authenticate {
            base_version: 0,
            token: AuthToken::User(token),
        })?;
        // The official client always sends its (here empty) query set too.
        self.modify_query_set(Vec::new())?;
        self.wait_version(timeout, |v| v.identity >= 1).await
    }

    /// Sends a `ModifyQuerySet` moving to the next query-set version and
    /// returns that version.
    pub fn modify_query_set(
        &self,
        modifications: Vec<QuerySetModification>,
    ) -> anyhow::Result<u32> {
        let base = self.query_set_sent.fetch_add(1, Ordering::SeqCst);
        self.send(&ClientMessage::ModifyQuerySet {
            base_version: base,
            new_version: base + 1,
            modifications,
        })?;
        Ok(base + 1)
    }

    /// A fresh query id.
    pub fn next_query_id(&self) -> u32 {
        self.next_query_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Waits until the last received `endVersion` satisfies `done`.
    pub async fn wait_version(
        &self,
        timeout: Duration,
        done: impl Fn(&StateVersion) -> bool,
    ) -> anyhow::Result<()> {
        let mut rx = self.version.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|v| done(v))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => bail!("connection closed"),
            Err(_) => bail!("no confirming Transition within {timeout:?}"),
        }
    }

    /// Sends a mutation whose acknowledgement goes to `ack`; returns the
    /// instant the frame was queued.
    pub fn mutation_with(&self, udf_path: &str, args: Value, ack: Ack) -> anyhow::Result<Instant> {
        let request_id = self.next_request.fetch_add(1, Ordering::SeqCst);
        self.pending.lock().insert(request_id, ack);
        let sent_at = Instant::now();
        let res = self.send(&ClientMessage::Mutation {
            request_id,
            udf_path: udf_path.to_owned(),
            args: vec![args],
            component_path: None,
        });
        if let Err(e) = res {
            self.pending.lock().remove(&request_id);
            return Err(e);
        }
        Ok(sent_at)
    }

    /// Runs a mutation and waits for its result (setup calls).
    pub async fn mutation(
        &self,
        udf_path: &str,
        args: Value,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let (tx, rx) = oneshot::channel();
        self.mutation_with(udf_path, args, Ack::Reply(tx))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(msg))) => bail!("{udf_path} failed: {msg}"),
            Ok(Err(_)) => bail!("{udf_path}: connection closed"),
            Err(_) => bail!("{udf_path}: no MutationResponse within {timeout:?}"),
        }
    }

    /// Closes the socket.
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}
