//! The WebAssembly tier of hotswap, on wasmtime.
//!
//! [`WasmTier`] implements [`hotswap_core::Tier`] for core modules that follow
//! ABI v1 (docs/abi.md):
//!
//! - **validate** ([`validate()`]): structure, exports and their exact
//!   signatures, imports, manifest — all without running the module;
//! - **prepare**: compile once per digest (kept in memory and, with a cache
//!   directory, on disk), link through an `InstancePre`, start one instance
//!   (running `hs_init`) and run `hs_health`;
//! - **call** ([`WasmCode`]): instances from a lock-free pool, one call per
//!   instance at a time, many instances in parallel, under a memory cap and
//!   an epoch deadline.
//!
//! ```no_run
//! use std::sync::Arc;
//! use hotswap_core::{Artifact, EventBus, MemoryKv, Slot};
//! use hotswap_wasm::{WasmConfig, WasmTier};
//!
//! let tier = Arc::new(WasmTier::new(WasmConfig::default())?);
//! let slot = Slot::new("greet", tier, Arc::new(MemoryKv::default()), EventBus::new());
//! slot.deploy(Artifact::new(std::fs::read("greet.wasm")?), None)?;
//! println!("{}", String::from_utf8_lossy(&slot.call(b"world")?));
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

mod cache;
mod code_dir;
mod config;
mod host;
mod pool;
mod recent;
mod validate;
#[cfg(feature = "wasi")]
mod wasi;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hotswap_core::{Artifact, Manifest, SlotContext, Tier, TierError};
use wasmtime::{Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

pub use cache::CacheStats;
pub use code_dir::CodeDir;
pub use config::{ticks, ConfigError, WasmConfig, EPOCH_TICK};
/// Why a valid module could not be made ready to serve: core's, shared with
/// the native tier, re-exported where this tier's users have found it.
pub use hotswap_core::PrepareError;
pub use pool::WasmCode;
pub use recent::Recent;
pub use validate::{
    validate, ModuleInfo, Rejection, HOST_MODULE, MANIFEST_SECTION, SUPPORTED_ABI, WASI_MODULE,
};

use cache::CompileCache;
use host::HostState;

/// The WASM tier: one wasmtime engine, its compile cache, and the host
/// functions every plugin links against.
pub struct WasmTier {
    engine: Engine,
    linker: Linker<HostState>,
    cache: CompileCache,
    /// Read at each prepare; [`WasmTier::set_limits`] changes it.
    config: std::sync::RwLock<WasmConfig>,
    /// The pooling allocator's memory size: no instance can have more.
    engine_memory_cap: u64,
    live_revisions: Arc<AtomicUsize>,
}

impl WasmTier {
    /// Builds the engine (pooling allocator, epoch interruption) and starts
    /// the thread that advances the epoch.
    pub fn new(config: WasmConfig) -> Result<WasmTier, TierError> {
        config.check()?;
        if config.allow_wasi && !cfg!(feature = "wasi") {
            return Err(
                "WASI was asked for, but hotswap-wasm was built without its `wasi` feature".into(),
            );
        }
        let engine = Engine::new(&engine_config(&config))?;
        start_epoch_ticker(&engine);
        let cache = CompileCache::new(
            engine.clone(),
            config.cache_dir.as_deref(),
            config.allow_wasi,
        );
        Ok(WasmTier {
            linker: host::linker(&engine, config.allow_wasi),
            engine,
            cache,
            engine_memory_cap: config.memory_cap,
            config: std::sync::RwLock::new(config),
            live_revisions: Arc::default(),
        })
    }

    /// The settings it runs with (those revisions prepared from now on get).
    pub fn config(&self) -> WasmConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the per-revision limits (deadline, memory cap, instance cap)
    /// for revisions prepared from now on; running revisions keep the limits
    /// they were prepared with. The memory cap cannot rise above the one the
    /// tier was created with: the engine's allocator is sized for it.
    pub fn set_limits(
        &self,
        deadline: std::time::Duration,
        memory_cap: u64,
        instance_cap: usize,
    ) -> Result<(), ConfigError> {
        let mut config = self.config.write().unwrap_or_else(|e| e.into_inner());
        let next = WasmConfig {
            deadline,
            memory_cap,
            instance_cap,
            ..config.clone()
        };
        next.check()?;
        if memory_cap > self.engine_memory_cap {
            return Err(ConfigError::new(format!(
                "memory_cap can only rise above {} MiB (its value at start, which sized the engine) in a new process: `hotswap upgrade` starts one with the new config",
                self.engine_memory_cap >> 20
            )));
        }
        *config = next;
        Ok(())
    }

    /// What the compile cache has done so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Revisions prepared by this tier and not yet freed: active, draining,
    /// or prepared and not yet activated.
    pub fn live_revisions(&self) -> usize {
        self.live_revisions.load(Ordering::SeqCst)
    }

    /// Validates and compiles `artifact` ahead of a deploy, so the deploy
    /// itself only instantiates. Deploying without this compiles on demand.
    pub fn precompile(&self, artifact: &Artifact) -> Result<(), TierError> {
        self.inspect(artifact)?;
        self.cache
            .module(artifact)
            .map_err(|e| PrepareError::Compile(format!("{e:#}")))?;
        Ok(())
    }

    /// Validates `artifact` and returns everything learnt about it.
    pub fn inspect(&self, artifact: &Artifact) -> Result<Arc<ModuleInfo>, Rejection> {
        self.cache.validate(artifact)
    }
}

impl Tier for WasmTier {
    type Code = WasmCode;

    fn validate(&self, artifact: &Artifact) -> Result<Manifest, TierError> {
        Ok(self.inspect(artifact)?.manifest.clone())
    }

    fn prepare(
        &self,
        artifact: &Artifact,
        _manifest: &Manifest,
        slot: &SlotContext,
    ) -> Result<WasmCode, TierError> {
        let info = self.inspect(artifact)?;
        let module = self
            .cache
            .module(artifact)
            .map_err(|e| PrepareError::Compile(format!("{e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| PrepareError::Link(format!("{e:#}")))?;
        Ok(WasmCode::prepare(
            pre,
            self.engine.clone(),
            slot.clone(),
            info,
            &self.config(),
            &self.live_revisions,
        )?)
    }
}

fn engine_config(config: &WasmConfig) -> wasmtime::Config {
    let mut pool = PoolingAllocationConfig::new();
    // Sized for the whole process: every live instance of every revision of
    // every slot. Address space is reserved for all of them up front; memory
    // is committed only as plugins touch it.
    pool.total_core_instances(config.total_instances)
        .total_memories(config.total_instances)
        .total_tables(config.total_instances)
        .max_memory_size(config.memory_cap as usize)
        // Keep a little of each memory resident between instances so that
        // re-instantiating after a swap is a memset, not page faults.
        .linear_memory_keep_resident(64 << 10)
        .table_keep_resident(16 << 10);
    let mut c = wasmtime::Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .memory_init_cow(true);
    c
}

/// Advances the engine's epoch every [`EPOCH_TICK`], which is what ends
/// calls past their deadline. Holds only a weak reference, so it stops when
/// the engine is dropped.
pub fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("hotswap-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(config::EPOCH_TICK);
            match engine.upgrade() {
                Some(e) => e.increment_epoch(),
                None => return,
            }
        })
        .expect("cannot start the epoch thread");
}
