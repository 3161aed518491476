//! Connvo's API documentation pipeline.
//!
//! Every public query, mutation and action documents itself in its Rust doc
//! comment, which `#[macros::function]` copies into
//! [`runtime::FunctionSpec::doc`]; this crate reads it from the registry:
//!
//! * [`standard`] — the standard and its parser ([`FunctionDoc::parse`]);
//! * [`validate()`] — the rules, as [`Finding`]s (`connvo docs validate`);
//! * [`openapi()`] — the OpenAPI 3.1 document (`connvo openapi`,
//!   `GET /openapi.json`), and [`html::render`] the reference served at
//!   `GET /docs`;
//! * [`align`] — the list of functions whose examples are tested against
//!   real responses, and the comparison those tests use.
//!
//! It knows nothing about HTTP servers; `server` and `connvo` call it.
//!
//! # The standard
//!
//! ````text
//! /// @summary Lists the test messages of a channel
//! /// @description Returns every message of `channel`, oldest first. No
//! /// authorization: anyone may call it. Reads one index range.
//! /// @example request
//! /// ```json
//! /// {"args": {"channel": "general"}}
//! /// ```
//! /// @example response
//! /// ```json
//! /// {"status": "success", "value": […]}
//! /// ```
//! #[macros::function(query, path = "testing/messages:list", …)]
//! ````
//!
//! | part | rule | severity |
//! |---|---|---|
//! | doc comment | present | error |
//! | `@summary` | present, once | error |
//! | | under 100 characters | error |
//! | | starts with a verb from [`VERBS`] | error; a capitalised word ending in `s` that is not listed is a warning |
//! | `@description` | present, once, over 50 characters | error |
//! | | says who may call it (mentions authorization, the caller, anonymity, …) | warning |
//! | `@example request` | present; a ```` ```json ```` block holding `{"args": {…}}` that is valid Convex JSON and passes the args validator | error |
//! | `@example response` | `{"status": "success", "value": …}` (optional `logLines`) whose value passes the returns validator; a function that never succeeds documents `response-error` instead | error |
//! | `@example response-error` | optional; `{"status": "error", "errorData": {"code", "message", "statusCode"?, "metadata"?}, "errorMessage"?}` | error |
//! | `@example request-error` | the request producing `response-error`, when `response` is documented too (otherwise `response-error` is untested: warning) | error if shaped wrong |
//! | `@example response-cache` | optional, for actions that cache: the response to the same request repeated; same shape as `response` | error if shaped wrong; warning on a query or mutation |
//! | any example | valid JSON in a fenced block marked `json`; each label once | error |
//! | unknown tags and labels, stray text | | warning |
//! | summaries | unique across all public functions (case-insensitive) | error |
//! | example-alignment test | the path is in [`aligned_paths`] | error |
//!
//! Errors are what the standard states as required ("has", "under",
//! "over", "valid", "passes"); warnings are what a reviewer should look at
//! but a machine cannot decide (an unlisted verb, a description that may
//! not cover authorization, text the tools ignore). Internal functions are
//! not checked and not published.
//!
//! Examples are Convex-encoded JSON with realistic, deterministic ids (valid
//! 36-character ids of the right table: `connvo docs example-id TABLE`
//! prints some, see [`example_id`]) and timestamps.
//!
//! # Example alignment, and why the list cannot drift
//!
//! `crates/connvo/tests/doc_examples.rs` has one case per public function,
//! keyed by path, with the caller (anonymous or a dev identity) and a
//! seeding hook. For each function it starts the real server in-process,
//! seeds, sends the `request` example to `POST /api/run/{path}`, and checks
//! the response against `response` (or `response-error`), then
//! `request-error` against `response-error` and a repeated `request` against
//! `response-cache`, after normalising ids, timestamps and cursors
//! ([`align::check_response`]).
//!
//! The covered paths are listed in `crates/docs/aligned.txt`, compiled into
//! this crate ([`align::ALIGNED_FILE`]) and read by [`validate()`]. The same
//! test asserts that (1) its cases are exactly the public functions of the
//! full registry (test functions included) and (2) `aligned.txt` is exactly
//! its cases; it rewrites the file only when run with
//! `CONNVO_UPDATE_ALIGNED=1`. So a new public function without a case fails
//! both the test and the validator; a case removed or added without updating
//! the file fails the test; and the file can only be regenerated from cases
//! that exist and pass.

pub mod align;
pub mod html;
pub mod openapi;
pub mod standard;
pub mod validate;

pub use align::{aligned_paths, check_response};
pub use openapi::{OpenApiOptions, openapi};
pub use standard::{Example, ExampleLabel, FunctionDoc, Problem, Severity, example_id};
pub use validate::{Finding, Report, VERBS, ValidateOptions, validate, validate_with};
