//! The [`plugin!`](crate::plugin!) macro that turns a crate into a hotswap plugin.

/// Turns a crate into a hotswap plugin.
///
/// ```text
/// plugin!(PROCESS $(, name = "LITERAL")? $(, init = PATH)? $(, shutdown = PATH)? $(, health = PATH)?
///         $(, state_schema = INTEGER)? $(, migrate = PATH)? $(,)?)
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
/// | `state_schema = N` | integer literal | `0` (not written in the manifest) |
/// | `migrate = path` | `fn(from_schema: u32) -> Result<(), String>` | no `hs_migrate` export |
///
/// The version is always `CARGO_PKG_VERSION`. A name or version that breaks
/// the manifest rules of `docs/abi.md` is a compile error. Call the macro
/// once per plugin crate, at item level.
///
/// It emits, inside an anonymous `const _` block:
/// - a `#[used]` static in the `hotswap.manifest` link section holding
///   `{"name":"...","version":"...","abi":1}`;
/// - on wasm32, `hs_alloc` and `hs_process`; on other targets (a native
///   `cdylib`, docs/native.md), `hs_bind` and `hs_call` instead;
/// - `hs_init` / `hs_health` / `hs_shutdown` / `hs_migrate` for the options given. `hs_init`,
///   `hs_health` and `hs_migrate` return `0` on `Ok`, and `1` after logging the message at
///   level error on `Err`.
///
/// `migrate` converts the slot's state, through [`kv`](crate::kv), from the schema
/// it is given to `state_schema` (docs/abi.md, "State migration"):
///
/// ```
/// use hotswap_guest::kv;
///
/// fn process(input: &[u8]) -> Result<Vec<u8>, String> {
///     Ok(input.to_vec())
/// }
/// // Schema 1 kept counts as decimal text; schema 2 keeps them as 8 bytes.
/// fn migrate(from: u32) -> Result<(), String> {
///     if from != 1 {
///         return Err(format!("cannot read schema {from}"));
///     }
///     for key in kv::keys() {
///         let text = kv::get(&key).unwrap_or_default();
///         let n: u64 = String::from_utf8_lossy(&text).parse().map_err(|e| format!("{e}"))?;
///         kv::put(&key, n.to_le_bytes()).map_err(|e| e.to_string())?;
///     }
///     Ok(())
/// }
///
/// hotswap_guest::plugin!(process, name = "counter", state_schema = 2, migrate = migrate);
/// # fn main() {}
/// ```
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
    (@opts [$process:path] [] $init:tt $shutdown:tt $health:tt $schema:tt $migrate:tt) => {
        $crate::plugin!(@emit [$process] [::core::env!("CARGO_PKG_NAME")]
            $init $shutdown $health $schema $migrate);
    };
    (@opts [$process:path] [$name:literal] $init:tt $shutdown:tt $health:tt $schema:tt $migrate:tt) => {
        $crate::plugin!(@emit [$process] [$name] $init $shutdown $health $schema $migrate);
    };
    // Internal: read one option; its slot must still be empty.
    (@opts $p:tt [] $i:tt $s:tt $h:tt $v:tt $m:tt
        name = $name:literal $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts $p [$name] $i $s $h $v $m $($($rest)*)?);
    };
    (@opts $p:tt $n:tt [] $s:tt $h:tt $v:tt $m:tt
        init = $init:path $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts $p $n [$init] $s $h $v $m $($($rest)*)?);
    };
    (@opts $p:tt $n:tt $i:tt [] $h:tt $v:tt $m:tt
        shutdown = $shutdown:path $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts $p $n $i [$shutdown] $h $v $m $($($rest)*)?);
    };
    (@opts $p:tt $n:tt $i:tt $s:tt [] $v:tt $m:tt
        health = $health:path $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts $p $n $i $s [$health] $v $m $($($rest)*)?);
    };
    (@opts $p:tt $n:tt $i:tt $s:tt $h:tt [] $m:tt
        state_schema = $schema:literal $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts $p $n $i $s $h [$schema] $m $($($rest)*)?);
    };
    (@opts $p:tt $n:tt $i:tt $s:tt $h:tt $v:tt []
        migrate = $migrate:path $(, $($rest:tt)*)?) => {
        $crate::plugin!(@opts $p $n $i $s $h $v [$migrate] $($($rest)*)?);
    };
    (@opts $p:tt $n:tt $i:tt $s:tt $h:tt $v:tt $m:tt $($rest:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "hotswap_guest::plugin!: cannot read `",
            ::core::stringify!($($rest)+),
            "`; expected `name = \"...\"`, `init = path`, `shutdown = path`, `health = path`, ",
            "`state_schema = N` or `migrate = path`, each at most once, separated by commas"
        ));
    };
    // Internal: the expansion.
    (@emit [$process:path] [$($name:tt)*] [$($init:path)?] [$($shutdown:path)?] [$($health:path)?]
        [$($schema:literal)?] [$($migrate:path)?]) => {
        const _: () = {
            const MANIFEST: &str = ::core::concat!(
                "{\"name\":\"", $($name)*,
                "\",\"version\":\"", ::core::env!("CARGO_PKG_VERSION"),
                "\",\"abi\":1",
                $(",\"state_schema\":", $schema,)?
                "}"
            );
            const _: () = $crate::__rt::check_manifest($($name)*, ::core::env!("CARGO_PKG_VERSION"));
            $(const _: u32 = $schema;)?

            #[cfg_attr(
                any(target_family = "wasm", target_os = "linux", target_os = "android"),
                unsafe(link_section = "hotswap.manifest")
            )]
            #[used]
            static MANIFEST_SECTION: [u8; MANIFEST.len()] = $crate::__rt::manifest_bytes(MANIFEST);

            #[cfg(target_arch = "wasm32")]
            #[unsafe(no_mangle)]
            extern "C" fn hs_alloc(len: usize) -> *mut u8 {
                $crate::__rt::alloc(len)
            }

            #[cfg(target_arch = "wasm32")]
            #[unsafe(no_mangle)]
            unsafe extern "C" fn hs_process(ptr: *mut u8, len: usize) -> i64 {
                // SAFETY: the ABI says the host passes a buffer from hs_alloc(len).
                unsafe { $crate::__rt::process(ptr, len, $process) }
            }

            // Natively, the SDK turns a panic into a failed call; with
            // panic = "abort" it would take the host down instead.
            #[cfg(all(not(target_arch = "wasm32"), panic = "abort"))]
            ::core::compile_error!(
                "a native hotswap plugin must be built with panic = \"unwind\" (the default): \
                 with panic = \"abort\", a panic in the plugin aborts the host process"
            );

            #[cfg(not(target_arch = "wasm32"))]
            #[unsafe(no_mangle)]
            unsafe extern "C" fn hs_bind(host: *const $crate::native_abi::HostTable) -> i32 {
                // SAFETY: the native ABI says the host keeps the table alive.
                unsafe { $crate::__rt::bind(host) }
            }

            #[cfg(not(target_arch = "wasm32"))]
            #[unsafe(no_mangle)]
            unsafe extern "C" fn hs_call(
                ptr: *const u8,
                len: usize,
                sink: *mut ::core::ffi::c_void,
                write: $crate::native_abi::Sink,
            ) -> i32 {
                // SAFETY: the native ABI's promises for hs_call.
                unsafe { $crate::__rt::call(ptr, len, sink, write, $process) }
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

            $(
                #[unsafe(no_mangle)]
                extern "C" fn hs_migrate(from_schema: u32) -> i32 {
                    $crate::__rt::migrate($migrate, from_schema)
                }
            )?
        };
    };
    // Entry point.
    ($process:path $(, $($opts:tt)*)?) => {
        $crate::plugin!(@opts [$process] [] [] [] [] [] [] $($($opts)*)?);
    };
}

