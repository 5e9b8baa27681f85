//! What a service's provider and its clients are told: the types the broker's state queues for
//! them (a leaf, so the state and the service handles do not depend on each other both ways).

use crate::envelope::Payload;
use crate::ids::{AppId, CallId, ClientId, TraceId};

/// One call as its provider receives it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Answer with this id.
    pub call: CallId,
    /// The action asked for.
    pub action: String,
    /// Its argument.
    pub payload: Payload,
    /// Who is asking (set by the broker).
    pub caller: ClientId,
    /// The caller's app.
    pub caller_app: Option<AppId>,
    /// Correlation id.
    pub trace_id: TraceId,
}

/// What a provider receives.
#[derive(Debug, Clone)]
pub enum ProviderEvent {
    /// A client connected to the service.
    Connected(ClientId),
    /// A client disconnected from the service.
    Disconnected(ClientId),
    /// A call to answer.
    Request(Request),
}

/// What a connected client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceEvent {
    /// The provider went away; in-flight calls failed with [`Error::ProviderDisconnected`](crate::Error::ProviderDisconnected).
    ProviderDisconnected,
}
