//! Collaborative meeting notes (issue 5).
//!
//! * [`ot`] — the operational transform on UTF-16 offsets: the operation
//!   format of the original (`{type: insert|delete|retain, position,
//!   content?, length?}`), validation, application, and a transform that
//!   converges (proved by `tests/notes_ot.rs`).
//! * [`mutations`] — `notes/mutations:*`: applying one operation or a batch,
//!   rollback, and the internal log maintenance (rebase, compose, compaction
//!   with snapshots, on an hourly cron).
//! * [`queries`] — `notes/queries:*`: the document, the operation stream
//!   clients catch up from, and full-text search.
//! * [`offline`] — `notes/offline:*`: the offline queue and checkpoints.
//! * [`data_protection`] — the notes domain's part of data export and
//!   account deletion.
//!
//! # The model
//!
//! One `meetingNotes` document per meeting holds the current `content`, its
//! `version` (one bump per accepted call) and `headSequence`, the sequence of
//! the newest operation. `noteOps` is the operation log: per meeting, dense
//! 1-based `sequence`s, each row holding the operation **as transformed by
//! the server** (so replaying the log in order from `""` rebuilds the
//! content). A client sends each operation with `clientSequence`, the
//! highest sequence it has applied (its base); the server transforms it
//! against every operation committed after that base
//! ([`ot::transform_against_all`], the incoming operation on the right side
//! of ties), applies it and appends it. A transformed delete may become two
//! deletes (an insert landed inside its range): each is its own row with
//! consecutive sequences. Clients follow `notes/queries:getNoteOperations`
//! (reactive) and transform their pending operations against what arrives
//! ([`ot::transform_sequences`]), which converges (see [`ot`]).
//!
//! `noteSnapshots` hold the content at a sequence. Compaction writes a
//! snapshot first and only then deletes the operations at or below it, so
//! "newest snapshot ≤ s, then the operations after it" always rebuilds the
//! content at `s` ([`content_at`]); a client whose base was compacted away
//! is told to resync from the current content.
//!
//! # Authorization
//!
//! Any participant reads (observers included); participants and hosts edit
//! (`INSUFFICIENT_PERMISSIONS` for observers); only hosts roll back. Edits
//! are refused with `CONFLICT` once the meeting is concluded or cancelled.

pub mod data_protection;
pub mod mutations;
pub mod offline;
pub mod ot;
pub mod queries;

use database::{Document, Order, TableDef};
use errors::{Error, Result};
use runtime::{DbReader, DbWriter, Registry};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use values::{DocumentId, Validator, Value, v};

use crate::ids::{Id, Meetings, Users};
use crate::meetings::Access;
use ot::{Operation, Side};

/// Longest notes document, in UTF-16 code units.
pub const MAX_CONTENT_UNITS: usize = 200_000;
/// Longest inserted text of one operation, in UTF-16 code units.
pub const MAX_INSERT_UNITS: usize = 50_000;
/// Most operations in one batch (and in one offline queue call).
pub const MAX_BATCH_OPS: usize = 100;
/// Most committed operations an incoming operation is transformed against:
/// a client further behind must resync from the current content.
pub const MAX_CATCH_UP_OPS: u64 = 5_000;

/// `{type: "insert"|"delete"|"retain", position, content?, length?}`.
pub fn operation_validator() -> Validator {
    v::object([
        (
            "type",
            v::union([
                v::literal("insert"),
                v::literal("delete"),
                v::literal("retain"),
            ]),
        ),
        ("position", v::number()),
        ("content", v::optional(v::string())),
        ("length", v::optional(v::number())),
    ])
}

fn notes_fields() -> Vec<(&'static str, Validator)> {
    vec![
        ("meetingId", v::id("meetings")),
        ("content", v::string()),
        ("version", v::number()),
        ("lastRebasedAt", v::number()),
        ("updatedAt", v::number()),
        ("headSequence", v::optional(v::number())),
    ]
}

