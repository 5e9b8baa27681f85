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

#[test]
fn an_app_url_is_http_or_a_page_inside_the_manifests_folder() {
    let (dir, path) = dir_with_page();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/inner.html"), "<p>in</p>").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.html"), "<p>x</p>").unwrap();
    let rel_outside = format!("../{}/x.html", outside.path().file_name().unwrap().to_str().unwrap());
    let abs = dir.path().join("page.html");
    let long = format!("javascript:{}", "a".repeat(100_000));
    let cases: Vec<(&str, String, bool)> = vec![
        ("rel", "page.html".into(), true),
        ("sub", "sub/inner.html".into(), true),
        ("back-in", "sub/../page.html".into(), true),
        ("https", "https://example.com/app".into(), true),
        ("http", "HTTP://127.0.0.1:8080/".into(), true),
        ("file", "file:///etc/passwd".into(), false),
        ("js", "javascript:alert(1)".into(), false),
        ("data", "data:text/html,<p>x</p>".into(), false),
        ("ftp", "ftp://example.com/x".into(), false),
        ("tessera", "tessera://other/page.html".into(), false),
        ("nohost", "https://".into(), false),
        ("abs", abs.display().to_string(), false),
        ("etc", "/etc/passwd".into(), false),
        ("escape", rel_outside, false),
        ("long", long, false),
    ];
    for (id, url, ok) in cases {
        let text = serde_json::json!({ "name": "Desk", "apps": [{ "appId": id, "url": url }] }).to_string();
        std::fs::write(&path, text).unwrap();
        match load(&path) {
            Ok(_) => assert!(ok, "{id}: {url:.60} was accepted"),
            Err(e) => {
                let e = e.to_string();
                assert!(!ok, "{id}: refused: {e}");
                assert!(e.contains(&format!("app \"{id}\": url")), "{id}: {e}");
                assert!(e.len() < 600, "{id}: the error quotes too much ({} bytes)", e.len());
            }
        }
    }
}

#[test]
fn native_apps_name_an_executable_and_nothing_of_a_page() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = dir_with_page();
    let exe = dir.path().join("risk.py");
    std::fs::write(&exe, "#!/usr/bin/env python3\n").unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a program").unwrap();
    std::fs::write(
        &path,
        r#"{"apps": [
            {"appId": "risk", "type": "native", "path": "risk.py", "args": ["--fast"], "env": {"RISK_LEVEL": "2"},
             "interop": {"intents": {"listensFor": {"ViewRisk": {"contexts": ["fdc3.instrument"]}}}}},
            {"appId": "sh", "type": "native", "path": "/bin/sh"},
            {"appId": "oms", "type": "native"}],
            "startup": ["risk"]}"#,
    )
    .unwrap();
    let m = load(&path).unwrap();
    let n = m.apps[0].native.as_ref().unwrap();
    assert_eq!(n.program.as_deref(), Some(exe.canonicalize().unwrap().as_path()));
    assert_eq!(n.args, ["--fast"]);
    assert_eq!(n.env, [("RISK_LEVEL".to_owned(), "2".to_owned())]);
    assert_eq!(m.apps[1].native.as_ref().unwrap().program.as_deref(), Some(Path::new("/bin/sh")));
    assert_eq!(m.apps[2].native.as_ref().unwrap().program, None, "started elsewhere");
    assert!(m.apps.iter().all(|a| a.content_root.is_none()));
    let record = m.directory.apps().find(|r| r.app_id == "risk").unwrap();
    assert_eq!(record.kind, "native");

    let cases = [
        (r#"{"appId": "x", "type": "native", "args": ["-v"]}"#, "args and env need a path"),
        (r#"{"appId": "x", "type": "native", "path": ""}"#, "path: empty"),
        (r#"{"appId": "x", "type": "native", "path": "notes.txt"}"#, "is not an executable file"),
        (r#"{"appId": "x", "type": "native", "path": "../escape"}"#, "app \"x\": path:"),
        (r#"{"appId": "x", "type": "native", "path": "/no/such/program"}"#, "/no/such/program"),
        (r#"{"appId": "x", "type": "native", "path": "/bin/sh", "url": "page.html"}"#, "has no url, csp or origins"),
        (
            r#"{"appId": "x", "type": "native", "path": "/bin/sh", "env": {"TESSERA_LAUNCH_TOKEN": "t"}}"#,
            "env: \"TESSERA_LAUNCH_TOKEN\"",
        ),
        (r#"{"appId": "x", "type": "native", "path": "/bin/sh", "env": {"A=B": "t"}}"#, "env: \"A=B\""),
        (r#"{"appId": "x", "type": "citrix", "url": "page.html"}"#, "type: \"citrix\" is not"),
        (r#"{"appId": "x"}"#, "url: missing"),
    ];
    for (app, want) in cases {
        std::fs::write(&path, format!(r#"{{"apps": [{app}]}}"#)).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains(want), "{app}: {e}");
    }
}

#[test]
fn web_apps_share_the_host_of_their_trust_level_unless_they_name_a_group_or_ask_to_be_alone() {
    let (dir, path) = dir_with_page();
    std::fs::write(dir.path().join("tool"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(dir.path().join("tool"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        &path,
        r#"{"apps": [
            {"appId": "a", "url": "page.html"},
            {"appId": "b", "url": "https://example.com/b", "processGroup": "quotes-1.x"},
            {"appId": "c", "url": "page.html", "ownProcess": true},
            {"appId": "n", "type": "native", "path": "tool"}]}"#,
    )
    .unwrap();
    let m = load(&path).unwrap();
    let groups: Vec<Option<String>> = m.apps.iter().map(App::process_group).collect();
    assert_eq!(groups, [Some("desk".to_owned()), Some("quotes-1.x".to_owned()), None, None]);

    std::fs::write(
        &path,
        r#"{"apps": [
            {"appId": "up", "url": "page.html", "processGroup": "../x"},
            {"appId": "empty", "url": "page.html", "processGroup": ""},
            {"appId": "dot", "url": "page.html", "processGroup": ".hidden"},
            {"appId": "long", "url": "page.html", "processGroup": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
            {"appId": "both", "url": "page.html", "processGroup": "g", "ownProcess": true},
            {"appId": "nat", "type": "native", "path": "tool", "processGroup": "g"}]}"#,
    )
    .unwrap();
    let e = load(&path).unwrap_err().to_string();
    for needle in [
        "app \"up\": processGroup: \"../x\" is not a group name",
        "app \"empty\": processGroup",
        "app \"dot\": processGroup",
        "app \"long\": processGroup",
        "app \"both\": processGroup and ownProcess",
        "app \"nat\": processGroup and ownProcess are for web apps",
    ] {
        assert!(e.contains(needle), "{needle} not in {e}");
    }
}

#[test]
fn an_app_directorys_apps_share_the_directory_group() {
    let mut app = App {
        app_id: "d".into(),
        title: "d".into(),
        description: String::new(),
        icon: None,
        url: "https://example.com/".into(),
        content_root: None,
        origins: Origins::of("https://example.com/").unwrap(),
        memory_limit_bytes: None,
        cpu_limit_percent: None,
        source: Some("https://appd.example.com/v2/apps".into()),
        permissions: Vec::new(),
        csp: None,
        native: None,
        process: Process::ByTrust,
    };
    assert_eq!(app.process_group().as_deref(), Some("directory"));
    app.source = None;
    assert_eq!(app.process_group().as_deref(), Some("desk"));
}
