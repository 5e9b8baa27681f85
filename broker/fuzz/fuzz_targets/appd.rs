//! Fuzzes the App Directory parser with arbitrary text: no panic, and every record it accepts
//! keeps the directory's rules (an id without spaces, a title, http(s) URLs for web apps,
//! intents with names and context lists).
#![no_main]

use broker::fdc3::Directory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok((good, bad)) = Directory::parse(&text) else { return };
    let mut ids = std::collections::HashSet::new();
    for r in &good {
        assert!(!r.app_id.is_empty() && !r.app_id.chars().any(char::is_whitespace));
        assert!(ids.insert(r.app_id.clone()), "a repeated appId was accepted");
        assert!(!r.title.trim().is_empty());
        if r.kind == "web" {
            let url = r.url.as_deref().expect("a web app has a URL");
            assert!(url.to_ascii_lowercase().starts_with("http"));
        }
        for i in &r.intents {
            assert!(!i.name.is_empty());
            assert!(i.contexts.iter().all(|c| !c.is_empty()));
        }
    }
    for p in &bad {
        assert!(!p.field.is_empty() && !p.to_string().is_empty());
    }
});
