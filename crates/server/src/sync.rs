//! The WebSocket sync protocol (`/api/{clientVersion}/sync`), one worker per
//! socket.
//!
//! The worker is a single `select!` loop over: client messages, finished
//! mutations (run strictly one at a time, in arrival order, by a per-socket
//! task), finished actions (run concurrently), wake-ups from the socket's
//! live queries, the keepalive timer and server shutdown. When anything may
//! have changed results it sets `update_needed`; a Transition is computed
//! only when the outgoing queue has room, so a slow client skips straight
//! to the newest state instead of accumulating a backlog.
//!
//! A Transition is assembled at one timestamp `T` at which every result it
//! reports is valid: `T` is at least the newest processed commit, the
//! previous Transition's ts and the ts of every mutation answered since; each
//! shared result must have been computed at or before `T` and not have been
//! invalidated by any commit up to `T`. Results that fail the check are
//! refreshed and the check repeats; after a few rounds the socket falls back
//! to running its stale queries itself in one snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth::Identity;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errors::{Error, ErrorCode};
use futures::{SinkExt, StreamExt};
use persistence::Timestamp;
use protocol::{
    AuthToken, ClientMessage, FunctionFailure, FunctionSuccess, MutationSuccess,
    QuerySetModification, QueryValue, ServerMessage, StateModification, StateVersion, WireTs,
};
use runtime::{FunctionKind, SessionRequest, SessionSocket};
use tokio::sync::{Notify, mpsc};

use crate::AppState;
use crate::calls::{client_error_data, client_message, decode_args, log_function_error};
use crate::live::{QueryKey, QueryResult, SharedQuery, identity_key};

/// Upgrades `/api/sync` and `/api/{version}/sync`.
pub async fn upgrade(
    State(state): State<AppState>,
    version: Option<Path<String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !state.config.allowed_origins.is_empty() {
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        if let Some(origin) = origin
            && !state.config.allowed_origins.iter().any(|a| a == origin)
        {
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    if *state.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let Ok(permit) = Arc::clone(&state.connections).try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    let client_version = version.map(|Path(v)| v).unwrap_or_default();
    let max = state.config.max_ws_message_bytes;
    // tungstenite reads through a 128 KiB buffer per socket by default,
    // most of an idle connection's memory; sync messages are small, and a
    // large one is still read (in more calls).
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(max.saturating_mul(4))
        .on_upgrade(move |socket| async move {
            metrics::gauge!("connvo_ws_connections").increment(1.0);
            run_socket(state, socket, client_version).await;
            metrics::gauge!("connvo_ws_connections").decrement(1.0);
            drop(permit);
        })
}

/// Per-socket read buffer (tungstenite's default is 128 KiB).
const READ_BUFFER_BYTES: usize = 4 * 1024;

enum QueryBinding {
    /// A query that cannot run (bad path, unknown function, bad arguments):
    /// reported once as QueryFailed.
    Broken(Error),
    Live(Arc<SharedQuery>),
}

struct ConnQuery {
    udf_path: String,
    args: serde_json::Value,
    journal: Option<String>,
    binding: QueryBinding,
    last_hash: Option<u64>,
}

struct MutationJob {
    request_id: u32,
    udf_path: String,
    args: Vec<serde_json::Value>,
    identity: Option<Arc<Identity>>,
    session_id: Arc<str>,
    socket: SessionSocket,
    /// When the message was read (for `ServerConfig::mutation_queue_timeout`).
    received: Instant,
}

struct MutationDone {
    request_id: u32,
    result: Result<(serde_json::Value, Timestamp), Error>,
    log_lines: Vec<String>,
}

struct ActionDone {
    request_id: u32,
    result: Result<serde_json::Value, Error>,
    log_lines: Vec<String>,
}

/// Why the worker stops.
enum Exit {
    /// The client closed or the socket failed.
    Gone,
    /// Close with a code and reason.
    Close(u16, String),
}

struct Worker {
    state: AppState,
    /// `Connect.sessionId`, and which socket of that session this is.
    session: Option<(Arc<str>, SessionSocket)>,
    received_query_set: u32,
    received_identity: u32,
    current: StateVersion,
    identity: Option<Arc<Identity>>,
    queries: HashMap<u32, ConnQuery>,
    removed: Vec<u32>,
    update_needed: bool,
    force_send: bool,
    min_ts: Timestamp,
    wake: Arc<Notify>,
    clock_skew: Option<i64>,
    actions_in_flight: usize,
}

const MAX_PENDING_MUTATIONS: usize = 1000;
const MAX_ACTIONS_IN_FLIGHT: usize = 1000;
const CONSISTENCY_ROUNDS: usize = 6;
/// How often a WebSocket ping frame is sent (as Convex's backend does).
const WS_PING_INTERVAL: Duration = Duration::from_secs(5);

fn close_frame(code: u16, reason: &str) -> Message {
    let mut reason = reason.to_owned();
    if reason.len() > 123 {
        let mut cut = 123;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }))
}

