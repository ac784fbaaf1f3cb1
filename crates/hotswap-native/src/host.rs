//! The host's functions for native plugins: a [`HostTable`] per loaded
//! library, over the slot's key-value store.
//!
//! A native plugin shares the host's address space, so its pointers cannot
//! be checked the way a WASM plugin's are: they are trusted like the rest of
//! its code. What is checked is what can be: null pointers with a non-zero
//! length, and the store's size limits before anything is copied.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::{Arc, PoisonError, RwLock};

use hotswap_abi::code::{self, BAD_ARGUMENT, KV_ABSENT};
use hotswap_abi::native::HostTable;
use hotswap_core::{KvStore, SlotContext};

/// What a library's host functions need; `ctx` in its table points here.
pub(crate) struct HostContext {
    slot: Arc<str>,
    kv: Arc<dyn KvStore>,
    /// While `hs_migrate` runs, the migration its key-value calls go to.
    /// A native library has one table for all its threads, so the switch
    /// is here; no call runs beside a migration (the slot is paused).
    migration: RwLock<Option<Arc<dyn KvStore>>>,
    /// The last error the plugin logged during the migration.
    last_error: std::sync::Mutex<Option<String>>,
}

impl HostContext {
    fn kv(&self) -> Arc<dyn KvStore> {
        let migration = self
            .migration
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        migration.clone().unwrap_or_else(|| self.kv.clone())
    }
}

/// A library's table and the context it points to, at a fixed address for
/// as long as the library is loaded. Both are raw allocations (not boxes
/// that move with `Host`), since the plugin holds pointers into them.
pub(crate) struct Host {
    table: NonNull<HostTable>,
    ctx: NonNull<HostContext>,
}

// SAFETY: the table and context are immutable once made, and the context's
// fields are Send + Sync.
unsafe impl Send for Host {}
// SAFETY: as above.
unsafe impl Sync for Host {}

impl Host {
    pub fn new(slot: &SlotContext) -> Host {
        let ctx = NonNull::from(Box::leak(Box::new(HostContext {
            slot: slot.slot.clone(),
            kv: slot.kv.clone(),
            migration: RwLock::new(None),
            last_error: std::sync::Mutex::new(None),
        })));
        let table = NonNull::from(Box::leak(Box::new(HostTable {
            abi: hotswap_abi::ABI_VERSION,
            size: HostTable::SIZE,
            ctx: ctx.as_ptr().cast(),
            log,
            now_ns,
            random,
            kv_get,
            kv_put,
            kv_delete,
            kv_next,
        })));
        Host { table, ctx }
    }

    /// Sends the library's key-value calls to `kv` (a migration) until
    /// [`Host::end_migration`].
    pub fn begin_migration(&self, kv: Arc<dyn KvStore>) {
        // SAFETY: the context lives as long as `self`.
        let ctx = unsafe { self.ctx.as_ref() };
        *ctx.migration
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(kv);
    }

    /// Sends them to the slot's store again, and returns the last error
    /// the plugin logged meanwhile.
    pub fn end_migration(&self) -> Option<String> {
        // SAFETY: as above.
        let ctx = unsafe { self.ctx.as_ref() };
        *ctx.migration
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let mut last = ctx
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.take()
    }

    /// The table to hand to `hs_bind`.
    pub fn table(&self) -> *const HostTable {
        self.table.as_ptr()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // SAFETY: both came from `Box::leak` in `new` and are freed only here;
        // `NativeCode` drops a `Host` only once its library is unmapped (a
        // pinned library's `Host` is forgotten instead).
        unsafe {
            drop(Box::from_raw(self.table.as_ptr()));
            drop(Box::from_raw(self.ctx.as_ptr()));
        }
    }
}

/// # Safety
/// `ctx` must be the pointer from a live [`Host`]'s table.
unsafe fn context<'a>(ctx: *mut c_void) -> &'a HostContext {
    // SAFETY: the caller's promise.
    unsafe { &*ctx.cast::<HostContext>() }
}

/// `ptr..ptr+len` as a slice, or `None` for a null pointer with a length.
///
/// # Safety
/// A non-null `ptr` must be readable for `len` bytes (the plugin's promise).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    match (ptr.is_null(), len) {
        (_, 0) => Some(&[]),
        (true, _) => None,
        // SAFETY: the caller's promise.
        (false, _) => Some(unsafe { std::slice::from_raw_parts(ptr, len) }),
    }
}

