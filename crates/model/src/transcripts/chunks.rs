//! The ingestion core shared by every entry point: validation, sequence
//! allocation from `meetingCounters`, interim replacement, bucketing,
//! coalescing and the speaking credit written to `meetingState`.

use std::collections::{BTreeMap, HashMap};

use database::{Document, Order};
use errors::{Error, Result};
use runtime::DbWriter;
use serde::{Deserialize, Serialize};
use serde_json::json;
use values::{DocumentId, Validator, Value, v};

use super::{BUCKET_MS, MAX_CHUNK_MS, MAX_FUTURE_SKEW_MS, MAX_LABEL_CHARS, MAX_TEXT_CHARS};
use crate::ids::{Id, Meetings, Users};

/// Start times before 2020-01-01 are taken as offsets from the start of
/// the recording rather than epoch milliseconds; such chunks are bucketed
/// by the server's receive time (the original put them all in bucket 0).
pub const EPOCH_FLOOR_MS: f64 = 1_577_836_800_000.0;

/// One chunk as clients, webhooks and the batch entries send it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkInput {
    /// Who spoke: any label (a user id, a provider's speaker tag…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_id: Option<String>,
    /// The text (trimmed on ingest).
    pub text: String,
    /// Recogniser confidence in [0, 1].
    pub confidence: f64,
    /// Start of the speech (ms).
    pub start_time: f64,
    /// End of the speech (ms), after `start_time`.
    pub end_time: f64,
    /// Language tag (default `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// An interim hypothesis, replaced by the next chunk of its utterance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_interim: Option<bool>,
    /// Groups the interim hypotheses and the final text of one utterance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utterance_id: Option<String>,
}

impl ChunkInput {
    fn interim(&self) -> bool {
        self.is_interim == Some(true)
    }
}

/// The fields of a chunk argument (batch entries take arrays of these).
pub(crate) fn chunk_fields() -> Vec<(&'static str, Validator)> {
    vec![
        ("speakerId", v::optional(v::string())),
        ("text", v::string()),
        ("confidence", v::number()),
        ("startTime", v::number()),
        ("endTime", v::number()),
        ("language", v::optional(v::string())),
        ("isInterim", v::optional(v::boolean())),
        ("utteranceId", v::optional(v::string())),
    ]
}

/// A chunk argument.
pub(crate) fn chunk_validator() -> Validator {
    v::object(chunk_fields())
}

/// Who is ingesting: decides the default speaker and who gets speaking
/// credit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IngestSource {
    /// A signed-in participant sending their own speech: `speakerId`
    /// defaults to their user id, and only their own final chunks (no
    /// `speakerId` or `speakerId` = their id) credit speaking time — to them.
    Client(Id<Users>),
    /// A trusted server-side source (a transcription provider's webhook):
    /// a final chunk credits its `speakerId` when that is the user id of a
    /// participant of the meeting.
    Provider,
}

/// A validated chunk, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub speaker_id: Option<String>,
    pub text: String,
    pub confidence: f64,
    pub start: f64,
    pub end: f64,
    pub language: String,
    pub interim: bool,
    pub utterance_id: Option<String>,
    pub word_count: f64,
}

fn check_label(field: &str, value: &Option<String>) -> Result<Option<String>> {
    match value {
        None => Ok(None),
        Some(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Err(Error::validation(format!("{field} cannot be empty")));
            }
            if s.chars().count() > MAX_LABEL_CHARS {
                return Err(Error::validation(format!(
                    "{field} is too long (at most {MAX_LABEL_CHARS} characters)"
                )));
            }
            Ok(Some(s.to_owned()))
        }
    }
}

