//! Shared helpers for the runtime's integration tests: a schema with the
//! runtime's system tables plus small test tables, a way to (re)open a
//! `Database` + `Runtime` on a data directory with a [`TestClock`], and
//! generic helper functions every test registry can include.
#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use database::{Database, DatabaseOptions, Document, RandomIds, Schema, TableDef, TestClock};
use errors::{Error, ErrorCode, Result};
use persistence::Persistence;
use persistence_sqlite::{SqliteOptions, SqlitePersistence};
use runtime::{FunctionDef, FunctionKind, Registry, Runtime, RuntimeConfig, Visibility};
use serde::Deserialize;
use values::{DocumentId, Value, v};

/// 2024-01-01T00:00:00Z: a round start time so cron expressions line up.
pub const T0_MS: u64 = 1_704_067_200_000;

/// The schema every test uses: the runtime's system tables plus test tables.
pub fn schema() -> Arc<Schema> {
    Arc::new(
        Schema::builder()
            .tables(runtime::system_tables())
            .table(
                TableDef::new("counters")
                    .field("name", v::string())
                    .field("value", v::number())
                    .index("by_name", &["name"]),
            )
            .table(
                TableDef::new("items")
                    .field("n", v::number())
                    .index("by_n", &["n"]),
            )
            .table(
                TableDef::new("effects")
                    .field("tag", v::string())
                    .index("by_tag", &["tag"]),
            )
            .table(
                TableDef::new("groups")
                    .field("name", v::string())
                    .field("archived", v::boolean()),
            )
            .table(
                TableDef::new("members")
                    .field("group", v::string())
                    .field("user", v::string())
                    .index("by_group_user", &["group", "user"]),
            )
            .table(
                TableDef::new("messages")
                    .field("group", v::string())
                    .field("body", v::string())
                    .index("by_group", &["group"])
                    .search_index("search_body", "body", &["group"]),
            )
            .build()
            .expect("schema builds"),
    )
}

