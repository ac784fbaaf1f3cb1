//! `EbpfRecord`s: what each eBPF program was loaded as (hook, program,
//! object digest), so that a restarted server lists, replaces and exports
//! the programs that kept running in the kernel while it was gone.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::table::RecordTable;
use crate::{Store, StoreError};

/// `program name → EbpfRecord as JSON`.
pub(crate) const EBPF: RecordTable = RecordTable {
    def: TableDefinition::new("ebpf"),
    what: "eBPF program",
};

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
        self.records(EBPF)
    }

    /// One eBPF program's record, if the store has one.
    pub fn ebpf_program(&self, name: &str) -> Result<Option<EbpfRecord>, StoreError> {
        self.record(EBPF, name)
    }

    /// Saves an eBPF program's record durably.
    pub fn save_ebpf_program(&self, name: &str, record: &EbpfRecord) -> Result<(), StoreError> {
        self.save_record(EBPF, name, record)
    }

    /// Forgets an eBPF program's record.
    pub fn remove_ebpf_program(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_record(EBPF, name)
    }
}
