//! The hotswap plugin ABI, version 1, written down once.
//!
//! `docs/abi.md` is the contract in words; this crate is the same contract
//! as constants, so that the hosts (`hotswap-wasm`, `hotswap-native`), the
//! Rust guest SDK (`hotswap-guest`), the `hotswap check` command and the
//! slot's key-value limits (`hotswap-core`) read every name, signature,
//! return code and limit from one place instead of each keeping its own
//! copy. The C header (`crates/hotswap-guest/include/hotswap.h`) cannot
//! depend on Rust, so a test in hotswap-guest (`tests/c_header.rs`) parses
//! it and checks it against this crate: the header cannot drift silently.
//!
//! What is here:
//!
//! - [`ABI_VERSION`], [`HOST_MODULE`] and [`MANIFEST_SECTION`];
//! - [`imports`]: the host functions of module `hotswap` with their wasm
//!   signatures ([`IMPORTS`]);
//! - [`exports`]: the plugin's exports, with their wasm signatures
//!   ([`WASM_EXPORTS`]) and the native binding's names;
//! - [`code`]: every number that crosses the boundary with a meaning
//!   (key-value results, `hs_call`'s results, log levels);
//! - [`limits`]: the sizes the hosts enforce;
//! - [`packed`]: the layout of `hs_process`'s `i64` result;
//! - [`native`]: the C types the native host and a `cdylib` plugin share
//!   ([`native::HostTable`]).
//!
//! It has no dependencies and is `no_std`: it describes the ABI, it runs
//! none of it.
//!
//! ```
//! use hotswap_abi::{code, imports, limits, ValType, HOST_MODULE, IMPORTS};
//!
//! let kv_get = IMPORTS.iter().find(|f| f.name == imports::KV_GET).unwrap();
//! assert_eq!(HOST_MODULE, "hotswap");
//! assert_eq!(kv_get.params, [ValType::I32; 4]);
//! assert_eq!(kv_get.signature().to_string(), "func(i32, i32, i32, i32) -> (i64)");
//! assert_eq!(code::KV_ABSENT, -1);
//! assert_eq!(limits::MAX_KEY, 1024);
//! ```
//!
//! # Why hotswap-core depends on it
//!
//! hotswap-core is tier-agnostic: it runs no plugin code and depends on no
//! tier. This crate is not a tier either; it is the ABI both plugin tiers
//! implement, as plain constants with no dependencies. Core already speaks
//! that ABI where every tier must agree (the manifest section's name, the
//! supported versions, the key-value error codes, the key-value limits), so
//! it takes those from here rather than keep a second copy, and
//! `KvLimits::default()` is [`limits::MAX_KEY`], [`limits::MAX_VALUE`] and
//! [`limits::MAX_KEYS`]. A store may still be built with other limits; these
//! are the defaults every host enforces and the guest SDK's stand-ins
//! mirror.

#![no_std]
#![warn(missing_docs)]

pub mod code;
pub mod exports;
pub mod imports;
pub mod limits;
pub mod native;
pub mod packed;
mod sig;

pub use exports::{Export, WASM_EXPORTS};
pub use imports::{HostFn, IMPORTS};
pub use sig::{Signature, ValType};

/// The ABI version this crate describes: what a plugin's manifest says in
/// `abi`, and what the native host puts in [`native::HostTable::abi`].
pub const ABI_VERSION: u32 = 1;

/// The module every host function is imported from (WASM).
pub const HOST_MODULE: &str = "hotswap";

/// The section that holds a plugin's manifest: a custom section of a WASM
/// module, an ELF section of a native library.
pub const MANIFEST_SECTION: &str = "hotswap.manifest";
