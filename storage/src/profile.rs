//! A profile: one directory, one redb database file in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::Database;

use crate::error::{Error, Result, db_error};

/// The database file's name inside a profile directory.
pub const DATABASE_FILE: &str = "tessera.redb";

/// An open profile. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
    path: PathBuf,
    db: Arc<Database>,
}

impl Profile {
    /// Opens the profile in `dir`, creating the directory (mode 0700) and the database if needed.
    /// An unclean shutdown is repaired by redb on open; a damaged file is refused with
    /// [`Error::Corrupt`] and left untouched.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::ProfileDir { path: dir.to_owned(), source })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o700);
            std::fs::set_permissions(dir, perms)
                .map_err(|source| Error::ProfileDir { path: dir.to_owned(), source })?;
        }
        let path = dir.join(DATABASE_FILE);
        let db = Database::builder().create(&path).map_err(|e| db_error(&path, e))?;
        Ok(Self { dir: dir.to_owned(), path, db: Arc::new(db) })
    }

    /// A profile on a custom storage backend, for crash and fault simulation; `label` stands in
    /// for the path in errors.
    #[cfg(test)]
    pub(crate) fn from_backend(label: &Path, backend: impl redb::StorageBackend) -> Result<Self> {
        let path = label.to_owned();
        let db = Database::builder().create_with_backend(backend).map_err(|e| db_error(&path, e))?;
        Ok(Self { dir: path.clone(), path, db: Arc::new(db) })
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn database_path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn db(&self) -> &Arc<Database> {
        &self.db
    }
}
