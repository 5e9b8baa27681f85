//! The manifest and the admin policy that came from IT URLs, fetched again every
//! `--config-refresh` seconds: a changed policy is put in force at once (a bad one refused and
//! audited, the one in force kept, the desk saying its copy is stale); a changed manifest
//! changes the launcher, the agent's directory and the gate's apps (running instances stay).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shell::manifest::{self, Manifest};
use shell::remote;

use super::Shell;
use super::config::{Source, TIMEOUT, cache_dir};
use super::startup::{SEEN_VERSIONS, app_facts};
use super::ui::push_tiles;

/// Fetches the documents that came from URLs again every `every`, putting changes in force.
pub(super) async fn refresh(shell: Arc<Shell>, trust: Option<policy::signing::Checker>, every: Duration) {
    let (manifest_url, policy_url) = {
        let s = shell.config.lock();
        let url = |s: &Source| remote::is_url(&s.from).then(|| s.from.clone());
        (url(&s.manifest), s.policy.as_ref().and_then(url))
    };
    if manifest_url.is_none() && policy_url.is_none() {
        return;
    }
    loop {
        tokio::time::sleep(every).await;
        if let Some(url) = &policy_url {
            refresh_policy(&shell, url, trust.clone()).await;
        }
        if let Some(url) = &manifest_url {
            refresh_manifest(&shell, url).await;
        }
    }
}

async fn refresh_policy(shell: &Arc<Shell>, url: &str, trust: Option<policy::signing::Checker>) {
    let (u, dir) = (url.to_owned(), cache_dir(&shell.profile_dir));
    let fetched = tokio::task::spawn_blocking(move || {
        let usable = |p: &Path| policy::load_file(p, trust.as_ref()).map(|_| ()).map_err(|e| e.to_string());
        remote::fetch_signed(&u, &dir, TIMEOUT, usable).map(|f| (policy::load_file(&f.path, trust.as_ref()), f))
    })
    .await;
    let (loaded, fetched) = match fetched {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return note_stale(shell, false, e.to_string()),
        Err(e) => return note_stale(shell, false, format!("the refresh failed: {e}")),
    };
    let changed = shell.config.lock().policy.as_ref().is_none_or(|s| s.digest != fetched.digest);
    if let Some(why) = &fetched.stale {
        // The server's answer was refused (or it is down): say so once per reason, audited.
        let said = shell.config.lock().policy.as_ref().and_then(|s| s.stale.clone());
        if said.as_deref() != Some(why.as_str()) {
            tracing::warn!(%url, "the admin policy's server is not usable ({why}); the policy in force stays");
            shell.permissions.record(
                "admin-policy",
                None,
                "policy.reject",
                url,
                "refused",
                serde_json::json!({ "problems": [why] }),
            );
        }
        note_stale(shell, false, why.clone());
        return;
    }
    match loaded {
        Ok(policy) if changed => {
            shell.permissions.install(policy, url);
            super::telemetry::traces(shell);
            tracing::info!(%url, digest = %fetched.digest, "the admin policy changed on its server; now in force");
        }
        Ok(_) => {}
        Err(e) => return note_stale(shell, false, e.to_string()),
    }
    shell.config.lock().policy = Some(Source { from: url.to_owned(), digest: fetched.digest, stale: None });
}

async fn refresh_manifest(shell: &Arc<Shell>, url: &str) {
    let trust = manifest::Trust {
        checker: shell.permissions.signing(),
        seen_versions: shell.manifest.read().trust.seen_versions.clone(),
        more_directories: true,
    };
    let (u, dir) = (url.to_owned(), cache_dir(&shell.profile_dir));
    let fetched = tokio::task::spawn_blocking(move || {
        let usable = |p: &Path| manifest::load_with(p, trust.clone()).map(|_| ()).map_err(|e| e.to_string());
        remote::fetch_signed(&u, &dir, TIMEOUT, usable).map(|f| (manifest::load_with(&f.path, trust), f))
    })
    .await;
    let (loaded, fetched) = match fetched {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return note_stale(shell, true, e.to_string()),
        Err(e) => return note_stale(shell, true, format!("the refresh failed: {e}")),
    };
    if let Some(why) = fetched.stale {
        let said = shell.config.lock().manifest.stale.clone();
        if said.as_deref() != Some(why.as_str()) {
            tracing::warn!(%url, "the manifest's server is not usable ({why}); the desk stays as it is");
        }
        return note_stale(shell, true, why);
    }
    let changed = shell.config.lock().manifest.digest != fetched.digest;
    match loaded {
        Ok(new) if changed => {
            apply_manifest(shell, new);
            tracing::info!(%url, digest = %fetched.digest, "the manifest changed on its server; the desk follows");
        }
        Ok(_) => {}
        Err(e) => return note_stale(shell, true, e.to_string()),
    }
    shell.config.lock().manifest = Source { from: url.to_owned(), digest: fetched.digest, stale: None };
}

/// The last refresh of the manifest (or the policy) failed: the copy in force stays.
fn note_stale(shell: &Shell, manifest: bool, why: String) {
    let mut s = shell.config.lock();
    if manifest {
        s.manifest.stale = Some(why);
    } else if let Some(p) = s.policy.as_mut() {
        p.stale = Some(why);
    }
}

/// Puts a new manifest in force: its apps (with the App Directories' last good answers) in
/// the launcher, the agent and the gate; running instances stay.
fn apply_manifest(shell: &Shell, mut new: Manifest) {
    let appd_cache = shell.profile_dir.join("appd");
    for url in new.directory_urls.clone() {
        if let Ok(text) = std::fs::read_to_string(shell::appd::cache_file(&appd_cache, &url))
            && let Err(e) = new.load_directory(&url, &text)
        {
            tracing::warn!(%url, "the App Directory kept from before does not fit the new manifest: {e}");
        }
    }
    for app in &new.apps {
        shell.broker.register_app(broker::AppId::new(&app.app_id));
    }
    if let Err(e) = shell.profile.set_setting(SEEN_VERSIONS, &new.trust.seen_versions) {
        tracing::warn!("could not keep the versions seen: {e}");
    }
    let directory = new.directory.clone();
    *shell.manifest.write() = new;
    shell.agent.lock().set_directory(directory);
    shell.permissions.set_apps(app_facts(&shell.manifest.read()));
    push_tiles(shell);
}
