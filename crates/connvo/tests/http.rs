//! The Convex HTTP API of a real `connvo serve`: envelopes, error codes and
//! statuses, `/api/run`, path normalisation, auth and metrics.

mod common;

use common::{Server, ServerOptions, TestDir, call, call_ok, http_client, post_json, unique};
use serde_json::{Value, json};

fn start() -> (TestDir, Server) {
    let dir = TestDir::new();
    let server = Server::start(&dir, ServerOptions::default());
    (dir, server)
}

/// Asserts a non-function error: `status` and a `{code, message}` body.
fn assert_error(status: u16, body: &Value, want_status: u16, want_code: Option<&str>, what: &str) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert!(body["code"].is_string(), "{what}: no code in {body}");
    assert!(body["message"].is_string(), "{what}: no message in {body}");
    if let Some(code) = want_code {
        assert_eq!(body["code"], code, "{what}: {body}");
    }
    assert!(
        body.get("status").is_none(),
        "{what}: not a function envelope: {body}"
    );
}

#[tokio::test]
async fn malformed_body_is_400_with_code_and_message() {
    let (_dir, server) = start();
    let client = http_client();
    for endpoint in ["query", "mutation", "action"] {
        let resp = client
            .post(format!("{}/api/{endpoint}", server.base_url()))
            .header("content-type", "application/json")
            .body("{\"path\": ")
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("JSON error body");
        assert_error(status, &body, 400, None, endpoint);
    }
    // Well-formed JSON of the wrong shape.
    let (status, body) = post_json(
        &client,
        &format!("{}/api/query", server.base_url()),
        &json!({"args": {}}),
        None,
    )
    .await
    .expect("request");
    assert_error(status, &body, 400, None, "missing path");
    server.assert_healthy().await;
}

#[tokio::test]
async fn unknown_and_internal_functions_are_404() {
    let (_dir, server) = start();
    let client = http_client();
    let base = server.base_url();
    let (status, body) = call(&client, &base, "query", "testing/messages:nope", json!({}))
        .await
        .expect("request");
    assert_error(status, &body, 404, Some("FUNCTION_NOT_FOUND"), "unknown");
    let (status, body) = call(
        &client,
        &base,
        "mutation",
        "testing/messages:sendInternal",
        json!({"channel": "x", "body": "y"}),
    )
    .await
    .expect("request");
    assert_error(status, &body, 404, Some("FUNCTION_NOT_FOUND"), "internal");
    let (status, body) = post_json(
        &client,
        &format!("{base}/api/run/testing/messages/sendInternal"),
        &json!({"args": {"channel": "x", "body": "y"}}),
        None,
    )
    .await
    .expect("request");
    assert_error(
        status,
        &body,
        404,
        Some("FUNCTION_NOT_FOUND"),
        "internal via run",
    );
    // The internal mutation did not run.
    let list = call_ok(
        &client,
        &base,
        "query",
        "testing/messages:list",
        json!({"channel": "x"}),
    )
    .await;
    assert_eq!(list, json!([]));
    server.assert_healthy().await;
}

#[tokio::test]
async fn kind_mismatch_is_400() {
    let (_dir, server) = start();
    let client = http_client();
    let base = server.base_url();
    let channel = unique("kind");
    let (status, body) = call(
        &client,
        &base,
        "query",
        "testing/messages:send",
        json!({"channel": channel, "body": "b"}),
    )
    .await
    .expect("request");
    assert_error(status, &body, 400, None, "mutation via /api/query");
    let (status, body) = call(
        &client,
        &base,
        "mutation",
        "testing/messages:list",
        json!({"channel": channel}),
    )
    .await
    .expect("request");
    assert_error(status, &body, 400, None, "query via /api/mutation");
    let list = call_ok(
        &client,
        &base,
        "query",
        "testing/messages:list",
        json!({"channel": channel}),
    )
    .await;
    assert_eq!(list, json!([]), "the mismatched mutation must not run");
    server.assert_healthy().await;
}

