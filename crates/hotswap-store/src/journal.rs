//! The store as the slots' [`Journal`]: each slot's [`SlotState`] and the
//! event log, with a state and the events that made it committed in one
//! redb transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hotswap_core::{Event, Journal, JournalError, KvChange, SlotState};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::artifacts::Artifacts;
use crate::error::db;
use crate::handle::DbHandle;
use crate::snapshot::{self, ChangeError};
use crate::table::RecordTable;
use crate::{check_slot_name, Store, StoreError};

/// `slot name → SlotState as JSON`.
pub(crate) const STATES: RecordTable = RecordTable {
    def: TableDefinition::new("slot_state"),
    what: "slot",
};

/// `event seq → Event as JSON`: the event log, oldest first.
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// How many events the log keeps unless told otherwise.
pub const DEFAULT_EVENT_RETENTION: usize = 10_000;

/// The store's [`Journal`]: what [`Store::journal`] hands to the event bus.
pub struct StoreJournal {
    db: Arc<DbHandle>,
    artifacts: Artifacts,
    dirty: Arc<AtomicBool>,
    retention: usize,
}

impl Store {
    /// The store as a [`Journal`] that keeps the newest `retention` events
    /// (at least 1).
    pub fn journal(&self, retention: usize) -> Arc<StoreJournal> {
        Arc::new(StoreJournal {
            db: self.db.clone(),
            artifacts: self.artifacts.clone(),
            dirty: self.dirty.clone(),
            retention: retention.max(1),
        })
    }

    /// Every slot's state, by name.
    pub fn slot_states(&self) -> Result<Vec<(String, SlotState)>, StoreError> {
        self.records(STATES)
    }

    /// One slot's state, if it has one.
    pub fn slot_state(&self, name: &str) -> Result<Option<SlotState>, StoreError> {
        self.record(STATES, name)
    }

    /// The newest `limit` events of the log, oldest first. An unreadable
    /// entry (written by a later version, say) is skipped, not fatal: the
    /// log is history, the states are the facts.
    pub fn events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let open = self.db.get()?;
        let txn = open.begin_read().map_err(db)?;
        let table = txn.open_table(EVENTS).map_err(db)?;
        let mut events = Vec::with_capacity(limit.min(4096));
        for entry in table.iter().map_err(db)?.rev().take(limit) {
            let (seq, json) = entry.map_err(db)?;
            match serde_json::from_slice::<Event>(json.value()) {
                Ok(e) => events.push(e),
                Err(e) => {
                    tracing::warn!(seq = seq.value(), error = %e, "skipping an unreadable event")
                }
            }
        }
        events.reverse();
        Ok(events)
    }
}

impl StoreJournal {
    fn write(&self, txn: &WriteTransaction, events: &[Event]) -> Result<(), redb::Error> {
        let mut table = txn.open_table(EVENTS)?;
        for e in events {
            let json = serde_json::to_vec(e).expect("an event always serialises");
            table.insert(e.seq, json.as_slice())?;
        }
        // Bounded: drop what falls out of the retention window.
        if let Some(last) = events.last() {
            let cutoff = last.seq.saturating_sub(self.retention as u64);
            if cutoff > 0 {
                table.retain_in(..=cutoff, |_, _| false)?;
            }
        }
        Ok(())
    }
}

impl Journal for StoreJournal {
    fn commit(
        &self,
        slot: &str,
        state: &SlotState,
        events: &[Event],
        kv: KvChange<'_>,
    ) -> Result<(), JournalError> {
        let fail = |e: &dyn std::fmt::Display| JournalError(e.to_string());
        check_slot_name(slot).map_err(|e| fail(&e))?;
        // A state never names code that is not on disk.
        if let Some(missing) = state.digests().find(|d| !self.artifacts.has(d)) {
            return Err(fail(&StoreError::NotFound(missing)));
        }
        let json = serde_json::to_vec(state).expect("a slot state always serialises");
        let open = self.db.get().map_err(|e| fail(&e))?;
        let run = || -> Result<(), ChangeError> {
            let mut txn = open.begin_write().map_err(redb::Error::from)?;
            // Durable: once a change is acknowledged, it is on disk (and so
            // is every key-value write before it).
            txn.set_durability(Durability::Immediate)
                .map_err(redb::Error::from)?;
            snapshot::apply(&txn, slot, state, kv)?;
            txn.open_table(STATES.def)?.insert(slot, json.as_slice())?;
            self.write(&txn, events)?;
            txn.commit().map_err(redb::Error::from)?;
            Ok(())
        };
        run().map_err(|e| match e {
            ChangeError::Db(e) => fail(&db(e)),
            other => fail(&other),
        })
    }

    fn append(&self, events: &[Event]) {
        let Ok(open) = self.db.get() else {
            // Released to the next process of an upgrade: these events are
            // in memory only, and the next process starts its own.
            return;
        };
        let run = || -> Result<(), redb::Error> {
            let mut txn = open.begin_write()?;
            // Made durable by the flusher within its interval, like
            // key-value writes: nothing depends on these being on disk.
            txn.set_durability(Durability::None)?;
            self.write(&txn, events)?;
            txn.commit()?;
            Ok(())
        };
        match run() {
            Ok(()) => self.dirty.store(true, Ordering::Release),
            Err(e) => tracing::error!(error = %e, "could not write events to the log"),
        }
    }
}
