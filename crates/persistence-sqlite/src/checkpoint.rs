//! Background WAL checkpoints.
//!
//! SQLite normally checkpoints inside whichever COMMIT pushes the WAL past
//! 1,000 pages, which put multi-millisecond stalls into the single
//! committer's tail latency (measured p99 3.5–7.3 ms against a 0.37 ms
//! median). The writer connection therefore runs with
//! `wal_autocheckpoint=0`, and this thread runs `PRAGMA
//! wal_checkpoint(PASSIVE)` from its own connection: PASSIVE never waits for
//! readers or blocks the writer, it copies what it can.
//!
//! PASSIVE alone never lets the WAL *restart* under steady load: the writer
//! rewinds the WAL only when, at the start of a write transaction, every
//! frame has been copied back and no reader still reads an older WAL
//! snapshot, and with commits and queries arriving every few milliseconds
//! that moment never comes. The WAL then grows without bound (measured:
//! 1.7 GB after 20 s at 1,000 commits/s), appends land on freshly allocated
//! file pages (kernel page zeroing was ~7% of server CPU) and every page
//! lookup searches a longer WAL index. So once the WAL holds more than
//! [`RESTART_FRAMES`] frames, the PASSIVE pass is followed by a RESTART
//! checkpoint: it copies the few frames added since, waits (up to the busy
//! timeout) for the writer and for readers of older snapshots to finish,
//! and makes the next write start at the beginning of the WAL. Writers wait
//! for it, so it is short: most frames were copied by the PASSIVE pass
//! just before.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the checkpointer wakes up.
const INTERVAL: Duration = Duration::from_millis(200);

/// WAL length (in frames, about 4 KiB each) above which a checkpoint also
/// restarts the WAL: 65,536 frames is 256 MiB, the `journal_size_limit`.
/// Each restart stalls the writer (it waits for readers), and every
/// transaction queued meanwhile waits with it, so restarts should be rare:
/// at 20,000 transcript writes/s (~22,000 frames/s) a 64 MiB threshold put
/// the group-commit p99 at ~50 ms, 256 MiB at ~23 ms (3 runs each). The
/// price is up to 256 MiB of WAL on disk and to replay after a crash.
pub(crate) const RESTART_FRAMES: i64 = 65_536;

/// How long a RESTART checkpoint waits for the writer and old readers.
/// Writers wait meanwhile, so it is short (a blocked restart is retried on
/// the next pass): at 20,000 transcript writes/s (~28,000 WAL frames/s) a
/// 100 ms wait put the group-commit start at p99 79 ms, 10 ms at 55 ms.
const RESTART_BUSY_TIMEOUT: Duration = Duration::from_millis(10);

/// One checkpoint pass: PASSIVE, then RESTART when the WAL is longer than
/// `restart_frames`. Returns the WAL length (frames) PASSIVE reported.
pub(crate) fn checkpoint_once(conn: &Connection, restart_frames: i64) -> rusqlite::Result<i64> {
    // Columns: blocked (0/1), frames in the WAL, frames checkpointed.
    let frames: i64 = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))?;
    if frames > restart_frames {
        let started = std::time::Instant::now();
        let blocked: i64 =
            conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| row.get(0))?;
        tracing::debug!(
            frames,
            blocked = blocked != 0,
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "sqlite: WAL restart checkpoint"
        );
        metrics::counter!("connvo_sqlite_wal_restarts_total", "outcome" => if blocked == 0 { "restarted" } else { "blocked" })
            .increment(1);
    }
    Ok(frames)
}

/// Stops and joins the checkpoint thread when dropped.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; returns `None` (and logs) if it cannot connect.
    pub(crate) fn start(path: PathBuf) -> Option<Self> {
        let conn = match Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "sqlite: no background checkpointer; SQLite will checkpoint inline");
                return None;
            }
        };
        let _ = conn.busy_timeout(RESTART_BUSY_TIMEOUT);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(INTERVAL);
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    if let Err(e) = checkpoint_once(&conn, RESTART_FRAMES) {
                        tracing::debug!(error = %e, "sqlite: checkpoint failed");
                    }
                }
                drop(conn);
            })
            .ok()?;
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Under continuous reads and writes, the restart step keeps the WAL
    /// short; PASSIVE alone lets it grow with every commit (checked by hand
    /// by passing `i64::MAX`: the WAL then ends near 6,000 frames).
    #[test]
    fn the_wal_restarts_under_continuous_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut writer = crate::conn::open_writer(&path, &crate::SqliteOptions::default()).unwrap();
        crate::schema::migrate(&mut writer).unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        // Four readers with staggered, overlapping 2 ms read transactions,
        // so some reader always holds an older WAL snapshot.
        let readers: Vec<_> = (0..4u64)
            .map(|n| {
                let (path, stop, reads) = (path.clone(), Arc::clone(&stop), Arc::clone(&reads));
                std::thread::spawn(move || {
                    let conn = crate::conn::open_reader(&path).unwrap();
                    std::thread::sleep(Duration::from_micros(500 * n));
                    while !stop.load(Ordering::Acquire) {
                        conn.execute_batch("BEGIN").unwrap();
                        let _: i64 = conn
                            .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
                            .unwrap();
                        std::thread::sleep(Duration::from_millis(2));
                        conn.execute_batch("ROLLBACK").unwrap();
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let checkpointer = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let conn = Connection::open(&path).unwrap();
                conn.busy_timeout(RESTART_BUSY_TIMEOUT).unwrap();
                let mut longest = 0;
                while !stop.load(Ordering::Acquire) {
                    longest = longest.max(checkpoint_once(&conn, 200).unwrap());
                    std::thread::sleep(Duration::from_millis(5));
                }
                longest
            })
        };
        for i in 0..2_000u32 {
            writer
                .execute(
                    "INSERT INTO documents (id, table_num, ts, json) VALUES (?1, 1, ?2, ?3)",
                    rusqlite::params![i.to_be_bytes().to_vec(), i, "x".repeat(300)],
                )
                .unwrap();
        }
        let wal_frames: i64 = writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap();
        stop.store(true, Ordering::Release);
        for r in readers {
            r.join().unwrap();
        }
        let longest = checkpointer.join().unwrap();
        assert!(
            reads.load(Ordering::Relaxed) > 10,
            "the readers did not run"
        );
        assert!(
            wal_frames < 1_000,
            "the WAL kept growing: {wal_frames} frames after 2,000 commits (longest seen {longest})"
        );
    }
}
