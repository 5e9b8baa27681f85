use super::*;

fn dir_with_page() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html"), "<p>hi</p>").unwrap();
    let manifest = dir.path().join("desk.json");
    (dir, manifest)
}

#[test]
fn a_good_manifest_loads_with_urls_resolved() {
    let (_dir, path) = dir_with_page();
    std::fs::write(
        &path,
        r#"{"name": "Desk", "apps": [
            {"appId": "a", "url": "page.html", "memoryLimitMiB": 300},
            {"appId": "b", "title": "Bee", "url": "https://example.com/b"}],
            "startup": ["a", "b"]}"#,
    )
    .unwrap();
    let m = load(&path).unwrap();
    assert_eq!(m.name, "Desk");
    assert_eq!(m.apps[0].url, "tessera://a/page.html");
    assert_eq!(m.apps[0].content_root.as_deref(), Some(path.parent().unwrap().canonicalize().unwrap().as_path()));
    assert_eq!(m.apps[1].content_root, None);
    assert_eq!(m.apps[0].title, "a");
    assert_eq!(m.apps[0].memory_limit_bytes, Some(300 << 20));
    assert_eq!(m.app("b").unwrap().title, "Bee");
    assert_eq!(m.startup, ["a", "b"]);
}

#[test]
fn every_problem_is_named_by_app_and_field() {
    let (_dir, path) = dir_with_page();
    std::fs::write(
        &path,
        r#"{"apps": [
            {"appId": "ok", "url": "page.html"},
            {"appId": "ok", "url": "page.html"},
            {"appId": "bad url", "url": "page.html"},
            {"appId": "missing", "url": "nowhere.html"},
            {"appId": "script", "url": "javascript:alert(1)"},
            {"appId": "tiny", "url": "page.html", "memoryLimitMiB": 1},
            {"appId": "greedy", "url": "page.html", "cpuLimitPercent": 0}],
            "startup": ["ghost"]}"#,
    )
    .unwrap();
    let e = load(&path).unwrap_err().to_string();
    for needle in [
        "app \"ok\": appId appears twice",
        "app \"bad url\": appId must be",
        "app \"missing\": url:",
        "app \"script\": url:",
        "app \"tiny\": memoryLimitMiB",
        "app \"greedy\": cpuLimitPercent",
        "startup: \"ghost\"",
    ] {
        assert!(e.contains(needle), "{needle} not in {e}");
    }
}

#[test]
fn syntax_errors_name_the_file_and_position() {
    let (_dir, path) = dir_with_page();
    std::fs::write(&path, "{\"apps\": [ {\"appId\": 1} ]}").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(e.contains("desk.json") && e.contains("line 1"), "{e}");
    std::fs::write(&path, r#"{"apps": [], "colour": "red"}"#).unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(e.contains("unknown field `colour`"), "{e}");
}
