//! The monitors' heartbeats, on instants every monitor shares: whole multiples of the period
//! since the first monitor started. Twenty apps' ticks then wake the runtime once, not twenty
//! times at twenty moments (an idle desk's cost is its wake-ups, not its work).

use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The instant every monitor's beats count from.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// One monitor's heartbeat.
#[derive(Debug)]
pub(crate) struct Beats {
    period: Duration,
    sleep: Pin<Box<Sleep>>,
}

/// The first shared instant after `now` for beats every `period`.
fn next_after(now: Instant, period: Duration) -> Instant {
    let epoch = *EPOCH.get_or_init(|| now);
    let period_ns = period.as_nanos().max(1);
    let beats = now.saturating_duration_since(epoch).as_nanos() / period_ns + 1;
    let offset = u64::try_from(beats.saturating_mul(period_ns)).unwrap_or(u64::MAX);
    epoch + Duration::from_nanos(offset)
}

impl Beats {
    /// Beats every `period`, the first at the next shared instant.
    pub(crate) fn new(period: Duration) -> Self {
        Self { period, sleep: Box::pin(tokio::time::sleep_until(next_after(Instant::now(), period))) }
    }

    /// Waits for the next beat (cancel-safe: a beat not yet come is still to come).
    pub(crate) async fn tick(&mut self) {
        self.sleep.as_mut().await;
        let next = next_after(Instant::now(), self.period);
        self.sleep.as_mut().reset(next);
    }

    /// Makes the next beat come at once (the ones after fall on the shared instants again).
    pub(crate) fn now(&mut self) {
        self.sleep.as_mut().reset(Instant::now());
    }
}

#[cfg(test)]
mod tests;
