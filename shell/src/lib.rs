//! What the `tessera` binary shares with the integration tests: running app hosts ([`host`]:
//! the transport and the supervisor), the platform manifest and App Directories ([`manifest`],
//! [`appd`]), the manifest and policy from an IT URL ([`remote`]), and the control socket's protocol ([`ctl`]). Permissions and signing are the
//! `policy` crate's; updates are the `update` crate's; the app host binary is `app_host`.

pub mod appd;
pub mod ctl;
pub mod host;
pub mod manifest;
pub mod quote;
pub mod remote;
