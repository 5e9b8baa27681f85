use super::*;

#[test]
fn pages_are_served_from_their_own_addresses_and_report_their_paint() {
    let pages = Pages::serve(2).unwrap();
    let urls = pages.urls();
    assert!(urls[0].starts_with("http://127.0.0.2:") && urls[1].starts_with("http://127.0.0.3:"), "{urls:?}");
    let get = |url: &str, path: &str| {
        let addr = url.trim_start_matches("http://").trim_end_matches('/');
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    assert!(get(&urls[0], "/").contains("App 0"));
    assert!(get(&urls[1], "/nothing").starts_with("HTTP/1.1 404"));
    assert!(pages.all_painted(Duration::from_millis(50)).is_err(), "none has painted");
    get(&urls[0], "/painted");
    get(&urls[1], "/painted");
    pages.all_painted(Duration::from_secs(1)).unwrap();
    // A request that never ends its head is dropped, and the server goes on.
    let addr = urls[0].trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&[b'x'; 20_000]).unwrap();
    drop(s);
    assert!(get(&urls[0], "/").contains("App 0"));
    assert!(Pages::serve(0).is_err() && Pages::serve(MAX_PAGES + 1).is_err());
}
