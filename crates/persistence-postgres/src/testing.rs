//! Test support (feature `testing`): a fresh PostgreSQL schema per test,
//! dropped afterwards.
//!
//! Tests connect to [`url`] — `CONNVO_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`. Each [`TestSchema`] has a unique
//! name, which is also the `application_name` of its connections; dropping
//! it terminates those connections (so nothing holds a lock on the schema,
//! even if the test's runtime is already gone) and runs `DROP SCHEMA …
//! CASCADE` on a helper thread.
//!
//! When PostgreSQL cannot be reached, [`unavailable`] decides: with `CI` set
//! (to anything but `false` or `0`) the test fails; otherwise it prints a
//! loud banner and ends the test process successfully, which skips every
//! PostgreSQL test of that test binary (a test cannot skip itself from inside
//! a factory).
//!
//! ```ignore
//! // tests/conformance.rs
//! persistence::run_conformance_suite!(persistence_postgres::testing::fresh_store);
//! ```

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use errors::{Error, Result};
use persistence::Persistence;

use crate::connect::Endpoint;
use crate::schema::quote_ident;
use crate::{PostgresOptions, PostgresPersistence};

/// The environment variable naming the test database.
pub const URL_ENV: &str = "CONNVO_TEST_POSTGRES_URL";

/// The test database when [`URL_ENV`] is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test database URL.
pub fn url() -> String {
    std::env::var(URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// Whether the tests run in CI (`CI` set to anything but empty, `false` or
/// `0`), where an unreachable database must fail the run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
    })
}

/// Reacts to an unreachable test database: panics in CI, otherwise prints a
/// banner and exits the test process with success (skipping the binary).
pub fn unavailable(error: &Error) -> ! {
    let message = format!(
        "PostgreSQL is not available for tests ({URL_ENV}={}): {error}",
        url()
    );
    if in_ci() {
        panic!("{message}\nCI is set, so PostgreSQL tests fail instead of being skipped.");
    }
    let banner = "!".repeat(78);
    // Straight to stderr: the test harness captures `eprintln!` output.
    let _ = writeln!(
        std::io::stderr(),
        "\n{banner}\nSKIPPING every PostgreSQL test of this test binary.\n{message}\n\
         Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main \
         start`, or point {URL_ENV} at a server. With CI=true these tests fail instead.\n\
         {banner}\n"
    );
    std::process::exit(0)
}

/// A uniquely named schema for one test, dropped (with every connection of
/// its stores) when this value drops.
#[derive(Debug)]
pub struct TestSchema {
    url: String,
    name: String,
    /// Set once a store connected, i.e. once there may be something to drop.
    used: AtomicBool,
}

impl Default for TestSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSchema {
    /// A new schema name on [`url`] (nothing is created until a store
    /// connects).
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self {
            url: url(),
            name: format!("connvo_test_{}_{nanos:x}_{n}", std::process::id()),
            used: AtomicBool::new(false),
        }
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema name (also the `application_name` of its connections; a
    /// store given another `application_name` that starts with this name is
    /// cleaned up too).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Options for a store on this schema: small pools and a short connect
    /// timeout.
    pub fn options(&self) -> PostgresOptions {
        PostgresOptions {
            schema: self.name.clone(),
            application_name: self.name.clone(),
            read_pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            ..PostgresOptions::default()
        }
    }

    /// Connects a store with [`Self::options`] changed by `adjust`; calls
    /// [`unavailable`] if that fails.
    pub async fn connect_with(
        &self,
        adjust: impl FnOnce(&mut PostgresOptions),
    ) -> Arc<PostgresPersistence> {
        let mut options = self.options();
        adjust(&mut options);
        self.used.store(true, Ordering::Release);
        match PostgresPersistence::connect(&self.url, options).await {
            Ok(store) => store,
            Err(e) => unavailable(&e),
        }
    }

    /// Connects a store with [`Self::options`]; calls [`unavailable`] if that
    /// fails.
    pub async fn connect(&self) -> Arc<PostgresPersistence> {
        self.connect_with(|_| {}).await
    }

    /// An administrative connection to the test database (its driver task
    /// runs on the current runtime).
    pub async fn admin(&self) -> Result<tokio_postgres::Client> {
        admin_client(&self.url).await
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if !self.used.load(Ordering::Acquire) {
            return;
        }
        let url = self.url.clone();
        let name = self.name.clone();
        // A thread with its own runtime: the test's runtime may be shutting
        // down, or blocked in this very drop.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::internal(format!("runtime: {e}")))?;
            runtime.block_on(drop_schema(&url, &name))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test schema {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test schema {} panicked", self.name),
        }
    }
}

/// Terminates the connections whose `application_name` starts with `schema`
/// and drops the schema.
async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    let client = admin_client(url).await?;
    client
        .execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE left(application_name, length($1)) = $1 AND pid <> pg_backend_pid()",
            &[&schema],
        )
        .await
        .map_err(|e| Error::internal(format!("terminate test connections: {e}")))?;
    client
        .batch_execute(&format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(schema)
        ))
        .await
        .map_err(|e| Error::internal(format!("drop schema: {}", crate::conn::describe(&e))))
}

/// An administrative connection to `url` (TLS as the URL says; its driver
/// task runs on the current runtime).
pub async fn admin_client(url: &str) -> Result<tokio_postgres::Client> {
    let options = PostgresOptions {
        application_name: "connvo-test-admin".to_owned(),
        connect_timeout: Duration::from_secs(5),
        ..PostgresOptions::default()
    };
    Endpoint::new(url, &options)?.connect_client().await
}

/// A fresh, empty store in its own schema, dropped with the store: the
/// factory for `persistence::run_conformance_suite!`.
pub async fn fresh_store() -> Arc<dyn Persistence> {
    let schema = TestSchema::new();
    let store = schema.connect().await;
    persistence::testing::with_guard(store, schema)
}
