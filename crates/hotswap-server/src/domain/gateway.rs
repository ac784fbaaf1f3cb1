//! `Gateway`: the named slots a server runs, journaled in the store so that
//! a restart comes back exactly as it was.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use hotswap_core::{
    error_chain, Artifact, CallError, CanaryStats, Candidate, DeployError, Digest, ErrorBudget,
    EventBus, Journal, Kind, Lease, RevisionInfo, Served, Slot, SlotOptions, SlotState, SlotStatus,
    StateError, Tier,
};
use hotswap_store::{check_slot_name, Store, StoreError};
use hotswap_wasm::{WasmConfig, WasmTier};

use crate::domain::tiers::{AnyCode, Tiers};

/// How many events of the log a server keeps in memory for `GET /v1/events`.
const RECENT_EVENTS: usize = 1024;

/// Why an admin operation failed. Every failure leaves the slot serving what
/// it served before.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No slot of that name.
    #[error("no slot named `{0}`")]
    UnknownSlot(String),
    /// The slot name is not allowed.
    #[error(transparent)]
    BadName(StoreError),
    /// The swap protocol refused (bad digest, invalid module, failed start...).
    #[error("{}", error_chain(.0))]
    Deploy(#[from] DeployError),
    /// The store failed; nothing was changed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// The tier could not start.
    #[error("cannot start the WASM host: {0}")]
    Tier(String),
}

/// How a gateway keeps its books and runs its slots.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// How many events the persisted log keeps (the newest).
    pub event_retention: usize,
    /// Every slot's options (drain timeout, migration pause limit).
    pub slots: SlotOptions,
    /// The component tier's limits (its cache directory is the store's).
    pub components: hotswap_component::ComponentConfig,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            event_retention: hotswap_store::DEFAULT_EVENT_RETENTION,
            slots: SlotOptions::default(),
            components: hotswap_component::ComponentConfig::default(),
        }
    }
}

/// The slots of one server, over its tiers (WASM and native) and one store.
pub struct Gateway {
    tiers: Arc<Tiers>,
    store: Store,
    events: EventBus,
    options: SlotOptions,
    /// Read by every call without a lock; replaced whole when a slot is
    /// created (rare), under `creating`.
    slots: ArcSwap<BTreeMap<String, Arc<Slot<Tiers>>>>,
    creating: Mutex<()>,
}

/// What `GET /v1/slots` lists for each slot: its status, derived from its
/// state.
pub type SlotView = SlotStatus;

impl Gateway {
    /// Opens the store and brings back every slot it records, as it was
    /// (see [`Slot::restore`]): the same revisions and generations, the
    /// canary at its weight, the event log continued; compiled code comes
    /// from the store's compile cache. Native libraries are loaded only
    /// when `native` is true.
    pub fn open(
        store: Store,
        wasm: WasmConfig,
        native: bool,
        options: GatewayOptions,
    ) -> Result<Gateway, GatewayError> {
        let wasm = WasmConfig {
            cache_dir: Some(store.compile_cache_dir()),
            ..wasm
        };
        let wasm = Arc::new(WasmTier::new(wasm).map_err(|e| GatewayError::Tier(e.to_string()))?);
        let components =
            hotswap_component::ComponentTier::new(hotswap_component::ComponentConfig {
                cache_dir: Some(store.compile_cache_dir()),
                ..options.components.clone()
            })
            .map_err(|e| GatewayError::Tier(e.to_string()))?;
        let journal = store.journal(options.event_retention);
        let history = store.events(RECENT_EVENTS)?;
        let gateway = Gateway {
            tiers: Arc::new(Tiers::new(wasm, components, native)),
            events: EventBus::with_journal(journal.clone(), history),
            store,
            options: options.slots,
            slots: ArcSwap::default(),
            creating: Mutex::new(()),
        };
        gateway.convert_legacy(&*journal)?;
        let mut slots = BTreeMap::new();
        for (name, state) in gateway.store.slot_states()? {
            let slot = Slot::restore(
                &name,
                gateway.tiers.clone(),
                gateway.store.kv(&name)?,
                gateway.events.clone(),
                gateway.options.clone(),
                state,
                |digest| gateway.store.artifact(digest).map_err(|e| e.to_string()),
            );
            slots.insert(name, Arc::new(slot));
        }
        gateway.slots.store(Arc::new(slots));
        Ok(gateway)
    }

