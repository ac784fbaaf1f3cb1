//! `Slot`: a named place that serves one active revision and runs the swap
//! protocol to replace it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::error::error_chain;
use crate::event::{EventBus, Subject};
use crate::lease::Lease;
use crate::reaper::Latch;
use crate::revision::Live;
use crate::serving::{Canary, Outcomes, Routed, Serving};
use crate::state::{Candidate, Next, Note, Revision, SchemaShift, StateError};
use crate::{
    Artifact, CallError, Code, DeployError, Digest, Kind, KvChange, KvStore, MigrateError,
    Migration, Phase, RevisionInfo, RevisionState, SlotContext, SlotState, Tier, Transition,
};

/// How a slot behaves; the defaults suit a server.
#[derive(Debug, Clone)]
pub struct SlotOptions {
    /// How long a deploy waits for the revision before the active one to
    /// finish its in-flight calls. A slot never has more than two live
    /// revisions, so a deploy that would make a third fails with
    /// [`DeployError::StillDraining`] after this long.
    pub drain_timeout: Duration,
    /// How long calls may wait while the slot's state is converted to a
    /// new schema (drain, `hs_migrate`): a migration that would pause them
    /// longer is aborted, and they run on the active revision.
    pub pause_limit: Duration,
}

impl Default for SlotOptions {
    fn default() -> Self {
        SlotOptions {
            drain_timeout: Duration::from_secs(30),
            pause_limit: Duration::from_millis(250),
        }
    }
}

/// A slot as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotStatus {
    /// The slot's name.
    pub name: String,
    /// The revision serving new calls.
    pub active: Option<RevisionInfo>,
    /// The revision before it: draining, or retired and kept for rollback.
    pub previous: Option<RevisionInfo>,
    /// A canary taking a share of the calls, if one is on trial.
    pub canary: Option<RevisionInfo>,
    /// Why the slot does not serve as its books say: a revision that could
    /// not be restored after a restart. Cleared by the next change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// Which revision served a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Its activation number.
    pub generation: u64,
    /// Its artifact's digest.
    pub digest: Digest,
    /// Whether it was the canary.
    pub canary: bool,
}

/// A canary's record so far, for judging it against an error budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryStats {
    /// The canary revision.
    pub digest: Digest,
    /// Its share of calls, in percent.
    pub weight: u8,
    /// The budget it started with, if any.
    pub budget: Option<crate::ErrorBudget>,
    /// Calls it served since it started.
    pub calls: u64,
    /// Of those, how many failed.
    pub errors: u64,
}

/// A named slot serving one active revision of tier `T`.
///
/// Calls and swaps never wait for each other: a call reads the active revision
/// with one atomic load and runs on it to the end, even if a swap publishes a
/// new one meanwhile. Swaps are serialised among themselves.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use hotswap_core::*;
///
/// // A toy tier whose "code" is a prefix to put before the input.
/// struct Prefix;
/// struct PrefixCode(Vec<u8>);
///
/// impl Tier for Prefix {
///     type Code = PrefixCode;
///     fn validate(&self, a: &Artifact) -> Result<Manifest, TierError> {
///         Ok(Manifest { name: "prefix".into(), version: String::from_utf8(a.bytes().to_vec())?, abi: 1, state_schema: 0 })
///     }
///     fn prepare(&self, a: &Artifact, _: &Manifest, _: &SlotContext) -> Result<PrefixCode, TierError> {
///         Ok(PrefixCode(a.bytes().to_vec()))
///     }
/// }
/// impl Code for PrefixCode {
///     fn call(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CallError> {
///         out.extend_from_slice(&self.0);
///         out.extend_from_slice(input);
///         Ok(())
///     }
/// }
///
/// let slot = Slot::new("hello", Arc::new(Prefix), Arc::new(MemoryKv::default()), EventBus::new());
/// slot.deploy(Artifact::new(b"v1:".to_vec()), None).unwrap();
/// assert_eq!(slot.call(b"x").unwrap(), b"v1:x");
/// slot.deploy(Artifact::new(b"v2:".to_vec()), None).unwrap();
/// assert_eq!(slot.call(b"x").unwrap(), b"v2:x");
/// let v2 = slot.active().unwrap().digest;
/// slot.rollback(&v2, "v2 misbehaves").unwrap();
/// assert_eq!(slot.call(b"x").unwrap(), b"v1:x");
/// ```
pub struct Slot<T: Tier> {
    ctx: SlotContext,
    tier: Arc<T>,
    events: EventBus,
    options: SlotOptions,
    /// The books and the code that serves them, as one value.
    serving: ArcSwap<Serving<T::Code>>,
    /// Held for a whole change (deploy, rollback, promotion...), so they
    /// run one at a time and each sees the state the last one left.
    swapping: Mutex<()>,
    /// The bytes of the revisions the books name, to prepare one again on
    /// rollback. A cache of bytes, not a fact: the books say which.
    artifacts: Mutex<HashMap<Digest, Artifact>>,
}

