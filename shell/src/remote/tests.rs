use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

/// Documents by path; `None`: the server is down (500s).
type Routes = Arc<Mutex<Option<HashMap<String, String>>>>;

/// A loopback server answering paths from a map (404 otherwise).
fn server() -> (String, Routes) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let routes: Routes = Arc::new(Mutex::new(Some(HashMap::new())));
    let r = Arc::clone(&routes);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut first = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let answer = match r.lock().unwrap().as_ref() {
                None => "HTTP/1.1 500 Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                Some(map) => match map.get(&path) {
                    Some(body) => {
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    }
                    None => "HTTP/1.1 404 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                },
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (base, routes)
}

/// Accepts a document holding `"good"`, whose signature (if any) says `"sig-ok"`.
fn usable(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let sig = std::fs::read_to_string(with_sig(path)).ok();
    match (text.contains("good"), sig.as_deref()) {
        (true, None | Some("sig-ok")) => Ok(()),
        (false, _) => Err("not good".into()),
        (true, Some(_)) => Err("bad signature".into()),
    }
}

#[test]
fn a_usable_pair_is_kept_and_used_when_the_server_fails_or_turns_bad() {
    let (base, routes) = server();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("{base}/policy.json");
    let set = |doc: &str, sig: Option<&str>| {
        let mut r = routes.lock().unwrap();
        let map = r.get_or_insert_with(HashMap::new);
        map.insert("/policy.json".into(), doc.into());
        match sig {
            Some(s) => map.insert("/policy.json.sig".into(), s.into()),
            None => map.remove("/policy.json.sig"),
        };
    };
    set("good 1", Some("sig-ok"));
    let first = fetch_signed(&url, cache.path(), Duration::from_secs(5), usable).unwrap();
    assert_eq!(first.stale, None);
    assert_eq!(std::fs::read_to_string(&first.path).unwrap(), "good 1");
    assert_eq!(std::fs::read_to_string(with_sig(&first.path)).unwrap(), "sig-ok");
    assert_eq!(first.digest, digest(b"good 1"));
    assert_eq!(first.digest.len(), 12);

    // A tampered signature, then a bad document: the kept pair stays, marked stale.
    set("good 2", Some("forged"));
    let tampered = fetch_signed(&url, cache.path(), Duration::from_secs(5), usable).unwrap();
    assert!(tampered.stale.as_deref().is_some_and(|s| s.contains("bad signature")), "{tampered:?}");
    assert_eq!(std::fs::read_to_string(&tampered.path).unwrap(), "good 1");
    assert_eq!(tampered.digest, first.digest);
    set("bad", None);
    assert!(fetch_signed(&url, cache.path(), Duration::from_secs(5), usable).unwrap().stale.is_some());

    // The server down: the kept copy. A new good one without a signature replaces both.
    *routes.lock().unwrap() = None;
    let down = fetch_signed(&url, cache.path(), Duration::from_secs(5), usable).unwrap();
    assert!(down.stale.as_deref().is_some_and(|s| s.contains("500")), "{down:?}");
    set("good 3", None);
    let fresh = fetch_signed(&url, cache.path(), Duration::from_secs(5), usable).unwrap();
    assert_eq!((fresh.stale, std::fs::read_to_string(&fresh.path).unwrap()), (None, "good 3".to_owned()));
    assert!(!with_sig(&fresh.path).exists(), "no stale signature left beside it");
}

#[test]
fn nothing_kept_and_nothing_served_is_an_error_and_plain_http_elsewhere_is_refused() {
    let (base, routes) = server();
    *routes.lock().unwrap() = None;
    let cache = tempfile::tempdir().unwrap();
    let e = fetch_signed(&format!("{base}/m.json"), cache.path(), Duration::from_secs(5), usable).unwrap_err();
    assert!(e.to_string().contains("500"), "{e}");
    let e = fetch_signed("http://it.example/m.json", cache.path(), Duration::from_secs(5), usable).unwrap_err();
    assert!(e.to_string().contains("https"), "{e}");
    assert!(is_url("https://x/y") && !is_url("/etc/tessera/policy.json"));
}
