//! The reader gate: lets the checkpointer hold off new read transactions
//! while it restarts the WAL, instead of stalling the writer.
//!
//! A WAL restart (the next commit writing from the start of the WAL file)
//! is only possible once no read transaction still reads frames of the old
//! WAL. SQLite's RESTART checkpoint waits for those readers *while holding
//! the write lock*, so every commit queued meanwhile waits for the slowest
//! query in flight; under load the wait timed out more often than not and
//! the WAL grew past 600 MiB (measured at 20,000 transcript writes/s), which
//! slowed every page lookup. With the gate the checkpointer instead closes
//! it, waits (without any SQLite lock) for the read transactions already
//! open to end, and takes the write lock only for the restart itself. New
//! readers wait at the gate for those few milliseconds; commits go on until
//! the restart.
//!
//! The gate is only a scheduling device: correctness never depends on it
//! (SQLite's locks keep every snapshot consistent whatever the gate does),
//! and every wait on it is bounded — the checkpointer gives up and reopens
//! the gate after [`ReaderGate::wait_drained`]'s timeout, so a task that
//! opens a second read transaction while holding a first one is delayed,
//! never deadlocked.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Counts the read transactions in flight and, while closed, holds new ones
/// back.
#[derive(Debug, Default)]
pub(crate) struct ReaderGate {
    closed: AtomicBool,
    /// Readers past the gate (a pooled connection is checked out).
    active: AtomicUsize,
    /// Woken when the gate opens.
    opened: Notify,
    /// The checkpointer waits here for `active` to reach zero.
    drained: Mutex<()>,
    drained_cv: Condvar,
}

impl ReaderGate {
    /// Passes the gate, waiting while it is closed. The reader counts as
    /// active until the returned pass drops.
    pub(crate) async fn enter(self: &Arc<Self>) -> GatePass {
        loop {
            // Count first, then check: with both sides sequentially
            // consistent, either this reader sees the gate closed or the
            // checkpointer sees this reader active.
            self.active.fetch_add(1, Ordering::SeqCst);
            if !self.closed.load(Ordering::SeqCst) {
                return GatePass {
                    gate: Arc::clone(self),
                };
            }
            self.leave();
            let opened = self.opened.notified();
            tokio::pin!(opened);
            // Registered before the re-check, so an `open` in between is
            // not missed.
            opened.as_mut().enable();
            if self.closed.load(Ordering::SeqCst) {
                opened.await;
            }
        }
    }

    fn leave(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            // Taking the mutex orders this notification after the
            // checkpointer's check of `active`, so the wake-up is not lost.
            let _guard = self.drained.lock().unwrap_or_else(PoisonError::into_inner);
            self.drained_cv.notify_all();
        }
    }

    /// Closes the gate until the returned guard drops.
    pub(crate) fn close(&self) -> ClosedGate<'_> {
        self.closed.store(true, Ordering::SeqCst);
        ClosedGate { gate: self }
    }

    /// Read transactions in flight.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// A closed gate; reopens (waking every waiting reader) on drop.
pub(crate) struct ClosedGate<'a> {
    gate: &'a ReaderGate,
}

impl ClosedGate<'_> {
    /// Blocks the calling thread until no reader is past the gate, or
    /// `timeout` passes. Returns whether the readers drained.
    pub(crate) fn wait_drained(&self, timeout: Duration) -> bool {
        let gate = self.gate;
        let deadline = Instant::now() + timeout;
        let mut guard = gate.drained.lock().unwrap_or_else(PoisonError::into_inner);
        while gate.active.load(Ordering::SeqCst) != 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = gate
                .drained_cv
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for ClosedGate<'_> {
    fn drop(&mut self) {
        self.gate.closed.store(false, Ordering::SeqCst);
        self.gate.opened.notify_waiters();
    }
}

/// A reader past the gate; leaves it on drop.
#[derive(Debug)]
pub(crate) struct GatePass {
    gate: Arc<ReaderGate>,
}

impl Drop for GatePass {
    fn drop(&mut self) {
        self.gate.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_gate_waits_for_readers_in_flight_and_holds_new_ones() {
        let gate = Arc::new(ReaderGate::default());
        let first = gate.enter().await;
        assert_eq!(gate.active(), 1);
        let closed = gate.close();
        // A new reader waits at the gate.
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move {
                let _pass = gate.enter().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a reader passed a closed gate");
        // The reader in flight keeps the gate from draining…
        assert!(!closed.wait_drained(Duration::from_millis(5)));
        // …until it ends, from another thread while the checkpointer waits.
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(first);
        });
        assert!(closed.wait_drained(Duration::from_secs(5)));
        release.join().unwrap();
        assert!(!waiting.is_finished());
        drop(closed);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting reader did not pass the reopened gate")
            .unwrap();
        assert_eq!(gate.active(), 0);
    }

    #[tokio::test]
    async fn a_reader_holding_a_pass_does_not_deadlock_a_second_entry() {
        // A task that opens a second read transaction while holding a first
        // one waits only until the checkpointer gives up on draining.
        let gate = Arc::new(ReaderGate::default());
        let held = gate.enter().await;
        let checkpointer = std::thread::spawn({
            let gate = Arc::clone(&gate);
            move || {
                let closed = gate.close();
                let drained = closed.wait_drained(Duration::from_millis(30));
                drop(closed);
                drained
            }
        });
        while !gate.closed.load(Ordering::SeqCst) && !checkpointer.is_finished() {
            tokio::task::yield_now().await;
        }
        let second = tokio::time::timeout(Duration::from_secs(5), gate.enter())
            .await
            .expect("the second entry deadlocked");
        assert!(
            !checkpointer.join().unwrap(),
            "drained with a reader in flight"
        );
        assert_eq!(gate.active(), 2);
        drop((held, second));
        assert_eq!(gate.active(), 0);
    }
}
