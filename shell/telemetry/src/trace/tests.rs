use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use super::*;

fn parent(sampled: bool) -> TraceParent {
    TraceParent::new(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736, 0x00f0_67aa_0ba9_02b7, sampled)
}

#[test]
fn off_it_passes_a_trace_on_and_starts_none() {
    let t = Tracer::default();
    assert!(!t.enabled());
    assert_eq!(t.child_of(None), None);
    assert_eq!(t.child_of(Some(parent(true))), Some(parent(true)), "passed on unchanged while nothing records");
    assert!(!t.records(parent(true)));
    assert_eq!(t.in_trace(5), None);
}

#[test]
fn sampling_is_by_ratio_and_follows_the_parent() {
    assert_eq!(bound(0.0), 0);
    assert_eq!(bound(f64::NAN), 0);
    assert_eq!(bound(1.0), u64::MAX);
    assert_eq!(bound(0.5), 1 << 63);
    let (queue, _spans) = flume::bounded(4);
    let t = Tracer::default();
    let set = |ratio: f64| {
        *t.active.write() =
            Some(Arc::new(Active { queue: queue.clone(), endpoint: String::new(), ratio, done: flume::bounded(1).1 }));
        t.bound.store(bound(ratio), Ordering::Relaxed);
        t.on.store(true, Ordering::Relaxed);
    };
    set(1.0);
    assert!((0..100).all(|_| t.child_of(None).is_some_and(TraceParent::sampled)));
    let child = t.child_of(Some(parent(true))).unwrap();
    assert!(child.sampled() && t.records(child));
    assert_eq!(child.trace_id, parent(true).trace_id);
    assert_ne!(child.span_id, parent(true).span_id, "a span of its own");
    assert_eq!(t.child_of(Some(parent(false))), Some(parent(false)), "a parent not sampled passes on as it is");
    assert!(!t.records(parent(false)));
    assert!(t.in_trace(7).is_some_and(TraceParent::sampled));
    set(0.0);
    assert!((0..100).all(|_| t.child_of(None).is_none()));
    assert_eq!(t.in_trace(7), None);
    assert!(t.child_of(Some(parent(true))).unwrap().sampled(), "a sampled parent is recorded whatever the ratio");
    set(0.1);
    let n = (0..20_000).filter(|_| t.child_of(None).is_some()).count();
    assert!((1_600..2_400).contains(&n), "{n} of 20000 at 10%");
}

#[test]
fn ids_are_never_zero_nor_repeated() {
    let ids: std::collections::HashSet<u64> = (0..10_000).map(|_| span_id()).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(!ids.contains(&0));
    assert_ne!(trace_id(), trace_id());
}

fn span() -> Span {
    Span {
        trace_id: 0xab,
        span_id: 0xcd,
        parent: Some(0xef),
        name: "publish prices.aapl".into(),
        kind: SpanKind::Producer,
        start_ns: 1_000,
        end_ns: 3_000,
        attributes: vec![("messaging.destination.name", Value::Str("prices.aapl".into())), ("n", Value::Int(7))],
        error: None,
    }
}

#[test]
fn spans_are_written_as_otlp_json() {
    let mut text = String::new();
    let spans = [span(), Span { parent: None, error: Some("no \"quoted\"\n".into()), ..span() }];
    otlp::write_request(&[("service.name", "tessera".into())], &spans, &mut text);
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rs = &body["resourceSpans"][0];
    assert_eq!(
        rs["resource"]["attributes"][0],
        serde_json::json!({"key": "service.name", "value": {"stringValue": "tessera"}})
    );
    let spans = &rs["scopeSpans"][0]["spans"];
    assert_eq!(spans[0]["traceId"], "000000000000000000000000000000ab");
    assert_eq!(spans[0]["spanId"], "00000000000000cd");
    assert_eq!(spans[0]["parentSpanId"], "00000000000000ef");
    assert_eq!(spans[0]["kind"], 4);
    assert_eq!(
        (spans[0]["startTimeUnixNano"].as_str(), spans[0]["endTimeUnixNano"].as_str()),
        (Some("1000"), Some("3000"))
    );
    assert_eq!(spans[0]["attributes"][1]["value"], serde_json::json!({"intValue": "7"}));
    assert!(spans[1].get("parentSpanId").is_none());
    assert_eq!(spans[1]["status"], serde_json::json!({"code": 2, "message": "no \"quoted\"\n"}));
    assert_eq!(spans[0]["status"], serde_json::json!({}));
    assert_eq!(spans[0]["name"], "publish prices.aapl");
    assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "tessera");
    // Nothing else: the collector's schema refuses unknown fields.
    let keys: Vec<&String> = spans[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 9, "{keys:?}");
    // No spans: still a request.
    let mut empty = String::new();
    otlp::write_request(&[], &[], &mut empty);
    assert!(serde_json::from_str::<serde_json::Value>(&empty).is_ok(), "{empty}");
}

