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
//! Build it with
//! `cargo build --target wasm32-unknown-unknown --profile plugin -p <crate>`;
//! the module is `target/wasm32-unknown-unknown/plugin/<crate>.wasm`.
//!
//! The crate also compiles for the host. There the host functions are
//! stand-ins so that a plugin's own unit tests run natively: [`log`] prints to
//! stderr, [`now_ns`] reads [`std::time::Instant`], [`kv`] is an in-process
//! map with the host's limits, and [`random`] panics (there is no hotswap host
//! to ask).

#![warn(missing_docs)]

/// The ABI version this crate implements; written into every manifest.
pub const ABI_VERSION: u32 = 1;

/// Turns a crate into a hotswap plugin.
///
/// ```text
/// plugin!(PROCESS $(, name = "LITERAL")? $(, init = PATH)? $(, shutdown = PATH)? $(, health = PATH)? $(,)?)
/// ```
///
/// The first argument is the path of the plugin's function,
/// `fn(&[u8]) -> Result<Vec<u8>, String>`. `Ok` bytes are the reply; an `Err`
/// message is returned to the host flagged as an error. The options come
/// after it in any order, each at most once:
///
/// | option | type | default |
/// |---|---|---|
/// | `name = "..."` | string literal | `CARGO_PKG_NAME` |
/// | `init = path` | `fn() -> Result<(), String>` | no `hs_init` export |
/// | `health = path` | `fn() -> Result<(), String>` | no `hs_health` export |
/// | `shutdown = path` | `fn()` | no `hs_shutdown` export |
///
/// The version is always `CARGO_PKG_VERSION`. A name or version that breaks
/// the manifest rules of `docs/abi.md` is a compile error. Call the macro
/// once per plugin crate, at item level.
///
/// It emits, inside an anonymous `const _` block:
/// - a `#[used]` static in the `hotswap.manifest` link section holding
///   `{"name":"...","version":"...","abi":1}`;
/// - `hs_alloc`, `hs_process`, and `hs_init` / `hs_health` / `hs_shutdown`
///   for the options given. `hs_init` and `hs_health` return `0` on `Ok`, and
///   `1` after logging the message at level error on `Err`.
///
/// ```
/// fn process(input: &[u8]) -> Result<Vec<u8>, String> {
///     Ok(input.to_vec())
/// }
/// fn init() -> Result<(), String> {
///     Ok(())
/// }
/// fn shutdown() {}
///
/// hotswap_guest::plugin!(process, name = "echo", init = init, shutdown = shutdown);
/// # fn main() {}
/// ```
///
/// ```compile_fail
/// # fn process(input: &[u8]) -> Result<Vec<u8>, String> { Ok(input.to_vec()) }
/// // Spaces are not allowed in a plugin name.
/// hotswap_guest::plugin!(process, name = "my plugin");
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! plugin {
    // Internal: all options read. Fill in the default name.
    (@opts [$process:path] [] [$($init:path)?] [$($shutdown:path)?] [$($health:path)?]) => {
        $crate::plugin!(@emit [$process] [::core::env!("CARGO_PKG_NAME")]
            [$($init)?] [$($shutdown)?] [$($health)?]);
    };
    (@opts [$process:path] [$name:literal] [$($init:path)?] [$($shutdown:path)?] [$($health:path)?]) => {
        $crate::plugin!(@emit [$process] [$name] [$($init)?] [$($shutdown)?] [$($health)?]);
    };
    // Internal: read one option; its slot must still be empty.
    (@opts [$p:path] [] [$($i:tt)*] [$($s:tt)*] [$($h:tt)*]
        name = $name:literal $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts [$p] [$name] [$($i)*] [$($s)*] [$($h)*] $($($rest)*)?);
    };
    (@opts [$p:path] [$($n:tt)*] [] [$($s:tt)*] [$($h:tt)*]
        init = $init:path $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts [$p] [$($n)*] [$init] [$($s)*] [$($h)*] $($($rest)*)?);
    };
    (@opts [$p:path] [$($n:tt)*] [$($i:tt)*] [] [$($h:tt)*]
        shutdown = $shutdown:path $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts [$p] [$($n)*] [$($i)*] [$shutdown] [$($h)*] $($($rest)*)?);
    };
    (@opts [$p:path] [$($n:tt)*] [$($i:tt)*] [$($s:tt)*] []
        health = $health:path $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts [$p] [$($n)*] [$($i)*] [$($s)*] [$health] $($($rest)*)?);
    };
    (@opts [$p:path] [$($n:tt)*] [$($i:tt)*] [$($s:tt)*] [$($h:tt)*] $($rest:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "hotswap_guest::plugin!: cannot read `",
            ::core::stringify!($($rest)+),
            "`; expected `name = \"...\"`, `init = path`, `shutdown = path` or `health = path`, ",
            "each at most once, separated by commas"
        ));
    };
    // Internal: the expansion.
    (@emit [$process:path] [$($name:tt)*] [$($init:path)?] [$($shutdown:path)?] [$($health:path)?]) => {
        const _: () = {
            const MANIFEST: &str = ::core::concat!(
                "{\"name\":\"", $($name)*,
                "\",\"version\":\"", ::core::env!("CARGO_PKG_VERSION"),
                "\",\"abi\":1}"
            );
            const _: () = $crate::__rt::check_manifest($($name)*, ::core::env!("CARGO_PKG_VERSION"));

            #[cfg_attr(
                any(target_family = "wasm", target_os = "linux", target_os = "android"),
                unsafe(link_section = "hotswap.manifest")
            )]
            #[used]
            static MANIFEST_SECTION: [u8; MANIFEST.len()] = $crate::__rt::manifest_bytes(MANIFEST);

            #[unsafe(no_mangle)]
            extern "C" fn hs_alloc(len: usize) -> *mut u8 {
                $crate::__rt::alloc(len)
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn hs_process(ptr: *mut u8, len: usize) -> i64 {
                // SAFETY: the ABI says the host passes a buffer from hs_alloc(len).
                unsafe { $crate::__rt::process(ptr, len, $process) }
            }

            $(
                #[unsafe(no_mangle)]
                extern "C" fn hs_init() -> i32 {
                    $crate::__rt::init($init)
                }
            )?

            $(
                #[unsafe(no_mangle)]
                extern "C" fn hs_health() -> i32 {
                    $crate::__rt::health($health)
                }
            )?

            $(
                #[unsafe(no_mangle)]
                extern "C" fn hs_shutdown() {
                    $crate::__rt::shutdown($shutdown)
                }
            )?
        };
    };
    // Entry point.
    ($process:path $(, $($opts:tt)*)?) => {
        $crate::plugin!(@opts [$process] [] [] [] [] $($($opts)*)?);
    };
}

