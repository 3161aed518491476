//! Live transcripts through a real `Runtime` over SQLite with a
//! `TestClock`: dense sequences under concurrent ingest, validation, the
//! meeting-state and role checks, a rate limit that fits speech, interim
//! replacement, batches and coalescing in one commit, cursor reads across
//! buckets, live re-runs, aggregation across pages, retention, speaking
//! credit and lull detection.
#![allow(missing_docs)]

mod meetings_support;

use std::sync::Arc;

use database::Clock;
use errors::ErrorCode;
use meetings_support::{Env, ORG_A, T0_MS, TestUser, expect_code, to_value};
use runtime::FunctionKind;
use serde_json::{Value as Json, json};

const INGEST: &str = "transcripts/ingestion:ingestTranscriptChunk";
const BATCH: &str = "transcripts/ingestion:ingestTranscriptBatch";
const INTERNAL_BATCH: &str = "transcripts/ingestion:batchIngestTranscriptChunks";
const COALESCED: &str = "transcripts/ingestion:coalescedIngestTranscriptChunks";
const LIST: &str = "transcripts/queries:listTranscriptChunks";
const SEGMENTS: &str = "transcripts/queries:getTranscriptSegments";
const AGGREGATE: &str = "transcripts/aggregation:aggregateTranscriptSegments";
const T0: f64 = T0_MS as f64;

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
    env.start(&host, &meeting).await;
    Room {
        env,
        host,
        alice,
        bob,
        olga,
        meeting,
    }
}

impl Room {
    fn now(&self) -> f64 {
        self.env.clock.now_ms()
    }

    fn chunk(&self, text: &str, extra: Json) -> Json {
        let now = self.now();
        let mut c = json!({
            "meetingId": self.meeting,
            "text": text,
            "confidence": 0.9,
            "startTime": now - 2_000.0,
            "endTime": now - 1_000.0,
        });
        if let (Some(c), Json::Object(extra)) = (c.as_object_mut(), extra) {
            c.extend(extra);
        }
        c
    }

    async fn ingest(&self, who: &TestUser, text: &str, extra: Json) -> errors::Result<Json> {
        self.env
            .mutation(who, INGEST, self.chunk(text, extra))
            .await
    }

    /// `ingestTranscriptBatch` of `chunks` by `who`.
    async fn batch(&self, who: &TestUser, chunks: Json) -> errors::Result<Json> {
        self.env
            .mutation(
                who,
                BATCH,
                json!({ "meetingId": self.meeting, "chunks": chunks }),
            )
            .await
    }

    async fn list(&self, who: &TestUser, from: f64, limit: f64) -> Json {
        self.env
            .query(
                who,
                LIST,
                json!({ "meetingId": self.meeting, "fromSequence": from, "limit": limit }),
            )
            .await
            .expect("listTranscriptChunks")
    }

