//! `CompileCache`: each digest is validated and compiled once, then kept in
//! memory and on disk.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hotswap_core::{Artifact, Digest};
use wasmtime::{Engine, Module};

use crate::code_dir::CodeDir;
use crate::recent::Recent;
use crate::validate::{self, ModuleInfo, Rejection};

/// How many compiled modules stay in memory. The ones for a slot's active
/// and previous revisions are what matter; beyond that it is a convenience.
const IN_MEMORY: usize = 64;

/// Counts of what the cache did, for tests, benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Modules compiled by this process.
    pub compiles: u64,
    /// Modules loaded from the on-disk cache instead of compiled.
    pub disk_hits: u64,
    /// Lookups answered from memory.
    pub memory_hits: u64,
}

pub(crate) struct CompileCache {
    engine: Engine,
    /// Where compiled modules outlive the process, if anywhere.
    dir: Option<CodeDir>,
    allow_wasi: bool,
    entries: Mutex<Recent<Entry>>,
    compiles: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
}

#[derive(Clone)]
struct Entry {
    info: Arc<ModuleInfo>,
    module: Option<Module>,
}

impl CompileCache {
    pub fn new(engine: Engine, cache_dir: Option<&Path>, allow_wasi: bool) -> CompileCache {
        let dir = cache_dir.and_then(|d| CodeDir::open(&engine, d));
        CompileCache {
            engine,
            dir,
            allow_wasi,
            entries: Mutex::new(Recent::new(IN_MEMORY)),
            compiles: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            memory_hits: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            compiles: self.compiles.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
        }
    }

    /// Validation is a pure function of the bytes (and the WASI setting), so
    /// it is done once per digest too: a swap to a known revision skips it.
    pub fn validate(&self, artifact: &Artifact) -> Result<Arc<ModuleInfo>, Rejection> {
        if let Some(entry) = self.lock().get(&artifact.digest()) {
            return Ok(entry.info.clone());
        }
        let info = Arc::new(validate::validate(
            &self.engine,
            artifact.bytes(),
            self.allow_wasi,
        )?);
        self.insert(artifact.digest(), info.clone(), None);
        Ok(info)
    }

    /// The compiled module for `artifact`: from memory, else from disk, else
    /// compiled now (and written to disk).
    pub fn module(&self, artifact: &Artifact) -> wasmtime::Result<Module> {
        let digest = artifact.digest();
        if let Some(module) = self.lock().get(&digest).and_then(|e| e.module.clone()) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(module);
        }
        let module = match self.load(&digest) {
            Some(m) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                m
            }
            None => {
                let m = Module::new(&self.engine, artifact.bytes())?;
                self.compiles.fetch_add(1, Ordering::Relaxed);
                self.store(&digest, &m);
                m
            }
        };
        // wasmtime builds a module's copy-on-write memory image lazily, on
        // its first instantiation; doing it here keeps that (milliseconds)
        // off the first swap to the module.
        module.initialize_copy_on_write_image()?;
        let info = self.validate(artifact).map_err(wasmtime::Error::new)?;
        self.insert(digest, info, Some(module.clone()));
        Ok(module)
    }

    fn insert(&self, digest: Digest, info: Arc<ModuleInfo>, module: Option<Module>) {
        // Recording a validation must not drop a compiled module a racing
        // prepare stored meanwhile.
        self.lock().update(digest, |old| Entry {
            info,
            module: module.or_else(|| old.and_then(|e| e.module)),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads a module this host compiled earlier, if [`CodeDir`] has it
    /// whole.
    fn load(&self, digest: &Digest) -> Option<Module> {
        let body = self.dir.as_ref()?.read(digest)?;
        // SAFETY: the bytes were produced by `Module::serialize` in this
        // host's own cache directory (checked at start-up to be owned by
        // this user and writable by no one else, see `CodeDir::open`), for an
        // engine with the same fingerprint, and their checksum matches;
        // wasmtime also checks the engine compatibility header.
        match unsafe { Module::deserialize(&self.engine, &body) } {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(%digest, error = %e, "cannot load a compiled module from the cache; recompiling");
                None
            }
        }
    }

    /// Keeps `module` on disk, where there is a cache directory.
    fn store(&self, digest: &Digest, module: &Module) {
        let Some(dir) = &self.dir else { return };
        match module.serialize() {
            Ok(body) => dir.write(digest, body),
            Err(e) => tracing::warn!(%digest, error = %e, "cannot serialize a compiled module"),
        }
    }
}
