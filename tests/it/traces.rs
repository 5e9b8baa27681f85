//! Traces across apps (issue 20, item 4): a real shell whose admin policy names an
//! OpenTelemetry collector (a loopback OTLP/HTTP receiver here) sends it the spans of a message's
//! way from one real page to another — the publish, the journal's commit, the delivery — in the
//! trace the sending page started, and the receiving page is told that trace; an FDC3 broadcast
//! carries it in its context metadata. With a sample ratio of 0, traffic in no trace makes no
//! spans. The collector reads what the desk sends with the OpenTelemetry project's own schema.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e::{Shell, instance_of, js, running_with_page, wait_js};

/// An OTLP/HTTP receiver on loopback (`tests/fixtures/otlp/collector.py`, a real process): it
/// reads each request with the OpenTelemetry project's own schema, strictly, and says every span
/// (or why it refused a request) as a JSON line.
struct Collector {
    url: String,
    child: std::process::Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    fn start() -> Self {
        let python = tests::workspace_root().join("target/clients/venv/bin/python");
        assert!(python.exists(), "{} is missing: run packaging/dev/clients.sh", python.display());
        let mut child = Command::new(python)
            .arg(tests::workspace_root().join("tests/fixtures/otlp/collector.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let port = first.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("the collector said {first:?}"));
        let url = format!("http://127.0.0.1:{port}");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                kept.lock().unwrap().push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
            }
        });
        Self { url, child, lines }
    }

    /// The spans it has read.
    fn spans(&self) -> Vec<Value> {
        let lines = self.lines.lock().unwrap();
        let rejected: Vec<_> = lines.iter().filter(|l| l.get("rejected").is_some()).collect();
        assert!(rejected.is_empty(), "the collector refused what the desk sent: {rejected:?}");
        lines.clone()
    }

    /// The spans of trace `trace_id` once `done` holds for them (30 s at most).
    fn trace(&self, trace_id: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans: Vec<Value> = self.spans().into_iter().filter(|s| s["traceId"] == trace_id).collect();
            if done(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "{what}: trace {trace_id} has {spans:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(&Value::Null, |kv| &kv["value"])
}

#[test]
fn one_trace_follows_a_message_from_page_to_page_through_the_broker_and_the_journal() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let page = tests::fixture_page("fdc3", "app.html", dir.path());
    let manifest = dir.path().join("desk.json");
    std::fs::write(
        &manifest,
        json!({ "name": "Traced desk", "apps": [{ "appId": "a", "url": page }, { "appId": "b", "url": page }], "startup": ["a", "b"] })
            .to_string(),
    )
    .unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "traces": { "endpoint": collector.url, "sampleRatio": 0 },
            "rules": [{ "apps": ["a", "b"], "allow": ["bus.publish", "bus.subscribe", "fdc3.broadcast", "fdc3.appChannel"] }],
        })
        .to_string(),
    )
    .unwrap();
    let env = [("TESSERA_POLICY", policy.to_str().unwrap())];
    let shell = Shell::start_full(manifest.to_str().unwrap(), None, 1024, &env, "traces");
    shell.wait_for("two apps load", Duration::from_secs(60), |a| a.len() == 2 && a.iter().all(running_with_page));
    let (a, b) = (instance_of(&shell, "a"), instance_of(&shell, "b"));

    // b listens; a publishes twice: in no trace, then (durable) in a trace it starts.
    js(&shell, b, "window.got = [], tessera.bus.subscribe('orders.#', (d, m) => got.push([d, m])), true");
    std::thread::sleep(Duration::from_millis(300));
    js(&shell, a, "tessera.bus.publish('orders.plain', { n: 0 }), true");
    wait_js(&shell, b, "got.length", "1");
    assert_eq!(js(&shell, b, "got[0][1].traceparent === undefined"), json!(true), "a message in no trace says none");
    let sent = js(
        &shell,
        a,
        "window.tp = tessera.bus.newTrace(), tessera.bus.publish('orders.new', { n: 1 }, { traceparent: tp, durable: true }), tp",
    );
    let sent = sent.as_str().unwrap().to_owned();
    let (trace_id, page_span) = (&sent[3..35], &sent[36..52]);
    assert!(sent.ends_with("-01"), "{sent}");
    wait_js(&shell, b, "got.length", "2");
    let told = js(&shell, b, "got[1][1].traceparent").as_str().unwrap_or_default().to_owned();
    assert_eq!(&told[3..35], trace_id, "the receiving page is told the sender's trace: {told}");
    assert_ne!(&told[36..52], page_span, "…sent on from the shell's span, not the page's");
    assert_eq!(js(&shell, b, "got[1][0].n"), json!(1));

    // The collector gets the trace: publish (a child of the page's span), the journal's commit
    // and the delivery to b (children of the publish, which b was told).
    let spans = collector.trace(trace_id, "publish, commit and delivery", |s| {
        ["publish orders.new", "journal commit", "deliver orders.new"].iter().all(|n| !named(s, n).is_empty())
    });
    let publish = named(&spans, "publish orders.new")[0];
    assert_eq!(publish["parentSpanId"], page_span);
    assert_eq!(publish["kind"], "SPAN_KIND_PRODUCER");
    assert_eq!(attribute(publish, "tessera.app"), &json!({ "stringValue": "a" }));
    assert_eq!(attribute(publish, "messaging.destination.name"), &json!({ "stringValue": "orders.new" }));
    assert_eq!(publish["spanId"], &told[36..52], "b's parent is the publish span");
    let deliver = named(&spans, "deliver orders.new")[0];
    assert_eq!(deliver["parentSpanId"], publish["spanId"]);
    assert_eq!(deliver["kind"], "SPAN_KIND_CONSUMER");
    assert_eq!(attribute(deliver, "tessera.app"), &json!({ "stringValue": "b" }));
    let commit = named(&spans, "journal commit")[0];
    assert_eq!(commit["parentSpanId"], publish["spanId"]);
    for s in [publish, deliver, commit] {
        let (start, end) = (s["startTimeUnixNano"].as_str().unwrap(), s["endTimeUnixNano"].as_str().unwrap());
        let (start, end): (u64, u64) = (start.parse().unwrap(), end.parse().unwrap());
        assert!(start > 1_700_000_000_000_000_000 && end >= start, "{s:#}");
        assert!(s.to_string().find("\"n\":1").is_none(), "no payload in a span: {s:#}");
    }
    assert_eq!(publish["resource"]["service.name"], json!({ "stringValue": "tessera" }));
    assert_eq!(publish["resource"]["tessera.manifest"], json!({ "stringValue": "Traced desk" }));
    assert_eq!(publish["scope"], "tessera");

    // An FDC3 broadcast in a trace: the listener's metadata carries the trace id (FDC3 3.0's
    // traceId) and traceparent; the agent's span is in the trace.
    js(
        &shell,
        b,
        "fdc3.getOrCreateChannel('traced').then((ch) => ch.addContextListener('fdc3.instrument', (c, m) => { window.ctxMeta = m; })).then(() => true)",
    );
    std::thread::sleep(Duration::from_millis(300));
    let tp2 = js(
        &shell,
        a,
        "window.tp2 = tessera.bus.newTrace(), fdc3.getOrCreateChannel('traced').then((ch) => ch.broadcast({ type: 'fdc3.instrument', id: { ticker: 'TRC' } }, { traceparent: tp2 })).then(() => tp2)",
    );
    let tp2 = tp2.as_str().unwrap().to_owned();
    wait_js(&shell, b, "window.ctxMeta !== undefined", "true");
    assert_eq!(js(&shell, b, "ctxMeta.traceId"), json!(&tp2[3..35]));
    assert_eq!(js(&shell, b, "ctxMeta.traceparent.slice(3, 35)"), json!(&tp2[3..35]));
    assert_eq!(js(&shell, b, "ctxMeta.source.appId"), json!("a"));
    let spans = collector.trace(&tp2[3..35], "the FDC3 broadcast", |s| !named(s, "fdc3 broadcastRequest").is_empty());
    let broadcast = named(&spans, "fdc3 broadcastRequest")[0];
    assert_eq!(broadcast["parentSpanId"], &tp2[36..52]);
    assert_eq!(attribute(broadcast, "fdc3.channel"), &json!({ "stringValue": "traced" }));
    assert_eq!(attribute(broadcast, "fdc3.context.type"), &json!({ "stringValue": "fdc3.instrument" }));

    // An app's own FDC3 3.0 traceId is passed through as it is.
    js(
        &shell,
        a,
        "fdc3.getOrCreateChannel('traced').then((ch) => ch.broadcast({ type: 'fdc3.instrument', id: { ticker: 'OWN' } }, { traceId: 'desk-7/order-42' })).then(() => true)",
    );
    wait_js(&shell, b, "ctxMeta.traceId", "\"desk-7/order-42\"");

    // A bad traceparent is refused with a reason, and the page keeps working.
    let refused = js(
        &shell,
        a,
        "new Promise((ok) => { tessera.bus.onError((e) => ok(e.message)); tessera.bus.publish('orders.bad', {}, { traceparent: '00-zz' }); })",
    );
    assert!(refused.as_str().unwrap_or_default().contains("not a W3C traceparent"), "{refused}");

    // With a ratio of 0, the untraced publish made no span at all.
    std::thread::sleep(Duration::from_millis(1500));
    let all = collector.spans();
    assert!(all.iter().all(|s| s["name"] != "publish orders.plain"), "{all:#?}");

    // Health says where traces go and how many went.
    let health: Value = serde_json::from_str(&shell.ctl_ok(&["health", "--json"])).unwrap();
    assert_eq!(health["traces"]["collector"], json!(collector.url), "{health:#}");
    assert!(health["traces"]["exported"].as_u64().unwrap_or(0) >= 4, "{health:#}");

    // The collector goes away: traced messages still flow, and the lost spans are counted.
    let url = collector.url.clone();
    drop(collector);
    js(
        &shell,
        a,
        "for (let i = 0; i < 5; i++) tessera.bus.publish('orders.late', { i }, { traceparent: tessera.bus.newTrace() }); true",
    );
    wait_js(&shell, b, "got.length", "7");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health: Value = serde_json::from_str(&shell.ctl_ok(&["health", "--json"])).unwrap();
        if health["traces"]["failed"].as_u64().unwrap_or(0) >= 10 {
            assert_eq!(health["traces"]["collector"], json!(url));
            break;
        }
        assert!(Instant::now() < deadline, "no failed spans counted: {health:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(shell.apps().len(), 2);
}
