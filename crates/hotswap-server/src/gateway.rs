//! `Gateway`: the named slots a server runs, kept in step with the store so
//! that a restart comes back serving exactly what was deployed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use hotswap_core::{
    error_chain, Artifact, CallError, CanaryStats, DeployError, Digest, EventBus, RevisionInfo,
    Served, Slot, SlotStatus, Tier,
};
use hotswap_store::{check_slot_name, CanaryRecord, SlotRecord, Store, StoreError};
use hotswap_wasm::{WasmConfig, WasmTier};

use crate::tiers::Tiers;
use serde::{Deserialize, Serialize};

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

/// One slot and the lock that keeps its deploys and its record in step.
struct Entry {
    slot: Slot<Tiers>,
    /// Held across deploy (or rollback) and the record's save, so records
    /// are saved in the order the swaps happened.
    changing: Mutex<()>,
}

/// The slots of one server, over its tiers (WASM and native) and one store.
pub struct Gateway {
    tiers: Arc<Tiers>,
    store: Store,
    events: EventBus,
    slots: RwLock<BTreeMap<String, Arc<Entry>>>,
}

/// What `GET /v1/slots` lists for each slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotView {
    /// The slot's name.
    pub name: String,
    /// The revision serving calls.
    pub active: Option<RevisionInfo>,
    /// The revision before it.
    pub previous: Option<RevisionInfo>,
    /// A canary on trial.
    pub canary: Option<RevisionInfo>,
}

impl From<SlotStatus> for SlotView {
    fn from(s: SlotStatus) -> SlotView {
        SlotView {
            name: s.name,
            active: s.active,
            previous: s.previous,
            canary: s.canary,
        }
    }
}

impl Gateway {
    /// Opens the store and brings back every slot it records: the previous
    /// revision first, then the active one, so a rollback still works after
    /// a restart. Compiled code comes from the store's compile cache.
    /// Native libraries are loaded only when `native` is true.
    pub fn open(store: Store, wasm: WasmConfig, native: bool) -> Result<Gateway, GatewayError> {
        let wasm = WasmConfig {
            cache_dir: Some(store.compile_cache_dir()),
            ..wasm
        };
        let wasm = Arc::new(WasmTier::new(wasm).map_err(|e| GatewayError::Tier(e.to_string()))?);
        let gateway = Gateway {
            tiers: Arc::new(Tiers::new(wasm, native)),
            store,
            events: EventBus::new(),
            slots: RwLock::default(),
        };
        for (name, record) in gateway.store.slots()? {
            let entry = gateway.entry_or_create(&name)?;
            // Previous, then active, then the canary: the order they were
            // made in, so the slot ends as it was, rollback included.
            let steps = record
                .previous
                .iter()
                .chain(record.active.iter())
                .map(|d| (*d, None))
                .chain(record.canary.iter().map(|c| (c.digest, Some(c.weight))));
            for (digest, canary) in steps {
                let restored = gateway
                    .store
                    .artifact(&digest)
                    .map_err(GatewayError::from)
                    .and_then(|a| {
                        match canary {
                            Some(w) => entry.slot.deploy_canary(a, Some(digest), w),
                            None => entry.slot.deploy(a, Some(digest)),
                        }
                        .map_err(GatewayError::from)
                    });
                if let Err(e) = restored {
                    // The record only names stored artifacts, so this is
                    // disk corruption or a module this host now rejects:
                    // say so, and serve what can be served.
                    tracing::error!(slot = %name, digest = %digest, error = %e, "cannot restore a revision");
                }
            }
        }
        Ok(gateway)
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

    /// Deploys `bytes` to `slot` (creating it): the protocol runs, and only
    /// once the new revision is active is the slot's record saved. A crash
    /// before that leaves the old record, pointing at the old revision.
    pub fn deploy(
        &self,
        slot: &str,
        bytes: Vec<u8>,
        expected: Option<Digest>,
        canary: Option<u8>,
    ) -> Result<RevisionInfo, GatewayError> {
        check_slot_name(slot).map_err(GatewayError::BadName)?;
        let artifact = Artifact::new(bytes);
        // Only code that can be served reaches the store, and it is stored
        // before it is activated. Anything else still goes through the slot,
        // which rejects it and publishes the `failed` event.
        let storable = expected.is_none_or(|d| d == artifact.digest())
            && self.tiers.validate(&artifact).is_ok();
        if storable {
            self.store.put_artifact(&artifact)?;
        }
        let entry = self.entry_or_create(slot)?;
        let _changing = entry.changing.lock().unwrap_or_else(|e| e.into_inner());
        let info = match canary {
            Some(weight) => entry.slot.deploy_canary(artifact, expected, weight)?,
            None => entry.slot.deploy(artifact, expected)?,
        };
        self.save(&entry)?;
        Ok(info)
    }

    /// Rolls `slot` back to its previous revision and records it.
    pub fn rollback(&self, slot: &str, reason: &str) -> Result<RevisionInfo, GatewayError> {
        let entry = self.entry(slot)?;
        let _changing = entry.changing.lock().unwrap_or_else(|e| e.into_inner());
        let info = entry.slot.rollback(reason)?;
        self.save(&entry)?;
        Ok(info)
    }

    /// Sets the canary's share of calls and records it.
    pub fn set_canary_weight(&self, slot: &str, weight: u8) -> Result<RevisionInfo, GatewayError> {
        let entry = self.entry(slot)?;
        let _changing = entry.changing.lock().unwrap_or_else(|e| e.into_inner());
        let info = entry.slot.set_canary_weight(weight)?;
        self.save(&entry)?;
        Ok(info)
    }

    /// Makes the canary the active revision and records it.
    pub fn promote(&self, slot: &str) -> Result<RevisionInfo, GatewayError> {
        let entry = self.entry(slot)?;
        let _changing = entry.changing.lock().unwrap_or_else(|e| e.into_inner());
        let info = entry.slot.promote()?;
        self.save(&entry)?;
        Ok(info)
    }

    /// Every slot's canary record so far, for the error budget.
    pub fn canaries(&self) -> Vec<(String, CanaryStats)> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter_map(|(name, e)| e.slot.canary_stats().map(|s| (name.clone(), s)))
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
        let entry = self.entry(slot).map_err(|_| CallFailure::UnknownSlot)?;
        let mut out = Vec::new();
        let served = entry
            .slot
            .call_routed(input, &mut out, key)
            .map_err(CallFailure::Call)?;
        Ok((out, served))
    }

