//! Collaborative meeting notes (issue 5).
//!
//! * [`ot`] — the operational transform on UTF-16 offsets: the operation
//!   format of the original (`{type: insert|delete|retain, position,
//!   content?, length?}`), validation, application, and a transform that
//!   converges (proved by `tests/notes_ot.rs`).
//!
//! The functions (`notes/mutations:*`, `notes/queries:*`, `notes/offline:*`)
//! build on [`ot`].

pub mod ot;

use database::TableDef;
use runtime::Registry;

/// The notes tables.
pub fn tables() -> Vec<TableDef> {
    Vec::new()
}

/// Registers the notes functions and crons.
pub fn register(_registry: &mut Registry) {}

/// The notes domain's personal-data sections (export and erasure).
pub fn data_sections() -> Vec<crate::users::data_protection::DataSection> {
    Vec::new()
}
