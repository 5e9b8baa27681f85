//! The supervisor: one `tessera-app-host` process per app instance, watched like a service.
//!
//! Each instance has a monitor task that spawns the host with its end of a socketpair as
//! stdin, serves the connection, and pings it. It notices a crash (the process exits, or
//! the connection ends) and a hang (no pong within the timeout: the host is killed). It then
//! restarts the host with exponential back-off, until `max_crashes` crashes within `window`
//! mark the instance failed. A host never outlives the shell: it exits when its socket closes,
//! and the monitor kills it if it does not.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use broker::{AppId, Broker};
use parking_lot::Mutex;
use serde::Serialize;

use crate::ipc::{ConnOptions, now_ms, serve_opts};

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
    /// How often the host is pinged.
    pub heartbeat_every: Duration,
    /// How long without a pong before the host counts as hung and is killed.
    pub heartbeat_timeout: Duration,
    /// How long a host may take to leave after its connection closes before it is killed.
    pub grace: Duration,
    /// Resident memory a host may use before it is killed (checked with the heartbeat).
    pub memory_limit_bytes: Option<u64>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff_start: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_crashes: 5,
            window: Duration::from_secs(60),
            heartbeat_every: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_secs(3),
            grace: Duration::from_secs(2),
            memory_limit_bytes: Some(2 << 30),
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

/// One instance, as `tessera ctl apps` will show it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    /// The app.
    pub app: String,
    /// The instance number.
    pub instance: u64,
    /// The host's pid while it runs.
    pub pid: Option<u32>,
    /// Its state.
    pub state: AppState,
    /// Restarts so far.
    pub restarts: u32,
    /// Why the last host ended.
    pub last_exit: Option<String>,
}

/// Supervises app-host processes on the current tokio runtime.
#[derive(Debug)]
pub struct Supervisor {
    broker: Broker,
    policy: RestartPolicy,
    instances: Arc<Mutex<HashMap<u64, InstanceStatus>>>,
    next: Mutex<u64>,
    shutdown: tokio::sync::watch::Sender<bool>,
    monitors: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

enum Ended {
    Exited(String),
    Hung,
    OverMemory(u64),
    Shutdown,
}

/// Resident set size of a process, from `/proc/<pid>/status`.
///
/// ## Platform-specific
/// Linux only; elsewhere `None`, and no memory limit applies.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Supervisor {
    /// A supervisor whose hosts talk to `broker`.
    pub fn new(broker: Broker, policy: RestartPolicy) -> Self {
        let (shutdown, _) = tokio::sync::watch::channel(false);
        Self {
            broker,
            policy,
            instances: Arc::new(Mutex::new(HashMap::new())),
            next: Mutex::new(1),
            shutdown,
            monitors: Mutex::new(Vec::new()),
        }
    }

    /// Starts an instance of an app; returns its number. Must be called within a tokio runtime.
    pub fn launch(&self, spec: AppSpec) -> u64 {
        let instance = {
            let mut n = self.next.lock();
            *n += 1;
            *n - 1
        };
        self.instances.lock().insert(
            instance,
            InstanceStatus {
                app: spec.app.to_string(),
                instance,
                pid: None,
                state: AppState::Starting,
                restarts: 0,
                last_exit: None,
            },
        );
        let monitor = Monitor {
            broker: self.broker.clone(),
            policy: self.policy.clone(),
            instances: Arc::clone(&self.instances),
            instance,
            spec,
            shutdown: self.shutdown.subscribe(),
        };
        self.monitors.lock().push(tokio::spawn(monitor.run()));
        instance
    }

