//! Schemas declared in Rust, in the shape of Convex's `schema.ts`.
//!
//! ```
//! use database::schema::{Schema, TableDef};
//! use values::v;
//! let schema = Schema::builder()
//!     .table(
//!         TableDef::new("messages")
//!             .field("meetingId", v::string())
//!             .field("body", v::string())
//!             .index("by_meeting", &["meetingId"]),
//!     )
//!     .build()
//!     .unwrap();
//! assert!(schema.table("messages").is_some());
//! ```
//!
//! Every table gets two built-in indexes: `by_id` (on `_id`) and
//! `by_creation_time` (on `_creationTime`). Every user index implicitly ends
//! with `_creationTime` and then the document id, as in Convex, so entries with
//! equal field values are ordered by creation time and keys are unique.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use errors::{Error, Result};
use persistence::{IndexId, TableNumber};
use values::validator::{Field, Validator};
use values::{ids, v};

/// The name of the built-in index on `_id`.
pub const BY_ID: &str = "by_id";
/// The name of the built-in index on `_creationTime`.
pub const BY_CREATION_TIME: &str = "by_creation_time";

/// What kind of index this is. Full-text and vector indexes are declared here
/// too so the query layer has one place to look them up.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexKind {
    /// An ordered index over fields (then `_creationTime`, then `_id`).
    Database {
        /// The indexed field paths (dotted for nested fields).
        fields: Vec<String>,
    },
    /// A full-text index over one string field, with equality filter fields.
    Search {
        /// The searched field.
        search_field: String,
        /// Fields usable as equality filters.
        filter_fields: Vec<String>,
    },
    /// A vector index over one array-of-numbers field.
    Vector {
        /// The vector field.
        vector_field: String,
        /// The number of dimensions.
        dimensions: usize,
        /// Fields usable as equality filters.
        filter_fields: Vec<String>,
    },
}

/// One index of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    /// Its name, unique within the table.
    pub name: String,
    /// Its storage id.
    pub id: IndexId,
    /// What it indexes.
    pub kind: IndexKind,
}

impl IndexDef {
    /// The indexed fields of a database index (empty for other kinds).
    pub fn fields(&self) -> &[String] {
        match &self.kind {
            IndexKind::Database { fields } => fields,
            IndexKind::Search { .. } | IndexKind::Vector { .. } => &[],
        }
    }

    /// A string that changes when the key definition changes.
    pub fn signature(&self) -> String {
        match &self.kind {
            IndexKind::Search { .. } => format!(
                "v1:search{}:{:?}",
                crate::search::TOKENIZER_VERSION,
                self.kind
            ),
            _ => format!("v1:{:?}", self.kind),
        }
    }
}

/// A table definition.
#[derive(Debug, Clone)]
pub struct TableDef {
    name: String,
    fields: Vec<Field>,
    any_shape: bool,
    indexes: Vec<(String, IndexKind)>,
}

impl TableDef {
    /// A new table with no fields (add them with [`TableDef::field`]).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            fields: Vec::new(),
            any_shape: false,
            indexes: Vec::new(),
        }
    }

    /// Adds a field; wrap the validator in `v::optional` for optional fields.
    pub fn field(mut self, name: &str, validator: Validator) -> Self {
        let (validator, optional) = match validator {
            Validator::Optional(inner) => (*inner, true),
            other => (other, false),
        };
        self.fields.push(Field {
            name: name.to_owned(),
            validator,
            optional,
        });
        self
    }

    /// Accepts documents of any shape (like a table without a validator).
    pub fn any_shape(mut self) -> Self {
        self.any_shape = true;
        self
    }

    /// Adds an ordered index over `fields`.
    pub fn index(mut self, name: &str, fields: &[&str]) -> Self {
        self.indexes.push((
            name.to_owned(),
            IndexKind::Database {
                fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            },
        ));
        self
    }

    /// Adds a full-text search index.
    pub fn search_index(mut self, name: &str, search_field: &str, filter_fields: &[&str]) -> Self {
        self.indexes.push((
            name.to_owned(),
            IndexKind::Search {
                search_field: search_field.to_owned(),
                filter_fields: filter_fields.iter().map(|f| (*f).to_owned()).collect(),
            },
        ));
        self
    }

    /// Adds a vector index.
    pub fn vector_index(
        mut self,
        name: &str,
        vector_field: &str,
        dimensions: usize,
        filter_fields: &[&str],
    ) -> Self {
        self.indexes.push((
            name.to_owned(),
            IndexKind::Vector {
                vector_field: vector_field.to_owned(),
                dimensions,
                filter_fields: filter_fields.iter().map(|f| (*f).to_owned()).collect(),
            },
        ));
        self
    }
}

