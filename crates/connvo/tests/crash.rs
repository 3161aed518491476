//! The crash test: a real `connvo serve --sqlite-sync full` under 16
//! concurrent HTTP writers is SIGKILLed while requests are in flight, then
//! restarted on the same data dir, three times. Every acknowledged write must
//! survive exactly once, nothing may be half-applied, the server must serve
//! again, and timestamps must never go backwards across a restart.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{
    Server, ServerOptions, TestDir, Ws, call, call_ok, decode_ts, http_client, session_id, unique,
};
use serde_json::json;

const TASKS: usize = 16;
const CYCLES: usize = 3;
const LOAD: Duration = Duration::from_millis(1500);
const CHANNEL: &str = "crash";

/// What one writer task saw in one cycle.
#[derive(Default)]
struct TaskReport {
    /// Bodies sent (acknowledged or not).
    attempted_bodies: Vec<String>,
    /// Bodies acknowledged (HTTP 200, status success).
    acked_bodies: Vec<String>,
    /// Increments sent.
    increments_attempted: u64,
    /// Values returned by acknowledged increments.
    increment_values: Vec<f64>,
    /// Requests that failed because the server was killed under them.
    failed_after_kill: u64,
    /// Anything that went wrong while the server was alive.
    errors_before_kill: Vec<String>,
}

async fn writer(
    client: reqwest::Client,
    base: String,
    run: String,
    cycle: usize,
    task: usize,
    killed: Arc<AtomicBool>,
) -> TaskReport {
    let mut r = TaskReport::default();
    let counter = format!("{run}-t{task}");
    let mut k = 0u64;
    loop {
        // No stop flag: each task keeps sending until a request fails, so
        // the SIGKILL lands on requests in flight.
        k += 1;
        let is_message = k.is_multiple_of(2);
        let result = if is_message {
            let body = format!("{run}-c{cycle}-t{task}-n{k}");
            r.attempted_bodies.push(body.clone());
            call(
                &client,
                &base,
                "mutation",
                "testing/messages:send",
                json!({"channel": CHANNEL, "body": body}),
            )
            .await
        } else {
            r.increments_attempted += 1;
            call(
                &client,
                &base,
                "mutation",
                "testing/counter:increment",
                json!({"name": counter}),
            )
            .await
        };
        let was_killed = killed.load(Ordering::SeqCst);
        match result {
            Ok((200, body)) if body["status"] == "success" => {
                if is_message {
                    r.acked_bodies
                        .push(r.attempted_bodies.last().cloned().expect("attempted body"));
                } else {
                    let v = body["value"]
                        .as_f64()
                        .unwrap_or_else(|| panic!("increment returned {body}"));
                    r.increment_values.push(v);
                }
            }
            Ok((status, body)) => {
                if was_killed {
                    r.failed_after_kill += 1;
                    return r;
                }
                r.errors_before_kill.push(format!("HTTP {status}: {body}"));
                if r.errors_before_kill.len() > 20 {
                    return r;
                }
            }
            Err(e) => {
                if was_killed {
                    r.failed_after_kill += 1;
                } else {
                    r.errors_before_kill.push(format!("transport error: {e}"));
                }
                return r;
            }
        }
    }
}

