//! The platform manifest: which apps a desk has and which open at start-up.
//!
//! ```json
//! { "name": "Demo desk",
//!   "apps": [ { "appId": "prices", "title": "Prices", "url": "demo/prices.html",
//!               "icon": "demo/icons/prices.png",
//!               "memoryLimitMiB": 512, "cpuLimitPercent": 150 } ],
//!   "startup": ["prices"] }
//! ```
//! An app's `url` is `http(s)://...`, or a relative path to a page inside the manifest's folder
//! (a local app: its page's directory becomes its content root, served to it as
//! `tessera://<appId>/`); anything else (`file:`, `javascript:`, `data:`, an absolute path, a
//! path that leaves the folder) is refused. Every problem is reported with the app and
//! field it concerns; a manifest with any is refused as a whole.
//!
//! An app may declare the FDC3 intents it listens for in an appd v2 `interop` block. The
//! manifest may also name an FDC3 App Directory file (`appDirectory`, relative to the
//! manifest): its web apps join the manifest's; a bad record there is reported by appId and
//! field and skipped, and the rest load.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use policy::origin::Origins;

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
    /// The App Directory it came from (a file or URL); `None` for the manifest's own apps.
    pub source: Option<String>,
    /// What it declares it may ask the user for.
    pub permissions: Vec<policy::Permission>,
    /// The Content-Security-Policy its pages get (local apps only).
    pub csp: Option<String>,
    /// For a native app, what the shell runs; `None` for a web app.
    pub native: Option<NativeLaunch>,
    /// Which app host a web app's view lives in.
    pub process: Process,
}

/// Which app host a web app's view lives in. Each page has a WebKit web process of its own
/// whatever this says; a group's apps share the host (its GTK loop and WebKit network process).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Process {
    /// The group of its trust level: `desk` for the manifest's own apps, `directory` for an App
    /// Directory's.
    #[default]
    ByTrust,
    /// The named group (`"processGroup": "name"`).
    Group(String),
    /// A host of its own (`"ownProcess": true`).
    Alone,
}

impl App {
    /// The process group whose host the app's view lives in; `None`: a host of its own.
    pub fn process_group(&self) -> Option<String> {
        match &self.process {
            _ if self.native.is_some() => None,
            Process::ByTrust if self.source.is_some() => Some("directory".to_owned()),
            Process::ByTrust => Some("desk".to_owned()),
            Process::Group(name) => Some(name.clone()),
            Process::Alone => None,
        }
    }
}

/// How a native app is started: a program outside any web view, which connects to the shell's
/// endpoint with the launch token it is given. Without a program, the app is started
/// elsewhere (a service, a user's tool) and connects with an IT-signed credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeLaunch {
    /// The executable, absolute; `None`: the app is not started by the shell.
    pub program: Option<PathBuf>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables it gets beyond the shell's own.
    pub env: Vec<(String, String)>,
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
    /// Every app as the FDC3 agent sees it (with the intents it listens for).
    pub directory: broker::fdc3::Directory,
    /// App Directory records that were skipped, and why.
    pub directory_problems: Vec<String>,
    /// App Directory URLs (`/v2/apps` answers) to load and refresh.
    pub directory_urls: Vec<String>,
    /// The admin policy the manifest carries, if any (a policy file given to the shell wins).
    pub policy: Option<policy::AdminPolicy>,
    /// How App Directory records are checked, and the versions seen so far (updated as
    /// directories load).
    pub trust: Trust,
}

