//! Live feeds shared across identities, against a real `connvo serve`.
//!
//! `transcripts/queries:listTranscriptChunks` is declared with its access
//! check apart from an identity-free body: every participant watching a
//! meeting's transcript shares one execution of the body per write, each
//! identity's check re-runs only when what it read (user, participant row,
//! meeting) changes, and a caller the check refuses never sees the body.

mod common;

use std::time::Duration;

use common::{Server, ServerOptions, TestDir, Ws, WsEvent, http_client, post_json, session_id};
use serde_json::{Value, json};

const SYNC_PATH: &str = "/api/1.48.0/sync";
const FEED: &str = "transcripts/queries:listTranscriptChunks";

async fn mutation(server: &Server, token: &str, path: &str, args: Value) -> Value {
    let (status, body) = post_json(
        &http_client(),
        &format!("{}/api/mutation", server.base_url()),
        &json!({"path": path, "args": args, "format": "convex_encoded_json"}),
        Some(token),
    )
    .await
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(body["status"], "success", "{path}: {body}");
    body["value"].clone()
}

/// A counter's value in the server's Prometheus metrics (0 if absent).
async fn counter(server: &Server, name: &str) -> f64 {
    let text = http_client()
        .get(format!("{}/metrics", server.base_url()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

/// One subscriber: an authenticated socket watching the feed as query 0.
struct Watcher {
    ws: Ws,
    /// The feed's newest value (`Ok`) or error message (`Err`).
    last: Option<Result<Value, String>>,
}

impl Watcher {
    async fn open(server: &Server, token: &str, meeting: &str) -> Watcher {
        let mut ws = Ws::connect(&server.ws_url(SYNC_PATH)).await;
        ws.connect_msg(&session_id(), 0).await;
        ws.send(
            json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token}),
        )
        .await;
        ws.send(json!({
            "type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
            "modifications": [{"type": "Add", "queryId": 0, "udfPath": FEED,
                               "args": [{"meetingId": meeting}], "journal": null}],
        }))
        .await;
        Watcher { ws, last: None }
    }

    /// Reads Transitions until `done` holds for the feed's state.
    async fn until(&mut self, what: &str, done: impl Fn(&Result<Value, String>) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self.last.as_ref().is_some_and(&done) {
                return;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.ws.next_event_within(left).await {
                Some(WsEvent::Json(m)) if m["type"] == "Transition" => {
                    for q in m["modifications"].as_array().expect("modifications") {
                        match q["type"].as_str() {
                            Some("QueryUpdated") => self.last = Some(Ok(q["value"].clone())),
                            Some("QueryFailed") => {
                                self.last = Some(Err(q["errorMessage"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned()));
                            }
                            _ => {}
                        }
                    }
                }
                Some(WsEvent::Json(_)) => {}
                other => panic!("{what}: socket event {other:?}, last {:?}", self.last),
            }
        }
    }
}

fn chunk_count(v: &Result<Value, String>) -> Option<usize> {
    v.as_ref()
        .ok()
        .and_then(|v| v["chunks"].as_array())
        .map(Vec::len)
}

#[tokio::test]
async fn participants_share_one_body_execution_per_write_and_checks_rerun_only_on_access_changes() {
    let dir = TestDir::new();
    let server = Server::start(&dir, ServerOptions::default());
    let tokens: Vec<String> = ["ada", "grace", "linus", "eve"]
        .iter()
        .map(|s| server.dev_token(&format!("share-{s}"), Some(&format!("{s}@example.com"))))
        .collect();
    let mut ids = Vec::new();
    for t in &tokens {
        let id = mutation(&server, t, "users/mutations:upsertUser", json!({})).await;
        ids.push(id.as_str().expect("user id").to_owned());
    }
    let (ada, grace, linus, eve) = (&tokens[0], &tokens[1], &tokens[2], &tokens[3]);
    let created = mutation(
        &server,
        ada,
        "meetings/lifecycle:createMeeting",
        json!({"title": "Shared feed", "participantIds": [ids[1], ids[2]], "maxParticipants": 4.0}),
    )
    .await;
    let meeting = created["meetingId"].as_str().expect("meetingId").to_owned();
    mutation(
        &server,
        ada,
        "meetings/lifecycle:startMeeting",
        json!({"meetingId": meeting}),
    )
    .await;

    let mut watchers = Vec::new();
    for t in [ada, grace, linus] {
        watchers.push(Watcher::open(&server, t, &meeting).await);
    }
    let mut outsider = Watcher::open(&server, eve, &meeting).await;
    for w in &mut watchers {
        w.until("initial feed", |v| chunk_count(v) == Some(0)).await;
    }
    outsider
        .until("the outsider is refused", |v| v.is_err())
        .await;
    let refused = outsider.last.clone().expect("outsider result");
    assert!(
        refused
            .as_ref()
            .is_err_and(|m| m.contains("Not a meeting participant")),
        "{refused:?}"
    );

    // Three writes into the feed: each re-runs the body once for the three
    // participants, and no access check.
    let runs_before = counter(&server, "connvo_query_executions_total").await;
    let checks_before = counter(&server, "connvo_query_access_checks_total").await;
    for n in 1..=3usize {
        mutation(
            &server,
            ada,
            "transcripts/ingestion:ingestTranscriptChunk",
            json!({"meetingId": meeting, "text": format!("chunk {n}"), "confidence": 0.9,
                   "startTime": n as f64 * 1000.0, "endTime": n as f64 * 1000.0 + 900.0}),
        )
        .await;
        for w in &mut watchers {
            w.until("the chunk arrives", |v| chunk_count(v) == Some(n))
                .await;
        }
    }
    let runs = counter(&server, "connvo_query_executions_total").await - runs_before;
    let checks = counter(&server, "connvo_query_access_checks_total").await - checks_before;
    assert_eq!(
        runs, 3.0,
        "one shared body execution per write for three watchers"
    );
    assert_eq!(checks, 0.0, "transcript writes do not touch access");
    let values: Vec<_> = watchers.iter().map(|w| w.last.clone()).collect();
    assert!(
        values.windows(2).all(|p| p[0] == p[1]),
        "every participant sees the same feed: {values:?}"
    );

    // Removing linus re-runs the checks that read his participant row:
    // his feed turns into an error, the others' stay.
    mutation(
        &server,
        ada,
        "meetings/lifecycle:removeParticipant",
        json!({"meetingId": meeting, "userId": ids[2]}),
    )
    .await;
    watchers[2]
        .until("the removed participant is refused", |v| v.is_err())
        .await;
    assert!(
        counter(&server, "connvo_query_access_checks_total").await > checks_before,
        "the removal re-ran access checks"
    );
    mutation(
        &server,
        grace,
        "transcripts/ingestion:ingestTranscriptChunk",
        json!({"meetingId": meeting, "text": "after removal", "confidence": 0.9,
               "startTime": 9000.0, "endTime": 9900.0}),
    )
    .await;
    for w in &mut watchers[..2] {
        w.until("the remaining participants still follow", |v| {
            chunk_count(v) == Some(4)
        })
        .await;
    }
    assert!(watchers[2].last.as_ref().is_some_and(Result::is_err));
    assert!(outsider.last.as_ref().is_some_and(Result::is_err));
    server.assert_healthy().await;
}
