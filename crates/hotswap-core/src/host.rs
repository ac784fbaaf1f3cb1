//! What every tier's host functions share: the ABI's return codes, its clock and its log.

use std::sync::OnceLock;
use std::time::Instant;

use hotswap_abi::code;

use crate::KvError;

impl KvError {
    /// The number a plugin sees for this error from `kv_get`, `kv_put` or
    /// `kv_delete` (docs/abi.md): `-1` too large, `-2` full, `-3` storage failed.
    pub fn abi_code(&self) -> i32 {
        match self {
            KvError::TooLarge { .. } => code::KV_TOO_LARGE,
            KvError::Full { .. } => code::KV_FULL,
            KvError::Backend(_) => code::KV_STORAGE,
        }
    }
}

/// The host's `now_ns`: a monotonic clock in nanoseconds from an arbitrary
/// origin (the first reading in this process), the same for every tier.
pub fn now_ns() -> i64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as i64
}

/// The host's `log`: `text` from the plugin in `slot`, at the ABI's `level`
/// (0 error, 1 warn, 2 info, 3 debug, anything else trace), as a `plugin`
/// event tagged with the slot.
pub fn plugin_log(slot: &str, level: i32, text: &str) {
    match level {
        code::LOG_ERROR => tracing::error!(target: "plugin", slot, "{text}"),
        code::LOG_WARN => tracing::warn!(target: "plugin", slot, "{text}"),
        code::LOG_INFO => tracing::info!(target: "plugin", slot, "{text}"),
        code::LOG_DEBUG => tracing::debug!(target: "plugin", slot, "{text}"),
        _ => tracing::trace!(target: "plugin", slot, "{text}"),
    }
}
