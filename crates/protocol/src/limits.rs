//! Size and nesting limits applied to untrusted JSON before it is parsed.
//!
//! [`check_json_nesting`] scans the raw bytes iteratively (no recursion), so even
//! a 10,000-level-deep document is rejected in linear time without touching the
//! stack. `serde_json`'s own recursion limit (128) remains as a second line of
//! defence. [`parse_json_with_limits`] combines the size check, the nesting check
//! and deserialization, mapping every failure to a [`ProtocolError`].

use serde::de::DeserializeOwned;

use crate::error::ProtocolError;

/// Maximum nesting depth of arrays and objects in any message or request body
/// (the outermost object counts as level 1).
pub const MAX_JSON_NESTING_DEPTH: usize = 64;

/// A sensible default size limit for a client message or HTTP request body:
/// 16 MiB + 2000 bytes, the official backend's public-API request limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024 + 2000;

/// Fails if `json` nests arrays/objects deeper than `max_depth` levels.
///
/// Brackets inside JSON strings (including escaped quotes) are ignored. The scan
/// does not validate the JSON otherwise; malformed input is left for the parser.
pub fn check_json_nesting(json: &[u8], max_depth: usize) -> Result<(), ProtocolError> {
    let mut depth: usize = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ProtocolError::bad_request(format!(
                        "JSON is nested deeper than {max_depth} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Checks `max_bytes` and [`MAX_JSON_NESTING_DEPTH`], then deserializes `json`.
///
/// Errors are [`MessageTooLarge`](crate::ProtocolErrorKind::MessageTooLarge) for
/// the size, and [`BadRequest`](crate::ProtocolErrorKind::BadRequest) carrying
/// serde's description (e.g. ``missing field `path` at line 1 column 9``)
/// otherwise.
pub fn parse_json_with_limits<T: DeserializeOwned>(
    json: &[u8],
    max_bytes: usize,
) -> Result<T, ProtocolError> {
    if json.len() > max_bytes {
        return Err(ProtocolError::message_too_large(json.len(), max_bytes));
    }
    check_json_nesting(json, MAX_JSON_NESTING_DEPTH)?;
    serde_json::from_slice(json).map_err(|e| {
        let message = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("invalid JSON: {e}")
            }
            serde_json::error::Category::Data | serde_json::error::Category::Io => e.to_string(),
        };
        ProtocolError::bad_request(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_depth() {
        assert!(check_json_nesting(b"{}", 1).is_ok());
        assert!(check_json_nesting(b"{\"a\":[]}", 1).is_err());
        assert!(check_json_nesting(b"{\"a\":[]}", 2).is_ok());
        assert!(check_json_nesting(b"[[],[],[[]]]", 3).is_ok());
        assert!(check_json_nesting(b"[[],[],[[[]]]]", 3).is_err());
    }

    #[test]
    fn ignores_brackets_in_strings() {
        assert!(check_json_nesting(br#"{"a":"[[[[{{{{"}"#, 1).is_ok());
        assert!(check_json_nesting(br#"{"a":"\"[[[["}"#, 1).is_ok());
        assert!(check_json_nesting(br#"{"a":"\\","b":[[]]}"#, 2).is_err());
    }

    #[test]
    fn very_deep_input_is_rejected_without_recursion() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let err = check_json_nesting(deep.as_bytes(), MAX_JSON_NESTING_DEPTH).unwrap_err();
        assert_eq!(err.code(), "BadRequest");
        let err =
            parse_json_with_limits::<serde_json::Value>(deep.as_bytes(), usize::MAX).unwrap_err();
        assert_eq!(err.code(), "BadRequest");
    }

    #[test]
    fn syntax_errors_are_labelled() {
        let err = parse_json_with_limits::<serde_json::Value>(b"nope", 100).unwrap_err();
        assert!(err.message().starts_with("invalid JSON: "), "{err}");
        let err = parse_json_with_limits::<u32>(b"\"x\"", 100).unwrap_err();
        assert!(!err.message().starts_with("invalid JSON"), "{err}");
    }

    #[test]
    fn size_limit() {
        let err = parse_json_with_limits::<serde_json::Value>(b"[1,2,3]", 3).unwrap_err();
        assert_eq!(err.code(), "MessageTooLarge");
        assert!(parse_json_with_limits::<serde_json::Value>(b"[1,2,3]", 7).is_ok());
    }
}
