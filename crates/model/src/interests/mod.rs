//! The interest catalog (`interests`) and each user's chosen interests
//! (`userInterests`, joined on the catalog `key`).
//!
//! The catalog is seeded with six entries on first start
//! (`interests/queries:seedDefault`, run by [`crate::on_start`]). Users add
//! *custom* interests during onboarding (items of category `personal` that
//! are not in the catalog): key `custom:<slug>`, category `custom`,
//! remembered with the user who first created them (`createdBy`). A custom
//! interest is personal data: the catalog lists it only to the users who
//! chose or created it, and it is deleted with its creator's account unless
//! someone else chose it too.

use std::collections::BTreeSet;

use database::{Document, TableDef};
use errors::{Error, Result};
use runtime::{DbReader, DbWriter, Registry};
use values::{Validator, Value, v};

use crate::ids::{Id, Users};

pub mod queries;

/// The category of custom interests.
pub const CUSTOM_CATEGORY: &str = "custom";
/// The prefix of custom interest keys.
pub const CUSTOM_PREFIX: &str = "custom:";
/// Most custom interests one onboarding may create.
pub const MAX_CUSTOM_PER_CALL: usize = 5;
/// Most interests a user may choose.
pub const MAX_INTERESTS: usize = 50;

/// The catalog seeded on first start: `(key, label, category, iconName)`.
pub const DEFAULT_CATALOG: [(&str, &str, &str, &str); 6] = [
    (
        "software-engineering",
        "Software Engineering",
        "industry",
        "Code",
    ),
    ("data-science", "Data Science", "industry", "Code"),
    (
        "product-management",
        "Product Management",
        "industry",
        "Briefcase",
    ),
    ("ai-ml", "AI / ML", "academic", "Brain"),
    ("startups", "Startups", "personal", "Rocket"),
    ("design", "Design", "skill", "Palette"),
];

/// `interests` and `userInterests`.
pub fn tables() -> Vec<TableDef> {
    vec![
        TableDef::new("interests")
            .field("key", v::string())
            .field("label", v::string())
            .field("category", v::string())
            .field("iconName", v::optional(v::string()))
            .field("usageCount", v::optional(v::number()))
            .field("createdBy", v::optional(v::id("users")))
            .field("createdAt", v::number())
            .index("by_key", &["key"])
            .index("by_category", &["category"])
            .index("by_usage_count", &["usageCount"])
            .index("by_category_and_usage", &["category", "usageCount"])
            .index("by_created_by", &["createdBy"]),
        TableDef::new("userInterests")
            .field("userId", v::id("users"))
            .field("interestKey", v::string())
            .field("createdAt", v::number())
            .index("by_user", &["userId"])
            .index("by_interest", &["interestKey"]),
    ]
}

/// Registers `interests/queries:*`.
pub fn register(registry: &mut Registry) {
    queries::register(registry);
}

/// A catalog entry as `listCatalog` returns it.
pub fn catalog_entry_validator() -> Validator {
    v::object([
        ("key", v::string()),
        ("label", v::string()),
        ("category", v::string()),
        ("iconName", v::optional(v::string())),
        ("usageCount", v::optional(v::number())),
    ])
}

/// The public view of a catalog document.
pub(crate) fn catalog_view(doc: &Document, with_usage: bool) -> Value {
    let mut fields = Vec::new();
    for name in ["key", "label", "category", "iconName"] {
        if let Some(v) = doc.field(name) {
            fields.push((name.to_owned(), v.clone()));
        }
    }
    if with_usage && let Some(v) = doc.field("usageCount") {
        fields.push(("usageCount".to_owned(), v.clone()));
    }
    Value::object(fields)
}

/// The catalog document with `key`.
pub(crate) async fn by_key(db: &DbReader, key: &str) -> Result<Option<Document>> {
    db.query("interests")
        .with_index("by_key", |r| r.eq("key", key))
        .first()
        .await
}

/// Inserts the default catalog if the catalog is empty; returns how many
/// entries it inserted.
pub(crate) async fn seed_if_empty(db: &DbWriter, now: f64) -> Result<usize> {
    if db.query("interests").first().await?.is_some() {
        return Ok(0);
    }
    for (key, label, category, icon) in DEFAULT_CATALOG {
        db.insert(
            "interests",
            Value::object([
                ("key".to_owned(), Value::from(key)),
                ("label".to_owned(), Value::from(label)),
                ("category".to_owned(), Value::from(category)),
                ("iconName".to_owned(), Value::from(icon)),
                ("usageCount".to_owned(), Value::Float64(0.0)),
                ("createdAt".to_owned(), Value::Float64(now)),
            ]),
        )
        .await?;
    }
    Ok(DEFAULT_CATALOG.len())
}

