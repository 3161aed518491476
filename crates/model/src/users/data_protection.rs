//! Data protection: the caller's data export (`users/queries:exportMyData`)
//! and account deletion (`users/mutations:deleteMyAccount`).
//!
//! Each domain describes the tables that hold a user's data as
//! [`DataSection`]s: how to export the caller's documents and how to erase
//! them (delete, or anonymise what other users' data still refers to).
//! [`crate::data_sections`] lists every domain's sections; export walks
//! them in order, deletion in reverse order, so the `users` row — which the
//! other sections look the caller up by — is anonymised last, in the same
//! transaction.
//!
//! A domain adds its tables by writing a `data_sections()` of its own and
//! extending the list in [`crate::data_sections`].

use std::future::Future;
use std::pin::Pin;

use database::Document;
use errors::Result;
use runtime::{DbReader, DbWriter};
use values::Value;

use crate::auth::CurrentUser;
use crate::interests;
use crate::interests::{CUSTOM_CATEGORY, by_key};

/// A boxed, sendable future (the handlers' futures must be `Send`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Exports the caller's documents of a section.
pub type ExportFn = for<'a> fn(&'a DbReader, &'a CurrentUser) -> BoxFuture<'a, Result<Vec<Value>>>;

/// Erases the caller's documents of a section at `now` (ms).
pub type EraseFn = for<'a> fn(&'a DbWriter, &'a CurrentUser, f64) -> BoxFuture<'a, Result<Erasure>>;

/// What erasing a section did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erasure {
    /// Documents deleted.
    pub deleted: usize,
    /// Documents kept with the personal data removed.
    pub anonymised: usize,
}

impl Erasure {
    /// As `{deleted, anonymised}`.
    pub fn to_value(self) -> Value {
        Value::object([
            ("deleted".to_owned(), Value::Float64(self.deleted as f64)),
            (
                "anonymised".to_owned(),
                Value::Float64(self.anonymised as f64),
            ),
        ])
    }
}

/// One group of tables holding a user's data.
#[derive(Clone, Copy)]
pub struct DataSection {
    /// The key in the export (`users`, `profiles`, `meetings`, …).
    pub name: &'static str,
    /// What deletion does, for the README's table.
    pub on_delete: &'static str,
    /// Exports the caller's documents.
    pub export: ExportFn,
    /// Erases the caller's documents.
    pub erase: EraseFn,
}

impl std::fmt::Debug for DataSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSection")
            .field("name", &self.name)
            .field("on_delete", &self.on_delete)
            .finish_non_exhaustive()
    }
}

fn values(docs: Vec<Document>) -> Vec<Value> {
    docs.into_iter().map(Document::into_value).collect()
}

async fn delete_all(db: &DbWriter, docs: Vec<Document>) -> Result<Erasure> {
    let deleted = docs.len();
    for doc in docs {
        db.delete(doc.id()).await?;
    }
    Ok(Erasure {
        deleted,
        anonymised: 0,
    })
}

async fn by_user(db: &DbReader, table: &str, user: &CurrentUser) -> Result<Vec<Document>> {
    db.query(table)
        .with_index("by_user", |r| r.eq("userId", user.id.to_value()))
        .collect()
        .await
}

async fn workos_docs(db: &DbReader, user: &CurrentUser) -> Result<Vec<Document>> {
    let workos_id = super::str_field(&user.doc, "workosUserId").unwrap_or_default();
    let mut docs = db
        .query("workosUsers")
        .with_index("by_workos_id", |r| r.eq("workosUserId", workos_id))
        .collect()
        .await?;
    docs.extend(
        db.query("workosMemberships")
            .with_index("by_workos_user", |r| r.eq("workosUserId", workos_id))
            .collect()
            .await?,
    );
    Ok(docs)
}

async fn custom_interests(db: &DbReader, user: &CurrentUser) -> Result<Vec<Document>> {
    db.query("interests")
        .with_index("by_created_by", |r| r.eq("createdBy", user.id.to_value()))
        .collect()
        .await
}

