//! The read queries, shared by snapshots, the store-level reads and the write
//! transaction (which reads through the writer connection and so sees its own
//! uncommitted writes).
//!
//! Every statement goes through `prepare_cached`, so it is parsed once per
//! connection. Rows are fully collected before returning, which resets the
//! statement and leaves no statement active on the connection.

use errors::{Error, Result};
use persistence::{
    CommitLogEntry, IndexId, IndexMeta, IndexRow, KeyRange, Order, StoredDocument, TableNumber,
    Timestamp,
};
use rusqlite::{Connection, Row, params};

use crate::conn::{SqlContext, limit_to_sql, ts_from_row};

const MAX_TS: &str = "SELECT value FROM globals WHERE name = 'max_ts'";
const LOG_FLOOR: &str = "SELECT coalesce(max(value), 0) FROM globals WHERE name = 'log_floor'";

const GET: &str = "SELECT id, table_num, ts, json FROM documents WHERE id = ?1";

// `CROSS JOIN` makes SQLite keep `index_entries` as the outer loop, so the
// scan walks the `(index_id, key)` primary key in order (no sort step) and
// looks each document up by id. An entry whose key ends with its document's
// id stores an empty `doc_id` (see `write::stored_doc_id`); the id is then
// the key's last `write::SUFFIX_ID_LEN` (20) bytes.
macro_rules! scan_sql {
    ($($tail:literal),+) => {
        concat!(
            "SELECT e.key, d.id, d.table_num, d.ts, d.json \
             FROM index_entries AS e CROSS JOIN documents AS d \
             ON d.id = CASE WHEN length(e.doc_id) = 0 THEN substr(e.key, -20) ELSE e.doc_id END ",
            $($tail),+
        )
    };
}
const SCAN_ASC_BOUNDED: &str =
    scan_sql!("WHERE e.index_id = ?1 AND e.key >= ?2 AND e.key < ?3 ORDER BY e.key ASC LIMIT ?4");
const SCAN_DESC_BOUNDED: &str =
    scan_sql!("WHERE e.index_id = ?1 AND e.key >= ?2 AND e.key < ?3 ORDER BY e.key DESC LIMIT ?4");
const SCAN_ASC_UNBOUNDED: &str =
    scan_sql!("WHERE e.index_id = ?1 AND e.key >= ?2 ORDER BY e.key ASC LIMIT ?3");
const SCAN_DESC_UNBOUNDED: &str =
    scan_sql!("WHERE e.index_id = ?1 AND e.key >= ?2 ORDER BY e.key DESC LIMIT ?3");

const SCAN_TABLE_FROM_START: &str = "SELECT id, table_num, ts, json FROM documents \
     WHERE table_num = ?1 ORDER BY id LIMIT ?2";
const SCAN_TABLE_AFTER: &str = "SELECT id, table_num, ts, json FROM documents \
     WHERE table_num = ?1 AND id > ?2 ORDER BY id LIMIT ?3";

const COMMITS_AFTER: &str = "SELECT ts, log FROM commit_log WHERE ts > ?1 ORDER BY ts LIMIT ?2";

const INDEX_META: &str = "SELECT index_id, table_num, signature FROM index_meta ORDER BY index_id";

/// Reads a document from columns `first..first + 4` (id, table, ts, json).
/// Integer columns go through rusqlite's checked conversions (a negative ts
/// or a table number above `u32::MAX` is an error, never a wrap-around).
fn document_at(row: &Row<'_>, first: usize) -> rusqlite::Result<StoredDocument> {
    Ok(StoredDocument {
        id: row.get(first)?,
        table: TableNumber(row.get(first + 1)?),
        ts: ts_from_row(row, first + 2)?,
        json: row.get(first + 3)?,
    })
}

/// The commit log's floor (0 before the first prune).
pub(crate) fn log_floor(conn: &Connection) -> Result<Timestamp> {
    let mut stmt = conn
        .prepare_cached(LOG_FLOOR)
        .context("prepare log_floor")?;
    let value: i64 = stmt
        .query_row([], |row| row.get(0))
        .context("read log_floor")?;
    u64::try_from(value)
        .map(Timestamp)
        .map_err(|_| Error::internal(format!("sqlite: negative commit-log floor {value}")))
}

/// The newest committed timestamp as seen by `conn` (its snapshot, or its own
/// writes on the writer connection).
pub(crate) fn max_ts(conn: &Connection) -> Result<Timestamp> {
    let mut stmt = conn.prepare_cached(MAX_TS).context("prepare max_ts")?;
    stmt.query_row([], |row| ts_from_row(row, 0))
        .context("read max_ts")
}

/// One document by id.
pub(crate) fn get(conn: &Connection, id: &[u8]) -> Result<Option<StoredDocument>> {
    let mut stmt = conn.prepare_cached(GET).context("prepare get")?;
    let mut rows = stmt.query(params![id]).context("get document")?;
    match rows.next().context("get document")? {
        Some(row) => Ok(Some(document_at(row, 0).context("decode document")?)),
        None => Ok(None),
    }
}

