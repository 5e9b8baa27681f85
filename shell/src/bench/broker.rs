//! `tessera bench broker`: what routing and delivery cost in process.
//!
//! Three passes over one generated workload:
//! 1. match: the router's cached path (what `publish` uses), its uncached trie walk, and a
//!    naive linear scan over every subscription as the baseline, each call timed alone
//!    (the ~20 ns cost of reading the clock is included, not subtracted);
//! 2. throughput: one publisher thread publishes every message through a real `Broker`, one
//!    subscriber thread drains all subscriptions (backpressure policy, so nothing is lost);
//! 3. latency: a paced publisher (one message every 50 µs, 20,000 msgs/s) and a subscriber
//!    thread blocked in `recv`, so each sample includes the thread wake-up; the same with a
//!    subscriber that polls 200 µs before parking; and, as the floor, the same pacing through
//!    a bare channel with no broker.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use broker::router::Router;
use broker::{Broker, BrokerConfig, MessageOptions, Pattern, QueuePolicy, Recv, SubscribeOptions, Topic};
use serde::Serialize;

use super::workload::{self, Rng};
use crate::bench::stats::{OnOff, p50_p99};
use crate::cli::BrokerBenchArgs;

/// Most pattern checks the linear baseline may spend, so it stays a few seconds long.
const LINEAR_BUDGET: usize = 100_000_000;
/// Payload size of every message.
const PAYLOAD_BYTES: usize = 64;
/// Interval between latency samples.
const LATENCY_INTERVAL: Duration = Duration::from_micros(50);
/// Poll time of the spinning subscriber in the second latency pass.
const SPIN: Duration = Duration::from_micros(200);

#[derive(Debug, Serialize)]
struct Report {
    subscriptions: usize,
    wildcard_subscriptions: usize,
    wildcard_ratio: f64,
    messages: usize,
    payload_bytes: usize,
    match_ns_p50: u64,
    match_ns_p99: u64,
    match_uncached_ns_p50: u64,
    match_uncached_ns_p99: u64,
    linear_ns_p50: u64,
    linear_ns_p99: u64,
    linear_topics: usize,
    speedup_vs_linear: f64,
    speedup_vs_linear_uncached: f64,
    mean_fanout: f64,
    deliveries: u64,
    deliveries_per_sec: f64,
    publishes_per_sec: f64,
    publish_to_deliver_ns_p50: u64,
    publish_to_deliver_ns_p99: u64,
    publish_call_ns_p50: u64,
    publish_call_ns_p99: u64,
    publish_to_deliver_spin_ns_p50: u64,
    publish_to_deliver_spin_ns_p99: u64,
    bare_channel_wake_ns_p50: u64,
    bare_channel_wake_ns_p99: u64,
    latency_samples: usize,
    /// Throughput passes with the broker's metrics off and on, in turns.
    metrics: Option<OnOff>,
    optimized_build: bool,
}

