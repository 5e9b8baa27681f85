//! One app instance's monitor: spawns its host in a process group of its own, serves its
//! connection, pings it and probes its page, detects exits, hangs, stuck pages and hosts over
//! their memory or CPU budget, kills the host's whole tree and restarts it with back-off.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use broker::Broker;
use protocol::wire::{Bounds, HostMsg, ShellMsg};

use crate::host::ipc::{ConnOptions, serve_opts};

use crate::host::host_proc::HostProc;
use crate::host::instance::*;
use crate::host::procs::*;

pub(crate) fn view_messages(view: Option<Bounds>) -> Vec<ShellMsg> {
    match view {
        Some(b) => vec![ShellMsg::SetBounds(b), ShellMsg::SetVisible(true)],
        None => vec![ShellMsg::SetVisible(false)],
    }
}

pub(crate) struct Monitor {
    pub(crate) broker: Broker,
    pub(crate) policy: RestartPolicy,
    pub(crate) slots: Slots,
    pub(crate) changes: Arc<tokio::sync::watch::Sender<u64>>,
    pub(crate) instance: u64,
    pub(crate) spec: AppSpec,
    pub(crate) control_rx: flume::Receiver<ShellMsg>,
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
    pub(crate) traffic: Arc<crate::host::ipc::Traffic>,
    /// The app flooded the bus in an earlier host: its next hosts start at the lowest priority.
    pub(crate) flooded: bool,
    pub(crate) app_events: AppEvents,
    pub(crate) gate: SharedGate,
    pub(crate) endpoint: Arc<crate::host::endpoint::Endpoint>,
    /// Its page's console, for the shell's log.
    pub(crate) console: crate::host::console::ConsoleLog,
    /// The process groups' shared hosts.
    pub(crate) groups: Arc<crate::host::group::Groups>,
}

/// Why the monitor stops: the whole shell, or just this instance.
#[derive(Clone, Copy)]
pub(crate) enum Stop {
    Shutdown,
    Close,
}

