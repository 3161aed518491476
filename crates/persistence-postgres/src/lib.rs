//! The PostgreSQL backend of Connvo Server's [`Persistence`] trait.
//!
//! Several stateless `connvo serve` nodes can share one PostgreSQL database:
//! the data lives in ordinary tables of one schema, the global write lock is
//! a PostgreSQL advisory lock, and the commit log is a table other nodes
//! tail. Built on `tokio-postgres` with `deadpool-postgres` pools (not
//! `sqlx`, whose SQLite driver would pull a second, conflicting
//! `libsqlite3-sys` next to the SQLite backend's `rusqlite`).
//!
//! # Architecture
//! * **Connecting.** [`PostgresPersistence::connect`] parses the URL, sets
//!   up TLS (`tls`), builds the pools, opens one connection — failing with a
//!   message naming host, port, database and user, within the connect
//!   timeout, when the server is unreachable — and applies the schema
//!   migrations (`schema`).
//! * **Snapshots** (`snapshot`): a pooled connection in a `REPEATABLE READ,
//!   READ ONLY` transaction whose first statement reads `max_ts`.
//! * **Writes** (`write`): the write pool's single connection is the
//!   node-local lock; `pg_advisory_xact_lock` is the cross-node lock. Records
//!   are merged and sent as one batched statement pipelined with `COMMIT`, so
//!   a group commit is two round trips whatever its size. Commits are
//!   durable when they return (`synchronous_commit = on` by default).
//! * **Store-level reads** ([`Persistence::latest_ts`],
//!   [`Persistence::commits_after`], …) run in autocommit on the read pool.
//! * **Multi-node.** Commit order equals timestamp order equals visibility
//!   order (the lock is released only after the commit is visible), so
//!   another node tailing `commits_after(last_seen)` never skips a commit.
//!   Nothing NOTIFYs: tailing is up to the engine.
//!
//! # Operating notes
//! * **TLS** follows the URL's `sslmode` with libpq's meaning, so the
//!   default `prefer` encrypts whenever the server has `ssl = on` — also on
//!   loopback, where it roughly doubles the cost of a snapshot. Use
//!   `sslmode=disable` on loopback and trusted networks, `sslmode=require`
//!   plus [`PostgresOptions::tls_ca_file`] elsewhere.
//! * **Limits**: timestamps below 2^63; an index key (or document id) must
//!   fit a B-tree entry, about 2.7 KB after compression; document JSON must
//!   not contain a raw NUL character (PostgreSQL `text` cannot hold one).
//!   Violations fail the write transaction with an error, never a panic.
//! * **Server**: PostgreSQL 9.6 or newer; the test support needs 14+.
//!   Connections: `read_pool_size + 1` per node.
//!
//! Modules: `connect` (URL, pools), `tls` (rustls), `conn` (conversions,
//! error context, the rollback-on-drop connection guard), `schema` (tables,
//! migrations, statement texts), `read` (read queries), `snapshot`, `write`,
//! and `testing` (feature `testing`: a fresh schema per test).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use errors::{Error, Result};
use persistence::{CommitLogEntry, IndexMeta, Persistence, Snapshot, Timestamp, WriteTxn};

mod conn;
mod connect;
mod read;
mod schema;
mod snapshot;
mod tls;
mod write;

#[cfg(feature = "testing")]
pub mod testing;

pub use schema::SCHEMA_VERSION;

use crate::conn::{PgContext, checkout};
use crate::connect::Endpoint;
use crate::schema::{Sql, WriteSettings};
use crate::snapshot::PgSnapshot;
use crate::write::PgWriteTxn;

/// Settings of [`PostgresPersistence`]. The URL carries host, port, user,
/// password, database and `sslmode`; these are the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The PostgreSQL schema that holds every table; created (with the
    /// tables) if missing. Default `connvo`.
    pub schema: String,
    /// Connections for snapshots and store-level reads (at least 1): how many
    /// snapshots can be open at once. Writes use one more connection of their
    /// own. Default 16.
    pub read_pool_size: usize,
    /// How long establishing one connection (TCP, TLS, authentication) may
    /// take, unless the URL sets `connect_timeout`. Default 10 s.
    pub connect_timeout: Duration,
    /// `application_name` reported to the server (visible in
    /// `pg_stat_activity`), unless the URL sets one. Default `connvo`.
    pub application_name: String,
    /// A PEM file of CA certificates. When set, TLS is required and the
    /// server certificate must chain to one of them and match the URL's host
    /// name (libpq's `verify-full`). When unset, `sslmode=require` encrypts
    /// without authenticating the server. Default `None`.
    pub tls_ca_file: Option<PathBuf>,
    /// `synchronous_commit` of write transactions: `true` (the default) makes
    /// a commit durable — WAL flushed — before [`WriteTxn::commit`] returns,
    /// whatever the server's default. `false` trades the last few hundred
    /// milliseconds of commits on a database crash for throughput.
    pub synchronous_commit: bool,
    /// How long [`Persistence::begin_write`] waits for the write lock while
    /// another node holds it before failing with `TIMEOUT` (`lock_timeout`;
    /// zero waits forever). Default 30 s.
    pub write_lock_timeout: Duration,
    /// A write transaction idle for longer than this is aborted by the server
    /// (`idle_in_transaction_session_timeout`), which releases the write lock
    /// of a node that hangs or is cut off while holding it. Zero disables it.
    /// Default 60 s.
    pub write_idle_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "connvo".to_owned(),
            read_pool_size: 16,
            connect_timeout: Duration::from_secs(10),
            application_name: "connvo".to_owned(),
            tls_ca_file: None,
            synchronous_commit: true,
            write_lock_timeout: Duration::from_secs(30),
            write_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A [`Persistence`] backed by one schema of a PostgreSQL database.
