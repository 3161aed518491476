//! Collaborative notes through a real `Runtime` over SQLite with a
//! `TestClock`: concurrent clients converging through the real functions,
//! transformation against committed operations, batch semantics, roles and
//! meeting states, counters, the offline queue, compaction, rollback and
//! UTF-16 offsets.
#![allow(missing_docs)]

mod meetings_support;

use errors::ErrorCode;
use meetings_support::{Env, ORG_A, TestUser, expect_code};
use model::notes::ot::{self, Operation, Side};
use serde_json::{Value as Json, json};

const APPLY: &str = "notes/mutations:applyNoteOperation";
const BATCH: &str = "notes/mutations:batchApplyNoteOperations";
const ROLLBACK: &str = "notes/mutations:rollbackToSequence";
const NOTES: &str = "notes/queries:getMeetingNotes";
const OPS: &str = "notes/queries:getNoteOperations";
const QUEUE: &str = "notes/offline:queueOfflineOperations";
const SYNC: &str = "notes/offline:syncOfflineOperations";
const RETRY: &str = "notes/offline:retryFailedOperations";
const STATUS: &str = "notes/offline:getOfflineQueueStatus";
const CHECKPOINT: &str = "notes/offline:createOfflineCheckpoint";
const RESTORE: &str = "notes/offline:restoreFromCheckpoint";

struct Room {
    env: Env,
    host: TestUser,
    alice: TestUser,
    bob: TestUser,
    olga: TestUser,
    meeting: String,
}

async fn room() -> Room {
    let env = Env::new().await;
    let host = env.user("hana", Some(ORG_A), "member").await;
    let alice = env.user("alice", Some(ORG_A), "member").await;
    let bob = env.user("bob", Some(ORG_A), "member").await;
    let olga = env.user("olga", Some(ORG_A), "member").await;
    let meeting = env
        .meeting(
            &host,
            &[
                (&alice, "participant"),
                (&bob, "participant"),
                (&olga, "observer"),
            ],
        )
        .await;
    Room {
        env,
        host,
        alice,
        bob,
        olga,
        meeting,
    }
}

fn op_json(op: &Operation) -> Json {
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

fn op_from(j: &Json) -> Operation {
    let n = |k: &str| j[k].as_f64().unwrap() as usize;
    match j["type"].as_str().unwrap() {
        "insert" => Operation::insert(n("position"), j["content"].as_str().unwrap()),
        "delete" => Operation::delete(n("position"), n("length")),
        _ => Operation::retain(n("position"), n("length")),
    }
}

impl Room {
    async fn apply(&self, who: &TestUser, op: Operation, base: u64) -> errors::Result<Json> {
        self.env
            .mutation(
                who,
                APPLY,
                json!({"meetingId": self.meeting, "operation": op_json(&op), "clientSequence": base as f64}),
            )
            .await
    }

    async fn content(&self) -> String {
        let notes = self
            .env
            .query(&self.olga, NOTES, json!({"meetingId": self.meeting}))
            .await
            .expect("getMeetingNotes");
        notes["content"].as_str().unwrap_or_default().to_owned()
    }

    async fn notes(&self) -> Json {
        self.env
            .query(&self.olga, NOTES, json!({"meetingId": self.meeting}))
            .await
            .expect("getMeetingNotes")
    }

    async fn ops(&self, from: u64) -> Json {
        self.env
            .query(
                &self.olga,
                OPS,
                json!({"meetingId": self.meeting, "fromSequence": from as f64, "limit": 1000}),
            )
            .await
            .expect("getNoteOperations")
    }

    /// Replays the log from the newest snapshot (as a client would after a
    /// resync) and checks it gives the stored content.
    async fn assert_replay_exact(&self) {
        let snapshots = self.env.docs("noteSnapshots").await;
        let (mut content, from) = snapshots
            .iter()
            .filter(|s| s["meetingId"] == self.meeting.as_str())
            .max_by(|a, b| {
                a["sequence"]
                    .as_f64()
                    .partial_cmp(&b["sequence"].as_f64())
                    .unwrap()
            })
            .map_or((String::new(), 0), |s| {
                (
                    s["content"].as_str().unwrap().to_owned(),
                    s["sequence"].as_f64().unwrap() as u64,
                )
            });
        let page = self.ops(from).await;
        assert_eq!(page["resync"], false, "{page}");
        for entry in page["operations"].as_array().unwrap() {
            content = ot::apply(&content, &op_from(&entry["operation"])).expect("replay");
        }
        assert_eq!(content, self.content().await);
        assert_eq!(page["headSequence"], self.notes().await["headSequence"]);
    }
}

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// UTF-16 offsets of the character boundaries of `s`.
fn boundaries(s: &str) -> Vec<usize> {
    let mut out = vec![0];
    let mut at = 0;
    for c in s.chars() {
        at += c.len_utf16();
        out.push(at);
    }
    out
}

fn random_op(rng: &mut Rng, doc: &str, author: usize) -> Operation {
    let b = boundaries(doc);
    let pieces = ["a", "b", "😀", "é", "xy", " ", "🎉!"];
    if doc.is_empty() || rng.below(3) > 0 {
        let at = b[rng.below(b.len())];
        let text = format!("{}{}", author, pieces[rng.below(pieces.len())]);
        Operation::insert(at, text)
    } else {
        let i = rng.below(b.len() - 1);
        let j = i + 1 + rng.below((b.len() - 1 - i).min(4));
        Operation::delete(b[i], b[j] - b[i])
    }
}

/// A client replica following the ot.js protocol over the real functions:
/// one batch in flight, a buffer of unsent edits, catch-up through
/// `getNoteOperations`, pending edits transformed against what arrives.
struct Client<'a> {
    user: &'a TestUser,
    doc: String,
    processed: u64,
    outstanding: Vec<Operation>,
    own: Option<(u64, u64)>,
    buffer: Vec<Operation>,
    /// Remote operations that arrived while this client had pending edits.
    concurrent: usize,
}

