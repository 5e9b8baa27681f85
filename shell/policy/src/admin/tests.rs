use super::*;
use crate::{normal_origin, pattern_contains};

const POLICY: &str = r#"{
  "permissionSets": {
    "trading": ["bus.publish:orders.#", "bus.subscribe:prices.#", "fdc3.raiseIntent:StartOrder"]
  },
  "roles": {
    "trader": { "users": ["alice"], "groups": ["equities"] },
    "ops": { "users": ["olga"] }
  },
  "rules": [
    { "apps": ["*"], "deny": ["camera", "microphone"] },
    { "apps": ["*"], "allow": ["bus.subscribe:prices.#", "fdc3.broadcast"] },
    { "apps": ["ticket"], "roles": ["trader"], "allow": ["set:trading"] },
    { "apps": ["ticket"], "prompt": ["clipboard.write"] },
    { "apps": ["news"], "prompt": ["notifications"], "deny": ["navigate:https://evil.example"] },
    { "apps": ["*"], "roles": ["ops"], "allow": ["secrets"] }
  ]
}"#;

fn p(s: &str) -> Permission {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn alice() -> Subject {
    Subject { user: "alice".into(), groups: vec![] }
}

fn bob_in_equities() -> Subject {
    Subject { user: "bob".into(), groups: vec!["equities".into()] }
}

fn carol() -> Subject {
    Subject { user: "carol".into(), groups: vec!["sales".into()] }
}

/// (who, app, remembered, declared, request) → (decision, source).
#[test]
fn the_resolution_order_is_policy_then_remembered_then_manifest_then_deny() {
    let policy = AdminPolicy::parse(POLICY).expect("policy");
    let none: &[&str] = &[];
    type Case<'a> = (Subject, &'a str, &'a [(&'a str, bool)], &'a [&'a str], &'a str, Decision, Source);
    let cases: Vec<Case<'_>> = vec![
        // The policy's deny beats everything, remembered allow and manifest included.
        (alice(), "ticket", &[("camera", true)], &["camera"], "camera", Decision::Deny, Source::Policy),
        // The policy's allow for everyone.
        (carol(), "chart", &[], none, "bus.subscribe:prices.AAPL", Decision::Allow, Source::Policy),
        (carol(), "chart", &[], none, "bus.subscribe:prices.*", Decision::Allow, Source::Policy),
        // ... but not a wider pattern than the rule's.
        (carol(), "chart", &[], none, "bus.subscribe:#", Decision::Deny, Source::Default),
        (carol(), "chart", &[], none, "bus.subscribe:prices.#.x", Decision::Allow, Source::Policy),
        // Roles: by user name, by group; not for others.
        (alice(), "ticket", &[], none, "bus.publish:orders.new", Decision::Allow, Source::Policy),
        (bob_in_equities(), "ticket", &[], none, "fdc3.raiseIntent:StartOrder", Decision::Allow, Source::Policy),
        (carol(), "ticket", &[], none, "bus.publish:orders.new", Decision::Deny, Source::Default),
        (
            carol(),
            "ticket",
            &[],
            &["bus.publish:orders.#"],
            "bus.publish:orders.new",
            Decision::Prompt,
            Source::Manifest,
        ),
        // A role's rule is for its app only.
        (alice(), "chart", &[], none, "bus.publish:orders.new", Decision::Deny, Source::Default),
        // The policy requires a prompt: a remembered answer answers it, else the user is asked.
        (carol(), "ticket", &[], none, "clipboard.write", Decision::Prompt, Source::Policy),
        (carol(), "ticket", &[("clipboard.write", true)], none, "clipboard.write", Decision::Allow, Source::Remembered),
        (carol(), "ticket", &[("clipboard.write", false)], none, "clipboard.write", Decision::Deny, Source::Remembered),
        // Remembered answers where the policy says nothing.
        (carol(), "chart", &[("clipboard.read", true)], none, "clipboard.read", Decision::Allow, Source::Remembered),
        (
            carol(),
            "chart",
            &[("clipboard.read", false)],
            &["clipboard.read"],
            "clipboard.read",
            Decision::Deny,
            Source::Remembered,
        ),
        // A remembered answer for another scope does not count.
        (carol(), "chart", &[("bus.publish:a.b", true)], none, "bus.publish:a.c", Decision::Deny, Source::Default),
        (
            carol(),
            "chart",
            &[("bus.publish:a.*", true), ("bus.publish:a.c", false)],
            none,
            "bus.publish:a.c",
            Decision::Deny,
            Source::Remembered,
        ),
        // Declared in the manifest: asked. Not declared: denied.
        (carol(), "chart", &[], &["geolocation"], "geolocation", Decision::Prompt, Source::Manifest),
        (
            carol(),
            "chart",
            &[],
            &["fdc3.raiseIntent:*"],
            "fdc3.raiseIntent:ViewNews",
            Decision::Prompt,
            Source::Manifest,
        ),
        (
            carol(),
            "chart",
            &[],
            &["fdc3.raiseIntent:ViewChart"],
            "fdc3.raiseIntent:ViewNews",
            Decision::Deny,
            Source::Default,
        ),
        (carol(), "chart", &[], none, "geolocation", Decision::Deny, Source::Default),
        // Origins compare parsed: case, default port.
        (
            carol(),
            "news",
            &[("navigate:https://News.Example:443", true)],
            none,
            "navigate:https://news.example",
            Decision::Allow,
            Source::Remembered,
        ),
        (
            carol(),
            "news",
            &[("navigate:https://news.example", true)],
            none,
            "navigate:https://news.example:8443",
            Decision::Deny,
            Source::Default,
        ),
        (
            carol(),
            "news",
            &[("navigate:https://evil.example", true)],
            none,
            "navigate:https://EVIL.example/",
            Decision::Deny,
            Source::Policy,
        ),
        (carol(), "news", &[], none, "notifications", Decision::Prompt, Source::Policy),
        // Another role's rule.
        (
            Subject { user: "olga".into(), groups: vec![] },
            "news",
            &[],
            none,
            "secrets",
            Decision::Allow,
            Source::Policy,
        ),
        (carol(), "news", &[], none, "secrets", Decision::Deny, Source::Default),
    ];
    for (i, (who, app, remembered, declared, request, decision, source)) in cases.into_iter().enumerate() {
        let remembered: Vec<Remembered> =
            remembered.iter().map(|(s, allow)| Remembered { permission: p(s), allow: *allow }).collect();
        let declared: Vec<Permission> = declared.iter().map(|s| p(s)).collect();
        let v = resolve(&policy, &who, app, &remembered, &declared, &p(request));
        assert_eq!((v.decision, v.source), (decision, source), "case {i}: {} {app} {request}", who.user);
    }
}

