//! The vault: secrets encrypted at rest with XChaCha20-Poly1305.
//!
//! - Each encryption draws a fresh random 192-bit nonce.
//! - The associated data binds a ciphertext to its record id and key version, so a ciphertext
//!   moved to another id, or relabelled with another version, fails to decrypt.
//! - Each purpose (`audit`, `credentials`, ...) has its own key, derived with HKDF-SHA256 from
//!   a master key that lives in a [`KeySource`] (the OS keyring), never in the database.
//!
//! Record: `u8 format (1) | u32 key version | 24-byte nonce | ciphertext + 16-byte tag`.
//!
//! Key rotation stores the new master key first, marks the rotation in the database,
//! re-encrypts records in small transactions (each record names its own key version, so a
//! half-rotated vault still decrypts), then switches the current version and deletes the old
//! key. Killed at any point, the next [`Vault::open`] finishes it.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use parking_lot::Mutex;
use redb::{ReadableTable, TableDefinition};
use sha2::Sha256;

use crate::error::{Error, Result, db_error};
use crate::keys::{KeySource, MasterKey};
use crate::profile::Profile;

const VAULT: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("vault");
const VAULT_META: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("vault_meta");

const FORMAT: u8 = 1;
const HEADER: usize = 1 + 4 + 24;
/// Records re-encrypted per transaction during rotation.
const ROTATION_STEP: usize = 64;

/// Fills `buf` from the OS's random source.
pub(crate) fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Keyring { detail: format!("the OS random source failed: {e}") })
}

fn record_key(purpose: &str, id: &str) -> String {
    format!("{purpose}\u{0}{id}")
}

fn aad(purpose: &str, id: &str, version: u32) -> Vec<u8> {
    let mut a = Vec::with_capacity(32 + purpose.len() + id.len());
    a.extend_from_slice(b"tessera.vault.v1\0");
    a.extend_from_slice(purpose.as_bytes());
    a.push(0);
    a.extend_from_slice(id.as_bytes());
    a.push(0);
    a.extend_from_slice(&version.to_le_bytes());
    a
}

/// The state of a rotation, as `rotate` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The version rotated from.
    pub from: u32,
    /// The version now current.
    pub to: u32,
    /// Records re-encrypted by this call.
    pub reencrypted: u64,
}

/// The vault of one profile.
#[derive(Debug)]
pub struct Vault {
    profile: Profile,
    keys: Arc<dyn KeySource>,
    vault_id: String,
    state: Mutex<Meta>,
    /// Serialises writers: a `put` or `delete` never interleaves with a rotation's
    /// read-re-encrypt-write, and two rotations never race for the same key version.
    writes: Mutex<()>,
    /// Derived ciphers by (key version, purpose): HKDF once, not per secret.
    ciphers: Mutex<std::collections::HashMap<(u32, String), XChaCha20Poly1305>>,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    current: u32,
    rotating_to: Option<u32>,
    /// Every key version below this one has been deleted from the key source.
    retired_below: u32,
}

impl Vault {
    /// Opens the profile's vault with master keys from `keys`. A new vault gets its first key;
    /// an interrupted rotation is finished; a missing key for existing secrets is an error
    /// ([`Error::MissingKey`]), never a reason to start over.
    pub fn open(profile: &Profile, keys: Arc<dyn KeySource>) -> Result<Self> {
        crate::error::shield(profile.database_path(), || Self::open_unshielded(profile, keys))
    }