/// Checks one chunk (`VALIDATION_ERROR` naming the field) at server time
/// `now`.
pub(crate) fn prepare(chunk: &ChunkInput, now: f64) -> Result<Prepared> {
    let text = chunk.text.trim();
    if text.is_empty() {
        return Err(Error::validation("Transcript text cannot be empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(Error::validation(format!(
            "Transcript text is too long: {chars} characters (at most {MAX_TEXT_CHARS})"
        ))
        .with_metadata(json!({ "field": "text", "maxLength": MAX_TEXT_CHARS, "length": chars })));
    }
    if !chunk.confidence.is_finite() || !(0.0..=1.0).contains(&chunk.confidence) {
        return Err(Error::validation("confidence must be between 0 and 1"));
    }
    let (start, end) = (chunk.start_time, chunk.end_time);
    if !start.is_finite() || !end.is_finite() || start < 0.0 {
        return Err(Error::validation(
            "startTime and endTime must be finite, non-negative milliseconds",
        ));
    }
    if start >= end {
        return Err(Error::validation("startTime must be before endTime"));
    }
    if end - start > MAX_CHUNK_MS {
        return Err(Error::validation(format!(
            "A chunk may span at most {MAX_CHUNK_MS} ms"
        )));
    }
    if end > now + MAX_FUTURE_SKEW_MS {
        return Err(Error::validation("endTime is in the future"));
    }
    Ok(Prepared {
        speaker_id: check_label("speakerId", &chunk.speaker_id)?,
        text: text.to_owned(),
        confidence: chunk.confidence,
        start,
        end,
        language: check_label("language", &chunk.language)?.unwrap_or_else(|| "en".to_owned()),
        interim: chunk.interim(),
        utterance_id: check_label("utteranceId", &chunk.utterance_id)?,
        word_count: word_count(text) as f64,
    })
}

/// Non-empty whitespace-separated tokens.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The 5-minute bucket of a chunk: from its start time when that is an
/// epoch time, else from the receive time `now`.
pub fn bucket_of(start: f64, now: f64) -> f64 {
    let t = if start >= EPOCH_FLOOR_MS { start } else { now };
    (t / BUCKET_MS).floor() * BUCKET_MS
}

/// Merges adjacent chunks of one speaker, language and utterance whose gap
/// is at most `window_ms` (overlaps merge too); interim chunks never merge.
/// The merged confidence is the true mean of the merged chunks'
/// confidences (the original averaged pairwise, weighting late chunks
/// more). Output is sorted by start time.
pub fn coalesce(mut chunks: Vec<ChunkInput>, window_ms: f64) -> Vec<ChunkInput> {
    chunks.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    let mut out: Vec<(ChunkInput, f64, usize)> = Vec::new();
    for chunk in chunks {
        if let Some((cur, sum, n)) = out.last_mut()
            && !cur.interim()
            && !chunk.interim()
            && cur.speaker_id == chunk.speaker_id
            && cur.language == chunk.language
            && cur.utterance_id == chunk.utterance_id
            && chunk.start_time - cur.end_time <= window_ms
        {
            cur.text = format!("{} {}", cur.text.trim_end(), chunk.text.trim_start());
            cur.end_time = cur.end_time.max(chunk.end_time);
            *sum += chunk.confidence;
            *n += 1;
            cur.confidence = *sum / *n as f64;
            continue;
        }
        let c = chunk.confidence;
        out.push((chunk, c, 1));
    }
    out.into_iter().map(|(c, _, _)| c).collect()
}

/// One stored chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    pub sequence: f64,
    pub bucket_ms: f64,
}

/// The highest sequence stored for `meeting` (0 if none).
async fn max_sequence(db: &DbWriter, meeting: Id<Meetings>) -> Result<f64> {
    Ok(db
        .query("transcripts")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value())
        })
        .order(Order::Desc)
        .first()
        .await?
        .and_then(|d| d.field("sequence").and_then(Value::as_f64))
        .unwrap_or(0.0))
}

