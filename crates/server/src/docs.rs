//! The API reference of the running server: `GET /openapi.json` (OpenAPI
//! 3.1 of the registry's public functions, built by the `docs` crate) and
//! `GET /docs` (a self-contained HTML reference rendered from it).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};

use crate::AppState;

/// The URL clients reached this server at, from the `Host` header (and
/// `X-Forwarded-Proto` behind a proxy).
fn server_url(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if host.is_empty() || host.contains(['/', ' ', '"', '<', '>']) {
        return None;
    }
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    Some(format!("{scheme}://{host}"))
}

fn spec(state: &AppState, headers: &HeaderMap) -> serde_json::Value {
    let options = ::docs::OpenApiOptions {
        servers: server_url(headers).into_iter().collect(),
        ..Default::default()
    };
    ::docs::openapi(state.runtime.registry(), &options)
}

/// `GET /openapi.json`.
pub async fn openapi_json(State(state): State<AppState>, headers: HeaderMap) -> Response {
    Json(spec(&state, &headers)).into_response()
}

/// `GET /docs`.
pub async fn reference(State(state): State<AppState>, headers: HeaderMap) -> Response {
    Html(::docs::html::render(&spec(&state, &headers))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_url_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(server_url(&h), None);
        h.insert(header::HOST, "127.0.0.1:3210".parse().unwrap());
        assert_eq!(server_url(&h).as_deref(), Some("http://127.0.0.1:3210"));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(server_url(&h).as_deref(), Some("https://127.0.0.1:3210"));
        h.insert(header::HOST, "evil\"<x>".parse().unwrap());
        assert_eq!(server_url(&h), None);
    }
}