/// The host's log, with the levels of the ABI.
///
/// Under hotswap the text goes to the host's log, tagged with the slot and
/// revision. Natively it is printed to stderr.
pub mod log {
    /// A log level; the discriminant is the number passed to the host.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Level {
        /// Something failed.
        Error = 0,
        /// Something looks wrong.
        Warn = 1,
        /// Routine information.
        Info = 2,
        /// Detail for debugging.
        Debug = 3,
        /// Even more detail.
        Trace = 4,
    }

    /// Logs `msg` at `level`.
    pub fn log(level: Level, msg: &str) {
        // SAFETY: the pointer and length describe `msg`, which outlives the call.
        unsafe { crate::sys::log(level as i32, msg.as_ptr(), msg.len()) }
    }

    /// Logs `msg` at level error.
    pub fn error(msg: &str) {
        log(Level::Error, msg)
    }

    /// Logs `msg` at level warn.
    pub fn warn(msg: &str) {
        log(Level::Warn, msg)
    }

    /// Logs `msg` at level info.
    pub fn info(msg: &str) {
        log(Level::Info, msg)
    }

    /// Logs `msg` at level debug.
    pub fn debug(msg: &str) {
        log(Level::Debug, msg)
    }

    /// Logs `msg` at level trace.
    pub fn trace(msg: &str) {
        log(Level::Trace, msg)
    }
}

/// A monotonic clock in nanoseconds from an arbitrary origin (the host's
/// `now_ns`). Only differences between two readings mean anything.
pub fn now_ns() -> u64 {
    // SAFETY: no arguments.
    unsafe { crate::sys::now_ns() as u64 }
}