async fn run_socket(state: AppState, socket: WebSocket, _client_version: String) {
    let (mut sink, mut stream) = socket.split();
    let queue = state.config.max_queued_transitions.max(1) + 8;
    // Boxed frames, like the other channels: a tokio channel allocates a
    // block of 32 slots up front, ~1.3 KiB per connection for unboxed
    // `Message`s against 256 bytes for boxes.
    let (out_tx, mut out_rx) = mpsc::channel::<Box<Message>>(queue);
    let writer = tokio::spawn(async move {
        // Frames already queued are written with one flush, usually one
        // system call: a mutation's response and the Transition behind it
        // go out together. The channel is bounded, and so is a batch.
        'frames: while let Some(msg) = out_rx.recv().await {
            let mut next = Some(msg);
            let mut closing = false;
            while let Some(msg) = next.take() {
                closing = matches!(*msg, Message::Close(_));
                if sink.feed(*msg).await.is_err() {
                    break 'frames;
                }
                if closing {
                    break;
                }
                next = out_rx.try_recv().ok();
            }
            if sink.flush().await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });

    // Boxed payloads: a tokio channel allocates its first block of 32 slots
    // up front, so unboxed jobs and results cost ~10 KiB per connection
    // even when idle (8-byte slots instead).
    let (mut_tx, mut_rx) = mpsc::channel::<Box<MutationJob>>(MAX_PENDING_MUTATIONS);
    let (mut_done_tx, mut mut_done_rx) = mpsc::unbounded_channel::<Box<MutationDone>>();
    let (act_done_tx, mut act_done_rx) = mpsc::unbounded_channel::<Box<ActionDone>>();
    let mutation_task = tokio::spawn(run_mutations(state.clone(), mut_rx, mut_done_tx));

    let mut worker = Worker {
        state: state.clone(),
        session: None,
        received_query_set: 0,
        received_identity: 0,
        current: StateVersion::initial(),
        identity: None,
        queries: HashMap::new(),
        removed: Vec::new(),
        update_needed: false,
        force_send: false,
        min_ts: Timestamp::ZERO,
        wake: Arc::new(Notify::new()),
        clock_skew: None,
        actions_in_flight: 0,
    };
    let mut shutdown_rx = state.shutdown.clone();
    let shutdown = async move {
        let _ = shutdown_rx.wait_for(|s| *s).await;
    };
    tokio::pin!(shutdown);
    let mut last_sent = Instant::now();
    let mut last_received = Instant::now();
    let mut last_ws_ping = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let exit: Exit = loop {
        let wake = Arc::clone(&worker.wake);
        tokio::select! {
            msg = stream.next() => {
                last_received = Instant::now();
                match msg {
                    None => break Exit::Gone,
                    Some(Err(e)) => {
                        // The only read error a client can cause on purpose is
                        // an oversized message; say so in the close frame.
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("Space limit") || text.contains("capacity") {
                            break Exit::Close(1009, format!("MessageTooLarge: {text}"));
                        }
                        break Exit::Gone;
                    }
                    Some(Ok(Message::Text(text))) => {
                        match Box::pin(worker.handle_text(text.as_str(), &mut_tx, &act_done_tx, &out_tx)).await {
                            Ok(()) => {}
                            Err(exit) => break exit,
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        break Exit::Close(1003, "BadRequest: binary frames are not supported".into());
                    }
                    Some(Ok(Message::Close(_))) => break Exit::Gone,
                    Some(Ok(_)) => {}
                }
            }
            Some(done) = mut_done_rx.recv() => {
                let msg = match done.result {
                    Ok((value, ts)) => {
                        worker.min_ts = worker.min_ts.max(ts);
                        worker.force_send = true;
                        worker.update_needed = true;
                        ServerMessage::MutationResponse {
                            request_id: done.request_id,
                            result: Ok(MutationSuccess { value, ts: WireTs(ts.0), log_lines: done.log_lines }),
                        }
                    }
                    Err(e) => ServerMessage::MutationResponse {
                        request_id: done.request_id,
                        result: Err(FunctionFailure {
                            error_message: client_message(&e),
                            error_data: client_error_data(&e),
                            log_lines: done.log_lines,
                        }),
                    },
                };
                if out_tx.send(Box::new(Message::Text(msg.to_json_string().into()))).await.is_err() {
                    break Exit::Gone;
                }
                last_sent = Instant::now();
            }
            Some(done) = act_done_rx.recv() => {
                worker.actions_in_flight = worker.actions_in_flight.saturating_sub(1);
                let result = match done.result {
                    Ok(value) => Ok(FunctionSuccess { value, log_lines: done.log_lines }),
                    Err(e) => Err(FunctionFailure {
                        error_message: client_message(&e),
                        error_data: client_error_data(&e),
                        log_lines: done.log_lines,
                    }),
                };
                let msg = ServerMessage::ActionResponse { request_id: done.request_id, result };
                if out_tx.send(Box::new(Message::Text(msg.to_json_string().into()))).await.is_err() {
                    break Exit::Gone;
                }
                last_sent = Instant::now();
            }
            _ = wake.notified() => {
                worker.update_needed = true;
            }
            permit = out_tx.reserve(), if worker.update_needed => {
                let Ok(permit) = permit else { break Exit::Gone };
                worker.update_needed = false;
                let started = Instant::now();
                if let Some(frames) = Box::pin(worker.compute_transition()).await {
                    let mut frames = frames.into_iter();
                    if let Some(first) = frames.next() {
                        permit.send(Box::new(Message::Text(first.into())));
                    }
                    for frame in frames {
                        if out_tx.send(Box::new(Message::Text(frame.into()))).await.is_err() {
                            break;
                        }
                    }
                    last_sent = Instant::now();
                    metrics::histogram!("connvo_transition_seconds").record(started.elapsed().as_secs_f64());
                }
            }
            _ = ticker.tick() => {
                if last_received.elapsed() > worker.state.config.client_timeout {
                    break Exit::Close(1001, "ClientTimeout: no message received in time".into());
                }
                if let Some(identity) = &worker.identity {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    if identity.is_expired(now) {
                        let msg = ServerMessage::AuthError {
                            error: "Token expired".into(),
                            base_version: worker.received_identity,
                            auth_update_attempted: false,
                        };
                        let _ = out_tx.send(Box::new(Message::Text(msg.to_json_string().into()))).await;
                        break Exit::Close(1000, "AuthError: token expired".into());
                    }
                }
                // WebSocket-level pings every few seconds make idle clients
                // answer with pongs, which keeps `last_received` fresh (an idle
                // official client sends nothing on its own).
                if last_ws_ping.elapsed() >= WS_PING_INTERVAL {
                    if out_tx.send(Box::new(Message::Ping(Default::default()))).await.is_err() {
                        break Exit::Gone;
                    }
                    last_ws_ping = Instant::now();
                }
                if last_sent.elapsed() >= worker.state.config.ping_interval {
                    if out_tx.send(Box::new(Message::Text(ServerMessage::Ping.to_json_string().into()))).await.is_err() {
                        break Exit::Gone;
                    }
                    last_sent = Instant::now();
                }
            }
            _ = &mut shutdown => {
                break Exit::Close(1012, "ServerShutdown: the server is restarting".into());
            }
        }
    };
    if let Exit::Close(code, reason) = exit {
        tracing::debug!(code, reason = %reason, "closing socket");
        let _ = out_tx.send(Box::new(close_frame(code, &reason))).await;
    }
    drop(out_tx);
    drop(mut_tx);
    mutation_task.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

async fn run_mutations(
    state: AppState,
    mut jobs: mpsc::Receiver<Box<MutationJob>>,
    done: mpsc::UnboundedSender<Box<MutationDone>>,
) {
    while let Some(mut job) = jobs.recv().await {
        let result = async {
            let path = protocol::canonicalize_udf_path(&job.udf_path)
                .map_err(|e| Error::bad_request(e.to_string()))?;
            let spec = state
                .runtime
                .resolve_public(&path, Some(FunctionKind::Mutation))?;
            // Moved out, not cloned: the job is done with them.
            let args = protocol::args_object_owned(std::mem::take(&mut job.args))
                .map_err(|e| Error::bad_request(e.to_string()))?;
            let args = decode_args(serde_json::Value::Object(args))?;
            let session = SessionRequest {
                session_id: Arc::clone(&job.session_id),
                socket: job.socket,
                request_id: job.request_id,
                start_by: state
                    .config
                    .mutation_queue_timeout
                    .map(|limit| job.received + limit),
            };
            // Boxed: the mutation's future is large, and inline it would
            // make every idle connection's task that large.
            let out = Box::pin(state.runtime.run_mutation(
                &spec,
                args,
                job.identity.clone(),
                Some(session),
            ))
            .await;
            Ok::<_, Error>((path, out))
        }
        .await;
        let msg = match result {
            Ok((path, out)) => match (out.result, out.ts) {
                (Ok(v), Some(ts)) => MutationDone {
                    request_id: job.request_id,
                    result: Ok((v.to_json(), ts)),
                    log_lines: out.log_lines,
                },
                (Ok(_), None) => MutationDone {
                    request_id: job.request_id,
                    result: Err(Error::internal("mutation committed without a timestamp")),
                    log_lines: out.log_lines,
                },
                (Err(e), _) => {
                    log_function_error(&path, &e);
                    MutationDone {
                        request_id: job.request_id,
                        result: Err(e),
                        log_lines: out.log_lines,
                    }
                }
            },
            Err(e) => MutationDone {
                request_id: job.request_id,
                result: Err(e),
                log_lines: Vec::new(),
            },
        };
        if done.send(Box::new(msg)).is_err() {
            return;
        }
    }
}

fn fatal(reason: impl Into<String>) -> Exit {
    Exit::Close(1008, reason.into())
}

impl Worker {
    async fn handle_text(
        &mut self,
        text: &str,
        mutations: &mpsc::Sender<Box<MutationJob>>,
        actions: &mpsc::UnboundedSender<Box<ActionDone>>,
        out: &mpsc::Sender<Box<Message>>,
    ) -> Result<(), Exit> {
        let message =
            match protocol::parse_client_message(text, self.state.config.max_ws_message_bytes) {
                Ok(m) => m,
                Err(e) => {
                    let reason = e.close_reason();
                    let msg = ServerMessage::FatalError {
                        error: reason.clone(),
                    };
                    let _ = out
                        .send(Box::new(Message::Text(msg.to_json_string().into())))
                        .await;
                    return Err(fatal(reason));
                }
            };
        match message {
            ClientMessage::Connect {
                session_id,
                connection_count,
                client_ts,
                ..
            } => {
                let socket = if connection_count == 0 {
                    SessionSocket::First
                } else {
                    SessionSocket::Later
                };
                self.session = Some((session_id.into(), socket));
                if let Some(client_ts) = client_ts {
                    let now_ms = self.state.runtime.database().clock().now_ms();
                    self.clock_skew = Some((client_ts - now_ms) as i64);
                }
                Ok(())
            }
            ClientMessage::ModifyQuerySet {
                base_version,
                new_version,
                modifications,
            } => {
                if base_version != self.received_query_set || new_version <= base_version {
                    let reason = format!(
                        "BadRequest: BaseVersionMismatch: expected query set version {}, got {base_version}",
                        self.received_query_set
                    );
                    let msg = ServerMessage::FatalError {
                        error: reason.clone(),
                    };
                    let _ = out
                        .send(Box::new(Message::Text(msg.to_json_string().into())))
                        .await;
                    return Err(fatal(reason));
                }
                for m in modifications {
                    match m {
                        QuerySetModification::Add {
                            query_id,
                            udf_path,
                            args,
                            journal,
                            ..
                        } => {
                            let args = args
                                .into_iter()
                                .next()
                                .unwrap_or_else(|| serde_json::json!({}));
                            let mut q = ConnQuery {
                                udf_path,
                                args,
                                journal,
                                binding: QueryBinding::Broken(Error::internal("unbound")),
                                last_hash: None,
                            };
                            q.binding = self.bind(&q);
                            self.removed.retain(|id| *id != query_id);
                            self.queries.insert(query_id, q);
                        }
                        QuerySetModification::Remove { query_id } => {
                            if self.queries.remove(&query_id).is_some() {
                                self.removed.push(query_id);
                            }
                        }
                    }
                }
                self.received_query_set = new_version;
                self.update_needed = true;
                Ok(())
            }
            ClientMessage::Authenticate {
                base_version,
                token,
            } => {
                if base_version != self.received_identity {
                    let reason = format!(
                        "BadRequest: IdentityVersionMismatch: expected {}, got {base_version}",
                        self.received_identity
                    );
                    let msg = ServerMessage::FatalError {
                        error: reason.clone(),
                    };
                    let _ = out
                        .send(Box::new(Message::Text(msg.to_json_string().into())))
                        .await;
                    return Err(fatal(reason));
                }
                let identity = match token {
                    AuthToken::None => Ok(None),
                    AuthToken::User(token) => {
                        crate::calls::identity_from_token(&self.state, Some(&token)).await
                    }
                    AuthToken::Admin { .. } => Err(Error::new(
                        ErrorCode::InvalidToken,
                        "admin keys are not supported by this server",
                    )),
                };
                match identity {
                    Ok(identity) => {
                        self.identity = identity;
                        self.received_identity += 1;
                        let ids: Vec<u32> = self.queries.keys().copied().collect();
                        for id in ids {
                            if let Some(q) = self.queries.get(&id) {
                                let binding = self.bind(q);
                                if let Some(q) = self.queries.get_mut(&id) {
                                    q.binding = binding;
                                }
                            }
                        }
                        self.update_needed = true;
                        self.force_send = true;
                        Ok(())
                    }
                    Err(e) => {
                        let msg = ServerMessage::AuthError {
                            error: e.message().to_owned(),
                            base_version: self.received_identity,
                            auth_update_attempted: true,
                        };
                        let _ = out
                            .send(Box::new(Message::Text(msg.to_json_string().into())))
                            .await;
                        Err(Exit::Close(1000, "AuthError".into()))
                    }
                }
            }
            ClientMessage::Mutation {
                request_id,
                udf_path,
                args,
                ..
            } => {
                let Some((session_id, socket)) = self.session.clone() else {
                    return Err(fatal("BadRequest: Mutation before Connect"));
                };
                let job = MutationJob {
                    request_id,
                    udf_path,
                    args,
                    identity: self.identity.clone(),
                    session_id,
                    socket,
                    received: Instant::now(),
                };
                if mutations.try_send(Box::new(job)).is_err() {
                    let msg = ServerMessage::MutationResponse {
                        request_id,
                        result: Err(FunctionFailure {
                            error_message: "TooManyConcurrentMutations: too many mutations queued on this connection"
                                .into(),
                            error_data: None,
                            log_lines: Vec::new(),
                        }),
                    };
                    let _ = out
                        .send(Box::new(Message::Text(msg.to_json_string().into())))
                        .await;
                }
                Ok(())
            }
            ClientMessage::Action {
                request_id,
                udf_path,
                args,
                ..
            } => {
                if self.actions_in_flight >= MAX_ACTIONS_IN_FLIGHT {
                    let _ = actions.send(Box::new(ActionDone {
                        request_id,
                        result: Err(Error::new(
                            ErrorCode::Overloaded,
                            "TooManyConcurrentActions",
                        )),
                        log_lines: Vec::new(),
                    }));
                    return Ok(());
                }
                self.actions_in_flight += 1;
                let state = self.state.clone();
                let identity = self.identity.clone();
                let done = actions.clone();
                tokio::spawn(async move {
                    let result = async {
                        let path = protocol::canonicalize_udf_path(&udf_path)
                            .map_err(|e| Error::bad_request(e.to_string()))?;
                        let spec = state
                            .runtime
                            .resolve_public(&path, Some(FunctionKind::Action))?;
                        let args = protocol::args_object(&args)
                            .map_err(|e| Error::bad_request(e.to_string()))?;
                        let args = decode_args(serde_json::Value::Object(args.clone()))?;
                        Ok::<_, Error>((
                            path,
                            state.runtime.run_action(&spec, args, identity).await,
                        ))
                    }
                    .await;
                    let msg = match result {
                        Ok((path, out)) => {
                            if let Err(e) = &out.result {
                                log_function_error(&path, e);
                            }
                            ActionDone {
                                request_id,
                                result: out.result.map(|v| v.to_json()),
                                log_lines: out.log_lines,
                            }
                        }
                        Err(e) => ActionDone {
                            request_id,
                            result: Err(e),
                            log_lines: Vec::new(),
                        },
                    };
                    let _ = done.send(Box::new(msg));
                });
                Ok(())
            }
            ClientMessage::Event { .. } => Ok(()),
        }
    }

    /// Resolves a subscription to a shared live query.
    fn bind(&self, q: &ConnQuery) -> QueryBinding {
        let bound = (|| {
            let path = protocol::canonicalize_udf_path(&q.udf_path)
                .map_err(|e| Error::bad_request(e.to_string()))?;
            let spec = self
                .state
                .runtime
                .resolve_public(&path, Some(FunctionKind::Query))?;
            let args = decode_args(q.args.clone())?;
            let key = QueryKey {
                path,
                args: args.to_json().to_string(),
                identity: identity_key(self.identity.as_deref()),
                journal: q.journal.clone(),
            };
            let shared = self
                .state
                .live
                .get_or_create(key, spec, args, self.identity.clone());
            shared.attach(&self.wake);
            Ok::<_, Error>(shared)
        })();
        match bound {
            Ok(shared) => QueryBinding::Live(shared),
            Err(e) => QueryBinding::Broken(e),
        }
    }

    /// Finds a timestamp at which every live result is valid, refreshing
    /// stale ones; returns the results by query id.
    async fn consistent_results(&self) -> (Timestamp, HashMap<u32, Arc<QueryResult>>) {
        let subs = self.state.runtime.database().subscriptions();
        let live: Vec<(u32, Arc<SharedQuery>)> = self
            .queries
            .iter()
            .filter_map(|(id, q)| match &q.binding {
                QueryBinding::Live(s) => Some((*id, Arc::clone(s))),
                QueryBinding::Broken(_) => None,
            })
            .collect();
        for _ in 0..CONSISTENCY_ROUNDS {
            let mut target = subs
                .processed_ts()
                .max(Timestamp(self.current.ts.0))
                .max(self.min_ts);
            let mut results = HashMap::with_capacity(live.len());
            for (id, shared) in &live {
                let r = Box::pin(shared.refresh()).await;
                target = target.max(r.ts);
                results.insert(*id, r);
            }
            subs.wait_processed(target).await;
            let stale: Vec<u32> = results
                .iter()
                .filter(|(_, r)| !(r.ts <= target && r.valid_at(target)))
                .map(|(id, _)| *id)
                .collect();
            if stale.is_empty() {
                return (target, results);
            }
        }
        // Under sustained writes to these queries: run the stale ones here, in
        // one snapshot, so the Transition is consistent at that snapshot.
        metrics::counter!("connvo_transition_fallbacks_total").increment(1);
        loop {
            let snapshot = match self.state.runtime.database().snapshot().await {
                Ok(s) => s,
                Err(e) => {
                    // Storage is failing: back off instead of spinning.
                    tracing::warn!(error = %e, "sync: cannot open a snapshot for a Transition");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let target = snapshot
                .ts()
                .max(Timestamp(self.current.ts.0))
                .max(self.min_ts);
            subs.wait_processed(target).await;
            if snapshot.ts() < target {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let mut results = HashMap::with_capacity(live.len());
            for (id, shared) in &live {
                let r = Box::pin(shared.refresh()).await;
                if r.ts <= target && r.valid_at(target) {
                    results.insert(*id, r);
                    continue;
                }
                results.insert(*id, Box::pin(shared.run_at(Arc::clone(&snapshot))).await);
            }
            return (target, results);
        }
    }

    /// Computes the next Transition's frames, or `None` if nothing changed.
    async fn compute_transition(&mut self) -> Option<Vec<String>> {
        let (target, results) = self.consistent_results().await;
        let mut modifications = Vec::new();
        for (id, q) in self.queries.iter_mut() {
            match &q.binding {
                QueryBinding::Broken(e) => {
                    let hash = 1;
                    if q.last_hash != Some(hash) {
                        q.last_hash = Some(hash);
                        modifications.push(StateModification::QueryFailed {
                            query_id: *id,
                            error_message: client_message(e),
                            log_lines: Vec::new(),
                            journal: None,
                            error_data: client_error_data(e),
                        });
                    }
                }
                QueryBinding::Live(_) => {
                    let Some(r) = results.get(id) else { continue };
                    if q.last_hash == Some(r.hash) {
                        continue;
                    }
                    q.last_hash = Some(r.hash);
                    q.journal = r.journal.clone().or(q.journal.take());
                    modifications.push(match &r.outcome {
                        Ok(value) => StateModification::QueryUpdated {
                            query_id: *id,
                            value: QueryValue::Serialized(Arc::clone(value)),
                            log_lines: r.log_lines.clone(),
                            journal: r.journal.clone(),
                        },
                        Err(e) => StateModification::QueryFailed {
                            query_id: *id,
                            error_message: client_message(e),
                            log_lines: r.log_lines.clone(),
                            journal: r.journal.clone(),
                            error_data: client_error_data(e),
                        },
                    });
                }
            }
        }
        for id in self.removed.drain(..) {
            modifications.push(StateModification::QueryRemoved { query_id: id });
        }
        let end = StateVersion {
            query_set: self.received_query_set,
            identity: self.received_identity,
            ts: WireTs(target.0),
        };
        if modifications.is_empty() && !self.force_send && end == self.current {
            return None;
        }
        self.force_send = false;
        let start = self.current;
        self.current = end;
        let transition = ServerMessage::Transition {
            start_version: start,
            end_version: end,
            modifications,
            client_clock_skew: self.clock_skew,
            server_ts: Some(self.state.runtime.database().clock().now_nanos()),
        };
        metrics::counter!("connvo_transitions_total").increment(1);
        Some(transition.to_frames(self.state.config.transition_chunk_bytes))
    }
}
