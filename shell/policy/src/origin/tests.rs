use super::*;

#[test]
fn same_origin_is_allowed_and_nothing_else() {
    let o = Origins::of("https://news.example.com/app/index.html").unwrap();
    for ok in [
        "https://news.example.com/other",
        "https://NEWS.example.com:443/x?y#z",
        "https://user:pw@news.example.com/x",
        "about:blank",
    ] {
        assert!(o.allows(ok), "{ok}");
    }
    for no in [
        "http://news.example.com/",
        "https://news.example.com:8443/",
        "https://news.example.com.evil.test/",
        "https://evil.test/@news.example.com",
        "https://news.example.com@evil.test/",
        "https://news.example.com./",
        "https://xn--nws-8cd.example.com/",
        "https://nеws.example.com/",
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "not a url",
    ] {
        assert!(!o.allows(no), "{no}");
    }
}

#[test]
fn local_apps_have_an_origin_each() {
    let o = Origins::of("tessera://prices/prices.html").unwrap();
    assert!(o.allows("tessera://prices/ticker.html"));
    assert!(o.allows("tessera://prices/sub/x.html?y"));
    assert!(!o.allows("tessera://ticker/ticker.html"), "another app's files");
    assert!(!o.allows("tessera://prices:8080/x"));
    assert!(!o.allows("tessera://u@prices/x"));
    assert!(!o.allows("file:///etc/passwd"));
    assert!(!o.allows("https://prices/"));
}

#[test]
fn bad_start_urls_are_refused_with_a_reason() {
    for (url, why) in [
        ("javascript:alert(1)", "scheme"),
        ("https://", "empty host"),
        ("https://u:p@example.com/", "passwords"),
        ("relative/path.html", "relative URL"),
        ("file:///tmp/x.html", "not served"),
    ] {
        let e = Origins::of(url).unwrap_err().to_string();
        assert!(e.contains(why), "{url}: {e}");
    }
}

#[test]
fn an_allowlist_adds_exact_origins_compared_parsed() {
    let o = Origins::of("https://app.example/")
        .unwrap()
        .with_allowed(&["https://News.Example".to_owned(), "http://127.0.0.1:8080".to_owned()])
        .unwrap();
    assert!(o.allows("https://news.example/today"));
    assert!(o.allows("https://news.example:443/x"));
    assert!(o.allows("https://user@news.example/"), "user info is not part of the origin");
    assert!(o.allows("http://127.0.0.1:8080/feed"));
    for bad in [
        "https://news.example:8443/",
        "http://news.example/",
        "https://news.example./",
        "https://news.example.evil.com/",
        "https://evil.com/?https://news.example",
        "https://xn--nws-ioa.example/",
        "https://n\u{0435}ws.example/",
        "http://127.0.0.1:8081/",
        "http://localhost:8080/",
        "javascript:fetch('https://news.example')",
        "data:text/html,news.example",
    ] {
        assert!(!o.allows(bad), "{bad}");
    }
    for bad in [
        "https://*.example",
        "https://u:p@news.example",
        "https://news.example.",
        "https://news.example/path",
        "ftp://news.example",
    ] {
        assert!(Origins::of("https://app.example/").unwrap().with_allowed(&[bad.to_owned()]).is_err(), "{bad}");
    }
}
