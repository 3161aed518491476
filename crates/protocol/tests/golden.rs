//! Golden tests: the exact JSON examples of the protocol reference
//! (`convex-protocol.md`) parse into the expected types and serialize back.

use protocol::{
    AuthToken, ClientMessage, DEFAULT_MAX_MESSAGE_BYTES, FunctionFailure, FunctionSuccess,
    MutationSuccess, QuerySetModification, ServerMessage, StateModification, StateVersion, WireTs,
    parse_client_message, split_transition,
};
use serde_json::{Value, json};

const TS_A: &str = "QLGsOrMV6xg=";
const TS_B: &str = "wGL8O7MV6xg=";

fn parse(text: &str) -> ClientMessage {
    parse_client_message(text, DEFAULT_MAX_MESSAGE_BYTES)
        .unwrap_or_else(|e| panic!("failed to parse {text}: {e}"))
}

/// Parses, re-serializes, and parses again: the struct survives the round trip.
fn client_round_trip(text: &str) -> ClientMessage {
    let msg = parse(text);
    let again = parse(&msg.to_json_string());
    assert_eq!(msg, again, "round trip of {text}");
    msg
}

fn server_golden(msg: &ServerMessage, expected: &str) {
    assert_eq!(msg.to_json_string(), expected);
    let back: ServerMessage = serde_json::from_str(expected).unwrap();
    assert_eq!(&back, msg);
}

#[test]
fn connect() {
    let text = r#"{"type":"Connect","sessionId":"21083fee-c5a7-4c72-8906-2eadefbaae47","connectionCount":0,
 "lastCloseReason":"InitialConnect","clientTs":1795552736112,
 "maxObservedTimestamp":"wGL8O7MV6xg="}"#;
    let msg = client_round_trip(text);
    assert_eq!(
        msg,
        ClientMessage::Connect {
            session_id: "21083fee-c5a7-4c72-8906-2eadefbaae47".into(),
            connection_count: 0,
            last_close_reason: Some("InitialConnect".into()),
            client_ts: Some(1795552736112.0),
            max_observed_timestamp: Some(WireTs(1_795_552_735_987_000_000)),
        }
    );
    // Key order differs from the client's, but the JSON is the same.
    let reparsed: Value = serde_json::from_str(&msg.to_json_string()).unwrap();
    let original: Value = serde_json::from_str(text).unwrap();
    assert_eq!(reparsed, original);

    let null_reason =
        parse(r#"{"type":"Connect","sessionId":"s","connectionCount":3,"lastCloseReason":null}"#);
    assert_eq!(
        null_reason,
        ClientMessage::Connect {
            session_id: "s".into(),
            connection_count: 3,
            last_close_reason: None,
            client_ts: None,
            max_observed_timestamp: None,
        }
    );
}

#[test]
fn modify_query_set_with_journal_null_and_absent() {
    let text = r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[
  {"type":"Add","queryId":0,"udfPath":"messages:list","args":[{}],"journal":null},
  {"type":"Remove","queryId":3}]}"#;
    let msg = client_round_trip(text);
    assert_eq!(
        msg,
        ClientMessage::ModifyQuerySet {
            base_version: 0,
            new_version: 1,
            modifications: vec![
                QuerySetModification::Add {
                    query_id: 0,
                    udf_path: "messages:list".into(),
                    args: vec![json!({})],
                    journal: None,
                    component_path: None,
                },
                QuerySetModification::Remove { query_id: 3 },
            ],
        }
    );

    let absent = r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"messages:list","args":[{}]}]}"#;
    let msg = parse(absent);
    assert_eq!(msg.to_json_string(), absent);

    let with_journal = parse(
        r#"{"type":"ModifyQuerySet","baseVersion":1,"newVersion":2,"modifications":[{"type":"Add","queryId":7,"udfPath":"m:q","args":[{"paginationOpts":{"numItems":10,"cursor":null,"id":3}}],"journal":"abc","componentPath":"comp"}]}"#,
    );
    let ClientMessage::ModifyQuerySet { modifications, .. } = with_journal else {
        panic!()
    };
    assert_eq!(
        modifications[0],
        QuerySetModification::Add {
            query_id: 7,
            udf_path: "m:q".into(),
            args: vec![json!({"paginationOpts":{"numItems":10,"cursor":null,"id":3}})],
            journal: Some("abc".into()),
            component_path: Some("comp".into()),
        }
    );
}

