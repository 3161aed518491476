//! Validators: Convex's `v.*` argument and schema validators.
//!
//! A [`Validator`] describes the values a function argument, return value or
//! table field may hold. Build them with the constructors in [`v`], which
//! mirror Convex's TypeScript `v` builder:
//!
//! ```
//! use values::{v, Value};
//!
//! let args = v::object([
//!     ("meetingId", v::id("meetings")),
//!     ("role", v::union([v::literal("host"), v::literal("participant")])),
//!     ("note", v::optional(v::string())),
//! ]);
//! let value = Value::object([("role", "guest")]);
//! assert!(args.validate(&value).is_err());
//! ```
//!
//! [`Validator::validate`] reports the first mismatch with its path, e.g.
//! `Value does not match validator at path .participants[2].role: expected one
//! of "host" | "participant" | "observer", got "admin"`.
//! [`Validator::json_schema`] describes the Convex-encoded JSON form for
//! OpenAPI documents.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use errors::{Error, Result};
use serde_json::json;

use crate::ids::{DocumentId, table_number};
use crate::value::{Value, finite_float_json, truncate, validate_field_name};

/// A description of acceptable values.
#[derive(Debug, Clone, PartialEq)]
pub enum Validator {
    /// Any value.
    Any,
    /// `null`.
    Null,
    /// A boolean.
    Boolean,
    /// A float64 (JavaScript `number`). Int64 values are not accepted.
    Number,
    /// An int64 (JavaScript `bigint`). Floats are not accepted.
    Int64,
    /// A string.
    String,
    /// A byte string.
    Bytes,
    /// A string that is a valid [`DocumentId`] of the named table.
    Id(String),
    /// Exactly this value.
    Literal(Value),
    /// An array whose elements all match the inner validator.
    Array(Box<Validator>),
    /// An object used as a map: every field name matches the first validator
    /// (as a string) and every field value the second.
    Record(Box<Validator>, Box<Validator>),
    /// An object with exactly these fields (unknown fields are rejected).
    Object(Vec<Field>),
    /// A value matching at least one of the members.
    Union(Vec<Validator>),
    /// An optional object field. On its own it accepts what the inner
    /// validator accepts; absence is handled by the enclosing object.
    Optional(Box<Validator>),
}

/// One field of an object validator.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field name.
    pub name: String,
    /// The validator of the field's value.
    pub validator: Validator,
    /// Whether the field may be absent.
    pub optional: bool,
}

/// Constructors mirroring Convex's `v` builder.
pub mod v {
    use super::{Field, Validator};
    use crate::value::Value;

    /// `v.any()`: any value.
    pub fn any() -> Validator {
        Validator::Any
    }

    /// `v.null()`.
    pub fn null() -> Validator {
        Validator::Null
    }

    /// `v.boolean()`.
    pub fn boolean() -> Validator {
        Validator::Boolean
    }

    /// `v.number()`: a float64 (int64 values are rejected).
    pub fn number() -> Validator {
        Validator::Number
    }

    /// `v.float64()`: the same as [`number`].
    pub fn float64() -> Validator {
        Validator::Number
    }

    /// `v.int64()`: an int64 (floats are rejected).
    pub fn int64() -> Validator {
        Validator::Int64
    }

    /// `v.bigint()`: the same as [`int64`].
    pub fn bigint() -> Validator {
        Validator::Int64
    }

    /// `v.string()`.
    pub fn string() -> Validator {
        Validator::String
    }

    /// `v.bytes()`.
    pub fn bytes() -> Validator {
        Validator::Bytes
    }

    /// `v.id("table")`: a string that decodes as a document id of `table`.
    pub fn id(table: impl Into<String>) -> Validator {
        Validator::Id(table.into())
    }

    /// `v.literal(value)`: exactly `value`.
    pub fn literal(value: impl Into<Value>) -> Validator {
        Validator::Literal(value.into())
    }

    /// `v.array(item)`.
    pub fn array(item: Validator) -> Validator {
        Validator::Array(Box::new(item))
    }

    /// `v.record(keys, values)`: field names are validated as strings by
    /// `keys`, which should be a string, id, string literal or a union of
    /// those (see [`Validator::check_definition`]).
    pub fn record(keys: Validator, values: Validator) -> Validator {
        Validator::Record(Box::new(keys), Box::new(values))
    }

