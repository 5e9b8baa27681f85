//! The wire contract between the shell, its app hosts and native apps: the typed messages each
//! side sends ([`wire::HostMsg`], [`wire::ShellMsg`]), their binary encoding, and the
//! length-prefixed frames that carry several of them per write ([`frame`]); the JSON envelopes
//! web pages and native apps speak ([`envelope`]); and the native endpoint's frames and
//! handshake ([`native`]); and the W3C `traceparent` messages carry ([`trace`]);
//! and the stamps bench pages put in what they send ([`stamp`]).
//!
//! This crate is the only one that knows the wire format, and it knows nothing else: no I/O, no
//! runtime, no broker internals, no UI. An app host depends on it alone (with its webview), so
//! whatever a host can send or receive is spelled out here. `tests/it/architecture.rs` checks
//! that it depends on nothing but serde, serde_json, postcard and thiserror.
#![deny(missing_docs)]

pub mod envelope;
pub mod frame;
pub mod native;
mod queue_policy;
pub mod stamp;
pub mod trace;
pub mod wire;

pub use crate::queue_policy::QueuePolicy;
pub use crate::trace::TraceParent;
