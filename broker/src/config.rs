//! Broker settings with the defaults a desk gets when it sets nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::topic::Pattern;
use protocol::QueuePolicy;

/// What a new subscriber gets from history before live traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Replay {
    /// Live traffic only.
    #[default]
    None,
    /// The last message of every matching topic.
    LastValue,
    /// Up to `per_topic` of the latest messages of every matching topic.
    History {
        /// How many per topic.
        per_topic: usize,
    },
}

/// How one subscription behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeOptions {
    /// Queue capacity in messages, from 1 to the broker's `max_queue_capacity`.
    pub capacity: usize,
    /// What happens when the queue is full.
    pub policy: QueuePolicy,
    /// What history to deliver first.
    pub replay: Replay,
    /// How long a blocking receive polls before it parks the thread. Parking and waking a
    /// thread costs tens of microseconds on a virtual machine; a latency-critical consumer of
    /// a busy stream trades a little CPU for that. Zero (the default) parks at once, so an
    /// idle subscriber uses no CPU.
    #[serde(default, with = "micros")]
    pub spin: Duration,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self { capacity: 1024, policy: QueuePolicy::default(), replay: Replay::None, spin: Duration::ZERO }
    }
}

mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}

impl SubscribeOptions {
    /// With this capacity.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// With this policy.
    pub fn policy(mut self, policy: QueuePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// With this replay.
    pub fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }

    /// Polling for `spin` before parking in a blocking receive.
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }
}

/// History depth for the topics a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRule {
    /// Topics it applies to.
    pub pattern: Pattern,
    /// Messages kept per topic (0 keeps only the last value).
    pub depth: usize,
}

/// How retries of directed sends are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// Delay before the second try; doubles each time.
    pub base_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(1) }
    }
}

/// When a target's circuit breaker opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerPolicy {
    /// Consecutive failures that open it.
    pub failure_threshold: u32,
    /// How long it stays open before a probe is let through.
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self { failure_threshold: 5, cooldown: Duration::from_secs(1) }
    }
}

/// Broker settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Topics whose match result the router caches.
    pub route_cache_capacity: usize,
    /// Messages kept per topic unless a rule says otherwise.
    pub history_depth: usize,
    /// Per-pattern history depths; the first matching rule wins.
    pub history_rules: Vec<HistoryRule>,
    /// Most topics with history; the least recently published are forgotten first.
    pub max_history_topics: usize,
    /// Most payload bytes held in history across all topics.
    pub max_history_bytes: usize,
    /// Most dead letters kept; the oldest are evicted first.
    pub dead_letter_capacity: usize,
    /// Capacity of each client's inbox for directed sends (raised to `offline_capacity` if
    /// smaller, so an app's offline queue always fits).
    pub inbox_capacity: usize,
    /// Most directed sends waiting per app that is not running.
    pub offline_capacity: usize,
    /// Longest a directed send waits for its app when it has no TTL of its own.
    pub offline_ttl: Duration,
    /// Queue capacity of each service provider.
    pub service_queue_capacity: usize,
    /// Largest queue capacity a subscription may ask for.
    pub max_queue_capacity: usize,
    /// Most subscriptions one client may hold.
    pub max_subscriptions_per_client: usize,
    /// Most service calls waiting for answers across the broker.
    pub max_calls_in_flight: usize,
    /// Retries of directed sends.
    pub retry: RetryPolicy,
    /// Circuit breakers of directed sends.
    pub breaker: BreakerPolicy,
    /// High half of every message id; make it differ between runs.
    pub epoch: u64,
    /// Count traffic per topic family and time one publish in
    /// [`crate::metrics::SAMPLE_EVERY`] ([`crate::metrics`]).
    pub metrics: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            route_cache_capacity: 65_536,
            history_depth: 100,
            history_rules: Vec::new(),
            max_history_topics: 100_000,
            max_history_bytes: 256 * 1024 * 1024,
            dead_letter_capacity: 10_000,
            inbox_capacity: 1024,
            offline_capacity: 1000,
            offline_ttl: Duration::from_secs(300),
            service_queue_capacity: 1024,
            max_queue_capacity: 1 << 20,
            max_subscriptions_per_client: 10_000,
            max_calls_in_flight: 100_000,
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
            epoch: 0,
            metrics: true,
        }
    }
}
