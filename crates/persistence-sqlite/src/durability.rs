//! Pipelined durability: commits are synced to disk by a thread of their
//! own, so the writer can write the next transaction meanwhile.
//!
//! With `synchronous=FULL` SQLite fsyncs the WAL inside every `COMMIT`,
//! while the writer connection — the global write lock — waits. At 20,000
//! durable transcript writes/s that sync was half of the single committer's
//! busy time (`COMMIT` 1.9 ms mean against 1.7 ms of writing; measured
//! 2026-11-25), and each transaction queued behind the one in progress.
//!
//! So when the store is opened with `synchronous_full` and `pipelined_sync`
//! (the default; `connvo serve --sqlite-sync pipelined`), the writer connection runs
//! `synchronous=NORMAL` (a `COMMIT` appends its frames to the
//! WAL and returns without a sync) and the [`Syncer`] thread `fdatasync`s the
//! WAL file afterwards: every frame written before the sync started is then
//! on disk, which is exactly what `FULL` would have guaranteed per commit.
//! One sync covers every commit that finished before it began (a second level
//! of group commit). It stays safe across checkpoints and WAL restarts:
//! SQLite still syncs the WAL before a checkpoint copies it (the
//! checkpointer's connection keeps the default `FULL`) and the WAL header
//! when it rewinds, so a frame a restart overwrites is already in the
//! synced database file.
//!
//! The invariant that makes this invisible to users: **nothing read leaves
//! the server before the commits it saw are durable.** Snapshots may show a
//! commit whose sync is still running (`Persistence::reads_precede_durability`
//! says so); the engine holds every query result back until the commits
//! that wrote into what it read are published, which happens only after
//! their sync (`Database::settle_read`), every mutation result until its
//! timestamp is (`Database::wait_published`), and live query results are
//! sent only at published timestamps. The store's own `latest_ts` and `commits_after`
//! wait here instead: each write transaction takes a *commit sequence
//! number* before its `COMMIT`, and they note the newest number taken after
//! their read and wait until it is synced. Later write transactions see
//! unsynced commits too, which is harmless: their own sync comes after and
//! covers both.
//!
//! A failed sync leaves the file's state unknown (Linux may drop the dirty
//! pages it could not write), so the store *fails*: every waiting and later
//! commit, snapshot and write transaction gets the error, and only a restart
//! (which replays the WAL from disk) recovers. PostgreSQL treats a failed
//! fsync the same way.
//!
//! The price is that some results wait for a sync: those that read what a
//! commit still syncing wrote. At 1,000 small commits/s that costs delivery
//! p95 0.3 → ~1.2 ms (measured 2026-11-25; ~2.7 ms while every result
//! waited for its whole snapshot, ~10 ms with snapshots themselves
//! waiting, as first built), against much shorter commit tails under
//! heavy ingest, so pipelining is the default (`--sqlite-sync full` syncs
//! inside `COMMIT`). (Opening readers at the newest *synced* state
//! with SQLite's snapshot API instead was tried and measured worse: readers
//! at many different WAL positions contend for SQLite's few read marks;
//! 20,000/s commit p99 69–77 ms.)
//!
//! Without pipelining there is no syncer: with `FULL` a commit is durable
//! (and visible) when `COMMIT` returns, with `NORMAL` it is as durable as
//! it will get then.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use errors::{Error, Result};
use tokio::sync::watch;

/// A commit's place in commit order, taken before its `COMMIT`.
pub(crate) type CommitSeq = u64;

/// What waiters watch: the newest durable commit, or the failure.
#[derive(Debug, Clone, Default)]
struct Durable {
    seq: CommitSeq,
    failed: Option<String>,
}

/// Commit bookkeeping shared by the writer, the readers and the syncer.
#[derive(Debug, Default)]
struct Counters {
    /// The newest sequence number handed out (a commit may be in progress).
    taken: CommitSeq,
    /// The newest sequence number whose `COMMIT` has returned.
    committed: CommitSeq,
    /// Set when the store shuts down: the syncer syncs what is left and ends.
    stopping: bool,
}

