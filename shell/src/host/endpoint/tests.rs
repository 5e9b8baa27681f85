use super::*;

fn frame(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    native::push_frame(text, &mut out);
    out
}

async fn answer(stream: &mut UnixStream) -> String {
    let mut reader = FrameReader::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(t) = reader.next_frame().unwrap() {
            return t.to_owned();
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed without an answer");
        reader.feed(&chunk[..n]);
    }
}

fn endpoint() -> (Arc<Endpoint>, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("endpoint.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let e = Arc::new(Endpoint::default());
    e.serve(listener, path.clone(), Arc::new(Mutex::new(None)));
    (e, path, dir)
}

#[tokio::test]
async fn a_launch_token_binds_one_connection_once() {
    let (e, path, _dir) = endpoint();
    let (token, accepted) = e.expect("risk", 7, Duration::from_secs(10)).unwrap();
    e.launched(&token, std::process::id());
    let mut c = UnixStream::connect(&path).await.unwrap();
    // The hello and the first message in one write: nothing after the hello is lost.
    let mut bytes = frame(&native::hello(&token, "test"));
    bytes.extend(frame(r#"{"type":"ping","payload":{"nonce":1}}"#));
    c.write_all(&bytes).await.unwrap();
    let mut a = tokio::time::timeout(Duration::from_secs(10), accepted).await.unwrap().unwrap();
    assert_eq!(a.pid, std::process::id());
    assert_eq!(a.reader.next_frame().unwrap(), Some(r#"{"type":"ping","payload":{"nonce":1}}"#));

    // The same token again: refused, with the reason.
    let mut again = UnixStream::connect(&path).await.unwrap();
    again.write_all(&frame(&native::hello(&token, "test"))).await.unwrap();
    let text = answer(&mut again).await;
    assert!(text.contains("not one the shell gave"), "{text}");
}

#[tokio::test]
async fn strangers_and_garbage_are_refused_with_a_reason() {
    let (e, path, _dir) = endpoint();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (frame(&native::hello("forged", "x")), "not one the shell gave"),
        (frame(r#"{"type":"bus.publish","payload":{"topic":"a","data":1}}"#), "must be \\\"hello\\\""),
        (vec![0xff, 0xff, 0xff, 0xff], "frames are 1 to"),
        (frame("not json"), "not JSON"),
        (frame(r#"{"type":"hello","payload":{"protocol":9,"token":"t"}}"#), "protocol 9"),
        // Without an admin policy that trusts a signing key, no credential is any good.
        (frame(r#"{"type":"hello","payload":{"protocol":1,"credential":{"app":"oms"}}}"#), "trusts no signing key"),
    ];
    for (bytes, want) in cases {
        let mut c = UnixStream::connect(&path).await.unwrap();
        c.write_all(&bytes).await.unwrap();
        let text = answer(&mut c).await;
        assert!(text.contains(want), "{want}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "error", "{text}");
    }
    // A token given to another process.
    let mut other = std::process::Command::new("sleep").arg("5").spawn().unwrap();
    let (token, _accepted) = e.expect("risk", 1, Duration::from_secs(10)).unwrap();
    e.launched(&token, other.id());
    let mut c = UnixStream::connect(&path).await.unwrap();
    c.write_all(&frame(&native::hello(&token, "x"))).await.unwrap();
    let text = answer(&mut c).await;
    assert!(text.contains(&format!("given to process {}", other.id())), "{text}");
    let _ = other.kill();
    let _ = other.wait();
    // An expired one.
    let (token, _accepted) = e.expect("risk", 2, Duration::from_millis(1)).unwrap();
    e.launched(&token, std::process::id());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut c = UnixStream::connect(&path).await.unwrap();
    c.write_all(&frame(&native::hello(&token, "x"))).await.unwrap();
    let text = answer(&mut c).await;
    assert!(text.contains("expired"), "{text}");
}

#[test]
fn the_codec_welcomes_then_decodes_envelopes() {
    let mut reader = FrameReader::new();
    reader.feed(&frame(r#"{"type":"bus.unsubscribe","payload":{"sub":4}}"#));
    let mut codec = NativeCodec::new(reader, 42, "risk", 3, Some(br#"{"book":[1]}"#.to_vec()));
    let mut msgs = Vec::new();
    codec.feed(&[], &mut msgs).unwrap();
    assert_eq!(msgs, vec![HostMsg::Hello { protocol: PROTOCOL, pid: 42 }, HostMsg::Unsubscribe { sub: 4 }]);
    msgs.clear();
    let e = codec.feed(&frame(r#"{"type":"tessera.evalResult","payload":{"id":1,"ok":true}}"#), &mut msgs);
    assert!(e.unwrap_err().to_string().contains("not a native app's"));
    let mut enc = codec.encoder();
    let mut bytes = Vec::new();
    enc.push(&ShellMsg::Welcome { client: 9 }, &mut bytes).unwrap();
    enc.push(&ShellMsg::SetVisible(true), &mut bytes).unwrap();
    enc.push(&ShellMsg::Ping { nonce: 2 }, &mut bytes).unwrap();
    enc.finish(&mut bytes);
    let mut r = FrameReader::new();
    r.feed(&bytes);
    let w: serde_json::Value = serde_json::from_str(r.next_frame().unwrap().unwrap()).unwrap();
    assert_eq!(w["payload"]["app"], "risk");
    assert_eq!(w["payload"]["instance"], 3);
    assert_eq!(w["payload"]["state"], serde_json::json!({"book": [1]}));
    assert_eq!(r.next_frame().unwrap(), Some(r#"{"payload":{"nonce":2},"type":"ping"}"#));
    assert_eq!(r.next_frame().unwrap(), None);
}

#[test]
fn a_message_is_encoded_once_for_all_its_subscribers() {
    let broker = broker::Broker::new(broker::BrokerConfig::default());
    let client = broker.connect(None);
    let sub = client.subscribe("px.#", broker::SubscribeOptions::default()).unwrap();
    client.publish("px.a", &br#"{"bid":1.5}"#[..], broker::MessageOptions::default()).unwrap();
    let d = sub.try_recv().unwrap();
    let e = &d.envelope;
    let codec = NativeCodec::new(FrameReader::new(), 1, "risk", 1, None);
    let (mut one, mut other) = (codec.encoder(), codec.encoder());
    let mut bytes = Vec::new();
    one.deliver(3, e, &mut bytes).unwrap();
    assert!(format!("{:?}", e.encoded).contains("bytes"), "the first connection keeps its encoding");
    other.deliver(70, e, &mut bytes).unwrap();
    let mut r = FrameReader::new();
    r.feed(&bytes);
    // Each frame is what the envelope writer makes of the delivery on its own.
    for sub in [3, 70] {
        let mut alone = Vec::new();
        let msg = ShellMsg::Deliver {
            sub,
            seq: e.seq,
            topic: "px.a".into(),
            payload: br#"{"bid":1.5}"#.to_vec(),
            timestamp_us: e.timestamp.0,
            sender: e.sender.client.0,
            trace: None,
        };
        assert!(protocol::envelope::write_shell_message(&msg, &mut alone));
        assert_eq!(r.next_frame().unwrap().unwrap().as_bytes(), &alone[..]);
    }
    assert_eq!(r.next_frame().unwrap(), None);
}
