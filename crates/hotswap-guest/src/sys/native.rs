//! The host functions off wasm32: in-process stand-ins for native builds and tests.
//!
//! Native stand-ins for the host functions, with the same signatures and
//! return codes, so that the safe wrappers (and a plugin's unit tests) run
//! on the build machine.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

const MAX_KEY: usize = 1024;
const MAX_VALUE: usize = 1024 * 1024;
const MAX_KEYS: usize = 100_000;

static KV: Mutex<BTreeMap<Vec<u8>, Vec<u8>>> = Mutex::new(BTreeMap::new());

fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: callers (the safe wrappers) pass a live slice.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

pub unsafe fn log(level: i32, ptr: *const u8, len: usize) {
    let level = ["error", "warn", "info", "debug", "trace"]
        .get(level as usize)
        .copied()
        .unwrap_or("?");
    eprintln!("[{level}] {}", String::from_utf8_lossy(bytes(ptr, len)));
}

pub unsafe fn now_ns() -> i64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as i64
}

pub unsafe fn random(_ptr: *mut u8, _len: usize) -> i32 {
    panic!("host function random is only available when running under hotswap")
}

pub unsafe fn kv_get(key_ptr: *const u8, key_len: usize, val_ptr: *mut u8, val_cap: usize) -> i64 {
    let kv = KV.lock().unwrap_or_else(PoisonError::into_inner);
    match kv.get(bytes(key_ptr, key_len)) {
        None => -1,
        Some(value) => {
            if value.len() <= val_cap && !value.is_empty() {
                // SAFETY: the caller's buffer has room for `val_cap` bytes.
                unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), val_ptr, value.len()) };
            }
            value.len() as i64
        }
    }
}

pub unsafe fn kv_put(
    key_ptr: *const u8,
    key_len: usize,
    val_ptr: *const u8,
    val_len: usize,
) -> i32 {
    if key_len > MAX_KEY || val_len > MAX_VALUE {
        return -1;
    }
    let mut kv = KV.lock().unwrap_or_else(PoisonError::into_inner);
    let key = bytes(key_ptr, key_len);
    if kv.len() >= MAX_KEYS && !kv.contains_key(key) {
        return -2;
    }
    kv.insert(key.to_vec(), bytes(val_ptr, val_len).to_vec());
    0
}

pub unsafe fn kv_delete(key_ptr: *const u8, key_len: usize) -> i32 {
    if key_len > MAX_KEY {
        return -1;
    }
    let mut kv = KV.lock().unwrap_or_else(PoisonError::into_inner);
    kv.remove(bytes(key_ptr, key_len)).is_some() as i32
}
