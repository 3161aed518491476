//! The backend-agnostic conformance suite, run against PostgreSQL with a
//! fresh schema per test (dropped afterwards).
//!
//! The database is `CONNVO_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). If it is unreachable the run
//! fails when `CI` is set and is skipped, with a loud message, otherwise.

persistence::run_conformance_suite!(persistence_postgres::testing::fresh_store);

/// The suite again with the smallest read pool the suite allows (it holds at
/// most three read handles at once) and `synchronous_commit = off`, so
/// waiting for a pooled connection is exercised too.
mod small_pool {
    use std::sync::Arc;

    use persistence::Persistence;
    use persistence_postgres::testing::TestSchema;

    async fn fresh_small_store() -> Arc<dyn Persistence> {
        let schema = TestSchema::new();
        let store = schema
            .connect_with(|o| {
                o.read_pool_size = 3;
                o.synchronous_commit = false;
            })
            .await;
        persistence::testing::with_guard(store, schema)
    }

    persistence::run_conformance_suite!(fresh_small_store);
}
