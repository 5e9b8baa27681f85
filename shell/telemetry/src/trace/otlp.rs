//! Spans as OTLP/HTTP JSON (`ExportTraceServiceRequest`, the OpenTelemetry protocol's JSON
//! mapping): ids as lowercase hex, times as decimal strings of ns, enums as numbers. Written
//! straight into the request's text (strings escaped by serde_json): the exporter writes tens of
//! thousands of spans a second on a busy desk, and building a JSON tree of each would cost more
//! than making it.

use std::fmt::Write as _;

use super::{Span, SpanKind, Value};

/// The instrumentation scope every span is reported under.
pub const SCOPE: &str = "tessera";

/// Appends one export request for `spans`, from a desk described by `resource`, to `out`.
pub fn write_request(resource: &[(&'static str, String)], spans: &[Span], out: &mut String) {
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":["#);
    for (i, (key, value)) in resource.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        attribute(out, key, &Value::Str(value.clone().into()));
    }
    out.push_str(r#"]},"scopeSpans":[{"scope":{"name":"#);
    string(out, SCOPE);
    out.push_str(r#","version":"#);
    string(out, env!("CARGO_PKG_VERSION"));
    out.push_str(r#"},"spans":["#);
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        span(out, s);
    }
    out.push_str("]}]}]}");
}

fn span(out: &mut String, s: &Span) {
    let kind = match s.kind {
        SpanKind::Internal => 1,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    // Writing to a String cannot fail.
    let _ = write!(out, r#"{{"traceId":"{:032x}","spanId":"{:016x}","#, s.trace_id, s.span_id);
    if let Some(parent) = s.parent {
        let _ = write!(out, r#""parentSpanId":"{parent:016x}","#);
    }
    out.push_str(r#""name":"#);
    string(out, &s.name);
    let _ = write!(
        out,
        r#","kind":{kind},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":["#,
        s.start_ns,
        s.end_ns.max(s.start_ns)
    );
    for (i, (key, value)) in s.attributes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        attribute(out, key, value);
    }
    out.push_str(r#"],"status":{"#);
    if let Some(message) = &s.error {
        out.push_str(r#""code":2,"message":"#);
        string(out, message);
    }
    out.push_str("}}");
}

fn attribute(out: &mut String, key: &str, value: &Value) {
    out.push_str(r#"{"key":"#);
    string(out, key);
    out.push_str(r#","value":{"#);
    match value {
        Value::Str(s) => {
            out.push_str(r#""stringValue":"#);
            string(out, s);
        }
        // OTLP/JSON writes 64-bit integers as strings.
        Value::Int(n) => {
            let _ = write!(out, r#""intValue":"{n}""#);
        }
        Value::Bool(b) => {
            let _ = write!(out, r#""boolValue":{b}"#);
        }
    }
    out.push_str("}}");
}

/// `s` as a JSON string.
fn string(out: &mut String, s: &str) {
    // A str always writes as JSON.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}
