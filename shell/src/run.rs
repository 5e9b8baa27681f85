//! `tessera run`: the shell itself. The main thread runs the window (compositor); a tokio runtime
//! runs the broker's connections, the supervisor and the control socket. The wiring between
//! them is here: window events become supervisor calls, supervisor state becomes tiles.

mod config;
mod ctl_server;
mod directories;
mod fdc3;
mod launch;
mod link;
mod permissions;
mod reconfigure;
mod startup;
mod telemetry;
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
use shell::manifest::Manifest;
use storage::{Journal, JournalConfig, Profile};
use tokio::net::{UnixListener, UnixStream};

use self::ctl_server::{screenshot_to, serve_ctl};
use self::directories::refresh_directories;
pub(crate) use self::startup::SYSTEM_POLICY_TRUST;
use self::startup::{Desk, SYSTEM_POLICY, admin_policy, app_facts, load_desk};
use self::ui::{push_tiles, tiles, window_events};
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
    /// Told when the agent has something waiting on a deadline: its task sweeps only then.
    agent_deadlines: tokio::sync::Notify,
    /// What apps may do.
    permissions: Arc<permissions::Permissions>,
    /// Whether the audit log records, and where its key is or why it is off.
    audit: startup::AuditStatus,
    /// The desk link, once started (or why it could not be), if the policy has one.
    link: std::sync::OnceLock<Result<bridge::Bridge, String>>,
    /// The journal (also the broker's), for health and metrics.
    journal: Arc<Journal>,
    /// What the updater last did.
    updater: Mutex<updates::UpdaterStatus>,
    /// Where the manifest and the policy came from, and the versions in force.
    config: Mutex<config::Sources>,
}

/// How long an App Directory server has to answer.
const APPD_TIMEOUT: Duration = Duration::from_secs(10);

/// Key of the launcher's "recently used" times in the profile's settings.
const RECENT: &str = "launcher.recent";

/// Runs the shell until it is told to quit; `Ok(true)` on a clean exit.
pub(crate) fn run(args: &RunArgs) -> Result<bool> {
    // An installed build with a new build staged or on probation: this process installs it
    // and watches its start instead of running the shell itself.
    if let Some(code) = crate::commands::update::guard(args.policy.as_deref()) {
        return Ok(code == 0);
    }
    let socket = args.socket.ctl_socket.clone().unwrap_or_else(shell::ctl::default_socket);
    // Before anything is opened: a socket directory someone else controls stops the start.
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        if args.socket.ctl_socket.is_some() {
            shell::ctl::runtime_dir::prepare_named(dir)?;
        } else {
            shell::ctl::runtime_dir::prepare(dir)?;
        }
    }
    let profile_path = crate::profile::dir(&args.profile)?;
    let profile =
        Profile::open(&profile_path).with_context(|| format!("opening the profile in {}", profile_path.display()))?;
    let Desk { manifest, manifest_path, policy_from_file, sources, policy_trust, audit, appd_cache } =
        load_desk(args, &profile, &profile_path)?;
    let first_desk = workspace::from_manifest(&manifest).with_context(|| format!("in {}", manifest_path.display()))?;
    let journal = Arc::new(Journal::open(&profile, JournalConfig::default()).context("opening the journal")?);
    let broker = Broker::new(BrokerConfig { epoch: run_epoch(), ..BrokerConfig::default() });
    broker.attach_journal(Arc::clone(&journal) as Arc<dyn broker::Journal>);
    for app in &manifest.apps {
        broker.register_app(AppId::new(&app.app_id));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tessera-rt")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = rt.block_on(async { bind(&socket).await })?;
    let endpoint_path = shell::ctl::endpoint_socket(&socket);
    let endpoint = rt.block_on(async { bind(&endpoint_path).await })?;

    let (ui_tx, ui_rx) = flume::bounded::<UiEvent>(1024);
    let (window, handle) = Compositor::new(&manifest.name, args.window_size, ui_tx)?;
    let host = std::env::current_exe().context("locating the tessera binary")?.with_file_name("tessera-app-host");
    // TESSERA_GROUP_LINGER_MS shortens how long an empty process group's host stays, for tests.
    let linger = std::env::var("TESSERA_GROUP_LINGER_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis);
    let policy = RestartPolicy {
        memory_limit_bytes: Some(args.memory_limit_mib << 20),
        group_linger: linger.unwrap_or(RestartPolicy::default().group_linger),
        ..RestartPolicy::default()
    };
    let agent = fdc3::agent(&manifest);
    let (admin, policy_file) = admin_policy(policy_from_file, &manifest);
    let update_rules = admin.update().cloned().zip(admin.release_checker());
    let link = link::prepare(&admin, audit.vault.as_deref());
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
            agent_deadlines: tokio::sync::Notify::new(),
            audit: audit.status.clone(),
            link: std::sync::OnceLock::new(),
            journal,
            updater: Mutex::new(updates::UpdaterStatus::default()),
            config: Mutex::new(sources),
            permissions: Arc::new(permissions::Permissions::new(
                admin,
                policy_file,
                profile.clone(),
                handle.clone(),
                audit.log.clone(),
                policy_trust,
            )),
        })
    };
    {
        let _guard = rt.enter();
        shell.supervisor.serve_endpoint(endpoint, endpoint_path.clone());
    }
    start_tasks(
        &rt,
        &shell,
        args,
        Tasks { ui_events: ui_rx, ctl: listener, ctl_path: socket.clone(), appd_cache, update_rules, link },
    );

    let result = window.run();
    rt.block_on(shell.supervisor.shutdown());
    // A head over everything this session recorded, so no entry is left unvouched for.
    if let Some(log) = &audit.log
        && let Err(e) = log.sign_pending()
    {
        tracing::error!("could not sign the audit log's head at shutdown: {e}");
    }
    if let Err(e) = shell.broker.flush_journal(Duration::from_secs(5)) {
        tracing::error!("the journal's last records may be lost: {e}");
    }
    // The last spans go to the collector, if it answers soon.
    if !::telemetry::trace::global().shutdown(Duration::from_secs(3)) {
        tracing::warn!("the trace collector did not take the last spans in 3 s; they are lost");
    }
    drop(profile);
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&endpoint_path);
    // A blocking task still at work (an update check waiting on the network) does not hold up
    // the exit.
    rt.shutdown_timeout(Duration::from_secs(3));
    result?;
    Ok(true)
}

