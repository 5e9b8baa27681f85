//! The running shell's side of updates: a build on probation reports its healthy start; the
//! shell checks the feed at start-up and on the policy's schedule, downloads in the background
//! with a progress bar, and copies every update event into the audit log.

use std::sync::Arc;
use std::time::Duration;

use compositor::{Command as UiCommand, UpdateBanner};
use policy::UpdateRules;
use policy::signing::Checker;
use shell::host::supervisor::{AppState, HostKind, InstanceStatus};
use update::install::{Install, Progress, Watch};

use super::Shell;
use crate::commands::update::{self as update_cmd, Outcome};
use update::guard::PROBATION_ENV;

/// Key, in the profile's settings, of how many update events went into the audit log.
const EVENTS_COPIED: &str = "update.events_copied";

/// Runs the shell's update duties until it quits.
pub(super) async fn run(shell: Arc<Shell>, install: Install, rules: Option<(UpdateRules, Checker)>) {
    let probation = std::env::var(PROBATION_ENV).ok();
    copy_events(&shell, &install);
    wait_healthy(&shell).await;
    if let Some(version) = probation {
        let i = install.clone();
        match tokio::task::spawn_blocking(move || i.confirm(&version)).await {
            Ok(Ok(true)) => tracing::info!("this new build started healthy; its probation is over"),
            Ok(Ok(false)) => tracing::warn!("started on probation, but no probation is recorded"),
            Ok(Err(e)) => tracing::error!("could not end the probation: {e}"),
            Err(e) => tracing::error!("could not end the probation: {e}"),
        }
    }
    copy_events(&shell, &install);
    let Some((rules, checker)) = rules else { return };
    shell.updater.lock().enabled = true;
    let ui = shell.ui.clone();
    let watch = Watch {
        progress: Arc::new(move |p: Progress| {
            let percent = p.received.saturating_mul(100) / p.total.max(1);
            ui.send(UiCommand::SetUpdate(Some(UpdateBanner {
                text: format!("Downloading update ({} of {} MB)", p.received >> 20, p.total >> 20),
                progress: Some(f32::from(u8::try_from(percent.min(100)).unwrap_or(100)) / 100.0),
            })));
        }),
        ..Watch::default()
    };
    {
        // Quitting stops a download at once (and removes what it wrote).
        let cancel = Arc::clone(&watch.cancel);
        let mut quit = shell.quit.subscribe();
        tokio::spawn(async move {
            let _ = quit.wait_for(|q| *q).await;
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    loop {
        let (i, r, c, w) = (install.clone(), rules.clone(), checker.clone(), watch.clone());
        let checked = tokio::task::spawn_blocking(move || update_cmd::check(&i, &r, &c, true, &w)).await;
        let (outcome, problem) = match &checked {
            Ok(Ok(o)) => (outcome_name(o), None),
            Ok(Err(e)) => ("failed", Some(format!("{e:#}"))),
            Err(e) => ("failed", Some(format!("the check panicked: {e}"))),
        };
        shell.permissions.counters.update_check(outcome);
        let banner = match checked {
            Ok(Ok(Outcome::Staged(v))) => {
                shell.updater.lock().staged = Some(v.clone());
                Some(UpdateBanner { text: format!("Tessera {v} is ready: restart to install it"), progress: None })
            }
            Ok(Ok(o)) => {
                tracing::info!(outcome = ?o, "update check");
                None
            }
            Ok(Err(e)) => {
                tracing::warn!("update check failed: {e}");
                None
            }
            Err(e) => {
                tracing::error!("update check panicked: {e}");
                None
            }
        };
        {
            let mut u = shell.updater.lock();
            u.checks += 1;
            u.last_outcome = Some(outcome.to_owned());
            u.failing = problem;
        }
        shell.ui.send(UiCommand::SetUpdate(banner));
        copy_events(&shell, &install);
        if rules.check_every_minutes == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(rules.check_every_minutes * 60)).await;
    }
}

/// What the updater last did, for health and metrics.
#[derive(Debug, Default)]
pub(super) struct UpdaterStatus {
    /// Whether the policy turns updates on.
    pub(super) enabled: bool,
    /// Checks since the shell started.
    pub(super) checks: u64,
    /// The last check's outcome (`up_to_date`, `staged`, `failed`...).
    pub(super) last_outcome: Option<String>,
    /// Why the last check failed, if it did.
    pub(super) failing: Option<String>,
    /// A version staged for the next start.
    pub(super) staged: Option<String>,
}

/// A check's outcome as a metric label.
fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Disabled => "disabled",
        Outcome::UpToDate(_) => "up_to_date",
        Outcome::NotYet { .. } => "not_yet",
        Outcome::Pinned { .. } => "pinned",
        Outcome::Refused(_) => "refused",
        Outcome::Available(_) => "available",
        Outcome::Staged(_) => "staged",
        Outcome::Waiting { .. } => "waiting",
    }
}

/// Waits until the start-up desk is up and every app it started has a host that answers and a
/// web process showing its page.
async fn wait_healthy(shell: &Shell) {
    let mut restored = shell.restored.subscribe();
    let _ = restored.wait_for(|r| *r).await;
    loop {
        let status = shell.supervisor.status();
        // Each host answers, its WebKit web process runs, and its page has started loading (a
        // native app: it runs and answers).
        let healthy = |s: &InstanceStatus| {
            s.state == AppState::Running && (s.kind == HostKind::Native || (s.url.is_some() && !s.web_pids.is_empty()))
        };
        if status.iter().all(healthy) {
            tracing::info!(apps = status.len(), "healthy start");
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Copies update events not yet in the audit log into it.
fn copy_events(shell: &Shell, install: &Install) {
    let Ok(text) = std::fs::read_to_string(install.events_path()) else { return };
    let key = format!("{EVENTS_COPIED}:{}", install.root().display());
    let done: usize = shell.profile.setting(&key).ok().flatten().unwrap_or(0);
    // Only whole lines: a line torn by a crash is not counted, and is read again once whole.
    let lines: Vec<&str> = text.split_inclusive('\n').filter(|l| l.ends_with('\n')).map(str::trim_end).collect();
    if done >= lines.len() {
        return;
    }
    for line in &lines[done..] {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let s = |k: &str| e.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
        let mut details = e.get("details").cloned().unwrap_or_default();
        if let Some(d) = details.as_object_mut() {
            d.insert("at".into(), serde_json::json!(s("time")));
        }
        shell.permissions.record("updater", None, &s("action"), &s("version"), &s("outcome"), details);
    }
    if let Err(e) = shell.profile.set_setting(&key, &lines.len()) {
        tracing::warn!("could not note the update events copied: {e}");
    }
}
