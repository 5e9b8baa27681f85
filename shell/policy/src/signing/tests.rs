use serde_json::json;

use super::*;

const NOW: &str = "2026-11-26T12:00:00Z";
const LATER: &str = "2027-06-30T00:00:00Z";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn checker() -> Checker {
    Checker::new(&SigningRules {
        require_signed: true,
        trusted_keys: vec![
            TrustedKey { id: "it-2026".into(), public_key: public_hex(&key(1)) },
            TrustedKey { id: "it-2027".into(), public_key: public_hex(&key(2)) },
            TrustedKey { id: "old".into(), public_key: public_hex(&key(3)) },
        ],
        revoked_keys: vec!["old".into()],
    })
    .expect("rules")
}

fn record() -> Value {
    json!({
        "appId": "chart", "title": "Chart", "type": "web", "version": "2.1.0",
        "details": { "url": "https://chart.example/app" }, "origin": "https://chart.example",
    })
}

fn signed(v: &Value, seed: u8, id: &str, expires: &str) -> Value {
    sign_record(v, &key(seed), id, expires).expect("signed")
}

fn with(mut v: Value, path: &[&str], new: Value) -> Value {
    let mut at = &mut v;
    for p in &path[..path.len() - 1] {
        at = &mut at[*p];
    }
    at[path[path.len() - 1]] = new;
    v
}

#[derive(Debug, PartialEq)]
enum Want {
    Unsigned,
    Malformed,
    UnknownKey,
    Revoked,
    BadSignature,
    Expired,
    Downgraded,
    Url,
    Json,
}

fn kind(e: &SignatureError) -> Want {
    match e {
        SignatureError::Json(_) => Want::Json,
        SignatureError::Unsigned => Want::Unsigned,
        SignatureError::Malformed(_) => Want::Malformed,
        SignatureError::UnknownKey(_) => Want::UnknownKey,
        SignatureError::RevokedKey(_) => Want::Revoked,
        SignatureError::BadSignature(_) => Want::BadSignature,
        SignatureError::Expired(_) => Want::Expired,
        SignatureError::Downgraded { .. } => Want::Downgraded,
        SignatureError::Url(_) | SignatureError::BadTrustedKey(_) => Want::Url,
    }
}

#[test]
fn good_signatures_pass_including_a_rotated_key() {
    let c = checker();
    for (seed, id) in [(1, "it-2026"), (2, "it-2027")] {
        let text = signed(&record(), seed, id, LATER).to_string();
        c.check_record(&text, None, NOW).expect("valid");
        c.check_record(&text, Some("2.1.0"), NOW).expect("the same version again is not a downgrade");
        c.check_record(&text, Some("1.9.9"), NOW).expect("an upgrade");
    }
    // Key order and spacing do not matter: the signature is over the canonical form.
    let text = serde_json::to_string_pretty(&signed(&record(), 1, "it-2026", LATER)).unwrap();
    c.check_record(&text, None, NOW).expect("pretty-printed");
    // Unsigned records are fine when the policy does not require signatures.
    let lax = Checker::new(&SigningRules::default()).unwrap();
    lax.check_record(&record().to_string(), None, NOW).expect("unsigned, not required");
}

