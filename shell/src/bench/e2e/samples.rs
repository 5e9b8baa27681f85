//! From the hosts' stamp notes to round-trip and one-way times (pure: no I/O).
//!
//! Page `a` sends ping `s`, page `b` answers it with pong `s + PONG`, and `a` sends ping
//! `s + 1` as soon as that pong reaches it. Each host notes when a post reaches it, so:
//! - a round trip, page to page and back, is the time between two pings reaching `a`'s host
//!   (each full cycle: `a`'s post, the route to `b`, `b`'s page, the route back, `a`'s page);
//! - one way `a`→`b` is ping `s` reaching `a`'s host to pong `s` reaching `b`'s (a post hop,
//!   the route, a delivery into a page: what a message from one page to another takes), and
//!   one way `b`→`a` is pong `s` at `b`'s host to ping `s + 1` at `a`'s;
//! - and a host also notes when it hands a stamp to its page, which splits each one-way time
//!   into host to host (the shell's routing and the sockets) and in the page (the script call
//!   into it, the handler, the post out).
//!
//! A stamp is `kind × KIND + block × BLOCK + i`.

use std::collections::HashMap;

use anyhow::{Context, Result};

/// What `b` adds to a ping's stamp for its pong.
pub(crate) const PONG: u64 = 10_000_000_000_000;
/// A kind's share of the stamp.
pub(crate) const KIND: u64 = 10_000_000_000;
/// A block's share of the stamp.
pub(crate) const BLOCK: u64 = 10_000_000;
/// The block the warm-up rounds use (never measured).
pub(crate) const WARM_UP_BLOCK: u64 = 999;

/// The stamp of round `i` of `block` of `kind` (kinds count from 0).
pub(crate) fn stamp(kind: usize, block: u64, i: u64) -> u64 {
    (kind as u64 + 1) * KIND + block * BLOCK + i
}

/// When each stamp was first noted: reaching a host from its page, and handed to a page by
/// its host.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notes {
    pub(crate) from_page: HashMap<u64, u64>,
    pub(crate) to_page: HashMap<u64, u64>,
}

impl Notes {
    /// Reads `<nanoseconds> <stamp> in|out` lines, keeping the first time of each stamp.
    pub(crate) fn read(&mut self, text: &str) -> Result<()> {
        for (n, line) in text.lines().enumerate() {
            let mut parts = line.split_whitespace();
            let (Some(at), Some(stamp), Some(way), None) = (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                anyhow::bail!("line {}: {line:?} is not `<nanoseconds> <stamp> in|out`", n + 1);
            };
            let at: u64 = at.parse().with_context(|| format!("line {}: time {at:?}", n + 1))?;
            let stamp: u64 = stamp.parse().with_context(|| format!("line {}: stamp {stamp:?}", n + 1))?;
            let map = match way {
                "in" => &mut self.from_page,
                "out" => &mut self.to_page,
                _ => anyhow::bail!("line {}: {way:?} is neither `in` nor `out`", n + 1),
            };
            map.entry(stamp).and_modify(|t| *t = (*t).min(at)).or_insert(at);
        }
        Ok(())
    }
}

/// One kind's times, in nanoseconds, in the order measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Times {
    pub(crate) round_trip: Vec<u64>,
    pub(crate) a_to_b: Vec<u64>,
    pub(crate) b_to_a: Vec<u64>,
    /// Of a one-way time, from the sender's host to the receiver's host handing it over.
    pub(crate) host_to_host: Vec<u64>,
    /// Of a one-way time, from that hand-over to the receiver's answer reaching its host (the
    /// script call into the page, the page's handler, its post back).
    pub(crate) in_page: Vec<u64>,
    /// Pings with no pong noted.
    pub(crate) unanswered: u64,
}

impl Times {
    /// Adds another run's times.
    pub(crate) fn extend(&mut self, other: &Self) {
        self.round_trip.extend(&other.round_trip);
        self.a_to_b.extend(&other.a_to_b);
        self.b_to_a.extend(&other.b_to_a);
        self.host_to_host.extend(&other.host_to_host);
        self.in_page.extend(&other.in_page);
        self.unanswered += other.unanswered;
    }

    /// Both directions' one-way times.
    pub(crate) fn one_way(&self) -> Vec<u64> {
        self.a_to_b.iter().chain(&self.b_to_a).copied().collect()
    }

    /// One leg, from `sent` (reaching the sender's host) to `answered` (the receiver's answer
    /// reaching its host), through `handed` (its host handing it to the page), if noted.
    fn leg(&mut self, sent: u64, handed: Option<u64>, answered: u64) {
        if let Some(h) = handed
            && let (Some(route), Some(page)) = (h.checked_sub(sent), answered.checked_sub(h))
        {
            self.host_to_host.push(route);
            self.in_page.push(page);
        }
    }
}

/// The times of `kind`'s `blocks` blocks of `rounds` round trips each, from the notes.
pub(crate) fn times(notes: &Notes, kind: usize, blocks: u64, rounds: u64) -> Times {
    let mut t = Times::default();
    for block in 0..blocks {
        for i in 0..rounds {
            let ping = stamp(kind, block, i);
            let (Some(&sent), pong) = (notes.from_page.get(&ping), notes.from_page.get(&(ping + PONG))) else {
                continue;
            };
            let Some(&answered) = pong else {
                t.unanswered += 1;
                continue;
            };
            if let Some(d) = answered.checked_sub(sent) {
                t.a_to_b.push(d);
                t.leg(sent, notes.to_page.get(&ping).copied(), answered);
            }
            // The last round of a block has no next ping to close it.
            if i + 1 < rounds
                && let Some(&next) = notes.from_page.get(&(ping + 1))
            {
                if let Some(d) = next.checked_sub(sent) {
                    t.round_trip.push(d);
                }
                if let Some(d) = next.checked_sub(answered) {
                    t.b_to_a.push(d);
                    t.leg(answered, notes.to_page.get(&(ping + PONG)).copied(), next);
                }
            }
        }
    }
    t
}

/// Percentiles of some times, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub(crate) struct Spread {
    pub(crate) count: usize,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    pub(crate) mean_us: f64,
}

impl Spread {
    pub(crate) fn of(ns: &[u64]) -> Self {
        let mut v = ns.to_vec();
        v.sort_unstable();
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        let mean = if v.is_empty() { 0.0 } else { v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 };
        Self {
            count: v.len(),
            p50_us: us(super::super::stats::percentile(&v, 50.0)),
            p99_us: us(super::super::stats::percentile(&v, 99.0)),
            p999_us: us(super::super::stats::percentile(&v, 99.9)),
            mean_us: (mean / 100.0).round() / 10.0,
        }
    }
}