/// Opens the SQLite store in `dir`. A previous instance on the same
/// directory releases its lock only once its committer task has noticed the
/// `Database` was dropped, so a "restart" retries for a short while.
pub async fn open_persistence(dir: &Path) -> Arc<dyn Persistence> {
    let mut last_err = None;
    for _ in 0..300 {
        match SqlitePersistence::open(dir, SqliteOptions::default()) {
            Ok(p) => return p,
            Err(e) => {
                last_err = Some(e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    panic!("could not reopen the data directory: {last_err:?}");
}

/// Opens a `Database` and a `Runtime` over `dir` with `registry`.
pub async fn open_runtime(
    dir: &Path,
    clock: &Arc<TestClock>,
    registry: Registry,
    config: RuntimeConfig,
) -> Runtime {
    let persistence = open_persistence(dir).await;
    let clock: Arc<dyn database::Clock> = Arc::clone(clock) as _;
    let db = Database::open(
        persistence,
        schema(),
        clock,
        Arc::new(RandomIds),
        DatabaseOptions::default(),
    )
    .await
    .expect("database opens");
    Runtime::new(db, registry, config)
}

/// A test environment: a temporary data directory, a test clock and a runtime.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub clock: Arc<TestClock>,
    pub rt: Runtime,
}

impl Env {
    /// A fresh environment with the default runtime config.
    pub async fn new(registry: Registry) -> Self {
        Self::with_config(registry, RuntimeConfig::default()).await
    }

    /// A fresh environment with a custom runtime config.
    pub async fn with_config(registry: Registry, config: RuntimeConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TestClock::at_ms(T0_MS);
        let rt = open_runtime(dir.path(), &clock, registry, config).await;
        Self { dir, clock, rt }
    }

    /// Simulates a server restart: drops the runtime and database (and with
    /// them every in-memory structure) and reopens the same directory with a
    /// new registry. The clock keeps its time.
    pub async fn restart(self, registry: Registry) -> Self {
        let Env { dir, clock, rt } = self;
        drop(rt);
        let rt = open_runtime(dir.path(), &clock, registry, RuntimeConfig::default()).await;
        Env { dir, clock, rt }
    }

    pub async fn query(&self, path: &str, args: serde_json::Value) -> Result<Value> {
        self.rt
            .call(FunctionKind::Query, path, json(args), None)
            .await
    }

    pub async fn mutation(&self, path: &str, args: serde_json::Value) -> Result<Value> {
        self.rt
            .call(FunctionKind::Mutation, path, json(args), None)
            .await
    }

    pub async fn action(&self, path: &str, args: serde_json::Value) -> Result<Value> {
        self.rt
            .call(FunctionKind::Action, path, json(args), None)
            .await
    }

    /// All documents of `table` (in creation order), as JSON.
    pub async fn docs(&self, table: &str) -> Vec<serde_json::Value> {
        let v = self
            .query("helpers:list", serde_json::json!({ "table": table }))
            .await
            .expect("helpers:list");
        match v.to_json() {
            serde_json::Value::Array(items) => items,
            other => panic!("helpers:list returned {other}"),
        }
    }

    /// Number of documents of `table`.
    pub async fn count(&self, table: &str) -> usize {
        self.docs(table).await.len()
    }

    /// Patches any document (system tables included) in a mutation.
    pub async fn patch(&self, table: &str, id: DocumentId, fields: serde_json::Value) {
        self.mutation(
            "helpers:patch",
            serde_json::json!({ "table": table, "id": id.encode(), "fields": fields }),
        )
        .await
        .expect("helpers:patch");
    }
}

/// Converts JSON (plain numbers, strings, objects) to a Convex value.
pub fn json(j: serde_json::Value) -> Value {
    Value::from_json(j).expect("valid Convex JSON")
}

/// Asserts that `result` failed with `code`, returning the error.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(result: Result<T>, code: ErrorCode) -> Error {
    match result {
        Ok(v) => panic!("expected a {code} error, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "unexpected error: {e}");
            e
        }
    }
}

/// Parses an id returned by a function.
#[track_caller]
pub fn id_of(v: &Value) -> DocumentId {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected an id, got {v:?}"));
    DocumentId::decode(s).unwrap_or_else(|| panic!("invalid id {s:?}"))
}

fn doc_json(d: &Document) -> Value {
    d.value().clone()
}

#[derive(Deserialize)]
struct TableArg {
    table: String,
}

#[derive(Deserialize)]
struct PatchArgs {
    table: String,
    id: String,
    fields: serde_json::Value,
}

/// Registers generic internal helpers: `helpers:list` (query) and
/// `helpers:patch` (mutation on any table, used to simulate stuck jobs).
pub fn add_helpers(registry: &mut Registry) {
    registry.register(
        FunctionDef::new("helpers:list", Visibility::Internal)
            .args(v::object([("table", v::string())]))
            .query(|ctx, a: TableArg| async move {
                let docs = ctx.db.query(&a.table).collect().await?;
                Ok(Value::Array(docs.iter().map(doc_json).collect()))
            }),
    );
    registry.register(
        FunctionDef::new("helpers:patch", Visibility::Internal)
            .args(v::object([
                ("table", v::string()),
                ("id", v::string()),
                ("fields", v::any()),
            ]))
            .mutation(|ctx, a: PatchArgs| async move {
                let id = ctx
                    .db
                    .normalize_id(&a.table, &a.id)
                    .await
                    .ok_or_else(|| Error::validation("bad id"))?;
                ctx.db.system_writer().patch(id, json(a.fields)).await?;
                Ok(Value::Null)
            }),
    );
}

/// A registry with just the helpers.
pub fn helpers_registry() -> Registry {
    let mut r = Registry::new();
    add_helpers(&mut r);
    r
}

/// Waits at most `ms` for a future, panicking on timeout.
pub async fn within<F: std::future::Future>(ms: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_millis(ms), f)
        .await
        .expect("timed out")
}
