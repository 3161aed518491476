//! The Convex value model and its JSON encodings.
//!
//! [`Value`] is the in-memory form of every document, function argument and
//! function result. It has three JSON forms:
//!
//! * **Convex-encoded JSON** ([`Value::from_json`], [`Value::to_json`]): the
//!   lossless wire form of `convexToJson` / `jsonToConvex`. Int64, bytes and the
//!   special floats (NaN, ±Infinity, −0) travel as single-key objects
//!   `{"$integer": …}`, `{"$bytes": …}` and `{"$float": …}` holding standard,
//!   padded base64 of little-endian bytes.
//! * **Clean JSON** ([`Value::to_clean_json`]): the lossy `"json"` export format
//!   (int64 as a decimal string, bytes as plain base64, special floats as strings).
//!
//! # Equality and order
//!
//! `Value` implements `Eq`, `Ord` and `Hash` consistently with
//! [`Value::total_cmp`], Convex's total order: `NaN == NaN` (when the bit
//! patterns agree) and `-0.0 != 0.0`, unlike `f64`'s IEEE comparison. This is
//! the order index keys (see [`crate::keys`]) preserve.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use base64::Engine as _;
use errors::{Error, Result};

/// Maximum encoded size of a document ([`Value::size`]), in bytes (1 MiB).
pub const MAX_DOCUMENT_SIZE: usize = 1 << 20;
/// Maximum nesting depth of arrays and objects inside a document (the
/// document object itself is depth 1).
pub const MAX_DOCUMENT_NESTING: usize = 16;
/// Maximum number of fields of one object inside a document.
pub const MAX_OBJECT_FIELDS: usize = 1024;
/// Maximum number of elements of one array inside a document.
pub const MAX_ARRAY_ELEMENTS: usize = 8192;
/// Maximum nesting depth accepted by [`Value::from_json`]; deeper input is
/// rejected before it can exhaust the stack.
pub const MAX_JSON_NESTING: usize = 64;
/// Maximum length of an object field name, in characters.
pub const MAX_FIELD_NAME_LEN: usize = 1024;

/// Standard base64 with padding on output; decoding accepts padded or unpadded
/// input (the official client always pads).
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// A Convex value.
///
/// Objects keep their fields in a [`BTreeMap`], so they are always sorted by
/// field name (bytewise), which is also the order Convex clients encode them in.
#[derive(Debug, Clone)]
pub enum Value {
    /// `null`.
    Null,
    /// A 64-bit signed integer (`bigint` in JavaScript).
    Int64(i64),
    /// A 64-bit float (`number` in JavaScript).
    Float64(f64),
    /// A boolean.
    Boolean(bool),
    /// A UTF-8 string.
    String(String),
    /// A byte string (`ArrayBuffer` in JavaScript).
    Bytes(Vec<u8>),
    /// An array of values.
    Array(Vec<Value>),
    /// An object with string field names.
    Object(BTreeMap<String, Value>),
}

impl Value {
    /// Decodes Convex-encoded JSON (`jsonToConvex`).
    ///
    /// * JSON numbers always become [`Value::Float64`], even when integral.
    /// * `{"$integer": b64}` must hold exactly 8 little-endian bytes.
    /// * `{"$float": b64}` must hold 8 little-endian bytes of NaN, ±Infinity or
    ///   −0; ordinary numbers must be sent as JSON numbers and are rejected.
    /// * `{"$bytes": b64}` holds standard base64.
    /// * Any other field name starting with `$` is rejected, as are field names
    ///   with characters outside ASCII 32–126 or longer than
    ///   [`MAX_FIELD_NAME_LEN`].
    /// * Nesting deeper than [`MAX_JSON_NESTING`] is rejected.
    ///
    /// Malformed encodings are `BAD_REQUEST` errors; too deep nesting is a
    /// `LIMIT_EXCEEDED` error.
    pub fn from_json(json: serde_json::Value) -> Result<Value> {
        from_json_at(json, 0)
    }