/// A `meetingNotes` document as functions return it.
pub fn notes_doc_validator() -> Validator {
    let mut fields = vec![
        ("_id", v::id("meetingNotes")),
        ("_creationTime", v::number()),
    ];
    fields.extend(notes_fields());
    v::object(fields)
}

/// The notes tables: `meetingNotes`, `noteOps`, `noteSnapshots`,
/// `offlineOperationQueue`, `offlineCheckpoints`.
pub fn tables() -> Vec<TableDef> {
    let mut notes = TableDef::new("meetingNotes");
    for (name, validator) in notes_fields() {
        notes = notes.field(name, validator);
    }
    vec![
        notes.index("by_meeting", &["meetingId"]).search_index(
            "search_content",
            "content",
            &["meetingId"],
        ),
        TableDef::new("noteOps")
            .field("meetingId", v::id("meetings"))
            .field("sequence", v::number())
            // Removed when the author's account is deleted: the text stays
            // part of the shared document.
            .field("authorId", v::optional(v::id("users")))
            .field("operation", operation_validator())
            .field("timestamp", v::number())
            .field("applied", v::boolean())
            .field("clientTimestamp", v::optional(v::number()))
            // A composed run: the first row holds the composed operation and
            // `composedThrough`; the others are no-ops with `composedInto`.
            .field("composedThrough", v::optional(v::number()))
            .field("composedInto", v::optional(v::number()))
            .index("by_meeting_sequence", &["meetingId", "sequence"])
            .index("by_meeting_timestamp", &["meetingId", "timestamp"])
            .index("by_author", &["authorId"])
            .index("by_timestamp", &["timestamp"]),
        TableDef::new("noteSnapshots")
            .field("meetingId", v::id("meetings"))
            .field("sequence", v::number())
            .field("content", v::string())
            .field("contentHash", v::string())
            .field("createdAt", v::number())
            .index("by_meeting_sequence", &["meetingId", "sequence"]),
        TableDef::new("offlineOperationQueue")
            .field("meetingId", v::id("meetings"))
            .field("clientId", v::string())
            .field("queueId", v::string())
            .field("operation", operation_validator())
            .field("operationId", v::string())
            .field("authorId", v::id("users"))
            .field("clientSequence", v::number())
            .field("timestamp", v::number())
            .field("queuedAt", v::number())
            .field("attempts", v::number())
            .field("lastAttempt", v::optional(v::number()))
            .field("error", v::optional(v::string()))
            .field("serverSequence", v::optional(v::number()))
            .field(
                "status",
                v::union([
                    v::literal("pending"),
                    v::literal("syncing"),
                    v::literal("synced"),
                    v::literal("failed"),
                ]),
            )
            .index("by_meeting_and_client", &["meetingId", "clientId"])
            .index("by_queue_id", &["queueId"])
            .index("by_queue_and_operation", &["queueId", "operationId"])
            .index("by_status_and_queued_at", &["status", "queuedAt"])
            .index("by_author", &["authorId"])
            .index(
                "by_author_client_status",
                &[
                    "authorId",
                    "meetingId",
                    "clientId",
                    "status",
                    "clientSequence",
                ],
            ),
        TableDef::new("offlineCheckpoints")
            .field("checkpointId", v::string())
            .field("meetingId", v::id("meetings"))
            .field("clientId", v::string())
            .field("authorId", v::id("users"))
            .field("sequence", v::number())
            .field("version", v::number())
            .field("contentHash", v::string())
            .field("verified", v::optional(v::boolean()))
            .field("timestamp", v::number())
            .field("createdAt", v::number())
            .index("by_checkpoint_id", &["checkpointId"])
            .index("by_meeting_and_client", &["meetingId", "clientId"])
            .index("by_author", &["authorId"])
            .index("by_created_at", &["createdAt"]),
    ]
}

