//! What the `tessera` and `tessera-app-host` binaries share: the transport between the shell
//! and its app hosts, the supervisor that runs them, the platform manifest, where an app may
//! navigate, and the control socket's protocol.

pub mod appd;
pub mod ctl;
pub mod ipc;
pub mod manifest;
pub mod origin;
pub mod policy;
pub mod release;
pub mod signing;
pub mod supervisor;
pub mod update_feed;
pub mod updater;
