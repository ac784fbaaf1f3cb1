//! The native binding of ABI v1: the C types a `cdylib` plugin and the native
//! host (`hotswap-native`) share. Not on wasm32.
//!
//! They are defined once, in [`hotswap_abi::native`], and re-exported here
//! so that this crate's API stays where plugins and the `plugin!` macro
//! expect it.

pub use hotswap_abi::native::{HostTable, Sink, CALL_ERROR, CALL_OK, CALL_TRAP};
