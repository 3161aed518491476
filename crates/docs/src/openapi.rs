//! The OpenAPI 3.1 document of a registry's public functions.
//!
//! * one `POST /api/run/{dir/file/export}` operation per public function:
//!   `operationId` from the path ([`operation_id`]), summary and description
//!   from the doc comment, request body `{args, format?}` with the args
//!   validator's JSON Schema, a 200 response that is the Convex envelope
//!   (`{"status":"success","value",…}` with the returns validator's schema,
//!   or `{"status":"error","errorMessage","errorData"?,…}`), and the doc
//!   comment's examples;
//! * `POST /api/query`, `/api/mutation`, `/api/action` (`{path, args,
//!   format?}`, as `ConvexHttpClient` sends them), whose body is one of the
//!   functions of that kind;
//! * 4xx responses with the `{code, message}` body;
//! * optional bearer auth (`components.securitySchemes.bearerAuth`):
//!   anonymous calls are allowed, a bad token is 401.
//!
//! Arguments are always Convex-encoded JSON. Results come in the requested
//! `format` (default `json`), in which int64 is a decimal string and bytes
//! are base64; where a returns validator contains those, the value schema
//! accepts both encodings. The examples are Convex-encoded JSON (the same as
//! plain JSON unless int64, bytes or special floats occur).

use std::collections::{BTreeMap, BTreeSet};

use runtime::{FunctionKind, FunctionSpec, Registry, Visibility};
use serde_json::{Map, Value as Json, json};
use values::{Validator, Value};

use crate::standard::{ExampleLabel, FunctionDoc};

/// Options of [`openapi`].
#[derive(Debug, Clone)]
pub struct OpenApiOptions {
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// `servers[].url` (may be empty).
    pub servers: Vec<String>,
}

impl Default for OpenApiOptions {
    fn default() -> Self {
        Self {
            title: "Connvo API".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            servers: vec!["http://127.0.0.1:3210".into()],
        }
    }
}

/// The path of a function's `/api/run` operation: `testing/messages:list`
/// → `/api/run/testing/messages/list`.
pub fn run_route(path: &str) -> String {
    format!("/api/run/{}", path.replace(':', "/"))
}

/// A function path as a lowerCamelCase identifier: `testing/messages:list`
/// → `testingMessagesList`.
pub fn operation_id(path: &str) -> String {
    let mut out = String::new();
    for (i, word) in path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            if i == 0 {
                out.push(first.to_ascii_lowercase());
            } else {
                out.push(first.to_ascii_uppercase());
            }
            out.extend(chars);
        }
    }
    out
}

/// The tag of a function: its first path segment (`testing/messages:list`
/// → `testing`).
fn tag_of(path: &str) -> &str {
    path.split(['/', ':']).next().unwrap_or(path)
}

fn contains_encoded_only(v: &Validator) -> bool {
    match v {
        Validator::Int64 | Validator::Bytes => true,
        Validator::Literal(value) => matches!(value, Value::Int64(_) | Value::Bytes(_)),
        Validator::Array(inner) | Validator::Optional(inner) => contains_encoded_only(inner),
        Validator::Record(k, v) => contains_encoded_only(k) || contains_encoded_only(v),
        Validator::Object(fields) => fields.iter().any(|f| contains_encoded_only(&f.validator)),
        Validator::Union(members) => members.iter().any(contains_encoded_only),
        _ => false,
    }
}

/// The JSON Schema of values in the `json` ("clean") format: like
/// [`Validator::json_schema`] but int64 as a decimal string and bytes as a
/// base64 string.
pub fn clean_json_schema(v: &Validator) -> Json {
    match v {
        Validator::Int64 => json!({"type": "string", "pattern": "^-?[0-9]+$",
            "description": "A 64-bit integer as a decimal string"}),
        Validator::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Validator::Literal(value) => json!({ "const": value.to_clean_json() }),
        Validator::Array(item) => json!({"type": "array", "items": clean_json_schema(item)}),
        Validator::Optional(inner) => clean_json_schema(inner),
        Validator::Union(members) => {
            json!({"anyOf": members.iter().map(clean_json_schema).collect::<Vec<_>>()})
        }
        Validator::Record(keys, values) => {
            let mut schema = v.json_schema();
            if let Some(obj) = schema.as_object_mut() {
                obj.insert("additionalProperties".into(), clean_json_schema(values));
                if **keys != Validator::String {
                    obj.insert("propertyNames".into(), clean_json_schema(keys));
                }
            }
            schema
        }
        Validator::Object(fields) => {
            let mut schema = v.json_schema();
            if let Some(props) = schema.get_mut("properties").and_then(Json::as_object_mut) {
                for f in fields {
                    props.insert(f.name.clone(), clean_json_schema(&f.validator));
                }
            }
            schema
        }
        _ => v.json_schema(),
    }
}

