//! The load itself: per-meeting writers, per-participant subscribers, and
//! the bookkeeping that proves no update was lost, duplicated or reordered.
//!
//! * Every update carries a **send id** in its text, `lb <meeting> <seq>`,
//!   `seq` counting 1, 2, 3, … per meeting and kind. The writer (the host's
//!   socket) records when each was queued and when its `MutationResponse`
//!   was read ([`SendLog`]).
//! * Every participant subscribes like the web app: the meeting, its
//!   participants, and one live query per enabled stream (chat, transcript,
//!   notes). When a Transition carries a new result, the subscriber notes
//!   every send id it has not seen before with the instant the frame was
//!   read ([`KindView`]); a send id first seen *below* one already seen is
//!   **out of order**, the same send id under two different document ids is
//!   a **duplicate**, and an acknowledged send id never seen by the end of
//!   the drain is **lost**.
//! * Transcripts are read through a moving cursor
//!   (`listTranscriptChunks {fromSequence, limit}`): when the window is half
//!   full the subscriber replaces the query with one starting after the last
//!   chunk it saw (a `ModifyQuerySet` Remove + Add), as the web app does.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protocol::{QuerySetModification, StateModification};
use serde_json::{Value, json};

use super::client::{Ack, Conn, TransitionSink};

/// A stream of updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `messaging/mutations:sendMessage` → `messaging/queries:listMessages`.
    Chat,
    /// `transcripts/ingestion:ingestTranscriptChunk` → `transcripts/queries:listTranscriptChunks`.
    Transcript,
    /// `notes/mutations:applyNoteOperation` → `notes/queries:getMeetingNotes`.
    Notes,
}

impl Kind {
    /// All kinds, in index order.
    pub const ALL: [Kind; 3] = [Kind::Chat, Kind::Transcript, Kind::Notes];

    /// Index into per-kind arrays.
    pub fn index(self) -> usize {
        match self {
            Kind::Chat => 0,
            Kind::Transcript => 1,
            Kind::Notes => 2,
        }
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Transcript => "transcript",
            Kind::Notes => "notes",
        }
    }

    /// The mutation a writer calls.
    pub fn mutation_path(self) -> &'static str {
        match self {
            Kind::Chat => "messaging/mutations:sendMessage",
            Kind::Transcript => "transcripts/ingestion:ingestTranscriptChunk",
            Kind::Notes => "notes/mutations:applyNoteOperation",
        }
    }
}

/// Chat messages shown per `listMessages` page (the newest first).
const CHAT_WINDOW: usize = 30;

/// The send id text of an update.
pub fn send_tag(meeting: usize, seq: u32) -> String {
    format!("lb {meeting} {seq} ")
}

/// Parses `lb <meeting> <seq>` at the start of (or inside) `text`.
pub fn parse_tag(text: &str) -> Option<(usize, u32)> {
    let at = text.find("lb ")?;
    let mut parts = text[at + 3..].split(' ');
    let meeting = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some((meeting, seq))
}

/// What the writer knows about one stream of one meeting.
#[derive(Debug, Default)]
pub struct SendLog {
    /// When update `seq` (index `seq - 1`) was queued.
    pub sent: Vec<Instant>,
    /// When its acknowledgement was read (`None`: not yet, or failed).
    pub acked: Vec<Option<Instant>>,
    /// Whether it failed (error response or connection lost).
    pub failed: Vec<bool>,
}

/// Send logs of one meeting, one per [`Kind`].
#[derive(Debug, Default)]
pub struct MeetingLog {
    /// Indexed by [`Kind::index`].
    pub kinds: [Mutex<SendLog>; 3],
    /// The highest notes `serverSequence` acknowledged: the `clientSequence`
    /// (base) of the next note operation.
    pub notes_head: AtomicU64,
}

/// Run-wide live counters (for progress lines).
#[derive(Debug, Default)]
pub struct Counters {
    /// Updates queued.
    pub sent: AtomicU64,
    /// Updates acknowledged successfully.
    pub acked: AtomicU64,
    /// Updates that failed.
    pub failed: AtomicU64,
    /// New updates seen by subscribers.
    pub delivered: AtomicU64,
}

