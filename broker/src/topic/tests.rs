use super::*;

fn check_match(pattern: &str, topic: &str, expect: bool) {
    let p = Pattern::parse(pattern).unwrap();
    let t = Topic::parse(topic).unwrap();
    assert_eq!(p.matches(&t), expect, "{pattern} vs {topic}");
}

#[test]
fn amqp_semantics() {
    for (pattern, topic, expect) in [
        ("a.b.c", "a.b.c", true),
        ("a.b.c", "a.b", false),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.c", false),
        ("a.*", "a.b.c", false),
        ("a.#", "a", true),
        ("a.#", "a.b.c.d", true),
        ("#", "a", true),
        ("#.c", "c", true),
        ("#.c", "a.b.c", true),
        ("#.c", "a.b.c.d", false),
        ("a.#.c", "a.c", true),
        ("a.#.c", "a.x.y.c", true),
        ("a.#.c", "a.x.y.d", false),
        ("*.news.*", "eq.news.aapl", true),
        ("*.news.*", "news.aapl", false),
        ("#.*", "a", true),
        ("*.#", "a", true),
        ("*.#.*", "a", false),
        ("*.#.*", "a.b", true),
        ("#.a.#.a", "a.a", true),
        ("#.a.#.a", "b.a.b.a.b", false),
        ("#.#.x", "x", true),
    ] {
        check_match(pattern, topic, expect);
    }
}

#[test]
fn rejects_bad_input_with_typed_errors() {
    let long = "a".repeat(MAX_TOPIC_BYTES + 1);
    let many = vec!["a"; MAX_SEGMENTS + 1].join(".");
    for (input, expect) in [
        ("", TopicError::Empty),
        ("a..b", TopicError::EmptySegment { index: 1 }),
        (".a", TopicError::EmptySegment { index: 0 }),
        ("a.", TopicError::EmptySegment { index: 1 }),
        ("a.b#", TopicError::WildcardInsideSegment { index: 1 }),
        ("a*.b", TopicError::WildcardInsideSegment { index: 0 }),
        ("a b", TopicError::BadCharacter { index: 0 }),
        ("a.\u{0}", TopicError::BadCharacter { index: 1 }),
        (long.as_str(), TopicError::TooLong { len: MAX_TOPIC_BYTES + 1, limit: MAX_TOPIC_BYTES }),
        (many.as_str(), TopicError::TooManySegments { count: MAX_SEGMENTS + 1, limit: MAX_SEGMENTS }),
    ] {
        assert_eq!(Pattern::parse(input).unwrap_err(), expect, "pattern {input:?}");
        assert_eq!(Topic::parse(input).unwrap_err(), expect, "topic {input:?}");
    }
    assert_eq!(Topic::parse("a.*").unwrap_err(), TopicError::WildcardInTopic { index: 1 });
    assert_eq!(Topic::parse("#").unwrap_err(), TopicError::WildcardInTopic { index: 0 });
}

#[test]
fn limits_are_inclusive() {
    let at_limit = vec!["a"; MAX_SEGMENTS].join(".");
    assert!(Topic::parse(&at_limit).is_ok());
    let long = "a".repeat(MAX_TOPIC_BYTES);
    assert!(Pattern::parse(&long).is_ok());
}

#[test]
fn runs_of_hash_collapse() {
    let p = Pattern::parse("a.#.#.#.b").unwrap();
    assert_eq!(p.segments().len(), 3);
    assert_eq!(p.as_str(), "a.#.#.#.b");
    assert!(p.has_wildcard());
    assert!(!Pattern::parse("a.b").unwrap().has_wildcard());
}

#[test]
fn serde_validates() {
    let t: Topic = serde_json::from_str("\"prices.xnas.aapl\"").unwrap();
    assert_eq!(t.as_str(), "prices.xnas.aapl");
    assert!(serde_json::from_str::<Topic>("\"prices..aapl\"").is_err());
    assert!(serde_json::from_str::<Pattern>("\"prices.#\"").is_ok());
}

#[test]
fn the_reserved_namespace_is_the_shells_alone() {
    for input in ["$shell.fdc3.broadcast", "$SYS", "$x.#", "$*", "$shell.*"] {
        assert_eq!(Pattern::parse(input).unwrap_err(), TopicError::Reserved, "pattern {input:?}");
        assert_eq!(validate_topic(input).unwrap_err(), TopicError::Reserved, "topic {input:?}");
        assert!(Topic::parse(input).is_err());
    }
    // Only the shell's records name it, and they follow the other rules too.
    let t = Topic::reserved("$shell.fdc3.broadcast").unwrap();
    assert!(t.is_reserved());
    assert_eq!(Topic::parse_any("$shell.fdc3.broadcast").unwrap(), t);
    assert_eq!(Topic::reserved("fdc3.broadcast").unwrap_err(), TopicError::NotReserved);
    assert_eq!(Topic::reserved("$shell.#").unwrap_err(), TopicError::WildcardInTopic { index: 1 });
    assert_eq!(Topic::reserved("$shell..x").unwrap_err(), TopicError::EmptySegment { index: 1 });
    // A `$` further in is an ordinary character, and wildcards never reach a reserved topic.
    assert!(Topic::parse("prices.$usd").is_ok());
    for p in ["#", "*.fdc3.broadcast", "*.*.*"] {
        assert!(!Pattern::parse(p).unwrap().matches(&t), "{p} must not match a reserved topic");
    }
    // Records read back from the journal keep their topic.
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(serde_json::from_str::<Topic>(&json).unwrap(), t);
}
