//! The shell ↔ app-host transport: `protocol::frame` frames of `protocol::wire` messages over one
//! Unix socket per app host (a socketpair; the host gets its end as stdin, so the connection
//! is its identity and nothing else can reach it).
//!
//! The shell side ([`serve`]) is async: a reader that turns messages into broker calls, and a
//! writer that drains everything queued for the host into one frame per write (coalescing).
//! The host side is `app_host::HostConnection`: blocking, since an app host has a GTK loop,
//! not a runtime.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use protocol::frame::{FrameLimits, FrameReader, FrameWriter};
use protocol::wire::{self, HostMsg, PROTOCOL, ShellMsg};
use std::sync::Arc;
use std::time::Duration;

use broker::{
    AppId, Broker, CallId, Envelope, MessageOptions, Payload, ProviderEvent, ServiceClient, ServiceProvider,
    SubscribeOptions, Target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::host::gate::{Access, Gate, hold};
use crate::host::instance::Binding;
use crate::host::outbox::{Outbox, Outgoing};
use crate::host::traces;

/// Messages queued for one host before the shell waits for its writer.
const OUTBOX: usize = 8192;
/// Most messages coalesced into one write.
const COALESCE: usize = 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Serves one app host until it disconnects or sends something malformed (an error, after
/// which the caller closes the connection and, later, restarts the host).
pub async fn serve(broker: Broker, stream: UnixStream, app: Option<AppId>) -> Result<()> {
    serve_with(broker, stream, app, COALESCE).await
}

/// [`serve`], coalescing at most `coalesce` messages per write (1: one write per message, the
/// baseline the IPC benchmark compares against).
pub async fn serve_with(broker: Broker, stream: UnixStream, app: Option<AppId>, coalesce: usize) -> Result<()> {
    serve_opts(broker, stream, app, ConnOptions { coalesce, ..ConnOptions::default() }).await
}

/// How the shell serves one connection.
#[derive(Debug, Clone)]
pub struct ConnOptions {
    /// Most messages per write.
    pub coalesce: usize,
    /// Set to the time (ms since the Unix epoch) of every pong received.
    pub last_pong: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// The instance this connection serves, for its supervisor: the shell's own messages
    /// (bounds, eval, probes, FDC3) go straight to the connection once the host is welcomed,
    /// and FDC3 requests straight to the shell's agent.
    pub(crate) binding: Option<Binding>,
    /// Where the host's messages that are not for the broker (probe answers, eval results,
    /// navigation requests, page loads) go; without it they are dropped.
    pub events: Option<flume::Sender<HostMsg>>,
    /// Counts the app's traffic (for the health view).
    pub counters: Option<std::sync::Arc<Traffic>>,
    /// Decides what the app may do on the bus, for this instance; none: everything.
    pub gate: Option<(Arc<dyn Gate>, u64)>,
    /// Most messages per second the app may send (publishes, sends, calls, answers, FDC3),
    /// with bursts up to one second's worth; beyond it the connection stops reading, so the
    /// app's own writes wait. None: unlimited.
    pub rate_limit: Option<u32>,
}

/// A token bucket: `rate` tokens a second, holding at most `rate`.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: std::time::Instant,
    /// Times the app had to wait, for the log.
    throttled: u64,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self { rate, tokens: rate, at: std::time::Instant::now(), throttled: 0 }
    }

    /// How long to wait before one more message may go.
    fn take(&mut self) -> Option<Duration> {
        let now = std::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            None
        } else {
            self.throttled += 1;
            Some(Duration::from_secs_f64(-self.tokens / self.rate))
        }
    }
}

/// An app's bus traffic: messages it sent (publishes, directed sends, calls, answers) and
/// messages it was given (deliveries, directed messages, calls, answers).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Sent by the app.
    pub from_app: std::sync::atomic::AtomicU64,
    /// Given to the app.
    pub to_app: std::sync::atomic::AtomicU64,
    /// Times the app was slowed down for sending past its rate limit.
    pub throttled: std::sync::atomic::AtomicU64,
}

impl Default for ConnOptions {
    fn default() -> Self {
        Self {
            coalesce: COALESCE,
            last_pong: None,
            binding: None,
            events: None,
            counters: None,
            gate: None,
            rate_limit: None,
        }
    }
}

