//! The broker and the handles clients hold: [`Client`], [`Subscription`], [`Inbox`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};
use parking_lot::Mutex;

use crate::breaker::Jitter;
use crate::clock::{Clock, SystemClock, deadline_after};
use crate::config::{BrokerConfig, SubscribeOptions};
use crate::dead_letter::{DeadLetter, Recipient};
use crate::envelope::{Delivery, Envelope, MessageOptions, Payload, Sender};
use crate::error::{Error, Result};
use crate::ids::{AppId, ClientId, DeadLetterId, SubscriptionId, Target, TraceId};
use crate::journal::{CommitAck, Journal};
use crate::service::{self, ServiceClient, ServiceProvider};
use crate::shared::Shared;
use crate::state::{PublishError, Published, Sent, State};
use crate::stats::{BrokerStats, SubscriptionStats};
use crate::topic::{Pattern, Topic};
use protocol::QueuePolicy;

/// The message broker. Cheap to clone; every clone is the same broker.
#[derive(Debug, Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new(BrokerConfig::default())
    }
}

impl Broker {
    /// A broker on the system clock.
    pub fn new(cfg: BrokerConfig) -> Self {
        Self::with_clock(cfg, Arc::new(SystemClock))
    }

    /// A broker on the given clock.
    pub fn with_clock(cfg: BrokerConfig, clock: Arc<dyn Clock>) -> Self {
        let state = State::new(cfg, clock);
        let deadlines = Arc::clone(&state.deadlines);
        Self { shared: Arc::new(Shared { state: Mutex::new(state), delivery: Arc::default(), deadlines }) }
    }

    /// Attaches the journal that durable messages go to.
    pub fn attach_journal(&self, journal: Arc<dyn Journal>) {
        self.shared.state.lock().journal = Some(journal);
    }

    /// Connects a client. Its identity (`app`) is fixed for the life of the handle; the broker
    /// stamps it on everything the client sends. Directed sends waiting for `app` are delivered
    /// to the new client's inbox first, in order.
    pub fn connect(&self, app: Option<AppId>) -> Client {
        let (id, inbox) = self.shared.state.lock().connect(app.clone());
        Client {
            id,
            app,
            shared: Arc::clone(&self.shared),
            inbox: Inbox { rx: inbox, shared: Arc::clone(&self.shared), client: id, clock: self.clock() },
            jitter: std::sync::Mutex::new(Jitter::new(id.0.wrapping_mul(0x9E37_79B9))),
        }
    }

