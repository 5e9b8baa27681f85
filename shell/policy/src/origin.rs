//! Where an app may navigate: its own origin, compared as parsed origins (scheme, host, port),
//! never as strings. Until the permissions issue adds per-app allowlists, this is all an app
//! gets; new windows and navigations elsewhere are refused. A local app's origin is
//! `tessera://<appId>` (its files, served by its host).

use url::Url;

/// The origins an app may load pages from.
#[derive(Debug, Clone)]
pub struct Origins {
    start: Url,
    /// Further http(s) origins the manifest allows (`scheme://host[:port]`, normalised).
    allowed: Vec<String>,
}

/// Why a start URL is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{url:?} is not a usable app URL: {reason}")]
pub struct BadUrl {
    /// The URL.
    pub url: String,
    /// Why.
    pub reason: String,
}

impl Origins {
    /// The origin of `start_url` (an http, https or tessera URL).
    pub fn of(start_url: &str) -> Result<Self, BadUrl> {
        let bad = |reason: &str| BadUrl { url: start_url.to_owned(), reason: reason.to_owned() };
        let start = Url::parse(start_url).map_err(|e| bad(&e.to_string()))?;
        match start.scheme() {
            "http" | "https" | "tessera" if start.host().is_some_and(|h| !h.to_string().is_empty()) => {}
            "http" | "https" | "tessera" => return Err(bad("no host")),
            "file" => return Err(bad("file: URLs are not served; give the manifest a relative path instead")),
            other => return Err(bad(&format!("the {other}: scheme is not allowed for apps"))),
        }
        if !start.username().is_empty() || start.password().is_some() {
            return Err(bad("user names and passwords do not belong in app URLs"));
        }
        Ok(Self { start, allowed: Vec::new() })
    }

    /// Also allows these origins (each an http(s) origin with no path, user info, wildcard or
    /// trailing dot); the first that is not one is the error.
    pub fn with_allowed(mut self, origins: &[String]) -> Result<Self, BadUrl> {
        for o in origins {
            let normal = crate::urls::normal_origin(o).ok_or_else(|| BadUrl {
                url: o.clone(),
                reason: "not an http(s) origin (scheme://host[:port], no path, user info, wildcard or trailing dot)"
                    .to_owned(),
            })?;
            self.allowed.push(normal);
        }
        Ok(self)
    }

    /// The start URL.
    pub fn start(&self) -> &Url {
        &self.start
    }

    /// Whether the app may load `url` in its view.
    pub fn allows(&self, url: &str) -> bool {
        if url == "about:blank" || url == "about:srcdoc" {
            return true;
        }
        let Ok(target) = Url::parse(url) else { return false };
        if self.start.scheme() == "tessera" {
            // A non-special scheme has an opaque origin in the URL standard: compare by hand.
            return target.scheme() == "tessera"
                && target.host_str() == self.start.host_str()
                && target.port().is_none()
                && target.username().is_empty()
                && target.password().is_none();
        }
        // `origin()` is scheme, host (IDNA-normalised, lower case) and port (default made explicit);
        // user info is not part of it, and an opaque origin never equals anything.
        target.origin().is_tuple()
            && (target.origin() == self.start.origin() || self.allowed.contains(&target.origin().ascii_serialization()))
    }
}

#[cfg(test)]
mod tests;
