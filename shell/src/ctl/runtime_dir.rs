//! The directory the control socket lives in, and who is at the other end of the socket.
//!
//! Another local user must not be able to stand in for the shell: both ends refuse a default
//! directory that is not the user's own, that is a symbolic link, or that others may enter (as
//! ssh-agent and systemd refuse theirs); a directory the user named (`--ctl-socket`) may be
//! shared, but not one where others could replace the socket. Each end checks the uid of its
//! peer on every connection.

use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why a runtime directory or a peer was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeDirError {
    /// Someone else owns the directory.
    #[error(
        "the runtime directory {} belongs to uid {owner}, not to you (uid {me}): refusing it; remove it, or set XDG_RUNTIME_DIR to a directory of your own",
        path.display()
    )]
    NotYours {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The user running this.
        me: u32,
    },
    /// Others could replace what is in it (writable by them, without the sticky bit).
    #[error(
        "the socket directory {} can be changed by others (mode {mode:04o}) and is not sticky: refusing it; choose a directory of your own",
        path.display()
    )]
    Replaceable {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Others may enter or change it.
    #[error(
        "the runtime directory {} is open to others (mode {mode:04o}): refusing it; make it 0700 (chmod 700) or remove it",
        path.display()
    )]
    OpenToOthers {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A symbolic link or a file stands where the directory should be.
    #[error("the runtime directory {} is not a directory (a symbolic link or a file): refusing it", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// It could not be created or examined.
    #[error("the runtime directory {}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The process at the other end of the socket runs as another user.
    #[error("the control socket {} is served by uid {peer}, not by you (uid {me}): refusing to talk to it", path.display())]
    Impostor {
        /// The socket.
        path: PathBuf,
        /// The peer's uid.
        peer: u32,
        /// The user running this.
        me: u32,
    },
    /// The peer's credentials could not be read.
    #[error("the control socket {}: cannot tell who is at the other end: {source}", path.display())]
    NoCredentials {
        /// The socket.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

fn me() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Creates `dir` (mode 0700, its missing parents too) unless it exists, then [`check`]s it.
pub fn prepare(dir: &Path) -> Result<(), RuntimeDirError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| RuntimeDirError::Io { path: parent.to_owned(), source })?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(RuntimeDirError::Io { path: dir.to_owned(), source }),
    }
    check(dir)
}

/// Checks that `dir` is a directory (not a link to one) that the user owns and nobody else may
/// enter, read or change.
pub fn check(dir: &Path) -> Result<(), RuntimeDirError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| RuntimeDirError::Io { path: dir.to_owned(), source })?;
    if !meta.file_type().is_dir() {
        return Err(RuntimeDirError::NotADirectory { path: dir.to_owned() });
    }
    if meta.uid() != me() {
        return Err(RuntimeDirError::NotYours { path: dir.to_owned(), owner: meta.uid(), me: me() });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(RuntimeDirError::OpenToOthers { path: dir.to_owned(), mode });
    }
    Ok(())
}

/// Checks a directory the user named for the socket: owned by the user or root, and nobody
/// else may replace what is in it (not writable by others, or sticky like `/tmp`).
pub fn check_named(dir: &Path) -> Result<(), RuntimeDirError> {
    let meta = std::fs::metadata(dir).map_err(|source| RuntimeDirError::Io { path: dir.to_owned(), source })?;
    if !meta.file_type().is_dir() {
        return Err(RuntimeDirError::NotADirectory { path: dir.to_owned() });
    }
    if meta.uid() != me() && meta.uid() != 0 {
        return Err(RuntimeDirError::NotYours { path: dir.to_owned(), owner: meta.uid(), me: me() });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(RuntimeDirError::Replaceable { path: dir.to_owned(), mode });
    }
    Ok(())
}

/// Makes the directory a named socket goes in (0700, with its parents) if it is missing, then
/// [`check_named`]s it.
pub fn prepare_named(dir: &Path) -> Result<(), RuntimeDirError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| RuntimeDirError::Io { path: dir.to_owned(), source })?;
    }
    check_named(dir)
}

/// Checks that the process at the other end of the Unix socket `socket` (named `path`) runs as
/// the same user.
pub fn check_peer(socket: impl AsFd, path: &Path) -> Result<(), RuntimeDirError> {
    let cred = rustix::net::sockopt::socket_peercred(socket)
        .map_err(|e| RuntimeDirError::NoCredentials { path: path.to_owned(), source: e.into() })?;
    let peer = cred.uid.as_raw();
    if peer != me() {
        return Err(RuntimeDirError::Impostor { path: path.to_owned(), peer, me: me() });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