    /// Encodes the value as Convex-encoded JSON (`convexToJson`).
    ///
    /// Finite floats other than −0 become JSON numbers; integral ones are
    /// printed without a fraction (`10`, not `10.0`), like `JSON.stringify`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Int64(i) => special_object("$integer", BASE64.encode(i.to_le_bytes())),
            Value::Float64(f) => {
                if is_special_float(*f) {
                    special_object("$float", BASE64.encode(f.to_le_bytes()))
                } else {
                    finite_float_json(*f)
                }
            }
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Bytes(b) => special_object("$bytes", BASE64.encode(b)),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Encodes the value in Convex's lossy "clean JSON" export format: int64
    /// as a decimal string, bytes as a plain base64 string, NaN / ±Infinity as
    /// the strings `"NaN"`, `"Infinity"`, `"-Infinity"`, and −0 as `0`.
    pub fn to_clean_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Int64(i) => serde_json::Value::String(i.to_string()),
            Value::Float64(f) => {
                if f.is_nan() {
                    "NaN".into()
                } else if *f == f64::INFINITY {
                    "Infinity".into()
                } else if *f == f64::NEG_INFINITY {
                    "-Infinity".into()
                } else {
                    // `-0.0 == 0.0`, so −0 prints as 0 here.
                    finite_float_json(if *f == 0.0 { 0.0 } else { *f })
                }
            }
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Bytes(b) => serde_json::Value::String(BASE64.encode(b)),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_clean_json).collect())
            }
            Value::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_clean_json()))
                    .collect(),
            ),
        }
    }

    /// Approximate encoded size in bytes, used for the document size limit:
    /// null and booleans 1, numbers 9, strings and bytes their length + 2,
    /// arrays 2 + the sum of their elements, objects 2 + the sum over fields of
    /// (name length + 1 + value size).
    pub fn size(&self) -> usize {
        match self {
            Value::Null | Value::Boolean(_) => 1,
            Value::Int64(_) | Value::Float64(_) => 9,
            Value::String(s) => s.len() + 2,
            Value::Bytes(b) => b.len() + 2,
            Value::Array(items) => 2 + items.iter().map(Value::size).sum::<usize>(),
            Value::Object(fields) => {
                2 + fields
                    .iter()
                    .map(|(k, v)| k.len() + 1 + v.size())
                    .sum::<usize>()
            }
        }
    }

    /// Convex's total order over values:
    /// `Null < Int64 < Float64 < Boolean < String < Bytes < Array < Object`.
    ///
    /// Floats compare with [`f64::total_cmp`] (so `-0.0 < 0.0` and NaN is
    /// ordered), strings and bytes bytewise, arrays lexicographically, and
    /// objects lexicographically by their `(field name, value)` pairs in field
    /// name order. An absent field ("undefined") sorts before every value; see
    /// [`crate::keys`].
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Int64(a), Value::Int64(b)) => a.cmp(b),
            (Value::Float64(a), Value::Float64(b)) => a.total_cmp(b),
            (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
            (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            // Element-wise through `Ord for Value`, which is `total_cmp`.
            (Value::Array(a), Value::Array(b)) => a.iter().cmp(b.iter()),
            (Value::Object(a), Value::Object(b)) => a.iter().cmp(b.iter()),
            _ => self.type_rank().cmp(&other.type_rank()),
        }
    }

    /// The position of the value's type in the total order.
    fn type_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Int64(_) => 1,
            Value::Float64(_) => 2,
            Value::Boolean(_) => 3,
            Value::String(_) => 4,
            Value::Bytes(_) => 5,
            Value::Array(_) => 6,
            Value::Object(_) => 7,
        }
    }

    /// The Convex name of the value's type (`"null"`, `"int64"`, `"float64"`,
    /// `"boolean"`, `"string"`, `"bytes"`, `"array"`, `"object"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int64(_) => "int64",
            Value::Float64(_) => "float64",
            Value::Boolean(_) => "boolean",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string, if the value is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if the value is a float64.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float64(f) => Some(*f),
            _ => None,
        }
    }

    /// The integer, if the value is an int64.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int64(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, if the value is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The bytes, if the value is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if the value is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The fields, if the value is an object.
    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Object(fields) => Some(fields),
            _ => None,
        }
    }

    /// The fields, mutably, if the value is an object.
    pub fn as_object_mut(&mut self) -> Option<&mut BTreeMap<String, Value>> {
        match self {
            Value::Object(fields) => Some(fields),
            _ => None,
        }
    }

    /// The value of `field`, if the value is an object that has it.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.as_object().and_then(|fields| fields.get(field))
    }

    /// Builds an object from `(name, value)` pairs; a later duplicate name
    /// replaces an earlier one.
    pub fn object<I, K, V>(fields: I) -> Value
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Checks the document limits: encoded size at most [`MAX_DOCUMENT_SIZE`],
/// nesting depth at most [`MAX_DOCUMENT_NESTING`], at most
/// [`MAX_OBJECT_FIELDS`] fields per object and at most [`MAX_ARRAY_ELEMENTS`]
/// elements per array. Violations are `LIMIT_EXCEEDED` errors naming the limit
/// and the actual figure.
pub fn check_document_limits(value: &Value) -> Result<()> {
    let size = limits_walk(value, 1)?;
    if size > MAX_DOCUMENT_SIZE {
        return Err(Error::limit(format!(
            "Document is too large: {size} bytes, the limit is {MAX_DOCUMENT_SIZE} bytes"
        )));
    }
    Ok(())
}

