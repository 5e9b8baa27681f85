//! Launching apps: a manifest app becomes an app host under the supervisor (its WebKit data,
//! caches and saved state kept per app in the profile), or, for a native app, its own program
//! given a launch token for the endpoint; and the desk's start-up set is started.

use anyhow::{Context, Result, bail};
use broker::AppId;
use serde_json::Value;
use shell::host::supervisor::{AppSpec, HostKind};

use super::{RECENT, Shell, workspace};

/// An app's directory name in the profile: its id where that is a plain file name, else the
/// id in hex (an App Directory's appIds may hold `/` or be `..`).
pub(super) fn app_dir_name(app_id: &str) -> String {
    let plain = app_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        && !app_id.starts_with('.')
        && app_id.len() <= 128;
    if plain {
        app_id.to_owned()
    } else {
        format!("={}", app_id.bytes().map(|b| format!("{b:02x}")).collect::<String>())
    }
}

impl Shell {
    pub(super) fn launch(&self, app_id: &str) -> Result<u64> {
        self.launch_with(app_id, None)
    }

    /// Launches an app, handing it `state` (from a workspace) to start from.
    pub(super) fn launch_with(&self, app_id: &str, state: Option<&Value>) -> Result<u64> {
        let app = self
            .manifest
            .read()
            .app(app_id)
            .cloned()
            .with_context(|| format!("no app {app_id:?} in the manifest or its App Directory"))?;
        let dir = self.profile_dir.join("apps").join(app_dir_name(&app.app_id));
        if let Some(native) = &app.native {
            let spec = AppSpec {
                kind: HostKind::Native,
                env: native.env.clone(),
                memory_limit_bytes: app.memory_limit_bytes,
                cpu_limit_percent: app.cpu_limit_percent,
                state_file: Some(self.state_file(&dir, state)?),
                ..AppSpec::new(AppId::new(&app.app_id), native.program.clone(), native.args.clone())
            };
            return Ok(self.started(&app.app_id, spec));
        }
        let Some(xid) = *self.window.borrow() else { bail!("the shell window is not up yet") };
        let webkit = dir.join("webkit");
        std::fs::create_dir_all(&webkit).with_context(|| format!("creating {}", webkit.display()))?;
        let mut args = vec![
            "webview".to_owned(),
            "--parent-xid".to_owned(),
            xid.to_string(),
            "--url".to_owned(),
            app.url.clone(),
            "--data-dir".to_owned(),
            webkit.display().to_string(),
            "--bounds".to_owned(),
            "0,0,1,1".to_owned(),
        ];
        if let Some(root) = &app.content_root {
            args.extend(["--content-root".to_owned(), root.display().to_string()]);
        }
        if let Some(csp) = &app.csp {
            args.extend(["--csp".to_owned(), csp.clone()]);
        }
        let state_file = self.state_file(&dir, state)?;
        args.extend(["--state-file".to_owned(), state_file.display().to_string()]);
        let mut env = vec![
            // WebKit keeps caches and some data under the XDG directories: per app, in the profile.
            ("XDG_CACHE_HOME".to_owned(), dir.join("cache").display().to_string()),
            ("XDG_DATA_HOME".to_owned(), dir.join("data").display().to_string()),
        ];
        if std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
            // WebKit's DMA-BUF renderer leaves views embedded in another process's X11 window
            // unpainted (seen under Xvfb with Mesa); the shared-memory path paints them.
            env.push(("WEBKIT_DISABLE_DMABUF_RENDERER".to_owned(), "1".to_owned()));
        }
        let spec = AppSpec {
            env,
            origins: Some(app.origins.clone()),
            memory_limit_bytes: app.memory_limit_bytes,
            cpu_limit_percent: app.cpu_limit_percent,
            state_file: Some(state_file),
            ..AppSpec::new(AppId::new(&app.app_id), self.host.clone(), args)
        };
        Ok(self.started(&app.app_id, spec))
    }

    /// A new instance's state file in the app's directory `dir`, holding `state` if given: each
    /// instance keeps its state in a file of its own, which its host reads at start (a native
    /// app gets it in its welcome).
    fn state_file(&self, dir: &std::path::Path, state: Option<&Value>) -> Result<std::path::PathBuf> {
        let states = dir.join("state");
        std::fs::create_dir_all(&states).with_context(|| format!("creating {}", states.display()))?;
        let file = states.join(format!(
            "{}-{}.json",
            broker::Timestamp::now().millis(),
            self.next_state.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        if let Some(state) = state {
            std::fs::write(&file, serde_json::to_vec(state)?).with_context(|| format!("writing {}", file.display()))?;
        }
        Ok(file)
    }

    /// Starts `spec` under the supervisor: the agent knows the instance, and the launch is
    /// remembered for the launcher's recent apps.
    fn started(&self, app_id: &str, spec: AppSpec) -> u64 {
        let instance = self.supervisor.launch(spec);
        self.agent.lock().add_instance(instance, app_id);
        self.recent.lock().insert(app_id.to_owned(), broker::Timestamp::now().millis());
        let recent = self.recent.lock().clone();
        if let Err(e) = self.profile.set_setting(RECENT, &recent) {
            tracing::warn!("could not remember the launch: {e:#}");
        }
        self.dirty.notify_one();
        instance
    }

    pub(super) fn title(&self, app_id: &str) -> String {
        self.manifest.read().app(app_id).map_or_else(|| app_id.to_owned(), |a| a.title.clone())
    }
}

/// Opens the desk at start-up: the last workspace if there is one, else the manifest's apps.
pub(super) async fn start_desk(shell: &Shell) {
    let profile = shell.profile.clone();
    let saved = tokio::task::spawn_blocking(move || workspace::startup(&profile)).await.ok().flatten();
    if let Some((name, ws)) = saved {
        match workspace::restore(shell, &ws).await {
            Ok(()) => {
                tracing::info!(%name, "workspace restored");
                return;
            }
            Err(e) => tracing::warn!(%name, "could not restore the workspace: {e:#}"),
        }
    }
    if let Some(ws) = &shell.first_desk {
        match workspace::restore(shell, ws).await {
            Ok(()) => return,
            Err(e) => tracing::warn!("could not open the manifest's workspace: {e:#}"),
        }
    }
    let startup = shell.manifest.read().startup.clone();
    for app in startup {
        if let Err(e) = shell.launch(&app) {
            tracing::error!("could not start {app}: {e:#}");
        }
    }
}
