//! `tessera bench flood`: how much a page flooding the bus costs the other apps. A real shell
//! (this build, started as `tessera run`) runs three pages: `s` publishes a ping every 5 ms,
//! `r` receives them and times each from its send, and `flood` publishes as fast as its script
//! can (bursts of 5,000, carrying on past any refusal). The pings' delivery latency is taken
//! with the desk quiet and then under the flood, in the same run: the goal is a flooded p99 at
//! most twice the quiet one. Needs a display (run it under `xvfb-run`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::FloodBenchArgs;

/// One run's figures (milliseconds: WebKit's clock has 1 ms resolution).
#[derive(Debug, Clone, Serialize)]
struct Run {
    quiet_p50_ms: f64,
    quiet_p99_ms: f64,
    flooded_p50_ms: f64,
    flooded_p99_ms: f64,
    /// Flooded p99 over quiet p99; the goal is at most 2.
    p99_ratio: f64,
    /// What the flooder got through to the shell, a second.
    flooder_msgs_per_sec: f64,
    flooder_restarts: u64,
    /// Pings that did not arrive, quiet and flooded.
    lost: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    pings: u32,
    runs: Vec<Run>,
    worst_p99_ratio: f64,
    optimized_build: bool,
}

/// A shell started for one run, stopped when dropped.
struct Desk {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    exe: PathBuf,
}

