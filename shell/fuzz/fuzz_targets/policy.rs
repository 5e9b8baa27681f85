//! Fuzzes the admin policy parser, the strict JSON reader, signed-record checks and the reading
//! of a manifest's app URL with arbitrary text: no panic, and a policy that parses answers every
//! question without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::signing;
use policy::{AdminPolicy, Permission, Subject};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = signing::parse_strict(&text);
    if let Ok(policy) = AdminPolicy::parse(&text) {
        let who = Subject { user: "alice".into(), groups: vec!["equities".into()] };
        for p in ["bus.publish:orders.new", "fdc3.raiseIntent:StartOrder", "navigate:https://a.example", "camera"] {
            if let Ok(p) = p.parse::<Permission>() {
                let _ = policy.decide(&who, "ticket", &p);
            }
        }
        if let Some(u) = policy.update() {
            assert!(!u.channel.is_empty() && u.max_failed_starts > 0);
            let _ = u.feed();
        }
        if let Some(link) = policy.link() {
            assert!(!link.servers.is_empty() && (1..=5).contains(&link.replicas));
            let _ = link.groups_of_this_desk().count();
        }
        if let Some(c) = policy.signing() {
            let _ = c.check_record(&text, Some("1.0.0"), "2026-11-26T12:00:00Z");
        }
    }
    if let Ok(p) = text.parse::<Permission>() {
        let _ = p.to_string();
    }
    // A manifest's app URL: remote ones are http(s), local ones relative and scheme-less.
    match policy::app_url(&text) {
        Ok(policy::AppUrl::Remote(u)) => assert!(u.to_ascii_lowercase().trim_start().starts_with("http")),
        Ok(policy::AppUrl::Local(p)) => assert!(!p.starts_with('/') && !p.to_ascii_lowercase().starts_with("file:")),
        Err(_) => {}
    }
});
