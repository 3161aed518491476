//! Server → client messages of the WebSocket sync protocol.
//!
//! [`ServerMessage`] serializes to exactly the JSON the official client expects,
//! with keys in the same order as the reference backend:
//!
//! - `logLines` is always present as an array (the client iterates it).
//! - `QueryUpdated.journal` / `QueryFailed.journal` are written as `null` when
//!   there is none (the client stores and re-sends whatever is not `undefined`).
//! - `errorData` is **omitted** unless the error is an application error
//!   (`ConvexError`); `Some(Value::Null)` is written as `"errorData":null`, which
//!   the client turns into `ConvexError(null)`.
//! - A failed `MutationResponse` carries `"ts":null`; a successful one its
//!   commit timestamp.
//!
//! Large Transitions can be split into [`ServerMessage::TransitionChunk`]s with
//! [`split_transition`] or [`ServerMessage::to_frames`].
//!
//! The types also implement `Deserialize` (for test clients), which accepts what
//! the serializer produces and rejects inconsistent shapes (e.g. a successful
//! `MutationResponse` without `ts`).

use std::borrow::Cow;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::ts::WireTs;

/// Above this many bytes of JSON, the reference backend splits a Transition
/// into [`ServerMessage::TransitionChunk`]s (npm clients ≥ 1.28 only).
pub const DEFAULT_TRANSITION_CHUNK_THRESHOLD: usize = 5_000_000;

/// The version of a client's view: query set, identity and timestamp.
/// Wire form: `{"querySet":0,"identity":0,"ts":"AAAAAAAAAAA="}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateVersion {
    /// The last `ModifyQuerySet.newVersion` fully reflected.
    pub query_set: u32,
    /// The identity version (bumped by every accepted `Authenticate`).
    pub identity: u32,
    /// The snapshot timestamp all results are consistent at.
    pub ts: WireTs,
}

impl StateVersion {
    /// `{querySet: 0, identity: 0, ts: 0}`: the start of every socket.
    pub const fn initial() -> StateVersion {
        StateVersion {
            query_set: 0,
            identity: 0,
            ts: WireTs::ZERO,
        }
    }
}

/// The result in a [`StateModification::QueryUpdated`]: Convex-encoded JSON,
/// either serialized once and shared (what the server sends: every
/// subscriber of a result writes the same text, with no per-subscriber copy
/// of a JSON tree) or parsed (what [`Deserialize`] produces for a client).
/// Both serialize to the same JSON; equality compares the JSON values.
#[derive(Debug, Clone)]
pub enum QueryValue {
    /// JSON text, written to the frame as is.
    Serialized(Arc<RawValue>),
    /// A JSON value.
    Parsed(Value),
}

impl QueryValue {
    /// The value as parsed JSON (parses a serialized value).
    pub fn json(&self) -> Cow<'_, Value> {
        match self {
            QueryValue::Parsed(v) => Cow::Borrowed(v),
            // Text this type holds was produced by a JSON serializer; an
            // unparsable one (impossible) reads as `null`.
            QueryValue::Serialized(raw) => {
                Cow::Owned(serde_json::from_str(raw.get()).unwrap_or(Value::Null))
            }
        }
    }
}

impl From<Value> for QueryValue {
    fn from(value: Value) -> Self {
        QueryValue::Parsed(value)
    }
}

impl PartialEq for QueryValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (QueryValue::Serialized(a), QueryValue::Serialized(b)) => a.get() == b.get(),
            _ => self.json() == other.json(),
        }
    }
}

impl Serialize for QueryValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            QueryValue::Serialized(raw) => raw.serialize(serializer),
            QueryValue::Parsed(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for QueryValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through `Value`: a `RawValue` cannot be read inside the internally
        // tagged `StateModification`.
        Value::deserialize(deserializer).map(QueryValue::Parsed)
    }
}