#[test]
fn an_empty_policy_leaves_it_to_the_user_and_the_manifest() {
    let policy = AdminPolicy::default();
    let v = resolve(&policy, &carol(), "x", &[], &[], &p("notifications"));
    assert_eq!(v, Verdict { decision: Decision::Deny, source: Source::Default });
}

#[test]
fn a_bad_policy_names_each_problem() {
    let text = r#"{ "roles": {}, "rules": [
        { "apps": [], "allow": ["fdc3.broadcast"] },
        { "apps": ["x"], "roles": ["nobody"], "allow": ["teleport", "set:missing", "camera:front"] },
        { "apps": ["x"], "deny": ["navigate:https://*.example", "bus.publish:a..b"] } ] }"#;
    let e = AdminPolicy::parse(text).expect_err("refused");
    let all = e.problems.join("\n");
    for needle in [
        "rules[0].apps: empty",
        "rules[1].roles: \"nobody\" is not a role",
        "rules[1].allow: \"teleport\" is not a permission",
        "rules[1].allow: \"set:missing\" is not a permission set",
        "rules[1].allow: camera takes no scope",
        "rules[2].deny: navigate: scope \"https://*.example\"",
        "rules[2].deny: bus.publish: scope \"a..b\"",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(AdminPolicy::parse("{\"rulez\": []}").is_err(), "unknown fields are refused");
}