/// An operation as clients send it (validated by [`operation_validator`]).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub(crate) struct OperationArg {
    #[serde(rename = "type")]
    pub kind: String,
    pub position: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<f64>,
}

/// A non-negative integer argument (a position, length or sequence).
pub(crate) fn whole(x: f64, what: &str) -> Result<u64> {
    if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= 9_007_199_254_740_991.0 {
        Ok(x as u64)
    } else {
        Err(Error::validation(format!(
            "{what} must be a non-negative integer, got {x}"
        )))
    }
}

fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

impl OperationArg {
    /// The operation, or `VALIDATION_ERROR` "Invalid operation format: …"
    /// (the original's `validateOperation`).
    pub(crate) fn parse(&self) -> Result<Operation> {
        let invalid = |why: String| Error::validation(format!("Invalid operation format: {why}"));
        let int = |x: f64, what: &str| {
            whole(x, what)
                .map(to_usize)
                .map_err(|e| invalid(e.message().to_owned()))
        };
        let position = int(self.position, "position")?;
        let length = |required: bool| -> Result<usize> {
            match self.length {
                Some(l) => int(l, "length"),
                None if required => Err(invalid(format!("a {} needs a length", self.kind))),
                None => Ok(0),
            }
        };
        match self.kind.as_str() {
            "insert" => {
                let content = self.content.clone().unwrap_or_default();
                if content.is_empty() {
                    return Err(invalid("an insert needs non-empty content".to_owned()));
                }
                let units = ot::utf16_len(&content);
                if units > MAX_INSERT_UNITS {
                    return Err(invalid(format!(
                        "an insert holds at most {MAX_INSERT_UNITS} UTF-16 code units, got {units}"
                    )));
                }
                Ok(Operation::insert(position, content))
            }
            "delete" => {
                let length = length(true)?;
                if length == 0 {
                    return Err(invalid("a delete needs a length > 0".to_owned()));
                }
                Ok(Operation::delete(position, length))
            }
            "retain" => Ok(Operation::retain(position, length(true)?)),
            other => Err(invalid(format!("unknown type {other:?}"))),
        }
    }
}

/// An operation in its stored and wire form (numbers as float64).
pub(crate) fn op_json(op: &Operation) -> serde_json::Value {
    match op {
        Operation::Insert { position, content } => {
            json!({"type": "insert", "position": *position as f64, "content": content})
        }
        Operation::Delete { position, length } => {
            json!({"type": "delete", "position": *position as f64, "length": *length as f64})
        }
        Operation::Retain { position, length } => {
            json!({"type": "retain", "position": *position as f64, "length": *length as f64})
        }
    }
}

/// Reads a stored operation.
pub(crate) fn op_from_value(value: &Value) -> Result<Operation> {
    values::from_value::<OperationArg>(value.clone())?.parse()
}

/// SHA-256 of the content, lowercase hex.
pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// The meeting's notes as the write path sees them.
#[derive(Debug, Clone)]
pub(crate) struct Notes {
    pub doc_id: Option<DocumentId>,
    pub content: String,
    pub version: f64,
    pub head: u64,
}

/// The `meetingNotes` document of a meeting, if any.
pub(crate) async fn notes_doc(db: &DbReader, meeting: Id<Meetings>) -> Result<Option<Document>> {
    db.query("meetingNotes")
        .with_index("by_meeting", |r| r.eq("meetingId", meeting.to_value()))
        .first()
        .await
}

fn num(doc: &Document, field: &str) -> f64 {
    doc.field(field).and_then(Value::as_f64).unwrap_or(0.0)
}

/// The newest operation's sequence, from the log (0 if it is empty).
async fn head_from_ops(db: &DbReader, meeting: Id<Meetings>) -> Result<u64> {
    let last = db
        .query("noteOps")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value())
        })
        .order(Order::Desc)
        .first()
        .await?;
    Ok(last.map_or(0, |d| num(&d, "sequence") as u64))
}

