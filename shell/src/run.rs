//! `tessera run`: the shell itself. The main thread runs the window (compositor); a tokio runtime
//! runs the broker's connections, the supervisor and the control socket. The wiring between
//! them is here: window events become supervisor calls, supervisor state becomes tiles.

mod fdc3;
mod permissions;
mod updates;
mod workspace;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use broker::wire::Bounds;
use broker::{AppId, Broker, BrokerConfig, MessageOptions, QueuePolicy, SubscribeOptions};
use compositor::{Command as UiCommand, Compositor, Handle, LauncherApp, TileView, UiEvent};
use parking_lot::Mutex;
use serde_json::{Value, json};
use shell::ctl::{MAX_REQUEST, Request, Response};
use shell::manifest::{self, Manifest};
use shell::supervisor::{AppSpec, AppState, RestartPolicy, Supervisor};
use storage::{Journal, JournalConfig, Profile};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::cli::RunArgs;
use crate::journal_cmd::{profile_dir, run_epoch};

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
    file: Option<(shell::policy::AdminPolicy, PathBuf)>,
    manifest: &Manifest,
) -> (shell::policy::AdminPolicy, Option<PathBuf>) {
    match file {
        Some((policy, path)) => (policy, Some(path)),
        None => (manifest.policy.clone().unwrap_or_default(), None),
    }
}

/// Where IT says which keys must sign the policy file.
const SYSTEM_POLICY_TRUST: &str = "/etc/tessera/policy-trust.json";

/// The keys the policy file must be signed with (`--policy-trust`, else the system file), if any.
fn policy_trust(args: &RunArgs) -> Result<Option<shell::signing::Checker>> {
    let Some(path) =
        args.policy_trust.clone().or_else(|| Some(PathBuf::from(SYSTEM_POLICY_TRUST)).filter(|p| p.is_file()))
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let rules: shell::signing::SigningRules =
        serde_json::from_str(&text).with_context(|| format!("{}: not signing rules", path.display()))?;
    Ok(Some(shell::signing::Checker::new(&rules).with_context(|| format!("in {}", path.display()))?))
}

