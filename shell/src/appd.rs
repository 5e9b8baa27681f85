//! FDC3 App Directories served over HTTP (`/v2/apps`): fetched, kept in the profile as the
//! last good copy, and read from there when the server cannot be reached.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest directory answer read.
pub const MAX_DIRECTORY_BYTES: u64 = 16 << 20;

/// Why a directory could not be had, neither from its server nor from the cache.
#[derive(Debug, thiserror::Error)]
pub enum AppdError {
    /// The server could not be reached or did not answer in time.
    #[error("{url}: {message}")]
    Fetch {
        /// The directory's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered, but not with a usable directory, and no good copy is kept.
    #[error("{url}: the answer is not a usable App Directory: {reason}")]
    Unusable {
        /// The directory's URL.
        url: String,
        /// Why it is not usable.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{url}: the server answered {status}")]
    Status {
        /// The directory's URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
}

/// A directory's JSON, and whether it came from the cache because the server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The JSON text.
    pub text: String,
    /// Why the cached copy was used, if it was.
    pub stale: Option<String>,
}

/// Where the last good copy of `url` is kept under `cache_dir`.
pub fn cache_file(cache_dir: &Path, url: &str) -> PathBuf {
    // FNV-1a: a stable file name per URL.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    cache_dir.join(format!("{h:016x}.json"))
}

/// Fetches `url` (blocking, at most `timeout`). An answer that `usable` accepts (it parses and
/// validates) is kept under `cache_dir` as the last good copy; when the server cannot be
/// reached, fails, or answers with something unusable (an error page, the wrong shape), the
/// kept copy is returned, marked stale, and stays as it was.
pub fn fetch(
    url: &str,
    cache_dir: &Path,
    timeout: Duration,
    usable: impl Fn(&str) -> Result<(), String>,
) -> Result<Fetched, AppdError> {
    let failed = match get(url, timeout) {
        Ok(text) => match usable(&text) {
            Ok(()) => {
                if let Err(e) = keep(cache_dir, url, &text) {
                    tracing::warn!(%url, "could not keep a copy of the App Directory: {e}");
                }
                return Ok(Fetched { text, stale: None });
            }
            Err(reason) => AppdError::Unusable { url: url.to_owned(), reason },
        },
        Err(e) => e,
    };
    match std::fs::read_to_string(cache_file(cache_dir, url)) {
        Ok(text) => Ok(Fetched { text, stale: Some(failed.to_string()) }),
        Err(_) => Err(failed),
    }
}

/// `GET url` (blocking, within `timeout`, at most [`MAX_DIRECTORY_BYTES`]); 200 or an error.
pub(crate) fn get(url: &str, timeout: Duration) -> Result<String, AppdError> {
    let fetch_error = |message: String| AppdError::Fetch { url: url.to_owned(), message };
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
    let mut response =
        agent.get(url).header("Accept", "application/json").call().map_err(|e| fetch_error(e.to_string()))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(AppdError::Status { url: url.to_owned(), status });
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_DIRECTORY_BYTES)
        .read_to_string()
        .map_err(|e| fetch_error(format!("reading the answer: {e}")))
}

/// Writes the copy whole, then renames it into place.
fn keep(cache_dir: &Path, url: &str, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(cache_dir)?;
    let file = cache_file(cache_dir, url);
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &file)
}

#[cfg(test)]
mod tests;
