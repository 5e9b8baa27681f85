//! Spans as OTLP/HTTP JSON (`ExportTraceServiceRequest`, the OpenTelemetry protocol's JSON
//! mapping): ids as lowercase hex, times as decimal strings of ns, enums as numbers.

use serde_json::{Value as Json, json};

use super::{Span, SpanKind, Value};

/// The instrumentation scope every span is reported under.
pub const SCOPE: &str = "tessera";

/// One export request for `spans`, from a desk described by `resource`.
pub fn request(resource: &[(&'static str, String)], spans: &[Span]) -> Json {
    let resource: Vec<Json> = resource.iter().map(|(k, v)| attribute(k, &Value::Str(v.clone()))).collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": resource },
            "scopeSpans": [{
                "scope": { "name": SCOPE, "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }],
    })
}

fn span(s: &Span) -> Json {
    let mut out = json!({
        "traceId": format!("{:032x}", s.trace_id),
        "spanId": format!("{:016x}", s.span_id),
        "name": s.name,
        "kind": match s.kind {
            SpanKind::Internal => 1,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        },
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.max(s.start_ns).to_string(),
        "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
        "status": match &s.error {
            None => json!({}),
            Some(message) => json!({ "code": 2, "message": message }),
        },
    });
    if let Some(parent) = s.parent {
        out["parentSpanId"] = Json::String(format!("{parent:016x}"));
    }
    out
}

fn attribute(key: &str, value: &Value) -> Json {
    let value = match value {
        Value::Str(s) => json!({ "stringValue": s }),
        // OTLP/JSON writes 64-bit integers as strings.
        Value::Int(n) => json!({ "intValue": n.to_string() }),
        Value::Bool(b) => json!({ "boolValue": b }),
    };
    json!({ "key": key, "value": value })
}
