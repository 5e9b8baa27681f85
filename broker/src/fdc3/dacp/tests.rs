use super::*;

fn check(text: &str, expect: Result<(RequestType, &str), Fdc3Error>) {
    let got = Request::parse(text).map(|r| (r.kind, r.uuid));
    assert_eq!(got, expect.map(|(k, u)| (k, u.to_owned())), "{text}");
}

#[test]
fn requests_parse_once_into_their_type() {
    check(
        r#"{"type":"broadcastRequest","payload":{"channelId":"x"},"meta":{"requestUuid":"u1"}}"#,
        Ok((RequestType::Broadcast, "u1")),
    );
    check(r#"{"type":"getInfoRequest","meta":{"requestUuid":"u2"}}"#, Ok((RequestType::GetInfo, "u2")));
    check(r#"{"type":"openRequest","payload":null,"meta":{"requestUuid":"u3"}}"#, Ok((RequestType::Open, "u3")));
    check(r#"{"type":"rmRfRequest","meta":{"requestUuid":"u"}}"#, Err(Fdc3Error::UnknownType("rmRfRequest".into())));
    check(
        r#"{"type":"broadcastResponse","meta":{"requestUuid":"u"}}"#,
        Err(Fdc3Error::UnknownType("broadcastResponse".into())),
    );
    assert!(matches!(Request::parse("[]"), Err(Fdc3Error::Malformed(_))));
    assert!(matches!(Request::parse(r#"{"type":3}"#), Err(Fdc3Error::Malformed(_))));
    assert!(matches!(Request::parse(r#"{"type":"getInfoRequest"}"#), Err(Fdc3Error::Malformed(_))));
    assert!(matches!(
        Request::parse(r#"{"type":"getInfoRequest","payload":[],"meta":{"requestUuid":"u"}}"#),
        Err(Fdc3Error::Malformed(_))
    ));
}

#[test]
fn every_type_names_itself_and_its_response() {
    for (kind, stem) in NAMES {
        assert_eq!(RequestType::from_name(&kind.request_name()), Some(*kind));
        assert_eq!(kind.response_name(), format!("{stem}Response"));
    }
    assert_eq!(NAMES.len(), 26);
}

#[test]
fn a_request_may_say_its_trace() {
    const T: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = Request::parse(&format!(
        r#"{{"type":"broadcastRequest","payload":{{"channelId":"x","metadata":{{"traceId":"mine"}}}},"meta":{{"requestUuid":"u","traceparent":"{T}"}}}}"#
    ))
    .unwrap();
    assert_eq!(r.trace, protocol::TraceParent::parse(T).ok());
    assert_eq!(r.trace_id.as_deref(), Some("mine"));
    let plain = Request::parse(r#"{"type":"getInfoRequest","meta":{"requestUuid":"u"}}"#).unwrap();
    assert_eq!((plain.trace, plain.trace_id), (None, None));
    for (bad, why) in [
        (r#""meta":{"requestUuid":"u","traceparent":"00-x"}"#, "meta.traceparent\" is not a W3C traceparent"),
        (r#""meta":{"requestUuid":"u","traceparent":7}"#, "meta.traceparent\" is not a string"),
        (
            r#""payload":{"metadata":{"traceId":""}},"meta":{"requestUuid":"u"}"#,
            "traceId\" is not a string of 1 to 128",
        ),
        (r#""payload":{"metadata":{"traceId":[1]}},"meta":{"requestUuid":"u"}"#, "traceId\" is not a string"),
    ] {
        let e = Request::parse(&format!(r#"{{"type":"broadcastRequest",{bad}}}"#)).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}
