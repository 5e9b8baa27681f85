//! The app host's side of its connection to the shell ([`HostConnection`]), shared by the
//! `tessera-app-host` binary (this package's `main.rs`) and the shell's transport tests.
//!
//! The app host depends on `protocol` and its webview (wry, GTK) only: never on the broker's
//! internals, storage, the compositor or the shell (checked by `tests/it/architecture.rs`).
//! Everything it can say to the shell is a `protocol::wire::HostMsg`.

mod connection;

pub use crate::connection::{ConnError, HostConnection, Result};
