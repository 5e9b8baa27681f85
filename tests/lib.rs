//! Shared helpers for the workspace integration tests in `it/`: finding and running the real
//! `tessera` binaries.

use std::path::PathBuf;
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
