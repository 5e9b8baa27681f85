//! Tessera's broker: the routing core every message between apps goes through.
//!
//! - Topics are `.`-separated; patterns use `*` for one segment and `#` for zero or more
//!   ([`topic`]), routed by a trie with a match cache ([`router`]).
//! - Each subscription has a bounded queue with a declared [`QueuePolicy`] for when it fills.
//! - Messages travel as [`Envelope`]s shared by `Arc`; the sender identity comes from the
//!   [`Client`] handle, never from the message.
//! - Per-topic history and last values, a bounded dead-letter queue, offline queues for apps
//!   that are not running, services (request/response) and directed sends with retry and
//!   circuit breakers.
//!
//! This crate is pure: it does no I/O and knows nothing of UI, processes, sockets or the
//! database. Persistence comes in through the [`Journal`] port, time through [`Clock`].

#![deny(missing_docs)]

mod breaker;
mod broker;
mod clock;
mod config;
mod dead_letter;
mod envelope;
mod error;
pub mod fdc3;
mod history;
mod ids;
mod journal;
pub mod metrics;
pub mod router;
mod service;
mod service_event;
mod shared;
mod state;
mod stats;
pub mod topic;

pub use crate::breaker::{BreakerState, CircuitBreaker, Jitter};
pub use crate::broker::{Broker, Client, Inbox, Recv, Subscription};
pub use crate::clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use crate::config::{BreakerPolicy, BrokerConfig, HistoryRule, Replay, RetryPolicy, SubscribeOptions};
pub use crate::dead_letter::{DeadLetter, DeadLetterReason, Recipient};
pub use crate::envelope::{Delivery, Encoded, Envelope, MessageOptions, Payload, Sender};
pub use crate::error::{Error, Result, echo};
pub use crate::ids::{AppId, CallId, ClientId, DeadLetterId, MessageId, SubscriptionId, Target, TraceId};
pub use crate::journal::{CommitAck, CommitSignal, Journal};
pub use crate::service::{MAX_SERVICE_NAME, PendingCall, ServiceClient, ServiceProvider};
pub use crate::service_event::{ProviderEvent, Request, ServiceEvent};
pub use crate::state::{Published, SendOutcome, Sent};
pub use crate::stats::{BrokerStats, SubscriptionStats};
pub use crate::topic::{Pattern, Topic, TopicError};
pub use protocol::QueuePolicy;
