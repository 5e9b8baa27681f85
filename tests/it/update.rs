//! The update matrix: real release archives built and signed here from the real binaries, a
//! real HTTP server on 127.0.0.1 serving them (and misbehaving on demand), and the real
//! `tessera update` run from an install root. After every case the installed build runs
//! (`tessera --version` exits 0) and no partial file is left behind.
//!
//! The cases that need the shell itself (a healthy start ends the probation; a build that
//! cannot start healthy is reverted) run it under Xvfb like the other end-to-end tests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tests::{bin, target_dir, workspace_root};
use update::feed::Feed;
use update::install::archive_name;
use update::release::{self, Contents};

// ---------------------------------------------------------------- the HTTP server

/// How the server answers one path.
#[derive(Clone)]
enum Answer {
    /// The body, whole.
    Body(Arc<Vec<u8>>),
    /// Declares the whole length, sends this share of it, and hangs up.
    Cut(Arc<Vec<u8>>, f64),
    /// Sends the body ten times over, declaring that length.
    TenTimes(Arc<Vec<u8>>),
    /// An HTTP status with no body.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

struct Server {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Answer>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let r = Arc::clone(&routes);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let r = Arc::clone(&r);
                std::thread::spawn(move || serve(stream, &r));
            }
        });
        Self { port, routes }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn set(&self, path: &str, answer: Answer) {
        self.routes.lock().unwrap().insert(path.to_owned(), answer);
    }
}

