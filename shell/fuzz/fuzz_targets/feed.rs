//! Fuzzes the update feed's checks. The input is JSON; when it is an object it is signed here
//! with a trusted key, so every check after the signature is reached too. No input may panic,
//! and a feed accepted as an update keeps the rules: newer than the running version, not below
//! its minimum, a 64-hex digest, a positive size, a rollout that includes this desk, https (or
//! plain http to this machine), the channel asked for, not expired.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use policy::signing::{Checker, SigningRules, TrustedKey, public_hex, sign_record, version_cmp};
use update::feed::{Verdict, check};

const NOW: &str = "2026-11-26T12:00:00Z";

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[7; 32]);
    let rules = SigningRules {
        require_signed: true,
        trusted_keys: vec![TrustedKey { id: "k".into(), public_key: public_hex(&key) }],
        revoked_keys: vec![],
    };
    let Ok(checker) = Checker::new(&rules) else { return };
    let text = String::from_utf8_lossy(data);
    // As it comes (mostly refused at the signature)...
    let _ = check(&checker, &text, "stable", "1.0.0", Some("2026-11-01T00:00:00Z"), 50, NOW);
    // ...and signed, so the field checks run.
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else { return };
    let Ok(signed) = sign_record(&value, &key, "k", "2027-01-01T00:00:00Z") else { return };
    let verdict = check(&checker, &signed.to_string(), "stable", "1.0.0", Some("2026-11-01T00:00:00Z"), 50, NOW);
    if let Ok(Verdict::Update(f)) = verdict {
        assert_eq!(f.channel, "stable");
        assert_eq!(version_cmp(&f.version, "1.0.0"), std::cmp::Ordering::Greater);
        if let Some(min) = &f.minimum_version {
            assert_ne!(version_cmp("1.0.0", min), std::cmp::Ordering::Less);
        }
        assert!(f.sha256.len() == 64 && f.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(f.size > 0);
        assert!(f.rollout_percent > 50 && f.rollout_percent <= 100);
        assert!(f.url.starts_with("https://") || policy::local_http(&f.url));
        assert!(f.expires.as_str() > NOW);
    }
});