/// What the shell's tasks start with, besides the shell.
struct Tasks {
    ui_events: flume::Receiver<UiEvent>,
    ctl: UnixListener,
    ctl_path: PathBuf,
    appd_cache: PathBuf,
    update_rules: Option<(policy::UpdateRules, policy::signing::Checker)>,
    link: Option<link::Prepared>,
}

/// Starts the shell's tasks on the runtime: the agent, the window's events, tiles, autosave,
/// the control socket, signals, updates, the broker's sweep, App Directory refreshes, the
/// timed exit and the window's quit.
fn start_tasks(rt: &tokio::runtime::Runtime, shell: &Arc<Shell>, args: &RunArgs, tasks: Tasks) {
    let Tasks { ui_events: ui_rx, ctl: listener, ctl_path, appd_cache, update_rules, link: prepared_link } = tasks;
    let handle = shell.ui.clone();
    rt.spawn(reconfigure::refresh(
        Arc::clone(shell),
        shell.permissions.policy_trust(),
        Duration::from_secs(args.config_refresh.max(1)),
    ));
    if !shell.manifest.read().directory_urls.is_empty() {
        rt.spawn(refresh_directories(
            Arc::clone(shell),
            appd_cache,
            Duration::from_secs(args.app_directory_refresh.max(10)),
        ));
    }
    shell.permissions.set_apps(app_facts(&shell.manifest.read()));
    shell.ui.send(UiCommand::SetServices(ui::services(shell)));
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
    fdc3::start(rt, shell);
    rt.spawn(launch::attachments(Arc::clone(shell), shell.supervisor.attachments()));
    // Read at start-up, like the telemetry listener: a policy that moves it applies at the next.
    if let Some(addr) = shell.permissions.websocket_address() {
        match rt.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(listener) => {
                let _guard = rt.enter();
                shell.supervisor.serve_websocket(listener);
                tracing::info!(%addr, "the native endpoint also listens on a WebSocket");
            }
            Err(e) => tracing::error!("the native endpoint's WebSocket cannot listen on {addr}: {e}"),
        }
    }
    {
        // The start-up apps' shared hosts start now, beside the window: GTK and WebKit are up
        // when the first page opens.
        let _guard = rt.enter();
        shell.warm_groups();
    }
    rt.spawn(window_events(Arc::clone(shell), ui_rx));
    rt.spawn(tiles(Arc::clone(shell)));
    rt.spawn(workspace::autosave(Arc::clone(shell), Arc::clone(&shell.dirty)));
    rt.spawn(serve_ctl(Arc::clone(shell), listener, ctl_path));
    telemetry::start(rt, shell);
    link::start(rt, shell, prepared_link);
    if shell.link.get().is_some() {
        shell.ui.send(UiCommand::SetServices(ui::services(shell)));
        rt.spawn(ui::refresh_services(Arc::clone(shell)));
    }
    rt.spawn(quit_on_signal(Arc::clone(shell)));
    if let Some(install) = update::install::Install::locate() {
        rt.spawn(updates::run(Arc::clone(shell), install, update_rules));
    }
    {
        // Expiry of timed-out calls, TTLs and offline queues: every 100 ms while anything
        // waits on a deadline; an idle desk is not woken for it.
        let broker = shell.broker.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let added = broker.deadline_added();
                if !broker.sweep() {
                    added.await;
                    tick.reset();
                }
            }
        });
    }
    if let Some(secs) = args.exit_after {
        let shell = Arc::clone(shell);
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
}

/// Binds the control socket (its directory already made and checked): the socket 0600, and a
/// stale socket from a shell that died replaced (a live one is an error).
async fn bind(path: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
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
