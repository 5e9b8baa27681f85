//! A profile: one directory, one redb database file in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, WriteTransaction};

use crate::error::{Error, Result, db_error, io_error, shield};

/// The database file's name inside a profile directory.
pub const DATABASE_FILE: &str = "tessera.redb";

/// The database, opened for writing or only for reading.
enum Db {
    /// Read and write.
    Writable(Database),
    /// Read only: nothing about the file changes.
    ReadOnly(ReadOnlyDatabase),
    /// A file not closed cleanly, recovered in memory to be read: the file is untouched.
    Recovered(Database),
}

/// The open database. Once the engine has panicked in this process (a damaged file), it is not
/// closed on drop, which could panic again; the OS releases the file at exit.
pub(crate) struct Store(Option<Db>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_read_only() { "Store(read-only)" } else { "Store(writable)" })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if crate::error::ENGINE_PANICKED.load(std::sync::atomic::Ordering::SeqCst)
            && let Some(db) = self.0.take()
        {
            std::mem::forget(db);
        }
    }
}

fn closed() -> redb::Error {
    redb::Error::Io(std::io::Error::other("the profile database is closed"))
}

impl Store {
    pub(crate) fn begin_read(&self) -> std::result::Result<ReadTransaction, redb::Error> {
        match &self.0 {
            Some(Db::Writable(db)) => db.begin_read().map_err(Into::into),
            Some(Db::ReadOnly(db)) => db.begin_read().map_err(Into::into),
            Some(Db::Recovered(db)) => db.begin_read().map_err(Into::into),
            None => Err(closed()),
        }
    }

    pub(crate) fn begin_write(&self) -> std::result::Result<WriteTransaction, redb::Error> {
        match &self.0 {
            Some(Db::Writable(db)) => db.begin_write().map_err(Into::into),
            Some(Db::ReadOnly(_) | Db::Recovered(_)) => Err(redb::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ReadOnlyFilesystem,
                "the profile was opened read-only",
            ))),
            None => Err(closed()),
        }
    }

    pub(crate) fn is_read_only(&self) -> bool {
        matches!(self.0, Some(Db::ReadOnly(_) | Db::Recovered(_)))
    }
}

/// An open profile. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
    path: PathBuf,
    db: Arc<Store>,
}

impl Profile {
    /// Opens the profile in `dir`, creating the directory (mode 0700) and the database if needed.
    /// An unclean shutdown is repaired by redb on open; a damaged file is refused with
    /// [`Error::Corrupt`]. An existing directory keeps its mode unless others could reach it,
    /// which is taken away once the database has opened.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(DATABASE_FILE);
        if !dir.exists() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| Error::ProfileDir { path: dir.to_owned(), source })?;
            }
            #[cfg(not(unix))]
            std::fs::create_dir_all(dir).map_err(|source| Error::ProfileDir { path: dir.to_owned(), source })?;
        }
        let db = shield(&path, || Database::builder().create(&path).map_err(|e| db_error(&path, e)))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir).map_err(|source| Error::ProfileDir { path: dir.to_owned(), source })?;
            let mode = mode.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7700))
                    .map_err(|source| Error::ProfileDir { path: dir.to_owned(), source })?;
            }
        }
        Ok(Self { dir: dir.to_owned(), path, db: Arc::new(Store(Some(Db::Writable(db)))) })
    }

    /// Opens an existing profile only to read it: nothing in the directory or the file changes,
    /// whatever is found. A file that was not closed cleanly (a crash, a kill) is recovered as
    /// `run` would recover it, but in a copy in memory.
    pub fn open_read_only(dir: &Path) -> Result<Self> {
        let path = dir.join(DATABASE_FILE);
        if !path.is_file() {
            return Err(Error::ProfileDir {
                path: dir.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("no {DATABASE_FILE} in it")),
            });
        }
        let opened = shield(&path, || match ReadOnlyDatabase::open(&path) {
            Ok(db) => Ok(Some(db)),
            Err(redb::DatabaseError::RepairAborted) => Ok(None),
            Err(e) => Err(db_error(&path, e)),
        })?;
        let db = match opened {
            Some(db) => Db::ReadOnly(db),
            None => {
                tracing::info!(path = %path.display(), "not closed cleanly: reading a copy recovered in memory");
                let bytes = std::fs::read(&path).map_err(|source| io_error(path.clone(), source))?;
                let backend = redb::backends::InMemoryBackend::new();
                let io = |e: std::io::Error| io_error(path.clone(), e);
                redb::StorageBackend::set_len(&backend, bytes.len() as u64).map_err(io)?;
                redb::StorageBackend::write(&backend, 0, &bytes).map_err(io)?;
                drop(bytes);
                let db =
                    shield(&path, || Database::builder().create_with_backend(backend).map_err(|e| db_error(&path, e)))?;
                Db::Recovered(db)
            }
        };
        Ok(Self { dir: dir.to_owned(), path, db: Arc::new(Store(Some(db))) })
    }

    /// A profile on a custom storage backend, for crash and fault simulation; `label` stands in
    /// for the path in errors.
    #[cfg(test)]
    pub(crate) fn from_backend(label: &Path, backend: impl redb::StorageBackend) -> Result<Self> {
        let path = label.to_owned();
        let db = Database::builder().create_with_backend(backend).map_err(|e| db_error(&path, e))?;
        Ok(Self { dir: path.clone(), path, db: Arc::new(Store(Some(Db::Writable(db)))) })
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn database_path(&self) -> &Path {
        &self.path
    }

    /// Whether it was opened only to read.
    pub fn is_read_only(&self) -> bool {
        self.db.is_read_only()
    }

    pub(crate) fn db(&self) -> &Arc<Store> {
        &self.db
    }
}