#[test]
#[expect(clippy::too_many_lines, reason = "one table of signed records, each checked for its reason")]
fn at_least_twenty_five_bad_records_are_refused_each_for_its_reason() {
    let c = checker();
    let good = signed(&record(), 1, "it-2026", LATER);
    let other = signed(&with(record(), &["appId"], json!("news")), 1, "it-2026", LATER);
    let raw = |s: &str| s.to_owned();
    let text = |v: Value| v.to_string();
    let vectors: Vec<(&str, String, Option<&str>, Want)> = vec![
        ("unsigned", text(record()), None, Want::Unsigned),
        (
            "signed by another key under a trusted id",
            text(signed(&record(), 9, "it-2026", LATER)),
            None,
            Want::BadSignature,
        ),
        ("signed by an unknown key", text(signed(&record(), 9, "rogue", LATER)), None, Want::UnknownKey),
        ("signed by a revoked key", text(signed(&record(), 3, "old", LATER)), None, Want::Revoked),
        ("expired", text(signed(&record(), 1, "it-2026", "2026-01-01T00:00:00Z")), None, Want::Expired),
        ("expiring this very second", text(signed(&record(), 1, "it-2026", NOW)), None, Want::Expired),
        ("title changed after signing", text(with(good.clone(), &["title"], json!("Evil"))), None, Want::BadSignature),
        (
            "url changed after signing",
            text(with(good.clone(), &["details", "url"], json!("https://evil.example/"))),
            None,
            Want::BadSignature,
        ),
        (
            "expiry extended after signing",
            text(with(good.clone(), &["signature", "expires"], json!("2099-01-01T00:00:00Z"))),
            None,
            Want::BadSignature,
        ),
        (
            "key id swapped after signing",
            text(with(good.clone(), &["signature", "keyId"], json!("it-2027"))),
            None,
            Want::BadSignature,
        ),
        ("a field added after signing", text(with(good.clone(), &["tooltip"], json!("hi"))), None, Want::BadSignature),
        (
            "another record's signature",
            text(with(good.clone(), &["signature"], other["signature"].clone())),
            None,
            Want::BadSignature,
        ),
        (
            "signature value cut short",
            text(with(good.clone(), &["signature", "value"], json!("abcd"))),
            None,
            Want::Malformed,
        ),
        (
            "signature value not hex",
            text(with(good.clone(), &["signature", "value"], json!("z".repeat(128)))),
            None,
            Want::Malformed,
        ),
        (
            "signature without expiry",
            text(with(
                good.clone(),
                &["signature"],
                json!({ "keyId": "it-2026", "value": good["signature"]["value"] }),
            )),
            None,
            Want::Malformed,
        ),
        (
            "signature with an extra field",
            text(with(good.clone(), &["signature", "scope"], json!("all"))),
            None,
            Want::Malformed,
        ),
        (
            "signature that is a string",
            text(with(good.clone(), &["signature"], json!("trust me"))),
            None,
            Want::Malformed,
        ),
        ("expiry that is not a time", text(signed(&record(), 1, "it-2026", "next year")), None, Want::Malformed),
        ("downgraded", text(good.clone()), Some("2.2.0"), Want::Downgraded),
        (
            "downgraded, 1.9 after 1.10",
            text(signed(&with(record(), &["version"], json!("1.9")), 1, "it-2026", LATER)),
            Some("1.10"),
            Want::Downgraded,
        ),
        ("duplicate title key", raw(&text(good.clone()).replacen("{", "{\"title\":\"Evil\",", 1)), None, Want::Json),
        (
            "duplicate url key inside details",
            raw(&text(good.clone()).replace("\"url\":", "\"url\":\"https://evil.example/\",\"url\":")),
            None,
            Want::Json,
        ),
        (
            "duplicate key inside the signature",
            raw(&text(good.clone()).replace("\"keyId\":", "\"keyId\":\"rogue\",\"keyId\":")),
            None,
            Want::Json,
        ),
        (
            "wildcard origin",
            text(signed(&with(record(), &["details", "url"], json!("https://*.example/")), 1, "it-2026", LATER)),
            None,
            Want::Url,
        ),
        (
            "userinfo in the URL",
            text(signed(
                &with(record(), &["details", "url"], json!("https://user:pw@chart.example/")),
                1,
                "it-2026",
                LATER,
            )),
            None,
            Want::Url,
        ),
        (
            "IDN look-alike host",
            text(signed(
                &with(record(), &["details", "url"], json!("https://\u{0441}hart.example/")),
                1,
                "it-2026",
                LATER,
            )),
            None,
            Want::Url,
        ),
        (
            "punycode host",
            text(signed(
                &with(record(), &["details", "url"], json!("https://xn--hart-9ve.example/")),
                1,
                "it-2026",
                LATER,
            )),
            None,
            Want::Url,
        ),
        (
            "trailing dot",
            text(signed(
                &with(record(), &["details", "url"], json!("https://chart.example./app")),
                1,
                "it-2026",
                LATER,
            )),
            None,
            Want::Url,
        ),
        (
            "port other than the claimed origin's",
            text(signed(
                &with(record(), &["details", "url"], json!("https://chart.example:8443/app")),
                1,
                "it-2026",
                LATER,
            )),
            None,
            Want::Url,
        ),
        (
            "host other than the claimed origin's",
            text(signed(
                &with(record(), &["details", "url"], json!("https://chart.example.evil.com/")),
                1,
                "it-2026",
                LATER,
            )),
            None,
            Want::Url,
        ),
        (
            "plain http",
            text(signed(&with(record(), &["details", "url"], json!("http://chart.example/app")), 1, "it-2026", LATER)),
            None,
            Want::Url,
        ),
        (
            "javascript: URL",
            text(signed(&with(record(), &["details", "url"], json!("javascript:alert(1)")), 1, "it-2026", LATER)),
            None,
            Want::Url,
        ),
        ("not JSON", raw("{\"appId\": \"chart\""), None, Want::Json),
    ];
    assert!(vectors.len() >= 25);
    for (what, text, seen, want) in vectors {
        match c.check_record(&text, seen, NOW) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => {
                assert_eq!(kind(&e), want, "{what}: {e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn manifests_are_signed_over_their_exact_bytes() {
    let c = checker();
    let bytes = br#"{ "name": "Desk", "apps": [] }"#;
    let sig = sign_file(bytes, &key(1), "it-2026", LATER).to_string();
    c.check_manifest(bytes, Some(&sig), NOW).expect("valid");
    let mut tampered = bytes.to_vec();
    tampered[12] = b'X'; // "Desk" becomes "DXsk": still JSON, not what was signed
    assert!(matches!(c.check_manifest(&tampered, Some(&sig), NOW), Err(SignatureError::BadSignature(_))));
    assert_eq!(c.check_manifest(bytes, None, NOW), Err(SignatureError::Unsigned));
    let revoked = sign_file(bytes, &key(3), "old", LATER).to_string();
    assert_eq!(c.check_manifest(bytes, Some(&revoked), NOW), Err(SignatureError::RevokedKey("old".into())));
    let dup = br#"{ "name": "Desk", "name": "Other", "apps": [] }"#;
    let sig = sign_file(dup, &key(1), "it-2026", LATER).to_string();
    assert!(
        matches!(c.check_manifest(dup, Some(&sig), NOW), Err(SignatureError::Json(_))),
        "duplicate keys, even signed"
    );
    assert!(
        Checker::new(&SigningRules {
            trusted_keys: vec![TrustedKey { id: "x".into(), public_key: "nothex".into() }],
            ..SigningRules::default()
        })
        .is_err()
    );
}

#[test]
fn versions_compare_numerically() {
    use std::cmp::Ordering::*;
    assert_eq!(version_cmp("1.10", "1.9"), Greater);
    assert_eq!(version_cmp("2.0", "2.0.0"), Equal);
    assert_eq!(version_cmp("2.0.1", "2.0"), Greater);
    assert_eq!(version_cmp("1.0-beta", "1.0-alpha"), Greater);
}

#[test]
fn credentials_are_signed_by_it_and_proven_by_the_app() {
    let it = SigningKey::from_bytes(&[7; 32]);
    let rules = SigningRules {
        require_signed: false,
        trusted_keys: vec![TrustedKey { id: "it".into(), public_key: public_hex(&it) }],
        revoked_keys: vec![],
    };
    let checker = Checker::new(&rules).unwrap();
    let app_key = SigningKey::from_bytes(&[9; 32]);
    let now = "2026-12-07T00:00:00Z";
    let cred = sign_credential("oms", &app_key.verifying_key(), &it, "it", "2027-01-01T00:00:00Z").unwrap();
    let c = checker.check_credential(&cred, now).unwrap();
    assert_eq!((c.app.as_str(), c.public_key), ("oms", app_key.verifying_key().to_bytes()));

    // The app proves it holds the key by signing the challenge; another key, another nonce or
    // another app's name does not do.
    let nonce = "00ff";
    let proof = hex(&app_key.sign(protocol::native::challenge_message("oms", nonce).as_bytes()).to_bytes());
    check_proof(&c, nonce, &proof).unwrap();
    assert!(check_proof(&c, "0100", &proof).is_err());
    let stranger = SigningKey::from_bytes(&[3; 32]);
    assert!(
        check_proof(
            &c,
            nonce,
            &hex(&stranger.sign(protocol::native::challenge_message("oms", nonce).as_bytes()).to_bytes())
        )
        .is_err()
    );
    assert!(
        check_proof(
            &c,
            nonce,
            &hex(&app_key.sign(protocol::native::challenge_message("risk", nonce).as_bytes()).to_bytes())
        )
        .is_err()
    );
    assert!(check_proof(&c, nonce, "zz").is_err());

    // Tampered, expired, unsigned, unknown key, or padded: refused.
    let mut tampered = cred.clone();
    tampered["app"] = "risk".into();
    assert!(matches!(checker.check_credential(&tampered, now), Err(SignatureError::BadSignature(_))));
    let old = sign_credential("oms", &app_key.verifying_key(), &it, "it", "2026-01-01T00:00:00Z").unwrap();
    assert!(matches!(checker.check_credential(&old, now), Err(SignatureError::Expired(_))));
    let mut unsigned = cred.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    assert_eq!(checker.check_credential(&unsigned, now), Err(SignatureError::Unsigned));
    let other = sign_credential("oms", &app_key.verifying_key(), &stranger, "it", "2027-01-01T00:00:00Z").unwrap();
    assert!(matches!(checker.check_credential(&other, now), Err(SignatureError::BadSignature(_))));
    let mut record = serde_json::json!({ "kind": CREDENTIAL_KIND, "app": "oms", "publicKey": hex(app_key.verifying_key().as_bytes()), "admin": true });
    record = sign_record(&record, &it, "it", "2027-01-01T00:00:00Z").unwrap();
    assert!(checker.check_credential(&record, now).unwrap_err().to_string().contains("unexpected field \"admin\""));
    let not_a_credential =
        sign_record(&serde_json::json!({ "appId": "oms" }), &it, "it", "2027-01-01T00:00:00Z").unwrap();
    assert!(checker.check_credential(&not_a_credential, now).is_err());
}
