//! `tessera-app-host`: the per-app child process. `webview` is the real thing: one web app in a
//! wry WebView placed inside the shell's window. `headless` (no page) and `bench-client` (a load
//! generator for `tessera bench ipc`) use the same transport without WebKit. Run without
//! arguments it reports its version.

mod content;
mod foreign;
mod group;
mod keys;
mod navigation;
mod pace;
mod reply;
mod stamps;
mod to_shell;
mod web_process;
mod webview;
mod x11;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use app_host::HostConnection;
use clap::{Parser, Subcommand};
use protocol::QueuePolicy;
use protocol::wire::{HostMsg, ShellMsg};

#[derive(Debug, Parser)]
#[command(name = "tessera-app-host", version, about = "Tessera's per-app child process")]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// One web app in a WebView inside the shell's window; the shell runs this.
    Webview {
        /// The shell window's X11 id; without it the page gets a window of its own.
        #[arg(long)]
        parent_xid: Option<u64>,
        /// The app's start page.
        #[arg(long)]
        url: String,
        /// WebKit's data directory for this app.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// Where the view goes first: x,y,width,height in physical pixels.
        #[arg(long, value_parser = parse_bounds, default_value = "0,0,800,600")]
        bounds: protocol::wire::Bounds,
        /// A script to run in every frame before the page's own (repeatable).
        #[arg(long)]
        preload: Vec<std::path::PathBuf>,
        /// The directory `tessera://<app>/` URLs are served from.
        #[arg(long)]
        content_root: Option<std::path::PathBuf>,
        /// The app's saved state (JSON), handed to the page as `tessera.workspace.getState()`.
        #[arg(long)]
        state_file: Option<std::path::PathBuf>,
        /// The Content-Security-Policy sent with every `tessera://` file.
        #[arg(long)]
        csp: Option<String>,
        /// Pass the page's console output to the shell (for its log).
        #[arg(long)]
        console: bool,
    },
    /// A host shared by several apps' views (a process group): the shell sends each view's
    /// arguments (as for `webview`) and connection on the control socket on stdin.
    Group {
        /// WebKit's data directory for the group's apps.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
    /// A host with no page: says hello, answers the shell's pings, exits when the shell hangs
    /// up. What the supervisor runs until the WebView lands, and its tests.
    Headless {
        /// Stop answering pings after this many milliseconds, like a page stuck in a loop.
        #[arg(long)]
        hang_after_ms: Option<u64>,
        /// Exit with this code right after the welcome, like an app that crashes on start.
        #[arg(long)]
        crash_with: Option<i32>,
        /// Allocate and touch this many MiB after the welcome, like a page that leaks.
        #[arg(long)]
        allocate_mib: Option<usize>,
        /// Keep one core busy after the welcome, like a runaway page.
        #[arg(long)]
        burn_cpu: bool,
        /// Send bytes that are not a frame after the welcome, like a compromised host.
        #[arg(long)]
        send_garbage: bool,
    },
    /// Headless load client over the socket on stdin: subscribes, waits for `bench.go`, then
    /// publishes and counts deliveries; prints one JSON line.
    BenchClient {
        /// Topic to publish to.
        #[arg(long)]
        publish: String,
        /// Pattern to subscribe to.
        #[arg(long)]
        subscribe: String,
        /// Messages to publish.
        #[arg(long)]
        count: u64,
        /// Deliveries to wait for.
        #[arg(long)]
        expect: u64,
        /// Payload size (at least 8: it carries the send time).
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Messages per second (0: flat out).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// One write per message instead of coalescing.
        #[arg(long)]
        unbatched: bool,
    },
}

fn parse_bounds(s: &str) -> Result<protocol::wire::Bounds, String> {
    let parts: Vec<&str> = s.split(',').collect();
    let [x, y, w, h] = parts.as_slice() else { return Err(format!("{s:?}: expected x,y,width,height")) };
    let int = |v: &str| v.trim().parse::<i32>().map_err(|e| format!("{v:?}: {e}"));
    let size = |v: &str| v.trim().parse::<u32>().map_err(|e| format!("{v:?}: {e}"));
    Ok(protocol::wire::Bounds { x: int(x)?, y: int(y)?, width: size(w)?, height: size(h)? })
}

/// A `webview` mode's options.
fn options(mode: Mode) -> Result<webview::Options> {
    let Mode::Webview { parent_xid, url, data_dir, bounds, preload, content_root, state_file, csp, console } = mode
    else {
        bail!("a view's arguments start with `webview`")
    };
    Ok(webview::Options { parent_xid, url, data_dir, bounds, preload, content_root, state_file, csp, console })
}

/// A view's options in a shared host, from the arguments a host of its own would get.
fn view_options(args: &[String]) -> Result<webview::Options> {
    let argv = std::iter::once("tessera-app-host".to_owned()).chain(args.iter().cloned());
    let parsed = Args::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
    options(parsed.mode.context("a view's arguments start with `webview`")?)
}

fn now_ns() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(u64::MAX)
}

