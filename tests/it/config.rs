//! The manifest and the admin policy from an IT URL (issue 20, item 6): a real shell started
//! with `--manifest URL` and `TESSERA_POLICY=URL`, both signed and checked against the policy
//! trust file, served by a loopback HTTP server the test changes: a new manifest's app appears,
//! a tampered policy is refused (the one in force stays, the desk says the copy is stale), a
//! new signed policy is put in force, and with the server down a restart runs on the last
//! good copies. Health and metrics say which versions are in force.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e::{Shell, running_with_page};
use crate::telemetry::{free_port, get};

/// Documents by path; `None`: the server answers 503 to everything.
type Docs = Arc<Mutex<Option<HashMap<String, Vec<u8>>>>>;

fn serve() -> (u16, Docs) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let docs: Docs = Arc::new(Mutex::new(Some(HashMap::new())));
    let d = Arc::clone(&docs);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = match d.lock().unwrap().as_ref() {
                None => ("503 Down", Vec::new()),
                Some(map) => map.get(&path).map_or(("404 No", Vec::new()), |b| ("200 OK", b.clone())),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    (port, docs)
}

fn tessera(args: &[&str]) -> String {
    let out = std::process::Command::new(tests::bin("tessera")).args(args).env("TESSERA_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "tessera {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Writes `doc` into `dir/name`, signs it with `key`, and serves both at `/name` and `/name.sig`.
fn publish(docs: &Docs, dir: &Path, name: &str, doc: &Value, key: &Path) -> String {
    let file = dir.join(name);
    std::fs::write(&file, doc.to_string()).unwrap();
    tessera(&[
        "sign",
        "file",
        file.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--key-id",
        "it",
        "--expires",
        "2099-01-01T00:00:00Z",
    ]);
    let (text, sig) = (std::fs::read(&file).unwrap(), std::fs::read(dir.join(format!("{name}.sig"))).unwrap());
    let digest = shell::remote::digest(&text);
    let mut d = docs.lock().unwrap();
    let map = d.as_mut().unwrap();
    map.insert(format!("/{name}"), text);
    map.insert(format!("/{name}.sig"), sig);
    digest
}

/// Polls `/health/ready` until `ok` accepts its body.
fn wait_health(port: u16, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = get(port, "/health/ready");
        if ok(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {body:#}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_manifest_and_policy_come_from_it_are_refreshed_and_kept_for_when_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = d.join("profile");
    let key = d.join("it.key");
    let public = tessera(&["sign", "keygen", "--out", key.to_str().unwrap()]).trim().to_owned();
    let signing = json!({ "requireSigned": true, "trustedKeys": [{ "id": "it", "publicKey": public }] });
    let trust = d.join("trust.json");
    std::fs::write(&trust, signing.to_string()).unwrap();
    let (port, docs) = serve();
    // The pages come from the same server.
    let pages = d.join("pages");
    tests::fixture_page("fdc3", "app.html", &pages);
    for entry in std::fs::read_dir(&pages).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        docs.lock().unwrap().as_mut().unwrap().insert(format!("/{name}"), std::fs::read(&path).unwrap());
    }
    let base = format!("http://127.0.0.1:{port}");
    let telemetry = free_port();
    let app = |id: &str| json!({ "appId": id, "url": format!("{base}/app.html") });
    let policy = |extra: Value| {
        let mut p =
            json!({ "signing": signing, "telemetry": { "listen": format!("127.0.0.1:{telemetry}"), "metrics": true } });
        p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        p
    };
    let manifest_v1 =
        publish(&docs, d, "desk.json", &json!({ "name": "Remote desk", "apps": [app("a")], "startup": ["a"] }), &key);
    let policy_v1 = publish(&docs, d, "policy.json", &policy(json!({})), &key);

    let manifest_url = format!("{base}/desk.json");
    let policy_url = format!("{base}/policy.json");
    let env = [
        ("TESSERA_POLICY", policy_url.as_str()),
        ("TESSERA_POLICY_TRUST", trust.to_str().unwrap()),
        ("TESSERA_CONFIG_REFRESH", "1"),
    ];
    let shell = Shell::start_full(&manifest_url, Some(&profile), 600, &env, "config");
    shell.wait_for("a loads", Duration::from_secs(60), |a| a.len() == 1 && a.iter().all(running_with_page));
    let health = wait_health(telemetry, "the sources", |h| h["config"]["manifest"]["digest"] == manifest_v1);
    assert_eq!(health["config"]["manifest"]["from"], manifest_url);
    assert_eq!(health["config"]["policy"]["digest"], policy_v1);
    assert_eq!(health["config"]["policy"]["stale"], Value::Null);

    // A new manifest: its new app can be launched, without a restart.
    let manifest_v2 = publish(
        &docs,
        d,
        "desk.json",
        &json!({ "name": "Remote desk", "apps": [app("a"), app("b")], "startup": ["a"] }),
        &key,
    );
    wait_health(telemetry, "manifest v2", |h| h["config"]["manifest"]["digest"] == manifest_v2);
    shell.ctl_ok(&["launch", "b"]);
    shell.wait_for("b loads", Duration::from_secs(60), |a| a.iter().any(|x| x["app"] == "b" && running_with_page(x)));

    // A tampered policy (v2's text under v1's signature): refused, v1 stays, the desk says so.
    let sig_v1 = docs.lock().unwrap().as_ref().unwrap()["/policy.json.sig"].clone();
    publish(&docs, d, "policy.json", &policy(json!({ "logs": { "consoleApps": ["*"] } })), &key);
    docs.lock().unwrap().as_mut().unwrap().insert("/policy.json.sig".into(), sig_v1);
    let h = wait_health(telemetry, "the tampered policy refused", |h| h["config"]["policy"]["stale"].is_string());
    assert_eq!(h["config"]["policy"]["digest"], policy_v1, "{h:#}");
    assert!(h["config"]["policy"]["stale"].as_str().unwrap().contains("signature"), "{h:#}");
    let (_, metrics) = crate::telemetry::http(telemetry, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(metrics.contains("tessera_config_stale{document=\"policy\"} 1"), "{metrics}");
    assert!(metrics.contains(&format!("policy_digest=\"{policy_v1}\"")), "{metrics}");

    // Signed properly, it is put in force.
    let policy_v2 = publish(&docs, d, "policy.json", &policy(json!({ "logs": { "consoleApps": ["*"] } })), &key);
    wait_health(telemetry, "policy v2", |h| {
        h["config"]["policy"]["digest"] == policy_v2 && h["config"]["policy"]["stale"].is_null()
    });
    drop(shell);

    // IT's server down: the desk starts on the last good copies, and says so.
    *docs.lock().unwrap() = None;
    let shell = Shell::start_full(&manifest_url, Some(&profile), 600, &env, "config-down");
    let h = wait_health(telemetry, "started from the kept copies", |h| h["config"]["manifest"]["stale"].is_string());
    assert_eq!(h["config"]["manifest"]["digest"], manifest_v2, "{h:#}");
    assert_eq!(h["config"]["policy"]["digest"], policy_v2, "{h:#}");
    assert!(
        h["services"].as_array().unwrap().iter().any(|s| s["name"] == "Configuration" && s["ok"] == false),
        "{h:#}"
    );
    // `ctl health` shows it as a warning: a kept copy in force does not make the desk unready.
    let said = String::from_utf8_lossy(&shell.ctl(&["health"]).stdout).into_owned();
    assert!(said.contains("WARN  Configuration"), "{said}");
    // The desk comes back as it was left (its last session), from the kept manifest's apps.
    shell.wait_for("the apps start", Duration::from_secs(60), |a| a.iter().any(|x| x["app"] == "a"));
    drop(shell);
}
