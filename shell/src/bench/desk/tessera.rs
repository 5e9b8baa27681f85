//! A Tessera desk of the benches' pages: `tessera run` with a manifest of them, in a profile of
//! the bench's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use shell::host::procs::Proc;

/// A running `tessera run`.
pub(crate) struct Desk {
    child: Child,
    ctl: PathBuf,
}

/// Writes the manifest of `urls` into `dir`.
pub(crate) fn manifest(dir: &Path, urls: &[String]) -> Result<PathBuf> {
    let apps: Vec<serde_json::Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| serde_json::json!({ "appId": format!("app{i}"), "title": format!("App {i}"), "url": url }))
        .collect();
    let path = dir.join("bench-desk.json");
    let ids: Vec<String> = (0..urls.len()).map(|i| format!("app{i}")).collect();
    let desk = serde_json::json!({ "name": "Bench desk", "apps": apps, "startup": ids });
    let text = serde_json::to_vec_pretty(&desk)?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

impl Desk {
    /// Starts the shell on `manifest` with `profile` (a new directory for a first start).
    pub(crate) fn start(manifest: &Path, profile: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("locating tessera")?;
        let ctl = profile.with_extension("ctl.sock");
        let log = std::fs::File::create(profile.with_extension("log")).context("creating the shell's log")?;
        let child = Command::new(exe)
            .arg("run")
            .arg("--manifest")
            .arg(manifest)
            .arg("--profile")
            .arg(profile)
            .arg("--ctl-socket")
            .arg(&ctl)
            .args(["--keyring", "keyutils", "--window-size"])
            .arg(format!("{}x{}", super::SCREEN.0, super::SCREEN.1))
            .env("TESSERA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting tessera run")?;
        Ok(Self { child, ctl })
    }

    /// The shell's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The shell and every process under it.
    pub(crate) fn processes(&self) -> Vec<Proc> {
        super::trees(&[self.pid()])
    }

    /// Frames the shell's window has drawn so far (from `ctl health`).
    pub(crate) fn frames(&self) -> Result<u64> {
        let exe = std::env::current_exe().context("locating tessera")?;
        let out = Command::new(exe)
            .arg("ctl")
            .arg("--ctl-socket")
            .arg(&self.ctl)
            .args(["health", "--json"])
            .stderr(Stdio::null())
            .output()
            .context("running tessera ctl health")?;
        let health: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("reading what tessera ctl health said")?;
        health["frames"].as_u64().context("ctl health gave no frame count")
    }

    /// Asks the shell to quit (it saves the desk), then makes sure every process of it is gone.
    pub(crate) fn stop(mut self) -> Result<()> {
        let pid = self.pid();
        let tree: Vec<u32> = self.processes().iter().map(|p| p.pid).collect();
        if let Some(p) = rustix::process::Pid::from_raw(pid.cast_signed()) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                shell::host::procs::kill_tree(pid);
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("tessera did not quit within 15 s of SIGTERM; it was killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Its hosts and their WebKit processes follow it out.
        let deadline = Instant::now() + Duration::from_secs(5);
        while tree.iter().any(|p| std::path::Path::new(&format!("/proc/{p}")).exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            shell::host::procs::kill_tree(self.child.id());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
