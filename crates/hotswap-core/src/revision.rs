//! `Revision`: one activation of an artifact in a slot, and how it is retired.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::event::{EventBus, Subject};
use crate::reaper::{self, Latch};
use crate::{Artifact, Code, Digest, Kind, Manifest, Phase, Transition};

/// Where a revision is in its life, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevisionState {
    /// Serving new calls.
    Active,
    /// Serving a share of new calls, on trial.
    Canary,
    /// Replaced; finishing calls it already had.
    Draining,
    /// Shut down and freed; its artifact is kept for rollback.
    Retired,
    /// Taken out of service by a rollback, and drained. (While it drains,
    /// it is reported as [`RevisionState::Draining`].)
    RolledBack,
}

impl RevisionState {
    /// The name used in JSON and logs, e.g. `rolled-back`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RevisionState::Active => "active",
            RevisionState::Canary => "canary",
            RevisionState::Draining => "draining",
            RevisionState::Retired => "retired",
            RevisionState::RolledBack => "rolled-back",
        }
    }
}

impl std::fmt::Display for RevisionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A revision as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionInfo {
    /// The artifact's sha256.
    pub digest: Digest,
    /// The plugin's declared name.
    pub name: String,
    /// The plugin's declared version.
    pub version: String,
    /// The ABI version it was built for.
    pub abi: u32,
    /// What kind of code it is: `wasm` or `native`, so which tier runs it.
    #[serde(default)]
    pub kind: Kind,
    /// The activation number within its slot; grows by one per activation.
    pub generation: u64,
    /// Where it is in its life.
    pub state: RevisionState,
    /// The percent of calls it takes, while it serves (active or canary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

/// What a record is to its slot, for reporting.
#[derive(Clone, Copy)]
pub(crate) enum Role {
    Active { weight: u8 },
    Canary { weight: u8 },
    Previous,
}

/// The slot's bookkeeping for a revision that is or was active.
#[derive(Clone)]
pub(crate) struct Record {
    pub artifact: Artifact,
    pub manifest: Manifest,
    pub generation: u64,
    pub rolled_back: bool,
    /// Opened once the revision is shut down and freed.
    pub retired: Arc<Latch>,
}

impl Record {
    pub fn info(&self, role: Role) -> RevisionInfo {
        let (state, weight) = match role {
            Role::Active { weight } => (RevisionState::Active, Some(weight)),
            Role::Canary { weight } => (RevisionState::Canary, Some(weight)),
            Role::Previous => (self.past_state(), None),
        };
        RevisionInfo {
            digest: self.artifact.digest(),
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            abi: self.manifest.abi,
            kind: self.artifact.kind(),
            generation: self.generation,
            state,
            weight,
        }
    }

    fn past_state(&self) -> RevisionState {
        if !self.retired.is_open() {
            RevisionState::Draining
        } else if self.rolled_back {
            RevisionState::RolledBack
        } else {
            RevisionState::Retired
        }
    }

    pub fn subject(&self) -> Subject {
        Subject {
            digest: Some(self.artifact.digest()),
            version: Some(self.manifest.version.clone()),
            generation: Some(self.generation),
        }
    }
}

/// A revision that can serve calls. Calls hold it (through the slot's
/// `ArcSwap`) for as long as they run. Replaced with no call holding it, it
/// is retired by the swapping thread ([`Live::retire_now`]); otherwise, when
/// the last holder lets go, the code is handed to the cleanup thread, so
/// whoever drops it, a caller included, only pays for a channel send.
pub(crate) struct Live<C: Code> {
    pub generation: u64,
    code: Option<C>,
    retire: Option<Retire>,
}

struct Retire {
    events: EventBus,
    slot: Arc<str>,
    subject: Subject,
    latch: Arc<Latch>,
    drain_started: OnceLock<Instant>,
}

impl<C: Code> Live<C> {
    pub fn new(code: C, record: &Record, slot: Arc<str>, events: EventBus) -> Live<C> {
        Live {
            generation: record.generation,
            code: Some(code),
            retire: Some(Retire {
                events,
                slot,
                subject: record.subject(),
                latch: record.retired.clone(),
                drain_started: OnceLock::new(),
            }),
        }
    }

    #[inline]
    pub fn code(&self) -> &C {
        // Only `drop` takes it.
        self.code.as_ref().expect("live revision without code")
    }

    /// Marks the start of draining, for the duration on the `retired` event.
    pub fn start_draining(&self) {
        if let Some(retire) = &self.retire {
            let _ = retire.drain_started.set(Instant::now());
        }
    }
}

impl<C: Code> Live<C> {
    /// Retires this revision on the current thread: for the swapping thread,
    /// when no call holds the revision any more, so the next swap need not
    /// wait for the cleanup thread to wake up.
    pub fn retire_now(mut self) {
        if let Some(job) = self.retirement() {
            job();
        }
    }

    /// Shutdown, free, event, latch: everything retiring takes, as one job.
    fn retirement(&mut self) -> Option<Box<dyn FnOnce() + Send>> {
        let (Some(code), Some(retire)) = (self.code.take(), self.retire.take()) else {
            return None;
        };
        Some(Box::new(move || {
            // A panicking shutdown must still free the revision and open the
            // latch: otherwise every later deploy of this slot would wait on
            // it and fail.
            let freed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                code.shutdown();
                drop(code);
            }));
            if freed.is_err() {
                tracing::error!(slot = &*retire.slot, "a revision's shutdown panicked");
            }
            let drained = retire.drain_started.get().map(|t| t.elapsed());
            retire.events.publish(
                &retire.slot,
                Transition::Retired,
                Phase::Retire,
                &retire.subject,
                drained,
                None,
            );
            retire.latch.open();
        }))
    }
}

impl<C: Code> Drop for Live<C> {
    /// The last holder lets go: if that is a call, it only pays for handing
    /// the revision to the cleanup thread.
    fn drop(&mut self) {
        if let Some(job) = self.retirement() {
            reaper::retire(job);
        }
    }
}
