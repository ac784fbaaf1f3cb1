//! `CompileCache`: each digest is validated and compiled once, then kept in
//! memory and on disk.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hotswap_core::{Artifact, Digest};
use sha2::{Digest as _, Sha256};
use wasmtime::{Engine, Module};

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
    /// `<cache_dir>/<engine fingerprint>`: a different wasmtime version or
    /// setting looks in a different directory, never at the wrong code.
    dir: Option<PathBuf>,
    allow_wasi: bool,
    entries: Mutex<Entries>,
    compiles: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Digest, Entry>,
    order: VecDeque<Digest>,
}

#[derive(Clone)]
struct Entry {
    info: Arc<ModuleInfo>,
    module: Option<Module>,
}

impl CompileCache {
    pub fn new(engine: Engine, cache_dir: Option<&Path>, allow_wasi: bool) -> CompileCache {
        let dir = cache_dir
            .map(|d| d.join(engine_fingerprint(&engine)))
            .filter(|d| match trusted_dir(d) {
                Ok(()) => true,
                Err(why) => {
                    tracing::warn!(dir = %d.display(), "compile cache on disk disabled: {why}");
                    false
                }
            });
        CompileCache {
            engine,
            dir,
            allow_wasi,
            entries: Mutex::default(),
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
        if let Some(entry) = self.lock().map.get(&artifact.digest()) {
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
        if let Some(module) = self.lock().map.get(&digest).and_then(|e| e.module.clone()) {
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
        let mut entries = self.lock();
        if !entries.map.contains_key(&digest) {
            entries.order.push_back(digest);
        }
        // Recording a validation must not drop a compiled module a racing
        // prepare stored meanwhile.
        let module = module.or_else(|| entries.map.get(&digest).and_then(|e| e.module.clone()));
        entries.map.insert(digest, Entry { info, module });
        while entries.order.len() > IN_MEMORY {
            if let Some(old) = entries.order.pop_front() {
                entries.map.remove(&old);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, digest: &Digest) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{digest}.cwasm")))
    }

    /// Reads a module this host compiled earlier. The file ends with the
    /// sha256 of the rest, so a torn or corrupted file is recompiled rather
    /// than handed to `Module::deserialize`, which trusts its input.
    fn load(&self, digest: &Digest) -> Option<Module> {
        let path = self.path(digest)?;
        let data = std::fs::read(&path).ok()?;
        let (body, sum) = data.split_at_checked(data.len().checked_sub(32)?)?;
        if Sha256::digest(body).as_slice() != sum {
            tracing::warn!(path = %path.display(), "compiled cache file is corrupt; recompiling");
            return None;
        }
        // SAFETY: the bytes were produced by `Module::serialize` in this
        // host's own cache directory (checked at start-up to be owned by
        // this user and writable by no one else, see `trusted_dir`), for an
        // engine with the same fingerprint, and their checksum matches;
        // wasmtime also checks the engine compatibility header.
        match unsafe { Module::deserialize(&self.engine, body) } {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot load compiled cache file; recompiling");
                None
            }
        }
    }

    /// Writes atomically (temporary file, then rename) so a crash never
    /// leaves a half-written file under the final name. Failure to write is
    /// logged, not fatal: the cache is an optimisation.
    fn store(&self, digest: &Digest, module: &Module) {
        let (Some(dir), Some(path)) = (&self.dir, self.path(digest)) else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            let mut body = module.serialize().map_err(std::io::Error::other)?;
            let sum = Sha256::digest(&body);
            body.extend_from_slice(&sum);
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(&body)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path).map(drop).map_err(|e| e.error)
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the compile cache");
        }
    }
}

/// Creates `dir` (mode 0700) if needed and checks that it, and the cache
/// directory above it, belong to this user and no one else can write there.
/// Cached files are native code that `Module::deserialize` trusts; a
/// directory someone else can write to would let them run theirs.
fn trusted_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create it: {e}"))?;
    let me = rustix::process::getuid().as_raw();
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let meta =
            std::fs::metadata(d).map_err(|e| format!("cannot inspect {}: {e}", d.display()))?;
        if meta.uid() != me {
            return Err(format!(
                "{} belongs to uid {}, not to this user (uid {me})",
                d.display(),
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{} is writable by group or others (mode {:o}); chmod go-w it",
                d.display(),
                meta.mode() & 0o777
            ));
        }
    }
    Ok(())
}

/// A short, stable name for everything that makes compiled code compatible:
/// wasmtime's version, target and settings.
fn engine_fingerprint(engine: &Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("engine-{:016x}", h.finish())
}
