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

/// Fetches `url` (blocking, at most `timeout`); on success the answer is kept under
/// `cache_dir`; on failure the kept copy is returned, marked stale.
pub fn fetch(url: &str, cache_dir: &Path, timeout: Duration) -> Result<Fetched, AppdError> {
    match get(url, timeout) {
        Ok(text) => {
            if let Err(e) = keep(cache_dir, url, &text) {
                tracing::warn!(%url, "could not keep a copy of the App Directory: {e}");
            }
            Ok(Fetched { text, stale: None })
        }
        Err(e) => match std::fs::read_to_string(cache_file(cache_dir, url)) {
            Ok(text) => Ok(Fetched { text, stale: Some(e.to_string()) }),
            Err(_) => Err(e),
        },
    }
}

fn get(url: &str, timeout: Duration) -> Result<String, AppdError> {
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