/// The schema of a returned value in either format.
fn value_schema(v: &Validator) -> Json {
    if contains_encoded_only(v) {
        json!({"anyOf": [clean_json_schema(v), v.json_schema()]})
    } else {
        v.json_schema()
    }
}

fn success_schema(value: Json) -> Json {
    json!({
        "type": "object",
        "title": "FunctionSuccess",
        "required": ["status", "value"],
        "properties": {
            "status": {"const": "success"},
            "value": value,
            "logLines": {"$ref": "#/components/schemas/LogLines"},
        },
        "additionalProperties": false,
    })
}

fn envelope(value: Json) -> Json {
    json!({"oneOf": [success_schema(value), {"$ref": "#/components/schemas/FunctionError"}]})
}

fn required_args(args: &Validator) -> bool {
    match args {
        Validator::Object(fields) => fields
            .iter()
            .any(|f| !f.optional && !f.validator.is_optional()),
        _ => true,
    }
}

fn error_responses() -> Json {
    json!({
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/InvalidToken"},
        "404": {"$ref": "#/components/responses/NotFound"},
        "413": {"$ref": "#/components/responses/TooLarge"},
    })
}

struct Documented<'a> {
    spec: &'a FunctionSpec,
    doc: FunctionDoc,
}

impl Documented<'_> {
    fn summary(&self) -> String {
        self.doc
            .summary
            .clone()
            .unwrap_or_else(|| format!("Runs {}", self.spec.path))
    }

    fn examples(&self, labels: &[ExampleLabel], wrap: impl Fn(&Json) -> Json) -> Option<Json> {
        let mut out = Map::new();
        for label in labels {
            if let Some(e) = self.doc.example(label) {
                out.insert(
                    label.as_str().to_owned(),
                    json!({"summary": label.as_str(), "value": wrap(&e.json)}),
                );
            }
        }
        (!out.is_empty()).then_some(Json::Object(out))
    }
}

fn request_labels() -> [ExampleLabel; 2] {
    [ExampleLabel::Request, ExampleLabel::RequestError]
}

fn response_labels() -> [ExampleLabel; 3] {
    [
        ExampleLabel::Response,
        ExampleLabel::ResponseError,
        ExampleLabel::ResponseCache,
    ]
}

fn with_examples(mut media: Json, examples: Option<Json>) -> Json {
    if let (Some(obj), Some(examples)) = (media.as_object_mut(), examples) {
        obj.insert("examples".into(), examples);
    }
    media
}

fn run_operation(f: &Documented<'_>, operation_id: String) -> Json {
    let spec = f.spec;
    let mut body_props = Map::new();
    body_props.insert("args".into(), spec.args.json_schema());
    body_props.insert(
        "format".into(),
        json!({"$ref": "#/components/schemas/ValueFormat"}),
    );
    let mut body = json!({
        "type": "object",
        "properties": Json::Object(body_props),
        "additionalProperties": false,
    });
    if required_args(&spec.args) {
        body["required"] = json!(["args"]);
    }
    let mut description = f.doc.description.clone().unwrap_or_default();
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str(&format!(
        "Convex function `{}` ({}).",
        spec.path,
        spec.kind.as_str()
    ));
    let mut responses = error_responses();
    responses["200"] = json!({
        "description": "The function ran: its value, or the error it raised",
        "content": {"application/json": with_examples(
            json!({"schema": envelope(value_schema(&spec.returns))}),
            f.examples(&response_labels(), Json::clone),
        )},
    });
    json!({
        "operationId": operation_id,
        "summary": f.summary(),
        "description": description,
        "tags": [tag_of(&spec.path)],
        "x-convex-path": spec.path,
        "x-convex-kind": spec.kind.as_str(),
        "requestBody": {
            "required": required_args(&spec.args),
            "content": {"application/json": with_examples(
                json!({"schema": body}),
                f.examples(&request_labels(), Json::clone),
            )},
        },
        "responses": responses,
    })
}

