use super::*;
use tokio::net::UnixListener;

/// A stand-in for the shell's endpoint: frames in and out, by hand.
struct Fake {
    stream: UnixStream,
    reader: FrameReader,
}

impl Fake {
    async fn recv(&mut self) -> Value {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(t) = self.reader.next_frame().unwrap() {
                return serde_json::from_str(t).unwrap();
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk)).await.unwrap().unwrap();
            assert!(n > 0, "the client closed");
            self.reader.feed(&chunk[..n]);
        }
    }

    async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    async fn send_text(&mut self, text: &str) {
        let mut out = Vec::new();
        native::push_frame(text, &mut out);
        self.stream.write_all(&out).await.unwrap();
    }
}

async fn pair(welcome: Value) -> (Result<Client, ClientError>, Fake, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let connect = tokio::spawn({
        let path = path.clone();
        async move { Client::connect(&path, "tok").await }
    });
    let (stream, _) = listener.accept().await.unwrap();
    let mut fake = Fake { stream, reader: FrameReader::new() };
    let hello = fake.recv().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["payload"]["token"], "tok");
    assert_eq!(hello["payload"]["protocol"], 1);
    fake.send(welcome).await;
    (connect.await.unwrap(), fake, dir)
}

fn welcome() -> Value {
    json!({"type": "welcome", "payload": {"protocol": 1, "app": "risk", "instance": 4, "client": 9}})
}

#[tokio::test]
async fn the_bus_round_trips_through_the_connection() {
    let (client, mut shell, _dir) = pair(welcome()).await;
    let client = client.unwrap();
    assert_eq!((client.app(), client.instance()), ("risk", 4));

    client.publish("a.b", &json!({"x": 1})).await.unwrap();
    assert_eq!(shell.recv().await, json!({"type": "bus.publish", "payload": {"topic": "a.b", "data": {"x": 1}}}));

    let mut sub = client.subscribe("a.#").await.unwrap();
    let s = shell.recv().await;
    assert_eq!(s["type"], "bus.subscribe");
    assert_eq!(s["payload"]["pattern"], "a.#");
    let id = s["payload"]["sub"].clone();
    shell
        .send(json!({"type": "bus.deliver", "payload": {"sub": id, "topic": "a.c", "data": [1], "seq": 3, "timestamp": 5, "sender": 2}}))
        .await;
    let m = sub.recv().await.unwrap();
    assert_eq!((m.topic(), m.data(), m.seq), ("a.c", json!([1]), 3));
    assert_eq!(m.json(), "[1]");

    // Deliveries as the shell writes them: read without scanning the data, escapes and all.
    let sub_id = u32::try_from(id.as_u64().unwrap()).unwrap();
    let traced = protocol::TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").ok();
    for (topic, data, trace) in [
        ("a.d", r#"{"t":",\"seq\":1}}"}"#, None),
        ("a.\"q\"", "\"x\"", None),
        ("a.t", "1", traced),
        ("a.\"t\"", "2", traced),
    ] {
        let mut text = Vec::new();
        protocol::envelope::write_delivery_head(sub_id, &mut text);
        let d = protocol::envelope::Delivered {
            topic,
            payload: data.as_bytes(),
            seq: 8,
            timestamp_us: 9_000,
            sender: 4,
            trace,
        };
        protocol::envelope::write_delivery_tail(&d, &mut text);
        shell.send_text(std::str::from_utf8(&text).unwrap()).await;
        let m = sub.recv().await.unwrap();
        assert_eq!((m.topic(), m.json(), m.seq, m.timestamp_ms, m.sender, m.trace), (topic, data, 8, 9, 4, trace));
    }

    // Any data that writes as JSON is sent as it writes.
    #[derive(serde::Serialize)]
    struct Quote<'a> {
        ticker: &'a str,
        px: f64,
    }
    client.publish("a.q", &Quote { ticker: "AAPL", px: 1.5 }).await.unwrap();
    assert_eq!(
        shell.recv().await,
        json!({"type": "bus.publish", "payload": {"topic": "a.q", "data": {"ticker": "AAPL", "px": 1.5}}})
    );
    client.send("oms", "a.s", &json!(2)).await.unwrap();
    assert_eq!(shell.recv().await, json!({"type": "bus.send", "payload": {"app": "oms", "topic": "a.s", "data": 2}}));
    let bad = std::collections::HashMap::from([(vec![1u8], 1)]);
    assert!(matches!(client.publish("a.q", &bad).await, Err(ClientError::Data(_))));

    // The heartbeat is answered by the client itself.
    shell.send(json!({"type": "ping", "payload": {"nonce": 77}})).await;
    assert_eq!(shell.recv().await, json!({"type": "pong", "payload": {"nonce": 77}}));

    // A call, answered.
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.request("svc", "double", &json!({"n": 2}), Duration::from_secs(5)).await }
    });
    let r = shell.recv().await;
    assert_eq!(r["type"], "bus.request");
    shell
        .send(json!({"type": "bus.response", "payload": {"call": r["payload"]["call"], "ok": true, "value": 4}}))
        .await;
    assert_eq!(call.await.unwrap().unwrap(), json!(4));

    // A refused subscription ends, and the refusal is told.
    let mut refusals = client.refusals();
    let mut denied = client.subscribe("secret.#").await.unwrap();
    let s = shell.recv().await;
    let context = format!("subscribe {}", s["payload"]["sub"]);
    shell.send(json!({"type": "bus.refused", "payload": {"context": context, "error": "denied"}})).await;
    assert_eq!(refusals.recv().await.unwrap().error, "denied");
    assert!(denied.recv().await.is_none());

    // Dropping a subscription says so.
    drop(sub);
    assert_eq!(shell.recv().await, json!({"type": "bus.unsubscribe", "payload": {"sub": id}}));

    // The shell's last word closes the client, with its reason.
    shell.send(json!({"type": "error", "payload": {"error": "rate limit"}})).await;
    assert_eq!(client.closed().await, "rate limit");
    let e = client.publish("a", &json!(1)).await.unwrap_err();
    assert!(matches!(&e, ClientError::Closed(why) if why == "rate limit"), "{e}");
}

