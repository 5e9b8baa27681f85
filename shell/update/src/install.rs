//! The updater's install side: an install root holding several builds, the download and
//! verification of a release archive, the atomic swap to a new build, its health probation,
//! and the rollback.
//!
//! An install root looks like this (the `.deb` lays out the first build the same way):
//!
//! ```text
//! ROOT/bin/tessera -> ../current/bin/tessera      what users and the desktop entry start
//! ROOT/current     -> releases/1.4.0              the swap point (a symlink, replaced by rename)
//! ROOT/previous    -> releases/1.3.0              kept for rollback
//! ROOT/releases/V/{bin/tessera, bin/tessera-app-host, share/tessera/..., release.json}
//! ROOT/update/state.json                          what the updater remembers (written atomically)
//! ROOT/update/events.jsonl                        every update event, for the audit log
//! ROOT/update/progress.json                       the running download's progress
//! ROOT/update/healthy-V                           written by build V on probation once healthy
//! ROOT/update/downloads/                          partial downloads (never left behind)
//! ```
//!
//! A release goes through these steps, each durable before the next (a crash at any point
//! leaves either the old build or the new one, never a mix):
//! 1. download to `downloads/NAME.part`, counting and hashing; refuse more bytes than the feed
//!    declared; check size and SHA-256, then the archive's zipsign signature (ed25519, bound to
//!    the archive's file name) against the admin policy's trusted, unrevoked keys;
//! 2. unpack into `releases/.V.partial`, fsync every file and directory, rename to
//!    `releases/V`, fsync `releases/`; record `staged: V`;
//! 3. on the next start: record the probation (`V`, the proven build, attempts 0). `current`
//!    does not move: `bin/tessera` keeps starting the proven build, which acts as the guard;
//! 4. the guard runs `releases/V/bin/tessera` as its child. Once that reports a healthy start
//!    (the marker `update/healthy-V`), `previous` and `current` are swapped (a new symlink
//!    renamed over the old, then an fsync of the root) and the probation ends. If it does not
//!    within the health timeout, or fails the allowed number of starts, the guard gives it up
//!    (it is refused from then on) and runs the proven build itself.
//!
//! Every step takes `update/lock` (an advisory file lock), and every entry point first
//! settles what an interrupted step left: partial files are removed and a recorded swap or
//! rollback is finished.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::feed::Feed;

/// The largest release archive accepted, whatever a feed says (2 GiB).
pub const MAX_ARCHIVE: u64 = 2 << 30;

/// Why an update step failed. Each names what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// A file or directory of the install could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The running build is not part of an install root.
    #[error("not an installed build: {0}")]
    NotInstalled(String),
    /// The feed could not be fetched.
    #[error("the feed at {url}: {why}")]
    Fetch {
        /// The feed's URL.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// The release archive could not be downloaded whole.
    #[error("downloading {url}: {why}")]
    Download {
        /// The archive's URL.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// The downloaded archive is not the one the feed describes, or not signed by a trusted key.
    #[error("the archive {name}: {why}")]
    Verify {
        /// The archive's file name.
        name: String,
        /// What does not match.
        why: String,
    },
    /// The archive's content is not a release.
    #[error("the archive {name} is not a Tessera release: {why}")]
    Content {
        /// The archive's file name.
        name: String,
        /// What is missing or wrong.
        why: String,
    },
    /// The updater's state file does not parse.
    #[error("{}: {why} (move it away to start afresh)", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Nothing to roll back to, or nothing staged.
    #[error("{0}")]
    Nothing(String),
    /// Another updater holds the install.
    #[error("another update is under way ({} is locked); try again when it is done", path.display())]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// The admin policy cannot be read, so nothing is installed at start-up.
    #[error("the admin policy cannot be read, so nothing is installed: {0}")]
    Policy(String),
}

type Result<T, E = UpdateError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UpdateError + '_ {
    move |source| UpdateError::Io { path: path.to_owned(), source }
}

/// A build on probation: installed, not yet proven to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probation {
    /// The new build's version.
    pub version: String,
    /// The build to go back to.
    pub previous: String,
    /// Starts tried so far (each counted before it begins, so a crash or a kill counts).
    pub attempts: u32,
    /// When it was installed (RFC 3339).
    pub since: String,
}

/// A rollback recorded before `current` is moved, so an interrupted one is finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    /// The build being left.
    pub from: String,
    /// The build going back to.
    pub to: String,
    /// Why.
    pub reason: String,
}