impl<T: Tier> Slot<T> {
    /// A new, empty slot.
    pub fn new(name: &str, tier: Arc<T>, kv: Arc<dyn KvStore>, events: EventBus) -> Slot<T> {
        Slot::with_options(name, tier, kv, events, SlotOptions::default())
    }

    /// A new, empty slot with non-default options.
    pub fn with_options(
        name: &str,
        tier: Arc<T>,
        kv: Arc<dyn KvStore>,
        events: EventBus,
        options: SlotOptions,
    ) -> Slot<T> {
        Slot {
            ctx: SlotContext {
                slot: Arc::from(name),
                kv,
            },
            tier,
            events,
            options,
            serving: ArcSwap::from_pointee(Serving::empty()),
            swapping: Mutex::new(()),
            artifacts: Mutex::new(HashMap::new()),
        }
    }

    /// A slot brought back as `state` says it was (after a restart or an
    /// upgrade): the same revisions, generations, canary and weight, with
    /// nothing re-enacted. Each serving revision is prepared from its
    /// artifact, which `artifact` fetches by digest. What cannot be brought
    /// back leaves the slot visibly at fault ([`SlotStatus::fault`]); the
    /// previous revision serves in place of an active one that cannot, if
    /// it can. One `restored` event says how it went.
    pub fn restore(
        name: &str,
        tier: Arc<T>,
        kv: Arc<dyn KvStore>,
        events: EventBus,
        options: SlotOptions,
        state: SlotState,
        artifact: impl Fn(&Digest) -> Result<Artifact, String>,
    ) -> Slot<T> {
        let slot = Slot::with_options(name, tier, kv, events, options);
        slot.bring_back(state, artifact);
        slot
    }

    /// The slot's name.
    pub fn name(&self) -> &str {
        &self.ctx.slot
    }

