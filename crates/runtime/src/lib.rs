//! Connvo's function runtime: functions written in Rust the way Convex
//! functions are written in TypeScript.
//!
//! * [`registry`] — [`Registry`] of [`FunctionSpec`]s keyed by `dir/file:export`,
//!   built with [`FunctionDef`], plus crons;
//! * [`context`] — [`QueryCtx`], [`MutationCtx`], [`ActionCtx`] with `db`,
//!   `auth`, `scheduler`, `run_query`/`run_mutation`/`run_action`;
//! * [`exec`] — [`Runtime`]: validation, transactions with OCC retries,
//!   exactly-once WebSocket mutations, timeouts, panics, metrics;
//! * [`scheduler`] — durable scheduled functions and crons.
//!
//! Errors are [`errors::Error`]; an application error (`Error::app`,
//! `Error::forbidden`, …) reaches clients as `ConvexError` data.

pub mod context;
pub mod exec;
pub mod registry;
pub mod scheduler;

pub use context::{
    ActionCtx, Auth, DbReader, DbWriter, MutationCtx, PaginationOptsArg, QueryBuilder, QueryCtx,
    page_to_value, pagination_opts_validator,
};
pub use database::SearchFilter;
pub use exec::{
    ActionOutcome, MutationOutcome, QueryOutcome, QueryPart, Runtime, RuntimeConfig,
    SessionRequest, SessionSocket,
};
pub use registry::{
    CronSchedule, FunctionDef, FunctionKind, FunctionSpec, Registry, RetryPolicy, Visibility,
};
pub use scheduler::{CLEANUP_BATCH, JobId, JobState, JobStatus, TickReport, system_tables};
