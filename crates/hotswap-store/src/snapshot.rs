//! What a journal commit does to a slot's key-value data: a migration's
//! writes with a snapshot of the state before them, or the return to that
//! snapshot on a rollback. Always inside the commit's own transaction.
//!
//! A slot has two banks of rows ([`KV_BANKS`] says which is live). A
//! migration writes the new state into the other bank and makes it live;
//! the bank it leaves is the snapshot, untouched. A rollback to it makes it
//! live again. So neither copies the old state row by row: a migration
//! writes the rows it converted (and the ones it left alone), a rollback
//! only clears the state it leaves.

use hotswap_core::{Digest, KvChange, KvLimits, SlotState};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::kv::{bank_name, live_bank, KV, KV_BANKS, KV_COUNTS};

/// `(slot, key) → value`: a slot's state as it was before its last
/// migration, as stores kept it before slots had two banks. Read once, by
/// the rollback it was kept for, and never written again.
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
            let live = live_bank(&txn.open_table(KV_BANKS)?, slot)?;
            let (from, to) = (bank_name(slot, live), bank_name(slot, other(live)));
            // The other bank may hold an older snapshot; this one replaces it.
            clear(txn, KV, &to)?;
            clear(txn, SNAPSHOTS, slot)?;
            let keys = migrate_into(txn, &from, &to, writes)?;
            let limit = KvLimits::default().max_keys;
            if keys > limit as u64 {
                return Err(ChangeError::Full { keys, limit });
            }
            txn.open_table(KV_COUNTS)?.insert(to.as_str(), keys)?;
            txn.open_table(KV_BANKS)?.insert(slot, other(live))?;
            txn.open_table(SNAPSHOT_OF)?
                .insert(slot, snapshot_of.as_bytes().as_slice())?;
        }
        KvChange::Restore { snapshot_of } => {
            if taken_for(txn, slot)? != Some(snapshot_of) {
                return Err(ChangeError::NoSnapshot(snapshot_of));
            }
            let live = live_bank(&txn.open_table(KV_BANKS)?, slot)?;
            let here = bank_name(slot, live);
            if rows_in(txn, SNAPSHOTS, slot)? {
                // Taken before slots had banks: copied back, once.
                let keys = copy(txn, SNAPSHOTS, KV, slot, &here)?;
                txn.open_table(KV_COUNTS)?.insert(here.as_str(), keys)?;
            } else {
                txn.open_table(KV_BANKS)?.insert(slot, other(live))?;
            }
            forget(txn, slot)?;
        }
    }
    let previous = state.previous.as_ref().map(|p| p.revision.digest);
    if taken_for(txn, slot)?.is_some_and(|d| Some(d) != previous) {
        forget(txn, slot)?;
    }
    Ok(())
}

/// The bank that is not `live`.
fn other(live: u8) -> u8 {
    1 - live.min(1)
}

/// Writes bank `to` as bank `from` with `writes` (in key order) laid over
/// it, and returns how many keys it holds.
fn migrate_into(
    txn: &WriteTransaction,
    from: &str,
    to: &str,
    writes: &hotswap_core::Writes,
) -> Result<u64, ChangeError> {
    let mut kv = txn.open_table(KV)?;
    // The rows the migration left alone, read before the table is written.
    let end = past(from);
    let mut kept = Vec::new();
    for row in kv.range(rows(from, &end))? {
        let (key, value) = row?;
        let key = key.value().1;
        if writes
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .is_err()
        {
            kept.push((key.to_vec(), value.value().to_vec()));
        }
    }
    let mut keys = 0;
    let written = writes.iter().filter_map(|(k, v)| Some((k, v.as_ref()?)));
    for (key, value) in kept.iter().map(|(k, v)| (k, v)).chain(written) {
        kv.insert((to, key.as_slice()), value.as_slice())?;
        keys += 1;
    }
    Ok(keys)
}

/// Replaces the rows of `to_slot` in `to` with those of `from_slot` in
/// `from`, byte for byte, and returns how many there are.
fn copy(
    txn: &WriteTransaction,
    from: TableDefinition<(&str, &[u8]), &[u8]>,
    to: TableDefinition<(&str, &[u8]), &[u8]>,
    from_slot: &str,
    to_slot: &str,
) -> Result<u64, ChangeError> {
    clear(txn, to, to_slot)?;
    let end = past(from_slot);
    let mut target = txn.open_table(to)?;
    let source = txn.open_table(from)?;
    let mut copied = 0;
    for row in source.range(rows(from_slot, &end))? {
        let (key, value) = row?;
        target.insert((to_slot, key.value().1), value.value())?;
        copied += 1;
    }
    Ok(copied)
}

