//! `POST /webhooks/workos` on a real `connvo serve --workos-webhook-secret`:
//! a valid signature is accepted and its user record provisions the user's
//! email; forged, tampered, expired, malformed and replayed requests are
//! refused with a `{code, message}` 4xx; a WorkOS retry of the same event is
//! acknowledged once; stale updates are ignored; membership removal revokes
//! the stored organization; `user.deleted` deactivates the account.

mod common;

use std::process::Command;

use aws_lc_rs::hmac;
use common::{Server, ServerOptions, TestDir, bin, http_client, now_ms, post_json};
use serde_json::{Value, json};

const SECRET: &str = "whsec_connvo_test_secret";
const SUBJECT: &str = "user_01JHWEBHOOK0000000000000001";
const ORG: &str = "org_01JHWEBHOOK00000000000000A";

fn sign(secret: &str, t: u64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{t}.{body}").as_bytes());
    format!("t={t}, v1={}", hex::encode(tag.as_ref()))
}

/// POSTs a raw body with an optional `WorkOS-Signature`; returns status and JSON.
async fn deliver(server: &Server, body: &str, signature: Option<&str>) -> (u16, Value) {
    let mut req = http_client()
        .post(format!("{}/webhooks/workos", server.base_url()))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header("WorkOS-Signature", sig);
    }
    let resp = req.send().await.expect("deliver webhook");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn assert_refused(status: u16, body: &Value, want_status: u16, want_code: &str, what: &str) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert_eq!(body["code"], want_code, "{what}: {body}");
    assert!(body["message"].is_string(), "{what}: {body}");
}

fn user_event(id: &str, kind: &str, email: &str, first: &str, updated_at: &str) -> String {
    json!({
        "object": "event",
        "id": id,
        "event": kind,
        "data": {
            "object": "user",
            "id": SUBJECT,
            "email": email,
            "email_verified": true,
            "first_name": first,
            "last_name": "Lovelace",
            "profile_picture_url": null,
            "created_at": "2026-01-15T09:00:00.000Z",
            "updated_at": updated_at
        },
        "created_at": updated_at
    })
    .to_string()
}

/// A dev token with no email claim (as WorkOS access tokens by default).
fn token(server: &Server, org: Option<(&str, &str)>) -> String {
    let mut cmd = Command::new(bin());
    cmd.arg("dev-token")
        .arg("--data-dir")
        .arg(&server.data_dir)
        .args(["--subject", SUBJECT]);
    if let Some((org, role)) = org {
        cmd.args(["--org", org, "--role", role]);
    }
    let out = cmd.output().expect("dev-token");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("token")
        .trim()
        .to_owned()
}