    /// Turns slot records of releases before slot states into states, once:
    /// the previous revision, then the active one, then the canary, through
    /// the same transitions a deploy makes. A revision whose artifact is
    /// unusable is left out, and the log says so.
    fn convert_legacy(&self, journal: &dyn Journal) -> Result<(), GatewayError> {
        for (name, record) in self.store.legacy_slots()? {
            let mut state = SlotState::default();
            let steps = record.previous.iter().chain(record.active.iter());
            let steps = steps.map(|d| (*d, None));
            let steps = steps.chain(record.canary.iter().map(|c| (c.digest, Some(c.weight))));
            for (digest, canary) in steps {
                let candidate = self
                    .store
                    .artifact(&digest)
                    .map_err(GatewayError::from)
                    .and_then(|a| {
                        let manifest = self
                            .tiers
                            .validate(&a)
                            .map_err(|e| GatewayError::Tier(e.to_string()))?;
                        Ok(Candidate {
                            digest,
                            manifest,
                            kind: a.kind(),
                        })
                    });
                let next = candidate.and_then(|c| {
                    let next = match canary {
                        Some(w) => state.start_canary(c, w, None),
                        None => state.deploy(c),
                    };
                    next.map_err(|e| GatewayError::Deploy(e.into()))
                });
                match next {
                    Ok(next) => state = next.state,
                    Err(e) => {
                        tracing::error!(slot = %name, digest = %digest, error = %e, "cannot convert a revision of an old slot record")
                    }
                }
            }
            journal
                .commit(&name, &state, &[], hotswap_core::KvChange::Keep)
                .map_err(|e| GatewayError::Deploy(e.into()))?;
            self.store.remove_legacy_slot(&name)?;
            tracing::info!(slot = %name, "converted an old slot record to a slot state");
        }
        Ok(())
    }

    /// The event bus every slot publishes to.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The tiers its slots run on.
    pub fn tiers(&self) -> &Tiers {
        &self.tiers
    }

