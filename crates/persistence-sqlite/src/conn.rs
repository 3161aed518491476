//! Opening and configuring SQLite connections, plus the small conversions and
//! error-context helpers every other module uses.

use std::path::Path;
use std::time::Duration;

use errors::{Error, Result};
use persistence::Timestamp;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Row};

use crate::SqliteOptions;

/// How long a connection waits on a SQLite lock before failing with
/// `SQLITE_BUSY`. With the data-directory lock only this process writes, so
/// waits only happen around WAL recovery and checkpoints.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache of the writer connection, in KiB (negative `cache_size`).
///
/// Not larger, because of what every COMMIT costs on a database smaller
/// than 1 GiB: a B-tree split that reorders its new pages parks one of them
/// at the lock-byte page number (262,145 with 4 KiB pages) for a moment,
/// which raises the cache's highest page number past the end of the file, so
/// the truncation at the end of the transaction walks the cache's whole hash
/// table (`pcache1TruncateUnsafe`). With 32 MiB that walk was ~3% of server
/// CPU at 10,000 durable chunks/s, all of it on the serial commit path;
/// 8 MiB took the COMMIT phase's total time down ~10%.
const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// Page cache of each read connection, in KiB. Small on purpose: in WAL
/// mode a reader's whole cache is dropped at the start of any read
/// transaction that follows another connection's commit, and dropping walks
/// the cache's hash table (profiled at ~4.4% of server CPU with 8 MiB);
/// pages come back from the OS page cache with one `pread` each.
const READER_CACHE_KIB: i64 = 512;

/// The WAL file is truncated back to this size after a checkpoint; equal to
/// the restart threshold (`checkpoint::RESTART_FRAMES`), so a WAL that
/// restarts is reused instead of regrown on freshly zeroed file pages.
const JOURNAL_SIZE_LIMIT: i64 = 256 * 1024 * 1024;

/// Memory-mapped size of the database file per connection: none (see
/// `configure_common`).
const MMAP_BYTES: i64 = 0;

/// Prepared statements each connection keeps (the backend uses about 15).
const STATEMENT_CACHE: usize = 64;

/// Adds context to rusqlite errors and turns them into [`errors::Error`].
pub(crate) trait SqlContext<T> {
    /// Maps the error to `INTERNAL_ERROR` with `what` describing the operation.
    fn context(self, what: &str) -> Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| Error::internal(format!("sqlite: {what}: {e}")))
    }
}

/// A timestamp as stored in SQLite (`INTEGER`, i.e. `i64`). Fails for
/// timestamps of 2^63 and above, which this backend cannot store.
pub(crate) fn ts_to_sql(ts: Timestamp) -> Result<i64> {
    i64::try_from(ts.0).map_err(|_| {
        Error::internal(format!(
            "sqlite: timestamp {} does not fit in a SQLite integer (must be below 2^63)",
            ts.0
        ))
    })
}

/// Reads a timestamp column (`i64` in SQLite), rejecting negative values.
pub(crate) fn ts_from_row(row: &Row<'_>, idx: usize) -> rusqlite::Result<Timestamp> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value)
        .map(Timestamp)
        .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

/// A scan limit as a SQL `LIMIT` (saturating: `usize::MAX` means "all").
pub(crate) fn limit_to_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Opens the single read-write connection, switches the database to WAL and
/// applies the durability settings.
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::default())
        .map_err(|e| Error::internal(format!("sqlite: cannot open {}: {e}", path.display())))?;
    configure_common(&conn, WRITER_CACHE_KIB)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .context("set journal_mode=WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::internal(format!(
            "sqlite: {} cannot use WAL mode (journal_mode is {mode})",
            path.display()
        )));
    }
    let synchronous = if options.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .context("set synchronous")?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .context("set journal_size_limit")?;
    Ok(conn)
}

