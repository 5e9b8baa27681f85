//! What the `tessera` and `tessera-app-host` binaries share: the transport between the shell
//! and its app hosts, and the supervisor that runs them.

pub mod ipc;
pub mod supervisor;
