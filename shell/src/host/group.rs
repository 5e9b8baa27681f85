//! Process groups: apps whose views share one `tessera-app-host` (one GTK loop, one WebKit
//! network process), each page still in a web process of its own.
//!
//! [`Groups`] starts a group's host when an app of the group first needs it (or ahead, as a
//! spare: [`Groups::warm`]) and hands each instance's monitor a lease ([`GroupHost`]); a host
//! whose last lease has gone stays a while (`RestartPolicy::group_linger`, 30 s) for the next
//! app of its group (a trader closing
//! and opening an app waits for no GTK or WebKit to start), then is asked to leave. A task per
//! host watches it: its GTK loop is pinged over the control socket (every view
//! needs it), and a host that exits or stops answering is killed with everything under it; its
//! end is published, and every monitor in the group restarts its app from its saved state.

mod control;

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use protocol::wire::{GroupMsg, GroupReply};

use crate::host::instance::GroupSpec;

/// How long a new host may take to answer its first ping (starting GTK can take seconds on a
/// busy desk).
const FIRST_ANSWER: Duration = Duration::from_secs(15);

/// The groups' running hosts, by name: each held here (so it may linger) and by its leases.
type Running = Arc<Mutex<HashMap<String, Arc<GroupHost>>>>;

/// The groups whose hosts run, by name.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    running: Running,
}

/// One group's running host, while any lease on it is held.
#[derive(Debug)]
pub(crate) struct GroupHost {
    name: String,
    pid: u32,
    control: Arc<OwnedFd>,
    /// Why the host ended, once it has.
    ended: tokio::sync::watch::Receiver<Option<String>>,
    /// The memory (PSS) of the host and what it shares (its network process): everything
    /// under it but the views' web processes, each of which is its app's.
    memory: Arc<AtomicU64>,
    /// Dropped with the host (its last lease, and the registry's hold once it has lingered):
    /// the watching task then asks the host to leave.
    _leave: tokio::sync::oneshot::Sender<()>,
}

/// How a group's host is watched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watch {
    /// How often its GTK loop is pinged.
    pub(crate) every: Duration,
    /// How long without an answer before it counts as hung.
    pub(crate) timeout: Duration,
    /// How long it may take to leave before it is killed.
    pub(crate) grace: Duration,
    /// How long it stays with no app in it.
    pub(crate) linger: Duration,
}

impl Groups {
    /// A lease on `spec`'s host (`program`), started if it does not run (or has ended).
    pub(crate) fn lease(
        &self,
        spec: &GroupSpec,
        program: &std::path::Path,
        watch: Watch,
    ) -> anyhow::Result<Arc<GroupHost>> {
        let mut running = self.running.lock();
        if let Some(host) = running.get(&spec.name)
            && host.ended.borrow().is_none()
        {
            return Ok(Arc::clone(host));
        }
        let host = GroupHost::start(spec, program, watch, &self.running)?;
        running.insert(spec.name.clone(), Arc::clone(&host));
        Ok(host)
    }

    /// Starts `spec`'s host ahead of its apps, if it does not run: a spare, which stays
    /// `watch.linger` if no app comes.
    pub(crate) fn warm(&self, spec: &GroupSpec, program: &std::path::Path, watch: Watch) -> anyhow::Result<()> {
        self.lease(spec, program, watch).map(drop)
    }

    /// Lets every host go (the shell is stopping): each is asked to leave once its last lease
    /// has gone. Gives what says when each has ended.
    pub(crate) fn clear(&self) -> Vec<tokio::sync::watch::Receiver<Option<String>>> {
        self.running.lock().drain().map(|(_, h)| h.ended.clone()).collect()
    }

    /// The groups whose hosts run: (name, pid, leases held, memory of what the views share).
    pub(crate) fn running(&self) -> Vec<(String, u32, usize, Option<u64>)> {
        let running = self.running.lock();
        let mut v: Vec<_> = running
            .iter()
            .filter_map(|(name, host)| {
                // (The registry's own is not a lease.)
                let leases = Arc::strong_count(host) - 1;
                let memory = Some(host.memory.load(Ordering::Relaxed)).filter(|m| *m > 0);
                host.ended.borrow().is_none().then(|| (name.clone(), host.pid, leases, memory))
            })
            .collect();
        v.sort();
        v
    }
}