/// The last update that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The version concerned.
    pub version: Option<String>,
    /// What went wrong.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// What the updater remembers across restarts (`update/state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct State {
    /// Per channel, the issue time of the newest valid feed seen; an older feed is a replay.
    pub newest_feed: BTreeMap<String, String>,
    /// A version unpacked and verified in `releases/`, installed at the next start.
    pub staged: Option<String>,
    /// The build on probation.
    pub probation: Option<Probation>,
    /// A rollback under way.
    pub rollback: Option<Rollback>,
    /// Versions that failed their health check or were rolled back: not installed again.
    pub refused: Vec<String>,
    /// The last failure.
    pub last_failure: Option<Failure>,
    /// The last check: when, and what came of it.
    pub last_check: Option<String>,
    /// When the last check ran (RFC 3339).
    pub last_check_at: Option<String>,
}

/// A download's progress, as `update/progress.json` and the shell's progress bar show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Bytes received.
    pub received: u64,
    /// Bytes expected.
    pub total: u64,
}

/// How a caller follows a download: progress reports (a few a second) and a flag that stops
/// it (the shell is quitting); a stopped download leaves nothing behind.
#[derive(Clone)]
pub struct Watch {
    /// Called with the bytes received so far.
    pub progress: std::sync::Arc<dyn Fn(Progress) + Send + Sync>,
    /// Set to stop the download.
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("cancel", &self.cancel).finish_non_exhaustive()
    }
}

impl Default for Watch {
    fn default() -> Self {
        Self { progress: std::sync::Arc::new(|_| {}), cancel: std::sync::Arc::default() }
    }
}

/// What a release archive carries about itself (`release.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseInfo {
    /// Its version.
    pub version: String,
    /// When it was packed (RFC 3339).
    #[serde(default)]
    pub built_at: String,
}

/// The name of a release archive for `version`.
pub fn archive_name(version: &str) -> String {
    format!("tessera-{version}-linux-{}.tar.gz", std::env::consts::ARCH)
}

/// Accepts versions made of ASCII letters, digits, dots, dashes, pluses and underscores; they
/// become directory names.
pub fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && !v.starts_with('.')
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

/// Now, RFC 3339 UTC.
pub fn now() -> String {
    broker::Timestamp::now().to_rfc3339()
}

