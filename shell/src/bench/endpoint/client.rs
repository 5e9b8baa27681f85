//! One client process of `tessera bench endpoint`: a publisher or a wildcard subscriber, on
//! the shell's endpoint (through `tessera-client`, with the launch token the supervisor gave
//! it) or on nats-server (through `async-nats`). The same work either way: the same JSON
//! payloads (carrying their send time), the same pacing, the same measurements.
//!
//! A subscriber tells it is ready, then counts what arrives (and, from each payload's send
//! time, the latency, into a histogram) until it has everything or nothing came for a while;
//! a publisher publishes its share, flat out or paced. Each reports one JSON object: a
//! Tessera client on the bus (`bench.ctl.*`, which the bench's own broker client reads), a NATS
//! client on standard output.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cli::EndpointClientArgs;

/// The subjects the data goes to: publisher i publishes on `bench.data.<i>`.
pub(crate) const DATA: &str = "bench.data";
/// What every subscriber subscribes to.
pub(crate) const WILDCARD: &str = "bench.data.*";
/// Where Tessera clients say they are ready, and report.
pub(crate) const READY: &str = "bench.ctl.ready";
pub(crate) const RESULT: &str = "bench.ctl.result";
/// How long a subscriber waits after the last message before it reports what it has.
const IDLE: Duration = Duration::from_secs(5);
/// How long a subscriber waits for the first message.
const FIRST: Duration = Duration::from_secs(60);
/// Latencies below this are kept to the microsecond; above it, to 100 µs.
const FINE_US: u64 = 5_000;

pub(crate) fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A latency histogram: microsecond buckets to 5 ms, then 100 µs buckets.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    pub(crate) buckets: BTreeMap<u64, u64>,
}

impl Histogram {
    pub(crate) fn record(&mut self, ns: u64) {
        let us = ns / 1000;
        let bucket = if us < FINE_US { us } else { us - us % 100 };
        *self.buckets.entry(bucket).or_insert(0) += 1;
    }

