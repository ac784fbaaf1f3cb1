//! `NativeCode`: one loaded revision serving calls, and its unload.

use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

use hotswap_abi::code::{CALL_ERROR, CALL_OK, CALL_TRAP, OK};
use hotswap_core::{CallError, Code, KvStore};

use crate::host::Host;
use crate::load::{Exports, Library, Loaded, Unloaded};
use crate::{Counters, LibraryInfo};

/// A native revision that is ready to serve: the library, loaded, bound to
/// its slot, initialised and healthy.
///
/// Calls run straight into the library on the caller's thread, any number
/// at once: there are no instances, no deadline and no memory cap (native
/// code cannot be interrupted or fenced; docs/native.md). Dropping it
/// unloads the library and checks that it is gone.
pub struct NativeCode {
    /// Resolved once at load; the call path reads nothing else.
    exports: Exports,
    resolve_time: Duration,
    library: Option<Library>,
    /// The plugin may hold the table's address until it is unloaded, so
    /// `Drop` frees it only after the library is gone.
    host: Option<Host>,
    /// The plugin's name, for the warning when it stays mapped.
    plugin: String,
    counters: Arc<Counters>,
}

/// Why a library could not be made ready: core's, shared with the WASM
/// tier (`Load` and `Bind` are this tier's steps).
pub use hotswap_core::PrepareError;

impl From<crate::LoadError> for PrepareError {
    fn from(e: crate::LoadError) -> PrepareError {
        PrepareError::Load(e.to_string())
    }
}

impl NativeCode {
    /// Loads, binds, initialises and health-checks one library.
    pub(crate) fn prepare(
        bytes: &[u8],
        label: &str,
        info: &LibraryInfo,
        host: Host,
        counters: Arc<Counters>,
    ) -> Result<NativeCode, PrepareError> {
        let Loaded {
            library,
            exports,
            resolve_time,
        } = Library::open(bytes, label, info)?;
        counters.loaded();
        // From here on, dropping `code` unloads the library.
        let code = NativeCode {
            exports,
            resolve_time,
            library: Some(library),
            host: Some(host),
            plugin: info.manifest.name.clone(),
            counters,
        };
        // SAFETY: the ABI's order: bind before anything else, with a table
        // that lives as long as the library.
        let bound = unsafe { (exports.bind)(code.host().table()) };
        if bound != OK {
            return Err(PrepareError::Bind { code: bound });
        }
        if let Some(init) = exports.init {
            // SAFETY: bound; init takes nothing.
            match unsafe { init() } {
                OK => {}
                code => return Err(PrepareError::InitFailed { code }),
            }
        }
        if let Some(health) = exports.health {
            // SAFETY: as for init.
            match unsafe { health() } {
                OK => {}
                status => {
                    // Initialised, so it gets its shutdown before the unload.
                    code.shutdown();
                    return Err(PrepareError::Unhealthy { code: status });
                }
            }
        }
        Ok(code)
    }

    /// How long resolving the ABI's exports (`dlsym`) took at load.
    pub fn resolve_time(&self) -> Duration {
        self.resolve_time
    }

    fn host(&self) -> &Host {
        self.host.as_ref().expect("bound until dropped")
    }
}

impl Code for NativeCode {
    #[inline]
    fn call(&self, input: &[u8], output: &mut Vec<u8>) -> Result<(), CallError> {
        let start = output.len();
        // SAFETY: the input is borrowed for the call; the sink is `output`,
        // valid for the call, and `append` matches it.
        let code = unsafe {
            (self.exports.call)(
                input.as_ptr(),
                input.len(),
                (output as *mut Vec<u8>).cast(),
                append,
            )
        };
        let message = |output: &mut Vec<u8>| {
            let text = String::from_utf8_lossy(&output[start..]).into_owned();
            output.truncate(start);
            text
        };
        match code {
            CALL_OK => Ok(()),
            CALL_ERROR => Err(CallError::Plugin(message(output))),
            CALL_TRAP => Err(CallError::Trap(message(output))),
            other => {
                output.truncate(start);
                Err(CallError::Abi(format!(
                    "hs_call returned {other}; expected 0, 1 or 2"
                )))
            }
        }
    }

    fn can_migrate(&self) -> bool {
        self.exports.migrate.is_some()
    }

    /// Runs `hs_migrate(from_schema)` with the library's key-value calls
    /// sent to `state`. Native code cannot be interrupted, so `deadline` is
    /// not enforced here: the slot aborts a migration that overran its
    /// pause limit once it returns.
    fn migrate(
        &self,
        from_schema: u32,
        state: Arc<dyn KvStore>,
        _deadline: Duration,
    ) -> Result<(), CallError> {
        let Some(migrate) = self.exports.migrate else {
            return Err(CallError::Abi(
                "the library does not export hs_migrate".into(),
            ));
        };
        self.host().begin_migration(state);
        // SAFETY: bound and initialised; no call is in flight (the slot is
        // paused and the revision before drained).
        let code = unsafe { migrate(from_schema) };
        let logged = self.host().end_migration();
        match code {
            OK => Ok(()),
            code => Err(hotswap_core::migrate_returned(code, logged)),
        }
    }

    fn shutdown(&self) {
        if let Some(shutdown) = self.exports.shutdown {
            // SAFETY: no call is in flight (the slot's promise for shutdown).
            unsafe { shutdown() }
        }
    }
}

impl Drop for NativeCode {
    fn drop(&mut self) {
        let (Some(library), Some(host)) = (self.library.take(), self.host.take()) else {
            return;
        };
        match library.close() {
            Unloaded::Gone => {
                self.counters.unloaded();
                drop(host);
            }
            Unloaded::StillMapped { name } => {
                self.counters.pinned();
                tracing::warn!(
                    library = %name,
                    plugin = %self.plugin,
                    "a native library is still mapped after dlclose; something pins it, most \
                     often a thread-local destructor it registered (docs/native.md). Its memory \
                     stays in use until the thread that owns that destructor exits"
                );
                // Code left behind may still call its host functions (a
                // thread-local destructor logging, say), so their table
                // must outlive it.
                std::mem::forget(host);
            }
        }
    }
}

/// The sink `hs_call` writes its output through: appends to the `Vec<u8>`
/// that `sink` points at.
unsafe extern "C" fn append(sink: *mut c_void, ptr: *const u8, len: usize) {
    if len == 0 || ptr.is_null() {
        return;
    }
    // SAFETY: `sink` is the output vector `call` passed; `ptr..ptr+len` is
    // the plugin's output, readable by its promise.
    unsafe {
        let output = &mut *sink.cast::<Vec<u8>>();
        output.extend_from_slice(std::slice::from_raw_parts(ptr, len));
    }
}