/// The interim rows the chunk replaces.
async fn replaced_interims(
    db: &DbWriter,
    meeting: Id<Meetings>,
    chunk: &Prepared,
) -> Result<Vec<Document>> {
    let interim = |d: &Document| d.field("isInterim") == Some(&Value::Boolean(true));
    if let Some(utterance) = &chunk.utterance_id {
        let utterance = utterance.clone();
        return db
            .query("transcripts")
            .with_index("by_meeting_and_utterance", |r| {
                r.eq("meetingId", meeting.to_value())
                    .eq("utteranceId", utterance.as_str())
            })
            .filter(interim)
            .collect()
            .await;
    }
    let Some(speaker) = &chunk.speaker_id else {
        return Ok(Vec::new());
    };
    let speaker = speaker.clone();
    let latest = db
        .query("transcripts")
        .with_index("by_meeting_and_speaker", |r| {
            r.eq("meetingId", meeting.to_value())
                .eq("speakerId", speaker.as_str())
        })
        .order(Order::Desc)
        .first()
        .await?;
    Ok(latest
        .filter(|d| interim(d) && d.field("utteranceId").is_none())
        .into_iter()
        .collect())
}

/// Stores validated chunks of `meeting` in the caller's transaction, in
/// order: allocates their sequences from the meeting's counter (one read
/// and one write for the whole batch), replaces interim rows, and credits
/// speaking time and resets the lull state in `meetingState` once.
pub(crate) async fn store(
    db: &DbWriter,
    meeting: Id<Meetings>,
    chunks: Vec<Prepared>,
    source: IngestSource,
    now: f64,
) -> Result<Vec<Stored>> {
    let counter = db
        .query("meetingCounters")
        .with_index("by_meeting", |r| r.eq("meetingId", meeting.to_value()))
        .first()
        .await?;
    let mut last = match &counter {
        Some(doc) => doc
            .field("lastSequence")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        // Seeded from the highest stored sequence (the original seeded from
        // the latest start time, which need not hold the highest sequence).
        None => max_sequence(db, meeting).await?,
    };
    let mut stored = Vec::with_capacity(chunks.len());
    let mut credits: BTreeMap<String, (Id<Users>, f64)> = BTreeMap::new();
    // Per speaker, the row this batch inserted last, if it is an interim
    // without utterance id (`None`: a row that replaces nothing). It is
    // that speaker's newest row (creation times only grow), so it is what
    // `replaced_interims` would find; knowing it saves one index scan per
    // chunk of a batch.
    let mut newest: HashMap<String, Option<DocumentId>> = HashMap::new();
    for mut chunk in chunks {
        if let IngestSource::Client(user) = source
            && chunk.speaker_id.is_none()
        {
            chunk.speaker_id = Some(user.to_string());
        }
        let known = match (&chunk.utterance_id, &chunk.speaker_id) {
            (None, Some(speaker)) => newest.get(speaker).copied(),
            _ => None,
        };
        match known {
            Some(interim) => {
                if let Some(id) = interim {
                    db.delete(id).await?;
                }
            }
            None => {
                for old in replaced_interims(db, meeting, &chunk).await? {
                    db.delete(old.id()).await?;
                }
            }
        }
        last += 1.0;
        let bucket = bucket_of(chunk.start, now);
        // Built as a `Value` (no `serde_json` round trip: this runs for every
        // ingested chunk).
        let mut doc: BTreeMap<String, Value> = [
            ("meetingId", meeting.to_value()),
            ("bucketMs", Value::Float64(bucket)),
            ("sequence", Value::Float64(last)),
            ("text", Value::String(chunk.text)),
            ("confidence", Value::Float64(chunk.confidence)),
            ("startMs", Value::Float64(chunk.start)),
            ("endMs", Value::Float64(chunk.end)),
            ("wordCount", Value::Float64(chunk.word_count)),
            ("language", Value::String(chunk.language)),
            ("createdAt", Value::Float64(now)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(s) = &chunk.speaker_id {
            doc.insert("speakerId".to_owned(), Value::from(s.as_str()));
        }
        if chunk.interim {
            doc.insert("isInterim".to_owned(), Value::Boolean(true));
        }
        if let Some(u) = &chunk.utterance_id {
            doc.insert("utteranceId".to_owned(), Value::from(u.as_str()));
        }
        let id = db.insert_value("transcripts", Value::Object(doc)).await?;
        if let Some(speaker) = &chunk.speaker_id {
            let replaceable = chunk.interim && chunk.utterance_id.is_none();
            newest.insert(speaker.clone(), replaceable.then_some(id));
        }
        stored.push(Stored {
            sequence: last,
            bucket_ms: bucket,
        });
        if !chunk.interim
            && let Some(user) =
                credited_user(db, meeting, source, chunk.speaker_id.as_deref()).await?
        {
            credits.entry(user.to_string()).or_insert((user, 0.0)).1 += chunk.end - chunk.start;
        }
    }
    match counter {
        Some(doc) => {
            db.patch(doc.id(), json!({ "lastSequence": last, "updatedAt": now }))
                .await?;
        }
        None => {
            db.insert(
                "meetingCounters",
                json!({ "meetingId": meeting, "lastSequence": last, "updatedAt": now }),
            )
            .await?;
        }
    }
    if !stored.is_empty() {
        let credits: Vec<(Id<Users>, f64)> = credits.into_values().collect();
        crate::meetings::state_tracking::record_speech(db, meeting, &credits, now).await?;
    }
    Ok(stored)
}

/// Who a final chunk's speaking time goes to (see [`IngestSource`]).
async fn credited_user(
    db: &DbWriter,
    meeting: Id<Meetings>,
    source: IngestSource,
    speaker: Option<&str>,
) -> Result<Option<Id<Users>>> {
    match source {
        IngestSource::Client(user) => {
            Ok((speaker.is_none() || speaker == Some(user.to_string().as_str())).then_some(user))
        }
        IngestSource::Provider => {
            let Some(user) = speaker.and_then(Id::<Users>::parse) else {
                return Ok(None);
            };
            Ok(crate::meetings::find_participant(db, meeting, user)
                .await?
                .map(|_| user))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(speaker: &str, text: &str, c: f64, s: f64, e: f64) -> ChunkInput {
        ChunkInput {
            speaker_id: Some(speaker.to_owned()),
            text: text.to_owned(),
            confidence: c,
            start_time: s,
            end_time: e,
            language: None,
            is_interim: None,
            utterance_id: None,
        }
    }

    #[test]
    fn coalescing_takes_the_true_mean_confidence() {
        let out = coalesce(
            vec![
                chunk("a", "one", 0.9, 0.0, 100.0),
                chunk("a", "two", 0.6, 150.0, 200.0),
                chunk("a", "three", 0.3, 300.0, 400.0),
                chunk("b", "other", 1.0, 410.0, 500.0),
                chunk("b", "late", 1.0, 900.0, 1000.0),
            ],
            250.0,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].text, "one two three");
        assert!((out[0].confidence - 0.6).abs() < 1e-12);
        assert_eq!(out[0].end_time, 400.0);
        assert_eq!(out[1].text, "other");
        assert_eq!(out[2].text, "late");
    }

    #[test]
    fn interim_chunks_never_coalesce() {
        let mut b = chunk("a", "two", 0.5, 110.0, 200.0);
        b.is_interim = Some(true);
        let out = coalesce(vec![chunk("a", "one", 0.9, 0.0, 100.0), b], 250.0);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn buckets_are_five_minutes_of_epoch_time() {
        let now = 1_768_469_400_000.0;
        assert_eq!(bucket_of(now + 299_999.0, now), now);
        assert_eq!(bucket_of(now + 300_000.0, now), now + 300_000.0);
        // A relative offset is bucketed by the receive time.
        assert_eq!(bucket_of(5_000.0, now + 1.0), now);
        assert_eq!(word_count("  two   words "), 2);
    }
}
