use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

async fn ask(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_and_hostile_clients_get_a_status_not_a_crash() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes: Routes =
        Arc::new(|r: &Request| (r.path == "/health/live").then(|| Response::json(200, "{\"status\":\"live\"}".into())));
    let server = tokio::spawn(serve(listener, routes));
    assert!(ask(addr, b"GET /health/live HTTP/1.1\r\n\r\n").await.ends_with("{\"status\":\"live\"}"));
    assert!(ask(addr, b"GET /nope HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404"));
    assert!(ask(addr, b"DELETE / HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405"));
    assert!(ask(addr, &vec![b'A'; 20_000]).await.starts_with("HTTP/1.1 431"));
    // One that says nothing holds only its own slot until its deadline; others are answered.
    let _silent = TcpStream::connect(addr).await.unwrap();
    assert!(ask(addr, b"HEAD /health/live HTTP/1.1\r\n\r\n").await.ends_with("\r\n\r\n"));
    server.abort();
}