impl Manifest {
    /// Loads (or reloads) the App Directory `source` (a file or URL) from its JSON `text`: its
    /// apps replace those it gave before; its web apps join the manifest's (one whose appId the
    /// manifest already has is skipped). Bad records are skipped and kept in
    /// [`Manifest::directory_problems`]; only a directory that is not readable at all is an error.
    pub fn load_directory(&mut self, source: &str, text: &str) -> Result<(), broker::fdc3::DirectoryError> {
        let mut refused = Vec::new();
        let checked;
        let text = match &self.trust.checker {
            None => text,
            Some(checker) => {
                // Signed records: duplicate keys anywhere refuse the whole directory; each
                // record's signature, expiry, version and URL are checked, and the bad ones
                // are skipped.
                let value = policy::signing::parse_strict(text)
                    .map_err(|e| broker::fdc3::DirectoryError::NotJson(e.to_string()))?;
                let list = match &value {
                    serde_json::Value::Array(l) => l.clone(),
                    serde_json::Value::Object(o) => match o.get("applications") {
                        Some(serde_json::Value::Array(l)) => l.clone(),
                        _ => return Err(broker::fdc3::DirectoryError::Shape),
                    },
                    _ => return Err(broker::fdc3::DirectoryError::Shape),
                };
                let now = now_rfc3339();
                let mut kept = Vec::new();
                for (i, r) in list.into_iter().enumerate() {
                    let id = r.get("appId").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
                    let seen = self.trust.seen_versions.get(&id).map(String::as_str);
                    match checker.check_record_value(&r, seen, &now) {
                        Ok(()) => kept.push(r),
                        Err(e) => refused.push(format!("{source}: app {id:?} (record {i}): signature: {e}")),
                    }
                }
                checked = serde_json::Value::Array(kept).to_string();
                checked.as_str()
            }
        };
        let (good, bad) = broker::fdc3::Directory::parse(text)?;
        for r in &good {
            if let Some(v) = &r.version {
                let newer = self
                    .trust
                    .seen_versions
                    .get(&r.app_id)
                    .is_none_or(|s| policy::signing::version_cmp(v, s) == std::cmp::Ordering::Greater);
                if newer {
                    self.trust.seen_versions.insert(r.app_id.clone(), v.clone());
                }
            }
        }
        let mut directory = broker::fdc3::Directory::new();
        for r in self.directory.apps() {
            if self.apps.iter().any(|a| a.app_id == r.app_id && a.source.as_deref() != Some(source)) {
                directory.insert(r.clone());
            }
        }
        self.apps.retain(|a| a.source.as_deref() != Some(source));
        self.directory_problems.retain(|p| !p.starts_with(&format!("{source}: ")));
        self.directory_problems.extend(refused);
        self.directory_problems.extend(bad.iter().map(|p| format!("{source}: {p}")));
        for r in good {
            let Some(url) = r.url.clone() else { continue };
            if self.apps.iter().any(|a| a.app_id == r.app_id) {
                self.directory_problems
                    .push(format!("{source}: app {:?}: another app already has this appId", r.app_id));
                continue;
            }
            match Origins::of(&url) {
                Ok(origins) => {
                    self.apps.push(App {
                        app_id: r.app_id.clone(),
                        title: r.title.clone(),
                        description: r.description.clone().unwrap_or_default(),
                        icon: None,
                        url,
                        content_root: None,
                        origins,
                        memory_limit_bytes: None,
                        cpu_limit_percent: None,
                        source: Some(source.to_owned()),
                        permissions: Vec::new(),
                        csp: None,
                        native: None,
                        process: Process::ByTrust,
                    });
                    directory.insert(r);
                }
                Err(e) => {
                    self.directory_problems.push(format!("{source}: app {:?}: details.url: {e}", r.app_id));
                }
            }
        }
        self.directory = directory;
        Ok(())
    }

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
    #[serde(default)]
    app_directory: Option<String>,
    #[serde(default)]
    policy: Option<serde_json::Value>,
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
    /// `web` (the default) or `native`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    url: Option<String>,
    /// A native app's executable: absolute, or relative to the manifest's folder.
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    #[serde(rename = "memoryLimitMiB")]
    memory_limit_mib: Option<u64>,
    cpu_limit_percent: Option<u32>,
    /// The process group whose host its view shares.
    #[serde(default)]
    process_group: Option<String>,
    /// A host of its own.
    #[serde(default)]
    own_process: bool,
    #[serde(default)]
    interop: Option<serde_json::Value>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    csp: Option<String>,
    #[serde(default)]
    origins: Vec<String>,
}

/// How a manifest and its App Directories' records are checked before they load (the admin
/// policy's signing rules), and the highest version of each app seen before.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Checks signatures; none: nothing needs to be signed.
    pub checker: Option<policy::signing::Checker>,
    /// The highest version seen of each app (kept by the shell in the profile).
    pub seen_versions: std::collections::BTreeMap<String, String>,
    /// More App Directories will be added (given on the command line): start-up apps are
    /// checked by the caller once they are.
    pub more_directories: bool,
}

fn now_rfc3339() -> String {
    broker::Timestamp::now().to_rfc3339()
}

/// Reads and checks the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    load_with(path, Trust::default())
}

/// Reads and checks the manifest at `path`; with a signature checker, its detached signature
/// (`<path>.sig`) first.
pub fn load_with(path: &Path, trust: Trust) -> Result<Manifest, ManifestError> {
    let bytes = std::fs::read(path).map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
    let base = path.canonicalize().map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
    if let Some(checker) = &trust.checker {
        let sig_path = PathBuf::from(format!("{}.sig", path.display()));
        let sig = std::fs::read_to_string(&sig_path).ok();
        if let Err(e) = checker.check_manifest(&bytes, sig.as_deref(), &now_rfc3339()) {
            return Err(ManifestError::Invalid { path: base, problems: vec![format!("signature: {e}")] });
        }
    }
    let text =
        String::from_utf8(bytes).map_err(|e| ManifestError::Syntax { path: base.clone(), message: e.to_string() })?;
    parse_with(&text, &base, trust)
}