    pub(crate) fn merge(&mut self, other: &Value) {
        if let Some(map) = other.as_object() {
            for (k, v) in map {
                if let (Ok(k), Some(v)) = (k.parse::<u64>(), v.as_u64()) {
                    *self.buckets.entry(k).or_insert(0) += v;
                }
            }
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        Value::Object(self.buckets.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
    }

    /// The `p`th percentile (0 to 100) in microseconds (the bucket's lower edge).
    pub(crate) fn percentile(&self, p: f64) -> u64 {
        let total: u64 = self.buckets.values().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in &self.buckets {
            seen += count;
            if seen >= rank {
                return *bucket;
            }
        }
        self.buckets.keys().next_back().copied().unwrap_or(0)
    }
}

/// What a publisher sends: its send time, padded to the payload size. Both systems' clients
/// write it straight into their messages.
#[derive(Debug, Clone, serde::Serialize)]
struct Body {
    t: u64,
    p: std::sync::Arc<str>,
}

/// The padding that makes a payload `size` bytes of JSON.
fn padding(size: usize) -> std::sync::Arc<str> {
    let base = json!({ "t": now_ns(), "p": "" }).to_string().len();
    "x".repeat(size.saturating_sub(base)).into()
}

/// What a subscriber measured.
#[derive(Debug, Default)]
struct Received {
    count: u64,
    first_ns: u64,
    last_ns: u64,
    latency: Histogram,
}

impl Received {
    /// One more message (the `total`-th is the last), sent at `sent_ns` if its latency is
    /// measured. Flat out, the clock is read for the first and last messages and every 256th
    /// (the last time seen is then at most 255 messages early if some are lost, which the
    /// bench reports anyway), so a subscriber spends its time receiving, not reading clocks.
    fn on(&mut self, sent_ns: Option<u64>, total: u64) {
        self.count += 1;
        if sent_ns.is_none() && self.count > 1 && self.count < total && !self.count.is_multiple_of(256) {
            return;
        }
        let now = now_ns();
        if self.count == 1 {
            self.first_ns = now;
        }
        self.last_ns = now;
        if let Some(t) = sent_ns {
            self.latency.record(now.saturating_sub(t));
        }
    }

    fn report(&self, index: u32) -> Value {
        json!({ "role": "sub", "index": index, "received": self.count, "first_ns": self.first_ns,
                "last_ns": self.last_ns, "latency_us": self.latency.to_json() })
    }
}

fn sent_time(bytes: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(bytes).ok()?.get("t")?.as_u64()
}

/// When publisher message `i` is due, at `rate` a second from `start` (0: now).
fn due(start: tokio::time::Instant, i: u64, rate: u64) -> Option<tokio::time::Instant> {
    (rate > 0).then(|| start + Duration::from_nanos(i.saturating_mul(1_000_000_000) / rate))
}

/// A publisher's work, the same on either system: `args.count` payloads carrying their send
/// time, flat out or paced, each handed to `publish`; its report.
async fn publish_all<F, Fut>(args: &EndpointClientArgs, mut publish: F) -> Result<Value>
where
    F: FnMut(Body) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let pad = padding(args.payload);
    let start = tokio::time::Instant::now();
    let start_ns = now_ns();
    for i in 0..args.count {
        if let Some(at) = due(start, i, args.rate) {
            tokio::time::sleep_until(at).await;
        }
        publish(Body { t: now_ns(), p: pad.clone() }).await?;
    }
    Ok(json!({ "role": "pub", "index": args.index, "published": args.count, "start_ns": start_ns, "end_ns": now_ns() }))
}

pub(crate) fn run(args: &EndpointClientArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("a runtime")?;
    rt.block_on(async {
        match args.system.as_str() {
            "nats" => nats(args).await,
            _ => tessera(args).await,
        }
    })
}

async fn tessera(args: &EndpointClientArgs) -> Result<()> {
    let client = tessera_client::Client::from_env().await.context("connecting to the endpoint")?;
    let timed = args.latency;
    let report = if args.role == "sub" {
        let opts = tessera_client::SubscribeOptions { capacity: 65_536, policy: "backpressure", replay: 0 };
        let mut sub = client.subscribe_with(WILDCARD, opts).await?;
        client.publish(READY, &json!({ "index": args.index })).await?;
        let mut got = Received::default();
        while got.count < args.count {
            let wait = if got.count == 0 { FIRST } else { IDLE };
            match tokio::time::timeout(wait, sub.recv()).await {
                Ok(Some(m)) => got.on(timed.then(|| sent_time(m.json().as_bytes())).flatten(), args.count),
                Ok(None) | Err(_) => break,
            }
        }
        got.report(args.index)
    } else {
        let topic = format!("{DATA}.{}", args.index);
        publish_all(args, |body| {
            let (client, topic) = (client.clone(), topic.clone());
            async move { Ok(client.publish(&topic, &body).await?) }
        })
        .await?
    };
    client.publish(RESULT, &report).await?;
    // The report is on its way before the instance closes (one connection, in order).
    client.close().await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.closed()).await;
    Ok(())
}

async fn nats(args: &EndpointClientArgs) -> Result<()> {
    use futures_util::StreamExt;
    // A deep client-side queue, as a subscriber that must not drop would have.
    let client = async_nats::ConnectOptions::new()
        .subscription_capacity(1 << 20)
        .connect(&args.nats_url)
        .await
        .with_context(|| format!("connecting to {}", args.nats_url))?;
    let timed = args.latency;
    let report = if args.role == "sub" {
        let mut sub = client.subscribe(WILDCARD).await?;
        client.flush().await?;
        say(&json!({ "ready": args.index }));
        let mut got = Received::default();
        while got.count < args.count {
            let wait = if got.count == 0 { FIRST } else { IDLE };
            match tokio::time::timeout(wait, sub.next()).await {
                Ok(Some(m)) => got.on(timed.then(|| sent_time(&m.payload)).flatten(), args.count),
                Ok(None) | Err(_) => break,
            }
        }
        got.report(args.index)
    } else {
        let subject = format!("{DATA}.{}", args.index);
        // The server handles a connection's messages in order: once a message to ourselves
        // comes back, it has every one before it (a flush only empties our buffer, and leaving
        // with data unread can reset the connection and lose what the server had not read).
        let done = format!("bench.done.{}", args.index);
        let mut echo = client.subscribe(done.clone()).await?;
        let report = publish_all(args, |body| {
            let (client, subject) = (client.clone(), subject.clone());
            async move { Ok(client.publish(subject, serde_json::to_vec(&body)?.into()).await?) }
        })
        .await?;
        client.publish(done, "done".into()).await?;
        client.flush().await?;
        tokio::time::timeout(Duration::from_secs(120), echo.next())
            .await
            .context("nats-server did not take every message")?;
        report
    };
    say(&report);
    Ok(())
}

#[expect(clippy::print_stdout, reason = "a bench client reports to the bench on standard output")]
fn say(v: &Value) {
    println!("{v}");
}
