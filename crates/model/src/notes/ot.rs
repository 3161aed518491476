//! Operational transform for meeting notes, on UTF-16 offsets.
//!
//! # Operations
//!
//! An [`Operation`] is one edit of a plain-text document, in the original's
//! wire format `{type: "insert"|"delete"|"retain", position, content?,
//! length?}`. Positions and lengths count **UTF-16 code units**, exactly as
//! JavaScript strings count them (`"😀".length == 2`), so offsets sent by
//! browser clients and offsets stored in the op log mean the same thing on
//! both sides. `retain` changes nothing; it is what a delete becomes when a
//! concurrent delete already removed everything it targeted.
//!
//! # Validation
//!
//! [`validate`] checks an operation against the document it is about to be
//! applied to and returns an [`OtError`], never panics:
//!
//! * an insert needs non-empty content and `position <= len(doc)`;
//! * a delete needs `length > 0` and `position + length <= len(doc)`;
//! * a retain needs `position + length <= len(doc)` (`length` may be 0);
//! * **an offset that falls between the two halves of a surrogate pair is
//!   rejected** ([`OtError::SplitsSurrogatePair`]), for the insert position
//!   and for both ends of a delete. We reject rather than clamp: clamping
//!   would silently edit a different range than the client showed its user,
//!   and a conforming client (one that edits whole code points) never sends
//!   such an offset. A Rust `String` cannot hold a lone surrogate, so the
//!   document can never be corrupted into one either. A retain changes
//!   nothing, so only its bounds are checked.
//!
//! [`apply`] validates, then edits.
//!
//! # Transform
//!
//! [`transform`]`(a, b, side)` rewrites `a` so that it applies to the
//! document *after* `b`, both having been generated on the same document.
//! Because a delete whose range receives a concurrent insert keeps that
//! insert (see below), the rewritten delete may become two deletes, so the
//! result is a short **sequence** of operations, applied one after the
//! other. The rules (`p`/`q` are the positions of `a`/`b`; ranges are
//! half-open):
//!
//! * **insert vs insert** — `b` before `a` shifts `a` right by `b`'s length;
//!   at the *same* position the `side` argument decides: [`Side::Left`]
//!   keeps `a` in place (its text ends up first), [`Side::Right`] shifts it
//!   past `b`'s text. Each pair of replicas must use opposite sides for the
//!   two directions of the same pair (the server-and-client protocol below
//!   does).
//! * **insert vs delete** — before or at the start of the deleted range:
//!   unchanged; at or after its end: shifted left by the deleted length;
//!   strictly inside: moved to the start of the deleted range. **The insert
//!   survives**; a concurrent delete never removes text it did not see.
//! * **delete vs insert** — insert at or before the start: shifted right;
//!   at or after the end: unchanged; strictly inside: **split** into a
//!   delete of the part before the insert and a delete of the part after
//!   it, so that the inserted text survives (this is the mirror of the
//!   previous rule; the original grew the delete instead and diverged).
//! * **delete vs delete** — `a` keeps exactly the part of its range that
//!   `b` did not already remove (both endpoints are mapped through `b`); if
//!   nothing is left it becomes `retain(position, 0)`. With a shared start
//!   the remainder starts at `b`'s position (the original used `b`'s end
//!   and diverged).
//! * **retain** is mapped like a delete range (it may grow over an insert
//!   inside it, it never splits); anything transformed against a retain is
//!   unchanged.
//!
//! [`transform_sequences`] extends this to two sequences (the usual OT grid:
//! every operation of one side is pushed through every operation of the
//! other); [`transform_against_all`] is the server's "transform against
//! every operation committed since the client's base version".
//!
//! # Guarantees (all proved by `tests/notes_ot.rs`, thousands of generated cases)
//!
//! 1. **TP1.** For operations `a`, `b` valid on `d`:
//!    `apply(apply(d, a), transform(b, a, s.flip())) ==
//!    apply(apply(d, b), transform(a, b, s))`, and the same for sequences
//!    ([`transform_sequences`]). Every transformed operation is valid on the
//!    document it is applied to (no error, so no split surrogate pair).
//! 2. **Convergence** under the client/server protocol (ot.js / Google
//!    Wave): the server linearizes, transforming each incoming operation
//!    with [`transform_against_all`] against everything committed since the
//!    client's base version; a client keeps its unacknowledged operations
//!    and transforms each broadcast operation against them with
//!    [`transform_sequences`] (its pending operations on [`Side::Right`], the
//!    server's on [`Side::Left`], the same roles as on the server). Every
//!    client ends with the server's text. TP2 is *not* claimed, so
//!    peer-to-peer use without a linearizing server is not supported.
//! 3. **Delete intent.** The final document contains exactly the characters
//!    of the initial document and of every insert, minus those that some
//!    delete *selected* when it was generated (in its author's view). A
//!    concurrent insert inside a deleted range is never removed.
//! 4. **Insert integrity.** An insert's content is never altered or split by
//!    a transform. In the final document it is contiguous and intact unless
//!    an operation generated *after its author saw it* deleted part of it or
//!    inserted inside it; concurrent inserts at the same place never
//!    interleave.
//! 5. **Order.** Two surviving characters appear in the final document in
//!    the order any replica ever saw them in.
//!
//! Tie-break: with [`transform_against_all`] the incoming operation goes
//! [`Side::Right`] of what was committed first, so concurrent inserts at the
//! same position appear in the order the server received them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One edit, in the original's wire format. Offsets count UTF-16 code units.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Operation {
    /// Insert `content` before the code unit at `position`.
    Insert {
        /// Offset of the insertion point (UTF-16 code units).
        position: usize,
        /// The inserted text (non-empty).
        content: String,
    },
    /// Remove `length` code units starting at `position`.
    Delete {
        /// Offset of the first removed code unit.
        position: usize,
        /// Number of removed code units (> 0).
        length: usize,
    },
    /// No change; the result of a delete that was fully cancelled by a
    /// concurrent delete (`length` 0), or a client's cursor-like range.
    Retain {
        /// Offset of the range.
        position: usize,
        /// Length of the range (may be 0).
        length: usize,
    },
}

