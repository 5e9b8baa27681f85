//! A simulated desk for `bench bridge`: a broker of its own (with a journal in memory, so
//! durable topics are durable to it), the real link (`bridge::start`) over it, and a host that
//! answers raises at once and times what reaches it. What it sends carries its send time on
//! the bench's clock; what it receives from other desks is timed against it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use broker::fdc3::{DeskRaise, IntentDecl, RemoteApp};
use broker::{Broker, BrokerConfig, CommitAck, Envelope, MessageOptions, SubscribeOptions};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The intent the simulated apps take.
pub(crate) const INTENT: &str = "BenchIntent";
/// The shared user channel.
pub(crate) const CHANNEL: &str = "fdc3.channel.1";
/// The shared bus topic.
pub(crate) const TOPIC: &str = "bench.orders";

/// What a message of the mix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bus,
    Channel,
    Intent,
}

/// What every desk of a run reports into.
#[derive(Debug)]
pub(crate) struct Tally {
    start: Instant,
    /// Latencies in microseconds: bus deliveries, channel deliveries, intent round trips.
    pub(crate) bus: Mutex<Vec<u64>>,
    pub(crate) channel: Mutex<Vec<u64>>,
    pub(crate) intents: Mutex<Vec<u64>>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self { start: Instant::now(), bus: Mutex::default(), channel: Mutex::default(), intents: Mutex::default() }
    }

    /// Microseconds since the run began.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn sample(&self, into: &Mutex<Vec<u64>>, sent: Option<u64>) {
        if let Some(sent) = sent {
            let now = self.now_us();
            into.lock().push(now.saturating_sub(sent));
        }
    }

    /// Deliveries so far (bus, channel, intents).
    pub(crate) fn delivered(&self) -> u64 {
        (self.bus.lock().len() + self.channel.lock().len() + self.intents.lock().len()) as u64
    }
}

/// Durable publishes are committed at once, in memory: the bench measures the link, not a disk.
#[derive(Debug, Default)]
struct MemoryJournal(AtomicU64);

impl broker::Journal for MemoryJournal {
    fn append(&self, _envelope: &Arc<Envelope>) -> broker::Result<CommitAck> {
        let (signal, ack) = CommitAck::pair();
        signal.complete(Ok(self.0.fetch_add(1, Ordering::Relaxed) + 1));
        Ok(ack)
    }
}

/// The host of one simulated desk.
struct Host {
    tally: Arc<Tally>,
    bridge: Arc<OnceLock<bridge::Bridge>>,
    heard: Arc<Mutex<HashSet<String>>>,
}

impl bridge::Host for Host {
    fn record(&self, _crossings: Vec<bridge::Crossing>) {}

    fn context(&self, rc: bridge::wire::RemoteContext) {
        self.tally.sample(&self.tally.channel, rc.context["sent_us"].as_u64());
    }

    fn apps(&self) -> Vec<RemoteApp> {
        vec![RemoteApp {
            app_id: "bench".to_owned(),
            title: "Bench".to_owned(),
            intents: vec![IntentDecl {
                name: INTENT.to_owned(),
                display_name: None,
                contexts: vec!["bench.ping".to_owned()],
                result_type: Some("bench.ping".to_owned()),
            }],
        }]
    }

    fn desk_apps(&self, desk: &str, apps: Vec<RemoteApp>) {
        if !apps.is_empty() {
            self.heard.lock().insert(desk.to_owned());
        }
    }

    fn raise(&self, r: DeskRaise) {
        let Some(bridge) = self.bridge.get() else { return };
        let answer = |kind: &str, payload: Value| bridge::wire::Answer {
            desk: r.desk.clone(),
            request: r.request.clone(),
            kind: kind.to_owned(),
            payload,
        };
        let resolution =
            json!({ "intentResolution": { "source": { "appId": "bench", "instanceId": "1" }, "intent": r.intent } });
        bridge.answer(&answer("raiseIntentResponse", resolution));
        bridge.answer(&answer("raiseIntentResultResponse", json!({ "intentResult": { "context": r.context } })));
    }