/// Cumulative expectations across cycles for one task's counter.
#[derive(Default, Clone, Copy)]
struct CounterState {
    attempted: u64,
    max_acked: f64,
    last_seen: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_concurrent_mutations_loses_no_acknowledged_write() {
    let dir = TestDir::new();
    let mut server = Server::start(
        &dir,
        ServerOptions {
            sqlite_sync_full: true,
            ..Default::default()
        },
    );
    let run = unique("crash");
    let mut attempted_bodies: HashSet<String> = HashSet::new();
    let mut acked_bodies: HashSet<String> = HashSet::new();
    let mut counters: HashMap<usize, CounterState> = HashMap::new();
    let mut totals = Vec::new();

    for cycle in 0..CYCLES {
        let client = http_client();
        let base = server.base_url();
        let killed = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for task in 0..TASKS {
            handles.push(tokio::spawn(writer(
                client.clone(),
                base.clone(),
                run.clone(),
                cycle,
                task,
                Arc::clone(&killed),
            )));
        }
        tokio::time::sleep(LOAD).await;
        let ts_before = server.health_ts(&client).await;
        killed.store(true, Ordering::SeqCst);
        server.kill9();

        let mut reports = Vec::new();
        for h in handles {
            let report = tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("writer task did not stop after the kill")
                .expect("writer task panicked");
            reports.push(report);
        }

        // Tally this cycle.
        let mut acked_messages = 0usize;
        let mut acked_increments = 0usize;
        let mut in_flight = 0u64;
        let mut errors = Vec::new();
        for (task, r) in reports.iter().enumerate() {
            attempted_bodies.extend(r.attempted_bodies.iter().cloned());
            for b in &r.acked_bodies {
                assert!(
                    acked_bodies.insert(b.clone()),
                    "body {b} acknowledged twice"
                );
            }
            acked_messages += r.acked_bodies.len();
            acked_increments += r.increment_values.len();
            in_flight += r.failed_after_kill;
            let c = counters.entry(task).or_default();
            c.attempted += r.increments_attempted;
            let mut prev = c.last_seen;
            for v in &r.increment_values {
                assert!(
                    *v > prev,
                    "task {task}: acknowledged increment values must increase: {v} after {prev}"
                );
                prev = *v;
                c.max_acked = c.max_acked.max(*v);
            }
            errors.extend(
                r.errors_before_kill
                    .iter()
                    .map(|e| format!("task {task}: {e}")),
            );
        }
        eprintln!(
            "crash cycle {cycle}: {} acknowledged writes ({acked_messages} messages, \
             {acked_increments} increments) from {TASKS} tasks in {LOAD:?}; \
             {in_flight} requests failed in flight at SIGKILL",
            acked_messages + acked_increments
        );
        assert!(
            errors.is_empty(),
            "requests failed while the server was up: {errors:#?}\nlog:\n{}",
            server.log_tail()
        );
        assert!(
            acked_messages + acked_increments >= TASKS,
            "too little load to mean anything: {} acknowledged writes",
            acked_messages + acked_increments
        );

        // Restart on the same data dir and verify.
        server.restart();
        let client = http_client();
        let base = server.base_url();
        let ts_after = server.health_ts(&client).await;
        assert!(
            ts_after >= ts_before,
            "cycle {cycle}: /health ts went backwards across the restart: {ts_before} -> {ts_after}"
        );

        // A client reconnecting after the restart must not see time go back:
        // the first Transition on a new socket is at or after the old ts.
        let mut ws = Ws::connect(&server.ws_url("/api/1.48.0/sync")).await;
        ws.connect_msg(&session_id(), 1).await;
        ws.send(json!({
            "type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
            "modifications": [{"type": "Add", "queryId": 0, "udfPath": "testing/counter:get",
                               "args": [{"name": format!("{run}-t0")}], "journal": null}],
        }))
        .await;
        let t = ws.recv().await;
        assert_eq!(t["type"], "Transition", "{t}");
        let ws_ts = decode_ts(&t["endVersion"]["ts"]);
        assert!(
            ws_ts >= ts_before,
            "cycle {cycle}: first Transition after the restart is at ts {ws_ts}, \
             before the last ts served before the kill ({ts_before})"
        );
        ws.close().await;

        let list = call_ok(
            &client,
            &base,
            "query",
            "testing/messages:list",
            json!({"channel": CHANNEL}),
        )
        .await;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for m in list.as_array().expect("messages array") {
            let body = m["body"].as_str().expect("body").to_owned();
            *seen.entry(body).or_default() += 1;
        }
        let mut missing = Vec::new();
        for b in &acked_bodies {
            match seen.get(b) {
                Some(1) => {}
                Some(n) => panic!("cycle {cycle}: acknowledged body {b} present {n} times"),
                None => missing.push(b.clone()),
            }
        }
        missing.sort();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: {} of {} acknowledged messages lost after SIGKILL: {:?}",
            missing.len(),
            acked_bodies.len(),
            &missing[..missing.len().min(20)]
        );
        let mut unacked_applied = 0;
        for (b, n) in &seen {
            assert!(
                attempted_bodies.contains(b),
                "cycle {cycle}: unexpected message body {b}"
            );
            assert_eq!(*n, 1, "cycle {cycle}: body {b} present {n} times");
            if !acked_bodies.contains(b) {
                unacked_applied += 1;
            }
        }

        for task in 0..TASKS {
            let c = counters.entry(task).or_default();
            let name = format!("{run}-t{task}");
            let v = call_ok(
                &client,
                &base,
                "query",
                "testing/counter:get",
                json!({"name": name}),
            )
            .await
            .as_f64()
            .expect("counter value");
            assert!(
                v >= c.max_acked,
                "cycle {cycle}: counter {name} = {v} is below its highest acknowledged value {}",
                c.max_acked
            );
            assert!(
                v <= c.attempted as f64,
                "cycle {cycle}: counter {name} = {v} exceeds the {} increments attempted",
                c.attempted
            );
            assert!(
                v >= c.last_seen,
                "cycle {cycle}: counter {name} went backwards: {} -> {v}",
                c.last_seen
            );
            assert_eq!(v.fract(), 0.0, "counter {name} = {v}");
            c.last_seen = v;
        }

        let acked_so_far = acked_bodies.len();
        // The restarted server serves new writes, at a later timestamp.
        let body = format!("{run}-after-restart-{cycle}");
        attempted_bodies.insert(body.clone());
        call_ok(
            &client,
            &base,
            "mutation",
            "testing/messages:send",
            json!({"channel": CHANNEL, "body": body}),
        )
        .await;
        acked_bodies.insert(body);
        let c = counters.entry(0).or_default();
        c.attempted += 1;
        let v = call_ok(
            &client,
            &base,
            "mutation",
            "testing/counter:increment",
            json!({"name": format!("{run}-t0")}),
        )
        .await
        .as_f64()
        .expect("increment value");
        assert_eq!(v, c.last_seen + 1.0, "increment after restart");
        c.max_acked = v;
        c.last_seen = v;
        let ts_new = server.health_ts(&client).await;
        assert!(
            ts_new > ts_before,
            "cycle {cycle}: a commit after the restart must be later than before the kill: \
             {ts_before} -> {ts_new}"
        );
        eprintln!(
            "crash cycle {cycle}: after restart {} messages present ({} acknowledged so far, \
             {unacked_applied} unacknowledged-but-committed), counters verified, ts {ts_before} -> {ts_new}",
            seen.len(),
            acked_so_far
        );
        totals.push(acked_messages + acked_increments);
    }
    eprintln!("crash test: acknowledged writes per cycle: {totals:?}");
    server.assert_healthy().await;
}

