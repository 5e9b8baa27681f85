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
    // The wire contract: serde (serde_json for the envelopes pages and native apps speak),
    // postcard and thiserror; nothing of ours and no I/O crate.
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
    // The compositor's UI is egui alone: no window system, renderer or X11, and no runtime.
    (
        "compositor_ui",
        &[
            "winit",
            "wgpu",
            "egui-wgpu",
            "egui-winit",
            "x11rb",
            "raw-window-handle",
            "broker",
            "storage",
            "redb",
            "tokio",
            "wry",
            "gtk",
            "policy",
            "update",
            "shell",
            "app_host",
            "compositor",
        ],
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
    // The desk link knows the broker, the policy's link section and NATS: no window, no
    // storage (the shell gives it an audit sink), nothing of the shell's insides.
    (
        "bridge",
        &[
            "egui",
            "egui_tiles",
            "wgpu",
            "winit",
            "wry",
            "gtk",
            "compositor",
            "storage",
            "redb",
            "update",
            "shell",
            "app_host",
        ],
    ),
    // IT's HTTP endpoint knows HTTP and the routes it is given: nothing of the shell's insides.
    (
        "telemetry",
        &[
            "egui",
            "egui_tiles",
            "wgpu",
            "winit",
            "wry",
            "gtk",
            "webkit2gtk",
            "compositor",
            "broker",
            "storage",
            "redb",
            "policy",
            "update",
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
/// (The app host's window handle and WebKit script-message replies; the parent-death signal a
/// native app is started with.)
const UNSAFE_ALLOWED: &[&str] =
    &["shell/app_host/src/foreign.rs", "shell/app_host/src/reply.rs", "shell/src/host/parent_death.rs"];

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
    for package in ["protocol", "broker", "storage", "policy", "update", "telemetry"] {
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

/// The source folders whose files must not depend on each other in a circle.
const CRATE_SOURCES: &[&str] = &[
    "broker/protocol/src",
    "broker/src",
    "storage/src",
    "compositor/ui/src",
    "compositor/src",
    "shell/policy/src",
    "shell/update/src",
    "shell/telemetry/src",
    "shell/app_host/src",
    "shell/src",
];

/// A file's module path inside its crate: `host/ipc.rs` is `host::ipc`; `lib.rs` and `main.rs`
/// are the root, "".
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let path = rel.to_string_lossy().replace('/', "::");
    if path == "lib" || path == "main" { String::new() } else { path }
}

/// The module paths named after `crate::` in `text`, with `use crate::{a, b::c}` groups
/// spread out.
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // A group: split at top-level commas.
            let (mut depth, mut start) = (0usize, 0usize);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push(group[start..j].trim().to_owned());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(group[start..j].trim().to_owned());
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            out.push(rest[..end].trim_end_matches(':').to_owned());
        }
    }
    out
}

