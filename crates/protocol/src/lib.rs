//! Wire formats of Connvo Server's Convex-compatible APIs.
//!
//! This is the only crate that knows the JSON shapes spoken with the official
//! `convex` npm client (1.28–1.48):
//!
//! - [`client`]: client → server WebSocket messages ([`ClientMessage`]) and the
//!   limit-enforcing [`parse_client_message`];
//! - [`server`]: server → client WebSocket messages ([`ServerMessage`]) and
//!   Transition chunking ([`split_transition`]);
//! - [`ts`]: [`WireTs`], the base64 little-endian u64 timestamp encoding;
//! - [`udf_path`]: function path canonicalization (`module:export`);
//! - [`http`]: HTTP API request and response envelopes;
//! - [`limits`]: size and nesting limits for untrusted JSON;
//! - [`error`]: [`ProtocolError`], with short codes usable as WebSocket close
//!   reasons and HTTP error codes.
//!
//! Values inside messages (function args, results, `errorData`) stay
//! [`serde_json::Value`] holding Convex-encoded JSON; converting them to engine
//! values happens elsewhere.
//!
//! ```
//! use protocol::{
//!     ClientMessage, DEFAULT_MAX_MESSAGE_BYTES, MutationSuccess, ServerMessage, WireTs,
//!     canonicalize_udf_path, parse_client_message,
//! };
//!
//! let text = r#"{"type":"Mutation","requestId":0,"udfPath":"messages","args":[{"body":"hi"}]}"#;
//! let ClientMessage::Mutation { request_id, udf_path, .. } =
//!     parse_client_message(text, DEFAULT_MAX_MESSAGE_BYTES)?
//! else {
//!     unreachable!()
//! };
//! assert_eq!(canonicalize_udf_path(&udf_path)?, "messages:default");
//!
//! let reply = ServerMessage::MutationResponse {
//!     request_id,
//!     result: Ok(MutationSuccess {
//!         value: serde_json::json!("m0"),
//!         ts: WireTs(0),
//!         log_lines: vec![],
//!     }),
//! };
//! assert_eq!(
//!     reply.to_json_string(),
//!     r#"{"type":"MutationResponse","requestId":0,"success":true,"result":"m0","ts":"AAAAAAAAAAA=","logLines":[]}"#
//! );
//! # Ok::<(), protocol::ProtocolError>(())
//! ```

pub mod client;
pub mod error;
pub mod http;
pub mod limits;
pub mod server;
pub mod ts;
pub mod udf_path;

pub use client::{
    AuthToken, ClientMessage, MAX_SESSION_ID_LEN, QuerySetModification, args_object,
    args_object_owned, parse_client_message,
};
pub use error::{MAX_CLOSE_REASON_BYTES, ProtocolError, ProtocolErrorKind};
pub use http::{
    HttpFunctionRequest, HttpFunctionResponse, HttpQueryBatchRequest, HttpRunRequest, ValueFormat,
    http_error_body, http_function_error_body, http_query_ts_body, http_success_body,
};
pub use limits::{
    DEFAULT_MAX_MESSAGE_BYTES, MAX_JSON_NESTING_DEPTH, check_json_nesting, parse_json_with_limits,
};
pub use server::{
    DEFAULT_TRANSITION_CHUNK_THRESHOLD, FunctionFailure, FunctionSuccess, MutationSuccess,
    QueryValue, ServerMessage, StateModification, StateVersion, split_transition,
};
pub use ts::WireTs;
pub use udf_path::{DEFAULT_EXPORT, MAX_UDF_PATH_LEN, canonicalize_udf_path, run_path_to_udf_path};