    /// Every slot that serves or has served, by name. (A slot whose first
    /// deploy failed has nothing to show and is not listed.)
    pub fn list(&self) -> Vec<SlotView> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots
            .values()
            .map(|e| e.slot.status())
            .filter(|s| s.active.is_some())
            .map(SlotView::from)
            .collect()
    }

    /// One slot.
    pub fn show(&self, slot: &str) -> Result<SlotView, GatewayError> {
        let status = self.entry(slot)?.slot.status();
        if status.active.is_none() {
            return Err(GatewayError::UnknownSlot(slot.to_string()));
        }
        Ok(status.into())
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

    fn save(&self, entry: &Entry) -> Result<(), GatewayError> {
        let status = entry.slot.status();
        let record = SlotRecord {
            active: status.active.map(|r| r.digest),
            previous: status.previous.map(|r| r.digest),
            canary: status.canary.map(|c| CanaryRecord {
                digest: c.digest,
                weight: c.weight.unwrap_or(0),
            }),
        };
        Ok(self.store.save_slot(entry.slot.name(), &record)?)
    }

    fn entry(&self, slot: &str) -> Result<Arc<Entry>, GatewayError> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots
            .get(slot)
            .cloned()
            .ok_or_else(|| GatewayError::UnknownSlot(slot.to_string()))
    }

    fn entry_or_create(&self, slot: &str) -> Result<Arc<Entry>, GatewayError> {
        if let Ok(e) = self.entry(slot) {
            return Ok(e);
        }
        let kv = self.store.kv(slot)?;
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let entry = slots.entry(slot.to_string()).or_insert_with(|| {
            Arc::new(Entry {
                slot: Slot::new(slot, self.tiers.clone(), kv, self.events.clone()),
                changing: Mutex::new(()),
            })
        });
        Ok(entry.clone())
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
