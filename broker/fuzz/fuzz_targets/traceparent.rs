//! Fuzzes the W3C `traceparent` reader (`protocol::TraceParent::parse`), which reads what any
//! page, native client or DACP message sends: no panic on any text, and what it accepts writes
//! back (as version 00) to text that reads as the same trace, span and flags.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::TraceParent;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = TraceParent::parse(text) {
        assert!(t.trace_id != 0 && t.span_id != 0);
        let written = t.to_string();
        assert_eq!(written.len(), protocol::trace::TRACEPARENT_LEN);
        assert_eq!(TraceParent::parse(&written), Ok(t));
        if text.starts_with("00-") {
            assert_eq!(written, text, "a version-00 traceparent writes back as it came");
        }
    }
    if let Some(id) = protocol::trace::parse_trace_id(text) {
        assert_eq!(format!("{id:032x}"), text);
    }
});
