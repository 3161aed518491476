//! The Convex HTTP API, health, metrics and CORS.
//!
//! Function results use the Convex envelope with HTTP 200 for both success
//! and function errors (`{"status":"error","errorMessage",…}`), exactly as
//! `ConvexHttpClient` expects. Everything that is not a function result —
//! malformed bodies, bad paths, unknown or internal functions, kind
//! mismatches, bad tokens — is a 4xx with a `{code, message}` body.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use errors::{Error, ErrorCode};
use protocol::{HttpFunctionRequest, HttpQueryBatchRequest, HttpRunRequest, ValueFormat, WireTs};
use runtime::FunctionKind;
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use values::Value;

use crate::AppState;
use crate::calls::{
    client_error_data, client_message, decode_args, identity_from_token, log_function_error,
};

/// A non-function error response: status from the code, `{code, message}` body.
pub fn error_response(e: &Error) -> Response {
    let status =
        StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if e.code() == ErrorCode::Internal {
        tracing::error!(error = %e, "request failed");
    }
    let body = serde_json::json!({ "code": e.code().as_str(), "message": client_message(e) });
    (status, Json(body)).into_response()
}

fn protocol_error(e: &protocol::ProtocolError) -> Response {
    // One error vocabulary for clients: protocol-level problems are BAD_REQUEST
    // (or LIMIT_EXCEEDED for size), with the protocol's own code in the text.
    let code = match e.kind() {
        protocol::ProtocolErrorKind::MessageTooLarge => ErrorCode::LimitExceeded,
        _ => ErrorCode::BadRequest,
    };
    error_response(&Error::new(code, format!("{}: {}", e.code(), e.message())))
}

/// `GET /`.
pub async fn root() -> Response {
    Json(serde_json::json!({ "service": "connvo", "status": "ok" })).into_response()
}

/// `GET /health`: 200 while serving, 503 while shutting down.
pub async fn health(State(state): State<AppState>) -> Response {
    if *state.shutdown.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "shutting_down"})),
        )
            .into_response();
    }
    let ts = state.runtime.database().latest_ts();
    Json(serde_json::json!({
        "status": "ok",
        "backend": state.runtime.database().persistence().kind(),
        "ts": WireTs(ts.0).encode(),
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            handle.render(),
        )
            .into_response(),
        None => error_response(&Error::new(ErrorCode::NotFound, "metrics are disabled")),
    }
}

/// Fallback for unknown routes.
pub async fn not_found(method: Method, uri: Uri) -> Response {
    error_response(&Error::new(
        ErrorCode::NotFound,
        format!("No route for {method} {}", uri.path()),
    ))
}

/// Collapses a leading `//` (from deployment URLs with a trailing slash).
pub fn normalize_double_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.starts_with("//") {
        let trimmed = format!("/{}", path.trim_start_matches('/'));
        let new = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed,
        };
        if let Ok(uri) = new.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// CORS: mirror the request's origin (or only allow the allowlist),
/// allow the headers the Convex clients send and credentials.
pub fn cors_layer(allowed: &[String]) -> CorsLayer {
    let origin = if allowed.is_empty() {
        AllowOrigin::mirror_request()
    } else {
        let list: Vec<HeaderValue> = allowed
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        AllowOrigin::list(list)
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_credentials(true)
        .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::OPTIONS,
            Method::PATCH,
            Method::DELETE,
            Method::PUT,
        ])
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Error::new(ErrorCode::InvalidToken, "Authorization header is not ASCII"))?;
    if value.len() >= 7 && value[..7].eq_ignore_ascii_case("convex ") {
        return Err(Error::new(
            ErrorCode::InvalidToken,
            "admin keys are not supported by this server",
        ));
    }
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Error::new(
            ErrorCode::InvalidToken,
            "Authorization header must be 'Bearer <token>'",
        )),
    }
}

fn encode(value: &Value, format: ValueFormat) -> serde_json::Value {
    match format {
        ValueFormat::ConvexEncodedJson => value.to_json(),
        ValueFormat::Json => value.to_clean_json(),
    }
}

fn function_response(
    path: &str,
    result: Result<Value, Error>,
    log_lines: Vec<String>,
    format: ValueFormat,
) -> Response {
    let body = match result {
        Ok(v) => protocol::http_success_body(encode(&v, format), &log_lines),
        Err(e) => {
            log_function_error(path, &e);
            protocol::http_function_error_body(
                &client_message(&e),
                client_error_data(&e),
                &log_lines,
            )
        }
    };
    Json(body).into_response()
}

/// Runs a public function for an HTTP caller.
async fn call(
    state: &AppState,
    headers: &HeaderMap,
    kind: Option<FunctionKind>,
    raw_path: &str,
    args: serde_json::Value,
    format: ValueFormat,
) -> Response {
    let path = match protocol::canonicalize_udf_path(raw_path) {
        Ok(p) => p,
        Err(e) => return protocol_error(&e),
    };
    let identity = match bearer(headers) {
        Ok(token) => match identity_from_token(state, token).await {
            Ok(identity) => identity,
            Err(e) => return error_response(&e),
        },
        Err(e) => return error_response(&e),
    };
    let spec = match state.runtime.resolve_public(&path, kind) {
        Ok(spec) => spec,
        Err(e) => return error_response(&e),
    };
    let args = match decode_args(args) {
        Ok(a) => a,
        Err(e) => {
            return error_response(&Error::bad_request(format!(
                "Invalid arguments: {}",
                e.message()
            )));
        }
    };
    let rt = &state.runtime;
    match spec.kind {
        FunctionKind::Query => {
            let out = rt.run_query(&spec, args, identity, None, None).await;
            function_response(&path, out.result, out.log_lines, format)
        }
        FunctionKind::Mutation => {
            let out = rt.run_mutation(&spec, args, identity, None).await;
            function_response(&path, out.result, out.log_lines, format)
        }
        FunctionKind::Action => {
            let out = rt.run_action(&spec, args, identity).await;
            function_response(&path, out.result, out.log_lines, format)
        }
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("Malformed request body: {e}")))
}

