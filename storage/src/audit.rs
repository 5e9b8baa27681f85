//! The audit log: append-only entries in an RFC 6962 Merkle tree, with signed tree heads.
//!
//! Each entry is stored as JSON and its leaf hash is taken over exactly those bytes. Every
//! `head_every_entries` entries, or when `head_every` has passed (on append or [`AuditLog::tick`]),
//! the log signs its tree head (size, root, time) with an ed25519 key kept in the vault. The
//! head goes into the database and is appended to `audit/heads.jsonl` in the profile, a file IT
//! collects; `audit/public-key` holds the key to check it with.
//!
//! [`verify`] recomputes the tree from the entries and checks it against every head it is
//! given: a changed, deleted, reordered or truncated entry changes the root or the size.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use broker::Timestamp;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use parking_lot::Mutex;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, db_error};
use crate::merkle::{Frontier, Hash, leaf_hash};
use crate::profile::Profile;
use crate::tables::read_table;
use crate::vault::{Vault, random};

const AUDIT: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("audit");
const AUDIT_HEADS: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("audit_heads");
const AUDIT_META: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("audit_meta");

const SIGNING_PURPOSE: &str = "audit";
const SIGNING_ID: &str = "tree-head-signing-key";
const STH_CONTEXT: &[u8] = b"tessera-audit-sth-v1\0";

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, in UTC.
    pub time: Timestamp,
    /// Who acted: `user`, `admin-policy`, `updater`, ...
    pub actor: String,
    /// The app concerned, if any.
    pub app: Option<String>,
    /// What was done: `permission.prompt`, `update.apply`, ...
    pub action: String,
    /// What it was done to: a permission and scope, a version, ...
    pub object: String,
    /// The outcome: `allow`, `deny`, `ok`, `failed`, ...
    pub decision: String,
    /// Anything else worth keeping.
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// An entry made now: `actor` did `action` to `object`, with outcome `decision`; about no
    /// app and with no details until [`AuditEntry::app`] and [`AuditEntry::details`] say.
    pub fn now(actor: &str, action: &str, object: &str, decision: &str) -> Self {
        Self {
            time: Timestamp::now(),
            actor: actor.to_owned(),
            app: None,
            action: action.to_owned(),
            object: object.to_owned(),
            decision: decision.to_owned(),
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The app concerned.
    #[must_use]
    pub fn app(mut self, app: Option<&str>) -> Self {
        self.app = app.map(str::to_owned);
        self
    }

    /// Anything else worth keeping.
    #[must_use]
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// A signed statement of the log's size and root at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// Entries covered.
    pub tree_size: u64,
    /// Merkle root of the first `tree_size` entries, hex.
    pub root_hash: String,
    /// When it was signed.
    pub timestamp: Timestamp,
    /// First 8 bytes of SHA-256 of the public key, hex.
    pub key_id: String,
    /// ed25519 signature, hex.
    pub signature: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn signed_bytes(tree_size: u64, timestamp: Timestamp, root: &Hash) -> Vec<u8> {
    let mut m = STH_CONTEXT.to_vec();
    m.extend_from_slice(&tree_size.to_be_bytes());
    m.extend_from_slice(&timestamp.0.to_be_bytes());
    m.extend_from_slice(root);
    m
}

/// The key id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(key.as_bytes())[..8])
}

impl SignedTreeHead {
    /// Checks the signature with `key`.
    pub fn check_signature(&self, key: &VerifyingKey) -> std::result::Result<Hash, String> {
        let root: Hash = unhex(&self.root_hash).ok_or("root_hash is not 64 hex digits")?;
        let sig: [u8; 64] = unhex(&self.signature).ok_or("signature is not 128 hex digits")?;
        if self.key_id != key_id(key) {
            return Err(format!("signed by key {}, not by {}", self.key_id, key_id(key)));
        }
        key.verify(&signed_bytes(self.tree_size, self.timestamp, &root), &Signature::from_bytes(&sig))
            .map_err(|_| "the signature does not verify".to_owned())?;
        Ok(root)
    }
}

/// When heads are signed and where they are written.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Sign a head after this many new entries.
    pub head_every_entries: u64,
    /// Sign a head when this much time has passed since the last one and there are new entries.
    pub head_every: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { head_every_entries: 1000, head_every: Duration::from_secs(60) }
    }
}

