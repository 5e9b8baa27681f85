//! The typed envelope every message travels in.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{AppId, ClientId, MessageId, Target, TraceId};
use crate::topic::Topic;

/// Message bytes, shared by reference count: every receiver of a message sees the same
/// allocation. Made from a `Vec`, it takes the vector's buffer as it is (no copy).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(bytes::Bytes);

impl Payload {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether two payloads share one allocation.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.0.as_ptr() == b.0.as_ptr() && a.0.len() == b.0.len()
    }
}

impl Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Self(v.into())
    }
}

impl From<&[u8]> for Payload {
    fn from(v: &[u8]) -> Self {
        Self(bytes::Bytes::copy_from_slice(v))
    }
}

impl From<&str> for Payload {
    fn from(v: &str) -> Self {
        Self(bytes::Bytes::copy_from_slice(v.as_bytes()))
    }
}

impl From<String> for Payload {
    fn from(v: String) -> Self {
        Self(v.into_bytes().into())
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) if s.len() <= 64 => write!(f, "{s:?}"),
            _ => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <Vec<u8>>::deserialize(d).map(Self::from)
    }
}

/// Who sent a message, as the broker knows it from the client handle (never from the payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The connection.
    pub client: ClientId,
    /// Its app, if it is one.
    pub app: Option<AppId>,
}

/// A message as the broker accepted it. Receivers share it through an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id; a message re-delivered after a crash keeps it.
    pub id: MessageId,
    /// Order of acceptance across the whole broker.
    pub seq: u64,
    /// Where it was published.
    pub topic: Topic,
    /// The bytes.
    pub payload: Payload,
    /// Who sent it.
    pub sender: Sender,
    /// When the broker accepted it.
    pub timestamp: Timestamp,
    /// Correlation id.
    pub trace_id: TraceId,
    /// Whether it was journalled before it was acknowledged.
    pub durable: bool,
    /// When it stops being worth delivering.
    pub expires_at: Option<Timestamp>,
    /// For a directed send, where it was going.
    pub target: Option<Target>,
    /// How a connection's codec writes it, made once and shared by every receiver.
    #[serde(skip)]
    pub encoded: Encoded,
    /// When its publish began, if it was one of the few timed (metrics).
    #[serde(skip)]
    pub sampled: crate::metrics::Sampled,
    /// The W3C trace it travels in, from its publish's span, if its publisher gave one: what
    /// each receiver is told (and, when sampled, the parent of each delivery's span). Not
    /// journalled (the journal keeps [`Envelope::trace_id`]).
    #[serde(skip)]
    pub trace: Option<protocol::TraceParent>,
}

/// A message as a connection's codec writes it to a receiver, made by the first connection
/// that writes it and reused by every other: a message fanned out to N subscribers is encoded
/// once, not N times. The broker never reads it, and it is not part of the message: not
/// compared, not stored, and a clone (which may then be changed) starts without it.
#[derive(Default)]
pub struct Encoded(std::sync::OnceLock<Vec<u8>>);

impl Encoded {
    /// The encoding, made by `encode` if no receiver has made it yet. Every caller must encode
    /// the same way: there is one encoding per message (the native endpoint's JSON delivery).
    pub fn get_or_init(&self, encode: impl FnOnce() -> Vec<u8>) -> &[u8] {
        self.0.get_or_init(encode)
    }
}

impl Clone for Encoded {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Encoded {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Encoded {}

impl fmt::Debug for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get() {
            Some(bytes) => write!(f, "Encoded(<{} bytes>)", bytes.len()),
            None => f.write_str("Encoded(-)"),
        }
    }
}

impl Envelope {
    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// How to publish or send one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageOptions {
    /// Journal it and acknowledge only after the commit.
    pub durable: bool,
    /// Drop it (to the dead-letter queue) if not delivered within this time.
    pub ttl: Option<Duration>,
    /// Continue an existing trace instead of starting one.
    pub trace_id: Option<TraceId>,
    /// The W3C trace context receivers are told ([`Envelope::trace`]); its trace id is the
    /// message's trace id unless `trace_id` says otherwise.
    pub trace: Option<protocol::TraceParent>,
}

impl MessageOptions {
    /// Durable.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// With a time to live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// In an existing trace.
    pub fn trace(mut self, trace_id: TraceId) -> Self {
        self.trace_id = Some(trace_id);
        self
    }

    /// In a W3C trace, sent on from its span.
    pub fn traceparent(mut self, trace: protocol::TraceParent) -> Self {
        self.trace = Some(trace);
        self
    }
}

/// One message handed to a subscriber or inbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared envelope.
    pub envelope: Arc<Envelope>,
    /// Whether it comes from history rather than live traffic.
    pub replayed: bool,
}
