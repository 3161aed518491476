//! Connvo's transport layer: the only crate that knows HTTP and WebSockets.
//!
//! * [`http`] — the Convex HTTP API (`/api/query|mutation|action`,
//!   `/api/run/{path}`, `/api/query_batch`), health and metrics;
//! * [`sync`] — the WebSocket sync protocol, one worker per socket;
//! * [`live`] — live queries shared by every socket that subscribes to the
//!   same (function, arguments, identity, journal);
//! * [`docs`] — `GET /openapi.json` and `GET /docs`, the API reference;
//! * [`calls`] — argument parsing and error mapping shared by both
//!   transports (errors are mapped to the wire exactly once, here).
//!
//! [`router`] builds the axum router from an [`AppState`]; [`serve`] runs it
//! with graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use runtime::Runtime;
use tokio::sync::{Semaphore, watch};

pub mod calls;
pub mod docs;
pub mod http;
pub mod live;
pub mod sync;
pub mod webhooks;

/// Transport limits and options.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest WebSocket message or frame, in bytes (1 MiB).
    pub max_ws_message_bytes: usize,
    /// Largest HTTP request body, in bytes.
    pub max_http_body_bytes: usize,
    /// Most WebSocket connections at once.
    pub max_connections: usize,
    /// Allowed `Origin`s for WebSocket upgrades and CORS (empty: any).
    pub allowed_origins: Vec<String>,
    /// Per-connection outgoing buffer: most transitions queued unsent.
    pub max_queued_transitions: usize,
    /// Send an application `Ping` after this long without output.
    pub ping_interval: Duration,
    /// Close a socket that sent nothing for this long.
    pub client_timeout: Duration,
    /// Transitions larger than this are split into `TransitionChunk`s.
    pub transition_chunk_bytes: usize,
    /// A WebSocket mutation that waited longer than this in its connection's
    /// queue is not run: it fails with `OVERLOADED` (retryable, nothing
    /// written), so an overloaded server sheds work instead of queueing it
    /// without bound. `None`: wait as long as it takes.
    pub mutation_queue_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_ws_message_bytes: 1 << 20,
            max_http_body_bytes: 16 << 20,
            max_connections: 20_000,
            allowed_origins: Vec::new(),
            max_queued_transitions: 2,
            ping_interval: Duration::from_secs(15),
            client_timeout: Duration::from_secs(120),
            transition_chunk_bytes: 5_000_000,
            mutation_queue_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// Where identities come from.
#[derive(Clone)]
pub struct AuthConfig {
    /// Verifies bearer tokens (providers and/or dev keys); `None` accepts no token.
    pub verifier: Option<auth::Verifier>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.verifier.is_some())
            .finish()
    }
}

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The function runtime.
    pub runtime: Runtime,
    /// Auth.
    pub auth: AuthConfig,
    /// Limits.
    pub config: Arc<ServerConfig>,
    /// Live queries shared across sockets.
    pub live: Arc<live::LiveQueries>,
    /// Prometheus renderer for `/metrics`.
    pub metrics: Option<PrometheusHandle>,
    /// Connection slots.
    pub connections: Arc<Semaphore>,
    /// Becomes `true` when the server is shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Inbound webhooks (none configured by default).
    pub webhooks: Arc<webhooks::WebhookConfig>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(
        runtime: Runtime,
        auth: AuthConfig,
        config: ServerConfig,
        metrics: Option<PrometheusHandle>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let live = live::LiveQueries::new(runtime.clone());
        Self {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            runtime,
            auth,
            config: Arc::new(config),
            live,
            metrics,
            shutdown,
            webhooks: Arc::default(),
        }
    }

    /// Configures the inbound webhooks.
    pub fn with_webhooks(mut self, webhooks: webhooks::WebhookConfig) -> Self {
        self.webhooks = Arc::new(webhooks);
        self
    }
}

/// The router: HTTP API, WebSocket sync, health and metrics.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_http_body_bytes;
    Router::new()
        .route("/", get(http::root))
        .route("/health", get(http::health))
        .route("/metrics", get(http::metrics))
        .route("/api/query", post(http::query).get(http::query_get))
        .route("/api/mutation", post(http::mutation))
        .route("/api/action", post(http::action))
        .route("/api/query_batch", post(http::query_batch))
        .route("/api/query_ts", post(http::query_ts))
        .route("/api/run/{*path}", post(http::run))
        .route("/api/sync", any(sync::upgrade))
        .route("/api/{version}/sync", any(sync::upgrade))
        .route("/openapi.json", get(docs::openapi_json))
        .route("/docs", get(docs::reference))
        .route("/webhooks/workos", post(webhooks::workos))
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(http::cors_layer(&state.config.allowed_origins))
        .with_state(state)
}

/// Raises the soft open-file limit (`ulimit -n`) to the hard limit: every
/// WebSocket is a file descriptor, and the common soft default of 1,024
/// would refuse connections long before `max_connections`. Logs the limit,
/// and warns when even the hard limit is below `max_connections`.
pub fn raise_fd_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let needed = max_connections as u64 + 256;
            if limit < needed {
                tracing::warn!(
                    limit,
                    max_connections,
                    "the open-file limit is below --max-connections: raise the hard limit (ulimit -Hn / LimitNOFILE)"
                );
            } else {
                tracing::info!(limit, "open-file limit");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// Serves until `shutdown` flips to `true`, then closes sockets with a
/// reason clients reconnect after, and drains requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let max_connections = state.config.max_connections;
    raise_fd_limit(max_connections);
    // Clients given a deployment URL with a trailing slash request
    // `//api/...`; normalise before routing.
    let connections = Arc::clone(&state.connections);
    let app = tower::ServiceBuilder::new()
        .map_request(http::normalize_double_slash)
        .service(router(state));
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
    // Sync frames are small and latency-bound: without TCP_NODELAY, Nagle's
    // algorithm holds a frame while an earlier one is unacknowledged, and
    // the peer's delayed ACK turns that into ~40 ms delivery spikes
    // (measured with `connvo-bench load`: delivery p95 44 ms at 250 commits/s).
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await?;
    // axum's graceful shutdown does not track upgraded (WebSocket)
    // connections: wait until every socket task has sent its close frame
    // and returned its connection slot, for at most 10 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while connections.available_permits() < max_connections
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