fn kind_operation(kind: FunctionKind, functions: &[&Documented<'_>]) -> Json {
    let name = kind.as_str();
    let members: Vec<Json> = functions
        .iter()
        .map(|f| {
            let mut schema = json!({
                "type": "object",
                "title": f.spec.path,
                "properties": {
                    "path": {"const": f.spec.path},
                    "args": f.spec.args.json_schema(),
                    "format": {"$ref": "#/components/schemas/ValueFormat"},
                },
                "additionalProperties": false,
            });
            schema["required"] = if required_args(&f.spec.args) {
                json!(["path", "args"])
            } else {
                json!(["path"])
            };
            schema
        })
        .collect();
    let body = if members.is_empty() {
        json!({
            "type": "object",
            "required": ["path"],
            "properties": {
                "path": {"type": "string"},
                "args": {"type": "object"},
                "format": {"$ref": "#/components/schemas/ValueFormat"},
            },
        })
    } else {
        json!({"oneOf": members})
    };
    let mut values: Vec<Json> = Vec::new();
    for f in functions {
        let v = value_schema(&f.spec.returns);
        if !values.contains(&v) {
            values.push(v);
        }
    }
    let value = match values.len() {
        0 => json!({}),
        1 => values.remove(0),
        _ if values.contains(&json!({})) => json!({}),
        _ => json!({"anyOf": values}),
    };
    let mut request_examples = Map::new();
    let mut response_examples = Map::new();
    for f in functions {
        for label in request_labels() {
            if let Some(e) = f.doc.example(&label) {
                let mut body = json!({"path": f.spec.path});
                if let Some(args) = e.json.get("args") {
                    body["args"] = args.clone();
                }
                request_examples.insert(
                    format!("{} {}", f.spec.path, label),
                    json!({"summary": format!("{} ({label})", f.spec.path), "value": body}),
                );
            }
        }
        for label in response_labels() {
            if let Some(e) = f.doc.example(&label) {
                response_examples.insert(
                    format!("{} {}", f.spec.path, label),
                    json!({"summary": format!("{} ({label})", f.spec.path), "value": e.json}),
                );
            }
        }
    }
    let examples = |m: Map<String, Json>| (!m.is_empty()).then_some(Json::Object(m));
    let mut responses = error_responses();
    responses["200"] = json!({
        "description": format!("The {name} ran: its value, or the error it raised"),
        "content": {"application/json": with_examples(
            json!({"schema": envelope(value)}),
            examples(response_examples),
        )},
    });
    json!({
        "operationId": format!("run{}{}", name[..1].to_uppercase(), &name[1..]),
        "summary": format!("Runs a public {name} by path"),
        "description": format!(
            "The form `ConvexHttpClient` uses: `{{path, args, format}}`. The path is \
             `dir/file:export` (`.js` and a missing `:default` are accepted). Calling a \
             function of another kind is a 400; an unknown or internal function is a 404 \
             `FUNCTION_NOT_FOUND`."
        ),
        "tags": ["Convex HTTP API"],
        "requestBody": {
            "required": true,
            "content": {"application/json": with_examples(
                json!({"schema": body}),
                examples(request_examples),
            )},
        },
        "responses": responses,
    })
}

fn components() -> Json {
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    let response = |description: &str| {
        json!({"description": description,
               "content": {"application/json": {"schema": error_body}}})
    };
    json!({
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A JWT from a configured provider (WorkOS AuthKit) or, on \
                    development servers, from `connvo dev-token`. Optional: without it the \
                    caller is anonymous; an invalid token is a 401 INVALID_TOKEN, never \
                    anonymous.",
            },
        },
        "schemas": {
            "ValueFormat": {
                "type": "string",
                "enum": ["json", "convex_encoded_json", "convex_json", "convex_clean_json"],
                "default": "json",
                "description": "Encoding of the returned value: `json` (int64 as a decimal \
                    string, bytes as base64) or `convex_encoded_json` (lossless \
                    `{\"$integer\"}`/`{\"$bytes\"}`/`{\"$float\"}` objects). Arguments are \
                    always Convex-encoded JSON.",
            },
            "LogLines": {"type": "array", "items": {"type": "string"},
                         "description": "Console output of the run"},
            "ErrorData": {
                "type": "object",
                "description": "Application error data (`ConvexError.data` in the client)",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Stable error code, e.g. FORBIDDEN"},
                    "message": {"type": "string"},
                    "statusCode": {"type": "integer", "description": "The HTTP status the code maps to"},
                    "metadata": {"description": "Structured details, when the error has them"},
                },
            },
            "FunctionError": {
                "type": "object",
                "title": "FunctionError",
                "required": ["status", "errorMessage"],
                "properties": {
                    "status": {"const": "error"},
                    "errorMessage": {"type": "string"},
                    "errorData": {"$ref": "#/components/schemas/ErrorData"},
                    "logLines": {"$ref": "#/components/schemas/LogLines"},
                },
                "additionalProperties": false,
            },
            "ErrorBody": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
        "responses": {
            "BadRequest": response("Malformed body, path, format or arguments, or a function of another kind"),
            "InvalidToken": response("The bearer token is invalid (INVALID_TOKEN)"),
            "NotFound": response("No public function at this path (FUNCTION_NOT_FOUND)"),
            "TooLarge": {"description": "The request body is larger than the server accepts"},
        },
    })
}

