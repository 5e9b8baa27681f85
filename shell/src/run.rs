//! `tessera run`: the shell itself. The main thread runs the window (compositor); a tokio runtime
//! runs the broker's connections, the supervisor and the control socket. The wiring between
//! them is here: window events become supervisor calls, supervisor state becomes tiles.

mod ctl_server;
mod directories;
mod fdc3;
mod launch;
mod permissions;
mod ui;
mod updates;
mod workspace;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use broker::{AppId, Broker, BrokerConfig};
use compositor::{Command as UiCommand, Compositor, Handle, UiEvent};
use parking_lot::Mutex;
use serde_json::json;
use shell::host::supervisor::{RestartPolicy, Supervisor};
use shell::manifest::{self, Manifest};
use storage::audit::AuditEntry;
use storage::{Journal, JournalConfig, Profile};
use tokio::net::{UnixListener, UnixStream};

use self::ctl_server::{screenshot_to, serve_ctl};
use self::directories::refresh_directories;
use self::launch::start_desk;
use self::ui::{push_grants, push_tiles, tiles, window_events};
use crate::cli::RunArgs;
use crate::profile::run_epoch;

/// What the shell's tasks share.
struct Shell {
    broker: Broker,
    supervisor: Supervisor,
    /// The manifest, with the apps of its App Directories (which a refresh may change).
    manifest: parking_lot::RwLock<Manifest>,
    profile_dir: PathBuf,
    profile: Profile,
    host: PathBuf,
    ui: Handle,
    /// The main window's X11 id, once it is up.
    window: tokio::sync::watch::Sender<Option<u32>>,
    /// Every shell window's X11 id, by window number.
    windows: Mutex<HashMap<compositor::WindowNo, u32>>,
    quit: tokio::sync::watch::Sender<bool>,
    /// Each instance's user channel (1 to 8).
    channels: Mutex<HashMap<u64, u8>>,
    /// When each app was last launched (ms since the epoch), for the launcher.
    recent: Mutex<HashMap<String, u64>>,
    /// Something the session is made of changed: save it soon.
    dirty: Arc<tokio::sync::Notify>,
    /// The start-up desk is up (before that, nothing is autosaved).
    restored: tokio::sync::watch::Sender<bool>,
    /// The manifest's desk for a first start.
    first_desk: Option<workspace::Workspace>,
    /// Makes state file names unique.
    next_state: std::sync::atomic::AtomicU64,
    /// The FDC3 Desktop Agent.
    agent: Mutex<broker::fdc3::Agent>,
    /// The shell's own broker client, which journals FDC3 broadcasts and intents.
    journal_client: Arc<broker::Client>,
    /// What apps may do.
    permissions: Arc<permissions::Permissions>,
}

/// Where IT puts the admin policy on a desk.
const SYSTEM_POLICY: &str = "/etc/tessera/policy.json";

/// The admin policy in force, and the file to watch for changes: `--policy`, else the system
/// file, else the manifest's `policy`, else an empty policy (the user and the manifests decide).
fn admin_policy(
    file: Option<(policy::AdminPolicy, PathBuf)>,
    manifest: &Manifest,
) -> (policy::AdminPolicy, Option<PathBuf>) {
    match file {
        Some((policy, path)) => (policy, Some(path)),
        None => (manifest.policy.clone().unwrap_or_default(), None),
    }
}

/// Where IT says which keys must sign the policy file.
const SYSTEM_POLICY_TRUST: &str = "/etc/tessera/policy-trust.json";

/// The keys the policy file must be signed with (`--policy-trust`, else the system file), if any.
fn policy_trust(args: &RunArgs) -> Result<Option<policy::signing::Checker>> {
    let Some(path) =
        args.policy_trust.clone().or_else(|| Some(PathBuf::from(SYSTEM_POLICY_TRUST)).filter(|p| p.is_file()))
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let rules: policy::signing::SigningRules =
        serde_json::from_str(&text).with_context(|| format!("{}: not signing rules", path.display()))?;
    Ok(Some(policy::signing::Checker::new(&rules).with_context(|| format!("in {}", path.display()))?))
}

