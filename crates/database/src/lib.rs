//! Connvo's transactional document engine.
//!
//! The layer between the function runtime and persistence:
//!
//! * [`schema`] — tables, validators and indexes declared in Rust;
//! * [`document`] — documents with `_id` / `_creationTime` and their index keys;
//! * [`transaction`] — snapshot reads, buffered writes, read-set recording;
//! * [`query`] — index range expressions and pagination cursors;
//! * [`search`] — full-text search indexes: tokenizer, term keys, BM25 queries;
//! * [`readset`] — read sets and write sets over index keys;
//! * [`cache`] — decoded document versions and per-snapshot read results;
//! * [`subscriptions`] — invalidation of live read sets and the write log;
//! * [`engine`] — [`Database`]: opening, transactions and the group committer;
//! * [`limits`] — the engine's size and count limits;
//! * [`clock`] — injected time and randomness.
//!
//! Invariant: every read of a function goes through a [`Transaction`], so its
//! read set is complete and reactivity needs no manual notification.

pub mod cache;
pub mod clock;
pub mod document;
pub mod engine;
pub mod limits;
pub mod query;
pub mod readset;
pub mod schema;
pub mod search;
pub mod subscriptions;
pub mod transaction;

pub use cache::{ReadCacheLimits, ReadCacheStats};
pub use clock::{Clock, IdGenerator, RandomIds, SeededIds, SystemClock, TestClock};
pub use document::Document;
pub use engine::{Database, DatabaseOptions};
pub use persistence::{Order, Timestamp};
pub use query::{IndexRange, Page, PaginationOpts};
pub use schema::{Schema, TableDef};
pub use search::SearchFilter;
pub use subscriptions::{Subscription, SubscriptionManager};
pub use transaction::Transaction;