/// Parses manifest `text`; relative URLs are resolved against the file `base`.
pub fn parse(text: &str, base: &Path) -> Result<Manifest, ManifestError> {
    parse_with(text, base, Trust::default())
}

fn parse_with(text: &str, base: &Path, trust: Trust) -> Result<Manifest, ManifestError> {
    let raw: RawManifest = serde_json::from_str(text)
        .map_err(|e| ManifestError::Syntax { path: base.to_owned(), message: e.to_string() })?;
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let mut apps = Vec::new();
    let mut directory = broker::fdc3::Directory::new();
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
        if let Some((app, record)) = check_app(&who, a, base, &mut problems) {
            directory.insert(record);
            apps.push(app);
        }
    }
    let mut directory_files = Vec::new();
    let mut directory_urls = Vec::new();
    if let Some(source) = &raw.app_directory {
        if source.starts_with("http://") || source.starts_with("https://") {
            directory_urls.push(source.clone());
        } else {
            directory_files.push(base.parent().unwrap_or(Path::new("/")).join(source));
        }
    }
    // Start-up apps must be in the manifest, or (checked once it is loaded) its App Directory.
    if directory_files.is_empty() {
        for s in raw.startup.iter().filter(|s| !seen.contains(*s)) {
            problems.push(format!("startup: {s:?} is not an app in this manifest"));
        }
    }
    let policy = raw.policy.and_then(|v| manifest_policy(v, &mut problems));
    if !problems.is_empty() {
        return Err(ManifestError::Invalid { path: base.to_owned(), problems });
    }
    let mut manifest = Manifest {
        name: raw.name.unwrap_or_else(|| "Tessera".to_owned()),
        apps,
        startup: raw.startup,
        workspace: raw.workspace,
        directory,
        directory_problems: Vec::new(),
        directory_urls,
        policy,
        trust,
    };
    for path in directory_files {
        match std::fs::read_to_string(&path) {
            Err(e) => {
                return Err(ManifestError::Invalid {
                    path: base.to_owned(),
                    problems: vec![format!("appDirectory: {}: {e}", path.display())],
                });
            }
            Ok(text) => {
                if let Err(e) = manifest.load_directory(&path.display().to_string(), &text) {
                    return Err(ManifestError::Invalid {
                        path: base.to_owned(),
                        problems: vec![format!("appDirectory: {}: {e}", path.display())],
                    });
                }
            }
        }
    }
    let later = manifest.trust.more_directories || !manifest.directory_urls.is_empty();
    let unknown: Vec<String> = manifest
        .startup
        .iter()
        .filter(|s| !later && manifest.app(s).is_none())
        .map(|s| format!("startup: {s:?} is not an app in this manifest or its App Directory file"))
        .collect();
    if !unknown.is_empty() {
        return Err(ManifestError::Invalid { path: base.to_owned(), problems: unknown });
    }
    Ok(manifest)
}

