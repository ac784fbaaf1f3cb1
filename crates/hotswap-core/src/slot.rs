//! `Slot`: a named place that serves one active revision and runs the swap
//! protocol to replace it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use serde::{Deserialize, Serialize};

use crate::event::{EventBus, Subject};
use crate::reaper::Latch;
use crate::revision::{Live, Record};
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
    active: ArcSwapOption<Live<T::Code>>,
    /// Held for a whole deploy or rollback, so they run one at a time.
    swapping: Mutex<()>,
    /// Held only for short reads and writes, so status never waits on a compile.
    records: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    last_generation: u64,
    active: Option<Record>,
    previous: Option<Record>,
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
            active: ArcSwapOption::empty(),
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

    /// Calls the active revision and returns its reply.
    pub fn call(&self, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let mut out = Vec::new();
        self.call_into(input, &mut out)?;
        Ok(out)
    }

    /// Calls the active revision, appending its reply to `output`, and returns
    /// the generation of the revision that served the call.
    ///
    /// The revision is chosen once, when the call starts; a swap during the
    /// call does not move it.
    #[inline]
    pub fn call_into(&self, input: &[u8], output: &mut Vec<u8>) -> Result<u64, CallError> {
        let guard = self.active.load();
        match guard.as_ref() {
            Some(live) => {
                live.code().call(input, output)?;
                Ok(live.generation)
            }
            None => Err(CallError::NoRevision {
                slot: self.name().to_string(),
            }),
        }
    }

    /// Runs the whole protocol for `artifact`: stage (checking
    /// `expected_digest`, when given), validate, prepare, activate, and start
    /// draining the revision it replaces.
    ///
    /// On any error the active revision is untouched, and a `failed` event
    /// says why.
    pub fn deploy(
        &self,
        artifact: Artifact,
        expected_digest: Option<Digest>,
    ) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
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
        self.activate(artifact, manifest, code, &subject, None)
    }

    /// Makes the previous revision active again, and the active one the
    /// previous (so a second rollback rolls forward). The previous revision's
    /// artifact is re-prepared from the tier's compile cache.
    pub fn rollback(&self, reason: &str) -> Result<RevisionInfo, DeployError> {
        let _swapping = lock(&self.swapping);
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
        self.activate(
            previous.artifact,
            previous.manifest,
            code,
            &subject,
            Some(reason.to_string()),
        )
    }

    /// The active and previous revisions.
    pub fn status(&self) -> SlotStatus {
        let records = lock(&self.records);
        SlotStatus {
            name: self.name().to_string(),
            active: records.active.as_ref().map(|r| r.info(true)),
            previous: records.previous.as_ref().map(|r| r.info(false)),
        }
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
        lock(&self.records).active.as_ref().map(|r| r.info(true))
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

    /// Publishes `code` as the active revision. With `rollback_reason`, the
    /// revision it replaces is marked rolled back.
    fn activate(
        &self,
        artifact: Artifact,
        manifest: crate::Manifest,
        code: T::Code,
        subject: &Subject,
        rollback_reason: Option<String>,
    ) -> Result<RevisionInfo, DeployError> {
        // At most two live revisions: the one before the active must be gone
        // before the active one may start draining.
        let draining = lock(&self.records).previous.clone();
        if let Some(prev) = draining {
            let started = Instant::now();
            if !prev.retired.wait(self.options.drain_timeout) {
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
        let live = Arc::new(Live::new(
            code,
            &record,
            self.ctx.slot.clone(),
            self.events.clone(),
        ));
        let started = Instant::now();
        let old = self.active.swap(Some(live));
        let took = started.elapsed();

        records.last_generation = record.generation;
        let info = record.info(true);
        let subject = record.subject();
        let mut old_record = records.active.replace(record);
        if let Some(old) = &mut old_record {
            old.rolled_back = rollback_reason.is_some();
        }
        records.previous = old_record.clone();
        drop(records);

        self.publish(
            Transition::Activated,
            Phase::Activate,
            &subject,
            Some(took),
            None,
        );
        if let (Some(old_live), Some(old_record)) = (old, old_record) {
            old_live.start_draining();
            let transition = match rollback_reason {
                Some(_) => Transition::RolledBack,
                None => Transition::Draining,
            };
            self.publish(
                transition,
                Phase::Drain,
                &old_record.subject(),
                None,
                rollback_reason,
            );
            // No call holds it: retire it here, on the swapping thread (never
            // a caller's). Otherwise the last call to finish hands it to the
            // cleanup thread.
            match Arc::try_unwrap(old_live) {
                Ok(idle) => idle.retire_now(),
                Err(busy) => drop(busy),
            }
        }
        Ok(info)
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

impl<T: Tier> Drop for Slot<T> {
    /// Retires the active revision: here and now if no call holds it (so
    /// that what it holds, such as the slot's store, is released when the
    /// slot is), otherwise when its last call returns.
    fn drop(&mut self) {
        if let Some(live) = self.active.swap(None) {
            live.start_draining();
            match Arc::try_unwrap(live) {
                Ok(idle) => idle.retire_now(),
                Err(busy) => drop(busy),
            }
        }
    }
}

/// The error's message followed by its sources', so one line says everything.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so a panic elsewhere
    // while holding the lock is no reason to stop serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
