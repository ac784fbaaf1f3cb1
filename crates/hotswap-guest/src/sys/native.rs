//! The host functions off wasm32: the host's own, once it has bound itself,
//! else in-process stand-ins for a plugin's unit tests.
//!
//! A native plugin loaded by hotswap gets the host's [`HostTable`] through
//! `hs_bind` before anything else runs, and every function below goes
//! through it. Without one (a plugin's `cargo test`), the stand-ins have the
//! same signatures and return codes, so the safe wrappers run on the build
//! machine.

use crate::native_abi::HostTable;
use hotswap_abi::code::{KV_ABSENT, KV_FULL, KV_TOO_LARGE, OK};
use hotswap_abi::limits::{MAX_KEY, MAX_KEYS, MAX_VALUE};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// The host's table, set by `hs_bind`; null until then.
static HOST: AtomicPtr<HostTable> = AtomicPtr::new(std::ptr::null_mut());

/// Keeps `table` for every host function from now on.
///
/// # Safety
/// `table` must stay valid until the library is unloaded.
pub unsafe fn bind(table: *const HostTable) {
    HOST.store(table.cast_mut(), Ordering::Release);
}

fn host() -> Option<&'static HostTable> {
    // SAFETY: `bind`'s caller keeps the table alive while this library is loaded.
    unsafe { HOST.load(Ordering::Acquire).as_ref() }
}

pub unsafe fn log(level: i32, ptr: *const u8, len: usize) {
    match host() {
        // SAFETY: the host's table, kept alive by the host; the arguments are
        // the caller's, passed through as the ABI types them.
        Some(h) => unsafe { (h.log)(h.ctx, level, ptr, len) },
        None => unsafe { standin_log(level, ptr, len) },
    }
}

pub unsafe fn now_ns() -> i64 {
    match host() {
        Some(h) => unsafe { (h.now_ns)(h.ctx) },
        None => unsafe { standin_now_ns() },
    }
}

pub unsafe fn random(ptr: *mut u8, len: usize) -> i32 {
    match host() {
        Some(h) => unsafe { (h.random)(h.ctx, ptr, len) },
        None => unsafe { standin_random(ptr, len) },
    }
}

pub unsafe fn kv_get(key_ptr: *const u8, key_len: usize, val_ptr: *mut u8, val_cap: usize) -> i64 {
    match host() {
        Some(h) => unsafe { (h.kv_get)(h.ctx, key_ptr, key_len, val_ptr, val_cap) },
        None => unsafe { standin_kv_get(key_ptr, key_len, val_ptr, val_cap) },
    }
}

pub unsafe fn kv_put(
    key_ptr: *const u8,
    key_len: usize,
    val_ptr: *const u8,
    val_len: usize,
) -> i32 {
    match host() {
        Some(h) => unsafe { (h.kv_put)(h.ctx, key_ptr, key_len, val_ptr, val_len) },
        None => unsafe { standin_kv_put(key_ptr, key_len, val_ptr, val_len) },
    }
}

pub unsafe fn kv_delete(key_ptr: *const u8, key_len: usize) -> i32 {
    match host() {
        Some(h) => unsafe { (h.kv_delete)(h.ctx, key_ptr, key_len) },
        None => unsafe { standin_kv_delete(key_ptr, key_len) },
    }
}

pub unsafe fn kv_next(
    from_ptr: *const u8,
    from_len: usize,
    key_ptr: *mut u8,
    key_cap: usize,
) -> i64 {
    match host() {
        Some(h) => unsafe { (h.kv_next)(h.ctx, from_ptr, from_len, key_ptr, key_cap) },
        None => unsafe { standin_kv_next(from_ptr, from_len, key_ptr, key_cap) },
    }
}

// The stand-ins.

static KV: Mutex<BTreeMap<Vec<u8>, Vec<u8>>> = Mutex::new(BTreeMap::new());

fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: callers (the safe wrappers) pass a live slice.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

unsafe fn standin_log(level: i32, ptr: *const u8, len: usize) {
    let level = ["error", "warn", "info", "debug", "trace"]
        .get(level as usize)
        .copied()
        .unwrap_or("?");
    eprintln!("[{level}] {}", String::from_utf8_lossy(bytes(ptr, len)));
}

unsafe fn standin_now_ns() -> i64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as i64
}

unsafe fn standin_random(_ptr: *mut u8, _len: usize) -> i32 {
    panic!("host function random is only available when running under hotswap")
}

unsafe fn standin_kv_get(
    key_ptr: *const u8,
    key_len: usize,
    val_ptr: *mut u8,
    val_cap: usize,
) -> i64 {
    let kv = KV.lock().unwrap_or_else(PoisonError::into_inner);
    match kv.get(bytes(key_ptr, key_len)) {
        None => KV_ABSENT as i64,
        Some(value) => {
            if value.len() <= val_cap && !value.is_empty() {
                // SAFETY: the caller's buffer has room for `val_cap` bytes.
                unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), val_ptr, value.len()) };
            }
            value.len() as i64
        }
    }
}

unsafe fn standin_kv_put(
    key_ptr: *const u8,
    key_len: usize,
    val_ptr: *const u8,
    val_len: usize,
) -> i32 {
    if key_len > MAX_KEY || val_len > MAX_VALUE {
        return KV_TOO_LARGE;
    }
    let mut kv = KV.lock().unwrap_or_else(PoisonError::into_inner);
    let key = bytes(key_ptr, key_len);
    if kv.len() >= MAX_KEYS && !kv.contains_key(key) {
        return KV_FULL;
    }
    kv.insert(key.to_vec(), bytes(val_ptr, val_len).to_vec());
    OK
}

unsafe fn standin_kv_delete(key_ptr: *const u8, key_len: usize) -> i32 {
    if key_len > MAX_KEY {
        return KV_TOO_LARGE;
    }
    let mut kv = KV.lock().unwrap_or_else(PoisonError::into_inner);
    kv.remove(bytes(key_ptr, key_len)).is_some() as i32
}

unsafe fn standin_kv_next(
    from_ptr: *const u8,
    from_len: usize,
    key_ptr: *mut u8,
    key_cap: usize,
) -> i64 {
    let kv = KV.lock().unwrap_or_else(PoisonError::into_inner);
    let from = bytes(from_ptr, from_len).to_vec();
    match kv.range(from..).next() {
        None => KV_ABSENT as i64,
        Some((key, _)) => {
            if key.len() <= key_cap && !key.is_empty() {
                // SAFETY: the caller's buffer has room for `key_cap` bytes.
                unsafe { std::ptr::copy_nonoverlapping(key.as_ptr(), key_ptr, key.len()) };
            }
            key.len() as i64
        }
    }
}
