//! `tessera bench ipc`: N real `tessera-app-host` processes on the real transport (no webview),
//! publishing to and receiving from each other through this process's broker.
//!
//! Client i subscribes to `bench.c<i>` and publishes its share of the messages to
//! `bench.c<i+1>`, so every message crosses two sockets and the broker. Three passes:
//! flat out with coalescing; flat out with one write per message (hosts and shell), the
//! baseline; and paced at 20,000 msgs/s in all, for latency (the payload carries the send time,
//! the receiving host measures). Then the cost of the broker's metrics and of tracing (one
//! message in a hundred by default, its spans sent to a loopback collector), each measured
//! both ways in turns.

use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use broker::{Broker, BrokerConfig, MessageOptions};
use serde::Serialize;
use telemetry::trace::TraceConfig;

use crate::bench::otlp_sink::Sink;
use crate::bench::stats::{OnOff, median, p50_p99};
use crate::cli::IpcBenchArgs;

/// Aggregate rate of the latency pass.
const PACED_RATE: u64 = 20_000;

#[derive(Debug, Serialize)]
struct Report {
    clients: usize,
    messages: u64,
    payload_bytes: usize,
    msgs_per_sec: f64,
    unbatched_msgs_per_sec: f64,
    speedup_vs_unbatched: f64,
    paced_msgs_per_sec: u64,
    publish_to_deliver_us_p50: f64,
    publish_to_deliver_us_p99: f64,
    /// Flat-out passes with the broker's metrics off and on, in turns.
    metrics: Option<OnOff>,
    /// Flat-out passes with tracing off and on (at `trace_ratio`, to a loopback collector), in
    /// turns.
    traces: Option<OnOff>,
    /// The share of messages traced in those passes.
    trace_ratio: f64,
    /// Paced passes with tracing off and on, in turns.
    paced_traces: Option<PacedTraces>,
    /// Spans exported in the traced passes, and the requests that carried them.
    spans_exported: u64,
    trace_requests: u64,
    optimized_build: bool,
}

/// Publish-to-deliver latency of paced passes, each pass's p50 and p99, tracing off and on.
#[derive(Debug, Default, Serialize)]
struct PacedTraces {
    off_p50_us: Vec<f64>,
    off_p99_us: Vec<f64>,
    on_p50_us: Vec<f64>,
    on_p99_us: Vec<f64>,
}

struct Pass {
    msgs_per_sec: f64,
    latencies_ns: Vec<u64>,
}

fn app_host() -> Result<std::path::PathBuf> {
    let me = std::env::current_exe().context("locating tessera")?;
    let host = me.with_file_name("tessera-app-host");
    ensure!(host.exists(), "{} is missing (build both binaries)", host.display());
    Ok(host)
}

fn run_pass(args: &IpcBenchArgs, messages: u64, rate_per_client: u64, unbatched: bool, metrics: bool) -> Result<Pass> {
    let n = args.clients as usize;
    let per = messages / n as u64;
    let host = app_host()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let broker = Broker::new(BrokerConfig { metrics, ..BrokerConfig::default() });
    let coalesce = if unbatched { 1 } else { 1024 };
    let mut children = Vec::new();
    for i in 0..n {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().context("creating a socketpair")?;
        let mut cmd = Command::new(&host);
        cmd.arg("bench-client")
            .args(["--publish", &format!("bench.c{}", (i + 1) % n)])
            .args(["--subscribe", &format!("bench.c{i}")])
            .args(["--count", &per.to_string(), "--expect", &per.to_string()])
            .args(["--payload", &args.payload.to_string(), "--rate", &rate_per_client.to_string()])
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped());
        if unbatched {
            cmd.arg("--unbatched");
        }
        let child = cmd.spawn().with_context(|| format!("starting {}", host.display()))?;
        ours.set_nonblocking(true)?;
        let broker = broker.clone();
        runtime.spawn(async move {
            match tokio::net::UnixStream::from_std(ours) {
                Ok(stream) => {
                    if let Err(e) = shell::host::ipc::serve_with(broker, stream, None, coalesce).await {
                        tracing::warn!(error = %format!("{e:#}"), "bench connection ended");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot register the bench socket"),
            }
        });
        children.push(child);
    }
    // Everyone subscribed (two each) before anyone publishes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.stats().subscriptions < 2 * n {
        ensure!(Instant::now() < deadline, "app hosts did not subscribe in time");
        std::thread::sleep(Duration::from_millis(5));
    }
    let starter = broker.connect(None);
    let start = Instant::now();
    starter.publish("bench.go", "go", MessageOptions::default())?;
    let mut latencies = Vec::new();
    let mut received = 0u64;
    for mut child in children {
        let stdout = child.stdout.take().context("child stdout")?;
        let line = std::io::BufReader::new(stdout).lines().next().transpose()?.unwrap_or_default();
        let status = child.wait()?;
        if !status.success() || line.is_empty() {
            bail!("an app host failed ({status})");
        }
        let v: serde_json::Value = serde_json::from_str(&line).context("app host summary")?;
        received += v["received"].as_u64().unwrap_or(0);
        if let Some(l) = v["latencies_ns"].as_array() {
            latencies.extend(l.iter().filter_map(serde_json::Value::as_u64));
        }
    }
    let elapsed = start.elapsed();
    ensure!(received == per * n as u64, "received {received} of {}", per * n as u64);
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(Pass { msgs_per_sec: received as f64 / elapsed.as_secs_f64(), latencies_ns: latencies })
}

