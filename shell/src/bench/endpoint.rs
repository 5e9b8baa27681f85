//! `tessera bench endpoint`: the NATS benchmark's workload through the native endpoint, and,
//! with `--against nats`, through a local nats-server in the same run.
//!
//! `--publishers` publisher processes publish on `bench.data.<i>` and `--subscribers`
//! subscriber processes each subscribe to the wildcard `bench.data.*`, so every message reaches
//! every subscriber. Two passes per system: flat out (`--messages` in all) for delivered
//! messages a second, and paced at `--rate` in all for `--secs`, for the latency from the
//! publisher's send to the subscriber's receipt (both on this machine's clock).
//!
//! On Tessera the clients are native apps the shell's own supervisor launches: each connects to
//! a real endpoint with its launch token and is served by the real connection code (gate-free
//! and without the per-app rate limit, which would cap a publisher at 20,000 a second). On NATS
//! they are the same program with `async-nats`, against `nats-server` on a free loopback port.

pub(crate) mod client;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use broker::{AppId, Broker, BrokerConfig};
use serde::Serialize;
use serde_json::Value;
use shell::host::supervisor::{AppSpec, HostKind, RestartPolicy, Supervisor};

use self::client::{Histogram, READY, RESULT};
use crate::cli::EndpointBenchArgs;

/// One pass's outcome.
#[derive(Debug, Clone, Serialize)]
struct Pass {
    published: u64,
    delivered: u64,
    /// Deliveries expected (published x subscribers) that did not arrive.
    lost: u64,
    delivered_msgs_per_sec: f64,
    latency_us_p50: u64,
    latency_us_p99: u64,
    latency_us_p999: u64,
}

#[derive(Debug, Serialize)]
struct System {
    flat: Pass,
    paced: Pass,
}

#[derive(Debug, Serialize)]
struct Report {
    publishers: u32,
    subscribers: u32,
    payload_bytes: u32,
    flat_messages: u32,
    paced_msgs_per_sec: u32,
    paced_secs: f64,
    tessera: System,
    nats: Option<System>,
    /// Tessera's delivered msgs/s over nats-server's (flat out); the goal is at least 1.
    throughput_ratio: Option<f64>,
    /// Tessera's p99 latency over nats-server's (paced); the goal is at most 1.
    p99_ratio: Option<f64>,
    optimized_build: bool,
}

/// What a pass asks of each client.
struct Work {
    per_publisher: u64,
    rate_per_publisher: u64,
}

fn tessera_exe() -> Result<std::path::PathBuf> {
    std::env::current_exe().context("locating tessera")
}

