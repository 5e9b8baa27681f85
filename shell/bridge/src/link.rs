//! The running link: the connection, and per group the outward and inward tasks; intents
//! across desks in `desks`.

mod desks;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use broker::fdc3::{DeskRaise, RemoteApp};
use broker::{Broker, ClientId, MessageOptions, Pattern, QueuePolicy, SubscribeOptions, Topic};
use bytes::Bytes;
use futures_util::StreamExt as _;
use parking_lot::Mutex;
use policy::link::{LinkGroup, LinkRules};
use serde::Serialize;

use crate::status::Status;
use crate::wire::{self, Verdict};

/// Which way a message went, or that it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Way {
    /// From this desk to the others.
    Out,
    /// From another desk to this one.
    In,
    /// Refused (the reason says which way and why).
    Refused,
}

/// One message crossing the link (or refused at it), for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Crossing {
    /// Which way.
    pub way: Way,
    /// The link group.
    pub group: String,
    /// The desk it came from.
    pub desk: String,
    /// The user at that desk, if known.
    pub user: String,
    /// The app that published it, if an app did.
    pub app: Option<String>,
    /// The bus topic (or the subject, for what could not be read).
    pub topic: String,
    /// The payload's size.
    pub bytes: usize,
    /// Why it was refused.
    pub reason: Option<String>,
}

/// What the shell does for the link.
pub trait Host: Send + Sync + 'static {
    /// Records a batch of crossings (called from a blocking thread).
    fn record(&self, crossings: Vec<Crossing>);

    /// Hands a broadcast from another desk to the FDC3 agent here.
    fn context(&self, context: wire::RemoteContext);

    /// This desk's apps and the intents they take (the link announces those a group shares).
    fn apps(&self) -> Vec<RemoteApp>;

    /// What another desk offers now (nothing: it left).
    fn desk_apps(&self, desk: &str, apps: Vec<RemoteApp>);

    /// A raise from another desk for an app here.
    fn raise(&self, raise: DeskRaise);

    /// An answer from another desk to a raise sent there.
    fn answer(&self, answer: wire::Answer);
}

/// A broadcast on a user channel here, on its way to the desks sharing it.
struct Broadcast {
    channel: String,
    context: serde_json::Value,
    source: serde_json::Value,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast").field("channel", &self.channel).finish_non_exhaustive()
    }
}

/// The running link; dropping it closes the link.
#[derive(Debug)]
pub struct Bridge {
    status: Arc<Mutex<Status>>,
    task: tokio::task::JoinHandle<()>,
    broadcasts: tokio::sync::mpsc::Sender<Broadcast>,
    /// Raises and answers for other desks.
    core: tokio::sync::mpsc::Sender<desks::Outgoing>,
    heard: desks::Heard,
    groups: Vec<LinkGroup>,
    ctx: Ctx,
}

impl Bridge {
    /// What the link is doing.
    pub fn status(&self) -> Status {
        let mut s = self.status.lock().clone();
        s.desks = self.heard.lock().keys().cloned().collect();
        s.desks.sort();
        s
    }

    /// A broadcast on user channel `channel` here, by `source`: sent to the desks of every
    /// group sharing the channel (in the order given). Never waits; if thousands are already
    /// waiting for the cluster, it is refused and counted.
    pub fn broadcast(&self, channel: &str, context: &serde_json::Value, source: &serde_json::Value) {
        let b = Broadcast { channel: channel.to_owned(), context: context.clone(), source: source.clone() };
        if self.broadcasts.try_send(b).is_err() {
            let mut s = self.status.lock();
            s.refused += 1;
            s.last_error = Some(format!("a broadcast on {channel} was dropped: too many wait for the cluster"));
        }
    }
}

impl Bridge {
    /// Sends a raise to the desk it names; `Err` says why it cannot go (the raiser is then
    /// to be told at once).
    pub fn raise(&self, raise: &DeskRaise) -> Result<(), String> {
        let out = desks::raise_out(&self.groups, &self.heard, &self.ctx, raise)?;
        self.core.try_send(out).map_err(|_| "too many raises wait for the cluster".to_owned())
    }

