//! Inbound webhooks: `POST /webhooks/workos`.
//!
//! WorkOS signs each delivery with `WorkOS-Signature: t=<ms>, v1=<hex>`,
//! where `v1` is the lowercase hex HMAC-SHA256, keyed with the webhook
//! secret, of `"<t>.<raw body>"`. A request is accepted only when
//!
//! 1. the header is present and well formed;
//! 2. `t` is within the tolerance of the server's clock (180 s by default,
//!    both ways, so a captured request cannot be replayed later);
//! 3. one `v1` equals the HMAC of the bytes as received (compared in
//!    constant time);
//! 4. the event id was not already received with the same `t` (a replayed
//!    request within the tolerance is refused with `409 CONFLICT`; a
//!    WorkOS retry of the same event is signed anew with a later `t` and is
//!    acknowledged as `duplicate` without being applied twice).
//!
//! Every refusal is a 4xx with a `{code, message}` body. The event itself is
//! reduced here to the fields the domain uses and applied by the internal
//! mutation `users/workos:applyWebhookEvent`, which also remembers the event
//! id (the replay check and the write are one transaction). Unknown event
//! types are acknowledged and ignored, as WorkOS requires.

use std::sync::Arc;

use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use errors::{Error, ErrorCode};
use runtime::FunctionKind;
use serde_json::{Map, Value as Json, json};

use crate::AppState;
use crate::http::error_response;

/// WorkOS's default signature tolerance: 180 s.
pub const DEFAULT_TOLERANCE_MS: f64 = 180_000.0;

/// The internal mutation that applies a verified WorkOS event.
pub const APPLY_PATH: &str = "users/workos:applyWebhookEvent";

/// The WorkOS webhook endpoint's configuration.
#[derive(Clone)]
pub struct WorkosWebhook {
    secret: Arc<str>,
    tolerance_ms: f64,
}

impl std::fmt::Debug for WorkosWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkosWebhook")
            .field("tolerance_ms", &self.tolerance_ms)
            .finish_non_exhaustive()
    }
}

impl WorkosWebhook {
    /// The endpoint with `secret` and the default tolerance.
    pub fn new(secret: impl Into<Arc<str>>) -> Self {
        Self {
            secret: secret.into(),
            tolerance_ms: DEFAULT_TOLERANCE_MS,
        }
    }

    /// Sets the timestamp tolerance.
    pub fn with_tolerance_ms(mut self, tolerance_ms: f64) -> Self {
        self.tolerance_ms = tolerance_ms;
        self
    }
}

/// Which webhook endpoints are configured (none by default: their routes
/// answer `404`).
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    /// `POST /webhooks/workos`.
    pub workos: Option<WorkosWebhook>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::WebhookInvalid, message.into())
}

/// The parsed `WorkOS-Signature` header: the raw `t` and every `v1`.
fn parse_signature(header: &str) -> Result<(String, Vec<Vec<u8>>), Error> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("t=") {
            t = Some(v.trim().to_owned());
        } else if let Some(v) = part.strip_prefix("v1=") {
            let bytes =
                hex::decode(v.trim()).map_err(|_| invalid("WorkOS-Signature: v1 is not hex"))?;
            sigs.push(bytes);
        }
    }
    let t = t.ok_or_else(|| invalid("WorkOS-Signature: missing t="))?;
    if sigs.is_empty() {
        return Err(invalid("WorkOS-Signature: missing v1="));
    }
    Ok((t, sigs))
}

