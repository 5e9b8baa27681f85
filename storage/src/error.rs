//! Storage errors: what went wrong, on which file, and what to do about it.

use std::io;
use std::path::{Path, PathBuf};

/// Why a stored record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The record ends early.
    #[error("record ends inside its {what} (at byte {at})")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Byte offset.
        at: usize,
    },
    /// A string is not UTF-8.
    #[error("{what} at byte {at} is not UTF-8")]
    BadUtf8 {
        /// The field.
        what: &'static str,
        /// Byte offset.
        at: usize,
    },
    /// The record's checksum does not match its bytes.
    #[error("checksum mismatch: the record was damaged on disk")]
    Checksum,
    /// A compressed payload does not decompress to its stated length.
    #[error("the compressed payload at byte {at} does not decompress")]
    BadCompression {
        /// Byte offset.
        at: usize,
    },
    /// An unknown format version.
    #[error("unknown record version {0}")]
    Version(u8),
    /// Unknown flag bits.
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
    /// A field too long to encode.
    #[error("{what} of {len} bytes is too long to store")]
    TooLong {
        /// The field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The topic is not a valid topic.
    #[error("stored topic is invalid: {0}")]
    BadTopic(String),
    /// A JSON value that does not have the expected shape.
    #[error("bad JSON: {0}")]
    BadJson(String),
    /// Bytes after the last field.
    #[error("{extra} unexpected bytes after the record")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// What a storage operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The profile directory could not be created or read.
    #[error("cannot use the profile directory {path}: {source}")]
    ProfileDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Another process has the database open.
    #[error("the profile database {path} is in use by another process (is another tessera running with this profile?)")]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The file is damaged. Nothing was changed.
    #[error(
        "the profile database {path} is damaged: {detail}. Nothing was changed. To recover, stop Tessera, \
         move the file aside (it keeps what can still be read) and start again with a fresh profile"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What redb or our checks found.
        detail: String,
    },
    /// The file was written in a format this build cannot read.
    #[error("the profile database {path} has file format {version}, which this build of Tessera cannot open")]
    Format {
        /// The database file.
        path: PathBuf,
        /// The format found.
        version: u8,
    },
    /// The disk is full: the write was refused and nothing already acknowledged was lost.
    #[error("the disk holding {path} is full; the write was refused and nothing already acknowledged was lost")]
    DiskFull {
        /// The database file.
        path: PathBuf,
    },
    /// Any other I/O error.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An error from the database engine that fits none of the above.
    #[error("database error on {path}: {detail}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// redb's words.
        detail: String,
    },
    /// A stored record could not be decoded.
    #[error("stored {table} record {key} is damaged: {reason}")]
    Decode {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// What is wrong with it (not an error source: the message says it once).
        reason: DecodeError,
    },
    /// A write failed earlier; the journal acknowledges nothing more until it is reopened.
    #[error("the journal stopped after a failed write ({reason}); nothing more is acknowledged until Tessera restarts")]
    JournalStopped {
        /// The first failure.
        reason: String,
    },
    /// No usable keyring, and the admin policy names no key file: the vault fails closed.
    #[error("the vault has no usable keyring: {detail}")]
    NoKeyring {
        /// What was tried and why it failed.
        detail: String,
    },
    /// The keyring or key file failed.
    #[error("keyring error: {detail}")]
    Keyring {
        /// What failed.
        detail: String,
    },
    /// A master key the vault needs is not in the key source.
    #[error(
        "the vault's master key {name} is missing from {source_name}; its secrets cannot be decrypted and are kept untouched (keyutils keys do not survive a reboot)"
    )]
    MissingKey {
        /// The key's name.
        name: String,
        /// Where it was looked for.
        source_name: String,
    },
    /// A secret failed authentication: it was altered, moved or belongs to another key.
    #[error("vault record {id} failed authentication: it was altered, moved to another id, or its key is wrong")]
    Tampered {
        /// The record.
        id: String,
    },
    /// The journal's writer has too much queued.
    #[error("the journal's queue is full ({capacity} messages); retry shortly")]
    QueueFull {
        /// Its capacity.
        capacity: usize,
    },
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Converts a redb error into ours, naming the file.
pub(crate) fn db_error(path: &Path, e: impl Into<redb::Error>) -> Error {
    let path = path.to_owned();
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => Error::InUse { path },
        redb::Error::Corrupted(detail) => Error::Corrupt { path, detail },
        redb::Error::UpgradeRequired(version) => Error::Format { path, version },
        redb::Error::Io(source) => io_error(path, source),
        other => Error::Database { path, detail: other.to_string() },
    }
}

pub(crate) fn io_error(path: PathBuf, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::StorageFull || source.raw_os_error() == Some(28) {
        Error::DiskFull { path }
    } else if source.kind() == io::ErrorKind::InvalidData {
        Error::Corrupt { path, detail: source.to_string() }
    } else {
        Error::Io { path, source }
    }
}

/// Set once the database engine has panicked in this process: its state may be poisoned, so
/// databases are then not closed (closing could panic again); the OS releases the file.
pub(crate) static ENGINE_PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs `f`, turning a panic (which the database engine may raise on a damaged file) into
/// [`Error::Corrupt`] naming the file: a damaged profile ends a command with an error, never a
/// crash.
pub(crate) fn shield<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            ENGINE_PANICKED.store(true, std::sync::atomic::Ordering::SeqCst);
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            let what: String = what.chars().take(200).collect();
            Err(Error::Corrupt {
                path: path.to_owned(),
                detail: format!("the database engine stopped reading it ({what})"),
            })
        }
    }
}