    /// Declares an app that exists but may not be running, so directed sends to it wait in its
    /// offline queue instead of failing with no route.
    pub fn register_app(&self, app: AppId) {
        self.shared.state.lock().register_app(app);
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.shared.state.lock().clock)
    }

    /// Counters and sizes.
    pub fn stats(&self) -> BrokerStats {
        let mut stats = self.shared.state.lock().stats();
        stats.delivery = self.shared.delivery.snapshot();
        stats
    }

    /// Where connections count how long sampled messages took from publish to their app
    /// ([`crate::metrics::Sampled`]).
    pub fn delivery_latency(&self) -> Arc<crate::metrics::Latency> {
        Arc::clone(&self.shared.delivery)
    }

    /// The counters of one subscription.
    pub fn subscription_stats(&self, id: SubscriptionId) -> Option<SubscriptionStats> {
        self.shared.state.lock().subs.get(&id).map(|s| s.stats)
    }

    /// The dead letters held, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.state.lock().dead.list()
    }

    /// Delivers a dead letter again to whoever should have had it. On failure it stays in the
    /// queue and the error says why.
    pub fn requeue_dead_letter(&self, id: DeadLetterId) -> Result<()> {
        self.shared.state.lock().requeue(id)
    }

    /// The history of a topic, oldest first.
    pub fn history(&self, topic: &str) -> Vec<Arc<Envelope>> {
        self.shared.state.lock().history.of_topic(topic)
    }

    /// The last message published to a topic.
    pub fn last_value(&self, topic: &str) -> Option<Arc<Envelope>> {
        self.shared.state.lock().history.last(topic)
    }

    /// Journals one of the shell's own records under a reserved topic (`$...`): stamped and
    /// numbered like a message, but never routed, kept in history or replayed to a client, so
    /// no app sees it whatever its grants. Records are appended in the order of the calls; the
    /// ack completes after the commit, which may wait briefly to share it with other records
    /// ([`Journal::append_lazy`]; [`Broker::flush_journal`] commits at once).
    pub fn record(&self, topic: &str, payload: impl Into<Payload>, trace: Option<TraceId>) -> Result<CommitAck> {
        let topic = Topic::reserved(topic)
            .map_err(|reason| Error::InvalidTopic { topic: crate::error::echo(topic), reason })?;
        self.shared.state.lock().record(topic, payload.into(), trace)
    }

    /// Commits what the journal holds (records linger briefly for company); call it before
    /// exiting.
    pub fn flush_journal(&self, timeout: Duration) -> Result<()> {
        let journal = self.shared.state.lock().journal.clone();
        journal.map_or(Ok(()), |j| j.flush(timeout))
    }

    /// Expires offline messages and overdue service calls, and says whether anything still
    /// waits on a deadline: call it every few hundred ms while it says so, and once
    /// [`Broker::deadline_added`] fires after it said not.
    pub fn sweep(&self) -> bool {
        self.shared.state.lock().sweep()
    }

    /// Fires when something with a deadline (a service call, an offline message) is added.
    /// Listen before the [`Broker::sweep`] that says nothing waits, and nothing added in
    /// between is missed.
    pub fn deadline_added(&self) -> event_listener::EventListener {
        self.shared.deadlines.listen()
    }
}

/// The outcome of one publish attempt under backpressure.
enum Attempt {
    Done(Published),
    /// Full: wait on the listener, then try again.
    Wait(SubscriptionId, event_listener::EventListener),
    /// Room appeared while checking: try again at once.
    Retry,
}

/// One connection to the broker. Dropping it removes everything it added: subscriptions,
/// services, calls in flight.
#[derive(Debug)]
pub struct Client {
    id: ClientId,
    app: Option<AppId>,
    shared: Arc<Shared>,
    inbox: Inbox,
    jitter: std::sync::Mutex<Jitter>,
}

impl Client {
    /// This connection's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// This connection's app.
    pub fn app(&self) -> Option<&AppId> {
        self.app.as_ref()
    }

    fn sender(&self) -> Sender {
        Sender { client: self.id, app: self.app.clone() }
    }

    /// Publishes to every matching subscriber. If a subscriber with the backpressure policy is
    /// full, nothing is delivered and the answer is [`Error::Backpressure`]: wait and publish
    /// again, or use [`Client::publish_blocking`].
    pub fn publish(&self, topic: &str, payload: impl Into<Payload>, opts: MessageOptions) -> Result<Published> {
        let mut st = self.shared.state.lock();
        if !st.clients.contains_key(&self.id) {
            return Err(Error::Disconnected);
        }
        st.publish(self.sender(), topic, payload.into(), opts).map_err(|e| match e {
            PublishError::Failed(e) => e,
            PublishError::Blocked { subscription, .. } => Error::Backpressure { subscription },
        })
    }

    /// One publish attempt; on backpressure, a listener registered before the full queue was
    /// checked again, so no wake-up is lost between the check and the wait.
    fn attempt(&self, topic: &str, payload: &Payload, opts: MessageOptions) -> Result<Attempt> {
        let mut st = self.shared.state.lock();
        if !st.clients.contains_key(&self.id) {
            return Err(Error::Disconnected);
        }
        match st.publish(self.sender(), topic, payload.clone(), opts) {
            Ok(p) => Ok(Attempt::Done(p)),
            Err(PublishError::Failed(e)) => Err(e),
            Err(PublishError::Blocked { subscription, space }) => {
                let listener = space.listen();
                if st.subs.get(&subscription).is_some_and(|s| s.tx.is_full()) {
                    Ok(Attempt::Wait(subscription, listener))
                } else {
                    Ok(Attempt::Retry)
                }
            }
        }
    }

