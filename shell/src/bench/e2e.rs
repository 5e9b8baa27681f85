//! `tessera bench e2e`: round trips between two real pages in a real shell (this build, under
//! a display), over the bus and over FDC3 (a user channel, an app channel, an intent with a
//! result), timed by the pages' hosts with the machine's monotonic clock rather than the
//! pages' millisecond one ([`samples`] says how the notes become times). The kinds run in
//! alternating blocks, so each sees the same machine; each run has a shell of its own.

pub(crate) mod samples;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use serde_json::{Value, json};

use self::samples::{PONG, Spread, Times, WARM_UP_BLOCK};
use super::page_desk::PageDesk;
use crate::cli::E2eBenchArgs;

/// The kinds of round trip, in the order the page's script lists them.
pub(crate) const KINDS: [&str; 4] = ["bus", "fdc3 user channel", "fdc3 app channel", "fdc3 intent"];

/// Blocks each kind's rounds are split into.
const BLOCKS: u64 = 8;

/// One kind's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KindFigures {
    pub(crate) kind: &'static str,
    pub(crate) round_trip: Spread,
    /// Page to page, both directions.
    pub(crate) one_way: Spread,
    pub(crate) a_to_b: Spread,
    pub(crate) b_to_a: Spread,
    /// Of a one-way time: from the sender's host to the receiver's handing it to its page.
    pub(crate) host_to_host: Spread,
    /// Of a one-way time: from that hand-over to the receiver's answer reaching its host.
    pub(crate) in_page: Spread,
    /// One-way p50 and p99 over the bus's.
    pub(crate) p50_vs_bus: f64,
    pub(crate) p99_vs_bus: f64,
    /// The mean round trip as the page timed it (`performance.now()` over each block).
    pub(crate) page_mean_us: f64,
    pub(crate) unanswered: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    rounds_per_kind: u64,
    runs: Vec<Vec<KindFigures>>,
    /// Every run's times together.
    all: Vec<KindFigures>,
    optimized_build: bool,
}

/// One run's times and the page's own means (µs), per kind.
struct RunTimes {
    times: Vec<Times>,
    page_mean_us: Vec<f64>,
}

pub(crate) fn run(args: &E2eBenchArgs) -> Result<()> {
    super::desk::need_display()?;
    let per_block = u64::from(args.rounds).div_ceil(BLOCKS);
    let mut runs = Vec::new();
    let mut all: Vec<Times> = vec![Times::default(); KINDS.len()];
    let mut page_means: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    for r in 0..args.runs {
        let got = one_run(per_block).with_context(|| format!("run {}", r + 1))?;
        for (k, t) in got.times.iter().enumerate() {
            all[k].extend(t);
            page_means[k].push(got.page_mean_us[k]);
        }
        let figures = figures(&got.times, &got.page_mean_us);
        tracing::info!(run = r + 1, bus_p50_us = figures[0].one_way.p50_us, "e2e bench run done");
        runs.push(figures);
    }
    let means: Vec<f64> = page_means.iter().map(|m| m.iter().sum::<f64>() / m.len().max(1) as f64).collect();
    let report = Report {
        rounds_per_kind: per_block * BLOCKS,
        all: figures(&all, &means),
        runs,
        optimized_build: !cfg!(debug_assertions),
    };
    super::report(&report, args.json, print)
}

fn figures(times: &[Times], page_mean_us: &[f64]) -> Vec<KindFigures> {
    let bus = Spread::of(&times[0].one_way());
    let ratio = |a: f64, b: f64| if b > 0.0 { (a / b * 100.0).round() / 100.0 } else { f64::NAN };
    times
        .iter()
        .zip(KINDS)
        .zip(page_mean_us)
        .map(|((t, kind), &page_mean_us)| {
            let one_way = Spread::of(&t.one_way());
            KindFigures {
                kind,
                round_trip: Spread::of(&t.round_trip),
                one_way,
                a_to_b: Spread::of(&t.a_to_b),
                b_to_a: Spread::of(&t.b_to_a),
                host_to_host: Spread::of(&t.host_to_host),
                in_page: Spread::of(&t.in_page),
                p50_vs_bus: ratio(one_way.p50_us, bus.p50_us),
                p99_vs_bus: ratio(one_way.p99_us, bus.p99_us),
                page_mean_us: (page_mean_us * 10.0).round() / 10.0,
                unanswered: t.unanswered,
            }
        })
        .collect()
}

