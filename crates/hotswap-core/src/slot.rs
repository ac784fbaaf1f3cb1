//! `Slot`: a named place that serves one active revision and runs the swap
//! protocol to replace it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::error::error_chain;
use crate::event::{EventBus, Subject};
use crate::reaper::Latch;
use crate::revision::{Live, Record, Role};
use crate::serving::{Canary, Outcomes, Serving};
use crate::{
    Artifact, CallError, Code, DeployError, Digest, KvStore, Phase, RevisionInfo, SlotContext,
    Tier, Transition,
};

/// How a slot behaves; the defaults suit a server.
#[derive(Debug, Clone)]
pub struct SlotOptions {
    /// How long a deploy waits for the revision before the active one to
    /// finish its in-flight calls. A slot never has more than two live
    /// revisions, so a deploy that would make a third fails with
    /// [`DeployError::StillDraining`] after this long.
    pub drain_timeout: Duration,
}

impl Default for SlotOptions {
    fn default() -> Self {
        SlotOptions {
            drain_timeout: Duration::from_secs(30),
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
}

/// Which revision served a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Its activation number.
    pub generation: u64,
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
///         Ok(Manifest { name: "prefix".into(), version: String::from_utf8(a.bytes().to_vec())?, abi: 1 })
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
/// slot.rollback("v2 misbehaves").unwrap();
/// assert_eq!(slot.call(b"x").unwrap(), b"v1:x");
/// ```
pub struct Slot<T: Tier> {
    ctx: SlotContext,
    tier: Arc<T>,
    events: EventBus,
    options: SlotOptions,
    serving: ArcSwap<Serving<T::Code>>,
    /// Held for a whole deploy, rollback or promotion, so they run one at a time.
    swapping: Mutex<()>,
    /// Held only for short reads and writes, so status never waits on a compile.
    records: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    last_generation: u64,
    active: Option<Record>,
    previous: Option<Record>,
    canary: Option<(Record, u8)>,
}

/// What a change does to the revisions that serve.
enum Change<C> {
    /// New code becomes the primary; the old primary drains.
    Replace {
        code: C,
        rollback_reason: Option<String>,
    },
    /// New code starts as a canary taking `weight` percent of calls.
    StartCanary { code: C, weight: u8 },
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
            records: Mutex::new(Records::default()),
        }
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
        let serving = self.serving.load();
        let Some((live, canary)) = serving.route(key) else {
            return Err(CallError::NoRevision {
                slot: self.name().to_string(),
            });
        };
        let result = live.code().call(input, output);
        if let Some(outcomes) = canary {
            outcomes.record(result.is_ok());
        }
        result.map(|()| Served {
            generation: live.generation,
            canary: canary.is_some(),
        })
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
        let _swapping = lock(&self.swapping);
        let (artifact, manifest, subject, code) =
            self.stage_to_prepare(artifact, expected_digest)?;
        if lock(&self.records).canary.is_some() {
            code.shutdown();
            let err = DeployError::CanaryInProgress {
                slot: self.name().to_string(),
            };
            return Err(self.failed(&subject, err));
        }
        let change = Change::Replace {
            code,
            rollback_reason: None,
        };
        self.activate(artifact, manifest, change, &subject)
    }

