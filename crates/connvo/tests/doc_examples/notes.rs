//! Example-alignment cases of the `notes/*` functions (one per public
//! function; see the parent module for how a case is checked).

use super::Case;

/// The cases of the `notes/*` public functions.
pub(super) fn cases() -> Vec<Case> {
    Vec::new()
}
