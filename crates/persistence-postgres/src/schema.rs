//! The tables, their migrations, and the text of every statement.
//!
//! All tables live in one PostgreSQL schema (`PostgresOptions::schema`), so
//! several deployments — or one schema per test — can share a database. Every
//! statement names its tables with the quoted schema, so no `search_path` is
//! involved; [`Sql`] builds the statement texts once per store.
//!
//! # Migrations
//! `schema_migrations(version, description, applied_at)` records applied
//! versions; version *n* means the first *n* entries of [`MIGRATIONS`] ran.
//! [`migrate`] runs in one transaction under a transaction-scoped advisory
//! lock (`pg_advisory_xact_lock(MIGRATION_LOCK_CLASS, schema key)`), so
//! several nodes starting at once against a fresh database migrate exactly
//! once, and a crash mid-migration leaves the previous version (PostgreSQL
//! DDL is transactional). A schema written by a newer server is refused.
//!
//! # Tables (version 1)
//! * `documents(id bytea PK, table_num bigint, ts bigint, json text)` — the
//!   latest version of every document; `documents_by_table(table_num, id)`
//!   serves `scan_table`. `json` is `text`, not `jsonb`: the trait stores
//!   opaque strings and must return them byte for byte.
//! * `index_entries(index_id bigint, key bytea, doc_id bytea,
//!   PK(index_id, key))` — `bytea` compares with `memcmp` and then by length,
//!   exactly the trait's bytewise order, independent of collations.
//! * `commit_log(ts bigint PK, log bytea)` — the engine's write sets.
//! * `globals(name text PK, value bigint)` — `max_ts`, the newest committed
//!   timestamp.
//! * `index_meta(index_id bigint PK, table_num bigint, signature text)`.
//!
//! Table numbers and index ids are `u32` in the API and `bigint` here (no
//! sign games with `integer`). Timestamps are `u64` in the API and `bigint`
//! here; timestamps of 2^63 and above are refused.
//!
//! B-tree entries are limited to about 2.7 KB, so an index key longer than
//! that cannot be stored (the write fails with PostgreSQL's "index row size
//! exceeds maximum" error).

use errors::{Error, Result};
use tokio_postgres::Client;

use crate::conn::PgContext;

/// First key of the advisory lock that serializes write transactions (the
/// second is [`schema_lock_key`]). "Cnvo".
pub(crate) const WRITE_LOCK_CLASS: i32 = 0x436e_766f;

/// First key of the advisory lock that serializes migrations. "CnvM".
pub(crate) const MIGRATION_LOCK_CLASS: i32 = 0x436e_764d;

/// The placeholder migration scripts use for the quoted schema name.
const SCHEMA_PLACEHOLDER: &str = "{schema}";

/// Migration scripts with a description; entry *i* upgrades version *i* to
/// *i + 1*.
const MIGRATIONS: &[(&str, &str)] = &[(
    "initial schema",
    "CREATE TABLE {schema}.documents (
         id        bytea  NOT NULL PRIMARY KEY,
         table_num bigint NOT NULL,
         ts        bigint NOT NULL,
         json      text   NOT NULL
     );
     CREATE INDEX documents_by_table ON {schema}.documents (table_num, id);
     CREATE TABLE {schema}.index_entries (
         index_id bigint NOT NULL,
         key      bytea  NOT NULL,
         doc_id   bytea  NOT NULL,
         PRIMARY KEY (index_id, key)
     );
     CREATE TABLE {schema}.commit_log (
         ts  bigint NOT NULL PRIMARY KEY,
         log bytea  NOT NULL
     );
     CREATE TABLE {schema}.globals (
         name  text   NOT NULL PRIMARY KEY,
         value bigint NOT NULL
     );
     INSERT INTO {schema}.globals (name, value) VALUES ('max_ts', 0);
     CREATE TABLE {schema}.index_meta (
         index_id  bigint NOT NULL PRIMARY KEY,
         table_num bigint NOT NULL,
         signature text   NOT NULL
     );",
)];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Checks a schema name: 1 to 63 bytes (PostgreSQL silently truncates longer
/// identifiers), no NUL.
pub(crate) fn validate_schema_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(Error::internal(format!(
            "postgres: invalid schema name {name:?} (1 to 63 bytes, no NUL)"
        )));
    }
    Ok(())
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The second advisory-lock key of a schema: 32-bit FNV-1a of its name. It
/// must be the same in every build of every node (so not `std`'s hasher); a
/// collision between two schemas of one database only makes them share a
/// write lock.
pub(crate) fn schema_lock_key(schema: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in schema.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// Settings of write transactions that end up in [`Sql::begin_write`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteSettings {
    /// `synchronous_commit` of write transactions.
    pub(crate) synchronous_commit: bool,
    /// `lock_timeout` in milliseconds (0: wait forever).
    pub(crate) lock_timeout_ms: u32,
    /// `idle_in_transaction_session_timeout` in milliseconds (0: none).
    pub(crate) idle_timeout_ms: u32,
}

