//! Desks linked over a NATS cluster. For each link group the admin policy puts this desk in,
//! the bridge keeps a JetStream stream (`TESSERA_<group>`, subjects `tessera.<group>.>`):
//!
//! - **out**: the bus topics the group shares outward are subscribed to on the local broker;
//!   each message (not one the link itself brought in) is published to the group's stream with
//!   its desk, user, app and an id unique across the desk's restarts, and sent again with the
//!   same id until the cluster acknowledges it (JetStream drops the duplicate);
//! - **in**: a durable consumer per desk (`desk_<desk>`) reads the group's bus subjects in
//!   stream order; each message is checked ([`wire::inbound`]), this desk's own are skipped
//!   (no loops), ids already seen are dropped (no duplicates across redeliveries), topics the
//!   group does not share inward are refused, and the rest are published on the local bus
//!   before being acknowledged. The consumer's place is kept by the cluster, so a desk that was
//!   away (a partition, a restart, the cluster down) catches up on what it missed, as far back
//!   as the group's stream keeps.
//!
//! FDC3 user channels a group shares cross the same way (`tessera.<group>.fdc3.user.<channel>`):
//! the shell hands the link its broadcasts ([`Bridge::broadcast`]) and the link hands the shell
//! the other desks' ([`Host::context`]), with the app and desk they came from; a group's set-up
//! reads each shared channel's last broadcast, so a desk starting takes its current context.
//!
//! Every crossing, and every refusal, goes to the [`Host`] the shell gives, in batches.
//! What the link is doing is in [`Status`].

#[cfg(feature = "nats")]
mod link;
pub mod permissions;
mod status;
pub mod wire;

#[cfg(feature = "nats")]
pub use crate::link::{Bridge, Credentials, Crossing, Host, Way, start};
pub use crate::status::Status;

/// A new NKey pair for a desk (a NATS user key): its public key (`U...`, for the servers'
/// configuration) and its seed (`SU...`, for the desk's vault only).
#[cfg(feature = "nats")]
pub fn new_nkey() -> Result<(String, String), String> {
    let pair = nkeys::KeyPair::new_user();
    let seed = pair.seed().map_err(|e| format!("making an NKey: {e}"))?;
    Ok((pair.public_key(), seed))
}
