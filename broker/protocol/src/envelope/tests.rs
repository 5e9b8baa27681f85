use super::*;

#[test]
fn bus_envelopes_become_host_messages() {
    let m = app_message(r#"{"type":"bus.publish","payload":{"topic":"a.b","data":{"x":1},"durable":true}}"#).unwrap();
    assert_eq!(
        m,
        HostMsg::Publish { topic: "a.b".into(), payload: br#"{"x":1}"#.to_vec(), durable: true, ttl_ms: None }
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
fn shell_messages_become_envelopes() {
    let d = ShellMsg::Deliver {
        sub: 1,
        seq: 2,
        topic: "a".into(),
        payload: b"{\"v\":1}".to_vec(),
        timestamp_us: 5_000,
        sender: 4,
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
            let d = ShellMsg::Deliver { sub: 7, seq: 9, topic: topic.clone(), payload: bytes.clone(), timestamp_us: 12_345, sender: 3 };
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
        let HostMsg::Publish { topic: t, payload, ttl_ms, durable } = app_message(&body).unwrap() else { panic!("not a publish") };
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