/// Reads the notes (content `""`, version 0, head 0 when there are none).
pub(crate) async fn load_notes(db: &DbReader, meeting: Id<Meetings>) -> Result<Notes> {
    match notes_doc(db, meeting).await? {
        Some(doc) => {
            let head = match doc.field("headSequence").and_then(Value::as_f64) {
                Some(h) => h as u64,
                None => head_from_ops(db, meeting).await?,
            };
            Ok(Notes {
                doc_id: Some(doc.id()),
                content: doc
                    .field("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                version: num(&doc, "version"),
                head,
            })
        }
        None => Ok(Notes {
            doc_id: None,
            content: String::new(),
            version: 0.0,
            head: head_from_ops(db, meeting).await?,
        }),
    }
}

/// `CONFLICT` for edits once the meeting is concluded or cancelled.
pub(crate) fn ensure_editable(access: &Access) -> Result<()> {
    if access.meeting.state.is_final() {
        return Err(Error::conflict(format!(
            "The meeting is {}: its notes are read-only",
            access.meeting.state.as_str()
        )));
    }
    Ok(())
}

/// A stored operation.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub id: DocumentId,
    pub sequence: u64,
    pub op: Operation,
    pub composed_into: Option<u64>,
}

impl Committed {
    fn from_doc(doc: &Document) -> Result<Self> {
        Ok(Self {
            id: doc.id(),
            sequence: num(doc, "sequence") as u64,
            op: op_from_value(
                doc.field("operation")
                    .ok_or_else(|| Error::internal("noteOps row without an operation"))?,
            )?,
            composed_into: doc
                .field("composedInto")
                .and_then(Value::as_f64)
                .map(|s| s as u64),
        })
    }
}

/// The "resync" conflict: the client's base is no longer in the log.
pub(crate) fn resync_conflict(base: u64, head: u64, why: &str) -> Error {
    Error::conflict(format!(
        "Cannot transform from clientSequence {base}: {why}; reload the notes (getNoteOperations returns the current content) and resend"
    ))
    .with_metadata(json!({"resync": true, "clientSequence": base as f64, "headSequence": head as f64}))
}

/// Every operation with `base < sequence <= head`, in order; `CONFLICT`
/// (resync) if some of them were compacted away or `base` is inside a
/// composed run, `VALIDATION_ERROR` if `base > head`.
pub(crate) async fn committed_since(
    db: &DbReader,
    meeting: Id<Meetings>,
    base: u64,
    head: u64,
) -> Result<Vec<Committed>> {
    if base > head {
        return Err(Error::validation(format!(
            "clientSequence {base} is ahead of the notes' newest sequence {head}"
        ))
        .with_metadata(json!({"clientSequence": base as f64, "headSequence": head as f64})));
    }
    if head - base > MAX_CATCH_UP_OPS {
        return Err(resync_conflict(
            base,
            head,
            &format!("more than {MAX_CATCH_UP_OPS} operations behind"),
        ));
    }
    let docs = db
        .query("noteOps")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value())
                .gt("sequence", base as f64)
                .lte("sequence", head as f64)
        })
        .collect()
        .await?;
    let ops = docs
        .iter()
        .map(Committed::from_doc)
        .collect::<Result<Vec<_>>>()?;
    if ops.len() as u64 != head - base {
        return Err(resync_conflict(
            base,
            head,
            "the operations after it were compacted",
        ));
    }
    if ops.first().is_some_and(|c| c.composed_into.is_some()) {
        return Err(resync_conflict(
            base,
            head,
            "the operations after it were composed",
        ));
    }
    Ok(ops)
}