/// How one connection's bytes become messages and back: an app host's postcard frames
/// ([`HostCodec`]) or a native app's JSON envelopes (`host::endpoint`'s codec). Everything
/// else about a connection (the gate, the rate limit, the binding to its instance, the
/// counters) is the same whichever it speaks.
pub trait Codec: Send + 'static {
    /// The encoder the connection's writer uses.
    type Encoder: Encoder;
    /// Decodes what `bytes` completes (nothing, at the start: what came with the handshake)
    /// into `into`; an error closes the connection.
    fn feed(&mut self, bytes: &[u8], into: &mut Vec<HostMsg>) -> Result<()>;
    /// The writer's half.
    fn encoder(&self) -> Self::Encoder;
}

/// The writing half of a [`Codec`]: it encodes into the writer's buffer, which is written
/// (and kept for the next write) once [`Encoder::finish`] has added what the encoder held back.
pub trait Encoder: Send + 'static {
    /// Adds `msg` to what the next write sends (or nothing, if the peer takes no such message).
    fn push(&mut self, msg: &ShellMsg, out: &mut Vec<u8>) -> Result<()>;
    /// Adds a delivery of `envelope` to the peer's subscription `sub`. The envelope is the
    /// broker's own, shared by every subscriber of the message: an encoder may keep its
    /// encoding there ([`broker::Envelope::encoded`]) for the next subscriber's.
    fn deliver(&mut self, sub: u32, envelope: &Envelope, out: &mut Vec<u8>) -> Result<()> {
        self.push(&deliver_msg(sub, envelope), out)
    }
    /// Ends one write: adds to `out` what the encoder held back.
    fn finish(&mut self, out: &mut Vec<u8>);
}

/// A delivery as a [`ShellMsg`] of its own (its topic and payload copied).
fn deliver_msg(sub: u32, e: &Envelope) -> ShellMsg {
    ShellMsg::Deliver {
        sub,
        seq: e.seq,
        topic: e.topic.as_str().to_owned(),
        payload: e.payload.to_vec(),
        timestamp_us: e.timestamp.0,
        sender: e.sender.client.0,
        trace: e.trace,
    }
}

/// An app host's codec: `protocol::frame` frames of postcard `protocol::wire` messages.
#[derive(Debug)]
pub struct HostCodec {
    reader: FrameReader,
}

impl Default for HostCodec {
    fn default() -> Self {
        Self { reader: FrameReader::new(FrameLimits::default()) }
    }
}

impl Codec for HostCodec {
    type Encoder = HostEncoder;

    fn feed(&mut self, bytes: &[u8], into: &mut Vec<HostMsg>) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.reader.feed(bytes).context("frame from the app host")?;
        while let Some(frame) = self.reader.next_frame().context("frame from the app host")? {
            for bytes in frame {
                into.push(wire::decode(&bytes).context("message from the app host")?);
            }
        }
        Ok(())
    }

    fn encoder(&self) -> HostEncoder {
        HostEncoder { frames: FrameWriter::new(FrameLimits::default()), buf: Vec::new() }
    }
}

/// [`HostCodec`]'s writer: coalesced frames.
#[derive(Debug)]
pub struct HostEncoder {
    frames: FrameWriter,
    buf: Vec<u8>,
}

impl Encoder for HostEncoder {
    fn push(&mut self, msg: &ShellMsg, _: &mut Vec<u8>) -> Result<()> {
        self.buf.clear();
        wire::encode(msg, &mut self.buf)?;
        self.frames.push(&self.buf)?;
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.frames.take_into(out);
    }
}

/// [`serve`] with every option.
pub async fn serve_opts(broker: Broker, stream: UnixStream, app: Option<AppId>, opts: ConnOptions) -> Result<()> {
    serve_codec(broker, stream, app, opts, HostCodec::default()).await
}

