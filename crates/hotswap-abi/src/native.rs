//! The native binding of ABI v1: the C types a `cdylib` plugin and the
//! native host (`hotswap-native`) share.
//!
//! A native plugin runs in the host's address space, so the WebAssembly
//! calling convention (the host writes into the plugin's memory, the plugin
//! returns a packed 32-bit pointer) does not carry over. Instead:
//!
//! - the host hands its functions over once, in a [`HostTable`], through
//!   `hs_bind`, before any other export runs;
//! - `hs_call` borrows the host's input buffer for the length of the call
//!   and writes its output through a [`Sink`] the host passes in, so no
//!   allocation ever crosses the boundary and nothing needs freeing. It
//!   returns [`CALL_OK`], [`CALL_ERROR`] or [`CALL_TRAP`].
//!
//! The C declarations are in docs/abi.md ("Native plugins").

use core::ffi::c_void;

pub use crate::code::{CALL_ERROR, CALL_OK, CALL_TRAP};

/// Appends `len` bytes at `ptr` to the call's output. `sink` is the value
/// the host passed to `hs_call`; it is valid only during that call.
pub type Sink = unsafe extern "C" fn(sink: *mut c_void, ptr: *const u8, len: usize);

/// The host's functions for a native plugin, the same seven the `hotswap`
/// WebAssembly module imports ([`IMPORTS`](crate::IMPORTS), in that order),
/// each with the host's context first.
///
/// The host keeps the table (and `ctx`) alive until the library is
/// unloaded. `size` lets later hosts append fields: a plugin reads only the
/// fields that fit in `size`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostTable {
    /// The ABI version of the host ([`crate::ABI_VERSION`]).
    pub abi: u32,
    /// `size_of::<HostTable>()` as the host built it.
    pub size: u32,
    /// The host's context for this library; passed back on every call.
    pub ctx: *mut c_void,
    /// `log(ctx, level, ptr, len)`.
    pub log: unsafe extern "C" fn(*mut c_void, i32, *const u8, usize),
    /// `now_ns(ctx)`.
    pub now_ns: unsafe extern "C" fn(*mut c_void) -> i64,
    /// `random(ctx, ptr, len)`.
    pub random: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> i32,
    /// `kv_get(ctx, key_ptr, key_len, val_ptr, val_cap)`.
    pub kv_get: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut u8, usize) -> i64,
    /// `kv_put(ctx, key_ptr, key_len, val_ptr, val_len)`.
    pub kv_put: unsafe extern "C" fn(*mut c_void, *const u8, usize, *const u8, usize) -> i32,
    /// `kv_delete(ctx, key_ptr, key_len)`.
    pub kv_delete: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> i32,
    /// `kv_next(ctx, from_ptr, from_len, key_ptr, key_cap)`.
    pub kv_next: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut u8, usize) -> i64,
}

impl HostTable {
    /// What a host puts in [`HostTable::size`]: the size of the table this
    /// crate defines.
    pub const SIZE: u32 = core::mem::size_of::<HostTable>() as u32;
}

// SAFETY: the table is plain function pointers and an opaque context the
// host shares between threads itself.
unsafe impl Send for HostTable {}
// SAFETY: as above.
unsafe impl Sync for HostTable {}
