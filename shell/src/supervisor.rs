//! The supervisor: one `tessera-app-host` process per app instance, watched like a service.
//!
//! Each instance has a monitor task that spawns the host (in a process group of its own) with
//! its end of a socketpair as stdin, serves the connection, pings it, and, for a page, probes
//! its JavaScript. It notices a crash (the process exits, or the connection ends), a hung host
//! (no pong), a stuck page (no probe answer) and a host over its memory limit (the RSS of the
//! host and every process under it, WebKit's included): the host's whole process tree is
//! killed. It then restarts the host with exponential back-off, until `max_crashes` crashes
//! within `window` mark the instance failed. A host never outlives the shell: it exits when its
//! socket closes, and the monitor kills it if it does not.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use broker::wire::{Bounds, HostMsg, ShellMsg};
use broker::{AppId, Broker};
use parking_lot::Mutex;
use serde::Serialize;

use crate::ipc::{ConnOptions, now_ms, serve_opts};
use crate::origin::Origins;

/// Messages the shell may queue for one instance (kept across restarts).
const CONTROL_QUEUE: usize = 4096;

/// When to restart and when to give up.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Delay before the first restart; doubles each time.
    pub backoff_start: Duration,
    /// Longest delay.
    pub backoff_max: Duration,
    /// Crashes within `window` that mark the instance failed.
    pub max_crashes: usize,
    /// See `max_crashes`.
    pub window: Duration,
    /// How often the host is pinged (and its page probed).
    pub heartbeat_every: Duration,
    /// How long without a pong (or, for a loaded page, a probe answer) before the host counts
    /// as hung and is killed.
    pub heartbeat_timeout: Duration,
    /// How long a page may take to load before it counts as hung.
    pub load_timeout: Duration,
    /// How long a host may take to leave after its connection closes before it is killed.
    pub grace: Duration,
    /// Memory (PSS) a host and its children may use before they are killed.
    pub memory_limit_bytes: Option<u64>,
    /// Share of one core (percent) a host and its children may use, averaged over
    /// `cpu_window`, before they are killed.
    pub cpu_limit_percent: Option<u32>,
    /// See `cpu_limit_percent`.
    pub cpu_window: Duration,
    /// Most messages a second an app may send the shell (see `ConnOptions::rate_limit`).
    pub rate_limit: Option<u32>,
}

/// Messages a second above which an app counts as flooding the bus (its processes are then
/// given the lowest CPU priority).
const FLOOD_RATE: f64 = 5_000.0;

/// Messages a second an app may send by default: far above what a desk app needs, far below
/// what would starve the other apps.
pub const DEFAULT_RATE_LIMIT: u32 = 20_000;

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff_start: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_crashes: 5,
            window: Duration::from_secs(60),
            heartbeat_every: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_secs(3),
            load_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(2),
            memory_limit_bytes: Some(2 << 30),
            cpu_limit_percent: None,
            cpu_window: Duration::from_secs(10),
            rate_limit: Some(DEFAULT_RATE_LIMIT),
        }
    }
}

/// What to run for an app.
#[derive(Debug, Clone)]
pub struct AppSpec {
    /// The app.
    pub app: AppId,
    /// The host program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Where its page may navigate; `None`: it has no page (and no navigation is allowed).
    pub origins: Option<Origins>,
    /// This app's memory limit, instead of the policy's.
    pub memory_limit_bytes: Option<u64>,
    /// This app's CPU limit (percent of a core), instead of the policy's.
    pub cpu_limit_percent: Option<u32>,
    /// Where the app's saved state is kept (read by its host at start, so a restarted app gets
    /// it back); removed when the instance closes.
    pub state_file: Option<PathBuf>,
}

impl AppSpec {
    /// A host with no page: `program args`.
    pub fn new(app: AppId, program: PathBuf, args: Vec<String>) -> Self {
        Self {
            app,
            program,
            args,
            env: Vec::new(),
            origins: None,
            memory_limit_bytes: None,
            cpu_limit_percent: None,
            state_file: None,
        }
    }
}

/// Largest app state kept for a workspace.
pub const MAX_APP_STATE: usize = 1 << 20;

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// Being started.
    Starting,
    /// Its host runs and answers.
    Running,
    /// Waiting out the back-off after a crash.
    Restarting,
    /// Crashed too often; not restarted.
    Failed,
    /// Shut down.
    Stopped,
}

