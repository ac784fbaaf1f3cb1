//! The numbers that cross the boundary with a meaning (docs/abi.md).
//!
//! They are `i32`; `kv_get` and `kv_next` return `i64` and widen them.
//! Several codes share a value on purpose: each function's results are read
//! on their own, and a native host's [`BAD_ARGUMENT`] is
//! [`KV_TOO_LARGE`] so that a bad pointer fails the plugin's own operation.

/// Success: `random` filled the buffer, `kv_put` stored, `hs_bind` accepted
/// the table, `hs_init` is ready, `hs_health` is healthy, `hs_migrate` is done.
pub const OK: i32 = 0;

/// `kv_get`: the key is absent; `kv_next`: past the last key.
pub const KV_ABSENT: i32 = -1;
/// `kv_put`, `kv_delete`: the key (or value) is over its limit ([`crate::limits`]).
pub const KV_TOO_LARGE: i32 = -1;
/// `kv_put`: the slot holds [`MAX_KEYS`](crate::limits::MAX_KEYS) keys already.
pub const KV_FULL: i32 = -2;
/// Any `kv_*`: the host's storage failed. The native `random` also answers
/// it when the system has no randomness to give.
pub const KV_STORAGE: i32 = -3;
/// `kv_delete`: the key was there and is gone.
pub const KV_DELETED: i32 = 1;
/// `kv_delete`: the key was not there.
pub const KV_WAS_ABSENT: i32 = 0;

/// Native host functions: a null pointer with a non-zero length.
pub const BAD_ARGUMENT: i32 = KV_TOO_LARGE;

/// What the Rust SDK returns from `hs_bind` (to refuse a table: another ABI
/// version, or one too small), `hs_init`, `hs_health` or `hs_migrate` to
/// say no. Hosts read any non-zero value as failure.
pub const FAILED: i32 = 1;

/// `hs_call`: the output is the reply.
pub const CALL_OK: i32 = 0;
/// `hs_call`: the output is the plugin's own error message.
pub const CALL_ERROR: i32 = 1;
/// `hs_call`: the plugin failed (a caught panic); the output says why.
pub const CALL_TRAP: i32 = 2;

/// `log` level: something failed (and, during a migration, why it failed).
pub const LOG_ERROR: i32 = 0;
/// `log` level: something looks wrong.
pub const LOG_WARN: i32 = 1;
/// `log` level: routine information.
pub const LOG_INFO: i32 = 2;
/// `log` level: detail for debugging.
pub const LOG_DEBUG: i32 = 3;
/// `log` level: even more detail; any other value is read as this too.
pub const LOG_TRACE: i32 = 4;
