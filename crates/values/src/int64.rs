//! Serde helper for `i64` fields that travel as Convex int64 (`bigint`).
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Counter {
//!     #[serde(with = "values::int64")]
//!     total: i64,
//! }
//! ```
//!
//! Serializes to `{"$integer": "<base64 of 8 little-endian bytes>"}`, so
//! [`crate::to_value`] produces [`crate::Value::Int64`]. Deserializes from a
//! JSON integer (what [`crate::from_value`] makes of an int64), an integral
//! float within i64 range, or the `{"$integer": …}` object.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserializer, Serializer};

use crate::value::BASE64;

/// Serializes `value` as `{"$integer": "<base64>"}`.
pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry("$integer", &BASE64.encode(value.to_le_bytes()))?;
    map.end()
}

/// Deserializes an integer, an integral float or `{"$integer": "<base64>"}`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(Int64Visitor)
}

struct Int64Visitor;

impl<'de> Visitor<'de> for Int64Visitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a 64-bit integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("integer {v} is out of int64 range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // -2^63 is exact as an f64; 2^63 is the first float out of range.
        if v.fract() == 0.0
            && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v)
        {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("{v} is not a 64-bit integer")))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<i64, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "expected {\"$integer\": …}, got an empty object",
            ));
        };
        if key != "$integer" {
            return Err(de::Error::custom(format!(
                "expected {{\"$integer\": …}}, got field {key}"
            )));
        }
        let encoded: String = map.next_value()?;
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom("$integer object has extra fields"));
        }
        let bytes = BASE64.decode(&encoded).map_err(de::Error::custom)?;
        let array: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| de::Error::custom("$integer must hold exactly 8 bytes"))?;
        Ok(i64::from_le_bytes(array))
    }
}

/// The same helper for `Option<i64>` fields (`None` is `null`); pair it with
/// `#[serde(default)]` so an absent field reads as `None`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super")] i64);

    /// Serializes `None` as `null` and `Some(v)` as `{"$integer": …}`.
    pub fn serialize<S: Serializer>(value: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
        value.map(Wrapped).serialize(serializer)
    }

    /// Deserializes `null` as `None`, anything [`super::deserialize`] accepts
    /// as `Some`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Counter {
        #[serde(with = "crate::int64")]
        total: i64,
    }

    #[test]
    fn round_trips() {
        let json = serde_json::to_value(Counter { total: 1 }).unwrap();
        assert_eq!(json, json!({"total": {"$integer": "AQAAAAAAAAA="}}));
        assert_eq!(
            serde_json::from_value::<Counter>(json).unwrap(),
            Counter { total: 1 }
        );
        assert_eq!(
            serde_json::from_value::<Counter>(json!({"total": -7})).unwrap(),
            Counter { total: -7 }
        );
        assert_eq!(
            serde_json::from_value::<Counter>(json!({"total": 4.0})).unwrap(),
            Counter { total: 4 }
        );
        assert!(serde_json::from_value::<Counter>(json!({"total": 4.5})).is_err());
        assert!(serde_json::from_value::<Counter>(json!({"total": u64::MAX})).is_err());
        assert!(serde_json::from_value::<Counter>(json!({"total": "1"})).is_err());
        assert!(serde_json::from_value::<Counter>(json!({"total": {"$integer": "AQ=="}})).is_err());
        assert!(serde_json::from_value::<Counter>(json!({"total": {"$float": "AQ=="}})).is_err());
    }
}