impl<'a> Client<'a> {
    fn new(user: &'a TestUser) -> Self {
        Self {
            user,
            doc: String::new(),
            processed: 0,
            outstanding: Vec::new(),
            own: None,
            buffer: Vec::new(),
            concurrent: 0,
        }
    }

    fn edit(&mut self, op: Operation) {
        self.doc = ot::apply(&self.doc, &op).expect("local edit");
        self.buffer.push(op);
    }

    async fn send(&mut self, room: &Room) {
        if self.own.is_some() || self.buffer.is_empty() {
            return;
        }
        let batch: Vec<Json> = self
            .buffer
            .iter()
            .map(|op| json!({"operation": op_json(op), "clientSequence": self.processed as f64}))
            .collect();
        let out = room
            .env
            .mutation(
                self.user,
                BATCH,
                json!({"meetingId": room.meeting, "operations": batch}),
            )
            .await
            .expect("batch");
        let results = out["results"].as_array().unwrap();
        let first = results[0]["serverSequence"].as_f64().unwrap() as u64;
        let stored: usize = results
            .iter()
            .map(|r| r["transformedOperations"].as_array().unwrap().len())
            .sum();
        self.own = Some((first, first + stored as u64 - 1));
        self.outstanding = std::mem::take(&mut self.buffer);
    }

    async fn catch_up(&mut self, room: &Room) {
        let page = room.ops(self.processed).await;
        assert_eq!(page["resync"], false);
        for entry in page["operations"].as_array().unwrap() {
            let seq = entry["sequence"].as_f64().unwrap() as u64;
            assert_eq!(seq, self.processed + 1);
            self.processed = seq;
            if let Some((first, last)) = self.own
                && (first..=last).contains(&seq)
            {
                if seq == last {
                    self.own = None;
                    self.outstanding.clear();
                }
                continue;
            }
            let op = op_from(&entry["operation"]);
            if !self.outstanding.is_empty() || !self.buffer.is_empty() {
                self.concurrent += 1;
            }
            let (out, op1) = ot::transform_sequences(&self.outstanding, &[op], Side::Right);
            let (buf, op2) = ot::transform_sequences(&self.buffer, &op1, Side::Right);
            self.outstanding = out;
            self.buffer = buf;
            self.doc = ot::apply_all(&self.doc, &op2).expect("remote op applies");
        }
    }
}

