//! Traces for IT's OpenTelemetry collector: the spans a message's way through the desk makes
//! (a page's publish, the broker, the journal, each receiving page; an FDC3 request), sampled,
//! batched and sent as OTLP/HTTP JSON ([`otlp`], [`export`]).
//!
//! One tracer per process ([`global`]), as OpenTelemetry's own API has one provider: the parts
//! that make spans (the app connections, the FDC3 wiring) are many and short-lived, and the
//! admin policy turns tracing on, off or to another collector while they run. Off, a span
//! costs one atomic load.
//!
//! Sampling is parent-based: a message sent in a trace whose `traceparent` says "sampled" is
//! recorded, one that says "not sampled" is not (its context is still passed on); a message
//! with no trace starts one with probability `sample_ratio`, decided from the trace id so every
//! part of one trace decides alike.

pub mod export;
pub mod otlp;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use protocol::TraceParent;

/// Most spans waiting for the exporter; beyond it new spans are dropped (and counted).
pub const QUEUE: usize = 8192;

/// What a span did, as OTLP's `SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside the shell (the journal's commit, the FDC3 agent).
    Internal,
    /// Accepting a message from its publisher.
    Producer,
    /// Handing a message to a receiver.
    Consumer,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text (most attribute values are fixed words: those cost no allocation).
    Str(std::borrow::Cow<'static, str>),
    /// A whole number.
    Int(i64),
    /// Yes or no.
    Bool(bool),
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Its trace.
    pub trace_id: u128,
    /// Its own id.
    pub span_id: u64,
    /// The span it is part of, if any (in this process or sent from another).
    pub parent: Option<u64>,
    /// What it was (`publish prices.aapl`).
    pub name: String,
    /// Its kind.
    pub kind: SpanKind,
    /// When it began, in ns since the Unix epoch.
    pub start_ns: u64,
    /// When it ended.
    pub end_ns: u64,
    /// What it was about (never a payload).
    pub attributes: Vec<(&'static str, Value)>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Where spans go and how many are kept, as the admin policy says.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    /// The collector's OTLP/HTTP base address (`https://otel.corp:4318`); spans are POSTed to
    /// its `/v1/traces`.
    pub endpoint: String,
    /// The share of new traces recorded, 0 to 1.
    pub sample_ratio: f64,
    /// What the desk is, for the collector (service version, host name...).
    pub resource: Vec<(&'static str, String)>,
}

/// How many spans went where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceCounts {
    /// Accepted by the collector.
    pub exported: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Lost because the collector could not be reached or refused them.
    pub failed: u64,
}

/// The process's tracer.
#[derive(Debug, Default)]
pub struct Tracer {
    on: AtomicBool,
    /// The sampler's bound while on: a new trace is recorded when the low 64 bits of its id
    /// are at most this. 0 while off. Read without a lock: every message not in a trace asks.
    bound: AtomicU64,
    active: RwLock<Option<Arc<Active>>>,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// A tracer that records: its exporter's queue, and what it was installed with.
#[derive(Debug)]
struct Active {
    queue: flume::Sender<Span>,
    endpoint: String,
    ratio: f64,
    /// Said when the exporter has sent what it held and stopped.
    done: flume::Receiver<()>,
}

/// The process's tracer (off until [`Tracer::install`]).
pub fn global() -> &'static Tracer {
    static TRACER: OnceLock<Tracer> = OnceLock::new();
    TRACER.get_or_init(Tracer::default)
}

/// The sampler's bound for `ratio`: the share of 64-bit numbers below it.
fn bound(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        0
    } else if ratio >= 1.0 {
        u64::MAX
    } else {
        // Within 0..u64::MAX: the product of a ratio below 1 and 2^64.
        (ratio * 18_446_744_073_709_551_616.0) as u64
    }
}

