//! Malformed client input always yields a `ProtocolError`, never a panic,
//! including under property-based fuzzing.

use proptest::prelude::*;
use protocol::{ClientMessage, DEFAULT_MAX_MESSAGE_BYTES, ProtocolErrorKind, parse_client_message};
use serde_json::{Value, json};

fn bad_request(text: &str) -> String {
    let err = parse_client_message(text, DEFAULT_MAX_MESSAGE_BYTES)
        .expect_err(&format!("should be rejected: {text}"));
    assert_eq!(err.kind(), ProtocolErrorKind::BadRequest, "{text}: {err}");
    assert!(err.close_reason().len() <= 123);
    err.message().to_owned()
}

#[test]
fn not_json() {
    for text in [
        "",
        "   ",
        "not json",
        "{",
        "{\"type\":",
        "\u{0}",
        "[1,2",
        "{\"type\":\"Ping\"}}",
    ] {
        bad_request(text);
    }
}

#[test]
fn not_an_object() {
    for text in [
        "null",
        "1",
        "\"Connect\"",
        "[]",
        "[{\"type\":\"Connect\"}]",
        "true",
    ] {
        bad_request(text);
    }
}

#[test]
fn unknown_or_missing_type() {
    let msg = bad_request(r#"{"type":"Subscribe","queryId":1}"#);
    assert!(msg.contains("Subscribe"), "{msg}");
    bad_request(r#"{"type":"connect","sessionId":"s","connectionCount":0}"#);
    bad_request(r#"{"sessionId":"s","connectionCount":0}"#);
    bad_request(r#"{"type":null}"#);
    bad_request(r#"{"type":5}"#);
    // Server message types are not client messages.
    bad_request(r#"{"type":"Ping"}"#);
    bad_request(
        r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Replace","queryId":1}]}"#,
    );
}

#[test]
fn missing_fields() {
    let msg = bad_request(r#"{"type":"Connect","connectionCount":0}"#);
    assert!(msg.contains("sessionId"), "{msg}");
    bad_request(r#"{"type":"Connect","sessionId":"s"}"#);
    bad_request(r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1}"#);
    bad_request(r#"{"type":"ModifyQuerySet","baseVersion":0,"modifications":[]}"#);
    bad_request(r#"{"type":"Mutation","requestId":0,"udfPath":"m:f"}"#);
    bad_request(r#"{"type":"Mutation","udfPath":"m:f","args":[{}]}"#);
    bad_request(r#"{"type":"Action","requestId":0,"args":[{}]}"#);
    bad_request(
        r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"args":[{}]}]}"#,
    );
    bad_request(
        r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Remove"}]}"#,
    );
    bad_request(r#"{"type":"Event","event":{}}"#);
}

#[test]
fn wrong_types() {
    bad_request(r#"{"type":"Connect","sessionId":5,"connectionCount":0}"#);
    bad_request(r#"{"type":"Connect","sessionId":"s","connectionCount":"0"}"#);
    bad_request(r#"{"type":"Connect","sessionId":"s","connectionCount":0,"clientTs":"now"}"#);
    bad_request(
        r#"{"type":"Connect","sessionId":"s","connectionCount":0,"maxObservedTimestamp":12}"#,
    );
    bad_request(
        r#"{"type":"Connect","sessionId":"s","connectionCount":0,"maxObservedTimestamp":"AAAA"}"#,
    );
    bad_request(r#"{"type":"Connect","sessionId":"s","connectionCount":1.5}"#);
    bad_request(r#"{"type":"Mutation","requestId":0,"udfPath":["m:f"],"args":[{}]}"#);
    bad_request(
        r#"{"type":"Mutation","requestId":0,"udfPath":"m:f","args":[{}],"componentPath":7}"#,
    );
    bad_request(r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":{}}"#);
    bad_request(
        r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"m:f","args":[{}],"journal":5}]}"#,
    );
    bad_request(r#"{"type":"Event","eventType":1}"#);
}

#[test]
fn numbers_out_of_u32_range() {
    for n in ["4294967296", "-1", "1e10", "99999999999999999999999", "1.0"] {
        bad_request(&format!(
            r#"{{"type":"Mutation","requestId":{n},"udfPath":"m:f","args":[{{}}]}}"#
        ));
        bad_request(&format!(
            r#"{{"type":"ModifyQuerySet","baseVersion":0,"newVersion":{n},"modifications":[]}}"#
        ));
        bad_request(&format!(
            r#"{{"type":"Connect","sessionId":"s","connectionCount":{n}}}"#
        ));
    }
    // u32::MAX itself is fine.
    assert!(
        parse_client_message(
            r#"{"type":"Mutation","requestId":4294967295,"udfPath":"m:f","args":[{}]}"#,
            1000
        )
        .is_ok()
    );
}

#[test]
fn args_must_be_one_object() {
    for args in [
        "[]", "[{},{}]", "[1]", "[null]", "[[]]", "{}", "null", "\"x\"", "[\"x\"]",
    ] {
        for template in [
            r#"{"type":"Mutation","requestId":0,"udfPath":"m:f","args":ARGS}"#,
            r#"{"type":"Action","requestId":0,"udfPath":"m:f","args":ARGS}"#,
            r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"m:f","args":ARGS}]}"#,
        ] {
            let msg = bad_request(&template.replace("ARGS", args));
            assert!(msg.contains("exactly one object"), "{args}: {msg}");
        }
    }
}

#[test]
fn deeply_nested_json() {
    let depth = 10_000;
    let arrays = "[".repeat(depth) + &"]".repeat(depth);
    bad_request(&arrays);
    let inside_args = format!(
        r#"{{"type":"Mutation","requestId":0,"udfPath":"m:f","args":[{{"a":{}}}]}}"#,
        arrays
    );
    bad_request(&inside_args);
    let objects = "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth);
    bad_request(&objects);
    // Unbalanced garbage deep input, too.
    bad_request(&"[".repeat(1_000_000));
    bad_request(&"{\"a\":[".repeat(100_000));

    // Depth 64 total is allowed, 65 is not.
    let nest = |levels: usize| {
        // Message object (1) + args array (2) + args object (3) + `levels` arrays.
        format!(
            r#"{{"type":"Mutation","requestId":0,"udfPath":"m:f","args":[{{"a":{}{}}}]}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    assert!(parse_client_message(&nest(61), DEFAULT_MAX_MESSAGE_BYTES).is_ok());
    bad_request(&nest(62));
}

#[test]
fn message_too_large() {
    let text = r#"{"type":"Mutation","requestId":0,"udfPath":"m:f","args":[{}]}"#;
    let err = parse_client_message(text, text.len() - 1).unwrap_err();
    assert_eq!(err.code(), "MessageTooLarge");
    assert!(err.close_reason().starts_with("MessageTooLarge"));
    assert!(parse_client_message(text, text.len()).is_ok());
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Connect"),
            Just("ModifyQuerySet"),
            Just("Mutation"),
            Just("Action"),
            Just("Authenticate"),
            Just("Event"),
            Just("Add"),
            Just("Remove"),
            Just("User"),
            Just("Admin"),
            Just("None"),
            Just("AAAAAAAAAAA="),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(8, 64, 8, |inner| {
        let key = prop_oneof![
            Just("type".to_owned()),
            Just("sessionId".to_owned()),
            Just("connectionCount".to_owned()),
            Just("maxObservedTimestamp".to_owned()),
            Just("baseVersion".to_owned()),
            Just("newVersion".to_owned()),
            Just("modifications".to_owned()),
            Just("queryId".to_owned()),
            Just("requestId".to_owned()),
            Just("udfPath".to_owned()),
            Just("args".to_owned()),
            Just("journal".to_owned()),
            Just("tokenType".to_owned()),
            Just("value".to_owned()),
            Just("impersonating".to_owned()),
            Just("eventType".to_owned()),
            "[a-z]{0,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A message with a valid `type`, so the fuzzer reaches the variant decoders.
fn arb_typed_message() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("Connect"),
            Just("ModifyQuerySet"),
            Just("Mutation"),
            Just("Action"),
            Just("Authenticate"),
            Just("Event"),
        ],
        arb_json(),
    )
        .prop_map(|(ty, body)| {
            let mut obj = match body {
                Value::Object(obj) => obj,
                other => {
                    let mut obj = serde_json::Map::new();
                    obj.insert("args".into(), other);
                    obj
                }
            };
            obj.insert("type".into(), json!(ty));
            Value::Object(obj)
        })
}

fn check_no_panic(text: &str) {
    match parse_client_message(text, 1 << 16) {
        Ok(msg) => {
            // Whatever parses must serialize and parse back to the same value.
            let again = parse_client_message(&msg.to_json_string(), usize::MAX)
                .expect("re-parse of serialized message");
            assert_eq!(again, msg);
            check_valid(&msg);
        }
        Err(err) => {
            assert!(!err.code().is_empty());
            assert!(err.close_reason().len() <= 123);
        }
    }
}

fn check_valid(msg: &ClientMessage) {
    match msg {
        ClientMessage::Mutation { args, .. } | ClientMessage::Action { args, .. } => {
            assert!(protocol::args_object(args).is_ok());
        }
        ClientMessage::ModifyQuerySet { modifications, .. } => {
            for m in modifications {
                if let protocol::QuerySetModification::Add { args, .. } = m {
                    assert!(protocol::args_object(args).is_ok());
                }
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(text in ".{0,200}") {
        check_no_panic(&text);
    }

    #[test]
    fn arbitrary_bracket_soup_never_panics(text in r#"[\[\]{}",:a-z0-9\\ ]{0,400}"#) {
        check_no_panic(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        check_no_panic(&value.to_string());
    }

    #[test]
    fn arbitrary_typed_messages_never_panic(value in arb_typed_message()) {
        check_no_panic(&value.to_string());
    }

    #[test]
    fn truncated_valid_messages_never_panic(cut in 0usize..200) {
        let text = r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"messages:list","args":[{"a":{"$integer":"AQAAAAAAAAA="}}],"journal":null},{"type":"Remove","queryId":3}]}"#;
        let cut = cut.min(text.len());
        check_no_panic(&text[..cut]);
    }
}