#[test]
fn mutation_and_action() {
    let mutation =
        r#"{"type":"Mutation","requestId":0,"udfPath":"messages:send","args":[{"body":"hi"}]}"#;
    let msg = parse(mutation);
    assert_eq!(
        msg,
        ClientMessage::Mutation {
            request_id: 0,
            udf_path: "messages:send".into(),
            args: vec![json!({"body":"hi"})],
            component_path: None,
        }
    );
    assert_eq!(msg.to_json_string(), mutation);

    let action = r#"{"type":"Action","requestId":1,"udfPath":"messages:echo","args":[{"a":{"$integer":"AQAAAAAAAAA="}}]}"#;
    let msg = parse(action);
    assert_eq!(
        msg,
        ClientMessage::Action {
            request_id: 1,
            udf_path: "messages:echo".into(),
            args: vec![json!({"a":{"$integer":"AQAAAAAAAAA="}})],
            component_path: None,
        }
    );
    assert_eq!(msg.to_json_string(), action);

    // Not canonicalized by the client: passed through as sent.
    let msg = parse(r#"{"type":"Mutation","requestId":5,"udfPath":"messages","args":[{}]}"#);
    let ClientMessage::Mutation { udf_path, .. } = msg else {
        panic!()
    };
    assert_eq!(udf_path, "messages");
}

#[test]
fn authenticate() {
    let user = r#"{"type":"Authenticate","baseVersion":0,"tokenType":"User","value":"<JWT>"}"#;
    let msg = parse(user);
    assert_eq!(
        msg,
        ClientMessage::Authenticate {
            base_version: 0,
            token: AuthToken::User("<JWT>".into()),
        }
    );
    assert_eq!(msg.to_json_string(), user);

    let none = r#"{"type":"Authenticate","baseVersion":1,"tokenType":"None"}"#;
    let msg = parse(none);
    assert_eq!(
        msg,
        ClientMessage::Authenticate {
            base_version: 1,
            token: AuthToken::None,
        }
    );
    assert_eq!(msg.to_json_string(), none);

    let admin = r#"{"type":"Authenticate","baseVersion":0,"tokenType":"Admin","value":"<admin key>","impersonating":{"subject":"u1","issuer":"https://example.com"}}"#;
    let msg = parse(admin);
    assert_eq!(
        msg,
        ClientMessage::Authenticate {
            base_version: 0,
            token: AuthToken::Admin {
                key: "<admin key>".into(),
                impersonating: Some(json!({"subject":"u1","issuer":"https://example.com"})),
            },
        }
    );
    assert_eq!(msg.to_json_string(), admin);

    let admin_plain =
        parse(r#"{"type":"Authenticate","baseVersion":2,"tokenType":"Admin","value":"k"}"#);
    assert_eq!(
        admin_plain,
        ClientMessage::Authenticate {
            base_version: 2,
            token: AuthToken::Admin {
                key: "k".into(),
                impersonating: None,
            },
        }
    );

    // `value` is ignored for "None"; required for "User"/"Admin".
    assert!(
        parse_client_message(
            r#"{"type":"Authenticate","baseVersion":1,"tokenType":"None","value":"x"}"#,
            1000
        )
        .is_ok()
    );
    for bad in [
        r#"{"type":"Authenticate","baseVersion":0,"tokenType":"User"}"#,
        r#"{"type":"Authenticate","baseVersion":0,"tokenType":"Admin"}"#,
        r#"{"type":"Authenticate","baseVersion":0,"tokenType":"User","value":5}"#,
        r#"{"type":"Authenticate","baseVersion":0,"tokenType":"Root","value":"x"}"#,
        r#"{"type":"Authenticate","baseVersion":0}"#,
        r#"{"type":"Authenticate","tokenType":"None"}"#,
    ] {
        let err = parse_client_message(bad, 1000).unwrap_err();
        assert_eq!(err.code(), "BadRequest", "{bad}");
    }
}

#[test]
fn event() {
    for event_type in [
        "ClientConnect",
        "ClientReceivedTransition",
        "NetworkRecoveryReconnect",
    ] {
        let text = format!(
            r#"{{"type":"Event","eventType":"{event_type}","event":{{"connectionCount":1}}}}"#
        );
        let msg = parse(&text);
        assert_eq!(
            msg,
            ClientMessage::Event {
                event_type: event_type.into(),
                event: json!({"connectionCount":1}),
            }
        );
        assert_eq!(msg.to_json_string(), text);
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let msg = parse(
        r#"{"type":"Mutation","requestId":0,"udfPath":"m:f","args":[{}],"futureField":{"x":[1,2]},"another":null}"#,
    );
    assert_eq!(msg.type_name(), "Mutation");
    let msg = parse(
        r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Remove","queryId":1,"extra":true}],"x":1}"#,
    );
    assert_eq!(msg.type_name(), "ModifyQuerySet");
}

fn transition_example() -> ServerMessage {
    ServerMessage::Transition {
        start_version: StateVersion::initial(),
        end_version: StateVersion {
            query_set: 1,
            identity: 0,
            ts: WireTs::decode(TS_A).unwrap(),
        },
        modifications: vec![
            StateModification::QueryUpdated {
                query_id: 0,
                value: json!([{"_id":"m0","n":{"$integer":"AQAAAAAAAAA="}}]).into(),
                log_lines: vec!["[LOG] 'x'".into()],
                journal: None,
            },
            StateModification::QueryFailed {
                query_id: 1,
                error_message: "boom".into(),
                log_lines: vec![],
                journal: None,
                error_data: Some(json!({"code":"NOPE"})),
            },
            StateModification::QueryRemoved { query_id: 2 },
        ],
        client_clock_skew: Some(0),
        server_ts: Some(1_795_552_735_912_000_000),
    }
}

#[test]
fn transition() {
    let expected = concat!(
        r#"{"type":"Transition","#,
        r#""startVersion":{"querySet":0,"identity":0,"ts":"AAAAAAAAAAA="},"#,
        r#""endVersion":{"querySet":1,"identity":0,"ts":"QLGsOrMV6xg="},"#,
        r#""modifications":["#,
        r#"{"type":"QueryUpdated","queryId":0,"value":[{"_id":"m0","n":{"$integer":"AQAAAAAAAAA="}}],"logLines":["[LOG] 'x'"],"journal":null},"#,
        r#"{"type":"QueryFailed","queryId":1,"errorMessage":"boom","logLines":[],"journal":null,"errorData":{"code":"NOPE"}},"#,
        r#"{"type":"QueryRemoved","queryId":2}],"#,
        r#""clientClockSkew":0,"serverTs":1795552735912000000}"#
    );
    server_golden(&transition_example(), expected);
}

#[test]
fn query_failed_error_data_omitted_or_null() {
    let without = StateModification::QueryFailed {
        query_id: 4,
        error_message: "[Request ID: abc] Server Error".into(),
        log_lines: vec![],
        journal: Some("j".into()),
        error_data: None,
    };
    let json = serde_json::to_string(&without).unwrap();
    assert_eq!(
        json,
        r#"{"type":"QueryFailed","queryId":4,"errorMessage":"[Request ID: abc] Server Error","logLines":[],"journal":"j"}"#
    );
    assert!(!json.contains("errorData"));
    assert_eq!(
        serde_json::from_str::<StateModification>(&json).unwrap(),
        without
    );

    // ConvexError(null): the key is present with null, and survives parsing.
    let with_null = StateModification::QueryFailed {
        query_id: 4,
        error_message: "e".into(),
        log_lines: vec![],
        journal: None,
        error_data: Some(Value::Null),
    };
    let json = serde_json::to_string(&with_null).unwrap();
    assert_eq!(
        json,
        r#"{"type":"QueryFailed","queryId":4,"errorMessage":"e","logLines":[],"journal":null,"errorData":null}"#
    );
    assert_eq!(
        serde_json::from_str::<StateModification>(&json).unwrap(),
        with_null
    );
}

#[test]
fn transition_without_optional_fields() {
    let t = ServerMessage::Transition {
        start_version: StateVersion {
            query_set: 1,
            identity: 0,
            ts: WireTs::decode(TS_A).unwrap(),
        },
        end_version: StateVersion {
            query_set: 1,
            identity: 1,
            ts: WireTs::decode(TS_B).unwrap(),
        },
        modifications: vec![],
        client_clock_skew: None,
        server_ts: None,
    };
    server_golden(
        &t,
        r#"{"type":"Transition","startVersion":{"querySet":1,"identity":0,"ts":"QLGsOrMV6xg="},"endVersion":{"querySet":1,"identity":1,"ts":"wGL8O7MV6xg="},"modifications":[]}"#,
    );
}

#[test]
fn mutation_responses() {
    server_golden(
        &ServerMessage::MutationResponse {
            request_id: 0,
            result: Ok(MutationSuccess {
                value: json!("m0"),
                ts: WireTs::decode(TS_B).unwrap(),
                log_lines: vec![],
            }),
        },
        r#"{"type":"MutationResponse","requestId":0,"success":true,"result":"m0","ts":"wGL8O7MV6xg=","logLines":[]}"#,
    );
    server_golden(
        &ServerMessage::MutationResponse {
            request_id: 0,
            result: Ok(MutationSuccess {
                value: Value::Null,
                ts: WireTs(1),
                log_lines: vec!["[INFO] done".into()],
            }),
        },
        r#"{"type":"MutationResponse","requestId":0,"success":true,"result":null,"ts":"AQAAAAAAAAA=","logLines":["[INFO] done"]}"#,
    );
    server_golden(
        &ServerMessage::MutationResponse {
            request_id: 0,
            result: Err(FunctionFailure {
                error_message: "<error message string>".into(),
                error_data: None,
                log_lines: vec![],
            }),
        },
        r#"{"type":"MutationResponse","requestId":0,"success":false,"result":"<error message string>","ts":null,"logLines":[]}"#,
    );
    server_golden(
        &ServerMessage::MutationResponse {
            request_id: 9,
            result: Err(FunctionFailure {
                error_message: "nope".into(),
                error_data: Some(json!({"code":"NOPE","n":{"$integer":"AQAAAAAAAAA="}})),
                log_lines: vec!["[ERROR] bad".into()],
            }),
        },
        r#"{"type":"MutationResponse","requestId":9,"success":false,"result":"nope","ts":null,"logLines":["[ERROR] bad"],"errorData":{"code":"NOPE","n":{"$integer":"AQAAAAAAAAA="}}}"#,
    );
    server_golden(
        &ServerMessage::MutationResponse {
            request_id: 9,
            result: Err(FunctionFailure {
                error_message: "nope".into(),
                error_data: Some(Value::Null),
                log_lines: vec![],
            }),
        },
        r#"{"type":"MutationResponse","requestId":9,"success":false,"result":"nope","ts":null,"logLines":[],"errorData":null}"#,
    );

    // Inconsistent shapes are rejected when parsing.
    for bad in [
        r#"{"type":"MutationResponse","requestId":0,"success":true,"result":1,"logLines":[]}"#,
        r#"{"type":"MutationResponse","requestId":0,"success":true,"result":1,"ts":null,"logLines":[]}"#,
        r#"{"type":"MutationResponse","requestId":0,"success":false,"result":1,"ts":null,"logLines":[]}"#,
        r#"{"type":"MutationResponse","requestId":0,"success":true,"result":1,"ts":"AAAAAAAAAAA="}"#,
    ] {
        assert!(serde_json::from_str::<ServerMessage>(bad).is_err(), "{bad}");
    }
}

#[test]
fn action_responses() {
    server_golden(
        &ServerMessage::ActionResponse {
            request_id: 1,
            result: Ok(FunctionSuccess {
                value: json!({"a":{"$integer":"AQAAAAAAAAA="}}),
                log_lines: vec![],
            }),
        },
        r#"{"type":"ActionResponse","requestId":1,"success":true,"result":{"a":{"$integer":"AQAAAAAAAAA="}},"logLines":[]}"#,
    );
    server_golden(
        &ServerMessage::ActionResponse {
            request_id: 1,
            result: Err(FunctionFailure {
                error_message: "<message>".into(),
                error_data: Some(json!({"code":"X"})),
                log_lines: vec![],
            }),
        },
        r#"{"type":"ActionResponse","requestId":1,"success":false,"result":"<message>","logLines":[],"errorData":{"code":"X"}}"#,
    );
    server_golden(
        &ServerMessage::ActionResponse {
            request_id: 2,
            result: Err(FunctionFailure {
                error_message: "m".into(),
                error_data: None,
                log_lines: vec![],
            }),
        },
        r#"{"type":"ActionResponse","requestId":2,"success":false,"result":"m","logLines":[]}"#,
    );
}

#[test]
fn auth_fatal_ping() {
    server_golden(
        &ServerMessage::AuthError {
            error: "<message>".into(),
            base_version: 0,
            auth_update_attempted: true,
        },
        r#"{"type":"AuthError","error":"<message>","baseVersion":0,"authUpdateAttempted":true}"#,
    );
    server_golden(
        &ServerMessage::FatalError {
            error: "<message>".into(),
        },
        r#"{"type":"FatalError","error":"<message>"}"#,
    );
    server_golden(&ServerMessage::Ping, r#"{"type":"Ping"}"#);
}

#[test]
fn transition_chunk() {
    server_golden(
        &ServerMessage::TransitionChunk {
            chunk: r#"{"type":"Trans"#.into(),
            part_number: 0,
            total_parts: 3,
            transition_id: "1234".into(),
        },
        r#"{"type":"TransitionChunk","chunk":"{\"type\":\"Trans","partNumber":0,"totalParts":3,"transitionId":"1234"}"#,
    );

    // Splitting a real Transition and reassembling it as the client does.
    let whole = transition_example().to_json_string();
    let parts = split_transition(whole.clone(), 50);
    assert!(parts.len() > 3);
    let mut assembled = String::new();
    for (i, part) in parts.iter().enumerate() {
        // Every part survives its own wire round trip.
        let wire = part.to_json_string();
        let ServerMessage::TransitionChunk {
            chunk,
            part_number,
            total_parts,
            transition_id,
        } = serde_json::from_str::<ServerMessage>(&wire).unwrap()
        else {
            panic!("not a chunk")
        };
        assert_eq!(part_number as usize, i);
        assert_eq!(total_parts as usize, parts.len());
        assert_eq!(transition_id, whole.len().to_string());
        assert!(chunk.len() <= 50);
        assembled.push_str(&chunk);
    }
    assert_eq!(assembled, whole);
    assert_eq!(
        serde_json::from_str::<ServerMessage>(&assembled).unwrap(),
        transition_example()
    );
}

/// Appendix A: a real exchange between client 1.48.0 and the mock server.
#[test]
fn appendix_a_exchange() {
    // C->S Connect (the client puts "type" in the middle; unknown order is fine).
    let connect = parse(
        r#"{"connectionCount":0,"lastCloseReason":"InitialConnect","clientTs":1795552736112,"type":"Connect","sessionId":"21083fee-c5a7-4c72-8906-2eadefbaae47"}"#,
    );
    assert_eq!(
        connect,
        ClientMessage::Connect {
            session_id: "21083fee-c5a7-4c72-8906-2eadefbaae47".into(),
            connection_count: 0,
            last_close_reason: Some("InitialConnect".into()),
            client_ts: Some(1795552736112.0),
            max_observed_timestamp: None,
        }
    );

    // C->S ModifyQuerySet: serializes back byte for byte.
    let mqs = r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"messages:list","args":[{}]}]}"#;
    assert_eq!(parse(mqs).to_json_string(), mqs);

    // S->C Transition.
    let t1 = ServerMessage::Transition {
        start_version: StateVersion::initial(),
        end_version: StateVersion {
            query_set: 1,
            identity: 0,
            ts: WireTs::decode(TS_A).unwrap(),
        },
        modifications: vec![StateModification::QueryUpdated {
            query_id: 0,
            value: json!([]).into(),
            log_lines: vec!["[LOG] 'ran query'".into()],
            journal: None,
        }],
        client_clock_skew: Some(0),
        server_ts: Some(1_795_552_735_912_000_000),
    };
    server_golden(
        &t1,
        r#"{"type":"Transition","startVersion":{"querySet":0,"identity":0,"ts":"AAAAAAAAAAA="},"endVersion":{"querySet":1,"identity":0,"ts":"QLGsOrMV6xg="},"modifications":[{"type":"QueryUpdated","queryId":0,"value":[],"logLines":["[LOG] 'ran query'"],"journal":null}],"clientClockSkew":0,"serverTs":1795552735912000000}"#,
    );

    // C->S Mutation: byte for byte.
    let mutation =
        r#"{"type":"Mutation","requestId":0,"udfPath":"messages:send","args":[{"body":"hi"}]}"#;
    assert_eq!(parse(mutation).to_json_string(), mutation);

    // S->C MutationResponse then Transition.
    server_golden(
        &ServerMessage::MutationResponse {
            request_id: 0,
            result: Ok(MutationSuccess {
                value: json!("m0"),
                ts: WireTs::decode(TS_B).unwrap(),
                log_lines: vec![],
            }),
        },
        r#"{"type":"MutationResponse","requestId":0,"success":true,"result":"m0","ts":"wGL8O7MV6xg=","logLines":[]}"#,
    );
    let t2 = ServerMessage::Transition {
        start_version: StateVersion {
            query_set: 1,
            identity: 0,
            ts: WireTs::decode(TS_A).unwrap(),
        },
        end_version: StateVersion {
            query_set: 1,
            identity: 0,
            ts: WireTs::decode(TS_B).unwrap(),
        },
        modifications: vec![StateModification::QueryUpdated {
            query_id: 0,
            value: json!([{"_id":"m0","body":"hi"}]).into(),
            log_lines: vec!["[LOG] 'ran query'".into()],
            journal: None,
        }],
        client_clock_skew: Some(0),
        server_ts: Some(1_795_552_736_000_000_000),
    };
    server_golden(
        &t2,
        r#"{"type":"Transition","startVersion":{"querySet":1,"identity":0,"ts":"QLGsOrMV6xg="},"endVersion":{"querySet":1,"identity":0,"ts":"wGL8O7MV6xg="},"modifications":[{"type":"QueryUpdated","queryId":0,"value":[{"_id":"m0","body":"hi"}],"logLines":["[LOG] 'ran query'"],"journal":null}],"clientClockSkew":0,"serverTs":1795552736000000000}"#,
    );

    // The client's reconnect after a 1006 close.
    let reconnect = parse(
        r#"{"connectionCount":1,"lastCloseReason":"closed with code 1006","maxObservedTimestamp":"wGL8O7MV6xg=","clientTs":1795552740000,"type":"Connect","sessionId":"21083fee-c5a7-4c72-8906-2eadefbaae47"}"#,
    );
    let ClientMessage::Connect {
        connection_count,
        last_close_reason,
        max_observed_timestamp,
        ..
    } = reconnect
    else {
        panic!()
    };
    assert_eq!(connection_count, 1);
    assert_eq!(last_close_reason.as_deref(), Some("closed with code 1006"));
    assert_eq!(max_observed_timestamp, Some(WireTs::decode(TS_B).unwrap()));
    let resend = parse(
        r#"{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"messages:list","args":[{}],"journal":null},{"type":"Add","queryId":1,"udfPath":"messages:count","args":[{}],"journal":null}]}"#,
    );
    let ClientMessage::ModifyQuerySet { modifications, .. } = resend else {
        panic!()
    };
    assert_eq!(modifications.len(), 2);
}
