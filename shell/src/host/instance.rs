//! What the supervisor knows of an app instance: how it is launched (`AppSpec`), restarted
//! (`RestartPolicy`) and reported (`AppState`, `InstanceStatus`, `AppEvent`), and the slot the
//! supervisor and the instance's monitor share.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::host::outbox::{Outbox, Outgoing};
use broker::AppId;
use parking_lot::Mutex;
use protocol::wire::{Bounds, ShellMsg};
use serde::Serialize;

use policy::origin::Origins;

/// Messages the shell may queue for one instance (kept across restarts).
pub(crate) const CONTROL_QUEUE: usize = 4096;

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
    /// How long a process group's shared host stays once no app is left in it, ready for the
    /// group's next app.
    pub group_linger: Duration,
}

/// Messages a second above which an app counts as flooding the bus (its processes are then
/// given the lowest CPU priority).
pub(crate) const FLOOD_RATE: f64 = 5_000.0;

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
            heartbeat_every: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(3),
            load_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(2),
            memory_limit_bytes: Some(2 << 30),
            cpu_limit_percent: None,
            cpu_window: Duration::from_secs(10),
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            group_linger: Duration::from_secs(30),
        }
    }
}

/// What kind of process an instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    /// A `tessera-app-host` with a web view, on a socketpair given as its standard input.
    #[default]
    Web,
    /// A native app, which connects to the endpoint with the launch token in its environment.
    Native,
}

/// What to run for an app.
#[derive(Debug, Clone)]
pub struct AppSpec {
    /// A web app's host, or a native app.
    pub kind: HostKind,
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
    /// Log what its page writes to its console (the admin policy's `logs.consoleApps`).
    pub console: bool,
    /// The process group whose shared host runs its view; `None`: a host of its own.
    pub group: Option<GroupSpec>,
}

impl AppSpec {
    /// A host with no page: `program args`.
    pub fn new(app: AppId, program: PathBuf, args: Vec<String>) -> Self {
        Self {
            kind: HostKind::Web,
            app,
            program,
            args,
            env: Vec::new(),
            origins: None,
            memory_limit_bytes: None,
            cpu_limit_percent: None,
            state_file: None,
            console: false,
            group: None,
        }
    }
}

/// How a group's host is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// The group's name.
    pub name: String,
    /// The host's arguments (`group --data-dir ...`).
    pub args: Vec<String>,
    /// Its environment beyond the shell's.
    pub env: Vec<(String, String)>,
}

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
    /// A web app's host or a native app.
    pub kind: HostKind,
    /// The host's pid while it runs (a shared host's, for an app in a process group).
    pub pid: Option<u32>,
    /// The process group whose host it shares, if any.
    pub group: Option<String>,
    /// WebKit web processes under the host.
    pub web_pids: Vec<u32>,
    /// Memory of the host and everything under it (proportional set size), in bytes; for an
    /// app in a process group, of its own web process (the shared host is the group's).
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
    /// Times the app was held back for sending faster than its rate limit.
    pub throttled: u64,
}

/// What happened to an instance's page, for the shell's FDC3 agent (see
/// [`Supervisor::set_app_events`](crate::host::supervisor::Supervisor::set_app_events)).
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
        /// The request, parsed where it came in (or why it could not be).
        request: Result<broker::fdc3::Request, broker::fdc3::Fdc3Error>,
    },
    /// A DACP request the permission gate refused: the agent answers it with the error.
    Fdc3Refused {
        /// The instance.
        instance: u64,
        /// The request.
        request: broker::fdc3::Request,
        /// The standard's error (`AccessDenied`).
        error: &'static str,
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

/// Who is told what happens to instances' pages: the shell's FDC3 agent. Called on the task
/// of the connection it happened on, in the order it happened there, so it must not block.
pub trait AppEventSink: Send + Sync {
    /// Takes one event.
    fn event(&self, event: AppEvent);
}

pub(crate) type AppEvents = Arc<Mutex<Option<Arc<dyn AppEventSink>>>>;

/// Hands the shell an event about an instance, if it listens.
pub(crate) fn report(sink: &AppEvents, event: AppEvent) {
    let sink = sink.lock().clone();
    if let Some(sink) = sink {
        sink.event(event);
    }
}
pub(crate) type SharedGate = Arc<Mutex<Option<Arc<dyn crate::host::gate::Gate>>>>;

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
    /// A native app has no page to run a script in.
    #[error("app instance {0} is a native app: it has no page to run a script in")]
    NoPage(u64),
}

pub(crate) struct Slot {
    pub(crate) status: InstanceStatus,
    /// What waits for the instance's next host (kept across restarts).
    pub(crate) control: flume::Sender<ShellMsg>,
    /// The outbox of the host's connection once it is welcomed: the shell's messages go
    /// straight there, with no task relaying them.
    pub(crate) out: Option<Outbox>,
    pub(crate) view: Option<Bounds>,
    /// The shell window the view is in, once it was placed in one other than the host's
    /// start-up parent.
    pub(crate) parent: Option<u64>,
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
    pub(crate) evals: HashMap<u64, tokio::sync::oneshot::Sender<Result<String, String>>>,
    /// The app's saved state (JSON).
    pub(crate) state: Option<Vec<u8>>,
}