/// Fills `buf` with cryptographically secure random bytes from the host.
///
/// # Panics
/// If the host reports a failure (a panic is a trap, which fails the call:
/// there is no safe fallback for missing randomness), and always when not
/// running under hotswap.
pub fn random(buf: &mut [u8]) {
    if buf.is_empty() {
        return;
    }
    // SAFETY: the pointer and length describe `buf`, writable for the call.
    let code = unsafe { crate::sys::random(buf.as_mut_ptr(), buf.len()) };
    if code != 0 {
        panic!("hotswap: the host's random failed with code {code}");
    }
}

/// The slot's key-value store.
///
/// It belongs to the slot, not to the revision: every instance of every
/// revision of a slot sees the same keys, and a swap never touches them, so
/// this is where state that must be shared or survive a swap lives. Keys are
/// up to 1 KiB, values up to 1 MiB, and a slot holds up to 100 000 keys.
///
/// ```
/// use hotswap_guest::kv;
///
/// kv::put("greeting", "hello").unwrap();
/// assert_eq!(kv::get("greeting").as_deref(), Some(&b"hello"[..]));
/// assert_eq!(kv::delete("greeting"), Ok(true));
/// assert_eq!(kv::get("greeting"), None);
/// ```
pub mod kv {
    use core::fmt;

    /// Why the store refused a write.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum KvError {
        /// The key is over 1 KiB or the value over 1 MiB.
        TooLarge,
        /// The slot already holds the maximum number of keys.
        Full,
        /// The host's storage failed.
        Storage,
    }

    impl KvError {
        fn from_code(code: i32) -> Self {
            match code {
                -1 => KvError::TooLarge,
                -2 => KvError::Full,
                _ => KvError::Storage,
            }
        }
    }

    impl fmt::Display for KvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                KvError::TooLarge => "key or value too large",
                KvError::Full => "key-value store full",
                KvError::Storage => "key-value storage failed",
            })
        }
    }

    impl std::error::Error for KvError {}

    /// The value stored under `key`, or `None` if there is none.
    pub fn get(key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        let key = key.as_ref();
        // Most values are small: try a stack buffer first, then ask again with
        // the exact size the host reported (in a loop, since another instance
        // may store a larger value in between).
        let mut small = [0u8; 256];
        // SAFETY: key and `small` are valid for the call; the host writes at
        // most `small.len()` bytes.
        let n =
            unsafe { crate::sys::kv_get(key.as_ptr(), key.len(), small.as_mut_ptr(), small.len()) };
        let mut n = usize::try_from(n).ok()?;
        if n <= small.len() {
            return Some(small[..n].to_vec());
        }
        let mut buf: Vec<u8> = Vec::new();
        loop {
            buf.reserve_exact(n);
            // SAFETY: the host writes at most `capacity` bytes into the spare capacity.
            let got = unsafe {
                crate::sys::kv_get(key.as_ptr(), key.len(), buf.as_mut_ptr(), buf.capacity())
            };
            n = usize::try_from(got).ok()?;
            if n <= buf.capacity() {
                // SAFETY: the host initialized the first `n` bytes.
                unsafe { buf.set_len(n) };
                return Some(buf);
            }
        }
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), KvError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        // SAFETY: both slices are valid for the call.
        let code =
            unsafe { crate::sys::kv_put(key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
        match code {
            0 => Ok(()),
            code => Err(KvError::from_code(code)),
        }
    }

    /// Removes `key`; `Ok(true)` if it was there, `Ok(false)` if it was absent.
    pub fn delete(key: impl AsRef<[u8]>) -> Result<bool, KvError> {
        let key = key.as_ref();
        // SAFETY: the slice is valid for the call.
        let code = unsafe { crate::sys::kv_delete(key.as_ptr(), key.len()) };
        match code {
            1 => Ok(true),
            0 => Ok(false),
            code => Err(KvError::from_code(code)),
        }
    }
}

