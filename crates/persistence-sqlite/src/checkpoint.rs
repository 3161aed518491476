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
//! [`RESTART_FRAMES`] frames, a pass restarts it:
//!
//! 1. it closes the [`ReaderGate`] and waits, holding no SQLite lock, for
//!    the read transactions in flight to end (new readers wait at the gate;
//!    commits go on);
//! 2. a second PASSIVE pass then copies every frame but those appended
//!    meanwhile, as no reader pins an older one;
//! 3. with the write lock (the writer's mutex, so no write transaction is
//!    open) a RESTART checkpoint copies that small remainder and makes the
//!    next commit write from the start of the WAL; it has no reader to wait
//!    for.
//!
//! Only step 3 stalls commits. Before the gate, SQLite's RESTART waited for
//! the readers while holding the write lock: at 20,000 transcript writes/s
//! it timed out (10 ms) on most attempts, the WAL grew past 600 MiB and
//! commits queued behind each attempt (per-transaction commit p99 0.45–1.7
//! s on this machine class).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Mutex;

use crate::gate::ReaderGate;
use crate::write::Writer;

/// How often the checkpointer wakes up.
const INTERVAL: Duration = Duration::from_millis(200);

/// WAL length (in frames, about 4 KiB each) above which a checkpoint also
/// restarts the WAL: 65,536 frames is 256 MiB, the `journal_size_limit`.
/// Each restart holds new readers at the gate and stalls the writer for the
/// copy of the last frames, so restarts should be rare; the price is up to
/// 256 MiB of WAL on disk and to replay after a crash.
pub(crate) const RESTART_FRAMES: i64 = 65_536;

/// How long a restart waits for the read transactions in flight to end
/// before it gives up (reopening the gate) until the next pass.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(50);

/// How long a restart waits for the writer's mutex (the current write
/// transaction) with the gate closed before it gives up until the next pass.
const WRITER_TIMEOUT: Duration = Duration::from_millis(100);

/// How long a RESTART checkpoint waits on a lock. With the gate drained and
/// the writer's mutex held nothing should hold one; this bounds the stall
/// if something outside the pool (another process reading the file) does.
const RESTART_BUSY_TIMEOUT: Duration = Duration::from_millis(10);

/// Ungated PASSIVE passes a restart runs first, at most, to catch up.
const CATCH_UP_PASSES: usize = 4;

/// A catch-up pass this short means the checkpointer has caught up.
const CAUGHT_UP: Duration = Duration::from_millis(10);