    /// `v.object({...})`: a strict object. A field given as
    /// [`optional`]`(x)` becomes an optional field validated by `x`; a later
    /// duplicate name replaces an earlier one.
    pub fn object<I, K>(fields: I) -> Validator
    where
        I: IntoIterator<Item = (K, Validator)>,
        K: Into<String>,
    {
        let mut out: Vec<Field> = Vec::new();
        for (name, validator) in fields {
            let name = name.into();
            let field = match validator {
                Validator::Optional(inner) => Field {
                    name,
                    validator: *inner,
                    optional: true,
                },
                validator => Field {
                    name,
                    validator,
                    optional: false,
                },
            };
            match out.iter_mut().find(|f| f.name == field.name) {
                Some(existing) => *existing = field,
                None => out.push(field),
            }
        }
        Validator::Object(out)
    }

    /// `v.union(a, b, …)`.
    pub fn union(members: impl IntoIterator<Item = Validator>) -> Validator {
        Validator::Union(members.into_iter().collect())
    }

    /// `v.optional(x)`: marks an object field as optional.
    pub fn optional(inner: Validator) -> Validator {
        Validator::Optional(Box::new(inner))
    }
}

/// One step of the path to a mismatch.
enum Segment<'a> {
    Field(&'a str),
    Index(usize),
}

/// A mismatch found by [`Validator::validate`].
struct Mismatch {
    path: String,
    detail: String,
}

impl Mismatch {
    /// The `VALIDATION_ERROR` a caller sees.
    fn into_error(self) -> Error {
        if self.path.is_empty() {
            Error::validation(format!("Value does not match validator: {}", self.detail))
        } else {
            Error::validation(format!(
                "Value does not match validator at path {}: {}",
                self.path, self.detail
            ))
        }
    }
}

impl Validator {
    /// Checks `value`, returning a `VALIDATION_ERROR` that names the path of
    /// the first mismatch (e.g. `.participants[2].role`), what was expected
    /// and what was found.
    pub fn validate(&self, value: &Value) -> Result<()> {
        let mut path = Vec::new();
        self.check(value, &mut path).map_err(Mismatch::into_error)
    }

