//! Where this run's profile is (`--profile`, else `$XDG_DATA_HOME/tessera`, else
//! `~/.local/share/tessera`), and the epoch that keeps this run's message ids apart from every
//! other run's on the same profile.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::cli::ProfileArg;

/// The profile directory: the flag, else `$XDG_DATA_HOME/tessera`, else
/// `~/.local/share/tessera`.
pub(crate) fn dir(arg: &ProfileArg) -> Result<PathBuf> {
    if let Some(dir) = &arg.profile {
        return Ok(dir.clone());
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(data).join("tessera"));
    }
    let home = std::env::var_os("HOME").context("neither --profile, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/tessera"))
}

/// An epoch for message ids that differs between runs.
pub(crate) fn run_epoch() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    (nanos as u64) ^ (u64::from(std::process::id()) << 40)
}
