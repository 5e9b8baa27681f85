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

/// What a manifest's app `url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppUrl {
    /// A page on the web (`http://` or `https://` with a host).
    Remote(String),
    /// A relative path to a page, to be found inside the manifest's folder.
    Local(String),
}

/// Reads a manifest's app `url`: `http(s)://` with a host, or a relative path; anything else
/// (`file:`, `javascript:`, `data:` or any other scheme, an absolute path) is refused, saying
/// why. Whether a relative path stays inside the manifest's folder is the caller's to check on
/// the file system.
pub fn app_url(url: &str) -> Result<AppUrl, &'static str> {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let parsed = url::Url::parse(url).map_err(|_| "is not a valid URL")?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("has no host");
        }
        return Ok(AppUrl::Remote(url.to_owned()));
    }
    let scheme = url.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if scheme || url.starts_with('/') || url.starts_with('\\') || url.trim().is_empty() {
        return Err("is neither an http(s) URL nor a relative path to a page in the manifest's folder");
    }
    Ok(AppUrl::Local(url.to_owned()))
}