/// The durability state of one store.
#[derive(Debug)]
pub(crate) struct Durability {
    counters: Mutex<Counters>,
    /// Wakes the syncer when a commit finishes or the store stops.
    wake: Condvar,
    durable: watch::Sender<Durable>,
    /// Whether commits wait for the syncer (`pipelined_sync`).
    synced: bool,
    /// Only tests set it: they hold the syncer to observe un-synced commits.
    held: std::sync::atomic::AtomicBool,
}

impl Durability {
    /// `synced`: commits are durable only once the syncer has synced the WAL
    /// after them; otherwise as soon as their `COMMIT` returns.
    pub(crate) fn new(synced: bool) -> Arc<Self> {
        Arc::new(Self {
            counters: Mutex::new(Counters::default()),
            wake: Condvar::new(),
            durable: watch::Sender::new(Durable::default()),
            synced,
            held: Default::default(),
        })
    }

    /// Whether commits are synced by the syncer (and snapshots may show
    /// unsynced ones).
    pub(crate) fn is_synced(&self) -> bool {
        self.synced
    }

    /// Whether a test holds the syncer.
    fn held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Holds (or releases) the syncer: no sync starts while held.
    #[cfg(test)]
    pub(crate) fn hold_syncer(&self, held: bool) {
        self.held.store(held, std::sync::atomic::Ordering::SeqCst);
        let _guard = self.counters();
        self.wake.notify_one();
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        // The critical sections only assign integers: a poisoned lock still
        // holds consistent counters.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next sequence number; call before `COMMIT`, on the writer
    /// (so numbers follow commit order).
    pub(crate) fn begin_commit(&self) -> CommitSeq {
        let mut c = self.counters();
        c.taken += 1;
        c.taken
    }

    /// The `COMMIT` numbered `seq` returned (or failed and rolled back: it
    /// then has nothing to sync, and marking it keeps readers from waiting
    /// for it forever). Call with the writer still held.
    pub(crate) fn finish_commit(&self, seq: CommitSeq) {
        let mut c = self.counters();
        c.committed = c.committed.max(seq);
        if self.synced {
            drop(c);
            self.wake.notify_one();
        } else {
            drop(c);
            self.durable.send_modify(|d| d.seq = d.seq.max(seq));
        }
    }

    /// The newest sequence number taken: a reader that has started its read
    /// transaction sees no commit numbered above it.
    pub(crate) fn newest_taken(&self) -> CommitSeq {
        self.counters().taken
    }

    /// The failure that stopped the store, if any.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.durable.borrow().failed {
            None => Ok(()),
            Some(e) => Err(failed(e)),
        }
    }

    /// Waits until commit `seq` is durable.
    pub(crate) async fn wait(&self, seq: CommitSeq) -> Result<()> {
        {
            let d = self.durable.borrow();
            if let Some(e) = &d.failed {
                return Err(failed(e));
            }
            if d.seq >= seq {
                return Ok(());
            }
        }
        let mut rx = self.durable.subscribe();
        let d = rx
            .wait_for(|d| d.seq >= seq || d.failed.is_some())
            .await
            .map_err(|_| Error::internal("sqlite: the store closed before a commit was synced"))?;
        match &d.failed {
            Some(e) => Err(failed(e)),
            None => Ok(()),
        }
    }

    /// Waits until everything a reader that began now could see is durable.
    /// Without a syncer that is everything it sees: with `FULL` SQLite shows
    /// a commit only after its fsync, with `NORMAL` no sync is awaited.
    pub(crate) async fn wait_visible(&self) -> Result<()> {
        if !self.synced {
            return self.check();
        }
        self.wait(self.newest_taken()).await
    }

    /// The syncer's loop: waits for finished commits, syncs the WAL, and
    /// publishes the newest sequence number the sync covered.
    fn run_syncer(&self, wal: &mut WalFile) {
        // Only this thread advances the durable sequence number.
        let mut durable: CommitSeq = 0;
        loop {
            let target = {
                let mut c = self.counters();
                while (c.committed <= durable || self.held()) && !c.stopping {
                    c = self.wake.wait(c).unwrap_or_else(|e| e.into_inner());
                }
                if c.committed <= durable {
                    return; // stopping, nothing left to sync
                }
                c.committed
            };
            let started = Instant::now();
            let outcome = wal.sync();
            metrics::histogram!("connvo_sqlite_wal_sync_seconds")
                .record(started.elapsed().as_secs_f64());
            match outcome {
                Ok(()) => {
                    durable = target;
                    self.durable.send_modify(|d| d.seq = target);
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "sqlite: syncing the WAL failed; the store stops accepting reads and writes until the server restarts"
                    );
                    self.durable.send_modify(|d| d.failed = Some(e.to_string()));
                    return;
                }
            }
        }
    }
}