    /// [`Validator::validate`] for a stored document: when this is an
    /// object validator, the fields named in `system` (`_id`,
    /// `_creationTime`) may be present without being declared. Checks the
    /// document in place, without copying its user fields out first.
    pub fn validate_document(&self, value: &Value, system: &[&str]) -> Result<()> {
        match (self, value) {
            (Validator::Object(expected), Value::Object(fields)) => {
                let mut path = Vec::new();
                check_object(expected, fields, &mut path, system).map_err(Mismatch::into_error)
            }
            _ => {
                let Value::Object(fields) = value else {
                    return self.validate(value);
                };
                let user: BTreeMap<String, Value> = fields
                    .iter()
                    .filter(|(k, _)| !system.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.validate(&Value::Object(user))
            }
        }
    }

    /// Whether this is [`Validator::Optional`].
    pub fn is_optional(&self) -> bool {
        matches!(self, Validator::Optional(_))
    }

    /// A short TypeScript-like description, e.g. `string | null` or
    /// `{ name: string; age?: number }` (the same as `Display`).
    pub fn describe(&self) -> String {
        self.to_string()
    }

    /// Checks that the validator itself is well formed: record keys are
    /// validated by a string, id or string literal validator (or a union of
    /// those), object field names are valid Convex field names and unique.
    /// Problems are `BAD_REQUEST` errors.
    pub fn check_definition(&self) -> Result<()> {
        match self {
            Validator::Any
            | Validator::Null
            | Validator::Boolean
            | Validator::Number
            | Validator::Int64
            | Validator::String
            | Validator::Bytes
            | Validator::Id(_)
            | Validator::Literal(_) => Ok(()),
            Validator::Array(item) | Validator::Optional(item) => item.check_definition(),
            Validator::Record(keys, values) => {
                if !keys.is_string_like() {
                    return Err(Error::bad_request(format!(
                        "Record keys must be validated by a string, id or string literal \
                         validator, not {keys}"
                    )));
                }
                values.check_definition()
            }
            Validator::Object(fields) => {
                for (i, field) in fields.iter().enumerate() {
                    validate_field_name(&field.name)?;
                    if fields[..i].iter().any(|f| f.name == field.name) {
                        return Err(Error::bad_request(format!(
                            "Object validator has duplicate field {:?}",
                            field.name
                        )));
                    }
                    field.validator.check_definition()?;
                }
                Ok(())
            }
            Validator::Union(members) => members.iter().try_for_each(Validator::check_definition),
        }
    }

    fn is_string_like(&self) -> bool {
        match self {
            Validator::String | Validator::Id(_) | Validator::Literal(Value::String(_)) => true,
            Validator::Union(members) => members.iter().all(Validator::is_string_like),
            _ => false,
        }
    }

    /// A JSON Schema (2020-12, OpenAPI 3.1 compatible) of the Convex-encoded
    /// JSON form of the accepted values.
    pub fn json_schema(&self) -> serde_json::Value {
        match self {
            Validator::Any => json!({}),
            Validator::Null => json!({ "type": "null" }),
            Validator::Boolean => json!({ "type": "boolean" }),
            Validator::Number => json!({ "type": "number" }),
            Validator::Int64 => encoded_object_schema(
                "$integer",
                "A 64-bit integer: base64 of its 8 little-endian bytes",
            ),
            Validator::String => json!({ "type": "string" }),
            Validator::Bytes => encoded_object_schema("$bytes", "Bytes in standard base64"),
            Validator::Id(table) => json!({
                "type": "string",
                "description": format!("Id of a document in table {table}"),
            }),
            Validator::Literal(value) => json!({ "const": value.to_json() }),
            Validator::Array(item) => json!({ "type": "array", "items": item.json_schema() }),
            Validator::Record(keys, values) => {
                let mut schema = serde_json::Map::new();
                schema.insert("type".into(), "object".into());
                if **keys != Validator::String {
                    schema.insert("propertyNames".into(), keys.json_schema());
                }
                schema.insert("additionalProperties".into(), values.json_schema());
                serde_json::Value::Object(schema)
            }
            Validator::Object(fields) => {
                let properties: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|f| (f.name.clone(), f.validator.json_schema()))
                    .collect();
                let required: Vec<serde_json::Value> = fields
                    .iter()
                    .filter(|f| !f.optional && !f.validator.is_optional())
                    .map(|f| serde_json::Value::String(f.name.clone()))
                    .collect();
                let mut schema = serde_json::Map::new();
                schema.insert("type".into(), "object".into());
                schema.insert("properties".into(), serde_json::Value::Object(properties));
                if !required.is_empty() {
                    schema.insert("required".into(), serde_json::Value::Array(required));
                }
                schema.insert("additionalProperties".into(), false.into());
                serde_json::Value::Object(schema)
            }
            Validator::Union(members) => {
                json!({ "anyOf": members.iter().map(Validator::json_schema).collect::<Vec<_>>() })
            }
            Validator::Optional(inner) => inner.json_schema(),
        }
    }

