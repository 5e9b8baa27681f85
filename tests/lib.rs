//! Shared helpers for the workspace integration tests in `it/`: finding and running the real
//! `tessera` binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory the test binary's profile builds into (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/it-<hash> -> target/debug
    exe.parent().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or_default()
}

/// The path of one of the workspace's binaries, built by `cargo build --bins` before the tests.
pub fn bin(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --bins` before the tests", path.display());
    path
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// Runs `tessera` with `args` and returns what it did.
pub fn tessera(args: &[&str]) -> Output {
    Command::new(bin("tessera"))
        .args(args)
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("running tessera: {e}"))
}

/// Stores `secret` in `profile`'s vault (kernel keyring) under `purpose` and `id`, as IT's
/// set-up would (`tessera vault put`, the secret on stdin).
pub fn vault_put(profile: &Path, purpose: &str, id: &str, secret: &str) {
    use std::io::Write;
    let mut put = Command::new(bin("tessera"))
        .args(["vault", "put", "--purpose", purpose, "--id", id, "--profile"])
        .arg(profile)
        .env("TESSERA_KEYRING", "keyutils")
        .env("TESSERA_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running tessera: {e}"));
    if let Some(mut stdin) = put.stdin.take() {
        stdin.write_all(secret.as_bytes()).unwrap_or_else(|e| panic!("writing the secret: {e}"));
    }
    assert!(put.wait().is_ok_and(|s| s.success()), "tessera vault put failed");
}

/// Copies the pages of `tests/fixtures/<name>` (with their scripts, styles and images, not its
/// JSON) into `into` (made if missing) and returns the name of `page` there: a manifest written in `into` names its pages by relative path, as a
/// manifest must (an app's page is inside its manifest's folder).
pub fn fixture_page(name: &str, page: &str, into: &Path) -> String {
    let from = workspace_root().join("tests/fixtures").join(name);
    std::fs::create_dir_all(into).unwrap_or_else(|e| panic!("{}: {e}", into.display()));
    for entry in std::fs::read_dir(&from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{}: {e}", from.display())).path();
        // Pages and what they load; the fixture's manifests and directories are not the test's.
        let page_part =
            path.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "html" | "js" | "css" | "png"));
        if path.is_file() && page_part {
            let to = into.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &to).unwrap_or_else(|e| panic!("{} -> {}: {e}", path.display(), to.display()));
        }
    }
    page.to_owned()
}
