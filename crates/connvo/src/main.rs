//! `connvo`: the Connvo Server binary.
//!
//! * `connvo serve` — runs the whole backend: SQLite under `--data-dir`
//!   (default `./connvo-data`) on port `--port` (default 3210), no other
//!   configuration needed; or, with `--database-url postgres://…`, one of
//!   several stateless nodes on a shared PostgreSQL schema (the commit-log
//!   tailer carries other nodes' commits to this node's subscribers).
//! * `connvo dev-token` — prints a development JWT the server on the same
//!   data dir trusts when dev auth is on.
//! * `connvo migrate --from sqlite://DIR --to postgres://…` — copies a
//!   stopped SQLite deployment into PostgreSQL ([`migrate`]).
//! * `connvo docs validate`, `connvo openapi` — the API documentation
//!   pipeline ([`docs_cli`]).
//!
//! Configuration is parsed once here (flags, or `CONNVO_*` environment
//! variables) and passed down; nothing below reads the environment.

/// mimalloc instead of glibc malloc: the server allocates many small,
/// short-lived values (documents, index keys, frames) from many threads;
/// profiled under load, glibc's `_int_malloc`/`malloc_consolidate`/`free`
/// took ~20% of server CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use database::{Database, DatabaseOptions, RandomIds, ReadCacheLimits, SystemClock};
use persistence::Persistence;
use persistence_postgres::{PostgresOptions, PostgresPersistence};
use persistence_sqlite::{SqliteOptions, SqlitePersistence};
use runtime::{Registry, Runtime, RuntimeConfig};
use server::{AppState, AuthConfig, ServerConfig};

mod docs_cli;
mod migrate;