/// Maps a body-reading failure (too large, not readable) to `{code, message}`.
fn body_error(e: &BytesRejection) -> Response {
    let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorCode::LimitExceeded
    } else {
        ErrorCode::BadRequest
    };
    error_response(&Error::new(code, e.body_text()))
}

/// `{code, message}` for a request whose method the route does not accept.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let e = Error::new(
        ErrorCode::BadRequest,
        format!("Method {method} is not allowed on {}", uri.path()),
    );
    let mut resp = error_response(&e);
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp
}

async fn typed_call(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: FunctionKind,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(&e),
    };
    let req: HttpFunctionRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let format = match req.value_format(ValueFormat::Json) {
        Ok(f) => f,
        Err(e) => return protocol_error(&e),
    };
    let args = match req.args_object() {
        Ok(a) => a,
        Err(e) => return protocol_error(&e),
    };
    call(&state, &headers, Some(kind), &req.path, args, format).await
}

/// `POST /api/query`.
pub async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    typed_call(state, headers, body, FunctionKind::Query).await
}

/// `POST /api/mutation`.
pub async fn mutation(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    typed_call(state, headers, body, FunctionKind::Mutation).await
}

/// `POST /api/action`.
pub async fn action(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    typed_call(state, headers, body, FunctionKind::Action).await
}

/// Query string of `GET /api/query`.
#[derive(Debug, Deserialize)]
pub struct QueryParams {
    path: String,
    args: Option<String>,
    format: Option<String>,
}

/// `GET /api/query?path=…&args=<json>&format=…`.
pub async fn query_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<QueryParams>, QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => return error_response(&Error::bad_request(e.body_text())),
    };
    let args = match params
        .args
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
    {
        Ok(a) => a.unwrap_or_else(|| serde_json::json!({})),
        Err(e) => {
            return error_response(&Error::bad_request(format!(
                "Malformed args parameter: {e}"
            )));
        }
    };
    let format = match ValueFormat::parse_or(params.format.as_deref(), ValueFormat::Json) {
        Ok(f) => f,
        Err(e) => return protocol_error(&e),
    };
    call(
        &state,
        &headers,
        Some(FunctionKind::Query),
        &params.path,
        args,
        format,
    )
    .await
}

/// `POST /api/run/{module/path/function}`: any kind, `format` defaults to `json`.
pub async fn run(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(&e),
    };
    let req: HttpRunRequest = if body.is_empty() {
        HttpRunRequest {
            args: None,
            format: None,
        }
    } else {
        match parse_body(&body) {
            Ok(r) => r,
            Err(e) => return error_response(&e),
        }
    };
    let udf_path = match protocol::run_path_to_udf_path(&path) {
        Ok(p) => p,
        Err(e) => return protocol_error(&e),
    };
    let format = match req.value_format() {
        Ok(f) => f,
        Err(e) => return protocol_error(&e),
    };
    let args = match req.args_object() {
        Ok(a) => a,
        Err(e) => return protocol_error(&e),
    };
    call(&state, &headers, None, &udf_path, args, format).await
}

/// `POST /api/query_batch`: every query at one snapshot.
pub async fn query_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(&e),
    };
    let req: HttpQueryBatchRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let identity = match bearer(&headers) {
        Ok(token) => match identity_from_token(&state, token).await {
            Ok(identity) => identity,
            Err(e) => return error_response(&e),
        },
        Err(e) => return error_response(&e),
    };
    let snapshot = match state.runtime.database().snapshot().await {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let mut results = Vec::with_capacity(req.queries.len());
    for q in req.queries {
        let body = async {
            let format = q
                .value_format(ValueFormat::Json)
                .map_err(|e| Error::bad_request(e.to_string()))?;
            let path = protocol::canonicalize_udf_path(&q.path)
                .map_err(|e| Error::bad_request(e.to_string()))?;
            let spec = state
                .runtime
                .resolve_public(&path, Some(FunctionKind::Query))?;
            let args = decode_args(
                q.args_object()
                    .map_err(|e| Error::bad_request(e.to_string()))?,
            )?;
            let out = state
                .runtime
                .run_query(
                    &spec,
                    args,
                    identity.clone(),
                    Some(Arc::clone(&snapshot)),
                    None,
                )
                .await;
            Ok::<_, Error>(match out.result {
                Ok(v) => protocol::http_success_body(encode(&v, format), &out.log_lines),
                Err(e) => protocol::http_function_error_body(
                    &client_message(&e),
                    client_error_data(&e),
                    &out.log_lines,
                ),
            })
        }
        .await;
        results.push(body.unwrap_or_else(|e| {
            protocol::http_function_error_body(&client_message(&e), None, &[])
        }));
    }
    Json(serde_json::json!({ "results": results })).into_response()
}

/// `POST /api/query_ts`: the newest timestamp.
pub async fn query_ts(State(state): State<AppState>) -> Response {
    Json(protocol::http_query_ts_body(WireTs(
        state.runtime.database().latest_ts().0,
    )))
    .into_response()
}
