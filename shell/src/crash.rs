//! Crash reports: a panic anywhere in the shell writes a JSON report into the profile
//! (`crashes/<time>-<pid>.json`: the message, where, which thread, the version and a
//! backtrace of function names, no core) before the default hook reports it and the process
//! goes on or ends. `tessera diag bundle` takes the latest of them; the oldest are removed past
//! [`KEEP`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Crash reports kept in a profile.
pub(crate) const KEEP: usize = 20;

/// One panic, as written into the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Report {
    /// When (RFC 3339, UTC).
    pub(crate) time: String,
    /// The build.
    pub(crate) version: String,
    /// The process.
    pub(crate) pid: u32,
    /// The thread's name.
    pub(crate) thread: String,
    /// The panic's message.
    pub(crate) message: String,
    /// Where it was raised (`file:line:column`).
    pub(crate) location: String,
    /// The stack, one frame a line.
    pub(crate) backtrace: String,
}

/// Where a profile's crash reports are.
pub(crate) fn dir(profile: &Path) -> PathBuf {
    profile.join("crashes")
}

/// Installs the hook that writes a report into `profile` on every panic, then runs the hook
/// that was there (which prints the panic to stderr).
pub(crate) fn install(profile: &Path) {
    let dir = dir(profile);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a panic without a message)".to_owned());
        let report = Report {
            time: broker::Timestamp::now().to_rfc3339(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            thread: std::thread::current().name().unwrap_or("unnamed").to_owned(),
            message,
            location: info.location().map(ToString::to_string).unwrap_or_default(),
            backtrace: std::backtrace::Backtrace::force_capture().to_string(),
        };
        // A panic while panicking aborts: nothing here may panic, and a failure is only said.
        if let Err(e) = write(&dir, &report) {
            eprintln!("tessera: could not write a crash report into {}: {e}", dir.display());
        }
        previous(info);
    }));
}

/// Writes `report` into `dir` and removes the oldest past [`KEEP`].
pub(crate) fn write(dir: &Path, report: &Report) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stamp = report.time.replace([':', '.'], "-");
    let path = dir.join(format!("{stamp}-{}.json", report.pid));
    let text = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    let all = list(dir);
    for old in all.iter().take(all.len().saturating_sub(KEEP)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// The reports in `dir`, oldest first (their names start with the time).
pub(crate) fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests;
