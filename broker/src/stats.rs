//! Counters a broker reports, whole and per subscription.

use serde::Serialize;

use crate::metrics::{FamilyStats, LatencySnapshot};
use crate::router::RouterStats;

/// Counters of one subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SubscriptionStats {
    /// Messages put in its queue.
    pub delivered: u64,
    /// Messages put in its queue from history.
    pub replayed: u64,
    /// Older messages dropped to make room (drop-oldest).
    pub dropped_oldest: u64,
    /// Publishes refused because it was full (backpressure).
    pub backpressured: u64,
    /// Messages dead-lettered because it was full (dead-letter).
    pub dead_lettered: u64,
    /// Messages that expired in its queue.
    pub expired: u64,
}

/// Broker-wide counters and sizes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BrokerStats {
    /// Connected clients.
    pub clients: usize,
    /// Live subscriptions.
    pub subscriptions: usize,
    /// Messages accepted by publish.
    pub published: u64,
    /// The shell's own records journalled under reserved topics.
    pub recorded: u64,
    /// Copies put into subscriber queues.
    pub delivered: u64,
    /// Topics or patterns refused as malformed.
    pub rejected_topic: u64,
    /// Payloads refused as too large.
    pub rejected_payload: u64,
    /// Publishes refused under backpressure.
    pub backpressured: u64,
    /// Messages dropped by drop-oldest queues.
    pub dropped_oldest: u64,
    /// Messages ever dead-lettered.
    pub dead_lettered: u64,
    /// Dead letters held now.
    pub dead_letters_held: usize,
    /// Dead letters evicted because the queue was full.
    pub dead_letters_evicted: u64,
    /// Messages whose TTL ran out.
    pub expired: u64,
    /// Directed sends delivered to an inbox.
    pub sent: u64,
    /// Directed sends ever put in an offline queue.
    pub offline_queued: u64,
    /// Directed sends waiting in offline queues now.
    pub offline_waiting: usize,
    /// Registered services.
    pub services: usize,
    /// Service calls dispatched.
    pub calls: u64,
    /// Service calls waiting for an answer.
    pub calls_in_flight: usize,
    /// Service calls that timed out.
    pub calls_timed_out: u64,
    /// Answers that came after their call had ended.
    pub late_responses: u64,
    /// Topics with history.
    pub history_topics: usize,
    /// Payload bytes held in history.
    pub history_bytes: usize,
    /// Topics forgotten to keep history within bounds.
    pub history_topics_evicted: u64,
    /// Targets whose circuit breaker is not idle.
    pub open_breakers: usize,
    /// The router's trie and cache.
    #[serde(skip)]
    pub router: RouterStats,
    /// Traffic per topic family (a topic's first segment), when metrics are on.
    pub families: Vec<(String, FamilyStats)>,
    /// Sampled publish times: checks, match, journal, history and fan-out.
    pub routing: LatencySnapshot,
    /// Sampled times from a publish to its connection writing it to a receiving app.
    pub delivery: LatencySnapshot,
}
