use super::*;

fn frames(texts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in texts {
        push_frame(t, &mut out);
    }
    out
}

#[test]
fn frames_come_out_whole_however_the_stream_is_cut() {
    let texts = ["{\"a\":1}", "{\"b\":\"ü\"}", "{}"];
    let bytes = frames(&texts);
    for cut in 1..bytes.len() {
        let mut r = FrameReader::new();
        let mut got = Vec::new();
        for chunk in bytes.chunks(cut) {
            r.feed(chunk);
            while let Some(t) = r.next_frame().unwrap() {
                got.push(t.to_owned());
            }
        }
        assert_eq!(got, texts, "cut every {cut} bytes");
        assert_eq!(r.buffered(), 0);
    }
}

#[test]
fn oversize_empty_and_non_utf8_frames_are_refused() {
    let mut r = FrameReader::new();
    r.feed(&u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes());
    assert_eq!(r.next_frame().unwrap_err(), NativeError::FrameSize { len: MAX_FRAME + 1 });
    let mut r = FrameReader::new();
    r.feed(&[0, 0, 0, 0]);
    assert!(r.next_frame().is_err());
    let mut r = FrameReader::new();
    r.feed(&[0, 0, 0, 3, b'a', 0xff, b'b']);
    assert_eq!(r.next_frame().unwrap_err(), NativeError::NotUtf8 { at: 1 });
    // A frame claiming the whole limit is not allocated until it arrives... only reserved once.
    let mut r = FrameReader::new();
    r.feed(&u32::try_from(MAX_FRAME).unwrap().to_be_bytes());
    assert_eq!(r.next_frame().unwrap(), None);
}

#[test]
fn hellos_are_checked() {
    let h = parse_hello(&hello("abc", "tessera-client/0.1")).unwrap();
    assert_eq!(h.proof, Proof::Token("abc".into()));
    assert_eq!(h.client.as_deref(), Some("tessera-client/0.1"));
    let cases = [
        ("nope", "not JSON"),
        (r#"{"type":"bus.publish","payload":{}}"#, "must be \"hello\", not \"bus.publish\""),
        (r#"{"type":"hello","payload":{"protocol":2,"token":"x"}}"#, "protocol 2 is not spoken here"),
        (r#"{"type":"hello","payload":{"protocol":1}}"#, "no \"token\""),
        (r#"{"type":"hello","payload":{"protocol":1,"token":""}}"#, "1 to 256"),
        (r#"{"type":"hello","payload":{"protocol":1,"token":7}}"#, "1 to 256"),
        (r#"{"type":"hello","payload":{"protocol":1,"credential":"x"}}"#, "the JSON object IT issued"),
        (r#"{"type":"hello","payload":{"protocol":1,"token":"t","credential":{}}}"#, "not both"),
        (r#"{"type":"hello"}"#, "no \"payload\""),
    ];
    for (text, want) in cases {
        let e = parse_hello(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
    let c = parse_hello(&hello_with_credential(&serde_json::json!({"app": "oms"}), "x")).unwrap();
    assert_eq!(c.proof, Proof::Credential(serde_json::json!({"app": "oms"})));
    assert_eq!(parse_proof(&proof("abcd")).unwrap(), "abcd");
    assert!(parse_proof(r#"{"type":"hello"}"#).is_err());
    assert!(parse_proof(r#"{"type":"proof","payload":{}}"#).is_err());
    let long = "é".repeat(300);
    let h = parse_hello(&hello("t", &long)).unwrap();
    assert_eq!(h.client.unwrap().chars().count(), 100);
}

proptest::proptest! {
    /// Arbitrary bytes, arbitrarily cut, never panic the reader, and what it returns is exactly
    /// the frames that were whole.
    #[test]
    fn arbitrary_streams_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), cut in 1usize..50) {
        let mut r = FrameReader::new();
        'outer: for chunk in bytes.chunks(cut) {
            r.feed(chunk);
            loop {
                match r.next_frame() {
                    Ok(Some(t)) => { let _ = parse_hello(t); }
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
    }
}
