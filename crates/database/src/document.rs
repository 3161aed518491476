//! Documents: a Convex object value plus its system fields `_id` and
//! `_creationTime`, and the index keys derived from it.

use std::sync::Arc;

use errors::{Error, Result};
use persistence::StoredDocument;
use values::{DocumentId, Value, keys};

use crate::schema::{IndexDef, IndexKind};

/// The system field holding the document id.
pub const ID_FIELD: &str = "_id";
/// The system field holding the creation time (ms since the epoch).
pub const CREATION_TIME_FIELD: &str = "_creationTime";

/// A stored document. Cheap to clone (the value is shared).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    id: DocumentId,
    creation_time: f64,
    value: Arc<Value>,
}

impl Document {
    /// Builds a document from user fields, adding the system fields.
    pub fn new(
        id: DocumentId,
        creation_time: f64,
        mut fields: std::collections::BTreeMap<String, Value>,
    ) -> Self {
        fields.insert(ID_FIELD.into(), Value::String(id.encode()));
        fields.insert(CREATION_TIME_FIELD.into(), Value::Float64(creation_time));
        Self {
            id,
            creation_time,
            value: Arc::new(Value::Object(fields)),
        }
    }

    /// Decodes a document read from storage.
    pub fn from_stored(stored: &StoredDocument) -> Result<Self> {
        let json: serde_json::Value = serde_json::from_str(&stored.json)
            .map_err(|e| Error::internal(format!("corrupt stored document: {e}")))?;
        let value = Value::from_json(json)?;
        let id = DocumentId::from_bytes(&stored.id)
            .ok_or_else(|| Error::internal("corrupt stored document id"))?;
        let creation_time = match &value {
            Value::Object(fields) => match fields.get(CREATION_TIME_FIELD) {
                Some(Value::Float64(t)) => *t,
                _ => return Err(Error::internal("stored document lacks _creationTime")),
            },
            _ => return Err(Error::internal("stored document is not an object")),
        };
        Ok(Self {
            id,
            creation_time,
            value: Arc::new(value),
        })
    }

    /// The JSON text stored for this document.
    pub fn to_json_string(&self) -> String {
        // Serializing a `Value` cannot fail (keys are strings); the fallback
        // only keeps this total.
        serde_json::to_string(self.value.as_ref())
            .unwrap_or_else(|_| self.value.to_json().to_string())
    }

    /// The document id.
    pub fn id(&self) -> DocumentId {
        self.id
    }

    /// `_creationTime` in ms.
    pub fn creation_time(&self) -> f64 {
        self.creation_time
    }

    /// The whole document (an object including system fields).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The whole document as an owned value.
    pub fn into_value(self) -> Value {
        Arc::try_unwrap(self.value).unwrap_or_else(|shared| (*shared).clone())
    }

    /// The user fields (everything but `_id` and `_creationTime`).
    pub fn user_fields(&self) -> std::collections::BTreeMap<String, Value> {
        match &*self.value {
            Value::Object(fields) => fields
                .iter()
                .filter(|(k, _)| k.as_str() != ID_FIELD && k.as_str() != CREATION_TIME_FIELD)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            _ => Default::default(),
        }
    }

    /// A field by dotted path (`"a.b"` reads field `b` of object field `a`).
    pub fn field(&self, path: &str) -> Option<&Value> {
        field_path(&self.value, path)
    }

    /// Deserializes the whole document into a typed struct.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        values::from_value((*self.value).clone())
    }
}

/// Reads a dotted field path out of a value.
pub fn field_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split('.') {
        match current {
            Value::Object(fields) => current = fields.get(part)?,
            _ => return None,
        }
    }
    Some(current)
}

/// An index key plus where its first component ends (used to bucket
/// subscriptions by their equality prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexKey {
    /// The encoded key.
    pub bytes: Vec<u8>,
    /// Length of the first encoded component.
    pub first_len: usize,
}

/// Every key of `doc` in `index`: one for a database index, one per distinct
/// term for a search index (see [`crate::search`]), none for a vector index.
pub fn index_keys(index: &IndexDef, doc: &Document) -> Vec<IndexKey> {
    match &index.kind {
        IndexKind::Database { .. } => index_key(index, doc).into_iter().collect(),
        IndexKind::Search {
            search_field,
            filter_fields,
        } => crate::search::document_keys(search_field, filter_fields, doc),
        IndexKind::Vector { .. } => Vec::new(),
    }
}

/// The key of `doc` in a database index, or `None` for search/vector indexes
/// (use [`index_keys`] for every kind).
pub fn index_key(index: &IndexDef, doc: &Document) -> Option<IndexKey> {
    let IndexKind::Database { fields } = &index.kind else {
        return None;
    };
    let mut bytes = Vec::with_capacity(64);
    if fields.len() == 1 && fields[0] == ID_FIELD {
        keys::encode_id(&mut bytes, &doc.id);
        let first_len = bytes.len();
        return Some(IndexKey { bytes, first_len });
    }
    let mut first_len = 0;
    for (i, field) in fields.iter().enumerate() {
        keys::encode_value(&mut bytes, doc.field(field));
        if i == 0 {
            first_len = bytes.len();
        }
    }
    if fields.last().map(String::as_str) != Some(CREATION_TIME_FIELD) {
        keys::encode_value(&mut bytes, Some(&Value::Float64(doc.creation_time)));
    }
    keys::encode_id(&mut bytes, &doc.id);
    Some(IndexKey { bytes, first_len })
}
