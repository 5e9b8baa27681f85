//! Fuzzes what a diagnostics bundle does to each log line and JSON value (`telemetry::redact`)
//! with arbitrary text: no panic (its scanners slice by byte offsets), the answer is valid
//! text, and redacting again changes nothing a first pass left (so no secret survives half).
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry::redact;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let once = redact::text(text);
    assert_eq!(redact::text(&once), once, "redacting twice differs");
    let line = redact::line(text);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let r = redact::json(&v);
        assert_eq!(redact::json(&r), r, "redacting JSON twice differs");
    }
    std::hint::black_box(line);
});