/// One app of a manifest, checked field by field; `None` (with the reasons in `problems`) when
/// it cannot be used. Its appd record (for FDC3 intents) comes with it.
fn check_app(who: &str, a: RawApp, base: &Path, problems: &mut Vec<String>) -> Option<(App, broker::fdc3::AppRecord)> {
    let native = match a.kind.as_deref() {
        None | Some("web") => None,
        Some("native") => Some(check_native(who, &a, base, problems)?),
        Some(other) => {
            problems.push(format!("{who}: type: {} is not \"web\" or \"native\"", crate::quote::quote(other)));
            return None;
        }
    };
    let (url, content_root, origins) = match &native {
        Some(n) => {
            // A native app has no page: its origin is a name no page can have.
            let Ok(origins) = Origins::of(&format!("tessera://{}/", a.app_id)) else {
                problems.push(format!("{who}: appId cannot name a native app"));
                return None;
            };
            let url = n.program.as_ref().map_or_else(|| "native:".to_owned(), |p| format!("native:{}", p.display()));
            (url, None, origins)
        }
        None => check_web(who, &a, base, problems)?,
    };
    if a.memory_limit_mib.is_some_and(|m| m < 64) {
        problems.push(format!("{who}: memoryLimitMiB must be at least 64"));
        return None;
    }
    let icon = match &a.icon {
        None => None,
        Some(rel) => {
            let path = base.parent().unwrap_or(Path::new("/")).join(rel);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => Some(path),
                Ok(_) => {
                    problems.push(format!("{who}: icon: {} is not a file", path.display()));
                    return None;
                }
                Err(e) => {
                    problems.push(format!("{who}: icon: {}: {e}", path.display()));
                    return None;
                }
            }
        }
    };
    if a.cpu_limit_percent.is_some_and(|c| !(5..=800).contains(&c)) {
        problems.push(format!("{who}: cpuLimitPercent must be between 5 and 800"));
        return None;
    }
    let process = check_process(who, &a, native.is_some(), problems)?;
    let title = a.title.clone().filter(|t| !t.trim().is_empty()).unwrap_or_else(|| a.app_id.clone());
    // The app as an appd record, checked by the directory's own rules.
    let record = serde_json::json!([{
        "appId": a.app_id, "title": title, "description": a.description, "type": "web",
        "details": { "url": "https://local.invalid/" }, "interop": a.interop,
    }]);
    let record = match broker::fdc3::Directory::parse(&record.to_string()) {
        Ok((mut good, bad)) => {
            if let Some(p) = bad.first() {
                problems.push(format!("{who}: {}: {}", p.field, p.message));
                return None;
            }
            let Some(mut r) = good.pop() else {
                problems.push(format!("{who}: not a usable app record"));
                return None;
            };
            if native.is_none() {
                r.url = Some(url.clone());
            } else {
                r.kind = "native".to_owned();
            }
            r
        }
        Err(e) => {
            problems.push(format!("{who}: {e}"));
            return None;
        }
    };
    let mut permissions = Vec::new();
    for text in &a.permissions {
        match text.parse::<policy::Permission>() {
            Ok(p) => permissions.push(p),
            Err(e) => problems.push(format!("{who}: permissions: {e}")),
        }
    }
    // The policy goes in an HTTP header: one line of visible ASCII. It can only be applied
    // to the files Tessera serves itself.
    if let Some(csp) = &a.csp {
        if csp.trim().is_empty() || !csp.bytes().all(|b| (0x20..0x7f).contains(&b)) || csp.len() > 4096 {
            problems.push(format!("{who}: csp: must be one line of printable ASCII, at most 4096 bytes"));
            return None;
        }
        if content_root.is_none() {
            problems.push(format!(
                "{who}: csp: only local apps (a relative url) can be given one; a web server sets its own"
            ));
            return None;
        }
    }
    let app = App {
        csp: a.csp.clone(),
        permissions,
        title,
        description: a.description,
        icon,
        app_id: a.app_id,
        url,
        content_root,
        origins,
        memory_limit_bytes: a.memory_limit_mib.map(|m| m << 20),
        cpu_limit_percent: a.cpu_limit_percent,
        source: None,
        native,
        process,
    };
    Some((app, record))
}

/// A web app's `processGroup` / `ownProcess`: a group's name is 1–64 letters, digits, `-`,
/// `_` or `.` (it names a directory in the profile), not starting with `.`.
fn check_process(who: &str, a: &RawApp, native: bool, problems: &mut Vec<String>) -> Option<Process> {
    let named = policy::processes::is_group_name;
    match (&a.process_group, a.own_process) {
        (Some(_), _) | (None, true) if native => {
            problems
                .push(format!("{who}: processGroup and ownProcess are for web apps (a native app is its own process)"));
            None
        }
        (Some(_), true) => {
            problems.push(format!("{who}: processGroup and ownProcess: an app is in a group or alone, not both"));
            None
        }
        (Some(n), false) if !named(n) => {
            problems.push(format!(
                "{who}: processGroup: {n:?} is not a group name (1-64 letters, digits, '-', '_' or '.')"
            ));
            None
        }
        (Some(n), false) => Some(Process::Group(n.clone())),
        (None, true) => Some(Process::Alone),
        (None, false) => Some(Process::ByTrust),
    }
}

/// A web app's start URL, content root (a local app) and the origins it may navigate to.
fn check_web(
    who: &str,
    a: &RawApp,
    base: &Path,
    problems: &mut Vec<String>,
) -> Option<(String, Option<PathBuf>, Origins)> {
    let Some(url) = a.url.as_deref() else {
        problems.push(format!("{who}: url: missing (a web app needs one; a native app says \"type\": \"native\")"));
        return None;
    };
    let (url, content_root) = match resolve(&a.app_id, url, base) {
        Ok(u) => u,
        Err(e) => {
            problems.push(format!("{who}: url: {e}"));
            return None;
        }
    };
    let origins = match Origins::of(&url) {
        Ok(o) => o,
        Err(e) => {
            problems.push(format!("{who}: url: {e}"));
            return None;
        }
    };
    let origins = match origins.with_allowed(&a.origins) {
        Ok(o) => o,
        Err(e) => {
            problems.push(format!("{who}: origins: {e}"));
            return None;
        }
    };
    Some((url, content_root, origins))
}

