//! The doc-comment standard and its parser.
//!
//! A public function's doc comment (the `///` lines above it, which
//! `#[macros::function]` copies into [`runtime::FunctionSpec::doc`]) is a
//! sequence of tagged sections:
//!
//! ````text
//! @summary Lists the messages of a channel
//! @description Returns every message of `channel` in creation order. …
//! @example request
//! ```json
//! {"args": {"channel": "general"}}
//! ```
//! @example response
//! ```json
//! {"status": "success", "value": []}
//! ```
//! ````
//!
//! A tag starts a line (`@summary`, `@description`, `@example <label>`);
//! its section runs to the next tag. Lines inside fenced blocks never start
//! a tag. [`FunctionDoc::parse`] turns the text into a typed [`FunctionDoc`]
//! and reports what it could not make sense of as [`Problem`]s (the
//! validator adds the rules of the standard on top, see [`crate::validate`]).

use serde::Serialize;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails `connvo docs validate` (exit status 1).
    Error,
    /// Reported, but does not fail the run.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The label of an `@example`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExampleLabel {
    /// `request`: `{"args": {…}}`, the body of `POST /api/run/{path}`.
    Request,
    /// `response`: `{"status": "success", "value": …}` for [`Self::Request`].
    Response,
    /// `response-error`: `{"status": "error", "errorData": {"code", "message"}}`.
    ResponseError,
    /// `request-error`: the request that produces [`Self::ResponseError`]
    /// (needed when a function documents both a success and an error).
    RequestError,
    /// `response-cache`: what a caching action returns when the same
    /// request is repeated.
    ResponseCache,
    /// Any other label (reported as a warning).
    Other(String),
}

impl ExampleLabel {
    /// Parses a label as written after `@example`.
    pub fn parse(label: &str) -> Self {
        match label {
            "request" => Self::Request,
            "response" => Self::Response,
            "response-error" => Self::ResponseError,
            "request-error" => Self::RequestError,
            "response-cache" => Self::ResponseCache,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The label as written.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
            Self::ResponseError => "response-error",
            Self::RequestError => "request-error",
            Self::ResponseCache => "response-cache",
            Self::Other(s) => s,
        }
    }

    /// Whether this label holds a request (`{"args": …}`).
    pub fn is_request(&self) -> bool {
        matches!(self, Self::Request | Self::RequestError)
    }
}

impl std::fmt::Display for ExampleLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `@example` with its parsed JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Its label.
    pub label: ExampleLabel,
    /// The content of its fenced ```` ```json ```` block.
    pub json: serde_json::Value,
    /// The line of the `@example` tag (1-based, within the doc comment).
    pub line: usize,
}

/// A function's doc comment, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionDoc {
    /// `@summary`, whitespace collapsed; `None` when absent or empty.
    pub summary: Option<String>,
    /// `@description`, trimmed, line breaks kept; `None` when absent or empty.
    pub description: Option<String>,
    /// The examples whose JSON parsed, in order.
    pub examples: Vec<Example>,
}

/// Something [`FunctionDoc::parse`] could not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The line it is about (1-based, within the doc comment).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

struct Section {
    tag: String,
    rest: String,
    line: usize,
    lines: Vec<(usize, String)>,
}

fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// `@word rest` → (word, rest) when the line starts a tag.
fn tag_of(line: &str) -> Option<(&str, &str)> {
    let body = line.trim_start().strip_prefix('@')?;
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or(body.len());
    if end == 0 || !body.as_bytes()[0].is_ascii_alphabetic() {
        return None;
    }
    Some((&body[..end], body[end..].trim()))
}