    /// The store (for the eBPF tier's records, which share it).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Whether no slot serves anything (as on a first start).
    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }

    /// Deploys `bytes` to `slot` (creating it): the artifact is stored, the
    /// protocol runs, and the slot's new state commits with its events just
    /// before it serves. A crash before that leaves the old state, pointing
    /// at the old revision.
    pub fn deploy(
        &self,
        slot: &str,
        bytes: Vec<u8>,
        expected: Option<Digest>,
    ) -> Result<RevisionInfo, GatewayError> {
        let (slot, artifact) = self.stage(slot, bytes, expected)?;
        Ok(slot.deploy(artifact, expected)?)
    }

    /// Deploys `bytes` to `slot` as a canary taking `weight` percent of
    /// calls, judged against `budget`, which its state keeps (with `None`,
    /// against the server's budget of the moment).
    pub fn deploy_canary(
        &self,
        slot: &str,
        bytes: Vec<u8>,
        expected: Option<Digest>,
        weight: u8,
        budget: Option<ErrorBudget>,
    ) -> Result<RevisionInfo, GatewayError> {
        let (slot, artifact) = self.stage(slot, bytes, expected)?;
        Ok(slot.deploy_canary(artifact, expected, weight, budget)?)
    }

    /// Stores an artifact that can be served (anything else still goes
    /// through the slot, which rejects it and publishes the `failed`
    /// event) and returns the slot, created if need be.
    fn stage(
        &self,
        slot: &str,
        bytes: Vec<u8>,
        expected: Option<Digest>,
    ) -> Result<(Arc<Slot<Tiers>>, Artifact), GatewayError> {
        check_slot_name(slot).map_err(GatewayError::BadName)?;
        let artifact = Artifact::new(bytes);
        let storable = expected.is_none_or(|d| d == artifact.digest())
            && self.tiers.validate(&artifact).is_ok();
        if storable {
            self.store.put_artifact(&artifact)?;
        }
        Ok((self.slot_or_create(slot)?, artifact))
    }

    /// Rolls `slot` back: its canary if it has one, otherwise its active
    /// revision, to the previous one. `expect` names the revision the
    /// caller means to roll back; without it, whatever is there now.
    pub fn rollback(
        &self,
        slot: &str,
        expect: Option<Digest>,
        reason: &str,
    ) -> Result<RevisionInfo, GatewayError> {
        let slot = self.slot(slot)?;
        let expect = expect.or_else(|| {
            let state = slot.state();
            let canary = state.canary.map(|c| c.revision.digest);
            canary.or(state.active.map(|a| a.digest))
        });
        let expect = expect.ok_or_else(|| DeployError::from(StateError::NoPrevious))?;
        Ok(slot.rollback(&expect, reason)?)
    }

    /// Takes the canary `expect` of `slot` out of service; never touches
    /// the active revision (for judges of canaries: the error budget).
    pub fn abort(
        &self,
        slot: &str,
        expect: Digest,
        reason: &str,
    ) -> Result<RevisionInfo, GatewayError> {
        Ok(self.slot(slot)?.abort(&expect, reason)?)
    }

    /// Sets the share of calls of the canary `expect` (without it, of the
    /// canary there is now).
    pub fn set_canary_weight(
        &self,
        slot: &str,
        expect: Option<Digest>,
        weight: u8,
    ) -> Result<RevisionInfo, GatewayError> {
        let slot = self.slot(slot)?;
        let expect = Self::canary_or(&slot, expect)?;
        Ok(slot.set_canary_weight(&expect, weight)?)
    }

    /// Makes the canary `expect` (without it, the canary there is now) the
    /// active revision.
    pub fn promote(
        &self,
        slot: &str,
        expect: Option<Digest>,
    ) -> Result<RevisionInfo, GatewayError> {
        let slot = self.slot(slot)?;
        let expect = Self::canary_or(&slot, expect)?;
        Ok(slot.promote(&expect)?)
    }

    fn canary_or(slot: &Slot<Tiers>, expect: Option<Digest>) -> Result<Digest, GatewayError> {
        let now = || slot.state().canary.map(|c| c.revision.digest);
        let expect = expect.or_else(now);
        Ok(expect.ok_or_else(|| DeployError::from(StateError::NoCanary))?)
    }

    /// Every slot's canary record so far, for the error budget.
    pub fn canaries(&self) -> Vec<(String, CanaryStats)> {
        let slots = self.slots.load();
        slots
            .iter()
            .filter_map(|(name, slot)| slot.canary_stats().map(|s| (name.clone(), s)))
            .collect()
    }

    /// Calls `slot` with `input`; `key` keeps a client on one revision
    /// while a canary is on trial.
    pub fn call(
        &self,
        slot: &str,
        input: &[u8],
        key: Option<u64>,
    ) -> Result<(Vec<u8>, Served), CallFailure> {
        let slots = self.slots.load();
        let slot = slots.get(slot).ok_or(CallFailure::UnknownSlot)?;
        let mut out = Vec::new();
        let served = slot
            .call_routed(input, &mut out, key)
            .map_err(CallFailure::Call)?;
        Ok((out, served))
    }

    /// The kind of code `slot` serves now ([`Slot::kind`]); `None` when
    /// there is no such slot or it serves nothing.
    pub fn kind(&self, slot: &str) -> Option<Kind> {
        self.slots.load().get(slot).and_then(|s| s.kind())
    }

    /// Routes a call to `slot` and holds its revision for as long as the
    /// call lasts (see [`Slot::lease`]): for components, whose answers
    /// stream after the handler is called.
    pub fn lease(&self, slot: &str, key: Option<u64>) -> Result<Lease<AnyCode>, CallFailure> {
        let slots = self.slots.load();
        let slot = slots.get(slot).ok_or(CallFailure::UnknownSlot)?;
        slot.lease(key).map_err(CallFailure::Call)
    }

    /// Sets which hosts each slot's components may send requests to; slots
    /// not listed may send none.
    pub fn set_all_outgoing(&self, outgoing: Vec<(String, hotswap_component::Outgoing)>) {
        self.tiers.component().set_all_outgoing(outgoing)
    }

    /// Keeps the counters' text for the next start (at a clean stop).
    pub fn save_counters(&self, counters: &str) -> Result<(), GatewayError> {
        Ok(self.store.save_counters(counters)?)
    }

    /// The counters the last clean stop kept, if it did.
    pub fn take_counters(&self) -> Result<Option<String>, GatewayError> {
        Ok(self.store.take_counters()?)
    }

    /// Every slot that serves or has served, by name. (A slot whose first
    /// deploy failed has nothing to show and is not listed.)
    pub fn list(&self) -> Vec<SlotView> {
        let slots = self.slots.load();
        slots
            .values()
            .map(|slot| slot.status())
            .filter(|s| s.active.is_some())
            .collect()
    }

    /// One slot.
    pub fn show(&self, slot: &str) -> Result<SlotView, GatewayError> {
        let status = self.slot(slot)?.status();
        if status.active.is_none() {
            return Err(GatewayError::UnknownSlot(slot.to_string()));
        }
        Ok(status)
    }

    /// Makes every key-value write durable (for a clean shutdown).
    pub fn flush(&self) -> Result<(), GatewayError> {
        Ok(self.store.flush()?)
    }

    /// Lets go of the store (flushing it) for the next process of an
    /// upgrade. Slots keep serving what they run; their key-value calls and
    /// deploys fail until [`Gateway::reacquire_store`].
    pub fn release_store(&self) -> Result<(), GatewayError> {
        Ok(self.store.release()?)
    }

    /// Takes the store back after an upgrade that did not happen.
    pub fn reacquire_store(&self) -> Result<(), GatewayError> {
        Ok(self.store.reacquire()?)
    }

    /// New limits for revisions deployed from now on.
    pub fn set_limits(&self, wasm: &WasmConfig) -> Result<(), hotswap_wasm::ConfigError> {
        self.tiers
            .wasm()
            .set_limits(wasm.deadline, wasm.memory_cap, wasm.instance_cap)
    }

    fn slot(&self, slot: &str) -> Result<Arc<Slot<Tiers>>, GatewayError> {
        self.slots
            .load()
            .get(slot)
            .cloned()
            .ok_or_else(|| GatewayError::UnknownSlot(slot.to_string()))
    }

    fn slot_or_create(&self, name: &str) -> Result<Arc<Slot<Tiers>>, GatewayError> {
        if let Ok(slot) = self.slot(name) {
            return Ok(slot);
        }
        let kv = self.store.kv(name)?;
        let _creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        // Another deploy may have created it meanwhile.
        if let Ok(slot) = self.slot(name) {
            return Ok(slot);
        }
        let slot = Arc::new(Slot::with_options(
            name,
            self.tiers.clone(),
            kv,
            self.events.clone(),
            self.options.clone(),
        ));
        let mut slots = BTreeMap::clone(&self.slots.load());
        slots.insert(name.to_string(), slot.clone());
        self.slots.store(Arc::new(slots));
        Ok(slot)
    }
}

/// Why a data-plane call failed.
#[derive(Debug)]
pub enum CallFailure {
    /// No slot of that name.
    UnknownSlot,
    /// The slot's plugin failed the call.
    Call(CallError),
}
