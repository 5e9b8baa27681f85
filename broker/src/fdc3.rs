//! The FDC3 2.2 Desktop Agent: user, app and private channels, context and intent listeners,
//! intent resolution against the App Directory and live listeners, and `open`.
//!
//! The agent is a state machine with no I/O: the shell hands it each DACP message
//! (`{type, payload, meta}`) an app instance sent, with the instance's identity taken from the
//! connection, never from the message; it answers with [`Output`]s — messages for instances,
//! apps to launch, a resolver to show, channel changes for the window, records for the journal.
//! Time comes in as milliseconds so that deadlines can be tested.

mod agent;
mod dacp;
pub mod directory;

pub use agent::{
    Agent, BROADCAST_RECORDS, Choice, DeskRaise, INTENT_RECORDS, OPEN_SETTLE_MS, Output, Pending, RemoteApp,
    user_channels,
};
pub use dacp::{Request, RequestType};
pub use directory::{AppRecord, Directory, DirectoryError, IntentDecl, Problem};

/// How long a launched app has to add the listener an intent or `open` waits for.
pub const LISTENER_TIMEOUT_MS: u64 = 20_000;
/// How long the resolver dialog may stay unanswered.
pub const RESOLVER_TIMEOUT_MS: u64 = 120_000;
/// How long an intent's result may take.
pub const RESULT_TIMEOUT_MS: u64 = 600_000;

/// The version of the standard this agent implements.
pub const FDC3_VERSION: &str = "2.2";

/// Error strings of the standard (`OpenError`, `ResolveError`, `ResultError`, `ChannelError`).
pub mod errors {
    /// `OpenError.AppNotFound`.
    pub const APP_NOT_FOUND: &str = "AppNotFound";
    /// `OpenError.ErrorOnLaunch`.
    pub const ERROR_ON_LAUNCH: &str = "ErrorOnLaunch";
    /// `OpenError.AppTimeout`.
    pub const APP_TIMEOUT: &str = "AppTimeout";
    /// `ResolveError.NoAppsFound`.
    pub const NO_APPS_FOUND: &str = "NoAppsFound";
    /// `ResolveError.UserCancelled`.
    pub const USER_CANCELLED: &str = "UserCancelledResolution";
    /// `ResolveError.ResolverTimeout`.
    pub const RESOLVER_TIMEOUT: &str = "ResolverTimeout";
    /// `ResolveError.ResolverUnavailable`.
    pub const RESOLVER_UNAVAILABLE: &str = "ResolverUnavailable";
    /// `ResolveError.TargetAppUnavailable`.
    pub const TARGET_APP_UNAVAILABLE: &str = "TargetAppUnavailable";
    /// `ResolveError.TargetInstanceUnavailable`.
    pub const TARGET_INSTANCE_UNAVAILABLE: &str = "TargetInstanceUnavailable";
    /// `ResolveError.IntentDeliveryFailed`.
    pub const INTENT_DELIVERY_FAILED: &str = "IntentDeliveryFailed";
    /// `ResolveError.IntentListenerConflict`.
    pub const INTENT_LISTENER_CONFLICT: &str = "IntentListenerConflict";
    /// `ResolveError.MalformedContext`, `OpenError.MalformedContext`, `ChannelError.MalformedContext`.
    pub const MALFORMED_CONTEXT: &str = "MalformedContext";
    /// The `InvalidArguments` of each enumeration.
    pub const INVALID_ARGUMENTS: &str = "InvalidArguments";
    /// `ResultError.NoResultReturned`.
    pub const NO_RESULT_RETURNED: &str = "NoResultReturned";
    /// `ResultError.IntentHandlerRejected`.
    pub const INTENT_HANDLER_REJECTED: &str = "IntentHandlerRejected";
    /// `ChannelError.NoChannelFound`.
    pub const NO_CHANNEL_FOUND: &str = "NoChannelFound";
    /// `ChannelError.AccessDenied`.
    pub const ACCESS_DENIED: &str = "AccessDenied";
    /// `ChannelError.CreationFailed`.
    pub const CREATION_FAILED: &str = "CreationFailed";
    /// The `ApiTimeout` of each enumeration.
    pub const API_TIMEOUT: &str = "ApiTimeout";
}

/// A DACP message the agent cannot act on at all (no type, no request id, not an object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fdc3Error {
    /// Not a JSON object.
    #[error("not a DACP message: {0}")]
    Malformed(String),
    /// A message type the agent does not know.
    #[error("unknown DACP message type {0:?}")]
    UnknownType(String),
    /// An instance the agent does not know.
    #[error("no app instance {0}")]
    NoInstance(u64),
}

#[cfg(test)]
mod tests;
