//! Client → server messages of the WebSocket sync protocol.
//!
//! Every text frame from the client is one JSON object whose `"type"` is one of
//! `Connect`, `ModifyQuerySet`, `Mutation`, `Action`, `Authenticate` or `Event`
//! (see [`ClientMessage`]). Field names are camelCase exactly as the official
//! `convex` npm client writes them. Unknown fields are ignored so newer clients
//! keep working; an unknown `"type"` is an error.
//!
//! Use [`parse_client_message`] on untrusted input: it enforces a size limit and
//! [`MAX_JSON_NESTING_DEPTH`](crate::MAX_JSON_NESTING_DEPTH) before parsing, and
//! the types themselves validate `args` (always `[{…}]`) and `sessionId`.
//!
//! Function arguments stay Convex-encoded JSON ([`serde_json::Value`]); paths
//! are passed through as sent (the client canonicalizes only `Add.udfPath`; use
//! [`canonicalize_udf_path`](crate::canonicalize_udf_path) on the server).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::ProtocolError;
use crate::limits::parse_json_with_limits;
use crate::ts::WireTs;

/// Maximum length of `Connect.sessionId` (the client sends a UUIDv4: 36 chars).
pub const MAX_SESSION_ID_LEN: usize = 64;

/// A message from the client. Serialized with `"type"` as the tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientMessage {
    /// Always the first message on every socket.
    #[serde(rename_all = "camelCase")]
    Connect {
        /// Random id generated once per client object; the same across
        /// reconnects. 1–64 characters of `[A-Za-z0-9_-]`.
        #[serde(deserialize_with = "de_session_id")]
        session_id: String,
        /// 0 on the first socket, then +1 per successful open.
        connection_count: u32,
        /// Why the previous socket closed (`"InitialConnect"`, a server close
        /// reason, `"closed with code N"`, …); may be `null` or absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_close_reason: Option<String>,
        /// Client wall clock in milliseconds since the epoch (may be fractional).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "ser_js_number"
        )]
        client_ts: Option<f64>,
        /// The largest timestamp the client has observed (Transition `endVersion.ts`
        /// or successful MutationResponse `ts`); absent on a fresh client.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_observed_timestamp: Option<WireTs>,
    },
    /// Adds and removes query subscriptions, moving the query set from
    /// `base_version` to `new_version`.
    #[serde(rename_all = "camelCase")]
    ModifyQuerySet {
        /// The query-set version this change applies to.
        base_version: u32,
        /// The query-set version after this change.
        new_version: u32,
        /// The additions and removals, in order.
        modifications: Vec<QuerySetModification>,
    },
    /// Runs a mutation; answered by a `MutationResponse` with the same id.
    #[serde(rename_all = "camelCase")]
    Mutation {
        /// Per-client counter shared with actions; unique within a session.
        request_id: u32,
        /// The function path exactly as the client sent it (NOT canonicalized).
        udf_path: String,
        /// Always exactly one Convex-encoded object: `[{…}]`.
        #[serde(deserialize_with = "de_args")]
        args: Vec<Value>,
        /// Component path (internal/admin use).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component_path: Option<String>,
    },
    /// Runs an action; answered by an `ActionResponse` with the same id.
    #[serde(rename_all = "camelCase")]
    Action {
        /// Per-client counter shared with mutations; unique within a session.
        request_id: u32,
        /// The function path exactly as the client sent it (NOT canonicalized).
        udf_path: String,
        /// Always exactly one Convex-encoded object: `[{…}]`.
        #[serde(deserialize_with = "de_args")]
        args: Vec<Value>,
        /// Component path (internal/admin use).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component_path: Option<String>,
    },
    /// Sets or clears the socket's identity.
    #[serde(rename_all = "camelCase")]
    Authenticate {
        /// The client's identity version before this change.
        base_version: u32,
        /// The credential; on the wire `tokenType`, `value` and `impersonating`.
        #[serde(flatten)]
        token: AuthToken,
    },
    /// Client telemetry. Servers should ignore it (but never fail on it).
    #[serde(rename_all = "camelCase")]
    Event {
        /// `"ClientConnect"`, `"ClientReceivedTransition"`,
        /// `"NetworkRecoveryReconnect"`, …
        event_type: String,
        /// Free-form payload (`null` when absent).
        #[serde(default)]
        event: Value,
    },
}

