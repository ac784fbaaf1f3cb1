//! Loading and unloading one library: a sealed memfd per load, `dlopen`,
//! symbols resolved once, and a check that `dlclose` really unmapped it.

use std::ffi::c_void;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hotswap_abi::exports;
use hotswap_abi::native::{HostTable, Sink};
use libloading::os::unix::{Library as DlLibrary, RTLD_LOCAL, RTLD_NOW};
use rustix::fs::{MemfdFlags, SealFlags};

/// Why a library could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The memfd could not be made or written.
    #[error("cannot stage the library in memory: {0}")]
    Stage(std::io::Error),
    /// `dlopen` refused it (a missing dependency, a bad relocation...).
    #[error("dlopen failed: {0}")]
    Open(String),
    /// A symbol validation found was not there at load time.
    #[error("cannot resolve `{0}`: {1}")]
    Symbol(&'static str, String),
}

/// The exports the host calls, resolved once at load.
#[derive(Clone, Copy)]
pub(crate) struct Exports {
    pub bind: unsafe extern "C" fn(*const HostTable) -> i32,
    pub call: unsafe extern "C" fn(*const u8, usize, *mut c_void, Sink) -> i32,
    pub init: Option<unsafe extern "C" fn() -> i32>,
    pub health: Option<unsafe extern "C" fn() -> i32>,
    pub shutdown: Option<unsafe extern "C" fn()>,
    pub migrate: Option<unsafe extern "C" fn(u32) -> i32>,
}

/// One loaded copy of a library.
pub(crate) struct Library {
    handle: DlLibrary,
    /// Kept open while the library is loaded: glibc caches loaded objects by
    /// path, and `/proc/self/fd/N` must not name another file meanwhile.
    memfd: OwnedFd,
    /// The memfd's name, unique in this process, as `/proc/self/maps` shows it.
    name: String,
}

/// What loading a library gives: the library, its exports, and how long
/// resolving them took.
pub(crate) struct Loaded {
    pub library: Library,
    pub exports: Exports,
    pub resolve_time: Duration,
}

/// What became of a library after `dlclose`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unloaded {
    /// No mapping of it is left in the process.
    Gone,
    /// It is still mapped: something pins it (most often a thread-local
    /// destructor it registered, which keeps it until that thread exits).
    /// Its memfd stays open for the life of the process, so that its path
    /// is never reused.
    StillMapped {
        /// The memfd's name, as in `/proc/self/maps`.
        name: String,
    },
}

impl Library {
    /// Writes `bytes` to a new sealed memfd named after `label`, loads it
    /// with `RTLD_NOW | RTLD_LOCAL`, and resolves the ABI's exports.
    ///
    /// A memfd, not a file: no directory to trust, nothing to clean up after
    /// a crash, a unique name per load (so `dlopen` never hands back a cached
    /// copy), and seals so the bytes loaded are the bytes validated.
    pub fn open(bytes: &[u8], label: &str, info: &crate::LibraryInfo) -> Result<Loaded, LoadError> {
        static LOADS: AtomicU64 = AtomicU64::new(0);
        let name = format!("hotswap:{label}:{}", LOADS.fetch_add(1, Ordering::Relaxed));
        let memfd = stage(&name, bytes).map_err(LoadError::Stage)?;
        let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
        // SAFETY: loading runs the library's constructors. That is the
        // native tier's contract (docs/native.md): only trusted, signed
        // libraries get here, after validation.
        let handle = unsafe { DlLibrary::open(Some(&path), RTLD_NOW | RTLD_LOCAL) }
            .map_err(|e| LoadError::Open(e.to_string()))?;
        let started = Instant::now();
        let exports = resolve(&handle, info)?;
        let resolve_time = started.elapsed();
        Ok(Loaded {
            library: Library {
                handle,
                memfd,
                name,
            },
            exports,
            resolve_time,
        })
    }

    /// `dlclose`, then checks `/proc/self/maps` for what is left.
    pub fn close(self) -> Unloaded {
        let Library {
            handle,
            memfd,
            name,
        } = self;
        if let Err(e) = handle.close() {
            tracing::warn!(library = %name, error = %e, "dlclose failed");
        }
        if still_mapped(&name) {
            // See `Unloaded::StillMapped`.
            std::mem::forget(memfd);
            Unloaded::StillMapped { name }
        } else {
            Unloaded::Gone
        }
    }
}

fn stage(name: &str, bytes: &[u8]) -> std::io::Result<OwnedFd> {
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC: where `vm.memfd_noexec` makes memfds non-executable by
    // default, dlopen would fail to map the code. Kernels before 6.3 do not
    // know the flag (EINVAL) and allow exec anyway.
    let fd = match rustix::fs::memfd_create(name, flags | MemfdFlags::EXEC) {
        Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create(name, flags)?,
        other => other?,
    };
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL;
    // F_SEAL_WRITE answers EBUSY while the kernel still holds an extra
    // reference to one of the pages just written (a per-CPU LRU batch, say);
    // the kernel waits a moment for those itself, and under load that can
    // fall short. The condition is transient and nobody else has this fd,
    // so asking again is the fix; a few times, then the error stands.
    let mut attempts = 0;
    loop {
        match rustix::fs::fcntl_add_seals(&file, seals) {
            Err(rustix::io::Errno::BUSY) if attempts < 8 => attempts += 1,
            other => break other?,
        }
    }
    Ok(file.into())
}

fn resolve(handle: &DlLibrary, info: &crate::LibraryInfo) -> Result<Exports, LoadError> {
    fn get<T: Copy>(handle: &DlLibrary, name: &'static str) -> Result<T, LoadError> {
        // SAFETY: validation checked the name is an exported function; the
        // ABI fixes its type (docs/abi.md, "Native plugins").
        unsafe { handle.get::<T>(name.as_bytes()) }
            .map(|s| *s)
            .map_err(|e| LoadError::Symbol(name, e.to_string()))
    }
    fn optional<T: Copy>(
        handle: &DlLibrary,
        has: bool,
        name: &'static str,
    ) -> Result<Option<T>, LoadError> {
        has.then(|| get(handle, name)).transpose()
    }
    Ok(Exports {
        bind: get(handle, exports::BIND)?,
        call: get(handle, exports::CALL)?,
        init: optional(handle, info.optional.init, exports::INIT)?,
        health: optional(handle, info.optional.health, exports::HEALTH)?,
        shutdown: optional(handle, info.optional.shutdown, exports::SHUTDOWN)?,
        migrate: optional(handle, info.optional.migrate, exports::MIGRATE)?,
    })
}

/// Whether any mapping of the memfd `name` is left in this process.
fn still_mapped(name: &str) -> bool {
    // Mappings of a memfd show as `/memfd:NAME (deleted)`.
    let needle = format!("/memfd:{name} ");
    match std::fs::read_to_string("/proc/self/maps") {
        Ok(maps) => maps.lines().any(|l| l.contains(&needle)),
        Err(e) => {
            // Fail safe: treated as pinned, the library's memfd and host
            // table are kept instead of freed under code that may still run.
            tracing::warn!(error = %e, "cannot read /proc/self/maps to check an unload; treating the library as still mapped");
            true
        }
    }
}