/// One instance, as `tessera ctl apps` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    /// The app.
    pub app: String,
    /// The instance number.
    pub instance: u64,
    /// The host's pid while it runs.
    pub pid: Option<u32>,
    /// WebKit web processes under the host.
    pub web_pids: Vec<u32>,
    /// Memory of the host and everything under it (proportional set size), in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU used by the host and everything under it over the last seconds, in percent of a core.
    pub cpu_percent: Option<f64>,
    /// Its state.
    pub state: AppState,
    /// Restarts so far.
    pub restarts: u32,
    /// Why the last host ended.
    pub last_exit: Option<String>,
    /// The page it last loaded.
    pub url: Option<String>,
    /// Bus messages the app sent, over all its hosts.
    pub messages_out: u64,
    /// Bus messages given to the app, over all its hosts.
    pub messages_in: u64,
}

/// What happened to an instance's page, for the shell's FDC3 agent (see
/// [`Supervisor::set_app_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// A page started loading: whatever the previous page set up is gone.
    PageStarted {
        /// The instance.
        instance: u64,
        /// Its app.
        app: String,
    },
    /// A page finished loading.
    PageLoaded {
        /// The instance.
        instance: u64,
    },
    /// A DACP message from the page.
    Fdc3 {
        /// The instance.
        instance: u64,
        /// Its app.
        app: String,
        /// The JSON text.
        message: String,
    },
    /// The host ended (a crash, a hang, a limit): its page is gone until the restart.
    HostEnded {
        /// The instance.
        instance: u64,
    },
    /// The instance is closed for good.
    Closed {
        /// The instance.
        instance: u64,
    },
}

/// How many app events may wait for the shell before more are dropped.
const APP_EVENTS: usize = 16_384;

type AppEvents = Arc<Mutex<Option<flume::Sender<AppEvent>>>>;
type SharedGate = Arc<Mutex<Option<Arc<dyn crate::ipc::Gate>>>>;

/// Why an `eval` gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// No such instance.
    #[error("no app instance {0}")]
    NoInstance(u64),
    /// The script threw or was rejected.
    #[error("the script failed: {0}")]
    Script(String),
    /// No answer in time (a stuck page, or a host being restarted).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The instance's host went away first.
    #[error("the app host went away before answering")]
    Gone,
}

struct Slot {
    status: InstanceStatus,
    control: flume::Sender<ShellMsg>,
    view: Option<Bounds>,
    /// The shell window the view is in, once it was placed in one other than the host's
    /// start-up parent.
    parent: Option<u64>,
    stop: tokio::sync::watch::Sender<bool>,
    evals: HashMap<u64, tokio::sync::oneshot::Sender<Result<String, String>>>,
    /// The app's saved state (JSON).
    state: Option<Vec<u8>>,
}

type Slots = Arc<Mutex<HashMap<u64, Slot>>>;

/// Supervises app-host processes on the current tokio runtime.
pub struct Supervisor {
    broker: Broker,
    policy: RestartPolicy,
    slots: Slots,
    next: AtomicU64,
    next_eval: AtomicU64,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    shutdown: tokio::sync::watch::Sender<bool>,
    monitors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    app_events: AppEvents,
    gate: SharedGate,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("policy", &self.policy).finish_non_exhaustive()
    }
}

enum Ended {
    Exited(String),
    Hung(&'static str),
    OverMemory(u64),
    OverCpu(f64),
    Shutdown,
}

/// One process as `/proc/<pid>/stat` describes it.
struct Proc {
    pid: u32,
    ppid: u32,
    comm: String,
    rss_pages: u64,
    /// User and system time, in clock ticks.
    cpu_ticks: u64,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12) ... rss(21).
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Proc {
        pid,
        ppid: u32::try_from(number(1)?).ok()?,
        comm,
        rss_pages: number(21)?,
        cpu_ticks: number(11)? + number(12)?,
    })
}

/// `root` and every process under it.
///
/// ## Platform-specific
/// Linux only (`/proc`); elsewhere just `root`, with no memory figure.
fn process_tree(root: u32) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let all: Vec<Proc> =
        dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).filter_map(read_proc).collect();
    let mut tree: Vec<Proc> = Vec::new();
    let mut frontier = vec![root];
    let mut rest = all;
    while let Some(p) = frontier.pop() {
        let (children, others): (Vec<Proc>, Vec<Proc>) = rest.into_iter().partition(|q| q.ppid == p);
        rest = others;
        frontier.extend(children.iter().map(|c| c.pid));
        tree.extend(children);
    }
    if let Some(me) = read_proc(root) {
        tree.insert(0, me);
    }
    tree
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// A process's proportional share of memory (shared pages split among their users), from
/// `/proc/<pid>/smaps_rollup`; its resident size where that file is missing. Summing RSS over
/// a host and its WebKit processes would count the shared libraries three times.
fn memory_of(p: &Proc) -> u64 {
    let pss_kib = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", p.pid))
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("Pss:"))?.split_whitespace().nth(1)?.parse::<u64>().ok());
    pss_kib.map_or(p.rss_pages * page_size(), |k| k * 1024)
}

