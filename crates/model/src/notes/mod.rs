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