#[tokio::test]
async fn a_refused_hello_is_an_error_with_the_shells_reason() {
    let (client, _shell, _dir) = pair(json!({"type": "error", "payload": {"error": "the launch token expired"}})).await;
    let e = client.unwrap_err();
    assert!(matches!(&e, ClientError::Refused(r) if r == "the launch token expired"), "{e}");
}

#[tokio::test]
async fn fdc3_requests_meet_their_responses_and_listeners_get_events() {
    let (client, mut shell, _dir) = pair(welcome()).await;
    let client = client.unwrap();
    let fdc3 = client.fdc3();
    let listen = tokio::spawn({
        let fdc3 = fdc3.clone();
        async move { fdc3.add_context_listener(Some("app.chan"), Some("fdc3.instrument")).await }
    });
    let r = shell.recv().await;
    assert_eq!(r["type"], "addContextListenerRequest");
    // The response and a broadcast right behind it: the listener is registered in between.
    shell
        .send(json!({"type": "addContextListenerResponse", "payload": {"listenerUUID": "L1"}, "meta": {"requestUuid": r["meta"]["requestUuid"]}}))
        .await;
    let ctx = json!({"type": "fdc3.instrument", "id": {"ticker": "MSFT"}});
    shell
        .send(json!({"type": "broadcastEvent", "payload": {"channelId": "app.chan", "context": {"type": "fdc3.contact"}, "originatingApp": {"appId": "x"}}, "meta": {}}))
        .await;
    shell
        .send(json!({"type": "broadcastEvent", "payload": {"channelId": "app.chan", "context": ctx, "originatingApp": {"appId": "x"}}, "meta": {}}))
        .await;
    let mut listener = listen.await.unwrap().unwrap();
    let (got, meta) = listener.recv().await.unwrap();
    assert_eq!(got, ctx, "the contact context is not of the listener's type");
    assert_eq!(meta["source"]["appId"], "x");

    // An error answer is the standard's string.
    let find = tokio::spawn({
        let fdc3 = fdc3.clone();
        async move { fdc3.request("findIntentRequest", json!({"intent": "Nope"})).await }
    });
    let r = shell.recv().await;
    shell
        .send(json!({"type": "findIntentResponse", "payload": {"error": "NoAppsFound"}, "meta": {"requestUuid": r["meta"]["requestUuid"]}}))
        .await;
    assert_eq!(find.await.unwrap().unwrap_err(), crate::Fdc3Error::Agent("NoAppsFound".into()));
}