/// Kills `root`'s process group and every process under it (WebKit's helpers may have left
/// the group).
fn kill_tree(root: u32) {
    use rustix::process::{Pid, Signal, kill_process, kill_process_group};
    let tree = process_tree(root);
    if let Some(pid) = Pid::from_raw(root.cast_signed()) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
    for p in tree {
        if let Some(pid) = Pid::from_raw(p.pid.cast_signed()) {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}

impl Supervisor {
    /// A supervisor whose hosts talk to `broker`.
    pub fn new(broker: Broker, policy: RestartPolicy) -> Self {
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let (changes, _) = tokio::sync::watch::channel(0);
        Self {
            broker,
            policy,
            slots: Arc::new(Mutex::new(HashMap::new())),
            next: AtomicU64::new(1),
            next_eval: AtomicU64::new(1),
            changes: Arc::new(changes),
            shutdown,
            monitors: Mutex::new(Vec::new()),
            app_events: Arc::new(Mutex::new(None)),
            gate: Arc::new(Mutex::new(None)),
        }
    }

    /// From now on, what apps do on the bus, where they navigate and which windows they open
    /// is decided by `gate` (without one, everything within the app's own origin is allowed).
    pub fn set_gate(&self, gate: Arc<dyn crate::ipc::Gate>) {
        *self.gate.lock() = Some(gate);
    }

    /// Starts reporting what instances' pages do ([`AppEvent`]s) on a channel; events beyond
    /// its bound are dropped (and logged).
    pub fn set_app_events(&self) -> flume::Receiver<AppEvent> {
        let (tx, rx) = flume::bounded(APP_EVENTS);
        *self.app_events.lock() = Some(tx);
        rx
    }

    /// Queues a message for an instance's host; `false` if there is no such instance or its
    /// queue is full.
    pub fn post(&self, instance: u64, msg: ShellMsg) -> bool {
        self.slots.lock().get(&instance).is_some_and(|s| s.control.try_send(msg).is_ok())
    }

    /// Starts an instance of an app; returns its number. Must be called within a tokio runtime.
    pub fn launch(&self, spec: AppSpec) -> u64 {
        let instance = self.next.fetch_add(1, Ordering::Relaxed);
        let (control, control_rx) = flume::bounded(CONTROL_QUEUE);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        self.slots.lock().insert(
            instance,
            Slot {
                status: InstanceStatus {
                    app: spec.app.to_string(),
                    instance,
                    pid: None,
                    web_pids: Vec::new(),
                    memory_bytes: None,
                    cpu_percent: None,
                    state: AppState::Starting,
                    restarts: 0,
                    last_exit: None,
                    url: None,
                    messages_out: 0,
                    messages_in: 0,
                },
                control,
                view: None,
                parent: None,
                stop,
                evals: HashMap::new(),
                state: spec.state_file.as_ref().and_then(|f| std::fs::read(f).ok()),
            },
        );
        let monitor = Monitor {
            broker: self.broker.clone(),
            policy: RestartPolicy {
                memory_limit_bytes: spec.memory_limit_bytes.or(self.policy.memory_limit_bytes),
                cpu_limit_percent: spec.cpu_limit_percent.or(self.policy.cpu_limit_percent),
                ..self.policy.clone()
            },
            slots: Arc::clone(&self.slots),
            changes: Arc::clone(&self.changes),
            instance,
            spec,
            control_rx,
            shutdown: self.shutdown.subscribe(),
            stop: stop_rx,
            traffic: Arc::new(crate::ipc::Traffic::default()),
            flooded: false,
            app_events: Arc::clone(&self.app_events),
            gate: Arc::clone(&self.gate),
        };
        self.monitors.lock().push(tokio::spawn(monitor.run()));
        self.changes.send_modify(|n| *n += 1);
        instance
    }

    /// Every instance's status, by instance number.
    pub fn status(&self) -> Vec<InstanceStatus> {
        let mut v: Vec<_> = self.slots.lock().values().map(|s| s.status.clone()).collect();
        v.sort_by_key(|s| s.instance);
        v
    }

    /// The state an instance's app last saved (JSON), if any.
    pub fn app_state(&self, instance: u64) -> Option<serde_json::Value> {
        let bytes = self.slots.lock().get(&instance)?.state.clone()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Changes whenever an instance's status does.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Places an instance's view (`None`: hides it) in shell window `parent` (X11 id).
    /// Remembered, and sent again to a restarted host.
    pub fn set_view(&self, instance: u64, parent: u64, view: Option<Bounds>) {
        let mut slots = self.slots.lock();
        let Some(slot) = slots.get_mut(&instance) else { return };
        slot.view = view;
        // The host ignores its own parent: the first placement may say it again.
        if slot.parent != Some(parent) {
            if slot.control.try_send(ShellMsg::SetParent { xid: parent }).is_ok() {
                slot.parent = Some(parent);
            } else {
                tracing::warn!(instance, "the app's control queue is full; a move to another window was dropped");
            }
        }
        for msg in view_messages(view) {
            if slot.control.try_send(msg).is_err() {
                tracing::warn!(instance, "the app's control queue is full; a view change was dropped");
            }
        }
    }

    /// Evaluates `js` in an instance's page and returns the result as JSON.
    pub async fn eval(&self, instance: u64, js: &str, timeout: Duration) -> Result<String, EvalError> {
        let id = self.next_eval.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let control = {
            let mut slots = self.slots.lock();
            let slot = slots.get_mut(&instance).ok_or(EvalError::NoInstance(instance))?;
            slot.evals.insert(id, tx);
            slot.control.clone()
        };
        let forget = || {
            if let Some(slot) = self.slots.lock().get_mut(&instance) {
                slot.evals.remove(&id);
            }
        };
        let sent = tokio::time::timeout(timeout, control.send_async(ShellMsg::Eval { id, js: js.to_owned() })).await;
        if !matches!(sent, Ok(Ok(()))) {
            forget();
            return Err(EvalError::Timeout(timeout));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(json))) => Ok(json),
            Ok(Ok(Err(message))) => Err(EvalError::Script(message)),
            Ok(Err(_)) => Err(EvalError::Gone),
            Err(_) => {
                forget();
                Err(EvalError::Timeout(timeout))
            }
        }
    }

    /// Closes one instance: its host is asked to leave, then killed; it disappears from the status.
    pub async fn close(&self, instance: u64) -> bool {
        let Some(mut changes) = self.slots.lock().get(&instance).map(|s| {
            let _ = s.stop.send(true);
            self.changes.subscribe()
        }) else {
            return false;
        };
        while self.slots.lock().contains_key(&instance) {
            if changes.changed().await.is_err() {
                break;
            }
        }
        true
    }

    /// Closes every connection, gives hosts `grace` to leave, kills the rest, and waits.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let monitors: Vec<_> = self.monitors.lock().drain(..).collect();
        for m in monitors {
            let _ = m.await;
        }
    }
}