    /// Sends an answer to a raise another desk sent here.
    pub fn answer(&self, answer: &wire::Answer) {
        let sent = desks::answer_out(&self.groups, &self.heard, &self.ctx, answer)
            .and_then(|out| self.core.try_send(out).map_err(|_| "too many answers wait for the cluster".to_owned()));
        if let Err(why) = sent {
            self.ctx.error(format!("an answer to desk {} was dropped: {why}", answer.desk));
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What every task of the link shares.
#[derive(Clone)]
struct Ctx {
    desk: Arc<str>,
    user: Arc<str>,
    status: Arc<Mutex<Status>>,
    audit: tokio::sync::mpsc::Sender<Crossing>,
    host: Arc<dyn Host>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("desk", &self.desk).finish_non_exhaustive()
    }
}

impl Ctx {
    fn error(&self, what: String) {
        tracing::warn!(desk = %self.desk, "desk link: {what}");
        self.status.lock().last_error = Some(what);
    }

    /// A crossing of this desk's own (out, or refused on the way out).
    fn ours(
        &self,
        way: Way,
        group: &str,
        app: Option<&str>,
        topic: &str,
        bytes: usize,
        reason: Option<String>,
    ) -> Crossing {
        Crossing {
            way,
            group: group.to_owned(),
            desk: self.desk.to_string(),
            user: self.user.to_string(),
            app: app.map(str::to_owned),
            topic: topic.to_owned(),
            bytes,
            reason,
        }
    }

    async fn audit(&self, c: Crossing) {
        if c.way == Way::Refused {
            self.status.lock().refused += 1;
        }
        let _ = self.audit.send(c).await;
    }
}

/// What a desk logs in to the cluster with (from its vault).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing: the cluster takes anyone.
    None,
    /// A token.
    Token(String),
    /// A NATS user and its password.
    User(String, String),
    /// An NKey seed (`SU...`).
    NKey(String),
    /// A credentials file's text (a user JWT and its seed).
    Creds(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        let kind = match self {
            Self::None => "none",
            Self::Token(_) => "token",
            Self::User(..) => "user and password",
            Self::NKey(_) => "nkey",
            Self::Creds(_) => "credentials file",
        };
        f.write_str(kind)
    }
}

/// Starts the link for `rules` (inside a Tokio runtime): `user` is who is at this desk,
/// `credentials` what it logs in with.
pub fn start(broker: Broker, rules: &LinkRules, user: &str, credentials: Credentials, host: Arc<dyn Host>) -> Bridge {
    let groups: Vec<LinkGroup> = rules.groups_of_this_desk().cloned().collect();
    let status = Arc::new(Mutex::new(Status {
        desk: rules.desk.clone(),
        state: "connecting",
        groups: groups.iter().map(|g| g.name.clone()).collect(),
        ..Status::default()
    }));
    let (audit_tx, audit_rx) = tokio::sync::mpsc::channel(65_536);
    let ctx = Ctx {
        desk: Arc::from(rules.desk.as_str()),
        user: Arc::from(user),
        status: Arc::clone(&status),
        audit: audit_tx,
        host: Arc::clone(&host),
    };
    let (broadcasts, broadcasts_rx) = tokio::sync::mpsc::channel(4096);
    let (core, core_rx) = tokio::sync::mpsc::channel(4096);
    let heard = desks::Heard::default();
    let servers = rules.servers.clone();
    let tls = Tls {
        ca: rules.ca_file.clone(),
        required: rules.ca_file.is_some() || servers.iter().any(|s| s.starts_with("tls://")),
    };
    let replicas = usize::from(rules.replicas);
    let task = {
        let (ctx, groups, heard) = (ctx.clone(), groups.clone(), Arc::clone(&heard));
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            tasks.spawn(record(audit_rx, host));
            let Some(client) = connect(&ctx, servers, credentials, tls).await else { return };
            let js = jetstream::new(client.clone());
            tasks.spawn(send_broadcasts(js.clone(), broadcasts_rx, groups.clone(), ctx.clone()));
            tasks.spawn(desks::send(client.clone(), core_rx, ctx.clone()));
            for g in groups {
                tasks.spawn(desks::run(client.clone(), g.clone(), ctx.clone(), Arc::clone(&heard)));
                tasks.spawn(group(js.clone(), broker.clone(), g, replicas, ctx.clone()));
            }
            tasks.spawn(watch(client, ctx.clone()));
            while tasks.join_next().await.is_some() {}
        })
    };
    Bridge { status, task, broadcasts, core, heard, groups, ctx }
}

