//! What both transports share: identity from a bearer token, argument
//! decoding, and the one mapping from [`errors::Error`] to what clients see.

use std::sync::Arc;

use auth::Identity;
use errors::{Error, ErrorCode, Result};
use values::Value;

use crate::AppState;

/// Verifies a bearer token. No token: anonymous. A bad token is an error
/// (`INVALID_TOKEN`), never silently anonymous.
pub async fn identity_from_token(
    state: &AppState,
    token: Option<&str>,
) -> Result<Option<Arc<Identity>>> {
    let Some(token) = token else { return Ok(None) };
    match &state.auth.verifier {
        Some(verifier) => verifier.verify(token).await.map(|i| Some(Arc::new(i))),
        None => Err(Error::new(
            ErrorCode::InvalidToken,
            "this server accepts no tokens (no auth provider configured)",
        )),
    }
}

/// Decodes Convex-encoded JSON arguments, which must be an object.
pub fn decode_args(json: serde_json::Value) -> Result<Value> {
    match Value::from_json(json)? {
        v @ Value::Object(_) => Ok(v),
        other => Err(Error::validation(format!(
            "Arguments must be an object, got {}",
            other.type_name()
        ))),
    }
}

/// The message clients see for an error. Internal errors are redacted (the
/// details are logged on the server).
pub fn client_message(e: &Error) -> String {
    if e.code() == ErrorCode::Internal {
        "Server Error".to_owned()
    } else {
        e.message().to_owned()
    }
}

/// The `errorData` clients see: present only for application errors.
pub fn client_error_data(e: &Error) -> Option<serde_json::Value> {
    e.error_data()
}

/// Logs a function error at the right level.
pub fn log_function_error(path: &str, e: &Error) {
    if e.code() == ErrorCode::Internal {
        tracing::error!(function = path, error = %e, "function failed");
    } else {
        tracing::debug!(function = path, error = %e, "function returned an error");
    }
}