fn view_messages(view: Option<Bounds>) -> Vec<ShellMsg> {
    match view {
        Some(b) => vec![ShellMsg::SetBounds(b), ShellMsg::SetVisible(true)],
        None => vec![ShellMsg::SetVisible(false)],
    }
}

struct Monitor {
    broker: Broker,
    policy: RestartPolicy,
    slots: Slots,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    instance: u64,
    spec: AppSpec,
    control_rx: flume::Receiver<ShellMsg>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    stop: tokio::sync::watch::Receiver<bool>,
    traffic: Arc<crate::ipc::Traffic>,
    /// The app flooded the bus in an earlier host: its next hosts start at the lowest priority.
    flooded: bool,
    app_events: AppEvents,
    gate: SharedGate,
}

/// Why the monitor stops: the whole shell, or just this instance.
#[derive(Clone, Copy)]
enum Stop {
    Shutdown,
    Close,
}

impl Monitor {
    fn report(&self, event: AppEvent) {
        let sink = self.app_events.lock().clone();
        if let Some(tx) = sink
            && tx.try_send(event).is_err()
        {
            tracing::warn!(app = %self.spec.app, instance = self.instance, "the shell is behind on app events; one was dropped");
        }
    }

    fn update(&self, f: impl FnOnce(&mut InstanceStatus)) {
        if let Some(s) = self.slots.lock().get_mut(&self.instance) {
            f(&mut s.status);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    fn finish(&self, stop: Stop) {
        match stop {
            Stop::Shutdown => self.update(|s| {
                s.state = AppState::Stopped;
                s.pid = None;
                s.web_pids.clear();
                s.memory_bytes = None;
                s.cpu_percent = None;
            }),
            Stop::Close => {
                self.slots.lock().remove(&self.instance);
                self.report(AppEvent::Closed { instance: self.instance });
                if let Some(f) = &self.spec.state_file {
                    let _ = std::fs::remove_file(f);
                }
                self.changes.send_modify(|n| *n += 1);
            }
        }
    }

    async fn stopped(
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Stop {
        tokio::select! {
            () = async { let _ = shutdown.wait_for(|v| *v).await; } => Stop::Shutdown,
            () = async { let _ = stop.wait_for(|v| *v).await; } => Stop::Close,
        }
    }

    async fn run(mut self) {
        let mut crashes: Vec<Instant> = Vec::new();
        loop {
            let ended = match self.run_once().await {
                Ok(ended) => ended,
                Err(e) => Ended::Exited(format!("could not start: {e:#}")),
            };
            let why = match ended {
                Ended::Shutdown => {
                    let stop = if *self.stop.borrow() { Stop::Close } else { Stop::Shutdown };
                    self.finish(stop);
                    return;
                }
                Ended::Hung(what) => format!("hung: {what}"),
                Ended::OverMemory(rss) => format!("killed over its memory limit ({} MiB in use)", rss >> 20),
                Ended::OverCpu(pct) => format!(
                    "killed over its CPU limit ({pct:.0}% of a core over {} s)",
                    self.policy.cpu_window.as_secs()
                ),
                Ended::Exited(why) => why,
            };
            tracing::warn!(app = %self.spec.app, instance = self.instance, reason = %why, "app host ended");
            self.report(AppEvent::HostEnded { instance: self.instance });
            // Evaluations waiting on the dead host get `Gone`.
            if let Some(slot) = self.slots.lock().get_mut(&self.instance) {
                slot.evals.clear();
            }
            let now = Instant::now();
            crashes.retain(|t| now.duration_since(*t) < self.policy.window);
            crashes.push(now);
            let clear = |s: &mut InstanceStatus| {
                s.pid = None;
                s.web_pids.clear();
                s.memory_bytes = None;
                s.cpu_percent = None;
            };
            if crashes.len() >= self.policy.max_crashes {
                tracing::error!(app = %self.spec.app, instance = self.instance, "app crashed too often; not restarting");
                self.update(|s| {
                    s.state = AppState::Failed;
                    clear(s);
                    s.last_exit = Some(why);
                });
                let stop = Self::stopped(&mut self.shutdown, &mut self.stop).await;
                self.finish(stop);
                return;
            }
            let exp = u32::try_from(crashes.len() - 1).unwrap_or(u32::MAX).min(16);
            let delay = self.policy.backoff_start.saturating_mul(1 << exp).min(self.policy.backoff_max);
            self.update(|s| {
                s.state = AppState::Restarting;
                clear(s);
                s.restarts += 1;
                s.last_exit = Some(why);
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                stop = Self::stopped(&mut self.shutdown, &mut self.stop) => {
                    self.finish(stop);
                    return;
                }
            }
        }
    }

    /// Runs one host until it ends; says why.
    async fn run_once(&mut self) -> anyhow::Result<Ended> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let mut child = tokio::process::Command::new(&self.spec.program)
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id();
        // A host of an app that flooded before starts (and its WebKit processes, which inherit
        // it) at the lowest priority: its restart does not cost the other apps either.
        if self.flooded
            && let Some(p) = pid.and_then(|p| rustix::process::Pid::from_raw(p.cast_signed()))
        {
            let _ = rustix::process::setpriority_process(Some(p), 19);
        }
        ours.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(ours)?;
        let last_pong = Arc::new(AtomicU64::new(now_ms()));
        let (events_tx, events_rx) = flume::bounded::<HostMsg>(1024);
        let opts = ConnOptions {
            ping_every: Some(self.policy.heartbeat_every),
            last_pong: Some(Arc::clone(&last_pong)),
            control: Some(self.control_rx.clone()),
            events: Some(events_tx),
            counters: Some(Arc::clone(&self.traffic)),
            gate: self.gate.lock().clone().map(|g| (g, self.instance)),
            rate_limit: self.policy.rate_limit,
            ..ConnOptions::default()
        };
        // A restarted host is told where its view is before anything else queued for it. It
        // starts in the main window: if its view belongs in another, it moves there, shown or
        // hidden.
        if let Some(slot) = self.slots.lock().get(&self.instance) {
            let parent = slot.parent.map(|xid| ShellMsg::SetParent { xid });
            let view = slot.view.map(|b| view_messages(Some(b))).unwrap_or_default();
            for msg in parent.into_iter().chain(view) {
                let _ = slot.control.try_send(msg);
            }
        }
        let mut conn = tokio::spawn(serve_opts(self.broker.clone(), stream, Some(self.spec.app.clone()), opts));
        self.update(|s| {
            s.state = AppState::Running;
            s.pid = pid;
        });
        let kill = |child: &mut tokio::process::Child| {
            if let Some(pid) = child.id() {
                kill_tree(pid);
            }
            let _ = child.start_kill();
        };
        let timeout_ms = u64::try_from(self.policy.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut check = tokio::time::interval(self.policy.heartbeat_every.min(Duration::from_millis(250)));
        let mut probe = tokio::time::interval(self.policy.heartbeat_every);
        let mut nonce = 0u64;
        let has_page = self.spec.origins.is_some();
        // A page is probed once it has loaded; while it loads, `load_timeout` applies.
        let mut loading_since: Option<Instant> = has_page.then(Instant::now);
        let mut last_ack = Instant::now();
        let mut last_scan = Instant::now() - Duration::from_secs(1);
        // (when, CPU ticks of the whole tree) over the last `cpu_window`.
        let mut cpu_samples: std::collections::VecDeque<(Instant, u64)> = std::collections::VecDeque::new();
        let ticks_per_sec = rustix::param::clock_ticks_per_second().max(1) as f64;
        // A host that floods the bus is slowed by its rate limit; its processes also go to the
        // lowest CPU priority, so that what it burns in its own page does not starve the others.
        let mut demoted = self.flooded;
        let throttled_before = self.traffic.throttled.load(Ordering::Relaxed);
        let mut sent_at_scan = self.traffic.from_app.load(Ordering::Relaxed);
        let ended = loop {
            tokio::select! {
                status = child.wait() => {
                    if let Some(pid) = pid {
                        kill_tree(pid);
                    }
                    let status = match status {
                        Ok(s) => describe(s),
                        Err(e) => format!("wait failed: {e}"),
                    };
                    // A host that broke the protocol and then left: say so, not just how it left.
                    let broke = match tokio::time::timeout(Duration::from_millis(200), &mut conn).await {
                        Ok(Ok(Err(e))) => Some(format!("broke the protocol: {e:#}")),
                        _ => None,
                    };
                    break Ended::Exited(broke.map_or_else(|| status.clone(), |b| format!("{b}; {status}")));
                }
                result = &mut conn => {
                    // The host closed its end or sent something malformed: it goes.
                    let why = match result {
                        Ok(Ok(())) => "closed its connection".to_owned(),
                        Ok(Err(e)) => format!("broke the protocol: {e:#}"),
                        Err(e) => format!("connection task failed: {e}"),
                    };
                    let waited = tokio::time::timeout(self.policy.grace, child.wait()).await;
                    if let Some(pid) = pid {
                        kill_tree(pid);
                    }
                    break Ended::Exited(match waited {
                        // A crash usually shows as the socket closing first: say how it ended.
                        Ok(Ok(status)) if !status.success() => describe(status),
                        Ok(Ok(status)) => format!("{why}; {}", describe(status)),
                        Ok(Err(e)) => format!("{why}; wait failed: {e}"),
                        Err(_) => {
                            kill(&mut child);
                            let _ = child.wait().await;
                            format!("{why}; killed after the grace period")
                        }
                    });
                }
                Ok(event) = events_rx.recv_async() => self.on_event(event, &mut last_ack, &mut loading_since),
                _ = probe.tick(), if has_page => {
                    nonce += 1;
                    let _ = self.slots.lock().get(&self.instance).map(|s| s.control.try_send(ShellMsg::Probe { nonce }));
                }
                _ = check.tick() => {
                    if now_ms().saturating_sub(last_pong.load(Ordering::Relaxed)) > timeout_ms {
                        kill(&mut child);
                        let _ = child.wait().await;
                        break Ended::Hung("no answer to pings");
                    }
                    let stuck = match loading_since {
                        Some(t) => (t.elapsed() > self.policy.load_timeout).then_some("the page did not load"),
                        None => (has_page && last_ack.elapsed() > self.policy.heartbeat_timeout)
                            .then_some("the page's script does not answer"),
                    };
                    if let Some(what) = stuck {
                        kill(&mut child);
                        let _ = child.wait().await;
                        break Ended::Hung(what);
                    }
                    // Memory: an RSS watchdog over the host's whole tree (cgroup v2 is not used yet).
                    if let Some(pid) = pid && last_scan.elapsed() >= Duration::from_millis(500) {
                        let last_scan_gap = last_scan.elapsed();
                        last_scan = Instant::now();
                        let tree = process_tree(pid);
                        let rss: u64 = tree.iter().map(memory_of).sum();
                        let web: Vec<u32> = tree.iter().filter(|p| p.comm.starts_with("WebKitWebProces")).map(|p| p.pid).collect();
                        // CPU: the tree's ticks now against the oldest sample in the window.
                        // (A child that exited takes its ticks with it: the sum may drop.)
                        let now = Instant::now();
                        let ticks: u64 = tree.iter().map(|p| p.cpu_ticks).sum();
                        cpu_samples.push_back((now, ticks));
                        while cpu_samples.len() > 2
                            && cpu_samples.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= self.policy.cpu_window)
                        {
                            cpu_samples.pop_front();
                        }
                        let (since, cpu) = cpu_samples.front().map_or((Duration::ZERO, 0.0), |(t, first)| {
                            let span = now.duration_since(*t);
                            let used = ticks.saturating_sub(*first) as f64 / ticks_per_sec;
                            (span, if span.is_zero() { 0.0 } else { 100.0 * used / span.as_secs_f64() })
                        });
                        let sent_now = self.traffic.from_app.load(Ordering::Relaxed);
                        let rate = (sent_now.saturating_sub(sent_at_scan) as f64) / last_scan_gap.as_secs_f64().max(0.001);
                        sent_at_scan = sent_now;
                        if !demoted && (self.traffic.throttled.load(Ordering::Relaxed) > throttled_before || rate > FLOOD_RATE) {
                            demoted = true;
                            self.flooded = true;
                            tracing::warn!(app = %self.spec.app, instance = self.instance, "the app floods the bus: its processes now run at the lowest priority");
                            for p in &tree {
                                if let Some(pid) = rustix::process::Pid::from_raw(p.pid.cast_signed()) {
                                    let _ = rustix::process::setpriority_process(Some(pid), 19);
                                }
                            }
                        }
                        let (sent, given) = (self.traffic.from_app.load(Ordering::Relaxed), self.traffic.to_app.load(Ordering::Relaxed));
                        self.update(|s| {
                            s.messages_out = sent;
                            s.messages_in = given;
                            s.memory_bytes = Some(rss);
                            s.web_pids = web;
                            s.cpu_percent = (!since.is_zero()).then_some((cpu * 10.0).round() / 10.0);
                        });
                        if let Some(limit) = self.policy.cpu_limit_percent
                            && since >= self.policy.cpu_window
                            && cpu > f64::from(limit)
                        {
                            kill(&mut child);
                            let _ = child.wait().await;
                            break Ended::OverCpu(cpu);
                        }
                        if self.policy.memory_limit_bytes.is_some_and(|limit| rss > limit) {
                            kill(&mut child);
                            let _ = child.wait().await;
                            break Ended::OverMemory(rss);
                        }
                    }
                }
                _ = Self::stopped(&mut self.shutdown, &mut self.stop) => {
                    // Ask: closing the connection makes the host leave. Then insist.
                    conn.abort();
                    if tokio::time::timeout(self.policy.grace, child.wait()).await.is_err() {
                        kill(&mut child);
                        let _ = child.wait().await;
                    }
                    if let Some(pid) = pid {
                        kill_tree(pid);
                    }
                    return Ok(Ended::Shutdown);
                }
            }
        };
        conn.abort();
        Ok(ended)
    }

    /// Whether the page may go to `url`: its own origin, or one the gate allows
    /// (`navigate:ORIGIN`); a new window also needs `window.open`. While the user is being
    /// asked, the answer is no (their answer holds for the next try).
    fn navigation_allowed(&self, url: &str, new_window: bool) -> bool {
        let Some(origins) = self.spec.origins.as_ref() else { return false };
        let gate = self.gate.lock().clone();
        let app = self.spec.app.to_string();
        let ask = |name: &str, scope: Option<&str>| match (&gate, crate::policy::Permission::new(name, scope)) {
            (Some(g), Ok(p)) => matches!(g.check(self.instance, &app, &p), crate::ipc::Access::Allow),
            _ => false,
        };
        let place = origins.allows(url)
            || (gate.is_some()
                && url::Url::parse(url).ok().is_some_and(|u| ask("navigate", Some(&u.origin().ascii_serialization()))));
        if !new_window || gate.is_none() {
            return place;
        }
        place && ask("window.open", None)
    }

    /// Answers WebKit's question for the page: all of `permissions` must be allowed. Without
    /// a gate, nothing is.
    fn on_permission_request(&self, id: u64, permissions: &[String]) {
        let gate = self.gate.lock().clone();
        let app = self.spec.app.to_string();
        let mut asks = Vec::new();
        let mut allow = gate.is_some() && !permissions.is_empty();
        for name in permissions {
            let (Some(g), Ok(p)) = (&gate, crate::policy::Permission::new(name, None)) else {
                allow = false;
                break;
            };
            match g.check(self.instance, &app, &p) {
                crate::ipc::Access::Allow => {}
                crate::ipc::Access::Deny(why) => {
                    tracing::info!(%app, instance = self.instance, %name, "WebKit permission refused: {why}");
                    allow = false;
                    break;
                }
                crate::ipc::Access::Ask(answer) => asks.push(answer),
            }
        }
        let slots = Arc::clone(&self.slots);
        let instance = self.instance;
        let decide = move |allow: bool| {
            if let Some(slot) = slots.lock().get(&instance) {
                let _ = slot.control.try_send(ShellMsg::PermissionDecision { id, allow });
            }
        };
        if !allow || asks.is_empty() {
            decide(allow);
            return;
        }
        tokio::spawn(async move {
            let mut all = true;
            for a in asks {
                all &= a.await;
            }
            decide(all);
        });
    }

    fn on_event(&self, event: HostMsg, last_ack: &mut Instant, loading_since: &mut Option<Instant>) {
        match event {
            HostMsg::ProbeAck { .. } => *last_ack = Instant::now(),
            HostMsg::PageLoad { url, done: false } => {
                *loading_since = Some(Instant::now());
                self.report(AppEvent::PageStarted { instance: self.instance, app: self.spec.app.to_string() });
                tracing::debug!(app = %self.spec.app, instance = self.instance, %url, "page loading");
            }
            HostMsg::PageLoad { url, done: true } => {
                *loading_since = None;
                *last_ack = Instant::now();
                tracing::info!(app = %self.spec.app, instance = self.instance, %url, "page loaded");
                self.report(AppEvent::PageLoaded { instance: self.instance });
                self.update(|s| s.url = Some(url));
            }
            HostMsg::SaveState { state } => {
                if state.len() > MAX_APP_STATE || serde_json::from_slice::<serde::de::IgnoredAny>(&state).is_err() {
                    tracing::warn!(app = %self.spec.app, instance = self.instance, "refused an app state: not JSON or over 1 MiB");
                    return;
                }
                if let Some(f) = &self.spec.state_file {
                    // Written whole, then renamed: a crash leaves the old state or the new one.
                    let tmp = f.with_extension("tmp");
                    if let Err(e) = std::fs::write(&tmp, &state).and_then(|()| std::fs::rename(&tmp, f)) {
                        tracing::warn!(app = %self.spec.app, "could not keep the app's state: {e}");
                    }
                }
                if let Some(slot) = self.slots.lock().get_mut(&self.instance) {
                    slot.state = Some(state);
                }
            }
            HostMsg::EvalResult { id, result } => {
                if let Some(tx) = self.slots.lock().get_mut(&self.instance).and_then(|s| s.evals.remove(&id)) {
                    let _ = tx.send(result);
                }
            }
            HostMsg::NavigationRequest { id, url, new_window } => {
                let allow = self.navigation_allowed(&url, new_window);
                if !allow {
                    tracing::warn!(app = %self.spec.app, instance = self.instance, %url, new_window, "navigation refused");
                    if let Some(g) = self.gate.lock().clone() {
                        let action = if new_window { "window.blocked" } else { "navigation.blocked" };
                        g.refused(self.instance, &self.spec.app.to_string(), action, &url);
                    }
                }
                if let Some(slot) = self.slots.lock().get(&self.instance) {
                    let _ = slot.control.try_send(ShellMsg::NavigationDecision { id, allow });
                }
            }
            HostMsg::Fdc3 { message } => {
                self.report(AppEvent::Fdc3 { instance: self.instance, app: self.spec.app.to_string(), message });
            }
            HostMsg::PermissionRequest { id, permissions } => self.on_permission_request(id, &permissions),
            HostMsg::PageRefused { what } => {
                tracing::warn!(app = %self.spec.app, instance = self.instance, "the page's message was refused: {what}");
                if let Some(g) = self.gate.lock().clone() {
                    g.refused(self.instance, &self.spec.app.to_string(), "message.refused", &what);
                }
            }
            HostMsg::CloseSelf => {
                tracing::info!(app = %self.spec.app, instance = self.instance, "the app closed itself");
                // It is gone for the agent now, not when its processes have finished exiting.
                self.report(AppEvent::Closed { instance: self.instance });
                if let Some(slot) = self.slots.lock().get(&self.instance) {
                    let _ = slot.stop.send(true);
                }
            }
            other => tracing::debug!(?other, "unexpected event from an app host"),
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}