/// The OpenAPI 3.1 document of every public function of `registry`.
pub fn openapi(registry: &Registry, options: &OpenApiOptions) -> Json {
    let functions: Vec<Documented<'_>> = registry
        .functions()
        .filter(|s| s.visibility == Visibility::Public)
        .map(|spec| Documented {
            spec,
            doc: FunctionDoc::parse(&spec.doc).0,
        })
        .collect();
    let mut paths = Map::new();
    let mut ids = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for f in &functions {
        let mut id = operation_id(&f.spec.path);
        let base = id.clone();
        let mut n = 2;
        while !ids.insert(id.clone()) {
            id = format!("{base}{n}");
            n += 1;
        }
        tags.insert(tag_of(&f.spec.path).to_owned());
        paths.insert(
            run_route(&f.spec.path),
            json!({"post": run_operation(f, id)}),
        );
    }
    let mut by_kind: BTreeMap<FunctionKind, Vec<&Documented<'_>>> = BTreeMap::new();
    for f in &functions {
        by_kind.entry(f.spec.kind).or_default().push(f);
    }
    for kind in [
        FunctionKind::Query,
        FunctionKind::Mutation,
        FunctionKind::Action,
    ] {
        let list = by_kind.get(&kind).map(Vec::as_slice).unwrap_or_default();
        paths.insert(
            format!("/api/{}", kind.as_str()),
            json!({"post": kind_operation(kind, list)}),
        );
    }
    let mut tag_list: Vec<Json> = tags
        .into_iter()
        .map(|t| json!({"name": t, "description": format!("Functions under `{t}/`")}))
        .collect();
    tag_list.push(json!({"name": "Convex HTTP API",
        "description": "The generic endpoints the official Convex HTTP client uses"}));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": options.title,
            "version": options.version,
            "description": "The public queries, mutations and actions of Connvo Server. Every \
                function is `POST /api/run/{dir/file/export}` with `{\"args\": {…}}`; the \
                result is HTTP 200 with `{\"status\":\"success\",\"value\"}` or \
                `{\"status\":\"error\",\"errorMessage\",\"errorData\"}`. Other failures are \
                4xx with `{code, message}`. Live subscriptions use the WebSocket sync \
                protocol of the official `convex` client, not this HTTP API.",
        },
        "servers": options.servers.iter().map(|u| json!({"url": u})).collect::<Vec<_>>(),
        "security": [{}, {"bearerAuth": []}],
        "tags": tag_list,
        "paths": Json::Object(paths),
        "components": components(),
    })
}

#[cfg(test)]
mod tests {
    use runtime::{FunctionDef, QueryCtx};
    use values::v;

    use super::*;

