//! `Journal`: where a slot's state and the events that change it are kept,
//! so that a restart finds them again exactly.

use crate::{Event, KvChange, SlotState};

/// Keeps slot states and events. The store implements it; without one
/// (tests, embedding), a slot's books live only as long as the process,
/// and a migration of its state is refused: it must commit with the books.
///
/// The contract that makes "restore, never replay" hold: a state and the
/// events of the transition that made it are committed **together**, so
/// after a crash the log never tells of a change the state does not show,
/// nor the other way round.
pub trait Journal: Send + Sync + 'static {
    /// Durably records `state` as `slot`'s state, with `events`, and makes
    /// `kv` to the slot's key-value state, in one transaction. Nothing is
    /// written when it fails.
    fn commit(
        &self,
        slot: &str,
        state: &SlotState,
        events: &[Event],
        kv: KvChange<'_>,
    ) -> Result<(), JournalError>;

    /// Records events that change no state (staged, failed, retired,
    /// restored). They may reach the disk a moment later; a failure is
    /// logged, never fatal, since the state does not depend on them.
    fn append(&self, events: &[Event]);
}

/// Why a change could not be recorded; the slot serves as before.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot record the change: {0}")]
pub struct JournalError(pub String);