    /// The slot's key-value state.
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.ctx.kv
    }

    /// The event bus this slot publishes to.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The slot's books, as they would be restored.
    pub fn state(&self) -> SlotState {
        self.serving.load().state.clone()
    }

    /// Calls the slot and returns the reply.
    pub fn call(&self, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let mut out = Vec::new();
        self.call_into(input, &mut out)?;
        Ok(out)
    }

    /// Calls the slot, appending the reply to `output`, and returns the
    /// generation of the revision that served the call.
    ///
    /// The revision is chosen once, when the call starts; a swap during the
    /// call does not move it. With a canary, a share of calls goes to it at
    /// random; see [`Slot::call_routed`] to route by a stable key.
    #[inline]
    pub fn call_into(&self, input: &[u8], output: &mut Vec<u8>) -> Result<u64, CallError> {
        self.call_routed(input, output, None).map(|s| s.generation)
    }

    /// Like [`Slot::call_into`], routing by `key` when there is a canary:
    /// the same key always goes to the same revision (for a given weight), so
    /// a client keyed by its id or address sticks to one.
    #[inline]
    pub fn call_routed(
        &self,
        input: &[u8],
        output: &mut Vec<u8>,
        key: Option<u64>,
    ) -> Result<Served, CallError> {
        let serving = self.admit()?;
        let (live, canary) = self.routed(&serving, key)?;
        let result = live.code().call(input, output);
        if let Some(outcomes) = canary {
            outcomes.record(result.is_ok());
        }
        result.map(|()| Served {
            generation: live.generation,
            digest: live.digest,
            canary: canary.is_some(),
        })
    }

    /// The kind of code the slot serves now, or `None` when it serves
    /// nothing: a caller's choice of how to call it (a component through
    /// [`Slot::lease`], a plugin through [`Slot::call_routed`]). One slot
    /// serves one kind at a time: a canary of another kind is refused.
    #[inline]
    pub fn kind(&self) -> Option<Kind> {
        self.serving.load().primary.as_ref().map(|live| live.kind)
    }

    /// Routes one call as [`Slot::call_routed`] does, and holds its
    /// revision in a [`Lease`] for as long as the call lasts: for calls
    /// that go on after a function returns, such as a component's HTTP
    /// response streaming its body. The caller runs the call on
    /// [`Lease::code`] and reports its outcome with [`Lease::record`].
    pub fn lease(&self, key: Option<u64>) -> Result<Lease<T::Code>, CallError> {
        let serving = self.admit()?;
        let (live, canary) = self.routed(&serving, key)?;
        let (live, canary) = (live.clone(), canary.cloned());
        Ok(Lease::new(
            arc_swap::Guard::into_inner(serving),
            live,
            canary,
        ))
    }

    /// What a call may run on now: waits while the slot is paused for a
    /// migration.
    #[inline]
    fn admit(&self) -> Result<arc_swap::Guard<Arc<Serving<T::Code>>>, CallError> {
        let serving = self.serving.load();
        if serving.pause.is_none() {
            return Ok(serving);
        }
        drop(serving);
        self.wait_for_resume()
    }

    /// The revision `serving` routes a call with `key` to, or why there is
    /// none.
    #[inline]
    fn routed<'s>(
        &self,
        serving: &'s Serving<T::Code>,
        key: Option<u64>,
    ) -> Result<Routed<'s, T::Code>, CallError> {
        serving.route(key).ok_or_else(|| match &serving.fault {
            Some(reason) => CallError::Unavailable {
                slot: self.name().to_string(),
                reason: reason.to_string(),
            },
            None => CallError::NoRevision {
                slot: self.name().to_string(),
            },
        })
    }

    /// A call that found the slot paused for a migration waits for it to
    /// resume, at most the pause limit: a migration never pauses longer.
    #[cold]
    fn wait_for_resume(&self) -> Result<arc_swap::Guard<Arc<Serving<T::Code>>>, CallError> {
        let until = Instant::now() + self.options.pause_limit;
        loop {
            let serving = self.serving.load();
            let Some(gate) = serving.pause.clone() else {
                return Ok(serving);
            };
            drop(serving);
            let left = until.saturating_duration_since(Instant::now());
            if !gate.wait(left) {
                return Err(CallError::Unavailable {
                    slot: self.name().to_string(),
                    reason: format!(
                        "paused for a state migration for longer than {:?}",
                        self.options.pause_limit
                    ),
                });
            }
        }
    }

    /// Runs the whole protocol for `artifact`: stage (checking
    /// `expected_digest`, when given), validate, prepare, activate, and start
    /// draining the revision it replaces.
    ///
    /// On any error the active revision is untouched, and a `failed` event
    /// says why. Refused while a canary is on trial: promote it or roll it
    /// back first.
    pub fn deploy(
        &self,
        artifact: Artifact,
        expected_digest: Option<Digest>,
    ) -> Result<RevisionInfo, DeployError> {
        let info = self.enter(artifact, expected_digest, |s, c| s.deploy(c))?;
        Ok(info.active.expect("a deploy leaves an active revision"))
    }

    /// Runs the protocol for `artifact` as a **canary**: it takes `weight`
    /// percent of calls (clamped to 100) beside the active revision, until it
    /// is promoted ([`Slot::promote`]) or rolled back ([`Slot::rollback`]).
    /// `budget`, kept in the books with it, is what a judge of canaries
    /// ([`Slot::canary_stats`]) holds it to.
    pub fn deploy_canary(
        &self,
        artifact: Artifact,
        expected_digest: Option<Digest>,
        weight: u8,
        budget: Option<crate::ErrorBudget>,
    ) -> Result<RevisionInfo, DeployError> {
        let start = |s: &SlotState, c| s.start_canary(c, weight, budget);
        let info = self.enter(artifact, expected_digest, start)?;
        Ok(info.canary.expect("a canary deploy leaves a canary"))
    }

    /// Changes the share of calls (clamped to 100) of the canary `expect`.
    pub fn set_canary_weight(
        &self,
        expect: &Digest,
        weight: u8,
    ) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
        let next = self.serving.load().state.set_weight(expect, weight)?;
        let status = self.apply(next, None, Instant::now())?;
        Ok(status.canary.expect("a weight change keeps the canary"))
    }

    /// Makes the canary `expect` the active revision; the active one drains
    /// and becomes the previous. Refused, with [`StateError::Stale`], when
    /// `expect` is no longer the canary.
    pub fn promote(&self, expect: &Digest) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
        let next = self.serving.load().state.promote(expect)?;
        let status = self.apply(next, None, Instant::now())?;
        Ok(status
            .active
            .expect("a promotion leaves an active revision"))
    }

    /// Takes the canary `expect` out of service (the active revision takes
    /// every call again). Unlike [`Slot::rollback`], never touches the
    /// active revision: an automatic judge of canaries (the error budget)
    /// aborts, so a canary promoted meanwhile stays promoted. Returns the
    /// active revision.
    pub fn abort(&self, expect: &Digest, reason: &str) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
        let next = self.serving.load().state.abort(expect, reason)?;
        let status = self.apply(next, None, Instant::now())?;
        Ok(status.active.expect("an abort keeps the active revision"))
    }

    /// Rolls back the revision `expect`: with a canary on trial (then
    /// `expect` names it), takes the canary out of service; otherwise
    /// (`expect` names the active revision) activates the previous revision
    /// again, and the active one becomes the previous (so a second rollback
    /// rolls forward). Refused, with [`StateError::Stale`], when `expect`
    /// is no longer there: a rollback never hits a revision its caller did
    /// not mean. The previous revision is prepared again from its artifact
    /// (and the tier's compile cache). Returns the active revision.
    pub fn rollback(&self, expect: &Digest, reason: &str) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
        let current = self.state();
        let next = current.rollback(expect, reason)?;
        let fresh = match current.canary {
            Some(_) => None,
            None => {
                let target = next.state.active.clone().expect("a rollback activates one");
                let subject = Subject::of(&target);
                let artifact = self.artifact_of(&target.digest);
                let artifact = artifact.map_err(|e| self.failed(&subject, e))?;
                Some(self.prepare(&artifact, &target.manifest, &subject)?)
            }
        };
        let status = self.apply(next, fresh, Instant::now())?;
        Ok(status.active.expect("a rollback leaves an active revision"))
    }

    /// The active, canary and previous revisions, derived from the books.
    pub fn status(&self) -> SlotStatus {
        let serving = self.serving.load();
        let state = &serving.state;
        let canary_weight = match (&serving.canary, &state.canary) {
            (Some(_), Some(c)) => c.weight,
            _ => 0,
        };
        let primary = serving.primary.as_ref().map(|l| l.generation);
        let serves = |r: &Revision| primary == Some(r.generation);
        let main = Some(100 - canary_weight);
        SlotStatus {
            name: self.name().to_string(),
            active: state.active.as_ref().map(|r| match serves(r) {
                true => r.info(RevisionState::Active, main),
                false => r.info(RevisionState::Failed, None),
            }),
            previous: state.previous.as_ref().map(|p| {
                let r = &p.revision;
                if serves(r) {
                    r.info(RevisionState::Active, main)
                } else if serving.latch(r.generation).is_some_and(|l| !l.is_open()) {
                    r.info(RevisionState::Draining, None)
                } else if p.rolled_back {
                    r.info(RevisionState::RolledBack, None)
                } else {
                    r.info(RevisionState::Retired, None)
                }
            }),
            canary: state.canary.as_ref().map(|c| match &serving.canary {
                Some(_) => c.revision.info(RevisionState::Canary, Some(c.weight)),
                None => c.revision.info(RevisionState::Failed, None),
            }),
            fault: serving.fault.as_deref().map(str::to_string),
        }
    }

    /// The canary's calls and errors so far, if one is on trial.
    pub fn canary_stats(&self) -> Option<CanaryStats> {
        let serving = self.serving.load();
        let (canary, books) = (serving.canary.as_ref()?, serving.state.canary.as_ref()?);
        let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        Some(CanaryStats {
            digest: books.revision.digest,
            weight: books.weight,
            budget: books.budget,
            calls: count(&canary.outcomes.calls),
            errors: count(&canary.outcomes.errors),
        })
    }

    /// Waits until the revision before the active one has finished its
    /// in-flight calls and been freed, for at most `timeout`. True when it
    /// has (or there is none).
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let latch = {
            let serving = self.serving.load();
            let previous = serving.state.previous.as_ref();
            previous.and_then(|p| serving.latch(p.revision.generation).cloned())
        };
        latch.is_none_or(|l| l.wait(timeout))
    }

    /// The active revision, if any.
    pub fn active(&self) -> Option<RevisionInfo> {
        self.status().active
    }

    /// A change that brings new code: stage, validate, decide (a pure
    /// transition of the books, refused before anything is compiled),
    /// prepare, then apply.
    fn enter(
        &self,
        artifact: Artifact,
        expected_digest: Option<Digest>,
        transition: impl FnOnce(&SlotState, Candidate) -> Result<Next, StateError>,
    ) -> Result<SlotStatus, DeployError> {
        let _swapping = lock(&self.swapping);
        let (manifest, mut subject) = self.stage_and_validate(&artifact, expected_digest)?;
        let candidate = Candidate {
            digest: artifact.digest(),
            manifest: manifest.clone(),
            kind: artifact.kind(),
        };
        let next = match transition(&self.serving.load().state, candidate) {
            Ok(next) => next,
            Err(e) => return Err(self.failed(&subject, e.into())),
        };
        subject.generation = Some(next.state.last_generation);
        let code = self.prepare(&artifact, &manifest, &subject)?;
        lock(&self.artifacts).insert(artifact.digest(), artifact);
        self.apply(next, Some(code), Instant::now())
    }

    /// Stage and validate: everything before the books are consulted.
    fn stage_and_validate(
        &self,
        artifact: &Artifact,
        expected_digest: Option<Digest>,
    ) -> Result<(crate::Manifest, Subject), DeployError> {
        let mut subject = Subject {
            digest: Some(artifact.digest()),
            ..Subject::default()
        };
        self.publish(Transition::Staged, Phase::Stage, &subject, None, None);
        if let Some(expected) = expected_digest {
            if expected != artifact.digest() {
                let err = DeployError::DigestMismatch {
                    expected,
                    actual: artifact.digest(),
                };
                return Err(self.failed(&subject, err));
            }
        }
        let started = Instant::now();
        let manifest = match self.tier.validate(artifact) {
            Ok(m) => m,
            Err(e) => return Err(self.failed(&subject, DeployError::Invalid(e))),
        };
        subject.version = Some(manifest.version.clone());
        let took = started.elapsed();
        self.publish(
            Transition::Validated,
            Phase::Validate,
            &subject,
            Some(took),
            None,
        );
        Ok((manifest, subject))
    }

    fn prepare(
        &self,
        artifact: &Artifact,
        manifest: &crate::Manifest,
        subject: &Subject,
    ) -> Result<T::Code, DeployError> {
        let started = Instant::now();
        match self.tier.prepare(artifact, manifest, &self.ctx) {
            Ok(code) => {
                let took = started.elapsed();
                self.publish(
                    Transition::Prepared,
                    Phase::Prepare,
                    subject,
                    Some(took),
                    None,
                );
                Ok(code)
            }
            Err(e) => Err(self.failed(subject, DeployError::Prepare(e))),
        }
    }

    /// The stored bytes of a revision the books name.
    fn artifact_of(&self, digest: &Digest) -> Result<Artifact, DeployError> {
        lock(&self.artifacts)
            .get(digest)
            .cloned()
            .ok_or(DeployError::ArtifactUnavailable { digest: *digest })
    }

    /// Makes `next` serve: derives the serving value from it (the code that
    /// already runs, plus `fresh` for the revision new to it), waits for the
    /// revision before the active one to drain if a third would go live,
    /// commits the books and their events through the bus, publishes with
    /// one atomic store, and retires what no longer serves. On any error
    /// nothing changed and `fresh` is shut down.
    fn apply(
        &self,
        next: Next,
        fresh: Option<T::Code>,
        started: Instant,
    ) -> Result<SlotStatus, DeployError> {
        let current = self.serving.load_full();
        let subject = next.notes.first().map(|n| Subject::of(&n.revision));
        let subject = subject.unwrap_or_default();
        // At most two live revisions: the one before the active must be gone
        // before new code joins.
        if fresh.is_some() {
            let previous = current.state.previous.as_ref().map(|p| &p.revision);
            // (Unless it still serves: a stand-in for an active revision
            // that could not be restored is replaced, not waited for.)
            let serves = |g: u64| current.lives().any(|l| l.generation == g);
            let draining = previous.filter(|p| !serves(p.generation));
            if let Some((prev, latch)) =
                draining.and_then(|p| current.latch(p.generation).map(|l| (p, l)))
            {
                let waiting = Instant::now();
                if !latch.wait(self.options.drain_timeout) {
                    fresh.into_iter().for_each(|c| c.shutdown());
                    let err = DeployError::StillDraining {
                        digest: prev.digest,
                        waited: waiting.elapsed(),
                    };
                    return Err(self.failed(&subject, err));
                }
            }
        }
        let shift = current.state.schema_shift(&next.state);
        if shift != SchemaShift::Keep {
            drop(current);
            return self.apply_shifted(next, fresh, started, shift, subject);
        }
        let mut fresh = fresh;
        let notes = timed(&next.notes, started.elapsed());
        let committed = self
            .events
            .commit(self.name(), &next.state, notes, KvChange::Keep, || {
                let serving = Arc::new(self.derive(&current, &next.state, fresh.take()));
                (self.serving.swap(serving.clone()), serving)
            });
        let (old, new) = match committed {
            Ok(swapped) => swapped,
            Err(e) => {
                fresh.into_iter().for_each(|c| c.shutdown());
                return Err(self.failed(&subject, e.into()));
            }
        };
        drop(current);
        lock(&self.artifacts).retain(|d, _| next.state.digests().any(|x| x == *d));
        let status = self.status();
        self.retire_gone(old, &new);
        Ok(status)
    }

    /// Like [`Slot::apply`], for a change that moves the slot's state to
    /// another schema: new calls wait at a gate, the calls in flight
    /// finish, the new revision's `hs_migrate` converts the state into a
    /// [`Migration`] (or, going down, the snapshot is chosen), and the
    /// books, the converted state and a snapshot of the old one commit in
    /// one transaction before the gate opens on the new revision. Any
    /// failure, or the pause limit passing, opens the gate on the old
    /// revision with its state, and nothing is written.
    fn apply_shifted(
        &self,
        next: Next,
        fresh: Option<T::Code>,
        started: Instant,
        shift: SchemaShift,
        subject: Subject,
    ) -> Result<SlotStatus, DeployError> {
        let code = fresh.expect("a change of schema activates new code");
        let abort = |code: T::Code, err: DeployError| {
            code.shutdown();
            Err(self.failed(&subject, err))
        };
        if let SchemaShift::Migrate { from, to } = shift {
            if !code.can_migrate() {
                return abort(code, MigrateError::NotExported { from, to }.into());
            }
        }
        let limit = self.options.pause_limit;
        let gate = Gate(Arc::new(Latch::default()));
        let paused_at = Instant::now();
        let old = self.serving.load_full();
        let paused = Arc::new(old.paused(gate.0.clone()));
        self.serving.store(paused.clone());
        let released = old.released.clone();
        drop(old);
        let resume = |code: T::Code, err: MigrateError| {
            self.serving.store(Arc::new(paused.resumed()));
            abort(code, err.into())
        };
        if !released.wait(limit) {
            let during = "the calls in flight";
            return resume(code, MigrateError::PauseOverrun { limit, during });
        }
        let old_active = paused.state.active.as_ref().map(|r| r.digest);
        let old_active = old_active.expect("a change of schema replaces an active revision");
        let new_active = next.state.active.as_ref().expect("and activates one");
        let (writes, what) = match shift {
            SchemaShift::Migrate { from, to } => {
                let migration = Arc::new(Migration::new(self.ctx.kv.clone()));
                let left = limit.saturating_sub(paused_at.elapsed());
                if let Err(error) = code.migrate(from, migration.clone(), left) {
                    return resume(code, MigrateError::Failed { from, error });
                }
                if paused_at.elapsed() > limit {
                    let during = hotswap_abi::exports::MIGRATE;
                    return resume(code, MigrateError::PauseOverrun { limit, during });
                }
                let writes = migration.writes();
                let deleted = writes.iter().filter(|(_, v)| v.is_none()).count();
                let what = format!(
                    "state converted from schema {from} to {to} by hs_migrate: {} keys written, {deleted} deleted",
                    writes.len() - deleted
                );
                (writes, what)
            }
            SchemaShift::Restore { from, to } => (
                Vec::new(),
                format!("state returned from schema {from} to the snapshot of schema {to} taken when it was migrated"),
            ),
            SchemaShift::Keep => unreachable!("apply_shifted is only called for a shift"),
        };
        let kv = match shift {
            SchemaShift::Restore { .. } => KvChange::Restore {
                snapshot_of: new_active.digest,
            },
            _ => KvChange::Migrate {
                snapshot_of: old_active,
                writes: &writes,
            },
        };
        let mut notes = timed(&next.notes, started.elapsed());
        let migrated = Note {
            transition: Transition::Migrated,
            phase: Phase::Migrate,
            revision: new_active.clone(),
            reason: Some(format!(
                "{what}; drained and converted in {:.1} ms while calls waited",
                paused_at.elapsed().as_secs_f64() * 1e3
            )),
        };
        notes.insert(1.min(notes.len()), (migrated, Some(paused_at.elapsed())));
        let mut fresh = Some(code);
        let committed = self.events.commit(self.name(), &next.state, notes, kv, || {
            let serving = Arc::new(self.derive(&paused, &next.state, fresh.take()));
            (self.serving.swap(serving.clone()), serving)
        });
        let (old, new) = match committed {
            Ok(swapped) => swapped,
            Err(e) => {
                self.serving.store(Arc::new(paused.resumed()));
                let code = fresh.take().expect("not published");
                return abort(code, e.into());
            }
        };
        drop(paused);
        drop(gate);
        lock(&self.artifacts).retain(|d, _| next.state.digests().any(|x| x == *d));
        let status = self.status();
        self.retire_gone(old, &new);
        Ok(status)
    }

    /// The serving value for `state`: each revision it serves keeps the
    /// code it runs in `current`, and the one new to it gets `fresh`.
    fn derive(
        &self,
        current: &Serving<T::Code>,
        state: &SlotState,
        mut fresh: Option<T::Code>,
    ) -> Serving<T::Code> {
        let mut latches: Vec<_> = current
            .latches
            .iter()
            .filter(|(g, _)| state_holds(state, *g))
            .cloned()
            .collect();
        let mut live_for = |r: &Revision| -> Option<Arc<Live<T::Code>>> {
            let running = current.lives().find(|l| l.generation == r.generation);
            if let Some(live) = running {
                return Some(live.clone());
            }
            let code = fresh.take()?;
            let latch = Arc::new(Latch::default());
            latches.push((r.generation, latch.clone()));
            let slot = self.ctx.slot.clone();
            Some(Arc::new(Live::new(
                code,
                r,
                latch,
                slot,
                self.events.clone(),
            )))
        };
        let primary = state.active.as_ref().and_then(&mut live_for);
        let canary = state.canary.as_ref().and_then(|c| {
            let live = live_for(&c.revision)?;
            let outcomes = match &current.canary {
                Some(old) if Arc::ptr_eq(&old.live, &live) => old.outcomes.clone(),
                _ => Arc::new(Outcomes::default()),
            };
            Some(Canary { live, outcomes })
        });
        // A fault stays until what the books name serves again.
        let whole = state.active.as_ref().map(|r| r.generation)
            == primary.as_ref().map(|l| l.generation)
            && state.canary.is_some() == canary.is_some();
        Serving {
            state: state.clone(),
            primary,
            canary,
            fault: if whole { None } else { current.fault.clone() },
            latches,
            pause: None,
            released: Arc::default(),
        }
    }

    /// After a restart: prepares what `state` serves and publishes it, with
    /// no transition and one `restored` event.
    fn bring_back(&self, state: SlotState, fetch: impl Fn(&Digest) -> Result<Artifact, String>) {
        let started = Instant::now();
        let mut faults = Vec::new();
        let mut artifacts = HashMap::new();
        let mut missing = HashMap::new();
        for digest in state.digests() {
            match fetch(&digest) {
                Ok(a) if a.digest() == digest => {
                    artifacts.insert(digest, a);
                }
                Ok(a) => {
                    let why = format!("its stored bytes hash to sha256:{}", a.digest());
                    missing.insert(digest, why);
                }
                Err(why) => {
                    missing.insert(digest, why);
                }
            }
        }
        let mut latches = Vec::new();
        let mut bring = |r: &Revision, role: &str| -> Option<Arc<Live<T::Code>>> {
            let prepared = match artifacts.get(&r.digest) {
                Some(a) => self
                    .tier
                    .prepare(a, &r.manifest, &self.ctx)
                    .map_err(|e| error_chain(&*e)),
                None => Err(missing.get(&r.digest).cloned().unwrap_or_default()),
            };
            match prepared {
                Ok(code) => {
                    let latch = Arc::new(Latch::default());
                    latches.push((r.generation, latch.clone()));
                    let slot = self.ctx.slot.clone();
                    Some(Arc::new(Live::new(
                        code,
                        r,
                        latch,
                        slot,
                        self.events.clone(),
                    )))
                }
                Err(why) => {
                    faults.push(format!(
                        "the {role} revision {} (generation {}, sha256:{}) cannot be restored: {why}",
                        r.manifest.version, r.generation, r.digest
                    ));
                    None
                }
            }
        };
        let mut primary = state.active.as_ref().and_then(|r| bring(r, "active"));
        let mut stand_in = false;
        if primary.is_none() && state.active.is_some() {
            if let Some(p) = &state.previous {
                primary = bring(&p.revision, "previous");
                stand_in = primary.is_some();
            }
        }
        let canary = state.canary.as_ref().and_then(|c| {
            let live = bring(&c.revision, "canary")?;
            Some(Canary {
                live,
                outcomes: Arc::new(Outcomes::default()),
            })
        });
        if stand_in {
            faults.push("the previous revision serves in its place".into());
        }
        let fault = (!faults.is_empty()).then(|| Arc::from(faults.join("; ")));
        let subject = state.active.as_ref().map(Subject::of).unwrap_or_default();
        let reason = match &fault {
            Some(f) => Some(format!("restored with a fault: {f}")),
            None => Some(format!("restored at generation {}", state.last_generation)),
        };
        if let Some(f) = &fault {
            tracing::error!(
                slot = self.name(),
                fault = &**f,
                "a slot could not be restored whole"
            );
        }
        *lock(&self.artifacts) = artifacts;
        self.serving.store(Arc::new(Serving {
            state,
            primary,
            canary,
            fault,
            latches,
            pause: None,
            released: Arc::default(),
        }));
        let took = Some(started.elapsed());
        self.publish(Transition::Restored, Phase::Restore, &subject, took, reason);
    }

    /// Retires every revision `old` held that `new` does not: here if no
    /// call holds it (never on a caller's thread), otherwise when its last
    /// call returns.
    fn retire_gone(&self, old: Arc<Serving<T::Code>>, new: &Serving<T::Code>) {
        let gone: Vec<_> = old.lives().filter(|l| !new.holds(l)).cloned().collect();
        for live in &gone {
            live.start_draining();
        }
        drop(old);
        for live in gone {
            match Arc::try_unwrap(live) {
                Ok(idle) => idle.retire_now(),
                Err(busy) => drop(busy),
            }
        }
    }

    fn failed(&self, subject: &Subject, err: DeployError) -> DeployError {
        let reason = Some(error_chain(&err));
        self.publish(Transition::Failed, err.phase(), subject, None, reason);
        err
    }

    fn publish(
        &self,
        transition: Transition,
        phase: Phase,
        subject: &Subject,
        took: Option<Duration>,
        reason: Option<String>,
    ) {
        self.events
            .publish(self.name(), transition, phase, subject, took, reason);
    }
}