/// A table of a built schema.
#[derive(Debug)]
pub struct Table {
    /// The table name.
    pub name: String,
    /// Its number (inside ids and storage).
    pub number: TableNumber,
    /// The document validator (without system fields), `None` for any shape.
    pub validator: Option<Validator>,
    /// All indexes, built-in ones first.
    pub indexes: Vec<IndexDef>,
}

impl Table {
    /// The index with this name.
    pub fn index(&self, name: &str) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// Whether this is a system table (name starts with `_`).
    pub fn is_system(&self) -> bool {
        self.name.starts_with('_')
    }
}

/// A validated, immutable schema.
#[derive(Debug, Default)]
pub struct Schema {
    tables: BTreeMap<String, Arc<Table>>,
    by_number: HashMap<TableNumber, Arc<Table>>,
}

/// Builds a [`Schema`].
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    tables: Vec<TableDef>,
}

impl Schema {
    /// Starts a schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::default()
    }

    /// The table with this name.
    pub fn table(&self, name: &str) -> Option<&Arc<Table>> {
        self.tables.get(name)
    }

    /// The table with this name, or a `NOT_FOUND`-style validation error.
    pub fn require_table(&self, name: &str) -> Result<&Arc<Table>> {
        self.table(name)
            .ok_or_else(|| Error::validation(format!("Unknown table \"{name}\"")))
    }

    /// The table with this number.
    pub fn table_by_number(&self, number: TableNumber) -> Option<&Arc<Table>> {
        self.by_number.get(&number)
    }

    /// All tables in name order.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<Table>> {
        self.tables.values()
    }
}

impl SchemaBuilder {
    /// Adds a table.
    pub fn table(mut self, table: TableDef) -> Self {
        self.tables.push(table);
        self
    }

    /// Adds several tables.
    pub fn tables(mut self, tables: impl IntoIterator<Item = TableDef>) -> Self {
        self.tables.extend(tables);
        self
    }

    /// Checks names, numbers and index ids for duplicates and collisions.
    pub fn build(self) -> Result<Schema> {
        let mut schema = Schema::default();
        let mut index_ids: HashMap<IndexId, String> = HashMap::new();
        for def in self.tables {
            if def.name.is_empty()
                || !def
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(Error::internal(format!(
                    "invalid table name {:?}",
                    def.name
                )));
            }
            if schema.tables.contains_key(&def.name) {
                return Err(Error::internal(format!(
                    "table {} declared twice",
                    def.name
                )));
            }
            let number = ids::table_number(&def.name);
            if let Some(other) = schema.by_number.get(&number) {
                return Err(Error::internal(format!(
                    "tables {} and {} hash to the same table number",
                    other.name, def.name
                )));
            }
            let mut indexes = vec![
                IndexDef {
                    name: BY_ID.into(),
                    id: ids::index_id(&def.name, BY_ID),
                    kind: IndexKind::Database {
                        fields: vec!["_id".into()],
                    },
                },
                IndexDef {
                    name: BY_CREATION_TIME.into(),
                    id: ids::index_id(&def.name, BY_CREATION_TIME),
                    kind: IndexKind::Database {
                        fields: vec!["_creationTime".into()],
                    },
                },
            ];
            for (name, kind) in def.indexes {
                if indexes.iter().any(|i| i.name == name) {
                    return Err(Error::internal(format!(
                        "index {}.{name} declared twice (or shadows a built-in index)",
                        def.name
                    )));
                }
                if let IndexKind::Database { fields } = &kind
                    && fields.is_empty()
                {
                    return Err(Error::internal(format!(
                        "index {}.{name} has no fields",
                        def.name
                    )));
                }
                indexes.push(IndexDef {
                    id: ids::index_id(&def.name, &name),
                    name,
                    kind,
                });
            }
            for index in &indexes {
                if let Some(other) =
                    index_ids.insert(index.id, format!("{}.{}", def.name, index.name))
                {
                    return Err(Error::internal(format!(
                        "indexes {other} and {}.{} hash to the same id",
                        def.name, index.name
                    )));
                }
            }
            let validator = if def.any_shape {
                None
            } else {
                Some(Validator::Object(def.fields))
            };
            let table = Arc::new(Table {
                name: def.name.clone(),
                number,
                validator,
                indexes,
            });
            schema.by_number.insert(number, Arc::clone(&table));
            schema.tables.insert(def.name, table);
        }
        Ok(schema)
    }
}

/// A shortcut for an optional field validator.
pub fn optional(validator: Validator) -> Validator {
    v::optional(validator)
}