impl Desk {
    fn start(dir: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("locating tessera")?;
        let page = dir.join("page.html");
        std::fs::write(&page, "<!doctype html><title>flood bench</title><p>flood bench</p>")
            .with_context(|| format!("writing {}", page.display()))?;
        // A page in the manifest's folder, served by the shell as a local app.
        let url = "page.html";
        let manifest = dir.join("desk.json");
        let desk = json!({
            "name": "Tessera flood bench",
            "apps": [{ "appId": "s", "url": url }, { "appId": "r", "url": url }, { "appId": "flood", "url": url }],
            "startup": ["s", "r", "flood"],
            "policy": { "rules": [{ "apps": ["*"], "allow": ["bus.publish", "bus.subscribe"] }] },
        });
        std::fs::write(&manifest, desk.to_string()).with_context(|| format!("writing {}", manifest.display()))?;
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
            .arg(&manifest)
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

    fn apps(&self) -> Vec<Value> {
        self.ctl(&["apps", "--json"])
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    fn eval(&self, instance: u64, script: &str) -> Result<Value> {
        let out = self.ctl(&["eval", &instance.to_string(), script, "--timeout", "60"])?;
        ensure!(
            out.status.success(),
            "evaluating in instance {instance} failed: {} (the shell's log: {})",
            String::from_utf8_lossy(&out.stderr).trim(),
            self.log.display()
        );
        serde_json::from_slice(&out.stdout).context("reading what the page gave back")
    }

    /// The three apps, once each has its page loaded.
    fn ready(&mut self) -> Result<[u64; 3]> {
        let start = Instant::now();
        loop {
            let apps = self.apps();
            let loaded = |name: &str| {
                apps.iter()
                    .find(|a| a["app"] == name && a["state"] == "running" && a["url"].is_string())
                    .and_then(|a| a["instance"].as_u64())
            };
            if let (Some(s), Some(r), Some(f)) = (loaded("s"), loaded("r"), loaded("flood")) {
                return Ok([s, r, f]);
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

impl Drop for Desk {
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

/// `n` pings from `s` to `r`, 5 ms apart: their latencies (ms, sorted) and how many were lost.
fn pings(desk: &Desk, s: u64, r: u64, n: u32, round: &str) -> Result<(Vec<f64>, u64)> {
    desk.eval(
        r,
        &format!(
            "window.lat = [], window.sub && sub.unsubscribe(), window.sub = tessera.bus.subscribe('lat.{round}', (d) => lat.push(performance.timeOrigin + performance.now() - d.t)), true"
        ),
    )?;
    std::thread::sleep(Duration::from_millis(300));
    desk.eval(
        s,
        &format!(
            "new Promise((ok) => {{ let i = 0; const t = setInterval(() => {{ tessera.bus.publish('lat.{round}', {{ t: performance.timeOrigin + performance.now() }}); if (++i === {n}) {{ clearInterval(t); ok(true); }} }}, 5); }})"
        ),
    )?;
    let start = Instant::now();
    loop {
        let mut got: Vec<f64> = serde_json::from_value(desk.eval(r, "lat")?).context("reading the latencies")?;
        if got.len() >= n as usize || start.elapsed() > Duration::from_secs(20) {
            got.sort_by(f64::total_cmp);
            let lost = u64::from(n).saturating_sub(got.len() as u64);
            return Ok((got, lost));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn one_run(args: &FloodBenchArgs) -> Result<Run> {
    let dir = tempfile::tempdir().context("creating a scratch directory")?;
    let mut desk = Desk::start(dir.path())?;
    let [s, r, f] = desk.ready()?;
    let (quiet, lost_quiet) = pings(&desk, s, r, args.pings, "quiet")?;
    let flood_ms = u64::from(args.pings) * 5 + 6_000;
    desk.eval(
        f,
        &format!(
            "(() => {{ const end = Date.now() + {flood_ms}; const burst = () => {{ for (let i = 0; i < 5000; i++) {{ try {{ tessera.bus.publish('flood.x', {{ i }}); }} catch (e) {{}} }} if (Date.now() < end) setTimeout(burst, 0); }}; burst(); }})(), true"
        ),
    )?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let (loud, lost_loud) = pings(&desk, s, r, args.pings, "loud")?;
    let secs = started.elapsed().as_secs_f64();
    let flooder = desk.apps().into_iter().find(|a| a["app"] == "flood").unwrap_or(Value::Null);
    let (q99, l99) = (percentile(&quiet, 0.99), percentile(&loud, 0.99));
    Ok(Run {
        quiet_p50_ms: percentile(&quiet, 0.5),
        quiet_p99_ms: q99,
        flooded_p50_ms: percentile(&loud, 0.5),
        flooded_p99_ms: l99,
        p99_ratio: if q99 > 0.0 { l99 / q99 } else { f64::INFINITY },
        flooder_msgs_per_sec: flooder["messages_out"].as_u64().unwrap_or(0) as f64 / secs,
        flooder_restarts: flooder["restarts"].as_u64().unwrap_or(0),
        lost: lost_quiet + lost_loud,
    })
}

/// Runs the bench and prints its report.
pub(crate) fn run(args: &FloodBenchArgs) -> Result<()> {
    ensure!(
        std::env::var_os("DISPLAY").is_some(),
        "bench flood runs a real shell and needs a display: run it under xvfb-run (and dbus-run-session)"
    );
    let mut runs = Vec::new();
    for i in 0..args.runs {
        let run = one_run(args).with_context(|| format!("run {}", i + 1))?;
        tracing::info!(run = i + 1, ratio = run.p99_ratio, "flood bench run done");
        runs.push(run);
    }
    let worst = runs.iter().map(|r| r.p99_ratio).fold(0.0, f64::max);
    let report = Report { pings: args.pings, runs, worst_p99_ratio: worst, optimized_build: !cfg!(debug_assertions) };
    super::report(&report, args.json, |r| {
        #[expect(clippy::print_stdout, reason = "the report is a bench command's output")]
        {
            println!("flood bench: {} pings a phase, optimised build: {}", r.pings, r.optimized_build);
            println!("run  quiet p50/p99 ms  flooded p50/p99 ms  p99 ratio  flooder msgs/s  restarts  lost");
            for (i, run) in r.runs.iter().enumerate() {
                println!(
                    "{:>3}  {:>7.1} / {:<7.1}  {:>8.1} / {:<8.1}  {:>9.2}  {:>13.0}  {:>8}  {:>4}",
                    i + 1,
                    run.quiet_p50_ms,
                    run.quiet_p99_ms,
                    run.flooded_p50_ms,
                    run.flooded_p99_ms,
                    run.p99_ratio,
                    run.flooder_msgs_per_sec,
                    run.flooder_restarts,
                    run.lost
                );
            }
            println!("worst p99 ratio {:.2} (goal: at most 2)", r.worst_p99_ratio);
        }
    })
}