impl Tracer {
    /// Starts recording into `config`'s collector (replacing any earlier one, whose exporter
    /// sends what it holds and stops).
    pub fn install(&self, config: TraceConfig) -> Result<(), export::ExportError> {
        let (queue, spans) = flume::bounded(QUEUE);
        let endpoint = config.endpoint.clone();
        let ratio = config.sample_ratio;
        let bound = bound(ratio);
        let done = export::spawn(config, spans, Arc::clone(&self.counts))?;
        *self.active.write() = Some(Arc::new(Active { queue, endpoint, ratio, done }));
        self.bound.store(bound, Ordering::Relaxed);
        self.on.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops recording; what is queued is still sent.
    pub fn uninstall(&self) {
        self.on.store(false, Ordering::Release);
        self.bound.store(0, Ordering::Relaxed);
        self.active.write().take();
    }

    /// Stops recording and waits up to `limit` for the exporter to send what it holds (a
    /// shell shutting down); `false` if it did not finish in time.
    pub fn shutdown(&self, limit: std::time::Duration) -> bool {
        self.on.store(false, Ordering::Release);
        self.bound.store(0, Ordering::Relaxed);
        let Some(active) = self.active.write().take() else { return true };
        let done = active.done.clone();
        // The queue closes once the last holder (a span being recorded) lets go.
        drop(active);
        !matches!(done.recv_timeout(limit), Err(flume::RecvTimeoutError::Timeout))
    }

    /// The collector spans go to, if tracing is on.
    pub fn endpoint(&self) -> Option<String> {
        self.active.read().as_ref().map(|a| a.endpoint.clone())
    }

    /// The collector and the sample ratio in force, if tracing is on.
    pub fn installed(&self) -> Option<(String, f64)> {
        self.active.read().as_ref().map(|a| (a.endpoint.clone(), a.ratio))
    }

    /// Whether anything is recorded.
    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// How many spans went where, since the process started.
    pub fn counts(&self) -> TraceCounts {
        TraceCounts {
            exported: self.counts.exported.load(Ordering::Relaxed),
            dropped: self.counts.dropped.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
        }
    }

    /// The context of the span for work on something sent in `parent` (or in no trace), which
    /// its receivers are told: `None` when it travels in no trace. Where the span is recorded
    /// (tracing on, and the parent sampled or a new trace started), it is a new span of the
    /// parent's trace; otherwise the parent passes on unchanged, as W3C Trace Context asks of
    /// a participant that does not record.
    pub fn child_of(&self, parent: Option<TraceParent>) -> Option<TraceParent> {
        let on = self.enabled();
        match parent {
            Some(p) if on && p.sampled() => Some(TraceParent::new(p.trace_id, span_id(), true)),
            Some(p) => Some(p),
            None if on => {
                // The ratio is decided by the trace id's low bits, as OpenTelemetry's
                // TraceIdRatioBased sampler does: those are drawn first, and the rest of the
                // id only for a trace that is kept.
                let bound = self.bound.load(Ordering::Relaxed);
                let low = random_u64();
                if bound == 0 || low > bound {
                    return None;
                }
                let trace = (u128::from(random_u64()) << 64) | u128::from(low);
                (trace != 0).then(|| TraceParent::new(trace, span_id(), true))
            }
            None => None,
        }
    }

    /// The context of a new span in trace `trace_id`, known without its sender's span (FDC3's
    /// `metadata.traceId`), if it is recorded: by the sample ratio, decided from the id as for
    /// a new trace. `None` when tracing is off or the ratio leaves it out.
    pub fn in_trace(&self, trace_id: u128) -> Option<TraceParent> {
        if !self.enabled() || trace_id == 0 {
            return None;
        }
        let bound = self.bound.load(Ordering::Relaxed);
        (trace_id as u64 <= bound && bound > 0).then(|| TraceParent::new(trace_id, span_id(), true))
    }

    /// Whether a span in `context` is recorded: tracing is on and the trace sampled.
    pub fn records(&self, context: TraceParent) -> bool {
        self.enabled() && context.sampled()
    }

    /// Queues a finished span for the collector (when tracing is on; else it is dropped).
    pub fn record(&self, span: Span) {
        if !self.enabled() {
            return;
        }
        let Some(active) = self.active.read().clone() else { return };
        if active.queue.try_send(span).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Now, in ns since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A new span id: random, never zero.
pub fn span_id() -> u64 {
    loop {
        let id = random_u64();
        if id != 0 {
            return id;
        }
    }
}

/// A new trace id: random, never zero.
pub fn trace_id() -> u128 {
    loop {
        let id = (u128::from(random_u64()) << 64) | u128::from(random_u64());
        if id != 0 {
            return id;
        }
    }
}

/// 64 random bits from a per-thread generator (splitmix64) seeded once from the operating
/// system, so an id costs no system call.
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            // Without the OS's randomness, time and the thread make the seed.
            if getrandom::fill(&mut seed).is_err() {
                seed = (now_ns() ^ (std::ptr::from_ref(&seed) as u64)).to_le_bytes();
            }
            u64::from_le_bytes(seed)
        });
    }
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests;