/// A transition's notes, the activation timed.
fn timed(notes: &[Note], took: Duration) -> Vec<(Note, Option<Duration>)> {
    let took_if = |n: &Note| (n.transition == Transition::Activated).then_some(took);
    notes.iter().map(|n| (n.clone(), took_if(n))).collect()
}

/// The gate of a paused slot: opens when dropped, so no path out of a
/// migration leaves calls waiting.
struct Gate(Arc<Latch>);

impl Drop for Gate {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Whether generation `g` is still in the books (so its latch matters).
fn state_holds(state: &SlotState, g: u64) -> bool {
    let active = state.active.iter();
    let previous = state.previous.iter().map(|p| &p.revision);
    let canary = state.canary.iter().map(|c| &c.revision);
    active
        .chain(previous)
        .chain(canary)
        .any(|r| r.generation == g)
}

impl<T: Tier> Drop for Slot<T> {
    /// Retires what it serves: here and now if no call holds it (so that
    /// what a revision holds, such as the slot's store, is released when the
    /// slot is), otherwise when its last call returns. Quietly: the books
    /// still name these revisions, and a restart restores them.
    fn drop(&mut self) {
        let old = self.serving.swap(Arc::new(Serving::empty()));
        old.lives().for_each(|l| l.silence());
        self.retire_gone(old, &Serving::empty());
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so a panic elsewhere
    // while holding the lock is no reason to stop serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
