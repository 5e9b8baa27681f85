//! A connection's outbox: what its writer is given, in order. Apart from the connection
//! (`host::ipc`) so that what sends to it (an instance's slot, `host::instance`) needs nothing
//! else of the connection's.

use protocol::wire::ShellMsg;

/// What a connection's writer is given: the shell's messages, and the subscriptions whose
/// deliveries it sends. The writer takes a subscription's messages from the broker's queue
/// itself, as many as fit in its next write: nothing is copied or queued again on the way,
/// a slow app's messages wait where its queue policy applies, and a ping waits behind at most
/// one write.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// One of the shell's messages.
    Shell(ShellMsg),
    /// The peer's subscription `sub` (replacing any it had by that number).
    Subscribe { sub: u32, subscription: Box<broker::Subscription> },
    /// The peer dropped its subscription `sub`.
    Unsubscribe { sub: u32 },
}

impl From<ShellMsg> for Outgoing {
    fn from(msg: ShellMsg) -> Self {
        Self::Shell(msg)
    }
}

/// A connection's outbox: what its writer sends, in order.
pub(crate) type Outbox = flume::Sender<Outgoing>;
