//! `WasmConfig`: the limits and sizes every plugin runs under.

use std::path::PathBuf;
use std::time::Duration;

/// How the WASM tier runs plugins. The defaults suit a laptop and a small
/// server alike; see docs/abi.md for what each limit means to a plugin.
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// Most linear memory one instance may have, in bytes.
    pub memory_cap: u64,
    /// Longest one call (and `hs_init`, `hs_health`) may run.
    pub deadline: Duration,
    /// Most instances of one revision at once, i.e. most concurrent calls
    /// one revision serves.
    pub instance_cap: usize,
    /// Instances the whole process may have at once, across all slots and
    /// revisions. The pooling allocator reserves address space (not memory)
    /// for this many up front, so keep it within reason: each costs
    /// `memory_cap` plus a guard region of virtual address space.
    pub total_instances: u32,
    /// Where compiled modules are kept across restarts; `None` keeps them in
    /// memory only.
    pub cache_dir: Option<PathBuf>,
    /// Whether plugins may import WASI preview 1, in a sandbox with no
    /// files, no network, no environment and no arguments. Needs the `wasi`
    /// cargo feature (on by default).
    pub allow_wasi: bool,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            memory_cap: 64 << 20,
            deadline: Duration::from_secs(1),
            instance_cap: 16,
            total_instances: 1000,
            cache_dir: None,
            allow_wasi: false,
        }
    }
}

/// How often the epoch advances. Deadlines are enforced to this resolution.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

impl WasmConfig {
    /// The deadline in epoch ticks, rounded up, plus one: the current tick
    /// may be about to end, and a call must get at least its full deadline.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        (self.deadline.as_nanos().div_ceil(tick) as u64).max(1) + 1
    }
}