impl GroupHost {
    /// Starts the host in a process group of its own with its end of the control socket as
    /// standard input, and the task that watches it.
    fn start(
        spec: &GroupSpec,
        program: &std::path::Path,
        watch: Watch,
        running: &Running,
    ) -> anyhow::Result<Arc<Self>> {
        let (ours, theirs) = control::pair()?;
        let mut child = tokio::process::Command::new(program)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(theirs))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap_or_default();
        tracing::info!(group = %spec.name, pid, "started a shared app host");
        let control = Arc::new(ours);
        let (ended_tx, ended) = tokio::sync::watch::channel(None);
        let (leave, left) = tokio::sync::oneshot::channel();
        let last_pong = Arc::new(AtomicU64::new(0));
        {
            let (control, last_pong, name) = (Arc::clone(&control), Arc::clone(&last_pong), spec.name.clone());
            std::thread::Builder::new().name(format!("group-{}", spec.name)).spawn(move || {
                control::read_replies(&control, &name, |reply| match reply {
                    GroupReply::Pong { nonce } => last_pong.store(nonce, Ordering::Relaxed),
                    GroupReply::Refused { label, error } => {
                        tracing::warn!(group = %name, view = %label, "the shared host refused a view: {error}");
                    }
                });
            })?;
        }
        let name = spec.name.clone();
        let task_control = Arc::clone(&control);
        let memory = Arc::new(AtomicU64::new(0));
        let task_memory = Arc::clone(&memory);
        let (me_tx, me_rx) = tokio::sync::oneshot::channel::<Weak<GroupHost>>();
        let running = Arc::clone(running);
        tokio::spawn(async move {
            let me = me_rx.await.unwrap_or_default();
            let seen = Seen { last_pong: &last_pong, memory: &task_memory };
            let held = Held { me, running, name: name.clone() };
            let why = watch_host(&mut child, pid, &task_control, seen, watch, left, held).await;
            crate::host::procs::kill_tree(pid);
            let _ = child.start_kill();
            let _ = child.wait().await;
            tracing::info!(group = %name, pid, "the shared app host ended: {why}");
            let _ = ended_tx.send(Some(why));
        });
        let host = Arc::new(Self { name: spec.name.clone(), pid, control, ended, memory, _leave: leave });
        let _ = me_tx.send(Arc::downgrade(&host));
        Ok(host)
    }

    /// The group's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The host's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Opens a view for instance `label` with `args` (as a host of its own would get them);
    /// gives the shell's end of the view's connection.
    pub(crate) fn open(&self, label: &str, args: &[String]) -> std::io::Result<std::os::unix::net::UnixStream> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let msg = GroupMsg::Open { label: label.to_owned(), args: args.to_vec() };
        control::send(&self.control, &msg, Some(theirs.as_fd()))?;
        Ok(ours)
    }

    /// Why the host ended, once it has: waits until then.
    pub(crate) async fn ended(&self) -> String {
        let mut ended = self.ended.clone();
        match ended.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "its watch ended".to_owned(),
        }
    }

    /// Whether `pid` is a process the host started itself (a view's web process).
    pub(crate) fn is_child(&self, pid: u32) -> bool {
        crate::host::procs::read_proc(pid).is_some_and(|p| p.ppid == self.pid)
    }
}

/// What the watch of a host learns: its last pong, and its memory.
struct Seen<'a> {
    last_pong: &'a AtomicU64,
    memory: &'a Arc<AtomicU64>,
}

/// Where a host is held, for the watch to let it go once it has lingered with no app.
struct Held {
    me: Weak<GroupHost>,
    running: Running,
    name: String,
}

impl Held {
    /// Whether only the registry holds the host (no app has a lease on it).
    fn idle(&self) -> bool {
        self.me.strong_count() <= 1
    }

    /// Lets the host go from the registry (if it is still this host there).
    fn release(&self) {
        // (Looked at again under the lock leases are taken under: none was taken meanwhile.)
        let mut running = self.running.lock();
        if self.idle() && running.get(&self.name).is_some_and(|h| std::ptr::eq(Arc::as_ptr(h), self.me.as_ptr())) {
            running.remove(&self.name);
        }
    }
}

/// How often the memory of what a group's views share is read.
const MEMORY_EVERY: u64 = 2;

/// Watches the host until it exits, stops answering, or its last lease goes; says why it ended.
async fn watch_host(
    child: &mut tokio::process::Child,
    pid: u32,
    control: &OwnedFd,
    seen: Seen<'_>,
    watch: Watch,
    mut left: tokio::sync::oneshot::Receiver<()>,
    held: Held,
) -> String {
    let Seen { last_pong, memory } = seen;
    let mut idle_since = None::<tokio::time::Instant>;
    let reading =
        Arc::new(Mutex::new((crate::host::procs::TreeWatch::default(), crate::host::procs::PssCache::default())));
    let mut ticks = tokio::time::interval(watch.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = tokio::time::Instant::now();
    let (mut answered_at, mut seen) = (None::<tokio::time::Instant>, 0u64);
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            status = child.wait() => {
                return match status {
                    Ok(s) => crate::host::instance::describe(s),
                    Err(e) => format!("wait failed: {e}"),
                };
            }
            _ = &mut left => {
                // No app is left in it: ask it to leave, then insist.
                control::close(control);
                return match tokio::time::timeout(watch.grace, child.wait()).await {
                    Ok(_) => "no app is left in it".to_owned(),
                    Err(_) => "no app is left in it; killed after the grace period".to_owned(),
                };
            }
            _ = ticks.tick() => {
                let now = tokio::time::Instant::now();
                let answered = last_pong.load(Ordering::Relaxed);
                if answered > seen {
                    (seen, answered_at) = (answered, Some(now));
                }
                let (since, allowed) = match answered_at {
                    Some(t) => (t, watch.timeout),
                    None => (started, FIRST_ANSWER.max(watch.timeout)),
                };
                if now.duration_since(since) > allowed {
                    tracing::warn!(pid, "a shared app host's GTK loop stopped answering");
                    return format!("hung: its GTK loop did not answer for {:.1} s", now.duration_since(since).as_secs_f64());
                }
                if held.idle() {
                    let since = *idle_since.get_or_insert(now);
                    if now.duration_since(since) >= watch.linger {
                        // Nothing came for it: it goes (`left` fires next).
                        held.release();
                    }
                } else {
                    idle_since = None;
                }
                nonce += 1;
                if let Err(e) = control::send(control, &GroupMsg::Ping { nonce }, None) {
                    tracing::debug!(pid, "could not ping a shared app host: {e}");
                }
                if nonce % MEMORY_EVERY == 1 {
                    // Reading /proc blocks: off the runtime's threads.
                    let (reading, memory) = (Arc::clone(&reading), Arc::clone(memory));
                    drop(tokio::task::spawn_blocking(move || {
                        let (watch, pss) = &mut *reading.lock();
                        let shared: Vec<_> =
                            watch.tree(pid).into_iter().filter(|p| p.comm != crate::host::procs::WEB_PROCESS).collect();
                        memory.store(pss.memory(&shared, crate::host::procs::PssCache::SHOWN_ONLY), Ordering::Relaxed);
                    }));
                }
            }
        }
    }
}
