//! [`ProtocolError`]: what goes wrong while decoding or validating wire data.
//!
//! Every error carries a short, stable code (see [`ProtocolErrorKind::code`]) and a
//! human-readable message. The WebSocket layer can close a socket with
//! [`ProtocolError::close_reason`], which fits the 123-byte limit of a close frame;
//! the HTTP layer can answer with `{"code": …, "message": …}` (see
//! [`crate::http::http_error_body`]).

use std::fmt;

/// Maximum length in bytes of a WebSocket close reason (RFC 6455: 125 bytes of
/// payload minus the 2-byte status code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// The category of a [`ProtocolError`]; its [`code`](ProtocolErrorKind::code) is a
/// stable short string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolErrorKind {
    /// Malformed input: not JSON, wrong shape, wrong types, bad values, too deep.
    BadRequest,
    /// The message or request body exceeds the configured size limit.
    MessageTooLarge,
    /// A function path (`module:export`) is not valid.
    BadConvexFunctionIdentifier,
}

impl ProtocolErrorKind {
    /// The stable short code, e.g. `"BadRequest"`.
    pub fn code(self) -> &'static str {
        match self {
            ProtocolErrorKind::BadRequest => "BadRequest",
            ProtocolErrorKind::MessageTooLarge => "MessageTooLarge",
            ProtocolErrorKind::BadConvexFunctionIdentifier => "BadConvexFunctionIdentifier",
        }
    }
}

impl fmt::Display for ProtocolErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error decoding or validating wire data. Never carries user secrets beyond
/// what the peer itself sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    kind: ProtocolErrorKind,
    message: String,
}

impl ProtocolError {
    /// Creates an error of the given kind.
    pub fn new(kind: ProtocolErrorKind, message: impl Into<String>) -> Self {
        ProtocolError {
            kind,
            message: message.into(),
        }
    }

    /// A [`ProtocolErrorKind::BadRequest`] error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ProtocolErrorKind::BadRequest, message)
    }

    /// A [`ProtocolErrorKind::MessageTooLarge`] error for a payload of `size` bytes
    /// over a limit of `max` bytes.
    pub fn message_too_large(size: usize, max: usize) -> Self {
        Self::new(
            ProtocolErrorKind::MessageTooLarge,
            format!("message of {size} bytes exceeds the limit of {max} bytes"),
        )
    }

    /// A [`ProtocolErrorKind::BadConvexFunctionIdentifier`] error.
    pub fn bad_function_identifier(message: impl Into<String>) -> Self {
        Self::new(ProtocolErrorKind::BadConvexFunctionIdentifier, message)
    }

    /// The error's category.
    pub fn kind(&self) -> ProtocolErrorKind {
        self.kind
    }

    /// The stable short code, e.g. `"BadRequest"` or `"MessageTooLarge"`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The human-readable message (without the code).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `"<code>: <message>"` truncated on a UTF-8 character boundary to at most
    /// [`MAX_CLOSE_REASON_BYTES`] (123) bytes, for a WebSocket close frame.
    ///
    /// It starts with the short code, so clients that match the reason by prefix
    /// (the official client's backoff table) see the code.
    pub fn close_reason(&self) -> String {
        let mut reason = format!("{}: {}", self.code(), self.message);
        truncate_on_char_boundary(&mut reason, MAX_CLOSE_REASON_BYTES);
        reason
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for ProtocolError {}

/// Shortens `s` to at most `max_bytes` bytes without splitting a character.
pub(crate) fn truncate_on_char_boundary(s: &mut String, max_bytes: usize) {
    if s.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(ProtocolError::bad_request("x").code(), "BadRequest");
        assert_eq!(
            ProtocolError::message_too_large(10, 5).code(),
            "MessageTooLarge"
        );
        assert_eq!(
            ProtocolError::bad_function_identifier("x").code(),
            "BadConvexFunctionIdentifier"
        );
        assert_eq!(
            ProtocolError::bad_request("oops").to_string(),
            "BadRequest: oops"
        );
    }

    #[test]
    fn close_reason_is_truncated_on_char_boundary() {
        let short = ProtocolError::bad_request("short");
        assert_eq!(short.close_reason(), "BadRequest: short");

        // "BadRequest: " is 12 bytes; 'é' is 2 bytes, so byte 123 falls inside one.
        let long = ProtocolError::bad_request("é".repeat(200));
        let reason = long.close_reason();
        assert!(reason.len() <= MAX_CLOSE_REASON_BYTES);
        assert_eq!(reason.len(), 122);
        assert!(reason.starts_with("BadRequest: é"));

        let ascii = ProtocolError::bad_request("a".repeat(500));
        assert_eq!(ascii.close_reason().len(), MAX_CLOSE_REASON_BYTES);

        let emoji = ProtocolError::bad_request("🦀".repeat(100));
        let reason = emoji.close_reason();
        assert!(reason.len() <= MAX_CLOSE_REASON_BYTES);
        assert!(reason.ends_with('🦀'));
    }
}
