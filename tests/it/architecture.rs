//! The workspace's rules, checked: crate dependency direction and file headers.

use std::path::Path;
use std::process::Command;

use tests::workspace_root;

/// UI, windowing and webview crates: only the compositor (egui, wgpu, winit) and the app host
/// (wry, GTK) may have them.
const UI: &[&str] = &["egui", "egui_tiles", "wgpu", "winit", "wry", "gtk", "webkit2gtk", "compositor"];

/// Crates each library must never depend on, directly or not. Together they keep the layers:
/// protocol at the bottom; broker on it; storage, policy and the compositor beside each other;
/// update on policy; the app host on protocol alone; the shell on top of everything.
const FORBIDDEN: &[(&str, &[&str])] = &[
    // The wire contract: serde, postcard and thiserror, nothing of ours and no I/O crate.
    (
        "protocol",
        &[
            "broker",
            "storage",
            "policy",
            "update",
            "shell",
            "app_host",
            "compositor",
            "serde_json",
            "tokio",
            "redb",
            "mio",
            "socket2",
            "nix",
            "rustix",
            "wry",
            "gtk",
            "egui",
            "winit",
        ],
    ),
    (
        "broker",
        &[
            "redb",
            "egui",
            "wgpu",
            "winit",
            "wry",
            "gtk",
            "tokio",
            "keyring-core",
            "self_update",
            "mio",
            "socket2",
            "nix",
            "storage",
            "policy",
            "update",
            "shell",
            "app_host",
            "compositor",
        ],
    ),
    // storage reaches tokio through the Secret Service keyring store (zbus), by design.
    (
        "storage",
        &["egui", "wgpu", "winit", "wry", "gtk", "egui_tiles", "policy", "update", "shell", "app_host", "compositor"],
    ),
    // The compositor takes view models and returns events: no broker, storage or runtime.
    ("compositor", &["broker", "storage", "redb", "tokio", "wry", "gtk", "policy", "update", "shell", "app_host"]),
    // Policies are data in, decisions out: no UI, storage, processes or runtime.
    (
        "policy",
        &[
            "egui",
            "egui_tiles",
            "wgpu",
            "winit",
            "wry",
            "gtk",
            "webkit2gtk",
            "compositor",
            "storage",
            "redb",
            "tokio",
            "update",
            "shell",
            "app_host",
            "rustix",
        ],
    ),
    // The updater's state is the install root's: no UI, no profile storage, no runtime.
    (
        "update",
        &[
            "egui",
            "egui_tiles",
            "wgpu",
            "winit",
            "wry",
            "gtk",
            "webkit2gtk",
            "compositor",
            "storage",
            "redb",
            "tokio",
            "shell",
            "app_host",
        ],
    ),
    // The app host speaks the protocol and runs a webview: nothing of the shell's insides.
    (
        "app_host",
        &["broker", "storage", "redb", "compositor", "policy", "update", "shell", "egui", "wgpu", "winit", "tokio"],
    ),
];

/// The only files allowed to contain `unsafe`, each with its reason in a `// SAFETY:` comment.
const UNSAFE_ALLOWED: &[&str] = &["shell/app_host/src/foreign.rs"];

#[test]
fn unsafe_code_lives_only_where_it_is_allowed() {
    let mut files = Vec::new();
    rust_files(&workspace_root(), &mut files);
    for f in files {
        let rel = f.strip_prefix(workspace_root()).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        // The needles are built so that this file does not match itself.
        let needles = [concat!("unsafe", " {"), concat!("unsafe", " fn"), concat!("unsafe", " impl")];
        let has_unsafe = text.lines().any(|l| {
            let code = l.split("//").next().unwrap_or_default();
            needles.iter().any(|n| code.contains(n))
        });
        if UNSAFE_ALLOWED.contains(&rel.as_str()) {
            assert!(text.contains("// SAFETY:"), "{rel}: unsafe without a SAFETY comment");
        } else {
            assert!(!has_unsafe, "{rel} uses unsafe; only {UNSAFE_ALLOWED:?} may");
        }
    }
}

fn dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let o = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["tree", "--offline", "--quiet", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .output()
        .expect("running cargo tree");
    assert!(o.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.split_whitespace().next().map(str::to_owned)).collect()
}

#[test]
fn libraries_keep_their_dependency_direction() {
    for (package, forbidden) in FORBIDDEN {
        assert!(FORBIDDEN.iter().filter(|(p, _)| p == package).count() == 1, "{package} is listed twice in FORBIDDEN");
        let deps = dependencies(package);
        assert!(deps.len() > 1, "cargo tree listed nothing for {package}");
        for f in *forbidden {
            assert!(!deps.iter().any(|d| d == f), "{package} must not depend on {f}; it does through: {deps:?}");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file opens with a `//!` doc saying what it is for (tests files excepted: their
/// name says it).
#[test]
fn every_source_file_says_what_it_is() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["broker", "shell", "tests", "storage", "compositor", "packaging"] {
        let d = root.join(dir);
        if d.exists() {
            rust_files(&d, &mut files);
        }
    }
    assert!(files.len() > 10);
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !f.ends_with("tests.rs"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.trim_start().starts_with("//!") && !text.trim_start().starts_with("#![")
        })
        .collect();
    assert!(missing.is_empty(), "files without a //! header: {missing:?}");
}

#[test]
fn no_mod_rs_files() {
    let mut files = Vec::new();
    rust_files(&workspace_root(), &mut files);
    let mod_rs: Vec<_> = files.iter().filter(|f| f.ends_with("mod.rs")).collect();
    assert!(mod_rs.is_empty(), "write foo.rs, not foo/mod.rs: {mod_rs:?}");
}

/// Only the compositor and the app host draw: every other library crate is free of UI,
/// windowing and webview crates.
#[test]
fn only_the_compositor_and_the_app_host_know_ui() {
    for package in ["protocol", "broker", "storage", "policy", "update"] {
        let deps = dependencies(package);
        for ui in UI {
            assert!(!deps.iter().any(|d| d == ui), "{package} must know no UI; it depends on {ui}");
        }
    }
}

/// A crate boundary is made, not drawn: no source file is compiled into another crate through
/// `#[path]`.
#[test]
fn no_path_includes() {
    let mut files = Vec::new();
    rust_files(&workspace_root(), &mut files);
    // The needle is built so that this file does not match itself.
    let needle = concat!("#[", "path");
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().lines().any(|l| l.trim_start().starts_with(needle)))
        .collect();
    assert!(offenders.is_empty(), "files compiled in through #[path]: {offenders:?}");
}