/// Writes the crossings to the audit sink, a batch at a time, off the runtime's threads.
async fn record(mut rx: tokio::sync::mpsc::Receiver<Crossing>, audit: Arc<dyn Host>) {
    let mut batch = Vec::with_capacity(1024);
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let audit = Arc::clone(&audit);
        let taken = std::mem::take(&mut batch);
        let _ = tokio::task::spawn_blocking(move || audit.record(taken)).await;
    }
}

/// TLS for the link.
struct Tls {
    ca: Option<std::path::PathBuf>,
    required: bool,
}

async fn connect(ctx: &Ctx, servers: Vec<String>, credentials: Credentials, tls: Tls) -> Option<async_nats::Client> {
    let events = ctx.clone();
    let opts = match credentials {
        Credentials::None => async_nats::ConnectOptions::new(),
        Credentials::Token(token) => async_nats::ConnectOptions::with_token(token),
        Credentials::User(user, password) => async_nats::ConnectOptions::with_user_and_password(user, password),
        Credentials::NKey(seed) => async_nats::ConnectOptions::with_nkey(seed),
        Credentials::Creds(text) => match async_nats::ConnectOptions::with_credentials(&text) {
            Ok(o) => o,
            Err(e) => {
                ctx.status.lock().state = "closed";
                ctx.error(format!("its credentials file cannot be read: {e}"));
                return None;
            }
        },
    };
    let mut opts = opts.require_tls(tls.required);
    if let Some(ca) = tls.ca {
        opts = opts.add_root_certificates(ca);
    }
    let opts = opts
        .name(format!("tessera desk {}", ctx.desk))
        // Replies to this desk only under its own prefix, which NATS permissions can give it alone.
        .custom_inbox_prefix(wire::inbox_prefix(&ctx.desk))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        // Requests to the cluster answered within 3 s or asked again: a stream creation lost in
        // a race between desks setting up the same group is not waited on for long.
        .request_timeout(Some(Duration::from_secs(3)))
        .event_callback(move |event| {
            let ctx = events.clone();
            async move {
                // What to audit, decided under the lock and done after it.
                let refused_login = {
                    let mut s = ctx.status.lock();
                    match event {
                        async_nats::Event::Connected => {
                            s.state = "connected";
                            s.connection_error = None;
                            s.login_refused = false;
                            None
                        }
                        async_nats::Event::Disconnected => {
                            s.state = "disconnected";
                            s.server = None;
                            None
                        }
                        async_nats::Event::Closed => {
                            s.state = "closed";
                            None
                        }
                        other => {
                            let what = other.to_string();
                            let up = s.state == "connected";
                            if !up {
                                s.connection_error = Some(what.clone());
                            }
                            s.last_error = Some(what.clone());
                            tracing::warn!(desk = %ctx.desk, "desk link: {what}");
                            // A login the cluster refuses is audited (once until it connects).
                            let refused = !up && what.to_lowercase().contains("authorization");
                            let first = refused && !s.login_refused;
                            s.login_refused |= refused;
                            first.then_some(what)
                        }
                    }
                };
                if let Some(what) = refused_login {
                    let why = format!("the cluster refused this desk's login: {what}");
                    ctx.audit(ctx.ours(Way::Refused, "", None, "login", 0, Some(why))).await;
                }
            }
        });
    match opts.connect(servers).await {
        Ok(client) => Some(client),
        Err(e) => {
            ctx.status.lock().state = "closed";
            ctx.error(format!("cannot connect: {e}"));
            None
        }
    }
}

