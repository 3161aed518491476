//! Graceful shutdown: SIGTERM closes open sockets with a reason clients
//! reconnect after, and the process exits 0 promptly.

mod common;

use std::time::{Duration, Instant};

use common::{Server, ServerOptions, TestDir, Ws, WsEvent, session_id};
use serde_json::json;

async fn subscribed_socket(server: &Server, channel: &str) -> Ws {
    let mut ws = Ws::connect(&server.ws_url("/api/1.48.0/sync")).await;
    ws.connect_msg(&session_id(), 0).await;
    ws.send(json!({
        "type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
        "modifications": [{"type": "Add", "queryId": 0, "udfPath": "testing/messages:list",
                           "args": [{"channel": channel}], "journal": null}],
    }))
    .await;
    let t = ws.recv().await;
    assert_eq!(t["type"], "Transition", "{t}");
    ws
}

/// How a socket ended after SIGTERM.
async fn ending(name: &str, socket: &mut Ws) -> Result<(u16, String), String> {
    loop {
        match socket.next_event().await {
            WsEvent::Json(m) => assert_ne!(m["type"], "FatalError", "{name}: {m}"),
            WsEvent::Close(Some(frame)) => return Ok(frame),
            WsEvent::Close(None) => return Err("close frame without code".into()),
            WsEvent::Ended(e) => return Err(e),
        }
    }
}

fn assert_shutdown_close(name: &str, code: u16, reason: &str) {
    assert_eq!(code, 1012, "{name}: close code (reason {reason:?})");
    assert!(
        reason.starts_with("ServerShutdown"),
        "{name}: close reason {reason:?}"
    );
}

async fn assert_exits_zero(server: &mut Server, started: Instant) {
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the server did not exit within 10 s of SIGTERM"));
    assert!(
        status.success(),
        "exit status after SIGTERM: {status:?}\nlog:\n{}",
        server.log_tail()
    );
    eprintln!("shutdown took {:?}", started.elapsed());
}

/// SIGTERM with an open, subscribed WebSocket: the client gets a close
/// frame 1012 `ServerShutdown…` and the process exits 0 within 10 s.
///
/// Known server bug (see `sigterm_closes_every_socket_with_1012`): the
/// process may exit before the close frame is flushed, so a connection
/// reset is tolerated here; a close frame with any other code or reason is
/// not.
#[tokio::test]
async fn sigterm_with_open_socket_sends_1012_and_exits_zero() {
    let dir = TestDir::new();
    let mut server = Server::start(&dir, ServerOptions::default());
    let mut ws = subscribed_socket(&server, "shutdown").await;
    let started = Instant::now();
    server.sigterm();
    match ending("subscribed", &mut ws).await {
        Ok((code, reason)) => assert_shutdown_close("subscribed", code, &reason),
        Err(e) => eprintln!("subscribed socket reset without a close frame (server bug): {e}"),
    }
    ws.close().await;
    assert_exits_zero(&mut server, started).await;
}

/// Server bug (see the report): on SIGTERM, `connvo serve` returns from
/// `main` as soon as axum's graceful shutdown is done, which does not wait
/// for upgraded WebSocket connections; the runtime is dropped while socket
/// workers are still flushing their 1012 close frames, so some clients see
/// a TCP reset ("Connection reset without closing handshake") instead.
#[tokio::test]
async fn sigterm_closes_every_socket_with_1012() {
    const SUBSCRIBED: usize = 8;
    const IDLE: usize = 300;
    let dir = TestDir::new();
    let mut server = Server::start(&dir, ServerOptions::default());
    let mut sockets = Vec::new();
    for i in 0..SUBSCRIBED {
        let ws = subscribed_socket(&server, "s").await;
        sockets.push((format!("subscribed {i}"), ws));
    }
    // Sockets that never sent anything.
    for i in 0..IDLE {
        let ws = Ws::connect(&server.ws_url("/api/sync")).await;
        sockets.push((format!("idle {i}"), ws));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.sigterm();
    let mut failures = Vec::new();
    for (name, socket) in &mut sockets {
        match ending(name, socket).await {
            Ok((code, reason)) => assert_shutdown_close(name, code, &reason),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    for (_, socket) in sockets {
        socket.close().await;
    }
    assert!(
        failures.is_empty(),
        "{} of {} sockets got no close frame: {:#?}",
        failures.len(),
        SUBSCRIBED + IDLE,
        &failures[..failures.len().min(5)]
    );
    assert_exits_zero(&mut server, started).await;
}

#[tokio::test]
async fn sigterm_with_no_clients_exits_zero_and_data_survives() {
    let dir = TestDir::new();
    let mut server = Server::start(&dir, ServerOptions::default());
    let client = common::http_client();
    let base = server.base_url();
    common::call_ok(
        &client,
        &base,
        "mutation",
        "testing/counter:increment",
        json!({"name": "term"}),
    )
    .await;
    server.sigterm();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exit within 10 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    server.restart();
    let value = common::call_ok(
        &client,
        &server.base_url(),
        "query",
        "testing/counter:get",
        json!({"name": "term"}),
    )
    .await;
    assert_eq!(value.as_f64(), Some(1.0), "{value}");
}
