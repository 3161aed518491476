//! Live meeting transcripts (issue 5): ingestion with a per-meeting
//! sequence, 5-minute buckets, live reads by sequence cursor, segment
//! aggregation, full-text search and retention.

use database::TableDef;
use runtime::Registry;

/// The transcript tables.
pub fn tables() -> Vec<TableDef> {
    Vec::new()
}

/// Registers the transcript functions and crons.
pub fn register(_registry: &mut Registry) {}

/// The transcripts domain's personal-data sections (export and erasure).
pub fn data_sections() -> Vec<crate::users::data_protection::DataSection> {
    Vec::new()
}
