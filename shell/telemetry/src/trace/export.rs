//! The exporter: a thread that takes finished spans from the tracer's queue and POSTs them to
//! the collector's `/v1/traces` in batches (at most [`BATCH`] spans, at least once a second
//! while any wait). A batch the collector does not take is tried once more, then counted as
//! failed; the desk never waits for the collector.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Counts, Span, TraceConfig, otlp};

/// Most spans one request carries.
pub const BATCH: usize = 512;

/// Longest a span waits in a batch.
const LINGER: Duration = Duration::from_secs(1);

/// How much the exporter thread yields to the rest of the shell.
const NICE: i32 = 10;

/// How often a filling batch is looked at.
const NAP: Duration = Duration::from_millis(50);

/// Longest a request to the collector may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The collector's address is not one spans may go to.
    #[error("the trace collector {endpoint:?}: {reason}")]
    Endpoint {
        /// As the policy gave it.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The thread could not be started.
    #[error("starting the trace exporter: {0}")]
    Thread(#[from] std::io::Error),
}

/// Where spans are POSTed for `endpoint` (a base address, or the full `/v1/traces` one).
pub fn traces_url(endpoint: &str) -> Result<String, ExportError> {
    let bad = |reason| ExportError::Endpoint {
        endpoint: crate::redact::line(&endpoint.chars().take(200).collect::<String>()),
        reason,
    };
    let url = url::Url::parse(endpoint).map_err(|_| bad("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("not an http:// or https:// address"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("a password in the address would be logged; give the collector's address alone"));
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") })
}

/// Starts the exporter for `config`, taking spans from `spans` until every sender is gone.
/// Its receiver is told (or sees the sender go) when the exporter has stopped.
pub(super) fn spawn(
    config: TraceConfig,
    spans: flume::Receiver<Span>,
    counts: Arc<Counts>,
) -> Result<flume::Receiver<()>, ExportError> {
    let url = traces_url(&config.endpoint)?;
    let (done_tx, done) = flume::bounded(1);
    std::thread::Builder::new().name("tessera-otlp".into()).spawn(move || {
        // Background work: the desk's own messages come first when the cores are busy (on
        // Linux, a nice value is the thread's own).
        if let Err(e) = rustix::process::nice(NICE) {
            tracing::debug!("the trace exporter keeps its priority: {e}");
        }
        run(&url, &config, &spans, &counts);
        let _ = done_tx.send(());
    })?;
    Ok(done)
}

fn run(url: &str, config: &TraceConfig, spans: &flume::Receiver<Span>, counts: &Counts) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().into();
    let mut batch = Vec::with_capacity(BATCH);
    let mut body = String::new();
    let mut failures = 0u64;
    loop {
        // The first span of a batch is waited for; the rest for what is left of the linger.
        let Ok(first) = spans.recv() else { return };
        batch.push(first);
        let until = Instant::now() + LINGER;
        let mut closed = false;
        // The rest of the batch is taken as it is there, between naps: a span queued while
        // this thread sleeps wakes nothing (waiting in `recv` would cost every span a wake-up).
        loop {
            while batch.len() < BATCH {
                match spans.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(flume::TryRecvError::Empty) => break,
                    Err(flume::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            let now = Instant::now();
            if batch.len() >= BATCH || closed || now >= until {
                break;
            }
            std::thread::sleep(NAP.min(until - now));
        }
        body.clear();
        otlp::write_request(&config.resource, &batch, &mut body);
        let n = batch.len() as u64;
        batch.clear();
        match send(&agent, url, &body).or_else(|_| {
            std::thread::sleep(Duration::from_millis(500));
            send(&agent, url, &body)
        }) {
            Ok(()) => {
                counts.exported.fetch_add(n, Ordering::Relaxed);
                if failures > 0 {
                    tracing::info!(collector = url, "the trace collector takes spans again");
                    failures = 0;
                }
            }
            Err(reason) => {
                counts.failed.fetch_add(n, Ordering::Relaxed);
                failures += 1;
                // Said once, then every hundredth time: the collector may be down for long.
                if failures % 100 == 1 {
                    tracing::warn!(collector = url, spans = n, "spans lost: {reason}");
                }
            }
        }
        if closed {
            return;
        }
    }
}

fn send(agent: &ureq::Agent, url: &str, body: &str) -> Result<(), String> {
    let response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| format!("the collector could not be reached: {e}"))?;
    let status = response.status();
    if status.is_success() { Ok(()) } else { Err(format!("the collector answered {status}")) }
}
