//! The audit log through the real command line: append, sign, verify against a collected head,
//! export; and SIGKILL in the middle of appending.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tests::{bin, tessera};

struct Profile {
    _dir: tempfile::TempDir,
    path: String,
    keys: String,
}

fn profile() -> Profile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p").to_str().unwrap().to_owned();
    let keys = dir.path().join("vault.keys").to_str().unwrap().to_owned();
    Profile { _dir: dir, path, keys }
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn append_sign_verify_and_export() {
    let p = profile();
    for (decision, n) in [("allow", "3"), ("deny", "2")] {
        let o = tessera(&[
            "audit",
            "append",
            "--profile",
            &p.path,
            "--key-file",
            &p.keys,
            "--actor",
            "user",
            "--app",
            "chart",
            "--action",
            "permission.prompt",
            "--object",
            "clipboard.read",
            "--decision",
            decision,
            "--details",
            r#"{"prompt":"a, \"quoted\" one"}"#,
            "--count",
            n,
        ]);
        ok(&o);
    }
    let head = ok(&tessera(&["audit", "head", "--profile", &p.path, "--key-file", &p.keys]));
    let head: Value = serde_json::from_str(head.trim()).unwrap();
    assert_eq!(head["tree_size"], 5);
    // IT collects the heads file; verification against it passes.
    let collected = std::path::Path::new(&p.path).join("audit/heads.jsonl");
    let out = ok(&tessera(&["audit", "verify", "--profile", &p.path, "--head", collected.to_str().unwrap(), "--json"]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["entries"].as_u64(), report["covered_by_heads"].as_u64()), (Some(5), Some(5)), "{report}");

    // Another key's view: every signature fails, exit code 1.
    let other = "11".repeat(32);
    let o = tessera(&["audit", "verify", "--profile", &p.path, "--public-key", &other]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));

    let jsonl = ok(&tessera(&["audit", "export", "--profile", &p.path, "--format", "jsonl"]));
    let rows: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[4]["decision"], "deny");
    assert!(rows[0]["time"].as_str().unwrap().ends_with('Z'));
    let since = rows[3]["time"].as_str().unwrap();
    let later = ok(&tessera(&["audit", "export", "--profile", &p.path, "--since", since]));
    assert!(later.lines().count() <= 2 && later.lines().count() >= 1);
    let csv = ok(&tessera(&["audit", "export", "--profile", &p.path, "--format", "csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "index,time,actor,app,action,object,decision,details");
    assert_eq!(lines.len(), 6);
    assert!(lines[1].contains(r#""{""prompt"":""a, \""quoted\"" one""}""#), "CSV quoting: {}", lines[1]);
    let o = tessera(&["audit", "export", "--profile", &p.path, "--since", "last tuesday"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--since"));
}

#[test]
fn sigkill_while_appending_keeps_a_verifiable_log() {
    let p = profile();
    let mut acked: Vec<u64> = Vec::new();
    for round in 0..6u64 {
        let mut child = Command::new(bin("tessera"))
            .args(["audit", "append", "--profile", &p.path, "--key-file", &p.keys, "--actor", "load"])
            .args(["--action", "test.append", "--object", "o", "--decision", "ok", "--count", "100000000"])
            .env("TESSERA_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                seen.push(line.trim().parse::<u64>().unwrap());
                let _ = first_tx.try_send(());
            }
            seen
        });
        // The kill lands while entries are being appended: after the first is acknowledged
        // (on a busy machine, opening the profile alone can take longer than the delay).
        first_rx.recv_timeout(Duration::from_secs(60)).expect("no entry acknowledged within 60 s");
        std::thread::sleep(Duration::from_millis(80 + round * 37));
        child.kill().unwrap();
        child.wait().unwrap();
        acked.extend(reader.join().unwrap());
        let o = tessera(&["audit", "verify", "--profile", &p.path]);
        assert!(
            o.status.success(),
            "round {round}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(!acked.is_empty());
    let export = ok(&tessera(&["audit", "export", "--profile", &p.path]));
    let indexes: Vec<u64> =
        export.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (0..indexes.len() as u64).collect::<Vec<_>>(), "no gaps");
    let last = *acked.iter().max().unwrap();
    assert!(indexes.len() as u64 > last, "acknowledged entry {last} lost ({} present)", indexes.len());
}
