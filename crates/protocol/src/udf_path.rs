//! Function path canonicalization.
//!
//! The canonical form used throughout the server is `module:export`, where
//! `module` is the path of the source file under `convex/` without extension
//! (`meetings/queries`) and `export` is the exported name (`getMeeting`, or
//! `default`).
//!
//! Clients send several shapes: subscriptions arrive canonical (`m/q:f`), but
//! `Mutation`/`Action` and HTTP paths arrive as written, so `m/q` (default
//! export), `m/q.js:f` and `m/q.js` must also be accepted. `/api/run/m/q/f`
//! names the same function as `m/q:f`.

use crate::error::ProtocolError;

/// Maximum length in bytes of a function path as sent by a client.
pub const MAX_UDF_PATH_LEN: usize = 256;

/// The export name used when a path has no `:export` part.
pub const DEFAULT_EXPORT: &str = "default";

/// Canonicalizes a function path to `module:export`.
///
/// Accepts `m/q:f`, `m/q.js:f`, `m/q` and `m/q.js` (the last two mean
/// `m/q:default`). A trailing `.js` on the module is stripped.
///
/// Rejected with `BadConvexFunctionIdentifier`: empty paths, paths over
/// [`MAX_UDF_PATH_LEN`] bytes, a leading `/`, empty / `.` / `..` module
/// components, module characters outside `[A-Za-z0-9_./-]`, and export names
/// that are empty, contain characters outside `[A-Za-z0-9_]` or start with a
/// digit.
pub fn canonicalize_udf_path(path: &str) -> Result<String, ProtocolError> {
    if path.is_empty() {
        return Err(bad_path(path, "the path is empty"));
    }
    if path.len() > MAX_UDF_PATH_LEN {
        return Err(ProtocolError::bad_function_identifier(format!(
            "function path is longer than {MAX_UDF_PATH_LEN} bytes"
        )));
    }
    let (module, export) = match path.rsplit_once(':') {
        Some((module, export)) => (module, export),
        None => (path, DEFAULT_EXPORT),
    };
    let module = module.strip_suffix(".js").unwrap_or(module);
    validate_module(path, module)?;
    validate_export(path, export)?;
    Ok(format!("{module}:{export}"))
}

/// Converts the path segments of `/api/run/{a/b/fn}` (i.e. `a/b/fn`, already
/// percent-decoded; a single leading `/` is tolerated) into the canonical
/// `a/b:fn`. The last segment is the export name; at least two segments are
/// required.
pub fn run_path_to_udf_path(segments: &str) -> Result<String, ProtocolError> {
    let trimmed = segments.strip_prefix('/').unwrap_or(segments);
    if trimmed.len() > MAX_UDF_PATH_LEN {
        return Err(ProtocolError::bad_function_identifier(format!(
            "function path is longer than {MAX_UDF_PATH_LEN} bytes"
        )));
    }
    match trimmed.rsplit_once('/') {
        Some((module, export)) if !module.is_empty() && !export.is_empty() => {
            if export.contains(':') {
                return Err(bad_path(segments, "the function name contains ':'"));
            }
            canonicalize_udf_path(&format!("{module}:{export}"))
        }
        _ => Err(bad_path(
            segments,
            "expected /api/run/<module path>/<function name>",
        )),
    }
}

fn validate_module(path: &str, module: &str) -> Result<(), ProtocolError> {
    if module.is_empty() {
        return Err(bad_path(path, "the module path is empty"));
    }
    if module.starts_with('/') {
        return Err(bad_path(path, "the module path must not start with '/'"));
    }
    if let Some(c) = module
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')))
    {
        return Err(bad_path(
            path,
            &format!("the module path contains the invalid character {c:?}"),
        ));
    }
    for component in module.split('/') {
        match component {
            "" => return Err(bad_path(path, "the module path has an empty component")),
            "." | ".." => {
                return Err(bad_path(
                    path,
                    "the module path must not contain '.' or '..' components",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn validate_export(path: &str, export: &str) -> Result<(), ProtocolError> {
    let Some(first) = export.chars().next() else {
        return Err(bad_path(path, "the export name is empty"));
    };
    if first.is_ascii_digit() {
        return Err(bad_path(
            path,
            "the export name must not start with a digit",
        ));
    }
    if let Some(c) = export
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(bad_path(
            path,
            &format!("the export name contains the invalid character {c:?}"),
        ));
    }
    Ok(())
}

fn bad_path(path: &str, why: &str) -> ProtocolError {
    // Quote at most a prefix of the offending path to keep messages short.
    let mut shown: String = path.chars().take(64).collect();
    if shown.len() < path.len() {
        shown.push('…');
    }
    ProtocolError::bad_function_identifier(format!("invalid function path {shown:?}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalization_table() {
        let ok = [
            ("messages:list", "messages:list"),
            ("messages.js:list", "messages:list"),
            ("messages", "messages:default"),
            ("messages.js", "messages:default"),
            ("m/q:f", "m/q:f"),
            ("m/q.js:f", "m/q:f"),
            ("m/q", "m/q:default"),
            ("m/q.js", "m/q:default"),
            ("meetings/queries:getMeeting", "meetings/queries:getMeeting"),
            ("a-b/c_d.e:_private", "a-b/c_d.e:_private"),
            ("_system/x:y", "_system/x:y"),
            ("m.js.js:f", "m.js:f"),
            ("m:f1", "m:f1"),
            ("v1/api:get_V2", "v1/api:get_V2"),
        ];
        for (input, expected) in ok {
            assert_eq!(
                canonicalize_udf_path(input).as_deref(),
                Ok(expected),
                "{input}"
            );
        }
        let bad = [
            "", ":f", ".js", ".js:f", "/m:f", "m/../x:f", "../m:f", "./m:f", "m//q:f", "m/:f",
            "m:", "m:1f", "m:f-g", "m:f.g", "m q:f", "m\\q:f", "m:f:g", "mé:f", "m:fé", "m/q:f/g",
            "m\0:f",
        ];
        for input in bad {
            let err = canonicalize_udf_path(input).unwrap_err();
            assert_eq!(err.code(), "BadConvexFunctionIdentifier", "{input}");
        }
        let long_module = format!("{}:f", "a".repeat(MAX_UDF_PATH_LEN));
        assert!(canonicalize_udf_path(&long_module).is_err());
        let exactly_max = format!("{}:f", "a".repeat(MAX_UDF_PATH_LEN - 2));
        assert!(canonicalize_udf_path(&exactly_max).is_ok());
    }

    #[test]
    fn run_paths() {
        assert_eq!(
            run_path_to_udf_path("messages/list").as_deref(),
            Ok("messages:list")
        );
        assert_eq!(
            run_path_to_udf_path("/messages/list").as_deref(),
            Ok("messages:list")
        );
        assert_eq!(run_path_to_udf_path("a/b/fn").as_deref(), Ok("a/b:fn"));
        assert_eq!(run_path_to_udf_path("a/b.js/fn").as_deref(), Ok("a/b:fn"));
        assert_eq!(
            run_path_to_udf_path("a/b/default").as_deref(),
            Ok("a/b:default")
        );
        for bad in [
            "",
            "/",
            "messages",
            "messages/",
            "/list",
            "a//b",
            "a/b:c/fn",
            "a/b/f:g",
            "a/b/1x",
            "../a/f",
        ] {
            assert!(run_path_to_udf_path(bad).is_err(), "{bad}");
        }
    }
}