#[cfg(test)]
mod tests {
    fn echo(input: &[u8]) -> Result<Vec<u8>, String> {
        match input {
            b"fail" => Err("failed".into()),
            b"panic" => panic!("asked to"),
            _ => Ok([input, b"!"].concat()),
        }
    }

    // The macro with every option, in this test binary.
    fn init() -> Result<(), String> {
        Err("not ready".into())
    }
    fn health() -> Result<(), String> {
        Ok(())
    }
    fn shutdown() {}
    fn migrate(from: u32) -> Result<(), String> {
        match from {
            1 => Ok(()),
            _ => Err(format!("cannot read schema {from}")),
        }
    }
    crate::plugin!(
        echo,
        shutdown = shutdown,
        name = "test-plugin",
        migrate = migrate,
        health = health,
        state_schema = 2,
        init = init,
    );

    #[test]
    fn macro_exports() {
        unsafe extern "C" {
            fn hs_init() -> i32;
            fn hs_health() -> i32;
            fn hs_shutdown();
            fn hs_migrate(from_schema: u32) -> i32;
        }
        unsafe {
            assert_eq!(hs_init(), 1);
            assert_eq!(hs_health(), 0);
            assert_eq!(hs_migrate(1), 0);
            assert_eq!(hs_migrate(0), 1);
            hs_shutdown();
        }
    }

    #[test]
    fn native_exports() {
        use crate::native_abi::{CALL_ERROR, CALL_OK, CALL_TRAP};
        use std::ffi::c_void;
        unsafe extern "C" {
            fn hs_call(
                ptr: *const u8,
                len: usize,
                sink: *mut c_void,
                write: crate::native_abi::Sink,
            ) -> i32;
        }
        unsafe extern "C" fn collect(sink: *mut c_void, ptr: *const u8, len: usize) {
            let out = unsafe { &mut *sink.cast::<Vec<u8>>() };
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr, len) });
        }
        let call = |input: &[u8]| {
            let mut out = Vec::new();
            let code = unsafe {
                hs_call(
                    input.as_ptr(),
                    input.len(),
                    (&mut out as *mut Vec<u8>).cast(),
                    collect,
                )
            };
            (code, String::from_utf8(out).unwrap())
        };
        assert_eq!(call(b"hi"), (CALL_OK, "hi!".to_string()));
        assert_eq!(call(b""), (CALL_OK, "!".to_string()));
        assert_eq!(call(b"fail"), (CALL_ERROR, "failed".to_string()));
        let (code, msg) = call(b"panic");
        assert_eq!(code, CALL_TRAP);
        assert!(msg.contains("panicked: asked to"), "{msg}");
    }
}