    const DOC: &str = "@summary Gets a thing by its name\n@description Long enough description \
                       for the thing getter; no authorization.\n@example request\n```json\n\
                       {\"args\": {\"name\": \"a\"}}\n```\n@example response\n```json\n\
                       {\"status\": \"success\", \"value\": 1}\n```";

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.register(
            FunctionDef::new("things/get:byName", Visibility::Public)
                .args(v::object([("name", v::string())]))
                .returns(v::number())
                .doc(DOC)
                .query(|_ctx: QueryCtx, _a: Json| async move { Ok(1.0) }),
        );
        r.register(
            FunctionDef::new("things/get:count", Visibility::Public)
                .returns(v::int64())
                .query(|_ctx: QueryCtx, _a: Json| async move { Ok(1.0) }),
        );
        r.register(
            FunctionDef::new("things/get:secret", Visibility::Internal)
                .query(|_ctx: QueryCtx, _a: Json| async move { Ok(1.0) }),
        );
        r
    }

    #[test]
    fn ids_and_routes() {
        assert_eq!(operation_id("testing/messages:list"), "testingMessagesList");
        assert_eq!(operation_id("a/b_c:d-e"), "aBCDE");
        assert_eq!(
            run_route("testing/messages:list"),
            "/api/run/testing/messages/list"
        );
    }

    #[test]
    fn document_shape() {
        let spec = openapi(&registry(), &OpenApiOptions::default());
        assert_eq!(spec["openapi"], "3.1.0");
        let paths = spec["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/run/things/get/byName"));
        assert!(paths.contains_key("/api/run/things/get/count"));
        assert!(
            !paths.keys().any(|p| p.contains("secret")),
            "internal functions are hidden"
        );
        for kind in ["query", "mutation", "action"] {
            assert!(paths.contains_key(&format!("/api/{kind}")));
        }
        let op = &spec["paths"]["/api/run/things/get/byName"]["post"];
        assert_eq!(op["operationId"], "thingsGetByName");
        assert_eq!(op["summary"], "Gets a thing by its name");
        assert!(
            op["description"]
                .as_str()
                .unwrap()
                .contains("no authorization")
        );
        let media = &op["requestBody"]["content"]["application/json"];
        assert_eq!(media["schema"]["required"], json!(["args"]));
        assert_eq!(
            media["schema"]["properties"]["args"]["properties"]["name"],
            json!({"type": "string"})
        );
        assert_eq!(media["examples"]["request"]["value"]["args"]["name"], "a");
        let ok = &op["responses"]["200"]["content"]["application/json"];
        assert_eq!(
            ok["schema"]["oneOf"][0]["properties"]["value"],
            json!({"type": "number"})
        );
        assert_eq!(ok["examples"]["response"]["value"]["value"], 1);
        assert!(op["responses"]["401"].is_object());
        assert_eq!(
            spec["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
        // Undocumented functions fall back to their path; int64 values accept both formats.
        let count = &spec["paths"]["/api/run/things/get/count"]["post"];
        assert_eq!(count["summary"], "Runs things/get:count");
        assert_eq!(count["requestBody"]["required"], false);
        let value = &count["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"][0]
            ["properties"]["value"];
        assert_eq!(value["anyOf"][0]["type"], "string");
        assert_eq!(value["anyOf"][1]["required"], json!(["$integer"]));
        // The generic form lists both queries.
        let query = &spec["paths"]["/api/query"]["post"];
        let members = query["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
            .as_array()
            .unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(
            members[0]["properties"]["path"]["const"],
            "things/get:byName"
        );
        let mutation = &spec["paths"]["/api/mutation"]["post"];
        assert_eq!(
            mutation["requestBody"]["content"]["application/json"]["schema"]["properties"]["path"]
                ["type"],
            "string"
        );
    }

    #[test]
    fn clean_schemas() {
        let v = v::object([
            ("n", v::int64()),
            ("b", v::optional(v::bytes())),
            ("l", v::literal(2i64)),
            ("r", v::record(v::string(), v::array(v::int64()))),
            ("u", v::union([v::null(), v::int64()])),
        ]);
        let s = clean_json_schema(&v);
        assert_eq!(s["properties"]["n"]["type"], "string");
        assert_eq!(s["properties"]["b"]["contentEncoding"], "base64");
        assert_eq!(s["properties"]["l"]["const"], "2");
        assert_eq!(
            s["properties"]["r"]["additionalProperties"]["items"]["type"],
            "string"
        );
        assert_eq!(s["properties"]["u"]["anyOf"][1]["type"], "string");
        assert_eq!(s["required"], json!(["n", "l", "r", "u"]));
        assert!(!contains_encoded_only(&v::object([("a", v::string())])));
    }
}