pub(crate) fn run(args: &BrokerBenchArgs) -> Result<()> {
    let n = args.subscriptions as usize;
    let m = args.messages as usize;
    let mut rng = Rng::new(args.seed);
    let patterns: Vec<(String, bool)> = (0..n).map(|_| workload::pattern(&mut rng, args.wildcard_ratio)).collect();
    let topics: Vec<String> = (0..m).map(|_| workload::topic(&mut rng)).collect();
    tracing::info!(subscriptions = n, messages = m, "workload generated");

    let matching = match_pass(&patterns, &topics)?;
    let metrics_on = !args.no_metrics;
    let throughput = throughput_pass(&patterns, &topics, metrics_on)?;
    let metrics = OnOff::measure(args.metrics_passes as usize, |on| {
        let t = throughput_pass(&patterns, &topics, on)?;
        Ok(t.deliveries as f64 / t.elapsed.as_secs_f64())
    })?;
    let samples = args.latency_samples as usize;
    let wake = wake_baseline(samples)?;
    let parked = latency_pass(&patterns, samples, Duration::ZERO, metrics_on)?;
    let spinning = latency_pass(&patterns, samples, SPIN, metrics_on)?;

    let report = Report {
        subscriptions: n,
        wildcard_subscriptions: patterns.iter().filter(|(_, w)| *w).count(),
        wildcard_ratio: args.wildcard_ratio,
        messages: m,
        payload_bytes: PAYLOAD_BYTES,
        match_ns_p50: matching.cached.0,
        match_ns_p99: matching.cached.1,
        match_uncached_ns_p50: matching.uncached.0,
        match_uncached_ns_p99: matching.uncached.1,
        linear_ns_p50: matching.linear.0,
        linear_ns_p99: matching.linear.1,
        linear_topics: matching.linear_topics,
        speedup_vs_linear: matching.speedup,
        speedup_vs_linear_uncached: matching.speedup_uncached,
        mean_fanout: throughput.deliveries as f64 / m as f64,
        deliveries: throughput.deliveries,
        deliveries_per_sec: throughput.deliveries as f64 / throughput.elapsed.as_secs_f64(),
        publishes_per_sec: m as f64 / throughput.elapsed.as_secs_f64(),
        publish_to_deliver_ns_p50: parked.deliver.0,
        publish_to_deliver_ns_p99: parked.deliver.1,
        publish_call_ns_p50: parked.publish.0,
        publish_call_ns_p99: parked.publish.1,
        publish_to_deliver_spin_ns_p50: spinning.deliver.0,
        publish_to_deliver_spin_ns_p99: spinning.deliver.1,
        bare_channel_wake_ns_p50: wake.0,
        bare_channel_wake_ns_p99: wake.1,
        latency_samples: samples,
        metrics,
        optimized_build: !cfg!(debug_assertions),
    };
    super::report(&report, args.json, print_table)
}

#[expect(clippy::print_stdout, reason = "the table is this command's output")]
fn print_table(r: &Report) {
    println!(
        "broker benchmark: {} subscriptions ({} wildcard), {} messages of {} bytes",
        r.subscriptions, r.wildcard_subscriptions, r.messages, r.payload_bytes
    );
    println!("  match (cached path)     p50 {:>8} ns   p99 {:>8} ns", r.match_ns_p50, r.match_ns_p99);
    println!("  match (trie, uncached)  p50 {:>8} ns   p99 {:>8} ns", r.match_uncached_ns_p50, r.match_uncached_ns_p99);
    println!(
        "  match (linear scan)     p50 {:>8} ns   p99 {:>8} ns   over {} topics",
        r.linear_ns_p50, r.linear_ns_p99, r.linear_topics
    );
    println!(
        "  speedup vs linear       {:.1}x cached, {:.1}x uncached",
        r.speedup_vs_linear, r.speedup_vs_linear_uncached
    );
    println!(
        "  throughput              {:.0} deliveries/s, {:.0} publishes/s, mean fan-out {:.2}",
        r.deliveries_per_sec, r.publishes_per_sec, r.mean_fanout
    );
    println!(
        "  publish -> deliver      p50 {:>8} ns   p99 {:>8} ns   ({} samples, parked subscriber: wake-up included)",
        r.publish_to_deliver_ns_p50, r.publish_to_deliver_ns_p99, r.latency_samples
    );
    println!("    of which publish call p50 {:>8} ns   p99 {:>8} ns", r.publish_call_ns_p50, r.publish_call_ns_p99);
    println!(
        "  bare channel wake-up    p50 {:>8} ns   p99 {:>8} ns   (no broker: this machine's floor)",
        r.bare_channel_wake_ns_p50, r.bare_channel_wake_ns_p99
    );
    println!(
        "  publish -> deliver      p50 {:>8} ns   p99 {:>8} ns   (subscriber polls 200 us before parking)",
        r.publish_to_deliver_spin_ns_p50, r.publish_to_deliver_spin_ns_p99
    );
    if let Some(m) = &r.metrics {
        println!("{}", m.line("metrics' cost", "deliveries/s"));
    }
    if !r.optimized_build {
        println!("  (debug build: use `cargo run --release` for figures worth comparing)");
    }
}

