//! The profile's small tables: settings, layouts, grants and dead letters.
//! Values are JSON (low volume, easy to evolve: unknown fields are ignored, missing ones take
//! their defaults); every read is checked and a damaged value is an [`Error::Decode`] naming
//! the table and key.

use broker::{DeadLetter, Timestamp};
use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, db_error};
use crate::profile::Profile;
use crate::tables::read_table;

type Json = TableDefinition<'static, &'static str, &'static [u8]>;

const SETTINGS: Json = TableDefinition::new("settings");
const LAYOUTS: Json = TableDefinition::new("layouts");
const GRANTS: Json = TableDefinition::new("grants");
const DEAD_LETTERS: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("dead_letters");

/// Key of the layout restored at start-up, in `settings`.
const LAST_LAYOUT: &str = "layouts.last";

/// Decodes one stored JSON value; public so the fuzz target can reach every decoder.
pub fn decode_json<T: DeserializeOwned>(table: &'static str, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        table,
        key: key.to_owned(),
        reason: crate::error::DecodeError::BadJson(e.to_string()),
    })
}

fn encode_json<T: Serialize>(table: &'static str, key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Decode {
        table,
        key: key.to_owned(),
        reason: crate::error::DecodeError::BadJson(e.to_string()),
    })
}

impl Profile {
    fn put_json<T: Serialize>(&self, def: Json, table: &'static str, key: &str, value: &T) -> Result<()> {
        crate::error::shield(self.database_path(), || self.put_json_unshielded(def, table, key, value))
    }

    fn put_json_unshielded<T: Serialize>(&self, def: Json, table: &'static str, key: &str, value: &T) -> Result<()> {
        let bytes = encode_json(table, key, value)?;
        let e = |err: redb::Error| db_error(self.database_path(), err);
        let txn = self.db().begin_write().map_err(e)?;
        txn.open_table(def).map_err(|x| e(x.into()))?.insert(key, bytes.as_slice()).map_err(|x| e(x.into()))?;
        txn.commit().map_err(|x| e(x.into()))
    }

    fn get_json<T: DeserializeOwned>(&self, def: Json, table: &'static str, key: &str) -> Result<Option<T>> {
        crate::error::shield(self.database_path(), || self.get_json_unshielded(def, table, key))
    }

    fn get_json_unshielded<T: DeserializeOwned>(&self, def: Json, table: &'static str, key: &str) -> Result<Option<T>> {
        let e = |err: redb::Error| db_error(self.database_path(), err);
        let txn = self.db().begin_read().map_err(e)?;
        let Some(t) = read_table(&txn, def).map_err(|x| e(x.into()))? else { return Ok(None) };
        match t.get(key).map_err(|x| e(x.into()))? {
            Some(v) => decode_json(table, key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn list_json<T: DeserializeOwned>(&self, def: Json, table: &'static str, prefix: &str) -> Result<Vec<(String, T)>> {
        crate::error::shield(self.database_path(), || self.list_json_unshielded(def, table, prefix))
    }

    fn list_json_unshielded<T: DeserializeOwned>(
        &self,
        def: Json,
        table: &'static str,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        let e = |err: redb::Error| db_error(self.database_path(), err);
        let txn = self.db().begin_read().map_err(e)?;
        let Some(t) = read_table(&txn, def).map_err(|x| e(x.into()))? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(|x| e(x.into()))? {
            let (k, v) = entry.map_err(|x| e(x.into()))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_owned(), decode_json(table, key, v.value())?));
        }
        Ok(out)
    }

    fn remove_json(&self, def: Json, key: &str) -> Result<bool> {
        crate::error::shield(self.database_path(), || self.remove_json_unshielded(def, key))
    }

    fn remove_json_unshielded(&self, def: Json, key: &str) -> Result<bool> {
        let e = |err: redb::Error| db_error(self.database_path(), err);
        let txn = self.db().begin_write().map_err(e)?;
        let removed = txn.open_table(def).map_err(|x| e(x.into()))?.remove(key).map_err(|x| e(x.into()))?.is_some();
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(removed)
    }

    // ---- settings ----

    /// A setting, decoded as `T`.
    pub fn setting<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get_json(SETTINGS, "settings", key)
    }

