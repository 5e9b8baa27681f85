use super::*;

/// An install root with builds `versions` (fake ones: a script for `tessera`), `current` at
/// the first.
fn root(versions: &[&str]) -> (tempfile::TempDir, Install) {
    let dir = tempfile::tempdir().unwrap();
    for v in versions {
        let rel = dir.path().join("releases").join(v);
        fs::create_dir_all(rel.join("bin")).unwrap();
        fs::write(rel.join("bin/tessera"), "#!/bin/sh\n").unwrap();
        fs::write(rel.join("bin/tessera-app-host"), "").unwrap();
        fs::write(rel.join("release.json"), format!(r#"{{"version":"{v}"}}"#)).unwrap();
    }
    std::os::unix::fs::symlink(Path::new("releases").join(versions[0]), dir.path().join("current")).unwrap();
    let install = Install::at(dir.path()).unwrap();
    (dir, install)
}

#[test]
fn a_staged_build_goes_on_probation_and_is_swapped_in_once_healthy() {
    let (_d, i) = root(&["1.0.0", "1.1.0"]);
    {
        let _lock = i.lock().unwrap();
        i.save_state(&State { staged: Some("1.1.0".into()), ..State::default() }).unwrap();
        let p = i.begin_probation().unwrap().unwrap();
        assert_eq!((p.version.as_str(), p.previous.as_str(), p.attempts), ("1.1.0", "1.0.0", 0));
        assert_eq!(i.current().unwrap(), "1.0.0", "the proven build stays current during probation");
        assert_eq!(i.state().unwrap().staged, None);
        // One at a time.
        i.save_state(&State { staged: Some("1.2.0".into()), probation: Some(p), ..State::default() }).unwrap();
        assert!(i.begin_probation().unwrap().is_none());
    }
    assert!(i.confirm("1.1.0").unwrap());
    assert_eq!(i.current().unwrap(), "1.1.0");
    assert_eq!(i.previous().as_deref(), Some("1.0.0"));
    assert_eq!(i.state().unwrap().probation, None);
    assert!(!i.healthy_marker("1.1.0").exists());
    assert!(!i.confirm("1.1.0").unwrap(), "nothing on probation any more");
    // A rollback on command goes back and refuses what it left.
    let _lock = i.lock().unwrap();
    assert_eq!(i.rollback("test").unwrap(), "1.0.0");
    assert_eq!(i.current().unwrap(), "1.0.0");
    assert_eq!(i.previous(), None);
    assert_eq!(i.state().unwrap().refused, vec!["1.1.0".to_owned()]);
    assert!(matches!(i.rollback("again"), Err(UpdateError::Nothing(_))));
}

#[test]
fn a_build_that_never_got_healthy_is_given_up() {
    let (_d, i) = root(&["1.0.0", "1.1.0"]);
    let _lock = i.lock().unwrap();
    i.save_state(&State { staged: Some("1.1.0".into()), ..State::default() }).unwrap();
    i.begin_probation().unwrap().unwrap();
    assert_eq!(i.abandon("test").unwrap().as_deref(), Some("1.1.0"));
    assert_eq!(i.current().unwrap(), "1.0.0");
    let s = i.state().unwrap();
    assert_eq!((s.probation, s.refused), (None, vec!["1.1.0".to_owned()]));
    i.settle().unwrap();
    assert!(!i.release_dir("1.1.0").exists(), "the refused build is deleted");
    // Staged again (an older feed, a stale state): refused, and not newer builds are dropped.
    i.save_state(&State { staged: Some("1.1.0".into()), refused: vec!["1.1.0".into()], ..State::default() }).unwrap();
    assert!(i.begin_probation().unwrap().is_none());
}

#[test]
fn an_interrupted_swap_is_finished_and_leftovers_removed() {
    let (d, i) = root(&["1.0.0", "1.1.0", ".1.2.0.partial"]);
    let _lock = i.lock().unwrap();
    fs::create_dir_all(d.path().join("update/downloads")).unwrap();
    fs::write(d.path().join("update/downloads/x.tar.gz.part"), "half").unwrap();
    fs::write(i.progress_path(), "{}").unwrap();
    std::os::unix::fs::symlink("releases/1.1.0", d.path().join(".current.tmp")).unwrap();
    // Killed after the new build reported healthy, before the links moved.
    let probation = Probation { version: "1.1.0".into(), previous: "1.0.0".into(), attempts: 1, since: now() };
    i.save_state(&State { probation: Some(probation), ..State::default() }).unwrap();
    fs::write(i.healthy_marker("1.1.0"), "now").unwrap();
    let removed = i.settle().unwrap();
    assert_eq!(i.current().unwrap(), "1.1.0");
    assert_eq!(i.previous().as_deref(), Some("1.0.0"));
    assert_eq!(i.state().unwrap().probation, None);
    assert!(!d.path().join(".current.tmp").exists());
    assert!(!d.path().join("releases/.1.2.0.partial").exists());
    assert!(!i.progress_path().exists());
    assert!(removed.len() >= 3, "{removed:?}");
}

#[test]
fn an_interrupted_rollback_is_finished() {
    let (_d, i) = root(&["1.1.0", "1.0.0"]);
    let _lock = i.lock().unwrap();
    let r = Rollback { from: "1.1.0".into(), to: "1.0.0".into(), reason: "test".into() };
    i.save_state(&State { rollback: Some(r), ..State::default() }).unwrap();
    i.settle().unwrap();
    assert_eq!(i.current().unwrap(), "1.0.0");
    assert_eq!(i.state().unwrap().rollback, None);
}

#[test]
fn the_lock_is_exclusive() {
    let (_d, i) = root(&["1.0.0"]);
    let held = i.lock().unwrap();
    assert!(i.try_lock().unwrap().is_none());
    drop(held);
    assert!(i.try_lock().unwrap().is_some());
}

#[test]
fn a_damaged_state_file_is_named() {
    let (d, i) = root(&["1.0.0"]);
    fs::create_dir_all(d.path().join("update")).unwrap();
    fs::write(i.state_path(), "{not json").unwrap();
    let e = i.state().unwrap_err().to_string();
    assert!(e.contains("state.json") && e.contains("move it away"), "{e}");
}

#[test]
fn versions_that_cannot_be_directory_names_are_refused() {
    for bad in ["", "..", "../x", "a/b", ".hidden", "1.0 beta"] {
        assert!(!valid_version(bad), "{bad:?}");
    }
    for good in ["1.0.0", "2.0.0-rc.1", "1.0.0+build5"] {
        assert!(valid_version(good), "{good:?}");
    }
}
