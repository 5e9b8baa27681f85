//! The same pages as Chromium `--app` windows, one browser with a profile of the bench's own:
//! what an OpenFin-like desk on Chromium would run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use shell::host::procs::Proc;

/// A running Chromium: the first launcher became the browser; the others handed it their
/// window and left.
pub(crate) struct Desk {
    launchers: Vec<Child>,
}

/// Chromium's path, if it is installed.
pub(crate) fn find() -> Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .context("--against chromium needs Chromium (apt install chromium)")
}

impl Desk {
    /// Opens each of `urls` as an `--app` window of one browser with `profile` (a new
    /// directory for a first start).
    pub(crate) fn start(exe: &Path, urls: &[String], profile: &Path) -> Result<Self> {
        let (w, h) = super::tile_size(urls.len());
        let mut launchers = Vec::with_capacity(urls.len());
        let log = std::fs::File::create(profile.with_extension("log")).context("creating Chromium's log")?;
        for (i, url) in urls.iter().enumerate() {
            if i == 1 {
                // The others hand their window to the first once it listens; started before
                // that, some would become browsers of their own.
                wait_for_singleton(profile)?;
            }
            let log = log.try_clone().context("sharing Chromium's log")?;
            let child = Command::new(exe)
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!("--app={url}"))
                .arg(format!("--window-size={w},{h}"))
                .args([
                    // Root here; a desk would not be.
                    "--no-sandbox",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--password-store=basic",
                    // Nothing a desk's browser would fetch for itself.
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    // The browser places every window where its first went (the others' own
                    // flags are not read), and does not draw a window under another: each is
                    // drawn, as each of Tessera's tiles is.
                    "--disable-backgrounding-occluded-windows",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting chromium")?;
            launchers.push(child);
        }
        Ok(Self { launchers })
    }

    /// The browser's process (the launcher that stayed).
    pub(crate) fn browser(&mut self) -> Option<u32> {
        self.launchers.iter_mut().find_map(|c| matches!(c.try_wait(), Ok(None)).then(|| c.id()))
    }

    /// The browser and every process under it (and any launcher still handing over).
    pub(crate) fn processes(&mut self) -> Vec<Proc> {
        let alive: Vec<u32> =
            self.launchers.iter_mut().filter_map(|c| matches!(c.try_wait(), Ok(None)).then(|| c.id())).collect();
        super::trees(&alive)
    }

    /// Closes the browser and everything under it.
    pub(crate) fn stop(mut self) {
        let tree: Vec<u32> = self.processes().iter().map(|p| p.pid).collect();
        for c in &self.launchers {
            if let Some(p) = rustix::process::Pid::from_raw(c.id().cast_signed()) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.launchers.iter_mut().any(|c| matches!(c.try_wait(), Ok(None))) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in tree {
            if let Some(p) = rustix::process::Pid::from_raw(pid.cast_signed()) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        for c in &mut self.launchers {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for the browser to take `profile` (its singleton socket appears).
fn wait_for_singleton(profile: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::symlink_metadata(profile.join("SingletonSocket")).is_err() {
        if Instant::now() > deadline {
            anyhow::bail!("Chromium did not take its profile within 20 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

impl Drop for Desk {
    fn drop(&mut self) {
        for c in &mut self.launchers {
            if matches!(c.try_wait(), Ok(None)) {
                shell::host::procs::kill_tree(c.id());
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
