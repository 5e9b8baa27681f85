use std::collections::HashSet;

use super::*;
use crate::keys::MemoryKeys;

fn setup() -> (tempfile::TempDir, Profile, Arc<MemoryKeys>, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::open(dir.path()).unwrap();
    let keys = Arc::new(MemoryKeys::default());
    let vault = Vault::open(&profile, keys.clone()).unwrap();
    (dir, profile, keys, vault)
}

fn raw(profile: &Profile, key: &str) -> Vec<u8> {
    let txn = profile.db().begin_read().unwrap();
    let t = txn.open_table(VAULT).unwrap();
    t.get(key).unwrap().unwrap().value().to_vec()
}

fn poke(profile: &Profile, key: &str, rec: &[u8]) {
    let txn = profile.db().begin_write().unwrap();
    txn.open_table(VAULT).unwrap().insert(key, rec).unwrap();
    txn.commit().unwrap();
}

#[test]
fn secrets_round_trip_and_are_not_stored_in_clear() {
    let (dir, profile, keys, vault) = setup();
    vault.put("credentials", "oms", b"hunter2-very-secret").unwrap();
    vault.put("credentials", "fix", b"").unwrap();
    assert_eq!(vault.get("credentials", "oms").unwrap().as_deref(), Some(&b"hunter2-very-secret"[..]));
    assert_eq!(vault.get("credentials", "fix").unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(vault.get("credentials", "none").unwrap(), None);
    assert_eq!(vault.ids("credentials").unwrap(), ["fix", "oms"]);
    let rec = raw(&profile, "credentials\u{0}oms");
    assert!(!rec.windows(7).any(|w| w == b"hunter2"), "plaintext on disk");
    let file = std::fs::read(profile.database_path()).unwrap();
    assert!(!file.windows(7).any(|w| w == b"hunter2"), "plaintext in the database file");
    drop(vault);
    drop(profile);
    // Reopened with the same key source, the secrets are there.
    let profile = Profile::open(dir.path()).unwrap();
    let vault = Vault::open(&profile, keys).unwrap();
    assert_eq!(vault.get("credentials", "oms").unwrap().as_deref(), Some(&b"hunter2-very-secret"[..]));
    assert!(vault.delete("credentials", "oms").unwrap());
    assert_eq!(vault.verify().unwrap(), 1);
}

#[test]
fn a_million_encryptions_never_repeat_a_nonce() {
    let (_d, _p, _k, vault) = setup();
    let master = vault.master(1).unwrap();
    let mut seen = HashSet::with_capacity(1_000_000);
    for i in 0..1_000_000u32 {
        let rec = vault.seal("p", "id", &i.to_le_bytes(), 1, &master).unwrap();
        let nonce: [u8; 24] = rec[5..HEADER].try_into().unwrap();
        assert!(seen.insert(nonce), "nonce repeated at encryption {i}");
    }
}

#[test]
fn moved_swapped_or_flipped_ciphertexts_fail() {
    let (_d, profile, _k, vault) = setup();
    vault.put("credentials", "a", b"secret-a").unwrap();
    vault.put("credentials", "b", b"secret-b").unwrap();
    vault.put("audit", "a", b"secret-c").unwrap();
    let a = raw(&profile, "credentials\u{0}a");
    let b = raw(&profile, "credentials\u{0}b");
    // Swap a and b: each fails, it is bound to its own id.
    poke(&profile, "credentials\u{0}a", &b);
    poke(&profile, "credentials\u{0}b", &a);
    assert!(matches!(vault.get("credentials", "a"), Err(Error::Tampered { .. })));
    assert!(matches!(vault.get("credentials", "b"), Err(Error::Tampered { .. })));
    // Moved to another purpose with the same id: another key, fails.
    poke(&profile, "audit\u{0}a", &a);
    assert!(matches!(vault.get("audit", "a"), Err(Error::Tampered { .. })));
    // Every single bit flip is caught.
    for bit in 0..a.len() * 8 {
        let mut bad = a.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        poke(&profile, "credentials\u{0}a", &bad);
        assert!(vault.get("credentials", "a").is_err(), "flipped bit {bit} went unnoticed");
    }
    poke(&profile, "credentials\u{0}a", &a);
    assert_eq!(vault.get("credentials", "a").unwrap().as_deref(), Some(&b"secret-a"[..]));
    // Truncated records too.
    poke(&profile, "credentials\u{0}a", &a[..10]);
    assert!(matches!(vault.get("credentials", "a"), Err(Error::Tampered { .. })));
}

#[test]
fn rotation_reencrypts_everything_and_retires_the_old_key() {
    let (_d, profile, keys, vault) = setup();
    for i in 0..200 {
        vault.put("credentials", &format!("k{i}"), format!("v{i}").as_bytes()).unwrap();
    }
    let old_name = vault.key_name(1);
    let r = vault.rotate().unwrap();
    assert_eq!((r.from, r.to, r.reencrypted), (1, 2, 200));
    assert_eq!(vault.key_version(), 2);
    assert!(keys.get(&old_name).unwrap().is_none(), "old key deleted");
    for i in 0..200 {
        assert_eq!(vault.get("credentials", &format!("k{i}")).unwrap().unwrap(), format!("v{i}").as_bytes());
        assert_eq!(Vault::version_of(&raw(&profile, &format!("credentials\u{0}k{i}")), "k").unwrap(), 2);
    }
    vault.rotate().unwrap();
    assert_eq!(vault.key_version(), 3);
    assert_eq!(vault.verify().unwrap(), 200);
}

#[test]
fn an_interrupted_rotation_is_finished_on_open() {
    let (dir, profile, keys, vault) = setup();
    for i in 0..150 {
        vault.put("credentials", &format!("k{i}"), format!("v{i}").as_bytes()).unwrap();
    }
    // Do steps 1-2 and part of 3 by hand: the new key stored, the rotation marked, 64 records
    // re-encrypted; then "crash".
    let new_key = [9u8; 32];
    keys.put(&vault.key_name(2), &new_key).unwrap();
    vault
        .set_meta(|m| {
            m.insert("rotating_to", 2u32.to_le_bytes().as_slice()).unwrap();
            Ok(())
        })
        .unwrap();
    for i in 0..64 {
        let id = format!("k{i}");
        let sealed = vault.seal("credentials", &id, format!("v{i}").as_bytes(), 2, &new_key).unwrap();
        poke(&profile, &format!("credentials\u{0}{id}"), &sealed);
    }
    drop(vault);
    drop(profile);
    let profile = Profile::open(dir.path()).unwrap();
    let vault = Vault::open(&profile, keys.clone()).unwrap();
    assert_eq!(vault.key_version(), 2, "open finished the rotation");
    for i in 0..150 {
        assert_eq!(vault.get("credentials", &format!("k{i}")).unwrap().unwrap(), format!("v{i}").as_bytes());
    }
}

#[test]
fn a_missing_master_key_fails_closed_and_keeps_the_secrets() {
    let (dir, profile, _keys, vault) = setup();
    vault.put("credentials", "oms", b"s").unwrap();
    let before = raw(&profile, "credentials\u{0}oms");
    drop(vault);
    drop(profile);
    let profile = Profile::open(dir.path()).unwrap();
    let err = Vault::open(&profile, Arc::new(MemoryKeys::default())).unwrap_err();
    assert!(matches!(err, Error::MissingKey { .. }), "{err}");
    assert!(err.to_string().contains("kept untouched"), "{err}");
    assert_eq!(raw(&profile, "credentials\u{0}oms"), before);
}

#[test]
fn a_damaged_secret_blocks_rotation_before_it_starts() {
    let (dir, profile, keys, vault) = setup();
    vault.put("credentials", "good", b"fine").unwrap();
    vault.put("credentials", "bad", b"soon damaged").unwrap();
    let mut rec = raw(&profile, "credentials\u{0}bad");
    let last = rec.len() - 1;
    rec[last] ^= 1;
    poke(&profile, "credentials\u{0}bad", &rec);
    assert!(matches!(vault.rotate(), Err(Error::Tampered { .. })));
    assert_eq!(vault.key_version(), 1, "nothing was started");
    drop(vault);
    drop(profile);
    // The vault still opens and the good secret reads.
    let profile = Profile::open(dir.path()).unwrap();
    let vault = Vault::open(&profile, keys).unwrap();
    assert_eq!(vault.get("credentials", "good").unwrap().as_deref(), Some(&b"fine"[..]));
}

#[test]
fn a_rotation_whose_new_key_vanished_is_not_papered_over() {
    let (dir, profile, keys, vault) = setup();
    vault.put("credentials", "k", b"v").unwrap();
    vault
        .set_meta(|m| {
            m.insert("rotating_to", 2u32.to_le_bytes().as_slice()).unwrap();
            Ok(())
        })
        .unwrap();
    drop(vault);
    drop(profile);
    let profile = Profile::open(dir.path()).unwrap();
    let err = Vault::open(&profile, keys.clone()).unwrap_err();
    assert!(matches!(err, Error::MissingKey { .. }), "{err}");
    assert!(err.to_string().contains("-v2"), "names the missing version: {err}");
}

#[test]
fn concurrent_puts_during_rotation_are_not_lost() {
    let (_d, _p, _k, vault) = setup();
    let vault = Arc::new(vault);
    for i in 0..300 {
        vault.put("c", &format!("old{i}"), b"o").unwrap();
    }
    let writer = {
        let vault = Arc::clone(&vault);
        std::thread::spawn(move || {
            for i in 0..300 {
                vault.put("c", &format!("new{i}"), format!("n{i}").as_bytes()).unwrap();
            }
        })
    };
    vault.rotate().unwrap();
    writer.join().unwrap();
    for i in 0..300 {
        assert_eq!(vault.get("c", &format!("new{i}")).unwrap().unwrap(), format!("n{i}").as_bytes());
    }
    assert_eq!(vault.verify().unwrap(), 600);
}