/// For crash tests: `TESSERA_FAILPOINT=<name>` kills this process with SIGKILL when it reaches
/// the step called `name` (the names are in this file; nothing else reads the variable). With
/// `TESSERA_FAILPOINT_ONCE=<file>` as well, only the first process to get there dies (it
/// creates the file), so a restarted process can go on.
pub fn failpoint(name: &str) {
    if std::env::var("TESSERA_FAILPOINT").is_ok_and(|f| f == name) {
        if let Some(once) = std::env::var_os("TESSERA_FAILPOINT_ONCE")
            && OpenOptions::new().write(true).create_new(true).open(&once).is_err()
        {
            return;
        }
        tracing::warn!(name, "failpoint reached: killing this process");
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

/// Makes `path` durable: its content and its metadata.
fn fsync(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(io_err(path))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    fsync(dir)
}

/// An install root.
#[derive(Debug, Clone)]
pub struct Install {
    root: PathBuf,
}

/// Held while the updater changes the install; dropped, it lets go.
#[derive(Debug)]
pub struct Lock(#[expect(dead_code, reason = "held for its file lock")] File);

impl Install {
    /// The install root of the running build: `TESSERA_INSTALL_ROOT`, else found from the
    /// binary's own path (`ROOT/releases/V/bin/tessera`). `None` for a build run from a source
    /// tree or a package manager's files.
    pub fn locate() -> Option<Self> {
        if let Some(root) = std::env::var_os("TESSERA_INSTALL_ROOT") {
            return Some(Self { root: PathBuf::from(root) });
        }
        let exe = std::env::current_exe().ok()?;
        let release = exe.parent()?.parent()?;
        let releases = release.parent()?;
        if releases.file_name()? != "releases" {
            return None;
        }
        let root = releases.parent()?;
        root.join("current").is_symlink().then(|| Self { root: root.to_owned() })
    }

    /// The install root at `root`, which must hold a `current` build.
    pub fn at(root: &Path) -> Result<Self> {
        let install = Self { root: root.to_owned() };
        install.current()?;
        Ok(install)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where build `version` lives.
    pub fn release_dir(&self, version: &str) -> PathBuf {
        self.root.join("releases").join(version)
    }

    fn update_dir(&self) -> PathBuf {
        self.root.join("update")
    }

    /// The state file.
    pub fn state_path(&self) -> PathBuf {
        self.update_dir().join("state.json")
    }

    /// The download progress file.
    pub fn progress_path(&self) -> PathBuf {
        self.update_dir().join("progress.json")
    }

    /// The update event log.
    pub fn events_path(&self) -> PathBuf {
        self.update_dir().join("events.jsonl")
    }

    fn link_target(&self, link: &str) -> Option<String> {
        let target = fs::read_link(self.root.join(link)).ok()?;
        let name = target.file_name()?.to_str()?.to_owned();
        valid_version(&name).then_some(name)
    }

    /// The version `current` points at.
    pub fn current(&self) -> Result<String> {
        self.link_target("current").ok_or_else(|| {
            UpdateError::NotInstalled(format!(
                "{} is not a symlink to releases/<version>",
                self.root.join("current").display()
            ))
        })
    }

    /// The version `previous` points at, if any.
    pub fn previous(&self) -> Option<String> {
        self.link_target("previous").filter(|v| self.release_dir(v).join("bin/tessera").is_file())
    }

    /// The `tessera` binary of the current build.
    pub fn current_binary(&self) -> Result<PathBuf> {
        Ok(self.release_dir(&self.current()?).join("bin/tessera"))
    }

    /// Takes the update lock, waiting for another updater to finish.
    pub fn lock(&self) -> Result<Lock> {
        let dir = self.update_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join("lock");
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(Lock(file))
    }

    /// Takes the update lock, or says another updater has it.
    pub fn lock_now(&self) -> Result<Lock> {
        self.try_lock()?.ok_or_else(|| UpdateError::Busy { path: self.update_dir().join("lock") })
    }

    /// Takes the update lock if no one holds it.
    pub fn try_lock(&self) -> Result<Option<Lock>> {
        let dir = self.update_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join("lock");
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock(file))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(UpdateError::Io { path, source: e }),
        }
    }

    /// The state (defaults when there is none yet).
    pub fn state(&self) -> Result<State> {
        let path = self.state_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| UpdateError::State { path, why: e.to_string() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(UpdateError::Io { path, source: e }),
        }
    }

    /// Stores the state atomically. Call with the lock held.
    pub fn save_state(&self, state: &State) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| UpdateError::State { path: self.state_path(), why: e.to_string() })?;
        write_atomic(&self.state_path(), &bytes)
    }

    /// Appends an update event (for the audit log) and logs it.
    pub fn event(&self, action: &str, version: Option<&str>, outcome: &str, details: serde_json::Value) {
        tracing::info!(action, version, outcome, %details, "update event");
        let mut line = serde_json::json!({ "time": now(), "action": action, "version": version, "outcome": outcome });
        line["details"] = details;
        let path = self.events_path();
        let written = fs::create_dir_all(self.update_dir())
            .and_then(|()| OpenOptions::new().create(true).append(true).open(&path))
            .and_then(|mut f| {
                f.write_all(format!("{line}\n").as_bytes())?;
                f.sync_data()
            });
        if let Err(e) = written {
            tracing::error!(path = %path.display(), "could not record an update event: {e}");
        }
    }

    /// Points `link` (`current` or `previous`) at `releases/version`, atomically.
    fn point(&self, link: &str, version: &str) -> Result<()> {
        let tmp = self.root.join(format!(".{link}.tmp"));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(Path::new("releases").join(version), &tmp).map_err(io_err(&tmp))?;
        fs::rename(&tmp, self.root.join(link)).map_err(io_err(&self.root.join(link)))?;
        fsync(&self.root)
    }

    /// Finishes what an interrupted step left (call with the lock held): partial downloads,
    /// unpacks, links and progress files are removed; a recorded rollback, or the swap of a
    /// build that reported its healthy start, is carried through; builds that are neither
    /// current, previous, staged, on probation nor running here are deleted. Returns what was
    /// removed.
    pub fn settle(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let mut state = self.state()?;
        if let Some(r) = state.rollback.clone() {
            if self.release_dir(&r.to).join("bin/tessera").is_file() {
                self.point("current", &r.to)?;
            }
            let _ = fs::remove_file(self.root.join("previous"));
            fsync(&self.root)?;
            state.rollback = None;
            self.save_state(&state)?;
        }
        if let Some(p) = state.probation.clone() {
            if !self.release_dir(&p.version).join("bin/tessera").is_file() {
                state.probation = None;
                self.save_state(&state)?;
            } else if self.healthy_marker(&p.version).exists() {
                self.finish_probation(&mut state)?;
            }
        }
        if let Some(v) = state.staged.clone()
            && !self.release_dir(&v).join("release.json").is_file()
        {
            state.staged = None;
            self.save_state(&state)?;
        }
        for stale in [self.root.join(".current.tmp"), self.root.join(".previous.tmp"), self.progress_path()] {
            if (stale.is_symlink() || stale.exists()) && fs::remove_file(&stale).is_ok() {
                removed.push(stale);
            }
        }
        let downloads = self.update_dir().join("downloads");
        if let Ok(entries) = fs::read_dir(&downloads) {
            for e in entries.flatten() {
                if fs::remove_file(e.path()).is_ok() {
                    removed.push(e.path());
                }
            }
        }
        // The build this process runs from is kept too: its app hosts and assets are in it.
        let running = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent()?.parent()?.file_name().map(|n| n.to_string_lossy().into_owned()));
        let keep: Vec<String> = [
            self.current().ok(),
            self.previous(),
            state.staged.clone(),
            state.probation.as_ref().map(|p| p.version.clone()),
            state.probation.as_ref().map(|p| p.previous.clone()),
            running,
        ]
        .into_iter()
        .flatten()
        .collect();
        let releases = self.root.join("releases");
        if let Ok(entries) = fs::read_dir(&releases) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep.contains(&name) && fs::remove_dir_all(e.path()).is_ok() {
                    removed.push(e.path());
                }
            }
        }
        let markers = self.update_dir();
        if let Ok(entries) = fs::read_dir(&markers) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let live = state.probation.as_ref().is_some_and(|p| name == format!("healthy-{}", p.version));
                if name.starts_with("healthy-") && !live && fs::remove_file(e.path()).is_ok() {
                    removed.push(e.path());
                }
            }
        }
        if !removed.is_empty() {
            fsync(&releases).ok();
            tracing::info!(?removed, "left-overs of an earlier update removed");
        }
        Ok(removed)
    }

    /// Downloads the archive `feed` describes, checks it and unpacks it beside the current
    /// build, ready for the next start. `keys` are the trusted, unrevoked ed25519 keys.
    /// Nothing partial is left behind on any failure. Call with the lock held.
    pub fn stage(&self, feed: &Feed, keys: &[[u8; 32]], timeout: Duration, watch: &Watch) -> Result<String> {
        if !valid_version(&feed.version) {
            return Err(UpdateError::Content {
                name: feed.url.clone(),
                why: format!("version {:?} cannot be a directory name", feed.version),
            });
        }
        if feed.size > MAX_ARCHIVE {
            return Err(UpdateError::Verify {
                name: feed.url.clone(),
                why: format!("the feed declares {} bytes, more than the {MAX_ARCHIVE} accepted", feed.size),
            });
        }
        let name = url::Url::parse(&feed.url)
            .ok()
            .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_owned)))
            .filter(|n| n.ends_with(".tar.gz") && !n.starts_with('.') && !n.contains('/'))
            .ok_or_else(|| UpdateError::Download {
                url: feed.url.clone(),
                why: "the URL does not end in an archive's file name (NAME.tar.gz)".into(),
            })?;
        let downloads = self.update_dir().join("downloads");
        fs::create_dir_all(&downloads).map_err(io_err(&downloads))?;
        let part = downloads.join(format!("{name}.part"));
        let result = self.download_and_unpack(feed, keys, timeout, watch, &name, &part);
        let _ = fs::remove_file(&part);
        let _ = fs::remove_file(self.progress_path());
        result
    }

    fn download_and_unpack(
        &self,
        feed: &Feed,
        keys: &[[u8; 32]],
        timeout: Duration,
        watch: &Watch,
        name: &str,
        part: &Path,
    ) -> Result<String> {
        let file =
            OpenOptions::new().create(true).truncate(true).read(true).write(true).open(part).map_err(io_err(part))?;
        let mut sink = Sink {
            file,
            hasher: Sha256::new(),
            written: 0,
            limit: feed.size,
            path: part.to_owned(),
            cancel: std::sync::Arc::clone(&watch.cancel),
        };
        let progress_file = self.progress_path();
        let last = std::sync::Mutex::new(std::time::Instant::now());
        let total = feed.size;
        (watch.progress)(Progress { received: 0, total });
        let fetched = self_update::Download::from_url(&feed.url)
            .timeout(timeout)
            .max_download_size(feed.size)
            .progress_callback({
                let progress = std::sync::Arc::clone(&watch.progress);
                move |received, _| {
                    let Ok(mut last) = last.lock() else { return };
                    // A few reports a second are plenty for a bar and a status file.
                    if last.elapsed() >= Duration::from_millis(200) || received == total {
                        *last = std::time::Instant::now();
                        let p = Progress { received, total };
                        let _ = serde_json::to_vec(&p).map(|b| fs::write(&progress_file, b));
                        progress(p);
                    }
                }
            })
            .download_to(&mut sink);
        (watch.progress)(Progress { received: sink.written, total });
        if let Err(e) = fetched {
            return Err(UpdateError::Download { url: feed.url.clone(), why: sink_error(&e, part) });
        }
        failpoint("download-written");
        if sink.written != feed.size {
            return Err(UpdateError::Verify {
                name: name.to_owned(),
                why: format!("{} bytes received, the feed declares {} (a cut download?)", sink.written, feed.size),
            });
        }
        let digest: String = sink.hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if digest != feed.sha256 {
            return Err(UpdateError::Verify {
                name: name.to_owned(),
                why: format!("its SHA-256 is {digest}, the feed says {}", feed.sha256),
            });
        }
        let mut file = sink.file;
        file.sync_all().map_err(io_err(part))?;
        verify_signature(&mut file, name, keys)?;
        self.event(
            "update.verify",
            Some(&feed.version),
            "ok",
            serde_json::json!({ "archive": name, "sha256": digest }),
        );
        file.rewind().map_err(io_err(part))?;
        self.unpack(file, name, &feed.version)
    }

    /// Unpacks a verified archive into `releases/VERSION` (through a partial directory) and
    /// records it as staged.
    fn unpack(&self, file: File, name: &str, version: &str) -> Result<String> {
        let releases = self.root.join("releases");
        let partial = releases.join(format!(".{version}.partial"));
        let _ = fs::remove_dir_all(&partial);
        fs::create_dir_all(&partial).map_err(io_err(&partial))?;
        let unpacked = (|| {
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
            archive.set_preserve_permissions(true);
            archive.set_overwrite(false);
            archive.unpack(&partial).map_err(|e| UpdateError::Content { name: name.to_owned(), why: e.to_string() })?;
            let info_path = partial.join("release.json");
            let info: ReleaseInfo =
                fs::read(&info_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| {
                    UpdateError::Content { name: name.to_owned(), why: "no readable release.json".into() }
                })?;
            if info.version != version {
                return Err(UpdateError::Content {
                    name: name.to_owned(),
                    why: format!("it holds version {}, the feed says {version}", info.version),
                });
            }
            for bin in ["bin/tessera", "bin/tessera-app-host"] {
                if !partial.join(bin).is_file() {
                    return Err(UpdateError::Content { name: name.to_owned(), why: format!("no {bin}") });
                }
            }
            sync_tree(&partial)
        })();
        if let Err(e) = unpacked {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
        failpoint("unpacked");
        let dest = self.release_dir(version);
        if dest.exists() {
            fs::remove_dir_all(&dest).map_err(io_err(&dest))?;
        }
        fs::rename(&partial, &dest).map_err(io_err(&dest))?;
        fsync(&releases)?;
        let mut state = self.state()?;
        state.staged = Some(version.to_owned());
        self.save_state(&state)?;
        self.event("update.stage", Some(version), "ok", serde_json::json!({ "archive": name }));
        Ok(version.to_owned())
    }

    /// The marker a build on probation writes once it started healthy.
    pub fn healthy_marker(&self, version: &str) -> PathBuf {
        self.update_dir().join(format!("healthy-{version}"))
    }

    /// Puts the staged build on probation (call with the lock held). `current` does not move:
    /// the proven build stays what `bin/tessera` starts until the new one has started healthy.
    /// Nothing happens while another build is on probation, or for a staged build that is not
    /// newer than the current one or was refused. Returns the probation begun.
    pub fn begin_probation(&self) -> Result<Option<Probation>> {
        let mut state = self.state()?;
        let Some(version) = state.staged.clone() else { return Ok(None) };
        if state.probation.is_some() {
            return Ok(None);
        }
        let current = self.current()?;
        if policy::signing::version_cmp(&version, &current) != std::cmp::Ordering::Greater
            || state.refused.contains(&version)
        {
            tracing::warn!(%version, %current, "the staged build is not newer than the current one, or was refused: dropped");
            state.staged = None;
            self.save_state(&state)?;
            return Ok(None);
        }
        let probation = Probation { version: version.clone(), previous: current.clone(), attempts: 0, since: now() };
        state.staged = None;
        state.probation = Some(probation.clone());
        self.save_state(&state)?;
        failpoint("probation-recorded");
        self.event("update.install", Some(&version), "on probation", serde_json::json!({ "previous": current }));
        Ok(Some(probation))
    }

    /// Called by a build on probation once it started healthy: writes its marker (which is what
    /// the guard watches), then swaps `previous` and `current` and ends the probation.
    pub fn confirm(&self, version: &str) -> Result<bool> {
        match self.state()?.probation {
            Some(p) if p.version == version => {}
            _ => return Ok(false),
        }
        write_atomic(&self.healthy_marker(version), now().as_bytes())?;
        failpoint("healthy-marked");
        let _lock = self.lock()?;
        let mut state = self.state()?;
        Ok(self.finish_probation(&mut state)?.is_some())
    }

    /// The swap (call with the lock held, once the probation's marker exists): `previous` to
    /// the proven build, `current` to the new one, the probation ended. A crash between any two
    /// steps is finished by [`Self::settle`].
    fn finish_probation(&self, state: &mut State) -> Result<Option<String>> {
        let Some(p) = state.probation.clone() else { return Ok(None) };
        if !self.healthy_marker(&p.version).exists() {
            return Ok(None);
        }
        self.point("previous", &p.previous)?;
        failpoint("swap-previous");
        self.point("current", &p.version)?;
        failpoint("swap-current");
        state.probation = None;
        self.save_state(state)?;
        let _ = fs::remove_file(self.healthy_marker(&p.version));
        self.event(
            "update.healthy",
            Some(&p.version),
            "installed",
            serde_json::json!({ "previous": p.previous, "attempts": p.attempts }),
        );
        Ok(Some(p.version))
    }

    /// Gives up on the build on probation (call with the lock held): it is refused from now on,
    /// and `current` is (or stays) the proven build. Returns the version given up, if any.
    pub fn abandon(&self, reason: &str) -> Result<Option<String>> {
        let mut state = self.state()?;
        let Some(p) = state.probation.clone() else { return Ok(None) };
        if self.healthy_marker(&p.version).exists() {
            // It proved itself after all.
            self.finish_probation(&mut state)?;
            return Ok(None);
        }
        if self.current().ok().as_deref() == Some(p.version.as_str()) {
            self.point("current", &p.previous)?;
        }
        state.probation = None;
        if !state.refused.contains(&p.version) {
            state.refused.push(p.version.clone());
        }
        state.last_failure = Some(Failure { version: Some(p.version.clone()), reason: reason.to_owned(), at: now() });
        self.save_state(&state)?;
        self.event(
            "update.rollback",
            Some(&p.version),
            "rolled back",
            serde_json::json!({ "to": p.previous, "reason": reason }),
        );
        Ok(Some(p.version))
    }

    /// Goes back to the previous build (call with the lock held): a build on probation is given
    /// up; otherwise the rollback is recorded, `current` points at the previous build, the
    /// version left is refused and `previous` is dropped. Returns the version now current.
    pub fn rollback(&self, reason: &str) -> Result<String> {
        if self.abandon(reason)?.is_some() {
            return self.current();
        }
        let mut state = self.state()?;
        let from = self.current()?;
        let to =
            self.previous().ok_or_else(|| UpdateError::Nothing("there is no previous build to roll back to".into()))?;
        if to == from {
            return Err(UpdateError::Nothing(format!("{from} is already the running build")));
        }
        state.rollback = Some(Rollback { from: from.clone(), to: to.clone(), reason: reason.to_owned() });
        state.staged = None;
        if !state.refused.contains(&from) {
            state.refused.push(from.clone());
        }
        state.last_failure = Some(Failure { version: Some(from.clone()), reason: reason.to_owned(), at: now() });
        self.save_state(&state)?;
        failpoint("rollback-recorded");
        self.point("current", &to)?;
        let _ = fs::remove_file(self.root.join("previous"));
        fsync(&self.root)?;
        state.rollback = None;
        self.save_state(&state)?;
        self.event("update.rollback", Some(&from), "rolled back", serde_json::json!({ "to": to, "reason": reason }));
        Ok(to)
    }

    /// Records a failure that is not tied to a swap (a refused feed or archive, a failed download).
    pub fn record_failure(&self, version: Option<&str>, reason: &str) -> Result<()> {
        let mut state = self.state()?;
        state.last_failure =
            Some(Failure { version: version.map(str::to_owned), reason: reason.to_owned(), at: now() });
        self.save_state(&state)
    }
}