/// The desk: `a` drives, `b` answers, each allowed what it needs.
fn manifest() -> Value {
    json!({
        "name": "Tessera e2e bench",
        "apps": [
            { "appId": "a", "url": "page.html" },
            { "appId": "b", "url": "page.html", "interop": { "intents": { "listensFor": {
                "BenchEcho": { "contexts": ["bench.ping"], "resultType": "bench.pong" } } } } },
        ],
        "startup": ["a", "b"],
        "policy": { "rules": [{ "apps": ["*"], "allow": [
            "bus.publish", "bus.subscribe", "fdc3.broadcast", "fdc3.raiseIntent", "fdc3.appChannel"] }] },
    })
}

/// `b` answers every ping of each kind with a pong carrying the ping's stamp plus `PONG`.
fn answerer() -> String {
    format!(
        "(async () => {{
            const PONG = {PONG};
            const pong = (c) => ({{ type: 'bench.pong', benchStamp: c.benchStamp + PONG }});
            tessera.bus.subscribe('e2e.ping', (d) => tessera.bus.publish('e2e.pong', {{ benchStamp: d.benchStamp + PONG }}));
            const user = (await fdc3.getUserChannels())[0];
            await fdc3.joinUserChannel(user.id);
            await fdc3.addContextListener('bench.ping', (c) => fdc3.broadcast(pong(c)));
            const app = await fdc3.getOrCreateChannel('e2e');
            await app.addContextListener('bench.ping', (c) => app.broadcast(pong(c)));
            await fdc3.addIntentListener('BenchEcho', (c) => pong(c));
            return {{ user: user.id, instance: (await fdc3.getInfo()).appMetadata.instanceId }};
        }})()"
    )
}

/// `a` warms every kind up, then sends `per_block` pings a block, each once the last was
/// answered, the kinds' blocks alternating; returns its own mean per kind (µs).
fn driver(user: &str, b_instance: &str, per_block: u64) -> String {
    let (user, b_instance) = (Value::from(user), Value::from(b_instance));
    let (kind, block) = (samples::KIND, samples::BLOCK);
    format!(
        "(async () => {{
            let waiting = null, sentAt = 0, lost = 0;
            const answered = () => {{ const w = waiting; waiting = null; if (w) w(); }};
            // A pong that never comes is counted, not waited for forever.
            const guard = setInterval(() => {{ if (waiting && Date.now() - sentAt > 5000) {{ lost++; answered(); }} }}, 1000);
            tessera.bus.subscribe('e2e.pong', answered);
            await fdc3.joinUserChannel({user});
            await fdc3.addContextListener('bench.pong', answered);
            const app = await fdc3.getOrCreateChannel('e2e');
            await app.addContextListener('bench.pong', answered);
            const target = {{ appId: 'b', instanceId: {b_instance} }};
            const once = (send) => new Promise((res) => {{ waiting = res; sentAt = Date.now(); send(); }});
            const ping = (s) => ({{ type: 'bench.ping', benchStamp: s }});
            const kinds = [
                (s) => once(() => tessera.bus.publish('e2e.ping', {{ benchStamp: s }})),
                (s) => once(() => fdc3.broadcast(ping(s))),
                (s) => once(() => app.broadcast(ping(s))),
                (s) => once(() => fdc3.raiseIntent('BenchEcho', ping(s), target).then((r) => r.getResult()).then(answered, answered)),
            ];
            const stamp = (k, b, i) => (k + 1) * {kind} + b * {block} + i;
            // Until each kind answers 20 in a row (listeners take effect in the shell a moment later).
            const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
            for (let k = 0; k < kinds.length; k++) {{
                let ok = 0;
                for (let i = 0; ok < 20 && i < 400; i++) {{
                    const r = await Promise.race([kinds[k](stamp(k, {WARM_UP_BLOCK}, i)).then(() => true), sleep(250).then(() => false)]);
                    ok = r ? ok + 1 : 0;
                }}
                if (ok < 20) {{ clearInterval(guard); return 'no answer on kind ' + k; }}
            }}
            lost = 0;
            const ms = kinds.map(() => 0);
            for (let b = 0; b < {BLOCKS}; b++) {{
                for (let j = 0; j < kinds.length; j++) {{
                    const k = (j + b) % kinds.length;
                    const t0 = performance.now();
                    for (let i = 0; i < {per_block}; i++) await kinds[k](stamp(k, b, i));
                    ms[k] += performance.now() - t0;
                }}
            }}
            clearInterval(guard);
            return {{ pageMeanUs: ms.map((m) => m * 1000 / ({BLOCKS} * {per_block})) }};
        }})()"
    )
}