#[test]
fn the_collector_address_is_checked() {
    assert_eq!(export::traces_url("http://127.0.0.1:4318").unwrap(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(export::traces_url("https://otel.corp/v1/traces/").unwrap(), "https://otel.corp/v1/traces");
    for (bad, why) in
        [("otel:4318", "http"), ("ftp://x/", "http"), ("https://u:secret@otel.corp", "password"), ("", "not a URL")]
    {
        let e = export::traces_url(bad).unwrap_err().to_string();
        assert!(e.contains(why) && !e.contains("secret"), "{bad}: {e}");
    }
}

/// A collector on loopback that answers each request with `status` and hands over the bodies.
fn collector(status: u16) -> (String, flume::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = flume::bounded(64);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut line = String::new();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(serde_json::from_slice(&body).unwrap());
            let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}");
        }
    });
    (url, rx)
}

#[test]
fn spans_reach_the_collector_in_batches_and_failures_are_counted() {
    let (url, bodies) = collector(200);
    let t = Tracer::default();
    t.install(TraceConfig {
        endpoint: url.clone(),
        sample_ratio: 1.0,
        resource: vec![("service.name", "tessera".into())],
    })
    .unwrap();
    assert_eq!(t.endpoint(), Some(url));
    for _ in 0..3 {
        t.record(span());
    }
    let body = bodies.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(body["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap().len(), 3);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while t.counts().exported < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(t.counts(), TraceCounts { exported: 3, dropped: 0, failed: 0 });

    // A collector that refuses: counted as failed (after one retry), and the desk goes on.
    let (url, bodies) = collector(503);
    t.install(TraceConfig { endpoint: url, sample_ratio: 1.0, resource: vec![] }).unwrap();
    t.record(span());
    bodies.recv_timeout(Duration::from_secs(10)).unwrap();
    bodies.recv_timeout(Duration::from_secs(10)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while t.counts().failed < 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(t.counts().failed, 1);

    // Shutting down sends what is queued first.
    let (url, shut) = collector(200);
    t.install(TraceConfig { endpoint: url, sample_ratio: 1.0, resource: vec![] }).unwrap();
    t.record(span());
    assert!(t.shutdown(Duration::from_secs(10)), "the exporter did not stop");
    assert!(shut.try_recv().is_ok(), "the span queued before the shutdown was not sent");
    assert!(t.shutdown(Duration::from_secs(1)), "nothing to stop");

    // Off: nothing is queued.
    t.uninstall();
    t.record(span());
    assert!(bodies.recv_timeout(Duration::from_millis(1500)).is_err());
    assert_eq!(t.endpoint(), None);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let (queue, _spans) = flume::bounded(2);
    let t = Tracer::default();
    *t.active.write() =
        Some(Arc::new(Active { queue, endpoint: String::new(), ratio: 1.0, done: flume::bounded(1).1 }));
    t.on.store(true, Ordering::Relaxed);
    for _ in 0..5 {
        t.record(span());
    }
    assert_eq!(t.counts().dropped, 3);
}

proptest::proptest! {
    /// Any text an attribute or a name holds is written as the JSON string of it.
    #[test]
    fn strings_are_written_as_json(text in "\\PC{0,40}|[\\x00-\\x1f\"\\\\a\u{e9}\u{1f600}]{0,20}") {
        let mut out = String::new();
        otlp::string(&mut out, &text);
        proptest::prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
    }

    /// A whole request is JSON whatever its spans say.
    #[test]
    fn requests_are_json(name in "\\PC{0,20}", value in "\\PC{0,20}", n in proptest::num::i64::ANY, id in proptest::num::u128::ANY) {
        let s = Span { name, trace_id: id, attributes: vec![("k", Value::Str(value.into())), ("n", Value::Int(n))], ..span() };
        let mut out = String::new();
        otlp::write_request(&[("service.name", "t\"x".into())], &[s], &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        proptest::prop_assert_eq!(v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"].as_str().map(str::len), Some(32));
    }
}
