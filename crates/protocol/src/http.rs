//! HTTP API envelopes: request bodies of `/api/query|mutation|action|function`
//! and `/api/run/{path}`, the `format` parameter, and response bodies.
//!
//! Function outcomes are answered with HTTP 200 and
//! `{"status":"success","value":…,"logLines":[…]}` or
//! `{"status":"error","errorMessage":…,"errorData"?:…,"logLines":[…]}`
//! (see [`HttpFunctionResponse`]). Non-function errors (bad path, bad body, auth)
//! use a 4xx/5xx status with [`http_error_body`]: `{"code":…,"message":…}`.
//!
//! Parse bodies with [`parse_json_with_limits`](crate::parse_json_with_limits)
//! to get the same size and nesting limits as the WebSocket path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::describe;
use crate::error::ProtocolError;
use crate::ts::WireTs;

/// Body of `POST /api/query`, `/api/mutation`, `/api/action`, `/api/function`
/// and `/api/query_at_ts`, and one entry of `/api/query_batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpFunctionRequest {
    /// The function path as sent (NOT canonicalized; `"messages"` means
    /// `messages:default`). Canonicalize with
    /// [`canonicalize_udf_path`](crate::canonicalize_udf_path).
    pub path: String,
    /// An args object, or a legacy one-element array holding it (the official
    /// HTTP client sends `[{…}]`). Absent means `{}`. See
    /// [`args_object`](HttpFunctionRequest::args_object).
    #[serde(default = "empty_object")]
    pub args: Value,
    /// Value format of args and result; see [`ValueFormat`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Component path (`/api/function`; internal use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_path: Option<String>,
    /// Snapshot timestamp (`/api/query_at_ts` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<WireTs>,
}

impl HttpFunctionRequest {
    /// The args object: `args` itself if it is an object, or the single object
    /// of a legacy one-element array. Anything else is `BadRequest`.
    pub fn args_object(&self) -> Result<Value, ProtocolError> {
        args_to_object(&self.args).map(|obj| Value::Object(obj.clone()))
    }

    /// Like [`args_object`](Self::args_object), consuming the request to avoid a copy.
    pub fn into_args_object(self) -> Result<Value, ProtocolError> {
        args_to_object(&self.args)?;
        Ok(match self.args {
            Value::Array(mut items) => items.swap_remove(0),
            other => other,
        })
    }

    /// The requested [`ValueFormat`], or `default` when `format` is absent.
    pub fn value_format(&self, default: ValueFormat) -> Result<ValueFormat, ProtocolError> {
        ValueFormat::parse_or(self.format.as_deref(), default)
    }
}

/// Body of `POST /api/query_batch`: `{"queries":[{path,args,format},…]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpQueryBatchRequest {
    /// The queries, all to be run at one timestamp.
    pub queries: Vec<HttpFunctionRequest>,
}

/// Body of `POST /api/run/{module/path/function}`: `{"args":{…},"format":"json"}`.
/// Both fields are optional; the default format of this endpoint is `json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRunRequest {
    /// The args object (or a legacy one-element array); absent means `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Value format; see [`ValueFormat`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl HttpRunRequest {
    /// The args object; `{}` when `args` is absent or `null`.
    pub fn args_object(&self) -> Result<Value, ProtocolError> {
        match &self.args {
            None | Some(Value::Null) => Ok(empty_object()),
            Some(args) => args_to_object(args).map(|obj| Value::Object(obj.clone())),
        }
    }

    /// The requested [`ValueFormat`]; [`ValueFormat::Json`] when absent.
    pub fn value_format(&self) -> Result<ValueFormat, ProtocolError> {
        ValueFormat::parse_or(self.format.as_deref(), ValueFormat::Json)
    }
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn args_to_object(args: &Value) -> Result<&Map<String, Value>, ProtocolError> {
    match args {
        Value::Object(obj) => Ok(obj),
        Value::Array(items) => match items.as_slice() {
            [Value::Object(obj)] => Ok(obj),
            [other] => Err(ProtocolError::bad_request(format!(
                "`args` must be an object (or an array holding one object); the array holds {}",
                describe(other)
            ))),
            _ => Err(ProtocolError::bad_request(format!(
                "`args` must be an object (or an array holding one object); got an array of {} elements",
                items.len()
            ))),
        },
        other => Err(ProtocolError::bad_request(format!(
            "`args` must be an object (or an array holding one object); got {}",
            describe(other)
        ))),
    }
}

/// How values are written in HTTP requests and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueFormat {
    /// Convex-encoded JSON (`$integer`, `$float`, `$bytes`); lossless.
    /// Wire names `"convex_encoded_json"` and `"convex_json"`.
    ConvexEncodedJson,
    /// Plain ("clean") JSON: int64 as decimal string, bytes as base64, special
    /// floats as strings; lossy. Wire names `"json"` and `"convex_clean_json"`.
    Json,
}

