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
}

/// Ids from the operating system's CSPRNG (via `rand`'s thread RNG).
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn random_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        rand::rng().fill_bytes(&mut b);
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
