//! The backend-agnostic conformance suite, run against SQLite in a fresh
//! temporary directory per test, in each durability mode.

use std::sync::Arc;

use persistence::Persistence;
use persistence_sqlite::{SqliteOptions, SqlitePersistence};

/// A fresh, empty store in its own temporary directory, which lives as long
/// as the store.
async fn fresh_store() -> Arc<dyn Persistence> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqlitePersistence::open(dir.path(), SqliteOptions::default()).expect("open");
    persistence::testing::with_guard(store, dir)
}

persistence::run_conformance_suite!(fresh_store);

/// The suite again with the smallest read pool the suite allows (it holds at
/// most three read handles at once) and `synchronous=NORMAL`, so waiting for a
/// pooled connection is exercised too.
mod small_pool {
    use super::*;

    async fn fresh_small_store() -> Arc<dyn Persistence> {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = SqliteOptions {
            read_pool_size: 3,
            synchronous_full: false,
            pipelined_sync: false,
        };
        let store = SqlitePersistence::open(dir.path(), options).expect("open");
        persistence::testing::with_guard(store, dir)
    }

    persistence::run_conformance_suite!(fresh_small_store);
}

/// The suite again with the WAL synced inside each `COMMIT`
/// (`synchronous=FULL`, no syncer thread; the default syncs it from a thread
/// of its own, `pipelined_sync`): commits, snapshots and the commit log
/// behave the same.
mod full {
    use super::*;

    async fn fresh_full_store() -> Arc<dyn Persistence> {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = SqliteOptions {
            pipelined_sync: false,
            ..SqliteOptions::default()
        };
        let store = SqlitePersistence::open(dir.path(), options).expect("open");
        persistence::testing::with_guard(store, dir)
    }

    persistence::run_conformance_suite!(fresh_full_store);
}