#[expect(clippy::print_stdout, reason = "the version and the bench summary are this program's output")]
fn main() -> Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    let (publish, subscribe, count, expect, payload, rate, unbatched) = match args.mode {
        None => {
            println!("tessera-app-host {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Some(Mode::Group { data_dir }) => return group::run(data_dir, view_options),
        Some(mode @ Mode::Webview { .. }) => return webview::run(&options(mode)?),
        Some(Mode::Headless { hang_after_ms, crash_with, allocate_mib, burn_cpu, send_garbage }) => {
            return headless(&Misbehaviour { hang_after_ms, crash_with, allocate_mib, burn_cpu, send_garbage });
        }
        Some(Mode::BenchClient { publish, subscribe, count, expect, payload, rate, unbatched }) => {
            (publish, subscribe, count, expect, payload, rate, unbatched)
        }
    };
    let mut conn = HostConnection::from_stdin()?;
    match conn.recv()? {
        Some(ShellMsg::Welcome { .. }) => {}
        other => bail!("expected a welcome from the shell, got {other:?}"),
    }
    for (sub, pattern) in [(1, subscribe.as_str()), (2, "bench.go")] {
        let policy = QueuePolicy::Backpressure;
        conn.send(&HostMsg::Subscribe { sub, pattern: pattern.to_owned(), capacity: 4096, policy, replay: 0 })?;
    }
    conn.flush()?;
    let (mut tx, mut rx) = conn.split()?;
    let (go_tx, go_rx) = flume::bounded::<()>(1);
    // Receives on its own thread while the main thread publishes: with backpressure, a host
    // that only wrote could stall the very deliveries it is waiting for.
    let receiver = std::thread::spawn(move || -> Result<(u64, Vec<u64>, Instant)> {
        let mut got = 0u64;
        let mut latencies = Vec::new();
        loop {
            match rx.recv()? {
                Some(ShellMsg::Deliver { sub: 2, .. }) => {
                    let _ = go_tx.try_send(());
                }
                Some(ShellMsg::Deliver { sub: 1, payload, .. }) => {
                    if payload.len() >= 8 {
                        let mut sent = [0u8; 8];
                        sent.copy_from_slice(&payload[..8]);
                        latencies.push(now_ns().saturating_sub(u64::from_le_bytes(sent)));
                    }
                    got += 1;
                    if got >= expect {
                        return Ok((got, latencies, Instant::now()));
                    }
                }
                Some(ShellMsg::Refused { context, error }) => bail!("the shell refused {context}: {error}"),
                Some(_) => {}
                None => bail!("the shell hung up after {got} of {expect} deliveries"),
            }
        }
    });
    go_rx.recv_timeout(Duration::from_secs(60)).context("no go signal from the shell")?;
    let start = Instant::now();
    let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
    let mut body = vec![b'x'; payload.max(8)];
    for i in 0..count {
        if let Some(interval) = interval {
            // Sleep, not spin: ten paced hosts spinning would starve a two-core machine.
            let due = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        body[..8].copy_from_slice(&now_ns().to_le_bytes());
        tx.send(&HostMsg::Publish {
            topic: publish.clone(),
            payload: body.clone(),
            durable: false,
            ttl_ms: None,
            trace: None,
        })?;
        // Coalesce up to 256 messages per write when flat out; paced or unbatched, write each.
        if unbatched || interval.is_some() || i % 256 == 255 {
            tx.flush()?;
        }
    }
    tx.flush()?;
    let (got, latencies, end) = receiver.join().map_err(|_| anyhow::anyhow!("the receiving thread panicked"))??;
    let summary = serde_json::json!({
        "received": got,
        "elapsed_us": end.duration_since(start).as_micros() as u64,
        "latencies_ns": if rate > 0 { latencies } else { Vec::new() },
    });
    println!("{summary}");
    Ok(())
}

/// What a headless host does wrong, for the supervisor's tests.
#[derive(Debug, Clone, Copy)]
struct Misbehaviour {
    hang_after_ms: Option<u64>,
    crash_with: Option<i32>,
    allocate_mib: Option<usize>,
    burn_cpu: bool,
    send_garbage: bool,
}

fn headless(m: &Misbehaviour) -> Result<()> {
    let Misbehaviour { hang_after_ms, crash_with, allocate_mib, burn_cpu, send_garbage } = *m;
    let mut conn = HostConnection::from_stdin()?;
    match conn.recv()? {
        Some(ShellMsg::Welcome { .. }) => {}
        other => bail!("expected a welcome from the shell, got {other:?}"),
    }
    if let Some(code) = crash_with {
        std::process::exit(code);
    }
    // Held for the life of the process; every page touched so it counts as resident.
    let _ballast: Vec<u8> = allocate_mib.map(|mib| vec![1u8; mib << 20]).unwrap_or_default();
    if burn_cpu {
        std::thread::spawn(|| {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
    }
    if send_garbage {
        use std::io::Write;
        use std::os::fd::AsFd;
        let fd = std::io::stdin().as_fd().try_clone_to_owned().context("duplicating stdin")?;
        // A length prefix far over the frame limit.
        std::os::unix::net::UnixStream::from(fd).write_all(&[0xff; 16]).context("writing garbage")?;
    }
    let started = Instant::now();
    let hang_after = hang_after_ms.map(Duration::from_millis);
    while let Some(msg) = conn.recv()? {
        if let ShellMsg::Ping { nonce } = msg {
            if hang_after.is_some_and(|h| started.elapsed() >= h) {
                // A stuck page: alive, but answering nothing, forever.
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            conn.send(&HostMsg::Pong { nonce })?;
            conn.flush()?;
        }
    }
    // The shell hung up: an app host never outlives its shell.
    Ok(())
}