    fn check<'a>(&'a self, value: &'a Value, path: &mut Vec<Segment<'a>>) -> Result<(), Mismatch> {
        match (self, value) {
            (Validator::Any, _)
            | (Validator::Null, Value::Null)
            | (Validator::Boolean, Value::Boolean(_))
            | (Validator::Number, Value::Float64(_))
            | (Validator::Int64, Value::Int64(_))
            | (Validator::String, Value::String(_))
            | (Validator::Bytes, Value::Bytes(_)) => Ok(()),
            (Validator::Id(table), Value::String(s)) => match DocumentId::decode(s) {
                Some(id) if id.table() == table_number(table) => Ok(()),
                Some(_) => Err(self.mismatch(value, path, " (an id of another table)")),
                None => Err(self.mismatch(value, path, " (not a valid document id)")),
            },
            (Validator::Literal(expected), _) if expected == value => Ok(()),
            (Validator::Array(item), Value::Array(items)) => {
                for (i, element) in items.iter().enumerate() {
                    path.push(Segment::Index(i));
                    item.check(element, path)?;
                    path.pop();
                }
                Ok(())
            }
            (Validator::Record(keys, values), Value::Object(fields)) => {
                for (name, field) in fields {
                    path.push(Segment::Field(name));
                    let key = Value::String(name.clone());
                    if keys.check(&key, &mut Vec::new()).is_err() {
                        return Err(Mismatch {
                            path: render_path(path),
                            detail: format!(
                                "record key {} does not match {keys}",
                                describe_value(&key)
                            ),
                        });
                    }
                    values.check(field, path)?;
                    path.pop();
                }
                Ok(())
            }
            (Validator::Object(expected), Value::Object(fields)) => {
                check_object(expected, fields, path, &[])
            }
            (Validator::Union(members), _) => {
                if members
                    .iter()
                    .any(|m| m.check(value, &mut Vec::new()).is_ok())
                {
                    return Ok(());
                }
                // When exactly one member has the value's shape (same type,
                // matching literal fields), its error is the most precise one.
                let mut shaped = members.iter().filter(|m| m.has_shape_of(value));
                if let (Some(only), None) = (shaped.next(), shaped.next()) {
                    return only.check(value, path);
                }
                Err(self.mismatch(value, path, ""))
            }
            (Validator::Optional(inner), _) => inner.check(value, path),
            _ => Err(self.mismatch(value, path, "")),
        }
    }

    fn mismatch(&self, value: &Value, path: &[Segment<'_>], note: &str) -> Mismatch {
        let expected = match self {
            Validator::Union(_) => format!("one of {self}"),
            _ => self.to_string(),
        };
        Mismatch {
            path: render_path(path),
            detail: format!("expected {expected}, got {}{note}", describe_value(value)),
        }
    }

    /// Whether `value` has the validator's outer shape: the same type and,
    /// for objects, the same values in literal-typed fields.
    fn has_shape_of(&self, value: &Value) -> bool {
        match (self, value) {
            (Validator::Literal(expected), _) => expected == value,
            (Validator::Object(fields), Value::Object(actual)) => {
                fields
                    .iter()
                    .all(|f| match (&f.validator, actual.get(&f.name)) {
                        (Validator::Literal(expected), Some(found)) => expected == found,
                        (Validator::Literal(_), None) => f.optional,
                        _ => true,
                    })
            }
            (Validator::Union(members), _) => members.iter().any(|m| m.has_shape_of(value)),
            (Validator::Optional(inner), _) => inner.has_shape_of(value),
            (Validator::Any, _)
            | (Validator::Null, Value::Null)
            | (Validator::Boolean, Value::Boolean(_))
            | (Validator::Number, Value::Float64(_))
            | (Validator::Int64, Value::Int64(_))
            | (Validator::String | Validator::Id(_), Value::String(_))
            | (Validator::Bytes, Value::Bytes(_))
            | (Validator::Array(_), Value::Array(_))
            | (Validator::Record(..), Value::Object(_)) => true,
            _ => false,
        }
    }
}

fn encoded_object_schema(key: &str, description: &str) -> serde_json::Value {
    json!({
        "type": "object",
        "properties": { key: { "type": "string", "contentEncoding": "base64" } },
        "required": [key],
        "additionalProperties": false,
        "description": description,
    })
}

/// The fields of an object against an object validator; a field named in
/// `ignored` may be present without being declared.
fn check_object<'a>(
    expected: &'a [Field],
    fields: &'a BTreeMap<String, Value>,
    path: &mut Vec<Segment<'a>>,
    ignored: &[&str],
) -> Result<(), Mismatch> {
    for field in expected {
        path.push(Segment::Field(&field.name));
        match fields.get(&field.name) {
            Some(inner) => field.validator.check(inner, path)?,
            None if field.optional || field.validator.is_optional() => {}
            None => {
                return Err(Mismatch {
                    path: render_path(path),
                    detail: format!("missing required field of type {}", field.validator),
                });
            }
        }
        path.pop();
    }
    if let Some(extra) = fields.keys().find(|name| {
        !ignored.contains(&name.as_str()) && !expected.iter().any(|f| &f.name == *name)
    }) {
        path.push(Segment::Field(extra));
        return Err(Mismatch {
            path: render_path(path),
            detail: format!(
                "field {} is not allowed by the validator (allowed fields: {})",
                describe_value(&Value::String(extra.clone())),
                allowed_fields(expected)
            ),
        });
    }
    Ok(())
}

fn allowed_fields(fields: &[Field]) -> String {
    if fields.is_empty() {
        return "none".to_owned();
    }
    let mut out = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i == 10 {
            out.push_str(", …");
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&field.name);
    }
    out
}

