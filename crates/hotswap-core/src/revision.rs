//! `Revision`: one activation of an artifact in a slot, and how it is retired.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::event::{EventBus, Subject};
use crate::reaper::{self, Latch};
use crate::state::Revision;
use crate::{Code, Digest, Kind, Phase, Transition};

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
    /// In the slot's books, but its code could not be brought back after a
    /// restart (the slot's `fault` says why); it serves no calls.
    Failed,
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
            RevisionState::Failed => "failed",
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

impl Revision {
    /// The revision as operators see it, in `state`, taking `weight`
    /// percent of calls if it serves.
    pub(crate) fn info(&self, state: RevisionState, weight: Option<u8>) -> RevisionInfo {
        RevisionInfo {
            digest: self.digest,
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            abi: self.manifest.abi,
            kind: self.kind,
            generation: self.generation,
            state,
            weight,
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
    pub digest: Digest,
    /// Which tier runs it, so a caller knows how to call it.
    pub kind: Kind,
    code: Option<C>,
    retire: Option<Retire>,
}

struct Retire {
    /// Set when the slot itself goes away (a process stopping): the code
    /// is freed, but that is no event in the revision's life.
    quiet: std::sync::atomic::AtomicBool,
    events: EventBus,
    slot: Arc<str>,
    subject: Subject,
    latch: Arc<Latch>,
    drain_started: OnceLock<Instant>,
}

impl<C: Code> Live<C> {
    pub fn new(
        code: C,
        revision: &Revision,
        latch: Arc<Latch>,
        slot: Arc<str>,
        events: EventBus,
    ) -> Live<C> {
        Live {
            kind: revision.kind,
            generation: revision.generation,
            digest: revision.digest,
            code: Some(code),
            retire: Some(Retire {
                quiet: std::sync::atomic::AtomicBool::new(false),
                events,
                slot,
                subject: Subject::of(revision),
                latch,
                drain_started: OnceLock::new(),
            }),
        }
    }

    #[inline]
    pub fn code(&self) -> &C {
        // Only `drop` takes it.
        self.code.as_ref().expect("live revision without code")
    }

    /// Frees the code without a `retired` event: the slot is going away,
    /// not replacing this revision, and a restart restores it.
    pub fn silence(&self) {
        if let Some(retire) = &self.retire {
            retire
                .quiet
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
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
            if !retire.quiet.load(std::sync::atomic::Ordering::Relaxed) {
                retire.events.publish(
                    &retire.slot,
                    Transition::Retired,
                    Phase::Retire,
                    &retire.subject,
                    drained,
                    None,
                );
            }
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