/// The sections of the users, profiles, settings and interests domains,
/// in export order.
pub fn sections() -> Vec<DataSection> {
    vec![
        DataSection {
            name: "users",
            on_delete: "anonymised: WorkOS id replaced by `deleted:<id>` (a later sign-in creates a new account), email emptied, display name \"Deleted user\", avatar, organization, activity and onboarding fields removed, `isActive: false`, `deletedAt` set; the row stays so meetings, messages and audit entries that refer to it remain consistent",
            export: |db, user| {
                Box::pin(async move {
                    Ok(db
                        .get(user.id.raw())
                        .await?
                        .map(Document::into_value)
                        .into_iter()
                        .collect())
                })
            },
            erase: |db, user, now| {
                Box::pin(async move {
                    let created = user
                        .doc
                        .field("createdAt")
                        .cloned()
                        .unwrap_or(Value::Float64(now));
                    db.replace(
                        user.id.raw(),
                        Value::object([
                            (
                                "workosUserId".to_owned(),
                                Value::String(format!("deleted:{}", user.id)),
                            ),
                            ("email".to_owned(), Value::from("")),
                            ("emailVerified".to_owned(), Value::Boolean(false)),
                            ("displayName".to_owned(), Value::from("Deleted user")),
                            ("isActive".to_owned(), Value::Boolean(false)),
                            ("deletedAt".to_owned(), Value::Float64(now)),
                            ("createdAt".to_owned(), created),
                            ("updatedAt".to_owned(), Value::Float64(now)),
                        ]),
                    )
                    .await?;
                    Ok(Erasure {
                        deleted: 0,
                        anonymised: 1,
                    })
                })
            },
        },
        DataSection {
            name: "profiles",
            on_delete: "deleted",
            export: |db, user| {
                Box::pin(async move { Ok(values(by_user(db, "profiles", user).await?)) })
            },
            erase: |db, user, _| {
                Box::pin(async move { delete_all(db, by_user(db, "profiles", user).await?).await })
            },
        },
        DataSection {
            name: "userSettings",
            on_delete: "deleted",
            export: |db, user| {
                Box::pin(async move { Ok(values(by_user(db, "userSettings", user).await?)) })
            },
            erase: |db, user, _| {
                Box::pin(
                    async move { delete_all(db, by_user(db, "userSettings", user).await?).await },
                )
            },
        },
        DataSection {
            name: "userInterests",
            on_delete: "deleted; each catalog entry's `usageCount` is decremented",
            export: |db, user| {
                Box::pin(async move { Ok(values(by_user(db, "userInterests", user).await?)) })
            },
            erase: |db, user, now| {
                Box::pin(async move {
                    let before = interests::user_interest_docs(db, user.id).await?.len();
                    interests::replace_user_interests(db, user.id, &[], now).await?;
                    Ok(Erasure {
                        deleted: before,
                        anonymised: 0,
                    })
                })
            },
        },
        DataSection {
            name: "customInterests",
            on_delete: "custom interests the user created are deleted when no other user chose them; otherwise kept in the catalog without `createdBy`",
            export: |db, user| {
                Box::pin(async move { Ok(values(custom_interests(db, user).await?)) })
            },
            erase: |db, user, _| {
                Box::pin(async move {
                    let mut out = Erasure::default();
                    for doc in custom_interests(db, user).await? {
                        let key = super::str_field(&doc, "key").unwrap_or_default().to_owned();
                        let me = user.id.to_value();
                        let used_by_others = db
                            .query("userInterests")
                            .with_index("by_interest", |r| r.eq("interestKey", key.as_str()))
                            .filter(move |d| d.field("userId") != Some(&me))
                            .first()
                            .await?
                            .is_some();
                        if used_by_others
                            || super::str_field(&doc, "category") != Some(CUSTOM_CATEGORY)
                        {
                            db.patch_fields(
                                doc.id(),
                                [("createdBy".to_owned(), None)].into_iter().collect(),
                            )
                            .await?;
                            out.anonymised += 1;
                        } else if by_key(db, &key).await?.is_some() {
                            db.delete(doc.id()).await?;
                            out.deleted += 1;
                        }
                    }
                    Ok(out)
                })
            },
        },
        DataSection {
            name: "workos",
            on_delete: "the mirrored WorkOS user record and organization memberships are deleted (the WorkOS account itself is managed in WorkOS)",
            export: |db, user| Box::pin(async move { Ok(values(workos_docs(db, user).await?)) }),
            erase: |db, user, _| {
                Box::pin(async move { delete_all(db, workos_docs(db, user).await?).await })
            },
        },
    ]
}