#[tokio::test]
async fn run_endpoint_and_double_slash_paths() {
    let (_dir, server) = start();
    let client = http_client();
    let base = server.base_url();
    let id = call_ok(
        &client,
        &base,
        "mutation",
        "testing/messages:send",
        json!({"channel": "x", "body": "via run"}),
    )
    .await;
    assert!(id.is_string(), "{id}");

    // /api/run: format defaults to json, args is an object.
    let (status, body) = post_json(
        &client,
        &format!("{base}/api/run/testing/messages/list"),
        &json!({"args": {"channel": "x"}}),
        None,
    )
    .await
    .expect("request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    let page = body["value"].as_array().expect("array");
    assert_eq!(page.len(), 1, "{body}");
    assert_eq!(page[0]["body"], "via run");
    assert_eq!(page[0]["_id"], id);
    assert!(
        page[0]["_creationTime"].is_number(),
        "clean JSON: {}",
        page[0]
    );

    // A deployment URL with a trailing slash makes clients request `//api/...`.
    let (status, body) = post_json(
        &client,
        &format!("{base}//api/query"),
        &json!({"path": "testing/messages:list", "args": {"channel": "x"}, "format": "convex_encoded_json"}),
        None,
    )
    .await
    .expect("request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["value"].as_array().map(Vec::len), Some(1), "{body}");

    // The legacy positional form used by ConvexHttpClient: args as [obj].
    let (status, body) = post_json(
        &client,
        &format!("{base}/api/query"),
        &json!({"path": "testing/messages:list", "args": [{"channel": "x"}], "format": "convex_encoded_json"}),
        None,
    )
    .await
    .expect("request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().map(Vec::len), Some(1), "{body}");
    server.assert_healthy().await;
}

#[tokio::test]
async fn bearer_tokens() {
    let (_dir, server) = start();
    let client = http_client();
    let url = format!("{}/api/query", server.base_url());
    let whoami = json!({"path": "testing/auth:whoami", "args": {}, "format": "json"});

    let (status, body) = post_json(&client, &url, &whoami, Some("garbage.token.here"))
        .await
        .expect("request");
    assert_error(status, &body, 401, Some("INVALID_TOKEN"), "garbage bearer");

    let resp = client
        .post(&url)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .json(&whoami)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json");
    assert_error(
        status,
        &body,
        401,
        Some("INVALID_TOKEN"),
        "non-bearer scheme",
    );

    let (status, body) = post_json(&client, &url, &whoami, None)
        .await
        .expect("request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], Value::Null, "anonymous: {body}");

    let token = server.dev_token("http-user", Some("h@example.com"));
    let (status, body) = post_json(&client, &url, &whoami, Some(&token))
        .await
        .expect("request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"]["subject"], "http-user", "{body}");
    assert_eq!(body["value"]["email"], "h@example.com", "{body}");
    server.assert_healthy().await;
}

#[tokio::test]
async fn convex_error_shape_and_metrics() {
    let (_dir, server) = start();
    let client = http_client();
    let base = server.base_url();
    let (status, body) = call(
        &client,
        &base,
        "mutation",
        "testing/errors:failMutation",
        json!({"code": "FORBIDDEN", "message": "nope"}),
    )
    .await
    .expect("request");
    assert_eq!(status, 200, "function errors are HTTP 200: {body}");
    assert_eq!(body["status"], "error", "{body}");
    assert!(body["errorMessage"].is_string(), "{body}");
    assert_eq!(body["errorData"]["code"], "FORBIDDEN", "{body}");
    assert_eq!(body["errorData"]["message"], "nope", "{body}");
    assert_eq!(body["errorData"]["statusCode"], 403, "{body}");
    assert!(body["logLines"].is_array(), "{body}");

    let (status, body) = call(
        &client,
        &base,
        "mutation",
        "testing/errors:failMutation",
        json!({"code": "CONFLICT", "message": "busy"}),
    )
    .await
    .expect("request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errorData"]["code"], "CONFLICT", "{body}");
    assert_eq!(body["errorData"]["statusCode"], 409, "{body}");

    // Argument validation failures are not 5xx.
    let (status, body) = call(
        &client,
        &base,
        "mutation",
        "testing/messages:send",
        json!({"channel": 5}),
    )
    .await
    .expect("request");
    assert!(
        (200..500).contains(&status),
        "bad arguments must not be a server error: {status} {body}"
    );

    // A commit, so the storage counters move.
    let (status, body) = call(
        &client,
        &base,
        "mutation",
        "testing/messages:send",
        json!({"channel": "metrics", "body": "hello"}),
    )
    .await
    .expect("request");
    assert_eq!(body["status"], "success", "{status} {body}");

    let resp = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("metrics text");
    assert!(
        text.contains("connvo_function_seconds"),
        "metrics lack connvo_function_seconds:\n{text}"
    );
    // Every commit appends at least one WAL frame (page).
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("metrics lack {name}:\n{text}"))
    };
    let commits = value("connvo_commits_total");
    let frames = value("connvo_sqlite_wal_frames_total");
    assert!(commits >= 1.0, "{commits}");
    assert!(
        frames >= commits,
        "{frames} WAL frames for {commits} commits"
    );
    server.assert_healthy().await;
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let (_dir, server) = start();
    let client = http_client();
    let resp = client
        .get(format!("{}/api/nothing/here", server.base_url()))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json");
    assert_error(status, &body, 404, None, "unknown route");
    server.assert_healthy().await;
}