/// Every statement of the backend, with the schema filled in.
#[derive(Debug)]
pub(crate) struct Sql {
    /// The unquoted schema name.
    pub(crate) schema: String,
    /// Simple query: opens a snapshot and returns `max_ts`.
    pub(crate) begin_snapshot: String,
    /// Simple query: opens a write transaction, takes the write lock and
    /// returns `max_ts`.
    pub(crate) begin_write: String,
    pub(crate) max_ts: String,
    pub(crate) get: String,
    pub(crate) scan_asc_bounded: String,
    pub(crate) scan_desc_bounded: String,
    pub(crate) scan_asc_unbounded: String,
    pub(crate) scan_desc_unbounded: String,
    pub(crate) scan_table_from_start: String,
    pub(crate) scan_table_after: String,
    pub(crate) commits_after: String,
    pub(crate) index_meta: String,
    /// Applies a batch of merged records in one statement (see `write`).
    pub(crate) write_batch: String,
    pub(crate) clear_index: String,
    pub(crate) put_index_meta: String,
    pub(crate) delete_index_meta: String,
    /// The commit log's floor (0 before the first prune).
    pub(crate) log_floor: String,
    pub(crate) prune_log: String,
    pub(crate) prune_log_all: String,
}

impl Sql {
    /// The statements for `schema` (already validated).
    pub(crate) fn new(schema: &str, write: WriteSettings) -> Self {
        let s = quote_ident(schema);
        let max_ts = format!("SELECT value FROM {s}.globals WHERE name = 'max_ts'");
        let scan = |order: &str, bounded: bool| {
            let (end, limit) = if bounded {
                ("AND e.key < $3 ", "$4")
            } else {
                ("", "$3")
            };
            format!(
                "SELECT e.key, d.id, d.table_num, d.ts, d.json \
                 FROM {s}.index_entries AS e JOIN {s}.documents AS d ON d.id = e.doc_id \
                 WHERE e.index_id = $1 AND e.key >= $2 {end}\
                 ORDER BY e.key {order} LIMIT {limit}"
            )
        };
        let synchronous_commit = if write.synchronous_commit {
            "on"
        } else {
            "off"
        };
        Self {
            schema: schema.to_owned(),
            begin_snapshot: format!(
                "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; {max_ts}"
            ),
            begin_write: format!(
                "START TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE; \
                 SET LOCAL synchronous_commit = {synchronous_commit}; \
                 SET LOCAL lock_timeout = {}; \
                 SET LOCAL idle_in_transaction_session_timeout = {}; \
                 SELECT pg_advisory_xact_lock({WRITE_LOCK_CLASS}, {}); \
                 {max_ts}",
                write.lock_timeout_ms,
                write.idle_timeout_ms,
                schema_lock_key(schema)
            ),
            get: format!("SELECT id, table_num, ts, json FROM {s}.documents WHERE id = $1"),
            scan_asc_bounded: scan("ASC", true),
            scan_desc_bounded: scan("DESC", true),
            scan_asc_unbounded: scan("ASC", false),
            scan_desc_unbounded: scan("DESC", false),
            scan_table_from_start: format!(
                "SELECT id, table_num, ts, json FROM {s}.documents \
                 WHERE table_num = $1 ORDER BY id LIMIT $2"
            ),
            scan_table_after: format!(
                "SELECT id, table_num, ts, json FROM {s}.documents \
                 WHERE table_num = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            commits_after: format!(
                "SELECT ts, log FROM {s}.commit_log WHERE ts > $1 ORDER BY ts LIMIT $2"
            ),
            index_meta: format!(
                "SELECT index_id, table_num, signature FROM {s}.index_meta ORDER BY index_id"
            ),
            // Data-modifying CTEs run against one snapshot in an unspecified
            // order, so the caller merges the records first: every document
            // id and every (index, key) appears at most once, in either the
            // delete or the upsert list.
            write_batch: format!(
                "WITH \
                 del_docs AS (DELETE FROM {s}.documents WHERE id = ANY($1::bytea[])), \
                 put_docs AS (INSERT INTO {s}.documents (id, table_num, ts, json) \
                   SELECT * FROM UNNEST($2::bytea[], $3::int8[], $4::int8[], $5::text[]) \
                   ON CONFLICT (id) DO UPDATE SET table_num = EXCLUDED.table_num, \
                   ts = EXCLUDED.ts, json = EXCLUDED.json), \
                 del_entries AS (DELETE FROM {s}.index_entries AS e \
                   USING UNNEST($6::int8[], $7::bytea[]) AS d(index_id, key) \
                   WHERE e.index_id = d.index_id AND e.key = d.key), \
                 put_entries AS (INSERT INTO {s}.index_entries (index_id, key, doc_id) \
                   SELECT * FROM UNNEST($8::int8[], $9::bytea[], $10::bytea[]) \
                   ON CONFLICT (index_id, key) DO UPDATE SET doc_id = EXCLUDED.doc_id), \
                 put_log AS (INSERT INTO {s}.commit_log (ts, log) \
                   SELECT * FROM UNNEST($11::int8[], $12::bytea[])) \
                 UPDATE {s}.globals SET value = $13::int8 WHERE name = 'max_ts'"
            ),
            clear_index: format!("DELETE FROM {s}.index_entries WHERE index_id = $1"),
            delete_index_meta: format!("DELETE FROM {s}.index_meta WHERE index_id = $1"),
            put_index_meta: format!(
                "INSERT INTO {s}.index_meta (index_id, table_num, signature) VALUES ($1, $2, $3) \
                 ON CONFLICT (index_id) DO UPDATE SET \
                 table_num = EXCLUDED.table_num, signature = EXCLUDED.signature"
            ),
            // The floor (a `globals` row, absent until the first prune, so
            // no migration) rises in the same statement as the delete.
            prune_log: format!(
                "WITH floor AS (INSERT INTO {s}.globals (name, value) VALUES ('log_floor', $1) \
                   ON CONFLICT (name) DO UPDATE SET \
                   value = GREATEST({s}.globals.value, EXCLUDED.value)) \
                 DELETE FROM {s}.commit_log WHERE ts < $1"
            ),
            prune_log_all: format!(
                "WITH floor AS (INSERT INTO {s}.globals (name, value) \
                   VALUES ('log_floor', 9223372036854775807) \
                   ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value) \
                 DELETE FROM {s}.commit_log"
            ),
            log_floor: format!(
                "SELECT coalesce(max(value), 0) FROM {s}.globals WHERE name = 'log_floor'"
            ),
            max_ts,
        }
    }
}