impl Operation {
    /// `insert(position, content)`.
    pub fn insert(position: usize, content: impl Into<String>) -> Self {
        Operation::Insert {
            position,
            content: content.into(),
        }
    }

    /// `delete(position, length)`.
    pub fn delete(position: usize, length: usize) -> Self {
        Operation::Delete { position, length }
    }

    /// `retain(position, length)`.
    pub fn retain(position: usize, length: usize) -> Self {
        Operation::Retain { position, length }
    }

    /// The operation's position (UTF-16 code units).
    pub fn position(&self) -> usize {
        match self {
            Operation::Insert { position, .. }
            | Operation::Delete { position, .. }
            | Operation::Retain { position, .. } => *position,
        }
    }

    /// Whether applying the operation leaves every document unchanged.
    pub fn is_noop(&self) -> bool {
        matches!(self, Operation::Retain { .. })
    }
}

/// Which of two concurrent inserts at the same position ends up first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The transformed operation's text goes before the other's.
    Left,
    /// The transformed operation's text goes after the other's.
    Right,
}

impl Side {
    /// The other side: the one to use when transforming the other operation
    /// of the same pair.
    pub fn flip(self) -> Self {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// Why an operation cannot be applied to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtError {
    /// An insert with empty content.
    EmptyInsert {
        /// The insert's position.
        position: usize,
    },
    /// A delete of zero code units.
    EmptyDelete {
        /// The delete's position.
        position: usize,
    },
    /// The operation reaches past the end of the document.
    OutOfBounds {
        /// The operation's position.
        position: usize,
        /// The operation's length (0 for an insert).
        length: usize,
        /// The document's length in UTF-16 code units.
        document_length: usize,
    },
    /// An offset falls between the high and the low half of a surrogate
    /// pair (inside an emoji or another character outside the BMP).
    SplitsSurrogatePair {
        /// The offending offset (UTF-16 code units).
        offset: usize,
    },
}

impl fmt::Display for OtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtError::EmptyInsert { position } => {
                write!(f, "insert at {position} has empty content")
            }
            OtError::EmptyDelete { position } => {
                write!(f, "delete at {position} has length 0")
            }
            OtError::OutOfBounds {
                position,
                length,
                document_length,
            } => write!(
                f,
                "operation at {position} with length {length} is out of bounds \
                 for a document of {document_length} UTF-16 code units"
            ),
            OtError::SplitsSurrogatePair { offset } => {
                write!(f, "offset {offset} splits a surrogate pair")
            }
        }
    }
}

impl std::error::Error for OtError {}

impl From<OtError> for errors::Error {
    fn from(error: OtError) -> Self {
        errors::Error::validation(format!("Failed to apply operation: {error}"))
    }
}