/// A native app's launch: its executable (absolute, or relative to the manifest's folder and
/// inside it) must be an executable file; its environment may not set what the shell sets.
fn check_native(who: &str, a: &RawApp, base: &Path, problems: &mut Vec<String>) -> Option<NativeLaunch> {
    use std::os::unix::fs::PermissionsExt;
    if a.url.is_some() || a.csp.is_some() || !a.origins.is_empty() {
        problems.push(format!("{who}: a native app has no url, csp or origins"));
        return None;
    }
    let Some(path) = a.path.as_deref() else {
        // Started elsewhere: nothing to run, nothing to give it.
        if !a.args.is_empty() || !a.env.is_empty() {
            problems.push(format!("{who}: args and env need a path (the executable the shell runs)"));
            return None;
        }
        return Some(NativeLaunch { program: None, args: Vec::new(), env: Vec::new() });
    };
    if path.is_empty() {
        problems.push(format!("{who}: path: empty (the native app's executable)"));
        return None;
    }
    let folder = base.parent().unwrap_or(Path::new("/"));
    let program = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        let folder = match folder.canonicalize() {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("{who}: path: {}: {e}", folder.display()));
                return None;
            }
        };
        match folder.join(path).canonicalize() {
            Ok(p) if p.starts_with(&folder) => p,
            Ok(_) => {
                problems.push(format!(
                    "{who}: path: {} leads outside the manifest's folder {}",
                    crate::quote::quote(path),
                    folder.display()
                ));
                return None;
            }
            Err(e) => {
                problems.push(format!("{who}: path: {}: {e}", folder.join(path).display()));
                return None;
            }
        }
    };
    match std::fs::metadata(&program) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => {
            problems.push(format!("{who}: path: {} is not an executable file", program.display()));
            return None;
        }
        Err(e) => {
            problems.push(format!("{who}: path: {}: {e}", program.display()));
            return None;
        }
    }
    let mut env = Vec::new();
    for (k, v) in &a.env {
        let name_ok = !k.is_empty()
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !k.as_bytes()[0].is_ascii_digit();
        if !name_ok || k.starts_with("TESSERA_") || v.contains('\0') {
            problems.push(format!(
                "{who}: env: {} is not a variable an app may set (letters, digits and '_'; not TESSERA_*)",
                crate::quote::quote(k)
            ));
            return None;
        }
        env.push((k.clone(), v.clone()));
    }
    if a.args.iter().any(|arg| arg.contains('\0')) {
        problems.push(format!("{who}: args: an argument holds a NUL byte"));
        return None;
    }
    Some(NativeLaunch { program: Some(program), args: a.args.clone(), env })
}

/// The manifest's own admin policy (for a desk without a policy file), checked.
fn manifest_policy(v: serde_json::Value, problems: &mut Vec<String>) -> Option<policy::AdminPolicy> {
    match serde_json::from_value::<policy::PolicyFile>(v) {
        Ok(file) => match policy::AdminPolicy::from_file(&file) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.extend(e.problems.iter().map(|p| format!("policy: {p}")));
                None
            }
        },
        Err(e) => {
            problems.push(format!("policy: {e}"));
            None
        }
    }
}

/// The start URL, and for a local app its content root: `http(s)://` as given, or a relative
/// path to a file inside the manifest's folder; anything else is refused.
fn resolve(app_id: &str, url: &str, base: &Path) -> Result<(String, Option<PathBuf>), String> {
    let shown = || crate::quote::quote(url);
    match policy::app_url(url) {
        Ok(policy::AppUrl::Remote(url)) => return Ok((url, None)),
        Ok(policy::AppUrl::Local(_)) => {}
        Err(why) => return Err(format!("{} {why}", shown())),
    }
    let folder = base.parent().unwrap_or(Path::new("/"));
    let folder = folder.canonicalize().map_err(|e| format!("{}: {e}", folder.display()))?;
    let local = folder.join(url);
    let path = local.canonicalize().map_err(|e| format!("{}: {e}", local.display()))?;
    if !path.starts_with(&folder) {
        return Err(format!("{} leads outside the manifest's folder {}", shown(), folder.display()));
    }
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
