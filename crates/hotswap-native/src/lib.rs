//! The native tier: plugins as shared libraries (`cdylib`s) that export ABI
//! v1 as C symbols, behind the same slot protocol as WebAssembly.
//!
//! The same plugin source builds for both tiers: `hotswap_guest::plugin!`
//! emits `hs_alloc`/`hs_process` on wasm32 and `hs_bind`/`hs_call` natively
//! (docs/abi.md, "Native plugins"). [`NativeTier`] implements
//! [`hotswap_core::Tier`]:
//!
//! - **validate** reads the ELF file without loading it: a shared library
//!   for this machine, the required exports, one manifest section
//!   ([`validate`], [`Rejection`]);
//! - **prepare** writes the bytes to a sealed memfd with a name unique to
//!   this load (`dlopen` caches by path, so each revision must have its
//!   own), loads it with `RTLD_NOW | RTLD_LOCAL`, resolves the exports once,
//!   hands it the host's functions (`hs_bind`), then runs `hs_init` and
//!   `hs_health`;
//! - **retire** runs `hs_shutdown` and `dlclose` off the call path (the
//!   slot's reaper), then checks `/proc/self/maps` that the library is
//!   really gone, and says so loudly when it is not ([`NativeStats::pinned`]).
//!
//! Native code is **not sandboxed**: it runs with the host's privileges, in
//! its address space, without a deadline or a memory cap, and a crash in it
//! is a crash of the host. Serve only libraries you would link into the host
//! yourself; `hotswap serve` requires them to be signed by default.
//!
//! ```
//! use std::sync::Arc;
//! use hotswap_core::{Artifact, EventBus, MemoryKv, Slot};
//! use hotswap_native::NativeTier;
//!
//! let tier = Arc::new(NativeTier::new());
//! let slot = Slot::new("greet", tier.clone(), Arc::new(MemoryKv::default()), EventBus::new());
//! slot.deploy(Artifact::new(hotswap_examples::GREET_V1_NATIVE.to_vec()), None)?;
//! assert_eq!(slot.call(b"world")?, b"hello, world!");
//!
//! slot.deploy(Artifact::new(hotswap_examples::GREET_V2_NATIVE.to_vec()), None)?;
//! assert_eq!(slot.call(b"world")?, b"HELLO, WORLD!! (v2)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod code;
mod host;
mod load;
mod validate;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use hotswap_core::{Artifact, Manifest, SlotContext, Tier, TierError};

pub use code::{NativeCode, PrepareError};
pub use load::LoadError;
pub use validate::{validate, LibraryInfo, Rejection, MANIFEST_SECTION, REQUIRED_EXPORTS};

/// The native tier. Cheap to make; holds only its counters.
#[derive(Default)]
pub struct NativeTier {
    counters: Arc<Counters>,
}

/// What the tier has loaded and unloaded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NativeStats {
    /// Libraries loaded (each revision prepared is one load).
    pub loaded: u64,
    /// Libraries unloaded and confirmed gone from the process's mappings.
    pub unloaded: u64,
    /// Libraries still mapped after `dlclose`: pinned, most often by a
    /// thread-local destructor. Each keeps its memory until the process ends
    /// (or the pinning thread exits).
    pub pinned: u64,
}

impl NativeStats {
    /// Libraries loaded and not (yet) unloaded or pinned.
    pub fn live(&self) -> u64 {
        self.loaded
            .saturating_sub(self.unloaded)
            .saturating_sub(self.pinned)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    loaded: AtomicU64,
    unloaded: AtomicU64,
    pinned: AtomicU64,
}

impl Counters {
    fn loaded(&self) {
        self.loaded.fetch_add(1, Relaxed);
    }
    fn unloaded(&self) {
        self.unloaded.fetch_add(1, Relaxed);
    }
    fn pinned(&self) {
        self.pinned.fetch_add(1, Relaxed);
    }
}

impl NativeTier {
    /// A native tier.
    pub fn new() -> NativeTier {
        NativeTier::default()
    }

    /// What this tier has loaded and unloaded so far.
    pub fn stats(&self) -> NativeStats {
        // Unloads before loads: a library is counted loaded before it can
        // be counted unloaded, so this order never sees more unloads than
        // loads (and `live` saturates anyway).
        let c = &self.counters;
        let (unloaded, pinned) = (c.unloaded.load(Relaxed), c.pinned.load(Relaxed));
        NativeStats {
            loaded: c.loaded.load(Relaxed),
            unloaded,
            pinned,
        }
    }
}

impl Tier for NativeTier {
    type Code = NativeCode;

    fn validate(&self, artifact: &Artifact) -> Result<Manifest, TierError> {
        Ok(validate(artifact.bytes())?.manifest)
    }

    fn prepare(
        &self,
        artifact: &Artifact,
        _manifest: &Manifest,
        slot: &SlotContext,
    ) -> Result<NativeCode, TierError> {
        // Validation is a read of the ELF headers and symbols (microseconds),
        // so it runs again rather than trusting a cache across calls.
        let info = validate(artifact.bytes())?;
        let label = format!("{}:{}", slot.slot, artifact.digest().short());
        Ok(NativeCode::prepare(
            artifact.bytes(),
            &label,
            &info,
            host::Host::new(slot),
            self.counters.clone(),
        )?)
    }
}