/// Where a download goes: counts, hashes, and refuses to write past the declared size.
struct Sink {
    file: File,
    hasher: Sha256,
    written: u64,
    limit: u64,
    path: PathBuf,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const TOO_BIG: &str = "the server sent more bytes than the feed declares";
const CANCELLED: &str = "stopped: the shell is quitting";

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len() as u64;
        if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(io::Error::other(CANCELLED));
        }
        if self.written + len > self.limit {
            return Err(io::Error::other(format!("{TOO_BIG} ({} bytes)", self.limit)));
        }
        let n = self.file.write(buf).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// What stopped a download, in words: the sink's own refusal (too many bytes, a full disk, a
/// failed write, the shell quitting) or the connection breaking off.
fn sink_error(e: &self_update::errors::Error, part: &Path) -> String {
    let text = e.to_string();
    if text.contains(TOO_BIG) || text.contains("max_download_size") {
        return TOO_BIG.to_owned();
    }
    if text.contains(CANCELLED) {
        return CANCELLED.to_owned();
    }
    match e {
        self_update::errors::Error::Io(io) if io.kind() == io::ErrorKind::StorageFull => {
            format!("the disk is full: {io}")
        }
        // The sink names its file in its own errors; any other I/O error is the connection's.
        self_update::errors::Error::Io(io) if text.contains(&*part.to_string_lossy()) => {
            format!("writing the download: {io}")
        }
        self_update::errors::Error::Io(io) => format!("the download broke off: {io}"),
        _ => text,
    }
}

