//! `SlotKv`: a slot's key-value data in the database, implementing
//! [`hotswap_core::KvStore`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hotswap_core::{Entry, KvError, KvLimits, KvStore};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::handle::DbHandle;
use crate::KvSync;

/// `(slot, key) → value`.
pub(crate) const KV: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("kv");
/// `bank → number of keys`, kept in the same transactions, for the key limit.
pub(crate) const KV_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("kv_counts");
/// `slot → bank`: which of a slot's two banks of rows is its state (absent:
/// bank 0). The other bank holds the snapshot a migration leaves, so that
/// neither a migration nor a rollback copies the state row by row.
pub(crate) const KV_BANKS: TableDefinition<&str, u8> = TableDefinition::new("kv_bank");

/// The first element of the keys of `slot`'s rows in `bank` (0 or 1): the
/// slot's name, or the name and `\x01`. No slot name holds a control
/// character, so the banks of different slots never mix, and bank 0 is
/// where the rows of a store without banks already are.
pub(crate) fn bank_name(slot: &str, bank: u8) -> String {
    match bank {
        0 => slot.to_string(),
        _ => format!("{slot}\x01"),
    }
}

/// Which of `slot`'s banks is live, in a transaction that has `banks` open.
pub(crate) fn live_bank(
    banks: &impl ReadableTable<&'static str, u8>,
    slot: &str,
) -> Result<u8, redb::StorageError> {
    Ok(banks.get(slot)?.map_or(0, |b| b.value()))
}

/// One slot's view of the key-value table.
///
/// By default ([`KvSync::Interval`]) writes commit without waiting for the
/// disk (`Durability::None`); the store's flusher makes them durable within
/// a fraction of a second, and at a clean shutdown. A plugin that writes on
/// every call would otherwise pay an fsync per call. A `kill -9` can lose
/// the last fraction of a second of writes, never tear one: every commit is
/// atomic. [`KvSync::Always`] makes each write durable before it returns.
pub struct SlotKv {
    db: Arc<DbHandle>,
    slot: String,
    /// The names of its two banks, made once.
    banks: [String; 2],
    limits: KvLimits,
    dirty: Arc<AtomicBool>,
    sync: KvSync,
}

impl SlotKv {
    pub(crate) fn new(
        db: Arc<DbHandle>,
        slot: &str,
        limits: KvLimits,
        dirty: Arc<AtomicBool>,
        sync: KvSync,
    ) -> SlotKv {
        SlotKv {
            db,
            slot: slot.to_string(),
            banks: [bank_name(slot, 0), bank_name(slot, 1)],
            limits,
            dirty,
            sync,
        }
    }

    /// Runs `f` in a write transaction that commits without fsync (and marks
    /// the store dirty so the flusher makes it durable), or with one under
    /// [`KvSync::Always`].
    fn write<R>(
        &self,
        f: impl FnOnce(
            &mut redb::Table<(&str, &[u8]), &[u8]>,
            &mut redb::Table<&str, u64>,
            &str,
        ) -> Result<R, KvError>,
    ) -> Result<R, KvError> {
        let open = self.db.get().map_err(|e| KvError::Backend(e.to_string()))?;
        let mut txn = open.begin_write().map_err(backend)?;
        let durability = match self.sync {
            KvSync::Interval => Durability::None,
            KvSync::Always => Durability::Immediate,
        };
        txn.set_durability(durability).map_err(backend)?;
        let result = {
            let bank = self.live(&txn.open_table(KV_BANKS).map_err(backend)?)?;
            let mut kv = txn.open_table(KV).map_err(backend)?;
            let mut counts = txn.open_table(KV_COUNTS).map_err(backend)?;
            f(&mut kv, &mut counts, bank)?
        };
        txn.commit().map_err(backend)?;
        self.dirty.store(true, Ordering::Release);
        Ok(result)
    }
}

fn backend(e: impl Into<redb::Error>) -> KvError {
    KvError::Backend(e.into().to_string())
}