    /// Every instance's status, by instance number.
    pub fn status(&self) -> Vec<InstanceStatus> {
        let mut v: Vec<_> = self.instances.lock().values().cloned().collect();
        v.sort_by_key(|s| s.instance);
        v
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

struct Monitor {
    broker: Broker,
    policy: RestartPolicy,
    instances: Arc<Mutex<HashMap<u64, InstanceStatus>>>,
    instance: u64,
    spec: AppSpec,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Monitor {
    fn update(&self, f: impl FnOnce(&mut InstanceStatus)) {
        if let Some(s) = self.instances.lock().get_mut(&self.instance) {
            f(s);
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
                    self.update(|s| {
                        s.state = AppState::Stopped;
                        s.pid = None;
                    });
                    return;
                }
                Ended::Hung => "hung: no answer to pings".to_owned(),
                Ended::OverMemory(rss) => format!("killed over its memory limit ({} MiB resident)", rss >> 20),
                Ended::Exited(why) => why,
            };
            tracing::warn!(app = %self.spec.app, instance = self.instance, reason = %why, "app host ended");
            let now = Instant::now();
            crashes.retain(|t| now.duration_since(*t) < self.policy.window);
            crashes.push(now);
            if crashes.len() >= self.policy.max_crashes {
                tracing::error!(app = %self.spec.app, instance = self.instance, "app crashed too often; not restarting");
                self.update(|s| {
                    s.state = AppState::Failed;
                    s.pid = None;
                    s.last_exit = Some(why);
                });
                return;
            }
            let exp = u32::try_from(crashes.len() - 1).unwrap_or(u32::MAX).min(16);
            let delay = self.policy.backoff_start.saturating_mul(1 << exp).min(self.policy.backoff_max);
            self.update(|s| {
                s.state = AppState::Restarting;
                s.pid = None;
                s.restarts += 1;
                s.last_exit = Some(why);
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.shutdown.changed() => {
                    self.update(|s| s.state = AppState::Stopped);
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
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id();
        ours.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(ours)?;
        let last_pong = Arc::new(AtomicU64::new(now_ms()));
        let opts = ConnOptions {
            ping_every: Some(self.policy.heartbeat_every),
            last_pong: Some(Arc::clone(&last_pong)),
            ..ConnOptions::default()
        };
        let mut conn = tokio::spawn(serve_opts(self.broker.clone(), stream, Some(self.spec.app.clone()), opts));
        self.update(|s| {
            s.state = AppState::Running;
            s.pid = pid;
        });
        let timeout_ms = u64::try_from(self.policy.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut check = tokio::time::interval(self.policy.heartbeat_every.min(Duration::from_millis(250)));
        let ended = loop {
            tokio::select! {
                status = child.wait() => {
                    break Ended::Exited(match status {
                        Ok(s) => describe(s),
                        Err(e) => format!("wait failed: {e}"),
                    });
                }
                result = &mut conn => {
                    // The host closed its end or sent something malformed: it goes.
                    let why = match result {
                        Ok(Ok(())) => "closed its connection".to_owned(),
                        Ok(Err(e)) => format!("broke the protocol: {e:#}"),
                        Err(e) => format!("connection task failed: {e}"),
                    };
                    break Ended::Exited(match tokio::time::timeout(self.policy.grace, child.wait()).await {
                        // A crash usually shows as the socket closing first: say how it ended.
                        Ok(Ok(status)) if !status.success() => describe(status),
                        Ok(Ok(status)) => format!("{why}; {}", describe(status)),
                        Ok(Err(e)) => format!("{why}; wait failed: {e}"),
                        Err(_) => {
                            let _ = child.kill().await;
                            format!("{why}; killed after the grace period")
                        }
                    });
                }
                _ = check.tick() => {
                    if now_ms().saturating_sub(last_pong.load(Ordering::Relaxed)) > timeout_ms {
                        let _ = child.kill().await;
                        break Ended::Hung;
                    }
                    // An RSS watchdog: the memory limit where cgroups are not at hand.
                    if let (Some(limit), Some(rss)) = (self.policy.memory_limit_bytes, pid.and_then(rss_bytes))
                        && rss > limit
                    {
                        let _ = child.kill().await;
                        break Ended::OverMemory(rss);
                    }
                }
                _ = self.shutdown.changed() => {
                    // Ask: closing the connection makes the host leave. Then insist.
                    conn.abort();
                    if tokio::time::timeout(self.policy.grace, child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                    return Ok(Ended::Shutdown);
                }
            }
        };
        conn.abort();
        Ok(ended)
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