/// The directory, inside a profile, where heads and the public key are written.
pub fn audit_dir(profile: &Profile) -> PathBuf {
    profile.dir().join("audit")
}

#[derive(Debug)]
struct State {
    frontier: Frontier,
    last_head_size: u64,
    last_head_at: Instant,
}

/// The audit log of a profile, able to append and sign.
#[derive(Debug)]
pub struct AuditLog {
    profile: Profile,
    key: SigningKey,
    cfg: AuditConfig,
    state: Mutex<State>,
}

impl AuditLog {
    /// Opens the log, creating its signing key in the vault on first use.
    pub fn open(profile: &Profile, vault: &Vault, cfg: AuditConfig) -> Result<Self> {
        crate::error::shield(profile.database_path(), || Self::open_unshielded(profile, vault, cfg))
    }

    fn open_unshielded(profile: &Profile, vault: &Vault, cfg: AuditConfig) -> Result<Self> {
        let seed: [u8; 32] = match vault.get(SIGNING_PURPOSE, SIGNING_ID)? {
            Some(bytes) => bytes.as_slice().try_into().map_err(|_| Error::Tampered { id: SIGNING_ID.into() })?,
            None => {
                let mut seed = [0u8; 32];
                random(&mut seed)?;
                vault.put(SIGNING_PURPOSE, SIGNING_ID, &seed)?;
                seed
            }
        };
        let key = SigningKey::from_bytes(&seed);
        let dir = audit_dir(profile);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        let pk_path = dir.join("public-key");
        let pk = hex(key.verifying_key().as_bytes());
        if std::fs::read_to_string(&pk_path).map(|s| s.trim() != pk).unwrap_or(true) {
            std::fs::write(&pk_path, format!("{pk}\n")).map_err(|source| Error::Io { path: pk_path, source })?;
        }
        let e = |err: redb::Error| db_error(profile.database_path(), err);
        let txn = profile.db().begin_write().map_err(e)?;
        let (frontier, last_head_size) = {
            let mut meta = txn.open_table(AUDIT_META).map_err(|x| e(x.into()))?;
            txn.open_table(AUDIT).map_err(|x| e(x.into()))?;
            let heads = txn.open_table(AUDIT_HEADS).map_err(|x| e(x.into()))?;
            meta.insert("public_key", key.verifying_key().as_bytes().as_slice()).map_err(|x| e(x.into()))?;
            let stored = meta.get("frontier").map_err(|x| e(x.into()))?.map(|v| v.value().to_vec());
            let frontier = match stored {
                Some(bytes) => Frontier::decode(&bytes).ok_or_else(|| Error::Corrupt {
                    path: profile.database_path().to_owned(),
                    detail: "the audit log's frontier does not decode".into(),
                })?,
                None => Frontier::default(),
            };
            let last = heads.last().map_err(|x| e(x.into()))?.map_or(0, |(k, _)| k.value());
            (frontier, last)
        };
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(Self {
            profile: profile.clone(),
            key,
            cfg,
            state: Mutex::new(State { frontier, last_head_size, last_head_at: Instant::now() }),
        })
    }

    fn stored_frontier(&self) -> Result<Option<Frontier>> {
        let e = |err: redb::Error| db_error(self.profile.database_path(), err);
        let txn = self.profile.db().begin_read().map_err(e)?;
        let Some(meta) = read_table(&txn, AUDIT_META).map_err(|x| e(x.into()))? else { return Ok(None) };
        let Some(bytes) = meta.get("frontier").map_err(|x| e(x.into()))? else { return Ok(None) };
        Frontier::decode(bytes.value()).map(Some).ok_or_else(|| Error::Corrupt {
            path: self.profile.database_path().to_owned(),
            detail: "the audit log's frontier does not decode".into(),
        })
    }