pub struct PostgresPersistence {
    read_pool: Pool,
    /// Exactly one connection: holding it is the node-local write lock.
    write_pool: Pool,
    sql: Arc<Sql>,
    endpoint: Endpoint,
    options: PostgresOptions,
}

impl fmt::Debug for PostgresPersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresPersistence")
            .field("target", &self.endpoint.target)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl PostgresPersistence {
    /// Connects to the database at `url` (`postgres://user[:password]@host
    /// [:port]/database[?sslmode=disable|prefer|require]`, or a libpq
    /// key-value string), creates the schema if missing and applies pending
    /// migrations.
    ///
    /// Fails — naming host, port, database and user, after at most the
    /// connect timeout — when the server cannot be reached or refuses the
    /// login; fails when the schema was written by a newer server.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Arc<Self>> {
        if options.read_pool_size == 0 {
            return Err(Error::internal(
                "postgres: read_pool_size must be at least 1",
            ));
        }
        schema::validate_schema_name(&options.schema)?;
        let endpoint = Endpoint::new(url, &options)?;
        let read_pool = endpoint.pool(options.read_pool_size)?;
        let write_pool = endpoint.pool(1)?;
        {
            // The first connection: where an unreachable server shows up.
            let mut first = checkout(&write_pool, &endpoint).await?;
            schema::migrate(&mut first, &options.schema).await?;
        }
        let sql = Arc::new(Sql::new(
            &options.schema,
            WriteSettings {
                synchronous_commit: options.synchronous_commit,
                lock_timeout_ms: setting_ms(options.write_lock_timeout),
                idle_timeout_ms: setting_ms(options.write_idle_timeout),
            },
        ));
        tracing::debug!(target = %endpoint.target, schema = %options.schema, "postgres store connected");
        Ok(Arc::new(Self {
            read_pool,
            write_pool,
            sql,
            endpoint,
            options,
        }))
    }

    /// The server, database and user connected to (no password), as used in
    /// error messages: `host:port (database "…", user "…")`.
    pub fn target(&self) -> &str {
        &self.endpoint.target
    }

    /// The PostgreSQL schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.options.schema
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &PostgresOptions {
        &self.options
    }
}

/// A duration as a PostgreSQL millisecond setting (an `int`: at most about
/// 24.8 days).
fn setting_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis().min(i32::MAX as u128)).unwrap_or(i32::MAX as u32)
}

#[async_trait]
impl Persistence for PostgresPersistence {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn snapshot(&self) -> Result<Arc<dyn Snapshot>> {
        Ok(Arc::new(
            PgSnapshot::open(&self.read_pool, &self.endpoint, &self.sql).await?,
        ))
    }

    async fn begin_write(&self) -> Result<Box<dyn WriteTxn>> {
        Ok(Box::new(
            PgWriteTxn::begin(&self.write_pool, &self.endpoint, &self.sql).await?,
        ))
    }

    async fn latest_ts(&self) -> Result<Timestamp> {
        let client = checkout(&self.read_pool, &self.endpoint).await?;
        read::max_ts(&client, &self.sql).await
    }

    async fn commits_after(&self, after: Timestamp, limit: usize) -> Result<Vec<CommitLogEntry>> {
        let client = checkout(&self.read_pool, &self.endpoint).await?;
        read::commits_after(&client, &self.sql, after, limit).await
    }

    /// Runs as its own autocommit `DELETE`, without the write lock: it never
    /// touches rows a concurrent commit writes.
    async fn prune_commit_log(&self, before: Timestamp) -> Result<u64> {
        let client = checkout(&self.read_pool, &self.endpoint).await?;
        let (text, params): (&str, Option<i64>) = match i64::try_from(before.0) {
            Ok(before) => (&self.sql.prune_log, Some(before)),
            // Every stored timestamp is below 2^63.
            Err(_) => (&self.sql.prune_log_all, None),
        };
        let stmt = client.prepare_cached(text).await.context("prepare prune")?;
        match params {
            Some(before) => client.execute(&stmt, &[&before]).await,
            None => client.execute(&stmt, &[]).await,
        }
        .context("prune commit log")
    }

    async fn commit_log_floor(&self) -> Result<Timestamp> {
        let client = checkout(&self.read_pool, &self.endpoint).await?;
        let stmt = client
            .prepare_cached(&self.sql.log_floor)
            .await
            .context("prepare log_floor")?;
        let row = client
            .query_one(&stmt, &[])
            .await
            .context("read log_floor")?;
        let value: i64 = row.try_get(0).context("decode log_floor")?;
        u64::try_from(value)
            .map(Timestamp)
            .map_err(|_| Error::internal(format!("postgres: negative commit-log floor {value}")))
    }

    async fn index_metadata(&self) -> Result<Vec<IndexMeta>> {
        let client = checkout(&self.read_pool, &self.endpoint).await?;
        read::index_metadata(&client, &self.sql).await
    }
}