impl ValueFormat {
    /// Parses a `format` value. `"export_json"` and unknown names are
    /// `BadRequest`.
    pub fn parse(name: &str) -> Result<ValueFormat, ProtocolError> {
        match name {
            "convex_encoded_json" | "convex_json" => Ok(ValueFormat::ConvexEncodedJson),
            "json" | "convex_clean_json" => Ok(ValueFormat::Json),
            "export_json" => Err(ProtocolError::bad_request(
                "format \"export_json\" is not supported; use \"json\" or \"convex_encoded_json\"",
            )),
            other => {
                let mut shown: String = other.chars().take(40).collect();
                if shown.len() < other.len() {
                    shown.push('…');
                }
                Err(ProtocolError::bad_request(format!(
                    "unknown format {shown:?}; expected \"json\" or \"convex_encoded_json\""
                )))
            }
        }
    }

    /// Parses `name` if present, otherwise returns `default`.
    pub fn parse_or(
        name: Option<&str>,
        default: ValueFormat,
    ) -> Result<ValueFormat, ProtocolError> {
        name.map_or(Ok(default), ValueFormat::parse)
    }

    /// The canonical wire name: `"convex_encoded_json"` or `"json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueFormat::ConvexEncodedJson => "convex_encoded_json",
            ValueFormat::Json => "json",
        }
    }
}

impl fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ValueFormat {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ValueFormat::parse(s)
    }
}

/// The outcome of a function call over HTTP (always sent with status 200).
#[derive(Debug, Clone, PartialEq)]
pub enum HttpFunctionResponse {
    /// `{"status":"success","value":…,"logLines":[…]}`.
    Success {
        /// The result, already in the requested [`ValueFormat`].
        value: Value,
        /// Console output of the run.
        log_lines: Vec<String>,
    },
    /// `{"status":"error","errorMessage":…,"errorData"?:…,"logLines":[…]}`.
    Error {
        /// The error message.
        error_message: String,
        /// `ConvexError` data; the key is omitted when `None`.
        error_data: Option<Value>,
        /// Console output of the run.
        log_lines: Vec<String>,
    },
}

impl HttpFunctionResponse {
    /// The body as a JSON value.
    pub fn to_json_value(&self) -> Value {
        match self {
            HttpFunctionResponse::Success { value, log_lines } => {
                http_success_body(value.clone(), log_lines)
            }
            HttpFunctionResponse::Error {
                error_message,
                error_data,
                log_lines,
            } => http_function_error_body(error_message, error_data.clone(), log_lines),
        }
    }

    /// The body as JSON text.
    pub fn to_json_string(&self) -> String {
        self.to_json_value().to_string()
    }
}

/// `{"status":"success","value":<value>,"logLines":[…]}`.
pub fn http_success_body(value: Value, log_lines: &[String]) -> Value {
    json!({
        "status": "success",
        "value": value,
        "logLines": log_lines,
    })
}

/// `{"status":"error","errorMessage":…,"errorData":…,"logLines":[…]}`, with the
/// `errorData` key omitted when `error_data` is `None`.
pub fn http_function_error_body(
    error_message: &str,
    error_data: Option<Value>,
    log_lines: &[String],
) -> Value {
    let mut body = Map::new();
    body.insert("status".into(), Value::from("error"));
    body.insert("errorMessage".into(), Value::from(error_message));
    if let Some(data) = error_data {
        body.insert("errorData".into(), data);
    }
    body.insert("logLines".into(), Value::from(log_lines.to_vec()));
    Value::Object(body)
}

/// `{"code":<code>,"message":<message>}`: the body of a non-function error
/// (4xx/5xx), e.g. `400 {"code":"BadConvexFunctionIdentifier",…}`.
pub fn http_error_body(code: &str, message: &str) -> Value {
    json!({ "code": code, "message": message })
}

impl ProtocolError {
    /// This error as an HTTP error body: `{"code":…,"message":…}`.
    pub fn to_http_body(&self) -> Value {
        http_error_body(self.code(), self.message())
    }
}