/// Server bug (see the report): requests rejected by axum's extractors or
/// layers before reaching a handler get plain-text or empty bodies instead of
/// the `{code, message}` JSON every other non-function error uses.
#[tokio::test]
async fn every_non_function_error_has_a_json_code_and_message() {
    let (_dir, server) = start();
    let client = http_client();
    let base = server.base_url();

    // GET /api/query without `path`: 400 text/plain today.
    let resp = client
        .get(format!("{base}/api/query?args=%7B%7D"))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_error(
        status,
        &body,
        400,
        None,
        &format!("GET without path: {text:?}"),
    );

    // A body over the 16 MiB limit: 413 text/plain today.
    let big = format!(
        "{{\"path\":\"testing/messages:send\",\"args\":{{\"channel\":\"x\",\"body\":\"{}\"}}}}",
        "x".repeat(17 << 20)
    );
    // The server answers from the Content-Length alone and closes without
    // reading the rest, so the client may see its upload cut off (broken
    // pipe) instead of the response; both mean "refused, not buffered".
    // A client of its own: the server closes this connection.
    match reqwest::Client::new()
        .post(format!("{base}/api/mutation"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_error(
                status,
                &body,
                413,
                None,
                &format!("oversized body: {text:?}"),
            );
        }
        Err(e) => assert!(
            e.is_request(),
            "unexpected error for an oversized body: {e}"
        ),
    }

    // GET on a POST-only endpoint: 405 with an empty body today.
    let resp = client
        .get(format!("{base}/api/mutation"))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_error(status, &body, 405, None, &format!("wrong method: {text:?}"));
}

/// Server bug (see the report): the same class of error (a malformed request
/// body) is reported with two spellings of the code depending on where it
/// is detected: `BAD_REQUEST` (invalid JSON) and `BadRequest` (valid JSON of
/// the wrong shape).
#[tokio::test]
async fn malformed_bodies_use_one_error_code() {
    let (_dir, server) = start();
    let client = http_client();
    let url = format!("{}/api/query", server.base_url());
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"path\": ")
        .send()
        .await
        .expect("request");
    let invalid_json: Value = resp.json().await.expect("json");
    let (_, wrong_shape) = post_json(
        &client,
        &url,
        &json!({"path": "testing/messages:list", "args": [{"channel": "x"}, {}]}),
        None,
    )
    .await
    .expect("request");
    assert_eq!(
        invalid_json["code"], wrong_shape["code"],
        "invalid JSON: {invalid_json}; wrong shape: {wrong_shape}"
    );
}
