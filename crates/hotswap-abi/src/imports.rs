//! The host functions of module [`HOST_MODULE`](crate::HOST_MODULE), by
//! name and wasm signature (docs/abi.md, "Host functions"). The native
//! binding has the same functions, in the same order, in
//! [`HostTable`](crate::native::HostTable).

use crate::sig::{Signature, ValType, ValType::I32, ValType::I64};

/// `log(level, ptr, len)`: logs UTF-8 text at a [`code`](crate::code) `LOG_*` level.
pub const LOG: &str = "log";
/// `now_ns() -> i64`: a monotonic clock in nanoseconds.
pub const NOW_NS: &str = "now_ns";
/// `random(ptr, len) -> i32`: secure random bytes; [`OK`](crate::code::OK) = done.
pub const RANDOM: &str = "random";
/// `kv_get(key_ptr, key_len, val_ptr, val_cap) -> i64`.
pub const KV_GET: &str = "kv_get";
/// `kv_put(key_ptr, key_len, val_ptr, val_len) -> i32`.
pub const KV_PUT: &str = "kv_put";
/// `kv_delete(key_ptr, key_len) -> i32`.
pub const KV_DELETE: &str = "kv_delete";
/// `kv_next(from_ptr, from_len, key_ptr, key_cap) -> i64`.
pub const KV_NEXT: &str = "kv_next";

/// One host function a plugin may import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostFn {
    /// Its name in module `hotswap`.
    pub name: &'static str,
    /// Its parameters.
    pub params: &'static [ValType],
    /// Its results.
    pub results: &'static [ValType],
}

impl HostFn {
    /// Its type, printable.
    pub const fn signature(&self) -> Signature<'static> {
        Signature {
            params: self.params,
            results: self.results,
        }
    }
}

/// Every host function of ABI v1: a plugin may import these and no others
/// from `hotswap`, each with exactly this type.
pub const IMPORTS: &[HostFn] = &[
    HostFn {
        name: LOG,
        params: &[I32, I32, I32],
        results: &[],
    },
    HostFn {
        name: NOW_NS,
        params: &[],
        results: &[I64],
    },
    HostFn {
        name: RANDOM,
        params: &[I32, I32],
        results: &[I32],
    },
    HostFn {
        name: KV_GET,
        params: &[I32, I32, I32, I32],
        results: &[I64],
    },
    HostFn {
        name: KV_PUT,
        params: &[I32, I32, I32, I32],
        results: &[I32],
    },
    HostFn {
        name: KV_DELETE,
        params: &[I32, I32],
        results: &[I32],
    },
    HostFn {
        name: KV_NEXT,
        params: &[I32, I32, I32, I32],
        results: &[I64],
    },
];

/// The host function called `name`, if the ABI has one.
pub fn find(name: &str) -> Option<&'static HostFn> {
    IMPORTS.iter().find(|f| f.name == name)
}