/// Renders a path like `.participants[2].role`; names that are not plain
/// identifiers are quoted: `["first name"]`.
fn render_path(path: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Segment::Field(name) if is_identifier(name) => {
                out.push('.');
                out.push_str(name);
            }
            Segment::Field(name) => {
                let _ = write!(out, "[{}]", serde_json::Value::String((*name).to_owned()));
            }
        }
    }
    out
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A short JavaScript-like rendering of a value for error messages.
fn describe_value(value: &Value) -> String {
    const MAX: usize = 100;
    match value {
        Value::Null => "null".to_owned(),
        Value::Boolean(b) => b.to_string(),
        Value::Int64(i) => format!("{i}n"),
        Value::Float64(f) if f.is_nan() => "NaN".to_owned(),
        Value::Float64(f) if *f == f64::INFINITY => "Infinity".to_owned(),
        Value::Float64(f) if *f == f64::NEG_INFINITY => "-Infinity".to_owned(),
        Value::Float64(f) if *f == 0.0 && f.is_sign_negative() => "-0".to_owned(),
        Value::Float64(f) => finite_float_json(*f).to_string(),
        Value::String(s) => {
            let shown = truncate(s, MAX);
            let quoted = serde_json::Value::String(shown.to_owned()).to_string();
            if shown.len() < s.len() {
                format!("{quoted}…")
            } else {
                quoted
            }
        }
        Value::Bytes(b) => format!("ArrayBuffer(byteLength={})", b.len()),
        Value::Array(_) | Value::Object(_) => {
            let text = value.to_json().to_string();
            let shown = truncate(&text, MAX);
            if shown.len() < text.len() {
                format!("{shown}…")
            } else {
                text
            }
        }
    }
}

/// A TypeScript-like description: `string`, `bigint`, `Id<"users">`,
/// `"host" | "guest"`, `Array<number>`, `Record<string, boolean>`,
/// `{ name: string; age?: number }`.
impl fmt::Display for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Validator::Any => f.write_str("any"),
            Validator::Null => f.write_str("null"),
            Validator::Boolean => f.write_str("boolean"),
            Validator::Number => f.write_str("number"),
            Validator::Int64 => f.write_str("bigint"),
            Validator::String => f.write_str("string"),
            Validator::Bytes => f.write_str("ArrayBuffer"),
            Validator::Id(table) => write!(f, "Id<{}>", serde_json::Value::String(table.clone())),
            Validator::Literal(value) => f.write_str(&describe_value(value)),
            Validator::Array(item) => write!(f, "Array<{item}>"),
            Validator::Record(keys, values) => write!(f, "Record<{keys}, {values}>"),
            Validator::Object(fields) if fields.is_empty() => f.write_str("{}"),
            Validator::Object(fields) => {
                f.write_str("{ ")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    let optional = field.optional || field.validator.is_optional();
                    let validator = match &field.validator {
                        Validator::Optional(inner) => inner,
                        other => other,
                    };
                    if is_identifier(&field.name) {
                        f.write_str(&field.name)?;
                    } else {
                        write!(f, "{}", serde_json::Value::String(field.name.clone()))?;
                    }
                    write!(f, "{}: {validator}", if optional { "?" } else { "" })?;
                }
                f.write_str(" }")
            }
            Validator::Union(members) if members.is_empty() => f.write_str("never"),
            Validator::Union(members) => {
                for (i, member) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{member}")?;
                }
                Ok(())
            }
            Validator::Optional(inner) => write!(f, "{inner} | undefined"),
        }
    }
}

#[cfg(test)]
mod tests {
    use errors::ErrorCode;

    use super::*;
    use crate::ids::TableNumber;

    fn id_of(table: &str) -> Value {
        Value::String(DocumentId::new(table_number(table), [9; 16]).encode())
    }

