//! Fuzzes the telemetry endpoint's request parser with arbitrary bytes: no panic; a request it
//! accepts is a GET or HEAD of an absolute path without control characters, and every refusal
//! maps to a 4xx status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry::http::{self, MAX_PATH};

fuzz_target!(|data: &[u8]| {
    let head = http::head_end(data).map_or(data, |end| &data[..end]);
    match http::parse_request(head) {
        Ok(r) => {
            assert!(r.path.starts_with('/') && r.path.len() <= MAX_PATH);
            assert!(!r.path.bytes().any(|b| b.is_ascii_control()));
        }
        Err(e) => assert!((400..500).contains(&e.status())),
    }
});
