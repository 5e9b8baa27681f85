use super::*;

#[test]
fn key_file_round_trips_atomically_with_private_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.keys");
    let keys = KeyFileKeys::new(&path);
    assert_eq!(keys.get("a").unwrap(), None);
    keys.put("a", &[1u8; 32]).unwrap();
    keys.put("b", &[2u8; 32]).unwrap();
    assert_eq!(keys.get("a").unwrap(), Some([1u8; 32]));
    keys.delete("a").unwrap();
    keys.delete("never-there").unwrap();
    assert_eq!(keys.get("a").unwrap(), None);
    assert_eq!(KeyFileKeys::new(&path).get("b").unwrap(), Some([2u8; 32]), "a new reader sees the file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(!path.with_extension("tmp").exists());
    std::fs::write(&path, b"not json").unwrap();
    let err = keys.get("b").unwrap_err();
    assert!(err.to_string().contains("vault.keys"), "{err}");
}

#[test]
fn hex_is_strict() {
    assert_eq!(from_hex(&to_hex(&[0xab; 32])), Some([0xab; 32]));
    assert_eq!(from_hex("zz"), None);
    assert_eq!(from_hex(&"g".repeat(64)), None);
    assert_eq!(from_hex(&"é".repeat(32)), None);
}
