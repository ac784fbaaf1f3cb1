//! What a journal commit does to a slot's key-value data: a migration's
//! writes with a snapshot of the state before them, or the return to that
//! snapshot on a rollback. Always inside the commit's own transaction.

use hotswap_core::{Digest, KvChange, KvLimits, SlotState};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::kv::{KV, KV_COUNTS};

/// `(slot, key) → value`: a slot's state as it was before its last
/// migration.
pub(crate) const SNAPSHOTS: TableDefinition<(&str, &[u8]), &[u8]> =
    TableDefinition::new("kv_snapshot");
/// `slot → digest`: the revision a slot's snapshot was taken for.
pub(crate) const SNAPSHOT_OF: TableDefinition<&str, &[u8]> = TableDefinition::new("kv_snapshot_of");

/// Why a change to the state cannot be made; the commit writes nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChangeError {
    #[error(transparent)]
    Db(#[from] redb::Error),
    #[error("the migrated state has {keys} keys, over the limit of {limit}")]
    Full { keys: u64, limit: usize },
    #[error("no snapshot of the state of sha256:{0} is kept (a snapshot is taken by a migration, and kept while its revision is the previous one), so the state cannot go back to its schema")]
    NoSnapshot(Digest),
}

impl From<redb::TableError> for ChangeError {
    fn from(e: redb::TableError) -> Self {
        ChangeError::Db(e.into())
    }
}

impl From<redb::StorageError> for ChangeError {
    fn from(e: redb::StorageError) -> Self {
        ChangeError::Db(e.into())
    }
}

/// Makes `change` to `slot`'s data in `txn`, then drops a snapshot that
/// `state` no longer needs: one is kept only while the revision it was
/// taken for is the previous one, the only one a rollback can reach.
pub(crate) fn apply(
    txn: &WriteTransaction,
    slot: &str,
    state: &SlotState,
    change: KvChange<'_>,
) -> Result<(), ChangeError> {
    match change {
        KvChange::Keep => {}
        KvChange::Migrate {
            snapshot_of,
            writes,
        } => {
            let mut keys = copy(txn, KV, SNAPSHOTS, slot)?;
            txn.open_table(SNAPSHOT_OF)?
                .insert(slot, snapshot_of.as_bytes().as_slice())?;
            let mut kv = txn.open_table(KV)?;
            for (key, value) in writes {
                let existed = match value {
                    Some(v) => kv.insert((slot, key.as_slice()), v.as_slice())?.is_some(),
                    None => {
                        keys -= kv.remove((slot, key.as_slice()))?.is_some() as u64;
                        continue;
                    }
                };
                keys += (!existed) as u64;
            }
            drop(kv);
            txn.open_table(KV_COUNTS)?.insert(slot, keys)?;
            let limit = KvLimits::default().max_keys;
            if keys > limit as u64 {
                return Err(ChangeError::Full { keys, limit });
            }
        }
        KvChange::Restore { snapshot_of } => {
            if taken_for(txn, slot)? != Some(snapshot_of) {
                return Err(ChangeError::NoSnapshot(snapshot_of));
            }
            let keys = copy(txn, SNAPSHOTS, KV, slot)?;
            txn.open_table(KV_COUNTS)?.insert(slot, keys)?;
            forget(txn, slot)?;
        }
    }
    let previous = state.previous.as_ref().map(|p| p.revision.digest);
    if taken_for(txn, slot)?.is_some_and(|d| Some(d) != previous) {
        forget(txn, slot)?;
    }
    Ok(())
}

/// Replaces `slot`'s rows in `to` with its rows in `from`, byte for byte,
/// and returns how many there are.
fn copy(
    txn: &WriteTransaction,
    from: TableDefinition<(&str, &[u8]), &[u8]>,
    to: TableDefinition<(&str, &[u8]), &[u8]>,
    slot: &str,
) -> Result<u64, ChangeError> {
    let end = past(slot);
    let mut target = txn.open_table(to)?;
    target.retain_in(rows(slot, &end), |_, _| false)?;
    let source = txn.open_table(from)?;
    let mut copied = 0;
    for row in source.range(rows(slot, &end))? {
        let (key, value) = row?;
        target.insert((slot, key.value().1), value.value())?;
        copied += 1;
    }
    Ok(copied)
}

fn taken_for(txn: &WriteTransaction, slot: &str) -> Result<Option<Digest>, ChangeError> {
    let table = txn.open_table(SNAPSHOT_OF)?;
    let digest = table.get(slot)?;
    Ok(digest.and_then(|d| <[u8; 32]>::try_from(d.value()).ok().map(Digest::from_bytes)))
}

fn forget(txn: &WriteTransaction, slot: &str) -> Result<(), ChangeError> {
    let end = past(slot);
    txn.open_table(SNAPSHOTS)?
        .retain_in(rows(slot, &end), |_, _| false)?;
    txn.open_table(SNAPSHOT_OF)?.remove(slot)?;
    Ok(())
}

/// Every `(slot, key)` of one slot: from `(slot, [])` to before
/// `(end, [])`, where `end` is [`past`]`(slot)`.
fn rows<'a>(slot: &'a str, end: &'a str) -> std::ops::Range<(&'a str, &'a [u8])> {
    (slot, &[][..])..(end, &[][..])
}

/// The first name after `slot` and all of its keys: `slot\0`, which is no
/// valid slot name.
fn past(slot: &str) -> String {
    format!("{slot}\0")
}
