//! Fuzzes the reading of a message another desk put on a link group's stream: an arbitrary
//! subject, headers and size. No panic; what is delivered has a topic the local bus takes, the
//! sending desk's name, and is never this desk's own.
#![no_main]

use bridge::wire::{self, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // subject \n desk \n id \n user \n app \n size
    let mut parts = text.split('\n');
    let subject = parts.next().unwrap_or_default();
    let headers: Vec<(&str, &str)> = [wire::DESK, wire::MSG_ID, wire::USER, wire::APP, wire::DURABLE]
        .into_iter()
        .zip(parts.by_ref())
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let size = parts.next().and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    let header = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    match wire::inbound("eq", "alice", subject, header, size, 1024) {
        Ok(Verdict::Deliver(m)) => {
            assert!(broker::Topic::parse(&m.topic).is_ok());
            assert_ne!(m.desk, "alice");
            assert!(size <= 1024);
            assert_eq!(wire::bus_subject("eq", &m.topic).as_deref(), Ok(subject));
        }
        Ok(Verdict::Own) => assert_eq!(header(wire::DESK), Some("alice")),
        Err(why) => assert!(!why.is_empty() && !why.contains('\n')),
    }
});