/// Length of `s` in UTF-16 code units (JavaScript's `s.length`).
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Byte offset of UTF-16 offset `target`, scanning from a known
/// (`from_byte`, `from_units`) boundary. `target` must be ≤ the length.
fn byte_offset(
    doc: &str,
    from_byte: usize,
    from_units: usize,
    target: usize,
) -> Result<usize, OtError> {
    let mut units = from_units;
    for (i, ch) in doc[from_byte..].char_indices() {
        if units == target {
            return Ok(from_byte + i);
        }
        units += ch.len_utf16();
        if units > target {
            return Err(OtError::SplitsSurrogatePair { offset: target });
        }
    }
    // Bounds were checked by the caller, so `units == target` here.
    Ok(doc.len())
}

/// Checks `op` against `doc` and returns the byte range it touches.
fn byte_range(doc: &str, op: &Operation) -> Result<(usize, usize), OtError> {
    let (position, length) = match op {
        Operation::Insert { position, content } => {
            if content.is_empty() {
                return Err(OtError::EmptyInsert {
                    position: *position,
                });
            }
            (*position, 0)
        }
        Operation::Delete { position, length } => {
            if *length == 0 {
                return Err(OtError::EmptyDelete {
                    position: *position,
                });
            }
            (*position, *length)
        }
        Operation::Retain { position, length } => (*position, *length),
    };
    let document_length = utf16_len(doc);
    let out_of_bounds = OtError::OutOfBounds {
        position,
        length,
        document_length,
    };
    let end = position.checked_add(length).ok_or(out_of_bounds.clone())?;
    if end > document_length {
        return Err(out_of_bounds);
    }
    if op.is_noop() {
        return Ok((0, 0));
    }
    let start_byte = byte_offset(doc, 0, 0, position)?;
    let end_byte = if length == 0 {
        start_byte
    } else {
        byte_offset(doc, start_byte, position, end)?
    };
    Ok((start_byte, end_byte))
}

/// Checks that `op` can be applied to `doc` (see the module docs for the
/// rules). Never panics.
pub fn validate(doc: &str, op: &Operation) -> Result<(), OtError> {
    byte_range(doc, op).map(|_| ())
}

/// Applies `op` to `doc`, offsets in UTF-16 code units.
pub fn apply(doc: &str, op: &Operation) -> Result<String, OtError> {
    let (start, end) = byte_range(doc, op)?;
    Ok(match op {
        Operation::Insert { content, .. } => {
            let mut out = String::with_capacity(doc.len() + content.len());
            out.push_str(&doc[..start]);
            out.push_str(content);
            out.push_str(&doc[start..]);
            out
        }
        Operation::Delete { .. } => {
            let mut out = String::with_capacity(doc.len() - (end - start));
            out.push_str(&doc[..start]);
            out.push_str(&doc[end..]);
            out
        }
        Operation::Retain { .. } => doc.to_owned(),
    })
}

/// Applies `ops` one after the other.
pub fn apply_all(doc: &str, ops: &[Operation]) -> Result<String, OtError> {
    let mut out = doc.to_owned();
    for op in ops {
        out = apply(&out, op)?;
    }
    Ok(out)
}

/// Where offset `p` ends up after deleting `[q, q + m)`.
fn map_through_delete(p: usize, q: usize, m: usize) -> usize {
    let end = q.saturating_add(m);
    if p <= q {
        p
    } else if p >= end {
        p - m
    } else {
        q
    }
}