    #[test]
    fn a_document_is_validated_in_place_with_its_system_fields() {
        use crate::v;
        let table = v::object([("name", v::string()), ("age", v::optional(v::number()))]);
        let doc = |extra: &[(&str, Value)]| {
            let mut fields = vec![
                ("_id".to_owned(), Value::from("x")),
                ("_creationTime".to_owned(), Value::Float64(1.0)),
                ("name".to_owned(), Value::from("ada")),
            ];
            fields.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            Value::object(fields)
        };
        let system = ["_id", "_creationTime"];
        table.validate_document(&doc(&[]), &system).unwrap();
        table
            .validate_document(&doc(&[("age", Value::Float64(3.0))]), &system)
            .unwrap();
        // The same errors as validating the user fields alone.
        for bad in [
            doc(&[("nickname", Value::from("a"))]),
            doc(&[("age", Value::from("3"))]),
            Value::object([("_id".to_owned(), Value::from("x"))]),
        ] {
            let user = Value::object(
                bad.as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| !system.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            let in_place = table.validate_document(&bad, &system).unwrap_err();
            let copied = table.validate(&user).unwrap_err();
            assert_eq!(in_place.message(), copied.message());
        }
        // Without the system names, the system fields are undeclared fields.
        assert!(table.validate_document(&doc(&[]), &[]).is_err());
        // Not an object validator: the user fields are copied and validated.
        v::any().validate_document(&doc(&[]), &system).unwrap();
        let union = v::union([table, v::object([("id", v::number())])]);
        union.validate_document(&doc(&[]), &system).unwrap();
    }

    fn message(validator: &Validator, value: &Value) -> String {
        let err = validator.validate(value).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError);
        assert!(err.is_application());
        err.message().to_owned()
    }

    #[test]
    fn validator_is_send_sync_clone_debug_eq() {
        fn check<T: Send + Sync + Clone + fmt::Debug + PartialEq>() {}
        check::<Validator>();
        check::<Field>();
    }

    #[test]
    fn scalars() {
        let cases: [(Validator, Value, Value); 7] = [
            (v::null(), Value::Null, Value::Boolean(false)),
            (v::boolean(), Value::Boolean(true), Value::Null),
            (v::number(), Value::Float64(1.5), Value::Int64(1)),
            (v::int64(), Value::Int64(1), Value::Float64(1.0)),
            (v::string(), Value::from("x"), Value::Bytes(vec![])),
            (v::bytes(), Value::Bytes(vec![1]), Value::from("AQ==")),
            (v::float64(), Value::Float64(f64::NAN), Value::Null),
        ];
        for (validator, good, bad) in cases {
            assert!(
                validator.validate(&good).is_ok(),
                "{validator} accepts {good:?}"
            );
            assert!(
                validator.validate(&bad).is_err(),
                "{validator} rejects {bad:?}"
            );
        }
        assert_eq!(
            message(&v::number(), &Value::Int64(3)),
            "Value does not match validator: expected number, got 3n"
        );
    }

    #[test]
    fn any_accepts_everything() {
        for value in [
            Value::Null,
            Value::Int64(1),
            Value::object([("a", Value::Null)]),
        ] {
            assert!(v::any().validate(&value).is_ok());
        }
    }

    #[test]
    fn ids() {
        let validator = v::id("users");
        assert!(validator.validate(&id_of("users")).is_ok());
        let msg = message(&validator, &id_of("meetings"));
        assert!(msg.contains("an id of another table"), "{msg}");
        let msg = message(&validator, &Value::from("not-an-id"));
        assert_eq!(
            msg,
            r#"Value does not match validator: expected Id<"users">, got "not-an-id" (not a valid document id)"#
        );
        assert!(validator.validate(&Value::Null).is_err());
        assert!(
            v::id("x")
                .validate(&Value::String(
                    DocumentId::new(TableNumber(table_number("x").0 + 1), [0; 16]).encode()
                ))
                .is_err()
        );
    }

    #[test]
    fn literals() {
        assert!(v::literal("host").validate(&Value::from("host")).is_ok());
        assert!(v::literal("host").validate(&Value::from("Host")).is_err());
        assert!(v::literal(3.0).validate(&Value::Float64(3.0)).is_ok());
        assert!(v::literal(3.0).validate(&Value::Int64(3)).is_err());
        assert!(v::literal(3i64).validate(&Value::Int64(3)).is_ok());
        assert!(v::literal(true).validate(&Value::Boolean(false)).is_err());
        assert_eq!(
            message(&v::literal(5i64), &Value::Float64(5.0)),
            "Value does not match validator: expected 5n, got 5"
        );
    }

    #[test]
    fn arrays() {
        let validator = v::array(v::number());
        assert!(validator.validate(&Value::Array(vec![])).is_ok());
        assert!(
            validator
                .validate(&Value::Array(vec![1.0.into(), 2.0.into()]))
                .is_ok()
        );
        assert_eq!(
            message(&validator, &Value::Array(vec![1.0.into(), "two".into()])),
            r#"Value does not match validator at path [1]: expected number, got "two""#
        );
        assert!(validator.validate(&Value::object([("0", 1.0)])).is_err());
    }