/// The policy file IT gave (`--policy`, else the system file), read and checked (its signature
/// first, if IT requires one).
fn policy_file(
    args: &RunArgs,
    trust: Option<&policy::signing::Checker>,
) -> Result<Option<(policy::AdminPolicy, PathBuf)>> {
    let Some(path) = args.policy.clone().or_else(|| Some(PathBuf::from(SYSTEM_POLICY)).filter(|p| p.is_file())) else {
        return Ok(None);
    };
    let policy = policy::load_file(&path, trust).context("the admin policy")?;
    tracing::info!(path = %path.display(), "admin policy loaded");
    Ok(Some((policy, path)))
}

/// Where the highest version seen of each signed app is kept, against downgrades.
const SEEN_VERSIONS: &str = "appd.seen_versions";

/// The profile's audit log, whose signing key is in the vault; without a usable keyring the
/// shell still runs, and says loudly that nothing is being recorded.
fn audit_log(args: &RunArgs, profile: &Profile) -> Option<Arc<storage::audit::AuditLog>> {
    let kind = match args.keyring {
        crate::cli::KeyringArg::SecretService => storage::KeyringKind::SecretService,
        crate::cli::KeyringArg::Keyutils => storage::KeyringKind::Keyutils,
    };
    let opened = storage::key_source(args.key_file.as_deref(), kind)
        .map_err(anyhow::Error::from)
        .and_then(|keys| storage::Vault::open(profile, keys).map_err(anyhow::Error::from))
        .and_then(|vault| {
            storage::audit::AuditLog::open(profile, &vault, storage::audit::AuditConfig::default())
                .map_err(anyhow::Error::from)
        });
    match opened {
        Ok(log) => Some(Arc::new(log)),
        Err(e) => {
            tracing::error!("the audit log cannot be opened; permission decisions are NOT being recorded: {e:#}");
            None
        }
    }
}

/// What the permission service needs to know of each app.
fn app_facts(manifest: &Manifest) -> HashMap<String, permissions::AppFacts> {
    manifest
        .apps
        .iter()
        .map(|a| {
            let origin = url::Url::parse(&a.url).map(|u| match u.scheme() {
                "tessera" => format!("tessera://{}", u.host_str().unwrap_or_default()),
                _ => u.origin().ascii_serialization(),
            });
            (
                a.app_id.clone(),
                permissions::AppFacts {
                    title: a.title.clone(),
                    origin: origin.unwrap_or_default(),
                    declared: a.permissions.clone(),
                },
            )
        })
        .collect()
}

/// How long an App Directory server has to answer.
const APPD_TIMEOUT: Duration = Duration::from_secs(10);

/// Key of the launcher's "recently used" times in the profile's settings.
const RECENT: &str = "launcher.recent";

/// Finds the demo desk's manifest: beside an installed binary, or in the source tree.
fn demo_manifest() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the tessera binary")?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates = [
        dir.join("manifests/demo.json"),
        dir.join("../share/tessera/manifests/demo.json"),
        dir.join("../../manifests/demo.json"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/demo.json"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| format!("the demo manifest is not installed (looked for {})", candidates[0].display()))
}

