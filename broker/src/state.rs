//! The broker's state behind its one lock, and every operation on it.
//!
//! Every operation that changes routing or queues runs under the lock, which is what makes
//! publishing atomic (all subscribers or, under backpressure, none), replay gap-free, and
//! delivery FIFO per publisher per topic.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use event_listener::Event;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::breaker::CircuitBreaker;
use crate::clock::{Clock, Timestamp};
use crate::config::{BrokerConfig, SubscribeOptions};
use crate::dead_letter::{DeadLetterReason, DeadLetters, Recipient};
use crate::envelope::{Delivery, Envelope, MessageOptions, Payload, Sender};
use crate::error::{Error, Result, echo};
use crate::history::History;
use crate::ids::{AppId, CallId, ClientId, MessageId, SubscriptionId, Target, TraceId};
use crate::journal::{CommitAck, Journal};
use crate::metrics::{Families, Latency, LatencySnapshot, SAMPLE_EVERY, Sampled};
use crate::router::Router;
use crate::service_event::{ProviderEvent, ServiceEvent};
use crate::stats::{BrokerStats, SubscriptionStats};
use crate::topic::{Pattern, Topic, validate_topic};
use protocol::QueuePolicy;

#[derive(Debug)]
pub(crate) struct SubEntry {
    pub(crate) client: ClientId,
    pub(crate) pattern: Pattern,
    pub(crate) opts: SubscribeOptions,
    pub(crate) tx: flume::Sender<Delivery>,
    /// The broker's own receiving end: drop-oldest pops from it.
    pub(crate) rx: flume::Receiver<Delivery>,
    pub(crate) space: Arc<Event>,
    pub(crate) stats: SubscriptionStats,
}

#[derive(Debug)]
pub(crate) struct ClientEntry {
    pub(crate) app: Option<AppId>,
    pub(crate) subs: Vec<SubscriptionId>,
    pub(crate) inbox: flume::Sender<Delivery>,
    pub(crate) services: Vec<Arc<str>>,
}

#[derive(Debug, Default)]
pub(crate) struct AppEntry {
    /// Running instances, longest-running first.
    pub(crate) instances: Vec<ClientId>,
    pub(crate) offline: VecDeque<Arc<Envelope>>,
}

#[derive(Debug)]
pub(crate) struct ServiceEntry {
    pub(crate) provider: ClientId,
    /// Actions offered; empty means any.
    pub(crate) actions: FxHashSet<Box<str>>,
    pub(crate) tx: flume::Sender<ProviderEvent>,
    /// Connected service clients and where to tell them the provider left.
    pub(crate) clients: FxHashMap<u64, (ClientId, flume::Sender<ServiceEvent>)>,
}

#[derive(Debug)]
pub(crate) struct CallEntry {
    pub(crate) service: Arc<str>,
    pub(crate) caller: ClientId,
    pub(crate) provider: ClientId,
    pub(crate) reply: flume::Sender<Result<Payload>>,
    pub(crate) deadline: Timestamp,
    pub(crate) timeout_ms: u64,
}

/// Why a publish did not go out.
#[derive(Debug)]
pub(crate) enum PublishError {
    Failed(Error),
    /// A backpressure subscriber is full; `space` fires when it takes a message.
    Blocked {
        subscription: SubscriptionId,
        space: Arc<Event>,
    },
}

impl From<Error> for PublishError {
    fn from(e: Error) -> Self {
        PublishError::Failed(e)
    }
}

/// What a publish did.
#[derive(Debug)]
pub struct Published {
    /// The message's id.
    pub id: MessageId,
    /// Its broker sequence number.
    pub seq: u64,
    /// Subscribers that received it.
    pub delivered: usize,
    /// Subscribers that dropped an older message to take it.
    pub dropped_oldest: usize,
    /// Subscribers whose copy went to the dead-letter queue.
    pub dead_lettered: usize,
    /// For a durable message, completes when the journal has committed it.
    pub commit: Option<CommitAck>,
}

/// What a directed send did.
#[derive(Debug)]
pub struct Sent {
    /// Where it went.
    pub outcome: SendOutcome,
    /// For a durable message, completes when the journal has committed it.
    pub commit: Option<CommitAck>,
}