    #[test]
    fn records() {
        let validator = v::record(v::string(), v::boolean());
        assert!(
            validator
                .validate(&Value::object([("a", true), ("b c", false)]))
                .is_ok()
        );
        assert!(
            validator
                .validate(&Value::Object(Default::default()))
                .is_ok()
        );
        assert_eq!(
            message(&validator, &Value::object([("b c", Value::Null)])),
            r#"Value does not match validator at path ["b c"]: expected boolean, got null"#
        );
        let by_id = v::record(v::id("users"), v::number());
        let good =
            Value::Object([(id_of("users").as_str().unwrap().to_owned(), 1.0.into())].into());
        assert!(by_id.validate(&good).is_ok());
        let msg = message(&by_id, &Value::object([("bob", 1.0)]));
        assert_eq!(
            msg,
            r#"Value does not match validator at path .bob: record key "bob" does not match Id<"users">"#
        );
        let keyed = v::record(v::union([v::literal("a"), v::literal("b")]), v::any());
        assert!(keyed.validate(&Value::object([("a", 1.0)])).is_ok());
        assert!(keyed.validate(&Value::object([("c", 1.0)])).is_err());
        assert!(
            v::record(v::string(), v::any())
                .validate(&Value::Array(vec![]))
                .is_err()
        );
    }

    #[test]
    fn strict_objects() {
        let validator = v::object([("name", v::string()), ("age", v::optional(v::number()))]);
        assert!(
            validator
                .validate(&Value::object([("name", "ada")]))
                .is_ok()
        );
        assert!(
            validator
                .validate(&Value::object([
                    ("name", Value::from("ada")),
                    ("age", 36.0.into())
                ]))
                .is_ok()
        );
        assert_eq!(
            message(&validator, &Value::object([("age", 36.0)])),
            "Value does not match validator at path .name: missing required field of type string"
        );
        assert_eq!(
            message(
                &validator,
                &Value::object([("name", "ada"), ("admin", "yes")])
            ),
            r#"Value does not match validator at path .admin: field "admin" is not allowed by the validator (allowed fields: name, age)"#
        );
        assert_eq!(
            message(
                &validator,
                &Value::object([("name", Value::from("ada")), ("age", Value::Null)])
            ),
            "Value does not match validator at path .age: expected number, got null"
        );
        assert!(validator.validate(&Value::Null).is_err());
        assert!(
            v::object::<[(&str, Validator); 0], &str>([])
                .validate(&Value::object([("a", 1.0)]))
                .is_err()
        );
    }

    #[test]
    fn optional_fields_are_unwrapped() {
        let Validator::Object(fields) = v::object([("a", v::optional(v::string()))]) else {
            panic!("not an object");
        };
        assert_eq!(
            fields,
            vec![Field {
                name: "a".into(),
                validator: Validator::String,
                optional: true
            }]
        );
        // A hand-built field holding `Optional` is optional too.
        let manual = Validator::Object(vec![Field {
            name: "a".into(),
            validator: v::optional(v::string()),
            optional: false,
        }]);
        assert!(manual.validate(&Value::Object(Default::default())).is_ok());
    }

    #[test]
    fn top_level_optional_is_the_inner_validator() {
        let validator = v::optional(v::string());
        assert!(validator.is_optional());
        assert!(validator.validate(&Value::from("x")).is_ok());
        assert!(validator.validate(&Value::Null).is_err());
    }

    #[test]
    fn unions_and_nested_paths() {
        let role = v::union([
            v::literal("host"),
            v::literal("participant"),
            v::literal("observer"),
        ]);
        let validator = v::object([(
            "participants",
            v::array(v::object([("userId", v::string()), ("role", role)])),
        )]);
        let participant = |role: &str| Value::object([("userId", "u"), ("role", role)]);
        let value = Value::object([(
            "participants",
            Value::Array(vec![
                participant("host"),
                participant("observer"),
                participant("admin"),
            ]),
        )]);
        assert_eq!(
            message(&validator, &value),
            r#"Value does not match validator at path .participants[2].role: expected one of "host" | "participant" | "observer", got "admin""#
        );
        let nullable = v::union([v::string(), v::null()]);
        assert!(nullable.validate(&Value::Null).is_ok());
        assert!(nullable.validate(&Value::from("x")).is_ok());
        assert_eq!(
            message(&nullable, &Value::Float64(1.0)),
            "Value does not match validator: expected one of string | null, got 1"
        );
        assert!(v::union([]).validate(&Value::Null).is_err());
    }

