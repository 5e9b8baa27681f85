use super::*;

#[test]
fn a_plain_get_is_read_and_everything_else_refused() {
    let r = parse_request(b"GET /health/ready?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    assert_eq!((r.method, r.path.as_str(), r.query.as_deref()), (Method::Get, "/health/ready", Some("x=1")));
    assert_eq!(parse_request(b"HEAD / HTTP/1.0\r\n\r\n").unwrap().method, Method::Head);
    for (head, want) in [
        (&b"POST / HTTP/1.1\r\n\r\n"[..], HttpError::Method),
        (b"GET http://evil/ HTTP/1.1\r\n\r\n", HttpError::Path),
        (b"GET /a\x01b HTTP/1.1\r\n\r\n", HttpError::Path),
        (b"GET / HTTP/2\r\n\r\n", HttpError::Malformed),
        (b"GET /  HTTP/1.1\r\n\r\n", HttpError::Malformed),
        (b"\xff\xfe\r\n\r\n", HttpError::Malformed),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", HttpError::Malformed),
        (b"get / HTTP/1.1\r\n\r\n", HttpError::Malformed),
    ] {
        assert_eq!(parse_request(head), Err(want.clone()), "{}", String::from_utf8_lossy(head));
    }
    let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(parse_request(huge.as_bytes()), Err(HttpError::TooLarge));
    assert_eq!(HttpError::TooLarge.status(), 431);
}

#[test]
fn a_response_says_its_length_and_head_leaves_the_body_out() {
    let r = Response::json(503, "{\"status\":\"degraded\"}".into());
    let text = String::from_utf8(r.to_bytes(false)).unwrap();
    assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    assert!(text.contains("Content-Length: 21\r\n") && text.ends_with("{\"status\":\"degraded\"}"));
    assert!(String::from_utf8(r.to_bytes(true)).unwrap().ends_with("\r\n\r\n"));
}
