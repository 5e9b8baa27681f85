//! The vault through the real command line, against real key stores: the kernel's keyutils
//! (in a `keyctl session`), a real Secret Service (gnome-keyring in `dbus-run-session`), a key
//! file; and SIGKILL in the middle of key rotation.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::{bin, tessera};

fn sh(script: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).env("TESSERA", bin("tessera")).env("TESSERA_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running bash")
}

fn check(o: &std::process::Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{what} failed:\nstdout: {out}\nstderr: {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Stores, reads, rotates and reads again, all in one shell so one keyring session holds.
const ROUND_TRIP: &str = r#"
set -euo pipefail
P="$PROFILE"
printf 'oms-password' | "$TESSERA" vault put --profile "$P" --purpose creds --id oms
test "$("$TESSERA" vault get --profile "$P" --purpose creds --id oms)" = oms-password
"$TESSERA" vault rotate --profile "$P"
test "$("$TESSERA" vault get --profile "$P" --purpose creds --id oms)" = oms-password
"$TESSERA" vault verify --profile "$P"
echo round-trip-ok
"#;

#[test]
fn keyutils_keyring_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!("keyctl session - bash -c {}", shell_quote(ROUND_TRIP));
    let o = sh(&script, &[("PROFILE", dir.path().to_str().unwrap()), ("TESSERA_KEYRING", "keyutils")]);
    assert!(check(&o, "keyutils round trip").contains("round-trip-ok"));
}

#[test]
fn secret_service_round_trip_in_gnome_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // A throw-away HOME and session bus, with gnome-keyring unlocked on it.
    let inner = format!(
        "set -euo pipefail; printf ci | gnome-keyring-daemon --unlock --components=secrets >/dev/null; {}",
        ROUND_TRIP
    );
    let script = format!("dbus-run-session -- bash -c {}", shell_quote(&inner));
    let o = sh(
        &script,
        &[
            ("PROFILE", dir.path().to_str().unwrap()),
            ("HOME", home.path().to_str().unwrap()),
            ("XDG_DATA_HOME", home.path().join("data").to_str().unwrap()),
            ("TESSERA_KEYRING", "secret-service"),
        ],
    );
    assert!(check(&o, "Secret Service round trip").contains("round-trip-ok"));
}

#[test]
fn no_keyring_fails_closed_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(bin("tessera"))
        .args(["vault", "list", "--profile", dir.path().to_str().unwrap(), "--purpose", "creds"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env_remove("TESSERA_KEYRING")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no usable keyring") && err.contains("Secret Service"), "{err}");
    assert!(err.contains("key file"), "says how to fix it: {err}");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn sigkill_during_rotation_loses_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p");
    let profile = profile.to_str().unwrap();
    let keys = dir.path().join("vault.keys");
    let keys = keys.to_str().unwrap();
    const N: usize = 1500;
    let mut import = Command::new(bin("tessera"))
        .args(["vault", "import", "--profile", profile, "--key-file", keys, "--purpose", "creds"])
        .env("TESSERA_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut stdin = import.stdin.take().unwrap();
        for i in 0..N {
            writeln!(stdin, "id{i}\tsecret-{i}").unwrap();
        }
    }
    assert!(import.wait().unwrap().success());
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("rotation kill test seed {seed}");
    let mut killed = 0;
    for round in 0..8u64 {
        let mut child = Command::new(bin("tessera"))
            .args(["vault", "rotate", "--profile", profile, "--key-file", keys])
            .env("TESSERA_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(5 + (seed.rotate_left(round as u32 * 7) % 150));
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        // Whatever the kill interrupted, every secret still decrypts (opening finishes a
        // rotation left half done).
        let o = tessera(&["vault", "verify", "--profile", profile, "--key-file", keys]);
        assert!(o.status.success(), "round {round}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).starts_with(&format!("{N} secrets")), "round {round}");
    }
    eprintln!("{killed} of 8 rotations were killed midway");
    for i in (0..N).step_by(97) {
        let o = tessera(&[
            "vault",
            "get",
            "--profile",
            profile,
            "--key-file",
            keys,
            "--purpose",
            "creds",
            "--id",
            &format!("id{i}"),
        ]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("secret-{i}"));
    }
    // Only the current key is left in the key file.
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("vault.keys")).unwrap()).unwrap();
    assert_eq!(file.as_object().unwrap().len(), 1, "old keys retired: {file}");
}