    /// Publishes, waiting up to `timeout` for backpressure subscribers to make room.
    pub fn publish_blocking(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
        opts: MessageOptions,
        timeout: Duration,
    ) -> Result<Published> {
        let payload = payload.into();
        let deadline = deadline_after(timeout);
        loop {
            match self.attempt(topic, &payload, opts)? {
                Attempt::Done(p) => return Ok(p),
                Attempt::Retry => {}
                Attempt::Wait(subscription, listener) => {
                    if listener.wait_deadline(deadline).is_none() && Instant::now() >= deadline {
                        return Err(Error::Backpressure { subscription });
                    }
                }
            }
        }
    }

    /// Publishes, waiting without blocking a thread for backpressure subscribers to make room.
    /// Wrap it in the runtime's timeout.
    pub async fn publish_async(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
        opts: MessageOptions,
    ) -> Result<Published> {
        let payload = payload.into();
        loop {
            match self.attempt(topic, &payload, opts)? {
                Attempt::Done(p) => return Ok(p),
                Attempt::Retry => {}
                Attempt::Wait(_, listener) => listener.await,
            }
        }
    }

    /// Subscribes to a pattern. The handle receives the messages; dropping it unsubscribes.
    pub fn subscribe(&self, pattern: &str, opts: SubscribeOptions) -> Result<Subscription> {
        let mut st = self.shared.state.lock();
        let (id, pattern, rx, space) = st.subscribe(self.id, pattern, opts)?;
        let clock = Arc::clone(&st.clock);
        drop(st);
        Ok(Subscription {
            id,
            pattern,
            policy: opts.policy,
            spin: opts.spin,
            rx,
            space,
            shared: Arc::clone(&self.shared),
            clock,
        })
    }

    /// Sends to one target, retrying a full inbox with exponential back-off and jitter (the
    /// broker's retry policy, 3 tries by default) behind the target's circuit breaker. An app
    /// that is known but not running gets it when it connects. A send that fails for good is
    /// dead-lettered.
    pub fn send(
        &self,
        target: &Target,
        topic: &str,
        payload: impl Into<Payload>,
        opts: MessageOptions,
    ) -> Result<Sent> {
        let (env, mut commit, retry) = {
            let mut st = self.shared.state.lock();
            if !st.clients.contains_key(&self.id) {
                return Err(Error::Disconnected);
            }
            let (env, commit) = st.prepare_send(self.sender(), target, topic, payload.into(), opts)?;
            (env, commit, st.cfg.retry)
        };
        let attempts = retry.attempts.max(1);
        for attempt in 1..=attempts {
            let last = attempt == attempts;
            let mut st = self.shared.state.lock();
            match st.try_send(target, &env, last, false) {
                Err(Error::QueueFull { .. }) if !last => {
                    drop(st);
                    let unit = self.jitter.lock().map(|mut j| j.unit()).unwrap_or(0.5);
                    std::thread::sleep(retry.delay(attempt, unit));
                }
                // The breaker opened during this send's own retries: it is not tried again, so
                // it is dead-lettered rather than dropped.
                Err(e @ Error::CircuitOpen { .. }) if attempt > 1 => {
                    st.give_up_send(target, &env);
                    return Err(e);
                }
                other => return other.map(|outcome| Sent { outcome, commit: commit.take() }),
            }
        }
        Err(Error::QueueFull { target: target.clone() })
    }

    /// This client's inbox of directed sends.
    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Registers a service. `actions` lists what it answers (empty: any action).
    pub fn serve(&self, name: &str, actions: &[&str]) -> Result<ServiceProvider> {
        service::register(&self.shared, self.id, name, actions)
    }

