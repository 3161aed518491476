//! Profiles (`profiles`, one per user): the self-description other users
//! see, subject to the owner's `profileVisibility` setting.

use database::{Document, TableDef};
use errors::{Error, Result};
use runtime::{DbReader, DbWriter, Registry};
use serde::Deserialize;
use values::{Validator, Value, v};

use crate::ids::{Id, Users};

pub mod mutations;
pub mod queries;

/// Longest display name.
pub const MAX_DISPLAY_NAME: usize = 100;
/// Longest bio, goals or experience text.
pub const MAX_LONG_TEXT: usize = 1000;
/// Longest field, job title or company.
pub const MAX_SHORT_TEXT: usize = 200;
/// Most languages.
pub const MAX_LANGUAGES: usize = 20;

/// `profiles`.
pub fn tables() -> Vec<TableDef> {
    vec![
        TableDef::new("profiles")
            .field("userId", v::id("users"))
            .field("displayName", v::string())
            .field("bio", v::optional(v::string()))
            .field("goals", v::optional(v::string()))
            .field("languages", v::array(v::string()))
            .field("experience", v::optional(v::string()))
            .field("age", v::optional(v::number()))
            .field("gender", v::optional(gender_validator()))
            .field("field", v::optional(v::string()))
            .field("jobTitle", v::optional(v::string()))
            .field("company", v::optional(v::string()))
            .field("linkedinUrl", v::optional(v::string()))
            .field("createdAt", v::number())
            .field("updatedAt", v::number())
            .index("by_user", &["userId"])
            .index("by_updated", &["updatedAt"]),
    ]
}

/// Registers `profiles/queries:*` and `profiles/mutations:*`.
pub fn register(registry: &mut Registry) {
    queries::register(registry);
    mutations::register(registry);
}

/// `"male" | "female" | "non-binary" | "prefer-not-to-say"`.
pub fn gender_validator() -> Validator {
    v::union([
        v::literal("male"),
        v::literal("female"),
        v::literal("non-binary"),
        v::literal("prefer-not-to-say"),
    ])
}

/// A stored `profiles` document (as its owner reads it).
pub fn profile_validator() -> Validator {
    v::object([
        ("_id", v::id("profiles")),
        ("_creationTime", v::number()),
        ("userId", v::id("users")),
        ("displayName", v::string()),
        ("bio", v::optional(v::string())),
        ("goals", v::optional(v::string())),
        ("languages", v::array(v::string())),
        ("experience", v::optional(v::string())),
        ("age", v::optional(v::number())),
        ("gender", v::optional(gender_validator())),
        ("field", v::optional(v::string())),
        ("jobTitle", v::optional(v::string())),
        ("company", v::optional(v::string())),
        ("linkedinUrl", v::optional(v::string())),
        ("createdAt", v::number()),
        ("updatedAt", v::number()),
    ])
}

/// What other users read of a public profile: no age, gender, LinkedIn URL
/// or timestamps.
pub fn public_profile_validator() -> Validator {
    v::object([
        ("_id", v::id("profiles")),
        ("userId", v::id("users")),
        ("displayName", v::string()),
        ("bio", v::optional(v::string())),
        ("goals", v::optional(v::string())),
        ("languages", v::array(v::string())),
        ("experience", v::optional(v::string())),
        ("field", v::optional(v::string())),
        ("jobTitle", v::optional(v::string())),
        ("company", v::optional(v::string())),
    ])
}

/// The public view of a profile document.
pub(crate) fn public_view(doc: &Document) -> Value {
    let mut fields = vec![("_id".to_owned(), Value::String(doc.id().encode()))];
    for name in [
        "userId",
        "displayName",
        "bio",
        "goals",
        "languages",
        "experience",
        "field",
        "jobTitle",
        "company",
    ] {
        if let Some(v) = doc.field(name) {
            fields.push((name.to_owned(), v.clone()));
        }
    }
    if doc.field("languages").is_none() {
        fields.push(("languages".to_owned(), Value::Array(Vec::new())));
    }
    Value::object(fields)
}

/// The user's profile document, if any.
pub(crate) async fn profile_doc(db: &DbReader, user: Id<Users>) -> Result<Option<Document>> {
    db.query("profiles")
        .with_index("by_user", |r| r.eq("userId", user.to_value()))
        .first()
        .await
}

/// Profile fields a caller may set; `None` leaves a field unchanged, an
/// empty string clears an optional text field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProfileFields {
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub goals: Option<String>,
    pub languages: Option<Vec<String>>,
    pub experience: Option<String>,
    pub age: Option<f64>,
    pub gender: Option<String>,
    pub field: Option<String>,
    pub job_title: Option<String>,
    pub company: Option<String>,
    pub linkedin_url: Option<String>,
}

/// The argument validators of the profile fields (all optional).
pub(crate) fn profile_field_args() -> Vec<(&'static str, Validator)> {
    vec![
        ("displayName", v::optional(v::string())),
        ("bio", v::optional(v::string())),
        ("goals", v::optional(v::string())),
        ("languages", v::optional(v::array(v::string()))),
        ("experience", v::optional(v::string())),
        ("field", v::optional(v::string())),
        ("jobTitle", v::optional(v::string())),
        ("company", v::optional(v::string())),
        ("linkedinUrl", v::optional(v::string())),
        ("age", v::optional(v::number())),
        ("gender", v::optional(gender_validator())),
    ]
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::validation(message.into()).with_metadata(serde_json::json!({ "field": field }))
}

