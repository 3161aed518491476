//! The meetings domain's part of data export and account deletion (see
//! [`crate::users::data_protection`]).
//!
//! | section | export | on account deletion |
//! |---|---|---|
//! | `meetings` | meetings the user organized | kept (they belong to every participant); `organizerId` refers to the anonymised user |
//! | `meetingParticipants` | the user's participations | upcoming and running meetings: the row is deleted; a meeting left without a host is cancelled (scheduled) or ended (active). Past meetings: kept, referring to the anonymised user |
//! | `meetingEvents` | events the user caused | kept; `userId` refers to the anonymised user |

use database::Document;
use errors::Result;
use runtime::{DbReader, DbWriter};
use serde_json::json;
use values::Value;

use super::{Meeting, MeetingStatus, Participant, host_rows, lifecycle, track_event};
use crate::auth::{CurrentUser, MeetingRole};
use crate::users::data_protection::{DataSection, Erasure};

async fn by_index(
    db: &DbReader,
    table: &str,
    index: &str,
    field: &str,
    user: &CurrentUser,
) -> Result<Vec<Document>> {
    db.query(table)
        .with_index(index, |r| r.eq(field, user.id.to_value()))
        .collect()
        .await
}

fn values(docs: Vec<Document>) -> Vec<Value> {
    docs.into_iter().map(Document::into_value).collect()
}

/// Leaves every upcoming or running meeting; keeps past participations.
async fn erase_participations(db: &DbWriter, user: &CurrentUser, now: f64) -> Result<Erasure> {
    let mut out = Erasure::default();
    for row in by_index(db, "meetingParticipants", "by_user", "userId", user).await? {
        let participant: Participant = row.parse()?;
        let Some(doc) = db.get(participant.meeting_id.raw()).await? else {
            db.delete(row.id()).await?;
            out.deleted += 1;
            continue;
        };
        let meeting: Meeting = doc.parse()?;
        if meeting.state.is_final() {
            out.anonymised += 1;
            continue;
        }
        db.delete(row.id()).await?;
        out.deleted += 1;
        let count = (meeting.participant_count.unwrap_or(1.0) - 1.0).max(0.0);
        db.patch(
            meeting.id.raw(),
            json!({ "participantCount": count, "updatedAt": now }),
        )
        .await?;
        let hostless =
            participant.role() == MeetingRole::Host && host_rows(db, meeting.id).await?.is_empty();
        if !hostless {
            continue;
        }
        match meeting.state {
            MeetingStatus::Scheduled => {
                db.patch(
                    meeting.id.raw(),
                    json!({ "state": "cancelled", "updatedAt": now }),
                )
                .await?;
                track_event(
                    db,
                    meeting.id,
                    "meeting_cancelled",
                    None,
                    json!({ "reason": "host_account_deleted" }),
                    now,
                )
                .await?;
            }
            MeetingStatus::Active => {
                lifecycle::conclude(db, &meeting, None, "meeting_ended_host_deleted", now).await?;
            }
            MeetingStatus::Concluded | MeetingStatus::Cancelled => {}
        }
    }
    Ok(out)
}

/// The meetings domain's sections, in export order.
pub fn sections() -> Vec<DataSection> {
    vec![
        DataSection {
            name: "meetings",
            on_delete: "kept (they belong to every participant); `organizerId` refers to the anonymised user",
            export: |db, user| {
                Box::pin(async move {
                    Ok(values(
                        by_index(db, "meetings", "by_organizer", "organizerId", user).await?,
                    ))
                })
            },
            erase: |db, user, _| {
                Box::pin(async move {
                    let kept = by_index(db, "meetings", "by_organizer", "organizerId", user)
                        .await?
                        .len();
                    Ok(Erasure {
                        deleted: 0,
                        anonymised: kept,
                    })
                })
            },
        },
        DataSection {
            name: "meetingParticipants",
            on_delete: "upcoming and running meetings: the participation is deleted, and a meeting left without a host is cancelled (scheduled) or ended (active); past meetings: kept, referring to the anonymised user",
            export: |db, user| {
                Box::pin(async move {
                    Ok(values(
                        by_index(db, "meetingParticipants", "by_user", "userId", user).await?,
                    ))
                })
            },
            erase: |db, user, now| Box::pin(erase_participations(db, user, now)),
        },
        DataSection {
            name: "meetingEvents",
            on_delete: "kept (the meeting's history); `userId` refers to the anonymised user",
            export: |db, user| {
                Box::pin(async move {
                    Ok(values(
                        by_index(db, "meetingEvents", "by_user", "userId", user).await?,
                    ))
                })
            },
            erase: |db, user, _| {
                Box::pin(async move {
                    let kept = by_index(db, "meetingEvents", "by_user", "userId", user)
                        .await?
                        .len();
                    Ok(Erasure {
                        deleted: 0,
                        anonymised: kept,
                    })
                })
            },
        },
    ]
}
