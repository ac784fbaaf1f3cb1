//! `ComponentCache`: each digest is validated and compiled once, then kept
//! in memory and, with a cache directory, on disk.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hotswap_core::{Artifact, Digest};
use hotswap_wasm::{CacheStats, CodeDir, Recent};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::validate::{self, ComponentInfo, ComponentRejection};

/// How many compiled components stay in memory: a slot's active and
/// previous revisions matter; past that it is a convenience.
const IN_MEMORY: usize = 32;

pub(crate) struct ComponentCache {
    engine: Engine,
    dir: Option<CodeDir>,
    entries: Mutex<Recent<Entry>>,
    compiles: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
}

#[derive(Clone)]
struct Entry {
    info: Arc<ComponentInfo>,
    component: Option<Component>,
}

impl ComponentCache {
    pub fn new(engine: Engine, cache_dir: Option<&Path>) -> ComponentCache {
        ComponentCache {
            dir: cache_dir.and_then(|d| CodeDir::open(&engine, d)),
            engine,
            entries: Mutex::new(Recent::new(IN_MEMORY)),
            compiles: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            memory_hits: AtomicU64::new(0),
        }
    }

    /// The engine it compiles for.
    #[cfg(test)]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            compiles: self.compiles.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
        }
    }

    /// Validation is a pure function of the bytes: once per digest.
    pub fn validate(&self, artifact: &Artifact) -> Result<Arc<ComponentInfo>, ComponentRejection> {
        if let Some(entry) = self.lock().get(&artifact.digest()) {
            return Ok(entry.info.clone());
        }
        let info = Arc::new(validate::validate(artifact.bytes())?);
        self.insert(artifact.digest(), info.clone(), None);
        Ok(info)
    }

    /// The compiled component: from memory, else from disk, else compiled
    /// now (and written to disk).
    pub fn component(&self, artifact: &Artifact) -> wasmtime::Result<Component> {
        let digest = artifact.digest();
        if let Some(c) = self.lock().get(&digest).and_then(|e| e.component.clone()) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(c);
        }
        let component = match self.load(&digest) {
            Some(c) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                c
            }
            None => {
                let c = Component::new(&self.engine, artifact.bytes())?;
                self.compiles.fetch_add(1, Ordering::Relaxed);
                if let Some(dir) = &self.dir {
                    dir.write(&digest, c.serialize()?);
                }
                c
            }
        };
        let info = self.validate(artifact).map_err(wasmtime::Error::new)?;
        self.insert(digest, info, Some(component.clone()));
        Ok(component)
    }

    fn load(&self, digest: &Digest) -> Option<Component> {
        let body = self.dir.as_ref()?.read(digest)?;
        // SAFETY: the bytes were written by `Component::serialize` into this
        // host's own cache directory (owned by this user and writable by no
        // one else, see `CodeDir::open`), for an engine with the same
        // fingerprint, and their checksum matches; wasmtime also checks the
        // engine compatibility header.
        match unsafe { Component::deserialize(&self.engine, &body) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(%digest, error = %e, "cannot load a compiled component from the cache; recompiling");
                None
            }
        }
    }

    fn insert(&self, digest: Digest, info: Arc<ComponentInfo>, component: Option<Component>) {
        self.lock().update(digest, |old| Entry {
            info,
            component: component.or_else(|| old.and_then(|e| e.component)),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