impl ClientMessage {
    /// The wire `"type"` of this message, e.g. `"Connect"` (for logs and metrics).
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Connect { .. } => "Connect",
            ClientMessage::ModifyQuerySet { .. } => "ModifyQuerySet",
            ClientMessage::Mutation { .. } => "Mutation",
            ClientMessage::Action { .. } => "Action",
            ClientMessage::Authenticate { .. } => "Authenticate",
            ClientMessage::Event { .. } => "Event",
        }
    }

    /// Serializes the message as the official client would send it (optional
    /// fields that are `None` are omitted). Useful for test clients.
    pub fn to_json_string(&self) -> String {
        // Serializing plain data into a String cannot fail: all map keys are
        // strings and `Value` holds no non-finite floats.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One change inside [`ClientMessage::ModifyQuerySet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum QuerySetModification {
    /// Subscribes to a query.
    #[serde(rename_all = "camelCase")]
    Add {
        /// Client-allocated id; never reused by the client, not even across
        /// reconnects.
        query_id: u32,
        /// Function path, already canonicalized by the client (`module:export`).
        udf_path: String,
        /// Always exactly one Convex-encoded object: `[{…}]`.
        #[serde(deserialize_with = "de_args")]
        args: Vec<Value>,
        /// The query journal last received for this query (pagination); `null`
        /// and absent both decode to `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        journal: Option<String>,
        /// Component path (internal/admin use).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component_path: Option<String>,
    },
    /// Unsubscribes from a query.
    #[serde(rename_all = "camelCase")]
    Remove {
        /// The id given in the earlier `Add`.
        query_id: u32,
    },
}

/// The credential in [`ClientMessage::Authenticate`].
///
/// Wire form: `{"tokenType":"User","value":"<jwt>"}`,
/// `{"tokenType":"Admin","value":"<key>","impersonating":{…}}` or
/// `{"tokenType":"None"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AuthTokenWire", into = "AuthTokenWire")]
pub enum AuthToken {
    /// A user JWT (`tokenType: "User"`).
    User(String),
    /// An admin key (`tokenType: "Admin"`), used by the dashboard and CLI.
    Admin {
        /// The admin key.
        key: String,
        /// Optional identity attributes to act as (Convex `UserIdentityAttributes`).
        impersonating: Option<Value>,
    },
    /// Logged out / anonymous (`tokenType: "None"`).
    None,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum TokenType {
    User,
    Admin,
    None,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthTokenWire {
    token_type: TokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    impersonating: Option<Value>,
}

impl TryFrom<AuthTokenWire> for AuthToken {
    type Error = String;

    fn try_from(wire: AuthTokenWire) -> Result<Self, Self::Error> {
        match wire.token_type {
            TokenType::User => match wire.value {
                Some(jwt) => Ok(AuthToken::User(jwt)),
                None => {
                    Err("Authenticate with tokenType \"User\" requires a string `value`".into())
                }
            },
            TokenType::Admin => match wire.value {
                Some(key) => Ok(AuthToken::Admin {
                    key,
                    impersonating: wire.impersonating,
                }),
                None => {
                    Err("Authenticate with tokenType \"Admin\" requires a string `value`".into())
                }
            },
            TokenType::None => Ok(AuthToken::None),
        }
    }
}

impl From<AuthToken> for AuthTokenWire {
    fn from(token: AuthToken) -> Self {
        match token {
            AuthToken::User(jwt) => AuthTokenWire {
                token_type: TokenType::User,
                value: Some(jwt),
                impersonating: None,
            },
            AuthToken::Admin { key, impersonating } => AuthTokenWire {
                token_type: TokenType::Admin,
                value: Some(key),
                impersonating,
            },
            AuthToken::None => AuthTokenWire {
                token_type: TokenType::None,
                value: None,
                impersonating: None,
            },
        }
    }
}

/// Parses one client text frame, enforcing `max_bytes`, the nesting limit
/// ([`MAX_JSON_NESTING_DEPTH`](crate::MAX_JSON_NESTING_DEPTH)) and the message
/// schema. Never panics on any input.
///
/// Errors: `MessageTooLarge` when `text` is longer than `max_bytes`; `BadRequest`
/// for invalid JSON, too deep nesting, an unknown or missing `type`, missing or
/// mistyped fields, numbers out of u32 range, `args` other than `[{…}]`, or an
/// invalid `sessionId`.
pub fn parse_client_message(text: &str, max_bytes: usize) -> Result<ClientMessage, ProtocolError> {
    parse_json_with_limits(text.as_bytes(), max_bytes)
}

/// Returns the single args object of a Convex-encoded args array (`[{…}]`), or
/// a `BadRequest` error describing what was wrong.
pub fn args_object(args: &[Value]) -> Result<&Map<String, Value>, ProtocolError> {
    match args {
        [Value::Object(obj)] => Ok(obj),
        [other] => Err(ProtocolError::bad_request(format!(
            "`args` must be an array containing exactly one object, like [{{}}]; its element is {}",
            describe(other)
        ))),
        _ => Err(ProtocolError::bad_request(format!(
            "`args` must be an array containing exactly one object, like [{{}}]; got {} elements",
            args.len()
        ))),
    }
}

/// Like [`args_object`], taking the arguments by value (no copy of the map).
pub fn args_object_owned(args: Vec<Value>) -> Result<Map<String, Value>, ProtocolError> {
    args_object(&args)?;
    match args.into_iter().next() {
        Some(Value::Object(obj)) => Ok(obj),
        // `args_object` accepted exactly one object.
        _ => Err(ProtocolError::bad_request(
            "`args` must be an array containing exactly one object, like [{}]",
        )),
    }
}

/// A short description of a JSON value's type, for error messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn de_args<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Value>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    match value {
        Value::Array(items) => {
            args_object(&items).map_err(|e| D::Error::custom(e.message()))?;
            Ok(items)
        }
        other => Err(D::Error::custom(format!(
            "`args` must be an array containing exactly one object, like [{{}}]; got {}",
            describe(&other)
        ))),
    }
}