/// The first few mutation error messages, for the report.
pub type ErrorSamples = Mutex<Vec<String>>;

/// The writer of one meeting: the host's socket and the meeting's send log.
pub struct Writer {
    /// The host's connection.
    pub conn: Arc<Conn>,
    /// Index of the meeting in the run (part of every send id).
    pub meeting_index: usize,
    /// `meetings` id.
    pub meeting_id: String,
    /// The meeting's send log.
    pub log: Arc<MeetingLog>,
    /// Run-wide counters.
    pub counters: Arc<Counters>,
    /// First error messages.
    pub errors: Arc<ErrorSamples>,
    /// Approximate text size of an update.
    pub payload_bytes: usize,
    /// Chunks per transcript mutation (1: `ingestTranscriptChunk`).
    pub transcript_batch: usize,
}

impl Writer {
    /// Queues the next update of `kind` on the host's socket.
    pub fn send(&self, kind: Kind) {
        send_update(self, kind);
    }
}

fn update_text(meeting_index: usize, seq: u32, payload_bytes: usize) -> String {
    let tag = send_tag(meeting_index, seq);
    let mut text = tag.clone();
    while text.len() < payload_bytes {
        text.push_str("lorem ipsum ");
    }
    // ASCII only, so any length is a char boundary.
    text.truncate(payload_bytes.max(tag.len()));
    text.trim_end().to_owned()
}

fn transcript_chunk(text: String, seq: u32) -> Value {
    let t = f64::from(seq) * 1000.0;
    json!({
        "text": text,
        "confidence": 0.9,
        "startTime": t,
        "endTime": t + 900.0,
    })
}

/// Queues one mutation carrying `batch` updates (send ids `first ..
/// first + batch`); `batch` is above 1 only for batched transcripts.
fn send_update(w: &Writer, kind: Kind) {
    let Writer {
        conn,
        meeting_index,
        meeting_id,
        log,
        counters,
        errors,
        payload_bytes,
        transcript_batch,
    } = w;
    let (meeting_index, payload_bytes) = (*meeting_index, *payload_bytes);
    let batch = if kind == Kind::Transcript {
        (*transcript_batch).max(1)
    } else {
        1
    };
    let first = {
        let mut l = log.kinds[kind.index()].lock();
        let now = Instant::now();
        for _ in 0..batch {
            l.sent.push(now);
            l.acked.push(None);
            l.failed.push(false);
        }
        (l.sent.len() - batch + 1) as u32
    };
    let seqs = first..first + batch as u32;
    let (path, args) = match kind {
        Kind::Chat => (
            kind.mutation_path(),
            json!({ "meetingId": meeting_id, "content": update_text(meeting_index, first, payload_bytes) }),
        ),
        Kind::Transcript if batch > 1 => (
            "transcripts/ingestion:ingestTranscriptBatch",
            json!({
                "meetingId": meeting_id,
                "chunks": seqs
                    .clone()
                    .map(|seq| transcript_chunk(update_text(meeting_index, seq, payload_bytes), seq))
                    .collect::<Vec<_>>(),
            }),
        ),
        Kind::Transcript => {
            let mut args =
                transcript_chunk(update_text(meeting_index, first, payload_bytes), first);
            args["meetingId"] = json!(meeting_id);
            (kind.mutation_path(), args)
        }
        Kind::Notes => (
            kind.mutation_path(),
            json!({
                "meetingId": meeting_id,
                "operation": {
                    "type": "insert",
                    "position": 0.0,
                    "content": format!("{}\n", update_text(meeting_index, first, payload_bytes)),
                },
                "clientSequence": log.notes_head.load(Ordering::SeqCst) as f64,
            }),
        ),
    };
    let n = batch as u64;
    counters.sent.fetch_add(n, Ordering::Relaxed);
    let (log2, counters2, errors2) = (log.clone(), counters.clone(), errors.clone());
    let acked_seqs = seqs.clone();
    let ack = Ack::Record(Box::new(move |at, outcome| {
        let mut l = log2.kinds[kind.index()].lock();
        match outcome {
            Ok(value) => {
                if let Some(head) = value.get("serverSequence").and_then(Value::as_f64) {
                    log2.notes_head.fetch_max(head as u64, Ordering::SeqCst);
                }
                for seq in acked_seqs {
                    l.acked[(seq - 1) as usize] = Some(at);
                }
                counters2.acked.fetch_add(n, Ordering::Relaxed);
            }
            Err(msg) => {
                for seq in acked_seqs {
                    l.failed[(seq - 1) as usize] = true;
                }
                counters2.failed.fetch_add(n, Ordering::Relaxed);
                let mut e = errors2.lock();
                if e.len() < 5 {
                    e.push(format!("{path}: {msg}"));
                }
            }
        }
    }));
    if conn.mutation_with(path, args, ack).is_err() {
        let mut l = log.kinds[kind.index()].lock();
        for seq in seqs {
            l.failed[(seq - 1) as usize] = true;
        }
        counters.failed.fetch_add(n, Ordering::Relaxed);
    }
}