/// Checks nesting and count limits, stopping before it recurses past the
/// nesting limit, and returns the size (as [`Value::size`]).
fn limits_walk(value: &Value, depth: usize) -> Result<usize> {
    match value {
        Value::Array(items) => {
            check_depth(depth)?;
            if items.len() > MAX_ARRAY_ELEMENTS {
                return Err(Error::limit(format!(
                    "Array is too long: {} elements, the limit is {MAX_ARRAY_ELEMENTS}",
                    items.len()
                )));
            }
            let mut size = 2;
            for item in items {
                size += limits_walk(item, depth + 1)?;
            }
            Ok(size)
        }
        Value::Object(fields) => {
            check_depth(depth)?;
            if fields.len() > MAX_OBJECT_FIELDS {
                return Err(Error::limit(format!(
                    "Object has too many fields: {} fields, the limit is {MAX_OBJECT_FIELDS}",
                    fields.len()
                )));
            }
            let mut size = 2;
            for (k, v) in fields {
                size += k.len() + 1 + limits_walk(v, depth + 1)?;
            }
            Ok(size)
        }
        scalar => Ok(scalar.size()),
    }
}

fn check_depth(depth: usize) -> Result<()> {
    if depth > MAX_DOCUMENT_NESTING {
        return Err(Error::limit(format!(
            "Document is nested too deeply: depth {depth} exceeds the limit of \
             {MAX_DOCUMENT_NESTING}"
        )));
    }
    Ok(())
}

/// Whether a float needs the `$float` encoding: NaN, ±Infinity or −0.
pub(crate) fn is_special_float(f: f64) -> bool {
    !f.is_finite() || (f == 0.0 && f.is_sign_negative())
}

/// 2^63 as an f64: integral floats below this magnitude fit an i64 exactly.
pub(crate) const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// A finite float as a JSON number, integral values without a fraction.
pub(crate) fn finite_float_json(f: f64) -> serde_json::Value {
    if f.fract() == 0.0 && f.abs() < TWO_POW_63 {
        // Exact: `f` is integral and within i64 range.
        serde_json::Value::Number((f as i64).into())
    } else {
        serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

fn special_object(key: &str, encoded: String) -> serde_json::Value {
    let mut map = serde_json::Map::with_capacity(1);
    map.insert(key.to_owned(), serde_json::Value::String(encoded));
    serde_json::Value::Object(map)
}

fn from_json_at(json: serde_json::Value, depth: usize) -> Result<Value> {
    Ok(match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(b),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) => Value::Float64(f),
            None => return Err(Error::bad_request(format!("Unsupported JSON number {n}"))),
        },
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => {
            check_json_depth(depth + 1)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(from_json_at(item, depth + 1)?);
            }
            Value::Array(out)
        }
        serde_json::Value::Object(map) => {
            if map.len() == 1
                && let Some((key, inner)) = map.iter().next()
                && key.starts_with('$')
            {
                return decode_special(key, inner);
            }
            check_json_depth(depth + 1)?;
            let mut out = BTreeMap::new();
            for (key, inner) in map {
                validate_field_name(&key)?;
                let value = from_json_at(inner, depth + 1)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
    })
}

fn check_json_depth(depth: usize) -> Result<()> {
    if depth > MAX_JSON_NESTING {
        return Err(Error::limit(format!(
            "Value is nested too deeply: more than {MAX_JSON_NESTING} levels"
        )));
    }
    Ok(())
}

