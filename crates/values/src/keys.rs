//! Order-preserving index key encoding.
//!
//! Index keys are byte strings compared with `memcmp`. The encoding here makes
//! that comparison agree exactly with [`Value::total_cmp`], with an absent
//! field ("undefined") below every value. Each encoded component is
//! self-delimiting (no encoding is a proper prefix of another), so a key made
//! of several concatenated components compares like the tuple of its values.
//!
//! | component | encoding |
//! |---|---|
//! | undefined (absent field) | `0x01` |
//! | null | `0x02` |
//! | int64 | `0x03`, 8 bytes big-endian with the sign bit flipped |
//! | float64 | `0x04`, 8 bytes: the bits big-endian; all bits flipped if the sign bit is set, else only the sign bit |
//! | boolean | `0x05`, then `0x00` (false) or `0x01` (true) |
//! | string | `0x06`, the UTF-8 bytes with every `0x00` escaped as `0x00 0xFF`, then `0x00 0x00` |
//! | bytes | `0x07`, escaped and terminated like a string |
//! | array | `0x08`, each element encoded in turn, then `0x00` |
//! | object | `0x09`, for each field in name order `0x01`, the name escaped and terminated like a string (no tag), the value; then `0x00` |
//! | document id | `0x0B`, the 20 raw id bytes ([`DocumentId::to_bytes`]) |
//!
//! Every component starts with a tag of at most `0x0B`, so
//! [`prefix_successor`] (the prefix followed by `0xFF`) bounds from above every
//! key that starts with a complete encoded prefix.
//!
//! The `0x01` before each object field separates "another field follows" from
//! the end of the object (`0x00`); without it an empty field name (encoded as
//! `0x00 0x00`) would sort below the end of the object.

use crate::ids::DocumentId;
use crate::value::Value;

/// Tag of an absent field.
pub const TAG_UNDEFINED: u8 = 0x01;
/// Tag of null.
pub const TAG_NULL: u8 = 0x02;
/// Tag of int64.
pub const TAG_INT64: u8 = 0x03;
/// Tag of float64.
pub const TAG_FLOAT64: u8 = 0x04;
/// Tag of boolean.
pub const TAG_BOOLEAN: u8 = 0x05;
/// Tag of string.
pub const TAG_STRING: u8 = 0x06;
/// Tag of bytes.
pub const TAG_BYTES: u8 = 0x07;
/// Tag of array.
pub const TAG_ARRAY: u8 = 0x08;
/// Tag of object.
pub const TAG_OBJECT: u8 = 0x09;
/// Tag of a document id.
pub const TAG_ID: u8 = 0x0B;

/// Marks that another field of an object follows.
const FIELD_MARKER: u8 = 0x01;
/// Ends an array or object.
const END: u8 = 0x00;

/// Appends the encoding of `value` to `out`; `None` is an absent field
/// ("undefined"), which sorts below every value.
pub fn encode_value(out: &mut Vec<u8>, value: Option<&Value>) {
    let Some(value) = value else {
        out.push(TAG_UNDEFINED);
        return;
    };
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Int64(i) => {
            out.push(TAG_INT64);
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Float64(f) => {
            out.push(TAG_FLOAT64);
            let bits = f.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits ^ (1 << 63)
            };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        Value::Boolean(b) => {
            out.push(TAG_BOOLEAN);
            out.push(u8::from(*b));
        }
        Value::String(s) => {
            out.push(TAG_STRING);
            encode_escaped(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(TAG_BYTES);
            encode_escaped(out, b);
        }
        Value::Array(items) => {
            out.push(TAG_ARRAY);
            for item in items {
                encode_value(out, Some(item));
            }
            out.push(END);
        }
        Value::Object(fields) => {
            out.push(TAG_OBJECT);
            for (name, field) in fields {
                out.push(FIELD_MARKER);
                encode_escaped(out, name.as_bytes());
                encode_value(out, Some(field));
            }
            out.push(END);
        }
    }
}

/// Appends the encoding of a document id: `0x0B` and its 20 raw bytes.
pub fn encode_id(out: &mut Vec<u8>, id: &DocumentId) {
    out.push(TAG_ID);
    out.extend_from_slice(&id.to_bytes());
}

/// An exclusive upper bound above every key that starts with the complete
/// encoded prefix `prefix`: `prefix ‖ 0xFF`.
pub fn prefix_successor(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 1);
    out.extend_from_slice(prefix);
    out.push(0xFF);
    out
}

/// `0x00` becomes `0x00 0xFF`; the result ends with `0x00 0x00`.
fn encode_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn enc(v: Option<&Value>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(&mut out, v);
        out
    }

    #[test]
    fn fixed_encodings() {
        assert_eq!(enc(None), [0x01]);
        assert_eq!(enc(Some(&Value::Null)), [0x02]);
        assert_eq!(
            enc(Some(&Value::Int64(0))),
            [0x03, 0x80, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(Some(&Value::Int64(-1))),
            [0x03, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            enc(Some(&Value::Float64(0.0))),
            [0x04, 0x80, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(Some(&Value::Float64(-0.0))),
            [0x04, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(enc(Some(&Value::Boolean(true))), [0x05, 0x01]);
        assert_eq!(
            enc(Some(&Value::from("a\0b"))),
            [0x06, b'a', 0, 0xFF, b'b', 0, 0]
        );
        assert_eq!(enc(Some(&Value::Bytes(vec![]))), [0x07, 0, 0]);
        assert_eq!(
            enc(Some(&Value::Array(vec![Value::Null]))),
            [0x08, 0x02, 0x00]
        );
        assert_eq!(
            enc(Some(&Value::object([("a", Value::Null)]))),
            [0x09, 0x01, b'a', 0, 0, 0x02, 0x00]
        );
        let id = DocumentId::new(crate::ids::TableNumber(1), [7; 16]);
        let mut out = Vec::new();
        encode_id(&mut out, &id);
        assert_eq!(out[0], 0x0B);
        assert_eq!(&out[1..], id.to_bytes());
        assert_eq!(prefix_successor(&[1, 2]), [1, 2, 0xFF]);
    }

    #[test]
    fn empty_field_name_orders_correctly() {
        let empty = Value::Object(BTreeMap::new());
        let with_empty_name = Value::object([("", Value::Null)]);
        assert!(empty < with_empty_name);
        let mut a = enc(Some(&empty));
        encode_value(&mut a, Some(&Value::Float64(1.0)));
        let mut b = enc(Some(&with_empty_name));
        encode_value(&mut b, Some(&Value::Null));
        assert!(a < b);
    }
}
