//! Fuzzes the topic and pattern parsers, and checks the router against the naive matcher on
//! whatever parses.
#![no_main]

use broker::router::Router;
use broker::{Pattern, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Input: patterns and a topic separated by newlines; the last line is the topic.
    let mut lines: Vec<&str> = text.split('\n').collect();
    let topic_text = lines.pop().unwrap_or_default();
    let topic = Topic::parse(topic_text);
    if let Ok(t) = &topic {
        // Every valid topic is a valid pattern that matches exactly itself.
        let p = Pattern::parse(topic_text).expect("a topic is a pattern");
        assert!(p.matches(t));
        assert!(!p.has_wildcard());
    }
    let mut router = Router::new(4);
    let mut patterns = Vec::new();
    for (i, line) in lines.iter().enumerate().take(64) {
        if let Ok(p) = Pattern::parse(line) {
            router.insert(&p, i);
            patterns.push((p, i));
        }
    }
    if let Ok(t) = topic {
        let mut expect: Vec<usize> = patterns.iter().filter(|(p, _)| p.matches(&t)).map(|(_, i)| *i).collect();
        expect.sort_unstable();
        assert_eq!(&*router.matches(&t), &expect[..]);
    }
    for (p, i) in &patterns {
        assert!(router.remove(p, *i));
    }
    assert_eq!(router.stats().nodes, 1);
});
