use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

use super::*;

/// A one-route HTTP server on 127.0.0.1 that answers with whatever `body` holds now (`None`:
/// it is down, the port closed).
struct Server {
    url: String,
    body: Arc<Mutex<Option<(u16, String)>>>,
}

impl Server {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/v2/apps", listener.local_addr().unwrap().port());
        let body: Arc<Mutex<Option<(u16, String)>>> = Arc::new(Mutex::new(None));
        let shared = Arc::clone(&body);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let answer = shared.lock().unwrap().clone();
                if let Some((status, text)) = answer {
                    let head =
                        format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", text.len());
                    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(text.as_bytes()));
                }
            }
        });
        Self { url, body }
    }

    fn answer(&self, status: u16, text: &str) {
        *self.body.lock().unwrap() = Some((status, text.to_owned()));
    }
}

/// What the shell accepts: JSON with an `applications` list.
fn usable(text: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if v.get("applications").is_some_and(serde_json::Value::is_array) { Ok(()) } else { Err("no list".into()) }
}

#[test]
fn only_a_usable_answer_replaces_the_kept_copy() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let t = Duration::from_secs(5);
    let good = r#"{"applications":[{"appId":"a"}]}"#;
    server.answer(200, good);
    let f = fetch(&server.url, cache.path(), t, usable).unwrap();
    assert_eq!((f.text.as_str(), f.stale), (good, None));
    for (status, bad) in [(200, "<html>maintenance</html>"), (200, r#"{"applications":"none"}"#), (503, "down")] {
        server.answer(status, bad);
        let f = fetch(&server.url, cache.path(), t, usable).unwrap();
        assert_eq!(f.text, good, "{bad}: the last good copy is used");
        assert!(f.stale.is_some(), "{bad}: marked stale");
        assert_eq!(std::fs::read_to_string(cache_file(cache.path(), &server.url)).unwrap(), good, "{bad}: kept");
    }
    // With the server gone too, the last good copy still answers.
    let gone = "http://127.0.0.1:9/v2/apps";
    std::fs::copy(cache_file(cache.path(), &server.url), cache_file(cache.path(), gone)).unwrap();
    assert_eq!(fetch(gone, cache.path(), t, usable).unwrap().text, good);
}

#[test]
fn an_unusable_first_answer_is_an_error_and_nothing_is_kept() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    server.answer(200, "<html></html>");
    let e = fetch(&server.url, cache.path(), Duration::from_secs(5), usable).unwrap_err();
    assert!(matches!(e, AppdError::Unusable { .. }), "{e}");
    assert!(!cache_file(cache.path(), &server.url).exists());
}