/// A client's command line; `latency`: the subscribers measure it (the paced pass).
fn client_args(
    system: &str,
    role: &str,
    index: u32,
    count: u64,
    rate: u64,
    payload: u32,
    latency: bool,
) -> Vec<String> {
    let latency = latency.then_some("--latency");
    let mut args: Vec<String> = [
        "bench",
        "endpoint-client",
        "--system",
        system,
        "--role",
        role,
        "--index",
        &index.to_string(),
        "--count",
        &count.to_string(),
        "--rate",
        &rate.to_string(),
        "--payload",
        &payload.to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    args.extend(latency.map(str::to_owned));
    args
}

/// Sums the clients' reports into a pass.
fn summarise(reports: &[Value], work: &Work, args: &EndpointBenchArgs) -> Pass {
    let published = work.per_publisher * u64::from(args.publishers);
    let mut delivered = 0;
    let mut latency = Histogram::default();
    let (mut start, mut end) = (u64::MAX, 0u64);
    for r in reports {
        match r["role"].as_str() {
            Some("pub") => start = start.min(r["start_ns"].as_u64().unwrap_or(u64::MAX)),
            Some("sub") => {
                delivered += r["received"].as_u64().unwrap_or(0);
                end = end.max(r["last_ns"].as_u64().unwrap_or(0));
                latency.merge(&r["latency_us"]);
            }
            _ => {}
        }
    }
    let secs = end.saturating_sub(start) as f64 / 1e9;
    Pass {
        published,
        delivered,
        lost: (published * u64::from(args.subscribers)).saturating_sub(delivered),
        delivered_msgs_per_sec: if secs > 0.0 { delivered as f64 / secs } else { 0.0 },
        latency_us_p50: latency.percentile(50.0),
        latency_us_p99: latency.percentile(99.0),
        latency_us_p999: latency.percentile(99.9),
    }
}

/// One pass through the shell's endpoint: the clients launched as native apps.
fn tessera_pass(args: &EndpointBenchArgs, work: &Work) -> Result<Pass> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let dir = tempfile::tempdir().context("a directory for the endpoint")?;
    let socket = dir.path().join("endpoint.sock");
    let broker = Broker::new(BrokerConfig::default());
    let policy = RestartPolicy { rate_limit: None, memory_limit_bytes: None, ..RestartPolicy::default() };
    let me = tessera_exe()?;
    let reports = rt.block_on(async {
        let supervisor = Supervisor::new(broker.clone(), policy);
        let listener =
            tokio::net::UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
        supervisor.serve_endpoint(listener, socket.clone());
        let harness = broker.connect(None);
        let opts = broker::SubscribeOptions::default().capacity(4096);
        let ready = harness.subscribe(READY, opts)?;
        let results = harness.subscribe(RESULT, opts)?;
        let expect = work.per_publisher * u64::from(args.publishers);
        let launch = |role: &str, i: u32, count: u64, rate: u64| {
            let spec = AppSpec {
                kind: HostKind::Native,
                ..AppSpec::new(
                    AppId::new(&format!("bench-{role}-{i}")),
                    me.clone(),
                    client_args("tessera", role, i, count, rate, args.payload, work.rate_per_publisher > 0),
                )
            };
            supervisor.launch(spec);
        };
        for i in 0..args.subscribers {
            launch("sub", i, expect, 0);
        }
        for _ in 0..args.subscribers {
            tokio::time::timeout(Duration::from_secs(60), ready.recv_async())
                .await
                .context("the subscribers did not all start within 60 s")?
                .context("the broker went away")?;
        }
        for i in 0..args.publishers {
            launch("pub", i, work.per_publisher, work.rate_per_publisher);
        }
        let mut reports = Vec::new();
        let clients = args.publishers + args.subscribers;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while reports.len() < clients as usize {
            let d = tokio::time::timeout_at(deadline, results.recv_async())
                .await
                .context("the clients did not all report within 10 minutes")?
                .context("the broker went away")?;
            reports.push(serde_json::from_slice::<Value>(&d.envelope.payload).context("a client's report")?);
        }
        supervisor.shutdown().await;
        anyhow::Ok(reports)
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(summarise(&reports, work, args))
}

/// A nats-server on a free loopback port, stopped when dropped.
struct NatsServer {
    child: Child,
    url: String,
}

impl NatsServer {
    fn start(program: &std::path::Path) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(program)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (install it: apt-get install nats-server)", program.display()))?;
        let server = Self { child, url: format!("nats://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(Instant::now() < deadline, "nats-server did not listen on port {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one JSON line from a client's standard output.
fn line(child: &mut Child, reader: &mut BufReader<std::process::ChildStdout>) -> Result<Value> {
    let mut text = String::new();
    if reader.read_line(&mut text)? == 0 {
        let status = child.wait()?;
        bail!("a NATS client ended without reporting ({status})");
    }
    serde_json::from_str(&text).context("a NATS client's report")
}

/// The same pass through nats-server.
fn nats_pass(args: &EndpointBenchArgs, work: &Work, server: &NatsServer) -> Result<Pass> {
    let me = tessera_exe()?;
    let expect = work.per_publisher * u64::from(args.publishers);
    let spawn = |role: &str, i: u32, count: u64, rate: u64| -> Result<(Child, BufReader<std::process::ChildStdout>)> {
        let mut child = Command::new(&me)
            .args(client_args("nats", role, i, count, rate, args.payload, work.rate_per_publisher > 0))
            .args(["--nats-url", &server.url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a NATS bench client")?;
        let out = BufReader::new(child.stdout.take().context("the client's output")?);
        Ok((child, out))
    };
    let mut subs = Vec::new();
    for i in 0..args.subscribers {
        let (mut child, mut out) = spawn("sub", i, expect, 0)?;
        line(&mut child, &mut out)?; // ready
        subs.push((child, out));
    }
    let mut pubs = Vec::new();
    for i in 0..args.publishers {
        pubs.push(spawn("pub", i, work.per_publisher, work.rate_per_publisher)?);
    }
    let mut reports = Vec::new();
    for (mut child, mut out) in pubs.into_iter().chain(subs) {
        reports.push(line(&mut child, &mut out)?);
        let _ = child.wait();
    }
    Ok(summarise(&reports, work, args))
}

pub(crate) fn run(args: &EndpointBenchArgs) -> Result<()> {
    let flat =
        Work { per_publisher: (u64::from(args.messages) / u64::from(args.publishers)).max(1), rate_per_publisher: 0 };
    let rate = (u64::from(args.rate) / u64::from(args.publishers)).max(1);
    let paced = Work { per_publisher: ((rate as f64) * args.secs).ceil().max(1.0) as u64, rate_per_publisher: rate };
    let tessera = System { flat: tessera_pass(args, &flat)?, paced: tessera_pass(args, &paced)? };
    let nats = match args.against.as_deref() {
        Some("nats") => {
            let server = NatsServer::start(&args.nats_server)?;
            Some(System { flat: nats_pass(args, &flat, &server)?, paced: nats_pass(args, &paced, &server)? })
        }
        _ => None,
    };
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| (a / b * 100.0).round() / 100.0);
    let report = Report {
        publishers: args.publishers,
        subscribers: args.subscribers,
        payload_bytes: args.payload,
        flat_messages: args.messages,
        paced_msgs_per_sec: args.rate,
        paced_secs: args.secs,
        throughput_ratio: nats
            .as_ref()
            .and_then(|n| ratio(tessera.flat.delivered_msgs_per_sec, n.flat.delivered_msgs_per_sec)),
        p99_ratio: nats
            .as_ref()
            .and_then(|n| ratio(tessera.paced.latency_us_p99 as f64, n.paced.latency_us_p99 as f64)),
        tessera,
        nats,
        optimized_build: !cfg!(debug_assertions),
    };
    super::report(&report, args.json, print_table)
}

#[expect(clippy::print_stdout, reason = "the table is this command's output")]
fn print_table(r: &Report) {
    println!(
        "endpoint benchmark: {} publishers, {} wildcard subscribers, {}-byte payloads",
        r.publishers, r.subscribers, r.payload_bytes
    );
    let row = |name: &str, s: &System| {
        println!(
            "  {name:<8} flat out: {:>10.0} delivered msgs/s ({} lost)   paced at {}/s: p50 {} us, p99 {} us, p99.9 {} us",
            s.flat.delivered_msgs_per_sec,
            s.flat.lost,
            r.paced_msgs_per_sec,
            s.paced.latency_us_p50,
            s.paced.latency_us_p99,
            s.paced.latency_us_p999
        );
    };
    row("tessera", &r.tessera);
    if let Some(n) = &r.nats {
        row("nats", n);
    }
    if let (Some(t), Some(p)) = (r.throughput_ratio, r.p99_ratio) {
        println!("  tessera/nats: throughput {t:.2}x, p99 {p:.2}x");
    }
}
