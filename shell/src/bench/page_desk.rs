//! A real shell (this build, started as `tessera run`) on a desk of the bench's own, its pages
//! driven through `tessera ctl eval`: what `bench flood` and `bench e2e` run their pages in.
//! Stopped (SIGTERM, then SIGKILL after 10 s) when dropped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// The running shell.
pub(crate) struct PageDesk {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    exe: PathBuf,
}

impl PageDesk {
    /// Writes `manifest` and a plain page (`page.html`, which its apps may use as their URL)
    /// into `dir` and starts the shell on them, with a profile, runtime and config folders in
    /// `dir` and `env` added to its environment (its app hosts inherit it).
    pub(crate) fn start(dir: &Path, manifest: &Value, env: &[(&str, OsString)]) -> Result<Self> {
        let exe = std::env::current_exe().context("locating tessera")?;
        let page = dir.join("page.html");
        std::fs::write(&page, "<!doctype html><title>bench page</title><p>bench page</p>")
            .with_context(|| format!("writing {}", page.display()))?;
        let manifest_path = dir.join("desk.json");
        std::fs::write(&manifest_path, manifest.to_string())
            .with_context(|| format!("writing {}", manifest_path.display()))?;
        let run = dir.join("run");
        std::fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("making {} private", run.display()))?;
        let socket = run.join("ctl.sock");
        let log = dir.join("shell.log");
        let stderr = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("run")
            .arg("--manifest")
            .arg(&manifest_path)
            .arg("--profile")
            .arg(dir.join("profile"))
            .arg("--ctl-socket")
            .arg(&socket)
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env("TESSERA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (name, value) in env {
            cmd.env(name, value);
        }
        if std::env::var_os("TESSERA_KEYRING").is_none() {
            // A throwaway profile's audit key: the kernel keyring, not the user's own.
            cmd.env("TESSERA_KEYRING", "keyutils");
        }
        let child = cmd.spawn().context("starting tessera run")?;
        Ok(Self { child, socket, log, exe })
    }

    fn ctl(&self, args: &[&str]) -> Result<Output> {
        Command::new(&self.exe)
            .arg("ctl")
            .arg("--ctl-socket")
            .arg(&self.socket)
            .args(args)
            .env("TESSERA_LOG", "error")
            .output()
            .context("running tessera ctl")
    }

    /// What `ctl apps --json` lists (nothing if the shell does not answer yet).
    pub(crate) fn apps(&self) -> Vec<Value> {
        self.ctl(&["apps", "--json"])
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Evaluates `script` in an instance's page, waiting up to `timeout` for its value.
    pub(crate) fn eval_within(&self, instance: u64, script: &str, timeout: Duration) -> Result<Value> {
        let secs = format!("{}", timeout.as_secs_f64());
        let out = self.ctl(&["eval", &instance.to_string(), script, "--timeout", &secs])?;
        ensure!(
            out.status.success(),
            "evaluating in instance {instance} failed: {} (the shell's log: {})",
            String::from_utf8_lossy(&out.stderr).trim(),
            self.log.display()
        );
        serde_json::from_slice(&out.stdout).context("reading what the page gave back")
    }

    /// [`Self::eval_within`] a minute.
    pub(crate) fn eval(&self, instance: u64, script: &str) -> Result<Value> {
        self.eval_within(instance, script, Duration::from_secs(60))
    }

    /// The instances of `apps` (one each, in that order), once each has its page loaded.
    pub(crate) fn ready(&mut self, apps: &[&str]) -> Result<Vec<u64>> {
        let start = Instant::now();
        loop {
            let listed = self.apps();
            let loaded = |name: &str| {
                listed
                    .iter()
                    .find(|a| a["app"] == name && a["state"] == "running" && a["url"].is_string())
                    .and_then(|a| a["instance"].as_u64())
            };
            let found: Vec<u64> = apps.iter().filter_map(|a| loaded(a)).collect();
            if found.len() == apps.len() {
                return Ok(found);
            }
            if let Some(status) = self.child.try_wait().context("watching the shell")? {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                bail!("the shell ended ({status}) before its apps loaded: {}", tail.join(" / "));
            }
            ensure!(
                start.elapsed() < Duration::from_secs(60),
                "the apps did not load within 60 s; the shell's log: {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for PageDesk {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id().cast_signed()) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
