//! App Directories refreshed on a schedule: the manifest's web apps replaced from each
//! directory's latest good answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::startup::{SEEN_VERSIONS, app_facts};
use super::ui::push_tiles;
use super::{APPD_TIMEOUT, Shell};

/// Fetches the App Directory URLs again every `every`; a changed directory changes the
/// launcher and the agent (running instances stay).
pub(super) async fn refresh_directories(shell: Arc<Shell>, cache: PathBuf, every: Duration) {
    let urls = shell.manifest.read().directory_urls.clone();
    loop {
        tokio::time::sleep(every).await;
        for url in &urls {
            let (u, c) = (url.clone(), cache.clone());
            let check = shell.manifest.read().clone();
            let fetched = tokio::task::spawn_blocking(move || {
                let usable = |text: &str| check.clone().load_directory(&u, text).map_err(|e| e.to_string());
                shell::appd::fetch(&u, &c, APPD_TIMEOUT, usable)
            })
            .await;
            let text = match fetched {
                Ok(Ok(f)) if f.stale.is_none() => f.text,
                Ok(Ok(f)) => {
                    tracing::warn!(%url, "the App Directory cannot be reached ({}); keeping what was loaded", f.stale.unwrap_or_default());
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!("the App Directory cannot be refreshed: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("the App Directory refresh failed: {e}");
                    continue;
                }
            };
            let directory = {
                let mut manifest = shell.manifest.write();
                let before = manifest.directory_problems.clone();
                if let Err(e) = manifest.load_directory(url, &text) {
                    tracing::warn!(%url, "the refreshed App Directory is unusable ({e}); keeping what was loaded");
                    continue;
                }
                for p in manifest.directory_problems.iter().filter(|p| !before.contains(p)) {
                    tracing::warn!("App Directory record skipped: {p}");
                }
                if let Err(e) = shell.profile.set_setting(SEEN_VERSIONS, &manifest.trust.seen_versions) {
                    tracing::warn!("could not keep the App Directory versions seen: {e}");
                }
                manifest.directory.clone()
            };
            shell.agent.lock().set_directory(directory);
            shell.permissions.set_apps(app_facts(&shell.manifest.read()));
            push_tiles(&shell);
            tracing::info!(%url, "App Directory refreshed");
        }
    }
}
