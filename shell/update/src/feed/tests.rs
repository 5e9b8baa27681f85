use ed25519_dalek::SigningKey;
use serde_json::json;

use super::*;
use policy::signing::{SigningRules, TrustedKey, public_hex, sign_record};

const NOW: &str = "2026-11-26T12:00:00Z";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn checker() -> Checker {
    Checker::new(&SigningRules {
        require_signed: true,
        trusted_keys: vec![
            TrustedKey { id: "release-2026".into(), public_key: public_hex(&key(1)) },
            TrustedKey { id: "release-2027".into(), public_key: public_hex(&key(2)) },
            TrustedKey { id: "leaked".into(), public_key: public_hex(&key(3)) },
        ],
        revoked_keys: vec!["leaked".into()],
    })
    .unwrap()
}

fn feed() -> Value {
    json!({
        "channel": "stable", "version": "1.4.0", "url": "https://updates.example/tessera-1.4.0.tar.gz",
        "sha256": "ab".repeat(32), "size": 1000, "minimumVersion": "1.2.0", "rolloutPercent": 25,
        "issuedAt": "2026-11-26T09:00:00Z", "expires": "2026-12-26T09:00:00Z",
    })
}

fn signed(v: &Value, seed: u8, id: &str) -> String {
    sign_record(v, &key(seed), id, "2027-01-01T00:00:00Z").unwrap().to_string()
}

fn with(mut v: Value, k: &str, new: Value) -> Value {
    v[k] = new;
    v
}

#[test]
fn a_good_feed_updates_inside_the_rollout_and_waits_outside_it() {
    let c = checker();
    let text = signed(&feed(), 1, "release-2026");
    assert!(
        matches!(check(&c, &text, "stable", "1.3.0", None, 10, NOW), Ok(Verdict::Update(f)) if f.version == "1.4.0")
    );
    assert!(matches!(check(&c, &text, "stable", "1.3.0", None, 25, NOW), Ok(Verdict::NotYet { bucket: 25, .. })));
    assert!(matches!(check(&c, &text, "stable", "1.4.0", None, 10, NOW), Ok(Verdict::UpToDate(_))));
    // The rotated-in key works too; the same feed issued again is not a replay.
    let text = signed(&feed(), 2, "release-2027");
    assert!(matches!(
        check(&c, &text, "stable", "1.3.0", Some("2026-11-26T09:00:00Z"), 0, NOW),
        Ok(Verdict::Update(_))
    ));
}

#[test]
fn bad_feeds_are_refused_each_for_its_reason() {
    let c = checker();
    let good = signed(&feed(), 1, "release-2026");
    let mut tampered: Value = serde_json::from_str(&good).unwrap();
    tampered["sha256"] = json!("cd".repeat(32));
    let cases: Vec<(&str, String, &str, Option<&str>, &str)> = vec![
        ("unsigned", feed().to_string(), "1.3.0", None, "not signed"),
        ("tampered after signing", tampered.to_string(), "1.3.0", None, "does not match"),
        ("an untrusted key", signed(&feed(), 9, "release-2026"), "1.3.0", None, "does not match"),
        ("an unknown key id", signed(&feed(), 9, "someone"), "1.3.0", None, "not trusted"),
        ("a revoked key", signed(&feed(), 3, "leaked"), "1.3.0", None, "revoked"),
        (
            "expired",
            signed(&with(feed(), "expires", json!("2026-11-01T00:00:00Z")), 1, "release-2026"),
            "1.3.0",
            None,
            "expired",
        ),
        (
            "another channel",
            signed(&with(feed(), "channel", json!("canary")), 1, "release-2026"),
            "1.3.0",
            None,
            "channel \"canary\"",
        ),
        ("replayed older feed", good.clone(), "1.3.0", Some("2026-11-26T10:00:00Z"), "replayed"),
        ("downgrade", good.clone(), "1.5.0", None, "downgrade"),
        ("below the minimum", good.clone(), "1.1.9", None, "minimum"),
        ("a bad digest", signed(&with(feed(), "sha256", json!("xyz")), 1, "release-2026"), "1.3.0", None, "sha256"),
        (
            "plain http",
            signed(&with(feed(), "url", json!("http://updates.example/t.tar.gz")), 1, "release-2026"),
            "1.3.0",
            None,
            "url",
        ),
        ("no size", signed(&with(feed(), "size", json!(0)), 1, "release-2026"), "1.3.0", None, "size"),
        (
            "a rollout over 100",
            signed(&with(feed(), "rolloutPercent", json!(150)), 1, "release-2026"),
            "1.3.0",
            None,
            "rolloutPercent",
        ),
        ("duplicate keys", good.replacen("{", "{\"version\":\"9.9.9\",", 1), "1.3.0", None, "appears twice"),
    ];
    for (what, text, running, seen, why) in cases {
        match check(&c, &text, "stable", running, seen, 0, NOW) {
            Ok(v) => panic!("{what}: accepted ({v:?})"),
            Err(e) => assert!(e.to_string().contains(why), "{what}: {e}"),
        }
    }
}

#[test]
fn rollout_buckets_are_stable_and_spread() {
    assert_eq!(bucket("machine-a", "stable"), bucket("machine-a\n", "stable"));
    let mut counts = [0u32; 100];
    for i in 0..10_000 {
        counts[usize::from(bucket(&format!("{i:032x}"), "stable"))] += 1;
    }
    assert!(counts.iter().all(|c| (50..=150).contains(c)), "{counts:?}");
    let under_25 = (0..10_000).filter(|i| bucket(&format!("{i:032x}"), "stable") < 25).count();
    assert!((2300..=2700).contains(&under_25), "{under_25}");
}

#[test]
fn plain_http_is_only_for_this_machine() {
    for ok in ["http://127.0.0.1:8080/a.tar.gz", "http://localhost/a", "http://[::1]:9/a"] {
        assert!(policy::local_http(ok), "{ok}");
    }
    for bad in [
        "http://localhost.evil.example/a",
        "http://127.0.0.1.nip.io/a",
        "http://localhost@evil.example/a",
        "http://user@localhost/a",
        "https://localhost/a",
        "http://10.0.0.1/a",
    ] {
        assert!(!policy::local_http(bad), "{bad}");
    }
}
