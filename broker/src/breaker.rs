//! Retry spacing and per-target circuit breakers for directed sends. Pure state machines: the
//! caller supplies the time and the randomness.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::config::{BreakerPolicy, RetryPolicy};

impl RetryPolicy {
    /// The delay before try number `attempt + 1` (so `attempt` 1 is the first retry), with "full
    /// jitter": uniform in [0, min(max, base x 2^(attempt-1))]. `unit` is a uniform sample in
    /// [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let ceiling = self.base_delay.saturating_mul(1 << exp).min(self.max_delay);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// The state of one target's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Sends go through.
    Closed {
        /// Failures in a row so far.
        failures: u32,
    },
    /// Sends fail fast until `until`.
    Open {
        /// End of the cool-down.
        until: Timestamp,
    },
    /// One probe is in flight; others fail fast until it reports.
    HalfOpen,
}

/// A circuit breaker: opens after `failure_threshold` failures in a row, lets one probe through
/// after the cool-down, closes on its success and re-opens on its failure.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    state: BreakerState,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self { policy, state: BreakerState::Closed { failures: 0 } }
    }

    /// Its state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Asks to send at `now`: `Ok` to go ahead, `Err(wait)` to fail fast.
    pub fn admit(&mut self, now: Timestamp) -> Result<(), Duration> {
        match self.state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { until } => Err(until.since(now)),
            // The probe has not reported; keep failing fast for a full cool-down.
            BreakerState::HalfOpen => Err(self.policy.cooldown),
        }
    }

    /// Reports a successful send.
    pub fn success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// Reports a failed send at `now`.
    pub fn failure(&mut self, now: Timestamp) {
        self.state = match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.policy.failure_threshold => {
                BreakerState::Closed { failures: failures + 1 }
            }
            _ => BreakerState::Open { until: now.plus(self.policy.cooldown) },
        };
    }

    /// Whether the breaker holds nothing worth keeping (closed with no failures).
    pub fn is_idle(&self) -> bool {
        self.state == BreakerState::Closed { failures: 0 }
    }
}

/// A small, fast pseudo-random source for jitter (SplitMix64); not for secrets.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A uniform sample in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests;
