//! What a subscriber's queue does when it is full: chosen by whoever subscribes, so it travels on
//! the wire, and the broker keeps it.

use serde::{Deserialize, Serialize};

/// What a subscriber's queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueuePolicy {
    /// Make room by dropping the oldest queued message (tick data, where only the latest matters).
    DropOldest,
    /// Refuse the publish as a whole and tell the publisher to wait.
    Backpressure,
    /// Move the new message to the dead-letter queue.
    #[default]
    DeadLetter,
}
