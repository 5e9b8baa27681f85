use super::*;

#[test]
fn bus_envelopes_become_host_messages() {
    let m = app_message(r#"{"type":"bus.publish","payload":{"topic":"a.b","data":{"x":1},"durable":true}}"#).unwrap();
    assert_eq!(
        m,
        HostMsg::Publish {
            topic: "a.b".into(),
            payload: br#"{"x":1}"#.to_vec(),
            durable: true,
            ttl_ms: None,
            trace: None
        }
    );
    let m = app_message(
        r#"{"type":"bus.subscribe","payload":{"sub":3,"pattern":"a.#","capacity":0,"policy":"drop_oldest","replay":1}}"#,
    )
    .unwrap();
    assert_eq!(
        m,
        HostMsg::Subscribe { sub: 3, pattern: "a.#".into(), capacity: 1, policy: QueuePolicy::DropOldest, replay: 1 }
    );
    let m = app_message(r#"{"type":"bus.respond","payload":{"service":"s","call":7,"ok":false}}"#).unwrap();
    assert_eq!(m, HostMsg::Respond { service: "s".into(), call: 7, result: Err("the provider failed".into()) });
    assert_eq!(app_message(r#"{"type":"ping","payload":{"nonce":9}}"#).unwrap(), HostMsg::Ping { nonce: 9 });
    assert_eq!(app_message(r#"{"type":"tessera.close"}"#).unwrap(), HostMsg::CloseSelf);
}

#[test]
fn dacp_requests_pass_whole() {
    let body = r#"{"type":"broadcastRequest","payload":{},"meta":{"requestUuid":"1"}}"#;
    assert_eq!(app_message(body).unwrap(), HostMsg::Fdc3 { message: body.to_owned() });
}

#[test]
fn bad_envelopes_say_what_is_wrong() {
    let cases = [
        ("[1,2", "not JSON"),
        ("{}", "no \"type\""),
        (r#"{"type":"bus.publish"}"#, "bus.publish: no \"payload\""),
        (r#"{"type":"bus.publish","payload":{"data":1}}"#, "bus.publish: no \"topic\""),
        (r#"{"type":"bus.publish","payload":{"topic":5,"data":1}}"#, "\"topic\" is not a string"),
        (r#"{"type":"bus.unsubscribe","payload":{"sub":99999999999}}"#, "\"sub\" is too large"),
        (
            r#"{"type":"bus.subscribe","payload":{"sub":1,"pattern":"a","capacity":1,"policy":"lossy"}}"#,
            "\"policy\" is not",
        ),
        (r#"{"type":"bus.serve","payload":{"service":"s","actions":[1]}}"#, "an action is not a string"),
        (r#"{"type":"shell.takeover","payload":{}}"#, "unknown message type \"shell.takeover\""),
    ];
    for (body, want) in cases {
        let e = app_message(body).unwrap_err().to_string();
        assert!(e.contains(want), "{body}: {e}");
    }
    let big = format!(r#"{{"type":"bus.publish","payload":{{"topic":"a","data":"{}"}}}}"#, "x".repeat(MAX_APP_MESSAGE));
    assert!(app_message(&big).unwrap_err().to_string().contains("over the"));
}

#[test]
fn a_page_batch_splits_into_its_envelopes_in_order() {
    let one = r#"{"type":"bus.publish","payload":{"topic":"a","data":1}}"#;
    assert_eq!(app_batch(one).unwrap(), vec![one]);
    let two = r#"{"type":"bus.publish","payload":{"topic":"b","data":[1,"]"]}}"#;
    let batch = format!("[{one}, {two}]");
    assert_eq!(app_batch(&batch).unwrap(), vec![one, two]);
    for (bad, says) in [("[1, 2", "not a JSON array"), ("[{}] x", "not a JSON array"), ("[]]", "not a JSON array")] {
        let e = app_batch(bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let many = format!("[{}]", vec!["{}"; MAX_APP_BATCH + 1].join(","));
    assert!(app_batch(&many).unwrap_err().to_string().contains("4096-message limit"));
    let big = format!("[\"{}\"]", "x".repeat(MAX_APP_BATCH_BYTES));
    assert!(app_batch(&big).unwrap_err().to_string().contains("byte limit"));
    // An element that is not an envelope is the envelope reader's to refuse.
    let odd = app_batch("[3]").unwrap();
    assert!(app_message(odd[0]).is_err());
}

#[test]
fn shell_messages_become_envelopes() {
    let d = ShellMsg::Deliver {
        sub: 1,
        seq: 2,
        topic: "a".into(),
        payload: b"{\"v\":1}".to_vec(),
        timestamp_us: 5_000,
        sender: 4,
        trace: None,
    };
    let v: Value = serde_json::from_str(&shell_message(&d).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"type":"bus.deliver","payload":{"sub":1,"topic":"a","data":{"v":1},"seq":2,"timestamp":5,"sender":4}})
    );
    let r = ShellMsg::Response { call: 3, result: Err("timed out".into()) };
    let v: Value = serde_json::from_str(&shell_message(&r).unwrap()).unwrap();
    assert_eq!(v["payload"], json!({"call":3,"ok":false,"error":"timed out"}));
    // Bytes that are not JSON reach an app as a string.
    assert_eq!(app_value(b"\xffraw"), Value::String("\u{fffd}raw".into()));
    assert_eq!(shell_message(&ShellMsg::Fdc3 { message: "{\"type\":\"x\"}".into() }).unwrap(), "{\"type\":\"x\"}");
    assert!(shell_message(&ShellMsg::SetVisible(true)).is_none());
}

proptest::proptest! {
    /// Whatever bytes arrive, the parser answers (never panics), and a publish's data comes out
    /// as the JSON the app sent.
    #[test]
    fn any_text_is_answered(body in ".{0,200}") {
        let _ = app_message(&body);
    }

    /// A delivery written directly is the JSON the general path would write, whatever the bytes
    /// and the topic.
    #[test]
    fn deliveries_are_written_as_json(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                                      json_text in "[\\[\\]{}\",:0-9a-z .-]{0,40}", topic in ".{0,20}") {
        for bytes in [payload.clone(), json_text.clone().into_bytes()] {
            let d = ShellMsg::Deliver { sub: 7, seq: 9, topic: topic.clone(), payload: bytes.clone(), timestamp_us: 12_345, sender: 3, trace: None };
            let text = shell_message(&d).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(&v["payload"]["data"], &app_value(&bytes));
            proptest::prop_assert_eq!(&v["payload"]["topic"], &Value::String(topic.clone()));
            proptest::prop_assert_eq!(v["payload"]["timestamp"].as_u64(), Some(12));
        }
    }

    /// The fast path reads a publish as the general path does.
    #[test]
    fn a_publish_reads_the_same_either_way(topic in "[a-z]{1,8}", n in proptest::num::i64::ANY, ws in "[ \n]{0,3}") {
        let body = format!(r#"{{"type":"bus.publish","payload":{{"topic":"{topic}","data":{ws}{{"n":{n}}}{ws},"ttlMs":5}}}}"#);
        let HostMsg::Publish { topic: t, payload, ttl_ms, durable, .. } = app_message(&body).unwrap() else { panic!("not a publish") };
        proptest::prop_assert_eq!(t, topic);
        proptest::prop_assert_eq!(app_value(&payload), json!({ "n": n }));
        proptest::prop_assert_eq!((ttl_ms, durable), (Some(5), false));
    }

    #[test]
    fn publish_data_round_trips(topic in "[a-z]{1,8}(\\.[a-z]{1,8}){0,3}", n in proptest::num::i64::ANY, s in ".{0,40}") {
        let data = json!({ "n": n, "s": s });
        let body = json!({ "type": "bus.publish", "payload": { "topic": topic, "data": data } }).to_string();
        let HostMsg::Publish { payload, .. } = app_message(&body).unwrap() else { panic!("not a publish") };
        proptest::prop_assert_eq!(app_value(&payload), data);
    }
}

use proptest::strategy::Strategy as _;

/// A delivery as the shell writes it, for `sub`.
fn written(sub: u32, d: &Delivered<'_>) -> String {
    let mut out = Vec::new();
    write_delivery_head(sub, &mut out);
    write_delivery_tail(d, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn a_delivery_is_read_without_its_data_being_scanned() {
    let d = Delivered {
        topic: "px.a",
        payload: br#"{"seq":5,"x":",\"seq\":1}}"}"#,
        seq: 9,
        timestamp_us: 7_000,
        sender: 3,
        trace: None,
    };
    let text = written(12, &d);
    let r = read_delivery(&text).unwrap();
    assert_eq!((r.sub, &text[r.topic.clone()], r.seq, r.timestamp_ms, r.sender), (12, "px.a", 9, 7, 3));
    assert_eq!(&text[r.data], r#"{"seq":5,"x":",\"seq\":1}}"}"#);
    // Not bytes: a string of them.
    let text = written(1, &Delivered { payload: b"\xff", ..d });
    assert_eq!(&text[read_delivery(&text).unwrap().data], "\"\u{fffd}\"");
}

#[test]
fn anything_else_is_left_to_the_json_reader() {
    // (Data with more after it is read as the data: it is not scanned; the shell never
    // writes that.)
    let twice =
        r#"{"type":"bus.deliver","payload":{"sub":1,"topic":"a","data":1,"sub":9,"seq":2,"timestamp":3,"sender":4}}"#;
    assert_eq!(&twice[read_delivery(twice).unwrap().data], r#"1,"sub":9"#);
    let d = Delivered { topic: "a", payload: b"1", seq: 1, timestamp_us: 1_000, sender: 1, trace: None };
    let text = written(1, &d);
    for bad in [
        String::new(),
        text.replace("\"sub\":1", "\"sub\":4294967296"),
        text.replace("\"sub\":1", "\"sub\":"),
        text.replace("\"seq\":1", "\"seq\":99999999999999999999"),
        text.replace("\"data\":1", "\"data\":"),
        text.replace("\"topic\":\"a\"", "\"topic\":\"a\\\"b\""),
        text.replace("\"topic\":\"a\"", "\"topic\":\"a"),
        text.trim_end_matches('}').to_owned(),
        text.replace("bus.deliver", "bus.direct"),
        format!("{text} "),
    ] {
        assert_eq!(read_delivery(&bad), None, "{bad}");
    }
}

proptest::proptest! {
    #[test]
    fn deliveries_read_as_json_reads_them(
        sub in proptest::num::u32::ANY,
        topic in "[a-zA-Z0-9_$-]{1,8}(\\.[a-zA-Z0-9_$*#-]{1,8}){0,3}",
        payload in proptest::collection::vec(proptest::num::u8::ANY, 0..48),
        json in proptest::prop_oneof![
            proptest::strategy::Just(String::new()),
            ".{0,24}".prop_map(|s| Value::String(s).to_string()),
            proptest::num::i64::ANY.prop_map(|n| json!({ "seq": n, "d": [n, ",\"seq\":1}}"] }).to_string()),
        ],
        seq in proptest::num::u64::ANY,
        timestamp_us in proptest::num::u64::ANY,
        sender in proptest::num::u64::ANY,
        trace in proptest::option::of((1u128.., 1u64.., proptest::num::u8::ANY)),
    ) {
        let payload = if json.is_empty() { payload } else { json.into_bytes() };
        let trace = trace.map(|(t, s, f)| TraceParent { trace_id: t, span_id: s, flags: f });
        let text = written(sub, &Delivered { topic: &topic, payload: &payload, seq, timestamp_us, sender, trace });
        let v: Value = serde_json::from_str(&text).unwrap();
        let r = read_delivery(&text).unwrap();
        let p = &v["payload"];
        proptest::prop_assert_eq!(p["sub"].as_u64(), Some(u64::from(r.sub)));
        proptest::prop_assert_eq!(p["topic"].as_str(), Some(&text[r.topic.clone()]));
        proptest::prop_assert_eq!(&serde_json::from_str::<Value>(&text[r.data.clone()]).unwrap(), &p["data"]);
        proptest::prop_assert_eq!((p["seq"].as_u64(), p["timestamp"].as_u64(), p["sender"].as_u64()),
            (Some(r.seq), Some(r.timestamp_ms), Some(r.sender)));
        proptest::prop_assert_eq!(p["traceparent"].as_str().map(|t| TraceParent::parse(t).unwrap()), r.trace);
        proptest::prop_assert_eq!(r.trace, trace);
    }

    #[test]
    fn a_damaged_delivery_is_never_misread(cut in 0usize..200, insert in ".{0,3}", n in proptest::num::u32::ANY) {
        let trace = (n % 2 == 0).then(|| TraceParent::new(u128::from(n) + 1, 7, true));
        let d = Delivered { topic: "t.u", payload: br#"{"a":[1,2]}"#, seq: u64::from(n), timestamp_us: 5_000, sender: 2, trace };
        let text = written(n, &d);
        let at = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
        let damaged = format!("{}{insert}{}", &text[..at], &text[at..]);
        // Where the fast reader finds data that is one JSON value, the whole is JSON and the
        // JSON reader agrees on every number and the topic.
        if let Some(r) = read_delivery(&damaged)
            && serde_json::from_str::<Value>(&damaged[r.data.clone()]).is_ok()
        {
            let v: Value = serde_json::from_str(&damaged).unwrap();
            let p = &v["payload"];
            proptest::prop_assert_eq!(p["sub"].as_u64(), Some(u64::from(r.sub)));
            proptest::prop_assert_eq!(p["topic"].as_str(), Some(&damaged[r.topic.clone()]));
            proptest::prop_assert_eq!((p["seq"].as_u64(), p["sender"].as_u64()), (Some(r.seq), Some(r.sender)));
        }
    }
}

#[test]
fn console_lines_are_read_with_their_level_and_cut_to_size() {
    let line = |level: &str, text: &str| {
        app_message(
            &serde_json::json!({ "type": "tessera.console", "payload": { "level": level, "text": text } }).to_string(),
        )
    };
    assert_eq!(line("log", "hi").unwrap(), HostMsg::Console { level: ConsoleLevel::Info, text: "hi".into() });
    assert_eq!(line("error", "x").unwrap(), HostMsg::Console { level: ConsoleLevel::Error, text: "x".into() });
    let long = "é".repeat(MAX_CONSOLE_TEXT);
    let HostMsg::Console { text, .. } = line("warn", &long).unwrap() else { panic!() };
    assert!(text.len() <= MAX_CONSOLE_TEXT && text.chars().all(|c| c == 'é'));
    let e = line("shout", "x").unwrap_err();
    assert!(e.to_string().contains("not a console level"), "{e}");
}

#[test]
fn a_publish_may_carry_a_traceparent() {
    const T: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = format!(r#"{{"type":"bus.publish","payload":{{"topic":"a","data":1,"traceparent":"{T}"}}}}"#);
    let HostMsg::Publish { trace, .. } = app_message(&body).unwrap() else { panic!("not a publish") };
    assert_eq!(trace, Some(TraceParent::parse(T).unwrap()));
    // The general path reads it the same (the data before the type).
    let body = format!(r#"{{"payload":{{"topic":"a","traceparent":"{T}","data":1}},"type":"bus.publish","x":1}}"#);
    let HostMsg::Publish { trace: again, .. } = app_message(&body).unwrap() else { panic!("not a publish") };
    assert_eq!(again, trace);
    for (bad, why) in
        [(r#""00-0""#, "bus.publish: \"traceparent\" is not a W3C traceparent: shorter"), ("5", "not a string")]
    {
        let body = format!(r#"{{"type":"bus.publish","payload":{{"topic":"a","data":1,"traceparent":{bad}}}}}"#);
        let e = app_message(&body).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    let null = r#"{"type":"bus.publish","payload":{"topic":"a","data":1,"traceparent":null}}"#;
    assert!(matches!(app_message(null).unwrap(), HostMsg::Publish { trace: None, .. }));
}

#[test]
fn a_delivery_says_its_trace_and_is_still_read_fast() {
    let trace = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").ok();
    let d = Delivered { topic: "a", payload: br#"{"v":1}"#, seq: 2, timestamp_us: 5_000, sender: 4, trace };
    let text = written(1, &d);
    assert!(
        text.contains(
            r#""data":{"v":1},"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","seq":2"#
        ),
        "{text}"
    );
    let r = read_delivery(&text).unwrap();
    assert_eq!((&text[r.data.clone()], r.trace), (r#"{"v":1}"#, trace));
    // A damaged one is left to the JSON reader.
    assert_eq!(read_delivery(&text.replace("-01\"", "-0x\"")), None);
}

#[test]
fn an_answer_is_matched_to_its_request_by_the_dacp_request_id() {
    let response =
        r#"{"meta":{"requestUuid":"r-1","responseUuid":"x","timestamp":"t"},"payload":{},"type":"broadcastResponse"}"#;
    assert_eq!(dacp_answered(response).as_deref(), Some("r-1"));
    // Keys in any order, and escapes in the id, are read as JSON.
    let response = r#"{"type":"raiseIntentResponse","payload":{},"meta":{"requestUuid":"r\u002d2"}}"#;
    assert_eq!(dacp_answered(response).as_deref(), Some("r-2"));
}

#[test]
fn events_requests_and_what_is_not_a_dacp_message_answer_nothing() {
    for text in [
        r#"{"meta":{"eventUuid":"e"},"payload":{},"type":"broadcastEvent"}"#,
        r#"{"meta":{"requestUuid":"r"},"payload":{},"type":"broadcastRequest"}"#,
        r#"{"payload":{},"type":"broadcastResponse"}"#,
        r#"{"meta":{"requestUuid":7},"type":"broadcastResponse"}"#,
        r#"{"meta":null,"type":"broadcastResponse"}"#,
        r#"{"type":"broadcastResponse","meta":{"requestUuid":"r"}"#,
        "",
        "[]",
    ] {
        assert_eq!(dacp_answered(text), None, "{text}");
    }
}

#[test]
fn a_requests_id_is_its_request_uuid() {
    let request = r#"{"type":"broadcastRequest","payload":{"channelId":"c","context":{"type":"t"}},"meta":{"requestUuid":"abc","timestamp":"t"}}"#;
    assert_eq!(dacp_request_id(request).as_deref(), Some("abc"));
    assert_eq!(dacp_request_id(r#"{"type":"broadcastRequest","payload":{}}"#), None);
    assert_eq!(dacp_request_id("not json"), None);
}
