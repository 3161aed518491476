//! The validator: every rule of the standard over every public function.
//!
//! See the crate documentation for the rules and which of them are errors.

use std::collections::{BTreeMap, BTreeSet};

use runtime::{FunctionKind, FunctionSpec, Registry, Visibility};
use serde::Serialize;
use values::{Validator, Value};

use crate::standard::{Example, ExampleLabel, FunctionDoc, Severity};

/// Longest summary, exclusive: a summary must be shorter than this.
pub const MAX_SUMMARY_CHARS: usize = 100;
/// Shortest description, exclusive: a description must be longer than this.
pub const MIN_DESCRIPTION_CHARS: usize = 50;

/// The verbs a summary may start with (third person singular). A capitalised
/// first word ending in `s` that is missing here is a warning (extend the
/// list); any other first word is an error.
pub const VERBS: &[&str] = &[
    "Accepts",
    "Acknowledges",
    "Adds",
    "Aggregates",
    "Answers",
    "Applies",
    "Approves",
    "Archives",
    "Assigns",
    "Blocks",
    "Builds",
    "Calculates",
    "Cancels",
    "Changes",
    "Checks",
    "Cleans",
    "Clears",
    "Closes",
    "Completes",
    "Computes",
    "Concludes",
    "Confirms",
    "Connects",
    "Counts",
    "Creates",
    "Declines",
    "Decrements",
    "Deletes",
    "Demotes",
    "Denies",
    "Detects",
    "Disables",
    "Disconnects",
    "Dismisses",
    "Echoes",
    "Edits",
    "Enables",
    "Ends",
    "Enqueues",
    "Enters",
    "Expires",
    "Exports",
    "Extends",
    "Fails",
    "Fetches",
    "Finalizes",
    "Finds",
    "Flushes",
    "Generates",
    "Gets",
    "Grants",
    "Handles",
    "Hides",
    "Imports",
    "Increments",
    "Ingests",
    "Invites",
    "Joins",
    "Kicks",
    "Leaves",
    "Links",
    "Lists",
    "Loads",
    "Marks",
    "Matches",
    "Merges",
    "Migrates",
    "Mints",
    "Moves",
    "Mutes",
    "Notifies",
    "Opens",
    "Pages",
    "Pauses",
    "Pins",
    "Posts",
    "Prepares",
    "Processes",
    "Promotes",
    "Publishes",
    "Purges",
    "Rates",
    "Reacts",
    "Reads",
    "Records",
    "Refreshes",
    "Registers",
    "Rejects",
    "Removes",
    "Renames",
    "Replaces",
    "Replies",
    "Reports",
    "Requests",
    "Resets",
    "Restores",
    "Resumes",
    "Retrieves",
    "Returns",
    "Revokes",
    "Runs",
    "Saves",
    "Schedules",
    "Scores",
    "Searches",
    "Seeds",
    "Sends",
    "Sets",
    "Shares",
    "Starts",
    "Stops",
    "Stores",
    "Streams",
    "Submits",
    "Subscribes",
    "Summarizes",
    "Suspends",
    "Syncs",
    "Toggles",
    "Tracks",
    "Transcribes",
    "Transfers",
    "Triggers",
    "Unblocks",
    "Unlinks",
    "Unmutes",
    "Unpins",
    "Unsubscribes",
    "Updates",
    "Uploads",
    "Upserts",
    "Validates",
    "Verifies",
];

/// Words that show a description says who may call the function. A
/// description without any of them gets a warning.
const AUTHORIZATION_WORDS: &[&str] = &[
    "auth",
    "caller",
    "anonymous",
    "signed-in",
    "signed in",
    "permission",
    "admin",
    "owner",
    "identity",
    "token",
    "anyone",
];

/// One problem found by the validator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// The function's path (`dir/file:export`).
    pub path: String,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Finding {
    /// `path: severity: message`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.path, self.severity, self.message)
    }
}

/// What [`validate_with`] checks against besides the registry.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Paths covered by the example-alignment tests (see
    /// [`crate::aligned_paths`]).
    pub aligned: BTreeSet<String>,
}

/// Validates every public function of `registry` against the standard,
/// with the example-alignment list compiled into this crate.
pub fn validate(registry: &Registry) -> Vec<Finding> {
    validate_with(
        registry,
        &ValidateOptions {
            aligned: crate::aligned_paths(),
        },
    )
}