fn check_len(field: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n > max {
        return Err(invalid(
            field,
            format!("{field} must be at most {max} characters (got {n})"),
        ));
    }
    Ok(())
}

/// Checks an age (a whole number of years in 13..=120).
pub(crate) fn check_age(age: f64) -> Result<()> {
    if !(age.fract() == 0.0 && (13.0..=120.0).contains(&age)) {
        return Err(invalid(
            "age",
            "Invalid age: must be a whole number from 13 to 120",
        ));
    }
    Ok(())
}

/// Checks a LinkedIn profile URL: `https://` on `linkedin.com` or a
/// subdomain of it.
pub(crate) fn check_linkedin(url: &str) -> Result<()> {
    check_len("linkedinUrl", url, 300)?;
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| invalid("linkedinUrl", "linkedinUrl must be an https:// URL"))?;
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host == "linkedin.com" || host.ends_with(".linkedin.com") {
        Ok(())
    } else {
        Err(invalid(
            "linkedinUrl",
            "linkedinUrl must point to linkedin.com",
        ))
    }
}

impl ProfileFields {
    /// Validates every field that is set.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(name) = &self.display_name {
            if name.trim().is_empty() {
                return Err(invalid("displayName", "displayName must not be blank"));
            }
            check_len("displayName", name.trim(), MAX_DISPLAY_NAME)?;
        }
        for (field, value) in [
            ("bio", &self.bio),
            ("goals", &self.goals),
            ("experience", &self.experience),
        ] {
            if let Some(value) = value {
                check_len(field, value, MAX_LONG_TEXT)?;
            }
        }
        for (field, value) in [
            ("field", &self.field),
            ("jobTitle", &self.job_title),
            ("company", &self.company),
        ] {
            if let Some(value) = value {
                check_len(field, value, MAX_SHORT_TEXT)?;
            }
        }
        if let Some(languages) = &self.languages {
            if languages.len() > MAX_LANGUAGES {
                return Err(invalid(
                    "languages",
                    format!("At most {MAX_LANGUAGES} languages"),
                ));
            }
            for l in languages {
                if l.trim().is_empty() {
                    return Err(invalid("languages", "languages must not contain blanks"));
                }
                check_len("languages", l, 50)?;
            }
        }
        if let Some(age) = self.age {
            check_age(age)?;
        }
        if let Some(url) = &self.linkedin_url
            && !url.is_empty()
        {
            check_linkedin(url)?;
        }
        Ok(())
    }

    /// The patch: set fields, and `None` (remove) for optional text fields
    /// given as empty strings.
    fn patch(&self) -> Vec<(String, Option<Value>)> {
        let mut out = Vec::new();
        if let Some(name) = &self.display_name {
            out.push(("displayName".to_owned(), Some(Value::from(name.trim()))));
        }
        for (field, value) in [
            ("bio", &self.bio),
            ("goals", &self.goals),
            ("experience", &self.experience),
            ("field", &self.field),
            ("jobTitle", &self.job_title),
            ("company", &self.company),
            ("linkedinUrl", &self.linkedin_url),
            ("gender", &self.gender),
        ] {
            if let Some(value) = value {
                let value = value.trim();
                out.push((
                    field.to_owned(),
                    (!value.is_empty()).then(|| Value::from(value)),
                ));
            }
        }
        if let Some(languages) = &self.languages {
            out.push((
                "languages".to_owned(),
                Some(Value::Array(
                    languages.iter().map(|l| Value::from(l.trim())).collect(),
                )),
            ));
        }
        if let Some(age) = self.age {
            out.push(("age".to_owned(), Some(Value::Float64(age))));
        }
        out
    }
}

/// Creates or patches the user's profile with `fields` (validated first).
/// A new profile's display name is `fields.displayName`, else
/// `default_name`. Returns the profile id.
pub(crate) async fn upsert_profile(
    db: &DbWriter,
    user: Id<Users>,
    fields: &ProfileFields,
    default_name: &str,
    now: f64,
) -> Result<Id<crate::ids::Profiles>> {
    fields.validate()?;
    let patch = fields.patch();
    let id = match profile_doc(db, user).await? {
        Some(doc) => {
            let mut map: std::collections::BTreeMap<String, Option<Value>> =
                patch.into_iter().collect();
            map.insert("updatedAt".to_owned(), Some(Value::Float64(now)));
            db.patch_fields(doc.id(), map).await?;
            doc.id()
        }
        None => {
            let mut map: std::collections::BTreeMap<String, Value> = patch
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            map.insert("userId".to_owned(), user.to_value());
            map.entry("displayName".to_owned()).or_insert_with(|| {
                let name = default_name.trim();
                Value::from(if name.is_empty() { "User" } else { name })
            });
            map.entry("languages".to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            map.insert("createdAt".to_owned(), Value::Float64(now));
            map.insert("updatedAt".to_owned(), Value::Float64(now));
            db.insert("profiles", Value::Object(map)).await?
        }
    };
    Id::new(id).ok_or_else(|| Error::internal("profile id of another table"))
}
