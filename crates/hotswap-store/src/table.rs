//! Tables of JSON records by name (slots, eBPF programs): read one, read
//! all, save durably, remove, the same way for every kind of record.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

use crate::error::db;
use crate::{Store, StoreError};

/// One table of records: its definition, and what its records are of
/// (`slot`, `eBPF program`), for errors.
#[derive(Clone, Copy)]
pub(crate) struct RecordTable {
    pub def: TableDefinition<'static, &'static str, &'static [u8]>,
    pub what: &'static str,
}

impl RecordTable {
    fn parse<T: DeserializeOwned>(&self, name: &str, json: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(json).map_err(|e| StoreError::BadRecord {
            what: self.what,
            name: name.to_string(),
            reason: e.to_string(),
        })
    }
}

impl Store {
    /// The record under `name`, if any.
    pub(crate) fn record<T: DeserializeOwned>(
        &self,
        table: RecordTable,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        // `open` lives as long as the transaction: a release waits for both.
        let open = self.db.get()?;
        let txn = open.begin_read().map_err(db)?;
        let t = txn.open_table(table.def).map_err(db)?;
        let value = t.get(name).map_err(db)?;
        value.map(|v| table.parse(name, v.value())).transpose()
    }

    /// Every record, by name.
    pub(crate) fn records<T: DeserializeOwned>(
        &self,
        table: RecordTable,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let open = self.db.get()?;
        let txn = open.begin_read().map_err(db)?;
        let t = txn.open_table(table.def).map_err(db)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(db)? {
            let (name, value) = entry.map_err(db)?;
            out.push((
                name.value().to_string(),
                table.parse(name.value(), value.value())?,
            ));
        }
        Ok(out)
    }

    /// Saves `record` under `name`, durably: once the caller is told, it is
    /// on disk (and so is every key-value write before it).
    pub(crate) fn save_record<T: Serialize>(
        &self,
        table: RecordTable,
        name: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record).expect("a record always serialises");
        let open = self.db.get()?;
        let mut txn = open.begin_write().map_err(db)?;
        txn.set_durability(Durability::Immediate).map_err(db)?;
        txn.open_table(table.def)
            .map_err(db)?
            .insert(name, json.as_slice())
            .map_err(db)?;
        txn.commit().map_err(db)
    }

    /// Removes `name`, durably; whether it was there.
    pub(crate) fn remove_record(&self, table: RecordTable, name: &str) -> Result<bool, StoreError> {
        let open = self.db.get()?;
        let mut txn = open.begin_write().map_err(db)?;
        txn.set_durability(Durability::Immediate).map_err(db)?;
        let removed = txn
            .open_table(table.def)
            .map_err(db)?
            .remove(name)
            .map_err(db)?
            .is_some();
        txn.commit().map_err(db)?;
        Ok(removed)
    }
}
