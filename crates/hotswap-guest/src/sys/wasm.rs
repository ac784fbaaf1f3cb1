//! The `hotswap` host imports, for wasm32.
//!
//! The host functions of module `hotswap`, exactly as `docs/abi.md` types
//! them (`usize` and pointers are `i32` on wasm32). The module and the
//! names must be literals here; lib.rs checks them against hotswap-abi, and
//! the hosts' validator checks the signatures of every example built with
//! them.

#[link(wasm_import_module = "hotswap")]
unsafe extern "C" {
    pub fn log(level: i32, ptr: *const u8, len: usize);
    pub fn now_ns() -> i64;
    pub fn random(ptr: *mut u8, len: usize) -> i32;
    pub fn kv_get(key_ptr: *const u8, key_len: usize, val_ptr: *mut u8, val_cap: usize) -> i64;
    pub fn kv_put(key_ptr: *const u8, key_len: usize, val_ptr: *const u8, val_len: usize) -> i32;
    pub fn kv_delete(key_ptr: *const u8, key_len: usize) -> i32;
    pub fn kv_next(from_ptr: *const u8, from_len: usize, key_ptr: *mut u8, key_cap: usize) -> i64;
}
