use super::*;

#[test]
fn paths_stay_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/a b.html"), "x").unwrap();
    std::fs::write(root.join("index.html"), "x").unwrap();
    std::fs::write(dir.path().parent().unwrap().join("secret-outside"), "x").ok();
    assert_eq!(resolve(&root, "/sub/a%20b.html").unwrap(), root.join("sub/a b.html"));
    assert_eq!(resolve(&root, "/").unwrap(), root.join("index.html"));
    for bad in ["/../secret-outside", "/sub/../../x", "/%2e%2e/x", "/sub/%00", "/%zz", "/nope.html"] {
        assert!(resolve(&root, bad).is_err(), "{bad}");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", root.join("link")).unwrap();
        assert!(resolve(&root, "/link").is_err(), "a symlink out of the root");
    }
}
