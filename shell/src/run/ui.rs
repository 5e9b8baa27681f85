//! The window's side of the shell: `UiEvent`s from the compositor turned into supervisor,
//! agent and workspace calls, and the view models (tiles, the launcher's apps, grants, health)
//! pushed back to it.

use std::sync::Arc;

use compositor::{Command as UiCommand, LauncherApp, TileView, UiEvent};
use protocol::wire::Bounds;
use serde_json::json;
use shell::host::supervisor::{AppState, HostKind};

use super::launch::start_desk;
use super::{Shell, fdc3};

pub(super) async fn window_events(shell: Arc<Shell>, events: flume::Receiver<UiEvent>) {
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
                let outputs = fdc3::decide(&shell, |agent, now| agent.resolved(id, choice, now));
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

/// What the window shows of the supervisor's state: one tile per instance, and the launcher.
pub(super) fn views(shell: &Shell) -> (Vec<TileView>, Vec<LauncherApp>) {
    let status = shell.supervisor.status();
    let channels = shell.channels.lock().clone();
    // A native app has no view: it is in the launcher and the health view, not in a tile.
    let tiles = status
        .iter()
        .filter(|s| s.kind == HostKind::Web)
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
pub(super) fn push_grants(shell: &Shell) {
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
pub(super) fn health(shell: &Shell) -> Vec<compositor::HealthRow> {
    shell
        .supervisor
        .status()
        .into_iter()
        .map(|s| compositor::HealthRow {
            key: s.instance,
            title: shell.title(&s.app),
            state: format!("{:?}", s.state).to_lowercase(),
            pid: s.pid,
            group: s.group,
            memory_bytes: s.memory_bytes,
            cpu_percent: s.cpu_percent,
            messages_in: s.messages_in,
            messages_out: s.messages_out,
            restarts: s.restarts,
            last_exit: s.last_exit,
        })
        .collect()
}

/// The health view's process groups.
fn groups(shell: &Shell) -> Vec<compositor::GroupRow> {
    shell
        .supervisor
        .groups()
        .into_iter()
        .map(|g| compositor::GroupRow { name: g.name, pid: g.pid, apps: g.views, memory_bytes: g.memory_bytes })
        .collect()
}

/// Sends the window the current tiles and launcher entries.
pub(super) fn push_tiles(shell: &Shell) {
    let (tiles, apps) = views(shell);
    shell.ui.send(UiCommand::SetTiles(tiles));
    shell.ui.send(UiCommand::SetApps(apps));
}

/// Keeps the window's tiles in step with the supervisor.
pub(super) async fn tiles(shell: Arc<Shell>) {
    let mut changes = shell.supervisor.changes();
    let mut last = (Vec::new(), Vec::new());
    push_grants(&shell);
    loop {
        shell.ui.send(UiCommand::SetHealth(health(&shell)));
        shell.ui.send(UiCommand::SetGroups(groups(&shell)));
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

/// Keeps the health view told of the services whose state changes (the desk link).
pub(super) async fn refresh_services(shell: Arc<Shell>) {
    let mut last = None;
    loop {
        let now = super::link::status(&shell).map(|s| (s.state, s.last_error));
        if now != last {
            shell.ui.send(UiCommand::SetServices(services(&shell)));
            last = now;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The shell's own services as the health view, the red bars and `ctl health` show them.
pub(super) fn services(shell: &Shell) -> Vec<compositor::ServiceRow> {
    let audit = &shell.audit;
    let mut rows = vec![compositor::ServiceRow {
        name: "Audit log".to_owned(),
        ok: audit.recording,
        detail: if audit.recording {
            format!("recording; {}", audit.detail)
        } else {
            format!("OFF: permission decisions are NOT being recorded: {}", audit.detail)
        },
        bar: None,
    }];
    rows.push(broker_row(shell));
    rows.push(journal_row(shell));
    rows.push(config_row(shell));
    rows.extend(updater_row(shell));
    rows.extend(super::link::service_row(shell));
    rows
}

/// The broker's row: what it serves and what it could not deliver.
fn broker_row(shell: &Shell) -> compositor::ServiceRow {
    let s = shell.broker.stats();
    let detail = format!(
        "{} clients, {} subscriptions; {} published, {} delivered; {} dead letters held",
        s.clients, s.subscriptions, s.published, s.delivered, s.dead_letters_held
    );
    compositor::ServiceRow { name: "Broker".to_owned(), ok: true, detail, bar: None }
}

/// The journal's row: what it holds and how its commits do, or why it stopped.
fn journal_row(shell: &Shell) -> compositor::ServiceRow {
    let (ok, detail) = match shell.journal.stats() {
        Ok(j) => match &j.stopped {
            Some(why) => (false, format!("STOPPED: durable messages are refused: {why}")),
            None => (
                true,
                format!(
                    "{} records, {:.1} MB; commit p99 {}",
                    j.count,
                    j.bytes as f64 / 1e6,
                    j.commit_ms_p99.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"))
                ),
            ),
        },
        Err(e) => (false, format!("cannot be read: {e}")),
    };
    compositor::ServiceRow { name: "Journal".to_owned(), ok, detail, bar: None }
}

/// Where the manifest and the policy came from, their versions, and whether their server is
/// failing (the last good copies then stay in force).
fn config_row(shell: &Shell) -> compositor::ServiceRow {
    let c = shell.config.lock();
    let say = |what: &str, s: &super::config::Source| match &s.stale {
        Some(why) => format!("{what} {} from {}, the last good copy ({why})", s.digest, s.from),
        None => format!("{what} {} from {}", s.digest, s.from),
    };
    let mut detail = say("manifest", &c.manifest);
    if let Some(p) = &c.policy {
        detail.push_str("; ");
        detail.push_str(&say("policy", p));
    }
    let ok = c.manifest.stale.is_none() && c.policy.as_ref().is_none_or(|p| p.stale.is_none());
    compositor::ServiceRow { name: "Configuration".to_owned(), ok, detail, bar: None }
}

/// The updater's row, when the policy turns updates on.
fn updater_row(shell: &Shell) -> Option<compositor::ServiceRow> {
    let u = shell.updater.lock();
    if !u.enabled {
        return None;
    }
    let (ok, detail) = match (&u.failing, &u.staged, &u.last_outcome) {
        (Some(why), _, _) => (false, format!("the last check failed: {why}")),
        (None, Some(v), _) => (true, format!("{v} staged: restart to install it")),
        (None, None, Some(o)) => (true, format!("last check: {o}")),
        (None, None, None) => (true, "not checked yet".to_owned()),
    };
    Some(compositor::ServiceRow { name: "Updater".to_owned(), ok, detail, bar: None })
}