impl Slot {
    /// Sends `msg` to the instance's host: into its connection's outbox when one is welcomed,
    /// else into the control queue its next connection starts with. False when there is no
    /// room.
    pub(crate) fn send(&self, msg: ShellMsg) -> bool {
        let msg = match &self.out {
            Some(out) => match out.try_send(Outgoing::Shell(msg)) {
                Ok(()) => return true,
                // The connection is going; its monitor is about to say so.
                Err(flume::TrySendError::Disconnected(Outgoing::Shell(msg))) => msg,
                Err(_) => return false,
            },
            None => msg,
        };
        self.control.try_send(msg).is_ok()
    }
}

pub(crate) type Slots = Arc<Mutex<HashMap<u64, Slot>>>;

/// What ties a connection to its instance: the shell's messages for the instance go straight
/// to the connection once its host is welcomed, and its FDC3 requests straight to the shell's
/// agent, parsed where they come in (no task in between either way).
#[derive(Clone)]
pub(crate) struct Binding {
    pub(crate) slots: Slots,
    pub(crate) instance: u64,
    pub(crate) app: String,
    pub(crate) control: flume::Receiver<ShellMsg>,
    pub(crate) app_events: AppEvents,
    /// What the app may do; none: everything (tests and benches without a shell).
    pub(crate) gate: Option<Arc<dyn crate::host::gate::Gate>>,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding").field("instance", &self.instance).field("app", &self.app).finish_non_exhaustive()
    }
}

impl Binding {
    /// The host was welcomed: what waited in the control queue goes first, then the slot
    /// sends straight to `out`. Both under the slots' lock, which every sender takes, so
    /// nothing overtakes what was queued.
    pub(crate) fn welcomed(&self, out: &Outbox) {
        let mut slots = self.slots.lock();
        while let Ok(msg) = self.control.try_recv() {
            if out.try_send(Outgoing::Shell(msg)).is_err() {
                tracing::warn!(app = %self.app, instance = self.instance, "the app's outbox is full; a queued message was dropped");
            }
        }
        if let Some(slot) = slots.get_mut(&self.instance) {
            slot.out = Some(out.clone());
        }
    }

    /// The connection ended: the shell's messages wait in the control queue again.
    pub(crate) fn ended(&self) {
        if let Some(slot) = self.slots.lock().get_mut(&self.instance) {
            slot.out = None;
        }
    }

    /// Tells the shell what happened to the instance's page.
    pub(crate) fn report(&self, event: AppEvent) {
        report(&self.app_events, event);
    }

    /// A DACP message from the page, parsed once, here, and checked against the permission
    /// gate as a bus message is: allowed, it goes to the agent; refused, the agent answers it
    /// with `AccessDenied`; while the user is being asked it is held, and the connection goes
    /// on serving the app.
    pub(crate) fn fdc3(&self, message: &str) {
        let request = match broker::fdc3::Request::parse(message) {
            Ok(request) => request,
            Err(e) => {
                self.report(AppEvent::Fdc3 { instance: self.instance, app: self.app.clone(), request: Err(e) });
                return;
            }
        };
        let Some((gate, permission)) = self.gate.as_ref().zip(crate::host::gate::fdc3_permission(&request)) else {
            self.report(AppEvent::Fdc3 { instance: self.instance, app: self.app.clone(), request: Ok(request) });
            return;
        };
        let refused = |request| AppEvent::Fdc3Refused {
            instance: self.instance,
            request,
            error: broker::fdc3::errors::ACCESS_DENIED,
        };
        match gate.check(self.instance, &self.app, &permission) {
            crate::host::gate::Access::Allow => {
                self.report(AppEvent::Fdc3 { instance: self.instance, app: self.app.clone(), request: Ok(request) });
            }
            crate::host::gate::Access::Deny(why) => {
                tracing::warn!(app = %self.app, instance = self.instance, "FDC3 request refused: {why}");
                self.report(refused(request));
            }
            crate::host::gate::Access::Ask(answer) => {
                let binding = self.clone();
                crate::host::gate::hold(vec![answer], move |allowed| async move {
                    let event = if allowed {
                        AppEvent::Fdc3 { instance: binding.instance, app: binding.app.clone(), request: Ok(request) }
                    } else {
                        AppEvent::Fdc3Refused {
                            instance: binding.instance,
                            request,
                            error: broker::fdc3::errors::ACCESS_DENIED,
                        }
                    };
                    binding.report(event);
                });
            }
        }
    }
}

pub(crate) enum Ended {
    Exited(String),
    Hung(&'static str),
    OverMemory(u64),
    OverCpu(f64),
    Shutdown,
}

/// How a host's process ended, in words.
pub(crate) fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}
