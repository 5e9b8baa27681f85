//! Workspaces: the whole desk (its windows, the layout of each, the app in each tile, its
//! channel, the state the app gave) saved by name in
//! the profile, restored on command and at start-up. The live desk is saved as "Last session"
//! whenever it changes, so a restart (or a crash) brings back what the trader last saw.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use compositor::{Command as UiCommand, LayoutNode, LayoutSnapshot, WindowPlan};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use shell::host::supervisor::HostKind;

use super::Shell;

/// The name the live desk is saved under.
pub(crate) const AUTOSAVE: &str = "Last session";
/// Format of a saved workspace: 2 added `windows`. A desk with one window is still written as
/// format 1, which a build from before (say, after a rollback) reads.
const VERSION: u32 = 2;

/// A saved desk. Pane keys in `layout` and `windows` are indices into `slots`; a slot no layout
/// names is a native app (it has no tile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Workspace {
    #[serde(default = "first_version")]
    version: u32,
    /// The main window's size when saved (physical pixels).
    #[serde(default)]
    window: Option<(u32, u32)>,
    /// The main window's layout.
    layout: Option<LayoutNode>,
    /// The other windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    windows: Vec<SavedWindow>,
    slots: Vec<Slot>,
}

/// A shell window other than the main one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedWindow {
    layout: Option<LayoutNode>,
    /// Its outer top-left corner on the screen.
    #[serde(default)]
    position: Option<(i32, i32)>,
    /// Its size (physical pixels).
    #[serde(default)]
    size: Option<(u32, u32)>,
}

impl Workspace {
    /// Every pane key, in every window.
    fn keys(&self) -> Vec<u64> {
        std::iter::once(&self.layout)
            .chain(self.windows.iter().map(|w| &w.layout))
            .flat_map(|l| l.as_ref().map(LayoutNode::keys).unwrap_or_default())
            .collect()
    }
}

fn first_version() -> u32 {
    1
}

/// One tile's app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slot {
    app: String,
    #[serde(default)]
    channel: Option<u8>,
    /// What the app saved with `tessera.workspace.setState`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<Value>,
}

/// The live layout, from the window.
pub(crate) async fn snapshot(shell: &Shell) -> Result<LayoutSnapshot> {
    let (tx, rx) = flume::bounded(1);
    if !shell.ui.send(UiCommand::GetLayout(tx)) {
        bail!("the shell window is gone");
    }
    tokio::time::timeout(Duration::from_secs(5), rx.recv_async())
        .await
        .context("the window did not answer in 5 s")?
        .context("the window went away")
}

/// The live desk as a workspace.
pub(crate) async fn capture(shell: &Shell) -> Result<Workspace> {
    let snap = snapshot(shell).await?;
    let status = shell.supervisor.status();
    let apps: HashMap<u64, String> = status.iter().map(|s| (s.instance, s.app.clone())).collect();
    let channels = shell.channels.lock().clone();
    let slot = |key: u64| {
        let app = apps.get(&key)?.clone();
        Some(Slot { app, channel: channels.get(&key).copied(), state: shell.supervisor.app_state(key) })
    };
    let mut ws = from_snapshot(&snap, slot);
    // Native apps have no tile: they are slots no layout names, started again on restore.
    ws.slots.extend(status.iter().filter(|s| s.kind == HostKind::Native).filter_map(|s| slot(s.instance)));
    Ok(ws)
}

/// A workspace of the windows in `snap`; `slot` says what is in each pane (`None`: a pane
/// whose app is gone, left out).
fn from_snapshot(snap: &LayoutSnapshot, mut slot: impl FnMut(u64) -> Option<Slot>) -> Workspace {
    let mut slots = Vec::new();
    let mut layouts = snap.windows.iter().map(|w| {
        w.tree.as_ref().and_then(|t| {
            t.map_keys(&mut |key| {
                slots.push(slot(key)?);
                Some(slots.len() as u64 - 1)
            })
        })
    });
    let layout = layouts.next().flatten();
    let windows: Vec<SavedWindow> = layouts
        .zip(snap.windows.iter().skip(1))
        .filter_map(|(layout, w)| Some(SavedWindow { layout: Some(layout?), position: w.position, size: Some(w.size) }))
        .collect();
    // One window: the first format, which builds from before this one read (a rollback keeps
    // the session).
    let version = if windows.is_empty() { 1 } else { VERSION };
    Workspace { version, window: snap.main().map(|m| m.size), layout, windows, slots }
}

