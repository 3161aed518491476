//! Property tests: index keys order like values, JSON and id round trips.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::ids::{DocumentId, ENCODED_ID_LEN, TableNumber};
use crate::keys::{encode_id, encode_value, prefix_successor};
use crate::value::Value;

/// Floats with the interesting cases over-represented.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        // Any bit pattern: every NaN payload, subnormals, both zeros.
        any::<u64>().prop_map(f64::from_bits),
        Just(0.0),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        (-1000i32..1000).prop_map(f64::from),
    ]
}

/// Values with arbitrary strings and field names (for key encoding).
fn any_value() -> impl Strategy<Value = Value> {
    value_with_names(prop_oneof![".{0,4}", "[a\\x00b]{0,3}"].boxed())
}

/// Values whose field names are valid Convex field names (for JSON).
fn json_value() -> impl Strategy<Value = Value> {
    value_with_names("([ -#%-~][ -~]{0,5})?".boxed())
}

fn value_with_names(names: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int64),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MIN),
            Just(i64::MAX)
        ]
        .prop_map(Value::Int64),
        float().prop_map(Value::Float64),
        any::<bool>().prop_map(Value::Boolean),
        prop_oneof![".{0,6}", "[a\\x00\\x01]{0,4}"].prop_map(Value::String),
        proptest::collection::vec(prop_oneof![Just(0u8), Just(255u8), any::<u8>()], 0..5)
            .prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(names.clone(), inner, 0..4).prop_map(Value::Object),
        ]
    })
}

fn optional_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![1 => Just(None), 6 => any_value().prop_map(Some)]
}

fn enc(v: Option<&Value>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(&mut out, v);
    out
}

/// Equality that treats NaNs with the same bits as equal: `Value`'s own
/// equality (bitwise for floats), restated independently of `total_cmp`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float64(x), Value::Float64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        (Value::Null, Value::Null) => true,
        (Value::Int64(x), Value::Int64(y)) => x == y,
        (Value::Boolean(x), Value::Boolean(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        _ => false,
    }
}

fn id() -> impl Strategy<Value = DocumentId> {
    (any::<u32>(), any::<[u8; 16]>()).prop_map(|(t, r)| DocumentId::new(TableNumber(t), r))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn direct_serialization_writes_what_to_json_builds(v in any_value()) {
        // `impl Serialize for Value` skips the `serde_json::Value` tree; the
        // text must be byte for byte the same.
        prop_assert_eq!(serde_json::to_string(&v).unwrap(), v.to_json().to_string());
        prop_assert_eq!(serde_json::to_value(&v).unwrap(), v.to_json());
    }

    #[test]
    fn key_order_matches_value_order(a in optional_value(), b in optional_value()) {
        // `Option`'s order puts `None` (undefined) first, like the encoding.
        prop_assert_eq!(enc(a.as_ref()).cmp(&enc(b.as_ref())), a.cmp(&b));
    }

    #[test]
    fn close_values_order_correctly(a in any_value(), x in float(), y in float()) {
        // Same structure with different floats inside exercises deep comparisons.
        let wrap = |f: f64| Value::Array(vec![a.clone(), Value::Float64(f), a.clone()]);
        let (va, vb) = (wrap(x), wrap(y));
        prop_assert_eq!(enc(Some(&va)).cmp(&enc(Some(&vb))), va.total_cmp(&vb));
        prop_assert_eq!(enc(Some(&va)).cmp(&enc(Some(&vb))), x.total_cmp(&y));
    }

    #[test]
    fn tuple_keys_order_like_tuples(
        a in proptest::collection::vec(optional_value(), 0..4),
        b in proptest::collection::vec(optional_value(), 0..4),
        ids in (id(), id()),
    ) {
        let key = |parts: &[Option<Value>], id: &DocumentId| {
            let mut out = Vec::new();
            for part in parts {
                encode_value(&mut out, part.as_ref());
            }
            encode_id(&mut out, id);
            out
        };
        // Equal-length tuples, as index keys of one index are.
        let n = a.len().min(b.len());
        let expected = a[..n].cmp(&b[..n]).then(ids.0.cmp(&ids.1));
        prop_assert_eq!(key(&a[..n], &ids.0).cmp(&key(&b[..n], &ids.1)), expected);
    }

    #[test]
    fn prefix_successor_bounds_extensions(
        prefix in proptest::collection::vec(optional_value(), 0..3),
        next in optional_value(),
        other in optional_value(),
        doc in id(),
    ) {
        let mut p = Vec::new();
        for part in &prefix {
            encode_value(&mut p, part.as_ref());
        }
        let mut extended = p.clone();
        encode_value(&mut extended, next.as_ref());
        let successor = prefix_successor(&p);
        prop_assert!(p <= extended);
        prop_assert!(extended < successor);
        let mut with_id = p.clone();
        encode_id(&mut with_id, &doc);
        prop_assert!(p <= with_id && with_id < successor);

        // Keys of a greater single component lie at or above the successor.
        let single = enc(next.as_ref());
        let bigger = enc(other.as_ref());
        if other > next {
            prop_assert!(bigger > prefix_successor(&single));
        }
    }

    #[test]
    fn json_round_trip(v in json_value()) {
        let back = Value::from_json(v.to_json());
        prop_assert!(back.is_ok(), "{:?}", back);
        let back = back.unwrap_or(Value::Null);
        prop_assert!(same(&back, &v), "{:?} != {:?}", back, v);
        prop_assert_eq!(back.total_cmp(&v), Ordering::Equal);
        // Through text too, as on the wire.
        let text = v.to_json().to_string();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let reparsed = Value::from_json(parsed).unwrap_or(Value::Null);
        prop_assert!(same(&reparsed, &v), "{} -> {:?}", text, reparsed);
    }

    #[test]
    fn size_is_at_least_one_per_node(v in any_value()) {
        prop_assert!(v.size() >= 1);
    }

    #[test]
    fn id_round_trip(doc in id()) {
        let text = doc.encode();
        prop_assert_eq!(text.len(), ENCODED_ID_LEN);
        prop_assert_eq!(DocumentId::decode(&text), Some(doc));
        prop_assert_eq!(DocumentId::from_bytes(&doc.to_bytes()), Some(doc));
    }

    #[test]
    fn id_rejects_any_single_character_change(
        doc in id(),
        pos in 0..ENCODED_ID_LEN,
        replacement in proptest::sample::select(b"0123456789abcdefghjkmnpqrstvwxyzAZilou-_".to_vec()),
    ) {
        let text = doc.encode();
        let mut bytes = text.clone().into_bytes();
        prop_assume!(bytes[pos] != replacement);
        bytes[pos] = replacement;
        let changed = String::from_utf8(bytes).unwrap_or_default();
        prop_assert_eq!(DocumentId::decode(&changed), None, "{} -> {}", text, changed);
    }
}

#[test]
fn btree_keys_sort_like_total_cmp_for_objects() {
    // Field iteration order (bytewise) is what both the order and the
    // encoding use.
    let fields: BTreeMap<String, Value> = [
        ("b".to_owned(), Value::Null),
        ("a\u{e9}".to_owned(), Value::Null),
        ("a".to_owned(), Value::Null),
    ]
    .into();
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "a\u{e9}", "b"]);
}
