//! `Event` and `EventBus`: every protocol transition, for logs, metrics and subscribers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::Digest;

/// The phases of the swap protocol, in order. See DESIGN.md.
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
    /// Replaced: finishing the calls it already has.
    Drain,
    /// Shut down and freed.
    Retire,
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
    /// Position in this process's event stream, starting at 1.
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

/// What an event is about, filled in by the slot before publishing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subject {
    pub digest: Option<Digest>,
    pub version: Option<String>,
    pub generation: Option<u64>,
}

const RECENT: usize = 1024;

/// Fans events out to subscribers and keeps the most recent ones.
///
/// Publishing never blocks: a subscriber that falls behind misses events and
/// is told how many (tokio's broadcast semantics), rather than slowing down a
/// swap.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    tx: broadcast::Sender<Event>,
    recent: Mutex<VecDeque<Event>>,
    seq: AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(RECENT);
        EventBus {
            inner: Arc::new(BusInner {
                tx,
                recent: Mutex::new(VecDeque::with_capacity(RECENT)),
                seq: AtomicU64::new(0),
            }),
        }
    }
}

impl EventBus {
    /// A new bus with no subscribers.
    pub fn new() -> EventBus {
        EventBus::default()
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

    pub(crate) fn publish(
        &self,
        slot: &str,
        transition: Transition,
        phase: Phase,
        subject: &Subject,
        duration: Option<Duration>,
        reason: Option<String>,
    ) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut recent = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        // Numbered under the lock so `recent` and the stream agree on order.
        let event = Event {
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
        };
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        // Sent under the lock so subscribers see the same order as `recent`;
        // a broadcast send never blocks. An error only means nobody listens.
        let _ = self.inner.tx.send(event.clone());
        drop(recent);
        // Logged outside the lock: a slow log writer must not hold up others.
        tracing::info!(
            slot,
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
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for s in [S::Active, S::Canary, S::Draining, S::Retired, S::RolledBack] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