impl KvStore for SlotKv {
    fn limits(&self) -> KvLimits {
        self.limits
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.limits.check(key, None)?;
        let open = self.db.get().map_err(|e| KvError::Backend(e.to_string()))?;
        let txn = open.begin_read().map_err(backend)?;
        let bank = self.live(&txn.open_table(KV_BANKS).map_err(backend)?)?;
        let table = txn.open_table(KV).map_err(backend)?;
        let value = table.get((bank, key)).map_err(backend)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn next_key(&self, from: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.frozen_view()?.next_key(from)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.limits.check(key, Some(value))?;
        let max_keys = self.limits.max_keys;
        self.write(|kv, counts, slot| {
            let count = counts.get(slot).map_err(backend)?.map_or(0, |c| c.value());
            let is_new = kv.get((slot, key)).map_err(backend)?.is_none();
            if is_new && count >= max_keys as u64 {
                return Err(KvError::Full { limit: max_keys });
            }
            kv.insert((slot, key), value).map_err(backend)?;
            if is_new {
                counts.insert(slot, count + 1).map_err(backend)?;
            }
            Ok(())
        })
    }

    fn delete(&self, key: &[u8]) -> Result<bool, KvError> {
        self.limits.check(key, None)?;
        self.write(|kv, counts, slot| {
            let removed = kv.remove((slot, key)).map_err(backend)?.is_some();
            if removed {
                let count = counts.get(slot).map_err(backend)?.map_or(0, |c| c.value());
                counts
                    .insert(slot, count.saturating_sub(1))
                    .map_err(backend)?;
            }
            Ok(removed)
        })
    }

    fn frozen(&self) -> Option<Arc<dyn KvStore>> {
        match self.frozen_view() {
            Ok(view) => Some(Arc::new(view)),
            // Reading through the store will report the same failure.
            Err(_) => None,
        }
    }
}

impl SlotKv {
    /// The name of the live bank's rows.
    fn live(&self, banks: &impl ReadableTable<&'static str, u8>) -> Result<&str, KvError> {
        let bank = live_bank(banks, &self.slot).map_err(backend)?;
        Ok(&self.banks[usize::from(bank.min(1))])
    }

    fn frozen_view(&self) -> Result<FrozenKv, KvError> {
        let open = self.db.get().map_err(|e| KvError::Backend(e.to_string()))?;
        let txn = open.begin_read().map_err(backend)?;
        let bank = self.live(&txn.open_table(KV_BANKS).map_err(backend)?)?;
        Ok(FrozenKv {
            table: txn.open_table(KV).map_err(backend)?,
            slot: bank.to_string(),
            limits: self.limits,
        })
    }
}

/// One slot's data as it was when the view was made: every read in one
/// read transaction.
struct FrozenKv {
    table: redb::ReadOnlyTable<(&'static str, &'static [u8]), &'static [u8]>,
    slot: String,
    limits: KvLimits,
}

impl KvStore for FrozenKv {
    fn limits(&self) -> KvLimits {
        self.limits
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.limits.check(key, None)?;
        let value = self.table.get((self.slot.as_str(), key)).map_err(backend)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn put(&self, _key: &[u8], _value: &[u8]) -> Result<(), KvError> {
        Err(KvError::Backend("a frozen view cannot be written".into()))
    }

    fn delete(&self, _key: &[u8]) -> Result<bool, KvError> {
        Err(KvError::Backend("a frozen view cannot be written".into()))
    }

    fn next_key(&self, from: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.next_entry(from)?.map(|(key, _)| key))
    }

    fn next_entry(&self, from: &[u8]) -> Result<Option<Entry>, KvError> {
        // A cursor past the longest key there can be finds nothing.
        if from.len() > self.limits.max_key + 1 {
            return Ok(None);
        }
        let slot = self.slot.as_str();
        let mut rows = self.table.range((slot, from)..).map_err(backend)?;
        match rows.next() {
            Some(row) => {
                let (key, value) = row.map_err(backend)?;
                let (owner, key) = key.value();
                Ok((owner == slot).then(|| (key.to_vec(), value.value().to_vec())))
            }
            None => Ok(None),
        }
    }
}