fn de_session_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let id = String::deserialize(deserializer)?;
    if id.is_empty() || id.len() > MAX_SESSION_ID_LEN {
        return Err(D::Error::custom(format!(
            "`sessionId` must be 1 to {MAX_SESSION_ID_LEN} characters long"
        )));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(D::Error::custom(
            "`sessionId` may contain only ASCII letters, digits, '-' and '_'",
        ));
    }
    Ok(id)
}

/// Writes an f64 the way JavaScript's `JSON.stringify` would for integral values
/// (`1795552736112`, not `1795552736112.0`).
fn ser_js_number<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    match *value {
        Some(x) if x.fract() == 0.0 && x.abs() <= MAX_SAFE => serializer.serialize_i64(x as i64),
        Some(x) => serializer.serialize_f64(x),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: usize = 1 << 20;

    #[test]
    fn args_object_accepts_only_one_object() {
        assert!(args_object(&[json!({})]).is_ok());
        assert!(args_object(&[]).is_err());
        assert!(args_object(&[json!({}), json!({})]).is_err());
        assert!(args_object(&[json!(1)]).is_err());
        assert!(args_object(&[json!(null)]).is_err());
    }

    #[test]
    fn session_id_validation() {
        let ok = r#"{"type":"Connect","sessionId":"abc-DEF_123","connectionCount":0}"#;
        assert!(parse_client_message(ok, MAX).is_ok());
        let long = format!(
            r#"{{"type":"Connect","sessionId":"{}","connectionCount":0}}"#,
            "a".repeat(65)
        );
        assert!(parse_client_message(&long, MAX).is_err());
        for bad in ["", "a b", "a\"", "é"] {
            let msg = json!({"type":"Connect","sessionId":bad,"connectionCount":0}).to_string();
            assert!(parse_client_message(&msg, MAX).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn type_names() {
        let msg = parse_client_message(r#"{"type":"Event","eventType":"X"}"#, MAX).unwrap();
        assert_eq!(msg.type_name(), "Event");
        assert_eq!(
            msg,
            ClientMessage::Event {
                event_type: "X".into(),
                event: Value::Null
            }
        );
    }

    #[test]
    fn client_ts_serialization() {
        let msg = ClientMessage::Connect {
            session_id: "s".into(),
            connection_count: 1,
            last_close_reason: None,
            client_ts: Some(1795552736112.0),
            max_observed_timestamp: None,
        };
        assert_eq!(
            msg.to_json_string(),
            r#"{"type":"Connect","sessionId":"s","connectionCount":1,"clientTs":1795552736112}"#
        );
        let frac = ClientMessage::Connect {
            session_id: "s".into(),
            connection_count: 1,
            last_close_reason: None,
            client_ts: Some(1.5),
            max_observed_timestamp: None,
        };
        assert!(frac.to_json_string().contains(r#""clientTs":1.5"#));
    }
}
