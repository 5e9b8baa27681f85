//! The platform manifest: which apps a desk has and which open at start-up.
//!
//! ```json
//! { "name": "Demo desk",
//!   "apps": [ { "appId": "prices", "title": "Prices", "url": "../assets/demo/prices.html",
//!               "icon": "../assets/demo/icons/prices.png",
//!               "memoryLimitMiB": 512, "cpuLimitPercent": 150 } ],
//!   "startup": ["prices"] }
//! ```
//! A relative `url` (or a `file:` URL) is a local app: its page's directory becomes its content
//! root, served to it as `tessera://<appId>/`. Every problem is reported with the app and
//! field it concerns; a manifest with any is refused as a whole (the FDC3 App Directory, which
//! skips bad records, arrives with its issue).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::origin::Origins;

/// One app.
#[derive(Debug, Clone)]
pub struct App {
    /// Its id (the broker identity of its hosts).
    pub app_id: String,
    /// Shown on its tab and in the launcher.
    pub title: String,
    /// One line about it, for the launcher.
    pub description: String,
    /// Its icon, a PNG file.
    pub icon: Option<PathBuf>,
    /// Its start page, absolute.
    pub url: String,
    /// For a local app, the directory its `tessera://` URLs are served from.
    pub content_root: Option<PathBuf>,
    /// Where it may navigate.
    pub origins: Origins,
    /// Its memory limit, if it has its own.
    pub memory_limit_bytes: Option<u64>,
    /// Its CPU limit in percent of a core (averaged over 10 s), if it has one.
    pub cpu_limit_percent: Option<u32>,
}

/// A loaded manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The desk's name (the window title).
    pub name: String,
    /// Every app, in file order.
    pub apps: Vec<App>,
    /// Apps to open at start-up.
    pub startup: Vec<String>,
    /// The desk to open the first time (before any session was saved): a workspace in the
    /// format `tessera ctl layout save` stores; checked by the shell.
    pub workspace: Option<serde_json::Value>,
}

impl Manifest {
    /// The app called `app_id`.
    pub fn app(&self, app_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.app_id == app_id)
    }
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not the expected JSON.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// serde's message, with line and column.
        message: String,
    },
    /// Fields with bad values.
    #[error("{path}: {}", problems.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One line per problem, naming the app and field.
        problems: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawManifest {
    name: Option<String>,
    apps: Vec<RawApp>,
    #[serde(default)]
    startup: Vec<String>,
    #[serde(default)]
    workspace: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawApp {
    app_id: String,
    title: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    icon: Option<String>,
    url: String,
    #[serde(rename = "memoryLimitMiB")]
    memory_limit_mib: Option<u64>,
    cpu_limit_percent: Option<u32>,
}

/// Reads and checks the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
    let base = path.canonicalize().map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
    parse(&text, &base)
}

/// Parses manifest `text`; relative URLs are resolved against the file `base`.
pub fn parse(text: &str, base: &Path) -> Result<Manifest, ManifestError> {
    let raw: RawManifest = serde_json::from_str(text)
        .map_err(|e| ManifestError::Syntax { path: base.to_owned(), message: e.to_string() })?;
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let mut apps = Vec::new();
    for (i, a) in raw.apps.into_iter().enumerate() {
        let who = if a.app_id.is_empty() { format!("apps[{i}]") } else { format!("app {:?}", a.app_id) };
        if a.app_id.is_empty() || !a.app_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            problems.push(format!("{who}: appId must be letters, digits, '-', '_' or '.'"));
            continue;
        }
        if !seen.insert(a.app_id.clone()) {
            problems.push(format!("{who}: appId appears twice"));
            continue;
        }
        let (url, content_root) = match resolve(&a.app_id, &a.url, base) {
            Ok(u) => u,
            Err(e) => {
                problems.push(format!("{who}: url: {e}"));
                continue;
            }
        };
        let origins = match Origins::of(&url) {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("{who}: url: {e}"));
                continue;
            }
        };
        if a.memory_limit_mib.is_some_and(|m| m < 64) {
            problems.push(format!("{who}: memoryLimitMiB must be at least 64"));
            continue;
        }
        let icon = match &a.icon {
            None => None,
            Some(rel) => {
                let path = base.parent().unwrap_or(Path::new("/")).join(rel);
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => Some(path),
                    Ok(_) => {
                        problems.push(format!("{who}: icon: {} is not a file", path.display()));
                        continue;
                    }
                    Err(e) => {
                        problems.push(format!("{who}: icon: {}: {e}", path.display()));
                        continue;
                    }
                }
            }
        };
        if a.cpu_limit_percent.is_some_and(|c| !(5..=800).contains(&c)) {
            problems.push(format!("{who}: cpuLimitPercent must be between 5 and 800"));
            continue;
        }
        apps.push(App {
            title: a.title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| a.app_id.clone()),
            description: a.description,
            icon,
            app_id: a.app_id,
            url,
            content_root,
            origins,
            memory_limit_bytes: a.memory_limit_mib.map(|m| m << 20),
            cpu_limit_percent: a.cpu_limit_percent,
        });
    }
    for s in &raw.startup {
        if !seen.contains(s) {
            problems.push(format!("startup: {s:?} is not an app in this manifest"));
        }
    }
    if !problems.is_empty() {
        return Err(ManifestError::Invalid { path: base.to_owned(), problems });
    }
    Ok(Manifest {
        name: raw.name.unwrap_or_else(|| "Tessera".to_owned()),
        apps,
        startup: raw.startup,
        workspace: raw.workspace,
    })
}

/// The start URL, and for a local app its content root.
fn resolve(app_id: &str, url: &str, base: &Path) -> Result<(String, Option<PathBuf>), String> {
    let local = if let Some(rest) = url.strip_prefix("file://") {
        PathBuf::from(rest)
    } else if url.contains("://") || url.starts_with("about:") {
        return Ok((url.to_owned(), None));
    } else {
        base.parent().unwrap_or(Path::new("/")).join(url)
    };
    let path = local.canonicalize().map_err(|e| format!("{}: {e}", local.display()))?;
    if !path.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(format!("{} has no usable file name", path.display()));
    };
    let mut start = url::Url::parse(&format!("tessera://{app_id}/")).map_err(|e| e.to_string())?;
    start.set_path(name);
    Ok((start.to_string(), Some(dir.to_owned())))
}

#[cfg(test)]
mod tests;
