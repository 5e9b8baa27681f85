//! Per-topic history (the last N messages) and the last value of every topic.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::config::{BrokerConfig, HistoryRule, Replay};
use crate::envelope::Envelope;
use crate::topic::{Pattern, Topic};

#[derive(Debug)]
struct TopicHistory {
    depth: usize,
    ring: VecDeque<Arc<Envelope>>,
    /// The payload bytes in `ring`, kept as it changes (summing it per publish cost O(depth)).
    ring_bytes: usize,
    last: Arc<Envelope>,
}

impl TopicHistory {
    fn bytes(&self) -> usize {
        if self.ring.is_empty() { self.last.payload.len() } else { self.ring_bytes }
    }
}

/// History of every topic, bounded in topics and in payload bytes.
#[derive(Debug)]
pub(crate) struct History {
    topics: FxHashMap<Topic, TopicHistory>,
    bytes: usize,
    default_depth: usize,
    rules: Vec<HistoryRule>,
    max_topics: usize,
    max_bytes: usize,
    pub(crate) evicted_topics: u64,
}

impl History {
    pub(crate) fn new(cfg: &BrokerConfig) -> Self {
        Self {
            topics: FxHashMap::default(),
            bytes: 0,
            default_depth: cfg.history_depth,
            rules: cfg.history_rules.clone(),
            max_topics: cfg.max_history_topics.max(1),
            max_bytes: cfg.max_history_bytes,
            evicted_topics: 0,
        }
    }

    /// The shared `Topic` for text already seen, so hot topics are not allocated per message.
    pub(crate) fn intern(&self, topic: &str) -> Option<Topic> {
        self.topics.get_key_value(topic).map(|(k, _)| k.clone())
    }

    fn depth_for(&self, topic: &Topic) -> usize {
        self.rules.iter().find(|r| r.pattern.matches(topic)).map_or(self.default_depth, |r| r.depth)
    }

    pub(crate) fn record(&mut self, env: &Arc<Envelope>) {
        let size = env.payload.len();
        match self.topics.get_mut(&env.topic) {
            Some(h) => {
                self.bytes -= h.bytes();
                h.last = Arc::clone(env);
                if h.depth > 0 {
                    if h.ring.len() == h.depth
                        && let Some(old) = h.ring.pop_front()
                    {
                        h.ring_bytes -= old.payload.len();
                    }
                    h.ring.push_back(Arc::clone(env));
                    h.ring_bytes += size;
                }
                self.bytes += h.bytes();
            }
            None => {
                let depth = self.depth_for(&env.topic);
                let mut ring = VecDeque::new();
                if depth > 0 {
                    ring.push_back(Arc::clone(env));
                }
                let ring_bytes = if depth > 0 { size } else { 0 };
                self.topics.insert(env.topic.clone(), TopicHistory { depth, ring, ring_bytes, last: Arc::clone(env) });
                self.bytes += size;
            }
        }
        if self.topics.len() > self.max_topics || self.bytes > self.max_bytes {
            self.evict();
        }
    }

    /// Forgets the least recently published topics until both bounds have 10% head-room, so
    /// the O(n log n) scan runs rarely.
    fn evict(&mut self) {
        let mut by_age: Vec<(u64, Topic)> = self.topics.iter().map(|(t, h)| (h.last.seq, t.clone())).collect();
        by_age.sort_unstable_by_key(|(seq, _)| *seq);
        let topic_goal = self.max_topics - self.max_topics / 10;
        let byte_goal = self.max_bytes - self.max_bytes / 10;
        for (_, topic) in by_age {
            if self.topics.len() <= topic_goal && self.bytes <= byte_goal {
                break;
            }
            if let Some(h) = self.topics.remove(&topic) {
                self.bytes -= h.bytes();
                self.evicted_topics += 1;
            }
        }
    }

    /// What a new subscriber to `pattern` gets under `replay`, oldest first.
    pub(crate) fn replay(&self, pattern: &Pattern, replay: Replay, now: crate::clock::Timestamp) -> Vec<Arc<Envelope>> {
        let mut out: Vec<Arc<Envelope>> = Vec::new();
        if replay == Replay::None {
            return out;
        }
        for (topic, h) in &self.topics {
            if !pattern.matches(topic) {
                continue;
            }
            match replay {
                Replay::None => {}
                Replay::LastValue => out.push(Arc::clone(&h.last)),
                Replay::History { per_topic } => {
                    if h.ring.is_empty() {
                        if per_topic > 0 {
                            out.push(Arc::clone(&h.last));
                        }
                    } else {
                        let skip = h.ring.len().saturating_sub(per_topic);
                        out.extend(h.ring.iter().skip(skip).cloned());
                    }
                }
            }
        }
        // Messages whose time to live has passed are history, not news.
        out.retain(|e| !e.is_expired(now));
        out.sort_unstable_by_key(|e| e.seq);
        out
    }

    /// The history of one topic, oldest first.
    pub(crate) fn of_topic(&self, topic: &str) -> Vec<Arc<Envelope>> {
        self.topics.get(topic).map(|h| h.ring.iter().cloned().collect()).unwrap_or_default()
    }

    /// The last message of one topic.
    pub(crate) fn last(&self, topic: &str) -> Option<Arc<Envelope>> {
        self.topics.get(topic).map(|h| Arc::clone(&h.last))
    }

    pub(crate) fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}
