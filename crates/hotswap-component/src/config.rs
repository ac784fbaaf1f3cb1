//! `ComponentConfig`: the limits every component request runs under.

use std::path::PathBuf;
use std::time::Duration;

use hotswap_wasm::EPOCH_TICK;

/// The tier's settings. Every request gets a fresh instance under these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentConfig {
    /// Most linear memory one request's instance may have, in bytes. A
    /// handler that grows a memory past it fails that request (502,
    /// `memory-limit`). It applies to each of the instance's memories.
    pub memory_cap: u64,
    /// Longest one request may run, from its instance's start to the last
    /// byte of its response body. Past it, a request without an answer yet
    /// gets 504 and one that is streaming its body is cut.
    pub deadline: Duration,
    /// Most requests served at once by components, across every slot: the
    /// pooling allocator reserves address space (not memory) for this many
    /// instances up front. A request past it is refused (503).
    pub max_instances: u32,
    /// Where compiled components are kept across restarts; `None` keeps
    /// them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// How the pool resets an instance's memory for the next request.
    /// `hotswap bench component` measures each against the others.
    pub reset: Reset,
}

/// How the pooling allocator makes a used instance's memory fresh for the
/// next request (one instance per request makes this the main cost after
/// the handler itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// wasmtime's default: `madvise` every memory back to the kernel at
    /// once; the next instance page-faults in what it touches.
    Madvise,
    /// Keep this many bytes of each memory resident and `memset` them to
    /// zero; `madvise` the rest.
    KeepResident(u64),
    /// Reset only the pages the instance dirtied (Linux's `PAGEMAP_SCAN`,
    /// kernel 6.7 or newer; `madvise` elsewhere), and batch the `madvise`
    /// calls, so their TLB shootdowns are paid once per batch.
    DirtyPages,
}

impl Default for ComponentConfig {
    fn default() -> Self {
        ComponentConfig {
            memory_cap: 64 << 20,
            deadline: Duration::from_secs(10),
            max_instances: 256,
            cache_dir: None,
            reset: Reset::DirtyPages,
        }
    }
}

/// Settings that do not make sense together; the message says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid component settings: {0}")]
pub struct ComponentConfigError(&'static str);

impl ComponentConfig {
    /// Checks the settings, so that a typo in a config file is an error at
    /// start-up rather than a surprise under load.
    pub fn check(&self) -> Result<(), ComponentConfigError> {
        if self.memory_cap < 64 << 10 || self.memory_cap > 4 << 30 {
            return Err(ComponentConfigError(
                "memory_cap must be between 64 KiB (one wasm page) and 4 GiB",
            ));
        }
        if self.deadline < EPOCH_TICK || self.deadline > Duration::from_secs(3600) {
            return Err(ComponentConfigError(
                "deadline must be between 1 ms and 1 hour",
            ));
        }
        if matches!(self.reset, Reset::KeepResident(n) if n > self.memory_cap) {
            return Err(ComponentConfigError(
                "the memory kept resident cannot be more than memory_cap",
            ));
        }
        if self.max_instances == 0 || self.max_instances > 100_000 {
            return Err(ComponentConfigError(
                "max_instances must be between 1 and 100000",
            ));
        }
        Ok(())
    }
}