    /// Connects to a service.
    pub fn connect_service(&self, name: &str) -> Result<ServiceClient> {
        service::connect(&self.shared, self.id, name)
    }

    /// The matching history, oldest first, without subscribing.
    pub fn replay(&self, pattern: &str, per_topic: usize) -> Result<Vec<Arc<Envelope>>> {
        let pattern = Pattern::parse(pattern)
            .map_err(|reason| Error::InvalidPattern { pattern: crate::error::echo(pattern), reason })?;
        let st = self.shared.state.lock();
        Ok(st.history.replay(&pattern, crate::config::Replay::History { per_topic }, st.clock.now()))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.disconnect(self.id);
        // Under the same lock, so nothing new lands in the inbox after this.
        let unread: Vec<Arc<Envelope>> = self.inbox.rx.try_iter().map(|d| d.envelope).collect();
        if !unread.is_empty() {
            st.reclaim_inbox(self.id, unread);
        }
    }
}

/// Outcome of waiting for a message.
#[derive(Debug)]
pub enum Recv {
    /// A message.
    Message(Delivery),
    /// Nothing arrived in time.
    Timeout,
    /// The subscription or client is gone and its queue is drained.
    Closed,
}

/// Takes queued messages until `accept` keeps one.
fn try_recv_with(rx: &flume::Receiver<Delivery>, accept: impl Fn(Delivery) -> Option<Delivery>) -> Option<Delivery> {
    while let Ok(d) = rx.try_recv() {
        if let Some(d) = accept(d) {
            return Some(d);
        }
    }
    None
}

/// Waits until `deadline` for a message `accept` keeps.
fn recv_deadline_with(
    rx: &flume::Receiver<Delivery>,
    deadline: Instant,
    accept: impl Fn(Delivery) -> Option<Delivery>,
) -> Recv {
    loop {
        match rx.recv_deadline(deadline) {
            Ok(d) => {
                if let Some(d) = accept(d) {
                    return Recv::Message(d);
                }
            }
            Err(flume::RecvTimeoutError::Timeout) => return Recv::Timeout,
            Err(flume::RecvTimeoutError::Disconnected) => return Recv::Closed,
        }
    }
}

/// Waits, without blocking a thread, for a message `accept` keeps.
async fn recv_async_with(
    rx: &flume::Receiver<Delivery>,
    accept: impl Fn(Delivery) -> Option<Delivery>,
) -> Option<Delivery> {
    loop {
        let d = rx.recv_async().await.ok()?;
        if let Some(d) = accept(d) {
            return Some(d);
        }
    }
}

/// One subscription's queue. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    id: SubscriptionId,
    pattern: Pattern,
    policy: QueuePolicy,
    spin: Duration,
    rx: flume::Receiver<Delivery>,
    space: Arc<Event>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
}

impl Subscription {
    /// Its id.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// Its pattern.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Takes a received message: frees room for waiting publishers and dead-letters it if its
    /// TTL ran out while it queued.
    fn accept(&self, d: Delivery) -> Option<Delivery> {
        if self.policy == QueuePolicy::Backpressure {
            self.space.notify(usize::MAX);
        }
        self.unexpired(d)
    }

    /// `d`, unless its TTL ran out while it queued (then it is dead-lettered).
    fn unexpired(&self, d: Delivery) -> Option<Delivery> {
        if d.envelope.expires_at.is_some() && d.envelope.is_expired(self.clock.now()) {
            self.shared.state.lock().expired_in_queue(self.id, d.envelope);
            return None;
        }
        Some(d)
    }

