//! What [`plugin!`](crate::plugin!) expands to calls; not a stable API.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{Mutex, PoisonError};

use hotswap_abi::code::{FAILED, OK};
use hotswap_abi::limits::{MAX_NAME, MAX_VERSION};

/// The largest output length the packed return value can carry.
pub use hotswap_abi::limits::MAX_OUTPUT;
/// Packs and unpacks an `hs_process` result (bits 0–31 `ptr`, 32–62 `len`,
/// 63 the error flag), as the hosts read it.
pub use hotswap_abi::packed::{pack, unpack};

/// The output of the last `hs_process` call, kept alive until the next.
static OUTPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

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
    if name.is_empty() || name.len() > MAX_NAME {
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
    if version.is_empty() || version.len() > MAX_VERSION {
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
pub unsafe fn process(ptr: *mut u8, len: usize, f: fn(&[u8]) -> Result<Vec<u8>, String>) -> i64 {
    // SAFETY: passed on to the caller.
    let (out, out_len, is_err) = unsafe { run(ptr, len, f) };
    // On wasm32 both fit by construction. On a 64-bit target a pointer
    // may not, and the packed i64 cannot carry it.
    let out = u32::try_from(out as usize)
        .expect("hs_process: the packed i64 return only carries 32-bit pointers");
    pack(out, out_len as u32, is_err)
}

/// `hs_bind` (native only): keeps the host's table, and routes panic
/// messages to the host's log. Returns `0`, or `1` ([`FAILED`]) if the host
/// runs another ABI version.
///
/// The panic hook matters for unloading: the standard hook names the
/// current thread, which registers a thread-local destructor inside this
/// library, and such a destructor keeps the library mapped until the thread
/// exits (docs/native.md).
///
/// # Safety
/// `table` must be null or stay valid until the library is unloaded.
#[cfg(not(target_arch = "wasm32"))]
pub unsafe fn bind(table: *const crate::native_abi::HostTable) -> i32 {
    // SAFETY: checked for null; valid by the caller's promise.
    let Some(host) = (unsafe { table.as_ref() }) else {
        return FAILED;
    };
    if host.abi != crate::ABI_VERSION || host.size < crate::native_abi::HostTable::SIZE {
        return FAILED;
    }
    // SAFETY: passed on to the caller.
    unsafe { crate::sys::bind(table) };
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        crate::log::error(&format!("panicked{at}: {}", panic_message(info.payload())));
    }));
    OK
}

/// `hs_call` (native only): runs `f` on the borrowed input and writes the
/// output through `write`. A panic is caught and reported as
/// [`CALL_TRAP`](crate::native_abi::CALL_TRAP): unwinding out of an
/// `extern "C"` function would abort the host.
///
/// # Safety
/// `ptr..ptr+len` must be readable for the call (any `ptr` when `len` is 0);
/// `write` and `sink` must be what the host passed.
#[cfg(not(target_arch = "wasm32"))]
pub unsafe fn call(
    ptr: *const u8,
    len: usize,
    sink: *mut std::ffi::c_void,
    write: crate::native_abi::Sink,
    f: fn(&[u8]) -> Result<Vec<u8>, String>,
) -> i32 {
    use crate::native_abi::{CALL_ERROR, CALL_OK, CALL_TRAP};
    let input = if len == 0 || ptr.is_null() {
        &[][..]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    };
    let (out, code) = match std::panic::catch_unwind(|| f(input)) {
        Ok(Ok(reply)) => (reply, CALL_OK),
        Ok(Err(msg)) => (msg.into_bytes(), CALL_ERROR),
        Err(payload) => (
            format!("panicked: {}", panic_message(&*payload)).into_bytes(),
            CALL_TRAP,
        ),
    };
    // SAFETY: the host's sink, during the call it was passed to.
    unsafe { write(sink, out.as_ptr(), out.len()) };
    code
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// `hs_init`: `0` if `f` succeeds, else logs the message and returns `1`
/// ([`FAILED`]).
/// A panic counts as failure (natively it must not unwind into the host;
/// on wasm32 it traps before it gets here).
pub fn init(f: fn() -> Result<(), String>) -> i32 {
    report(hotswap_abi::exports::INIT, guarded(f))
}

/// `hs_health`: as [`init`].
pub fn health(f: fn() -> Result<(), String>) -> i32 {
    report(hotswap_abi::exports::HEALTH, guarded(f))
}

/// `hs_migrate`: as [`init`], with the schema the state is in.
pub fn migrate(f: fn(u32) -> Result<(), String>, from_schema: u32) -> i32 {
    report(hotswap_abi::exports::MIGRATE, guarded(|| f(from_schema)))
}

/// `hs_shutdown`: runs `f`; a panic is logged, not unwound into the host.
pub fn shutdown(f: fn()) {
    if let Err(msg) = guarded(|| {
        f();
        Ok(())
    }) {
        crate::log::error(&format!("hs_shutdown failed: {msg}"));
    }
}

/// Runs `f`, turning a panic into an error message.
fn guarded(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(format!("panicked: {}", panic_message(&*payload))))
}

fn report(export: &str, result: Result<(), String>) -> i32 {
    match result {
        Ok(()) => OK,
        Err(msg) => {
            crate::log::error(&format!("{export} failed: {msg}"));
            FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::__rt::{self, pack, unpack};

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
        assert_eq!(crate::ABI_VERSION, 1);
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
}
