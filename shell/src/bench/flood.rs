//! `tessera bench flood`: how much a page flooding the bus costs the other apps. A real shell
//! (this build, started as `tessera run`) runs three pages: `s` publishes a ping every 5 ms,
//! `r` receives them and times each from its send, and `flood` publishes as fast as its script
//! can (bursts of 5,000, carrying on past any refusal). The pings' delivery latency is taken
//! with the desk quiet and then under the flood, in the same run: the goal is a flooded p99 at
//! most twice the quiet one. Needs a display (run it under `xvfb-run`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use serde_json::{Value, json};

use super::page_desk::PageDesk;
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

/// `n` pings from `s` to `r`, 5 ms apart: their latencies (ms, sorted) and how many were lost.
fn pings(desk: &PageDesk, s: u64, r: u64, n: u32, round: &str) -> Result<(Vec<f64>, u64)> {
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
    // A page in the manifest's folder, served by the shell as a local app.
    let manifest = json!({
        "name": "Tessera flood bench",
        "apps": [{ "appId": "s", "url": "page.html" }, { "appId": "r", "url": "page.html" }, { "appId": "flood", "url": "page.html" }],
        "startup": ["s", "r", "flood"],
        "policy": { "rules": [{ "apps": ["*"], "allow": ["bus.publish", "bus.subscribe"] }] },
    });
    let mut desk = PageDesk::start(dir.path(), &manifest, &[])?;
    let [s, r, f] = <[u64; 3]>::try_from(desk.ready(&["s", "r", "flood"])?)
        .map_err(|v| anyhow::anyhow!("expected three instances, got {v:?}"))?;
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