/// Checks a field name of a Convex-encoded object: no leading `$`, only ASCII
/// 32–126, at most [`MAX_FIELD_NAME_LEN`] characters.
pub fn validate_field_name(name: &str) -> Result<()> {
    if name.len() > MAX_FIELD_NAME_LEN {
        return Err(Error::bad_request(format!(
            "Field name {}… is too long ({} characters, the limit is {MAX_FIELD_NAME_LEN})",
            truncate(name, 40),
            name.chars().count()
        )));
    }
    if name.starts_with('$') {
        return Err(Error::bad_request(format!(
            "Field name {name} starts with a '$', which is reserved"
        )));
    }
    if let Some(c) = name.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(Error::bad_request(format!(
            "Field name {name:?} has invalid character {c:?}: field names may only contain \
             printable ASCII characters"
        )));
    }
    Ok(())
}

fn decode_special(key: &str, inner: &serde_json::Value) -> Result<Value> {
    let decode = |what: &str| -> Result<Vec<u8>> {
        let Some(text) = inner.as_str() else {
            return Err(Error::bad_request(format!(
                "{what} must hold a base64 string"
            )));
        };
        BASE64
            .decode(text)
            .map_err(|e| Error::bad_request(format!("{what} holds invalid base64: {e}")))
    };
    match key {
        "$integer" => {
            let bytes = decode("$integer")?;
            let array: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                Error::bad_request(format!(
                    "$integer must hold exactly 8 bytes, got {}",
                    bytes.len()
                ))
            })?;
            Ok(Value::Int64(i64::from_le_bytes(array)))
        }
        "$float" => {
            let bytes = decode("$float")?;
            let array: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                Error::bad_request(format!(
                    "$float must hold exactly 8 bytes, got {}",
                    bytes.len()
                ))
            })?;
            let f = f64::from_le_bytes(array);
            if !is_special_float(f) {
                return Err(Error::bad_request(format!(
                    "Float {f} should be encoded as a number, not as $float"
                )));
            }
            Ok(Value::Float64(f))
        }
        "$bytes" => Ok(Value::Bytes(decode("$bytes")?)),
        "$set" | "$map" => Err(Error::bad_request(format!(
            "Received a {key} value, which is no longer supported"
        ))),
        _ => Err(Error::bad_request(format!(
            "Field name {key} starts with a '$', which is reserved"
        ))),
    }
}

/// At most `max` characters of `s`.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.total_cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::cmp::Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        self.total_cmp(other)
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.type_rank());
        match self {
            Value::Null => {}
            Value::Int64(i) => i.hash(state),
            // `total_cmp` equality is bit equality.
            Value::Float64(f) => f.to_bits().hash(state),
            Value::Boolean(b) => b.hash(state),
            Value::String(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Array(items) => items.hash(state),
            Value::Object(fields) => fields.hash(state),
        }
    }
}

/// Renders the value as compact Convex-encoded JSON text.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float64(f)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int64(i)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::String(s.clone())
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Array(items)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(fields: BTreeMap<String, Value>) -> Self {
        Value::Object(fields)
    }
}