/// Checks the archive's zipsign signature: made by one of `keys`, over this file, for the file
/// name `name` (so an archive signed as another file is refused).
pub fn verify_signature(file: &mut File, name: &str, keys: &[[u8; 32]]) -> Result<()> {
    use self_update::zipsign_api::verify::{collect_keys, verify_tar};
    let fail = |why: String| UpdateError::Verify { name: name.to_owned(), why };
    if keys.is_empty() {
        return Err(fail("the admin policy trusts no signing key, so no release can be accepted".into()));
    }
    let keys = collect_keys(keys.iter().copied().map(Ok)).map_err(|e| fail(format!("a trusted key: {e}")))?;
    file.rewind().map_err(|e| fail(e.to_string()))?;
    verify_tar(file, &keys, Some(name.as_bytes())).map_err(|e| {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why = format!("{why}: {s}");
            source = s.source();
        }
        fail(format!("its signature is not acceptable ({why})"))
    })?;
    Ok(())
}

/// fsyncs every file and directory under `dir`, deepest first.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err(&path))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            fsync(&path)?;
        }
    }
    fsync(dir)
}

/// Reads at most `limit` bytes of a feed from `url` (http(s)://, or a file path for IT's tests).
pub fn fetch_feed(url: &str, timeout: Duration) -> Result<String> {
    const LIMIT: u64 = 1 << 20;
    let fail = |why: String| UpdateError::Fetch { url: url.to_owned(), why };
    if !url.starts_with("http://") && !url.starts_with("https://") {
        let path = url.strip_prefix("file://").unwrap_or(url);
        let mut text = String::new();
        File::open(path).and_then(|f| f.take(LIMIT).read_to_string(&mut text)).map_err(|e| fail(e.to_string()))?;
        return Ok(text);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into();
    let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    response.into_body().with_config().limit(LIMIT).read_to_string().map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests;
