use proptest::prelude::*;

use super::*;

fn p(s: &str) -> Pattern {
    Pattern::parse(s).unwrap()
}

fn t(s: &str) -> Topic {
    Topic::parse(s).unwrap()
}

fn check(patterns: &[&str], topic: &str, expect: &[u32]) {
    let mut r = Router::new(16);
    for (i, pat) in patterns.iter().enumerate() {
        r.insert(&p(pat), i as u32);
    }
    assert_eq!(&*r.matches(&t(topic)), expect, "{topic} against {patterns:?}");
    let mut out = Vec::new();
    r.matches_uncached(&t(topic), &mut out);
    assert_eq!(out, expect, "uncached {topic}");
}

#[test]
fn routes_by_wildcards() {
    let pats = ["prices.xnas.aapl", "prices.*.aapl", "prices.#", "#", "*.news.*", "orders.#.filled", "#.#.aapl"];
    check(&pats, "prices.xnas.aapl", &[0, 1, 2, 3, 6]);
    check(&pats, "prices", &[2, 3]);
    check(&pats, "eq.news.msft", &[3, 4]);
    check(&pats, "orders.filled", &[3, 5]);
    check(&pats, "orders.a.b.filled", &[3, 5]);
    check(&pats, "aapl", &[3, 6]);
    check(&[], "anything", &[]);
}

#[test]
fn duplicate_patterns_and_keys() {
    let mut r = Router::new(16);
    r.insert(&p("a.#"), 7u32);
    r.insert(&p("a.#.#"), 7u32);
    r.insert(&p("a.*"), 8u32);
    assert_eq!(&*r.matches(&t("a.b")), &[7, 8]);
    assert!(r.remove(&p("a.#"), 7));
    assert_eq!(&*r.matches(&t("a.b")), &[7, 8], "one of the two registrations of 7 remains");
    assert!(r.remove(&p("a.#"), 7));
    assert!(!r.remove(&p("a.#"), 7));
    assert_eq!(&*r.matches(&t("a.b")), &[8]);
}

#[test]
fn cache_is_invalidated_and_bounded() {
    let mut r = Router::new(2);
    r.insert(&p("a.*"), 1u32);
    assert_eq!(&*r.matches(&t("a.b")), &[1]);
    assert_eq!(&*r.matches(&t("a.b")), &[1]);
    assert_eq!(r.stats().cache_hits, 1);
    r.insert(&p("a.b"), 2);
    assert_eq!(r.stats().cached_topics, 0, "insert clears the cache");
    assert_eq!(&*r.matches(&t("a.b")), &[1, 2]);
    r.matches(&t("a.c"));
    r.matches(&t("a.d"));
    assert!(r.stats().cached_topics <= 2);
    r.remove(&p("a.*"), 1);
    assert_eq!(&*r.matches(&t("a.b")), &[2]);
}

#[test]
fn removal_prunes_every_node() {
    let mut r = Router::new(16);
    let pats = ["a.b.c", "a.b", "a.*.#", "#.z", "a.b.c.d.e.f"];
    for (i, pat) in pats.iter().enumerate() {
        r.insert(&p(pat), i as u32);
    }
    assert!(r.stats().nodes > 1);
    for (i, pat) in pats.iter().enumerate().rev() {
        assert!(r.remove(&p(pat), i as u32));
    }
    assert_eq!(r.stats(), RouterStats { nodes: 1, cache_misses: 0, ..RouterStats::default() });
    assert!(r.nodes[0].is_empty());
}

#[test]
fn hostile_hash_chains_stay_cheap() {
    let mut r = Router::new(0);
    let pattern = vec!["#.a"; 16].join(".");
    r.insert(&p(&pattern), 1u32);
    let topic = vec!["a"; 32].join(".");
    let mut out = Vec::new();
    r.matches_uncached(&t(&topic), &mut out);
    assert_eq!(out, [1]);
    // Bounded by (hash nodes x positions), not by the number of ways to split the topic.
    assert!(r.visited.len() <= 16 * 33, "visited {}", r.visited.len());
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just("c".to_owned())]
}

fn pattern_segment() -> impl Strategy<Value = String> {
    prop_oneof![3 => segment(), 1 => Just("*".to_owned()), 1 => Just("#".to_owned())]
}

fn join(segs: Vec<String>) -> String {
    // By value: proptest's prop_map hands the vector over.
    #![allow(clippy::needless_pass_by_value)]
    segs.join(".")
}

proptest! {
    /// The trie agrees with the naive matcher on every topic, through inserts and removes.
    #[test]
    fn agrees_with_naive_matcher(
        patterns in prop::collection::vec(prop::collection::vec(pattern_segment(), 1..6).prop_map(join), 0..24),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        topics in prop::collection::vec(prop::collection::vec(segment(), 1..7).prop_map(join), 1..24),
    ) {
        let mut r = Router::new(8);
        let mut live: Vec<(Pattern, u32)> = Vec::new();
        for (i, pat) in patterns.iter().enumerate() {
            let pat = p(pat);
            r.insert(&pat, i as u32);
            live.push((pat, i as u32));
        }
        for idx in removals {
            if live.is_empty() { break; }
            let (pat, key) = live.swap_remove(idx.index(live.len()));
            prop_assert!(r.remove(&pat, key));
        }
        for topic in &topics {
            let topic = t(topic);
            let mut expect: Vec<u32> = live.iter().filter(|(pat, _)| pat.matches(&topic)).map(|(_, k)| *k).collect();
            expect.sort_unstable();
            prop_assert_eq!(&*r.matches(&topic), &expect[..], "topic {}", topic);
            prop_assert_eq!(&*r.matches(&topic), &expect[..], "cached, topic {}", topic);
        }
        for (pat, key) in live.drain(..) {
            prop_assert!(r.remove(&pat, key));
        }
        prop_assert_eq!(r.stats().nodes, 1);
        prop_assert_eq!(r.stats().patterns, 0);
    }
}