#[derive(Parser, Debug)]
#[command(
    name = "connvo",
    version,
    about = "Connvo Server: the real-time backend for Connvo, in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (SQLite under --data-dir; no other configuration needed).
    Serve(Box<ServeArgs>),
    /// Print a development JWT (last line of stdout) signed with the data dir's dev key.
    DevToken(DevTokenArgs),
    /// API documentation: `docs validate` checks every public function's doc comment.
    #[command(subcommand)]
    Docs(docs_cli::DocsCommand),
    /// Print the OpenAPI 3.1 document of the public functions.
    Openapi(docs_cli::OpenApiArgs),
    /// Copy a stopped SQLite deployment into PostgreSQL, verified by counts and checksums.
    Migrate(migrate::MigrateArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum DevAuth {
    /// On when no auth provider is configured, off otherwise.
    Auto,
    /// Always trust dev tokens (never in production).
    On,
    /// Never trust dev tokens.
    Off,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum SqliteSync {
    /// fsync every commit group inside its `COMMIT` (durable against power
    /// loss).
    Full,
    /// As `full`, the fsync made by a thread of its own while the writer
    /// commits the next group (shorter commit tails under heavy batched
    /// ingest; results wait for the sync of commits they read). The default.
    Pipelined,
    /// fsync at checkpoints only (durable against process crashes).
    Normal,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Directory of the embedded SQLite database and the dev auth key.
    #[arg(long, env = "CONNVO_DATA_DIR", default_value = "./connvo-data")]
    data_dir: PathBuf,
    /// A PostgreSQL URL (`postgres://user:pass@host:port/db?sslmode=require`):
    /// store everything there instead of SQLite, so several nodes can serve
    /// one deployment. The data dir then only holds the dev auth key.
    #[arg(long, env = "CONNVO_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The PostgreSQL schema that holds the tables (created if missing).
    #[arg(long, env = "CONNVO_DATABASE_SCHEMA", default_value = "connvo")]
    database_schema: String,
    /// PEM file of CA certificates: requires TLS and verifies the server (verify-full).
    #[arg(long, env = "CONNVO_DATABASE_TLS_CA")]
    database_tls_ca: Option<PathBuf>,
    /// PostgreSQL connections for reads (writes use one more).
    #[arg(long, env = "CONNVO_DATABASE_POOL_SIZE", default_value_t = 16)]
    database_pool_size: usize,
    /// Port to listen on (0 picks a free port).
    #[arg(long, env = "CONNVO_PORT", default_value_t = 3210)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "CONNVO_HOST", default_value = "127.0.0.1")]
    host: String,
    /// A JWT provider: `issuer=ISS,jwks=URL_OR_FILE[,audience=AUD]` (repeatable).
    /// The env form separates providers with `;`.
    #[arg(long = "auth-provider", value_name = "SPEC")]
    auth_providers: Vec<String>,
    /// Providers from the environment, separated by `;`.
    #[arg(long, env = "CONNVO_AUTH_PROVIDERS", hide = true)]
    auth_providers_env: Option<String>,
    /// WorkOS AuthKit client id: trusts the WorkOS issuers and JWKS.
    #[arg(long, env = "WORKOS_CLIENT_ID")]
    workos_client_id: Option<String>,
    /// WorkOS API base URL (for tests against a local fake).
    #[arg(long, env = "CONNVO_WORKOS_API_BASE", default_value = auth::DEFAULT_WORKOS_API_BASE)]
    workos_api_base: String,
    /// WorkOS API key (`sk_…`): lets the server read a user's email and name
    /// from the WorkOS user API when the token carries none.
    #[arg(long, env = "WORKOS_API_KEY", hide_env_values = true)]
    workos_api_key: Option<String>,
    /// WorkOS webhook secret: enables `POST /webhooks/workos` (user and
    /// organization-membership events, `WorkOS-Signature` verified).
    #[arg(long, env = "WORKOS_WEBHOOK_SECRET", hide_env_values = true)]
    workos_webhook_secret: Option<String>,
    /// Whether dev tokens (`connvo dev-token`) are trusted.
    #[arg(long, env = "CONNVO_DEV_AUTH", value_enum, default_value_t = DevAuth::Auto)]
    dev_auth: DevAuth,
    /// Allowed browser origins for WebSocket upgrades and CORS (repeatable,
    /// or comma-separated in the env var). Empty: any origin.
    #[arg(
        long = "allowed-origin",
        env = "CONNVO_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// Most concurrent WebSocket connections.
    #[arg(long, env = "CONNVO_MAX_CONNECTIONS", default_value_t = 20_000)]
    max_connections: usize,
    /// Largest WebSocket message, in bytes.
    #[arg(long, env = "CONNVO_MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    max_message_bytes: usize,
    /// A WebSocket mutation that waited longer than this many milliseconds in
    /// its connection's queue is not run and fails with `OVERLOADED`
    /// (retryable; nothing written). 0: no limit.
    #[arg(
        long,
        env = "CONNVO_MUTATION_QUEUE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    mutation_queue_timeout_ms: u64,
    /// SQLite durability: `pipelined` fsyncs each commit group from a thread
    /// of its own while the next group is written; `full` inside the commit;
    /// `normal` survives process crashes only.
    #[arg(long, env = "CONNVO_SQLITE_SYNC", value_enum, default_value_t = SqliteSync::Pipelined)]
    sqlite_sync: SqliteSync,
    /// Memory for the engine's read caches in MiB (decoded document versions
    /// and reads shared by queries re-run at one snapshot; 0 disables them).
    /// More saves CPU with many live meetings, at this much RSS.
    #[arg(long, env = "CONNVO_READ_CACHE_MIB", default_value_t = 8)]
    read_cache_mib: usize,
    /// How long commit-log entries are kept, in seconds. Nodes follow the
    /// log to update their subscribers; one that falls further behind than
    /// this (stopped, partitioned) re-runs its live queries instead.
    #[arg(long, env = "CONNVO_COMMIT_LOG_RETENTION_SECS", default_value_t = 600)]
    commit_log_retention_secs: u64,
    /// Register the `testing/*` functions used by the test suites.
    #[arg(long, env = "CONNVO_TEST_FUNCTIONS")]
    test_functions: bool,
    /// With --test-functions: a cron `testing.cronTick` firing every this
    /// many ms, sending a `tick` message on channel `cron-tick` (tests of
    /// crons across several nodes).
    #[arg(long, hide = true, requires = "test_functions")]
    test_cron_interval_ms: Option<u64>,
    /// Log format (the filter comes from RUST_LOG, default `info`).
    #[arg(long, env = "CONNVO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(clap::Args, Debug)]
struct DevTokenArgs {
    /// The data dir of the server that should trust the token.
    #[arg(long, env = "CONNVO_DATA_DIR", default_value = "./connvo-data")]
    data_dir: PathBuf,
    /// The `sub` claim.
    #[arg(long)]
    subject: String,
    /// The `email` claim.
    #[arg(long)]
    email: Option<String>,
    /// The `name` claim.
    #[arg(long)]
    name: Option<String>,
    /// The WorkOS-style `org_id` claim.
    #[arg(long)]
    org: Option<String>,
    /// The WorkOS-style `role` claim.
    #[arg(long)]
    role: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn auth_config(args: &ServeArgs) -> anyhow::Result<AuthConfig> {
    let mut providers = Vec::new();
    for spec in &args.auth_providers {
        providers.push(
            auth::ProviderConfig::parse(spec)
                .map_err(|e| anyhow::anyhow!("--auth-provider {spec:?}: {e}"))?,
        );
    }
    if let Some(env) = &args.auth_providers_env {
        providers.extend(
            auth::parse_providers_env(env)
                .map_err(|e| anyhow::anyhow!("CONNVO_AUTH_PROVIDERS: {e}"))?,
        );
    }
    if let Some(client_id) = &args.workos_client_id {
        providers.extend(auth::workos_providers(client_id, &args.workos_api_base));
        tracing::info!(client_id = %client_id, "WorkOS AuthKit tokens are trusted");
    }
    let dev = match args.dev_auth {
        DevAuth::On => true,
        DevAuth::Off => false,
        DevAuth::Auto => providers.is_empty(),
    };
    if dev {
        let keys = auth::DevKeys::load_or_create(&args.data_dir)
            .map_err(|e| anyhow::anyhow!("dev auth key: {e}"))?;
        tracing::warn!(
            key = %keys.path().display(),
            "DEV AUTH IS ON: tokens from `connvo dev-token --data-dir {}` are trusted. Configure --auth-provider or --workos-client-id for production.",
            args.data_dir.display()
        );
        providers.push(keys.provider());
    } else {
        tracing::info!("dev auth is off: only tokens from configured providers are trusted");
    }
    if providers.is_empty() {
        tracing::warn!("no auth provider: every caller is anonymous");
        return Ok(AuthConfig { verifier: None });
    }
    for p in &providers {
        tracing::info!(issuer = %p.issuer, jwks = %p.jwks.describe(), "auth provider");
    }
    let verifier = auth::Verifier::new(providers, auth::VerifierOptions::default())
        .map_err(|e| anyhow::anyhow!("auth providers: {e}"))?;
    Ok(AuthConfig {
        verifier: Some(verifier),
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("metrics recorder: {e}"))?;
    let persistence: Arc<dyn Persistence> = match &args.database_url {
        Some(url) => {
            let options = PostgresOptions {
                schema: args.database_schema.clone(),
                tls_ca_file: args.database_tls_ca.clone(),
                read_pool_size: args.database_pool_size.max(1),
                ..PostgresOptions::default()
            };
            let store = PostgresPersistence::connect(url, options)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| {
                    format!(
                        "connecting to PostgreSQL ({}, schema {:?}); check --database-url / CONNVO_DATABASE_URL and that the server is reachable",
                        redact(url),
                        args.database_schema
                    )
                })?;
            tracing::info!(target = %store.target(), schema = %store.schema(), "PostgreSQL persistence");
            store
        }
        None => SqlitePersistence::open(
            &args.data_dir,
            SqliteOptions {
                synchronous_full: args.sqlite_sync != SqliteSync::Normal,
                pipelined_sync: args.sqlite_sync == SqliteSync::Pipelined,
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("opening the data dir {}", args.data_dir.display()))?,
    };
    let schema = Arc::new(model::schema().map_err(|e| anyhow::anyhow!("schema: {e}"))?);
    let db = Database::open(
        persistence,
        schema,
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        DatabaseOptions {
            read_cache: ReadCacheLimits::total_mib(args.read_cache_mib),
            // Only other nodes read the commit log's write sets; SQLite's
            // data directory is locked to this process.
            log_write_sets: args.database_url.is_some(),
            ..DatabaseOptions::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("opening the database: {e}"))?;
    if args.database_url.is_some() {
        // Other nodes commit to the same schema: apply their commits to this
        // node's subscriptions (5 ms while busy, backing off to 50 ms).
        db.start_commit_tailer(Duration::from_millis(5));
    }
    // The commit log exists for other nodes; keep it bounded (every node
    // prunes; a prune is one indexed DELETE, so overlapping ones are cheap).
    let retention = Duration::from_secs(args.commit_log_retention_secs);
    db.start_commit_log_pruner(
        retention,
        (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60)),
    );
    let mut registry = Registry::new();
    model::register(
        &mut registry,
        model::ModelOptions {
            test_functions: args.test_functions,
        },
    );
    if let Some(ms) = args.test_cron_interval_ms {
        registry.cron(
            "testing.cronTick",
            runtime::registry::CronSchedule::Interval(Duration::from_millis(ms.max(1))),
            "testing/messages:sendInternal",
            values::Value::object([
                ("channel".to_owned(), values::Value::from("cron-tick")),
                ("body".to_owned(), values::Value::from("tick")),
            ]),
        );
    }
    if let Some(api_key) = &args.workos_api_key {
        model::users::workos::register_api(
            &mut registry,
            model::users::workos::WorkosApi {
                api_key: api_key.clone(),
                api_base: args.workos_api_base.clone(),
            },
        );
        tracing::info!("WorkOS user API configured");
    }
    let runtime = Runtime::new(db, registry, RuntimeConfig::default());
    model::on_start(&runtime)
        .await
        .map_err(|e| anyhow::anyhow!("start-up: {e}"))?;
    let auth = auth_config(&args)?;

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let config = ServerConfig {
        max_ws_message_bytes: args.max_message_bytes,
        max_connections: args.max_connections,
        allowed_origins: args.allowed_origins.clone(),
        mutation_queue_timeout: (args.mutation_queue_timeout_ms > 0)
            .then(|| Duration::from_millis(args.mutation_queue_timeout_ms)),
        ..ServerConfig::default()
    };
    let state = AppState::new(
        runtime.clone(),
        auth,
        config,
        Some(metrics),
        shutdown_rx.clone(),
    )
    .with_webhooks(server::webhooks::WebhookConfig {
        workos: args
            .workos_webhook_secret
            .clone()
            .map(server::webhooks::WorkosWebhook::new),
    });

    let mut scheduler_shutdown = shutdown_rx.clone();
    let scheduler = tokio::spawn(runtime.clone().run_scheduler(async move {
        let _ = scheduler_shutdown.wait_for(|s| *s).await;
    }));

    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    println!("connvo listening on http://{addr}");
    tracing::info!(%addr, data_dir = %args.data_dir.display(), "serving");

    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: closing sockets and draining requests");
        let _ = shutdown_tx.send(true);
    });
    server::serve(listener, state, shutdown_rx).await?;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), scheduler).await;
    tracing::info!("stopped");
    Ok(())
}

/// `url` without its password (for error messages and logs).
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn dev_token(args: DevTokenArgs) -> anyhow::Result<()> {
    let keys = auth::DevKeys::load_or_create(&args.data_dir)
        .map_err(|e| anyhow::anyhow!("dev auth key: {e}"))?;
    let mut claims = auth::DevTokenClaims::new(args.subject);
    claims.email = args.email;
    claims.name = args.name;
    claims.org_id = args.org;
    claims.role = args.role;
    claims.ttl_secs = args.ttl_secs;
    let token = keys
        .mint(claims, now_secs())
        .map_err(|e| anyhow::anyhow!("minting: {e}"))?;
    println!("{token}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(*args))
        }
        Command::DevToken(args) => dev_token(args),
        Command::Docs(command) => {
            let code = docs_cli::docs(command)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Openapi(args) => docs_cli::openapi(args),
        Command::Migrate(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            if !rt.block_on(migrate::migrate(args))? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