/// Saves the live desk as `name` (and makes it the one restored at start-up).
pub(crate) async fn save(shell: &Shell, name: &str) -> Result<Value> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        bail!("{name:?} is not a usable workspace name (1 to 200 printable characters)");
    }
    let ws = capture(shell).await?;
    let value = serde_json::to_value(&ws)?;
    let profile = shell.profile.clone();
    let owned = name.to_owned();
    let stored = value.clone();
    tokio::task::spawn_blocking(move || profile.save_layout(&owned, &stored, broker::Clock::now(&broker::SystemClock)))
        .await?
        .with_context(|| format!("saving workspace {name:?}"))?;
    Ok(json!({ "saved": name, "apps": ws.slots.len() }))
}

/// Restores the workspace called `name`.
pub(crate) async fn restore_named(shell: &Shell, name: &str) -> Result<Value> {
    let profile = shell.profile.clone();
    let owned = name.to_owned();
    let saved = tokio::task::spawn_blocking(move || profile.layout(&owned))
        .await?
        .with_context(|| format!("reading workspace {name:?}"))?
        .with_context(|| format!("no workspace called {name:?}"))?;
    let ws: Workspace = serde_json::from_value(saved.layout)
        .with_context(|| format!("workspace {name:?} is damaged or from a newer version"))?;
    restore(shell, &ws).await?;
    Ok(json!({ "restored": name, "apps": ws.slots.len() }))
}

/// Makes the desk look like `ws`: running instances of the right apps are kept and moved,
/// missing ones launched, the rest closed; then the layout and channels are applied.
pub(crate) async fn restore(shell: &Shell, ws: &Workspace) -> Result<()> {
    if ws.version > VERSION {
        bail!("this workspace was saved by a newer Tessera (format {})", ws.version);
    }
    let running = shell.supervisor.status();
    let mut unused: Vec<(u64, String)> = running.iter().map(|s| (s.instance, s.app.clone())).collect();
    let mut slot_to_instance: HashMap<u64, u64> = HashMap::new();
    let mut problems = Vec::new();
    for (i, slot) in ws.slots.iter().enumerate() {
        let reuse = unused.iter().position(|(_, app)| *app == slot.app).map(|p| unused.remove(p).0);
        let instance = match reuse {
            Some(instance) => Some(instance),
            None => match shell.launch_with(&slot.app, slot.state.as_ref()) {
                Ok(instance) => Some(instance),
                Err(e) => {
                    problems.push(format!("{}: {e:#}", slot.app));
                    None
                }
            },
        };
        if let Some(instance) = instance {
            slot_to_instance.insert(i as u64, instance);
            super::fdc3::link(shell, instance, slot.channel);
        }
    }
    for (instance, _) in unused {
        shell.supervisor.close(instance).await;
    }
    super::push_tiles(shell);
    let to_instances =
        |l: &Option<LayoutNode>| l.as_ref().and_then(|l| l.map_keys(&mut |k| slot_to_instance.get(&k).copied()));
    let mut plans = vec![WindowPlan { tree: to_instances(&ws.layout), position: None, size: None }];
    plans.extend(ws.windows.iter().map(|w| WindowPlan {
        tree: to_instances(&w.layout),
        position: w.position,
        size: w.size,
    }));
    shell.ui.send(UiCommand::SetLayout(plans));
    if !problems.is_empty() {
        tracing::warn!("restored without: {}", problems.join("; "));
    }
    Ok(())
}

/// Every saved workspace: name, when, how many apps.
pub(crate) async fn list(shell: &Shell) -> Result<Value> {
    let profile = shell.profile.clone();
    let (all, last) = tokio::task::spawn_blocking(move || -> Result<_> {
        Ok((profile.layouts()?, profile.last_layout()?.map(|l| l.name)))
    })
    .await??;
    let items: Vec<Value> = all
        .into_iter()
        .map(|l| {
            let apps = l.layout.get("slots").and_then(Value::as_array).map_or(0, Vec::len);
            json!({ "name": l.name, "saved_at": l.saved_at.to_string(), "apps": apps, "startup": last.as_deref() == Some(l.name.as_str()) })
        })
        .collect();
    Ok(Value::Array(items))
}