fn one_run(per_block: u64) -> Result<RunTimes> {
    let dir = tempfile::tempdir().context("creating a scratch directory")?;
    let stamps = dir.path().join("stamps");
    std::fs::create_dir(&stamps).with_context(|| format!("creating {}", stamps.display()))?;
    let mut desk = PageDesk::start(dir.path(), &manifest(), &[("TESSERA_BENCH_STAMPS", stamps.clone().into())])?;
    let ready = desk.ready(&["a", "b"])?;
    let [a, b] = ready.as_slice() else { bail!("expected two instances, got {ready:?}") };
    let b_info = desk.eval(*b, &answerer())?;
    let (Some(user), Some(b_instance)) = (b_info["user"].as_str(), b_info["instance"].as_str()) else {
        bail!("page b did not say its channel and instance: {b_info}");
    };
    // Rounds take around a millisecond each; ten minutes is for a machine far slower than that.
    let result = desk.eval_within(*a, &driver(user, b_instance, per_block), Duration::from_secs(600))?;
    if let Some(problem) = result.as_str() {
        bail!("page a: {problem}");
    }
    let page_mean_us: Vec<f64> = serde_json::from_value(result["pageMeanUs"].clone())
        .with_context(|| format!("reading page a's means from {result}"))?;
    ensure!(page_mean_us.len() == KINDS.len(), "page a gave {} means for {} kinds", page_mean_us.len(), KINDS.len());
    // The hosts' writers flush as soon as their queues run dry.
    std::thread::sleep(Duration::from_millis(300));
    drop(desk);
    let notes = read_stamps(&stamps)?;
    let times = (0..KINDS.len()).map(|k| samples::times(&notes, k, BLOCKS, per_block)).collect();
    Ok(RunTimes { times, page_mean_us })
}

/// Every host's notes in `dir`.
fn read_stamps(dir: &std::path::Path) -> Result<samples::Notes> {
    let mut notes = samples::Notes::default();
    let mut files = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "stamps") {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            notes.read(&text).with_context(|| format!("in {}", path.display()))?;
            files += 1;
        }
    }
    ensure!(files >= 2, "{files} of the two pages had stamps noted in {} (an app host too old to?)", dir.display());
    Ok(notes)
}

#[expect(clippy::print_stdout, reason = "the report is the bench's output")]
fn print(r: &Report) {
    println!(
        "page to page, {} round trips of each kind a run, {} runs, optimised build: {}",
        r.rounds_per_kind,
        r.runs.len(),
        r.optimized_build
    );
    println!("(µs; one way: both directions; host-side monotonic clock)");
    println!(
        "{:<18} {:>20} {:>20} {:>13} {:>13} {:>13} {:>9}",
        "kind",
        "round trip p50/99/99.9",
        "one way p50/99/99.9",
        "vs bus p50/99",
        "host-host p50/99",
        "in page p50/99",
        "page mean"
    );
    let row = |f: &KindFigures| {
        let three = |s: &Spread| format!("{:.0} / {:.0} / {:.0}", s.p50_us, s.p99_us, s.p999_us);
        let two = |s: &Spread| format!("{:.0} / {:.0}", s.p50_us, s.p99_us);
        println!(
            "{:<18} {:>20} {:>20} {:>13} {:>13} {:>13} {:>9.0}{}",
            f.kind,
            three(&f.round_trip),
            three(&f.one_way),
            format!("{:.2} / {:.2}", f.p50_vs_bus, f.p99_vs_bus),
            two(&f.host_to_host),
            two(&f.in_page),
            f.page_mean_us,
            if f.unanswered > 0 { format!("  ({} unanswered)", f.unanswered) } else { String::new() }
        );
    };
    for (i, run) in r.runs.iter().enumerate() {
        println!("run {}", i + 1);
        run.iter().for_each(row);
    }
    println!("all runs");
    r.all.iter().for_each(row);
}

#[cfg(test)]
mod tests;
