//! The control socket against another local user (issue 17, item 2): a runtime directory that
//! someone else made first is refused by `tessera run` and `tessera ctl`, and `ctl` will not
//! talk to a socket served by another uid.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::bin;

/// The uid that plays the other local user.
const OTHER: u32 = 65534;

fn is_root() -> bool {
    rustix::process::getuid().is_root()
}

/// `tessera` with `TMPDIR` set to `tmp` and no `XDG_RUNTIME_DIR`, so the socket goes to
/// `$TMPDIR/tessera-<uid>/`.
fn tessera_in(tmp: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin("tessera"))
        .args(args)
        .env("TMPDIR", tmp)
        .env_remove("XDG_RUNTIME_DIR")
        .env("TESSERA_LOG", "warn")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_runtime_directory_another_user_made_first_is_refused_by_both_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let me = rustix::process::getuid().as_raw();
    let dir = tmp.path().join(format!("tessera-{me}"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let profile = tmp.path().join("profile");
    let mut cases = vec![("world-writable", "open to others (mode 0777)")];
    if is_root() {
        cases.push(("owned by another user", "belongs to uid 65534"));
    } else {
        eprintln!("not root: the other-owner case needs root to give a directory away");
    }
    for (what, needle) in cases {
        if what.starts_with("owned") {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&dir, Some(OTHER), Some(OTHER)).unwrap();
        }
        // The built-in demo desk; it stops at the socket, before any window.
        let run = tessera_in(tmp.path(), &["run", "--profile", profile.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{what}: run: {err}");
        assert!(err.contains(needle) && err.contains(dir.to_str().unwrap()), "{what}: run said {err}");
        let ctl = tessera_in(tmp.path(), &["ctl", "apps"]);
        let err = String::from_utf8_lossy(&ctl.stderr);
        assert_eq!(ctl.status.code(), Some(1), "{what}: ctl: {err}");
        assert!(err.contains(needle), "{what}: ctl said {err}");
        // Nothing was created in it or changed about it.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{what}");
    }
}

#[test]
fn ctl_refuses_a_socket_served_by_another_user() {
    if !is_root() {
        eprintln!("skipped: only root can play another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.join("ctl.sock");
    // The impostor: binds where the shell would, becomes the other user, listens and answers
    // like a shell (perl is part of every Debian system).
    let script = format!(
        r#"use Socket; socket(S, AF_UNIX, SOCK_STREAM, 0) or die; bind(S, pack_sockaddr_un("{}")) or die;
           chmod 0666, "{}"; $( = $) = {OTHER}; $< = $> = {OTHER}; die "still root" if $> == 0;
           listen(S, 5) or die; $| = 1; print "ready\n";
           while (accept(C, S)) {{ my $l = <C>; syswrite(C, "{{\"ok\":true,\"result\":[]}}\n"); close(C); }}"#,
        socket.display(),
        socket.display()
    );
    let mut impostor =
        Command::new("perl").arg("-e").arg(&script).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new(bin("tessera"))
        .args(["ctl", "--ctl-socket", socket.to_str().unwrap(), "apps"])
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap();
    let _ = impostor.kill();
    let _ = impostor.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "ctl: {err}");
    assert!(err.contains("served by uid 65534"), "ctl said {err}");
    assert!(out.stdout.is_empty(), "nothing the impostor said was printed");
}