impl FunctionDoc {
    /// Parses a doc comment. Never fails: whatever does not fit the standard
    /// is returned as a [`Problem`] next to what could be read.
    pub fn parse(doc: &str) -> (FunctionDoc, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut preamble: Vec<(usize, String)> = Vec::new();
        let mut sections: Vec<Section> = Vec::new();
        let mut in_fence = false;
        for (i, line) in doc.lines().enumerate() {
            let n = i + 1;
            if !in_fence && let Some((tag, rest)) = tag_of(line) {
                sections.push(Section {
                    tag: tag.to_owned(),
                    rest: rest.to_owned(),
                    line: n,
                    lines: Vec::new(),
                });
                continue;
            }
            if is_fence(line) {
                in_fence = !in_fence;
            }
            match sections.last_mut() {
                Some(s) => s.lines.push((n, line.to_owned())),
                None => preamble.push((n, line.to_owned())),
            }
        }
        if let Some((n, _)) = preamble.iter().find(|(_, l)| !l.trim().is_empty()) {
            problems.push(Problem {
                severity: Severity::Warning,
                line: *n,
                message: "text before the first tag is not part of the standard (start with \
                          @summary)"
                    .into(),
            });
        }

        let mut doc = FunctionDoc::default();
        let mut seen_summary = false;
        let mut seen_description = false;
        for s in sections {
            match s.tag.as_str() {
                "summary" => {
                    if seen_summary {
                        problems.push(error(s.line, "@summary appears more than once"));
                        continue;
                    }
                    seen_summary = true;
                    let words: Vec<&str> = std::iter::once(s.rest.as_str())
                        .chain(s.lines.iter().map(|(_, l)| l.as_str()))
                        .flat_map(str::split_whitespace)
                        .collect();
                    if !words.is_empty() {
                        doc.summary = Some(words.join(" "));
                    }
                }
                "description" => {
                    if seen_description {
                        problems.push(error(s.line, "@description appears more than once"));
                        continue;
                    }
                    seen_description = true;
                    let mut text = s.rest.clone();
                    for (_, l) in &s.lines {
                        text.push('\n');
                        text.push_str(l);
                    }
                    let text = text.trim();
                    if !text.is_empty() {
                        doc.description = Some(text.to_owned());
                    }
                }
                "example" => {
                    if let Some(example) = parse_example(&s, &mut problems) {
                        if doc.examples.iter().any(|e| e.label == example.label) {
                            problems.push(error(
                                s.line,
                                format!("@example {} appears more than once", example.label),
                            ));
                        } else {
                            doc.examples.push(example);
                        }
                    }
                }
                other => problems.push(Problem {
                    severity: Severity::Warning,
                    line: s.line,
                    message: format!(
                        "unknown tag @{other} (the standard has @summary, @description and \
                         @example)"
                    ),
                }),
            }
        }
        (doc, problems)
    }

    /// The example with this label.
    pub fn example(&self, label: &ExampleLabel) -> Option<&Example> {
        self.examples.iter().find(|e| &e.label == label)
    }
}

fn error(line: usize, message: impl Into<String>) -> Problem {
    Problem {
        severity: Severity::Error,
        line,
        message: message.into(),
    }
}

fn parse_example(s: &Section, problems: &mut Vec<Problem>) -> Option<Example> {
    let mut words = s.rest.split_whitespace();
    let Some(label) = words.next() else {
        problems.push(error(
            s.line,
            "@example needs a label (request, response, response-error, …)",
        ));
        return None;
    };
    let label = ExampleLabel::parse(label);
    if words.next().is_some() {
        problems.push(Problem {
            severity: Severity::Warning,
            line: s.line,
            message: format!("text after the label of @example {label} is ignored"),
        });
    }
    let mut lines = s.lines.iter().peekable();
    let mut before = false;
    let open = loop {
        match lines.next() {
            Some((n, l)) if is_fence(l) => break Some((*n, l)),
            Some((_, l)) => before |= !l.trim().is_empty(),
            None => break None,
        }
    };
    let Some((open_line, open)) = open else {
        problems.push(error(
            s.line,
            format!("@example {label} has no fenced ```json block"),
        ));
        return None;
    };
    if before {
        problems.push(Problem {
            severity: Severity::Warning,
            line: s.line,
            message: format!("text before the fenced block of @example {label} is ignored"),
        });
    }
    let language = open.trim_start().trim_start_matches('`').trim();
    if !language.eq_ignore_ascii_case("json") {
        problems.push(error(
            open_line,
            format!(
                "the fenced block of @example {label} must be marked json (```json), not {:?}",
                language
            ),
        ));
        return None;
    }
    let mut body = String::new();
    let mut closed = false;
    for (_, l) in lines.by_ref() {
        if is_fence(l) {
            closed = true;
            break;
        }
        body.push_str(l);
        body.push('\n');
    }
    if !closed {
        problems.push(error(
            open_line,
            format!("the fenced block of @example {label} is not closed"),
        ));
        return None;
    }
    if lines.any(|(_, l)| !l.trim().is_empty()) {
        problems.push(Problem {
            severity: Severity::Warning,
            line: s.line,
            message: format!("text after the fenced block of @example {label} is ignored"),
        });
    }
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(json) => Some(Example {
            label,
            json,
            line: s.line,
        }),
        Err(e) => {
            problems.push(error(
                open_line + e.line(),
                format!("@example {label} is not valid JSON: {e}"),
            ));
            None
        }
    }
}