/// `Data Science!` → `data-science`: lower case, runs of characters other
/// than `[a-z0-9]` become one `-`, no leading or trailing `-`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    out
}

/// Finds or creates the custom interest named `name` (trimmed, at most 48
/// characters, at least 2); returns its key. `VALIDATION_ERROR` for a name
/// that is too short or has no letters or digits.
pub(crate) async fn ensure_custom(
    db: &DbWriter,
    creator: Id<Users>,
    name: &str,
    now: f64,
) -> Result<String> {
    let label: String = name.trim().chars().take(48).collect();
    if label.chars().count() < 2 {
        return Err(Error::validation(format!(
            "Custom interest \"{}\" must have at least 2 characters",
            name.trim()
        ))
        .with_metadata(serde_json::json!({"field": "interests"})));
    }
    let slug = slugify(&label);
    if slug.is_empty() {
        return Err(Error::validation(format!(
            "Custom interest \"{label}\" needs letters or digits"
        ))
        .with_metadata(serde_json::json!({"field": "interests"})));
    }
    let key = format!("{CUSTOM_PREFIX}{slug}");
    if by_key(db, &key).await?.is_none() {
        db.insert(
            "interests",
            Value::object([
                ("key".to_owned(), Value::from(key.as_str())),
                ("label".to_owned(), Value::from(label)),
                ("category".to_owned(), Value::from(CUSTOM_CATEGORY)),
                ("usageCount".to_owned(), Value::Float64(0.0)),
                ("createdBy".to_owned(), creator.to_value()),
                ("createdAt".to_owned(), Value::Float64(now)),
            ]),
        )
        .await?;
    }
    Ok(key)
}

/// The user's `userInterests` documents.
pub(crate) async fn user_interest_docs(db: &DbReader, user: Id<Users>) -> Result<Vec<Document>> {
    db.query("userInterests")
        .with_index("by_user", |r| r.eq("userId", user.to_value()))
        .collect()
        .await
}

async fn bump_usage(db: &DbWriter, key: &str, delta: f64) -> Result<()> {
    if let Some(doc) = by_key(db, key).await? {
        let count = doc
            .field("usageCount")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        db.patch(
            doc.id(),
            Value::object([(
                "usageCount".to_owned(),
                Value::Float64((count + delta).max(0.0)),
            )]),
        )
        .await?;
    }
    Ok(())
}

/// Replaces the user's interests with `keys` (which must exist in the
/// catalog; duplicates are ignored), keeping `usageCount` of each catalog
/// entry equal to the number of users who chose it. Returns how many
/// interests the user now has.
pub(crate) async fn replace_user_interests(
    db: &DbWriter,
    user: Id<Users>,
    keys: &[String],
    now: f64,
) -> Result<usize> {
    let wanted: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    if wanted.len() > MAX_INTERESTS {
        return Err(
            Error::validation(format!("At most {MAX_INTERESTS} interests may be chosen"))
                .with_metadata(serde_json::json!({"field": "interests"})),
        );
    }
    let mut missing = Vec::new();
    for key in &wanted {
        if by_key(db, key).await?.is_none() {
            missing.push(*key);
        }
    }
    if !missing.is_empty() {
        return Err(
            Error::validation(format!("Invalid interests: {}", missing.join(", ")))
                .with_metadata(serde_json::json!({"field": "interests"})),
        );
    }
    let mut existing = BTreeSet::new();
    for doc in user_interest_docs(db, user).await? {
        let key = doc
            .field("interestKey")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if wanted.contains(key.as_str()) && !existing.contains(&key) {
            existing.insert(key);
        } else {
            db.delete(doc.id()).await?;
            if !wanted.contains(key.as_str()) {
                bump_usage(db, &key, -1.0).await?;
            }
        }
    }
    for key in &wanted {
        if existing.contains(*key) {
            continue;
        }
        db.insert(
            "userInterests",
            Value::object([
                ("userId".to_owned(), user.to_value()),
                ("interestKey".to_owned(), Value::from(*key)),
                ("createdAt".to_owned(), Value::Float64(now)),
            ]),
        )
        .await?;
        bump_usage(db, key, 1.0).await?;
    }
    Ok(wanted.len())
}

/// The user's interests joined with the catalog (keys missing from the
/// catalog are dropped), in the order they were chosen.
pub(crate) async fn user_interests(db: &DbReader, user: Id<Users>) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in user_interest_docs(db, user).await? {
        let Some(key) = doc.field("interestKey").and_then(Value::as_str) else {
            continue;
        };
        if let Some(entry) = by_key(db, key).await? {
            out.push(catalog_view(&entry, false));
        }
    }
    Ok(out)
}