/// Creates the schema if missing and applies every pending migration, in one
/// transaction under the migration lock. Returns the version found before.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<i32> {
    let quoted = quote_ident(schema);
    let context = |what: &str| format!("migrate schema {schema:?}: {what}");
    let tx = client
        .transaction()
        .await
        .context(&context("begin transaction"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK_CLASS, &schema_lock_key(schema)],
    )
    .await
    .context(&context("take the migration lock"))?;
    // Check before creating: `CREATE SCHEMA IF NOT EXISTS` needs the CREATE
    // privilege on the database even when the schema exists.
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await
        .and_then(|row| row.try_get(0))
        .context(&context("look up the schema"))?;
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA {quoted}"))
            .await
            .context(&context("create the schema"))?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
             version     integer     NOT NULL PRIMARY KEY,
             description text        NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         )"
    ))
    .await
    .context(&context("create schema_migrations"))?;
    let found: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {quoted}.schema_migrations"),
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .context(&context("read the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(Error::internal(format!(
            "postgres: schema {schema:?} has version {found}, but this server only knows \
             versions up to {SCHEMA_VERSION}; it was written by a newer Connvo server"
        )));
    }
    let already = usize::try_from(found)
        .map_err(|_| Error::internal(format!("postgres: invalid schema version {found}")))?;
    let mut version = found;
    for (description, script) in MIGRATIONS.iter().skip(already) {
        version += 1;
        tx.batch_execute(&script.replace(SCHEMA_PLACEHOLDER, &quoted))
            .await
            .context(&context(&format!(
                "apply version {version} ({description}); does the schema hold tables \
                 that are not Connvo's?"
            )))?;
        tx.execute(
            &format!(
                "INSERT INTO {quoted}.schema_migrations (version, description) VALUES ($1, $2)"
            ),
            &[&version, description],
        )
        .await
        .context(&context("record the version"))?;
    }
    tx.commit().await.context(&context("commit"))?;
    if version != found {
        tracing::info!(
            schema,
            from = found,
            to = version,
            "postgres schema migrated"
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("connvo"), "\"connvo\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert!(validate_schema_name("connvo").is_ok());
        assert!(validate_schema_name("").is_err());
        assert!(validate_schema_name(&"x".repeat(64)).is_err());
        assert!(validate_schema_name("a\0b").is_err());
    }

    #[test]
    fn lock_key_is_stable() {
        // FNV-1a test vectors: "" and "a".
        assert_eq!(schema_lock_key(""), 0x811c_9dc5_u32 as i32);
        assert_eq!(schema_lock_key("a"), 0xe40c_292c_u32 as i32);
        assert_ne!(schema_lock_key("connvo"), schema_lock_key("connvo2"));
    }

    #[test]
    fn statements_name_the_quoted_schema() {
        let sql = Sql::new(
            "my \"s\"",
            WriteSettings {
                synchronous_commit: true,
                lock_timeout_ms: 1000,
                idle_timeout_ms: 0,
            },
        );
        assert!(sql.get.contains("\"my \"\"s\"\"\".documents"));
        assert!(sql.begin_write.contains("synchronous_commit = on"));
        assert!(sql.begin_write.contains("lock_timeout = 1000;"));
        assert!(
            sql.scan_desc_bounded
                .contains("e.key < $3 ORDER BY e.key DESC LIMIT $4")
        );
        assert!(
            sql.scan_asc_unbounded
                .contains("e.key >= $2 ORDER BY e.key ASC LIMIT $3")
        );
    }
}
