//! What every eBPF test needs: a tier with a pin root of its own, or the
//! reason this machine cannot run the test.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use aya::maps::{HashMap, Map, MapData};
use hotswap_ebpf::EbpfTier;

/// A tier pinning under a fresh directory, removed on drop. `None` (after
/// saying why) where eBPF cannot run; under `CI=true` that is a failure.
pub fn tier() -> Option<Tier> {
    static N: AtomicU32 = AtomicU32::new(0);
    let root = PathBuf::from(format!(
        "/sys/fs/bpf/hotswap-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    match EbpfTier::new(&root) {
        Ok(tier) => Some(Tier { tier, root }),
        Err(e) => {
            hotswap_testkit::cannot_run_here(e);
            None
        }
    }
}

pub struct Tier {
    pub tier: EbpfTier,
    pub root: PathBuf,
}

impl std::ops::Deref for Tier {
    type Target = EbpfTier;
    fn deref(&self) -> &EbpfTier {
        &self.tier
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A pinned hash map, typed at compile time through aya: an independent
/// reader beside hotswap's own typed map access. (Each test binary uses a
/// part of this module.)
#[allow(dead_code)]
pub fn hash<K: aya::Pod, V: aya::Pod>(
    tier: &EbpfTier,
    program: &str,
    map: &str,
) -> HashMap<MapData, K, V> {
    let data = MapData::from_pin(tier.map_pin(program, map).unwrap()).unwrap();
    HashMap::try_from(Map::from_map_data(data).unwrap()).unwrap()
}

/// The calling thread's id, which BPF sees as its pid.
#[allow(dead_code)]
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}
