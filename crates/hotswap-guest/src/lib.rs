//! The plugin author's side of hotswap: everything a Rust crate needs to
//! become a hotswap plugin (ABI version 1, see `docs/abi.md`).
//!
//! A plugin is a `cdylib` built for `wasm32-unknown-unknown`. It writes one
//! function from input bytes to output bytes and hands it to [`plugin!`],
//! which emits the `hotswap.manifest` custom section and the `hs_alloc` /
//! `hs_process` exports (plus `hs_init`, `hs_health` and `hs_shutdown` when
//! asked for). The host functions are reachable through safe wrappers:
//! [`log`], [`now_ns`], [`random`] and the slot's key-value store in [`kv`].
//!
//! ```
//! /// Replies `hello, <input>!`.
//! fn process(input: &[u8]) -> Result<Vec<u8>, String> {
//!     if input.len() > 1024 {
//!         return Err("name too long".to_string()); // the host sees an error
//!     }
//!     let name = String::from_utf8_lossy(input);
//!     hotswap_guest::log::debug(&format!("greeting {name}"));
//!     Ok(format!("hello, {name}!").into_bytes())
//! }
//!
//! // Name `greet`, version from Cargo.toml, no hs_init/hs_health/hs_shutdown.
//! hotswap_guest::plugin!(process, name = "greet");
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --target wasm32-unknown-unknown --release`;
//! the module is `target/wasm32-unknown-unknown/release/<crate>.wasm`, with
//! `-` in the crate name as `_`. (Inside this workspace the examples use the
//! smaller `--profile plugin` the workspace defines.)
//!
//! The crate also compiles for the host. There the host functions are
//! stand-ins so that a plugin's own unit tests run natively: [`log`] prints to
//! stderr, [`now_ns`] reads [`std::time::Instant`], [`kv`] is an in-process
//! map with the host's limits, and [`random`] panics (there is no hotswap host
//! to ask).

#![warn(missing_docs)]

/// The ABI version this crate implements; written into every manifest.
pub const ABI_VERSION: u32 = hotswap_abi::ABI_VERSION;

/// The ABI's names, codes and limits, for plugins that want them.
pub use hotswap_abi as abi;

// What the compiler needs as literals cannot come from hotswap-abi: the
// `#[link(wasm_import_module)]` of sys/wasm.rs, and `plugin!`'s
// `link_section`, `"abi":1` and `#[no_mangle]` export names. They are
// checked against it here, so a change there fails this crate's build.
const _: () = {
    use hotswap_abi::{exports, imports};
    assert!(same(hotswap_abi::HOST_MODULE, "hotswap"));
    assert!(same(hotswap_abi::MANIFEST_SECTION, "hotswap.manifest"));
    assert!(hotswap_abi::ABI_VERSION == 1);
    let names = [
        (exports::ALLOC, "hs_alloc"),
        (exports::PROCESS, "hs_process"),
        (exports::BIND, "hs_bind"),
        (exports::CALL, "hs_call"),
        (exports::INIT, "hs_init"),
        (exports::HEALTH, "hs_health"),
        (exports::SHUTDOWN, "hs_shutdown"),
        (exports::MIGRATE, "hs_migrate"),
        (imports::LOG, "log"),
        (imports::NOW_NS, "now_ns"),
        (imports::RANDOM, "random"),
        (imports::KV_GET, "kv_get"),
        (imports::KV_PUT, "kv_put"),
        (imports::KV_DELETE, "kv_delete"),
        (imports::KV_NEXT, "kv_next"),
    ];
    let mut i = 0;
    while i < names.len() {
        assert!(same(names[i].0, names[i].1));
        i += 1;
    }
    assert!(hotswap_abi::IMPORTS.len() == 7);
};

/// `a == b`, in a const.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

mod host;
mod macros;

// The raw host functions, as `crate::sys`: the `hotswap` imports on wasm32,
// native stand-ins elsewhere.
#[cfg(target_arch = "wasm32")]
#[path = "sys/wasm.rs"]
mod sys;
#[cfg(not(target_arch = "wasm32"))]
#[path = "sys/native.rs"]
mod sys;

#[cfg(not(target_arch = "wasm32"))]
pub mod c_sdk;
pub mod kv;
pub mod log;
#[cfg(not(target_arch = "wasm32"))]
pub mod native_abi;

#[doc(hidden)]
#[path = "rt.rs"]
pub mod __rt;

pub use host::{now_ns, random};
