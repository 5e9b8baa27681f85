//! Where the vault's master keys live: the OS keyring (Secret Service, or keyutils when chosen),
//! or a key file that the admin policy names. With none of them usable, the vault fails closed:
//! it never stores a secret under a key kept next to it in plain text unless IT said so.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry};
use parking_lot::Mutex;

use crate::error::{Error, Result};

/// A master key: 32 random bytes.
pub type MasterKey = [u8; 32];

/// Stores master keys by name.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// What it is, for messages (`Secret Service`, `key file /etc/...`).
    fn describe(&self) -> String;
    /// The key stored under `name`, if any.
    fn get(&self, name: &str) -> Result<Option<MasterKey>>;
    /// Stores a key under `name`, replacing any.
    fn put(&self, name: &str, key: &MasterKey) -> Result<()>;
    /// Deletes the key under `name`; no error if there is none.
    fn delete(&self, name: &str) -> Result<()>;
}

/// Which OS keyring to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringKind {
    /// The freedesktop Secret Service (gnome-keyring, KWallet) on the session bus.
    SecretService,
    /// The kernel's keyutils session keyring. It does not survive a reboot.
    Keyutils,
}

/// A key source on an OS keyring through keyring-core.
pub struct KeyringKeys {
    store: Arc<CredentialStore>,
    kind: KeyringKind,
}

impl fmt::Debug for KeyringKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyringKeys({:?})", self.kind)
    }
}

const SERVICE: &str = "tessera";

fn keyring_error(kind: KeyringKind, what: &str, e: &keyring_core::Error) -> Error {
    Error::Keyring { detail: format!("{kind:?}: {what}: {e}") }
}

impl KeyringKeys {
    /// Connects to a keyring and checks that it answers.
    pub fn open(kind: KeyringKind) -> Result<Self> {
        let store: Arc<CredentialStore> = match kind {
            KeyringKind::SecretService => zbus_secret_service_keyring_store::Store::new()
                .map_err(|e| keyring_error(kind, "cannot reach the Secret Service on the session bus", &e))?,
            KeyringKind::Keyutils => linux_keyutils_keyring_store::Store::new()
                .map_err(|e| keyring_error(kind, "cannot open the keyutils session keyring", &e))?,
        };
        let keys = Self { store, kind };
        // A lookup of a name that does not exist proves the keyring answers (and is unlocked).
        keys.get("probe").map_err(|e| Error::Keyring { detail: format!("{kind:?} does not answer: {e}") })?;
        Ok(keys)
    }

    fn entry(&self, name: &str) -> Result<Entry> {
        Entry::new_in_store(&self.store, SERVICE, name).map_err(|e| keyring_error(self.kind, name, &e))
    }
}

impl KeySource for KeyringKeys {
    fn describe(&self) -> String {
        match self.kind {
            KeyringKind::SecretService => "the Secret Service keyring".into(),
            KeyringKind::Keyutils => "the keyutils session keyring".into(),
        }
    }

    fn get(&self, name: &str) -> Result<Option<MasterKey>> {
        match self.entry(name)?.get_secret() {
            Ok(bytes) => {
                let key: MasterKey = bytes.as_slice().try_into().map_err(|_| Error::Keyring {
                    detail: format!("{:?}: key {name} has {} bytes, not 32", self.kind, bytes.len()),
                })?;
                Ok(Some(key))
            }
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(self.kind, name, &e)),
        }
    }

    fn put(&self, name: &str, key: &MasterKey) -> Result<()> {
        self.entry(name)?.set_secret(key).map_err(|e| keyring_error(self.kind, name, &e))
    }

    fn delete(&self, name: &str) -> Result<()> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(keyring_error(self.kind, name, &e)),
        }
    }
}

/// Keys in a file the admin policy names: hex keys by name, one JSON object, mode 0600,
/// replaced atomically on every change.
#[derive(Debug)]
pub struct KeyFileKeys {
    path: PathBuf,
    lock: Mutex<()>,
}

impl KeyFileKeys {
    /// Uses (and creates on first write) the key file at `path`.
    pub fn new(path: &Path) -> Self {
        tracing::warn!(
            path = %path.display(),
            "vault master keys are kept in a key file named by the admin policy, not in the OS keyring"
        );
        Self { path: path.to_owned(), lock: Mutex::new(()) }
    }

    fn read(&self) -> Result<BTreeMap<String, String>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Keyring {
                detail: format!("key file {} is not a JSON object of hex keys: {e}", self.path.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(Error::Io { path: self.path.clone(), source }),
        }
    }

    fn write(&self, keys: &BTreeMap<String, String>) -> Result<()> {
        let io = |source| Error::Io { path: self.path.clone(), source };
        let tmp = self.path.with_extension("tmp");
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp).map_err(io)?;
            let json = serde_json::to_vec_pretty(keys).map_err(|e| Error::Keyring { detail: e.to_string() })?;
            f.write_all(&json).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            // The rename is durable only once the directory is.
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }
}

fn to_hex(key: &MasterKey) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<MasterKey> {
    if s.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

impl KeySource for KeyFileKeys {
    fn describe(&self) -> String {
        format!("the key file {}", self.path.display())
    }

    fn get(&self, name: &str) -> Result<Option<MasterKey>> {
        let _g = self.lock.lock();
        match self.read()?.get(name) {
            Some(hex) => from_hex(hex).map(Some).ok_or_else(|| Error::Keyring {
                detail: format!("key {name} in {} is not 64 hex digits", self.path.display()),
            }),
            None => Ok(None),
        }
    }

    fn put(&self, name: &str, key: &MasterKey) -> Result<()> {
        let _g = self.lock.lock();
        let mut keys = self.read()?;
        keys.insert(name.to_owned(), to_hex(key));
        self.write(&keys)
    }

    fn delete(&self, name: &str) -> Result<()> {
        let _g = self.lock.lock();
        let mut keys = self.read()?;
        if keys.remove(name).is_some() {
            self.write(&keys)?;
        }
        Ok(())
    }
}

/// Keys in memory only; for tests.
#[derive(Debug, Default)]
pub struct MemoryKeys(Mutex<BTreeMap<String, MasterKey>>);

impl KeySource for MemoryKeys {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn get(&self, name: &str) -> Result<Option<MasterKey>> {
        Ok(self.0.lock().get(name).copied())
    }

    fn put(&self, name: &str, key: &MasterKey) -> Result<()> {
        self.0.lock().insert(name.to_owned(), *key);
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.0.lock().remove(name);
        Ok(())
    }
}

/// The key source a profile's vault uses: the key file if one is given, else the chosen OS
/// keyring. Fails closed, naming what is missing, when the keyring does not answer.
pub fn key_source(key_file: Option<&Path>, keyring: KeyringKind) -> Result<Arc<dyn KeySource>> {
    if let Some(path) = key_file {
        return Ok(Arc::new(KeyFileKeys::new(path)));
    }
    match KeyringKeys::open(keyring) {
        Ok(k) => Ok(Arc::new(k)),
        Err(Error::Keyring { detail }) => Err(Error::NoKeyring {
            detail: format!(
                "{detail}. Start a Secret Service (for example gnome-keyring, unlocked, on the session bus), \
                 choose keyutils (--keyring keyutils), or give a key file (--key-file)"
            ),
        }),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests;
