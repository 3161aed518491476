//! The read queries, shared by snapshots (inside their `REPEATABLE READ`
//! transaction), the store-level reads (autocommit) and the write transaction
//! (which reads its own writes).
//!
//! Every statement goes through the connection's prepared-statement cache
//! (`prepare_cached`), so it is parsed and planned on the server once per
//! connection; a read is then one round trip.

use deadpool_postgres::Object;
use errors::Result;
use persistence::{
    CommitLogEntry, IndexId, IndexMeta, IndexRow, KeyRange, Order, StoredDocument, TableNumber,
    Timestamp,
};
use tokio_postgres::Row;

use crate::conn::{PgContext, limit_to_sql, table_from_sql, ts_from_sql, u32_from_sql};
use crate::schema::Sql;

/// Reads a document from columns `first..first + 4` (id, table, ts, json).
fn document_at(row: &Row, first: usize) -> Result<StoredDocument> {
    let id: Vec<u8> = row.try_get(first).context("decode document id")?;
    let table: i64 = row.try_get(first + 1).context("decode table number")?;
    let ts: i64 = row.try_get(first + 2).context("decode document ts")?;
    let json: String = row.try_get(first + 3).context("decode document json")?;
    Ok(StoredDocument {
        id,
        table: table_from_sql(table)?,
        ts: ts_from_sql(ts)?,
        json,
    })
}

/// The newest committed timestamp visible to `client`.
pub(crate) async fn max_ts(client: &Object, sql: &Sql) -> Result<Timestamp> {
    let stmt = client
        .prepare_cached(&sql.max_ts)
        .await
        .context("prepare max_ts")?;
    let row = client.query_one(&stmt, &[]).await.context("read max_ts")?;
    ts_from_sql(row.try_get(0).context("decode max_ts")?)
}

/// One document by id.
pub(crate) async fn get(client: &Object, sql: &Sql, id: &[u8]) -> Result<Option<StoredDocument>> {
    let stmt = client
        .prepare_cached(&sql.get)
        .await
        .context("prepare get")?;
    let row = client
        .query_opt(&stmt, &[&id])
        .await
        .context("get document")?;
    row.map(|row| document_at(&row, 0)).transpose()
}

/// Index entries in `range`, joined with their documents.
pub(crate) async fn index_scan(
    client: &Object,
    sql: &Sql,
    index: IndexId,
    range: &KeyRange,
    order: Order,
    limit: usize,
) -> Result<Vec<IndexRow>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = limit_to_sql(limit);
    let index = i64::from(index.0);
    let start = range.start.as_slice();
    let text = match (order, range.end.is_some()) {
        (Order::Asc, true) => &sql.scan_asc_bounded,
        (Order::Desc, true) => &sql.scan_desc_bounded,
        (Order::Asc, false) => &sql.scan_asc_unbounded,
        (Order::Desc, false) => &sql.scan_desc_unbounded,
    };
    let stmt = client
        .prepare_cached(text)
        .await
        .context("prepare index_scan")?;
    let rows = match &range.end {
        Some(end) => {
            let end = end.as_slice();
            client.query(&stmt, &[&index, &start, &end, &limit]).await
        }
        None => client.query(&stmt, &[&index, &start, &limit]).await,
    }
    .context("index_scan")?;
    rows.iter()
        .map(|row| {
            Ok(IndexRow {
                key: row.try_get(0).context("decode index key")?,
                doc: document_at(row, 1)?,
            })
        })
        .collect()
}

/// Documents of `table` with ids after `after`, ascending.
pub(crate) async fn scan_table(
    client: &Object,
    sql: &Sql,
    table: TableNumber,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<StoredDocument>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = limit_to_sql(limit);
    let table = i64::from(table.0);
    let rows = match after {
        None => {
            let stmt = client
                .prepare_cached(&sql.scan_table_from_start)
                .await
                .context("prepare scan_table")?;
            client.query(&stmt, &[&table, &limit]).await
        }
        Some(after) => {
            let stmt = client
                .prepare_cached(&sql.scan_table_after)
                .await
                .context("prepare scan_table")?;
            client.query(&stmt, &[&table, &after, &limit]).await
        }
    }
    .context("scan_table")?;
    rows.iter().map(|row| document_at(row, 0)).collect()
}

/// Commit-log entries with `ts > after`, ascending, at most `limit`.
pub(crate) async fn commits_after(
    client: &Object,
    sql: &Sql,
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
    let stmt = client
        .prepare_cached(&sql.commits_after)
        .await
        .context("prepare commits_after")?;
    let rows = client
        .query(&stmt, &[&after, &limit_to_sql(limit)])
        .await
        .context("commits_after")?;
    rows.iter()
        .map(|row| {
            let ts: i64 = row.try_get(0).context("decode commit ts")?;
            Ok(CommitLogEntry {
                ts: ts_from_sql(ts)?,
                log: row.try_get(1).context("decode commit log")?,
            })
        })
        .collect()
}

/// Every index's metadata, by index id.
pub(crate) async fn index_metadata(client: &Object, sql: &Sql) -> Result<Vec<IndexMeta>> {
    let stmt = client
        .prepare_cached(&sql.index_meta)
        .await
        .context("prepare index_metadata")?;
    let rows = client.query(&stmt, &[]).await.context("index_metadata")?;
    rows.iter()
        .map(|row| {
            let index: i64 = row.try_get(0).context("decode index id")?;
            let table: i64 = row.try_get(1).context("decode table number")?;
            Ok(IndexMeta {
                index: IndexId(u32_from_sql(index, "index id")?),
                table: table_from_sql(table)?,
                signature: row.try_get(2).context("decode index signature")?,
            })
        })
        .collect()
}