/// [`serve_opts`] for a connection speaking `codec`.
pub async fn serve_codec<C: Codec>(
    broker: Broker,
    stream: UnixStream,
    app: Option<AppId>,
    opts: ConnOptions,
    mut codec: C,
) -> Result<()> {
    let coalesce = opts.coalesce;
    let app_name: Arc<str> = Arc::from(app.as_ref().map(ToString::to_string).unwrap_or_default());
    let client = broker.connect(app);
    // Messages held for the user's answer to a permission prompt come back through here.
    let (retry_tx, retry_rx) = flume::bounded::<HostMsg>(1024);
    let (mut rd, wr) = stream.into_split();
    let (out_tx, out_rx) = flume::bounded::<Outgoing>(OUTBOX);

    let timed = broker.delivery_latency();
    let writer = tokio::spawn(write_frames(
        wr,
        out_rx,
        coalesce,
        opts.counters.clone(),
        codec.encoder(),
        timed,
        Arc::clone(&app_name),
    ));

    // The writer holds the socket's other half: if this task is aborted (the app is closed),
    // it goes too, so the host sees its connection end at once rather than being killed after
    // the grace period.
    let tasks = AbortOnDrop(vec![writer.abort_handle()]);

    // The shell's own messages start once the host has been welcomed (its monitor pings).
    let mut welcomed = false;
    let events = opts.events.clone();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut state = ConnState { alive: opts.last_pong.clone(), app: Arc::clone(&app_name), ..ConnState::default() };
    let mut bucket = opts.rate_limit.map(Bucket::new);
    let last_pong = opts.last_pong.clone();
    let mut msgs = Vec::new();
    let result: Result<()> = async {
        // What came with the handshake, if anything, goes first.
        codec.feed(&[], &mut msgs)?;
        loop {
            for msg in msgs.drain(..) {
                // A page's answer to a probe says its host is alive as well as a pong does.
                if let (HostMsg::Pong { .. } | HostMsg::ProbeAck { .. }, Some(last)) = (&msg, &last_pong) {
                    last.store(broker::Timestamp::now().millis(), std::sync::atomic::Ordering::Relaxed);
                }
                let counted = matches!(
                    msg,
                    HostMsg::Publish { .. }
                        | HostMsg::Send { .. }
                        | HostMsg::Request { .. }
                        | HostMsg::Respond { .. }
                        | HostMsg::Fdc3 { .. }
                );
                if counted && let Some(t) = &opts.counters {
                    t.from_app.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if counted
                    && let Some(bucket) = bucket.as_mut()
                    && let Some(wait) = bucket.take()
                {
                    if bucket.throttled % 10_000 == 1 {
                        tracing::warn!(app = %app_name, "the app sends faster than its limit; it is being slowed down");
                    }
                    if let Some(t) = &opts.counters {
                        t.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    // The app's pong may be waiting behind what it is being slowed down for.
                    alive_while(tokio::time::sleep(wait), state.alive.as_deref()).await;
                }
                let hello = matches!(msg, HostMsg::Hello { .. });
                let Some(msg) = admit(opts.gate.as_ref(), &app_name, msg, &out_tx, &retry_tx).await else {
                    continue;
                };
                handle(&client, msg, &out_tx, &mut state, events.as_ref(), opts.binding.as_ref()).await?;
                if hello && !welcomed {
                    welcomed = true;
                    if let Some(binding) = &opts.binding {
                        binding.welcomed(&out_tx);
                    }
                }
            }
            // Directed sends to this host arrive in its client's inbox; they go out only once
            // the host has been welcomed.
            let n = tokio::select! {
                n = rd.read(&mut chunk) => n.context("reading from the app")?,
                Ok(msg) = retry_rx.recv_async() => {
                    if let Some(msg) = admit(opts.gate.as_ref(), &app_name, msg, &out_tx, &retry_tx).await {
                        handle(&client, msg, &out_tx, &mut state, events.as_ref(), opts.binding.as_ref()).await?;
                    }
                    continue;
                }
                Some(d) = client.inbox().recv_async(), if welcomed => {
                    let e = &d.envelope;
                    let msg = ShellMsg::Direct {
                        topic: e.topic.as_str().to_owned(),
                        payload: e.payload.to_vec(),
                        sender_app: e.sender.app.as_ref().map(ToString::to_string),
                        seq: e.seq,
                    };
                    out_tx.send_async(msg.into()).await.context("the connection's writer is gone")?;
                    continue;
                }
            };
            if n == 0 {
                return Ok(());
            }
            codec.feed(&chunk[..n], &mut msgs)?;
        }
    }
    .await;
    for (_, (_, task)) in state.providers.drain() {
        task.abort();
    }
    if let Some(binding) = &opts.binding {
        binding.ended();
    }
    drop(out_tx);
    drop(client);
    let _ = writer.await;
    drop(tasks);
    result
}

/// Tasks aborted when this is dropped.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The connection's writer: everything queued for the app and its subscriptions' messages,
/// coalesced into as few writes as fit (at most `coalesce` of the shell's messages and
/// `coalesce` deliveries a write), counted for the health view; the broker's sampled messages
/// are timed once written (`timed`).
async fn write_frames<E: Encoder>(
    mut wr: tokio::net::unix::OwnedWriteHalf,
    out_rx: flume::Receiver<Outgoing>,
    coalesce: usize,
    traffic: Option<Arc<Traffic>>,
    mut encoder: E,
    timed: Arc<broker::metrics::Latency>,
    app: Arc<str>,
) -> Result<()> {
    let coalesce = coalesce.max(1);
    // When the publishes of the sampled messages in this write began.
    let mut sampled: Vec<std::time::Instant> = Vec::new();
    // The messages in this write that travel in a recorded trace, with their subscription.
    let mut traced: Vec<(u32, Arc<Envelope>)> = Vec::new();
    let mut bytes = Vec::new();
    let mut subs: Vec<(u32, Box<broker::Subscription>)> = Vec::new();
    // The subscription served first in the next write, so none waits behind the others.
    let mut first_sub = 0;
    // What ended the last wait, to be sent first.
    let mut woken: Option<Woken> = None;
    loop {
        let mut given = 0u64;
        let mut shell = 0;
        let mut delivered = 0;
        match woken.take() {
            Some(Woken::Shell(msg)) => {
                shell += 1;
                given += take(msg, &mut subs, &mut encoder, &mut bytes)?;
            }
            Some(Woken::Delivery(sub, envelope)) => {
                delivered += 1;
                encoder.deliver(sub, &envelope, &mut bytes)?;
                sampled.extend(envelope.sampled.0);
                if traces::traced(&envelope) {
                    traced.push((sub, envelope));
                }
            }
            None => {}
        }
        let mut closed = false;
        while shell < coalesce {
            match out_rx.try_recv() {
                Ok(msg) => {
                    shell += 1;
                    given += take(msg, &mut subs, &mut encoder, &mut bytes)?;
                }
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        for k in 0..subs.len() {
            let (sub, subscription) = &subs[(first_sub + k) % subs.len()];
            let mut failed = None;
            delivered += subscription.try_recv_many(coalesce - delivered, |d| {
                if failed.is_none()
                    && let Err(e) = encoder.deliver(*sub, &d.envelope, &mut bytes)
                {
                    failed = Some(e);
                }
                sampled.extend(d.envelope.sampled.0);
                if traces::traced(&d.envelope) {
                    traced.push((*sub, Arc::clone(&d.envelope)));
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
        first_sub = first_sub.wrapping_add(1);
        if shell + delivered > 0 {
            if let Some(t) = &traffic {
                t.to_app.fetch_add(given + delivered as u64, std::sync::atomic::Ordering::Relaxed);
            }
            encoder.finish(&mut bytes);
            if !bytes.is_empty() {
                wr.write_all(&bytes).await.context("writing to the app")?;
                bytes.clear();
            }
            for started in sampled.drain(..) {
                timed.observe(started.elapsed());
            }
            for (sub, envelope) in traced.drain(..) {
                traces::delivered(&app, sub, &envelope);
            }
            continue;
        }
        if closed {
            return Ok(());
        }
        // Nothing to send: wait for the shell's next message or any subscription's.
        woken = tokio::select! {
            msg = out_rx.recv_async() => match msg {
                Ok(msg) => Some(Woken::Shell(msg)),
                Err(_) => return Ok(()),
            },
            Some((sub, envelope)) = next_delivery(&subs) => Some(Woken::Delivery(sub, envelope)),
        };
    }
}

/// What ended a writer's wait.
enum Woken {
    Shell(Outgoing),
    Delivery(u32, Arc<Envelope>),
}

/// Takes one of the writer's messages: encodes the shell's (counting it if it is the app's
/// traffic: 1, else 0), or adds or drops a subscription.
fn take<E: Encoder>(
    msg: Outgoing,
    subs: &mut Vec<(u32, Box<broker::Subscription>)>,
    encoder: &mut E,
    bytes: &mut Vec<u8>,
) -> Result<u64> {
    match msg {
        Outgoing::Shell(msg) => {
            encoder.push(&msg, bytes)?;
            Ok(u64::from(matches!(
                msg,
                ShellMsg::Deliver { .. }
                    | ShellMsg::Direct { .. }
                    | ShellMsg::Call { .. }
                    | ShellMsg::Response { .. }
                    | ShellMsg::Fdc3 { .. }
            )))
        }
        Outgoing::Subscribe { sub, subscription } => {
            subs.retain(|(s, _)| *s != sub);
            subs.push((sub, subscription));
            Ok(0)
        }
        Outgoing::Unsubscribe { sub } => {
            subs.retain(|(s, _)| *s != sub);
            Ok(0)
        }
    }
}

/// The next message any of `subs` receives (never, if there are none or all are closed).
async fn next_delivery(subs: &[(u32, Box<broker::Subscription>)]) -> Option<(u32, Arc<Envelope>)> {
    if subs.is_empty() {
        return std::future::pending().await;
    }
    let waits = subs.iter().map(|(sub, s)| {
        Box::pin(async move {
            match s.recv_async().await {
                Some(d) => (*sub, d.envelope),
                // A closed subscription (its client is going) never answers.
                None => std::future::pending().await,
            }
        })
    });
    Some(futures_util::future::select_all(waits).await.0)
}

/// The permission a bus message needs and what it names (a topic, pattern or service), if it
/// needs one.
fn bus_scope(msg: &HostMsg) -> Option<(&'static str, &str)> {
    match msg {
        HostMsg::Publish { topic, .. } => Some(("bus.publish", topic)),
        HostMsg::Subscribe { pattern, .. } => Some(("bus.subscribe", pattern)),
        HostMsg::Serve { service, .. } => Some(("bus.serve", service)),
        // A message sent to one app is a publication on its topic.
        HostMsg::Send { topic, .. } => Some(("bus.publish", topic)),
        _ => None,
    }
}

/// What the app is told it was doing when a bus message is refused (made only then: the
/// allowed path formats nothing).
fn refusal_context(msg: &HostMsg) -> String {
    match msg {
        HostMsg::Publish { topic, .. } => format!("publish {topic}"),
        HostMsg::Subscribe { sub, .. } => format!("subscribe {sub}"),
        HostMsg::Serve { service, .. } => format!("serve {service}"),
        HostMsg::Send { app, .. } => format!("send to {app}"),
        _ => String::new(),
    }
}

/// Passes `msg` on if the gate allows it; refuses it to the host if not; if the user is being
/// asked, holds it and sends it back through `retry` once allowed.
async fn admit(
    gate: Option<&(Arc<dyn Gate>, u64)>,
    app: &str,
    msg: HostMsg,
    out: &Outbox,
    retry: &flume::Sender<HostMsg>,
) -> Option<HostMsg> {
    let Some((gate, instance)) = gate else { return Some(msg) };
    let Some((name, scope)) = bus_scope(&msg) else { return Some(msg) };
    // The shell's reserved namespace (`$...`) is refused whatever the app's grants.
    if name != "bus.serve" && broker::topic::is_reserved(scope) {
        gate.refused(*instance, app, "bus.reserved", &broker::echo(scope));
        let error = broker::TopicError::Reserved.to_string();
        let _ = out.send_async(ShellMsg::Refused { context: refusal_context(&msg), error }.into()).await;
        return None;
    }
    // A malformed topic cannot be named as a permission: it goes on to the broker, which
    // refuses it.
    let Ok(permission) = policy::Permission::new(name, Some(scope)) else { return Some(msg) };
    match gate.check(*instance, app, &permission) {
        Access::Allow => Some(msg),
        Access::Deny(error) => {
            let _ = out.send_async(ShellMsg::Refused { context: refusal_context(&msg), error }.into()).await;
            None
        }
        Access::Ask(answer) => {
            let context = refusal_context(&msg);
            let (out, retry) = (out.clone(), retry.clone());
            hold(vec![answer], move |allowed| async move {
                if allowed {
                    let _ = retry.send_async(msg).await;
                } else {
                    let error = format!("denied: {permission} was not allowed");
                    let _ = out.send_async(ShellMsg::Refused { context, error }.into()).await;
                }
            });
            None
        }
    }
}

/// What one connection holds in the broker beyond its client.
#[derive(Default)]
struct ConnState {
    /// The time of the app's last sign of life (its last pong), for the heartbeat.
    alive: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Services this host provides, each with the task forwarding its calls.
    providers: HashMap<String, (Arc<ServiceProvider>, tokio::task::JoinHandle<()>)>,
    /// Services this host calls.
    services: HashMap<String, Arc<ServiceClient>>,
    /// The app it serves (for its spans).
    app: Arc<str>,
}

/// Awaits `f`, counting the app as alive meanwhile (for a wait the shell imposes on it, such as
/// backpressure from other apps' queues) and when it ends: the app's pong may be waiting in its
/// socket behind the message the shell was holding, and behind many more like it.
async fn alive_while<F: std::future::Future>(f: F, alive: Option<&std::sync::atomic::AtomicU64>) -> F::Output {
    let Some(alive) = alive else { return f.await };
    tokio::pin!(f);
    // Most of the time there is no wait at all: no clock, no timer.
    if let std::task::Poll::Ready(out) = futures_util::poll!(&mut f) {
        return out;
    }
    let now = || alive.store(broker::Timestamp::now().millis(), std::sync::atomic::Ordering::Relaxed);
    loop {
        tokio::select! {
            out = &mut f => {
                now();
                return out;
            }
            () = tokio::time::sleep(Duration::from_millis(500)) => now(),
        }
    }
}

/// Longest a host may ask to wait for a service's answer.
const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(300);

async fn handle(
    client: &broker::Client,
    msg: HostMsg,
    out: &Outbox,
    state: &mut ConnState,
    events: Option<&flume::Sender<HostMsg>>,
    binding: Option<&Binding>,
) -> Result<()> {
    if let (HostMsg::Fdc3 { message }, Some(binding)) = (&msg, binding) {
        binding.fdc3(message);
        return Ok(());
    }
    let refuse =
        |context: String, error: &dyn std::fmt::Display| ShellMsg::Refused { context, error: error.to_string() };
    let reply = match msg {
        HostMsg::Hello { protocol, pid } => {
            if protocol != PROTOCOL {
                bail!("app host {pid} speaks protocol {protocol}, the shell {PROTOCOL}");
            }
            Some(ShellMsg::Welcome { client: client.id().0 })
        }
        HostMsg::Publish { topic, payload, durable, ttl_ms, trace } => {
            let span = traces::publish(trace);
            let opts = MessageOptions {
                durable,
                ttl: ttl_ms.map(std::time::Duration::from_millis),
                trace: span.map(|s| s.context),
                ..MessageOptions::default()
            };
            // Backpressure reaches the host: its messages wait here, and its socket fills. The
            // wait is on other apps' queues, not on this one: its heartbeat is not due meanwhile
            // (the pong it sent waits in the socket behind this message).
            let publish = client.publish_async(&topic, payload, opts);
            match alive_while(publish, state.alive.as_deref()).await {
                Ok(published) => {
                    if let Some(span) = span {
                        span.finish(&state.app, &topic, Ok(published));
                    }
                    None
                }
                Err(e) => {
                    if let Some(span) = span {
                        span.finish(&state.app, &topic, Err(&e));
                    }
                    Some(refuse(format!("publish {topic}"), &e))
                }
            }
        }
        HostMsg::Subscribe { sub, pattern, capacity, policy, replay } => {
            let replay = match replay {
                0 => broker::Replay::None,
                1 => broker::Replay::LastValue,
                n => broker::Replay::History { per_topic: n as usize },
            };
            let opts = SubscribeOptions::default().capacity(capacity as usize).policy(policy).replay(replay);
            match client.subscribe(&pattern, opts) {
                Ok(subscription) => {
                    let subscription = Box::new(subscription);
                    out.send_async(Outgoing::Subscribe { sub, subscription })
                        .await
                        .context("the connection's writer is gone")?;
                    None
                }
                Err(e) => Some(refuse(format!("subscribe {sub}"), &e)),
            }
        }
        HostMsg::Unsubscribe { sub } => {
            out.send_async(Outgoing::Unsubscribe { sub }).await.context("the connection's writer is gone")?;
            None
        }
        HostMsg::Send { app, topic, payload } => {
            // Retries on a full inbox sleep briefly inside `send`: a few milliseconds at most.
            match client.send(&Target::App(AppId::new(&app)), &topic, payload, MessageOptions::default()) {
                Ok(_) => None,
                Err(e) => Some(refuse(format!("send to {app}"), &e)),
            }
        }
        HostMsg::Serve { service, actions } => {
            let names: Vec<&str> = actions.iter().map(String::as_str).collect();
            match client.serve(&service, &names) {
                Ok(provider) => {
                    let provider = Arc::new(provider);
                    let task = tokio::spawn(forward_calls(Arc::clone(&provider), out.clone()));
                    if let Some((_, old)) = state.providers.insert(service, (provider, task)) {
                        old.abort();
                    }
                    None
                }
                Err(e) => Some(refuse(format!("serve {service}"), &e)),
            }
        }
        HostMsg::Unserve { service } => {
            if let Some((_, task)) = state.providers.remove(&service) {
                task.abort();
            }
            None
        }
        HostMsg::Respond { service, call, result } => {
            if let Some((provider, _)) = state.providers.get(&service) {
                // `false`: the caller gave up (timeout); nothing more to do.
                let _ = provider.respond(CallId(call), result.map(Payload::from));
            }
            None
        }
        msg @ HostMsg::Request { .. } => call_service(client, out, state, msg),
        HostMsg::Ping { nonce } => Some(ShellMsg::Pong { nonce }),
        HostMsg::Pong { .. } => None,
        msg @ (HostMsg::ProbeAck { .. }
        | HostMsg::EvalResult { .. }
        | HostMsg::NavigationRequest { .. }
        | HostMsg::PageLoad { .. }
        | HostMsg::SaveState { .. }
        | HostMsg::Fdc3 { .. }
        | HostMsg::CloseSelf
        | HostMsg::PermissionRequest { .. }
        | HostMsg::Console { .. }
        | HostMsg::PageRefused { .. }
        | HostMsg::WebProcess { .. }
        | HostMsg::WebProcessEnded { .. }) => {
            if let Some(events) = events
                && events.send_async(msg).await.is_err()
            {
                tracing::debug!("nobody listens to this host's events any more");
            }
            None
        }
    };
    if let Some(r) = reply {
        out.send_async(r.into()).await.context("the connection's writer is gone")?;
    }
    Ok(())
}

/// Calls a service for the host (`HostMsg::Request`); the answer, or its failure, comes back
/// as `ShellMsg::Response`.
fn call_service(client: &broker::Client, out: &Outbox, state: &mut ConnState, msg: HostMsg) -> Option<ShellMsg> {
    let HostMsg::Request { call, service, action, payload, timeout_ms } = msg else { return None };
    let svc = match state.services.get(&service) {
        Some(s) => Ok(Arc::clone(s)),
        None => client.connect_service(&service).map(Arc::new),
    };
    let pending = svc.and_then(|svc| {
        state.services.insert(service.clone(), Arc::clone(&svc));
        svc.dispatch(&action, payload, Duration::from_millis(timeout_ms).min(MAX_CALL_TIMEOUT))
    });
    match pending {
        Ok(pending) => {
            let out = out.clone();
            let timeout = Duration::from_millis(timeout_ms).min(MAX_CALL_TIMEOUT);
            tokio::spawn(async move {
                // The deadline is kept here too, not only by the broker's sweep.
                let result = match tokio::time::timeout(timeout, pending.wait_async()).await {
                    Ok(answer) => answer,
                    Err(_) => Err(broker::Error::Timeout { after_ms: timeout_ms }),
                };
                let result = result.map(|p| p.to_vec()).map_err(|e| e.to_string());
                let _ = out.send_async(ShellMsg::Response { call, result }.into()).await;
            });
            None
        }
        Err(e) => {
            // A service that is gone or never was: forget the client so a later call
            // connects afresh.
            state.services.remove(&service);
            Some(ShellMsg::Response { call, result: Err(e.to_string()) })
        }
    }
}

/// Forwards a provider's calls to its host until the host drops the service.
async fn forward_calls(provider: Arc<ServiceProvider>, out: Outbox) {
    while let Ok(event) = provider.recv_async().await {
        if let ProviderEvent::Request(req) = event {
            let msg = ShellMsg::Call {
                service: provider.name().to_owned(),
                call: req.call.0,
                action: req.action,
                payload: req.payload.to_vec(),
                caller_app: req.caller_app.map(|a| a.to_string()),
            };
            if out.send_async(msg.into()).await.is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