unsafe extern "C" fn log(ctx: *mut c_void, level: i32, ptr: *const u8, len: usize) {
    const MAX: usize = hotswap_abi::limits::MAX_LOG;
    // SAFETY: the table's contract.
    let (ctx, text) = unsafe { (context(ctx), bytes(ptr, len.min(MAX))) };
    let text = String::from_utf8_lossy(text.unwrap_or(b"(null)"));
    hotswap_core::plugin_log(&ctx.slot, level, &text);
    let migrating = ctx
        .migration
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some();
    if level == code::LOG_ERROR && migrating {
        *ctx.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(text.into_owned());
    }
}

unsafe extern "C" fn now_ns(_ctx: *mut c_void) -> i64 {
    hotswap_core::now_ns()
}

unsafe extern "C" fn random(_ctx: *mut c_void, ptr: *mut u8, len: usize) -> i32 {
    if len == 0 {
        return code::OK;
    }
    if ptr.is_null() {
        return BAD_ARGUMENT;
    }
    // SAFETY: the plugin's buffer, writable for `len` bytes by its promise.
    let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    match getrandom::fill(buf) {
        Ok(()) => code::OK,
        Err(_) => code::KV_STORAGE,
    }
}

unsafe extern "C" fn kv_get(
    ctx: *mut c_void,
    key_ptr: *const u8,
    key_len: usize,
    val_ptr: *mut u8,
    val_cap: usize,
) -> i64 {
    // SAFETY: the table's contract and the plugin's promise.
    let (ctx, key) = unsafe { (context(ctx), bytes(key_ptr, key_len)) };
    let Some(key) = key else {
        return BAD_ARGUMENT as i64;
    };
    let value = match ctx.kv().get(key) {
        Ok(Some(v)) => v,
        Ok(None) => return KV_ABSENT as i64,
        Err(e) => return e.abi_code() as i64,
    };
    if value.len() <= val_cap && !value.is_empty() {
        if val_ptr.is_null() {
            return BAD_ARGUMENT as i64;
        }
        // SAFETY: the plugin's buffer has room for `val_cap` bytes.
        unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), val_ptr, value.len()) };
    }
    value.len() as i64
}

unsafe extern "C" fn kv_put(
    ctx: *mut c_void,
    key_ptr: *const u8,
    key_len: usize,
    val_ptr: *const u8,
    val_len: usize,
) -> i32 {
    // SAFETY: the table's contract and the plugin's promise.
    let (ctx, key, value) = unsafe {
        (
            context(ctx),
            bytes(key_ptr, key_len),
            bytes(val_ptr, val_len),
        )
    };
    let (Some(key), Some(value)) = (key, value) else {
        return BAD_ARGUMENT;
    };
    match ctx.kv().put(key, value) {
        Ok(()) => code::OK,
        Err(e) => e.abi_code(),
    }
}

unsafe extern "C" fn kv_delete(ctx: *mut c_void, key_ptr: *const u8, key_len: usize) -> i32 {
    // SAFETY: the table's contract and the plugin's promise.
    let (ctx, key) = unsafe { (context(ctx), bytes(key_ptr, key_len)) };
    let Some(key) = key else {
        return BAD_ARGUMENT;
    };
    match ctx.kv().delete(key) {
        Ok(deleted) => deleted as i32,
        Err(e) => e.abi_code(),
    }
}

unsafe extern "C" fn kv_next(
    ctx: *mut c_void,
    from_ptr: *const u8,
    from_len: usize,
    key_ptr: *mut u8,
    key_cap: usize,
) -> i64 {
    // SAFETY: the table's contract and the plugin's promise.
    let (ctx, from) = unsafe { (context(ctx), bytes(from_ptr, from_len)) };
    let Some(from) = from else {
        return BAD_ARGUMENT as i64;
    };
    let key = match ctx.kv().next_key(from) {
        Ok(Some(k)) => k,
        Ok(None) => return KV_ABSENT as i64,
        Err(e) => return e.abi_code() as i64,
    };
    if key.len() <= key_cap && !key.is_empty() {
        if key_ptr.is_null() {
            return BAD_ARGUMENT as i64;
        }
        // SAFETY: the plugin's buffer, writable for `key_cap` bytes by its promise.
        unsafe { std::ptr::copy_nonoverlapping(key.as_ptr(), key_ptr, key.len()) };
    }
    key.len() as i64
}