/// Checks the signature of `body` at `now_ms`; returns the signature
/// timestamp (ms).
pub fn verify_signature(
    config: &WorkosWebhook,
    header: Option<&str>,
    body: &[u8],
    now_ms: f64,
) -> Result<f64, Error> {
    let header = header.ok_or_else(|| invalid("Missing WorkOS-Signature header"))?;
    let (t, sigs) = parse_signature(header)?;
    let ts: f64 = t
        .parse::<u64>()
        .map_err(|_| invalid("WorkOS-Signature: t is not a timestamp in milliseconds"))?
        as f64;
    if (now_ms - ts).abs() > config.tolerance_ms {
        return Err(invalid(
            "WorkOS-Signature timestamp is outside the tolerance (expired or from the future)",
        ));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, config.secret.as_bytes());
    let mut message = Vec::with_capacity(t.len() + 1 + body.len());
    message.extend_from_slice(t.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    // `hmac::verify` compares in constant time.
    if sigs
        .iter()
        .any(|sig| hmac::verify(&key, &message, sig).is_ok())
    {
        Ok(ts)
    } else {
        Err(invalid("WorkOS-Signature does not match the body"))
    }
}

fn string(data: &Json, key: &str) -> Option<Json> {
    data.get(key)
        .and_then(Json::as_str)
        .map(|s| Json::from(s.to_owned()))
}

/// The user fields the domain uses, from a WorkOS User object.
fn user_args(data: &Json) -> Option<Json> {
    let mut out = Map::new();
    out.insert("id".into(), string(data, "id")?);
    out.insert("email".into(), string(data, "email")?);
    out.insert(
        "emailVerified".into(),
        Json::Bool(
            data.get("email_verified")
                .and_then(Json::as_bool)
                .unwrap_or(false),
        ),
    );
    for (from, to) in [
        ("first_name", "firstName"),
        ("last_name", "lastName"),
        ("profile_picture_url", "profilePictureUrl"),
        ("updated_at", "updatedAt"),
    ] {
        if let Some(v) = string(data, from) {
            out.insert(to.into(), v);
        }
    }
    Some(Json::Object(out))
}

/// The membership fields the domain uses, from a WorkOS
/// OrganizationMembership object.
fn membership_args(data: &Json) -> Option<Json> {
    let mut out = Map::new();
    out.insert("id".into(), string(data, "id")?);
    out.insert("userId".into(), string(data, "user_id")?);
    out.insert("organizationId".into(), string(data, "organization_id")?);
    out.insert(
        "status".into(),
        string(data, "status").unwrap_or_else(|| Json::from("active")),
    );
    if let Some(role) = data.get("role").and_then(|r| string(r, "slug")) {
        out.insert("role".into(), role);
    }
    if let Some(v) = string(data, "updated_at") {
        out.insert("updatedAt".into(), v);
    }
    Some(Json::Object(out))
}

/// `POST /webhooks/workos`.
pub async fn workos(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(config) = &state.webhooks.workos else {
        return error_response(&Error::new(
            ErrorCode::NotFound,
            "WorkOS webhooks are not configured on this server",
        ));
    };
    let header = headers
        .get("workos-signature")
        .and_then(|v| v.to_str().ok());
    let now = state.runtime.database().clock().now_ms();
    let ts = match verify_signature(config, header, &body, now) {
        Ok(ts) => ts,
        Err(e) => {
            tracing::warn!(error = %e, "WorkOS webhook refused");
            return error_response(&e);
        }
    };
    let event: Json = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(&invalid(format!("Malformed event body: {e}"))),
    };
    let (Some(id), Some(kind)) = (
        event.get("id").and_then(Json::as_str),
        event.get("event").and_then(Json::as_str),
    ) else {
        return error_response(&invalid("The event has no id or event type"));
    };
    let data = event.get("data").cloned().unwrap_or(Json::Null);
    let mut args = json!({"eventId": id, "event": kind, "signatureTs": ts});
    if kind.starts_with("user.")
        && let Some(user) = user_args(&data)
    {
        args["user"] = user;
    } else if kind.starts_with("organization_membership.")
        && let Some(m) = membership_args(&data)
    {
        args["membership"] = m;
    }
    let args = match values::Value::from_json(args) {
        Ok(a) => a,
        Err(e) => return error_response(&invalid(format!("Malformed event: {e}"))),
    };
    let outcome = match state
        .runtime
        .call(FunctionKind::Mutation, APPLY_PATH, args, None)
        .await
    {
        Ok(v) => v
            .get("outcome")
            .and_then(|o| o.as_str().map(str::to_owned))
            .unwrap_or_default(),
        Err(e) => return error_response(&e),
    };
    if outcome == "replayed" {
        tracing::warn!(event_id = id, "replayed WorkOS webhook refused");
        return error_response(&Error::new(
            ErrorCode::Conflict,
            format!("Event {id} was already received with this signature (replayed request)"),
        ));
    }
    (
        StatusCode::OK,
        axum::Json(json!({"status": outcome, "eventId": id})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_test_vector() {
        // integrations.md §1.2: secret `whsec_test_secret`, t=1700000000000.
        let body = br#"{"id":"event_01","event":"user.created","data":{"object":"user","id":"user_01"},"created_at":"2023-11-14T22:13:20.000Z"}"#;
        let config = WorkosWebhook::new("whsec_test_secret");
        let header =
            "t=1700000000000, v1=f5015f4f2766220aea604132d47995665d73988a2eb11e117a3faae17a0f12e6";
        assert_eq!(
            verify_signature(&config, Some(header), body, 1_700_000_001_000.0).unwrap(),
            1_700_000_000_000.0
        );
        // Tampered body, stale and future timestamps, wrong secret, bad headers.
        let mut tampered = body.to_vec();
        tampered[10] = b'X';
        assert!(verify_signature(&config, Some(header), &tampered, 1_700_000_001_000.0).is_err());
        assert!(verify_signature(&config, Some(header), body, 1_700_000_181_001.0).is_err());
        assert!(verify_signature(&config, Some(header), body, 1_699_999_819_000.0).is_err());
        let other = WorkosWebhook::new("whsec_other");
        assert!(verify_signature(&other, Some(header), body, 1_700_000_001_000.0).is_err());
        for bad in [
            "",
            "t=1700000000000",
            "v1=00",
            "t=x, v1=00",
            "t=1700000000000, v1=zz",
        ] {
            assert!(verify_signature(&config, Some(bad), body, 1_700_000_001_000.0).is_err());
        }
        assert!(verify_signature(&config, None, body, 1_700_000_001_000.0).is_err());
    }
}