/// A PASSIVE checkpoint: (frames in the WAL, frames copied back so far).
fn passive(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    // Columns: blocked (0/1), frames in the WAL, frames checkpointed.
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

/// What a restart coordinates with: the read pool's gate and the writer.
#[derive(Clone)]
pub(crate) struct Coordination {
    /// Closed while the restart waits for readers.
    pub(crate) gate: Arc<ReaderGate>,
    /// Held for the RESTART itself, so no write transaction is open.
    pub(crate) writer: Arc<Mutex<Writer>>,
}

/// The checkpointer's connection and state.
pub(crate) struct Checkpoint {
    conn: Connection,
    /// The database file, to flush what the catch-up passes copied before
    /// the gate closes (SQLite fsyncs it only in a pass that copies the
    /// whole WAL, which would then flush the backlog of dirty pages while
    /// readers wait).
    db_file: Option<std::fs::File>,
    coord: Coordination,
    restart_frames: i64,
    /// The WAL length at the last restart: the WAL only rewinds at the next
    /// commit, so until then PASSIVE keeps reporting this length and there
    /// is nothing to restart.
    restarted_at: Option<i64>,
    /// What the last first PASSIVE of a pass reported (frames, copied).
    last_passive: (i64, i64),
    /// A current-thread runtime (no threads of its own) to wait for the
    /// writer's async mutex with a timeout; `None` if it could not be built,
    /// and then restarts are skipped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Checkpoint {
    /// Connects to the database at `path`.
    pub(crate) fn new(
        path: &std::path::Path,
        coord: Coordination,
        restart_frames: i64,
    ) -> rusqlite::Result<Self> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.busy_timeout(RESTART_BUSY_TIMEOUT)?;
        // A checkpoint syncs the WAL before it copies frames into the
        // database and the database after, whenever its connection's
        // `synchronous` is NORMAL or FULL. The writer's commits are synced
        // by the WAL syncer (`durability`), so this is what keeps a frame
        // that a checkpoint copies — and a later restart overwrites — from
        // existing only in the OS cache. Explicit, not SQLite's default.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let db_file = std::fs::File::open(path)
            .inspect_err(|e| tracing::debug!(error = %e, "sqlite: checkpointer cannot open the database file to flush it"))
            .ok();
        Ok(Self {
            conn,
            db_file,
            coord,
            restart_frames,
            restarted_at: None,
            last_passive: (0, 0),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .inspect_err(|e| tracing::warn!(error = %e, "sqlite: no WAL restarts (cannot build the checkpointer's timer)"))
                .ok(),
        })
    }

    /// fsyncs the database file (the checkpointer's own handle; fsync acts
    /// on the file, whichever descriptor asks).
    fn flush_db(&self) {
        if let Some(file) = &self.db_file
            && let Err(e) = file.sync_data()
        {
            tracing::debug!(error = %e, "sqlite: flushing the database file failed");
        }
    }

    /// One pass: PASSIVE, then a gated restart when the WAL is longer than
    /// the threshold. Returns the WAL length (frames) the first PASSIVE
    /// reported. Blocks the calling thread; must not run on an async
    /// runtime's worker (it blocks on the writer's mutex).
    pub(crate) fn pass(&mut self) -> rusqlite::Result<i64> {
        let (frames, copied) = passive(&self.conn)?;
        if (frames, copied) != self.last_passive {
            // Flush what this pass copied now, so dirty pages never pile up
            // into one long flush (the kernel alone would hold them for up to
            // 30 s and then write them in a burst that commits' WAL fsyncs
            // queue behind).
            self.last_passive = (frames, copied);
            self.flush_db();
        }
        if frames <= self.restart_frames || self.restarted_at == Some(frames) {
            return Ok(frames);
        }
        self.restarted_at = None;
        let conn = &self.conn;
        // Catch up before closing the gate. PASSIVE copies the frames that
        // were in the WAL when it started, so each pass copies what the
        // writer appended during the previous one; stop once a pass is
        // short, so the gated pass and the RESTART (which holds the
        // writer) are left with little to copy.
        for _ in 0..CATCH_UP_PASSES {
            let started = Instant::now();
            passive(conn)?;
            if started.elapsed() < CAUGHT_UP {
                break;
            }
        }
        self.flush_db();
        let started = Instant::now();
        let closed = self.coord.gate.close();
        if !closed.wait_drained(DRAIN_TIMEOUT) {
            let active = self.coord.gate.active();
            drop(closed);
            tracing::debug!(
                frames,
                active,
                "sqlite: WAL restart deferred: readers still in flight"
            );
            metrics::counter!("connvo_sqlite_wal_restarts_total", "outcome" => "readers_busy")
                .increment(1);
            return Ok(frames);
        }
        let drained = started.elapsed();
        // No reader pins an older frame now: this copies all but what the
        // writer appends meanwhile.
        let (wal, _) = passive(conn)?;
        let copied_at = started.elapsed();
        // Bounded: a task that holds the write lock and then opens a read
        // snapshot (an index rebuild does) waits at the closed gate, so
        // waiting for the lock without a limit could deadlock.
        let writer = match &self.runtime {
            // The timer is created inside `block_on`, in the runtime's context.
            Some(rt) => rt
                .block_on(async {
                    tokio::time::timeout(
                        WRITER_TIMEOUT,
                        Arc::clone(&self.coord.writer).lock_owned(),
                    )
                    .await
                })
                .ok(),
            None => None,
        };
        let Some(writer_guard) = writer else {
            drop(closed);
            tracing::debug!(
                frames,
                "sqlite: WAL restart deferred: the writer stayed busy"
            );
            metrics::counter!("connvo_sqlite_wal_restarts_total", "outcome" => "writer_busy")
                .increment(1);
            return Ok(frames);
        };
        let (blocked, stall) = {
            let locked = Instant::now();
            let blocked: i64 =
                conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| row.get(0))?;
            (blocked != 0, locked.elapsed())
        };
        drop(writer_guard);
        drop(closed);
        let gated = started.elapsed();
        if !blocked {
            self.restarted_at = Some(wal);
        }
        tracing::debug!(
            frames,
            blocked,
            drain_ms = drained.as_secs_f64() * 1e3,
            passive_ms = (copied_at - drained).as_secs_f64() * 1e3,
            writer_stall_ms = stall.as_secs_f64() * 1e3,
            gate_closed_ms = gated.as_secs_f64() * 1e3,
            "sqlite: WAL restart"
        );
        metrics::histogram!("connvo_sqlite_wal_restart_seconds", "phase" => "writer_stall")
            .record(stall.as_secs_f64());
        metrics::histogram!("connvo_sqlite_wal_restart_seconds", "phase" => "gate_closed")
            .record(gated.as_secs_f64());
        metrics::counter!("connvo_sqlite_wal_restarts_total", "outcome" => if blocked { "blocked" } else { "restarted" })
            .increment(1);
        Ok(frames)
    }
}

