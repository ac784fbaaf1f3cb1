//! The sizes the hosts enforce, so that a plugin cannot exhaust the host.
//!
//! The key-value limits are `hotswap_core::KvLimits::default()`: the
//! defaults every host's store enforces and the guest SDK's stand-ins
//! mirror (an embedder may build a store with others).

/// The longest key, in bytes (1 KiB). A buffer this long always fits a
/// key from `kv_next`.
pub const MAX_KEY: usize = 1024;
/// The longest value, in bytes (1 MiB).
pub const MAX_VALUE: usize = 1024 * 1024;
/// The most keys one slot's store holds.
pub const MAX_KEYS: usize = 100_000;
/// The most bytes of one `log` call the host keeps; the rest is cut.
pub const MAX_LOG: usize = 4096;
/// The longest output `hs_process` can return: what 31 bits of length carry.
pub const MAX_OUTPUT: usize = 0x7fff_ffff;
/// The longest plugin name in a manifest, in characters.
pub const MAX_NAME: usize = 64;
/// The longest plugin version in a manifest, in characters.
pub const MAX_VERSION: usize = 64;
