//! The health endpoints a monitoring agent reads (issue 20, item 2): a real shell serving
//! `GET /health/live` and `/health/ready` on the loopback address its admin policy names, and
//! hostile requests answered with a status, not a crash.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::e2e::{Shell, running_with_page};

/// A free loopback port (bound, read, released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sends raw bytes to `port` and returns the status code and the body.
pub(crate) fn http(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// `GET path` on `port`, retried until the endpoint is up.
pub(crate) fn get(port: u16, path: &str) -> (u16, Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let (status, body) = http(port, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
            return (status, serde_json::from_str(&body).unwrap_or(Value::Null));
        }
        assert!(std::time::Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn health_endpoints_on_the_policys_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, json!({ "telemetry": { "listen": format!("127.0.0.1:{port}") } }).to_string()).unwrap();
    let env = [("TESSERA_POLICY", policy.to_str().unwrap())];
    let shell = Shell::start_full("e2e.json", None, 600, &env, "telemetry");
    shell.wait_for("three apps running", Duration::from_secs(60), |a| a.len() == 3 && a.iter().all(running_with_page));

    let (status, live) = get(port, "/health/live");
    assert_eq!((status, &live["status"]), (200, &json!("live")));
    let (status, ready) = get(port, "/health/ready");
    assert_eq!(status, 200, "{ready:#}");
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["services"][0]["name"], "Audit log");
    assert_eq!(ready["apps"].as_array().map(Vec::len), Some(3));
    assert!(ready["apps"].as_array().unwrap().iter().all(|a| a["ok"] == true), "{ready:#}");

    // Hostile clients get a status; the shell carries on.
    for (request, want) in [
        (b"POST /health/ready HTTP/1.1\r\n\r\n".to_vec(), 405),
        (b"GET ../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET /metrics/../health HTTP/1.1\r\n\r\n".to_vec(), 404),
        (vec![b'x'; 20_000], 431),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), 400),
    ] {
        assert_eq!(http(port, &request).0, want, "{}", String::from_utf8_lossy(&request[..request.len().min(40)]));
    }
    let (status, _) = get(port, "/health/live");
    assert_eq!(status, 200);
    // Metrics are off unless the policy turns them on.
    assert_eq!(http(port, b"GET /metrics HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(shell.apps().len(), 3);
}

#[test]
fn app_console_lines_land_in_the_log_for_the_apps_the_policy_names() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let page = tests::fixture_page("fdc3", "app.html", dir.path());
    let manifest = dir.path().join("desk.json");
    std::fs::write(
        &manifest,
        json!({ "name": "Console desk", "apps": [{ "appId": "a", "url": page }, { "appId": "b", "url": page }], "startup": ["a", "b"] })
            .to_string(),
    )
    .unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, json!({ "logs": { "consoleApps": ["a"] } }).to_string()).unwrap();
    let env = [("TESSERA_POLICY", policy.to_str().unwrap())];
    let shell = Shell::start_full(manifest.to_str().unwrap(), Some(&profile), 600, &env, "console");
    shell.wait_for("two apps load", Duration::from_secs(60), |a| a.len() == 2 && a.iter().all(running_with_page));
    let (a, b) = (crate::e2e::instance_of(&shell, "a"), crate::e2e::instance_of(&shell, "b"));
    let speak = |who: &str| {
        format!(
            "console.log('hello from {who}', {{n: 1}}), console.error(new TypeError('bad {who}')), setTimeout(() => {{ throw new Error('uncaught in {who}'); }}, 0), true"
        )
    };
    crate::e2e::js(&shell, a, &speak("a"));
    crate::e2e::js(&shell, b, &speak("b"));
    // A flood is held to the budget, in the page and in the shell.
    crate::e2e::js(&shell, a, "for (let i = 0; i < 5000; i++) console.debug('flood ' + i); true");

    let log = profile.join("logs").join("tessera.log");
    let lines = |text: &str| -> Vec<Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| {
                l["target"] == "app_console" && l["fields"]["message"].as_str().is_some_and(|m| m.contains(text))
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while lines("uncaught in a").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no console lines of a's in {}", log.display());
        std::thread::sleep(Duration::from_millis(200));
    }
    let hello = lines("hello from a");
    assert_eq!(hello.len(), 1, "{hello:?}");
    assert_eq!(hello[0]["fields"]["app"], "a");
    assert_eq!(hello[0]["fields"]["message"], "hello from a {\"n\":1}");
    assert_eq!(hello[0]["level"], "INFO");
    let bad = lines("bad a");
    assert_eq!(bad[0]["level"], "ERROR");
    assert_eq!(bad[0]["fields"]["message"], "TypeError: bad a");
    // b's console is its own business.
    assert!(lines("from b").is_empty() && lines("in b").is_empty());
    drop(shell);
    // The page's own limit (50 lines a second) held the flood back; the debug lines that came
    // are under the file's default level (info) anyway, and nothing but JSON is in the file.
    for l in std::fs::read_to_string(&log).unwrap().lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}
