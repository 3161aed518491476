//! Index range expressions and pagination cursors.
//!
//! A range is built the way Convex's `withIndex` callback builds it: equality
//! on a prefix of the index fields, then optionally a lower and/or upper bound
//! on the next field.

use base64::Engine as _;
use errors::{Error, ErrorCode, Result};
use persistence::{IndexId, KeyRange};
use values::{Value, keys};

use crate::schema::IndexDef;

/// A bound's inclusivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `gte` / `lte`.
    Inclusive,
    /// `gt` / `lt`.
    Exclusive,
}

/// A range over one index, as written in a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexRange {
    eq: Vec<(String, Value)>,
    lower: Option<(String, Bound, Value)>,
    upper: Option<(String, Bound, Value)>,
    error: Option<String>,
}

impl IndexRange {
    /// The whole index.
    pub fn all() -> Self {
        Self::default()
    }

    /// `field == value` (fields must follow the index's field order).
    pub fn eq(mut self, field: &str, value: impl Into<Value>) -> Self {
        if self.lower.is_some() || self.upper.is_some() {
            self.error
                .get_or_insert_with(|| format!("eq(\"{field}\") after a range bound"));
        }
        self.eq.push((field.to_owned(), value.into()));
        self
    }

    /// `field > value`.
    pub fn gt(self, field: &str, value: impl Into<Value>) -> Self {
        self.lower_bound(field, Bound::Exclusive, value.into())
    }

    /// `field >= value`.
    pub fn gte(self, field: &str, value: impl Into<Value>) -> Self {
        self.lower_bound(field, Bound::Inclusive, value.into())
    }

    /// `field < value`.
    pub fn lt(self, field: &str, value: impl Into<Value>) -> Self {
        self.upper_bound(field, Bound::Exclusive, value.into())
    }

    /// `field <= value`.
    pub fn lte(self, field: &str, value: impl Into<Value>) -> Self {
        self.upper_bound(field, Bound::Inclusive, value.into())
    }

    fn lower_bound(mut self, field: &str, bound: Bound, value: Value) -> Self {
        if self.lower.is_some() {
            self.error
                .get_or_insert_with(|| "two lower bounds".to_owned());
        }
        self.lower = Some((field.to_owned(), bound, value));
        self
    }

    fn upper_bound(mut self, field: &str, bound: Bound, value: Value) -> Self {
        if self.upper.is_some() {
            self.error
                .get_or_insert_with(|| "two upper bounds".to_owned());
        }
        self.upper = Some((field.to_owned(), bound, value));
        self
    }

    /// Compiles the range to key bytes for `index`. Returns the key range and
    /// the bucket (first component) when the range has at least one `eq`.
    pub fn compile(&self, index: &IndexDef) -> Result<(KeyRange, Option<Vec<u8>>)> {
        let invalid = |msg: String| {
            Error::validation(format!("Invalid range for index \"{}\": {msg}", index.name))
        };
        if let Some(e) = &self.error {
            return Err(invalid(e.clone()));
        }
        let fields = index.fields();
        let by_id = fields.len() == 1 && fields[0] == "_id";
        let mut prefix = Vec::new();
        let mut bucket = None;
        for (i, (field, value)) in self.eq.iter().enumerate() {
            if fields.get(i) != Some(field) {
                return Err(invalid(format!(
                    "eq(\"{field}\") does not match index field #{} ({:?})",
                    i + 1,
                    fields.get(i)
                )));
            }
            if by_id {
                let id = value
                    .as_str()
                    .and_then(values::DocumentId::decode)
                    .ok_or_else(|| invalid("_id must be a valid document id".into()))?;
                keys::encode_id(&mut prefix, &id);
            } else {
                keys::encode_value(&mut prefix, Some(value));
            }
            if i == 0 {
                bucket = Some(prefix.clone());
            }
        }
        let next = self.eq.len();
        let check_bound_field = |field: &str| -> Result<()> {
            if fields.get(next).map(String::as_str) != Some(field) || by_id {
                return Err(invalid(format!(
                    "range on \"{field}\" must be on index field #{} ({:?})",
                    next + 1,
                    fields.get(next)
                )));
            }
            Ok(())
        };
        let start = match &self.lower {
            None => prefix.clone(),
            Some((field, bound, value)) => {
                check_bound_field(field)?;
                let mut k = prefix.clone();
                keys::encode_value(&mut k, Some(value));
                if *bound == Bound::Exclusive {
                    k = keys::prefix_successor(&k);
                }
                k
            }
        };
        let end = match &self.upper {
            None if prefix.is_empty() => None,
            None => Some(keys::prefix_successor(&prefix)),
            Some((field, bound, value)) => {
                check_bound_field(field)?;
                let mut k = prefix.clone();
                keys::encode_value(&mut k, Some(value));
                if *bound == Bound::Inclusive {
                    k = keys::prefix_successor(&k);
                }
                Some(k)
            }
        };
        Ok((KeyRange { start, end }, bucket))
    }
}

/// The Convex `paginate` options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaginationOpts {
    /// Requested page size.
    pub num_items: usize,
    /// Where to start (`None`: the beginning).
    pub cursor: Option<String>,
    /// Where to end (inclusive), for split pages and reactive re-runs.
    pub end_cursor: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub page: Vec<T>,
    /// Whether the range is exhausted.
    pub is_done: bool,
    /// The cursor to continue from.
    pub continue_cursor: String,
}

/// A decoded position in an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorPos {
    /// After the given key.
    After(Vec<u8>),
    /// The end of the range.
    End,
}

const CURSOR_VERSION: u8 = 1;

/// Encodes a cursor bound to one index.
pub fn encode_cursor(index: IndexId, pos: &CursorPos) -> String {
    let mut raw = vec![CURSOR_VERSION];
    raw.extend_from_slice(&index.0.to_be_bytes());
    match pos {
        CursorPos::End => raw.push(0),
        CursorPos::After(key) => {
            raw.push(1);
            raw.extend_from_slice(key);
        }
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a cursor, checking that it belongs to `index`.
pub fn decode_cursor(index: IndexId, cursor: &str) -> Result<CursorPos> {
    let invalid = || {
        Error::app(
            ErrorCode::InvalidCursor,
            "InvalidCursor: the cursor is malformed or belongs to another query",
        )
        .with_metadata(serde_json::json!({"paginationError": "InvalidCursor"}))
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    if raw.len() < 6 || raw[0] != CURSOR_VERSION {
        return Err(invalid());
    }
    if u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]) != index.0 {
        return Err(invalid());
    }
    match raw[5] {
        0 if raw.len() == 6 => Ok(CursorPos::End),
        1 => Ok(CursorPos::After(raw[6..].to_vec())),
        _ => Err(invalid()),
    }
}
