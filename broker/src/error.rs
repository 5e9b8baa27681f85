//! The one error type for everything a broker client can be told.

use serde::{Deserialize, Serialize};

use crate::ids::{DeadLetterId, SubscriptionId, Target};
use crate::topic::TopicError;

/// Longest piece of client input echoed back in an error.
const ECHO_LIMIT: usize = 80;

/// Shortens client input for an error message without splitting a character.
pub fn echo(s: &str) -> String {
    if s.len() <= ECHO_LIMIT {
        return s.to_owned();
    }
    let mut end = ECHO_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What went wrong, as a client sees it. Serialisable so the shell can pass it to apps as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Error {
    /// A topic a message was published or sent to is malformed.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The topic (shortened).
        topic: String,
        /// The rule it broke.
        reason: TopicError,
    },
    /// A subscription pattern is malformed.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern (shortened).
        pattern: String,
        /// The rule it broke.
        reason: TopicError,
    },
    /// A payload is over the broker's limit.
    #[error("payload is {size} bytes, more than the limit of {limit}")]
    PayloadTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An option is out of its range.
    #[error("invalid option: {reason}")]
    InvalidOption {
        /// Which option and why.
        reason: String,
    },
    /// The client holds as many of something as the broker allows one client.
    #[error("limit reached: at most {limit} {what}")]
    LimitExceeded {
        /// What ran out.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// A subscriber with the backpressure policy is full: nothing was delivered; wait and retry.
    #[error("subscriber {subscription} is full; wait and publish again")]
    Backpressure {
        /// The full subscription.
        subscription: SubscriptionId,
    },
    /// Nothing can receive a directed send.
    #[error("no route to {target}")]
    NoRoute {
        /// Where it was going.
        target: Target,
    },
    /// The target's queue is full.
    #[error("the queue of {target} is full")]
    QueueFull {
        /// Where it was going.
        target: Target,
    },
    /// Too many recent failures to `target`; sends fail fast until the breaker's cool-down ends.
    #[error("circuit to {target} is open for another {retry_in_ms} ms")]
    CircuitOpen {
        /// The target.
        target: Target,
        /// When a probe will be let through.
        retry_in_ms: u64,
    },
    /// The message's time to live ran out.
    #[error("message expired before it could be delivered")]
    Expired,
    /// This client was disconnected from the broker.
    #[error("client is disconnected")]
    Disconnected,
    /// No provider offers this service.
    #[error("no service named {service:?}")]
    NoSuchService {
        /// The service.
        service: String,
    },
    /// The provider does not offer this action.
    #[error("service {service:?} has no action {action:?}")]
    NoSuchAction {
        /// The service.
        service: String,
        /// The action.
        action: String,
    },
    /// Another client already provides this service.
    #[error("service {service:?} is already provided by another client")]
    ServiceExists {
        /// The service.
        service: String,
    },
    /// The provider went away before it answered.
    #[error("provider of {service:?} disconnected")]
    ProviderDisconnected {
        /// The service.
        service: String,
    },
    /// No answer in time.
    #[error("no answer within {after_ms} ms")]
    Timeout {
        /// The time allowed.
        after_ms: u64,
    },
    /// The provider or receiver refused the request.
    #[error("rejected: {reason}")]
    Rejected {
        /// Its words.
        reason: String,
    },
    /// A durable publish was asked for but no journal is attached.
    #[error("durable publish needs a journal, and none is attached")]
    NoJournal,
    /// The journal has too much queued: wait for an earlier commit and publish again.
    #[error("the journal is busy; wait for an earlier commit and publish again")]
    JournalBusy,
    /// The journal could not take or commit the message.
    #[error("journal: {reason}")]
    Journal {
        /// What the journal said.
        reason: String,
    },
    /// No dead letter has this id (it was re-queued or evicted).
    #[error("no dead letter {id}")]
    NoSuchDeadLetter {
        /// The id asked for.
        id: DeadLetterId,
    },
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