/// What one subscriber has seen of one stream.
#[derive(Debug, Default)]
pub struct KindView {
    /// Hash of the document id under which send id `seq` (index `seq - 1`)
    /// was first seen; 0 = not seen.
    pub seen: Vec<u64>,
    /// The largest send id seen.
    pub max_seen: u32,
    /// `(seq, instant the Transition was read)` of every first sighting.
    pub deliveries: Vec<(u32, Instant)>,
    /// Send ids first seen after a larger one.
    pub out_of_order: u64,
    /// Send ids seen under a second document id.
    pub duplicates: u64,
    /// Results that could not be read (wrong shape, foreign meeting).
    pub malformed: u64,
    /// `QueryFailed` modifications.
    pub query_failures: u64,
}

impl KindView {
    fn observe(&mut self, seq: u32, doc_id: &str, at: Instant) -> bool {
        if seq == 0 {
            self.malformed += 1;
            return false;
        }
        let idx = (seq - 1) as usize;
        if self.seen.len() <= idx {
            self.seen.resize(idx + 1, 0);
        }
        let mut h = DefaultHasher::new();
        doc_id.hash(&mut h);
        let h = h.finish() | 1;
        if self.seen[idx] == 0 {
            self.seen[idx] = h;
            if seq < self.max_seen {
                self.out_of_order += 1;
            }
            self.max_seen = self.max_seen.max(seq);
            self.deliveries.push((seq, at));
            true
        } else {
            if self.seen[idx] != h {
                self.duplicates += 1;
            }
            false
        }
    }
}

/// Which live query a query id is.
#[derive(Debug, Clone, Copy)]
enum Role {
    Meeting,
    Participants,
    Stream(Kind),
}

#[derive(Debug, Default)]
struct SubState {
    roles: HashMap<u32, Role>,
    views: [KindView; 3],
    /// The current transcript window's query id and the largest server
    /// `sequence` seen.
    transcript_query: Option<u32>,
    transcript_next: Option<f64>,
    other_updates: u64,
}

/// One participant's subscriptions and what they delivered.
pub struct Subscriber {
    meeting_index: usize,
    meeting_id: String,
    state: Mutex<SubState>,
    counters: Arc<Counters>,
    transcript_window: usize,
}

impl Subscriber {
    /// A subscriber of meeting `meeting_index`.
    pub fn new(
        meeting_index: usize,
        meeting_id: String,
        counters: Arc<Counters>,
        transcript_window: usize,
    ) -> Arc<Self> {
        Arc::new(Subscriber {
            meeting_index,
            meeting_id,
            state: Mutex::new(SubState::default()),
            counters,
            transcript_window: transcript_window.max(2),
        })
    }

    fn add(
        &self,
        st: &mut SubState,
        conn: &Conn,
        role: Role,
        udf_path: &str,
        args: Value,
    ) -> QuerySetModification {
        let query_id = conn.next_query_id();
        st.roles.insert(query_id, role);
        QuerySetModification::Add {
            query_id,
            udf_path: udf_path.to_owned(),
            args: vec![args],
            journal: None,
            component_path: None,
        }
    }

