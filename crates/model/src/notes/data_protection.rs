//! The notes domain's part of data export and account deletion (see
//! [`crate::users::data_protection`]).
//!
//! | section | export | on account deletion |
//! |---|---|---|
//! | `noteOps` | every note operation the user authored | kept without `authorId`: the text is part of the meeting's shared notes and the log must stay replayable |
//! | `offlineOperationQueue` | the user's queued offline operations | deleted |
//! | `offlineCheckpoints` | the user's checkpoints | deleted |

use std::collections::BTreeMap;

use database::Document;
use errors::Result;
use runtime::{DbReader, DbWriter};

use crate::auth::CurrentUser;
use crate::users::data_protection::{DataSection, Erasure};

async fn own(db: &DbReader, table: &str, user: &CurrentUser) -> Result<Vec<Document>> {
    db.query(table)
        .with_index("by_author", |r| r.eq("authorId", user.id.to_value()))
        .collect()
        .await
}

async fn export(db: &DbReader, table: &str, user: &CurrentUser) -> Result<Vec<values::Value>> {
    Ok(own(db, table, user)
        .await?
        .into_iter()
        .map(Document::into_value)
        .collect())
}

async fn anonymise_ops(db: &DbWriter, user: &CurrentUser) -> Result<Erasure> {
    let mut out = Erasure::default();
    for doc in own(db, "noteOps", user).await? {
        let mut fields = BTreeMap::new();
        fields.insert("authorId".to_owned(), None);
        db.patch_fields(doc.id(), fields).await?;
        out.anonymised += 1;
    }
    Ok(out)
}

async fn delete_own(db: &DbWriter, table: &str, user: &CurrentUser) -> Result<Erasure> {
    let mut out = Erasure::default();
    for doc in own(db, table, user).await? {
        db.delete(doc.id()).await?;
        out.deleted += 1;
    }
    Ok(out)
}

/// The notes sections.
pub fn sections() -> Vec<DataSection> {
    vec![
        DataSection {
            name: "noteOps",
            on_delete: "kept without `authorId`: the text is part of the meeting's shared notes and the operation log must stay replayable",
            export: |db, user| Box::pin(export(db, "noteOps", user)),
            erase: |db, user, _now| Box::pin(anonymise_ops(db, user)),
        },
        DataSection {
            name: "offlineOperationQueue",
            on_delete: "deleted",
            export: |db, user| Box::pin(export(db, "offlineOperationQueue", user)),
            erase: |db, user, _now| Box::pin(delete_own(db, "offlineOperationQueue", user)),
        },
        DataSection {
            name: "offlineCheckpoints",
            on_delete: "deleted",
            export: |db, user| Box::pin(export(db, "offlineCheckpoints", user)),
            erase: |db, user, _now| Box::pin(delete_own(db, "offlineCheckpoints", user)),
        },
    ]
}