    /// Takes up to `max` queued messages, in order, handing each to `take`; how many. Waiting
    /// publishers are woken once for all of them, not once a message: a reader that drains
    /// its queue in batches (a connection's writer) frees a batch's room in one wake-up.
    pub fn try_recv_many(&self, max: usize, mut take: impl FnMut(Delivery)) -> usize {
        let mut n = 0;
        while n < max {
            let Ok(d) = self.rx.try_recv() else { break };
            n += 1;
            if let Some(d) = self.unexpired(d) {
                take(d);
            }
        }
        if n > 0 && self.policy == QueuePolicy::Backpressure {
            self.space.notify(usize::MAX);
        }
        n
    }

    /// The next message, if one is queued.
    pub fn try_recv(&self) -> Option<Delivery> {
        try_recv_with(&self.rx, |d| self.accept(d))
    }

    /// Polls for up to the subscription's spin time; `None` if nothing arrived.
    fn spin_recv(&self, deadline: Instant) -> Option<Delivery> {
        if self.spin.is_zero() {
            return None;
        }
        let until = deadline_after(self.spin).min(deadline);
        loop {
            if let Ok(d) = self.rx.try_recv() {
                return Some(d);
            }
            if Instant::now() >= until {
                return None;
            }
            std::hint::spin_loop();
        }
    }

    /// Waits up to `timeout` for the next message.
    pub fn recv_timeout(&self, timeout: Duration) -> Recv {
        let deadline = deadline_after(timeout);
        while let Some(d) = self.spin_recv(deadline) {
            if let Some(d) = self.accept(d) {
                return Recv::Message(d);
            }
        }
        recv_deadline_with(&self.rx, deadline, |d| self.accept(d))
    }

    /// Waits for the next message; `None` once the subscription is closed and drained.
    pub fn recv(&self) -> Option<Delivery> {
        loop {
            let spun = self.spin_recv(deadline_after(self.spin));
            let d = match spun {
                Some(d) => d,
                None => self.rx.recv().ok()?,
            };
            if let Some(d) = self.accept(d) {
                return Some(d);
            }
        }
    }

    /// Waits for the next message without blocking a thread.
    pub async fn recv_async(&self) -> Option<Delivery> {
        recv_async_with(&self.rx, |d| self.accept(d)).await
    }

    /// Refuses a message: it goes to the dead-letter queue with `detail`.
    pub fn reject(&self, delivery: Delivery, detail: &str) {
        self.shared.state.lock().reject(Recipient::Subscription { id: self.id }, delivery.envelope, detail.to_owned());
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.state.lock().remove_sub(self.id);
    }
}

/// A client's inbox of directed sends.
#[derive(Debug)]
pub struct Inbox {
    rx: flume::Receiver<Delivery>,
    shared: Arc<Shared>,
    client: ClientId,
    clock: Arc<dyn Clock>,
}

impl Inbox {
    /// Dead-letters a message whose TTL ran out while it waited.
    fn accept(&self, d: Delivery) -> Option<Delivery> {
        if d.envelope.expires_at.is_some() && d.envelope.is_expired(self.clock.now()) {
            let target = d.envelope.target.clone().unwrap_or(Target::Client(self.client));
            self.shared.state.lock().expired_in_inbox(target, d.envelope);
            return None;
        }
        Some(d)
    }

    /// The next message, if one is waiting.
    pub fn try_recv(&self) -> Option<Delivery> {
        try_recv_with(&self.rx, |d| self.accept(d))
    }

    /// Waits up to `timeout` for the next message.
    pub fn recv_timeout(&self, timeout: Duration) -> Recv {
        recv_deadline_with(&self.rx, deadline_after(timeout), |d| self.accept(d))
    }

    /// Waits for the next message without blocking a thread.
    pub async fn recv_async(&self) -> Option<Delivery> {
        recv_async_with(&self.rx, |d| self.accept(d)).await
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Refuses a message: it goes to the dead-letter queue with `detail`.
    pub fn reject(&self, delivery: Delivery, detail: &str) {
        let target = delivery.envelope.target.clone().unwrap_or(Target::Client(self.client));
        self.shared.state.lock().reject(Recipient::Target { target }, delivery.envelope, detail.to_owned());
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