    /// The public key heads are signed with.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Appends an entry (durably) and returns its index; signs a head when one is due. The
    /// index and tree come from the database inside the write transaction, so two logs open on
    /// one profile cannot overwrite each other's entries.
    pub fn append(&self, entry: &AuditEntry) -> Result<u64> {
        self.append_many(std::slice::from_ref(entry))
    }

    /// Appends several entries in one transaction (one commit for a batch of a busy source,
    /// such as the messages crossing a desk link); returns the last one's index.
    pub fn append_many(&self, entries: &[AuditEntry]) -> Result<u64> {
        crate::error::shield(self.profile.database_path(), || self.append_unshielded(entries))
    }

    fn append_unshielded(&self, new: &[AuditEntry]) -> Result<u64> {
        if new.is_empty() {
            return Ok(self.state.lock().frontier.size().saturating_sub(1));
        }
        let encoded = new
            .iter()
            .map(|entry| {
                serde_json::to_vec(entry).map_err(|x| Error::Decode {
                    table: "audit",
                    key: "new".into(),
                    reason: crate::error::DecodeError::BadJson(x.to_string()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let path = self.profile.database_path().to_owned();
        let e = |err: redb::Error| db_error(&path, err);
        let mut st = self.state.lock();
        let txn = self.profile.db().begin_write().map_err(e)?;
        let (index, frontier) = {
            let mut meta = txn.open_table(AUDIT_META).map_err(|x| e(x.into()))?;
            let stored = meta.get("frontier").map_err(|x| e(x.into()))?.map(|v| v.value().to_vec());
            let mut frontier = match stored {
                Some(b) => Frontier::decode(&b).ok_or_else(|| Error::Corrupt {
                    path: path.clone(),
                    detail: "the audit log's frontier does not decode".into(),
                })?,
                None => Frontier::default(),
            };
            let mut entries = txn.open_table(AUDIT).map_err(|x| e(x.into()))?;
            let mut index = frontier.size();
            for bytes in &encoded {
                index = frontier.size();
                if entries.get(index).map_err(|x| e(x.into()))?.is_some() {
                    return Err(Error::Corrupt {
                        path: path.clone(),
                        detail: format!("audit entry {index} already exists"),
                    });
                }
                frontier.push(leaf_hash(bytes));
                entries.insert(index, bytes.as_slice()).map_err(|x| e(x.into()))?;
            }
            meta.insert("frontier", frontier.encode().as_slice()).map_err(|x| e(x.into()))?;
            (index, frontier)
        };
        txn.commit().map_err(|x| e(x.into()))?;
        st.frontier = frontier;
        let due = st.frontier.size() - st.last_head_size >= self.cfg.head_every_entries
            || st.last_head_at.elapsed() >= self.cfg.head_every;
        drop(st);
        if due && let Err(err) = self.sign_head() {
            // The entry is in; a head that could not be written is retried at the next append
            // or tick rather than failing this one (a retrying caller would write it twice).
            tracing::warn!(error = %err, "could not sign or write an audit tree head; will retry");
        }
        Ok(index)
    }

    /// Signs a head if entries are waiting and the interval has passed; call it periodically.
    pub fn tick(&self) -> Result<Option<SignedTreeHead>> {
        let st = self.state.lock();
        let due = st.frontier.size() > st.last_head_size && st.last_head_at.elapsed() >= self.cfg.head_every;
        drop(st);
        if due { self.sign_head().map(Some) } else { Ok(None) }
    }

    /// Signs a head if any entry is not covered by one yet, whatever the interval: for shutdown.
    pub fn sign_pending(&self) -> Result<Option<SignedTreeHead>> {
        let st = self.state.lock();
        let stored = self.stored_frontier()?.map_or(st.frontier.size(), |f| f.size());
        let pending = stored > st.last_head_size;
        drop(st);
        if pending { self.sign_head().map(Some) } else { Ok(None) }
    }

    /// Signs the current head now, stores it and appends it to `audit/heads.jsonl`.
    pub fn sign_head(&self) -> Result<SignedTreeHead> {
        crate::error::shield(self.profile.database_path(), || self.sign_head_unshielded())
    }

    fn sign_head_unshielded(&self) -> Result<SignedTreeHead> {
        let mut st = self.state.lock();
        // The database's tree, which another log on this profile may have grown.
        if let Some(f) = self.stored_frontier()? {
            st.frontier = f;
        }
        let root = st.frontier.root();
        let size = st.frontier.size();
        let timestamp = broker::Clock::now(&broker::SystemClock);
        let sig = self.key.sign(&signed_bytes(size, timestamp, &root));
        let head = SignedTreeHead {
            tree_size: size,
            root_hash: hex(&root),
            timestamp,
            key_id: key_id(&self.key.verifying_key()),
            signature: hex(&sig.to_bytes()),
        };
        let json = serde_json::to_string(&head).map_err(|x| Error::Keyring { detail: x.to_string() })?;
        let e = |err: redb::Error| db_error(self.profile.database_path(), err);
        let txn = self.profile.db().begin_write().map_err(e)?;
        txn.open_table(AUDIT_HEADS).map_err(|x| e(x.into()))?.insert(size, json.as_bytes()).map_err(|x| e(x.into()))?;
        txn.commit().map_err(|x| e(x.into()))?;
        let path = audit_dir(&self.profile).join("heads.jsonl");
        let io = |source| Error::Io { path: path.clone(), source };
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        writeln!(f, "{json}").map_err(io)?;
        f.sync_data().map_err(io)?;
        st.last_head_size = size;
        st.last_head_at = Instant::now();
        Ok(head)
    }
}

/// Entries from `since` on, in log order, with their indexes.
pub fn entries(profile: &Profile, since: Option<Timestamp>) -> Result<Vec<(u64, AuditEntry)>> {
    crate::error::shield(profile.database_path(), || entries_unshielded(profile, since))
}

fn entries_unshielded(profile: &Profile, since: Option<Timestamp>) -> Result<Vec<(u64, AuditEntry)>> {
    let e = |err: redb::Error| db_error(profile.database_path(), err);
    let txn = profile.db().begin_read().map_err(e)?;
    let Some(t) = read_table(&txn, AUDIT).map_err(|x| e(x.into()))? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for item in t.iter().map_err(|x| e(x.into()))? {
        let (k, v) = item.map_err(|x| e(x.into()))?;
        let entry: AuditEntry = crate::kv::decode_json("audit", &k.value().to_string(), v.value())?;
        if since.is_none_or(|s| entry.time >= s) {
            out.push((k.value(), entry));
        }
    }
    Ok(out)
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// Entries in the log.
    pub entries: u64,
    /// Root over all of them, hex.
    pub root_hash: String,
    /// Heads checked (stored ones and the one given).
    pub heads_checked: u64,
    /// The largest size a valid head vouches for.
    pub covered_by_heads: u64,
    /// Entries after that: no signed head vouches for them, so changing them would go unseen.
    pub not_covered: u64,
    /// Every problem; empty means the log matches every head.
    pub problems: Vec<String>,
}

impl AuditReport {
    /// Whether nothing was wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The public key recorded in the profile.
pub fn stored_public_key(profile: &Profile) -> Result<Option<VerifyingKey>> {
    crate::error::shield(profile.database_path(), || stored_public_key_unshielded(profile))
}

fn stored_public_key_unshielded(profile: &Profile) -> Result<Option<VerifyingKey>> {
    let e = |err: redb::Error| db_error(profile.database_path(), err);
    let txn = profile.db().begin_read().map_err(e)?;
    let Some(t) = read_table(&txn, AUDIT_META).map_err(|x| e(x.into()))? else { return Ok(None) };
    let Some(v) = t.get("public_key").map_err(|x| e(x.into()))? else { return Ok(None) };
    let bytes: [u8; 32] = v.value().try_into().map_err(|_| Error::Corrupt {
        path: profile.database_path().to_owned(),
        detail: "the audit public key is not 32 bytes".into(),
    })?;
    VerifyingKey::from_bytes(&bytes).map(Some).map_err(|_| Error::Corrupt {
        path: profile.database_path().to_owned(),
        detail: "the audit public key is not a valid ed25519 key".into(),
    })
}

/// Parses a public key written as 64 hex digits.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&unhex::<32>(text.trim())?).ok()
}

/// Recomputes the tree from every entry and checks it against the stored heads and `extra`
/// (a head IT collected), each signature against `key`.
pub fn verify(profile: &Profile, key: &VerifyingKey, extra: Option<&SignedTreeHead>) -> Result<AuditReport> {
    crate::error::shield(profile.database_path(), || verify_unshielded(profile, key, extra))
}

fn verify_unshielded(profile: &Profile, key: &VerifyingKey, extra: Option<&SignedTreeHead>) -> Result<AuditReport> {
    let e = |err: redb::Error| db_error(profile.database_path(), err);
    let txn = profile.db().begin_read().map_err(e)?;
    let mut report = AuditReport::default();
    let mut heads: Vec<(SignedTreeHead, &'static str)> = Vec::new();
    if let Ok(t) = txn.open_table(AUDIT_HEADS) {
        for item in t.iter().map_err(|x| e(x.into()))? {
            let (k, v) = item.map_err(|x| e(x.into()))?;
            match serde_json::from_slice::<SignedTreeHead>(v.value()) {
                Ok(h) if h.tree_size == k.value() => heads.push((h, "stored head")),
                Ok(h) => report.problems.push(format!("stored head {} claims size {}", k.value(), h.tree_size)),
                Err(err) => report.problems.push(format!("stored head {} does not decode: {err}", k.value())),
            }
        }
    }
    if let Some(h) = extra {
        heads.push((h.clone(), "given head"));
    }
    let mut expected: Vec<(u64, Hash, String)> = Vec::new();
    for (h, what) in &heads {
        report.heads_checked += 1;
        match h.check_signature(key) {
            Ok(root) => {
                expected.push((h.tree_size, root, format!("{what} of size {} signed {}", h.tree_size, h.timestamp)));
            }
            Err(why) => report.problems.push(format!("{what} of size {}: {why}", h.tree_size)),
        }
    }
    expected.sort_by_key(|(size, _, _)| *size);

    let mut frontier = Frontier::default();
    let mut next = 0usize;
    let check = |frontier: &Frontier, next: &mut usize, report: &mut AuditReport| {
        while let Some((size, root, what)) = expected.get(*next) {
            if *size != frontier.size() {
                break;
            }
            if frontier.root() == *root {
                report.covered_by_heads = report.covered_by_heads.max(*size);
            } else {
                report.problems.push(format!(
                    "{what}: the first {size} entries no longer hash to its root (an entry was changed, removed or reordered)"
                ));
            }
            *next += 1;
        }
    };
    check(&frontier, &mut next, &mut report);
    if let Ok(t) = txn.open_table(AUDIT) {
        for item in t.iter().map_err(|x| e(x.into()))? {
            let (k, v) = item.map_err(|x| e(x.into()))?;
            if k.value() != frontier.size() {
                report.problems.push(format!("entry {} is missing (next present is {})", frontier.size(), k.value()));
            }
            if let Err(err) = serde_json::from_slice::<AuditEntry>(v.value()) {
                report.problems.push(format!("entry {} does not decode: {err}", k.value()));
            }
            frontier.push(leaf_hash(v.value()));
            check(&frontier, &mut next, &mut report);
        }
    }
    for (size, _, what) in &expected[next..] {
        report.problems.push(format!("{what}, but the log has only {} entries: it was truncated", frontier.size()));
        let _ = size;
    }
    report.entries = frontier.size();
    report.not_covered = report.entries.saturating_sub(report.covered_by_heads);
    report.root_hash = hex(&frontier.root());
    Ok(report)
}

/// Reads a head file: one head as JSON, or JSON lines of heads (the last one counts).
pub fn read_head(path: &Path) -> Result<SignedTreeHead> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last).map_err(|x| Error::Decode {
        table: "head file",
        key: path.display().to_string(),
        reason: crate::error::DecodeError::BadJson(x.to_string()),
    })
}

#[cfg(test)]
mod tests;
