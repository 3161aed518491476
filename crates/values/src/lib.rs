//! The Convex value model of Connvo Server.
//!
//! Everything that stores, validates, indexes or transmits Convex values builds
//! on this crate: documents, function arguments and results are [`Value`]s;
//! clients exchange them as Convex-encoded JSON; functions declare their
//! arguments with [`Validator`]s built by [`v`]; documents are named by
//! [`DocumentId`]s; and indexes store [`keys`] whose bytewise order is the
//! values' order.
//!
//! # Layout
//! * [`value`] — [`Value`], its JSON encodings (`convexToJson` /
//!   `jsonToConvex` and the lossy clean export form), its total order, its
//!   size and [`check_document_limits`].
//! * [`serde_bridge`] — [`to_value`] / [`from_value`] between `Value` and Rust
//!   types; [`int64`] is the `#[serde(with = "values::int64")]` helper.
//! * [`ids`] — [`DocumentId`] (36-character checksummed base32 strings),
//!   [`table_number`] and [`index_id`].
//! * [`validator`] — [`Validator`], the [`v`] constructors, validation with
//!   precise paths, JSON Schema output.
//! * [`keys`] — order-preserving index key encoding.

pub mod ids;
pub mod int64;
pub mod keys;
pub mod serde_bridge;
pub mod validator;
pub mod value;

pub use ids::{DocumentId, IndexId, TableNumber, index_id, table_number};
pub use serde_bridge::{from_value, to_value};
pub use validator::{Field, Validator, v};
pub use value::{Value, check_document_limits};

#[cfg(test)]
mod proptests;