/// One change to a query result inside [`ServerMessage::Transition`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StateModification {
    /// A new result for a query.
    #[serde(rename_all = "camelCase")]
    QueryUpdated {
        /// The client's id for the query.
        query_id: u32,
        /// The result, Convex-encoded JSON.
        value: QueryValue,
        /// Console output of the run, each `"[LEVEL] message"`.
        log_lines: Vec<String>,
        /// The query journal (pagination); written as `null` when `None`.
        #[serde(default)]
        journal: Option<String>,
    },
    /// The query threw.
    #[serde(rename_all = "camelCase")]
    QueryFailed {
        /// The client's id for the query.
        query_id: u32,
        /// The error message shown to the client.
        error_message: String,
        /// Console output of the run, each `"[LEVEL] message"`.
        log_lines: Vec<String>,
        /// The query journal (pagination); written as `null` when `None`.
        #[serde(default)]
        journal: Option<String>,
        /// `ConvexError` data (Convex-encoded JSON); the key is omitted when
        /// `None`. `Some(Value::Null)` means `ConvexError(null)`.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "de_present"
        )]
        error_data: Option<Value>,
    },
    /// The query was unsubscribed.
    #[serde(rename_all = "camelCase")]
    QueryRemoved {
        /// The client's id for the query.
        query_id: u32,
    },
}

/// A function failure as reported in `MutationResponse`/`ActionResponse`
/// (`success:false`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionFailure {
    /// The error message (sent as `result`).
    pub error_message: String,
    /// `ConvexError` data (Convex-encoded JSON); omitted from the wire when `None`.
    pub error_data: Option<Value>,
    /// Console output of the run.
    pub log_lines: Vec<String>,
}

/// A successful action run (`ActionResponse` with `success:true`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSuccess {
    /// The return value, Convex-encoded JSON (sent as `result`).
    pub value: Value,
    /// Console output of the run.
    pub log_lines: Vec<String>,
}

/// A successful mutation (`MutationResponse` with `success:true`).
#[derive(Debug, Clone, PartialEq)]
pub struct MutationSuccess {
    /// The return value, Convex-encoded JSON (sent as `result`).
    pub value: Value,
    /// The commit timestamp. A Transition with `endVersion.ts >= ts` must follow,
    /// or the client's promise never resolves.
    pub ts: WireTs,
    /// Console output of the run.
    pub log_lines: Vec<String>,
}

/// A message from the server. Serializes with `"type"` as the first key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ServerMessageWire")]
pub enum ServerMessage {
    /// Moves the client's view from `start_version` (which must equal the last
    /// `end_version` sent on this socket) to `end_version`.
    Transition {
        /// The version the client must currently be at.
        start_version: StateVersion,
        /// The version after applying `modifications`.
        end_version: StateVersion,
        /// Query results that changed.
        modifications: Vec<StateModification>,
        /// `Connect.clientTs − server now`, in ms; omitted when `None`.
        client_clock_skew: Option<i64>,
        /// Server time in ns when sending; omitted when `None`.
        server_ts: Option<u64>,
    },
    /// One consecutive piece of a Transition's JSON (see [`split_transition`]).
    TransitionChunk {
        /// A substring of the Transition JSON.
        chunk: String,
        /// 0-based index of this part.
        part_number: u32,
        /// Number of parts.
        total_parts: u32,
        /// Identifies the Transition; the same for all parts.
        transition_id: String,
    },
    /// The outcome of a `Mutation`.
    MutationResponse {
        /// The `requestId` of the mutation.
        request_id: u32,
        /// Success (value, commit ts) or failure.
        result: Result<MutationSuccess, FunctionFailure>,
    },
    /// The outcome of an `Action`.
    ActionResponse {
        /// The `requestId` of the action.
        request_id: u32,
        /// Success or failure.
        result: Result<FunctionSuccess, FunctionFailure>,
    },
    /// Authentication failed; the socket is closed afterwards.
    AuthError {
        /// The message.
        error: String,
        /// The server's current confirmed identity version.
        base_version: u32,
        /// `true`: the `Authenticate` just sent was rejected; `false`: the existing
        /// auth became invalid (e.g. expired).
        auth_update_attempted: bool,
    },
    /// A permanent error; the client stops and never reconnects. Only for
    /// deterministic errors, never for transient ones.
    FatalError {
        /// The message.
        error: String,
    },
    /// Keepalive; resets the client's inactivity timer.
    Ping,
}