/// Counts the WAL frames (database pages, ~4 KiB each) every commit of
/// `conn` appends, in `connvo_sqlite_wal_frames_total`: the write volume
/// per transaction, which the checkpointer copies back once more and every
/// reader then reads again. SQLite reports the WAL's length after each
/// commit; a length shorter than the last means the WAL rewound and all of
/// it is this commit's (a rewind to a WAL longer than the one before is
/// undercounted, which takes a commit as long as the whole previous WAL).
/// Installed after `wal_autocheckpoint` is set, which replaces the hook.
pub(crate) fn count_wal_frames(conn: &mut Connection) -> Result<()> {
    let frames = metrics::counter!("connvo_sqlite_wal_frames_total");
    let mut last = 0;
    conn.wal_hook(Some(
        move |_: &mut rusqlite::hooks::Wal, length: std::os::raw::c_int| {
            let appended = if length >= last {
                length - last
            } else {
                length
            };
            last = length;
            frames.increment(u64::try_from(appended).unwrap_or(0));
            Ok(())
        },
    ))
    .context("install the WAL hook")
}

/// Opens one read-only connection of the read pool.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        Error::internal(format!(
            "sqlite: cannot open read connection to {}: {e}",
            path.display()
        ))
    })?;
    configure_common(&conn, READER_CACHE_KIB)?;
    Ok(conn)
}

/// Settings shared by the writer and the readers.
fn configure_common(conn: &Connection, cache_kib: i64) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .context("set busy_timeout")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Query-planner stability: without it SQLite marks every statement whose
    // plan *might* depend on a bound value (our index scans: `key >= ?2 AND
    // key < ?3`, and `LIMIT ?`) to be re-parsed and re-planned whenever that
    // value changes, i.e. on nearly every scan. Profiled at ~19% of server
    // CPU under transcript load (`sqlite3Reprepare`). Our plans do not depend
    // on the values (a test pins them), so one plan per statement is right.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .context("enable query planner stability")?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .context("set foreign_keys")?;
    conn.pragma_update(None, "cache_size", -cache_kib)
        .context("set cache_size")?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .context("set temp_store")?;
    // No memory-mapped reads. In WAL mode a connection drops its whole page
    // cache whenever another connection committed since its last read
    // transaction, and with a memory map SQLite also unmaps all of it
    // (`unixUnfetch` from `pagerBeginReadTransaction`): a `munmap` with a
    // TLB shoot-down on every core, then page faults to map the pages back.
    // Under a steady commit rate that is every read transaction. Measured
    // (2026-11-25, sixth session, interleaved, medians of 3): at 1,000
    // ingests/s with three subscribers per meeting, 1 GiB maps cost 1.420
    // server cores and none 1.235 (delivery p95 1.75 → 0.96 ms); saturated,
    // 1,179 → 1,294 commits/s (1 run each). An earlier build, with glibc
    // malloc and large reader caches, had measured the opposite. Without the
    // map an I/O error on a page is also a reportable error, not a SIGBUS.
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)
        .context("set mmap_size")?;
    Ok(())
}

/// Ends the connection's open transaction, if any.
pub(crate) fn rollback_if_open(conn: &Connection) -> Result<()> {
    if conn.is_autocommit() {
        return Ok(());
    }
    conn.prepare_cached("ROLLBACK")
        .and_then(|mut s| s.execute([]))
        .context("ROLLBACK")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readers do not memory-map the database (see `configure_common`).
    #[test]
    fn readers_read_without_a_memory_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut writer = open_writer(&path, &crate::SqliteOptions::default()).unwrap();
        crate::schema::migrate(&mut writer).unwrap();
        let reader = open_reader(&path).unwrap();
        for conn in [&writer, &reader] {
            let mmap: i64 = conn
                .query_row("PRAGMA mmap_size", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mmap, 0);
        }
    }

    #[test]
    fn timestamps_convert_with_checks() {
        assert_eq!(ts_to_sql(Timestamp(0)).unwrap(), 0);
        assert_eq!(ts_to_sql(Timestamp(i64::MAX as u64)).unwrap(), i64::MAX);
        let err = ts_to_sql(Timestamp(1 << 63)).unwrap_err();
        assert!(err.message().contains("2^63"), "{err}");
        assert_eq!(limit_to_sql(0), 0);
        assert_eq!(limit_to_sql(usize::MAX), i64::MAX);
    }
}