/// `None` becomes [`Value::Null`].
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn int(i: i64) -> serde_json::Value {
        Value::Int64(i).to_json()
    }

    #[test]
    fn reference_base64_examples() {
        assert_eq!(int(1), json!({"$integer": "AQAAAAAAAAA="}));
        assert_eq!(int(-1), json!({"$integer": "//////////8="}));
        assert_eq!(
            Value::Float64(f64::NAN).to_json(),
            json!({"$float": "AAAAAAAA+H8="})
        );
        assert_eq!(
            Value::Float64(f64::INFINITY).to_json(),
            json!({"$float": "AAAAAAAA8H8="})
        );
        assert_eq!(
            Value::Float64(f64::NEG_INFINITY).to_json(),
            json!({"$float": "AAAAAAAA8P8="})
        );
        assert_eq!(
            Value::Float64(-0.0).to_json(),
            json!({"$float": "AAAAAAAAAIA="})
        );
        assert_eq!(
            Value::from_json(json!({"$integer": "AQAAAAAAAAA="})).unwrap(),
            Value::Int64(1)
        );
        assert_eq!(
            Value::from_json(json!({"$integer": "//////////8="})).unwrap(),
            Value::Int64(-1)
        );
        let nan = Value::from_json(json!({"$float": "AAAAAAAA+H8="})).unwrap();
        assert!(nan.as_f64().unwrap().is_nan());
    }

    #[test]
    fn numbers_are_floats_and_print_like_javascript() {
        assert_eq!(Value::from_json(json!(10)).unwrap(), Value::Float64(10.0));
        assert_eq!(Value::from_json(json!(1.5)).unwrap(), Value::Float64(1.5));
        assert_eq!(Value::Float64(10.0).to_json().to_string(), "10");
        assert_eq!(Value::Float64(-3.0).to_json().to_string(), "-3");
        assert_eq!(Value::Float64(0.0).to_json().to_string(), "0");
        assert_eq!(Value::Float64(1.5).to_json().to_string(), "1.5");
        assert_eq!(Value::Float64(1e300).to_json().as_f64(), Some(1e300));
    }

    #[test]
    fn float_encoding_rejects_normal_numbers() {
        let one = BASE64.encode(1.0f64.to_le_bytes());
        assert!(Value::from_json(json!({ "$float": one })).is_err());
        let zero = BASE64.encode(0.0f64.to_le_bytes());
        assert!(Value::from_json(json!({ "$float": zero })).is_err());
        let neg_zero = Value::from_json(json!({"$float": "AAAAAAAAAIA="})).unwrap();
        assert!(neg_zero.as_f64().unwrap().is_sign_negative());
    }

    #[test]
    fn integer_needs_exactly_eight_bytes() {
        let err = Value::from_json(json!({"$integer": "AQAAAAAAAA=="})).unwrap_err();
        assert_eq!(err.code(), errors::ErrorCode::BadRequest);
        assert!(Value::from_json(json!({"$integer": "AQAAAAAAAAAA"})).is_err());
        assert!(Value::from_json(json!({"$integer": 1})).is_err());
        assert!(Value::from_json(json!({"$integer": "!!!"})).is_err());
    }

    #[test]
    fn bytes_round_trip() {
        let v = Value::Bytes(vec![0, 1, 2, 255]);
        assert_eq!(v.to_json(), json!({"$bytes": "AAEC/w=="}));
        assert_eq!(Value::from_json(v.to_json()).unwrap(), v);
    }

    #[test]
    fn dollar_keys_are_reserved() {
        let err = Value::from_json(json!({"$foo": 1})).unwrap_err();
        assert_eq!(
            err.message(),
            "Field name $foo starts with a '$', which is reserved"
        );
        let err = Value::from_json(json!({"a": 1, "$integer": "AQAAAAAAAAA="})).unwrap_err();
        assert!(err.message().contains("$integer starts with a '$'"));
        assert!(
            Value::from_json(json!({"$set": []}))
                .unwrap_err()
                .message()
                .contains("no longer")
        );
        assert!(
            Value::from_json(json!({"$map": []}))
                .unwrap_err()
                .message()
                .contains("no longer")
        );
        // A `$` later in the name is fine.
        assert!(Value::from_json(json!({"a$": 1})).is_ok());
    }

    #[test]
    fn field_names_are_printable_ascii() {
        assert!(Value::from_json(json!({"héllo": 1})).is_err());
        assert!(Value::from_json(json!({"a\nb": 1})).is_err());
        assert!(Value::from_json(json!({"a b~": 1})).is_ok());
        assert!(Value::from_json(json!({"": 1})).is_ok());
        let long = "x".repeat(MAX_FIELD_NAME_LEN + 1);
        assert!(Value::from_json(json!({ long: 1 })).is_err());
        let ok = "x".repeat(MAX_FIELD_NAME_LEN);
        assert!(Value::from_json(json!({ ok: 1 })).is_ok());
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let mut json = json!(1);
        for _ in 0..MAX_JSON_NESTING {
            json = json!([json]);
        }
        assert!(Value::from_json(json.clone()).is_ok());
        let err = Value::from_json(json!({ "a": json })).unwrap_err();
        assert_eq!(err.code(), errors::ErrorCode::LimitExceeded);
    }

    #[test]
    fn clean_json() {
        let v = Value::object([
            ("i", Value::Int64(-42)),
            ("b", Value::Bytes(vec![1, 2, 3])),
            ("nan", Value::Float64(f64::NAN)),
            ("inf", Value::Float64(f64::INFINITY)),
            ("ninf", Value::Float64(f64::NEG_INFINITY)),
            ("nz", Value::Float64(-0.0)),
            ("f", Value::Float64(2.5)),
            ("a", Value::Array(vec![Value::Null, true.into()])),
        ]);
        let clean = v.to_clean_json();
        assert_eq!(
            clean,
            json!({
                "a": [null, true], "b": "AQID", "f": 2.5, "i": "-42", "inf": "Infinity",
                "nan": "NaN", "ninf": "-Infinity", "nz": 0
            })
        );
        assert_eq!(clean["nz"].to_string(), "0");
    }

    #[test]
    fn to_json_sorts_keys() {
        let v = Value::object([("b", 1.0), ("a", 2.0)]);
        assert_eq!(v.to_json().to_string(), r#"{"a":2,"b":1}"#);
    }

    #[test]
    fn sizes() {
        assert_eq!(Value::Null.size(), 1);
        assert_eq!(Value::Boolean(true).size(), 1);
        assert_eq!(Value::Int64(1).size(), 9);
        assert_eq!(Value::Float64(1.0).size(), 9);
        assert_eq!(Value::from("abc").size(), 5);
        assert_eq!(Value::Bytes(vec![1]).size(), 3);
        assert_eq!(Value::Array(vec![Value::Null, Value::Null]).size(), 4);
        assert_eq!(Value::object([("ab", Value::Null)]).size(), 2 + 2 + 1 + 1);
    }

    #[test]
    fn order_between_types() {
        let ordered = [
            Value::Null,
            Value::Int64(i64::MAX),
            Value::Float64(f64::NEG_INFINITY),
            Value::Float64(-0.0),
            Value::Float64(0.0),
            Value::Float64(f64::NAN),
            Value::Boolean(false),
            Value::Boolean(true),
            Value::from(""),
            Value::from("a"),
            Value::Bytes(vec![]),
            Value::Array(vec![]),
            Value::Array(vec![Value::Null]),
            Value::Object(BTreeMap::new()),
            Value::object([("a", Value::Null)]),
            Value::object([("a", Value::Null), ("b", Value::Null)]),
            Value::object([("b", Value::Null)]),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(a.total_cmp(b), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn document_limits() {
        assert!(check_document_limits(&Value::object([("a", 1.0)])).is_ok());
        let big = Value::object([("a", Value::from("x".repeat(MAX_DOCUMENT_SIZE)))]);
        let err = check_document_limits(&big).unwrap_err();
        assert_eq!(err.code(), errors::ErrorCode::LimitExceeded);
        assert!(err.message().contains("1048576"), "{}", err.message());
        assert!(
            err.message().contains(&big.size().to_string()),
            "{}",
            err.message()
        );

        let mut deep = Value::Null;
        for _ in 0..MAX_DOCUMENT_NESTING {
            deep = Value::Array(vec![deep]);
        }
        assert!(check_document_limits(&deep).is_ok());
        let err = check_document_limits(&Value::Array(vec![deep])).unwrap_err();
        assert!(err.message().contains("17") && err.message().contains("16"));

        let many = Value::Array(vec![Value::Null; MAX_ARRAY_ELEMENTS + 1]);
        assert!(
            check_document_limits(&many)
                .unwrap_err()
                .message()
                .contains("8193")
        );
        assert!(check_document_limits(&Value::Array(vec![Value::Null; 8192])).is_ok());

        let wide = Value::object((0..=MAX_OBJECT_FIELDS).map(|i| (format!("f{i}"), Value::Null)));
        assert!(
            check_document_limits(&wide)
                .unwrap_err()
                .message()
                .contains("1025")
        );
    }

    #[test]
    fn helpers() {
        let v = Value::object([("name", Value::from("ada")), ("n", Value::from(3.0))]);
        assert_eq!(v.get("name").and_then(Value::as_str), Some("ada"));
        assert_eq!(v.get("n").and_then(Value::as_f64), Some(3.0));
        assert_eq!(v.get("missing"), None);
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(Some(5i64)), Value::Int64(5));
        assert_eq!(
            Value::from(vec![Value::Null])
                .as_array()
                .map(<[Value]>::len),
            Some(1)
        );
        assert_eq!(
            Value::Int64(3).to_string(),
            r#"{"$integer":"AwAAAAAAAAA="}"#
        );
    }
}
