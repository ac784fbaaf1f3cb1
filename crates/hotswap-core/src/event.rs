//! `Event` and `EventBus`: every protocol transition, for logs, metrics and subscribers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::state::{Note, Revision};
use crate::{Digest, Journal, JournalError, KvChange, SlotState};

/// The phases of the swap protocol, in order (the diagram at the top of
/// this crate's docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Bytes arrived and were hashed.
    Stage,
    /// Checked against the contract without running.
    Validate,
    /// Compiled, instantiated, initialised, health-checked.
    Prepare,
    /// Published: new calls go to it.
    Activate,
    /// The slot's state converted to the schema it reads, while calls wait.
    Migrate,
    /// Replaced: finishing the calls it already has.
    Drain,
    /// Shut down and freed.
    Retire,
    /// Brought back after a restart or an upgrade, as it was.
    Restore,
}

/// What happened to a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transition {
    /// Bytes arrived and were hashed.
    Staged,
    /// Passed validation.
    Validated,
    /// Compiled, started and healthy.
    Prepared,
    /// Now serving new calls.
    Activated,
    /// Replaced; finishing its in-flight calls.
    Draining,
    /// Shut down and freed.
    Retired,
    /// Failed in the phase named by the event; nothing changed.
    Failed,
    /// Taken out of service by a rollback.
    RolledBack,
    /// Brought back after a restart or an upgrade, as it was (the reason
    /// says what could not be, if anything).
    Restored,
    /// The slot's state was converted to its schema (or, on a rollback,
    /// returned to the snapshot of the schema it reads).
    Migrated,
}

impl Transition {
    /// The name used in JSON and logs, e.g. `rolled-back`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Transition::Staged => "staged",
            Transition::Validated => "validated",
            Transition::Prepared => "prepared",
            Transition::Activated => "activated",
            Transition::Draining => "draining",
            Transition::Retired => "retired",
            Transition::Failed => "failed",
            Transition::RolledBack => "rolled-back",
            Transition::Restored => "restored",
            Transition::Migrated => "migrated",
        }
    }
}

impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One protocol transition of one revision of one slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the event log, starting at 1; it carries on across
    /// restarts and upgrades when the bus has a journal.
    pub seq: u64,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The slot.
    pub slot: String,
    /// What happened.
    pub transition: Transition,
    /// The phase it happened in (for `failed`, the phase that failed).
    pub phase: Phase,
    /// The revision's digest, once known.
    pub digest: Option<Digest>,
    /// The plugin's declared version, once known.
    pub version: Option<String>,
    /// The activation number, for revisions that were or are active.
    pub generation: Option<u64>,
    /// How long the phase took, in microseconds.
    pub duration_us: Option<u64>,
    /// Why, for failures and rollbacks.
    pub reason: Option<String>,
}

/// What an event is about: the revision's digest, version and generation,
/// as far as they are known.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// The artifact's digest.
    pub digest: Option<Digest>,
    /// Its declared version (or, for an eBPF program, its name in the object).
    pub version: Option<String>,
    /// Its activation number (or an eBPF program's revision).
    pub generation: Option<u64>,
}

impl Subject {
    /// What an event about `revision` says about it.
    pub fn of(revision: &Revision) -> Subject {
        Subject {
            digest: Some(revision.digest),
            version: Some(revision.manifest.version.clone()),
            generation: Some(revision.generation),
        }
    }
}

const RECENT: usize = 1024;

/// Fans events out to subscribers, keeps the most recent ones, and hands
/// every one to the [`Journal`], if there is one.
///
/// Publishing never blocks on a subscriber: one that falls behind misses
/// events and is told how many (tokio's broadcast semantics), rather than
/// slowing down a swap.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    tx: broadcast::Sender<Event>,
    recent: Mutex<VecDeque<Event>>,
    seq: AtomicU64,
    journal: Option<Arc<dyn Journal>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::build(None, Vec::new())
    }
}

impl EventBus {
    /// A new bus with no subscribers and no journal.
    pub fn new() -> EventBus {
        EventBus::default()
    }

    /// A bus that records into `journal`, continuing `history` (the events
    /// the journal kept, oldest first): numbering goes on after the last.
    pub fn with_journal(journal: Arc<dyn Journal>, history: Vec<Event>) -> EventBus {
        EventBus::build(Some(journal), history)
    }