impl ServerMessage {
    /// The wire `"type"` of this message, e.g. `"Transition"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMessage::Transition { .. } => "Transition",
            ServerMessage::TransitionChunk { .. } => "TransitionChunk",
            ServerMessage::MutationResponse { .. } => "MutationResponse",
            ServerMessage::ActionResponse { .. } => "ActionResponse",
            ServerMessage::AuthError { .. } => "AuthError",
            ServerMessage::FatalError { .. } => "FatalError",
            ServerMessage::Ping => "Ping",
        }
    }

    /// The JSON text of this message (one WebSocket text frame).
    pub fn to_json_string(&self) -> String {
        match serde_json::to_string(self) {
            Ok(json) => json,
            // Unreachable in practice: every key is a string and `Value` cannot
            // hold a non-finite float. Still, never panic on the send path.
            Err(e) => {
                let fallback = ServerMessage::FatalError {
                    error: format!("failed to serialize {}: {e}", self.type_name()),
                };
                serde_json::to_string(&fallback).unwrap_or_default()
            }
        }
    }

    /// The text frames to send for this message: one frame, unless this is a
    /// Transition whose JSON is longer than `chunk_threshold` bytes, which is then
    /// split into [`ServerMessage::TransitionChunk`]s of at most
    /// `chunk_threshold` bytes of Transition JSON each. Pass `usize::MAX` for
    /// clients that do not support chunks (npm < 1.28).
    pub fn to_frames(&self, chunk_threshold: usize) -> Vec<String> {
        let json = self.to_json_string();
        if matches!(self, ServerMessage::Transition { .. }) && json.len() > chunk_threshold {
            split_transition(json, chunk_threshold)
                .iter()
                .map(ServerMessage::to_json_string)
                .collect()
        } else {
            vec![json]
        }
    }
}

/// Splits a serialized Transition into consecutive
/// [`ServerMessage::TransitionChunk`]s, each holding at most `max_part` bytes
/// of `json` (cut on UTF-8 character boundaries; a single character longer than
/// `max_part` still forms its own part so progress is always made).
///
/// `transitionId` is the total length of `json` as a decimal string, as in the
/// reference backend; `partNumber` runs 0..`totalParts`. An empty `json` yields
/// no parts.
pub fn split_transition(json: String, max_part: usize) -> Vec<ServerMessage> {
    let len = json.len();
    if len == 0 {
        return Vec::new();
    }
    // Keep the part count within u32 whatever `max_part` is.
    let min_part = len.div_ceil(u32::MAX as usize);
    let max_part = max_part.max(1).max(min_part);

    let mut pieces: Vec<&str> = Vec::with_capacity(len.div_ceil(max_part));
    let mut start = 0;
    while start < len {
        let mut end = start.saturating_add(max_part).min(len);
        while end > start && !json.is_char_boundary(end) {
            end -= 1;
        }
        if end == start {
            // `max_part` is smaller than the character at `start`: take it whole.
            end = start + 1;
            while end < len && !json.is_char_boundary(end) {
                end += 1;
            }
        }
        pieces.push(&json[start..end]);
        start = end;
    }

    let total_parts = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
    let transition_id = len.to_string();
    pieces
        .into_iter()
        .zip(0u32..)
        .map(|(piece, part_number)| ServerMessage::TransitionChunk {
            chunk: piece.to_owned(),
            part_number,
            total_parts,
            transition_id: transition_id.clone(),
        })
        .collect()
}

impl Serialize for ServerMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", self.type_name())?;
        match self {
            ServerMessage::Transition {
                start_version,
                end_version,
                modifications,
                client_clock_skew,
                server_ts,
            } => {
                map.serialize_entry("startVersion", start_version)?;
                map.serialize_entry("endVersion", end_version)?;
                map.serialize_entry("modifications", modifications)?;
                if let Some(skew) = client_clock_skew {
                    map.serialize_entry("clientClockSkew", skew)?;
                }
                if let Some(ts) = server_ts {
                    map.serialize_entry("serverTs", ts)?;
                }
            }
            ServerMessage::TransitionChunk {
                chunk,
                part_number,
                total_parts,
                transition_id,
            } => {
                map.serialize_entry("chunk", chunk)?;
                map.serialize_entry("partNumber", part_number)?;
                map.serialize_entry("totalParts", total_parts)?;
                map.serialize_entry("transitionId", transition_id)?;
            }
            ServerMessage::MutationResponse { request_id, result } => {
                map.serialize_entry("requestId", request_id)?;
                match result {
                    Ok(success) => {
                        map.serialize_entry("success", &true)?;
                        map.serialize_entry("result", &success.value)?;
                        map.serialize_entry("ts", &success.ts)?;
                        map.serialize_entry("logLines", &success.log_lines)?;
                    }
                    Err(failure) => {
                        map.serialize_entry("success", &false)?;
                        map.serialize_entry("result", &failure.error_message)?;
                        map.serialize_entry("ts", &())?;
                        serialize_failure_tail(&mut map, failure)?;
                    }
                }
            }
            ServerMessage::ActionResponse { request_id, result } => {
                map.serialize_entry("requestId", request_id)?;
                match result {
                    Ok(success) => {
                        map.serialize_entry("success", &true)?;
                        map.serialize_entry("result", &success.value)?;
                        map.serialize_entry("logLines", &success.log_lines)?;
                    }
                    Err(failure) => {
                        map.serialize_entry("success", &false)?;
                        map.serialize_entry("result", &failure.error_message)?;
                        serialize_failure_tail(&mut map, failure)?;
                    }
                }
            }
            ServerMessage::AuthError {
                error,
                base_version,
                auth_update_attempted,
            } => {
                map.serialize_entry("error", error)?;
                map.serialize_entry("baseVersion", base_version)?;
                map.serialize_entry("authUpdateAttempted", auth_update_attempted)?;
            }
            ServerMessage::FatalError { error } => {
                map.serialize_entry("error", error)?;
            }
            ServerMessage::Ping => {}
        }
        map.end()
    }
}