/// The host functions of module `hotswap`, exactly as `docs/abi.md` types
/// them (`usize` and pointers are `i32` on wasm32).
#[cfg(target_arch = "wasm32")]
mod sys {
    #[link(wasm_import_module = "hotswap")]
    unsafe extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: usize);
        pub fn now_ns() -> i64;
        pub fn random(ptr: *mut u8, len: usize) -> i32;
        pub fn kv_get(key_ptr: *const u8, key_len: usize, val_ptr: *mut u8, val_cap: usize) -> i64;
        pub fn kv_put(
            key_ptr: *const u8,
            key_len: usize,
            val_ptr: *const u8,
            val_len: usize,
        ) -> i32;
        pub fn kv_delete(key_ptr: *const u8, key_len: usize) -> i32;
    }
}

/// Native stand-ins for the host functions, with the same signatures and
/// return codes, so that the safe wrappers (and a plugin's unit tests) run
/// on the build machine.
#[cfg(not(target_arch = "wasm32"))]
mod sys {
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

    pub unsafe fn kv_get(
        key_ptr: *const u8,
        key_len: usize,
        val_ptr: *mut u8,
        val_cap: usize,
    ) -> i64 {
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
}

/// What [`plugin!`] expands to calls; not a stable API.
#[doc(hidden)]
pub mod __rt {
    use std::alloc::Layout;
    use std::ptr::NonNull;
    use std::sync::{Mutex, PoisonError};

    /// The largest output length the packed return value can carry.
    pub const MAX_OUTPUT: usize = 0x7fff_ffff;

    /// The output of the last `hs_process` call, kept alive until the next.
    static OUTPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    /// Packs an `hs_process` result: bits 0–31 `ptr`, 32–62 `len`, 63 the
    /// error flag. `len` must be at most [`MAX_OUTPUT`].
    pub const fn pack(ptr: u32, len: u32, is_err: bool) -> i64 {
        assert!(len as usize <= MAX_OUTPUT);
        (ptr as u64 | ((len as u64) << 32) | ((is_err as u64) << 63)) as i64
    }

    /// The inverse of [`pack`]: `(ptr, len, is_err)`.
    pub const fn unpack(packed: i64) -> (u32, u32, bool) {
        let bits = packed as u64;
        (
            bits as u32,
            (bits >> 32) as u32 & 0x7fff_ffff,
            bits >> 63 == 1,
        )
    }

    /// Copies the manifest JSON into the array that becomes the custom section.
    pub const fn manifest_bytes<const N: usize>(json: &str) -> [u8; N] {
        let src = json.as_bytes();
        assert!(src.len() == N);
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = src[i];
            i += 1;
        }
        out
    }