/// Removes every row of `owner` (a slot, or one of its banks) from `table`.
fn clear(
    txn: &WriteTransaction,
    table: TableDefinition<(&str, &[u8]), &[u8]>,
    owner: &str,
) -> Result<(), ChangeError> {
    let end = past(owner);
    txn.open_table(table)?
        .retain_in(rows(owner, &end), |_, _| false)?;
    Ok(())
}

/// Whether `table` has a row of `owner`.
fn rows_in(
    txn: &WriteTransaction,
    table: TableDefinition<(&str, &[u8]), &[u8]>,
    owner: &str,
) -> Result<bool, ChangeError> {
    let end = past(owner);
    let table = txn.open_table(table)?;
    let found = table.range(rows(owner, &end))?.next().is_some();
    Ok(found)
}

fn taken_for(txn: &WriteTransaction, slot: &str) -> Result<Option<Digest>, ChangeError> {
    let table = txn.open_table(SNAPSHOT_OF)?;
    let digest = table.get(slot)?;
    Ok(digest.and_then(|d| <[u8; 32]>::try_from(d.value()).ok().map(Digest::from_bytes)))
}

/// Drops `slot`'s snapshot: the bank that is not live, and a snapshot
/// kept the way stores did before banks.
fn forget(txn: &WriteTransaction, slot: &str) -> Result<(), ChangeError> {
    let live = live_bank(&txn.open_table(KV_BANKS)?, slot)?;
    let snapshot = bank_name(slot, other(live));
    clear(txn, KV, &snapshot)?;
    txn.open_table(KV_COUNTS)?.remove(snapshot.as_str())?;
    clear(txn, SNAPSHOTS, slot)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use hotswap_core::{Artifact, Candidate, Manifest};
    use redb::backends::InMemoryBackend;
    use redb::{Builder, Database, ReadableDatabase};

    fn candidate(n: u8) -> Candidate {
        let a = Artifact::new(vec![0, b'a', b's', b'm', 1, 0, 0, 0, n]);
        Candidate {
            digest: a.digest(),
            manifest: Manifest {
                name: "t".into(),
                version: n.to_string(),
                abi: 1,
                state_schema: 0,
            },
            kind: a.kind(),
        }
    }

    fn live_rows(db: &Database, slot: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let txn = db.begin_read().unwrap();
        let bank = live_bank(&txn.open_table(KV_BANKS).unwrap(), slot).unwrap();
        let (owner, kv) = (bank_name(slot, bank), txn.open_table(KV).unwrap());
        let end = past(&owner);
        let rows = kv.range(rows(&owner, &end)).unwrap();
        rows.map(|r| {
            let (k, v) = r.unwrap();
            (k.value().1.to_vec(), v.value().to_vec())
        })
        .collect()
    }

    /// A snapshot taken before slots had banks (a copy in `kv_snapshot`)
    /// is still found by the rollback it was kept for, and copied back.
    #[test]
    fn a_snapshot_from_before_banks_is_restored() {
        let db = Builder::new()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        let v1 = SlotState::default().deploy(candidate(1)).unwrap().state;
        let v2 = v1.deploy(candidate(2)).unwrap().state;
        let old = v1.active.as_ref().unwrap().digest;
        let txn = db.begin_write().unwrap();
        {
            let mut kv = txn.open_table(KV).unwrap();
            kv.insert(("s", &b"k"[..]), &b"converted"[..]).unwrap();
            let mut snap = txn.open_table(SNAPSHOTS).unwrap();
            snap.insert(("s", &b"k"[..]), &b"as it was"[..]).unwrap();
            snap.insert(("s", &b"j"[..]), &b"gone since"[..]).unwrap();
            txn.open_table(SNAPSHOT_OF)
                .unwrap()
                .insert("s", old.as_bytes().as_slice())
                .unwrap();
            txn.open_table(KV_BANKS).unwrap();
            txn.open_table(KV_COUNTS).unwrap();
        }
        txn.commit().unwrap();

        let back = v2.rollback(&candidate(2).digest, "test").unwrap().state;
        let txn = db.begin_write().unwrap();
        let restore = KvChange::Restore { snapshot_of: old };
        apply(&txn, "s", &back, restore).unwrap();
        txn.commit().unwrap();
        let expected = vec![
            (b"j".to_vec(), b"gone since".to_vec()),
            (b"k".to_vec(), b"as it was".to_vec()),
        ];
        assert_eq!(live_rows(&db, "s"), expected);
        let txn = db.begin_read().unwrap();
        let snap = txn.open_table(SNAPSHOTS).unwrap();
        assert_eq!(snap.iter().unwrap().count(), 0, "used once, then dropped");
        let counts = txn.open_table(KV_COUNTS).unwrap();
        assert_eq!(counts.get("s").unwrap().unwrap().value(), 2);
    }
}