/// Validates every public function of `registry`. Findings are ordered by
/// path, errors first.
pub fn validate_with(registry: &Registry, options: &ValidateOptions) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut summaries: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for spec in registry.functions() {
        if spec.visibility != Visibility::Public {
            continue;
        }
        let doc = validate_function(spec, options, &mut findings);
        if let Some(summary) = doc.summary {
            summaries
                .entry(summary.to_lowercase())
                .or_default()
                .push(spec.path.clone());
        }
    }
    for paths in summaries.values().filter(|p| p.len() > 1) {
        for path in paths {
            let others: Vec<&str> = paths
                .iter()
                .filter(|p| *p != path)
                .map(String::as_str)
                .collect();
            findings.push(Finding {
                path: path.clone(),
                severity: Severity::Error,
                message: format!(
                    "duplicate summary: the same as {} (summaries must tell functions apart)",
                    others.join(", ")
                ),
            });
        }
    }
    findings.sort_by(|a, b| (&a.path, a.severity).cmp(&(&b.path, b.severity)));
    findings
}

/// Counts of a validation run and its findings, as written by
/// `connvo docs validate --file`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Public functions checked.
    pub functions: usize,
    /// Findings that are errors.
    pub errors: usize,
    /// Findings that are warnings.
    pub warnings: usize,
    /// Every finding.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Validates `registry` (see [`validate`]) and counts.
    pub fn new(registry: &Registry) -> Self {
        Self::from_findings(
            registry
                .functions()
                .filter(|s| s.visibility == Visibility::Public)
                .count(),
            validate(registry),
        )
    }

    /// A report over already computed findings.
    pub fn from_findings(functions: usize, findings: Vec<Finding>) -> Self {
        let errors = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        Self {
            functions,
            errors,
            warnings: findings.len() - errors,
            findings,
        }
    }

    /// Whether there are no errors.
    pub fn is_ok(&self) -> bool {
        self.errors == 0
    }
}

struct Sink<'a> {
    path: &'a str,
    findings: &'a mut Vec<Finding>,
}

impl Sink<'_> {
    fn push(&mut self, severity: Severity, message: impl Into<String>) {
        self.findings.push(Finding {
            path: self.path.to_owned(),
            severity,
            message: message.into(),
        });
    }

    fn error(&mut self, message: impl Into<String>) {
        self.push(Severity::Error, message);
    }

    fn warning(&mut self, message: impl Into<String>) {
        self.push(Severity::Warning, message);
    }
}

fn validate_function(
    spec: &FunctionSpec,
    options: &ValidateOptions,
    findings: &mut Vec<Finding>,
) -> FunctionDoc {
    let mut out = Sink {
        path: &spec.path,
        findings,
    };
    if !options.aligned.contains(&spec.path) {
        out.error(
            "no example-alignment test: add a case for this path to \
             crates/connvo/tests/doc_examples.rs (it updates crates/docs/aligned.txt)",
        );
    }
    if spec.doc.trim().is_empty() {
        out.error("no doc comment: document it with @summary, @description and @example");
        return FunctionDoc::default();
    }
    let (doc, problems) = FunctionDoc::parse(&spec.doc);
    for p in problems {
        out.push(p.severity, format!("doc line {}: {}", p.line, p.message));
    }
    check_summary(doc.summary.as_deref(), &mut out);
    check_description(doc.description.as_deref(), &mut out);
    check_examples(spec, &doc, &mut out);
    doc
}

fn check_summary(summary: Option<&str>, out: &mut Sink<'_>) {
    let Some(summary) = summary else {
        out.error("@summary is missing");
        return;
    };
    let chars = summary.chars().count();
    if chars >= MAX_SUMMARY_CHARS {
        out.error(format!(
            "@summary is {chars} characters; it must be under {MAX_SUMMARY_CHARS}"
        ));
    }
    let first = summary.split_whitespace().next().unwrap_or_default();
    if VERBS.contains(&first) {
        return;
    }
    let looks_like_verb = first.len() > 2
        && first.ends_with('s')
        && first.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && first.chars().all(|c| c.is_ascii_alphabetic());
    if looks_like_verb {
        out.warning(format!(
            "@summary starts with {first:?}, which is not in the verb list; if it is a verb, \
             add it to docs::VERBS"
        ));
    } else {
        out.error(format!(
            "@summary must start with a verb in the third person (Gets, Lists, Creates, …), \
             not {first:?}"
        ));
    }
}

