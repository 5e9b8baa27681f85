//! The wire contract between the shell and its app hosts: the typed messages each side sends
//! ([`wire::HostMsg`], [`wire::ShellMsg`]), their binary encoding, and the length-prefixed
//! frames that carry several of them per write ([`frame`]).
//!
//! This crate is the only one that knows the wire format, and it knows nothing else: no I/O, no
//! runtime, no broker internals, no UI. An app host depends on it alone (with its webview), so
//! whatever a host can send or receive is spelled out here. `tests/it/architecture.rs` checks
//! that it depends on nothing but serde, postcard and thiserror.
#![deny(missing_docs)]

pub mod frame;
mod queue_policy;
pub mod wire;

pub use crate::queue_policy::QueuePolicy;