    #[test]
    fn discriminated_unions_report_the_matching_member() {
        let validator = v::union([
            v::object([("kind", v::literal("text")), ("body", v::string())]),
            v::object([("kind", v::literal("image")), ("url", v::string())]),
        ]);
        assert!(
            validator
                .validate(&Value::object([("kind", "image"), ("url", "u")]))
                .is_ok()
        );
        assert_eq!(
            message(
                &validator,
                &Value::object([("kind", Value::from("text")), ("body", 1.0.into())])
            ),
            "Value does not match validator at path .body: expected string, got 1"
        );
        let msg = message(&validator, &Value::object([("kind", "video")]));
        assert!(
            msg.starts_with("Value does not match validator: expected one of {"),
            "{msg}"
        );
    }

    #[test]
    fn descriptions() {
        let validator = v::object([
            ("name", v::string()),
            ("age", v::optional(v::number())),
            ("first name", v::union([v::null(), v::int64()])),
            ("tags", v::array(v::bytes())),
            ("by", v::record(v::id("users"), v::boolean())),
        ]);
        assert_eq!(
            validator.describe(),
            r#"{ name: string; age?: number; "first name": null | bigint; tags: Array<ArrayBuffer>; by: Record<Id<"users">, boolean> }"#
        );
        assert_eq!(v::optional(v::string()).to_string(), "string | undefined");
        assert_eq!(v::any().to_string(), "any");
        assert_eq!(
            v::object::<[(&str, Validator); 0], &str>([]).to_string(),
            "{}"
        );
    }

    #[test]
    fn definitions() {
        assert!(v::record(v::string(), v::any()).check_definition().is_ok());
        assert!(
            v::record(v::union([v::literal("a"), v::id("t")]), v::any())
                .check_definition()
                .is_ok()
        );
        assert!(v::record(v::number(), v::any()).check_definition().is_err());
        assert!(v::object([("$bad", v::any())]).check_definition().is_err());
        let duplicate = Validator::Object(vec![
            Field {
                name: "a".into(),
                validator: v::any(),
                optional: false,
            },
            Field {
                name: "a".into(),
                validator: v::any(),
                optional: false,
            },
        ]);
        assert!(duplicate.check_definition().is_err());
        // The constructor keeps the last duplicate.
        assert_eq!(
            v::object([("a", v::any()), ("a", v::null())]),
            v::object([("a", v::null())])
        );
    }

    #[test]
    fn json_schemas() {
        let validator = v::object([
            ("n", v::number()),
            ("i", v::int64()),
            ("b", v::bytes()),
            ("id", v::id("users")),
            ("lit", v::literal("x")),
            ("opt", v::optional(v::null())),
            ("any", v::any()),
            ("arr", v::array(v::boolean())),
            ("rec", v::record(v::string(), v::string())),
            ("u", v::union([v::string(), v::null()])),
        ]);
        let schema = validator.json_schema();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["required"],
            json!(["n", "i", "b", "id", "lit", "any", "arr", "rec", "u"])
        );
        let p = &schema["properties"];
        assert_eq!(p["n"], json!({"type": "number"}));
        assert_eq!(p["i"]["required"], json!(["$integer"]));
        assert_eq!(p["i"]["properties"]["$integer"]["type"], "string");
        assert_eq!(p["b"]["required"], json!(["$bytes"]));
        assert_eq!(
            p["id"],
            json!({"type": "string", "description": "Id of a document in table users"})
        );
        assert_eq!(p["lit"], json!({"const": "x"}));
        assert_eq!(p["opt"], json!({"type": "null"}));
        assert_eq!(p["any"], json!({}));
        assert_eq!(
            p["arr"],
            json!({"type": "array", "items": {"type": "boolean"}})
        );
        assert_eq!(
            p["rec"],
            json!({"type": "object", "additionalProperties": {"type": "string"}})
        );
        assert_eq!(
            p["u"],
            json!({"anyOf": [{"type": "string"}, {"type": "null"}]})
        );
        assert_eq!(
            v::literal(1i64).json_schema(),
            json!({"const": {"$integer": "AQAAAAAAAAA="}})
        );
    }
}