#[tokio::test]
async fn three_clients_converge_through_the_real_functions() {
    let mut concurrent = 0;
    for seed in 1..=10u64 {
        let room = room().await;
        let mut clients: Vec<Client<'_>> = vec![
            Client::new(&room.host),
            Client::new(&room.alice),
            Client::new(&room.bob),
        ];
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for _ in 0..60 {
            let c = rng.below(3);
            match rng.below(4) {
                0 | 1 => {
                    let op = random_op(&mut rng, &clients[c].doc, c);
                    clients[c].edit(op);
                }
                2 => clients[c].send(&room).await,
                _ => clients[c].catch_up(&room).await,
            }
        }
        // Quiesce: everyone sends and catches up until nothing is pending.
        for _ in 0..4 {
            for c in clients.iter_mut() {
                c.catch_up(&room).await;
                c.send(&room).await;
            }
        }
        for c in clients.iter_mut() {
            c.catch_up(&room).await;
        }
        let server = room.content().await;
        assert!(!server.is_empty(), "seed {seed}: something was typed");
        for c in &clients {
            assert!(c.buffer.is_empty() && c.own.is_none());
            assert_eq!(c.doc, server, "seed {seed}: {} diverged", c.user.name);
        }
        room.assert_replay_exact().await;
        concurrent += clients.iter().map(|c| c.concurrent).sum::<usize>();
    }
    assert!(
        concurrent > 20,
        "the runs exercised concurrency: {concurrent}"
    );
}