    /// Runs the protocol for `artifact` as a **canary**: it takes `weight`
    /// percent of calls (clamped to 100) beside the active revision, until it
    /// is promoted ([`Slot::promote`]) or rolled back ([`Slot::rollback`]).
    pub fn deploy_canary(
        &self,
        artifact: Artifact,
        expected_digest: Option<Digest>,
        weight: u8,
    ) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
        let (artifact, manifest, subject, code) =
            self.stage_to_prepare(artifact, expected_digest)?;
        let refusal = {
            let records = lock(&self.records);
            if records.canary.is_some() {
                Some(DeployError::CanaryInProgress {
                    slot: self.name().to_string(),
                })
            } else if records.active.is_none() {
                Some(DeployError::NoActive {
                    slot: self.name().to_string(),
                })
            } else {
                None
            }
        };
        if let Some(err) = refusal {
            code.shutdown();
            return Err(self.failed(&subject, err));
        }
        let change = Change::StartCanary {
            code,
            weight: weight.min(100),
        };
        self.activate(artifact, manifest, change, &subject)
    }

    /// Changes the canary's share of calls (clamped to 100).
    pub fn set_canary_weight(&self, weight: u8) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
        let weight = weight.min(100);
        let current = self.serving.load_full();
        let Some(canary) = &current.canary else {
            return Err(DeployError::NoCanary {
                slot: self.name().to_string(),
            });
        };
        let next = Serving {
            primary: current.primary.clone(),
            canary: Some(Canary {
                live: canary.live.clone(),
                weight,
                outcomes: canary.outcomes.clone(),
            }),
        };
        self.serving.store(Arc::new(next));
        let mut records = lock(&self.records);
        let Some((record, w)) = &mut records.canary else {
            unreachable!("a serving canary always has a record");
        };
        *w = weight;
        Ok(record.info(Role::Canary { weight }))
    }

    /// Makes the canary the active revision; the active one drains and
    /// becomes the previous.
    pub fn promote(&self) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
        let Some(promoted) = self.serving.load().canary.as_ref().map(|c| c.live.clone()) else {
            return Err(DeployError::NoCanary {
                slot: self.name().to_string(),
            });
        };
        let next = Serving {
            primary: Some(promoted),
            canary: None,
        };
        let mut records = lock(&self.records);
        let (record, _) = records
            .canary
            .take()
            .expect("a serving canary always has a record");
        let info = record.info(Role::Active { weight: 100 });
        let subject = record.subject();
        let old = records.active.replace(record);
        records.previous = old.clone();
        drop(records);
        self.publish_serving(next, |took| {
            self.announce_activation(
                &subject,
                took,
                Some("promoted from canary".into()),
                old.as_ref().map(Record::subject),
                None,
            )
        });
        Ok(info)
    }

    /// Rolls back: with a canary on trial, takes the canary out of service;
    /// otherwise makes the previous revision active again, and the active one
    /// the previous (so a second rollback rolls forward). The previous
    /// revision's artifact is re-prepared from the tier's compile cache.
    pub fn rollback(&self, reason: &str) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
        let (has_canary, primary) = {
            let current = self.serving.load();
            (current.canary.is_some(), current.primary.clone())
        };
        if has_canary {
            let next = Serving {
                primary,
                canary: None,
            };
            let mut records = lock(&self.records);
            let (mut canary, _) = records
                .canary
                .take()
                .expect("a serving canary always has a record");
            canary.rolled_back = true;
            let active = records
                .active
                .as_ref()
                .map(|r| r.info(Role::Active { weight: 100 }));
            drop(records);
            self.publish_serving(next, |_| {
                self.publish(
                    Transition::RolledBack,
                    Phase::Drain,
                    &canary.subject(),
                    None,
                    Some(reason.to_string()),
                );
            });
            return active.ok_or_else(|| DeployError::NoActive {
                slot: self.name().to_string(),
            });
        }
        drop(primary);
        let previous = lock(&self.records).previous.clone();
        let Some(previous) = previous else {
            return Err(DeployError::NoPrevious {
                slot: self.name().to_string(),
            });
        };
        let subject = Subject {
            digest: Some(previous.artifact.digest()),
            version: Some(previous.manifest.version.clone()),
            generation: None,
        };
        let code = self.prepare(&previous.artifact, &previous.manifest, &subject)?;
        let change = Change::Replace {
            code,
            rollback_reason: Some(reason.to_string()),
        };
        self.activate(previous.artifact, previous.manifest, change, &subject)
    }

    /// The active, canary and previous revisions.
    pub fn status(&self) -> SlotStatus {
        let records = lock(&self.records);
        let canary_weight = records.canary.as_ref().map_or(0, |(_, w)| *w);
        SlotStatus {
            name: self.name().to_string(),
            active: records.active.as_ref().map(|r| {
                r.info(Role::Active {
                    weight: 100 - canary_weight,
                })
            }),
            previous: records.previous.as_ref().map(|r| r.info(Role::Previous)),
            canary: records
                .canary
                .as_ref()
                .map(|(r, w)| r.info(Role::Canary { weight: *w })),
        }
    }

    /// The canary's calls and errors so far, if one is on trial.
    pub fn canary_stats(&self) -> Option<CanaryStats> {
        let serving = self.serving.load();
        let canary = serving.canary.as_ref()?;
        let records = lock(&self.records);
        let (record, _) = records.canary.as_ref()?;
        Some(CanaryStats {
            digest: record.artifact.digest(),
            weight: canary.weight,
            calls: canary
                .outcomes
                .calls
                .load(std::sync::atomic::Ordering::Relaxed),
            errors: canary
                .outcomes
                .errors
                .load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Waits until the revision before the active one has finished its
    /// in-flight calls and been freed, for at most `timeout`. True when it
    /// has (or there is none).
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let previous = lock(&self.records).previous.clone();
        previous.is_none_or(|p| p.retired.wait(timeout))
    }

    /// The active revision, if any.
    pub fn active(&self) -> Option<RevisionInfo> {
        self.status().active
    }

    /// Stage, validate and prepare: everything before the slot changes.
    fn stage_to_prepare(
        &self,
        artifact: Artifact,
        expected_digest: Option<Digest>,
    ) -> Result<(Artifact, crate::Manifest, Subject, T::Code), DeployError> {
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
        let manifest = match self.tier.validate(&artifact) {
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
        let code = self.prepare(&artifact, &manifest, &subject)?;
        Ok((artifact, manifest, subject, code))
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

    /// Publishes prepared code, as the primary or as a canary.
    fn activate(
        &self,
        artifact: Artifact,
        manifest: crate::Manifest,
        change: Change<T::Code>,
        subject: &Subject,
    ) -> Result<RevisionInfo, DeployError> {
        // At most two live revisions: the one before the active must be gone
        // before the active one may start draining, or a canary may join it.
        let draining = lock(&self.records).previous.clone();
        if let Some(prev) = draining {
            let started = Instant::now();
            if !prev.retired.wait(self.options.drain_timeout) {
                let (Change::Replace { code, .. } | Change::StartCanary { code, .. }) = change;
                code.shutdown();
                let err = DeployError::StillDraining {
                    digest: prev.artifact.digest(),
                    waited: started.elapsed(),
                };
                return Err(self.failed(subject, err));
            }
        }

        let mut records = lock(&self.records);
        let record = Record {
            artifact,
            manifest,
            generation: records.last_generation + 1,
            rolled_back: false,
            retired: Arc::new(Latch::default()),
        };
        records.last_generation = record.generation;
        let subject = record.subject();
        // Only what the new `Serving` keeps; holding the old one would make
        // its revisions look busy and send them to the cleanup thread.
        let primary = self.serving.load().primary.clone();
        match change {
            Change::Replace {
                code,
                rollback_reason,
            } => {
                let live = Arc::new(Live::new(
                    code,
                    &record,
                    self.ctx.slot.clone(),
                    self.events.clone(),
                ));
                let info = record.info(Role::Active { weight: 100 });
                let mut old = records.active.replace(record);
                if let Some(old) = &mut old {
                    old.rolled_back = rollback_reason.is_some();
                }
                records.previous = old.clone();
                drop(records);
                drop(primary);
                let next = Serving {
                    primary: Some(live),
                    canary: None,
                };
                self.publish_serving(next, |took| {
                    self.announce_activation(
                        &subject,
                        took,
                        None,
                        old.as_ref().map(Record::subject),
                        rollback_reason,
                    )
                });
                Ok(info)
            }
            Change::StartCanary { code, weight } => {
                let live = Arc::new(Live::new(
                    code,
                    &record,
                    self.ctx.slot.clone(),
                    self.events.clone(),
                ));
                let info = record.info(Role::Canary { weight });
                records.canary = Some((record, weight));
                drop(records);
                let next = Serving {
                    primary,
                    canary: Some(Canary {
                        live,
                        weight,
                        outcomes: Arc::new(Outcomes::default()),
                    }),
                };
                self.publish_serving(next, |took| {
                    let reason = Some(format!("canary, {weight}% of calls"));
                    self.publish(
                        Transition::Activated,
                        Phase::Activate,
                        &subject,
                        Some(took),
                        reason,
                    );
                });
                Ok(info)
            }
        }
    }

    /// Publishes `next` with one atomic store, runs `announce` with how long
    /// the store took (to publish the change's events, so that they come
    /// before any `retired`), then retires every revision the old value held
    /// that `next` does not: here if no call holds it (never on a caller's
    /// thread), otherwise when its last call returns.
    fn publish_serving(&self, next: Serving<T::Code>, announce: impl FnOnce(Duration)) {
        let next = Arc::new(next);
        let started = Instant::now();
        let old = self.serving.swap(next.clone());
        announce(started.elapsed());
        let gone: Vec<_> = old.lives().filter(|l| !next.holds(l)).cloned().collect();
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

    /// The events of an activation: the new revision `activated` (with
    /// `why`), then the one it replaced `draining`, or `rolled-back` with
    /// the rollback's reason.
    fn announce_activation(
        &self,
        subject: &Subject,
        took: Duration,
        why: Option<String>,
        replaced: Option<Subject>,
        rollback_reason: Option<String>,
    ) {
        self.publish(
            Transition::Activated,
            Phase::Activate,
            subject,
            Some(took),
            why,
        );
        if let Some(old) = replaced {
            let transition = match rollback_reason {
                Some(_) => Transition::RolledBack,
                None => Transition::Draining,
            };
            self.publish(transition, Phase::Drain, &old, None, rollback_reason);
        }
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

impl<T: Tier> Drop for Slot<T> {
    /// Retires what it serves: here and now if no call holds it (so that
    /// what a revision holds, such as the slot's store, is released when the
    /// slot is), otherwise when its last call returns.
    fn drop(&mut self) {
        self.publish_serving(Serving::empty(), |_| {});
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so a panic elsewhere
    // while holding the lock is no reason to stop serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