fn check_description(description: Option<&str>, out: &mut Sink<'_>) {
    let Some(description) = description else {
        out.error("@description is missing");
        return;
    };
    let chars = description.chars().count();
    if chars <= MIN_DESCRIPTION_CHARS {
        out.error(format!(
            "@description is {chars} characters; it must be over {MIN_DESCRIPTION_CHARS} and \
             cover behaviour, authorization, side effects, performance and errors"
        ));
    }
    let lower = description.to_lowercase();
    if !AUTHORIZATION_WORDS.iter().any(|w| lower.contains(w)) {
        out.warning(
            "@description does not say who may call the function (authorization: e.g. \
             \"requires a signed-in caller\" or \"no authorization\")",
        );
    }
}

fn check_examples(spec: &FunctionSpec, doc: &FunctionDoc, out: &mut Sink<'_>) {
    for example in &doc.examples {
        let label = &example.label;
        match label {
            ExampleLabel::Request | ExampleLabel::RequestError => {
                check_request(spec, example, out);
            }
            ExampleLabel::Response | ExampleLabel::ResponseCache => {
                check_success(spec, example, out);
            }
            ExampleLabel::ResponseError => check_error(example, out),
            ExampleLabel::Other(other) => out.warning(format!(
                "unknown example label {other:?} (request, response, response-error, \
                 request-error, response-cache)"
            )),
        }
    }
    let has = |label: ExampleLabel| doc.example(&label).is_some();
    if !has(ExampleLabel::Request) {
        out.error("@example request is missing");
    }
    if !has(ExampleLabel::Response) && !has(ExampleLabel::ResponseError) {
        out.error(
            "@example response is missing (a function that never succeeds documents \
             @example response-error instead)",
        );
    }
    if has(ExampleLabel::RequestError) && !has(ExampleLabel::ResponseError) {
        out.error("@example request-error needs an @example response-error");
    }
    if has(ExampleLabel::RequestError) && !has(ExampleLabel::Response) {
        out.error(
            "@example request-error is only for functions that also document a success; \
             here @example request already produces the error",
        );
    }
    if has(ExampleLabel::ResponseError)
        && has(ExampleLabel::Response)
        && !has(ExampleLabel::RequestError)
    {
        out.warning(
            "@example response-error is not exercised by the example-alignment test: add \
             the @example request-error that produces it",
        );
    }
    if has(ExampleLabel::ResponseCache) && spec.kind != FunctionKind::Action {
        out.warning(format!(
            "@example response-cache is for actions that cache; this is a {}",
            spec.kind.as_str()
        ));
    }
}

fn object<'a>(
    example: &'a Example,
    out: &mut Sink<'_>,
) -> Option<&'a serde_json::Map<String, serde_json::Value>> {
    let map = example.json.as_object();
    if map.is_none() {
        out.error(format!(
            "@example {} must be a JSON object, not {}",
            example.label,
            json_type(&example.json)
        ));
    }
    map
}

fn unexpected_keys(
    example: &Example,
    map: &serde_json::Map<String, serde_json::Value>,
    allowed: &[&str],
    out: &mut Sink<'_>,
) {
    for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
        out.error(format!(
            "@example {} has an unexpected field {key:?} (allowed: {})",
            example.label,
            allowed.join(", ")
        ));
    }
}

fn check_request(spec: &FunctionSpec, example: &Example, out: &mut Sink<'_>) {
    let Some(map) = object(example, out) else {
        return;
    };
    unexpected_keys(example, map, &["args"], out);
    let Some(args) = map.get("args") else {
        out.error(format!(
            "@example {} must be {{\"args\": {{…}}}}",
            example.label
        ));
        return;
    };
    if !args.is_object() {
        out.error(format!(
            "@example {}: args must be an object, not {}",
            example.label,
            json_type(args)
        ));
        return;
    }
    check_value(&spec.args, args, example, "args", "args validator", out);
}