/// Keeps the status's server current.
async fn watch(client: async_nats::Client, ctx: Ctx) {
    loop {
        let up = client.connection_state() == async_nats::connection::State::Connected;
        {
            let mut s = ctx.status.lock();
            if up {
                let info = client.server_info();
                s.state = "connected";
                s.server = Some(format!("{}:{}", info.host, info.port));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Back-off between attempts: 100 ms doubling to 5 s.
fn next(delay: Duration) -> Duration {
    (delay * 2).min(Duration::from_secs(5))
}

const FIRST: Duration = Duration::from_millis(100);

async fn group(js: jetstream::Context, broker: Broker, g: LinkGroup, replicas: usize, ctx: Ctx) {
    let config = stream::Config {
        name: wire::stream_name(&g.name),
        subjects: wire::stream_subjects(&g.name),
        max_age: Duration::from_secs(g.catch_up_secs),
        max_bytes: i64::try_from(g.catch_up_bytes).unwrap_or(i64::MAX),
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(120),
        storage: stream::StorageType::File,
        // Room for the headers beside the largest payload.
        max_message_size: i32::try_from(g.max_message_bytes).unwrap_or(i32::MAX).saturating_add(4096),
        ..stream::Config::default()
    };
    let mut delay = FIRST;
    let stream = loop {
        match js.get_or_create_stream(config.clone()).await {
            Ok(s) => break s,
            Err(e) => ctx.error(format!("group {}: its stream: {e}", g.name)),
        }
        tokio::time::sleep(delay).await;
        delay = next(delay);
    };
    tracing::debug!(desk = %ctx.desk, group = %g.name, "desk link: the group's stream is there");
    let inward_patterns: Vec<Pattern> =
        g.bus.iter().filter(|t| t.direction.inward()).filter_map(|t| Pattern::parse(&t.pattern).ok()).collect();
    let consumer = if inward_patterns.is_empty() && g.user_channels.is_empty() && g.app_channels.is_empty() {
        None
    } else {
        Some(consumer(&stream, &g, &ctx).await)
    };
    tracing::debug!(desk = %ctx.desk, group = %g.name, "desk link: this desk's consumer is there");
    // The shared channels' current contexts, as the other desks left them.
    let subjects = g.user_channels.iter().map(|c| wire::channel_subject(&g.name, c));
    for subject in subjects.chain(g.app_channels.iter().map(|c| wire::app_channel_subject(&g.name, c))) {
        if let Ok(last) = stream.get_last_raw_message_by_subject(&subject).await {
            let header = |name: &str| last.headers.get(name).map(async_nats::HeaderValue::as_str);
            if let Ok(Some(rc)) =
                wire::inbound_context(&desks::local(&g, &ctx.desk), &last.subject, header, &last.payload)
            {
                ctx.host.context(rc);
            }
        }
    }
    tracing::debug!(desk = %ctx.desk, group = %g.name, "desk link: the group is set up");
    ctx.status.lock().ready.push(g.name.clone());
    let local = broker.connect(None);
    let own = local.id();
    let mut tasks = tokio::task::JoinSet::new();
    for shared in g.bus.iter().filter(|t| t.direction.outward()) {
        let opts = SubscribeOptions::default().capacity(65_536).policy(QueuePolicy::DropOldest);
        match local.subscribe(&shared.pattern, opts) {
            Ok(sub) => {
                tasks.spawn(outward(js.clone(), sub, own, g.clone(), ctx.clone()));
            }
            Err(e) => ctx.error(format!("group {}: pattern {}: {e}", g.name, shared.pattern)),
        }
    }
    if let Some(consumer) = consumer {
        tasks.spawn(inward(consumer, local, inward_patterns, g, ctx));
    }
    while tasks.join_next().await.is_some() {}
}

/// Sends what this desk publishes on the group's shared topics.
async fn outward(js: jetstream::Context, sub: broker::Subscription, own: ClientId, g: LinkGroup, ctx: Ctx) {
    let max = g.max_message_bytes as usize;
    while let Some(d) = sub.recv_async().await {
        let e = &d.envelope;
        // What the link brought in is not sent back out.
        if e.sender.client == own {
            continue;
        }
        let topic = e.topic.as_str();
        let app = e.sender.app.as_ref().map(ToString::to_string);
        let crossing = |way, reason| ctx.ours(way, &g.name, app.as_deref(), topic, e.payload.len(), reason);
        if e.payload.len() > max {
            let why = format!("out: {} bytes is over the group's {max}-byte limit", e.payload.len());
            ctx.audit(crossing(Way::Refused, Some(why))).await;
            continue;
        }
        let subject = match wire::bus_subject(&g.name, topic) {
            Ok(s) => s,
            Err(why) => {
                ctx.audit(crossing(Way::Refused, Some(format!("out: {why}")))).await;
                continue;
            }
        };
        let mut headers = our_headers(&ctx, app.as_deref());
        if e.durable {
            headers.insert(wire::DURABLE, "1");
        }
        let id = wire::message_id(&ctx.desk, e.id.0);
        let payload = Bytes::copy_from_slice(&e.payload);
        send_until_acked(&js, &subject, payload, headers, &id, &ctx).await;
        ctx.status.lock().messages_out += 1;
        ctx.audit(crossing(Way::Out, None)).await;
    }
}

/// Publishes to the group's stream until the cluster acknowledges it: with the same id each
/// time, so a resend after a lost acknowledgement is dropped as a duplicate.
async fn send_until_acked(
    js: &jetstream::Context,
    subject: &str,
    payload: Bytes,
    headers: async_nats::HeaderMap,
    id: &str,
    ctx: &Ctx,
) {
    let mut delay = FIRST;
    loop {
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.clone())
            .headers(headers.clone())
            .message_id(id);
        let sent = async { js.send_publish(subject.to_owned(), publish).await?.await };
        match tokio::time::timeout(Duration::from_secs(10), sent).await {
            Ok(Ok(_)) => return,
            Ok(Err(err)) => ctx.error(format!("sending on {subject}: {err}")),
            Err(_) => ctx.error(format!("sending on {subject}: no acknowledgement within 10 s")),
        }
        tokio::time::sleep(delay).await;
        delay = next(delay);
    }
}

/// The headers of what this desk sends: who and where from.
fn our_headers(ctx: &Ctx, app: Option<&str>) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(wire::DESK, &*ctx.desk);
    headers.insert(wire::USER, &*ctx.user);
    if let Some(app) = app {
        headers.insert(wire::APP, app);
    }
    headers
}

/// Sends this desk's broadcasts on shared user channels to every group sharing the channel.
async fn send_broadcasts(
    js: jetstream::Context,
    mut rx: tokio::sync::mpsc::Receiver<Broadcast>,
    groups: Vec<LinkGroup>,
    ctx: Ctx,
) {
    // Ids unique across this desk's restarts: the start time, then a count.
    let boot = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut n = 0u64;
    while let Some(b) = rx.recv().await {
        let app = b.source.get("appId").and_then(serde_json::Value::as_str).map(str::to_owned);
        let body = wire::context_body(&b.context, &b.source);
        for g in groups.iter().filter(|g| g.user_channels.contains(&b.channel) || g.app_channels.contains(&b.channel)) {
            let topic = format!("fdc3:{}", b.channel);
            let crossing = |way, reason| ctx.ours(way, &g.name, app.as_deref(), &topic, body.len(), reason);
            if body.len() > g.max_message_bytes as usize {
                let why = format!("out: {} bytes is over the group's {}-byte limit", body.len(), g.max_message_bytes);
                ctx.audit(crossing(Way::Refused, Some(why))).await;
                continue;
            }
            n += 1;
            let id = format!("{}:c{boot:x}-{n}", ctx.desk);
            let subject = if g.user_channels.contains(&b.channel) {
                wire::channel_subject(&g.name, &b.channel)
            } else {
                wire::app_channel_subject(&g.name, &b.channel)
            };
            send_until_acked(&js, &subject, Bytes::from(body.clone()), our_headers(&ctx, app.as_deref()), &id, &ctx)
                .await;
            ctx.status.lock().messages_out += 1;
            ctx.audit(crossing(Way::Out, None)).await;
        }
    }
}

/// Ids of messages already delivered, the last `cap` of them.
struct Seen {
    order: VecDeque<String>,
    set: HashSet<String>,
    cap: usize,
}

impl Seen {
    fn new(cap: usize) -> Self {
        Self { order: VecDeque::new(), set: HashSet::new(), cap }
    }

    /// Whether `id` is new (and remembers it).
    fn first(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(id.to_owned());
        self.set.insert(id.to_owned());
        true
    }
}

/// This desk's durable consumer of the group's bus subjects.
async fn consumer(stream: &stream::Stream, g: &LinkGroup, ctx: &Ctx) -> consumer::PullConsumer {
    let name = wire::consumer_name(&ctx.desk);
    let config = consumer::pull::Config {
        durable_name: Some(name.clone()),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: consumer::DeliverPolicy::New,
        // A delivery lost on its way (a pull given up after a missed heartbeat) comes again
        // after this long; one that arrives twice is dropped by its id.
        ack_wait: Duration::from_secs(10),
        max_ack_pending: 10_000,
        // A desk away longer than the stream keeps has nothing left to catch up on.
        inactive_threshold: Duration::from_secs(g.catch_up_secs),
        ..consumer::pull::Config::default()
    };
    let mut delay = FIRST;
    loop {
        match stream.get_or_create_consumer(&name, config.clone()).await {
            Ok(c) => {
                led(c.clone()).await;
                return c;
            }
            Err(e) => ctx.error(format!("group {}: its consumer: {e}", g.name)),
        }
        tokio::time::sleep(delay).await;
        delay = next(delay);
    }
}

/// Waits (up to 5 s) until the consumer has a leader: a pull sent before would be lost.
async fn led(mut consumer: consumer::PullConsumer) {
    for _ in 0..50 {
        match consumer.info().await {
            Ok(info) if info.cluster.as_ref().is_none_or(|c| c.leader.is_some()) => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Delivers here what the other desks sent on the group's shared topics.
async fn inward(
    consumer: consumer::PullConsumer,
    local: broker::Client,
    patterns: Vec<Pattern>,
    g: LinkGroup,
    ctx: Ctx,
) {
    let _lag = AbortOnDrop(tokio::spawn(lag(consumer.clone(), g.name.clone(), ctx.clone())));
    let max = g.max_message_bytes as usize;
    let mut seen = Seen::new(100_000);
    let mut delay = FIRST;
    loop {
        // Short pulls: a pull lost in a change of the consumer's leader (a node lost, or the
        // consumer just made) is asked again within seconds, not after the default 30 s.
        let pull = consumer.stream().expires(Duration::from_secs(5)).heartbeat(Duration::from_secs(2));
        let mut messages = match pull.messages().await {
            Ok(m) => m,
            Err(e) => {
                ctx.error(format!("group {}: reading: {e}", g.name));
                tokio::time::sleep(delay).await;
                delay = next(delay);
                continue;
            }
        };
        delay = FIRST;
        while let Some(item) = messages.next().await {
            let msg = match item {
                Ok(m) => m,
                Err(e) => {
                    ctx.error(format!("group {}: reading: {e}", g.name));
                    continue;
                }
            };
            deliver(&msg, &local, &patterns, &g, max, &mut seen, &ctx).await;
            // Each message says how many are behind it: the lag, without asking the cluster.
            if let Ok(info) = msg.info() {
                ctx.status.lock().pending.insert(g.name.clone(), info.pending);
            }
            // Acknowledged once delivered (or refused): a redelivery after a crash meanwhile
            // carries the same id.
            if let Err(e) = msg.ack().await {
                ctx.error(format!("group {}: acknowledging: {e}", g.name));
            }
        }
    }
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn deliver(
    msg: &jetstream::Message,
    local: &broker::Client,
    patterns: &[Pattern],
    g: &LinkGroup,
    max: usize,
    seen: &mut Seen,
    ctx: &Ctx,
) {
    let headers = msg.headers.as_ref();
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(async_nats::HeaderValue::as_str);
    let size = msg.payload.len();
    if msg.subject.as_str().starts_with(&format!("tessera.{}.fdc3.", g.name)) {
        let subject = msg.subject.as_str();
        match wire::inbound_context(&desks::local(g, &ctx.desk), subject, header, &msg.payload) {
            Ok(None) => ctx.status.lock().own += 1,
            Ok(Some(rc)) if !seen.first(&rc.id) => ctx.status.lock().duplicates += 1,
            Ok(Some(rc)) => {
                let crossing = Crossing {
                    way: Way::In,
                    group: g.name.clone(),
                    desk: rc.origin["desktopAgent"].as_str().unwrap_or_default().to_owned(),
                    user: header(wire::USER).unwrap_or_default().to_owned(),
                    app: rc.origin["appId"].as_str().map(str::to_owned),
                    topic: format!("fdc3:{}", rc.channel),
                    bytes: size,
                    reason: None,
                };
                ctx.host.context(rc);
                ctx.status.lock().messages_in += 1;
                ctx.audit(crossing).await;
            }
            Err(why) => {
                let desk = header(wire::DESK).unwrap_or("?").to_owned();
                ctx.audit(refused_in(g, desk, subject, size, &why)).await;
            }
        }
        return;
    }

    let m = match wire::inbound(&g.name, &ctx.desk, msg.subject.as_str(), header, size, max) {
        Ok(Verdict::Own) => {
            ctx.status.lock().own += 1;
            return;
        }
        Ok(Verdict::Deliver(m)) => m,
        Err(why) => {
            let desk = header(wire::DESK).unwrap_or("?").to_owned();
            ctx.audit(refused_in(g, desk, msg.subject.as_str(), size, &why)).await;
            return;
        }
    };
    let shared = Topic::parse(&m.topic).is_ok_and(|t| patterns.iter().any(|p| p.matches(&t)));
    if !shared {
        let why = format!("topic {} is not shared into this desk by group {}", m.topic, g.name);
        ctx.audit(refused_in(g, m.desk, &m.topic, size, &why)).await;
        return;
    }
    if !seen.first(&m.id) {
        ctx.status.lock().duplicates += 1;
        return;
    }
    let mut opts = MessageOptions::default();
    if m.durable {
        opts = opts.durable();
    }
    if let Err(e) = local.publish_async(&m.topic, msg.payload.to_vec(), opts).await {
        ctx.audit(refused_in(g, m.desk, &m.topic, size, &format!("the local bus refused it: {e}"))).await;
        return;
    }
    ctx.status.lock().messages_in += 1;
    ctx.audit(Crossing {
        way: Way::In,
        group: g.name.clone(),
        desk: m.desk,
        user: m.user,
        app: m.app,
        topic: m.topic,
        bytes: size,
        reason: None,
    })
    .await;
}

/// Keeps the status's lag current while nothing arrives (a stalled read shows as lag): what the
/// cluster holds for this desk that it has not read, asked every 30 s (each message read
/// updates it too), so a thousand desks do not each ask the cluster every few seconds.
async fn lag(mut consumer: consumer::PullConsumer, group: String, ctx: Ctx) {
    loop {
        if let Ok(info) = consumer.info().await {
            ctx.status.lock().pending.insert(group.clone(), info.num_pending);
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

/// A refusal of something another desk sent.
fn refused_in(g: &LinkGroup, desk: String, topic: &str, bytes: usize, why: &str) -> Crossing {
    Crossing {
        way: Way::Refused,
        group: g.name.clone(),
        desk,
        user: String::new(),
        app: None,
        topic: topic.to_owned(),
        bytes,
        reason: Some(format!("in: {why}")),
    }
}