/// Where a directed send went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Into this client's inbox.
    Delivered(ClientId),
    /// Into the offline queue of an app that is not running.
    Queued,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: u64,
    pub(crate) recorded: u64,
    pub(crate) delivered: u64,
    pub(crate) rejected_topic: u64,
    pub(crate) rejected_payload: u64,
    pub(crate) backpressured: u64,
    pub(crate) dropped_oldest: u64,
    pub(crate) expired: u64,
    pub(crate) sent: u64,
    pub(crate) offline_queued: u64,
    pub(crate) calls: u64,
    pub(crate) calls_timed_out: u64,
    pub(crate) late_responses: u64,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) cfg: BrokerConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) router: Router<SubscriptionId>,
    pub(crate) subs: FxHashMap<SubscriptionId, SubEntry>,
    pub(crate) backpressure_subs: usize,
    pub(crate) clients: FxHashMap<ClientId, ClientEntry>,
    pub(crate) apps: FxHashMap<AppId, AppEntry>,
    pub(crate) history: History,
    pub(crate) dead: DeadLetters,
    pub(crate) services: FxHashMap<Arc<str>, ServiceEntry>,
    pub(crate) calls: FxHashMap<CallId, CallEntry>,
    pub(crate) breakers: FxHashMap<Target, CircuitBreaker>,
    pub(crate) journal: Option<Arc<dyn Journal>>,
    pub(crate) counters: Counters,
    /// Traffic per topic family (when metrics are on).
    pub(crate) families: Families,
    /// Sampled publish times (when metrics are on).
    pub(crate) routing: Latency,
    /// Told when something with a deadline is added (a call, an offline message): whoever
    /// sweeps need not look while nothing waits ([`crate::Broker::sweep`]).
    pub(crate) deadlines: Arc<Event>,
    next_id: u64,
    next_seq: u64,
}

impl State {
    pub(crate) fn new(mut cfg: BrokerConfig, clock: Arc<dyn Clock>) -> Self {
        // An app's whole offline queue must fit the inbox it is drained into on connect.
        cfg.inbox_capacity = cfg.inbox_capacity.max(cfg.offline_capacity);
        Self {
            router: Router::new(cfg.route_cache_capacity),
            history: History::new(&cfg),
            dead: DeadLetters::new(cfg.dead_letter_capacity),
            cfg,
            clock,
            subs: FxHashMap::default(),
            backpressure_subs: 0,
            clients: FxHashMap::default(),
            apps: FxHashMap::default(),
            services: FxHashMap::default(),
            calls: FxHashMap::default(),
            breakers: FxHashMap::default(),
            journal: None,
            counters: Counters::default(),
            families: Families::default(),
            routing: Latency::default(),
            deadlines: Arc::new(Event::new()),
            next_id: 1,
            next_seq: 1,
        }
    }