fn check_success(spec: &FunctionSpec, example: &Example, out: &mut Sink<'_>) {
    let Some(map) = object(example, out) else {
        return;
    };
    unexpected_keys(example, map, &["status", "value", "logLines"], out);
    if map.get("status").and_then(|s| s.as_str()) != Some("success") {
        out.error(format!(
            "@example {} must have \"status\": \"success\"",
            example.label
        ));
    }
    check_log_lines(example, map, out);
    match map.get("value") {
        Some(value) => check_value(
            &spec.returns,
            value,
            example,
            "value",
            "returns validator",
            out,
        ),
        None => out.error(format!(
            "@example {} must have a \"value\" (null when the function returns nothing)",
            example.label
        )),
    }
}

fn check_error(example: &Example, out: &mut Sink<'_>) {
    let Some(map) = object(example, out) else {
        return;
    };
    unexpected_keys(
        example,
        map,
        &["status", "errorData", "errorMessage", "logLines"],
        out,
    );
    if map.get("status").and_then(|s| s.as_str()) != Some("error") {
        out.error(format!(
            "@example {} must have \"status\": \"error\"",
            example.label
        ));
    }
    check_log_lines(example, map, out);
    if let Some(message) = map.get("errorMessage")
        && !message.is_string()
    {
        out.error(format!(
            "@example {}: errorMessage must be a string",
            example.label
        ));
    }
    let Some(data) = map.get("errorData") else {
        out.error(format!(
            "@example {} must have \"errorData\": {{\"code\", \"message\"}}",
            example.label
        ));
        return;
    };
    let Some(data) = data.as_object() else {
        out.error(format!(
            "@example {}: errorData must be an object",
            example.label
        ));
        return;
    };
    match data.get("code").and_then(|c| c.as_str()) {
        Some(code) if !code.is_empty() => {}
        _ => out.error(format!(
            "@example {}: errorData.code must be a non-empty string (e.g. \"FORBIDDEN\")",
            example.label
        )),
    }
    if !data.get("message").is_some_and(|m| m.is_string()) {
        out.error(format!(
            "@example {}: errorData.message must be a string",
            example.label
        ));
    }
    if let Some(status) = data.get("statusCode")
        && !status.as_u64().is_some_and(|s| (400..600).contains(&s))
    {
        out.error(format!(
            "@example {}: errorData.statusCode must be an HTTP status (400–599)",
            example.label
        ));
    }
    for key in data.keys() {
        if !["code", "message", "statusCode", "metadata"].contains(&key.as_str()) {
            out.error(format!(
                "@example {}: errorData has an unexpected field {key:?} (allowed: code, \
                 message, statusCode, metadata)",
                example.label
            ));
        }
    }
}

fn check_log_lines(
    example: &Example,
    map: &serde_json::Map<String, serde_json::Value>,
    out: &mut Sink<'_>,
) {
    if let Some(lines) = map.get("logLines")
        && !lines
            .as_array()
            .is_some_and(|a| a.iter().all(serde_json::Value::is_string))
    {
        out.error(format!(
            "@example {}: logLines must be an array of strings",
            example.label
        ));
    }
}

fn check_value(
    validator: &Validator,
    json: &serde_json::Value,
    example: &Example,
    what: &str,
    validator_name: &str,
    out: &mut Sink<'_>,
) {
    let value = match Value::from_json(json.clone()) {
        Ok(v) => v,
        Err(e) => {
            out.error(format!(
                "@example {}: {what} is not valid Convex JSON: {}",
                example.label,
                e.message()
            ));
            return;
        }
    };
    if let Err(e) = validator.validate(&value) {
        let hint = if e.message().contains("document id") || e.message().contains("id of another") {
            " (`connvo docs example-id TABLE` prints valid ids)"
        } else {
            ""
        };
        let described = validator.to_string();
        let described = if described.chars().count() <= 80 {
            format!(" ({described})")
        } else {
            String::new()
        };
        out.error(format!(
            "@example {}: {what} fails the function's {validator_name}{described}: {}{hint}",
            example.label,
            e.message()
        ));
    }
}