fn serialize_failure_tail<M: SerializeMap>(
    map: &mut M,
    failure: &FunctionFailure,
) -> Result<(), M::Error> {
    map.serialize_entry("logLines", &failure.log_lines)?;
    if let Some(data) = &failure.error_data {
        map.serialize_entry("errorData", data)?;
    }
    Ok(())
}

/// Deserializes a field that is present (even as `null`) into `Some`.
fn de_present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The raw wire shape, converted into [`ServerMessage`] with consistency checks.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum ServerMessageWire {
    #[serde(rename_all = "camelCase")]
    Transition {
        start_version: StateVersion,
        end_version: StateVersion,
        modifications: Vec<StateModification>,
        #[serde(default)]
        client_clock_skew: Option<i64>,
        #[serde(default)]
        server_ts: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    TransitionChunk {
        chunk: String,
        part_number: u32,
        total_parts: u32,
        transition_id: String,
    },
    #[serde(rename_all = "camelCase")]
    MutationResponse {
        request_id: u32,
        success: bool,
        result: Value,
        #[serde(default)]
        ts: Option<WireTs>,
        log_lines: Vec<String>,
        #[serde(default, deserialize_with = "de_present")]
        error_data: Option<Value>,
    },
    #[serde(rename_all = "camelCase")]
    ActionResponse {
        request_id: u32,
        success: bool,
        result: Value,
        log_lines: Vec<String>,
        #[serde(default, deserialize_with = "de_present")]
        error_data: Option<Value>,
    },
    #[serde(rename_all = "camelCase")]
    AuthError {
        error: String,
        base_version: u32,
        auth_update_attempted: bool,
    },
    FatalError {
        error: String,
    },
    Ping,
}

fn failure_from_wire(
    kind: &str,
    result: Value,
    log_lines: Vec<String>,
    error_data: Option<Value>,
) -> Result<FunctionFailure, String> {
    match result {
        Value::String(error_message) => Ok(FunctionFailure {
            error_message,
            error_data,
            log_lines,
        }),
        other => Err(format!(
            "failed {kind} must carry the error message string as `result`, got {}",
            crate::client::describe(&other)
        )),
    }
}

impl TryFrom<ServerMessageWire> for ServerMessage {
    type Error = String;

    fn try_from(wire: ServerMessageWire) -> Result<Self, Self::Error> {
        Ok(match wire {
            ServerMessageWire::Transition {
                start_version,
                end_version,
                modifications,
                client_clock_skew,
                server_ts,
            } => ServerMessage::Transition {
                start_version,
                end_version,
                modifications,
                client_clock_skew,
                server_ts,
            },
            ServerMessageWire::TransitionChunk {
                chunk,
                part_number,
                total_parts,
                transition_id,
            } => ServerMessage::TransitionChunk {
                chunk,
                part_number,
                total_parts,
                transition_id,
            },
            ServerMessageWire::MutationResponse {
                request_id,
                success,
                result,
                ts,
                log_lines,
                error_data,
            } => {
                let result = if success {
                    let ts = ts.ok_or("successful MutationResponse requires `ts`")?;
                    Ok(MutationSuccess {
                        value: result,
                        ts,
                        log_lines,
                    })
                } else {
                    Err(failure_from_wire(
                        "MutationResponse",
                        result,
                        log_lines,
                        error_data,
                    )?)
                };
                ServerMessage::MutationResponse { request_id, result }
            }
            ServerMessageWire::ActionResponse {
                request_id,
                success,
                result,
                log_lines,
                error_data,
            } => {
                let result = if success {
                    Ok(FunctionSuccess {
                        value: result,
                        log_lines,
                    })
                } else {
                    Err(failure_from_wire(
                        "ActionResponse",
                        result,
                        log_lines,
                        error_data,
                    )?)
                };
                ServerMessage::ActionResponse { request_id, result }
            }
            ServerMessageWire::AuthError {
                error,
                base_version,
                auth_update_attempted,
            } => ServerMessage::AuthError {
                error,
                base_version,
                auth_update_attempted,
            },
            ServerMessageWire::FatalError { error } => ServerMessage::FatalError { error },
            ServerMessageWire::Ping => ServerMessage::Ping,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reassemble(parts: &[ServerMessage]) -> String {
        let mut out = String::new();
        let n = parts.len();
        for (i, part) in parts.iter().enumerate() {
            match part {
                ServerMessage::TransitionChunk {
                    chunk,
                    part_number,
                    total_parts,
                    transition_id,
                } => {
                    assert_eq!(*part_number as usize, i);
                    assert_eq!(*total_parts as usize, n);
                    assert_eq!(transition_id, &parts_len(parts).to_string());
                    out.push_str(chunk);
                }
                other => panic!("not a chunk: {other:?}"),
            }
        }
        out
    }

    fn parts_len(parts: &[ServerMessage]) -> usize {
        parts
            .iter()
            .map(|p| match p {
                ServerMessage::TransitionChunk { chunk, .. } => chunk.len(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn split_ascii() {
        let json = "abcdefghij".to_string();
        let parts = split_transition(json.clone(), 3);
        assert_eq!(parts.len(), 4);
        assert_eq!(reassemble(&parts), json);
        let ServerMessage::TransitionChunk { transition_id, .. } = &parts[0] else {
            panic!()
        };
        assert_eq!(transition_id, "10");
    }

    #[test]
    fn split_respects_char_boundaries() {
        let json = "aé🦀bñ中".repeat(50);
        for max in [1, 2, 3, 4, 5, 7, 100, 10_000] {
            let parts = split_transition(json.clone(), max);
            for part in &parts {
                let ServerMessage::TransitionChunk { chunk, .. } = part else {
                    panic!()
                };
                assert!(!chunk.is_empty());
                assert!(chunk.len() <= max.max(4));
            }
            assert_eq!(reassemble(&parts), json);
        }
        assert!(split_transition(String::new(), 10).is_empty());
        assert_eq!(split_transition("x".into(), 0).len(), 1);
    }

    /// A Transition carrying one `QueryUpdated` with `value`.
    fn transition(value: QueryValue) -> ServerMessage {
        ServerMessage::Transition {
            start_version: StateVersion::initial(),
            end_version: StateVersion {
                query_set: 1,
                identity: 0,
                ts: WireTs(5),
            },
            modifications: vec![StateModification::QueryUpdated {
                query_id: 0,
                value,
                log_lines: vec![],
                journal: None,
            }],
            client_clock_skew: None,
            server_ts: None,
        }
    }

    #[test]
    fn a_serialized_query_value_writes_the_same_frame_as_a_parsed_one() {
        let json =
            serde_json::json!([{"_id": "m0", "n": {"$integer": "AQAAAAAAAAA="}}, 1.5, "x\"y"]);
        let raw: Arc<RawValue> = serde_json::value::to_raw_value(&json).unwrap().into();
        let text = transition(QueryValue::Serialized(raw.clone())).to_json_string();
        assert_eq!(text, transition(json.clone().into()).to_json_string());
        // A client decodes it to the parsed value, equal to both forms.
        let decoded: ServerMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(decoded, transition(json.into()));
        assert_eq!(decoded, transition(QueryValue::Serialized(raw)));
        assert_ne!(decoded, transition(serde_json::json!([]).into()));
    }

    #[test]
    fn to_frames_only_splits_large_transitions() {
        let t = transition(Value::String("x".repeat(1000)).into());
        let whole = t.to_json_string();
        assert_eq!(t.to_frames(usize::MAX), vec![whole.clone()]);
        let frames = t.to_frames(100);
        assert!(frames.len() > 1);
        let parts: Vec<ServerMessage> = frames
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect();
        let joined = reassemble(&parts);
        assert_eq!(joined, whole);
        assert_eq!(serde_json::from_str::<ServerMessage>(&joined).unwrap(), t);
        // Non-Transition messages are never split.
        let fatal = ServerMessage::FatalError {
            error: "x".repeat(1000),
        };
        assert_eq!(fatal.to_frames(10).len(), 1);
    }
}
