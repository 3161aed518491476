//! Conversions between [`Value`] and Rust types through serde.
//!
//! * [`to_value`] serializes any `Serialize` type to JSON and decodes it as
//!   Convex-encoded JSON ([`Value::from_json`]): numbers become float64, and a
//!   single-key `$integer` / `$float` / `$bytes` object decodes as usual (use
//!   [`crate::int64`] to produce int64 fields).
//! * [`from_value`] turns a value into JSON a Rust type can read naturally and
//!   deserializes it: an integral float64 within ±2^53 becomes a JSON integer
//!   (so a `u32` or `i64` field accepts the `10` a JavaScript client sends);
//!   int64 and bytes keep their Convex encoding (`{"$integer"}`, `{"$bytes"}`)
//!   so that a `Value` field round-trips them exactly — an `i64` field meant
//!   for Convex int64s uses `#[serde(with = "values::int64")]`.
//!
//! `Value` itself implements `Serialize` / `Deserialize` as Convex-encoded JSON,
//! which suits wire types.

use errors::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::value::Value;

/// 2^53: integral floats up to this magnitude are exact JavaScript integers.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Converts a Rust value into a [`Value`] through serde_json.
///
/// JSON numbers become [`Value::Float64`]. Non-finite floats become `null`
/// (serde_json cannot represent them). Serialization failures are
/// `INTERNAL_ERROR`s; results that are not valid Convex values (for example a
/// map key starting with `$`) fail as in [`Value::from_json`].
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    let json = serde_json::to_value(value)
        .map_err(|e| Error::internal(format!("Cannot serialize value: {e}")))?;
    Value::from_json(json)
}

/// Converts a [`Value`] into a Rust type. Mismatches (missing fields, wrong
/// types, fractional numbers for integer fields…) are `VALIDATION_ERROR`s.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T> {
    serde_json::from_value(to_plain_json(value))
        .map_err(|e| Error::validation(format!("Invalid value: {e}")))
}

/// The JSON form [`from_value`] deserializes from.
fn to_plain_json(value: Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => serde_json::Value::Bool(b),
        // int64 and bytes keep their Convex encoding, so a `Value` field
        // round-trips them exactly; an `i64` field that takes Convex int64s
        // uses `#[serde(with = "values::int64")]`, which accepts this form.
        Value::Int64(i) => Value::Int64(i).to_json(),
        Value::Float64(f)
            if f.fract() == 0.0
                && f.abs() <= MAX_SAFE_INTEGER
                && !(f == 0.0 && f.is_sign_negative()) =>
        {
            // Exact: `f` is integral and within ±2^53.
            serde_json::Value::Number((f as i64).into())
        }
        Value::Float64(f) => match serde_json::Number::from_f64(f) {
            Some(n) => serde_json::Value::Number(n),
            // NaN and ±Infinity keep their Convex encoding; a numeric field
            // rejects them.
            None => Value::Float64(f).to_json(),
        },
        Value::String(s) => serde_json::Value::String(s),
        Value::Bytes(b) => Value::Bytes(b).to_json(),
        Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(to_plain_json).collect())
        }
        Value::Object(fields) => serde_json::Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, to_plain_json(v)))
                .collect(),
        ),
    }
}

/// Serializes as Convex-encoded JSON, exactly what [`Value::to_json`]
/// builds, but straight into the serializer: no intermediate
/// `serde_json::Value` tree (one allocation per string, key and map), which
/// was the bulk of the cost of storing a document as JSON text.
impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        use serde::ser::SerializeMap;

        use crate::value::{BASE64, TWO_POW_63, is_special_float};

        let special = |serializer: S, key: &str, encoded: String| {
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(key, &encoded)?;
            map.end()
        };
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Int64(i) => special(serializer, "$integer", BASE64.encode(i.to_le_bytes())),
            Value::Float64(f) if is_special_float(*f) => {
                special(serializer, "$float", BASE64.encode(f.to_le_bytes()))
            }
            // Integral values without a fraction, like `finite_float_json`.
            Value::Float64(f) if f.fract() == 0.0 && f.abs() < TWO_POW_63 => {
                serializer.serialize_i64(*f as i64)
            }
            Value::Float64(f) => serializer.serialize_f64(*f),
            Value::Boolean(b) => serializer.serialize_bool(*b),
            Value::String(s) => serializer.serialize_str(s),
            Value::Bytes(b) => special(serializer, "$bytes", BASE64.encode(b)),
            Value::Array(items) => serializer.collect_seq(items),
            Value::Object(fields) => serializer.collect_map(fields),
        }
    }
}