    /// A fresh number for clients, subscriptions, calls and service connections.
    pub(crate) fn fresh(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    // ---- clients ----

    pub(crate) fn connect(&mut self, app: Option<AppId>) -> (ClientId, flume::Receiver<Delivery>) {
        let id = ClientId(self.fresh());
        let (inbox, rx) = flume::bounded(self.cfg.inbox_capacity.max(1));
        self.clients.insert(id, ClientEntry { app: app.clone(), subs: Vec::new(), inbox, services: Vec::new() });
        if let Some(app) = app {
            let entry = self.apps.entry(app).or_default();
            entry.instances.push(id);
            let waiting: Vec<_> = entry.offline.drain(..).collect();
            // Delivered in the order they were sent, before anything sent from now on.
            for env in waiting {
                self.deliver_direct(id, env, true);
            }
        }
        (id, rx)
    }

    pub(crate) fn disconnect(&mut self, id: ClientId) {
        let Some(client) = self.clients.remove(&id) else { return };
        for sid in client.subs {
            self.remove_sub(sid);
        }
        for name in client.services {
            self.remove_service(&name);
        }
        // Calls this client was waiting for: nobody will read the answers.
        self.calls.retain(|_, c| c.caller != id);
        for svc in self.services.values_mut() {
            let before = svc.clients.len();
            svc.clients.retain(|_, (c, _)| *c != id);
            if svc.clients.len() != before {
                let _ = svc.tx.try_send(ProviderEvent::Disconnected(id));
            }
        }
        self.breakers.remove(&Target::Client(id));
        if let Some(app) = client.app
            && let Some(entry) = self.apps.get_mut(&app)
        {
            entry.instances.retain(|c| *c != id);
        }
    }

    pub(crate) fn register_app(&mut self, app: AppId) {
        self.apps.entry(app).or_default();
    }

    // ---- subscriptions ----

    pub(crate) fn subscribe(
        &mut self,
        client: ClientId,
        pattern: &str,
        opts: SubscribeOptions,
    ) -> Result<(SubscriptionId, Pattern, flume::Receiver<Delivery>, Arc<Event>)> {
        let pattern = Pattern::parse(pattern).map_err(|reason| {
            self.counters.rejected_topic += 1;
            Error::InvalidPattern { pattern: echo(pattern), reason }
        })?;
        let held = self.clients.get(&client).ok_or(Error::Disconnected)?.subs.len();
        if held >= self.cfg.max_subscriptions_per_client {
            return Err(Error::LimitExceeded {
                what: "subscriptions per client".into(),
                limit: self.cfg.max_subscriptions_per_client,
            });
        }
        let capacity = opts.capacity;
        if capacity == 0 || capacity > self.cfg.max_queue_capacity {
            return Err(Error::InvalidOption {
                reason: format!("capacity {capacity} is outside 1..={}", self.cfg.max_queue_capacity),
            });
        }
        let id = SubscriptionId(self.fresh());
        let (tx, rx) = flume::bounded(capacity);
        let space = Arc::new(Event::new());
        let mut entry = SubEntry {
            client,
            pattern: pattern.clone(),
            opts,
            tx,
            rx: rx.clone(),
            space: Arc::clone(&space),
            stats: SubscriptionStats::default(),
        };
        // Replay under the same lock as the registration: no gap and no duplicate between
        // history and live traffic.
        let backlog = self.history.replay(&pattern, opts.replay, self.clock.now());
        let skip = backlog.len().saturating_sub(capacity);
        entry.stats.dropped_oldest += skip as u64;
        for env in backlog.into_iter().skip(skip) {
            if entry.tx.try_send(Delivery { envelope: env, replayed: true }).is_ok() {
                entry.stats.replayed += 1;
            }
        }
        if opts.policy == QueuePolicy::Backpressure {
            self.backpressure_subs += 1;
        }
        self.router.insert(&pattern, id);
        self.subs.insert(id, entry);
        if let Some(c) = self.clients.get_mut(&client) {
            c.subs.push(id);
        }
        Ok((id, pattern, rx, space))
    }

    pub(crate) fn remove_sub(&mut self, id: SubscriptionId) -> bool {
        let Some(entry) = self.subs.remove(&id) else { return false };
        self.router.remove(&entry.pattern, id);
        if entry.opts.policy == QueuePolicy::Backpressure {
            self.backpressure_subs -= 1;
        }
        if let Some(c) = self.clients.get_mut(&entry.client) {
            c.subs.retain(|s| *s != id);
        }
        // Wake publishers waiting for room here: the subscriber is gone.
        entry.space.notify(usize::MAX);
        true
    }

    // ---- publishing ----

    fn check_input(&mut self, topic: &str, payload: &Payload) -> Result<Topic> {
        if let Err(reason) = validate_topic(topic) {
            self.counters.rejected_topic += 1;
            return Err(Error::InvalidTopic { topic: echo(topic), reason });
        }
        if payload.len() > self.cfg.max_payload_bytes {
            self.counters.rejected_payload += 1;
            return Err(Error::PayloadTooLarge { size: payload.len(), limit: self.cfg.max_payload_bytes });
        }
        Ok(self.history.intern(topic).unwrap_or_else(|| Topic::from_validated(topic)))
    }

    fn envelope(
        &mut self,
        sender: Sender,
        topic: Topic,
        payload: Payload,
        opts: MessageOptions,
        target: Option<Target>,
        sampled: Option<Instant>,
    ) -> Arc<Envelope> {
        let now = self.now();
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = MessageId((u128::from(self.cfg.epoch) << 64) | u128::from(seq));
        Arc::new(Envelope {
            id,
            seq,
            topic,
            payload,
            sender,
            timestamp: now,
            trace_id: opts.trace_id.or(opts.trace.map(|t| TraceId(t.trace_id))).unwrap_or(TraceId(id.0)),
            durable: opts.durable,
            expires_at: opts.ttl.map(|ttl| now.plus(ttl)),
            target,
            encoded: Default::default(),
            sampled: Sampled(sampled),
            trace: opts.trace,
        })
    }

    fn journal(&mut self, env: &Arc<Envelope>) -> Result<Option<CommitAck>> {
        if !env.durable {
            return Ok(None);
        }
        match &self.journal {
            Some(j) => j.append(env).map(Some),
            None => Err(Error::NoJournal),
        }
    }

    /// Journals a record of the shell's under a reserved topic; nothing else sees it.
    pub(crate) fn record(&mut self, topic: Topic, payload: Payload, trace: Option<TraceId>) -> Result<CommitAck> {
        if payload.len() > self.cfg.max_payload_bytes {
            return Err(Error::PayloadTooLarge { size: payload.len(), limit: self.cfg.max_payload_bytes });
        }
        let opts = MessageOptions { durable: true, trace_id: trace, ..MessageOptions::default() };
        let env = self.envelope(Sender { client: ClientId(0), app: None }, topic, payload, opts, None, None);
        let commit = self.journal.as_ref().ok_or(Error::NoJournal)?.append_lazy(&env)?;
        self.counters.recorded += 1;
        Ok(commit)
    }

    pub(crate) fn publish(
        &mut self,
        sender: Sender,
        topic: &str,
        payload: Payload,
        opts: MessageOptions,
    ) -> Result<Published, PublishError> {
        // One publish in SAMPLE_EVERY is timed, here and on to its delivery.
        let started = (self.cfg.metrics && self.next_seq.is_multiple_of(SAMPLE_EVERY)).then(Instant::now);
        let topic = self.check_input(topic, &payload)?;
        let matches = self.router.matches(&topic);
        if self.backpressure_subs > 0 {
            for sid in matches.iter() {
                if let Some(s) = self.subs.get_mut(sid)
                    && s.opts.policy == QueuePolicy::Backpressure
                    && s.tx.is_full()
                {
                    s.stats.backpressured += 1;
                    self.counters.backpressured += 1;
                    return Err(PublishError::Blocked { subscription: *sid, space: Arc::clone(&s.space) });
                }
            }
        }
        let env = self.envelope(sender, topic, payload, opts, None, started);
        let commit = self.journal(&env)?;
        self.counters.published += 1;
        self.history.record(&env);
        let mut report =
            Published { id: env.id, seq: env.seq, delivered: 0, dropped_oldest: 0, dead_lettered: 0, commit };
        let now = env.timestamp;
        for sid in matches.iter() {
            let Some(s) = self.subs.get_mut(sid) else { continue };
            let mut delivery = Delivery { envelope: Arc::clone(&env), replayed: false };
            if s.opts.policy == QueuePolicy::DropOldest {
                match s.tx.try_send(delivery) {
                    Err(flume::TrySendError::Full(d)) => {
                        // Only this thread adds under the lock, so one pop makes room (unless
                        // the subscriber just took one itself, which made room too).
                        if s.rx.try_recv().is_ok() {
                            s.stats.dropped_oldest += 1;
                            report.dropped_oldest += 1;
                        }
                        delivery = d;
                    }
                    Ok(()) => {
                        s.stats.delivered += 1;
                        report.delivered += 1;
                        continue;
                    }
                    Err(flume::TrySendError::Disconnected(_)) => continue,
                }
            }
            match s.tx.try_send(delivery) {
                Ok(()) => {
                    s.stats.delivered += 1;
                    report.delivered += 1;
                }
                Err(flume::TrySendError::Full(d)) => {
                    delivery = d;
                    s.stats.dead_lettered += 1;
                    report.dead_lettered += 1;
                    self.dead.push(
                        delivery.envelope,
                        DeadLetterReason::QueueFull,
                        Recipient::Subscription { id: *sid },
                        now,
                    );
                }
                // The handle is being dropped; its unsubscribe is waiting for the lock.
                Err(flume::TrySendError::Disconnected(_)) => {}
            }
        }
        self.counters.delivered += report.delivered as u64;
        self.counters.dropped_oldest += report.dropped_oldest as u64;
        if self.cfg.metrics {
            let family = self.families.of(env.topic.as_str());
            family.published += 1;
            family.delivered += report.delivered as u64;
            family.dropped += report.dropped_oldest as u64;
            family.dead_lettered += report.dead_lettered as u64;
        }
        if let Some(started) = started {
            self.routing.observe(started.elapsed());
        }
        Ok(report)
    }

    /// Counts a message a subscriber found expired and dead-letters it.
    pub(crate) fn expired_in_queue(&mut self, sid: SubscriptionId, env: Arc<Envelope>) {
        self.counters.expired += 1;
        if let Some(s) = self.subs.get_mut(&sid) {
            s.stats.expired += 1;
        }
        let now = self.now();
        self.dead.push(env, DeadLetterReason::Expired, Recipient::Subscription { id: sid }, now);
    }

    /// Counts a directed message found expired in an inbox and dead-letters it.
    pub(crate) fn expired_in_inbox(&mut self, target: Target, env: Arc<Envelope>) {
        self.counters.expired += 1;
        let now = self.now();
        self.dead.push(env, DeadLetterReason::Expired, Recipient::Target { target }, now);
    }

    pub(crate) fn reject(&mut self, recipient: Recipient, env: Arc<Envelope>, detail: String) {
        let now = self.now();
        self.dead.push(env, DeadLetterReason::Rejected { detail }, recipient, now);
    }

    // ---- directed sends ----

    pub(crate) fn prepare_send(
        &mut self,
        sender: Sender,
        target: &Target,
        topic: &str,
        payload: Payload,
        opts: MessageOptions,
    ) -> Result<(Arc<Envelope>, Option<CommitAck>)> {
        let topic = self.check_input(topic, &payload)?;
        let env = self.envelope(sender, topic, payload, opts, Some(target.clone()), None);
        let commit = self.journal(&env)?;
        Ok((env, commit))
    }

    /// One attempt at a directed send. `last` says whether a full inbox is final, in which case
    /// the message is dead-lettered; no route is always final and dead-lettered, except for a
    /// `requeue` of a dead letter, which stays where it is.
    pub(crate) fn try_send(
        &mut self,
        target: &Target,
        env: &Arc<Envelope>,
        last: bool,
        requeue: bool,
    ) -> Result<SendOutcome> {
        let now = self.now();
        if env.is_expired(now) {
            self.counters.expired += 1;
            self.dead.push(
                Arc::clone(env),
                DeadLetterReason::Expired,
                Recipient::Target { target: target.clone() },
                now,
            );
            return Err(Error::Expired);
        }
        let breaker_policy = self.cfg.breaker;
        let breaker = self.breakers.entry(target.clone()).or_insert_with(|| CircuitBreaker::new(breaker_policy));
        if let Err(wait) = breaker.admit(now) {
            let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            return Err(Error::CircuitOpen { target: target.clone(), retry_in_ms });
        }
        let client = match target {
            Target::Client(c) if self.clients.contains_key(c) => Some(*c),
            Target::Client(_) => None,
            Target::App(app) => match self.apps.get_mut(app) {
                Some(entry) => match entry.instances.first() {
                    Some(c) => Some(*c),
                    None => {
                        if entry.offline.len() >= self.cfg.offline_capacity {
                            return self.send_failed(target, env, Error::QueueFull { target: target.clone() }, last);
                        }
                        let mut queued = (**env).clone();
                        if queued.expires_at.is_none() {
                            queued.expires_at = Some(now.plus(self.cfg.offline_ttl));
                        }
                        entry.offline.push_back(Arc::new(queued));
                        self.deadlines.notify(1);
                        self.counters.offline_queued += 1;
                        self.breaker_ok(target);
                        return Ok(SendOutcome::Queued);
                    }
                },
                None => None,
            },
        };
        let Some(client) = client else {
            // Not a transient failure: no retry, no breaker count. A re-queue leaves the letter
            // where it is instead of adding a copy.
            self.breaker_ok(target);
            if requeue {
                return Err(Error::NoRoute { target: target.clone() });
            }
            let now = self.now();
            self.dead.push(
                Arc::clone(env),
                DeadLetterReason::NoRoute,
                Recipient::Target { target: target.clone() },
                now,
            );
            return Err(Error::NoRoute { target: target.clone() });
        };
        let inbox = self.clients.get(&client).map(|c| c.inbox.clone());
        match inbox.map(|tx| tx.try_send(Delivery { envelope: Arc::clone(env), replayed: false })) {
            Some(Ok(())) => {
                self.counters.sent += 1;
                self.breaker_ok(target);
                Ok(SendOutcome::Delivered(client))
            }
            _ => self.send_failed(target, env, Error::QueueFull { target: target.clone() }, last),
        }
    }

    fn breaker_ok(&mut self, target: &Target) {
        if let Some(b) = self.breakers.get_mut(target) {
            b.success();
            if b.is_idle() {
                self.breakers.remove(target);
            }
        }
    }

    fn send_failed(&mut self, target: &Target, env: &Arc<Envelope>, err: Error, last: bool) -> Result<SendOutcome> {
        let now = self.now();
        if let Some(b) = self.breakers.get_mut(target) {
            b.failure(now);
        }
        if last {
            self.dead.push(
                Arc::clone(env),
                DeadLetterReason::QueueFull,
                Recipient::Target { target: target.clone() },
                now,
            );
        }
        Err(err)
    }

    /// Dead-letters a directed send that will not be tried again.
    pub(crate) fn give_up_send(&mut self, target: &Target, env: &Arc<Envelope>) {
        let now = self.now();
        self.dead.push(Arc::clone(env), DeadLetterReason::QueueFull, Recipient::Target { target: target.clone() }, now);
    }

    /// Takes back the directed messages a disconnecting client never read: an app's go back to
    /// the front of its offline queue (in order) when no other instance runs, the rest are
    /// dead-lettered, so none vanish.
    pub(crate) fn reclaim_inbox(&mut self, client: ClientId, unread: Vec<Arc<Envelope>>) {
        let now = self.now();
        let mut back_to_app: Vec<Arc<Envelope>> = Vec::new();
        for env in unread {
            let target = env.target.clone().unwrap_or(Target::Client(client));
            match &target {
                Target::App(app) if self.apps.get(app).is_some_and(|a| a.instances.is_empty()) => {
                    back_to_app.push(env);
                }
                _ => self.dead.push(env, DeadLetterReason::NoRoute, Recipient::Target { target }, now),
            }
        }
        for env in back_to_app.into_iter().rev() {
            if let Some(Target::App(app)) = env.target.clone()
                && let Some(entry) = self.apps.get_mut(&app)
            {
                entry.offline.push_front(env);
                self.deadlines.notify(1);
            }
        }
    }

    /// Hands a message straight to a client's inbox (offline drain, re-queue).
    fn deliver_direct(&mut self, client: ClientId, env: Arc<Envelope>, from_offline: bool) {
        let now = self.now();
        let target = env.target.clone().unwrap_or(Target::Client(client));
        if env.is_expired(now) {
            self.counters.expired += 1;
            self.dead.push(env, DeadLetterReason::Expired, Recipient::Target { target }, now);
            return;
        }
        let Some(c) = self.clients.get(&client) else { return };
        match c.inbox.try_send(Delivery { envelope: env, replayed: false }) {
            Ok(()) => self.counters.sent += u64::from(from_offline),
            Err(e) => {
                let env = e.into_inner().envelope;
                self.dead.push(env, DeadLetterReason::QueueFull, Recipient::Target { target }, now);
            }
        }
    }

    // ---- dead letters ----

    pub(crate) fn requeue(&mut self, id: crate::ids::DeadLetterId) -> Result<()> {
        let letter = self.dead.take(id).ok_or(Error::NoSuchDeadLetter { id })?;
        // An operator re-queues on purpose: the message gets a fresh chance, not its old TTL.
        let mut env = (*letter.envelope).clone();
        env.expires_at = None;
        let env = Arc::new(env);
        let outcome = match &letter.recipient {
            Recipient::Subscription { id: sid } => match self.subs.get_mut(sid) {
                Some(s) => match s.tx.try_send(Delivery { envelope: env, replayed: false }) {
                    Ok(()) => {
                        s.stats.delivered += 1;
                        Ok(())
                    }
                    Err(_) => Err(Error::QueueFull { target: Target::Client(s.client) }),
                },
                None => Err(Error::Rejected { reason: format!("subscription {sid} no longer exists") }),
            },
            Recipient::Target { target } => {
                let target = target.clone();
                // A single attempt that does not dead-letter again on failure: the letter is
                // restored instead, so it is never duplicated.
                self.try_send(&target, &env, false, true).map(|_| ())
            }
        };
        if outcome.is_err() {
            self.dead.restore(letter);
        }
        outcome
    }

    // ---- services ----

    pub(crate) fn remove_service(&mut self, name: &str) {
        let Some(svc) = self.services.remove(name) else { return };
        if let Some(c) = self.clients.get_mut(&svc.provider) {
            c.services.retain(|s| &**s != name);
        }
        let failed: Vec<CallId> = self.calls.iter().filter(|(_, c)| &*c.service == name).map(|(id, _)| *id).collect();
        for id in failed {
            if let Some(call) = self.calls.remove(&id) {
                let _ = call.reply.try_send(Err(Error::ProviderDisconnected { service: name.to_owned() }));
            }
        }
        for (_, (_, events)) in svc.clients {
            let _ = events.try_send(ServiceEvent::ProviderDisconnected);
        }
    }

    // ---- housekeeping ----

    /// Expires offline messages and overdue calls. The shell calls this periodically.
    /// Expires what is due; says whether anything still waits on a deadline.
    pub(crate) fn sweep(&mut self) -> bool {
        let now = self.now();
        let mut expired = Vec::new();
        for (app, entry) in &mut self.apps {
            entry.offline.retain(|env| {
                if env.is_expired(now) {
                    expired.push((app.clone(), Arc::clone(env)));
                    false
                } else {
                    true
                }
            });
        }
        for (app, env) in expired {
            self.counters.expired += 1;
            self.dead.push(env, DeadLetterReason::Expired, Recipient::Target { target: Target::App(app) }, now);
        }
        let overdue: Vec<CallId> = self.calls.iter().filter(|(_, c)| c.deadline <= now).map(|(id, _)| *id).collect();
        for id in overdue {
            if let Some(call) = self.calls.remove(&id) {
                self.counters.calls_timed_out += 1;
                let _ = call.reply.try_send(Err(Error::Timeout { after_ms: call.timeout_ms }));
            }
        }
        !self.calls.is_empty() || self.apps.values().any(|a| !a.offline.is_empty())
    }

    pub(crate) fn stats(&self) -> BrokerStats {
        let c = &self.counters;
        BrokerStats {
            clients: self.clients.len(),
            subscriptions: self.subs.len(),
            published: c.published,
            recorded: c.recorded,
            delivered: c.delivered,
            rejected_topic: c.rejected_topic,
            rejected_payload: c.rejected_payload,
            backpressured: c.backpressured,
            dropped_oldest: c.dropped_oldest,
            dead_lettered: self.dead.total,
            dead_letters_held: self.dead.len(),
            dead_letters_evicted: self.dead.evicted,
            expired: c.expired,
            sent: c.sent,
            offline_queued: c.offline_queued,
            offline_waiting: self.apps.values().map(|a| a.offline.len()).sum(),
            services: self.services.len(),
            calls: c.calls,
            calls_in_flight: self.calls.len(),
            calls_timed_out: c.calls_timed_out,
            late_responses: c.late_responses,
            history_topics: self.history.topic_count(),
            history_bytes: self.history.bytes(),
            history_topics_evicted: self.history.evicted_topics,
            open_breakers: self.breakers.len(),
            router: self.router.stats(),
            families: self.families.list(),
            routing: self.routing.snapshot(),
            delivery: LatencySnapshot::default(),
        }
    }
}