/// Index entries in `range`, joined with their documents.
pub(crate) fn index_scan(
    conn: &Connection,
    index: IndexId,
    range: &KeyRange,
    order: Order,
    limit: usize,
) -> Result<Vec<IndexRow>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = limit_to_sql(limit);
    let map = |row: &Row<'_>| {
        Ok(IndexRow {
            key: row.get(0)?,
            doc: document_at(row, 1)?,
        })
    };
    let sql = match (order, range.end.is_some()) {
        (Order::Asc, true) => SCAN_ASC_BOUNDED,
        (Order::Desc, true) => SCAN_DESC_BOUNDED,
        (Order::Asc, false) => SCAN_ASC_UNBOUNDED,
        (Order::Desc, false) => SCAN_DESC_UNBOUNDED,
    };
    let mut stmt = conn.prepare_cached(sql).context("prepare index_scan")?;
    let rows = match &range.end {
        Some(end) => stmt.query_map(params![index.0, range.start, end, limit], map),
        None => stmt.query_map(params![index.0, range.start, limit], map),
    };
    rows.and_then(Iterator::collect).context("index_scan")
}

/// Documents of `table` with ids after `after`, ascending.
pub(crate) fn scan_table(
    conn: &Connection,
    table: TableNumber,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<StoredDocument>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = limit_to_sql(limit);
    let map = |row: &Row<'_>| document_at(row, 0);
    let rows = match after {
        None => {
            let mut stmt = conn
                .prepare_cached(SCAN_TABLE_FROM_START)
                .context("prepare scan")?;
            stmt.query_map(params![table.0, limit], map)
                .and_then(Iterator::collect)
        }
        Some(after) => {
            let mut stmt = conn
                .prepare_cached(SCAN_TABLE_AFTER)
                .context("prepare scan")?;
            stmt.query_map(params![table.0, after, limit], map)
                .and_then(Iterator::collect)
        }
    };
    rows.context("scan_table")
}

/// Commit-log entries with `ts > after`, ascending, at most `limit`.
pub(crate) fn commits_after(
    conn: &Connection,
    after: Timestamp,
    limit: usize,
) -> Result<Vec<CommitLogEntry>> {
    // Stored timestamps are below 2^63: nothing is after a larger one.
    let Ok(after) = i64::try_from(after.0) else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare_cached(COMMITS_AFTER)
        .context("prepare commits_after")?;
    stmt.query_map(params![after, limit_to_sql(limit)], |row| {
        Ok(CommitLogEntry {
            ts: ts_from_row(row, 0)?,
            log: row.get(1)?,
        })
    })
    .and_then(Iterator::collect)
    .context("commits_after")
}

/// Every index's metadata, by index id.
pub(crate) fn index_metadata(conn: &Connection) -> Result<Vec<IndexMeta>> {
    let mut stmt = conn
        .prepare_cached(INDEX_META)
        .context("prepare index_metadata")?;
    stmt.query_map([], |row| {
        Ok(IndexMeta {
            index: IndexId(row.get(0)?),
            table: TableNumber(row.get(1)?),
            signature: row.get(2)?,
        })
    })
    .and_then(Iterator::collect)
    .context("index_metadata")
}

/// The query plan SQLite picks for `sql` (one line per plan step).
#[cfg(test)]
pub(crate) fn explain(conn: &Connection, sql: &str) -> Result<String> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .context("explain")?;
    let count = stmt.parameter_count();
    let params: Vec<Vec<u8>> = vec![Vec::new(); count];
    let lines: Vec<String> = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |row| {
            row.get::<_, String>(3)
        })
        .and_then(Iterator::collect)
        .context("explain")?;
    if lines.is_empty() {
        return Err(errors::Error::internal("empty query plan"));
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every index scan walks the primary key in order: no temporary B-tree
    /// for sorting, no full scan of either table.
    #[test]
    fn query_plans_use_the_clustered_keys() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        for sql in [
            SCAN_ASC_BOUNDED,
            SCAN_DESC_BOUNDED,
            SCAN_ASC_UNBOUNDED,
            SCAN_DESC_UNBOUNDED,
        ] {
            let plan = explain(&conn, sql).unwrap();
            assert!(!plan.contains("TEMP B-TREE"), "{sql}\n{plan}");
            assert!(plan.contains("SEARCH e USING PRIMARY KEY"), "{sql}\n{plan}");
            assert!(plan.contains("SEARCH d USING PRIMARY KEY"), "{sql}\n{plan}");
        }
        for sql in [SCAN_TABLE_FROM_START, SCAN_TABLE_AFTER] {
            let plan = explain(&conn, sql).unwrap();
            assert!(!plan.contains("TEMP B-TREE"), "{sql}\n{plan}");
            assert!(plan.contains("documents_by_table"), "{sql}\n{plan}");
        }
        for sql in [GET, COMMITS_AFTER] {
            let plan = explain(&conn, sql).unwrap();
            assert!(
                !plan.contains("TEMP B-TREE") && plan.contains("SEARCH"),
                "{sql}\n{plan}"
            );
        }
    }

    /// A scan with new bounds reuses its prepared plan: no re-parse per
    /// bound value (see `conn::configure_common`, query-planner stability).
    #[test]
    fn scans_with_new_bounds_are_not_reprepared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut writer = crate::conn::open_writer(&path, &crate::SqliteOptions::default()).unwrap();
        crate::schema::migrate(&mut writer).unwrap();
        let reader = crate::conn::open_reader(&path).unwrap();
        for i in 0u8..5 {
            let range = KeyRange {
                start: vec![i],
                end: Some(vec![i, 0xff]),
            };
            index_scan(&reader, IndexId(1), &range, Order::Asc, 10 + usize::from(i)).unwrap();
            index_scan(&reader, IndexId(1), &range, Order::Desc, 10).unwrap();
        }
        for sql in [SCAN_ASC_BOUNDED, SCAN_DESC_BOUNDED] {
            let stmt = reader.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(rusqlite::StatementStatus::Run), 5, "{sql}");
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }
}