pub(crate) fn run(args: &IpcBenchArgs) -> Result<()> {
    let n = u64::from(args.clients);
    let flat = run_pass(args, u64::from(args.messages), 0, false, true)?;
    let unbatched = run_pass(args, u64::from(args.messages), 0, true, true)?;
    let metrics = OnOff::measure(3, |on| Ok(run_pass(args, u64::from(args.messages), 0, false, on)?.msgs_per_sec))?;
    ensure!((0.0..=1.0).contains(&args.trace_ratio), "--trace-ratio {} is not from 0 to 1", args.trace_ratio);
    let sink = Sink::start()?;
    let tracer = telemetry::trace::global();
    let exported_before = tracer.counts().exported;
    let traces = OnOff::measure(args.trace_passes as usize, |on| {
        if on {
            tracer.install(TraceConfig {
                endpoint: sink.url.clone(),
                sample_ratio: args.trace_ratio,
                resource: vec![],
            })?;
        }
        let pass = run_pass(args, u64::from(args.messages), 0, false, true);
        // What the pass queued is sent before the next one starts.
        tracer.uninstall();
        std::thread::sleep(Duration::from_millis(1200));
        Ok(pass?.msgs_per_sec)
    })?;
    let spans_exported = tracer.counts().exported - exported_before;
    // The paced pass lasts about two seconds at 20,000 msgs/s.
    let paced_messages = (PACED_RATE * 2).min(u64::from(args.messages));
    let mut paced = run_pass(args, paced_messages, (PACED_RATE / n).max(1), false, true)?;
    let (p50, p99) = p50_p99(&mut paced.latencies_ns);
    // Paced passes without and with tracing, in turns (which first alternating): what a traced
    // desk's messages wait.
    let mut paced_traces = PacedTraces::default();
    for i in 0..args.trace_passes {
        for on in if i % 2 == 0 { [false, true] } else { [true, false] } {
            if on {
                let config =
                    TraceConfig { endpoint: sink.url.clone(), sample_ratio: args.trace_ratio, resource: vec![] };
                tracer.install(config)?;
            }
            let pass = run_pass(args, paced_messages, (PACED_RATE / n).max(1), false, true);
            tracer.uninstall();
            let (p50, p99) = p50_p99(&mut pass?.latencies_ns);
            let (p50s, p99s) = if on {
                (&mut paced_traces.on_p50_us, &mut paced_traces.on_p99_us)
            } else {
                (&mut paced_traces.off_p50_us, &mut paced_traces.off_p99_us)
            };
            p50s.push(p50 as f64 / 1000.0);
            p99s.push(p99 as f64 / 1000.0);
        }
    }
    let report = Report {
        clients: args.clients as usize,
        messages: u64::from(args.messages),
        payload_bytes: args.payload as usize,
        msgs_per_sec: flat.msgs_per_sec,
        unbatched_msgs_per_sec: unbatched.msgs_per_sec,
        speedup_vs_unbatched: flat.msgs_per_sec / unbatched.msgs_per_sec.max(f64::MIN_POSITIVE),
        paced_msgs_per_sec: PACED_RATE,
        publish_to_deliver_us_p50: p50 as f64 / 1000.0,
        publish_to_deliver_us_p99: p99 as f64 / 1000.0,
        metrics,
        traces,
        trace_ratio: args.trace_ratio,
        paced_traces: (args.trace_passes > 0).then_some(paced_traces),
        spans_exported,
        trace_requests: sink.requests(),
        optimized_build: !cfg!(debug_assertions),
    };
    super::report(&report, args.json, print_table)
}

#[expect(clippy::print_stdout, reason = "the table is this command's output")]
fn print_table(r: &Report) {
    println!("ipc benchmark: {} app-host processes, {} messages of {} bytes", r.clients, r.messages, r.payload_bytes);
    println!("  flat out, coalesced     {:.0} msgs/s", r.msgs_per_sec);
    println!(
        "  flat out, one write     {:.0} msgs/s (coalescing is {:.1}x faster)",
        r.unbatched_msgs_per_sec, r.speedup_vs_unbatched
    );
    println!(
        "  paced at {} msgs/s     publish -> deliver p50 {:.1} us, p99 {:.1} us",
        r.paced_msgs_per_sec, r.publish_to_deliver_us_p50, r.publish_to_deliver_us_p99
    );
    if let Some(m) = &r.metrics {
        println!("{}", m.line("metrics' cost", "msgs/s"));
    }
    if let Some(t) = &r.traces {
        println!("{}", t.line(&format!("traces' cost at {}%", r.trace_ratio * 100.0), "msgs/s"));
        println!("  spans exported          {} in {} requests", r.spans_exported, r.trace_requests);
    }
    if let Some(t) = &r.paced_traces {
        println!(
            "  paced, traced or not    p50 {:.1} us traced, {:.1} us not; p99 {:.1} us traced, {:.1} us not (medians of {} passes each way)",
            median(&t.on_p50_us),
            median(&t.off_p50_us),
            median(&t.on_p99_us),
            median(&t.off_p99_us),
            t.on_p50_us.len()
        );
    }
}