/// The live layout with each pane's app instance and bounds (`ctl layout get`): the main
/// window's at the top level, and every window's (the main one first) under `windows`.
pub(crate) async fn describe(shell: &Shell) -> Result<Value> {
    let snap = snapshot(shell).await?;
    let apps: HashMap<u64, String> = shell.supervisor.status().into_iter().map(|s| (s.instance, s.app)).collect();
    let channels = shell.channels.lock().clone();
    let windows: Vec<Value> = snap
        .windows
        .iter()
        .map(|w| {
            let order: Vec<u64> = w.tree.as_ref().map(LayoutNode::keys).unwrap_or_default();
            let bounds: HashMap<u64, Option<compositor::PxRect>> = w.bounds.iter().copied().collect();
            let panes: Vec<Value> = order
                .iter()
                .map(|k| {
                    json!({
                        "instance": k,
                        "app": apps.get(k),
                        "channel": channels.get(k),
                        "bounds": bounds.get(k).copied().flatten(),
                    })
                })
                .collect();
            let (x, y) = w.position.unzip();
            json!({
                "id": w.window,
                "tree": w.tree,
                "panes": panes,
                "maximized": w.maximized,
                "window": { "width": w.size.0, "height": w.size.1, "scale": w.scale, "x": x, "y": y },
            })
        })
        .collect();
    let main = windows.first().cloned().unwrap_or_else(|| json!({}));
    Ok(json!({
        "tree": main["tree"],
        "panes": main["panes"],
        "maximized": main["maximized"],
        "window": main["window"],
        "windows": windows,
    }))
}

/// The manifest's first-start desk, checked against the manifest: every slot's app exists,
/// channels are 1 to 8, and the layout names only slots that exist.
pub(crate) fn from_manifest(manifest: &shell::manifest::Manifest) -> Result<Option<Workspace>> {
    let Some(value) = &manifest.workspace else { return Ok(None) };
    let ws: Workspace = serde_json::from_value(value.clone()).context("the manifest's workspace")?;
    let mut problems = Vec::new();
    for (i, slot) in ws.slots.iter().enumerate() {
        if manifest.app(&slot.app).is_none() {
            problems.push(format!("workspace.slots[{i}]: {:?} is not an app in this manifest", slot.app));
        }
        if slot.channel.is_some_and(|c| !(1..=8).contains(&c)) {
            problems.push(format!("workspace.slots[{i}]: channel must be 1 to 8"));
        }
    }
    for key in ws.keys() {
        if usize::try_from(key).map_or(true, |k| k >= ws.slots.len()) {
            problems.push(format!("workspace: pane {key} in a layout names no slot"));
        }
    }
    if !problems.is_empty() {
        bail!("the manifest's workspace: {}", problems.join("; "));
    }
    Ok(Some(ws))
}

/// The workspace to open at start-up, if one was saved and can be read.
pub(crate) fn startup(profile: &storage::Profile) -> Option<(String, Workspace)> {
    match profile.last_layout() {
        Ok(Some(saved)) => match serde_json::from_value::<Workspace>(saved.layout) {
            Ok(ws) => Some((saved.name, ws)),
            Err(e) => {
                tracing::warn!(name = %saved.name, "the last workspace cannot be read ({e}); starting the manifest's apps");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("could not read the last workspace ({e:#}); starting the manifest's apps");
            None
        }
    }
}

/// Keeps "Last session" up to date: saves the live desk a moment after each change.
pub(crate) async fn autosave(shell: std::sync::Arc<Shell>, dirty: std::sync::Arc<tokio::sync::Notify>) {
    loop {
        dirty.notified().await;
        // Let a burst of changes (a drag, a restore) settle into one save.
        tokio::time::sleep(Duration::from_millis(400)).await;
        if *shell.quit.borrow() {
            return;
        }
        // Nothing is saved before the start-up desk is up: an empty window is not a session.
        if !*shell.restored.borrow() {
            continue;
        }
        if let Err(e) = save(&shell, AUTOSAVE).await {
            tracing::warn!("could not save the session: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests;
