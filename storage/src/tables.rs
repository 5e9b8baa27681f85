//! Table definitions. Only this crate names them; see `storage/DESIGN.md` for the layout.

use redb::TableDefinition;

/// Journal sequence -> encoded record (`record.rs`).
pub(crate) const JOURNAL: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("journal");
/// (topic, topic sequence) -> (journal sequence, timestamp in µs).
pub(crate) const TOPIC_INDEX: TableDefinition<'_, (&str, u64), (u64, u64)> =
    TableDefinition::new("journal_topic_index");
/// Topic -> its last topic sequence. Kept when retention removes the topic's records, so
/// topic sequences never repeat.
pub(crate) const TOPIC_HEAD: TableDefinition<'_, &str, u64> = TableDefinition::new("journal_topic_head");
/// Journal counters: `next_seq`, `bytes`.
pub(crate) const JOURNAL_META: TableDefinition<'_, &str, u64> = TableDefinition::new("journal_meta");

pub(crate) const NEXT_SEQ: &str = "next_seq";
pub(crate) const BYTES: &str = "bytes";

/// Opens a table for reading; `None` if nothing was ever written to it.
pub(crate) fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<'_, K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, redb::TableError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