/// Runs the shell until it is told to quit; `Ok(true)` on a clean exit.
pub(crate) fn run(args: &RunArgs) -> Result<bool> {
    // An installed build with a new build staged or on probation: this process installs it
    // and watches its start instead of running the shell itself.
    if let Some(code) = crate::commands::update::guard(args.policy.as_deref()) {
        return Ok(code == 0);
    }
    let manifest_path = match &args.manifest {
        Some(p) => p.clone(),
        None => demo_manifest()?,
    };
    let profile_path = crate::profile::dir(&args.profile)?;
    let profile =
        Profile::open(&profile_path).with_context(|| format!("opening the profile in {}", profile_path.display()))?;
    // The policy file comes first: its signing rules decide whether the manifest and the App
    // Directories' records are acceptable.
    let policy_trust = policy_trust(args)?;
    let policy_from_file = match policy_file(args, policy_trust.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            if format!("{e:#}").contains("signature: ") {
                // Recorded where IT will look, even though the shell stops here.
                if let Some(log) = audit_log(args, &profile) {
                    let _ = log.append(&AuditEntry::now("shell", "policy.reject", &format!("{e:#}"), "refused"));
                }
            }
            return Err(e);
        }
    };
    let trust = manifest::Trust {
        checker: policy_from_file.as_ref().and_then(|(p, _)| p.signing().cloned()),
        seen_versions: profile.setting(SEEN_VERSIONS).ok().flatten().unwrap_or_default(),
        more_directories: !args.app_directories.is_empty(),
    };
    // The audit log opens first: a manifest or record refused for its signature is recorded.
    let audit = audit_log(args, &profile);
    let record = |app: Option<&str>, action: &str, object: &str| {
        if let Some(log) = &audit {
            let entry = AuditEntry::now("shell", action, object, "refused").app(app);
            if let Err(e) = log.append(&entry) {
                tracing::error!("could not write the audit log: {e}");
            }
        }
    };
    let mut manifest = match manifest::load_with(&manifest_path, trust) {
        Ok(m) => m,
        Err(e) => {
            if e.to_string().contains("signature: ") {
                record(None, "signature.refused", &e.to_string());
            }
            return Err(e.into());
        }
    };
    for source in &args.app_directories {
        if source.starts_with("http://") || source.starts_with("https://") {
            manifest.directory_urls.push(source.clone());
        } else {
            let text =
                std::fs::read_to_string(source).with_context(|| format!("reading the App Directory {source}"))?;
            manifest.load_directory(source, &text).with_context(|| format!("the App Directory {source}"))?;
        }
    }
    let appd_cache = profile_path.join("appd");
    for url in manifest.directory_urls.clone() {
        match shell::appd::fetch(&url, &appd_cache, APPD_TIMEOUT) {
            Ok(fetched) => {
                if let Some(why) = &fetched.stale {
                    tracing::warn!(%url, "the App Directory cannot be reached ({why}); using the copy kept from before");
                }
                if let Err(e) = manifest.load_directory(&url, &fetched.text) {
                    tracing::error!(%url, "the App Directory is unusable: {e}");
                }
            }
            Err(e) => tracing::error!("the App Directory is not loaded: {e}"),
        }
    }
    for p in &manifest.directory_problems {
        tracing::warn!("App Directory record skipped: {p}");
        if p.contains("signature: ") {
            let app = p.split("app \"").nth(1).and_then(|rest| rest.split('"').next());
            record(app, "signature.refused", p);
        }
    }
    // Start-up apps from App Directories given on the command line or by URL are known only now.
    let missing: Vec<String> = manifest.startup.iter().filter(|s| manifest.app(s).is_none()).cloned().collect();
    if !missing.is_empty() {
        if args.app_directories.is_empty() && manifest.directory_urls.is_empty() {
            bail!("startup: {missing:?} are not apps of this manifest or its App Directories");
        }
        tracing::error!(
            ?missing,
            "start-up apps not found in the manifest or its App Directories; they are not started"
        );
        manifest.startup.retain(|s| !missing.contains(s));
    }
    if let Err(e) = profile.set_setting(SEEN_VERSIONS, &manifest.trust.seen_versions) {
        tracing::warn!("could not keep the App Directory versions seen: {e}");
    }
    let first_desk = workspace::from_manifest(&manifest).with_context(|| format!("in {}", manifest_path.display()))?;
    let journal = Journal::open(&profile, JournalConfig::default()).context("opening the journal")?;
    let broker = Broker::new(BrokerConfig { epoch: run_epoch(), ..BrokerConfig::default() });
    broker.attach_journal(Arc::new(journal));
    for app in &manifest.apps {
        broker.register_app(AppId::new(&app.app_id));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tessera-rt")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let socket = args.socket.ctl_socket.clone().unwrap_or_else(shell::ctl::default_socket);
    let listener = rt.block_on(async { bind(&socket).await })?;

    let (ui_tx, ui_rx) = flume::bounded::<UiEvent>(1024);
    let (window, handle) = Compositor::new(&manifest.name, args.window_size, ui_tx)?;
    let host = std::env::current_exe().context("locating the tessera binary")?.with_file_name("tessera-app-host");
    let policy = RestartPolicy { memory_limit_bytes: Some(args.memory_limit_mib << 20), ..RestartPolicy::default() };
    let agent = fdc3::agent(&manifest);
    let (admin, policy_file) = admin_policy(policy_from_file, &manifest);
    let update_rules = admin.update().cloned().zip(admin.release_checker());
    let journal_client = Arc::new(broker.connect(None));
    let shell = {
        let _guard = rt.enter();
        Arc::new(Shell {
            supervisor: Supervisor::new(broker.clone(), policy),
            broker,
            manifest: parking_lot::RwLock::new(manifest),
            profile_dir: profile_path,
            recent: Mutex::new(profile.setting::<HashMap<String, u64>>(RECENT).ok().flatten().unwrap_or_default()),
            profile: profile.clone(),
            host,
            ui: handle.clone(),
            window: tokio::sync::watch::channel(None).0,
            windows: Mutex::new(HashMap::new()),
            quit: tokio::sync::watch::channel(false).0,
            channels: Mutex::new(HashMap::new()),
            dirty: Arc::new(tokio::sync::Notify::new()),
            restored: tokio::sync::watch::channel(false).0,
            first_desk,
            next_state: std::sync::atomic::AtomicU64::new(0),
            agent: Mutex::new(agent),
            journal_client,
            permissions: Arc::new(permissions::Permissions::new(
                admin,
                policy_file,
                profile.clone(),
                handle.clone(),
                audit.clone(),
                policy_trust,
            )),
        })
    };
    if !shell.manifest.read().directory_urls.is_empty() {
        rt.spawn(refresh_directories(
            Arc::clone(&shell),
            appd_cache,
            Duration::from_secs(args.app_directory_refresh.max(10)),
        ));
    }
    shell.permissions.set_apps(app_facts(&shell.manifest.read()));
    let policy_from = args.policy.clone().or_else(|| Some(PathBuf::from(SYSTEM_POLICY)).filter(|p| p.is_file()));
    shell.permissions.record(
        "admin-policy",
        None,
        "policy.load",
        &policy_from.map_or_else(|| "the manifest".to_owned(), |p| p.display().to_string()),
        "ok",
        json!({ "at": "start-up" }),
    );
    shell.supervisor.set_gate(Arc::clone(&shell.permissions) as Arc<dyn shell::host::gate::Gate>);
    rt.spawn(permissions::watch(Arc::clone(&shell.permissions)));
    let app_events = shell.supervisor.set_app_events();
    rt.spawn(fdc3::run(Arc::clone(&shell), app_events));
    rt.spawn(window_events(Arc::clone(&shell), ui_rx));
    rt.spawn(tiles(Arc::clone(&shell)));
    rt.spawn(workspace::autosave(Arc::clone(&shell), Arc::clone(&shell.dirty)));
    rt.spawn(serve_ctl(Arc::clone(&shell), listener));
    rt.spawn(quit_on_signal(Arc::clone(&shell)));
    if let Some(install) = update::install::Install::locate() {
        rt.spawn(updates::run(Arc::clone(&shell), install, update_rules));
    }
    {
        // Expiry of timed-out calls, TTLs and offline queues.
        let broker = shell.broker.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                broker.sweep();
            }
        });
    }
    if let Some(secs) = args.exit_after {
        let shell = Arc::clone(&shell);
        let screenshot = args.screenshot.clone();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
            if let Some(path) = screenshot {
                match screenshot_to(&shell, &path, None).await {
                    Ok(v) => tracing::info!(%v, "screenshot saved"),
                    Err(e) => tracing::error!("screenshot failed: {e:#}"),
                }
            }
            let _ = shell.quit.send(true);
        });
    }
    {
        let mut quit = shell.quit.subscribe();
        let handle: Handle = handle.clone();
        rt.spawn(async move {
            let _ = quit.wait_for(|q| *q).await;
            handle.send(UiCommand::Quit);
        });
    }

    let result = window.run();
    rt.block_on(shell.supervisor.shutdown());
    drop(profile);
    let _ = std::fs::remove_file(&socket);
    // A blocking task still at work (an update check waiting on the network) does not hold up
    // the exit.
    rt.shutdown_timeout(Duration::from_secs(3));
    result?;
    Ok(true)
}

/// Binds the control socket: its directory 0700, the socket 0600, and a stale socket from a
/// shell that died replaced (a live one is an error).
async fn bind(path: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!("another shell is already listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

async fn quit_on_signal(shell: Arc<Shell>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("could not listen for SIGTERM and SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received; shutting down");
    let _ = shell.quit.send(true);
}
