//! Where the manifest and the admin policy come from: a file, or an IT URL (`--manifest URL`,
//! `--policy URL` or `TESSERA_POLICY=URL`), fetched at start-up with its signature and checked
//! as a file is (`shell::remote`), the last good copy used when the server is down. Where each
//! came from and which version (a digest of its bytes) the desk runs is in health and metrics;
//! `run/reconfigure.rs` fetches them again on a schedule.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use shell::manifest;
use shell::remote;

/// How long IT's server has to answer.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

/// Where a document in force came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Source {
    /// The URL or the file.
    pub(crate) from: String,
    /// The first 12 hex digits of its SHA-256: the version this desk runs.
    pub(crate) digest: String,
    /// Why the last good copy is in force instead of the server's answer, if it is.
    pub(crate) stale: Option<String>,
}

/// The manifest's and the policy's sources.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Sources {
    /// The manifest.
    pub(crate) manifest: Source,
    /// The admin policy file, if there is one (else the manifest's `policy` is in force).
    pub(crate) policy: Option<Source>,
}

/// Where the kept copies are.
pub(super) fn cache_dir(profile: &Path) -> PathBuf {
    profile.join("config")
}

/// A file's source (its digest read now).
pub(super) fn file_source(path: &Path) -> Source {
    let digest = std::fs::read(path).map(|b| remote::digest(&b)).unwrap_or_default();
    Source { from: path.display().to_string(), digest, stale: None }
}

/// The admin policy from `url`: the server's if it is usable (signature and all), else the
/// last good copy; the file it is in now and where it came from.
pub(super) fn policy_at(
    url: &str,
    profile: &Path,
    trust: Option<&policy::signing::Checker>,
) -> Result<(policy::AdminPolicy, Source)> {
    let usable = |p: &Path| policy::load_file(p, trust).map(|_| ()).map_err(|e| e.to_string());
    let fetched = remote::fetch_signed(url, &cache_dir(profile), TIMEOUT, usable)
        .with_context(|| format!("the admin policy from {url}"))?;
    if let Some(why) = &fetched.stale {
        tracing::warn!(%url, "the admin policy cannot be had from its server ({why}); using the last good copy");
    }
    let policy = policy::load_file(&fetched.path, trust).with_context(|| format!("the admin policy from {url}"))?;
    tracing::info!(%url, digest = %fetched.digest, "admin policy loaded");
    Ok((policy, Source { from: url.to_owned(), digest: fetched.digest, stale: fetched.stale }))
}

/// The manifest from `url`, like [`policy_at`]: the file it is in now, and its source.
pub(super) fn manifest_at(url: &str, profile: &Path, trust: &manifest::Trust) -> Result<(PathBuf, Source)> {
    let usable = |p: &Path| manifest::load_with(p, trust.clone()).map(|_| ()).map_err(|e| e.to_string());
    let fetched = remote::fetch_signed(url, &cache_dir(profile), TIMEOUT, usable)
        .with_context(|| format!("the manifest from {url}"))?;
    if let Some(why) = &fetched.stale {
        tracing::warn!(%url, "the manifest cannot be had from its server ({why}); using the last good copy");
    }
    Ok((fetched.path, Source { from: url.to_owned(), digest: fetched.digest, stale: fetched.stale }))
}