    fn build(journal: Option<Arc<dyn Journal>>, history: Vec<Event>) -> EventBus {
        let (tx, _) = broadcast::channel(RECENT);
        let last = history.last().map_or(0, |e| e.seq);
        let skip = history.len().saturating_sub(RECENT);
        let mut recent = VecDeque::with_capacity(RECENT);
        recent.extend(history.into_iter().skip(skip));
        EventBus {
            inner: Arc::new(BusInner {
                tx,
                recent: Mutex::new(recent),
                seq: AtomicU64::new(last),
                journal,
            }),
        }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.tx.subscribe()
    }

    /// The most recent events (up to 1024), oldest first.
    pub fn recent(&self) -> Vec<Event> {
        let recent = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }

    /// Publishes an event that changes no slot state (a failure, a
    /// retirement, or a change of another tier's books, such as an eBPF
    /// program's): numbered, kept, sent and appended to the journal.
    pub fn publish(
        &self,
        slot: &str,
        transition: Transition,
        phase: Phase,
        subject: &Subject,
        duration: Option<Duration>,
        reason: Option<String>,
    ) {
        let mut recent = self.lock();
        // Numbered under the lock so `recent` and the stream agree on order.
        let event = self.stamp(slot, transition, phase, subject, duration, reason);
        self.send(&mut recent, std::slice::from_ref(&event));
        drop(recent);
        if let Some(journal) = &self.inner.journal {
            journal.append(std::slice::from_ref(&event));
        }
        log(&event);
    }

    /// Numbers `notes` as events, has the journal commit them with `state`
    /// and, only if it did, runs `publish` (the atomic store that makes the
    /// state serve) and sends the events. Nothing is sent, numbered or run
    /// when the commit fails.
    pub(crate) fn commit<R>(
        &self,
        slot: &str,
        state: &SlotState,
        notes: Vec<(Note, Option<Duration>)>,
        kv: KvChange<'_>,
        publish: impl FnOnce() -> R,
    ) -> Result<R, JournalError> {
        let mut recent = self.lock();
        let first = self.inner.seq.load(Ordering::Relaxed);
        let events: Vec<Event> = notes
            .into_iter()
            .map(|(n, took)| {
                let subject = Subject::of(&n.revision);
                self.stamp(slot, n.transition, n.phase, &subject, took, n.reason)
            })
            .collect();
        let recorded = match (&self.inner.journal, kv) {
            (Some(journal), kv) => journal.commit(slot, state, &events, kv),
            (None, KvChange::Keep) => Ok(()),
            (None, _) => Err(JournalError(
                "converting a slot's state commits it with the slot's books, and this slot keeps no books (open it over a store)".into(),
            )),
        };
        if let Err(e) = recorded {
            self.inner.seq.store(first, Ordering::Relaxed);
            return Err(e);
        }
        let published = publish();
        self.send(&mut recent, &events);
        drop(recent);
        events.iter().for_each(log);
        Ok(published)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        self.inner.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next event; call with the lock held.
    fn stamp(
        &self,
        slot: &str,
        transition: Transition,
        phase: Phase,
        subject: &Subject,
        duration: Option<Duration>,
        reason: Option<String>,
    ) -> Event {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Event {
            seq: self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms,
            slot: slot.to_string(),
            transition,
            phase,
            digest: subject.digest,
            version: subject.version.clone(),
            generation: subject.generation,
            duration_us: duration.map(|d| d.as_micros() as u64),
            reason,
        }
    }

    /// Keeps and broadcasts `events`; call with the lock held, so
    /// subscribers see the order `recent` has. A broadcast send never
    /// blocks, and an error only means nobody listens.
    fn send(&self, recent: &mut VecDeque<Event>, events: &[Event]) {
        for event in events {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
            let _ = self.inner.tx.send(event.clone());
        }
    }
}

/// Logged outside the lock: a slow log writer must not hold up others.
fn log(event: &Event) {
    tracing::info!(
        slot = event.slot,
        transition = ?event.transition,
        phase = ?event.phase,
        digest = ?event.digest,
        version = event.version.as_deref(),
        generation = event.generation,
        duration_us = event.duration_us,
        reason = event.reason.as_deref(),
        "revision event"
    );
}

#[cfg(test)]
mod tests {
    use super::Transition;
    use crate::RevisionState;

    /// The names shown to people must be the ones the JSON uses.
    #[test]
    fn display_names_match_the_json() {
        use RevisionState as S;
        use Transition as T;
        for t in [
            T::Staged,
            T::Validated,
            T::Prepared,
            T::Activated,
            T::Draining,
            T::Retired,
            T::Failed,
            T::RolledBack,
            T::Restored,
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for s in [
            S::Active,
            S::Canary,
            S::Draining,
            S::Retired,
            S::RolledBack,
            S::Failed,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