async fn run(server: &Server, token: &str, path: &str, args: Value) -> Value {
    let (status, body) = post_json(
        &http_client(),
        &format!("{}/api/run/{}", server.base_url(), path.replace(':', "/")),
        &json!({"args": args}),
        Some(token),
    )
    .await
    .expect("run");
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test]
async fn workos_webhooks_are_verified_replay_safe_and_provision_users() {
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        ServerOptions {
            extra_args: vec!["--workos-webhook-secret".into(), SECRET.into()],
            ..ServerOptions::default()
        },
    );

    // A valid delivery is applied.
    let created = user_event(
        "event_01JHWH0000000000000000001",
        "user.created",
        "ada@example.com",
        "Ada",
        "2026-01-15T09:00:00.000Z",
    );
    let t = now_ms();
    let signature = sign(SECRET, t, &created);
    let (status, body) = deliver(&server, &created, Some(&signature)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "processed");

    // The same request again (same event id, same signature): a replay.
    let (status, body) = deliver(&server, &created, Some(&signature)).await;
    assert_refused(status, &body, 409, "CONFLICT", "replayed request");

    // A WorkOS retry is signed anew: acknowledged, not applied twice.
    let (status, body) = deliver(&server, &created, Some(&sign(SECRET, t + 1, &created))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "duplicate");

    // Forged, tampered, expired, future, missing and malformed signatures.
    let other = user_event(
        "event_01JHWH0000000000000000002",
        "user.updated",
        "mallory@example.com",
        "Mallory",
        "2026-01-15T10:00:00.000Z",
    );
    let now = now_ms();
    let cases = [
        ("wrong secret", sign("whsec_wrong", now, &other)),
        ("expired", sign(SECRET, now - 181_000, &other)),
        ("from the future", sign(SECRET, now + 181_000, &other)),
        ("no v1", format!("t={now}")),
        ("no t", "v1=00ff".to_owned()),
        ("not hex", format!("t={now}, v1=not-hex")),
    ];
    for (what, sig) in &cases {
        let (status, body) = deliver(&server, &other, Some(sig)).await;
        assert_refused(status, &body, 400, "WEBHOOK_INVALID", what);
    }
    let (status, body) = deliver(&server, &other, None).await;
    assert_refused(status, &body, 400, "WEBHOOK_INVALID", "missing header");
    let tampered = other.replace("Mallory", "Mallorx");
    let (status, body) = deliver(&server, &tampered, Some(&sign(SECRET, now, &other))).await;
    assert_refused(
        status,
        &body,
        400,
        "WEBHOOK_INVALID",
        "body changed after signing",
    );

    // The user signs in with a token that has no email: the WorkOS record
    // provides it (verified), not the client.
    let tok = token(&server, Some((ORG, "member")));
    run(&server, &tok, "users/mutations:upsertUser", json!({})).await;
    let me = run(&server, &tok, "users/queries:getCurrentUser", json!({})).await;
    let me = &me["value"];
    assert_eq!(me["email"], "ada@example.com", "{me}");
    assert_eq!(me["emailVerified"], true);
    assert_eq!(me["profileSource"], "workos");
    assert_eq!(me["displayName"], "Ada Lovelace");
    assert_eq!(me["orgId"], ORG);

    // An update out of order (older updated_at) is ignored.
    let stale = user_event(
        "event_01JHWH0000000000000000003",
        "user.updated",
        "old@example.com",
        "Old",
        "2026-01-15T08:00:00.000Z",
    );
    let (status, body) = deliver(&server, &stale, Some(&sign(SECRET, now_ms(), &stale))).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("stale")),
        "{body}"
    );
    // A newer one is applied to the user row.
    let newer = user_event(
        "event_01JHWH0000000000000000004",
        "user.updated",
        "ada.lovelace@example.com",
        "Augusta Ada",
        "2026-01-15T11:00:00.000Z",
    );
    let (status, body) = deliver(&server, &newer, Some(&sign(SECRET, now_ms(), &newer))).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("processed")),
        "{body}"
    );
    let me = run(&server, &tok, "users/queries:getCurrentUser", json!({})).await;
    assert_eq!(me["value"]["email"], "ada.lovelace@example.com");
    assert_eq!(me["value"]["displayName"], "Augusta Ada Lovelace");

    // Unknown event types are acknowledged and ignored.
    let unknown = json!({"id": "event_01JHWH0000000000000000005", "event": "session.created",
        "data": {"object": "session"}, "created_at": "2026-01-15T11:00:00.000Z"})
    .to_string();
    let (status, body) = deliver(&server, &unknown, Some(&sign(SECRET, now_ms(), &unknown))).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("ignored")),
        "{body}"
    );

    // Removing the membership revokes the stored organization.
    let removed = json!({"id": "event_01JHWH0000000000000000006",
        "event": "organization_membership.deleted",
        "data": {"object": "organization_membership", "id": "om_01JHWH00000000000000000001",
            "user_id": SUBJECT, "organization_id": ORG, "status": "active",
            "role": {"slug": "member"}, "updated_at": "2026-01-15T12:00:00.000Z"},
        "created_at": "2026-01-15T12:00:00.000Z"})
    .to_string();
    let (status, body) = deliver(&server, &removed, Some(&sign(SECRET, now_ms(), &removed))).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("processed")),
        "{body}"
    );
    let me = run(&server, &tok, "users/queries:getCurrentUser", json!({})).await;
    assert!(me["value"].get("orgId").is_none(), "{me}");

    // user.deleted deactivates the account: refused everywhere.
    let deleted = user_event(
        "event_01JHWH0000000000000000007",
        "user.deleted",
        "ada.lovelace@example.com",
        "Augusta Ada",
        "2026-01-15T13:00:00.000Z",
    );
    let (status, body) = deliver(&server, &deleted, Some(&sign(SECRET, now_ms(), &deleted))).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("processed")),
        "{body}"
    );
    let me = run(&server, &tok, "users/queries:getCurrentUser", json!({})).await;
    assert_eq!(me["status"], "error", "{me}");
    assert_eq!(me["errorData"]["code"], "FORBIDDEN", "{me}");
    let again = run(&server, &tok, "users/mutations:upsertUser", json!({})).await;
    assert_eq!(again["errorData"]["code"], "FORBIDDEN", "{again}");
}

#[tokio::test]
async fn workos_webhook_route_is_404_when_not_configured() {
    let dir = TestDir::new();
    let server = Server::start(&dir, ServerOptions::default());
    let body = user_event(
        "event_x",
        "user.created",
        "a@example.com",
        "A",
        "2026-01-15T09:00:00.000Z",
    );
    let (status, resp) = deliver(&server, &body, Some(&sign(SECRET, now_ms(), &body))).await;
    assert_refused(status, &resp, 404, "NOT_FOUND", "unconfigured endpoint");
}

/// Serves `GET /user_management/users/{SUBJECT}` for bearer `sk_test_key`
/// (a minimal fake of the WorkOS user API); returns its base URL.
async fn fake_user_api() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let text = String::from_utf8_lossy(&buf).to_lowercase();
            let ok = text.starts_with(&format!(
                "get /user_management/users/{} ",
                SUBJECT.to_lowercase()
            )) && text.contains("authorization: bearer sk_test_key");
            let (status, body) = if ok {
                (
                    "200 OK",
                    json!({"object": "user", "id": SUBJECT, "email": "api@example.com",
                        "email_verified": true, "first_name": "Api", "last_name": "User",
                        "created_at": "2026-01-15T09:00:00.000Z",
                        "updated_at": "2026-01-15T09:00:00.000Z"}),
                )
            } else {
                ("401 Unauthorized", json!({"message": "Unauthorized"}))
            };
            let body = body.to_string();
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workos_user_api_fills_the_email_when_the_token_has_none() {
    let base = fake_user_api().await;
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        ServerOptions {
            extra_args: vec![
                "--workos-api-key".into(),
                "sk_test_key".into(),
                "--workos-api-base".into(),
                base,
            ],
            ..ServerOptions::default()
        },
    );
    let tok = token(&server, None);
    // Only the client's word at first (unverified)…
    run(
        &server,
        &tok,
        "users/mutations:upsertUser",
        json!({"email": "typed@example.com"}),
    )
    .await;
    // …replaced by the verified record once the scheduled API read ran.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let me = run(&server, &tok, "users/queries:getCurrentUser", json!({})).await;
        if me["value"]["profileSource"] == "workos" {
            assert_eq!(me["value"]["email"], "api@example.com");
            assert_eq!(me["value"]["emailVerified"], true);
            assert_eq!(me["value"]["displayName"], "Api User");
            break;
        }
        assert_eq!(me["value"]["emailVerified"], false, "{me}");
        assert!(
            std::time::Instant::now() < deadline,
            "the WorkOS user API was never read: {me}\n{}",
            server.log_tail()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