/// Sends a mutation on `ws` and returns its MutationResponse (skipping
/// Transitions).
async fn ws_mutation(
    ws: &mut Ws,
    request_id: u32,
    path: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    ws.send(json!({"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}))
        .await;
    loop {
        let m = ws.recv().await;
        if m["type"] == "Transition" {
            continue;
        }
        assert_eq!(m["type"], "MutationResponse", "{m}");
        assert_eq!(m["requestId"], request_id, "{m}");
        return m;
    }
}

async fn open_session(server: &Server, session: &str, connection_count: u32) -> Ws {
    let mut ws = Ws::connect(&server.ws_url("/api/1.48.0/sync")).await;
    ws.connect_msg(session, connection_count).await;
    ws.send(
        json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []}),
    )
    .await;
    let t = ws.recv().await;
    assert_eq!(t["type"], "Transition", "{t}");
    ws
}

/// The official client re-sends every mutation not yet reflected in a
/// Transition after a reconnect, also when the server crashed in between:
/// session request records must be durable, so a re-sent mutation is never
/// applied twice, whether it committed before the SIGKILL or was in flight.
#[tokio::test]
async fn websocket_mutations_resent_after_sigkill_apply_once() {
    let dir = TestDir::new();
    let mut server = Server::start(
        &dir,
        ServerOptions {
            sqlite_sync_full: true,
            ..Default::default()
        },
    );
    let session = session_id();
    let counter = unique("resend");
    let args = json!({"name": counter});

    let mut ws = open_session(&server, &session, 0).await;
    let first = ws_mutation(&mut ws, 0, "testing/counter:increment", args.clone()).await;
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(first["result"].as_f64(), Some(1.0), "{first}");
    let first_ts = decode_ts(&first["ts"]);
    // requestId 1 is sent and the server killed right away: it may or may
    // not have committed.
    ws.send(json!({"type": "Mutation", "requestId": 1, "udfPath": "testing/counter:increment", "args": [args]}))
        .await;
    server.kill9();
    drop(ws);
    server.restart();

    let mut ws = open_session(&server, &session, 1).await;
    let again0 = ws_mutation(&mut ws, 0, "testing/counter:increment", args.clone()).await;
    assert_eq!(again0["success"], true, "{again0}");
    assert_eq!(
        again0["result"].as_f64(),
        Some(1.0),
        "requestId 0 re-sent after the restart must return its stored result: {again0}"
    );
    assert!(decode_ts(&again0["ts"]) >= first_ts, "{again0}");
    let again1 = ws_mutation(&mut ws, 1, "testing/counter:increment", args.clone()).await;
    assert_eq!(again1["success"], true, "{again1}");
    assert_eq!(
        again1["result"].as_f64(),
        Some(2.0),
        "requestId 1 (in flight at the kill) must end up applied exactly once: {again1}"
    );
    ws.close().await;
    let client = http_client();
    let value = call_ok(
        &client,
        &server.base_url(),
        "query",
        "testing/counter:get",
        json!({"name": counter}),
    )
    .await;
    assert_eq!(value.as_f64(), Some(2.0), "counter after re-sends");
    server.assert_healthy().await;
}
