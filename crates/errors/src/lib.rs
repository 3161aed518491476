//! The one error type of Connvo Server.
//!
//! Every layer returns [`Error`]: a stable machine-readable [`ErrorCode`], a human
//! message, and optional structured metadata. Transports map it exactly once:
//! the HTTP layer turns it into a status code and a `{code, message}` body (or a
//! Convex function-error envelope), the WebSocket layer into `QueryFailed` /
//! `MutationResponse{success:false}` or a close frame.
//!
//! Application errors (the ones a function raises on purpose, like Convex's
//! `ConvexError`) are marked [`Error::is_application`]; their `{code, message,
//! statusCode, metadata}` data reaches clients as `errorData`, so
//! `err.data.code` works in the official client. Everything else is a system
//! error whose details stay in the server log.

use std::borrow::Cow;
use std::fmt;

/// Stable error codes. The string form (see [`ErrorCode::as_str`]) is part of the
/// public API and never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No verified identity, or the identity is not a known active user.
    Unauthorized,
    /// The caller is known but may not do this.
    Forbidden,
    /// The caller's role is too low for this action.
    InsufficientPermissions,
    /// A referenced resource does not exist (or is not visible to the caller).
    NotFound,
    /// Arguments or a document failed validation.
    ValidationError,
    /// The request conflicts with the current state (e.g. an invalid state transition).
    Conflict,
    /// A meeting must be active for this action.
    MeetingNotActive,
    /// A rate limit was hit.
    RateLimitExceeded,
    /// A size, count or time limit of the engine was exceeded.
    LimitExceeded,
    /// A transaction kept conflicting with concurrent writes after all retries.
    WriteConflict,
    /// The function did not finish within its time limit.
    Timeout,
    /// The server is overloaded; retry later.
    Overloaded,
    /// A malformed request (bad JSON, wrong envelope, bad message).
    BadRequest,
    /// No public function exists at the path.
    FunctionNotFound,
    /// A pagination cursor is invalid or belongs to another query.
    InvalidCursor,
    /// An upstream service (LLM, video, identity provider) failed.
    ExternalServiceError,
    /// An upstream service timed out.
    ExternalServiceTimeout,
    /// A webhook signature or payload is invalid.
    WebhookInvalid,
    /// The authentication token is invalid (signature, issuer, audience, expiry…).
    InvalidToken,
    /// Unexpected server failure; details are only in the server log.
    Internal,
}

impl ErrorCode {
    /// The stable wire form of the code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            Self::NotFound => "NOT_FOUND",
            Self::ValidationError => "VALIDATION_ERROR",
            Self::Conflict => "CONFLICT",
            Self::MeetingNotActive => "MEETING_NOT_ACTIVE",
            Self::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::WriteConflict => "WRITE_CONFLICT",
            Self::Timeout => "TIMEOUT",
            Self::Overloaded => "OVERLOADED",
            Self::BadRequest => "BAD_REQUEST",
            Self::FunctionNotFound => "FUNCTION_NOT_FOUND",
            Self::InvalidCursor => "InvalidCursor",
            Self::ExternalServiceError => "EXTERNAL_SERVICE_ERROR",
            Self::ExternalServiceTimeout => "EXTERNAL_SERVICE_TIMEOUT",
            Self::WebhookInvalid => "WEBHOOK_INVALID",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::Internal => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status that corresponds to the code.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::Unauthorized | Self::InvalidToken => 401,
            Self::Forbidden | Self::InsufficientPermissions => 403,
            Self::NotFound | Self::FunctionNotFound => 404,
            Self::ValidationError
            | Self::MeetingNotActive
            | Self::BadRequest
            | Self::InvalidCursor
            | Self::WebhookInvalid => 400,
            Self::Conflict | Self::WriteConflict => 409,
            Self::LimitExceeded => 413,
            Self::RateLimitExceeded => 429,
            Self::Timeout | Self::ExternalServiceTimeout => 504,
            Self::Overloaded => 503,
            Self::ExternalServiceError => 502,
            Self::Internal => 500,
        }
    }

    /// Whether a client may retry the same request unchanged and expect success later.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::WriteConflict | Self::Overloaded | Self::Timeout)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type used across the server.
#[derive(Debug, Clone)]
pub struct Error {
    code: ErrorCode,
    message: Cow<'static, str>,
    metadata: Option<serde_json::Value>,
    application: bool,
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A system error with a code and message (not exposed as `errorData`).
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            metadata: None,
            application: false,
        }
    }

    /// An application error, the equivalent of throwing `ConvexError({code, message})`.
    pub fn app(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            metadata: None,
            application: true,
        }
    }

    /// Attaches structured metadata (sent to clients for application errors).
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Marks the error as an application error whose data clients may see.
    pub fn into_app(mut self) -> Self {
        self.application = true;
        self
    }

    /// `UNAUTHORIZED` application error.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::app(ErrorCode::Unauthorized, message)
    }

    /// `FORBIDDEN` application error.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::app(ErrorCode::Forbidden, message)
    }

    /// `NOT_FOUND` application error.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::app(ErrorCode::NotFound, message)
    }

    /// `VALIDATION_ERROR` application error.
    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::app(ErrorCode::ValidationError, message)
    }

    /// `CONFLICT` application error.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::app(ErrorCode::Conflict, message)
    }

    /// `BAD_REQUEST` system error.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// `LIMIT_EXCEEDED` application error (clients can see which limit).
    pub fn limit(message: impl Into<Cow<'static, str>>) -> Self {
        Self::app(ErrorCode::LimitExceeded, message)
    }

    /// `INTERNAL_ERROR` system error.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Structured metadata, if any.
    pub fn metadata(&self) -> Option<&serde_json::Value> {
        self.metadata.as_ref()
    }

    /// Whether this is an application error (its data is sent to clients).
    pub fn is_application(&self) -> bool {
        self.application
    }

    /// The `errorData` object clients receive for application errors:
    /// `{code, message, statusCode, metadata?}` as the original backend produced.
    pub fn error_data(&self) -> Option<serde_json::Value> {
        if !self.application {
            return None;
        }
        let mut data = serde_json::Map::new();
        data.insert("code".into(), self.code.as_str().into());
        data.insert("message".into(), self.message.as_ref().into());
        data.insert("statusCode".into(), self.code.http_status().into());
        if let Some(m) = &self.metadata {
            data.insert("metadata".into(), m.clone());
        }
        Some(serde_json::Value::Object(data))
    }

    /// The `{code, message}` body used for non-function HTTP errors.
    pub fn http_body(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code.as_str(), "message": self.message })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::bad_request(format!("invalid JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_errors_carry_data() {
        let e = Error::forbidden("no").with_metadata(serde_json::json!({"requiredRole": "host"}));
        let data = e.error_data().expect("application error has data");
        assert_eq!(data["code"], "FORBIDDEN");
        assert_eq!(data["statusCode"], 403);
        assert_eq!(data["metadata"]["requiredRole"], "host");
    }

    #[test]
    fn system_errors_carry_no_data() {
        assert!(Error::internal("boom").error_data().is_none());
        assert_eq!(Error::bad_request("x").http_body()["code"], "BAD_REQUEST");
    }
}