    fn open_unshielded(profile: &Profile, keys: Arc<dyn KeySource>) -> Result<Self> {
        let e = |err: redb::Error| db_error(profile.database_path(), err);
        let txn = profile.db().begin_write().map_err(e)?;
        let (vault_id, meta) = {
            let mut m = txn.open_table(VAULT_META).map_err(|x| e(x.into()))?;
            txn.open_table(VAULT).map_err(|x| e(x.into()))?;
            let existing: Option<Vec<u8>> = m.get("id").map_err(|x| e(x.into()))?.map(|v| v.value().to_vec());
            let id = match existing {
                Some(v) => v.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                None => {
                    let mut raw = [0u8; 16];
                    random(&mut raw)?;
                    m.insert("id", raw.as_slice()).map_err(|x| e(x.into()))?;
                    m.insert("current", 1u32.to_le_bytes().as_slice()).map_err(|x| e(x.into()))?;
                    raw.iter().map(|b| format!("{b:02x}")).collect()
                }
            };
            let read_u32 = |v: Option<redb::AccessGuard<'_, &[u8]>>| {
                v.and_then(|g| <[u8; 4]>::try_from(g.value()).ok()).map(u32::from_le_bytes)
            };
            let current = read_u32(m.get("current").map_err(|x| e(x.into()))?).unwrap_or(1);
            let rotating_to = read_u32(m.get("rotating_to").map_err(|x| e(x.into()))?);
            let retired_below = read_u32(m.get("retired_below").map_err(|x| e(x.into()))?).unwrap_or(1);
            (id, Meta { current, rotating_to, retired_below })
        };
        txn.commit().map_err(|x| e(x.into()))?;
        let vault = Self {
            profile: profile.clone(),
            keys,
            vault_id,
            state: Mutex::new(meta),
            writes: Mutex::new(()),
            ciphers: Mutex::new(std::collections::HashMap::new()),
        };
        let name = vault.key_name(meta.current);
        if vault.keys.get(&name)?.is_none() {
            if vault.is_empty()? && meta.rotating_to.is_none() {
                let mut key = [0u8; 32];
                random(&mut key)?;
                vault.keys.put(&name, &key)?;
            } else {
                return Err(Error::MissingKey { name, source_name: vault.keys.describe() });
            }
        }
        if meta.rotating_to.is_some() {
            tracing::warn!("finishing a vault key rotation that was interrupted");
            vault.rotate()?;
        } else {
            vault.retire_old_keys()?;
        }
        Ok(vault)
    }

    fn key_name(&self, version: u32) -> String {
        format!("vault-{}-v{version}", self.vault_id)
    }

    fn master(&self, version: u32) -> Result<MasterKey> {
        let name = self.key_name(version);
        self.keys.get(&name)?.ok_or_else(|| Error::MissingKey { name, source_name: self.keys.describe() })
    }

    fn cipher(&self, version: u32, master: &MasterKey, purpose: &str) -> Result<XChaCha20Poly1305> {
        let cache_key = (version, purpose.to_owned());
        if let Some(c) = self.ciphers.lock().get(&cache_key) {
            return Ok(c.clone());
        }
        let hk = Hkdf::<Sha256>::new(Some(self.vault_id.as_bytes()), master);
        let mut okm = [0u8; 32];
        hk.expand(format!("tessera vault v1 purpose:{purpose}").as_bytes(), &mut okm)
            .map_err(|_| Error::Keyring { detail: "HKDF expansion failed".into() })?;
        let cipher = XChaCha20Poly1305::new_from_slice(&okm)
            .map_err(|_| Error::Keyring { detail: "bad derived key length".into() })?;
        self.ciphers.lock().insert(cache_key, cipher.clone());
        Ok(cipher)
    }

    fn seal(&self, purpose: &str, id: &str, secret: &[u8], version: u32, master: &MasterKey) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 24];
        random(&mut nonce)?;
        let ct = self
            .cipher(version, master, purpose)?
            .encrypt(&XNonce::from(nonce), Payload { msg: secret, aad: &aad(purpose, id, version) })
            .map_err(|_| Error::Keyring { detail: "encryption failed".into() })?;
        let mut rec = Vec::with_capacity(HEADER + ct.len());
        rec.push(FORMAT);
        rec.extend_from_slice(&version.to_le_bytes());
        rec.extend_from_slice(&nonce);
        rec.extend_from_slice(&ct);
        Ok(rec)
    }

    /// The key version a record was sealed with.
    fn version_of(rec: &[u8], key: &str) -> Result<u32> {
        if rec.len() < HEADER + 16 || rec[0] != FORMAT {
            return Err(Error::Tampered { id: key.replace('\u{0}', "/") });
        }
        let mut v = [0u8; 4];
        v.copy_from_slice(&rec[1..5]);
        Ok(u32::from_le_bytes(v))
    }

    fn open_record(&self, purpose: &str, id: &str, rec: &[u8]) -> Result<Vec<u8>> {
        let shown = format!("{purpose}/{id}");
        let version = Self::version_of(rec, &shown)?;
        let master = self.master(version)?;
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&rec[5..HEADER]);
        self.cipher(version, &master, purpose)?
            .decrypt(&XNonce::from(nonce), Payload { msg: &rec[HEADER..], aad: &aad(purpose, id, version) })
            .map_err(|_| Error::Tampered { id: shown })
    }

    /// Encrypts and stores a secret.
    pub fn put(&self, purpose: &str, id: &str, secret: &[u8]) -> Result<()> {
        crate::error::shield(self.profile.database_path(), || self.put_unshielded(purpose, id, secret))
    }

    fn put_unshielded(&self, purpose: &str, id: &str, secret: &[u8]) -> Result<()> {
        let _writing = self.writes.lock();
        let meta = *self.state.lock();
        let version = meta.rotating_to.unwrap_or(meta.current);
        let rec = self.seal(purpose, id, secret, version, &self.master(version)?)?;
        self.write(&record_key(purpose, id), &rec)
    }

    fn write(&self, key: &str, rec: &[u8]) -> Result<()> {
        let e = |err: redb::Error| db_error(self.profile.database_path(), err);
        let txn = self.profile.db().begin_write().map_err(e)?;
        txn.open_table(VAULT).map_err(|x| e(x.into()))?.insert(key, rec).map_err(|x| e(x.into()))?;
        txn.commit().map_err(|x| e(x.into()))
    }

    /// Decrypts a secret; `None` if there is none under that id.
    pub fn get(&self, purpose: &str, id: &str) -> Result<Option<Vec<u8>>> {
        crate::error::shield(self.profile.database_path(), || self.get_unshielded(purpose, id))
    }

    fn get_unshielded(&self, purpose: &str, id: &str) -> Result<Option<Vec<u8>>> {
        let e = |err: redb::Error| db_error(self.profile.database_path(), err);
        let txn = self.profile.db().begin_read().map_err(e)?;
        let t = txn.open_table(VAULT).map_err(|x| e(x.into()))?;
        let Some(rec) = t.get(record_key(purpose, id).as_str()).map_err(|x| e(x.into()))? else {
            return Ok(None);
        };
        self.open_record(purpose, id, rec.value()).map(Some)
    }

    /// Deletes a secret; whether there was one.
    pub fn delete(&self, purpose: &str, id: &str) -> Result<bool> {
        crate::error::shield(self.profile.database_path(), || self.delete_unshielded(purpose, id))
    }

    fn delete_unshielded(&self, purpose: &str, id: &str) -> Result<bool> {
        let _writing = self.writes.lock();
        let e = |err: redb::Error| db_error(self.profile.database_path(), err);
        let txn = self.profile.db().begin_write().map_err(e)?;
        let removed = txn
            .open_table(VAULT)
            .map_err(|x| e(x.into()))?
            .remove(record_key(purpose, id).as_str())
            .map_err(|x| e(x.into()))?
            .is_some();
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(removed)
    }

    /// The ids stored for a purpose.
    pub fn ids(&self, purpose: &str) -> Result<Vec<String>> {
        crate::error::shield(self.profile.database_path(), || self.ids_unshielded(purpose))
    }

    fn ids_unshielded(&self, purpose: &str) -> Result<Vec<String>> {
        let prefix = format!("{purpose}\u{0}");
        Ok(self.records()?.into_iter().filter_map(|(k, _)| k.strip_prefix(&prefix).map(str::to_owned)).collect())
    }

    fn records(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let e = |err: redb::Error| db_error(self.profile.database_path(), err);
        let txn = self.profile.db().begin_read().map_err(e)?;
        let t = txn.open_table(VAULT).map_err(|x| e(x.into()))?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(|x| e(x.into()))? {
            let (k, v) = entry.map_err(|x| e(x.into()))?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn is_empty(&self) -> Result<bool> {
        Ok(self.records()?.is_empty())
    }

    /// Decrypts every record; returns how many, or the first that fails.
    pub fn verify(&self) -> Result<u64> {
        crate::error::shield(self.profile.database_path(), || self.verify_unshielded())
    }

    fn verify_unshielded(&self) -> Result<u64> {
        let mut n = 0;
        for (key, rec) in self.records()? {
            let (purpose, id) = key.split_once('\u{0}').unwrap_or((key.as_str(), ""));
            self.open_record(purpose, id, &rec)?;
            n += 1;
        }
        Ok(n)
    }

    /// The current master key version.
    pub fn key_version(&self) -> u32 {
        self.state.lock().current
    }

    fn set_meta(&self, f: impl FnOnce(&mut redb::Table<'_, &'static str, &'static [u8]>) -> Result<()>) -> Result<()> {
        let e = |err: redb::Error| db_error(self.profile.database_path(), err);
        let txn = self.profile.db().begin_write().map_err(e)?;
        {
            let mut m = txn.open_table(VAULT_META).map_err(|x| e(x.into()))?;
            f(&mut m)?;
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// Rotates to a new master key, re-encrypting every secret; finishes an interrupted
    /// rotation instead if there is one.
    pub fn rotate(&self) -> Result<Rotation> {
        crate::error::shield(self.profile.database_path(), || self.rotate_unshielded())
    }

    fn rotate_unshielded(&self) -> Result<Rotation> {
        let _writing = self.writes.lock();
        let meta = *self.state.lock();
        if meta.rotating_to.is_none() {
            // Every secret must decrypt before the rotation is recorded: a damaged record
            // found half-way would leave a rotation that can neither finish nor be undone.
            self.verify()?;
        }
        let from = meta.current;
        let to = meta.rotating_to.unwrap_or(from + 1);
        let path = self.profile.database_path().to_owned();
        let e = |err: redb::Error| db_error(&path, err);
        // 1. The new key exists in the key source before anything refers to it.
        let new_name = self.key_name(to);
        let new_key = match self.keys.get(&new_name)? {
            Some(k) if meta.rotating_to.is_some() => k,
            // Records may already be sealed with the key this rotation made: never replace it.
            None if meta.rotating_to.is_some() => {
                return Err(Error::MissingKey { name: new_name, source_name: self.keys.describe() });
            }
            _ => {
                let mut k = [0u8; 32];
                random(&mut k)?;
                self.keys.put(&new_name, &k)?;
                k
            }
        };
        // 2. The rotation is recorded: from now on new secrets use the new key.
        if meta.rotating_to.is_none() {
            self.set_meta(|m| {
                m.insert("rotating_to", to.to_le_bytes().as_slice()).map_err(|x| e(x.into()))?;
                Ok(())
            })?;
            self.state.lock().rotating_to = Some(to);
        }
        // 3. Re-encrypt in small steps; each record names its own key version.
        let mut reencrypted = 0u64;
        loop {
            let stale: Vec<(String, Vec<u8>)> = self
                .records()?
                .into_iter()
                .filter(|(k, rec)| Self::version_of(rec, k).is_ok_and(|v| v != to))
                .take(ROTATION_STEP)
                .collect();
            if stale.is_empty() {
                break;
            }
            let txn = self.profile.db().begin_write().map_err(e)?;
            {
                let mut t = txn.open_table(VAULT).map_err(|x| e(x.into()))?;
                for (key, rec) in &stale {
                    let (purpose, id) = key.split_once('\u{0}').unwrap_or((key.as_str(), ""));
                    let secret = self.open_record(purpose, id, rec)?;
                    let sealed = self.seal(purpose, id, &secret, to, &new_key)?;
                    t.insert(key.as_str(), sealed.as_slice()).map_err(|x| e(x.into()))?;
                }
            }
            txn.commit().map_err(|x| e(x.into()))?;
            reencrypted += stale.len() as u64;
        }
        // 4. Switch over.
        self.set_meta(|m| {
            m.insert("current", to.to_le_bytes().as_slice()).map_err(|x| e(x.into()))?;
            m.remove("rotating_to").map_err(|x| e(x.into()))?;
            Ok(())
        })?;
        {
            let mut state = self.state.lock();
            state.current = to;
            state.rotating_to = None;
        }
        // 5. Old keys go last; if this is interrupted, the next open deletes them.
        self.retire_old_keys()?;
        Ok(Rotation { from, to, reencrypted })
    }

    /// Deletes every key version below the current one that may still be in the key source.
    fn retire_old_keys(&self) -> Result<()> {
        let meta = *self.state.lock();
        if meta.retired_below >= meta.current {
            return Ok(());
        }
        for version in meta.retired_below..meta.current {
            self.keys.delete(&self.key_name(version))?;
        }
        let path = self.profile.database_path().to_owned();
        self.set_meta(|m| {
            m.insert("retired_below", meta.current.to_le_bytes().as_slice()).map_err(|x| db_error(&path, x))?;
            Ok(())
        })?;
        self.state.lock().retired_below = meta.current;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
