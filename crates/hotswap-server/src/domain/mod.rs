//! What the server runs, whatever speaks to it: the slots and their store
//! (`gateway`), the tiers they run on (`tiers`), the canaries' error budget
//! (`budget`), the signature policy (`signing`) and the eBPF programs
//! (`ebpf`). Nothing here knows HTTP.

pub(crate) mod budget;
pub(crate) mod ebpf;
pub(crate) mod gateway;
pub mod signing;
pub(crate) mod tiers;
