//! Self-updating installs, for a desk and for IT.
//!
//! - [`feed`]: a channel's signed feed, checked (signature with rotated and revoked keys,
//!   expiry, channel, replay of an older feed, downgrade, minimum version, digest, size, https),
//!   and the machine's stable rollout bucket.
//! - [`install`]: the install root (`releases/V`, the `current` and `previous` links, and
//!   `update/` with the state file, the event log, the progress file and partial downloads),
//!   the download with its size cap, SHA-256 and signature checks, the unpack, the probation,
//!   the swap and the rollback, and `settle`, which finishes or removes what an interrupted step
//!   left.
//! - [`guard`]: the start-up guard that runs a staged build on probation.
//! - [`release`]: IT's side: packing, signing and publishing a release into a feed directory.
//!
//! The crate knows no UI, no broker internals and no profile storage: its state is machine-wide
//! and lives in the install root (checked by `tests/it/architecture.rs`). Its modules form no
//! circle: `feed` uses the policy crate's signing, `install` uses `feed`, and `guard` and
//! `release` use both.

pub mod feed;
pub mod guard;
pub mod install;
pub mod release;
