//! Authorization-matrix rows of the `notes/*` functions (see the parent
//! module for callers, fixtures and outcomes).

use super::Row;

/// One or more rows per public `notes/*` function.
pub(super) fn rows() -> Vec<Row> {
    Vec::new()
}
