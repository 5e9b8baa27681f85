use std::sync::Arc;

use super::*;
use crate::keys::MemoryKeys;

fn entry(i: u64) -> AuditEntry {
    AuditEntry {
        time: Timestamp(1_800_000_000_000_000 + i),
        actor: "user".into(),
        app: Some("chart".into()),
        action: "permission.prompt".into(),
        object: format!("bus.publish:prices.{i}"),
        decision: if i.is_multiple_of(2) { "allow".into() } else { "deny".into() },
        details: serde_json::json!({"prompt": i}),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    profile: Profile,
    log: AuditLog,
    given: SignedTreeHead,
}

/// 25 entries, heads signed at 10 and 20 (and one given to IT at 25).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::open(dir.path()).unwrap();
    let vault = Vault::open(&profile, Arc::new(MemoryKeys::default())).unwrap();
    let cfg = AuditConfig { head_every_entries: 10, head_every: Duration::from_secs(3600) };
    let log = AuditLog::open(&profile, &vault, cfg).unwrap();
    for i in 0..25 {
        assert_eq!(log.append(&entry(i)).unwrap(), i);
    }
    let given = log.sign_head().unwrap();
    Fixture { _dir: dir, profile, log, given }
}

fn raw(p: &Profile, i: u64) -> Vec<u8> {
    let txn = p.db().begin_read().unwrap();
    txn.open_table(AUDIT).unwrap().get(i).unwrap().unwrap().value().to_vec()
}

fn put(p: &Profile, i: u64, bytes: &[u8]) {
    let txn = p.db().begin_write().unwrap();
    txn.open_table(AUDIT).unwrap().insert(i, bytes).unwrap();
    txn.commit().unwrap();
}

fn remove(p: &Profile, i: u64) {
    let txn = p.db().begin_write().unwrap();
    txn.open_table(AUDIT).unwrap().remove(i).unwrap();
    txn.commit().unwrap();
}

fn problems(f: &Fixture) -> Vec<String> {
    verify(&f.profile, &f.log.public_key(), Some(&f.given)).unwrap().problems
}

#[test]
fn an_untouched_log_verifies_against_every_head() {
    let f = fixture();
    let r = verify(&f.profile, &f.log.public_key(), Some(&f.given)).unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!((r.entries, r.heads_checked, r.covered_by_heads), (25, 4, 25));
    // The head file IT collects has every head, the last one being the given one.
    let from_file = read_head(&audit_dir(&f.profile).join("heads.jsonl")).unwrap();
    assert_eq!(from_file, f.given);
    let pk = std::fs::read_to_string(audit_dir(&f.profile).join("public-key")).unwrap();
    assert_eq!(parse_public_key(&pk), Some(f.log.public_key()));
    assert_eq!(stored_public_key(&f.profile).unwrap(), Some(f.log.public_key()));
    assert_eq!(entries(&f.profile, Some(Timestamp(1_800_000_000_000_020))).unwrap().len(), 5);
}

#[test]
fn a_changed_byte_is_detected() {
    let f = fixture();
    let mut bytes = raw(&f.profile, 3);
    let pos = bytes.windows(4).position(|w| w == b"deny").unwrap();
    bytes[pos + 1] = b'a'; // "deny" -> "dany": still valid JSON
    put(&f.profile, 3, &bytes);
    let p = problems(&f);
    assert!(!p.is_empty() && p.iter().all(|m| m.contains("no longer hash")), "{p:?}");
}

#[test]
fn a_deleted_entry_is_detected() {
    let f = fixture();
    remove(&f.profile, 5);
    let p = problems(&f);
    assert!(p.iter().any(|m| m.contains("entry 5 is missing")), "{p:?}");
}

#[test]
fn reordered_entries_are_detected() {
    let f = fixture();
    let (a, b) = (raw(&f.profile, 2), raw(&f.profile, 7));
    put(&f.profile, 2, &b);
    put(&f.profile, 7, &a);
    assert!(!problems(&f).is_empty());
}

#[test]
fn truncation_is_detected() {
    let f = fixture();
    for i in 15..25 {
        remove(&f.profile, i);
    }
    let p = problems(&f);
    assert!(p.iter().any(|m| m.contains("truncated")), "{p:?}");
}

#[test]
fn a_consistent_rewrite_is_caught_by_the_head_it_collected() {
    // An attacker rewrites an entry, rebuilds and re-signs nothing (no key), and deletes the
    // stored heads: only the head IT holds can tell, and it does.
    let f = fixture();
    let mut forged = entry(5);
    forged.decision = "allow".into();
    put(&f.profile, 5, &serde_json::to_vec(&forged).unwrap());
    let txn = f.profile.db().begin_write().unwrap();
    txn.delete_table(AUDIT_HEADS).unwrap();
    txn.commit().unwrap();
    let stored_only = verify(&f.profile, &f.log.public_key(), None).unwrap();
    assert!(stored_only.is_ok(), "with no head nothing can be proven");
    assert!(!problems(&f).is_empty(), "the collected head catches it");
}

#[test]
fn a_head_signed_by_another_key_is_refused() {
    let f = fixture();
    let other = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    let r = verify(&f.profile, &other, Some(&f.given)).unwrap();
    assert!(r.problems.iter().all(|m| m.contains("signed by key")), "{:?}", r.problems);
    let mut bad = f.given.clone();
    bad.tree_size = 24;
    let r = verify(&f.profile, &f.log.public_key(), Some(&bad)).unwrap();
    assert!(r.problems.iter().any(|m| m.contains("does not verify")), "{:?}", r.problems);
}

#[test]
fn reopening_continues_the_tree() {
    let f = fixture();
    let key = f.log.public_key();
    drop(f.log);
    let vault = Vault::open(&f.profile, Arc::new(MemoryKeys::default()));
    // A different key source has no vault key: the log cannot be reopened for signing...
    assert!(vault.is_err());
    // ...but verification needs only the public key.
    assert!(verify(&f.profile, &key, Some(&f.given)).unwrap().is_ok());
}

#[test]
fn two_logs_on_one_profile_interleave_without_overwriting() {
    let f = fixture();
    let vault = Vault::open(&f.profile, Arc::new(MemoryKeys::default()));
    // Another key source cannot open this vault; use the same log twice through a second
    // handle made from the same signing key instead.
    assert!(vault.is_err());
    let second = AuditLog {
        profile: f.profile.clone(),
        key: f.log.key.clone(),
        cfg: AuditConfig::default(),
        state: Mutex::new(State { frontier: Frontier::default(), last_head_size: 0, last_head_at: Instant::now() }),
    };
    assert_eq!(f.log.append(&entry(100)).unwrap(), 25);
    assert_eq!(second.append(&entry(101)).unwrap(), 26, "the index comes from the database");
    assert_eq!(f.log.append(&entry(102)).unwrap(), 27);
    let head = second.sign_head().unwrap();
    assert_eq!(head.tree_size, 28);
    let r = verify(&f.profile, &f.log.public_key(), Some(&head)).unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
}

#[test]
fn a_batch_is_appended_in_one_go_and_verifies_like_single_entries() {
    let f = fixture();
    let batch: Vec<AuditEntry> = (100..110).map(entry).collect();
    assert_eq!(f.log.append_many(&batch).unwrap(), 34);
    assert_eq!(f.log.append(&entry(110)).unwrap(), 35);
    let head = f.log.sign_head().unwrap();
    let r = verify(&f.profile, &f.log.public_key(), Some(&head)).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(serde_json::from_slice::<AuditEntry>(&raw(&f.profile, 30)).unwrap().object, "bus.publish:prices.105");
}
