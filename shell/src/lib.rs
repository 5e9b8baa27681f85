//! What the `tessera` and `tessera-app-host` binaries share: the transport between the shell
//! and its app hosts.

pub mod ipc;