fn json_type(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use runtime::{ActionCtx, FunctionDef, QueryCtx};
    use values::{DocumentId, table_number, v};

    use super::*;

    const PATH: &str = "things/items:get";

    fn item_id() -> String {
        DocumentId::new(table_number("items"), [7; 16]).encode()
    }

    /// A doc comment that passes every rule, with `{ID}` replaced by an id.
    fn good_doc() -> String {
        format!(
            "@summary Gets an item by its id\n\
             @description Returns the item with `itemId`, or null when it does not exist. \
             No authorization: anyone may call it.\n\
             @example request\n```json\n{{\"args\": {{\"itemId\": \"{id}\"}}}}\n```\n\
             @example response\n```json\n{{\"status\": \"success\", \"value\": \
             {{\"_id\": \"{id}\", \"name\": \"Desk\"}}}}\n```\n",
            id = item_id()
        )
    }

    fn returns() -> Validator {
        v::union([
            v::null(),
            v::object([("_id", v::id("items")), ("name", v::string())]),
        ])
    }

    fn query(path: &str, doc: &str) -> runtime::FunctionSpec {
        FunctionDef::new(path, Visibility::Public)
            .args(v::object([("itemId", v::id("items"))]))
            .returns(returns())
            .doc(doc)
            .query(|_ctx: QueryCtx, _a: serde_json::Value| async move { Ok(()) })
    }

    fn run(specs: Vec<runtime::FunctionSpec>) -> Vec<Finding> {
        let mut registry = Registry::new();
        let mut aligned = BTreeSet::new();
        for s in specs {
            aligned.insert(s.path.clone());
            registry.register(s);
        }
        validate_with(&registry, &ValidateOptions { aligned })
    }

    fn findings(doc: &str) -> Vec<Finding> {
        run(vec![query(PATH, doc)])
    }

    #[track_caller]
    fn assert_finding(doc: &str, severity: Severity, needle: &str) {
        let found = findings(doc);
        assert!(
            found
                .iter()
                .any(|f| f.severity == severity && f.message.contains(needle)),
            "expected a {severity} containing {needle:?} for\n{doc}\ngot {found:#?}"
        );
    }

    fn replace(doc: &str, from: &str, to: &str) -> String {
        assert!(doc.contains(from), "{from:?} not in {doc}");
        doc.replacen(from, to, 1)
    }

    #[test]
    fn a_good_doc_has_no_findings() {
        assert_eq!(findings(&good_doc()), vec![]);
    }

    #[test]
    fn internal_functions_are_not_checked() {
        let mut registry = Registry::new();
        registry.register(
            FunctionDef::new(PATH, Visibility::Internal)
                .query(|_ctx: QueryCtx, _a: serde_json::Value| async move { Ok(()) }),
        );
        assert!(validate_with(&registry, &ValidateOptions::default()).is_empty());
    }

    #[test]
    fn missing_doc() {
        assert_finding("", Severity::Error, "no doc comment");
    }

    #[test]
    fn summary_rules() {
        let doc = good_doc();
        assert_finding(
            &replace(&doc, "@summary Gets an item by its id\n", ""),
            Severity::Error,
            "@summary is missing",
        );
        let long = format!("@summary Gets {}\n", "x".repeat(95));
        assert_finding(
            &replace(&doc, "@summary Gets an item by its id\n", &long),
            Severity::Error,
            "it must be under 100",
        );
        let just_under = format!("@summary Gets {}\n", "x".repeat(94));
        assert!(
            findings(&replace(
                &doc,
                "@summary Gets an item by its id\n",
                &just_under
            ))
            .is_empty()
        );
        assert_finding(
            &replace(&doc, "Gets an item", "Get an item"),
            Severity::Error,
            "must start with a verb",
        );
        assert_finding(
            &replace(&doc, "Gets an item", "The item"),
            Severity::Error,
            "must start with a verb",
        );
        assert_finding(
            &replace(&doc, "Gets an item", "Frobnicates an item"),
            Severity::Warning,
            "not in the verb list",
        );
        assert_finding(
            &replace(&doc, "@summary", "@summary Gets x\n@summary"),
            Severity::Error,
            "more than once",
        );
    }

    #[test]
    fn description_rules() {
        let doc = good_doc();
        let description = "@description Returns the item with `itemId`, or null when it does \
                           not exist. No authorization: anyone may call it.\n";
        assert_finding(
            &replace(&doc, description, ""),
            Severity::Error,
            "@description is missing",
        );
        assert_finding(
            &replace(
                &doc,
                description,
                "@description Returns the item; anyone may call.\n",
            ),
            Severity::Error,
            "it must be over 50",
        );
        assert_finding(
            &replace(
                &doc,
                "No authorization: anyone may call it.",
                "Cheap and fast.",
            ),
            Severity::Warning,
            "who may call",
        );
    }

    #[test]
    fn request_rules() {
        let doc = good_doc();
        let id = item_id();
        let request = format!("{{\"args\": {{\"itemId\": \"{id}\"}}}}");
        let cases = [
            ("{\"itemId\": 1}", "must be {\"args\""),
            ("[1]", "must be a JSON object"),
            ("{\"args\": 1}", "args must be an object"),
            (
                "{\"args\": {}, \"format\": \"json\"}",
                "unexpected field \"format\"",
            ),
            ("{\"args\": {}}", "fails the function's args validator"),
            (
                "{\"args\": {\"itemId\": \"nope\"}}",
                "not a valid document id",
            ),
            (
                "{\"args\": {\"itemId\": {\"$bogus\": 1}}}",
                "not valid Convex JSON",
            ),
            ("{\"args\": ", "not valid JSON"),
        ];
        for (bad, needle) in cases {
            assert_finding(&replace(&doc, &request, bad), Severity::Error, needle);
        }
        let without = replace(
            &doc,
            &format!("@example request\n```json\n{request}\n```\n"),
            "",
        );
        assert_finding(&without, Severity::Error, "@example request is missing");
        assert_finding(
            &replace(&doc, "```json\n{\"args\"", "```js\n{\"args\""),
            Severity::Error,
            "must be marked json",
        );
    }

    #[test]
    fn response_rules() {
        let doc = good_doc();
        let id = item_id();
        let response = format!(
            "{{\"status\": \"success\", \"value\": {{\"_id\": \"{id}\", \"name\": \"Desk\"}}}}"
        );
        let cases = [
            (
                "{\"status\": \"ok\", \"value\": null}",
                "must have \"status\": \"success\"",
            ),
            ("{\"status\": \"success\"}", "must have a \"value\""),
            (
                "{\"status\": \"success\", \"value\": 3}",
                "fails the function's returns validator",
            ),
            (
                "{\"status\": \"success\", \"value\": null, \"extra\": 1}",
                "unexpected field \"extra\"",
            ),
            (
                "{\"status\": \"success\", \"value\": null, \"logLines\": [1]}",
                "logLines must be an array of strings",
            ),
        ];
        for (bad, needle) in cases {
            assert_finding(&replace(&doc, &response, bad), Severity::Error, needle);
        }
        // Null is a valid value here.
        assert!(
            findings(&replace(
                &doc,
                &response,
                "{\"status\": \"success\", \"value\": null}"
            ))
            .is_empty()
        );
        let without = replace(
            &doc,
            &format!("@example response\n```json\n{response}\n```\n"),
            "",
        );
        assert_finding(&without, Severity::Error, "@example response is missing");
    }

    #[test]
    fn error_example_rules() {
        let base = good_doc();
        let error = |body: &str| format!("@example response-error\n```json\n{body}\n```\n");
        let good = r#"{"status": "error", "errorData": {"code": "NOT_FOUND", "message": "No item", "statusCode": 404}}"#;
        // Alongside a success, the error needs the request that produces it.
        assert_finding(
            &format!("{base}{}", error(good)),
            Severity::Warning,
            "not exercised",
        );
        let request_error = "@example request-error\n```json\n{\"args\": {\"itemId\": \
                             \"ID\"}}\n```\n"
            .replace("ID", &item_id());
        assert!(findings(&format!("{base}{}{request_error}", error(good))).is_empty());
        assert_finding(
            &format!("{base}{request_error}"),
            Severity::Error,
            "request-error needs an @example response-error",
        );
        let cases = [
            (
                r#"{"status": "success", "errorData": {"code": "X", "message": "m"}}"#,
                "must have \"status\": \"error\"",
            ),
            (r#"{"status": "error"}"#, "must have \"errorData\""),
            (
                r#"{"status": "error", "errorData": 1}"#,
                "errorData must be an object",
            ),
            (
                r#"{"status": "error", "errorData": {"message": "m"}}"#,
                "errorData.code",
            ),
            (
                r#"{"status": "error", "errorData": {"code": "X"}}"#,
                "errorData.message",
            ),
            (
                r#"{"status": "error", "errorData": {"code": "X", "message": "m", "statusCode": 200}}"#,
                "statusCode",
            ),
            (
                r#"{"status": "error", "errorData": {"code": "X", "message": "m", "why": 1}}"#,
                "unexpected field \"why\"",
            ),
            (
                r#"{"status": "error", "errorMessage": 1, "errorData": {"code": "X", "message": "m"}}"#,
                "errorMessage must be a string",
            ),
        ];
        for (bad, needle) in cases {
            assert_finding(
                &format!("{base}{}{request_error}", error(bad)),
                Severity::Error,
                needle,
            );
        }
        // A function that never succeeds documents only the error.
        let id = item_id();
        let only_error = replace(
            &base,
            &format!(
                "@example response\n```json\n{{\"status\": \"success\", \"value\": {{\"_id\": \
                 \"{id}\", \"name\": \"Desk\"}}}}\n```\n"
            ),
            &error(good),
        );
        assert!(
            findings(&only_error).is_empty(),
            "{:?}",
            findings(&only_error)
        );
        assert_finding(
            &format!("{only_error}{request_error}"),
            Severity::Error,
            "only for functions that also document a success",
        );
    }

    #[test]
    fn cache_and_unknown_labels() {
        let base = good_doc();
        let cache = "@example response-cache\n```json\n{\"status\": \"success\", \"value\": \
                     null}\n```\n";
        assert_finding(
            &format!("{base}{cache}"),
            Severity::Warning,
            "for actions that cache",
        );
        let mut registry = Registry::new();
        registry.register(
            FunctionDef::new(PATH, Visibility::Public)
                .args(v::object([("itemId", v::id("items"))]))
                .returns(returns())
                .doc(&format!("{base}{cache}"))
                .action(|_ctx: ActionCtx, _a: serde_json::Value| async move { Ok(()) }),
        );
        let aligned = [PATH.to_owned()].into();
        assert!(validate_with(&registry, &ValidateOptions { aligned }).is_empty());
        assert_finding(
            &format!("{base}{}", cache.replace("null", "1")),
            Severity::Error,
            "response-cache: value fails",
        );
        assert_finding(
            &format!("{base}@example datamodel\n```json\n{{}}\n```\n"),
            Severity::Warning,
            "unknown example label \"datamodel\"",
        );
        assert_finding(
            &format!("{base}@returns nothing\n"),
            Severity::Warning,
            "unknown tag @returns",
        );
    }

    #[test]
    fn duplicate_summaries_across_functions() {
        let found = run(vec![
            query("a/b:one", &good_doc()),
            query(
                "a/b:two",
                &good_doc().replace("Gets an item", "gets an item"),
            ),
            query(
                "a/b:three",
                &good_doc().replace("Gets an item", "Gets one item"),
            ),
        ]);
        let dup: Vec<&str> = found
            .iter()
            .filter(|f| f.message.starts_with("duplicate summary"))
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(dup, vec!["a/b:one", "a/b:two"]);
        assert!(found.iter().all(|f| f.severity == Severity::Error));
        assert!(found[0].message.contains("a/b:two"));
    }

    #[test]
    fn alignment_list() {
        let mut registry = Registry::new();
        registry.register(query(PATH, &good_doc()));
        let found = validate_with(&registry, &ValidateOptions::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Error);
        assert!(found[0].message.contains("no example-alignment test"));
        assert_eq!(
            found[0].to_string(),
            format!("{PATH}: error: {}", found[0].message)
        );
    }

    #[test]
    fn report_counts() {
        let report = Report::from_findings(
            2,
            vec![
                Finding {
                    path: "a".into(),
                    severity: Severity::Error,
                    message: "x".into(),
                },
                Finding {
                    path: "b".into(),
                    severity: Severity::Warning,
                    message: "y".into(),
                },
            ],
        );
        assert_eq!(
            (report.errors, report.warnings, report.is_ok()),
            (1, 1, false)
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["findings"][1]["severity"], "warning");
        assert!(Report::new(&Registry::new()).is_ok());
    }
}
