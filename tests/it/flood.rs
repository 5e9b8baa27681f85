//! A page flooding the bus (as fast as it can, far past 100,000 messages a second) in the real
//! shell: it is slowed to its rate limit (or, if it stops answering, restarted), and the other
//! apps' delivery latency stays within twice what it is when all is quiet.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::e2e::{Shell, instance_of, js, running_with_page};

/// Sends `n` pings from `s` to `r` 5 ms apart; returns the latencies in ms, sorted.
fn pings(shell: &Shell, s: u64, r: u64, n: usize, round: &str) -> Vec<f64> {
    js(
        shell,
        r,
        &format!(
            "window.lat = [], window.sub && sub.unsubscribe(), window.sub = tessera.bus.subscribe('lat.{round}', (d) => lat.push(performance.timeOrigin + performance.now() - d.t)), true"
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    js(
        shell,
        s,
        &format!(
            "new Promise((ok) => {{ let i = 0; const t = setInterval(() => {{ tessera.bus.publish('lat.{round}', {{ t: performance.timeOrigin + performance.now() }}); if (++i === {n}) {{ clearInterval(t); ok(true); }} }}, 5); }})"
        ),
    );
    let start = Instant::now();
    loop {
        let got: Vec<f64> = serde_json::from_value(js(shell, r, "lat")).unwrap();
        if got.len() >= n || start.elapsed() > Duration::from_secs(20) {
            let mut got = got;
            got.sort_by(f64::total_cmp);
            assert!(got.len() >= n * 9 / 10, "{round}: only {} of {n} pings arrived", got.len());
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn p(v: &[f64], q: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

#[test]
fn a_flooding_app_is_slowed_and_the_others_keep_their_latency() {
    let dir = tempfile::tempdir().unwrap();
    let page = tests::fixture_page("fdc3", "app.html", dir.path());
    let manifest = dir.path().join("desk.json");
    std::fs::write(
        &manifest,
        json!({
            "name": "Tessera flood desk",
            "apps": [
                { "appId": "s", "url": page }, { "appId": "r", "url": page }, { "appId": "flood", "url": page },
            ],
            "startup": ["s", "r", "flood"],
            "policy": { "rules": [{ "apps": ["*"], "allow": ["bus.publish", "bus.subscribe"] }] },
        })
        .to_string(),
    )
    .unwrap();
    let shell = Shell::start_full(manifest.to_str().unwrap(), None, 2048, &[], "flood");
    shell.wait_for("the apps load", Duration::from_secs(60), |apps| {
        apps.len() == 3 && apps.iter().all(running_with_page)
    });
    let (s, r, f) = (instance_of(&shell, "s"), instance_of(&shell, "r"), instance_of(&shell, "flood"));

    let quiet = pings(&shell, s, r, 800, "quiet");
    // The flood: bursts of 5,000 publishes, back to back, for 8 s.
    js(
        &shell,
        f,
        "window.sent = 0, (() => { const end = Date.now() + 10000; const burst = () => { for (let i = 0; i < 5000; i++) tessera.bus.publish('flood.x', { i }); sent += 5000; if (Date.now() < end) setTimeout(burst, 0); }; burst(); })(), true",
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let loud = pings(&shell, s, r, 800, "loud");
    let flood = shell.app(f);
    let out = flood["messages_out"].as_u64().unwrap_or(0);
    let secs = started.elapsed().as_secs_f64();
    let (q50, q99, l50, l99) = (p(&quiet, 0.5), p(&quiet, 0.99), p(&loud, 0.5), p(&loud, 0.99));
    eprintln!(
        "quiet p50 {q50:.2} ms p99 {q99:.2} ms; flooded p50 {l50:.2} ms p99 {l99:.2} ms ({:.2}x); the flooder got {out} messages through in {secs:.1} s ({:.0}/s), restarts {}",
        l99 / q99,
        out as f64 / secs,
        flood["restarts"]
    );
    let restarted = flood["restarts"].as_u64().unwrap_or(0) > 0;
    assert!(
        restarted || (out as f64) < 1.3 * f64::from(shell::host::supervisor::DEFAULT_RATE_LIMIT) * secs + 30_000.0,
        "the flooder was neither slowed nor disconnected: {out} messages in {secs:.1} s"
    );
    assert!(l99 <= 2.0 * q99, "delivery p99 {l99:.2} ms under the flood, over twice the quiet {q99:.2} ms");
}