fn failed(e: &str) -> Error {
    Error::internal(format!(
        "sqlite: a WAL sync failed ({e}); restart the server to recover from the database files"
    ))
}

/// The WAL file, opened by path: its own descriptor (fsync acts on the
/// file, whichever descriptor asks), reopened if the file was replaced.
struct WalFile {
    path: PathBuf,
    file: Option<(File, u64)>,
}

impl WalFile {
    fn sync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        // SQLite deletes the WAL only when its last connection closes, which
        // the store never does while running; checking the inode costs one
        // `stat` per sync and keeps a replaced file from being missed.
        let ino = std::fs::metadata(&self.path)?.ino();
        if self.file.as_ref().is_none_or(|(_, i)| *i != ino) {
            let file = File::open(&self.path)?;
            let ino = file.metadata()?.ino();
            self.file = Some((file, ino));
        }
        match &self.file {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// The thread that syncs the WAL (see the module documentation). Stopping
/// it (dropping) syncs what is still unsynced first.
pub(crate) struct Syncer {
    durability: Arc<Durability>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the syncer of the database at `db_path` (its WAL is
    /// `<db_path>-wal`).
    pub(crate) fn start(db_path: &Path, durability: Arc<Durability>) -> Result<Self> {
        let mut wal = WalFile {
            path: wal_path(db_path),
            file: None,
        };
        let shared = Arc::clone(&durability);
        let thread = std::thread::Builder::new()
            .name("sqlite-wal-sync".into())
            .spawn(move || shared.run_syncer(&mut wal))
            .map_err(|e| Error::internal(format!("sqlite: cannot start the WAL syncer: {e}")))?;
        Ok(Self {
            durability,
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.durability.counters().stopping = true;
        self.durability.wake.notify_one();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("sqlite: the WAL syncer panicked");
        }
    }
}

/// The WAL file of the database at `db_path`.
fn wal_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_syncer_a_commit_is_durable_when_it_returns() {
        let d = Durability::new(false);
        let seq = d.begin_commit();
        assert_eq!(d.newest_taken(), seq);
        d.finish_commit(seq);
        d.wait(seq).await.unwrap();
        d.wait_visible().await.unwrap();
    }

    #[tokio::test]
    async fn readers_wait_for_the_sync_of_a_commit_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(wal_path(&db), b"frames").unwrap();
        let d = Durability::new(true);
        let seq = d.begin_commit();
        // Taken but not committed: a reader must wait.
        let waiting = tokio::spawn({
            let d = Arc::clone(&d);
            async move { d.wait_visible().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "read before the commit finished");
        let syncer = Syncer::start(&db, Arc::clone(&d)).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "read before the commit was synced");
        d.finish_commit(seq);
        waiting.await.unwrap().unwrap();
        d.wait(seq).await.unwrap();
        drop(syncer);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_every_waiter_and_later_reads() {
        let dir = tempfile::tempdir().unwrap();
        // No WAL file: the sync fails.
        let db = dir.path().join("missing.db");
        let d = Durability::new(true);
        let syncer = Syncer::start(&db, Arc::clone(&d)).unwrap();
        let seq = d.begin_commit();
        d.finish_commit(seq);
        let err = d.wait(seq).await.unwrap_err();
        assert!(err.message().contains("restart the server"), "{err}");
        assert!(d.check().is_err());
        assert!(d.wait_visible().await.is_err());
        drop(syncer);
    }

    #[tokio::test]
    async fn stopping_syncs_what_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(wal_path(&db), b"frames").unwrap();
        let d = Durability::new(true);
        let syncer = Syncer::start(&db, Arc::clone(&d)).unwrap();
        let seq = d.begin_commit();
        d.finish_commit(seq);
        drop(syncer);
        d.wait(seq).await.unwrap();
    }
}