fn serve(mut stream: TcpStream, routes: &Mutex<HashMap<String, Answer>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let answer = routes.lock().unwrap().get(&path).cloned().unwrap_or(Answer::Status(404));
    let head = |len: usize| format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    let _ = match answer {
        Answer::Body(b) => stream.write_all(head(b.len()).as_bytes()).and_then(|()| stream.write_all(&b)),
        Answer::Cut(b, share) => {
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let n = (b.len() as f64 * share) as usize;
            stream.write_all(head(b.len()).as_bytes()).and_then(|()| stream.write_all(&b[..n]))
        }
        Answer::TenTimes(b) => stream.write_all(head(b.len() * 10).as_bytes()).and_then(|()| {
            for _ in 0..10 {
                stream.write_all(&b)?;
            }
            Ok(())
        }),
        Answer::Status(code) => stream
            .write_all(format!("HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes()),
        Answer::Hang => {
            std::thread::sleep(Duration::from_secs(120));
            Ok(())
        }
    };
    let _ = stream.flush();
}

// ---------------------------------------------------------------- releases and feeds

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The release key, the next one (rotation), one revoked, and one nobody trusts.
const A: u8 = 11;
const B: u8 = 12;
const REVOKED: u8 = 13;
const STRANGER: u8 = 14;

fn key_id(seed: u8) -> &'static str {
    match seed {
        A => "release-a",
        B => "release-b",
        REVOKED => "release-old",
        _ => "stranger",
    }
}

fn rfc3339(offset_secs: i64) -> String {
    let now = broker::Timestamp::now().millis() / 1000;
    let t = now.checked_add_signed(offset_secs).unwrap();
    broker::Timestamp(t * 1_000_000).to_rfc3339()
}

/// Everything a case needs: the archives (unsigned) and the server.
struct Fixture {
    server: Server,
    dir: tempfile::TempDir,
    /// Unsigned archives by version.
    unsigned: HashMap<&'static str, PathBuf>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bins = target_dir();
        let broken_bins = dir.path().join("broken-bin");
        std::fs::create_dir_all(&broken_bins).unwrap();
        link_or_copy(&bins.join("tessera"), &broken_bins.join("tessera"));
        // A build whose app host cannot start: the shell never gets healthy.
        std::fs::write(broken_bins.join("tessera-app-host"), "#!/bin/sh\necho broken >&2\nexit 3\n").unwrap();
        let mut unsigned = HashMap::new();
        let started = Instant::now();
        for (version, bin_dir) in [("1.1.0", &bins), ("1.2.0", &broken_bins)] {
            let out = dir.path().join(format!("{version}.unsigned.tar.gz"));
            release::pack(
                &Contents {
                    version: version.to_owned(),
                    bin_dir: bin_dir.clone(),
                    share_dir: workspace_root(),
                    level: 1,
                },
                &out,
            )
            .unwrap();
            unsigned.insert(version, out);
        }
        eprintln!("archives packed in {:.1} s", started.elapsed().as_secs_f64());
        Self { server: Server::start(), dir, unsigned }
    }

    /// The archive for `version`, signed with `seed` for the file name `signed_as`.
    fn signed(&self, version: &str, seed: u8, signed_as: &str) -> Arc<Vec<u8>> {
        let out = self.dir.path().join(format!("signed-{version}-{seed}-{signed_as}"));
        if !out.exists() {
            release::sign_archive(&self.unsigned[version], &out, signed_as, &[&key(seed)]).unwrap();
        }
        Arc::new(std::fs::read(&out).unwrap())
    }

    /// Serves `archive` as version's archive, and a feed for it signed with `feed_key`.
    fn publish(&self, version: &str, archive: &Arc<Vec<u8>>, feed_key: u8, tweak: impl FnOnce(&mut Feed)) {
        let name = archive_name(version);
        let path = format!("/archives/{name}");
        let (sha256, size) = digest(archive);
        let mut fields = Feed {
            channel: "stable".into(),
            version: version.into(),
            url: self.server.url(&path),
            sha256,
            size,
            minimum_version: Some("1.0.0".into()),
            rollout_percent: 100,
            issued_at: rfc3339(0),
            expires: rfc3339(86_400),
        };
        tweak(&mut fields);
        let feed = release::feed(&fields, &key(feed_key), key_id(feed_key)).unwrap();
        self.server.set(&path, Answer::Body(Arc::clone(archive)));
        self.server.set("/feeds/stable.json", Answer::Body(Arc::new(feed.to_string().into_bytes())));
    }

    fn policy(&self, extra: &Value) -> PathBuf {
        let trusted: Vec<Value> = [A, B, REVOKED]
            .iter()
            .map(|s| json!({ "id": key_id(*s), "publicKey": policy::signing::public_hex(&key(*s)) }))
            .collect();
        let mut update = json!({
            "feedUrl": self.server.url("/feeds"),
            "channel": "stable",
            "downloadTimeoutSecs": 5,
            "healthTimeoutSecs": 25,
            "maxFailedStarts": 2,
        });
        for (k, v) in extra.as_object().unwrap() {
            update[k] = v.clone();
        }
        let policy = json!({
            "signing": { "trustedKeys": trusted, "revokedKeys": ["release-old"] },
            "update": update,
        });
        let path = self.dir.path().join(format!("policy-{}.json", broker::Timestamp::now().millis()));
        std::fs::write(&path, policy.to_string()).unwrap();
        path
    }
}

fn digest(bytes: &[u8]) -> (String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, bytes).unwrap();
    release::digest(&p).unwrap()
}

// ---------------------------------------------------------------- an install root