#[tokio::test]
async fn an_operation_is_transformed_against_everything_committed_after_its_base() {
    let r = room().await;
    let first = r
        .apply(&r.alice, Operation::insert(0, "Hello"), 0)
        .await
        .unwrap();
    assert_eq!(first["serverSequence"], 1.0);
    assert_eq!(first["newVersion"], 1.0);
    assert_eq!(first["conflicts"], json!([]));
    // Bob had not seen Alice's insert: his insert at the same place goes
    // after it (the server received it second), and her op is a conflict.
    let second = r.apply(&r.bob, Operation::insert(0, "X"), 0).await.unwrap();
    assert_eq!(second["serverSequence"], 2.0);
    assert_eq!(
        second["transformedOperation"],
        json!({"type": "insert", "position": 5, "content": "X"})
    );
    assert_eq!(second["conflicts"].as_array().unwrap().len(), 1);
    assert_eq!(r.content().await, "HelloX");

    // A delete whose range received a concurrent insert is split in two,
    // each stored with its own sequence; the insert survives.
    let r = room().await;
    r.apply(&r.alice, Operation::insert(0, "abcdef"), 0)
        .await
        .unwrap();
    r.apply(&r.alice, Operation::insert(3, "XY"), 1)
        .await
        .unwrap();
    let split = r.apply(&r.bob, Operation::delete(1, 4), 1).await.unwrap();
    assert_eq!(split["serverSequence"], 3.0);
    assert_eq!(
        split["transformedOperations"],
        json!([
            {"type": "delete", "position": 1, "length": 2},
            {"type": "delete", "position": 3, "length": 2},
        ])
    );
    assert_eq!(r.content().await, "aXYf");
    let notes = r.notes().await;
    assert_eq!(notes["headSequence"], 4.0);
    assert_eq!(notes["version"], 3.0);
    let ops = r.ops(2).await;
    let seqs: Vec<f64> = ops["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["sequence"].as_f64().unwrap())
        .collect();
    assert_eq!(seqs, [3.0, 4.0]);
    assert_eq!(ops["operations"][0]["authorId"], r.bob.id.as_str());
    r.assert_replay_exact().await;
}

#[tokio::test]
async fn counters_bases_and_expected_versions() {
    let r = room().await;
    // A base ahead of the log.
    let e = expect_code(
        r.apply(&r.alice, Operation::insert(0, "a"), 1).await,
        ErrorCode::ValidationError,
    );
    assert!(e.message().contains("ahead"), "{e}");
    for i in 0..3u64 {
        let out = r
            .apply(&r.alice, Operation::insert(0, "a"), i)
            .await
            .unwrap();
        assert_eq!(out["serverSequence"], (i + 1) as f64);
        assert_eq!(out["newVersion"], (i + 1) as f64);
    }
    let e = expect_code(
        r.env
            .mutation(
                &r.alice,
                APPLY,
                json!({"meetingId": r.meeting, "operation": {"type": "insert", "position": 0, "content": "b"}, "clientSequence": 3, "expectedVersion": 2}),
            )
            .await,
        ErrorCode::Conflict,
    );
    assert!(e.message().contains("Version mismatch"), "{e}");
    // Malformed operations.
    for bad in [
        json!({"type": "insert", "position": 0}),
        json!({"type": "insert", "position": -1, "content": "x"}),
        json!({"type": "insert", "position": 0.5, "content": "x"}),
        json!({"type": "delete", "position": 0, "length": 0}),
        json!({"type": "retain", "position": 0}),
        json!({"type": "delete", "position": 2, "length": 5}),
    ] {
        expect_code(
            r.env
                .mutation(
                    &r.alice,
                    APPLY,
                    json!({"meetingId": r.meeting, "operation": bad, "clientSequence": 3}),
                )
                .await,
            ErrorCode::ValidationError,
        );
    }
    assert_eq!(r.notes().await["version"], 3.0);
    assert_eq!(r.content().await, "aaa");
    // getNoteOperations validates its arguments.
    expect_code(
        r.env
            .query(
                &r.olga,
                OPS,
                json!({"meetingId": r.meeting, "fromSequence": 4}),
            )
            .await,
        ErrorCode::ValidationError,
    );
    // The audit trail records each apply.
    let audits = r.env.docs("auditLogs").await;
    assert_eq!(
        audits
            .iter()
            .filter(|a| a["action"] == "apply_operation")
            .count(),
        3
    );
}

#[tokio::test]
async fn a_batch_is_sequential_edits_from_one_base_and_all_or_nothing() {
    let r = room().await;
    r.apply(&r.alice, Operation::insert(0, "Title\n"), 0)
        .await
        .unwrap();
    // Concurrently with Alice's next edit, Bob types "Hello" then " world"
    // on top of sequence 1.
    r.apply(&r.alice, Operation::insert(0, ">> "), 1)
        .await
        .unwrap();
    let out = r
        .env
        .mutation(
            &r.bob,
            BATCH,
            json!({"meetingId": r.meeting, "operations": [
                {"operation": {"type": "insert", "position": 6, "content": "Hello"}, "clientSequence": 1},
                {"operation": {"type": "insert", "position": 11, "content": " world"}, "clientSequence": 1},
                {"operation": {"type": "delete", "position": 6, "length": 1}, "clientSequence": 1},
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(out["processed"], 3.0);
    assert_eq!(out["failed"], 0.0);
    assert_eq!(out["newVersion"], 3.0, "one version per batch");
    let seqs: Vec<f64> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["serverSequence"].as_f64().unwrap())
        .collect();
    assert_eq!(seqs, [3.0, 4.0, 5.0]);
    // Sequential: "Title\nHello world" then the H deleted, under ">> ".
    assert_eq!(r.content().await, ">> Title\nello world");
    r.assert_replay_exact().await;

    // A bad operation anywhere fails the whole batch; nothing is written.
    let e = expect_code(
        r.env
            .mutation(
                &r.bob,
                BATCH,
                json!({"meetingId": r.meeting, "operations": [
                    {"operation": {"type": "insert", "position": 0, "content": "ok"}, "clientSequence": 5},
                    {"operation": {"type": "delete", "position": 500, "length": 1}, "clientSequence": 5},
                ]}),
            )
            .await,
        ErrorCode::ValidationError,
    );
    assert!(e.message().starts_with("operations[1]"), "{e}");
    assert_eq!(r.notes().await["version"], 3.0);
    assert_eq!(r.notes().await["headSequence"], 5.0);
    // Bases must not go backwards inside a batch.
    expect_code(
        r.env
            .mutation(
                &r.bob,
                BATCH,
                json!({"meetingId": r.meeting, "operations": [
                    {"operation": {"type": "insert", "position": 0, "content": "a"}, "clientSequence": 5},
                    {"operation": {"type": "insert", "position": 0, "content": "b"}, "clientSequence": 4},
                ]}),
            )
            .await,
        ErrorCode::ValidationError,
    );
}

#[tokio::test]
async fn observers_read_but_do_not_edit_and_concluded_meetings_are_read_only() {
    let r = room().await;
    r.apply(&r.alice, Operation::insert(0, "Agenda"), 0)
        .await
        .unwrap();
    let e = expect_code(
        r.apply(&r.olga, Operation::insert(0, "x"), 1).await,
        ErrorCode::InsufficientPermissions,
    );
    assert!(e.message().contains("participant"), "{e}");
    let stranger = r.env.user("sam", Some(ORG_A), "member").await;
    expect_code(
        r.apply(&stranger, Operation::insert(0, "x"), 1).await,
        ErrorCode::Forbidden,
    );
    expect_code(
        r.env
            .query(&stranger, NOTES, json!({"meetingId": r.meeting}))
            .await,
        ErrorCode::Forbidden,
    );
    assert_eq!(r.content().await, "Agenda");
    expect_code(
        r.env
            .mutation(
                &r.alice,
                ROLLBACK,
                json!({"meetingId": r.meeting, "targetSequence": 0}),
            )
            .await,
        ErrorCode::InsufficientPermissions,
    );
    r.env.start(&r.host, &r.meeting).await;
    r.env
        .mutation(
            &r.host,
            "meetings/lifecycle:endMeeting",
            json!({"meetingId": r.meeting}),
        )
        .await
        .unwrap();
    let e = expect_code(
        r.apply(&r.alice, Operation::insert(0, "late "), 1).await,
        ErrorCode::Conflict,
    );
    assert!(e.message().contains("concluded"), "{e}");
    expect_code(
        r.env
            .mutation(
                &r.alice,
                QUEUE,
                json!({"meetingId": r.meeting, "clientId": "c1", "operations": [
                    {"type": "insert", "position": 0, "content": "x", "id": "o1", "timestamp": 1, "sequence": 1}
                ]}),
            )
            .await,
        ErrorCode::Conflict,
    );
    // Still readable.
    assert_eq!(r.content().await, "Agenda");
}

#[tokio::test]
async fn offline_sync_applies_only_the_callers_own_queue_sequentially() {
    let r = room().await;
    r.apply(&r.host, Operation::insert(0, "Notes"), 0)
        .await
        .unwrap();
    // Alice goes offline at sequence 1 and types two sequential edits.
    let queued = r
        .env
        .mutation(
            &r.alice,
            QUEUE,
            json!({"meetingId": r.meeting, "clientId": "alice-laptop", "operations": [
                {"type": "insert", "position": 5, "content": ": a", "id": "o1", "timestamp": 1, "sequence": 1},
                {"type": "insert", "position": 8, "content": "b", "id": "o2", "timestamp": 2, "sequence": 1},
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(queued["queued"], 2.0);
    let queue_id = queued["queueId"].as_str().unwrap().to_owned();
    assert!(queue_id.starts_with("queue_"));
    // Meanwhile the host edits.
    r.apply(&r.host, Operation::insert(0, "# "), 1)
        .await
        .unwrap();
    // Bob cannot sync Alice's queue, even with its id.
    let out = r
        .env
        .mutation(
            &r.bob,
            SYNC,
            json!({"meetingId": r.meeting, "clientId": "alice-laptop", "queueId": queue_id}),
        )
        .await
        .unwrap();
    assert_eq!(out["synced"], 0.0);
    assert_eq!(r.content().await, "# Notes");
    let status = r
        .env
        .mutation(
            &r.alice,
            STATUS,
            json!({"meetingId": r.meeting, "clientId": "alice-laptop"}),
        )
        .await
        .unwrap();
    assert_eq!(status["pending"], 2.0);
    assert_eq!(status["queueHealth"], "healthy");
    // Observers cannot sync at all.
    expect_code(
        r.env
            .mutation(
                &r.olga,
                SYNC,
                json!({"meetingId": r.meeting, "clientId": "alice-laptop"}),
            )
            .await,
        ErrorCode::InsufficientPermissions,
    );
    let out = r
        .env
        .mutation(
            &r.alice,
            SYNC,
            json!({"meetingId": r.meeting, "clientId": "alice-laptop"}),
        )
        .await
        .unwrap();
    assert_eq!(out["synced"], 2.0);
    assert_eq!(out["failed"], 0.0);
    assert_eq!(out["remainingInQueue"], 0.0);
    assert_eq!(out["newVersion"], 3.0);
    assert_eq!(r.content().await, "# Notes: ab");
    let ops = r.ops(2).await;
    assert_eq!(ops["operations"][0]["authorId"], r.alice.id.as_str());
    r.assert_replay_exact().await;

    // A queued operation that does not apply fails alone; retry retries it.
    r.env
        .mutation(
            &r.alice,
            QUEUE,
            json!({"meetingId": r.meeting, "clientId": "alice-laptop", "operations": [
                {"type": "delete", "position": 100, "length": 3, "id": "bad", "timestamp": 3, "sequence": 4},
                {"type": "insert", "position": 0, "content": "!", "id": "ok", "timestamp": 4, "sequence": 4},
            ]}),
        )
        .await
        .unwrap();
    let out = r
        .env
        .mutation(
            &r.alice,
            SYNC,
            json!({"meetingId": r.meeting, "clientId": "alice-laptop"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (out["synced"].as_f64(), out["failed"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    assert!(
        out["errors"][0].as_str().unwrap().starts_with("bad:"),
        "{out}"
    );
    assert_eq!(r.content().await, "!# Notes: ab");
    let retry = r
        .env
        .mutation(
            &r.alice,
            RETRY,
            json!({"meetingId": r.meeting, "clientId": "alice-laptop", "maxRetries": 2}),
        )
        .await
        .unwrap();
    assert_eq!(retry, json!({"retriedCount": 1, "successCount": 0}));
    let retry = r
        .env
        .mutation(
            &r.alice,
            RETRY,
            json!({"meetingId": r.meeting, "clientId": "alice-laptop", "maxRetries": 2}),
        )
        .await
        .unwrap();
    assert_eq!(retry["retriedCount"], 0.0, "attempts exhausted");
}

#[tokio::test]
async fn checkpoints_verify_the_content_hash_and_restore_the_content() {
    let r = room().await;
    r.apply(&r.alice, Operation::insert(0, "Goals"), 0)
        .await
        .unwrap();
    r.apply(&r.alice, Operation::insert(5, " 😀"), 1)
        .await
        .unwrap();
    let good = model::notes::content_hash("Goals");
    let out = r
        .env
        .mutation(
            &r.alice,
            CHECKPOINT,
            json!({"meetingId": r.meeting, "clientId": "c", "checkpointData": {"sequence": 1, "version": 1, "contentHash": good, "timestamp": 5}}),
        )
        .await
        .unwrap();
    assert_eq!(out["verified"], true);
    let id = out["checkpointId"].as_str().unwrap().to_owned();
    let bad = r
        .env
        .mutation(
            &r.alice,
            CHECKPOINT,
            json!({"meetingId": r.meeting, "clientId": "c", "checkpointData": {"sequence": 2, "version": 2, "contentHash": good, "timestamp": 5}}),
        )
        .await
        .unwrap();
    assert_eq!(bad["verified"], false);
    assert_eq!(
        bad["serverContentHash"],
        model::notes::content_hash("Goals 😀")
    );
    let restored = r
        .env
        .mutation(
            &r.alice,
            RESTORE,
            json!({"meetingId": r.meeting, "clientId": "c", "checkpointId": id}),
        )
        .await
        .unwrap();
    assert_eq!(restored["success"], true);
    assert_eq!(restored["content"], "Goals");
    assert_eq!(restored["checkpoint"]["sequence"], 1.0);
    // Someone else's checkpoint id finds nothing.
    let other = r
        .env
        .mutation(
            &r.bob,
            RESTORE,
            json!({"meetingId": r.meeting, "clientId": "c", "checkpointId": id}),
        )
        .await
        .unwrap();
    assert_eq!(other, json!({"success": false}));
}

#[tokio::test]
async fn compaction_keeps_replay_exact_and_tells_stale_clients_to_resync() {
    let r = room().await;
    let mut base = 0;
    for i in 0..150u64 {
        let op = if i % 5 == 4 {
            Operation::delete(0, 1)
        } else {
            Operation::insert(0, if i % 2 == 0 { "é" } else { "ü" })
        };
        r.apply(&r.alice, op, base).await.unwrap();
        base += 1;
    }
    let before = r.content().await;
    // Nothing is old enough yet.
    let out = r
        .env
        .internal_mutation("notes/mutations:cleanupOldNoteOperations", json!({}))
        .await
        .unwrap();
    assert_eq!(out["deleted"], 0.0);
    r.env.clock.advance_ms(91 * 86_400_000);
    for _ in 0..10 {
        r.apply(&r.bob, Operation::insert(0, "n"), base)
            .await
            .unwrap();
        base += 1;
    }
    let out = r
        .env
        .internal_mutation("notes/mutations:cleanupOldNoteOperations", json!({}))
        .await
        .unwrap();
    // The newest 100 are kept: 160 - 100 = 60 deleted behind a snapshot.
    assert_eq!(out["deleted"], 60.0);
    assert_eq!(r.env.docs("noteOps").await.len(), 100);
    let snapshots = r.env.docs("noteSnapshots").await;
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["sequence"], 60.0);
    assert_eq!(r.content().await, format!("{}{before}", "n".repeat(10)));
    r.assert_replay_exact().await;
    // A client whose base was compacted away resyncs from the content.
    let page = r.ops(10).await;
    assert_eq!(page["resync"], true);
    assert_eq!(page["content"], r.content().await.as_str());
    assert_eq!(page["headSequence"], 160.0);
    let e = expect_code(
        r.apply(&r.alice, Operation::insert(0, "x"), 10).await,
        ErrorCode::Conflict,
    );
    assert_eq!(e.metadata().unwrap()["resync"], true);
    // A rebase from the snapshot matches the stored content.
    let rebase = r
        .env
        .internal_mutation(
            "notes/mutations:rebaseNotesDocument",
            json!({"meetingId": r.meeting}),
        )
        .await
        .unwrap();
    assert_eq!(rebase["matched"], true);
    // Rollback to before the snapshot is refused; after it works.
    expect_code(
        r.env
            .mutation(
                &r.host,
                ROLLBACK,
                json!({"meetingId": r.meeting, "targetSequence": 30}),
            )
            .await,
        ErrorCode::Conflict,
    );
    let out = r
        .env
        .mutation(
            &r.host,
            ROLLBACK,
            json!({"meetingId": r.meeting, "targetSequence": 150}),
        )
        .await
        .unwrap();
    assert_eq!(out["operationsRemoved"], 10.0);
    assert_eq!(r.content().await, before);
    r.assert_replay_exact().await;
    // A second run only moves the cut by what the rollback appended (the
    // newest 100 stay) and writes a new snapshot first.
    let out = r
        .env
        .internal_mutation(
            "notes/mutations:cleanupOldNoteOperations",
            json!({"meetingId": r.meeting}),
        )
        .await
        .unwrap();
    let head = r.notes().await["headSequence"].as_f64().unwrap();
    assert_eq!(out["deleted"].as_f64().unwrap(), head - 160.0);
    assert_eq!(r.env.docs("noteOps").await.len(), 100);
    assert_eq!(r.env.docs("noteSnapshots").await.len(), 1);
    r.assert_replay_exact().await;
    // The compaction cron is declared.
    assert!(
        r.env
            .rt
            .registry()
            .crons()
            .iter()
            .any(|c| c.function == "notes/mutations:cleanupOldNoteOperations")
    );
}

#[tokio::test]
async fn rollback_appends_the_difference_and_stays_replayable() {
    let r = room().await;
    r.apply(&r.alice, Operation::insert(0, "Plan: ship"), 0)
        .await
        .unwrap();
    r.apply(&r.alice, Operation::insert(10, " beta 🚀"), 1)
        .await
        .unwrap();
    r.apply(&r.bob, Operation::delete(0, 6), 2).await.unwrap();
    assert_eq!(r.content().await, "ship beta 🚀");
    let out = r
        .env
        .mutation(
            &r.host,
            ROLLBACK,
            json!({"meetingId": r.meeting, "targetSequence": 1, "reason": "oops"}),
        )
        .await
        .unwrap();
    assert_eq!(out["operationsRemoved"], 2.0);
    assert_eq!(r.content().await, "Plan: ship");
    // History is kept: 3 edits + the appended difference.
    let head = out["headSequence"].as_f64().unwrap();
    assert!(head > 3.0);
    assert_eq!(r.env.docs("noteOps").await.len() as f64, head);
    r.assert_replay_exact().await;
    // A client still at sequence 3 catches up through the normal stream.
    let mut doc = "ship beta 🚀".to_owned();
    for entry in r.ops(3).await["operations"].as_array().unwrap() {
        doc = ot::apply(&doc, &op_from(&entry["operation"])).unwrap();
    }
    assert_eq!(doc, "Plan: ship");
    let audits = r.env.docs("auditLogs").await;
    assert!(audits.iter().any(|a| a["action"] == "rollback_operations"));
    expect_code(
        r.env
            .mutation(
                &r.host,
                ROLLBACK,
                json!({"meetingId": r.meeting, "targetSequence": 99}),
            )
            .await,
        ErrorCode::ValidationError,
    );
}

#[tokio::test]
async fn offsets_are_utf16_and_never_split_a_surrogate_pair() {
    let r = room().await;
    r.apply(&r.alice, Operation::insert(0, "a😀b"), 0)
        .await
        .unwrap();
    // Inside the emoji (offset 2 is between its halves).
    let e = expect_code(
        r.apply(&r.alice, Operation::insert(2, "x"), 1).await,
        ErrorCode::ValidationError,
    );
    assert!(e.message().contains("surrogate"), "{e}");
    expect_code(
        r.apply(&r.alice, Operation::delete(1, 1), 1).await,
        ErrorCode::ValidationError,
    );
    // The whole emoji is two code units.
    r.apply(&r.alice, Operation::insert(3, "!"), 1)
        .await
        .unwrap();
    assert_eq!(r.content().await, "a😀!b");
    r.apply(&r.bob, Operation::delete(1, 2), 2).await.unwrap();
    assert_eq!(r.content().await, "a!b");
    // A concurrent insert after the emoji, from a base that still had it.
    let out = r
        .apply(&r.alice, Operation::insert(4, "🎉"), 2)
        .await
        .unwrap();
    assert_eq!(out["transformedOperation"]["position"], 2.0);
    assert_eq!(r.content().await, "a!🎉b");
}

#[tokio::test]
async fn account_deletion_keeps_the_log_replayable() {
    let r = room().await;
    r.apply(&r.bob, Operation::insert(0, "Bob wrote this"), 0)
        .await
        .unwrap();
    r.env
        .mutation(
            &r.bob,
            QUEUE,
            json!({"meetingId": r.meeting, "clientId": "b", "operations": [
                {"type": "insert", "position": 0, "content": "x", "id": "o1", "timestamp": 1, "sequence": 1}
            ]}),
        )
        .await
        .unwrap();
    let export = r
        .env
        .query(&r.bob, "users/queries:exportMyData", json!({}))
        .await
        .unwrap();
    let text = export.to_string();
    assert!(text.contains("Bob wrote this"), "{text}");
    r.env
        .mutation(
            &r.bob,
            "users/mutations:deleteMyAccount",
            json!({"confirm": true}),
        )
        .await
        .unwrap();
    let ops = r.env.docs("noteOps").await;
    assert_eq!(ops.len(), 1);
    assert!(ops[0].get("authorId").is_none());
    assert!(r.env.docs("offlineOperationQueue").await.is_empty());
    r.assert_replay_exact().await;
}

#[tokio::test]
async fn search_finds_only_the_notes_of_the_callers_meetings() {
    const SEARCH: &str = "notes/queries:searchMeetingNotes";
    let r = room().await;
    r.apply(
        &r.alice,
        Operation::insert(0, "Roadmap: hiring plan for Q1 😀"),
        0,
    )
    .await
    .unwrap();
    // A meeting Alice is not in, with matching notes.
    let secret = r.env.meeting(&r.host, &[(&r.bob, "participant")]).await;
    r.env
        .mutation(
            &r.bob,
            APPLY,
            json!({"meetingId": secret, "operation": {"type": "insert", "position": 0, "content": "roadmap secret"}, "clientSequence": 0}),
        )
        .await
        .unwrap();
    let hits = r
        .env
        .query(&r.alice, SEARCH, json!({"query": "ROADMAP hiring"}))
        .await
        .unwrap();
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["meetingId"], r.meeting.as_str());
    assert_eq!(hits[0]["meetingTitle"], "Weekly sync");
    assert_eq!(hits[0]["matchedTerms"], 2);
    assert!(hits[0]["snippet"].as_str().unwrap().contains("hiring"));
    // Observers search their meetings too; Bob sees both, best match first.
    let olga = r
        .env
        .query(&r.olga, SEARCH, json!({"query": "roadmap"}))
        .await
        .unwrap();
    assert_eq!(olga.as_array().unwrap().len(), 1);
    let bob = r
        .env
        .query(&r.bob, SEARCH, json!({"query": "roadmap secret"}))
        .await
        .unwrap();
    let bob = bob.as_array().unwrap();
    assert_eq!(bob.len(), 2);
    assert_eq!(bob[0]["meetingId"], secret.as_str());
    let stranger = r.env.user("sam", Some(ORG_A), "member").await;
    let none = r
        .env
        .query(&stranger, SEARCH, json!({"query": "roadmap"}))
        .await
        .unwrap();
    assert_eq!(none, json!([]));
    expect_code(
        r.env
            .query(&r.alice, SEARCH, json!({"query": " !? "}))
            .await,
        ErrorCode::ValidationError,
    );
    expect_code(
        r.env
            .call(
                None,
                runtime::FunctionKind::Query,
                SEARCH,
                json!({"query": "roadmap"}),
            )
            .await,
        ErrorCode::Unauthorized,
    );
}
