//! What every handle of one broker shares.

use parking_lot::Mutex;

use crate::state::State;

/// The lock around the broker's state. `parking_lot` because a panic in one client's thread
/// must not poison the broker for everyone else.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Sampled delivery times, written by the connections that deliver (no lock).
    pub(crate) delivery: std::sync::Arc<crate::metrics::Latency>,
    /// The state's [`State::deadlines`], listened to without its lock.
    pub(crate) deadlines: std::sync::Arc<event_listener::Event>,
}
