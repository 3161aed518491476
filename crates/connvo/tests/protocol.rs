//! Raw WebSocket protocol tests against a real `connvo serve`: exact wire
//! behaviour of the Convex sync protocol (versions chaining, read-your-writes,
//! mutation idempotency across reconnects, auth, and how protocol errors
//! close the socket).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Server, ServerOptions, TestDir, Ws, WsEvent, decode_ts, session_id, unique};
use serde_json::{Value, json};

const SYNC_PATH: &str = "/api/1.48.0/sync";

/// The client's view of one socket: the last endVersion and query results.
struct Client {
    ws: Ws,
    version: Value,
    results: HashMap<u64, Value>,
    transitions: usize,
}

impl Client {
    async fn open(server: &Server, path: &str, session: &str, connection_count: u32) -> Client {
        let mut ws = Ws::connect(&server.ws_url(path)).await;
        ws.connect_msg(session, connection_count).await;
        Client {
            ws,
            version: json!({"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}),
            results: HashMap::new(),
            transitions: 0,
        }
    }

    /// Checks a Transition against the client's state (exactly as the official
    /// client does) and applies it.
    fn apply(&mut self, t: &Value) {
        assert_eq!(t["type"], "Transition", "not a Transition: {t}");
        assert_eq!(
            t["startVersion"], self.version,
            "Transition startVersion must equal the previous endVersion: {t}"
        );
        let end = &t["endVersion"];
        assert!(end["querySet"].is_u64(), "endVersion.querySet: {t}");
        assert!(end["identity"].is_u64(), "endVersion.identity: {t}");
        assert!(
            decode_ts(&end["ts"]) >= decode_ts(&self.version["ts"]),
            "Transition ts went backwards: {t}"
        );
        for m in t["modifications"].as_array().expect("modifications array") {
            let id = m["queryId"].as_u64().expect("queryId");
            match m["type"].as_str() {
                Some("QueryUpdated") => {
                    assert!(m["logLines"].is_array(), "QueryUpdated.logLines: {m}");
                    assert!(m.get("journal").is_some(), "QueryUpdated.journal: {m}");
                    self.results.insert(id, m["value"].clone());
                }
                Some("QueryFailed") => {
                    assert!(m["logLines"].is_array(), "QueryFailed.logLines: {m}");
                    assert!(
                        m["errorMessage"].is_string(),
                        "QueryFailed.errorMessage: {m}"
                    );
                    self.results.insert(id, json!({"$failed": m.clone()}));
                }
                Some("QueryRemoved") => {
                    self.results.remove(&id);
                }
                other => panic!("unknown modification type {other:?}: {m}"),
            }
        }
        self.version = end.clone();
        self.transitions += 1;
    }

    /// The next message, which must be a Transition; applied.
    async fn transition(&mut self) -> Value {
        let t = self.ws.recv().await;
        self.apply(&t);
        t
    }

    /// Reads Transitions until `done(self)` holds.
    async fn transitions_until(&mut self, what: &str, done: impl Fn(&Client) -> bool) {
        for _ in 0..50 {
            if done(self) {
                return;
            }
            self.transition().await;
        }
        panic!("{what}: not reached after 50 transitions");
    }

    async fn modify(&mut self, base: u32, modifications: Value) {
        self.ws
            .send(json!({
                "type": "ModifyQuerySet",
                "baseVersion": base,
                "newVersion": base + 1,
                "modifications": modifications,
            }))
            .await;
    }

    async fn mutation(&mut self, request_id: u32, path: &str, args: Value) {
        self.ws
            .send(json!({
                "type": "Mutation",
                "requestId": request_id,
                "udfPath": path,
                "args": [args],
            }))
            .await;
    }

    /// Sends a mutation and reads until its MutationResponse, applying
    /// Transitions that come first; then reads the Transition that must
    /// follow a successful response and checks it covers the commit ts.
    async fn mutate_and_sync(&mut self, request_id: u32, path: &str, args: Value) -> Value {
        self.mutation(request_id, path, args).await;
        let resp = loop {
            let m = self.ws.recv().await;
            if m["type"] == "Transition" {
                self.apply(&m);
                continue;
            }
            break m;
        };
        assert_eq!(resp["type"], "MutationResponse", "{resp}");
        assert_eq!(resp["requestId"], request_id, "{resp}");
        assert_eq!(resp["success"], true, "{resp}");
        assert!(
            resp["logLines"].is_array(),
            "MutationResponse.logLines: {resp}"
        );
        let ts = decode_ts(&resp["ts"]);
        let t = self.transition().await;
        assert!(
            decode_ts(&t["endVersion"]["ts"]) >= ts,
            "the Transition after a MutationResponse must have endVersion.ts >= its ts {ts}: {t}"
        );
        resp
    }
}

fn start() -> (TestDir, Server) {
    let dir = TestDir::new();
    let server = Server::start(&dir, ServerOptions::default());
    (dir, server)
}

fn add(query_id: u32, path: &str, args: Value) -> Value {
    json!({"type": "Add", "queryId": query_id, "udfPath": path, "args": [args], "journal": null})
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

fn bodies(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of messages, got {v}"))
        .iter()
        .map(|m| m["body"].as_str().expect("body").to_owned())
        .collect()
}

#[tokio::test]
async fn first_transition_starts_at_zero_and_carries_log_lines_and_null_journal() {
    let (_dir, server) = start();
    let mut c = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    c.modify(
        0,
        json!([add(0, "testing/messages:list", json!({"channel": "first"}))]),
    )
    .await;
    let t = c.ws.recv().await;
    assert_eq!(t["type"], "Transition", "{t}");
    assert_eq!(
        t["startVersion"],
        json!({"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}),
        "{t}"
    );
    assert_eq!(t["endVersion"]["querySet"], 1, "{t}");
    assert_eq!(t["endVersion"]["identity"], 0, "{t}");
    // A fresh data dir has no commits yet, so the ts may be 0; it must decode.
    let _ = decode_ts(&t["endVersion"]["ts"]);
    let mods = t["modifications"].as_array().expect("modifications");
    assert_eq!(mods.len(), 1, "{t}");
    let m = &mods[0];
    assert_eq!(m["type"], "QueryUpdated", "{t}");
    assert_eq!(m["queryId"], 0, "{t}");
    assert_eq!(m["value"], json!([]), "{t}");
    assert!(m["logLines"].is_array(), "logLines must be an array: {t}");
    assert!(
        m.get("journal").is_some_and(Value::is_null),
        "journal must be present and null: {t}"
    );
    assert!(m.get("errorData").is_none(), "{t}");
    c.apply(&t);
    c.ws.close().await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn mutation_response_then_covering_transition_and_versions_chain() {
    let (_dir, server) = start();
    let channel = unique("chain");
    let mut c = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    c.modify(
        0,
        json!([add(0, "testing/messages:list", json!({"channel": channel}))]),
    )
    .await;
    c.transition().await;
    assert_eq!(c.results[&0], json!([]));

    let mut last_ts = 0;
    for i in 0..4u32 {
        let body = format!("hello {i}");
        let resp = c
            .mutate_and_sync(
                i,
                "testing/messages:send",
                json!({"channel": channel, "body": body}),
            )
            .await;
        assert!(resp["result"].is_string(), "send returns an id: {resp}");
        let ts = decode_ts(&resp["ts"]);
        assert!(
            ts > last_ts,
            "commit ts must increase: {ts} after {last_ts}"
        );
        last_ts = ts;
        // Read-your-writes: the subscription reflects the mutation by the
        // Transition that covers its ts.
        let got = bodies(&c.results[&0]);
        let want: Vec<String> = (0..=i).map(|k| format!("hello {k}")).collect();
        assert_eq!(got, want, "query result after mutation {i}");
    }
    assert!(c.transitions >= 5, "{} transitions", c.transitions);

    // A second query added later: querySet 1 → 2, still chained.
    c.modify(
        1,
        json!([add(1, "testing/counter:get", json!({"name": unique("c")}))]),
    )
    .await;
    c.transitions_until("query 1 answered at querySet 2", |c| {
        c.version["querySet"] == 2 && c.results.contains_key(&1)
    })
    .await;
    assert_eq!(num(&c.results[&1]), 0.0);
    // Remove: QueryRemoved.
    c.modify(2, json!([{"type": "Remove", "queryId": 1}])).await;
    c.transitions_until("query 1 removed", |c| {
        c.version["querySet"] == 3 && !c.results.contains_key(&1)
    })
    .await;
    c.ws.close().await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn resent_mutation_on_new_socket_with_same_session_is_applied_once() {
    let (_dir, server) = start();
    let session = session_id();
    let counter = unique("idem");
    let client = common::http_client();

    let mut a = Client::open(&server, SYNC_PATH, &session, 0).await;
    a.modify(0, json!([])).await;
    a.transition().await;
    let first = a
        .mutate_and_sync(0, "testing/counter:increment", json!({"name": counter}))
        .await;
    assert_eq!(num(&first["result"]), 1.0, "{first}");
    let first_ts = decode_ts(&first["ts"]);
    // Drop the socket without a clean close, as a network failure would.
    drop(a);

    let mut b = Client::open(&server, SYNC_PATH, &session, 1).await;
    b.modify(
        0,
        json!([add(7, "testing/counter:get", json!({"name": counter}))]),
    )
    .await;
    b.transition().await;
    assert_eq!(num(&b.results[&7]), 1.0);
    // The client re-sends every mutation not yet reflected in a Transition,
    // with the same requestId.
    let again = b
        .mutate_and_sync(0, "testing/counter:increment", json!({"name": counter}))
        .await;
    assert_eq!(
        num(&again["result"]),
        1.0,
        "a re-sent mutation must return the stored result: {again}"
    );
    assert!(decode_ts(&again["ts"]) >= first_ts, "{again}");
    // A new requestId on the same session does run.
    let next = b
        .mutate_and_sync(1, "testing/counter:increment", json!({"name": counter}))
        .await;
    assert_eq!(num(&next["result"]), 2.0, "{next}");
    assert_eq!(num(&b.results[&7]), 2.0);
    // And the same requestId from another session is a different request.
    let mut other = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    other.modify(0, json!([])).await;
    other.transition().await;
    let third = other
        .mutate_and_sync(0, "testing/counter:increment", json!({"name": counter}))
        .await;
    assert_eq!(num(&third["result"]), 3.0, "{third}");
    let value = common::call_ok(
        &client,
        &server.base_url(),
        "query",
        "testing/counter:get",
        json!({"name": counter}),
    )
    .await;
    assert_eq!(num(&value), 3.0);
    b.ws.close().await;
    other.ws.close().await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn authenticate_bumps_identity_and_reruns_queries() {
    let (_dir, server) = start();
    let token = server.dev_token("user-42", Some("u42@example.com"));
    let mut c = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    c.modify(0, json!([add(0, "testing/auth:whoami", json!({}))]))
        .await;
    c.transition().await;
    assert_eq!(c.results[&0], Value::Null, "anonymous whoami");

    c.ws.send(
        json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token}),
    )
    .await;
    let t = c.transition().await;
    assert_eq!(t["startVersion"]["identity"], 0, "{t}");
    assert_eq!(
        t["endVersion"]["identity"], 1,
        "the Transition after Authenticate must bump identity: {t}"
    );
    c.transitions_until("whoami reflects the token", |c| {
        c.results.get(&0).is_some_and(|v| v["subject"] == "user-42")
    })
    .await;
    assert_eq!(c.results[&0]["email"], "u42@example.com");

    // Logout: tokenType None bumps identity again and whoami is null.
    c.ws.send(json!({"type": "Authenticate", "baseVersion": 1, "tokenType": "None"}))
        .await;
    c.transitions_until("logged out", |c| {
        c.version["identity"] == 2 && c.results.get(&0) == Some(&Value::Null)
    })
    .await;
    c.ws.close().await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn garbage_token_gets_auth_error_then_close() {
    let (_dir, server) = start();
    let mut c = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    c.ws.send(json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "not.a.jwt"}))
        .await;
    let (messages, close) = c.ws.until_closed().await;
    let err = messages
        .iter()
        .find(|m| m["type"] == "AuthError")
        .unwrap_or_else(|| panic!("no AuthError before close: {messages:?}"));
    assert_eq!(err["authUpdateAttempted"], true, "{err}");
    assert_eq!(err["baseVersion"], 0, "{err}");
    assert!(err["error"].is_string(), "{err}");
    assert!(
        !messages.iter().any(|m| m["type"] == "Transition"),
        "no Transition may confirm a rejected token: {messages:?}"
    );
    let _ = close;
    server.assert_healthy().await;
}

#[tokio::test]
async fn wrong_base_version_is_fatal_and_closes_with_reason() {
    let (_dir, server) = start();
    let mut c = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    c.modify(0, json!([])).await;
    c.transition().await;
    // The server has received querySet 1; 5 → 6 is wrong.
    c.modify(5, json!([])).await;
    let (messages, close) = c.ws.until_closed().await;
    let fatal = messages
        .iter()
        .find(|m| m["type"] == "FatalError")
        .unwrap_or_else(|| panic!("no FatalError before close: {messages:?}"));
    assert!(fatal["error"].is_string(), "{fatal}");
    let (code, reason) = close.expect("a close frame");
    assert_ne!(code, 1000, "a protocol violation is not a normal close");
    assert!(!reason.is_empty(), "close reason must say why");
    assert!(reason.len() <= 123, "close reason too long: {reason:?}");
    server.assert_healthy().await;
}

async fn assert_closed_with_reason(server: &Server, text: String, what: &str) {
    let mut c = Client::open(server, SYNC_PATH, &session_id(), 0).await;
    c.ws.send_text(text).await.expect("send");
    let (messages, close) = c.ws.until_closed().await;
    let (code, reason) = close.unwrap_or_else(|| panic!("{what}: no close frame ({messages:?})"));
    assert_ne!(code, 1000, "{what}: close code");
    assert!(!reason.is_empty(), "{what}: close reason must say why");
    assert!(
        !messages.iter().any(|m| m["type"] == "Transition"),
        "{what}: {messages:?}"
    );
}

#[tokio::test]
async fn malformed_json_and_unknown_type_close_with_reason() {
    let (_dir, server) = start();
    assert_closed_with_reason(&server, "{not json".to_owned(), "malformed JSON").await;
    assert_closed_with_reason(
        &server,
        json!({"type": "Frobnicate", "x": 1}).to_string(),
        "unknown type",
    )
    .await;
    assert_closed_with_reason(
        &server,
        json!({"type": "ModifyQuerySet", "baseVersion": "zero"}).to_string(),
        "wrong field types",
    )
    .await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn oversized_frame_closes_the_socket() {
    let (_dir, server) = start();
    let mut c = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    let big = json!({
        "type": "Mutation",
        "requestId": 0,
        "udfPath": "testing/messages:send",
        "args": [{"channel": "big", "body": "x".repeat(2 << 20)}],
    })
    .to_string();
    assert!(big.len() > 2 << 20);
    // The server may already be closing while the frame is still being written.
    let _ = c.ws.send_text(big).await;
    let mut saw_close = false;
    for _ in 0..10 {
        match c.ws.next_event().await {
            WsEvent::Json(m) => {
                assert_ne!(
                    m["type"], "MutationResponse",
                    "an oversized frame must not be executed: {m}"
                );
            }
            WsEvent::Close(frame) => {
                eprintln!("oversized frame: close frame {frame:?}");
                if let Some((code, reason)) = frame {
                    assert_eq!(
                        code, 1009,
                        "close code for an oversized message ({reason:?})"
                    );
                    assert!(
                        reason.starts_with("MessageTooLarge"),
                        "close reason for an oversized message: {reason:?}"
                    );
                }
                saw_close = true;
                break;
            }
            WsEvent::Ended(e) => {
                // The server stops reading mid-frame, so the close frame can
                // be lost to a TCP reset while the client is still writing.
                eprintln!("oversized frame: connection ended: {e}");
                saw_close = true;
                break;
            }
        }
    }
    assert!(saw_close, "the socket stayed open after a 2 MiB frame");
    let client = common::http_client();
    let list = common::call_ok(
        &client,
        &server.base_url(),
        "query",
        "testing/messages:list",
        json!({"channel": "big"}),
    )
    .await;
    assert_eq!(list, json!([]));
    server.assert_healthy().await;
}

#[tokio::test]
async fn unknown_function_is_query_failed_not_a_socket_error() {
    let (_dir, server) = start();
    let mut c = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    c.modify(
        0,
        json!([
            add(0, "testing/nope:missing", json!({})),
            add(1, "testing/messages:list", json!({"channel": unique("ok")})),
        ]),
    )
    .await;
    let t = c.transition().await;
    assert_eq!(t["endVersion"]["querySet"], 1, "{t}");
    let failed = t["modifications"]
        .as_array()
        .expect("modifications")
        .iter()
        .find(|m| m["queryId"] == 0)
        .unwrap_or_else(|| panic!("no result for query 0: {t}"))
        .clone();
    assert_eq!(failed["type"], "QueryFailed", "{t}");
    let msg = failed["errorMessage"].as_str().expect("errorMessage");
    assert!(
        msg.contains("testing/nope:missing"),
        "QueryFailed must mention the path: {msg:?}"
    );
    assert!(failed["logLines"].is_array(), "{failed}");
    assert!(
        failed.get("errorData").is_none(),
        "errorData only for application errors: {failed}"
    );
    assert_eq!(c.results[&1], json!([]), "the other query still runs");
    // The socket is still usable.
    c.mutate_and_sync(0, "testing/counter:increment", json!({"name": unique("n")}))
        .await;
    c.ws.close().await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn failing_mutation_gets_error_data_and_no_transition_needed() {
    let (_dir, server) = start();
    let mut c = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    c.modify(0, json!([])).await;
    c.transition().await;
    c.mutation(
        3,
        "testing/errors:failMutation",
        json!({"code": "FORBIDDEN", "message": "not allowed here"}),
    )
    .await;
    let resp = c.ws.recv().await;
    assert_eq!(resp["type"], "MutationResponse", "{resp}");
    assert_eq!(resp["requestId"], 3, "{resp}");
    assert_eq!(resp["success"], false, "{resp}");
    assert!(resp["result"].is_string(), "result is the message: {resp}");
    assert!(resp["logLines"].is_array(), "{resp}");
    assert_eq!(resp["errorData"]["code"], "FORBIDDEN", "{resp}");
    assert_eq!(resp["errorData"]["message"], "not allowed here", "{resp}");
    // Unknown mutation: success:false, no errorData, socket stays open.
    c.mutation(4, "testing/nope:nothing", json!({})).await;
    let resp = c.ws.recv().await;
    assert_eq!(resp["type"], "MutationResponse", "{resp}");
    assert_eq!(resp["success"], false, "{resp}");
    assert!(resp.get("errorData").is_none(), "{resp}");
    // The mutation udfPath is not canonicalized by the client: `.js` works.
    c.mutate_and_sync(
        5,
        "testing/counter.js:increment",
        json!({"name": unique("js")}),
    )
    .await;
    c.ws.close().await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn unversioned_sync_path_works() {
    let (_dir, server) = start();
    let mut c = Client::open(&server, "/api/sync", &session_id(), 0).await;
    c.modify(
        0,
        json!([add(
            0,
            "testing/messages:list",
            json!({"channel": unique("u")})
        )]),
    )
    .await;
    let t = c.transition().await;
    assert_eq!(t["endVersion"]["querySet"], 1, "{t}");
    assert_eq!(c.results[&0], json!([]));
    c.mutate_and_sync(0, "testing/counter:increment", json!({"name": unique("u")}))
        .await;
    // Telemetry events are ignored, not errors.
    c.ws.send(json!({"type": "Event", "eventType": "ClientConnect", "event": {}}))
        .await;
    assert!(
        c.ws.next_event_within(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing is sent in reply to an Event"
    );
    c.ws.close().await;
    server.assert_healthy().await;
}

#[tokio::test]
async fn identity_version_mismatch_and_mutation_before_connect_are_fatal() {
    let (_dir, server) = start();
    let mut c = Client::open(&server, SYNC_PATH, &session_id(), 0).await;
    c.modify(0, json!([])).await;
    c.transition().await;
    // The server's identity version is 0; baseVersion 3 is wrong.
    c.ws.send(json!({"type": "Authenticate", "baseVersion": 3, "tokenType": "None"}))
        .await;
    let (messages, close) = c.ws.until_closed().await;
    assert!(
        messages.iter().any(|m| m["type"] == "FatalError"),
        "no FatalError: {messages:?}"
    );
    let (code, reason) = close.expect("a close frame");
    assert_ne!(code, 1000);
    assert!(!reason.is_empty());

    // A Mutation before Connect has no session to deduplicate against.
    let mut ws = Ws::connect(&server.ws_url(SYNC_PATH)).await;
    ws.send(
        json!({"type": "Mutation", "requestId": 0, "udfPath": "testing/counter:increment",
                   "args": [{"name": "before-connect"}]}),
    )
    .await;
    let (messages, close) = ws.until_closed().await;
    assert!(
        !messages.iter().any(|m| m["type"] == "MutationResponse"),
        "{messages:?}"
    );
    let (_, reason) = close.expect("a close frame");
    assert!(!reason.is_empty());
    let client = common::http_client();
    let value = common::call_ok(
        &client,
        &server.base_url(),
        "query",
        "testing/counter:get",
        json!({"name": "before-connect"}),
    )
    .await;
    assert_eq!(num(&value), 0.0, "the mutation must not have run");
    server.assert_healthy().await;
}

#[tokio::test]
async fn mutations_that_waited_past_the_queue_timeout_are_shed_with_overloaded_and_not_run() {
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        ServerOptions {
            extra_args: vec!["--mutation-queue-timeout-ms".into(), "5".into()],
            ..ServerOptions::default()
        },
    );
    let counter = unique("shed");
    let session = session_id();
    let mut c = Client::open(&server, SYNC_PATH, &session, 0).await;
    c.modify(0, json!([])).await;
    c.transition().await;
    // A burst on one socket: its mutations run one at a time, each a
    // durable commit, so the later ones wait in the queue well past 5 ms.
    const BURST: u32 = 200;
    for id in 0..BURST {
        c.mutation(id, "testing/counter:increment", json!({"name": counter}))
            .await;
    }
    let mut ran = Vec::new();
    let mut shed = 0;
    let mut seen = 0;
    while seen < BURST {
        let m = c.ws.recv().await;
        if m["type"] == "Transition" {
            c.apply(&m);
            continue;
        }
        assert_eq!(m["type"], "MutationResponse", "{m}");
        assert_eq!(m["requestId"], seen, "responses come in request order: {m}");
        seen += 1;
        if m["success"] == true {
            ran.push(num(&m["result"]));
        } else {
            shed += 1;
            // A system error, like Convex's: a message, no `errorData`.
            assert!(m.get("errorData").is_none(), "{m}");
            let message = m["result"].as_str().unwrap_or_default();
            assert!(message.starts_with("The server is overloaded"), "{m}");
            assert!(message.contains("was not run"), "{m}");
        }
    }
    assert!(shed > 0, "no mutation waited 5 ms behind {BURST} commits");
    // What ran, ran once and in order; what was shed wrote nothing.
    let expected: Vec<f64> = (1..=ran.len()).map(|n| n as f64).collect();
    assert_eq!(ran, expected);
    let value = common::call_ok(
        &common::http_client(),
        &server.base_url(),
        "query",
        "testing/counter:get",
        json!({"name": counter}),
    )
    .await;
    assert_eq!(num(&value), ran.len() as f64, "{shed} shed");
    // The socket stays usable, and a shed request may be sent again.
    let again = c
        .mutate_and_sync(BURST, "testing/counter:increment", json!({"name": counter}))
        .await;
    assert_eq!(num(&again["result"]), ran.len() as f64 + 1.0, "{again}");
    c.ws.close().await;

    // After a reconnect, a request that already committed is re-sent behind
    // a new burst: however long it waited, it gets its stored result, not
    // `OVERLOADED` (it did run).
    assert!(!ran.is_empty(), "request 0 ran");
    let mut d = Client::open(&server, SYNC_PATH, &session, 1).await;
    d.modify(0, json!([])).await;
    d.transition().await;
    let other = unique("shed-other");
    for id in 1000..1100 {
        d.mutation(id, "testing/counter:increment", json!({"name": other}))
            .await;
    }
    d.mutation(0, "testing/counter:increment", json!({"name": counter}))
        .await;
    let resent = loop {
        let m = d.ws.recv().await;
        if m["type"] == "Transition" {
            d.apply(&m);
            continue;
        }
        if m["type"] == "MutationResponse" && m["requestId"] == 0 {
            break m;
        }
    };
    assert_eq!(resent["success"], true, "{resent}");
    assert_eq!(num(&resent["result"]), 1.0, "the stored result: {resent}");
    d.ws.close().await;
    server.assert_healthy().await;
}
