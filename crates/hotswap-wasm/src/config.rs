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
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

impl WasmConfig {
    /// The deadline in epoch ticks (see [`ticks`]).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        ticks(self.deadline)
    }

    /// Checks that the settings make sense together, so that a typo in a
    /// config file is an error at start-up, not a surprise under load.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError(what.to_string()));
        if self.memory_cap < 64 << 10 || self.memory_cap > 4 << 30 {
            return bad("memory_cap must be between 64 KiB (one wasm page) and 4 GiB");
        }
        if self.deadline < EPOCH_TICK || self.deadline > Duration::from_secs(3600) {
            return bad("deadline must be between 1 ms and 1 hour");
        }
        if self.instance_cap == 0 || self.instance_cap > self.total_instances as usize {
            return bad("instance_cap must be at least 1 and at most total_instances");
        }
        Ok(())
    }
}

/// Settings that do not make sense; the message says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid WASM settings: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: String) -> ConfigError {
        ConfigError(message)
    }
}

/// `d` in epoch ticks, rounded up, plus one: the current tick may be about
/// to end, and a call must get at least its full time.
pub fn ticks(d: Duration) -> u64 {
    let ticks = d.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
    u64::try_from(ticks).unwrap_or(u64::MAX / 2).max(1) + 1
}
