//! The audit log on a machine without a working Secret Service (issue 17, item 3): the key goes
//! to the kernel keyring where the policy allows it, every session ends with a signed head, and
//! with no keyring at all the shell says so in a red bar, in its health view and through `ctl
//! health`, or refuses to start when the policy requires the log.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{bin, target_dir, workspace_root};

use crate::e2e::share_of_colour_in;

/// A `tessera run` with no session bus at all (so no Secret Service), under Xvfb, for `secs`.
struct Session {
    child: Child,
    socket: PathBuf,
    _run: tempfile::TempDir,
}

impl Session {
    fn start(profile: &Path, secs: u32, extra: &[&str], name: &str) -> Self {
        let run = tempfile::tempdir().unwrap();
        let socket = run.path().join("ctl.sock");
        let log = target_dir().join("e2e").join(format!("{name}.log"));
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let child = Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x800x24"])
            .arg(bin("tessera"))
            .args(["run", "--manifest"])
            .arg(workspace_root().join("tests/fixtures/e2e/e2e.json"))
            .arg("--profile")
            .arg(profile)
            .arg("--ctl-socket")
            .arg(&socket)
            .args(["--exit-after", &secs.to_string()])
            .args(extra)
            .env("XDG_RUNTIME_DIR", run.path())
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .env("GDK_BACKEND", "x11")
            .env("NO_AT_BRIDGE", "1")
            .env("TESSERA_LOG", "info")
            .env_remove("TESSERA_KEYRING")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        Self { child, socket, _run: run }
    }

    /// `ctl health --json` once the socket answers, and its exit code.
    fn health(&self) -> (Value, Option<i32>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(bin("tessera"))
                .args(["ctl", "--ctl-socket"])
                .arg(&self.socket)
                .args(["health", "--json"])
                .output()
                .unwrap();
            if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
                return (v, out.status.code());
            }
            assert!(Instant::now() < deadline, "ctl health never answered: {}", String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait(mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the session did not end");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn audit_service(health: &Value) -> Value {
    health["services"].as_array().unwrap().iter().find(|s| s["name"] == "Audit log").cloned().unwrap()
}

#[test]
fn without_a_secret_service_the_key_goes_to_the_kernel_keyring_and_every_session_is_signed() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    for n in 0..3 {
        let session = Session::start(&profile, 6, &[], &format!("audit-keyring-{n}"));
        let (health, code) = session.health();
        let audit = audit_service(&health);
        assert_eq!(audit["ok"], true, "session {n}: {health:#}");
        assert!(audit["detail"].as_str().unwrap().contains("keyutils"), "session {n}: {audit}");
        assert_eq!(code, Some(0), "{health:#}");
        session.wait();
    }
    // Three short sessions, each shorter than the head interval: every entry is still vouched for.
    let out =
        Command::new(bin("tessera")).args(["audit", "verify", "--json", "--profile"]).arg(&profile).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["entries"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["not_covered"], 0, "{report}");
    assert_eq!(report["covered_by_heads"], report["entries"]);

    // Entries written after the last head are counted, plainly.
    for _ in 0..3 {
        let o = Command::new(bin("tessera"))
            .args(["audit", "append", "--keyring", "keyutils", "--actor", "it", "--action", "test", "--object", "x"])
            .args(["--decision", "ok", "--profile"])
            .arg(&profile)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let out = Command::new(bin("tessera")).args(["audit", "verify", "--profile"]).arg(&profile).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 entries are not covered by any signed head"), "{text}");
}

#[test]
fn with_no_keyring_allowed_the_desk_shows_it_and_a_required_log_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let policy = dir.path().join("policy.json");
    let port = crate::telemetry::free_port();
    std::fs::write(
        &policy,
        json!({ "audit": { "keyutilsFallback": false }, "telemetry": { "listen": format!("127.0.0.1:{port}") } })
            .to_string(),
    )
    .unwrap();
    let shot = dir.path().join("shot.png");
    let session = Session::start(
        &profile,
        8,
        &["--policy", policy.to_str().unwrap(), "--screenshot", shot.to_str().unwrap()],
        "audit-no-keyring",
    );
    let (health, code) = session.health();
    let audit = audit_service(&health);
    assert_eq!(audit["ok"], false, "{health:#}");
    assert!(audit["detail"].as_str().unwrap().contains("NOT being recorded"), "{audit}");
    assert_eq!(code, Some(1), "ctl health fails while the audit log is off");
    // And a monitoring agent reading the health endpoint sees the desk is not ready.
    let (status, ready) = crate::telemetry::get(port, "/health/ready");
    assert_eq!((status, &ready["status"]), (503, &json!("degraded")), "{ready:#}");
    session.wait();
    // The red bar under the shell bar: a band of the error colour across the window.
    let red = share_of_colour_in(&shot, (0, 20), (1280, 90), [248, 81, 73]);
    assert!(red > 0.15, "no red bar in {}: {red:.3} of the top band is red", shot.display());
    let copy = target_dir().join("e2e/audit-no-keyring.png");
    let _ = std::fs::copy(&shot, copy);

    std::fs::write(&policy, json!({ "audit": { "required": true, "keyutilsFallback": false } }).to_string()).unwrap();
    let started = Instant::now();
    let out = Command::new(bin("tessera"))
        .args(["run", "--profile"])
        .arg(&profile)
        .arg("--policy")
        .arg(&policy)
        .arg("--ctl-socket")
        .arg(dir.path().join("ctl.sock"))
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env_remove("TESSERA_KEYRING")
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("requires the audit log (audit.required)"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
