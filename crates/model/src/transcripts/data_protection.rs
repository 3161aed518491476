//! The transcripts' part of data export and account deletion (see
//! [`crate::users::data_protection`]).
//!
//! | section | export | on account deletion |
//! |---|---|---|
//! | `transcripts` | every chunk whose `speakerId` is the user's id | deleted |
//! | `transcriptSegments` | segments of the user's meetings whose speaker is the user | deleted |
//!
//! Chunks labelled with another speaker tag (a provider's `speaker_1`) cannot
//! be attributed to a user and are kept until their retention ends.

use database::Document;
use errors::Result;
use runtime::{DbReader, DbWriter};
use values::Value;

use crate::auth::CurrentUser;
use crate::users::data_protection::{DataSection, Erasure};

async fn own_chunks(db: &DbReader, user: &CurrentUser) -> Result<Vec<Document>> {
    let me = user.id.to_string();
    db.query("transcripts")
        .with_index("by_speaker", |r| r.eq("speakerId", me.as_str()))
        .collect()
        .await
}

/// Segments of the user's meetings whose only speaker is the user.
async fn own_segments(db: &DbReader, user: &CurrentUser) -> Result<Vec<Document>> {
    let me = Value::from(user.id.to_string());
    let rows = db
        .query("meetingParticipants")
        .with_index("by_user", |r| r.eq("userId", user.id.to_value()))
        .collect()
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let Some(meeting) = row.field("meetingId").cloned() else {
            continue;
        };
        let me = me.clone();
        out.extend(
            db.query("transcriptSegments")
                .with_index("by_meeting", |r| r.eq("meetingId", meeting))
                .filter(move |d| match d.field("speakers") {
                    Some(Value::Array(s)) => s.contains(&me),
                    _ => false,
                })
                .collect()
                .await?,
        );
    }
    Ok(out)
}

async fn erase(db: &DbWriter, docs: Vec<Document>) -> Result<Erasure> {
    let mut out = Erasure::default();
    for d in docs {
        db.delete(d.id()).await?;
        out.deleted += 1;
    }
    Ok(out)
}

fn values(docs: Vec<Document>) -> Vec<Value> {
    docs.into_iter().map(Document::into_value).collect()
}

/// The transcripts' sections.
pub fn sections() -> Vec<DataSection> {
    vec![
        DataSection {
            name: "transcripts",
            on_delete: "deleted (chunks whose `speakerId` is the user's id)",
            export: |db, user| Box::pin(async move { Ok(values(own_chunks(db, user).await?)) }),
            erase: |db, user, _now| {
                Box::pin(async move { erase(db, own_chunks(db, user).await?).await })
            },
        },
        DataSection {
            name: "transcriptSegments",
            on_delete: "deleted (segments whose speaker is the user)",
            export: |db, user| Box::pin(async move { Ok(values(own_segments(db, user).await?)) }),
            erase: |db, user, _now| {
                Box::pin(async move { erase(db, own_segments(db, user).await?).await })
            },
        },
    ]
}
