//! Tessera's storage: one redb database per profile.
//!
//! This crate is the only one that names redb. It implements the broker's `Journal` port
//! ([`Journal`]) and will hold the profile's other tables (grants, layouts, update state, the
//! audit log, the vault) behind typed APIs. It knows nothing of UI or of the broker's
//! internals: it sees the broker's public `Envelope` and `Journal` types only.
//!
//! The on-disk layout is described in `storage/DESIGN.md`.

#![deny(missing_docs)]

pub mod audit;
mod error;
mod journal;
mod keys;
pub mod kv;
pub mod merkle;
mod profile;
pub mod record;
mod tables;
mod vault;

pub use crate::error::{DecodeError, Error, Result};
pub use crate::journal::{Journal, JournalConfig, JournalStats, TopicStart, VerifyReport};
pub use crate::keys::{KeyFileKeys, KeySource, KeyringKeys, KeyringKind, MasterKey, MemoryKeys, key_source};
pub use crate::kv::{Decision, Grant, SavedLayout};
pub use crate::profile::{DATABASE_FILE, Profile};
pub use crate::record::StoredMessage;
pub use crate::vault::{Rotation, Vault};