    fn transcript_args(&self, from: Option<f64>) -> Value {
        let mut args =
            json!({ "meetingId": self.meeting_id, "limit": self.transcript_window as f64 });
        if let Some(from) = from {
            args["fromSequence"] = json!(from);
        }
        args
    }

    /// Subscribes like the web app and waits for the initial results.
    pub async fn subscribe(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        streams: &[Kind],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        conn.set_sink(self.clone());
        let mods = {
            let mut st = self.state.lock();
            let id = json!({ "meetingId": self.meeting_id });
            let mut mods = vec![
                self.add(
                    &mut st,
                    conn,
                    Role::Meeting,
                    "meetings/queries:getMeeting",
                    id.clone(),
                ),
                self.add(
                    &mut st,
                    conn,
                    Role::Participants,
                    "meetings/queries:listMeetingParticipants",
                    id.clone(),
                ),
            ];
            for kind in streams {
                let m = match kind {
                    Kind::Chat => self.add(
                        &mut st,
                        conn,
                        Role::Stream(Kind::Chat),
                        "messaging/queries:listMessages",
                        json!({
                            "meetingId": self.meeting_id,
                            "paginationOpts": { "numItems": CHAT_WINDOW as f64, "cursor": null },
                        }),
                    ),
                    Kind::Transcript => {
                        let m = self.add(
                            &mut st,
                            conn,
                            Role::Stream(Kind::Transcript),
                            "transcripts/queries:listTranscriptChunks",
                            self.transcript_args(None),
                        );
                        if let QuerySetModification::Add { query_id, .. } = &m {
                            st.transcript_query = Some(*query_id);
                        }
                        m
                    }
                    Kind::Notes => self.add(
                        &mut st,
                        conn,
                        Role::Stream(Kind::Notes),
                        "notes/queries:getMeetingNotes",
                        id.clone(),
                    ),
                };
                mods.push(m);
            }
            mods
        };
        let version = conn.modify_query_set(mods)?;
        conn.wait_version(timeout, |v| v.query_set >= version).await
    }

    /// Totals of one stream (after the run).
    pub fn with_view<R>(&self, kind: Kind, f: impl FnOnce(&KindView) -> R) -> R {
        f(&self.state.lock().views[kind.index()])
    }

    fn on_chat(&self, st: &mut SubState, value: &Value, at: Instant) -> u64 {
        let view = &mut st.views[Kind::Chat.index()];
        let Some(page) = value.get("page").and_then(Value::as_array) else {
            view.malformed += 1;
            return 0;
        };
        let mut new = 0;
        // The page is newest first; read it oldest first.
        for msg in page.iter().rev() {
            let id = msg.get("_id").and_then(Value::as_str).unwrap_or("");
            let tag = msg
                .get("content")
                .and_then(Value::as_str)
                .and_then(parse_tag);
            match tag {
                Some((m, seq)) if m == self.meeting_index => {
                    if view.observe(seq, id, at) {
                        new += 1;
                    }
                }
                _ => view.malformed += 1,
            }
        }
        new
    }

