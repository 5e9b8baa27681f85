//! URL rules shared by permissions, signed records, origins and the update section: what an
//! origin is, and what counts as plain http to this machine. A leaf: it uses no other module.

/// An origin as `scheme://host[:port]`, parsed and normalised (lower case, IDNA, default
/// port left out); `None` for anything that is not an http(s) origin with a host and nothing
/// else (no user info, path, query or fragment).
pub fn normal_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(|h| h.is_empty() || h.ends_with('.'))
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || !(url.path() == "/" || url.path().is_empty())
        || text.contains('*')
    {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// Plain http to this machine (exactly `127.0.0.1`, `[::1]` or `localhost`, no user info).
pub fn local_http(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| {
        u.scheme() == "http"
            && u.username().is_empty()
            && u.password().is_none()
            && matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
    })
}