    fn answer(&self, a: bridge::wire::Answer) {
        if a.kind == "raiseIntentResultResponse" {
            self.tally.sample(
                &self.tally.intents,
                a.payload.pointer("/intentResult/context/sent_us").and_then(Value::as_u64),
            );
        }
    }
}

/// One simulated desk.
pub(crate) struct Desk {
    pub(crate) name: String,
    /// The other desks of its group.
    pub(crate) peers: Vec<String>,
    client: broker::Client,
    bridge: Arc<OnceLock<bridge::Bridge>>,
    heard: Arc<Mutex<HashSet<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Desk {
    /// Starts desk `name` linked by `rules` (inside a Tokio runtime).
    pub(crate) fn start(name: &str, peers: Vec<String>, rules: &policy::link::LinkRules, tally: &Arc<Tally>) -> Self {
        let broker = Broker::new(BrokerConfig::default());
        broker.attach_journal(Arc::new(MemoryJournal::default()));
        let bridge = Arc::new(OnceLock::new());
        let heard = Arc::new(Mutex::new(HashSet::new()));
        let host = Host { tally: Arc::clone(tally), bridge: Arc::clone(&bridge), heard: Arc::clone(&heard) };
        let _ = bridge.set(bridge::start(broker.clone(), rules, "bench", bridge::Credentials::None, Arc::new(host)));
        // What the link brings in from the other desks, timed.
        let reader = broker.connect(None);
        let own = name.to_owned();
        let t = Arc::clone(tally);
        let reader = tokio::spawn(async move {
            let Ok(sub) = reader.subscribe("bench.#", SubscribeOptions::default().capacity(1 << 20)) else { return };
            while let Some(d) = sub.recv_async().await {
                let Ok(v) = serde_json::from_slice::<Value>(&d.envelope.payload) else { continue };
                if v["desk"] != own.as_str() {
                    t.sample(&t.bus, v["sent_us"].as_u64());
                }
            }
        });
        Self { name: name.to_owned(), peers, client: broker.connect(None), bridge, heard, reader }
    }

    /// The link's status.
    pub(crate) fn status(&self) -> Option<bridge::Status> {
        self.bridge.get().map(bridge::Bridge::status)
    }

    /// Whether the link is up, its group set up, and every peer heard from.
    pub(crate) fn ready(&self) -> bool {
        let Some(b) = self.bridge.get() else { return false };
        let s = b.status();
        s.connected() && !s.ready.is_empty() && self.heard.lock().len() >= self.peers.len()
    }

    /// Sends message `k` of the mix: 6 in 10 on the bus (a fifth of them durable), 3 a channel
    /// broadcast, 1 an intent raised at a peer (a bus message for a desk without peers).
    /// Returns its kind and how many deliveries it should make.
    pub(crate) fn send(&self, k: u64, tally: &Tally) -> (Kind, u64) {
        let Some(bridge) = self.bridge.get() else { return (Kind::Bus, 0) };
        let sent_us = tally.now_us();
        let fan_out = self.peers.len() as u64;
        match k % 10 {
            6..=8 => {
                let context = json!({ "type": "bench.ping", "sent_us": sent_us });
                bridge.broadcast(CHANNEL, &context, &json!({ "appId": "bench", "desktopAgent": self.name }));
                (Kind::Channel, fan_out)
            }
            9 if !self.peers.is_empty() => {
                let peer = &self.peers[usize::try_from(k / 10).unwrap_or(0) % self.peers.len()];
                let raise = DeskRaise {
                    desk: peer.clone(),
                    request: format!("{}-{k}", self.name),
                    app: "bench".to_owned(),
                    intent: INTENT.to_owned(),
                    context: json!({ "type": "bench.ping", "sent_us": sent_us }),
                    source: json!({ "appId": "bench", "instanceId": "1" }),
                };
                (Kind::Intent, u64::from(bridge.raise(&raise).is_ok()))
            }
            _ => {
                let payload = json!({ "desk": self.name, "sent_us": sent_us, "k": k }).to_string();
                let opts =
                    if k.is_multiple_of(5) { MessageOptions::default().durable() } else { MessageOptions::default() };
                (Kind::Bus, if self.client.publish(TOPIC, payload, opts).is_ok() { fan_out } else { 0 })
            }
        }
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