/// The policy file IT gave (`--policy`, else the system file), read and checked (its signature
/// first, if IT requires one).
fn policy_file(
    args: &RunArgs,
    trust: Option<&shell::signing::Checker>,
) -> Result<Option<(shell::policy::AdminPolicy, PathBuf)>> {
    let Some(path) = args.policy.clone().or_else(|| Some(PathBuf::from(SYSTEM_POLICY)).filter(|p| p.is_file())) else {
        return Ok(None);
    };
    let policy = shell::policy::load_file(&path, trust).context("the admin policy")?;
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
    if let Some(code) = crate::update_cmd::guard(args.policy.as_deref()) {
        return Ok(code == 0);
    }
    let manifest_path = match &args.manifest {
        Some(p) => p.clone(),
        None => demo_manifest()?,
    };
    let profile_path = profile_dir(&args.profile)?;
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
                    let entry = storage::audit::AuditEntry {
                        time: broker::Timestamp(shell::ipc::now_ms() * 1000),
                        actor: "shell".to_owned(),
                        app: None,
                        action: "policy.reject".to_owned(),
                        object: format!("{e:#}"),
                        decision: "refused".to_owned(),
                        details: json!({}),
                    };
                    let _ = log.append(&entry);
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
            let entry = storage::audit::AuditEntry {
                time: broker::Timestamp(shell::ipc::now_ms() * 1000),
                actor: "shell".to_owned(),
                app: app.map(str::to_owned),
                action: action.to_owned(),
                object: object.to_owned(),
                decision: "refused".to_owned(),
                details: json!({}),
            };
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
    shell.supervisor.set_gate(Arc::clone(&shell.permissions) as Arc<dyn shell::ipc::Gate>);
    rt.spawn(permissions::watch(Arc::clone(&shell.permissions)));
    let app_events = shell.supervisor.set_app_events();
    rt.spawn(fdc3::run(Arc::clone(&shell), app_events));
    rt.spawn(window_events(Arc::clone(&shell), ui_rx));
    rt.spawn(tiles(Arc::clone(&shell)));
    rt.spawn(workspace::autosave(Arc::clone(&shell), Arc::clone(&shell.dirty)));
    rt.spawn(serve_ctl(Arc::clone(&shell), listener));
    rt.spawn(quit_on_signal(Arc::clone(&shell)));
    if let Some(install) = shell::updater::Install::locate() {
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

/// An app's directory name in the profile: its id where that is a plain file name, else the
/// id in hex (an App Directory's appIds may hold `/` or be `..`).
fn app_dir_name(app_id: &str) -> String {
    let plain = app_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        && !app_id.starts_with('.')
        && app_id.len() <= 128;
    if plain {
        app_id.to_owned()
    } else {
        format!("={}", app_id.bytes().map(|b| format!("{b:02x}")).collect::<String>())
    }
}

impl Shell {
    fn launch(&self, app_id: &str) -> Result<u64> {
        self.launch_with(app_id, None)
    }

    /// Launches an app, handing it `state` (from a workspace) to start from.
    fn launch_with(&self, app_id: &str, state: Option<&Value>) -> Result<u64> {
        let app = self
            .manifest
            .read()
            .app(app_id)
            .cloned()
            .with_context(|| format!("no app {app_id:?} in the manifest or its App Directory"))?;
        let Some(xid) = *self.window.borrow() else { bail!("the shell window is not up yet") };
        let dir = self.profile_dir.join("apps").join(app_dir_name(&app.app_id));
        let webkit = dir.join("webkit");
        std::fs::create_dir_all(&webkit).with_context(|| format!("creating {}", webkit.display()))?;
        let mut args = vec![
            "webview".to_owned(),
            "--parent-xid".to_owned(),
            xid.to_string(),
            "--url".to_owned(),
            app.url.clone(),
            "--data-dir".to_owned(),
            webkit.display().to_string(),
            "--bounds".to_owned(),
            "0,0,1,1".to_owned(),
        ];
        if let Some(root) = &app.content_root {
            args.extend(["--content-root".to_owned(), root.display().to_string()]);
        }
        if let Some(csp) = &app.csp {
            args.extend(["--csp".to_owned(), csp.clone()]);
        }
        // Each instance keeps its state in a file of its own, which its host reads at start.
        let states = dir.join("state");
        std::fs::create_dir_all(&states).with_context(|| format!("creating {}", states.display()))?;
        let state_file = states.join(format!(
            "{}-{}.json",
            shell::ipc::now_ms(),
            self.next_state.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        if let Some(state) = state {
            std::fs::write(&state_file, serde_json::to_vec(state)?)
                .with_context(|| format!("writing {}", state_file.display()))?;
        }
        args.extend(["--state-file".to_owned(), state_file.display().to_string()]);
        let mut env = vec![
            // WebKit keeps caches and some data under the XDG directories: per app, in the profile.
            ("XDG_CACHE_HOME".to_owned(), dir.join("cache").display().to_string()),
            ("XDG_DATA_HOME".to_owned(), dir.join("data").display().to_string()),
        ];
        if std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
            // WebKit's DMA-BUF renderer leaves views embedded in another process's X11 window
            // unpainted (seen under Xvfb with Mesa); the shared-memory path paints them.
            env.push(("WEBKIT_DISABLE_DMABUF_RENDERER".to_owned(), "1".to_owned()));
        }
        let spec = AppSpec {
            env,
            origins: Some(app.origins.clone()),
            memory_limit_bytes: app.memory_limit_bytes,
            cpu_limit_percent: app.cpu_limit_percent,
            state_file: Some(state_file),
            ..AppSpec::new(AppId::new(&app.app_id), self.host.clone(), args)
        };
        let instance = self.supervisor.launch(spec);
        self.agent.lock().add_instance(instance, &app.app_id);
        self.recent.lock().insert(app.app_id.clone(), shell::ipc::now_ms());
        let recent = self.recent.lock().clone();
        if let Err(e) = self.profile.set_setting(RECENT, &recent) {
            tracing::warn!("could not remember the launch: {e:#}");
        }
        self.dirty.notify_one();
        Ok(instance)
    }

    fn title(&self, app_id: &str) -> String {
        self.manifest.read().app(app_id).map_or_else(|| app_id.to_owned(), |a| a.title.clone())
    }
}

async fn window_events(shell: Arc<Shell>, events: flume::Receiver<UiEvent>) {
    while let Ok(event) = events.recv_async().await {
        match event {
            UiEvent::WindowReady { window, xid, scale } => {
                tracing::info!(window, xid, scale, "shell window ready");
                let Ok(xid) = u32::try_from(xid) else { continue };
                shell.windows.lock().insert(window, xid);
                if window != compositor::MAIN_WINDOW {
                    continue;
                }
                shell.window.send_replace(Some(xid));
                let shell = Arc::clone(&shell);
                tokio::spawn(async move {
                    start_desk(&shell).await;
                    shell.restored.send_replace(true);
                });
            }
            UiEvent::Launch { app_id } => {
                if let Err(e) = shell.launch(&app_id) {
                    tracing::error!("could not start {app_id}: {e:#}");
                }
            }
            UiEvent::ChannelChanged { key, channel } => {
                fdc3::link(&shell, key, channel);
                push_tiles(&shell);
                shell.dirty.notify_one();
            }
            UiEvent::LayoutChanged => shell.dirty.notify_one(),
            UiEvent::RevokeGrant(g) => {
                match shell.profile.revoke_grant(&g.app, &g.permission, g.scope.as_deref()) {
                    Ok(true) => {
                        tracing::info!(app = %g.app, permission = %g.permission, "grant revoked");
                        let object =
                            g.scope.as_ref().map_or_else(|| g.permission.clone(), |s| format!("{}:{s}", g.permission));
                        shell.permissions.record(
                            "user",
                            Some(&g.app),
                            "permission.revoke",
                            &object,
                            "revoked",
                            json!({}),
                        );
                    }
                    Ok(false) => tracing::warn!(app = %g.app, permission = %g.permission, "no such grant to revoke"),
                    Err(e) => tracing::error!("could not revoke a grant: {e:#}"),
                }
                shell.permissions.grants_changed();
                push_grants(&shell);
            }
            UiEvent::ConsentAnswered { id, answer } => {
                if shell.permissions.answer(id, answer) {
                    push_grants(&shell);
                }
            }
            UiEvent::ResolverAnswered { id, choice } => {
                tracing::info!(id, ?choice, "resolver answered");
                let outputs = shell.agent.lock().resolved(id, choice, shell::ipc::now_ms());
                fdc3::exec(&shell, outputs);
            }
            UiEvent::Bounds { key, window, rect } => {
                let view = rect.map(|r| Bounds { x: r.x, y: r.y, width: r.width, height: r.height });
                // The window's ready event comes before any bounds in it.
                let Some(parent) = shell.windows.lock().get(&window).copied() else {
                    tracing::warn!(window, key, "bounds for a window the shell was not told of; ignored");
                    continue;
                };
                shell.supervisor.set_view(key, u64::from(parent), view);
            }
            UiEvent::CloseTile { key } => {
                let shell = Arc::clone(&shell);
                tokio::spawn(async move {
                    shell.supervisor.close(key).await;
                    shell.channels.lock().remove(&key);
                    shell.dirty.notify_one();
                });
            }
            UiEvent::WindowClosed { window } => {
                shell.windows.lock().remove(&window);
            }
            UiEvent::CloseRequested => {
                let _ = shell.quit.send(true);
            }
        }
    }
}

/// Fetches the App Directory URLs again every `every`; a changed directory changes the
/// launcher and the agent (running instances stay).
async fn refresh_directories(shell: Arc<Shell>, cache: PathBuf, every: Duration) {
    let urls = shell.manifest.read().directory_urls.clone();
    loop {
        tokio::time::sleep(every).await;
        for url in &urls {
            let (u, c) = (url.clone(), cache.clone());
            let fetched = tokio::task::spawn_blocking(move || shell::appd::fetch(&u, &c, APPD_TIMEOUT)).await;
            let text = match fetched {
                Ok(Ok(f)) if f.stale.is_none() => f.text,
                Ok(Ok(f)) => {
                    tracing::warn!(%url, "the App Directory cannot be reached ({}); keeping what was loaded", f.stale.unwrap_or_default());
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!("the App Directory cannot be refreshed: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("the App Directory refresh failed: {e}");
                    continue;
                }
            };
            let directory = {
                let mut manifest = shell.manifest.write();
                let before = manifest.directory_problems.clone();
                if let Err(e) = manifest.load_directory(url, &text) {
                    tracing::warn!(%url, "the refreshed App Directory is unusable ({e}); keeping what was loaded");
                    continue;
                }
                for p in manifest.directory_problems.iter().filter(|p| !before.contains(p)) {
                    tracing::warn!("App Directory record skipped: {p}");
                }
                if let Err(e) = shell.profile.set_setting(SEEN_VERSIONS, &manifest.trust.seen_versions) {
                    tracing::warn!("could not keep the App Directory versions seen: {e}");
                }
                manifest.directory.clone()
            };
            shell.agent.lock().set_directory(directory);
            shell.permissions.set_apps(app_facts(&shell.manifest.read()));
            push_tiles(&shell);
            tracing::info!(%url, "App Directory refreshed");
        }
    }
}

/// Opens the desk at start-up: the last workspace if there is one, else the manifest's apps.
async fn start_desk(shell: &Shell) {
    let profile = shell.profile.clone();
    let saved = tokio::task::spawn_blocking(move || workspace::startup(&profile)).await.ok().flatten();
    if let Some((name, ws)) = saved {
        match workspace::restore(shell, &ws).await {
            Ok(()) => {
                tracing::info!(%name, "workspace restored");
                return;
            }
            Err(e) => tracing::warn!(%name, "could not restore the workspace: {e:#}"),
        }
    }
    if let Some(ws) = &shell.first_desk {
        match workspace::restore(shell, ws).await {
            Ok(()) => return,
            Err(e) => tracing::warn!("could not open the manifest's workspace: {e:#}"),
        }
    }
    let startup = shell.manifest.read().startup.clone();
    for app in startup {
        if let Err(e) = shell.launch(&app) {
            tracing::error!("could not start {app}: {e:#}");
        }
    }
}

/// What the window shows of the supervisor's state: one tile per instance, and the launcher.
fn views(shell: &Shell) -> (Vec<TileView>, Vec<LauncherApp>) {
    let status = shell.supervisor.status();
    let channels = shell.channels.lock().clone();
    let tiles = status
        .iter()
        .map(|s| TileView {
            key: s.instance,
            title: shell.title(&s.app),
            status: match s.state {
                AppState::Starting => "starting".to_owned(),
                AppState::Running => "running".to_owned(),
                AppState::Restarting => format!("restarting ({})", s.last_exit.clone().unwrap_or_default()),
                AppState::Failed => format!("failed: {}", s.last_exit.clone().unwrap_or_default()),
                AppState::Stopped => "stopped".to_owned(),
            },
            live: s.state == AppState::Running,
            channel: channels.get(&s.instance).copied(),
        })
        .collect();
    let recent = shell.recent.lock().clone();
    let apps = shell
        .manifest
        .read()
        .apps
        .iter()
        .map(|a| LauncherApp {
            app_id: a.app_id.clone(),
            title: a.title.clone(),
            description: a.description.clone(),
            running: status.iter().filter(|s| s.app == a.app_id && s.state != AppState::Stopped).count(),
            last_used: recent.get(&a.app_id).copied(),
            icon: a.icon.clone(),
        })
        .collect();
    (tiles, apps)
}

/// Sends the window the remembered permission answers.
fn push_grants(shell: &Shell) {
    match shell.profile.grants(None) {
        Ok(grants) => {
            let rows = grants
                .into_iter()
                .map(|g| compositor::GrantRow {
                    app: g.app,
                    permission: g.permission,
                    scope: g.scope,
                    decision: match g.decision {
                        storage::Decision::Allow => "allow".to_owned(),
                        storage::Decision::Deny => "deny".to_owned(),
                    },
                    decided_at: g.decided_at.to_string(),
                })
                .collect();
            shell.ui.send(UiCommand::SetGrants(rows));
        }
        Err(e) => tracing::error!("could not read the remembered permissions: {e:#}"),
    }
}

/// The health view's rows.
fn health(shell: &Shell) -> Vec<compositor::HealthRow> {
    shell
        .supervisor
        .status()
        .into_iter()
        .map(|s| compositor::HealthRow {
            key: s.instance,
            title: shell.title(&s.app),
            state: format!("{:?}", s.state).to_lowercase(),
            pid: s.pid,
            memory_bytes: s.memory_bytes,
            cpu_percent: s.cpu_percent,
            messages_in: s.messages_in,
            messages_out: s.messages_out,
            restarts: s.restarts,
            last_exit: s.last_exit,
        })
        .collect()
}

/// Sends the window the current tiles and launcher entries.
fn push_tiles(shell: &Shell) {
    let (tiles, apps) = views(shell);
    shell.ui.send(UiCommand::SetTiles(tiles));
    shell.ui.send(UiCommand::SetApps(apps));
}

/// Keeps the window's tiles in step with the supervisor.
async fn tiles(shell: Arc<Shell>) {
    let mut changes = shell.supervisor.changes();
    let mut last = (Vec::new(), Vec::new());
    push_grants(&shell);
    loop {
        shell.ui.send(UiCommand::SetHealth(health(&shell)));
        let now = views(&shell);
        if now != last {
            if now.0.len() != last.0.len() {
                shell.dirty.notify_one();
            }
            if !shell.ui.send(UiCommand::SetTiles(now.0.clone())) || !shell.ui.send(UiCommand::SetApps(now.1.clone())) {
                return;
            }
            last = now;
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

async fn serve_ctl(shell: Arc<Shell>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shell = Arc::clone(&shell);
                tokio::spawn(async move {
                    if let Err(e) = ctl_connection(shell, stream).await {
                        tracing::debug!("control connection ended: {e:#}");
                    }
                });
            }
            Err(e) => {
                tracing::error!("control socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn write_line(w: &mut tokio::net::unix::OwnedWriteHalf, v: &impl serde::Serialize) -> Result<()> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    Ok(())
}

async fn ctl_connection(shell: Arc<Shell>, stream: UnixStream) -> Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = Vec::new();
    let mut rd = BufReader::new(rd).take(MAX_REQUEST as u64);
    rd.read_until(b'\n', &mut line).await?;
    let request: Request = match serde_json::from_slice(&line) {
        Ok(r) => r,
        Err(e) => return write_line(&mut wr, &Response::err(format!("bad request: {e}"))).await,
    };
    if let Request::Subscribe { pattern } = request {
        return stream_messages(&shell, &pattern, wr).await;
    }
    let response = match handle(&shell, request).await {
        Ok(v) => Response::ok(v),
        Err(e) => Response::err(format!("{e:#}")),
    };
    write_line(&mut wr, &response).await
}

async fn handle(shell: &Shell, request: Request) -> Result<Value> {
    Ok(match request {
        Request::Apps => serde_json::to_value(shell.supervisor.status())?,
        Request::Launch { app } => json!({ "instance": shell.launch(&app)? }),
        Request::Close { instance } => {
            if !shell.supervisor.close(instance).await {
                bail!("no app instance {instance}");
            }
            json!({ "closed": instance })
        }
        Request::Eval { instance, js, timeout_ms } => {
            let text = shell.supervisor.eval(instance, &js, Duration::from_millis(timeout_ms)).await?;
            serde_json::from_str::<Value>(&text).context("the page's answer is not JSON")?
        }
        Request::Publish { topic, data } => {
            let client = shell.broker.connect(None);
            let bytes = serde_json::to_vec(&data)?;
            let sent = client.publish(&topic, bytes, MessageOptions::default())?;
            json!({ "seq": sent.seq, "delivered": sent.delivered })
        }
        Request::Screenshot { path, window } => screenshot_to(shell, &path, window).await?,
        Request::Quit => {
            // The session is saved while its apps still run.
            if *shell.restored.borrow()
                && let Err(e) = workspace::save(shell, workspace::AUTOSAVE).await
            {
                tracing::warn!("could not save the session: {e:#}");
            }
            let _ = shell.quit.send(true);
            json!("quitting")
        }
        Request::LayoutGet => workspace::describe(shell).await?,
        Request::LayoutSave { name } => workspace::save(shell, &name).await?,
        Request::LayoutRestore { name } => workspace::restore_named(shell, &name).await?,
        Request::LayoutList => workspace::list(shell).await?,
        Request::Prompts => serde_json::to_value(shell.permissions.prompts())?,
        Request::Prompt { id, answer } => {
            let answer = match answer.as_str() {
                "allow-once" => compositor::ConsentAnswer::AllowOnce,
                "allow-always" => compositor::ConsentAnswer::AllowAlways,
                "deny" => compositor::ConsentAnswer::Deny,
                other => bail!("{other:?} is not allow-once, allow-always or deny"),
            };
            if !shell.permissions.answer(id, answer) {
                bail!("no prompt {id} is waiting (see `tessera ctl prompts`)");
            }
            shell.ui.send(UiCommand::CancelDialog { id });
            push_grants(shell);
            json!({ "answered": id })
        }
        Request::Grants => serde_json::to_value(shell.profile.grants(None)?)?,
        Request::GrantsRevoke { app, permission } => {
            let p: shell::policy::Permission =
                permission.parse().with_context(|| format!("{permission:?} is not a permission"))?;
            if !shell.profile.revoke_grant(&app, &p.name, p.scope.as_deref())? {
                bail!("{app} has no remembered answer for {p}");
            }
            shell.permissions.grants_changed();
            shell.permissions.record("user", Some(&app), "permission.revoke", &p.to_string(), "revoked", json!({}));
            push_grants(shell);
            json!({ "revoked": { "app": app, "permission": p.to_string() } })
        }
        Request::Subscribe { .. } => bail!("subscribe streams; it is handled apart"),
    })
}

async fn screenshot_to(shell: &Shell, path: &Path, window: Option<compositor::WindowNo>) -> Result<Value> {
    let xid = shell.windows.lock().get(&window.unwrap_or(compositor::MAIN_WINDOW)).copied();
    let Some(xid) = xid else {
        match window {
            Some(no) if no != compositor::MAIN_WINDOW => bail!("there is no shell window {no} (see `ctl layout get`)"),
            _ => bail!("the shell window is not up yet"),
        }
    };
    let target = path.to_owned();
    let (w, h) = tokio::task::spawn_blocking(move || compositor::x11::capture_png(xid, &target)).await??;
    Ok(json!({ "path": path, "width": w, "height": h }))
}

async fn stream_messages(shell: &Shell, pattern: &str, mut wr: tokio::net::unix::OwnedWriteHalf) -> Result<()> {
    let client = shell.broker.connect(None);
    let subscription =
        match client.subscribe(pattern, SubscribeOptions::default().capacity(4096).policy(QueuePolicy::DropOldest)) {
            Ok(s) => s,
            Err(e) => return write_line(&mut wr, &Response::err(format!("subscribe {pattern}: {e}"))).await,
        };
    write_line(&mut wr, &Response::ok(json!({ "subscribed": pattern }))).await?;
    let mut quit = shell.quit.subscribe();
    loop {
        tokio::select! {
            d = subscription.recv_async() => {
                let Some(d) = d else { return Ok(()) };
                let e = &d.envelope;
                let data = serde_json::from_slice::<Value>(&e.payload)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&e.payload).into_owned()));
                let line = json!({
                    "topic": e.topic.as_str(), "data": data, "seq": e.seq,
                    "timestamp": e.timestamp.to_string(), "sender": e.sender.client.0,
                    "app": e.sender.app.as_ref().map(ToString::to_string),
                });
                write_line(&mut wr, &line).await?;
            }
            () = async { let _ = quit.wait_for(|q| *q).await; } => return Ok(()),
        }
    }
}
