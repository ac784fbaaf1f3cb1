//! `EbpfRecord`s: what each eBPF program was loaded as (hook, program,
//! object digest), so that a restarted server lists, replaces and exports
//! the programs that kept running in the kernel while it was gone.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::db;
use crate::{Store, StoreError};

/// `program name → EbpfRecord as JSON`.
pub(crate) const EBPF: TableDefinition<&str, &[u8]> = TableDefinition::new("ebpf");

/// One eBPF program as hotswap placed it. The program itself lives in the
/// kernel, pinned in bpffs; this is what the pins cannot say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EbpfRecord {
    /// Where it is attached, as `hotswap ebpf load --attach` takes it.
    pub hook: String,
    /// Its name in the object.
    pub program: String,
    /// The SHA-256 of the object it was loaded from (hex).
    pub sha256: String,
    /// 1 for the first load, then one more per replacement.
    pub revision: u64,
    /// When the running revision was placed, in ms since the Unix epoch.
    pub placed_at_ms: u64,
}

impl Store {
    /// Every eBPF program's record, by name.
    pub fn ebpf_programs(&self) -> Result<Vec<(String, EbpfRecord)>, StoreError> {
        let open = self.db.get()?;
        let txn = open.begin_read().map_err(db)?;
        let table = txn.open_table(EBPF).map_err(db)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db)? {
            let (name, value) = entry.map_err(db)?;
            out.push((
                name.value().to_string(),
                parse(name.value(), value.value())?,
            ));
        }
        Ok(out)
    }

    /// One eBPF program's record, if the store has one.
    pub fn ebpf_program(&self, name: &str) -> Result<Option<EbpfRecord>, StoreError> {
        let open = self.db.get()?;
        let txn = open.begin_read().map_err(db)?;
        let table = txn.open_table(EBPF).map_err(db)?;
        let value = table.get(name).map_err(db)?;
        value.map(|v| parse(name, v.value())).transpose()
    }

    /// Saves an eBPF program's record durably.
    pub fn save_ebpf_program(&self, name: &str, record: &EbpfRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record).expect("a record always serialises");
        let open = self.db.get()?;
        let mut txn = open.begin_write().map_err(db)?;
        txn.set_durability(Durability::Immediate).map_err(db)?;
        txn.open_table(EBPF)
            .map_err(db)?
            .insert(name, json.as_slice())
            .map_err(db)?;
        txn.commit().map_err(db)
    }

    /// Forgets an eBPF program's record.
    pub fn remove_ebpf_program(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_record(EBPF, name)
    }
}

fn parse(name: &str, json: &[u8]) -> Result<EbpfRecord, StoreError> {
    serde_json::from_slice(json).map_err(|e| StoreError::BadRecord {
        slot: format!("ebpf/{name}"),
        reason: e.to_string(),
    })
}
