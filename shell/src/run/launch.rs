//! Launching apps: a manifest app becomes an app host under the supervisor (its WebKit data,
//! caches and saved state kept per app in the profile), or, for a native app, its own program
//! given a launch token for the endpoint; and the desk's start-up set is started.

use anyhow::{Context, Result, bail};
use broker::AppId;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use shell::host::endpoint::Attached;
use shell::host::supervisor::{AppSpec, GroupSpec, HostKind};

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

/// The environment of a WebKit host keeping its data in `dir`.
fn webkit_env(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut env = vec![
        // WebKit keeps caches and some data under the XDG directories: per app (or group), in
        // the profile.
        ("XDG_CACHE_HOME".to_owned(), dir.join("cache").display().to_string()),
        ("XDG_DATA_HOME".to_owned(), dir.join("data").display().to_string()),
    ];
    if std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
        // WebKit's DMA-BUF renderer leaves views embedded in another process's X11 window
        // unpainted (seen under Xvfb with Mesa); the shared-memory path paints them.
        env.push(("WEBKIT_DISABLE_DMABUF_RENDERER".to_owned(), "1".to_owned()));
    }
    env
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
            let Some(program) = native.program.clone() else {
                bail!("{app_id} is started outside the shell: it connects with its IT-signed credential");
            };
            let spec = AppSpec {
                kind: HostKind::Native,
                env: native.env.clone(),
                memory_limit_bytes: app.memory_limit_bytes,
                cpu_limit_percent: app.cpu_limit_percent,
                state_file: Some(self.state_file(&dir, state)?),
                ..AppSpec::new(AppId::new(&app.app_id), program, native.args.clone())
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
        let console = self.permissions.console_of(&app.app_id);
        if console {
            args.push("--console".to_owned());
        }
        let group = match self.group_of(&app) {
            Some(name) => Some(self.group_spec(name)?),
            None => None,
        };
        let spec = AppSpec {
            env: webkit_env(&dir),
            group,
            origins: Some(app.origins.clone()),
            memory_limit_bytes: app.memory_limit_bytes,
            cpu_limit_percent: app.cpu_limit_percent,
            state_file: Some(state_file),
            console,
            ..AppSpec::new(AppId::new(&app.app_id), self.host.clone(), args)
        };
        Ok(self.started(&app.app_id, spec))
    }

    /// The process group whose host `app`'s view lives in (`None`: one of its own): the admin
    /// policy's word, else the manifest's.
    fn group_of(&self, app: &shell::manifest::App) -> Option<String> {
        if app.native.is_some() {
            return None;
        }
        match self.permissions.process_of(&app.app_id) {
            Some(policy::processes::ProcessChoice::Alone) => None,
            Some(policy::processes::ProcessChoice::Group(name)) => Some(name),
            None => app.process_group(),
        }
    }

    /// Starts the shared hosts of the start-up apps' process groups ahead of them (spares that
    /// go after a while if no app comes). Must be called within the runtime.
    pub(super) fn warm_groups(&self) {
        let groups: std::collections::BTreeSet<String> = {
            let manifest = self.manifest.read();
            manifest.startup.iter().filter_map(|id| manifest.app(id)).filter_map(|a| self.group_of(a)).collect()
        };
        for name in groups {
            let warmed = self.group_spec(name.clone()).and_then(|spec| self.supervisor.warm(&spec, &self.host));
            if let Err(e) = warmed {
                tracing::warn!(group = %name, "could not start a process group's host ahead: {e:#}");
            }
        }
    }

    /// How process group `name`'s shared host is started: its WebKit data and caches kept in
    /// the profile, per group.
    fn group_spec(&self, name: String) -> Result<GroupSpec> {
        let dir = self.profile_dir.join("groups").join(&name);
        let webkit = dir.join("webkit");
        std::fs::create_dir_all(&webkit).with_context(|| format!("creating {}", webkit.display()))?;
        let args = vec!["group".to_owned(), "--data-dir".to_owned(), webkit.display().to_string()];
        Ok(GroupSpec { name, args, env: webkit_env(&dir) })
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

    /// Makes a proven app started outside the shell an instance of `app_id` (one of the desk's
    /// native apps).
    fn attach(&self, app_id: &str, attached: Attached) -> Result<u64> {
        let app = self.manifest.read().app(app_id).cloned().with_context(|| format!("no app {app_id:?}"))?;
        let dir = self.profile_dir.join("apps").join(app_dir_name(&app.app_id));
        let spec = AppSpec {
            kind: HostKind::Native,
            memory_limit_bytes: app.memory_limit_bytes,
            cpu_limit_percent: app.cpu_limit_percent,
            state_file: Some(self.state_file(&dir, None)?),
            ..AppSpec::new(AppId::new(&app.app_id), PathBuf::new(), Vec::new())
        };
        let instance = self.supervisor.attach(spec, attached);
        self.agent.lock().add_instance(instance, app_id);
        self.dirty.notify_one();
        Ok(instance)
    }

    pub(super) fn title(&self, app_id: &str) -> String {
        self.manifest.read().app(app_id).map_or_else(|| app_id.to_owned(), |a| a.title.clone())
    }
}

/// Takes in the apps started outside the shell that proved their credentials: one of the
/// desk's native apps becomes an instance (watched, audited, not restarted); anything else is
/// refused and audited.
pub(super) async fn attachments(shell: Arc<Shell>, attached: flume::Receiver<Attached>) {
    while let Ok(a) = attached.recv_async().await {
        let (app, pid) = (a.app().to_owned(), a.pid());
        let known = shell.manifest.read().app(&app).map(|m| m.native.is_some());
        let why = match known {
            Some(true) => None,
            Some(false) => Some(format!("{app} is a web app of this desk, not a native one")),
            None => Some(format!("{app} is not an app of this desk")),
        };
        if let Some(why) = why {
            tracing::warn!(%app, pid, "refused an app started outside the shell: {why}");
            shell.permissions.record(
                "shell",
                Some(&app),
                "endpoint.refused",
                &format!("process {pid}: {why}"),
                "refused",
                json!({}),
            );
            a.refuse(&why).await;
            continue;
        }
        let object = format!("process {pid}, credential valid until {}", a.expires());
        match shell.attach(&app, a) {
            Ok(instance) => {
                tracing::info!(%app, instance, pid, "an app started outside the shell joined the desk");
                shell.permissions.record(
                    "shell",
                    Some(&app),
                    "endpoint.attach",
                    &object,
                    "allowed",
                    json!({ "instance": instance }),
                );
            }
            Err(e) => tracing::error!(%app, "could not attach an app started outside the shell: {e:#}"),
        }
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
