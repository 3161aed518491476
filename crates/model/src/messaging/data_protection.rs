//! The chat's part of data export and account deletion (see
//! [`crate::users::data_protection`]).
//!
//! | section | export | on account deletion |
//! |---|---|---|
//! | `messages` | every message the user wrote | deleted; a message that others replied to becomes a tombstone (content emptied, attachments removed, `deletedAt` set) so the thread stays readable |

use std::collections::BTreeMap;

use database::Document;
use errors::Result;
use runtime::{DbReader, DbWriter};
use values::Value;

use super::Message;
use crate::auth::CurrentUser;
use crate::users::data_protection::{DataSection, Erasure};

async fn own_messages(db: &DbReader, user: &CurrentUser) -> Result<Vec<Document>> {
    db.query("messages")
        .with_index("by_user", |r| r.eq("userId", user.id.to_value()))
        .collect()
        .await
}

/// Deletes the user's replies first (updating their threads), then their
/// top-level messages: removed, or tombstoned when others replied.
async fn erase_messages(db: &DbWriter, user: &CurrentUser, now: f64) -> Result<Erasure> {
    let mut out = Erasure::default();
    let docs = own_messages(db, user).await?;
    let (replies, roots): (Vec<Document>, Vec<Document>) = docs
        .into_iter()
        .partition(|d| matches!(d.field("parentId"), Some(Value::String(_))));
    for doc in replies {
        let message: Message = doc.parse()?;
        db.delete(doc.id()).await?;
        out.deleted += 1;
        if let Some(parent_id) = message.parent_id {
            super::detach_reply(db, parent_id).await?;
        }
    }
    for doc in roots {
        let Some(current) = db.get(doc.id()).await? else {
            continue;
        };
        let replies = current
            .field("replyCount")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if replies > 0.0 {
            let mut fields = BTreeMap::new();
            fields.insert("content".to_owned(), Some(Value::from("")));
            fields.insert("attachments".to_owned(), None);
            fields.insert("deletedAt".to_owned(), Some(Value::Float64(now)));
            db.patch_fields(current.id(), fields).await?;
            out.anonymised += 1;
        } else {
            db.delete(current.id()).await?;
            out.deleted += 1;
        }
    }
    Ok(out)
}

/// The chat's sections.
pub fn sections() -> Vec<DataSection> {
    vec![DataSection {
        name: "messages",
        on_delete: "deleted; a message others replied to becomes a tombstone (content emptied, attachments removed, `deletedAt` set) so its thread stays readable",
        export: |db, user| {
            Box::pin(async move {
                Ok(own_messages(db, user)
                    .await?
                    .into_iter()
                    .map(Document::into_value)
                    .collect())
            })
        },
        erase: |db, user, now| Box::pin(erase_messages(db, user, now)),
    }]
}
