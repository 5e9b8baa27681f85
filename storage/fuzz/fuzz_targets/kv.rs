//! Fuzzes the decoders of the profile's small tables and of the audit log's stored records:
//! no input may panic them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::audit::{AuditEntry, SignedTreeHead};
use storage::kv::decode_json;
use storage::merkle::Frontier;
use storage::{Grant, SavedLayout};

fuzz_target!(|data: &[u8]| {
    let _ = decode_json::<Grant>("grants", "k", data);
    let _ = decode_json::<SavedLayout>("layouts", "k", data);
    let _ = decode_json::<broker::DeadLetter>("dead_letters", "k", data);
    let _ = decode_json::<AuditEntry>("audit", "k", data);
    if let Ok(head) = decode_json::<SignedTreeHead>("audit_heads", "k", data) {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&[0u8; 32]);
        if let Ok(key) = key {
            let _ = head.check_signature(&key);
        }
    }
    if let Some(f) = Frontier::decode(data) {
        assert_eq!(Frontier::decode(&f.encode()), Some(f.clone()));
        let _ = f.root();
    }
});