/// Stops and joins the checkpoint thread when dropped.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; returns `None` (and logs) if it cannot connect.
    pub(crate) fn start(path: PathBuf, coord: Coordination) -> Option<Self> {
        let mut checkpoint = match Checkpoint::new(&path, coord, RESTART_FRAMES) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "sqlite: no background checkpointer; SQLite will checkpoint inline");
                return None;
            }
        };
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
                    if let Err(e) = checkpoint.pass() {
                        tracing::debug!(error = %e, "sqlite: checkpoint failed");
                    }
                }
                drop(checkpoint);
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
    use crate::lock::DirLock;
    use crate::pool::ReadPool;

    /// A migrated database with its writer, a read pool of `readers`
    /// connections and the coordination of the two.
    fn store(dir: &std::path::Path, readers: usize) -> (PathBuf, Arc<ReadPool>, Coordination) {
        let path = dir.join("db.sqlite");
        let lock = Arc::new(DirLock::acquire(&dir.join("lock")).unwrap());
        let mut conn = crate::conn::open_writer(&path, &crate::SqliteOptions::default()).unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        let pool = Arc::new(ReadPool::open(path.clone(), readers, Arc::clone(&lock)).unwrap());
        let coord = Coordination {
            gate: Arc::clone(pool.gate()),
            writer: Arc::new(Mutex::new(Writer::new(
                conn,
                lock,
                crate::durability::Durability::new(false),
                None,
            ))),
        };
        (path, pool, coord)
    }

    fn insert(coord: &Coordination, i: u32) {
        let writer = coord.writer.blocking_lock();
        writer
            .conn()
            .execute(
                "INSERT INTO documents (id, table_num, ts, json) VALUES (?1, 1, ?2, ?3)",
                rusqlite::params![i.to_be_bytes().to_vec(), i, "x".repeat(300)],
            )
            .unwrap();
    }

    /// Under continuous reads and writes, the gated restart keeps the WAL
    /// short; PASSIVE alone lets it grow with every commit (checked by hand
    /// by passing `i64::MAX`: the WAL then ends near 6,000 frames).
    #[test]
    fn the_wal_restarts_under_continuous_load() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pool, coord) = store(dir.path(), 4);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        // Four readers with staggered, overlapping 2 ms read transactions,
        // so some reader always holds an older WAL snapshot.
        let readers: Vec<_> = (0..4u64)
            .map(|n| {
                let (pool, stop, reads) =
                    (Arc::clone(&pool), Arc::clone(&stop), Arc::clone(&reads));
                rt.spawn(async move {
                    tokio::time::sleep(Duration::from_micros(500 * n)).await;
                    while !stop.load(Ordering::Acquire) {
                        let pooled = pool.checkout().await.unwrap();
                        let conn = pooled.conn().unwrap();
                        conn.execute_batch("BEGIN").unwrap();
                        let _: i64 = conn
                            .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
                            .unwrap();
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        drop(pooled);
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let checkpointer = {
            let (stop, coord) = (Arc::clone(&stop), coord.clone());
            std::thread::spawn(move || {
                let mut checkpoint = Checkpoint::new(&path, coord, 200).unwrap();
                let mut longest = 0;
                while !stop.load(Ordering::Acquire) {
                    longest = longest.max(checkpoint.pass().unwrap());
                    std::thread::sleep(Duration::from_millis(5));
                }
                longest
            })
        };
        for i in 0..2_000u32 {
            insert(&coord, i);
        }
        let wal_frames: i64 = coord
            .writer
            .blocking_lock()
            .conn()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap();
        stop.store(true, Ordering::Release);
        for r in readers {
            rt.block_on(r).unwrap();
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
        assert_eq!(pool.gate().active(), 0);
    }

    /// A read transaction longer than the drain timeout defers the restart
    /// (the writer is never blocked for it); once it ends, the next pass
    /// restarts the WAL.
    #[test]
    fn a_long_reader_defers_the_restart_without_blocking_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pool, coord) = store(dir.path(), 2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for i in 0..200u32 {
            insert(&coord, i);
        }
        let mut restarting = Checkpoint::new(&path, coord.clone(), 50).unwrap();
        let mut observing = Checkpoint::new(&path, coord.clone(), i64::MAX).unwrap();
        // A reader pins the current WAL snapshot.
        let pooled = rt.block_on(pool.checkout()).unwrap();
        pooled.conn().unwrap().execute_batch("BEGIN").unwrap();
        let _: i64 = pooled
            .conn()
            .unwrap()
            .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
            .unwrap();
        let wal_before = restarting.pass().unwrap();
        assert!(wal_before > 50, "the test needs a WAL past the threshold");
        // The restart gave up on the reader and left the writer free: a
        // commit goes through at once and appends to the same WAL.
        let started = Instant::now();
        insert(&coord, 1_000);
        assert!(started.elapsed() < Duration::from_secs(1));
        let frames = observing.pass().unwrap();
        assert!(
            frames > wal_before,
            "the WAL restarted under a reader: {frames} frames"
        );
        // The reader ends; the next pass restarts, and the next commit
        // writes from the start of the WAL.
        drop(pooled);
        restarting.pass().unwrap();
        // Until the next commit rewinds the WAL it keeps its length; passes
        // meanwhile do not restart it again (a reader in flight would make
        // such a pass wait the whole drain timeout).
        let reader = rt.block_on(pool.checkout()).unwrap();
        let started = Instant::now();
        restarting.pass().unwrap();
        assert!(
            started.elapsed() < DRAIN_TIMEOUT,
            "an idle pass tried to restart the WAL again"
        );
        drop(reader);
        insert(&coord, 1_001);
        let after = observing.pass().unwrap();
        assert!(after < 10, "the WAL did not restart: {after} frames");
        assert_eq!(pool.gate().active(), 0);
    }

    /// A write transaction that outlasts the writer timeout (and might be
    /// waiting at the closed gate for a snapshot) defers the restart: the
    /// pass returns and the gate opens again.
    #[test]
    fn a_busy_writer_defers_the_restart_and_reopens_the_gate() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pool, coord) = store(dir.path(), 2);
        for i in 0..200u32 {
            insert(&coord, i);
        }
        let mut checkpoint = Checkpoint::new(&path, coord.clone(), 50).unwrap();
        let held = coord.writer.blocking_lock();
        let started = Instant::now();
        let frames = checkpoint.pass().unwrap();
        let took = started.elapsed();
        assert!(frames > 50, "the test needs a WAL past the threshold");
        assert!(
            took >= WRITER_TIMEOUT && took < WRITER_TIMEOUT * 20,
            "the pass took {took:?}"
        );
        // The gate is open: a reader gets through at once.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reader = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(1), pool.checkout()).await })
            .expect("the gate stayed closed")
            .unwrap();
        drop((reader, held));
        // With the writer free the next pass restarts the WAL.
        checkpoint.pass().unwrap();
        insert(&coord, 1_000);
        let after = Checkpoint::new(&path, coord, i64::MAX)
            .unwrap()
            .pass()
            .unwrap();
        assert!(after < 10, "the WAL did not restart: {after} frames");
    }
}