/// Transforms the operations of one call (a single operation, a batch, or
/// an offline queue) against the log.
///
/// The operations of one call are **sequential** edits by one client: op
/// `i` was generated on the document at its base `b_i` *plus the call's
/// earlier operations* (rebased to `b_i` the way the client itself rebased
/// them). So op `i` is transformed against the operations committed in
/// `(b_i, head₀]` (`head₀` = the head when the call started) **as they look
/// after the call's earlier operations** — never against the call's own
/// earlier operations, which the original did (read-your-writes) and which
/// turned sequential edits into concurrent ones. Bases must not decrease
/// within a call.
pub(crate) struct Rebaser {
    committed: Vec<Committed>,
    base: u64,
    head0: u64,
    /// The call's earlier operations, in client form, rebased to `base`.
    prior: Vec<Operation>,
}

/// One transformed operation.
pub(crate) struct Rebased {
    pub ops: Vec<Operation>,
    pub conflicts: Vec<DocumentId>,
}

impl Rebaser {
    /// Loads the log after `min_base` (the smallest base of the call).
    pub(crate) async fn load(
        db: &DbReader,
        meeting: Id<Meetings>,
        min_base: u64,
        head0: u64,
    ) -> Result<Self> {
        Ok(Self {
            committed: committed_since(db, meeting, min_base, head0).await?,
            base: min_base,
            head0,
            prior: Vec::new(),
        })
    }

    fn between(&self, after: u64, through: u64) -> impl Iterator<Item = &Committed> {
        self.committed
            .iter()
            .filter(move |c| c.sequence > after && c.sequence <= through)
    }

    /// Transforms `op` (generated at `base` after the call's earlier
    /// operations). `keep` says whether it becomes one of those earlier
    /// operations (false for an operation that then fails to apply).
    pub(crate) fn rebase(&mut self, op: &Operation, base: u64) -> Result<Rebased> {
        if base < self.base {
            return Err(Error::validation(format!(
                "clientSequence must not decrease within one call ({base} after {})",
                self.base
            )));
        }
        if base > self.head0 {
            return Err(Error::validation(format!(
                "clientSequence {base} is ahead of the notes' newest sequence {}",
                self.head0
            )));
        }
        if base > self.base {
            if !self.prior.is_empty() {
                let seen: Vec<Operation> = self
                    .between(self.base, base)
                    .map(|c| c.op.clone())
                    .collect();
                self.prior = ot::transform_sequences(&self.prior, &seen, Side::Right).0;
            }
            self.base = base;
        }
        let mut prior = self.prior.clone();
        let mut result = vec![op.clone()];
        let mut conflicts = Vec::new();
        for c in self.between(base, self.head0) {
            let (prior_next, c_after_prior) =
                ot::transform_sequences(&prior, std::slice::from_ref(&c.op), Side::Right);
            prior = prior_next;
            let (next, _) = ot::transform_sequences(&result, &c_after_prior, Side::Right);
            if next != result {
                conflicts.push(c.id);
            }
            result = next;
        }
        Ok(Rebased {
            ops: result,
            conflicts,
        })
    }

    /// Records `op` as one of the call's earlier operations.
    pub(crate) fn accept(&mut self, op: Operation) {
        self.prior.push(op);
    }
}

/// Appends operations to a meeting's log and keeps the content in step.
pub(crate) struct LogWriter {
    pub meeting: Id<Meetings>,
    pub notes: Notes,
    pub now: f64,
    pub appended: usize,
}

impl LogWriter {
    pub(crate) fn new(meeting: Id<Meetings>, notes: Notes, now: f64) -> Self {
        Self {
            meeting,
            notes,
            now,
            appended: 0,
        }
    }

