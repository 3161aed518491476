//! The on-disk schema and its migrations.
//!
//! The schema version lives in `PRAGMA user_version`: 0 is an empty file,
//! version *n* means the first *n* entries of [`MIGRATIONS`] have run. Each
//! migration runs in its own transaction together with the version bump, so a
//! crash mid-migration leaves the previous version intact. A database written
//! by a newer server (version above [`SCHEMA_VERSION`]) is refused.
//!
//! `PRAGMA application_id` marks the file as a Connvo database so that opening
//! some other SQLite file by mistake fails instead of mixing schemas.
//!
//! Tables (version 2; version 2 only allows an empty `doc_id`):
//! * `documents(id, table_num, ts, json)` — the latest version of every
//!   document, clustered by id; `documents_by_table(table_num, id)` serves
//!   `scan_table`.
//! * `index_entries(index_id, key, doc_id)` — clustered by `(index_id, key)`,
//!   so an index range scan is a contiguous B-tree walk in memcmp key order.
//!   `doc_id` is empty when the key ends with the 20-byte document id (every
//!   entry the engine writes; see `write::stored_doc_id`).
//! * `commit_log(ts, log)` — the engine's write sets, keyed by timestamp.
//! * `globals(name, value)` — `max_ts`, the newest committed timestamp.
//! * `index_meta(index_id, table_num, signature)`.
//!
//! Timestamps are `u64` in the API and `INTEGER` (`i64`) here; the backend
//! refuses timestamps of 2^63 and above (nanoseconds since 1970 reach 2^63 in
//! the year 2262). Tables are `STRICT`, so a value of the wrong type is an
//! error instead of a silent conversion.

use errors::{Error, Result};
use rusqlite::{Connection, TransactionBehavior};

use crate::conn::SqlContext;

/// `PRAGMA application_id` of Connvo databases ("Cnvo").
pub(crate) const APPLICATION_ID: i32 = 0x436e_766f;

/// Migration scripts; entry *i* upgrades version *i* to *i + 1*.
const MIGRATIONS: &[&str] = &[
    // Version 1: the initial schema.
    "CREATE TABLE documents (
         id        BLOB    NOT NULL PRIMARY KEY,
         table_num INTEGER NOT NULL,
         ts        INTEGER NOT NULL,
         json      TEXT    NOT NULL
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX documents_by_table ON documents (table_num, id);
     CREATE TABLE index_entries (
         index_id INTEGER NOT NULL,
         key      BLOB    NOT NULL,
         doc_id   BLOB    NOT NULL,
         PRIMARY KEY (index_id, key)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE commit_log (
         ts  INTEGER PRIMARY KEY,
         log BLOB    NOT NULL
     ) STRICT;
     CREATE TABLE globals (
         name  TEXT    NOT NULL PRIMARY KEY,
         value INTEGER NOT NULL
     ) STRICT;
     INSERT INTO globals (name, value) VALUES ('max_ts', 0);
     CREATE TABLE index_meta (
         index_id  INTEGER PRIMARY KEY,
         table_num INTEGER NOT NULL,
         signature TEXT    NOT NULL
     ) STRICT;",
    // Version 2: no table changes. `index_entries.doc_id` may be empty (the
    // id is then the key's last 20 bytes, `write::stored_doc_id`); a server
    // that only knows version 1 would join such entries to no document, so
    // the version number makes it refuse the file instead.
    "-- index_entries.doc_id may be empty: the id is the key's suffix",
];

/// The schema version this build writes and understands.
pub(crate) const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Creates or upgrades the schema. Must run on the writer connection before
/// any read connection is opened.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .context("read application_id")?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .context("read user_version")?;
    if app_id != APPLICATION_ID && (app_id != 0 || version != 0) {
        return Err(Error::internal(format!(
            "sqlite: the database file is not a Connvo database (application_id {app_id:#x}, \
             user_version {version})"
        )));
    }
    let version = usize::try_from(version).map_err(|_| {
        Error::internal(format!(
            "sqlite: invalid schema version {version} (user_version)"
        ))
    })?;
    if version > SCHEMA_VERSION {
        return Err(Error::internal(format!(
            "sqlite: the database has schema version {version}, but this server only knows \
             versions up to {SCHEMA_VERSION}; it was written by a newer Connvo server"
        )));
    }
    for (from, script) in MIGRATIONS.iter().enumerate().skip(version) {
        let to = from + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin migration")?;
        tx.execute_batch(script)
            .context(&format!("migrate schema to version {to}"))?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .context("set application_id")?;
        let to_sql = i64::try_from(to).map_err(|_| Error::internal("schema version overflow"))?;
        tx.pragma_update(None, "user_version", to_sql)
            .context("set user_version")?;
        tx.commit()
            .context(&format!("commit schema version {to}"))?;
        tracing::info!(version = to, "sqlite schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 file (written before empty `doc_id`s) is upgraded in place:
    /// its rows stay, and the version moves to the newest.
    #[test]
    fn a_version_1_database_is_upgraded_with_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO index_entries (index_id, key, doc_id) VALUES (1, x'01', x'02')",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION as i64);
        assert_eq!(SCHEMA_VERSION, 2);
        let doc_id: Vec<u8> = conn
            .query_row("SELECT doc_id FROM index_entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(doc_id, vec![2]);
        // Migrating again is a no-op.
        migrate(&mut conn).unwrap();
    }
}
