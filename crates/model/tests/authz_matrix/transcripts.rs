//! Authorization-matrix rows of the `transcripts/*` functions (see the parent
//! module for callers, fixtures and outcomes).

use super::Row;

/// One or more rows per public `transcripts/*` function.
pub(super) fn rows() -> Vec<Row> {
    Vec::new()
}