struct MatchFigures {
    cached: (u64, u64),
    uncached: (u64, u64),
    linear: (u64, u64),
    linear_topics: usize,
    speedup: f64,
    speedup_uncached: f64,
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn match_pass(patterns: &[(String, bool)], topics: &[String]) -> Result<MatchFigures> {
    let parsed: Vec<Pattern> = patterns
        .iter()
        .map(|(p, _)| Pattern::parse(p).with_context(|| format!("generated pattern {p:?}")))
        .collect::<Result<_>>()?;
    let topics: Vec<Topic> = topics
        .iter()
        .map(|t| Topic::parse(t).with_context(|| format!("generated topic {t:?}")))
        .collect::<Result<_>>()?;
    let mut router = Router::new(BrokerConfig::default().route_cache_capacity);
    for (i, p) in parsed.iter().enumerate() {
        router.insert(p, u32::try_from(i).context("too many subscriptions")?);
    }

    let mut cached = Vec::with_capacity(topics.len());
    for t in &topics {
        let start = Instant::now();
        let hits = router.matches(t);
        cached.push(elapsed_ns(start));
        std::hint::black_box(hits);
    }
    let mut uncached = Vec::with_capacity(topics.len());
    let mut out = Vec::new();
    for t in &topics {
        let start = Instant::now();
        router.matches_uncached(t, &mut out);
        uncached.push(elapsed_ns(start));
        std::hint::black_box(&out);
    }

    let linear_topics = (LINEAR_BUDGET / parsed.len()).max(1000).min(topics.len());
    let mut linear = Vec::with_capacity(linear_topics);
    let mut found = Vec::new();
    for t in &topics[..linear_topics] {
        let start = Instant::now();
        found.clear();
        found.extend(parsed.iter().enumerate().filter(|(_, p)| p.matches(t)).map(|(i, _)| i as u32));
        linear.push(elapsed_ns(start));
        // The baseline doubles as a correctness check of the trie.
        router.matches_uncached(t, &mut out);
        if out != found {
            bail!("router and linear scan disagree on topic {t}: {out:?} vs {found:?}");
        }
    }

    let sum = |v: &[u64]| v.iter().map(|&x| x as f64).sum::<f64>();
    let linear_sum = sum(&linear);
    let speedup = linear_sum / sum(&cached[..linear_topics]).max(1.0);
    let speedup_uncached = linear_sum / sum(&uncached[..linear_topics]).max(1.0);
    Ok(MatchFigures {
        cached: p50_p99(&mut cached),
        uncached: p50_p99(&mut uncached),
        linear: p50_p99(&mut linear),
        linear_topics,
        speedup,
        speedup_uncached,
    })
}

struct Throughput {
    deliveries: u64,
    elapsed: Duration,
}

fn throughput_pass(patterns: &[(String, bool)], topics: &[String], metrics: bool) -> Result<Throughput> {
    let b = Broker::new(BrokerConfig { metrics, ..BrokerConfig::default() });
    let sink = b.connect(None);
    let opts = SubscribeOptions::default().capacity(1024).policy(QueuePolicy::Backpressure);
    let subs = patterns.iter().map(|(p, _)| sink.subscribe(p, opts)).collect::<Result<Vec<_>, _>>()?;
    let publisher = b.connect(None);
    let payload = broker::Payload::from(vec![7u8; PAYLOAD_BYTES]);
    let (done_tx, done_rx) = handoff();

    let consumer = thread::spawn(move || {
        let mut received = 0u64;
        let mut expected: Option<u64> = None;
        loop {
            let mut swept = 0u64;
            for s in &subs {
                while let Some(d) = s.try_recv() {
                    std::hint::black_box(&d);
                    swept += 1;
                }
            }
            received += swept;
            if expected.is_none() {
                expected = done_rx.try_recv().ok();
            }
            if expected.is_some_and(|e| received >= e) {
                return (received, Instant::now());
            }
            if swept == 0 {
                thread::yield_now();
            }
        }
    });

    let start = Instant::now();
    let mut deliveries = 0u64;
    for t in topics {
        let p = publisher
            .publish_blocking(t, payload.clone(), MessageOptions::default(), Duration::from_secs(30))
            .with_context(|| format!("publishing to {t}"))?;
        deliveries += p.delivered as u64;
    }
    done_tx.send(deliveries).ok();
    let (received, end) = consumer.join().map_err(|_| anyhow::anyhow!("the subscriber thread panicked"))?;
    ensure!(received == deliveries, "published {deliveries} deliveries but the subscriber got {received}");
    ensure!(b.dead_letters().is_empty(), "the throughput pass dead-lettered messages");
    Ok(Throughput { deliveries, elapsed: end.duration_since(start) })
}

/// A one-shot hand-off between the bench threads.
fn handoff() -> (std::sync::mpsc::SyncSender<u64>, std::sync::mpsc::Receiver<u64>) {
    std::sync::mpsc::sync_channel(1)
}

struct Latency {
    deliver: (u64, u64),
    publish: (u64, u64),
}

/// Paced publishes to a subscriber thread; `spin` is the subscriber's poll time before parking.
fn latency_pass(patterns: &[(String, bool)], samples: usize, spin: Duration, metrics: bool) -> Result<Latency> {
    let b = Broker::new(BrokerConfig { metrics, ..BrokerConfig::default() });
    // The other subscriptions are installed and matched, but nobody reads them: drop-oldest
    // keeps their queues short, as tick subscribers do.
    let sink = b.connect(None);
    let opts = SubscribeOptions::default().capacity(16).policy(QueuePolicy::DropOldest);
    let _subs = patterns.iter().map(|(p, _)| sink.subscribe(p, opts)).collect::<Result<Vec<_>, _>>()?;
    let probe_client = b.connect(None);
    let probe = probe_client.subscribe("prices.*.s0000", SubscribeOptions::default().capacity(4096).spin(spin))?;
    let publisher = b.connect(None);
    let base = Instant::now();

    let receiver = thread::spawn(move || {
        let mut lat = Vec::with_capacity(samples);
        while lat.len() < samples {
            match probe.recv_timeout(Duration::from_secs(10)) {
                Recv::Message(d) => {
                    let now = elapsed_ns(base);
                    let mut sent = [0u8; 8];
                    sent.copy_from_slice(&d.envelope.payload.as_bytes()[..8]);
                    lat.push(now.saturating_sub(u64::from_le_bytes(sent)));
                }
                Recv::Timeout | Recv::Closed => break,
            }
        }
        lat
    });

    let venues = ["xnas", "xnys", "arcx", "bats"];
    let mut publish = Vec::with_capacity(samples);
    let mut next = Instant::now();
    for i in 0..samples {
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        next += LATENCY_INTERVAL;
        let topic = format!("prices.{}.s0000", venues[i % venues.len()]);
        let mut payload = vec![0u8; PAYLOAD_BYTES];
        let start = elapsed_ns(base);
        payload[..8].copy_from_slice(&start.to_le_bytes());
        publisher.publish(&topic, payload, MessageOptions::default())?;
        publish.push(elapsed_ns(base).saturating_sub(start));
    }
    let mut lat = receiver.join().map_err(|_| anyhow::anyhow!("the latency subscriber thread panicked"))?;
    ensure!(lat.len() == samples, "latency pass received {} of {samples} messages", lat.len());
    Ok(Latency { deliver: p50_p99(&mut lat), publish: p50_p99(&mut publish) })
}

/// The platform's floor: the same pacing through a bare bounded channel to a parked thread,
/// no broker at all.
fn wake_baseline(samples: usize) -> Result<(u64, u64)> {
    let (tx, rx) = flume::bounded::<u64>(4096);
    let base = Instant::now();
    let receiver = thread::spawn(move || {
        let mut lat = Vec::with_capacity(samples);
        while let Ok(sent) = rx.recv() {
            lat.push(elapsed_ns(base).saturating_sub(sent));
        }
        lat
    });
    let mut next = Instant::now();
    for _ in 0..samples {
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        next += LATENCY_INTERVAL;
        tx.send(elapsed_ns(base)).context("the baseline receiver hung up")?;
    }
    drop(tx);
    let mut lat = receiver.join().map_err(|_| anyhow::anyhow!("the baseline receiver thread panicked"))?;
    ensure!(lat.len() == samples, "baseline received {} of {samples}", lat.len());
    Ok(p50_p99(&mut lat))
}