/// Rewrites `a` so that it applies after `b` (both generated on the same
/// document). `side` breaks the tie between two inserts at the same
/// position: [`Side::Left`] puts `a`'s text first. The result is applied in
/// order; it has one operation, or two when `a` is a delete whose range
/// contains `b`'s insertion point (the inserted text survives between
/// them). Transforming `b` against `a` must use `side.flip()`.
pub fn transform(a: &Operation, b: &Operation, side: Side) -> Vec<Operation> {
    use Operation::{Delete, Insert, Retain};
    match (a, b) {
        (_, Retain { .. }) => vec![a.clone()],
        (
            Insert { position, content },
            Insert {
                position: q,
                content: t,
            },
        ) => {
            let shift = *q < *position || (*q == *position && side == Side::Right);
            let position = if shift {
                position.saturating_add(utf16_len(t))
            } else {
                *position
            };
            vec![Operation::insert(position, content.clone())]
        }
        (
            Insert { position, content },
            Delete {
                position: q,
                length: m,
            },
        ) => vec![Operation::insert(
            map_through_delete(*position, *q, *m),
            content.clone(),
        )],
        (
            Delete { position, length } | Retain { position, length },
            Insert {
                position: q,
                content: t,
            },
        ) => {
            let (p, n, q, t) = (*position, *length, *q, utf16_len(t));
            let end = p.saturating_add(n);
            if q <= p {
                vec![with_range(a, p.saturating_add(t), n)]
            } else if q >= end {
                vec![a.clone()]
            } else if a.is_noop() {
                vec![Operation::retain(p, n.saturating_add(t))]
            } else {
                // The insert lands strictly inside the deleted range: delete
                // the part before it, then (after the first delete the
                // inserted text sits at `p`) the part after it.
                vec![
                    Operation::delete(p, q - p),
                    Operation::delete(p.saturating_add(t), end - q),
                ]
            }
        }
        (
            Delete { position, length } | Retain { position, length },
            Delete {
                position: q,
                length: m,
            },
        ) => {
            let start = map_through_delete(*position, *q, *m);
            let end = map_through_delete(position.saturating_add(*length), *q, *m);
            let length = end.saturating_sub(start);
            if length == 0 {
                vec![Operation::retain(start, 0)]
            } else {
                vec![with_range(a, start, length)]
            }
        }
    }
}

/// `op` (a delete or a retain) moved to a new range.
fn with_range(op: &Operation, position: usize, length: usize) -> Operation {
    match op {
        Operation::Delete { .. } => Operation::delete(position, length),
        _ => Operation::retain(position, length),
    }
}

/// Pushes one operation through a sequence: `(a after b, b after a)`.
fn one_against_sequence(
    a: &Operation,
    b: &[Operation],
    side: Side,
) -> (Vec<Operation>, Vec<Operation>) {
    let mut a_current = vec![a.clone()];
    let mut b_out = Vec::with_capacity(b.len());
    for b_op in b {
        let (a_next, b_pieces) = sequence_against_one(&a_current, b_op, side);
        a_current = a_next;
        b_out.extend(b_pieces);
    }
    (a_current, b_out)
}

/// Pushes a sequence through one operation: `(a after b, b after a)`.
fn sequence_against_one(
    a: &[Operation],
    b: &Operation,
    side: Side,
) -> (Vec<Operation>, Vec<Operation>) {
    if let [single] = a {
        return (
            transform(single, b, side),
            transform(b, single, side.flip()),
        );
    }
    let mut b_current = vec![b.clone()];
    let mut a_out = Vec::with_capacity(a.len());
    for a_op in a {
        let (a_pieces, b_next) = one_against_sequence(a_op, &b_current, side);
        a_out.extend(a_pieces);
        b_current = b_next;
    }
    (a_out, b_current)
}

/// Transforms two concurrent sequences (each applied in order, both
/// generated on the same document) against each other and returns
/// `(a', b')` with `apply_all(apply_all(d, a), b') == apply_all(apply_all(d,
/// b), a')`. `side` is `a`'s side in insert ties (`b` gets the other one).
///
/// A client uses this to rebase its pending operations (`a`, on
/// [`Side::Right`]) over an operation broadcast by the server (`b`), and
/// applies `b'` to its document.
pub fn transform_sequences(
    a: &[Operation],
    b: &[Operation],
    side: Side,
) -> (Vec<Operation>, Vec<Operation>) {
    let mut b_current = b.to_vec();
    let mut a_out = Vec::with_capacity(a.len());
    for a_op in a {
        let (a_pieces, b_next) = one_against_sequence(a_op, &b_current, side);
        a_out.extend(a_pieces);
        b_current = b_next;
    }
    (a_out, b_current)
}

/// The server's step: rewrites `op`, generated on the document at the
/// client's base version, so that it applies after `committed_since_base`
/// (every operation committed since that version, in commit order). The
/// incoming operation takes [`Side::Right`]: at a tie its text goes after
/// the text committed first. A client's batch of sequential operations
/// (one base version) goes through [`transform_sequences`] with
/// [`Side::Right`] instead, so that the batch is not treated as concurrent
/// with itself (the original's batch defect).
pub fn transform_against_all(op: &Operation, committed_since_base: &[Operation]) -> Vec<Operation> {
    one_against_sequence(op, committed_since_base, Side::Right).0
}