/// A fresh install root holding build 1.0.0 (the binaries under test, hard-linked).
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rel = dir.path().join("releases/1.0.0");
        std::fs::create_dir_all(rel.join("bin")).unwrap();
        for b in ["tessera", "tessera-app-host"] {
            link_or_copy(&bin(b), &rel.join("bin").join(b));
        }
        let share = rel.join("share/tessera");
        std::fs::create_dir_all(&share).unwrap();
        copy_tree(&workspace_root().join("manifests"), &share.join("manifests"));
        copy_tree(&workspace_root().join("assets"), &share.join("assets"));
        std::fs::write(rel.join("release.json"), r#"{"version":"1.0.0"}"#).unwrap();
        std::os::unix::fs::symlink("releases/1.0.0", dir.path().join("current")).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("../current/bin/tessera", dir.path().join("bin/tessera")).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn tessera(&self) -> PathBuf {
        self.path().join("bin/tessera")
    }

    fn cmd(&self, policy: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(self.tessera());
        c.args(args).arg("--policy").arg(policy).env("TESSERA_LOG", "info").env_remove("TESSERA_FAILPOINT");
        c
    }

    fn update(&self, policy: &Path, args: &[&str]) -> Output {
        self.cmd(policy, args).output().unwrap()
    }

    fn current(&self) -> String {
        let t = std::fs::read_link(self.path().join("current")).unwrap();
        t.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn state(&self) -> Value {
        std::fs::read(self.path().join("update/state.json"))
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or(Value::Null)
    }

    /// The checks after every case: the installed build runs, nothing partial is left, and
    /// the builds kept are exactly `releases`.
    fn assert_sound(&self, case: &str, releases: &[&str]) {
        let v = Command::new(self.tessera()).arg("--version").output().unwrap();
        assert!(v.status.success(), "{case}: the installed build does not run: {v:?}");
        let mut kept: Vec<String> = std::fs::read_dir(self.path().join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        assert_eq!(kept, releases, "{case}: builds kept (a partial unpack would show as .V.partial)");
        let downloads: Vec<_> = std::fs::read_dir(self.path().join("update/downloads"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(downloads.is_empty(), "{case}: partial downloads left: {downloads:?}");
        assert!(!self.path().join("update/progress.json").exists(), "{case}: a stale progress file");
        for tmp in [".current.tmp", ".previous.tmp"] {
            assert!(!self.path().join(tmp).exists(), "{case}: {tmp} left");
        }
    }
}

/// A hard link where the temporary directory shares the build's file system, else a copy.
fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn killed(o: &Output) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&o.status)
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs `update apply --json` and expects it refused with `why` in its message, nothing
/// installed and nothing left over.
fn refused(f: &Fixture, case: &str, why: &str) {
    let root = Root::new();
    let policy = f.policy(&json!({}));
    let out = root.update(&policy, &["update", "apply", "--json"]);
    assert!(!out.status.success(), "{case}: accepted: {}", text(&out));
    // Only the error the command ends with counts (not the log lines before it).
    let said = text(&out).lines().find(|l| l.starts_with("tessera: ")).unwrap_or_default().to_owned();
    assert!(why.split('|').any(|w| said.contains(w)), "{case}: expected {why:?} in the error:\n{}", text(&out));
    assert_eq!(root.current(), "1.0.0", "{case}");
    assert!(root.state()["staged"].is_null(), "{case}: staged");
    root.assert_sound(case, &["1.0.0"]);
    eprintln!("ok  {case}: {said}");
}

/// Runs `update apply --json` and expects the update staged, then installed with --now.
fn staged(root: &Root, policy: &Path, case: &str, version: &str) {
    let out = root.update(policy, &["update", "apply", "--json"]);
    assert!(out.status.success(), "{case}: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "staged", "{case}: {v}");
    assert_eq!(v["version"], version, "{case}");
    assert_eq!(root.state()["staged"], version, "{case}");
    root.assert_sound(case, &["1.0.0", version]);
}

#[test]
fn the_update_matrix() {
    let f = Fixture::new();
    let v110 = archive_name("1.1.0");
    let good = f.signed("1.1.0", A, &v110);
    let mut cases = 0;

    // 1. A valid update: staged; with --now put on probation (the proven build stays current
    //    until the new one has started healthy: see the shell tests below).
    f.publish("1.1.0", &good, A, |_| {});
    let root = Root::new();
    let policy = f.policy(&json!({}));
    staged(&root, &policy, "valid update", "1.1.0");
    let out = root.update(&policy, &["update", "apply", "--now", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(root.current(), "1.0.0", "the proven build stays current during probation");
    let status: Value = serde_json::from_slice(&root.update(&policy, &["update", "status", "--json"]).stdout).unwrap();
    assert_eq!(status["current"], "1.0.0");
    assert_eq!(status["probation"]["version"], "1.1.0", "on probation until it starts healthy");
    assert_eq!(status["probation"]["previous"], "1.0.0");
    root.assert_sound("valid update", &["1.0.0", "1.1.0"]);
    // ... and `tessera update rollback` gives it up.
    let out = root.update(&policy, &["update", "rollback", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(root.current(), "1.0.0");
    assert!(root.state()["refused"].as_array().unwrap().contains(&json!("1.1.0")));
    assert!(root.state()["probation"].is_null());
    let out = root.update(&policy, &["update", "check", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "refused", "a build rolled back is not offered again: {v}");
    root.assert_sound("rollback", &["1.0.0"]);
    cases += 2;
    eprintln!("ok  valid update, installed on probation, then rolled back on command");

    // 2. A tampered byte, with the feed's digest: the digest catches it.
    let mut bad = (*good).clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let bad = Arc::new(bad);
    f.publish("1.1.0", &good, A, |_| {});
    f.server.set(&format!("/archives/{v110}"), Answer::Body(Arc::clone(&bad)));
    refused(&f, "tampered byte", "SHA-256");
    // ... and with a feed re-hashed to match (a forged mirror and feed digest): the signature.
    f.publish("1.1.0", &bad, A, |_| {});
    refused(&f, "tampered byte, digest matching", "signature is not acceptable");
    cases += 2;

    // 3. Wrong key, unsigned, signed for another file.
    f.publish("1.1.0", &f.signed("1.1.0", STRANGER, &v110), A, |_| {});
    refused(&f, "archive signed with an untrusted key", "signature is not acceptable");
    f.publish("1.1.0", &Arc::new(std::fs::read(&f.unsigned["1.1.0"]).unwrap()), A, |_| {});
    refused(&f, "unsigned archive", "signature is not acceptable");
    f.publish("1.1.0", &f.signed("1.1.0", A, &archive_name("1.0.9")), A, |_| {});
    refused(&f, "signature for another file", "signature is not acceptable");
    f.publish("1.1.0", &good, STRANGER, |_| {});
    refused(&f, "feed signed with an untrusted key", "not trusted");
    cases += 4;

    // 4. Downgrade, replayed older feed, expired feed.
    f.publish("0.9.0", &good, A, |x| x.minimum_version = None);
    refused(&f, "downgrade", "downgrade");
    f.publish("1.1.0", &good, A, |x| {
        x.expires = rfc3339(-60);
        x.issued_at = rfc3339(-86_400);
    });
    refused(&f, "expired feed", "expired");
    {
        let root = Root::new();
        let policy = f.policy(&json!({}));
        f.publish("1.0.0", &good, A, |_| {});
        let out = root.update(&policy, &["update", "check", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        f.publish("1.1.0", &good, A, |x| x.issued_at = rfc3339(-3600));
        let out = root.update(&policy, &["update", "apply", "--json"]);
        assert!(!out.status.success() && text(&out).contains("replayed"), "replay accepted: {}", text(&out));
        root.assert_sound("replayed older feed", &["1.0.0"]);
        eprintln!("ok  replayed older feed: refused");
    }
    cases += 3;

    // 5. The server misbehaves: 10x the declared size, cut at 10, 50 and 99 %, an error, silence.
    f.publish("1.1.0", &good, A, |_| {});
    let path = format!("/archives/{v110}");
    f.server.set(&path, Answer::TenTimes(Arc::clone(&good)));
    refused(&f, "a stream 10x the declared size", "more bytes than the feed declares");
    for share in [0.1, 0.5, 0.99] {
        f.server.set(&path, Answer::Cut(Arc::clone(&good), share));
        refused(&f, &format!("download cut at {}%", (share * 100.0).round()), "downloading|a cut download");
    }
    f.server.set(&path, Answer::Status(500));
    refused(&f, "server error", "500");
    f.server.set(&path, Answer::Hang);
    let started = Instant::now();
    refused(&f, "server timeout", "downloading");
    assert!(started.elapsed() < Duration::from_secs(60), "the download timeout was not applied");
    cases += 6;

    // 6. Disk full: the downloads directory on a 4 MiB tmpfs (a private mount namespace).
    f.server.set(&path, Answer::Body(Arc::clone(&good)));
    {
        let root = Root::new();
        let policy = f.policy(&json!({}));
        let downloads = root.path().join("update/downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let script = format!(
            "mount -t tmpfs -o size=4m tmpfs '{d}' && '{t}' update apply --json --policy '{p}'; echo \"rc=$?\"; ls -A '{d}'",
            d = downloads.display(),
            t = root.tessera().display(),
            p = policy.display()
        );
        let out =
            Command::new("unshare").args(["-m", "sh", "-c", &script]).env("TESSERA_LOG", "info").output().unwrap();
        let all = text(&out);
        assert!(all.contains("rc=1"), "disk full: {all}");
        assert!(all.contains("No space left on device") || all.contains("disk is full"), "disk full: {all}");
        let last = String::from_utf8_lossy(&out.stdout);
        assert!(last.trim_end().ends_with("rc=1"), "files left in the full downloads directory: {last}");
        root.assert_sound("disk full", &["1.0.0"]);
        eprintln!("ok  disk full: refused, nothing left");
    }
    cases += 1;

    // 7. SIGKILL at each step of staging and installing: the build still runs, and the next
    //    updater run removes what was left (the swap itself is killed in the shell tests).
    for point in ["download-written", "unpacked"] {
        let root = Root::new();
        let policy = f.policy(&json!({}));
        let out = root.cmd(&policy, &["update", "apply"]).env("TESSERA_FAILPOINT", point).output().unwrap();
        assert_eq!(killed(&out), Some(9), "{point}: not killed: {}", text(&out));
        assert!(Command::new(root.tessera()).arg("--version").status().unwrap().success(), "{point}");
        let out = root.update(&policy, &["update", "check", "--json"]);
        assert!(out.status.success(), "{point}: the next run: {}", text(&out));
        assert!(root.state()["staged"].is_null(), "{point}");
        root.assert_sound(&format!("SIGKILL at {point}"), &["1.0.0"]);
        staged(&root, &policy, point, "1.1.0");
        eprintln!("ok  SIGKILL at {point}: left-overs removed, staged again");
        cases += 1;
    }
    {
        let root = Root::new();
        let policy = f.policy(&json!({}));
        staged(&root, &policy, "probation-recorded", "1.1.0");
        let out = root
            .cmd(&policy, &["update", "apply", "--now"])
            .env("TESSERA_FAILPOINT", "probation-recorded")
            .output()
            .unwrap();
        assert_eq!(killed(&out), Some(9), "{}", text(&out));
        assert_eq!(root.current(), "1.0.0");
        assert_eq!(root.state()["probation"]["version"], "1.1.0", "the probation was recorded before the kill");
        let out = root.update(&policy, &["update", "check", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        root.assert_sound("SIGKILL at probation-recorded", &["1.0.0", "1.1.0"]);
        eprintln!("ok  SIGKILL at probation-recorded: the probation stands, 1.0.0 still current");
        cases += 1;
    }
    {
        // A confirmed install (1.1.0 current, 1.0.0 kept), then a rollback killed half-way.
        let root = Root::new();
        let policy = f.policy(&json!({}));
        assert!(root.update(&policy, &["update", "apply", "--now"]).status.success());
        assert!(update::install::Install::at(root.path()).unwrap().confirm("1.1.0").unwrap());
        assert_eq!(root.current(), "1.1.0");
        let out =
            root.cmd(&policy, &["update", "rollback"]).env("TESSERA_FAILPOINT", "rollback-recorded").output().unwrap();
        assert_eq!(killed(&out), Some(9), "{}", text(&out));
        assert!(Command::new(root.tessera()).arg("--version").status().unwrap().success());
        let out = root.update(&policy, &["update", "check", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(root.current(), "1.0.0", "an interrupted rollback is finished");
        // That run still ran from 1.1.0 (current pointed there when it started), so it kept
        // 1.1.0's files; the next one removes them.
        root.assert_sound("SIGKILL during a rollback", &["1.0.0", "1.1.0"]);
        assert!(root.update(&policy, &["update", "check"]).status.success());
        root.assert_sound("SIGKILL during a rollback", &["1.0.0"]);
        eprintln!("ok  SIGKILL during a rollback: finished");
        cases += 1;
    }

    // 8. Key rotation: the next key signs feed and archive; a revoked key is refused.
    f.publish("1.1.0", &f.signed("1.1.0", B, &v110), B, |_| {});
    staged(&Root::new(), &f.policy(&json!({})), "key rotation", "1.1.0");
    eprintln!("ok  key rotation: accepted with the next key");
    f.publish("1.1.0", &f.signed("1.1.0", REVOKED, &v110), REVOKED, |_| {});
    refused(&f, "revoked key (feed)", "revoked");
    f.publish("1.1.0", &f.signed("1.1.0", REVOKED, &v110), A, |_| {});
    refused(&f, "revoked key (archive)", "signature is not acceptable");
    cases += 3;

    // 9. The rollout bucket, outside and inside the percentage; a pin; updates off.
    let root = Root::new();
    let policy = f.policy(&json!({}));
    let status: Value = serde_json::from_slice(&root.update(&policy, &["update", "status", "--json"]).stdout).unwrap();
    let bucket = u8::try_from(status["machineBucket"].as_u64().unwrap()).unwrap();
    f.publish("1.1.0", &good, A, |x| x.rollout_percent = bucket);
    let out = root.update(&policy, &["update", "apply", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "not-yet", "bucket {bucket} outside {bucket}%: {v}");
    root.assert_sound("rollout: outside", &["1.0.0"]);
    f.publish("1.1.0", &good, A, |x| x.rollout_percent = bucket + 1);
    staged(&root, &policy, "rollout: inside", "1.1.0");
    eprintln!("ok  rollout bucket {bucket}: outside {bucket}%, inside {}%", bucket + 1);
    let root = Root::new();
    let out = root.update(&f.policy(&json!({ "pinVersion": "1.0.5" })), &["update", "apply", "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["outcome"], "pinned");
    let out = root.update(&f.policy(&json!({ "enabled": false })), &["update", "apply", "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["outcome"], "disabled");
    root.assert_sound("pinned and disabled", &["1.0.0"]);
    cases += 4;

    // Every event went to the event log the shell copies into the audit log.
    let events = std::fs::read_to_string(root.path().join("update/events.jsonl")).unwrap_or_default();
    assert!(events.contains("update.check"), "{events}");
    eprintln!("{cases} cases passed");
    assert!(cases >= 16);
}

// ---------------------------------------------------------------- with the shell

/// Runs `ROOT/bin/tessera run` under Xvfb until it exits (at most `limit`).
fn run_shell(
    root: &Root,
    policy: &Path,
    profile: &Path,
    exit_after: u32,
    name: &str,
    limit: Duration,
    env: &[(&str, &str)],
) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let log = target_dir().join("e2e").join(format!("{name}.log"));
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mut child = Command::new("dbus-run-session")
        .args(["--", "xvfb-run", "-a", "-s", "-screen 0 1280x800x24"])
        .arg(root.tessera())
        .args(["run", "--manifest"])
        .arg(workspace_root().join("tests/fixtures/e2e/e2e.json"))
        .arg("--profile")
        .arg(profile)
        .arg("--policy")
        .arg(policy)
        .arg("--ctl-socket")
        .arg(run.join("ctl.sock"))
        .args(["--exit-after", &exit_after.to_string()])
        .env("XDG_RUNTIME_DIR", &run)
        .env("GDK_BACKEND", "x11")
        .env("NO_AT_BRIDGE", "1")
        .env("TESSERA_LOG", "info")
        .env("TESSERA_KEYRING", "keyutils")
        .envs(env.iter().copied())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "{name}: the shell did not exit in {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    std::fs::File::open(&log).unwrap().read_to_string(&mut stderr).unwrap();
    Output { status, stdout: Vec::new(), stderr: stderr.into_bytes() }
}

fn audit_actions(profile: &Path) -> String {
    let out = Command::new(bin("tessera"))
        .args(["audit", "export", "--profile"])
        .arg(profile)
        .env("TESSERA_KEYRING", "keyutils")
        .output()
        .unwrap();
    text(&out)
}

#[test]
fn a_new_build_proves_itself_or_is_reverted() {
    let f = Fixture::new();
    let profile = f.dir.path().join("profile");

    // A healthy new build: installed at start, on probation, then confirmed by its own start.
    let v110 = archive_name("1.1.0");
    f.publish("1.1.0", &f.signed("1.1.0", A, &v110), A, |_| {});
    let root = Root::new();
    let policy = f.policy(&json!({ "checkEveryMinutes": 0 }));
    staged(&root, &policy, "healthy update", "1.1.0");
    let out = run_shell(&root, &policy, &profile, 25, "update-healthy", Duration::from_secs(120), &[]);
    assert!(out.status.success(), "the new build's run: {}", text(&out));
    assert_eq!(root.current(), "1.1.0");
    let state = root.state();
    assert!(state["probation"].is_null(), "still on probation: {state}");
    let events = std::fs::read_to_string(root.path().join("update/events.jsonl")).unwrap();
    assert!(events.contains("\"update.healthy\""), "{events}");
    root.assert_sound("healthy update", &["1.0.0", "1.1.0"]);
    let audit = audit_actions(&profile);
    assert!(audit.contains("update.install") && audit.contains("update.healthy"), "audit: {audit}");
    eprintln!("ok  a healthy new build is confirmed by its start");
    // `tessera update rollback` restores the previous build.
    let out = root.update(&policy, &["update", "rollback", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(root.current(), "1.0.0");
    assert!(Command::new(root.tessera()).arg("--version").status().unwrap().success());
    eprintln!("ok  tessera update rollback restores 1.0.0");

    // A build whose app host cannot start: never healthy, reverted after the health timeout,
    // and the previous build runs in its place.
    let v120 = archive_name("1.2.0");
    f.publish("1.2.0", &f.signed("1.2.0", A, &v120), A, |x| x.minimum_version = None);
    let root = Root::new();
    let policy = f.policy(&json!({ "checkEveryMinutes": 0, "healthTimeoutSecs": 15 }));
    staged(&root, &policy, "broken update", "1.2.0");
    let started = Instant::now();
    let out = run_shell(&root, &policy, &profile, 20, "update-broken", Duration::from_secs(150), &[]);
    assert!(out.status.success(), "the reverted run: {}", text(&out));
    assert!(started.elapsed() >= Duration::from_secs(15));
    assert_eq!(root.current(), "1.0.0", "the broken build was not reverted");
    let state = root.state();
    assert!(state["lastFailure"]["reason"].as_str().unwrap().contains("did not start healthy"), "{state}");
    assert!(state["refused"].as_array().unwrap().contains(&json!("1.2.0")));
    root.assert_sound("broken update", &["1.0.0"]);
    let audit = audit_actions(&profile);
    assert!(audit.contains("update.rollback"), "audit: {audit}");
    eprintln!("ok  a build that cannot start healthy is reverted in {:.0} s", started.elapsed().as_secs_f64());

    // A build that crashes at once, twice (maxFailedStarts 2): reverted after the second.
    f.publish("1.0.0", &f.signed("1.1.0", A, &v110), A, |_| {});
    let root = Root::new();
    let broken = root.path().join("releases/1.3.0");
    std::fs::create_dir_all(broken.join("bin")).unwrap();
    std::fs::write(broken.join("bin/tessera"), "#!/bin/sh\nexit 7\n").unwrap();
    std::fs::set_permissions(broken.join("bin/tessera"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(broken.join("bin/tessera-app-host"), "").unwrap();
    std::fs::write(broken.join("release.json"), r#"{"version":"1.3.0"}"#).unwrap();
    std::fs::create_dir_all(root.path().join("update")).unwrap();
    std::fs::write(root.path().join("update/state.json"), r#"{"staged":"1.3.0"}"#).unwrap();
    let out = run_shell(&root, &policy, &profile, 5, "update-crashing", Duration::from_secs(90), &[]);
    assert!(out.status.success(), "the reverted run: {}", text(&out));
    assert_eq!(root.current(), "1.0.0");
    let reason = root.state()["lastFailure"]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("in 2 attempts"), "{reason}");
    root.assert_sound("crashing update", &["1.0.0"]);
    eprintln!("ok  a build that crashes at start is reverted after 2 attempts");
}

#[test]
fn a_kill_during_the_swap_is_finished_at_the_next_start() {
    let f = Fixture::new();
    let v110 = archive_name("1.1.0");
    f.publish("1.1.0", &f.signed("1.1.0", A, &v110), A, |_| {});
    let policy = f.policy(&json!({ "checkEveryMinutes": 0 }));
    for point in ["healthy-marked", "swap-previous", "swap-current"] {
        let root = Root::new();
        let profile = f.dir.path().join(format!("profile-{point}"));
        staged(&root, &policy, point, "1.1.0");
        let once = f.dir.path().join(format!("fired-{point}"));
        let env = [("TESSERA_FAILPOINT", point), ("TESSERA_FAILPOINT_ONCE", once.to_str().unwrap())];
        let out =
            run_shell(&root, &policy, &profile, 25, &format!("update-kill-{point}"), Duration::from_secs(120), &env);
        assert!(once.exists(), "{point}: the failpoint was not reached: {}", text(&out));
        assert!(!out.status.success(), "{point}: the killed build's run ended well: {}", text(&out));
        assert!(Command::new(root.tessera()).arg("--version").status().unwrap().success(), "{point}");
        let out =
            run_shell(&root, &policy, &profile, 8, &format!("update-after-{point}"), Duration::from_secs(90), &[]);
        assert!(out.status.success(), "{point}: the next start: {}", text(&out));
        assert_eq!(root.current(), "1.1.0", "{point}: the swap was not finished");
        assert_eq!(std::fs::read_link(root.path().join("previous")).unwrap(), Path::new("releases/1.0.0"));
        assert!(root.state()["probation"].is_null(), "{point}: {}", root.state());
        root.assert_sound(&format!("SIGKILL at {point}"), &["1.0.0", "1.1.0"]);
        eprintln!("ok  SIGKILL at {point}: the next start finished the swap");
    }
}

#[test]
fn the_deb_lays_out_an_install_root_the_updater_works_in() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join(archive_name("1.1.0"));
    let contents = Contents { version: "1.1.0".into(), bin_dir: target_dir(), share_dir: workspace_root(), level: 1 };
    release::pack(&contents, &archive).unwrap();
    let out = Command::new("bash")
        .arg(workspace_root().join("packaging/deb/build.sh"))
        .arg(&archive)
        .arg(dir.path().join("deb"))
        .env("DEB_COMPRESSION", "gzip")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let info = Command::new("dpkg-deb").arg("-f").arg(&deb).args(["Package", "Version"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&info.stdout), "Package: tessera\nVersion: 1.1.0\n");
    let files = text(&Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap());
    for f in
        ["./opt/tessera/current -> releases/1.1.0", "./usr/share/applications/tessera.desktop", "bin/tessera-app-host"]
    {
        assert!(files.contains(f), "{f} not in the package:\n{files}");
    }
    // The demo desk's native risk engine stays executable, and finds its client library.
    let risk = files.lines().find(|l| l.ends_with("manifests/demo/risk.py")).unwrap_or_default();
    assert!(risk.starts_with("-rwxr-xr-x"), "risk.py: {risk:?}");
    assert!(files.contains("shell/clients/python/src/tessera_client/client.py"), "no Python client:\n{files}");
    assert!(!files.contains("__pycache__"), "byte code in the package:\n{files}");
    let unpacked = dir.path().join("unpacked");
    assert!(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked).status().unwrap().success());
    let share = unpacked.join("opt/tessera/releases/1.1.0/share/tessera");
    let alone = Command::new(share.join("manifests/demo/risk.py")).env_remove("TESSERA_LAUNCH_TOKEN").output().unwrap();
    assert!(text(&alone).contains("the Tessera shell starts it"), "{}", text(&alone));
    let tessera = unpacked.join("opt/tessera/bin/tessera");
    assert!(Command::new(&tessera).arg("--version").status().unwrap().success());
    let status = Command::new(&tessera)
        .args(["update", "status", "--json"])
        .env_remove("TESSERA_INSTALL_ROOT")
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["current"], "1.1.0", "{v}");
    assert_eq!(v["root"], unpacked.join("opt/tessera").to_str().unwrap());
}
