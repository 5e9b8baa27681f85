//! What the broker measures for IT's dashboards, beside its counters: traffic per topic family
//! (a topic's first segment: `prices`, `orders`, `fdc3`), and latencies sampled from one
//! publish in [`SAMPLE_EVERY`]: routing (the publish call: checks, match, journal, history,
//! fan-out) and delivery (from the publish to the moment a connection writes the message to
//! its app). Sampling keeps the clock reads off all but a few messages. Switched off with
//! [`crate::BrokerConfig::metrics`] (the benches measure the cost both ways).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde::Serialize;

/// One publish in this many is timed.
pub const SAMPLE_EVERY: u64 = 64;
/// Families counted by name; traffic of any other goes under [`OTHER_FAMILY`].
pub const FAMILY_LIMIT: usize = 64;
/// Where traffic of families past the limit is counted.
pub const OTHER_FAMILY: &str = "other";
/// The upper bounds of the latency buckets, in nanoseconds (the last bucket is unbounded).
pub const LATENCY_BOUNDS_NS: [u64; 18] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// Traffic of one topic family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FamilyStats {
    /// Messages published.
    pub published: u64,
    /// Copies put into subscriber queues.
    pub delivered: u64,
    /// Older messages dropped by drop-oldest queues to take these.
    pub dropped: u64,
    /// Copies dead-lettered because a queue was full.
    pub dead_lettered: u64,
}

/// The families seen, each with its counts, in the order first seen.
#[derive(Debug, Default)]
pub(crate) struct Families {
    index: FxHashMap<Box<str>, usize>,
    names: Vec<Box<str>>,
    stats: Vec<FamilyStats>,
    /// A direct-mapped cache in front of the map for families of up to 8 bytes (most are):
    /// the name's bytes as a number (topics hold no NUL, so it is unique) and its index.
    recent: Recent,
}

/// [`Families`]' cache: 64 slots of (name as a number, index); 0 is an empty slot.
#[derive(Debug)]
struct Recent([(u64, usize); 64]);

impl Default for Recent {
    fn default() -> Self {
        Self([(0, 0); 64])
    }
}

/// A topic's family as a number (its bytes, zero-padded) and its length, if it is at most 8
/// bytes long; else `(_, None)`.
fn short_family(bytes: &[u8]) -> (u64, Option<usize>) {
    const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let Some(first8) = bytes.first_chunk::<8>() else {
        // Shorter than 8 bytes: byte by byte (rare: most topics are longer).
        let end = bytes.iter().position(|&b| b == b'.').unwrap_or(bytes.len());
        let key = bytes[..end].iter().enumerate().fold(0u64, |k, (i, &b)| k | u64::from(b) << (8 * i));
        return (key, Some(end));
    };
    let word = u64::from_le_bytes(*first8);
    // The lowest byte equal to '.' (the borrow can only mark bytes above it).
    let x = word ^ DOTS;
    let dots = x.wrapping_sub(ONES) & !x & HIGHS;
    if dots != 0 {
        let end = (dots.trailing_zeros() / 8) as usize;
        (word & ((1u64 << (8 * end)) - 1), Some(end))
    } else if bytes.len() == 8 || bytes.get(8) == Some(&b'.') {
        (word, Some(8))
    } else {
        (0, None)
    }
}

impl Families {
    /// The counts of `topic`'s family (made on first sight, or the shared "other" past the limit).
    pub(crate) fn of(&mut self, topic: &str) -> &mut FamilyStats {
        // On every publish: a short name's end found and the name made a number in a few
        // word operations, then one slot compared, before the map.
        let bytes = topic.as_bytes();
        let (key, short) = short_family(bytes);
        let end = short.unwrap_or_else(|| bytes.iter().position(|&b| b == b'.').unwrap_or(bytes.len()));
        let family = &topic[..end];
        let key = short.map(|_| key).filter(|&k| k != 0);
        let slot = key.map(|k| (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize);
        if let (Some(k), Some(slot)) = (key, slot)
            && self.recent.0[slot].0 == k
        {
            return &mut self.stats[self.recent.0[slot].1];
        }
        let at = match self.index.get(family) {
            Some(&at) => at,
            None => {
                let name = if self.names.len() + 1 < FAMILY_LIMIT { family } else { OTHER_FAMILY };
                match self.index.get(name) {
                    Some(&at) => at,
                    None => {
                        self.names.push(name.into());
                        self.stats.push(FamilyStats::default());
                        self.index.insert(name.into(), self.names.len() - 1);
                        self.names.len() - 1
                    }
                }
            }
        };
        if let (Some(k), Some(slot)) = (key, slot) {
            self.recent.0[slot] = (k, at);
        }
        &mut self.stats[at]
    }

    /// Each family and its counts.
    pub(crate) fn list(&self) -> Vec<(String, FamilyStats)> {
        self.names.iter().zip(&self.stats).map(|(n, s)| (n.to_string(), *s)).collect()
    }
}

/// A latency histogram with fixed buckets ([`LATENCY_BOUNDS_NS`]), written without a lock.
#[derive(Debug, Default)]
pub struct Latency {
    counts: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Latency {
    /// Counts one observation.
    pub fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// What it has counted.
    pub fn snapshot(&self) -> LatencySnapshot {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        LatencySnapshot {
            bounds_ns: LATENCY_BOUNDS_NS.to_vec(),
            count: counts.iter().sum(),
            counts,
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A latency histogram's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LatencySnapshot {
    /// The buckets' upper bounds, in nanoseconds.
    pub bounds_ns: Vec<u64>,
    /// Observations per bucket (not cumulative), one more than the bounds: the last is past
    /// every bound.
    pub counts: Vec<u64>,
    /// Observations in all.
    pub count: u64,
    /// Their sum, in nanoseconds.
    pub sum_ns: u64,
}

/// When a sampled message's publish began, for its delivery latency. Not part of the message:
/// not compared, not stored, and a clone keeps it (a copy is the same message).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sampled(pub Option<Instant>);

impl PartialEq for Sampled {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Sampled {}

#[cfg(test)]
mod tests;
