//! A page flooding the bus (as fast as its script can, far past 100,000 messages a second) in
//! the real shell: it is slowed to its rate limit, its script paused rather than refused or
//! restarted, it keeps answering the shell, and the other apps keep getting every message.
//!
//! What the flood costs the others' latency is a speed goal, measured where it can be: `tessera
//! bench flood` on a release build, quiet and flooded in the same run (BENCHMARKS.md). Here the
//! shell is an unoptimised build and WebKit's clock has 1 ms resolution; the figures are printed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

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
            assert_eq!(got.len(), n, "{round}: only {} of {n} pings arrived", got.len());
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pings a phase.
const PINGS: usize = 800;

fn p(v: &[f64], q: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// What a flood did: what the flooder's page counted, and what the shell took from it.
struct Flooded {
    page: Value,
    out: u64,
}

/// A desk of three pages: `s` pings `r` while all is quiet, then `flood` floods the bus (with
/// `csp` as its content security policy) and `s` pings `r` again. Every ping must arrive.
fn flood(name: &str, csp: Option<&str>) -> Flooded {
    let dir = tempfile::tempdir().unwrap();
    let page = tests::fixture_page("fdc3", "app.html", dir.path());
    let mut flooder = json!({ "appId": "flood", "url": page });
    if let Some(csp) = csp {
        flooder["csp"] = json!(csp);
    }
    let manifest = dir.path().join("desk.json");
    std::fs::write(
        &manifest,
        json!({
            "name": "Tessera flood desk",
            "apps": [{ "appId": "s", "url": page }, { "appId": "r", "url": page }, flooder],
            "startup": ["s", "r", "flood"],
            "policy": { "rules": [{ "apps": ["*"], "allow": ["bus.publish", "bus.subscribe"] }] },
        })
        .to_string(),
    )
    .unwrap();
    let shell = Shell::start_full(manifest.to_str().unwrap(), None, 2048, &[], name);
    shell.wait_for("the apps load", Duration::from_secs(60), |apps| {
        apps.len() == 3 && apps.iter().all(running_with_page)
    });
    let (s, r, f) = (instance_of(&shell, "s"), instance_of(&shell, "r"), instance_of(&shell, "flood"));

    let quiet = pings(&shell, s, r, PINGS, "quiet");
    // The flood: bursts of 5,000 publishes, back to back, for 10 s, carrying on past refusals.
    js(
        &shell,
        f,
        "window.sent = 0, window.refused = 0, window.said = '', (() => { const end = Date.now() + 10000; const burst = () => { for (let i = 0; i < 5000; i++) { try { tessera.bus.publish('flood.x', { i }); sent++; } catch (e) { refused++; said = e.message; } } if (Date.now() < end) setTimeout(burst, 0); }; burst(); })(), true",
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let loud = pings(&shell, s, r, PINGS, "loud");
    let app = shell.app(f);
    let out = app["messages_out"].as_u64().unwrap_or(0);
    let secs = started.elapsed().as_secs_f64();
    // The flooder still answers the shell.
    let page = js(&shell, f, "({ sent, refused, said })");
    let (q50, q99, l50, l99) = (p(&quiet, 0.5), p(&quiet, 0.99), p(&loud, 0.5), p(&loud, 0.99));
    eprintln!(
        "quiet p50 {q50:.2} ms p99 {q99:.2} ms; flooded p50 {l50:.2} ms p99 {l99:.2} ms ({:.2}x); the flooder got {out} messages through in {secs:.1} s ({:.0}/s), restarts {}; its page: {page}",
        l99 / q99,
        out as f64 / secs,
        app["restarts"]
    );
    assert_eq!(app["restarts"], 0, "the flooder was restarted: {app}");
    assert!(
        (out as f64) < 1.3 * f64::from(shell::host::supervisor::DEFAULT_RATE_LIMIT) * secs + 30_000.0,
        "the flooder was not slowed: {out} messages in {secs:.1} s"
    );
    assert!(app["throttled"].as_u64().unwrap_or(0) > 0, "the flooder was never held back: {app}");
    Flooded { page, out }
}

#[test]
fn a_flooding_page_is_paused_to_its_rate_limit_and_the_others_get_every_message() {
    let Flooded { page, out, .. } = flood("flood", None);
    // Its script was paused while the shell caught up, not told to give up.
    assert_eq!(page["refused"], 0, "{page}");
    assert!(page["sent"].as_u64().unwrap_or(0) > out / 2, "{page}");
}

#[test]
fn a_flooding_page_that_cannot_be_paused_is_held_back_and_told() {
    // Its policy forbids the request its preload pauses on: what it sends past the window
    // waits in the page, and past that it is refused, with the reason.
    let Flooded { page, .. } = flood("flood-csp", Some("connect-src 'none'"));
    assert!(page["refused"].as_u64().unwrap_or(0) > 0, "{page}");
    assert!(page["said"].as_str().unwrap_or_default().contains("faster than its rate limit"), "{page}");
}
