//! The component tier of hotswap: `wasi:http/proxy` handlers (WASI 0.2
//! components) served from a slot, on wasmtime and wasmtime-wasi-http.
//!
//! [`ComponentTier`] implements [`hotswap_core::Tier`], so a component goes
//! through the same protocol as every plugin (stage, validate, prepare,
//! activate, drain, retire), with the same digests, signatures, canaries,
//! events and state:
//!
//! - **validate** ([`validate()`]): a component (a core module is refused,
//!   by name), exporting `wasi:http/incoming-handler`, importing nothing
//!   outside the `wasi:http/proxy` world and `hotswap:plugin/kv`;
//! - **prepare**: compile once per digest (kept in memory and, with a cache
//!   directory, on disk), link, and pre-instantiate (`ProxyPre`);
//! - **handle** ([`ComponentCode::handle`]): every request gets a fresh
//!   instance on the pooling allocator, under a memory cap and a deadline;
//!   outgoing requests reach only the hosts its slot allows ([`Outgoing`]).
//!
//! The slot's key-value state is `hotswap:plugin/kv`
//! (`crates/hotswap-abi/wit/hotswap.wit`), the same store that ABI v1
//! plugins of the slot use, so it survives swaps in both directions.
//!
//! ```no_run
//! use std::sync::Arc;
//! use hotswap_component::{ComponentConfig, ComponentTier};
//! use hotswap_core::{Artifact, EventBus, MemoryKv, Slot};
//!
//! let tier = Arc::new(ComponentTier::new(ComponentConfig::default())?);
//! let slot = Slot::new("hello", tier, Arc::new(MemoryKv::default()), EventBus::new());
//! slot.deploy(Artifact::new(std::fs::read("hello.wasm")?), None)?;
//! // Each request: `slot.lease(key)?`, then `lease.code().handle(request, ..)`.
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

mod cache;
mod code;
mod config;
mod kv;
mod outgoing;
mod request;
mod validate;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hotswap_core::{Artifact, Manifest, PrepareError, SlotContext, Tier, TierError};
use wasmtime::component::Linker;
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

pub use code::{request_body, ComponentCode, Outcome, RequestBody, Response, Whole};
pub use config::{ComponentConfig, ComponentConfigError, Reset};
pub use outgoing::{Outgoing, OutgoingError};
pub use validate::{default_manifest, validate, ComponentInfo, ComponentRejection, HANDLER_EXPORT};
/// The scheme a request came in with, as a component sees it.
pub use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use cache::ComponentCache;
use request::RequestState;

/// The component tier: one wasmtime engine for components, its compile
/// cache, the linker of the proxy world, and each slot's outgoing policy.
pub struct ComponentTier {
    linker: Linker<RequestState>,
    cache: ComponentCache,
    config: ComponentConfig,
    policies: Arc<Policies>,
}

impl ComponentTier {
    /// Builds the engine (pooling allocator, epoch interruption) and starts
    /// the thread that advances its epoch.
    pub fn new(config: ComponentConfig) -> Result<ComponentTier, TierError> {
        config.check()?;
        let engine = Engine::new(&engine_config(&config))?;
        hotswap_wasm::start_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi_http::p2::add_to_linker_async(&mut linker)?;
        kv::add_to_linker::<RequestState, wasmtime::component::HasSelf<RequestState>>(
            &mut linker,
            |s| s,
        )?;
        Ok(ComponentTier {
            cache: ComponentCache::new(engine, config.cache_dir.as_deref()),
            linker,
            config,
            policies: Arc::default(),
        })
    }

    /// Sets which hosts each slot's components may send requests to, for
    /// requests from now on (running revisions included), replacing every
    /// earlier list at once (a config reload): slots not listed may send
    /// none.
    pub fn set_all_outgoing(&self, outgoing: impl IntoIterator<Item = (String, Outgoing)>) {
        let next = outgoing
            .into_iter()
            .filter(|(_, o)| !o.is_none())
            .map(|(slot, o)| (slot, Arc::new(o)))
            .collect();
        *self
            .policies
            .by_slot
            .write()
            .unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// Validates `artifact` and returns what was learnt about it.
    pub fn inspect(&self, artifact: &Artifact) -> Result<Arc<ComponentInfo>, ComponentRejection> {
        self.cache.validate(artifact)
    }

    /// What the compile cache has done so far.
    pub fn cache_stats(&self) -> hotswap_wasm::CacheStats {
        self.cache.stats()
    }
}

impl Tier for ComponentTier {
    type Code = ComponentCode;

    fn validate(&self, artifact: &Artifact) -> Result<Manifest, TierError> {
        Ok(self.inspect(artifact)?.manifest.clone())
    }

    fn prepare(
        &self,
        artifact: &Artifact,
        _manifest: &Manifest,
        slot: &SlotContext,
    ) -> Result<ComponentCode, TierError> {
        self.inspect(artifact)?;
        let component = self
            .cache
            .component(artifact)
            .map_err(|e| PrepareError::Compile(format!("{e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(ProxyPre::new)
            .map_err(|e| PrepareError::Link(format!("{e:#}")))?;
        Ok(ComponentCode {
            pre,
            slot: slot.slot.clone(),
            kv: slot.kv.clone(),
            policies: self.policies.clone(),
            memory_cap: self.config.memory_cap,
            deadline: self.config.deadline,
            max_instances: self.config.max_instances,
        })
    }
}

/// Each slot's outgoing policy, read by every request.
#[derive(Default)]
pub(crate) struct Policies {
    by_slot: RwLock<HashMap<String, Arc<Outgoing>>>,
}

impl Policies {
    pub(crate) fn outgoing(&self, slot: &str) -> Arc<Outgoing> {
        let map = self.by_slot.read().unwrap_or_else(|e| e.into_inner());
        map.get(slot).cloned().unwrap_or_default()
    }
}

/// How many `madvise` calls the pool batches under [`Reset::DirtyPages`].
const DECOMMIT_BATCH: usize = 16;

fn engine_config(config: &ComponentConfig) -> wasmtime::Config {
    let n = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    // A component is a few core instances (its module, and the shims that
    // wit-component adds), usually one memory and a few tables.
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .max_memory_size(config.memory_cap as usize);
    // A fresh instance per request makes resetting the last one's memory
    // the main cost after the handler (docs/numbers.md, `bench component`).
    match config.reset {
        Reset::Madvise => {}
        Reset::KeepResident(bytes) => {
            pool.linear_memory_keep_resident(bytes as usize)
                .table_keep_resident(64 << 10);
        }
        Reset::DirtyPages => {
            pool.pagemap_scan(wasmtime::Enabled::Auto)
                .decommit_batch_size(DECOMMIT_BATCH);
        }
    }
    let mut c = wasmtime::Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every interface validation lets through is one the linker gives, so
    /// a valid component never fails at prepare for want of an import.
    #[test]
    fn the_linker_gives_every_import_validation_allows() {
        let tier = ComponentTier::new(ComponentConfig {
            max_instances: 1,
            ..ComponentConfig::default()
        })
        .unwrap();
        for name in validate::ALLOWED {
            let version = if name.starts_with("hotswap:") {
                "1.0.0"
            } else {
                "0.2.12"
            };
            let wat = format!(r#"(component (import "{name}@{version}" (instance)))"#);
            let component =
                wasmtime::component::Component::new(tier.cache.engine(), wat.as_bytes()).unwrap();
            tier.linker
                .instantiate_pre(&component)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }
}