    /// Applies `ops` (all or none) and appends them with consecutive
    /// sequences; returns the first sequence. `VALIDATION_ERROR` if one does
    /// not apply or the document would grow too long.
    pub(crate) async fn append(
        &mut self,
        db: &DbWriter,
        author: Id<Users>,
        ops: &[Operation],
        client_timestamp: Option<f64>,
    ) -> Result<u64> {
        let content = ot::apply_all(&self.notes.content, ops)?;
        let units = ot::utf16_len(&content);
        if units > MAX_CONTENT_UNITS {
            return Err(Error::validation(format!(
                "The notes would be {units} UTF-16 code units long (at most {MAX_CONTENT_UNITS})"
            )));
        }
        let first = self.notes.head + 1;
        for op in ops {
            self.notes.head += 1;
            let mut row = json!({
                "meetingId": self.meeting,
                "sequence": self.notes.head as f64,
                "authorId": author,
                "operation": op_json(op),
                "timestamp": self.now,
                "applied": true,
            });
            if let Some(t) = client_timestamp {
                row["clientTimestamp"] = json!(t);
            }
            db.insert("noteOps", row).await?;
        }
        self.notes.content = content;
        self.appended += ops.len();
        Ok(first)
    }

    /// Writes the content, bumps the version once, and returns it.
    pub(crate) async fn finish(self, db: &DbWriter) -> Result<f64> {
        write_notes(db, self.meeting, &self.notes, self.now, false).await
    }
}

/// Stores `notes` with `version + 1` (creating the document if needed) and
/// returns the new version. `rebased` also sets `lastRebasedAt`.
pub(crate) async fn write_notes(
    db: &DbWriter,
    meeting: Id<Meetings>,
    notes: &Notes,
    now: f64,
    rebased: bool,
) -> Result<f64> {
    let version = notes.version + 1.0;
    match notes.doc_id {
        Some(id) => {
            let mut fields = json!({
                "content": notes.content,
                "version": version,
                "updatedAt": now,
                "headSequence": notes.head as f64,
            });
            if rebased {
                fields["lastRebasedAt"] = json!(now);
            }
            db.patch(id, fields).await?;
        }
        None => {
            db.insert(
                "meetingNotes",
                json!({
                    "meetingId": meeting,
                    "content": notes.content,
                    "version": version,
                    "lastRebasedAt": now,
                    "updatedAt": now,
                    "headSequence": notes.head as f64,
                }),
            )
            .await?;
        }
    }
    Ok(version)
}

/// The newest snapshot with `sequence <= at`, as `(sequence, content)`.
pub(crate) async fn snapshot_at_or_before(
    db: &DbReader,
    meeting: Id<Meetings>,
    at: u64,
) -> Result<Option<(u64, String)>> {
    let doc = db
        .query("noteSnapshots")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value())
                .lte("sequence", at as f64)
        })
        .order(Order::Desc)
        .first()
        .await?;
    Ok(doc.map(|d| {
        (
            num(&d, "sequence") as u64,
            d.field("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    }))
}

/// The content at sequence `at` (≤ head): the newest snapshot at or before
/// it, then the operations after it. `None` when the operations needed were
/// compacted away (and no snapshot sits exactly there).
pub(crate) async fn content_at(
    db: &DbReader,
    meeting: Id<Meetings>,
    at: u64,
) -> Result<Option<String>> {
    let (from, mut content) = snapshot_at_or_before(db, meeting, at)
        .await?
        .unwrap_or((0, String::new()));
    if from == at {
        return Ok(Some(content));
    }
    let docs = db
        .query("noteOps")
        .with_index("by_meeting_sequence", |r| {
            r.eq("meetingId", meeting.to_value())
                .gt("sequence", from as f64)
                .lte("sequence", at as f64)
        })
        .collect()
        .await?;
    if docs.len() as u64 != at - from {
        return Ok(None);
    }
    for doc in &docs {
        let c = Committed::from_doc(doc)?;
        content = ot::apply(&content, &c.op).map_err(|e| {
            Error::internal(format!(
                "stored operation {} does not apply: {e}",
                c.sequence
            ))
        })?;
    }
    Ok(Some(content))
}

/// The notes domain's data-export and account-deletion sections (see
/// [`data_protection`]).
pub fn data_sections() -> Vec<crate::users::data_protection::DataSection> {
    data_protection::sections()
}

/// Registers the notes functions and crons.
pub fn register(registry: &mut Registry) {
    mutations::register(registry);
    queries::register(registry);
    offline::register(registry);
}
