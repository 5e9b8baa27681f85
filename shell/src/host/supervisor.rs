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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use broker::Broker;
use parking_lot::Mutex;
use protocol::wire::{Bounds, ShellMsg};

use crate::host::instance::*;
pub use crate::host::instance::{
    AppEvent, AppEventSink, AppSpec, AppState, DEFAULT_RATE_LIMIT, EvalError, GroupSpec, HostKind, InstanceStatus,
    RestartPolicy,
};
use crate::host::monitor::*;

/// A process group's shared host, as `tessera ctl apps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupStatus {
    /// The group.
    pub name: String,
    /// Its host's pid.
    pub pid: u32,
    /// Apps whose views it holds.
    pub views: usize,
    /// Memory (PSS) of the host and its WebKit network process, which its apps share (each
    /// app's web process is counted as the app's).
    pub memory_bytes: Option<u64>,
}

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
    endpoint: Arc<crate::host::endpoint::Endpoint>,
    groups: Arc<crate::host::group::Groups>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("policy", &self.policy).finish_non_exhaustive()
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
            endpoint: Arc::new(crate::host::endpoint::Endpoint::default()),
            groups: Arc::default(),
        }
    }

    /// Serves the native-app endpoint on `listener` (bound at `path`): native apps launched
    /// from now on connect there.
    pub fn serve_endpoint(&self, listener: tokio::net::UnixListener, path: std::path::PathBuf) {
        self.endpoint.serve(listener, path, Arc::clone(&self.gate));
    }

    /// Serves the native-app endpoint on a WebSocket too (credentials only), on `listener`.
    pub fn serve_websocket(&self, listener: tokio::net::TcpListener) {
        crate::host::endpoint::websocket::serve(Arc::clone(&self.endpoint), listener, Arc::clone(&self.gate));
    }

    /// Where the native-app endpoint listens, once it does.
    pub fn endpoint_path(&self) -> Option<std::path::PathBuf> {
        self.endpoint.path()
    }

    /// From now on, what apps do on the bus, where they navigate and which windows they open
    /// is decided by `gate` (without one, everything within the app's own origin is allowed).
    pub fn set_gate(&self, gate: Arc<dyn crate::host::gate::Gate>) {
        *self.gate.lock() = Some(gate);
    }

    /// Starts telling `sink` what instances' pages do ([`AppEvent`]s), each on the task of the
    /// connection it happened on.
    pub fn set_app_events(&self, sink: Arc<dyn AppEventSink>) {
        *self.app_events.lock() = Some(sink);
    }

    /// Queues a message for an instance's host; `false` if there is no such instance or its
    /// queue is full.
    pub fn post(&self, instance: u64, msg: ShellMsg) -> bool {
        self.slots.lock().get(&instance).is_some_and(|s| s.send(msg))
    }

    /// Starts an instance of an app; returns its number. Must be called within a tokio runtime.
    pub fn launch(&self, spec: AppSpec) -> u64 {
        let (instance, monitor) = self.slot(spec);
        self.monitors.lock().push(tokio::spawn(monitor.run()));
        self.changes.send_modify(|n| *n += 1);
        instance
    }

    /// Connections from apps started outside the shell, proven with their credentials, for
    /// the shell to check against its manifest and [`Supervisor::attach`] (or refuse).
    pub fn attachments(&self) -> flume::Receiver<crate::host::endpoint::Attached> {
        self.endpoint.attachments()
    }

    /// Makes `attached` (an app started outside the shell, proven) an instance of `spec`'s app:
    /// served and watched like a launched one, but not restarted: when its connection ends, the
    /// instance closes. Returns its number.
    pub fn attach(&self, spec: AppSpec, attached: crate::host::endpoint::Attached) -> u64 {
        let (instance, monitor) = self.slot(spec);
        self.monitors.lock().push(tokio::spawn(monitor.run_attached(attached)));
        self.changes.send_modify(|n| *n += 1);
        instance
    }

    /// A new instance's slot, and the monitor that will watch it.
    fn slot(&self, spec: AppSpec) -> (u64, Monitor) {
        let instance = self.next.fetch_add(1, Ordering::Relaxed);
        let (control, control_rx) = flume::bounded(CONTROL_QUEUE);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        self.slots.lock().insert(
            instance,
            Slot {
                status: InstanceStatus {
                    app: spec.app.to_string(),
                    instance,
                    kind: spec.kind,
                    pid: None,
                    group: spec.group.as_ref().map(|g| g.name.clone()),
                    web_pids: Vec::new(),
                    memory_bytes: None,
                    cpu_percent: None,
                    state: AppState::Starting,
                    restarts: 0,
                    last_exit: None,
                    url: None,
                    messages_out: 0,
                    messages_in: 0,
                    throttled: 0,
                },
                control,
                out: None,
                view: None,
                parent: None,
                stop,
                evals: HashMap::new(),
                state: spec.state_file.as_ref().and_then(|f| std::fs::read(f).ok()),
            },
        );
        let console = crate::host::console::ConsoleLog::new(&spec.app.to_string(), instance, spec.console);
        let monitor = Monitor {
            console,
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
            traffic: Arc::new(crate::host::ipc::Traffic::default()),
            flooded: false,
            app_events: Arc::clone(&self.app_events),
            gate: Arc::clone(&self.gate),
            endpoint: Arc::clone(&self.endpoint),
            groups: Arc::clone(&self.groups),
        };
        (instance, monitor)
    }

    /// Every instance's status, by instance number.
    pub fn status(&self) -> Vec<InstanceStatus> {
        let mut v: Vec<_> = self.slots.lock().values().map(|s| s.status.clone()).collect();
        v.sort_by_key(|s| s.instance);
        v
    }

    /// Starts process group `spec`'s shared host (`program`) ahead of its apps, if it does not
    /// run: the first app opens without waiting for GTK and WebKit to start. If none comes, it
    /// goes after a while. Must be called within a tokio runtime.
    pub fn warm(&self, spec: &GroupSpec, program: &std::path::Path) -> anyhow::Result<()> {
        let watch = crate::host::group::Watch {
            every: self.policy.heartbeat_every,
            timeout: self.policy.heartbeat_timeout,
            grace: self.policy.grace,
            linger: self.policy.group_linger,
        };
        self.groups.warm(spec, program, watch)
    }

    /// The process groups whose shared hosts run: their names, host pids and how many apps'
    /// views each holds.
    pub fn groups(&self) -> Vec<GroupStatus> {
        self.groups
            .running()
            .into_iter()
            .map(|(name, pid, views, memory_bytes)| GroupStatus { name, pid, views, memory_bytes })
            .collect()
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
            if slot.send(ShellMsg::SetParent { xid: parent }) {
                slot.parent = Some(parent);
            } else {
                tracing::warn!(instance, "the app's control queue is full; a move to another window was dropped");
            }
        }
        for msg in view_messages(view) {
            if !slot.send(msg) {
                tracing::warn!(instance, "the app's control queue is full; a view change was dropped");
            }
        }
    }

    /// Evaluates `js` in an instance's page and returns the result as JSON.
    pub async fn eval(&self, instance: u64, js: &str, timeout: Duration) -> Result<String, EvalError> {
        let id = self.next_eval.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = {
            let mut slots = self.slots.lock();
            let slot = slots.get_mut(&instance).ok_or(EvalError::NoInstance(instance))?;
            if slot.status.kind == HostKind::Native {
                return Err(EvalError::NoPage(instance));
            }
            slot.evals.insert(id, tx);
            slot.send(ShellMsg::Eval { id, js: js.to_owned() })
        };
        let forget = || {
            if let Some(slot) = self.slots.lock().get_mut(&instance) {
                slot.evals.remove(&id);
            }
        };
        if !sent {
            // The host's queues are full: it is not taking what it is sent.
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
        // The shared hosts have no app left: they go now, not after lingering.
        for mut ended in self.groups.clear() {
            let limit = self.policy.grace + std::time::Duration::from_secs(1);
            let _ = tokio::time::timeout(limit, ended.wait_for(Option::is_some)).await;
        }
    }
}