/// Every file a crate's file names through `crate::` or `super::`, ignoring its own ancestors
/// (a child module is part of its parent) and names re-exported at the root resolved to the
/// file that defines them.
fn file_edges(src: &Path) -> Edges {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // Test files are the code's own checks, and may use anything.
    files.retain(|f| !f.to_string_lossy().ends_with("tests.rs"));
    let modules: std::collections::BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    // Names the root re-exports (`pub use crate::a::{X, Y}`), so `crate::X` points at `a`.
    let mut reexports = std::collections::BTreeMap::new();
    for root in ["lib.rs", "main.rs"] {
        let Ok(text) = std::fs::read_to_string(src.join(root)) else { continue };
        for stmt in text.split(';').filter(|s| s.trim_start().starts_with("pub use crate::")) {
            let stmt = stmt.trim_start().trim_start_matches("pub use crate::");
            let (module, names) = stmt.split_once("::").unwrap_or((stmt, ""));
            for name in names.trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace()).split(',') {
                reexports.insert(name.trim().to_owned(), module.to_owned());
            }
        }
    }
    let resolve = |path: &str| -> Option<String> {
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| modules.contains(m))
            .or_else(|| segments.first().and_then(|s| reexports.get(*s).cloned()))
    };
    let mut edges = std::collections::BTreeMap::new();
    for f in &files {
        let me = module_of(src, f);
        let text = std::fs::read_to_string(f).unwrap();
        // Only code: comments may name anything.
        let code: String =
            text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        let mut targets: Vec<String> = crate_paths(&code).iter().filter_map(|p| resolve(p)).collect();
        let parent = me.rsplit_once("::").map_or("", |(p, _)| p).to_owned();
        let mut rest = code.as_str();
        while let Some(i) = rest.find("super::") {
            rest = &rest[i + "super::".len()..];
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            let path = if parent.is_empty() { rest[..end].to_owned() } else { format!("{parent}::{}", &rest[..end]) };
            targets.extend(resolve(&path));
        }
        let set: &mut std::collections::BTreeSet<String> = edges.entry(me.clone()).or_default();
        for t in targets {
            let ancestor = t.is_empty() || me == t || me.starts_with(&format!("{t}::"));
            if !ancestor {
                set.insert(t);
            }
        }
    }
    edges
}

type Edges = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// A circle among the files, as the path around it, if there is one.
fn find_circle(edges: &Edges) -> Option<Vec<String>> {
    // Depth-first search for a back edge; the path to it is the circle.
    fn visit<'a>(
        node: &'a str,
        edges: &'a Edges,
        path: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| *n == node) {
            let mut circle: Vec<String> = path[i..].iter().map(|s| (*s).to_owned()).collect();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges.keys().find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

/// No two files of a crate depend on each other, directly or through others: each crate's
/// files can be read from the leaves up.
#[test]
fn no_file_circles() {
    let root = workspace_root();
    for src in CRATE_SOURCES {
        let edges = file_edges(&root.join(src));
        assert!(edges.len() > 2, "{src}: found too few files");
        if let Some(circle) = find_circle(&edges) {
            panic!("{src}: files depend on each other in a circle: {}", circle.join(" -> "));
        }
    }
}

/// The circle finder finds circles: on a made-up crate whose files `a` and `b` name each other.
#[test]
fn the_circle_finder_finds_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lib.rs"), "//! x\nmod a;\nmod b;\nmod c;\npub use crate::c::{Thing};\n").unwrap();
    std::fs::write(dir.path().join("a.rs"), "//! a\nuse crate::b::B;\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "//! b\nuse crate::{Thing, a::A};\n").unwrap();
    std::fs::write(dir.path().join("c.rs"), "//! c\npub struct Thing; // crate::a\n").unwrap();
    let edges = file_edges(dir.path());
    assert_eq!(edges["a"].iter().collect::<Vec<_>>(), ["b"]);
    assert_eq!(edges["b"].iter().collect::<Vec<_>>(), ["a", "c"]);
    assert!(edges["c"].is_empty(), "a comment is no edge: {edges:?}");
    assert_eq!(find_circle(&edges).unwrap(), ["a", "b", "a"]);
    std::fs::write(dir.path().join("b.rs"), "//! b\nuse crate::Thing;\n").unwrap();
    assert_eq!(find_circle(&file_edges(dir.path())), None);
}

/// Unit tests sit beside the code in `src/<module>/tests.rs`, never inline in the module.
#[test]
fn unit_tests_live_in_their_own_files() {
    let mut files = Vec::new();
    for src in CRATE_SOURCES {
        rust_files(&workspace_root().join(src), &mut files);
    }
    // The needle is built so that this file does not match itself.
    let needle = concat!("mod tests", " {");
    let inline: Vec<_> =
        files.iter().filter(|f| std::fs::read_to_string(f).unwrap().lines().any(|l| l.trim() == needle)).collect();
    assert!(inline.is_empty(), "inline test modules (move them to <module>/tests.rs): {inline:?}");
}