/// A valid, deterministic document id of `table` for examples: the `n`th
/// (from 1) of a fixed sequence per table, so examples can use realistic ids
/// that pass `v.id(table)` validators. `connvo docs example-id TABLE` prints
/// them.
pub fn example_id(table: &str, n: u64) -> String {
    // FNV-1a of the table name, then splitmix64 to fill the random bytes.
    let mut state = table
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
        .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut random = [0u8; 16];
    random[..8].copy_from_slice(&next().to_le_bytes());
    random[8..].copy_from_slice(&next().to_le_bytes());
    values::DocumentId::new(values::table_number(table), random).encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_ids_are_valid_and_deterministic() {
        let a = example_id("messages", 1);
        assert_eq!(a, example_id("messages", 1));
        assert_ne!(a, example_id("messages", 2));
        assert_ne!(a, example_id("users", 1));
        let v = values::v::id("messages");
        assert!(v.validate(&values::Value::from(a.as_str())).is_ok());
        assert!(
            v.validate(&values::Value::from(example_id("users", 1).as_str()))
                .is_err()
        );
    }

    const GOOD: &str = "@summary Lists the messages\n  of a channel\n@description Returns \
                        every message.\n\nSecond paragraph.\n\n@example request\n```json\n{\"args\": \
                        {\"channel\": \"general\"}}\n```\n@example response\n```json\n{\"status\": \
                        \"success\", \"value\": []}\n```\n";

    #[test]
    fn parses_sections() {
        let (doc, problems) = FunctionDoc::parse(GOOD);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            doc.summary.as_deref(),
            Some("Lists the messages of a channel")
        );
        assert_eq!(
            doc.description.as_deref(),
            Some("Returns every message.\n\nSecond paragraph.")
        );
        assert_eq!(doc.examples.len(), 2);
        assert_eq!(doc.examples[0].label, ExampleLabel::Request);
        assert_eq!(doc.examples[0].line, 7);
        assert_eq!(
            doc.example(&ExampleLabel::Response).unwrap().json["status"],
            "success"
        );
    }

    #[test]
    fn tags_inside_fences_are_text() {
        let (doc, problems) =
            FunctionDoc::parse("@summary Gets x\n@description a\n```text\n@summary nope\n```\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(doc.summary.as_deref(), Some("Gets x"));
        assert!(doc.description.unwrap().contains("@summary nope"));
    }

    #[test]
    fn reports_problems() {
        let cases = [
            (
                "intro\n@summary Gets x",
                Severity::Warning,
                "before the first tag",
            ),
            (
                "@summary Gets x\n@summary Gets y",
                Severity::Error,
                "more than once",
            ),
            (
                "@description a\n@description b",
                Severity::Error,
                "more than once",
            ),
            ("@sumary Gets x", Severity::Warning, "unknown tag @sumary"),
            (
                "@example\n```json\n{}\n```",
                Severity::Error,
                "needs a label",
            ),
            ("@example request\n{}", Severity::Error, "no fenced"),
            (
                "@example request\n```js\n{}\n```",
                Severity::Error,
                "marked json",
            ),
            (
                "@example request\n```json\n{}\n",
                Severity::Error,
                "not closed",
            ),
            (
                "@example request\n```json\n{\"args\": }\n```",
                Severity::Error,
                "not valid JSON",
            ),
            (
                "@example request\nsee:\n```json\n{}\n```",
                Severity::Warning,
                "text before the fenced",
            ),
            (
                "@example request\n```json\n{}\n```\nnote",
                Severity::Warning,
                "text after the fenced",
            ),
            (
                "@example request x\n```json\n{}\n```",
                Severity::Warning,
                "after the label",
            ),
            (
                "@example request\n```json\n{}\n```\n@example request\n```json\n{}\n```",
                Severity::Error,
                "appears more than once",
            ),
        ];
        for (doc, severity, needle) in cases {
            let (_, problems) = FunctionDoc::parse(doc);
            assert!(
                problems
                    .iter()
                    .any(|p| p.severity == severity && p.message.contains(needle)),
                "{doc:?}: expected a {severity} containing {needle:?}, got {problems:?}"
            );
        }
    }

    #[test]
    fn labels_round_trip() {
        for label in [
            "request",
            "response",
            "response-error",
            "request-error",
            "response-cache",
            "datamodel",
        ] {
            assert_eq!(ExampleLabel::parse(label).as_str(), label);
        }
        assert!(ExampleLabel::RequestError.is_request());
        assert!(!ExampleLabel::Response.is_request());
    }
}
