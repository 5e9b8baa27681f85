//! Spans as OTLP/HTTP JSON (`ExportTraceServiceRequest`, the OpenTelemetry protocol's JSON
//! mapping): ids as lowercase hex, times as decimal strings of ns, enums as numbers. Written
//! straight into the request's text: the exporter writes tens of thousands of spans a second
//! on a busy desk, and building a JSON tree of each would cost more than making it.

use super::{Span, SpanKind, Value};

/// The instrumentation scope every span is reported under.
pub const SCOPE: &str = "tessera";

/// Appends one export request for `spans`, from a desk described by `resource`, to `out`.
pub fn write_request(resource: &[(&'static str, String)], spans: &[Span], out: &mut String) {
    // A span takes about 600 bytes.
    out.reserve(256 + spans.len() * 640);
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
        SpanKind::Internal => "1",
        SpanKind::Producer => "4",
        SpanKind::Consumer => "5",
    };
    out.push_str(r#"{"traceId":""#);
    hex(out, s.trace_id, 32);
    out.push_str(r#"","spanId":""#);
    hex(out, u128::from(s.span_id), 16);
    if let Some(parent) = s.parent {
        out.push_str(r#"","parentSpanId":""#);
        hex(out, u128::from(parent), 16);
    }
    out.push_str(r#"","name":"#);
    string(out, &s.name);
    out.push_str(r#","kind":"#);
    out.push_str(kind);
    out.push_str(r#","startTimeUnixNano":""#);
    out.push_str(itoa::Buffer::new().format(s.start_ns));
    out.push_str(r#"","endTimeUnixNano":""#);
    out.push_str(itoa::Buffer::new().format(s.end_ns.max(s.start_ns)));
    out.push_str(r#"","attributes":["#);
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
            out.push_str(r#""intValue":""#);
            out.push_str(itoa::Buffer::new().format(*n));
            out.push('"');
        }
        Value::Bool(b) => {
            out.push_str(if *b { r#""boolValue":true"# } else { r#""boolValue":false"# });
        }
    }
    out.push_str("}}");
}

/// `n`'s low `digits` hex digits, lowercase, zero-padded.
fn hex(out: &mut String, n: u128, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (i, d) in text.iter_mut().take(digits as usize).enumerate() {
        *d = HEX[((n >> (4 * (digits as usize - 1 - i))) & 0xf) as usize];
    }
    // Hex digits are ASCII.
    out.push_str(std::str::from_utf8(&text[..digits as usize]).unwrap_or_default());
}

/// `s` as a JSON string: quotes, backslashes and control characters escaped, the rest as it is.
pub(super) fn string(out: &mut String, s: &str) {
    out.push('"');
    // Most text (topics, app ids) needs no escape: copied whole.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if u32::from(c) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escaped.is_empty() {
            out.push_str("\\u00");
            hex(out, u128::from(u32::from(c)), 2);
        } else {
            out.push_str(escaped);
        }
        plain = i + c.len_utf8();
    }
    out.push_str(&s[plain..]);
    out.push('"');
}