#[test]
fn pattern_containment() {
    for (outer, inner, want) in [
        ("#", "a.b", true),
        ("#", "#", true),
        ("a.#", "a.*", true),
        ("a.#", "a.#", true),
        ("a.#", "a", true),
        ("a.*", "a.#", false),
        ("a.*", "a.b", true),
        ("a.*", "a.*", true),
        ("a.*", "a.b.c", false),
        ("a.b", "a.*", false),
        ("*.b", "a.b", true),
        ("*.b", "#", false),
        ("a.#.z", "a.b.c.z", true),
        ("a.#.z", "a.*.z", true),
        ("a.#.z", "a.#", false),
        ("a.#.z", "a.#.z", true),
        ("*.#", "#", false),
        ("*.#", "a.#", true),
    ] {
        assert_eq!(pattern_contains(outer, inner), want, "{outer} ⊇ {inner}");
    }
}

#[test]
fn origins_are_normalised_and_tricks_refused() {
    assert_eq!(normal_origin("https://News.Example:443").as_deref(), Some("https://news.example"));
    assert_eq!(normal_origin("http://127.0.0.1:8080/").as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(normal_origin("https://xn--bcher-kva.example").as_deref(), Some("https://xn--bcher-kva.example"));
    assert_eq!(normal_origin("https://bücher.example").as_deref(), Some("https://xn--bcher-kva.example"));
    for bad in [
        "https://user:pw@news.example",
        "https://news.example.",
        "https://news.example/path",
        "https://*.example",
        "ftp://news.example",
        "javascript:alert(1)",
        "https://news.example?x=1",
        "news.example",
    ] {
        assert_eq!(normal_origin(bad), None, "{bad}");
    }
}

#[test]
fn release_keys_narrow_who_can_ship_a_build() {
    let key = |seed: u8| crate::signing::public_hex(&ed25519_dalek::SigningKey::from_bytes(&[seed; 32]));
    let policy = |release: &str, revoked: &str| {
        AdminPolicy::parse(&format!(
            r#"{{ "signing": {{ "trustedKeys": [ {{ "id": "apps", "publicKey": "{}" }} ], "revokedKeys": [{revoked}] }},
                 "update": {{ "feedUrl": "https://updates.example/t", "releaseKeys": [{release}] }} }}"#,
            key(1)
        ))
        .unwrap()
    };
    let b = format!(r#"{{ "id": "release", "publicKey": "{}" }}"#, key(2));
    // Without releaseKeys, the signing section's keys sign releases.
    let c = policy("", "").release_checker().unwrap();
    assert_eq!(c.release_keys().len(), 1);
    // With them, only they do, and a revoked one does not.
    let c = policy(&b, "").release_checker().unwrap();
    let keys = c.release_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        crate::signing::public_hex(&ed25519_dalek::SigningKey::from_bytes(&[2; 32])),
        keys[0].iter().map(|x| format!("{x:02x}")).collect::<String>()
    );
    assert!(policy(&b, r#""release""#).release_checker().unwrap().release_keys().is_empty());
    // A policy with an update section but no key at all is refused.
    let e = AdminPolicy::parse(r#"{ "update": { "feedUrl": "https://updates.example/t" } }"#).unwrap_err();
    assert!(e.to_string().contains("releaseKeys"), "{e}");
}

#[test]
fn telemetry_listens_on_loopback_only() {
    let ok = AdminPolicy::parse(r#"{"telemetry": {"listen": "127.0.0.1:9464"}}"#).unwrap();
    assert_eq!(ok.telemetry().and_then(TelemetryRules::address), Some("127.0.0.1:9464".parse().unwrap()));
    assert!(AdminPolicy::parse(r#"{"telemetry": {"listen": "[::1]:9464"}}"#).is_ok());
    for bad in ["0.0.0.0:9464", "10.0.0.1:80", "localhost", "127.0.0.1"] {
        let e = AdminPolicy::parse(&format!(r#"{{"telemetry": {{"listen": "{bad}"}}}}"#)).unwrap_err();
        assert!(e.to_string().contains("telemetry.listen"), "{bad}: {e}");
    }
    // Metrics are off unless the policy says so; a misspelt switch is refused, not ignored.
    assert!(!ok.telemetry().unwrap().metrics);
    let on = AdminPolicy::parse(r#"{"telemetry": {"listen": "127.0.0.1:9464", "metrics": true}}"#).unwrap();
    assert!(on.telemetry().unwrap().metrics);
    let e = AdminPolicy::parse(r#"{"telemetry": {"listen": "127.0.0.1:9464", "metric": true}}"#).unwrap_err();
    assert!(e.to_string().contains("metric"), "{e}");
}

#[test]
fn the_endpoints_websocket_listens_on_loopback_only() {
    let ok = AdminPolicy::parse(r#"{"endpoint": {"websocket": "127.0.0.1:7070"}}"#).unwrap();
    assert_eq!(ok.endpoint().and_then(EndpointRules::websocket_address), Some("127.0.0.1:7070".parse().unwrap()));
    assert!(
        AdminPolicy::parse(r#"{"endpoint": {}}"#)
            .unwrap()
            .endpoint()
            .and_then(EndpointRules::websocket_address)
            .is_none()
    );
    for bad in ["0.0.0.0:7070", "10.1.2.3:7070", "localhost:7070", "7070"] {
        let e = AdminPolicy::parse(&format!(r#"{{"endpoint": {{"websocket": "{bad}"}}}}"#)).unwrap_err();
        assert!(e.to_string().contains("endpoint.websocket"), "{bad}: {e}");
    }
    assert!(AdminPolicy::parse(r#"{"endpoint": {"tcp": "127.0.0.1:1"}}"#).is_err());
}

#[test]
fn traces_go_to_a_collector_over_https_or_beside_the_desk() {
    let p = AdminPolicy::parse(r#"{"traces": {"endpoint": "https://otel.corp:4318"}}"#).unwrap();
    let t = p.traces().unwrap();
    assert_eq!((t.endpoint.as_str(), t.sample_ratio), ("https://otel.corp:4318", 0.01));
    let p = AdminPolicy::parse(r#"{"traces": {"endpoint": "http://127.0.0.1:4318", "sampleRatio": 1}}"#).unwrap();
    assert_eq!(p.traces().unwrap().sample_ratio, 1.0);
    assert!(AdminPolicy::parse("{}").unwrap().traces().is_none());
    for (bad, why) in [
        (r#"{"endpoint": "http://otel.corp:4318"}"#, "not an https:// address"),
        (r#"{"endpoint": "https://ops:hunter2@otel.corp"}"#, "user name or password"),
        (r#"{"endpoint": "otel"}"#, "not an https:// address"),
        (r#"{"endpoint": "https://otel.corp", "sampleRatio": 1.5}"#, "traces.sampleRatio: 1.5"),
        (r#"{"endpoint": "https://otel.corp", "sampleRatio": -0.1}"#, "traces.sampleRatio"),
        (r#"{"endpoint": "https://otel.corp", "ratio": 1}"#, "unknown field"),
        (r#"{"sampleRatio": 1}"#, "endpoint"),
    ] {
        let e = AdminPolicy::parse(&format!(r#"{{"traces": {bad}}}"#)).unwrap_err().to_string();
        assert!(e.contains(why) && !e.contains("hunter2"), "{bad}: {e}");
    }
}