    async fn all(&self) -> Vec<Json> {
        self.list(&self.olga, 0.0, 500.0).await["chunks"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn state(&self) -> Json {
        self.env
            .docs("meetingState")
            .await
            .into_iter()
            .find(|d| d["meetingId"] == self.meeting.as_str())
            .expect("meeting state")
    }
}

fn texts(chunks: &[Json]) -> Vec<String> {
    chunks
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect()
}

fn seqs(chunks: &[Json]) -> Vec<f64> {
    chunks
        .iter()
        .map(|c| c["sequence"].as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn concurrent_ingests_get_dense_unique_sequences() {
    let r = room().await;
    let spec = r
        .env
        .rt
        .resolve_public(INGEST, Some(FunctionKind::Mutation))
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let who = [&r.alice, &r.bob, &r.host][i % 3];
        let rt = r.env.rt.clone();
        let spec = spec.clone();
        let identity = Arc::clone(&who.identity);
        let args = to_value(r.chunk(&format!("chunk {i}"), json!({})));
        tasks.push(tokio::spawn(async move {
            rt.run_mutation(&spec, args, Some(identity), None)
                .await
                .result
                .map(|v| v.to_json())
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(
            t.await.unwrap().expect("ingest")["sequence"]
                .as_f64()
                .unwrap(),
        );
    }
    got.sort_by(f64::total_cmp);
    assert_eq!(got, (1..=30).map(f64::from).collect::<Vec<_>>());
    let chunks = r.all().await;
    assert_eq!(seqs(&chunks), (1..=30).map(f64::from).collect::<Vec<_>>());
    let counters = r.env.docs("meetingCounters").await;
    assert_eq!(counters.len(), 1);
    assert_eq!(counters[0]["lastSequence"], 30.0);
}

#[tokio::test]
async fn invalid_chunks_are_rejected_and_nothing_is_stored() {
    let r = room().await;
    let now = r.now();
    let bad = [
        r.chunk("   ", json!({})),
        r.chunk(&"x".repeat(10_001), json!({})),
        r.chunk("hi", json!({ "confidence": 1.5 })),
        r.chunk("hi", json!({ "confidence": -0.1 })),
        r.chunk(
            "hi",
            json!({ "startTime": now - 1_000.0, "endTime": now - 1_000.0 }),
        ),
        r.chunk(
            "hi",
            json!({ "startTime": now - 500.0, "endTime": now - 1_000.0 }),
        ),
        r.chunk("hi", json!({ "startTime": -5.0, "endTime": 10.0 })),
        r.chunk(
            "hi",
            json!({ "startTime": now, "endTime": now + 3_600_000.0 }),
        ),
        r.chunk(
            "hi",
            json!({ "startTime": now - 3_600_000.0, "endTime": now }),
        ),
        r.chunk("hi", json!({ "speakerId": "" })),
    ];
    for args in bad {
        expect_code(
            r.env.mutation(&r.alice, INGEST, args).await,
            ErrorCode::ValidationError,
        );
    }
    // Exactly 10,000 characters is fine, and text is trimmed.
    let ok = r
        .ingest(&r.alice, &format!("  {}  ", "y".repeat(10_000)), json!({}))
        .await
        .unwrap();
    assert_eq!(ok["sequence"], 1.0);
    let chunks = r.all().await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["text"].as_str().unwrap().len(), 10_000);
    assert_eq!(chunks[0]["language"], "en");
    assert_eq!(chunks[0]["speakerId"], r.alice.id.as_str());
}

#[tokio::test]
async fn only_participants_of_an_active_meeting_ingest() {
    let r = room().await;
    expect_code(
        r.ingest(&r.olga, "observer words", json!({})).await,
        ErrorCode::InsufficientPermissions,
    );
    let outsider = r.env.user("zed", Some(ORG_A), "member").await;
    expect_code(
        r.ingest(&outsider, "hi", json!({})).await,
        ErrorCode::Forbidden,
    );
    let scheduled = r.env.meeting(&r.host, &[]).await;
    let mut args = r.chunk("too early", json!({}));
    args["meetingId"] = json!(scheduled);
    expect_code(
        r.env.mutation(&r.host, INGEST, args).await,
        ErrorCode::MeetingNotActive,
    );
    // MEETING_NOT_ACTIVE comes before validation, as in the original.
    r.env
        .mutation(
            &r.host,
            "meetings/lifecycle:endMeeting",
            json!({ "meetingId": r.meeting }),
        )
        .await
        .unwrap();
    expect_code(
        r.ingest(&r.alice, "   ", json!({})).await,
        ErrorCode::MeetingNotActive,
    );
    // Observers still read.
    assert!(r.all().await.is_empty());
}

#[tokio::test]
async fn real_speech_rates_pass_the_rate_limit_and_floods_do_not() {
    let r = room().await;
    // Two speakers at 12 updates per second each (24/s for the meeting) for
    // five seconds.
    let mut n = 0;
    for _ in 0..60 {
        for who in [&r.alice, &r.bob] {
            let out = r
                .ingest(who, "words", json!({}))
                .await
                .expect("within limit");
            assert!(out["rateLimitRemaining"].as_f64().unwrap() >= 0.0);
            n += 1;
        }
        r.env.clock.advance_ms(83);
    }
    assert_eq!(r.all().await.len(), n);
    // A burst of 30 in one second passes; the 31st does not.
    r.env
        .clock
        .advance_ms(1_000 - (r.env.clock.now_ms() as u64 % 1_000));
    for i in 0..30 {
        r.ingest(&r.alice, &format!("burst {i}"), json!({}))
            .await
            .expect("burst within limit");
    }
    let e = expect_code(
        r.ingest(&r.alice, "one too many", json!({})).await,
        ErrorCode::RateLimitExceeded,
    );
    assert!(e.to_string().contains("transcriptIngestion"));
    // Others are not affected; the next second admits again.
    r.ingest(&r.bob, "still fine", json!({})).await.unwrap();
    r.env.clock.advance_ms(1_000);
    r.ingest(&r.alice, "next second", json!({})).await.unwrap();
}

#[tokio::test]
async fn interim_chunks_are_replaced_by_their_final_text() {
    let r = room().await;
    let interim = json!({ "isInterim": true, "utteranceId": "u1" });
    let a = r.ingest(&r.alice, "hel", interim.clone()).await.unwrap();
    // A live reader sees the interim, then continues from its cursor.
    let seen = r.list(&r.olga, 0.0, 100.0).await;
    assert_eq!(texts(seen["chunks"].as_array().unwrap()), ["hel"]);
    assert_eq!(seen["chunks"][0]["isInterim"], true);
    let cursor = seen["nextSequence"].as_f64().unwrap();
    assert_eq!(cursor, a["sequence"].as_f64().unwrap());
    r.ingest(&r.alice, "hello wor", interim).await.unwrap();
    let fin = r
        .ingest(&r.alice, "hello world", json!({ "utteranceId": "u1" }))
        .await
        .unwrap();
    assert_eq!(fin["sequence"], 3.0);
    let after = r.list(&r.olga, cursor, 100.0).await;
    assert_eq!(texts(after["chunks"].as_array().unwrap()), ["hello world"]);
    assert!(after["chunks"][0].get("isInterim").is_none());
    assert_eq!(texts(&r.all().await), ["hello world"]);

    // Without utterance ids: the same speaker's next chunk replaces their
    // open interim; another speaker's does not.
    r.ingest(&r.bob, "so the", json!({ "isInterim": true }))
        .await
        .unwrap();
    r.ingest(&r.alice, "right", json!({})).await.unwrap();
    r.ingest(&r.bob, "so the plan is", json!({})).await.unwrap();
    assert_eq!(
        texts(&r.all().await),
        ["hello world", "right", "so the plan is"]
    );
    // Only final chunks credit speaking time.
    let state = r.state().await;
    assert_eq!(state["speakingStats"]["byUserMs"][&r.alice.id], 2_000.0);
    assert_eq!(state["speakingStats"]["byUserMs"][&r.bob.id], 1_000.0);
}

#[tokio::test]
async fn a_batch_replaces_interims_as_the_same_chunks_sent_one_by_one() {
    let r = room().await;
    let now = r.now();
    // An open interim of Alice's, committed before the batch.
    r.ingest(&r.alice, "draft", json!({ "isInterim": true }))
        .await
        .unwrap();
    let chunk = |i: u32, text: &str, extra: Json| {
        let s = now - 20_000.0 + f64::from(i) * 1_000.0;
        let mut c =
            json!({ "text": text, "confidence": 0.8, "startTime": s, "endTime": s + 900.0 });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let guest_interim = json!({ "speakerId": "guest", "isInterim": true });
    let chunks = vec![
        // Replaces the committed "draft" (found by an index scan).
        chunk(0, "hello", json!({})),
        chunk(1, "so", guest_interim.clone()),
        // Replaces "so", which this batch inserted.
        chunk(2, "so the", guest_interim),
        chunk(3, "again", json!({ "isInterim": true })),
        chunk(4, "so the plan", json!({ "speakerId": "guest" })),
        // An utterance's final text: replaces nothing of Alice's open
        // interim without utterance id ("again")…
        chunk(5, "aside", json!({ "utteranceId": "u9" })),
        // …which the next chunk without utterance id does not replace
        // either: Alice's newest row is now "aside", not an interim.
        chunk(6, "and final", json!({})),
    ];
    r.batch(&r.alice, json!(chunks)).await.unwrap();
    assert_eq!(
        texts(&r.all().await),
        ["hello", "again", "so the plan", "aside", "and final"]
    );
}

#[tokio::test]
async fn batches_and_coalescing_cost_one_commit() {
    let r = room().await;
    let now = r.now();
    let chunks: Vec<Json> = (0..50)
        .map(|i| {
            let s = now - 60_000.0 + f64::from(i) * 1_000.0;
            json!({ "text": format!("w{i}"), "confidence": 0.5, "startTime": s, "endTime": s + 900.0 })
        })
        .collect();
    let before = r.env.rt.database().latest_ts().0;
    let out = r.batch(&r.alice, json!(chunks)).await.unwrap();
    let after = r.env.rt.database().latest_ts().0;
    // The clock stands still, so each commit advances the timestamp by one.
    assert_eq!(after - before, 1, "one commit for 50 chunks");
    assert_eq!(out["processed"], 50.0);
    assert_eq!(out["sequences"], json!((1..=50).collect::<Vec<_>>()));
    // One invalid chunk fails the whole public batch.
    let e = expect_code(
        r.batch(
            &r.alice,
            json!([
                {"text": "ok", "confidence": 0.5, "startTime": now - 10.0, "endTime": now - 5.0},
                {"text": "bad", "confidence": 2, "startTime": now - 10.0, "endTime": now - 5.0},
            ]),
        )
        .await,
        ErrorCode::ValidationError,
    );
    assert!(e.message().starts_with("chunks[1]"));

    // Coalescing: a burst of 40 close chunks from one speaker, one commit,
    // true mean confidence.
    let burst: Vec<Json> = (0..40)
        .map(|i| {
            let s = now - 30_000.0 + f64::from(i) * 200.0;
            let c = if i % 2 == 0 { 0.9 } else { 0.5 };
            json!({ "speakerId": "speaker_1", "text": format!("b{i}"), "confidence": c, "startTime": s, "endTime": s + 150.0 })
        })
        .collect();
    let before = r.env.rt.database().latest_ts().0;
    let out = r
        .env
        .internal_mutation(
            COALESCED,
            json!({ "meetingId": r.meeting, "chunks": burst }),
        )
        .await
        .unwrap();
    assert_eq!(r.env.rt.database().latest_ts().0 - before, 1);
    assert_eq!(out["coalesced"], 1.0);
    assert_eq!(out["performance"]["originalChunks"], 40.0);
    let last = r.all().await.pop().unwrap();
    assert!((last["confidence"].as_f64().unwrap() - 0.7).abs() < 1e-9);
    assert!(last["text"].as_str().unwrap().starts_with("b0 b1 b2"));

    // The internal batch counts failures instead of failing.
    let out = r
        .env
        .internal_mutation(
            INTERNAL_BATCH,
            json!({ "meetingId": r.meeting, "batchId": "b-1", "chunks": [
                {"text": "fine", "confidence": 0.5, "startTime": now - 10.0, "endTime": now - 5.0},
                {"text": "  ", "confidence": 0.5, "startTime": now - 10.0, "endTime": now - 5.0},
                {"text": "bad", "confidence": 0.5, "startTime": now - 1.0, "endTime": now - 5.0},
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(out["processed"], 1.0);
    assert_eq!(out["failed"], 1.0);
    assert_eq!(out["batchId"], "b-1");
    let all = r.all().await;
    assert_eq!(seqs(&all), (1..=52).map(f64::from).collect::<Vec<_>>());
}

#[tokio::test]
async fn cursor_reads_cross_bucket_boundaries_and_old_meetings() {
    let r = room().await;
    // Four groups of five chunks, five minutes apart: at least four buckets.
    for g in 0..4 {
        for i in 0..5 {
            r.ingest(&r.alice, &format!("g{g} c{i}"), json!({}))
                .await
                .unwrap();
            r.env.clock.advance_ms(1_000);
        }
        r.env.clock.advance_ms(300_000);
    }
    let all = r.all().await;
    let buckets: std::collections::BTreeSet<u64> = all
        .iter()
        .map(|c| (c["startMs"].as_f64().unwrap() / 300_000.0).floor() as u64)
        .collect();
    assert!(buckets.len() >= 3, "spans {} buckets", buckets.len());
    // Read from a cursor inside the first bucket, three at a time.
    let mut cursor = 2.0;
    let mut got = Vec::new();
    loop {
        let page = r.list(&r.olga, cursor, 3.0).await;
        let chunks = page["chunks"].as_array().unwrap().clone();
        if chunks.is_empty() {
            assert_eq!(page["nextSequence"], cursor);
            break;
        }
        cursor = page["nextSequence"].as_f64().unwrap();
        got.extend(seqs(&chunks));
    }
    assert_eq!(got, (3..=20).map(f64::from).collect::<Vec<_>>());
    // Hours after the meeting ended, the transcript still reads in full.
    r.env
        .mutation(
            &r.host,
            "meetings/lifecycle:endMeeting",
            json!({ "meetingId": r.meeting }),
        )
        .await
        .unwrap();
    r.env.clock.advance_ms(6 * 3_600_000);
    assert_eq!(r.all().await.len(), 20);
    let compat = r
        .env
        .mutation(
            &r.bob,
            "transcripts/ingestion:getTranscriptChunks",
            json!({ "meetingId": r.meeting, "fromSequence": 2 }),
        )
        .await
        .unwrap();
    assert_eq!(compat.as_array().unwrap().len(), 18);
    let stats = r
        .env
        .mutation(
            &r.bob,
            "transcripts/ingestion:getTranscriptStats",
            json!({ "meetingId": r.meeting }),
        )
        .await
        .unwrap();
    assert_eq!(stats["totalChunks"], 20.0);
    assert_eq!(stats["totalWords"], 40.0);
    assert!(stats["bucketCount"].as_f64().unwrap() >= 3.0);
    // Limits are validated.
    expect_code(
        r.env
            .query(
                &r.olga,
                LIST,
                json!({ "meetingId": r.meeting, "fromSequence": -1 }),
            )
            .await,
        ErrorCode::ValidationError,
    );
    let capped = r.list(&r.olga, 0.0, 10_000.0).await;
    assert_eq!(capped["chunks"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn the_live_query_reruns_on_ingest_into_its_meeting_only() {
    let r = room().await;
    let args = json!({ "meetingId": r.meeting, "fromSequence": 0 });
    let (out, sub) = r.env.subscribe(&r.olga, LIST, args.clone()).await;
    assert_eq!(out.result.unwrap().to_json()["chunks"], json!([]));
    let other = r.env.meeting(&r.bob, &[]).await;
    r.env.start(&r.bob, &other).await;
    let mut elsewhere = r.chunk("other room", json!({}));
    elsewhere["meetingId"] = json!(other);
    r.env.mutation(&r.bob, INGEST, elsewhere).await.unwrap();
    assert_eq!(sub.invalidated_at(), None);
    r.ingest(&r.alice, "live now", json!({})).await.unwrap();
    assert!(sub.invalidated_at().is_some());
    let (rerun, _) = r.env.subscribe(&r.olga, LIST, args).await;
    let v = rerun.result.unwrap().to_json();
    assert_eq!(v["chunks"][0]["text"], "live now");
    assert_eq!(v["nextSequence"], 1.0);
}

#[tokio::test]
async fn aggregation_carries_runs_across_pages_and_reruns_identically() {
    let r = room().await;
    // Alice speaks seven chunks (one interim), then Bob, then Alice after a
    // long pause.
    for i in 0..7 {
        let extra = if i == 3 {
            json!({ "isInterim": true, "utteranceId": "x" })
        } else {
            json!({})
        };
        r.ingest(&r.alice, &format!("a{i}"), extra).await.unwrap();
        r.env.clock.advance_ms(1_000);
    }
    r.ingest(&r.bob, "b0 decision made", json!({}))
        .await
        .unwrap();
    r.env.clock.advance_ms(20_000);
    r.ingest(&r.alice, "a7 action item", json!({}))
        .await
        .unwrap();
    let run = |page: f64| {
        let rt = r.env.rt.clone();
        let meeting = r.meeting.clone();
        async move {
            rt.call(
                FunctionKind::Action,
                AGGREGATE,
                to_value(json!({ "meetingId": meeting, "pageSize": page })),
                None,
            )
            .await
            .unwrap()
            .to_json()
        }
    };
    let out = run(3.0).await;
    assert_eq!(out["segmentsCreated"], 3.0);
    let segs = r
        .env
        .query(&r.olga, SEGMENTS, json!({ "meetingId": r.meeting }))
        .await
        .unwrap();
    let segs = segs.as_array().unwrap();
    assert_eq!(segs.len(), 3);
    assert_eq!(segs[0]["text"], "a0 a1 a2 a4 a5 a6");
    assert_eq!(segs[0]["speakers"], json!([r.alice.id]));
    assert_eq!(segs[1]["topics"], json!(["decision"]));
    assert_eq!(segs[2]["topics"], json!(["action"]));
    // Same result with one page, and re-running does not duplicate.
    run(500.0).await;
    let again = r
        .env
        .query(&r.olga, SEGMENTS, json!({ "meetingId": r.meeting }))
        .await
        .unwrap();
    assert_eq!(
        again
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["text"].clone())
            .collect::<Vec<_>>(),
        segs.iter().map(|s| s["text"].clone()).collect::<Vec<_>>()
    );

    // Concurrent runs (the end-of-meeting job and a provider webhook, say)
    // replace the segments atomically: never duplicated.
    let runs: Vec<_> = (0..4).map(|_| tokio::spawn(run(2.0))).collect();
    for r in runs {
        r.await.unwrap();
    }
    let after = r
        .env
        .query(&r.olga, SEGMENTS, json!({ "meetingId": r.meeting }))
        .await
        .unwrap();
    assert_eq!(after.as_array().unwrap().len(), 3);
    let audits = r
        .env
        .docs("auditLogs")
        .await
        .into_iter()
        .filter(|a| a["action"] == "aggregate_segments")
        .count();
    assert_eq!(audits, 6, "one audit entry per run");
}

#[tokio::test]
async fn ending_the_meeting_schedules_aggregation() {
    let r = room().await;
    r.ingest(&r.alice, "we need a plan", json!({}))
        .await
        .unwrap();
    r.env
        .mutation(
            &r.host,
            "meetings/lifecycle:endMeeting",
            json!({ "meetingId": r.meeting }),
        )
        .await
        .unwrap();
    r.env.clock.advance_ms(6_000);
    let report = r.env.rt.scheduler_tick(true).await.unwrap();
    assert!(report.jobs_started >= 1);
    let segs = r
        .env
        .query(&r.alice, SEGMENTS, json!({ "meetingId": r.meeting }))
        .await
        .unwrap();
    assert_eq!(segs.as_array().unwrap().len(), 1);
    assert_eq!(segs[0]["topics"], json!(["plan"]));
}

#[tokio::test]
async fn retention_deletes_in_bounded_batches_on_the_injected_clock() {
    let r = room().await;
    let now = r.now();
    let chunks: Vec<Json> = (0..600)
        .map(|i| {
            let s = now - 600_000.0 + f64::from(i) * 900.0;
            json!({ "text": format!("old {i}"), "confidence": 0.5, "startTime": s, "endTime": s + 800.0 })
        })
        .collect();
    let out = r
        .env
        .internal_mutation(
            INTERNAL_BATCH,
            json!({ "meetingId": r.meeting, "chunks": chunks }),
        )
        .await
        .unwrap();
    assert_eq!(out["processed"], 600.0);
    // A segment of another meeting (this one's are rebuilt by its
    // aggregation once it auto-ends).
    let other = r.env.meeting(&r.host, &[]).await;
    r.env
        .internal_mutation(
            "transcripts/aggregation:writeTranscriptSegmentsBatch",
            json!({ "meetingId": other, "segments": [
                {"startMs": now, "endMs": now + 1.0, "speakers": [], "text": "s", "topics": []}
            ]}),
        )
        .await
        .unwrap();
    r.env.rt.sync_crons().await.unwrap();
    // 89 days later nothing is old enough.
    r.env.clock.advance_ms(89 * 86_400_000);
    let out = r
        .env
        .internal_mutation("transcripts/ingestion:cleanupOldTranscripts", json!({}))
        .await
        .unwrap();
    assert_eq!(out["deleted"], 0.0);
    // After 91 days one run deletes a batch of 500 and schedules the rest.
    r.env.clock.advance_ms(2 * 86_400_000);
    let out = r
        .env
        .internal_mutation("transcripts/ingestion:cleanupOldTranscripts", json!({}))
        .await
        .unwrap();
    assert_eq!(out["deleted"], 500.0);
    let count = || async {
        r.env
            .internal_query(
                "transcripts/ingestion:countTranscriptsForMeeting",
                json!({ "meetingId": r.meeting }),
            )
            .await
            .unwrap()
    };
    assert_eq!(count().await, 100.0);
    let report = r.env.rt.scheduler_tick(true).await.unwrap();
    assert!(report.jobs_started >= 1);
    assert_eq!(count().await, 0.0);
    let audits = r.env.docs("auditLogs").await;
    assert!(audits.iter().any(|a| a["action"] == "cleanup_transcripts"));
    // Segments live a year.
    assert_eq!(r.env.docs("transcriptSegments").await.len(), 1);
    // The weekly cron deletes them once they are a year old.
    r.env.clock.advance_ms(275 * 86_400_000);
    let report = r.env.rt.scheduler_tick(true).await.unwrap();
    assert!(report.crons_fired >= 2, "{report:?}");
    assert!(r.env.docs("transcriptSegments").await.is_empty());
    assert!(
        r.env
            .docs("auditLogs")
            .await
            .iter()
            .any(|a| a["action"] == "cleanup_segments")
    );
}

#[tokio::test]
async fn retention_of_one_meeting_deletes_only_its_old_chunks() {
    let r = room().await;
    let ingest = |meeting: Json, texts: &[&str]| {
        let now = r.now();
        let chunks: Vec<Json> = texts
            .iter()
            .map(|t| json!({ "text": t, "confidence": 0.5, "startTime": now - 1_000.0, "endTime": now - 500.0 }))
            .collect();
        let env = &r.env;
        async move {
            env.internal_mutation(
                INTERNAL_BATCH,
                json!({ "meetingId": meeting, "chunks": chunks }),
            )
            .await
            .unwrap()
        }
    };
    let other = r.env.meeting(&r.host, &[]).await;
    r.env.start(&r.host, &other).await;
    ingest(json!(r.meeting), &["old one", "old two", "old three"]).await;
    ingest(json!(other), &["other old"]).await;
    r.env.clock.advance_ms(91 * 86_400_000);
    ingest(json!(r.meeting), &["new one", "new two"]).await;
    let cleanup = || async {
        r.env
            .internal_mutation(
                "transcripts/ingestion:cleanupOldTranscripts",
                json!({ "meetingId": r.meeting }),
            )
            .await
            .unwrap()
    };
    let out = cleanup().await;
    assert_eq!(out["deleted"], 3.0);
    let texts = |meeting: Json| {
        let env = &r.env;
        async move {
            let mut t: Vec<String> = env
                .docs("transcripts")
                .await
                .into_iter()
                .filter(|d| d["meetingId"] == meeting)
                .map(|d| d["text"].as_str().unwrap().to_owned())
                .collect();
            t.sort();
            t
        }
    };
    assert_eq!(texts(json!(r.meeting)).await, ["new one", "new two"]);
    // Another meeting's old chunk is left for its own (or the global) run.
    assert_eq!(texts(json!(other)).await, ["other old"]);
    // Nothing else is old enough: a second run deletes nothing.
    let out = cleanup().await;
    assert_eq!(out["deleted"], 0.0);
}

#[tokio::test]
async fn speaking_time_is_credited_only_to_the_speaker() {
    let r = room().await;
    let now = r.now();
    // Alice's own final chunk credits Alice (3 s).
    r.ingest(
        &r.alice,
        "mine",
        json!({ "startTime": now - 4_000.0, "endTime": now - 1_000.0 }),
    )
    .await
    .unwrap();
    // Alice labelling a chunk as Bob's credits nobody.
    r.ingest(&r.alice, "not bob", json!({ "speakerId": r.bob.id }))
        .await
        .unwrap();
    let by_user = r.state().await["speakingStats"]["byUserMs"].clone();
    assert_eq!(by_user, json!({ r.alice.id.clone(): 3_000 }));
    // Reporting someone else's time is refused, hosts included.
    for who in [&r.alice, &r.host] {
        expect_code(
            r.env
                .mutation(
                    who,
                    "meetings/stateTracking:updateSpeakingStats",
                    json!({ "meetingId": r.meeting, "userId": r.bob.id, "speakingDurationMs": 5000 }),
                )
                .await,
            ErrorCode::Forbidden,
        );
    }
    r.env
        .mutation(
            &r.bob,
            "meetings/stateTracking:updateSpeakingStats",
            json!({ "meetingId": r.meeting, "userId": r.bob.id, "speakingDurationMs": 500 }),
        )
        .await
        .unwrap();
    // A provider's chunk credits a participant named by id, not a tag.
    r.env
        .internal_mutation(
            INTERNAL_BATCH,
            json!({ "meetingId": r.meeting, "chunks": [
                {"speakerId": r.bob.id, "text": "from the provider", "confidence": 0.8, "startTime": now - 2_000.0, "endTime": now},
                {"speakerId": "speaker_7", "text": "unknown", "confidence": 0.8, "startTime": now - 2_000.0, "endTime": now},
            ]}),
        )
        .await
        .unwrap();
    let stats = r.state().await["speakingStats"].clone();
    assert_eq!(stats["byUserMs"][&r.bob.id], 2_500.0);
    assert_eq!(stats["totalMs"], 5_500.0);
    let ratios = r
        .env
        .internal_query(
            "meetings/stateTracking:getSpeakingTimeRatios",
            json!({ "meetingId": r.meeting }),
        )
        .await
        .unwrap();
    assert!((ratios[&r.alice.id].as_f64().unwrap() - 3.0 / 5.5).abs() < 1e-9);
}

#[tokio::test]
async fn lulls_are_detected_after_silence_and_cleared_by_speech() {
    let r = room().await;
    let detect = |at: f64| {
        let env = &r.env;
        let meeting = r.meeting.clone();
        async move {
            env.internal_mutation(
                "meetings/stateTracking:detectLull",
                json!({ "meetingId": meeting, "currentTime": at }),
            )
            .await
            .unwrap()
        }
    };
    // Nothing said since the start: 31 s later is a lull (the original
    // never detected one without prior activity).
    let out = detect(T0 + 31_000.0).await;
    assert_eq!(out["lullDetected"], true);
    assert_eq!(out["shouldGeneratePrompts"], true);
    let again = detect(T0 + 35_000.0).await;
    assert_eq!(again["shouldGeneratePrompts"], false);
    // A transcript chunk resets it.
    r.env.clock.advance_ms(40_000);
    r.ingest(&r.alice, "hello again", json!({})).await.unwrap();
    let state = r.state().await;
    assert_eq!(state["lullState"]["detected"], false);
    assert_eq!(state["lullState"]["lastActivity"], r.now());
    assert_eq!(detect(r.now() + 10_000.0).await["lullDetected"], false);
    // The cron's mutation finds newly silent active meetings once.
    r.env.clock.advance_ms(31_000);
    let newly = r
        .env
        .internal_mutation("meetings/stateTracking:detectLulls", json!({}))
        .await
        .unwrap();
    assert_eq!(newly, 1.0);
    let newly = r
        .env
        .internal_mutation("meetings/stateTracking:detectLulls", json!({}))
        .await
        .unwrap();
    assert_eq!(newly, 0.0);
    assert_eq!(r.state().await["lullState"]["detected"], true);
    let _ = &r.host;
}

#[tokio::test]
async fn search_finds_a_meetings_words_only() {
    let r = room().await;
    r.ingest(&r.alice, "Let's start with the hiring plan", json!({}))
        .await
        .unwrap();
    r.ingest(&r.bob, "Then the roadmap for Q1", json!({}))
        .await
        .unwrap();
    r.ingest(
        &r.bob,
        "hiring interim",
        json!({ "isInterim": true, "utteranceId": "z" }),
    )
    .await
    .unwrap();
    let other = r.env.meeting(&r.bob, &[]).await;
    r.env.start(&r.bob, &other).await;
    let mut elsewhere = r.chunk("hiring elsewhere", json!({}));
    elsewhere["meetingId"] = json!(other);
    r.env.mutation(&r.bob, INGEST, elsewhere).await.unwrap();
    let search = |q: &str| {
        let args = json!({ "meetingId": r.meeting, "query": q });
        async {
            r.env
                .query(&r.olga, "transcripts/queries:searchTranscripts", args)
                .await
        }
    };
    let hits = search("hiring").await.unwrap();
    assert_eq!(
        texts(hits["chunks"].as_array().unwrap()),
        ["Let's start with the hiring plan"]
    );
    let hits = search("road").await.unwrap();
    assert_eq!(
        texts(hits["chunks"].as_array().unwrap()),
        ["Then the roadmap for Q1"]
    );
    assert!(
        search("budget").await.unwrap()["chunks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    expect_code(search("   ").await, ErrorCode::ValidationError);
    let outsider = r.env.user("zed", Some(ORG_A), "member").await;
    expect_code(
        r.env
            .query(
                &outsider,
                "transcripts/queries:searchTranscripts",
                json!({ "meetingId": r.meeting, "query": "hiring" }),
            )
            .await,
        ErrorCode::Forbidden,
    );
}

#[tokio::test]
async fn starting_a_meeting_opens_exactly_one_transcription_session() {
    let r = room().await;
    let sessions = r.env.docs("transcriptionSessions").await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["meetingId"], json!(r.meeting));
    assert_eq!(sessions[0]["status"], "initializing");
    assert_eq!(
        sessions[0]["provider"], "whisper",
        "the harness creates WebRTC meetings"
    );
    // Initializing again (a provider retry) reuses the row.
    r.env
        .internal_mutation(
            "transcripts/initialization:initializeTranscription",
            json!({ "meetingId": r.meeting }),
        )
        .await
        .unwrap();
    assert_eq!(r.env.docs("transcriptionSessions").await.len(), 1);
}