/// `{"ts":"<base64 u64>"}`: the response of `POST /api/query_ts`.
pub fn http_query_ts_body(ts: WireTs) -> Value {
    json!({ "ts": ts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::parse_json_with_limits;

    const MAX: usize = 1 << 20;

    #[test]
    fn function_request_as_official_client_sends_it() {
        let req: HttpFunctionRequest = parse_json_with_limits(
            br#"{"path":"messages:send","format":"convex_encoded_json","args":[{"body":"h"}]}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(req.path, "messages:send");
        assert_eq!(req.args_object().unwrap(), json!({"body":"h"}));
        assert_eq!(
            req.value_format(ValueFormat::Json).unwrap(),
            ValueFormat::ConvexEncodedJson
        );
        assert_eq!(req.into_args_object().unwrap(), json!({"body":"h"}));
    }

    #[test]
    fn function_request_documented_shapes() {
        let req: HttpFunctionRequest = parse_json_with_limits(
            br#"{"path":"messages:list","args":{"a":1},"format":"json"}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(req.args_object().unwrap(), json!({"a":1}));
        assert_eq!(
            req.value_format(ValueFormat::ConvexEncodedJson).unwrap(),
            ValueFormat::Json
        );

        let req: HttpFunctionRequest = parse_json_with_limits(br#"{"path":"m"}"#, MAX).unwrap();
        assert_eq!(req.args_object().unwrap(), json!({}));
        assert_eq!(
            req.value_format(ValueFormat::Json).unwrap(),
            ValueFormat::Json
        );

        let req: HttpFunctionRequest = parse_json_with_limits(
            br#"{"componentPath":"c","path":"m:f","format":"convex_encoded_json","args":{}}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(req.component_path.as_deref(), Some("c"));

        let req: HttpFunctionRequest =
            parse_json_with_limits(br#"{"path":"m:f","args":[{}],"ts":"wGL8O7MV6xg="}"#, MAX)
                .unwrap();
        assert_eq!(req.ts.map(|t| t.encode()).as_deref(), Some("wGL8O7MV6xg="));

        for bad in [
            r#"{"path":"m","args":[]}"#,
            r#"{"path":"m","args":[{},{}]}"#,
            r#"{"path":"m","args":[1]}"#,
            r#"{"path":"m","args":"x"}"#,
            r#"{"path":"m","args":null}"#,
        ] {
            let req: HttpFunctionRequest = parse_json_with_limits(bad.as_bytes(), MAX).unwrap();
            assert_eq!(req.args_object().unwrap_err().code(), "BadRequest", "{bad}");
            assert!(req.into_args_object().is_err());
        }
        assert!(parse_json_with_limits::<HttpFunctionRequest>(br#"{"args":{}}"#, MAX).is_err());
        assert!(parse_json_with_limits::<HttpFunctionRequest>(br#"{"path":1}"#, MAX).is_err());
    }

    #[test]
    fn run_request() {
        let req: HttpRunRequest = parse_json_with_limits(br#"{}"#, MAX).unwrap();
        assert_eq!(req.args_object().unwrap(), json!({}));
        assert_eq!(req.value_format().unwrap(), ValueFormat::Json);
        let req: HttpRunRequest =
            parse_json_with_limits(br#"{"args":{"x":"y"},"format":"convex_json"}"#, MAX).unwrap();
        assert_eq!(req.args_object().unwrap(), json!({"x":"y"}));
        assert_eq!(req.value_format().unwrap(), ValueFormat::ConvexEncodedJson);
        let req: HttpRunRequest = parse_json_with_limits(br#"{"args":[1,2]}"#, MAX).unwrap();
        assert!(req.args_object().is_err());
    }

    #[test]
    fn batch_request() {
        let req: HttpQueryBatchRequest = parse_json_with_limits(
            br#"{"queries":[{"path":"a:b","args":{}},{"path":"c","args":[{}],"format":"json"}]}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(req.queries.len(), 2);
    }

    #[test]
    fn formats() {
        for (name, f) in [
            ("convex_encoded_json", ValueFormat::ConvexEncodedJson),
            ("convex_json", ValueFormat::ConvexEncodedJson),
            ("json", ValueFormat::Json),
            ("convex_clean_json", ValueFormat::Json),
        ] {
            assert_eq!(name.parse::<ValueFormat>().unwrap(), f);
        }
        let err = ValueFormat::parse("export_json").unwrap_err();
        assert!(err.message().contains("export_json"));
        assert!(ValueFormat::parse("JSON").is_err());
        assert!(ValueFormat::parse("").is_err());
        assert_eq!(ValueFormat::Json.to_string(), "json");
        assert_eq!(
            ValueFormat::ConvexEncodedJson.as_str(),
            "convex_encoded_json"
        );
    }

    #[test]
    fn response_bodies() {
        let ok = HttpFunctionResponse::Success {
            value: json!([1, {"$integer": "AQAAAAAAAAA="}]),
            log_lines: vec!["[LOG] 'hi'".into()],
        };
        assert_eq!(
            ok.to_json_string(),
            r#"{"status":"success","value":[1,{"$integer":"AQAAAAAAAAA="}],"logLines":["[LOG] 'hi'"]}"#
        );
        let err = HttpFunctionResponse::Error {
            error_message: "boom".into(),
            error_data: None,
            log_lines: vec![],
        };
        assert_eq!(
            err.to_json_string(),
            r#"{"status":"error","errorMessage":"boom","logLines":[]}"#
        );
        let convex_err = HttpFunctionResponse::Error {
            error_message: "nope".into(),
            error_data: Some(json!({"code":"NOPE"})),
            log_lines: vec![],
        };
        assert_eq!(
            convex_err.to_json_string(),
            r#"{"status":"error","errorMessage":"nope","errorData":{"code":"NOPE"},"logLines":[]}"#
        );
        let null_data = http_function_error_body("x", Some(Value::Null), &[]);
        assert_eq!(
            null_data.to_string(),
            r#"{"status":"error","errorMessage":"x","errorData":null,"logLines":[]}"#
        );
        assert_eq!(
            ProtocolError::bad_function_identifier("bad")
                .to_http_body()
                .to_string(),
            r#"{"code":"BadConvexFunctionIdentifier","message":"bad"}"#
        );
        assert_eq!(
            http_query_ts_body(WireTs(0)).to_string(),
            r#"{"ts":"AAAAAAAAAAA="}"#
        );
    }
}
