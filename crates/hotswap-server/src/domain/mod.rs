//! What the server runs, whatever speaks to it: the slots and their store
//! (`gateway`), the tiers they run on (`tiers`), the canaries' error budget
//! (`budget`), the signature policy (`signing`, from hotswap-core) and the eBPF programs
//! (`ebpf`). Nothing here knows HTTP.

pub(crate) mod budget;
pub(crate) mod ebpf;
pub(crate) mod gateway;
pub use hotswap_core::signing;
pub(crate) mod tiers;
