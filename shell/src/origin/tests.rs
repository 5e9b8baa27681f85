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
