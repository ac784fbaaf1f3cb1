//! The eBPF tier's program records: what each program was loaded as, so
//! that a restarted server lists, replaces and exports the programs that
//! kept running in the kernel while it was gone. Their type belongs to the
//! tier (hotswap-server's `ProgramRecord`); the store keeps them as JSON.

use redb::TableDefinition;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::table::RecordTable;
use crate::{Store, StoreError};

/// `program name → record as JSON`.
pub(crate) const EBPF: RecordTable = RecordTable {
    def: TableDefinition::new("ebpf"),
    what: "eBPF program",
};

impl Store {
    /// Every eBPF program's record, by name.
    pub fn ebpf_programs<R: DeserializeOwned>(&self) -> Result<Vec<(String, R)>, StoreError> {
        self.records(EBPF)
    }

    /// One eBPF program's record, if the store has one.
    pub fn ebpf_program<R: DeserializeOwned>(&self, name: &str) -> Result<Option<R>, StoreError> {
        self.record(EBPF, name)
    }

    /// Saves an eBPF program's record durably.
    pub fn save_ebpf_program<R: Serialize>(
        &self,
        name: &str,
        record: &R,
    ) -> Result<(), StoreError> {
        self.save_record(EBPF, name, record)
    }

    /// Forgets an eBPF program's record.
    pub fn remove_ebpf_program(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_record(EBPF, name)
    }
}