    /// Stores a setting.
    pub fn set_setting<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.put_json(SETTINGS, "settings", key, value)
    }

    /// Removes a setting; whether it was there.
    pub fn remove_setting(&self, key: &str) -> Result<bool> {
        self.remove_json(SETTINGS, key)
    }

    // ---- layouts ----

    /// Saves a workspace layout under `name` (replacing one of that name) and makes it the one
    /// restored at start-up.
    pub fn save_layout(&self, name: &str, layout: &serde_json::Value, saved_at: Timestamp) -> Result<()> {
        let saved = SavedLayout { name: name.to_owned(), saved_at, layout: layout.clone() };
        self.put_json(LAYOUTS, "layouts", name, &saved)?;
        self.set_setting(LAST_LAYOUT, &name)
    }

    /// A saved layout.
    pub fn layout(&self, name: &str) -> Result<Option<SavedLayout>> {
        self.get_json(LAYOUTS, "layouts", name)
    }

    /// Every saved layout, by name.
    pub fn layouts(&self) -> Result<Vec<SavedLayout>> {
        Ok(self.list_json(LAYOUTS, "layouts", "")?.into_iter().map(|(_, v)| v).collect())
    }

    /// Deletes a layout; whether it was there.
    pub fn delete_layout(&self, name: &str) -> Result<bool> {
        self.remove_json(LAYOUTS, name)
    }

    /// The layout saved last, if it still exists.
    pub fn last_layout(&self) -> Result<Option<SavedLayout>> {
        match self.setting::<String>(LAST_LAYOUT)? {
            Some(name) => self.layout(&name),
            None => Ok(None),
        }
    }

    // ---- grants ----

    /// Remembers a decision, replacing any earlier one for the same app, permission and scope.
    pub fn put_grant(&self, grant: &Grant) -> Result<()> {
        self.put_json(GRANTS, "grants", &grant_key(&grant.app, &grant.permission, grant.scope.as_deref()), grant)
    }

    /// The remembered decision for one app, permission and scope.
    pub fn grant(&self, app: &str, permission: &str, scope: Option<&str>) -> Result<Option<Grant>> {
        self.get_json(GRANTS, "grants", &grant_key(app, permission, scope))
    }

    /// Remembered decisions, of one app or of all.
    pub fn grants(&self, app: Option<&str>) -> Result<Vec<Grant>> {
        let prefix = app.map(|a| format!("{a}\u{0}")).unwrap_or_default();
        Ok(self.list_json(GRANTS, "grants", &prefix)?.into_iter().map(|(_, g)| g).collect())
    }

    /// Forgets a decision, so the user is asked again; whether there was one.
    pub fn revoke_grant(&self, app: &str, permission: &str, scope: Option<&str>) -> Result<bool> {
        self.remove_json(GRANTS, &grant_key(app, permission, scope))
    }

    // ---- dead letters ----

    /// Keeps a dead letter across restarts; returns its storage key.
    pub fn store_dead_letter(&self, letter: &DeadLetter) -> Result<u64> {
        crate::error::shield(self.database_path(), || self.store_dead_letter_unshielded(letter))
    }

    fn store_dead_letter_unshielded(&self, letter: &DeadLetter) -> Result<u64> {
        let e = |err: redb::Error| db_error(self.database_path(), err);
        let txn = self.db().begin_write().map_err(e)?;
        let key = {
            let mut t = txn.open_table(DEAD_LETTERS).map_err(|x| e(x.into()))?;
            let key = t.last().map_err(|x| e(x.into()))?.map_or(1, |(k, _)| k.value() + 1);
            let bytes = serde_json::to_vec(letter).map_err(|x| Error::Decode {
                table: "dead_letters",
                key: key.to_string(),
                reason: crate::error::DecodeError::BadJson(x.to_string()),
            })?;
            t.insert(key, bytes.as_slice()).map_err(|x| e(x.into()))?;
            key
        };
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(key)
    }

    /// Stored dead letters, oldest first, with their storage keys.
    pub fn dead_letters(&self) -> Result<Vec<(u64, DeadLetter)>> {
        crate::error::shield(self.database_path(), || self.dead_letters_unshielded())
    }

    fn dead_letters_unshielded(&self) -> Result<Vec<(u64, DeadLetter)>> {
        let e = |err: redb::Error| db_error(self.database_path(), err);
        let txn = self.db().begin_read().map_err(e)?;
        let Some(t) = read_table(&txn, DEAD_LETTERS).map_err(|x| e(x.into()))? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for entry in t.iter().map_err(|x| e(x.into()))? {
            let (k, v) = entry.map_err(|x| e(x.into()))?;
            let key = k.value();
            out.push((key, decode_json("dead_letters", &key.to_string(), v.value())?));
        }
        Ok(out)
    }

    /// Removes a stored dead letter (re-queued or discarded); whether it was there.
    pub fn remove_dead_letter(&self, key: u64) -> Result<bool> {
        crate::error::shield(self.database_path(), || self.remove_dead_letter_unshielded(key))
    }

    fn remove_dead_letter_unshielded(&self, key: u64) -> Result<bool> {
        let e = |err: redb::Error| db_error(self.database_path(), err);
        let txn = self.db().begin_write().map_err(e)?;
        let removed =
            txn.open_table(DEAD_LETTERS).map_err(|x| e(x.into()))?.remove(key).map_err(|x| e(x.into()))?.is_some();
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(removed)
    }
}

fn grant_key(app: &str, permission: &str, scope: Option<&str>) -> String {
    // NUL cannot appear in app ids, permission names or scopes, so keys never collide and an
    // app's grants form one contiguous range.
    format!("{app}\u{0}{permission}\u{0}{}", scope.unwrap_or(""))
}

/// A saved workspace: whatever the compositor describes, stored as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedLayout {
    /// Its name.
    pub name: String,
    /// When it was saved.
    pub saved_at: Timestamp,
    /// The compositor's description of windows, tiles, apps, channels and app state.
    pub layout: serde_json::Value,
}

/// A remembered permission decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The app it applies to.
    pub app: String,
    /// The permission's name, e.g. `bus.publish` or `clipboard.read`.
    pub permission: String,
    /// Its scope, e.g. `prices.#`; none for unscoped permissions.
    pub scope: Option<String>,
    /// What was decided.
    pub decision: Decision,
    /// When.
    pub decided_at: Timestamp,
}

/// A remembered answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Always allow.
    Allow,
    /// Always deny.
    Deny,
}

#[cfg(test)]
mod tests;
