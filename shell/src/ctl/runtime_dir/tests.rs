use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn a_fresh_directory_is_made_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/tessera");
    prepare(&dir).unwrap();
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    prepare(&dir).unwrap();
}

#[test]
fn a_directory_others_may_enter_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tessera");
    std::fs::create_dir(&dir).unwrap();
    for mode in [0o777, 0o755, 0o720, 0o701] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = prepare(&dir).unwrap_err();
        assert!(matches!(e, RuntimeDirError::OpenToOthers { mode: m, .. } if m == mode), "{mode:o}: {e}");
        assert!(e.to_string().contains(&format!("{mode:04o}")), "{e}");
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, mode, "unchanged");
    }
}

#[test]
fn a_link_or_a_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(matches!(prepare(&link).unwrap_err(), RuntimeDirError::NotADirectory { .. }));
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    assert!(matches!(check(&file).unwrap_err(), RuntimeDirError::NotADirectory { .. }));
}

#[test]
fn someone_elses_directory_is_refused() {
    if me() != 0 {
        eprintln!("skipped: only root can give a directory away");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tessera");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let e = prepare(&dir).unwrap_err();
    assert!(matches!(e, RuntimeDirError::NotYours { owner: 65534, .. }), "{e}");
}

#[test]
fn a_peer_of_the_same_user_passes() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    check_peer(&a, Path::new("pair")).unwrap();
}

#[test]
fn a_named_directory_may_be_shared_but_not_replaceable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("named");
    prepare_named(&dir).unwrap();
    for (mode, ok) in [(0o755, true), (0o700, true), (0o1777, true), (0o777, false), (0o775, false)] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(check_named(&dir).is_ok(), ok, "{mode:o}");
    }
    assert!(matches!(check_named(&dir).unwrap_err(), RuntimeDirError::Replaceable { mode: 0o775, .. }));
}