/// Deserializes from Convex-encoded JSON ([`Value::from_json`]).
impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
        Value::from_json(json).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Args {
        name: String,
        limit: u32,
        offset: i64,
        ratio: f64,
        #[serde(with = "crate::int64")]
        big: i64,
        #[serde(
            default,
            with = "crate::int64::option",
            skip_serializing_if = "Option::is_none"
        )]
        maybe_big: Option<i64>,
        tags: Vec<String>,
    }

    #[test]
    fn javascript_numbers_fill_integer_fields() {
        let value = Value::object([
            ("name", Value::from("ada")),
            ("limit", Value::Float64(10.0)),
            ("offset", Value::Float64(-3.0)),
            ("ratio", Value::Float64(7.0)),
            ("big", Value::Int64(1 << 60)),
            ("maybeBig", Value::Int64(-5)),
            ("tags", Value::Array(vec!["a".into()])),
        ]);
        let args: Args = from_value(value.clone()).unwrap();
        assert_eq!(
            args,
            Args {
                name: "ada".into(),
                limit: 10,
                offset: -3,
                ratio: 7.0,
                big: 1 << 60,
                maybe_big: Some(-5),
                tags: vec!["a".into()],
            }
        );
        assert_eq!(to_value(&args).unwrap(), value);
    }

    #[test]
    fn mismatches_are_validation_errors() {
        let err = from_value::<Args>(Value::object([("name", "x")])).unwrap_err();
        assert_eq!(err.code(), errors::ErrorCode::ValidationError);
        let frac = Value::object([
            ("name", Value::from("ada")),
            ("limit", Value::Float64(1.5)),
            ("offset", Value::Float64(0.0)),
            ("ratio", Value::Float64(0.0)),
            ("big", Value::Int64(0)),
            ("tags", Value::Array(vec![])),
        ]);
        assert!(from_value::<Args>(frac).is_err());
        assert!(from_value::<u32>(Value::Float64(-1.0)).is_err());
        assert!(from_value::<f64>(Value::Float64(f64::NAN)).is_err());
        assert_eq!(
            from_value::<i64>(Value::Float64(9_007_199_254_740_992.0)).unwrap(),
            1 << 53
        );
    }

    #[test]
    fn bytes_and_specials() {
        // int64 and bytes keep their Convex encoding, so `Value` fields
        // round-trip them exactly…
        #[derive(serde::Deserialize)]
        struct Holder {
            v: Value,
        }
        for original in [
            Value::Bytes(vec![1, 2, 3]),
            Value::Int64(i64::MIN),
            Value::Int64(5),
        ] {
            let wrapped = Value::object([("v", original.clone())]);
            assert_eq!(from_value::<Holder>(wrapped).unwrap().v, original);
        }
        // …and an i64 field that takes Convex int64s says so.
        #[derive(serde::Deserialize)]
        struct Big {
            #[serde(with = "crate::int64")]
            n: i64,
        }
        let big = Value::object([("n", Value::Int64(i64::MIN))]);
        assert_eq!(from_value::<Big>(big).unwrap().n, i64::MIN);
        // A plain field does not silently accept the encoded form.
        assert!(from_value::<String>(Value::Bytes(vec![1, 2, 3])).is_err());
        let neg_zero: f64 = from_value(Value::Float64(-0.0)).unwrap();
        assert!(neg_zero == 0.0 && neg_zero.is_sign_negative());
        assert_eq!(
            to_value(&json!({"$bytes": "AQID"})).unwrap(),
            Value::Bytes(vec![1, 2, 3])
        );
        assert_eq!(to_value(&3u8).unwrap(), Value::Float64(3.0));
        assert!(to_value(&json!({"$nope": 1})).is_err());
    }

    #[test]
    fn value_serde_is_convex_json() {
        let value = Value::object([("i", Value::Int64(1)), ("f", Value::Float64(2.0))]);
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(text, r#"{"f":2,"i":{"$integer":"AQAAAAAAAAA="}}"#);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
        assert!(serde_json::from_str::<Value>(r#"{"$x":1}"#).is_err());
    }
}