    /// Checks `name` and `version` against the manifest rules of
    /// `docs/abi.md`; a failure here is a compile error in the plugin crate.
    pub const fn check_manifest(name: &str, version: &str) {
        let name = name.as_bytes();
        if name.is_empty() || name.len() > 64 {
            panic!("hotswap plugin name must be 1-64 characters");
        }
        let mut i = 0;
        while i < name.len() {
            let c = name[i];
            if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.') {
                panic!("hotswap plugin name may only contain a-z A-Z 0-9 - _ .");
            }
            i += 1;
        }
        let version = version.as_bytes();
        if version.is_empty() || version.len() > 64 {
            panic!("hotswap plugin version must be 1-64 characters");
        }
        let mut i = 0;
        while i < version.len() {
            let c = version[i];
            // Printable ASCII without space; `"` and `\` would also need JSON
            // escaping, which the macro does not do.
            if !c.is_ascii_graphic() || c == b'"' || c == b'\\' {
                panic!("hotswap plugin version must be printable ASCII without spaces, quotes or backslashes");
            }
            i += 1;
        }
    }

    /// `hs_alloc`: `len` writable bytes from the global allocator, a dangling
    /// (non-null, aligned) pointer for `len == 0`, or null on failure.
    pub fn alloc(len: usize) -> *mut u8 {
        if len == 0 {
            return NonNull::<u8>::dangling().as_ptr();
        }
        match Layout::array::<u8>(len) {
            // SAFETY: the layout has a non-zero size.
            Ok(layout) => unsafe { std::alloc::alloc(layout) },
            Err(_) => std::ptr::null_mut(),
        }
    }

    /// The body of `hs_process`, before packing: frees the previous output,
    /// runs `f` on the input (then frees the input), keeps the output, and
    /// returns `(ptr, len, is_err)` of the kept output.
    ///
    /// # Safety
    /// `ptr` must come from [`alloc`]`(len)` and not be used afterwards.
    pub unsafe fn run(
        ptr: *mut u8,
        len: usize,
        f: fn(&[u8]) -> Result<Vec<u8>, String>,
    ) -> (*const u8, usize, bool) {
        // Free the previous output before running, so it does not count
        // against this call's memory.
        drop(std::mem::take(
            &mut *OUTPUT.lock().unwrap_or_else(PoisonError::into_inner),
        ));

        let (out, is_err) = if len == 0 {
            split(f(&[]))
        } else if ptr.is_null() {
            (b"hs_process: null input pointer".to_vec(), true)
        } else {
            // SAFETY: `ptr` came from `alloc(len)`, i.e. from the global
            // allocator with `Layout::array::<u8>(len)`, which is the layout
            // a Vec<u8> of capacity `len` frees with.
            let input = unsafe { Vec::from_raw_parts(ptr, len, len) };
            let result = split(f(&input));
            drop(input);
            result
        };
        let (out, is_err) = if out.len() > MAX_OUTPUT {
            (
                b"hs_process: output longer than 2^31-1 bytes".to_vec(),
                true,
            )
        } else {
            (out, is_err)
        };

        let mut kept = OUTPUT.lock().unwrap_or_else(PoisonError::into_inner);
        *kept = out; // moving a Vec keeps its buffer where it is
        (kept.as_ptr(), kept.len(), is_err)
    }

    fn split(result: Result<Vec<u8>, String>) -> (Vec<u8>, bool) {
        match result {
            Ok(bytes) => (bytes, false),
            Err(msg) => (msg.into_bytes(), true),
        }
    }

    /// `hs_process`: [`run`], then [`pack`].
    ///
    /// # Safety
    /// As for [`run`].
    pub unsafe fn process(
        ptr: *mut u8,
        len: usize,
        f: fn(&[u8]) -> Result<Vec<u8>, String>,
    ) -> i64 {
        // SAFETY: passed on to the caller.
        let (out, out_len, is_err) = unsafe { run(ptr, len, f) };
        // On wasm32 both fit by construction. On a 64-bit target a pointer
        // may not, and the packed i64 cannot carry it.
        let out = u32::try_from(out as usize)
            .expect("hs_process: the packed i64 return only carries 32-bit pointers");
        pack(out, out_len as u32, is_err)
    }

    /// `hs_init`: `0` if `f` succeeds, else logs the message and returns `1`.
    pub fn init(f: fn() -> Result<(), String>) -> i32 {
        report("hs_init", f())
    }

    /// `hs_health`: `0` if `f` succeeds, else logs the message and returns `1`.
    pub fn health(f: fn() -> Result<(), String>) -> i32 {
        report("hs_health", f())
    }

    /// `hs_shutdown`.
    pub fn shutdown(f: fn()) {
        f()
    }

    fn report(export: &str, result: Result<(), String>) -> i32 {
        match result {
            Ok(()) => 0,
            Err(msg) => {
                crate::log::error(&format!("{export} failed: {msg}"));
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::__rt::{self, pack, unpack};
    use super::kv;

    #[test]
    fn pack_layout() {
        assert_eq!(pack(0, 0, false), 0);
        assert_eq!(pack(0x1234_5678, 0, false), 0x1234_5678);
        assert_eq!(pack(0, 5, false), 5 << 32);
        assert_eq!(pack(0, 0, true), i64::MIN);
        assert_eq!(pack(u32::MAX, 0x7fff_ffff, true), -1);
        assert_eq!(pack(0xffff_fff0, 3, false) as u64, 0x0000_0003_ffff_fff0);
    }

    #[test]
    fn pack_roundtrip() {
        for &(ptr, len, is_err) in &[
            (0, 0, false),
            (1, 0, true),
            (65_536, 17, false),
            (u32::MAX, 0x7fff_ffff, false),
            (0x8000_0000, 0x4000_0000, true),
        ] {
            assert_eq!(unpack(pack(ptr, len, is_err)), (ptr, len, is_err));
        }
    }

    #[test]
    #[should_panic]
    fn pack_rejects_long_output() {
        pack(0, 0x8000_0000, false);
    }

    #[test]
    fn manifest_json() {
        const JSON: &str = concat!(
            "{\"name\":\"",
            "greet",
            "\",\"version\":\"",
            "1.0.0-rc.1+build.5",
            "\",\"abi\":1}"
        );
        __rt::check_manifest("greet", "1.0.0-rc.1+build.5");
        static BYTES: [u8; JSON.len()] = __rt::manifest_bytes(JSON);
        assert_eq!(
            &BYTES[..],
            br#"{"name":"greet","version":"1.0.0-rc.1+build.5","abi":1}"#
        );
        assert_eq!(super::ABI_VERSION, 1);
    }

    #[test]
    fn manifest_rules() {
        use std::panic::catch_unwind;
        let ok = |name: &'static str, version: &'static str| {
            catch_unwind(|| __rt::check_manifest(name, version)).is_ok()
        };
        assert!(ok("a", "1"));
        assert!(ok("Greet_v2.x-y", "2.0.0"));
        let n64: &'static str = "n".repeat(64).leak();
        let n65: &'static str = "n".repeat(65).leak();
        assert!(ok(n64, "1"));
        assert!(!ok("", "1"));
        assert!(!ok(n65, "1"));
        assert!(!ok("my plugin", "1"));
        assert!(!ok("é", "1"));
        assert!(!ok("a", ""));
        assert!(!ok("a", "1 0"));
        assert!(!ok("a", "1\""));
    }

    fn echo(input: &[u8]) -> Result<Vec<u8>, String> {
        match input {
            b"fail" => Err("failed".into()),
            _ => Ok([input, b"!"].concat()),
        }
    }

    #[test]
    fn process_roundtrip() {
        unsafe {
            let input = __rt::alloc(2);
            input.copy_from_nonoverlapping(b"hi".as_ptr(), 2);
            let (out, len, is_err) = __rt::run(input, 2, echo);
            assert_eq!(
                (std::slice::from_raw_parts(out, len), is_err),
                (&b"hi!"[..], false)
            );

            let input = __rt::alloc(4);
            input.copy_from_nonoverlapping(b"fail".as_ptr(), 4);
            let (out, len, is_err) = __rt::run(input, 4, echo);
            assert_eq!(
                (std::slice::from_raw_parts(out, len), is_err),
                (&b"failed"[..], true)
            );

            let input = __rt::alloc(0);
            assert!(!input.is_null());
            let (out, len, is_err) = __rt::run(input, 0, echo);
            assert_eq!(
                (std::slice::from_raw_parts(out, len), is_err),
                (&b"!"[..], false)
            );
        }
    }

    #[test]
    fn kv_native() {
        assert_eq!(kv::get("test-absent"), None);
        assert_eq!(kv::delete("test-absent"), Ok(false));
        kv::put("test-small", [7u8; 3]).unwrap();
        assert_eq!(kv::get("test-small"), Some(vec![7; 3]));
        let big = vec![9u8; 1000];
        kv::put("test-big", &big).unwrap();
        assert_eq!(kv::get("test-big"), Some(big));
        kv::put("test-empty", b"").unwrap();
        assert_eq!(kv::get("test-empty"), Some(vec![]));
        assert_eq!(kv::delete("test-small"), Ok(true));
        assert_eq!(kv::get("test-small"), None);
        assert_eq!(kv::put(vec![0u8; 1025], b"x"), Err(kv::KvError::TooLarge));
        assert_eq!(kv::KvError::Full.to_string(), "key-value store full");
    }

    // The macro with every option, in this test binary.
    fn init() -> Result<(), String> {
        Err("not ready".into())
    }
    fn health() -> Result<(), String> {
        Ok(())
    }
    fn shutdown() {}
    crate::plugin!(
        echo,
        shutdown = shutdown,
        name = "test-plugin",
        health = health,
        init = init,
    );

    #[test]
    fn macro_exports() {
        unsafe extern "C" {
            fn hs_init() -> i32;
            fn hs_health() -> i32;
            fn hs_shutdown();
            fn hs_alloc(len: usize) -> *mut u8;
        }
        unsafe {
            assert_eq!(hs_init(), 1);
            assert_eq!(hs_health(), 0);
            hs_shutdown();
            let p = hs_alloc(16);
            assert!(!p.is_null());
            std::alloc::dealloc(p, std::alloc::Layout::array::<u8>(16).unwrap());
        }
    }
}
