//! The manifest and the admin policy from an IT URL: fetched with their detached signatures
//! (`URL.sig`, as beside a file), checked by the caller exactly as a file would be, and the
//! last good pair kept in the profile for when the server is down — the way App Directories
//! are kept ([`crate::appd`]). Only `https://`, or plain `http://` to this machine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::appd::{AppdError, cache_file, get};

/// Whether `text` names a remote document rather than a file.
pub fn is_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

/// A document as loaded: the file it is in now (the kept copy, with its `.sig` beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The kept copy.
    pub path: PathBuf,
    /// Why the kept copy was used instead of the server's, if it was.
    pub stale: Option<String>,
    /// The first 12 hex digits of the document's SHA-256: the version a desk reports.
    pub digest: String,
}

/// The first 12 hex digits of `bytes`' SHA-256.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Fetches `url` and `url.sig` (blocking, each within `timeout`). The pair is written beside
/// the kept copy and handed to `usable` (which loads it as a file would be: signature, syntax,
/// every field); a usable pair becomes the kept copy. When the server cannot be reached,
/// answers with an error or with something unusable, the kept copy is used, marked stale (and
/// `usable` is the caller's to apply to it again). Neither: the error.
pub fn fetch_signed(
    url: &str,
    cache_dir: &Path,
    timeout: Duration,
    usable: impl Fn(&Path) -> Result<(), String>,
) -> Result<Fetched, AppdError> {
    if !(url.starts_with("https://") || policy::local_http(url)) {
        return Err(AppdError::Unusable {
            url: url.to_owned(),
            reason: "only https:// (or http:// to this machine) is accepted".to_owned(),
        });
    }
    let kept = cache_file(cache_dir, url);
    let failed = match get(url, timeout) {
        Ok(text) => {
            // No signature is an answer too: `usable` decides whether one is required.
            let sig = match get(&format!("{url}.sig"), timeout) {
                Ok(sig) => Some(sig),
                Err(AppdError::Status { status: 404, .. }) => None,
                Err(e) => return stale_or(&kept, e),
            };
            match try_pair(cache_dir, &kept, &text, sig.as_deref(), &usable) {
                Ok(()) => return Ok(Fetched { path: kept, stale: None, digest: digest(text.as_bytes()) }),
                Err(reason) => AppdError::Unusable { url: url.to_owned(), reason },
            }
        }
        Err(e) => e,
    };
    stale_or(&kept, failed)
}

/// The kept copy, marked stale by `failed`; or `failed` when there is none.
fn stale_or(kept: &Path, failed: AppdError) -> Result<Fetched, AppdError> {
    match std::fs::read(kept) {
        Ok(bytes) => Ok(Fetched { path: kept.to_owned(), stale: Some(failed.to_string()), digest: digest(&bytes) }),
        Err(_) => Err(failed),
    }
}

/// Writes the pair as candidates, checks them, and moves them over the kept copy if usable.
fn try_pair(
    cache_dir: &Path,
    kept: &Path,
    text: &str,
    sig: Option<&str>,
    usable: &impl Fn(&Path) -> Result<(), String>,
) -> Result<(), String> {
    std::fs::create_dir_all(cache_dir).map_err(|e| format!("{}: {e}", cache_dir.display()))?;
    let candidate = kept.with_extension("candidate.json");
    let write = |path: &Path, text: &str| std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()));
    write(&candidate, text)?;
    let candidate_sig = with_sig(&candidate);
    match sig {
        Some(sig) => write(&candidate_sig, sig)?,
        None => {
            let _ = std::fs::remove_file(&candidate_sig);
        }
    }
    let checked = usable(&candidate);
    if checked.is_ok() {
        // The signature first: a crash between the two leaves the old document with a new
        // signature, which fails its check and is fetched again, never a document unchecked.
        let moved = match sig {
            Some(_) => std::fs::rename(&candidate_sig, with_sig(kept)),
            None => std::fs::remove_file(with_sig(kept))
                .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }),
        };
        moved.and_then(|()| std::fs::rename(&candidate, kept)).map_err(|e| format!("keeping it: {e}"))?;
    } else {
        let _ = std::fs::remove_file(&candidate);
        let _ = std::fs::remove_file(&candidate_sig);
    }
    checked
}

/// `path.sig`.
pub fn with_sig(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sig", path.display()))
}

#[cfg(test)]
mod tests;