impl Monitor {
    pub(crate) fn report(&self, event: AppEvent) {
        crate::host::instance::report(&self.app_events, event);
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut InstanceStatus)) {
        if let Some(s) = self.slots.lock().get_mut(&self.instance) {
            f(&mut s.status);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn finish(&self, stop: Stop) {
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

    pub(crate) async fn stopped(
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Stop {
        tokio::select! {
            () = async { let _ = shutdown.wait_for(|v| *v).await; } => Stop::Shutdown,
            () = async { let _ = stop.wait_for(|v| *v).await; } => Stop::Close,
        }
    }

    pub(crate) async fn run(mut self) {
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

    /// Serves an app started outside the shell (`attached`) until its connection ends, then
    /// closes the instance: it is watched (pings, memory, CPU) like a launched app, but the
    /// shell neither restarts nor kills a process it did not start: over a limit or hung, its
    /// connection is closed.
    pub(crate) async fn run_attached(mut self, attached: crate::host::endpoint::Attached) {
        let pid = attached.pid;
        let (opts, last_pong, events_rx) = self.conn_options();
        let app = self.spec.app.to_string();
        let state = self.slots.lock().get(&self.instance).and_then(|s| s.state.clone());
        let codec = crate::host::endpoint::NativeCodec::new(attached.reader, pid, &app, self.instance, state);
        let mut conn = tokio::spawn(crate::host::ipc::serve_codec(
            self.broker.clone(),
            attached.stream,
            Some(self.spec.app.clone()),
            opts,
            codec,
        ));
        self.update(|s| {
            s.state = AppState::Running;
            s.pid = (pid != 0).then_some(pid);
        });
        let timeout_ms = u64::try_from(self.policy.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
        // Each tick pings the client and looks at its health.
        let mut check = crate::host::beats::Beats::new(self.policy.heartbeat_every);
        let mut nonce = 0u64;
        let mut usage = Usage::new(self.flooded, &self.traffic);
        let (mut last_ack, mut loading) = (Instant::now(), None);
        let why = loop {
            tokio::select! {
                result = &mut conn => break match result {
                    Ok(Ok(())) => "closed its connection".to_owned(),
                    Ok(Err(e)) if lost_connection(&e) => format!("lost its connection: {e:#}"),
                    Ok(Err(e)) => format!("broke the protocol: {e:#}"),
                    Err(e) => format!("connection task failed: {e}"),
                },
                Ok(event) = events_rx.recv_async() => self.on_event(event, &mut last_ack, &mut loading),
                _ = check.tick() => {
                    nonce += 1;
                    self.ping(nonce);
                    if broker::Timestamp::now().millis().saturating_sub(last_pong.load(Ordering::Relaxed)) > timeout_ms {
                        break "hung: no answer to pings; its connection was closed".to_owned();
                    }
                    // (A WebSocket client's process cannot be named: it is not watched.)
                    if pid != 0
                        && usage.due()
                        && let Some(over) = self.scan_usage(pid, &mut usage).await
                    {
                        break match over {
                            Ended::OverMemory(m) => format!("over its memory limit ({} MiB); its connection was closed", m >> 20),
                            Ended::OverCpu(c) => format!("over its CPU limit ({c:.0}% of a core); its connection was closed"),
                            _ => "over a limit; its connection was closed".to_owned(),
                        };
                    }
                }
                stop = Self::stopped(&mut self.shutdown, &mut self.stop) => {
                    conn.abort();
                    self.finish(stop);
                    return;
                }
            }
        };
        conn.abort();
        tracing::warn!(app = %self.spec.app, instance = self.instance, pid, reason = %why, "an app started outside the shell left");
        self.report(AppEvent::HostEnded { instance: self.instance });
        self.finish(Stop::Close);
    }

    /// Runs one host until it ends; says why.
    pub(crate) async fn run_once(&mut self) -> anyhow::Result<Ended> {
        let Started { mut proc, mut conn, last_pong, events: events_rx } = self.start_host()?;
        let (pid, group) = (proc.pid(), proc.group());
        self.update(|s| {
            s.state = AppState::Running;
            s.pid = pid;
            s.group = group;
        });
        // Each tick probes the page, pings the host unless the page answered the last probe,
        // and looks at the host's health.
        let mut check = crate::host::beats::Beats::new(self.policy.heartbeat_every);
        let mut beat = Beat { nonce: 0, last_tick: Instant::now() };
        let has_page = self.spec.origins.is_some();
        // A page is probed once it has loaded; while it loads, `load_timeout` applies.
        let mut loading_since: Option<Instant> = has_page.then(Instant::now);
        let mut last_ack = Instant::now();
        let mut usage = Usage::new(self.flooded, &self.traffic);
        let ended = loop {
            tokio::select! {
                status = proc.exited() => {
                    // A host that broke the protocol and then left: say so, not just how it left.
                    // One that had stopped answering first was hung before it died.
                    let broke = match tokio::time::timeout(Duration::from_millis(200), &mut conn).await {
                        Ok(Ok(Err(e))) if !lost_connection(&e) => Some(format!("broke the protocol: {e:#}")),
                        _ => None,
                    };
                    let status = match silent_for(&last_pong, &self.policy) {
                        Some(s) => format!("hung (no answer to pings for {s} s), then {status}"),
                        None => status,
                    };
                    break Ended::Exited(broke.map_or_else(|| status.clone(), |b| format!("{b}; {status}")));
                }
                result = &mut conn => {
                    // The host closed its end or sent something malformed: it goes.
                    // A host that had stopped answering pings was hung before its connection
                    // ended, however it ended.
                    let silent = silent_for(&last_pong, &self.policy);
                    let why = match result {
                        Ok(Ok(())) => "closed its connection".to_owned(),
                        // A host that stopped reading (frozen) loses its connection; it did
                        // not break the protocol.
                        Ok(Err(e)) if lost_connection(&e) => format!("lost its connection: {e:#}"),
                        Ok(Err(e)) => format!("broke the protocol: {e:#}"),
                        Err(e) => format!("connection task failed: {e}"),
                    };
                    let ended = proc.after_connection(why, self.policy.grace).await;
                    break Ended::Exited(match silent {
                        Some(s) => format!("hung (no answer to pings for {s} s), then {ended}"),
                        None => ended,
                    });
                }
                Ok(event) = events_rx.recv_async() => {
                    if let HostMsg::WebProcess { pid } = event {
                        if proc.set_web(pid) {
                            usage = Usage::new(self.flooded, &self.traffic);
                            usage.gap = Duration::ZERO;
                            check.now();
                        } else {
                            tracing::warn!(app = %self.spec.app, instance = self.instance, pid, "ignored a web process that is not its shared host's");
                        }
                        continue;
                    }
                    if let HostMsg::WebProcessEnded { reason } = event {
                        // The page is gone: the app starts again (its web process is dead
                        // already; a host of its own goes too).
                        let reason: String = reason.chars().take(200).collect();
                        conn.abort();
                        proc.kill().await;
                        break Ended::Exited(format!("its web process {reason}"));
                    }
                    // A page that starts or finishes loading has its web process: look now
                    // rather than at the next tick, so the desk sees it at once.
                    let loading = matches!(event, HostMsg::PageLoad { .. });
                    self.on_event(event, &mut last_ack, &mut loading_since);
                    if loading {
                        usage.gap = Duration::ZERO;
                        check.now();
                    }
                }
                _ = check.tick() => {
                    let over = match self.beat(&mut beat, last_ack, loading_since, &last_pong) {
                        Some(hung) => Some(hung),
                        // Memory and CPU: a watchdog over the host's whole tree (cgroup v2 is
                        // not used yet).
                        None => match proc.watched() {
                            Some(pid) if usage.due() => self.scan_usage(pid, &mut usage).await,
                            _ => None,
                        },
                    };
                    if let Some(over) = over {
                        conn.abort();
                        proc.kill().await;
                        break over;
                    }
                }
                _ = Self::stopped(&mut self.shutdown, &mut self.stop) => {
                    // Ask: closing the connection makes the host leave. Then insist.
                    conn.abort();
                    proc.stop(self.policy.grace).await;
                    return Ok(Ended::Shutdown);
                }
            }
        };
        conn.abort();
        Ok(ended)
    }

    /// Spawns the instance's host in a process group of its own with its end of a socketpair
    /// as standard input, and serves the connection.
    fn start_host(&mut self) -> anyhow::Result<Started> {
        if self.spec.kind == HostKind::Native {
            return self.start_native();
        }
        let (proc, ours) = match &self.spec.group {
            Some(group) => {
                let watch = crate::host::group::Watch {
                    every: self.policy.heartbeat_every,
                    timeout: self.policy.heartbeat_timeout,
                    grace: self.policy.grace,
                    linger: self.policy.group_linger,
                };
                let host = self.groups.lease(group, &self.spec.program, watch)?;
                let ours = host.open(&format!("{} #{}", self.spec.app, self.instance), &self.spec.args)?;
                (HostProc::Shared { group: host, web: None }, ours)
            }
            None => self.spawn_own()?,
        };
        ours.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(ours)?;
        let (opts, last_pong, events_rx) = self.conn_options();
        // A restarted host is told where its view is before anything else queued for it. It
        // starts in the main window: if its view belongs in another, it moves there, shown or
        // hidden.
        if let Some(slot) = self.slots.lock().get(&self.instance) {
            let parent = slot.parent.map(|xid| ShellMsg::SetParent { xid });
            let view = slot.view.map(|b| view_messages(Some(b))).unwrap_or_default();
            for msg in parent.into_iter().chain(view) {
                let _ = slot.send(msg);
            }
        }
        let conn = tokio::spawn(serve_opts(self.broker.clone(), stream, Some(self.spec.app.clone()), opts));
        Ok(Started { proc, conn, last_pong, events: events_rx })
    }

    /// Spawns a host of the instance's own; gives it and the shell's end of its connection.
    fn spawn_own(&self) -> anyhow::Result<(HostProc, std::os::unix::net::UnixStream)> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let child = tokio::process::Command::new(&self.spec.program)
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
        Ok((HostProc::Own { child, pid }, ours))
    }

    /// One heartbeat of a host: its page probed, the host pinged unless the page answered the
    /// last probe (the answer counts as a pong); why it must go, if it is hung or its page is
    /// stuck.
    fn beat(
        &self,
        beat: &mut Beat,
        last_ack: Instant,
        loading_since: Option<Instant>,
        last_pong: &AtomicU64,
    ) -> Option<Ended> {
        let has_page = self.spec.origins.is_some();
        beat.nonce += 1;
        if !(has_page && last_ack >= beat.last_tick) {
            self.ping(beat.nonce);
        }
        beat.last_tick = Instant::now();
        if has_page {
            self.send(ShellMsg::Probe { nonce: beat.nonce });
        }
        let timeout_ms = u64::try_from(self.policy.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
        if broker::Timestamp::now().millis().saturating_sub(last_pong.load(Ordering::Relaxed)) > timeout_ms {
            return Some(Ended::Hung("no answer to pings"));
        }
        match loading_since {
            Some(t) => (t.elapsed() > self.policy.load_timeout).then_some(Ended::Hung("the page did not load")),
            None => (has_page && last_ack.elapsed() > self.policy.heartbeat_timeout)
                .then_some(Ended::Hung("the page's script does not answer")),
        }
    }

    /// Sends the host a message of the shell's (dropped if its connection is gone).
    fn send(&self, msg: ShellMsg) {
        if let Some(slot) = self.slots.lock().get(&self.instance) {
            let _ = slot.send(msg);
        }
    }

    /// Pings the host once its connection is welcomed (before that, or between connections, a
    /// ping would wait in the queue the next connection starts with).
    fn ping(&self, nonce: u64) {
        if let Some(slot) = self.slots.lock().get(&self.instance)
            && slot.out.is_some()
        {
            let _ = slot.send(ShellMsg::Ping { nonce });
        }
    }

    /// How the instance's connection is served (the same for a web view's host and a native
    /// app), the time of its last pong, and its events.
    fn conn_options(&self) -> (ConnOptions, Arc<AtomicU64>, flume::Receiver<HostMsg>) {
        let last_pong = Arc::new(AtomicU64::new(broker::Timestamp::now().millis()));
        let (events_tx, events_rx) = flume::bounded::<HostMsg>(1024);
        // Taken once: a guard in the struct literal below would live to its end.
        let gate = self.gate.lock().clone();
        let opts = ConnOptions {
            // The monitor's own tick pings: the connection has no timer of its own.
            last_pong: Some(Arc::clone(&last_pong)),
            binding: Some(Binding {
                slots: Arc::clone(&self.slots),
                instance: self.instance,
                app: self.spec.app.to_string(),
                control: self.control_rx.clone(),
                app_events: Arc::clone(&self.app_events),
                gate: gate.clone(),
            }),
            events: Some(events_tx),
            counters: Some(Arc::clone(&self.traffic)),
            gate: gate.map(|g| (g, self.instance)),
            rate_limit: self.policy.rate_limit,
            ..ConnOptions::default()
        };
        (opts, last_pong, events_rx)
    }

    /// Spawns a native app in a process group of its own with a one-time launch token in its
    /// environment, and serves the connection that presents it (within the load timeout).
    fn start_native(&mut self) -> anyhow::Result<Started> {
        use anyhow::Context;
        use protocol::native::{ENV_APP_ID, ENV_ENDPOINT, ENV_TOKEN};
        let endpoint = Arc::clone(&self.endpoint);
        let path = endpoint.path().context("the native-app endpoint is not listening")?;
        let app = self.spec.app.to_string();
        let (token, accepted) = endpoint.expect(&app, self.instance, self.policy.load_timeout)?;
        let mut command = tokio::process::Command::new(&self.spec.program);
        command
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .env(ENV_ENDPOINT, &path)
            .env(ENV_TOKEN, &token)
            .env(ENV_APP_ID, &app)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        crate::host::parent_death::die_with_the_shell(&mut command);
        let spawned = command.spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                endpoint.forget(&token);
                return Err(e).with_context(|| format!("starting {}", self.spec.program.display()));
            }
        };
        let pid = child.id();
        endpoint.launched(&token, pid.unwrap_or(0));
        if self.flooded
            && let Some(p) = pid.and_then(|p| rustix::process::Pid::from_raw(p.cast_signed()))
        {
            let _ = rustix::process::setpriority_process(Some(p), 19);
        }
        let (opts, last_pong, events) = self.conn_options();
        let (broker, instance, timeout) = (self.broker.clone(), self.instance, self.policy.load_timeout);
        let pong = Arc::clone(&last_pong);
        let slots = Arc::clone(&self.slots);
        let conn = tokio::spawn(async move {
            // Until it connects, the app is starting: the load timeout applies, not the heartbeat.
            let deadline = Instant::now() + timeout;
            tokio::pin!(accepted);
            let accepted = loop {
                tokio::select! {
                    a = &mut accepted => break a.ok(),
                    () = tokio::time::sleep(Duration::from_millis(250)) => {
                        if Instant::now() >= deadline {
                            break None;
                        }
                        pong.store(broker::Timestamp::now().millis(), Ordering::Relaxed);
                    }
                }
            };
            let Some(accepted) = accepted else {
                endpoint.forget(&token);
                anyhow::bail!("did not connect to the endpoint within {} s", timeout.as_secs());
            };
            pong.store(broker::Timestamp::now().millis(), Ordering::Relaxed);
            // What the app last saved comes with its welcome, as a page finds it at start.
            let state = slots.lock().get(&instance).and_then(|s| s.state.clone());
            let codec = crate::host::endpoint::NativeCodec::new(accepted.reader, accepted.pid, &app, instance, state);
            crate::host::ipc::serve_codec(broker, accepted.stream, Some(broker::AppId::new(&app)), opts, codec).await
        });
        Ok(Started { proc: HostProc::Own { child, pid }, conn, last_pong, events })
    }

    /// Whether the page may go to `url`: its own origin, or one the gate allows
    /// (`navigate:ORIGIN`); a new window also needs `window.open`. While the user is being
    /// asked, the answer is no (their answer holds for the next try).
    pub(crate) fn navigation_allowed(&self, url: &str, new_window: bool) -> bool {
        let Some(origins) = self.spec.origins.as_ref() else { return false };
        let gate = self.gate.lock().clone();
        let app = self.spec.app.to_string();
        let ask = |name: &str, scope: Option<&str>| match (&gate, policy::Permission::new(name, scope)) {
            (Some(g), Ok(p)) => matches!(g.check(self.instance, &app, &p), crate::host::gate::Access::Allow),
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
    pub(crate) fn on_permission_request(&self, id: u64, permissions: &[String]) {
        let gate = self.gate.lock().clone();
        let app = self.spec.app.to_string();
        let mut asks = Vec::new();
        let mut allow = gate.is_some() && !permissions.is_empty();
        for name in permissions {
            let (Some(g), Ok(p)) = (&gate, policy::Permission::new(name, None)) else {
                allow = false;
                break;
            };
            match g.check(self.instance, &app, &p) {
                crate::host::gate::Access::Allow => {}
                crate::host::gate::Access::Deny(why) => {
                    tracing::info!(%app, instance = self.instance, %name, "WebKit permission refused: {why}");
                    allow = false;
                    break;
                }
                crate::host::gate::Access::Ask(answer) => asks.push(answer),
            }
        }
        let slots = Arc::clone(&self.slots);
        let instance = self.instance;
        let decide = move |allow: bool| {
            if let Some(slot) = slots.lock().get(&instance) {
                let _ = slot.send(ShellMsg::PermissionDecision { id, allow });
            }
        };
        if !allow || asks.is_empty() {
            decide(allow);
            return;
        }
        crate::host::gate::hold(asks, move |all| async move { decide(all) });
    }

    pub(crate) fn on_event(&self, event: HostMsg, last_ack: &mut Instant, loading_since: &mut Option<Instant>) {
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
                if state.len() > protocol::wire::MAX_APP_STATE
                    || serde_json::from_slice::<serde::de::IgnoredAny>(&state).is_err()
                {
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
                    let _ = slot.send(ShellMsg::NavigationDecision { id, allow });
                }
            }
            // FDC3 goes through the connection's binding, which checks its permissions; one that
            // arrives here came on a connection bound to nothing and is not for the agent.
            HostMsg::Fdc3 { .. } => {
                tracing::warn!(app = %self.spec.app, instance = self.instance, "an FDC3 message outside a bound connection was dropped");
            }
            HostMsg::PermissionRequest { id, permissions } => self.on_permission_request(id, &permissions),
            HostMsg::Console { level, text } => {
                self.console.line(level, &text);
            }
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

/// What a host's heartbeats keep between two ticks.
pub(crate) struct Beat {
    nonce: u64,
    /// When the last probe went.
    last_tick: Instant,
}

/// What the watchdog keeps between two looks at a host's process tree.
pub(crate) struct Usage {
    pub(crate) last_scan: Instant,
    /// (when, CPU ticks of the whole tree) over the last `cpu_window`.
    cpu_samples: std::collections::VecDeque<(Instant, u64)>,
    ticks_per_sec: f64,
    /// A host that floods the bus is slowed by its rate limit; its processes also go to the
    /// lowest CPU priority, so that what it burns in its own page does not starve the others.
    demoted: bool,
    throttled_before: u64,
    sent_at_scan: u64,
    pss: crate::host::procs::PssCache,
    tree: crate::host::procs::TreeWatch,
    /// How long until the next look.
    pub(crate) gap: Duration,
}

impl Usage {
    pub(crate) fn new(flooded: bool, traffic: &crate::host::ipc::Traffic) -> Self {
        Self {
            last_scan: Instant::now() - Duration::from_secs(1),
            cpu_samples: std::collections::VecDeque::new(),
            ticks_per_sec: rustix::param::clock_ticks_per_second().max(1) as f64,
            demoted: flooded,
            throttled_before: traffic.throttled.load(Ordering::Relaxed),
            sent_at_scan: traffic.from_app.load(Ordering::Relaxed),
            pss: crate::host::procs::PssCache::default(),
            tree: crate::host::procs::TreeWatch::default(),
            gap: Self::CLOSE,
        }
    }

    /// Whether the tree is due a look: its gap has passed, give or take the lateness of a
    /// beat (beats come on the second; one a moment early must not put the look off a whole
    /// beat).
    pub(crate) fn due(&self) -> bool {
        self.last_scan.elapsed() + Duration::from_millis(100) >= self.gap
    }

    /// Between two looks at a tree that is busy or near a limit.
    pub(crate) const CLOSE: Duration = Duration::from_millis(500);
    /// Between two looks at a quiet tree.
    pub(crate) const QUIET: Duration = Duration::from_secs(2);
    /// Share of a core (as a fraction) above which a tree counts as busy.
    const BUSY: f64 = 0.05;
}

impl Monitor {
    /// Looks at the host's whole process tree: memory (PSS), CPU over the window, the app's
    /// message rate; reports them, demotes a flooding app, and says whether the host is over
    /// a limit and must go.
    pub(crate) async fn scan_usage(&mut self, pid: u32, u: &mut Usage) -> Option<Ended> {
        let last_scan_gap = u.last_scan.elapsed();
        u.last_scan = Instant::now();
        // Reading /proc blocks: off the runtime's threads, which carry the apps' messages.
        let (mut pss, mut watch) = (std::mem::take(&mut u.pss), std::mem::take(&mut u.tree));
        let limit = self.policy.memory_limit_bytes;
        let read = tokio::task::spawn_blocking(move || {
            let tree = watch.tree(pid);
            let resident = crate::host::procs::resident(&tree);
            // Under its limit by resident size, the tree is under it by PSS: the figure is
            // only shown, and an old reading scaled by the resident size will do.
            let near = limit.is_some_and(|l| resident >= l);
            let max_age = if near { PssCache::NEAR_LIMIT } else { PssCache::SHOWN_ONLY };
            let rss = pss.memory(&tree, max_age);
            (tree, rss, resident, pss, watch)
        });
        let (tree, rss, resident, pss, watch) = read.await.ok()?;
        (u.pss, u.tree) = (pss, watch);
        let web: Vec<u32> = tree.iter().filter(|p| p.comm == WEB_PROCESS).map(|p| p.pid).collect();
        // CPU: the tree's ticks now against the oldest sample in the window.
        // (A child that exited takes its ticks with it: the sum may drop.)
        let now = Instant::now();
        let ticks: u64 = tree.iter().map(|p| p.cpu_ticks).sum();
        let busy = u.cpu_samples.back().is_some_and(|(t, before)| {
            let used = ticks.saturating_sub(*before) as f64 / u.ticks_per_sec;
            used > Usage::BUSY * now.duration_since(*t).as_secs_f64()
        });
        u.cpu_samples.push_back((now, ticks));
        while u.cpu_samples.len() > 2
            && u.cpu_samples.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= self.policy.cpu_window)
        {
            u.cpu_samples.pop_front();
        }
        let (since, cpu) = u.cpu_samples.front().map_or((Duration::ZERO, 0.0), |(t, first)| {
            let span = now.duration_since(*t);
            let used = ticks.saturating_sub(*first) as f64 / u.ticks_per_sec;
            (span, if span.is_zero() { 0.0 } else { 100.0 * used / span.as_secs_f64() })
        });
        let sent_now = self.traffic.from_app.load(Ordering::Relaxed);
        let rate = (sent_now.saturating_sub(u.sent_at_scan) as f64) / last_scan_gap.as_secs_f64().max(0.001);
        u.sent_at_scan = sent_now;
        if !u.demoted && (self.traffic.throttled.load(Ordering::Relaxed) > u.throttled_before || rate > FLOOD_RATE) {
            u.demoted = true;
            self.flooded = true;
            tracing::warn!(app = %self.spec.app, instance = self.instance, "the app floods the bus: its processes now run at the lowest priority");
            for p in &tree {
                if let Some(pid) = rustix::process::Pid::from_raw(p.pid.cast_signed()) {
                    let _ = rustix::process::setpriority_process(Some(pid), 19);
                }
            }
        }
        let (sent, given) =
            (self.traffic.from_app.load(Ordering::Relaxed), self.traffic.to_app.load(Ordering::Relaxed));
        let throttled = self.traffic.throttled.load(Ordering::Relaxed);
        self.update(|s| {
            s.messages_out = sent;
            s.messages_in = given;
            s.throttled = throttled;
            s.memory_bytes = Some(rss);
            s.web_pids = web;
            s.cpu_percent = (!since.is_zero()).then_some((cpu * 10.0).round() / 10.0);
        });
        // A tree that works, or is watched for its CPU, or has half its memory limit resident, is
        // looked at often; a quiet one, where nothing can be over a limit soon, seldom.
        let watched =
            busy || self.policy.cpu_limit_percent.is_some() || limit.is_some_and(|l| resident.saturating_mul(2) >= l);
        u.gap = if watched { Usage::CLOSE } else { Usage::QUIET };
        if let Some(limit) = self.policy.cpu_limit_percent
            && since >= self.policy.cpu_window
            && cpu > f64::from(limit)
        {
            return Some(Ended::OverCpu(cpu));
        }
        self.policy.memory_limit_bytes.is_some_and(|limit| rss > limit).then_some(Ended::OverMemory(rss))
    }
}

/// A host just started: its process, its connection's task, and what the connection reports.
pub(crate) struct Started {
    proc: HostProc,
    conn: tokio::task::JoinHandle<anyhow::Result<()>>,
    last_pong: Arc<AtomicU64>,
    events: flume::Receiver<HostMsg>,
}

/// Whether a connection ended because the socket failed (the host died, froze or stopped
/// reading) rather than because of what the host sent.
fn lost_connection(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some())
}

/// How long (seconds, one decimal) the host has not answered pings, when that is longer than
/// two heartbeats (it was hung, not merely busy).
fn silent_for(last_pong: &std::sync::atomic::AtomicU64, policy: &RestartPolicy) -> Option<String> {
    let silent_ms = broker::Timestamp::now().millis().saturating_sub(last_pong.load(Ordering::Relaxed));
    let limit = u64::try_from(policy.heartbeat_every.as_millis()).unwrap_or(u64::MAX).saturating_mul(2);
    (silent_ms > limit).then(|| format!("{:.1}", silent_ms as f64 / 1000.0))
}