    fn on_transcript(&self, st: &mut SubState, conn: &Conn, value: &Value, at: Instant) -> u64 {
        let view = &mut st.views[Kind::Transcript.index()];
        let Some(chunks) = value.get("chunks").and_then(Value::as_array) else {
            view.malformed += 1;
            return 0;
        };
        let mut new = 0;
        let mut last_server_seq: Option<f64> = None;
        for chunk in chunks {
            let id = chunk.get("_id").and_then(Value::as_str).unwrap_or("");
            let server_seq = chunk.get("sequence").and_then(Value::as_f64);
            if let (Some(s), Some(prev)) = (server_seq, last_server_seq)
                && s <= prev
            {
                view.out_of_order += 1;
            }
            last_server_seq = server_seq.or(last_server_seq);
            match chunk
                .get("text")
                .and_then(Value::as_str)
                .and_then(parse_tag)
            {
                Some((m, seq)) if m == self.meeting_index => {
                    if view.observe(seq, id, at) {
                        new += 1;
                    }
                }
                _ => view.malformed += 1,
            }
        }
        // Move the window once it is half full.
        if chunks.len() >= self.transcript_window / 2 {
            let next = value
                .get("nextSequence")
                .and_then(Value::as_f64)
                .or(last_server_seq);
            if let (Some(next), Some(old)) = (next, st.transcript_query) {
                let query_id = conn.next_query_id();
                st.roles.remove(&old);
                st.roles.insert(query_id, Role::Stream(Kind::Transcript));
                st.transcript_query = Some(query_id);
                st.transcript_next = Some(next);
                let mods = vec![
                    QuerySetModification::Remove { query_id: old },
                    QuerySetModification::Add {
                        query_id,
                        udf_path: "transcripts/queries:listTranscriptChunks".into(),
                        args: vec![self.transcript_args(Some(next))],
                        journal: None,
                        component_path: None,
                    },
                ];
                let _ = conn.modify_query_set(mods);
            }
        }
        new
    }

    fn on_notes(&self, st: &mut SubState, value: &Value, at: Instant) -> u64 {
        let view = &mut st.views[Kind::Notes.index()];
        let content = value
            .get("content")
            .and_then(Value::as_str)
            .or_else(|| value.as_str());
        let Some(content) = content else {
            if !value.is_null() {
                view.malformed += 1;
            }
            return 0;
        };
        // Inserts go to position 0, so the document lists updates newest
        // first, one per line.
        let mut new = 0;
        for line in content.lines().rev() {
            if let Some((m, seq)) = parse_tag(line)
                && m == self.meeting_index
                && view.observe(seq, "notes", at)
            {
                new += 1;
            }
        }
        new
    }
}

impl TransitionSink for Subscriber {
    fn on_transition(&self, conn: &Conn, modifications: &[StateModification], read_at: Instant) {
        let mut st = self.state.lock();
        let mut new = 0;
        for m in modifications {
            match m {
                StateModification::QueryUpdated {
                    query_id, value, ..
                } => match st.roles.get(query_id).copied() {
                    Some(Role::Stream(kind)) => {
                        // Decoded messages hold parsed values; `json` borrows them.
                        let value = value.json();
                        let value = value.as_ref();
                        new += match kind {
                            Kind::Chat => self.on_chat(&mut st, value, read_at),
                            Kind::Transcript => self.on_transcript(&mut st, conn, value, read_at),
                            Kind::Notes => self.on_notes(&mut st, value, read_at),
                        };
                    }
                    Some(Role::Meeting | Role::Participants) => st.other_updates += 1,
                    None => {}
                },
                StateModification::QueryFailed {
                    query_id,
                    error_message,
                    ..
                } => {
                    if let Some(Role::Stream(kind)) = st.roles.get(query_id).copied() {
                        st.views[kind.index()].query_failures += 1;
                    }
                    if st.views.iter().map(|v| v.query_failures).sum::<u64>() == 1 {
                        eprintln!("connvo-bench: a subscription failed: {error_message}");
                    }
                }
                StateModification::QueryRemoved { .. } => {}
            }
        }
        self.counters.delivered.fetch_add(new, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        assert_eq!(parse_tag(&send_tag(12, 345)), Some((12, 345)));
        assert_eq!(parse_tag("x lb 1 2 lorem"), Some((1, 2)));
        assert_eq!(parse_tag("nothing"), None);
    }

    #[test]
    fn views_count_order_and_duplicates() {
        let now = Instant::now();
        let mut v = KindView::default();
        assert!(v.observe(1, "a", now));
        assert!(v.observe(3, "c", now));
        assert!(v.observe(2, "b", now));
        assert_eq!(v.out_of_order, 1);
        assert!(!v.observe(3, "c", now));
        assert_eq!(v.duplicates, 0);
        assert!(!v.observe(3, "other", now));
        assert_eq!(v.duplicates, 1);
        assert_eq!(v.deliveries.len(), 3);
    }
}
