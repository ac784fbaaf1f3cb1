//! The server's counters (calls, swaps, rollbacks per slot and revision),
//! kept at a clean stop so that the next start carries them on, as an
//! upgrade hands them over. Taken once: a later crash starts from zero
//! rather than from numbers that are no longer the last ones.

use redb::TableDefinition;

use crate::table::RecordTable;
use crate::{Store, StoreError};

/// `"last-stop" → the counters as Prometheus text, as JSON`.
pub(crate) const COUNTERS: RecordTable = RecordTable {
    def: TableDefinition::new("counters"),
    what: "counters",
};

const LAST_STOP: &str = "last-stop";

impl Store {
    /// Keeps `counters` (the text of the server's counter series) for the
    /// next start.
    pub fn save_counters(&self, counters: &str) -> Result<(), StoreError> {
        self.save_record(COUNTERS, LAST_STOP, &counters)
    }

    /// The counters the last clean stop kept, forgetting them.
    pub fn take_counters(&self) -> Result<Option<String>, StoreError> {
        let counters = self.record::<String>(COUNTERS, LAST_STOP)?;
        if counters.is_some() {
            self.remove_record(COUNTERS, LAST_STOP)?;
        }
        Ok(counters)
    }
}
