//! Injected time and randomness.
//!
//! The engine never reads the wall clock or an RNG directly: it asks a
//! [`Clock`] and an [`IdGenerator`], so tests can make both deterministic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rand::{RngCore, SeedableRng};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;

    /// Milliseconds since the Unix epoch, as Convex's `Date.now()` would give.
    fn now_ms(&self) -> f64 {
        (self.now_nanos() / 1_000_000) as f64
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct TestClock {
    nanos: AtomicU64,
}

impl TestClock {
    /// A test clock starting at `ms` milliseconds since the epoch.
    pub fn at_ms(ms: u64) -> Arc<Self> {
        Arc::new(Self {
            nanos: AtomicU64::new(ms * 1_000_000),
        })
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.nanos.fetch_add(ms * 1_000_000, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set_ms(&self, ms: u64) {
        self.nanos.store(ms * 1_000_000, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

/// A source of random bytes for document ids and cursors.
pub trait IdGenerator: Send + Sync + 'static {
    /// 16 unguessable random bytes.
    fn random_bytes(&self) -> [u8; 16];

    /// The 16 bytes of a new document id ([`values::DocumentId::new`]);
    /// random unless the generator says otherwise.
    fn document_id_bytes(&self) -> [u8; 16] {
        self.random_bytes()
    }
}

/// Ids from the operating system's CSPRNG (via `rand`'s thread RNG).
///
/// Document ids are time-ordered: the first 6 bytes are the wall-clock
/// milliseconds (big-endian), the other 10 random (80 bits, still
/// unguessable; the creation time they reveal is public as
/// `_creationTime` anyway). Storage keeps documents in id order, so a new
/// document lands on the B-tree's last page, shared with the other
/// documents of its commit group, instead of on a random page each: fewer
/// pages written per commit, and recent documents stay together in the
/// page cache.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn random_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        rand::rng().fill_bytes(&mut b);
        b
    }

    fn document_id_bytes(&self) -> [u8; 16] {
        let mut b = self.random_bytes();
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        b
    }
}

/// Deterministic ids for tests.
#[derive(Debug)]
pub struct SeededIds {
    rng: Mutex<rand::rngs::StdRng>,
}

impl SeededIds {
    /// A generator that yields the same sequence for the same seed.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        })
    }
}

impl IdGenerator for SeededIds {
    fn random_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        self.rng.lock().fill_bytes(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_are_time_ordered_and_random_within_a_millisecond() {
        let ids = RandomIds;
        let first = ids.document_id_bytes();
        let same_ms = ids.document_id_bytes();
        assert_ne!(first[6..], same_ms[6..], "80 random bits per id");
        std::thread::sleep(std::time::Duration::from_millis(3));
        let later = ids.document_id_bytes();
        assert!(later > first, "a later id sorts after an earlier one");
        let ms = u64::from_be_bytes([
            0, 0, later[0], later[1], later[2], later[3], later[4], later[5],
        ]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            now.abs_diff(ms) < 10_000,
            "the prefix is the wall clock in ms"
        );
    }
}
