//! The defaults of a rollout, written once for every face of the fleet
//! (`hotswap fleet rollout`, the HotswapPlugin resource).

/// One member, a quarter, half, everyone.
pub const WAVES: &str = "1,25%,50%,100%";
/// Each wave's soak.
pub const SOAK: &str = "30s";
/// The share of calls that may fail, fleet-wide.
pub const BUDGET: &str = "1%";
/// Calls a wave must serve before the budget judges it.
pub const MIN_CALLS: u64 = 20;
/// The first wave's canary weight, in percent.
pub const CANARY_WEIGHT: u8 = 10;
