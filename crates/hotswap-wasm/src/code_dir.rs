//! `CodeDir`: compiled code kept on disk by digest, in a directory only
//! this user can write, each file checked whole before it is trusted.
//!
//! Both wasmtime tiers (core modules here, components in
//! `hotswap-component`) keep their precompiled artifacts this way; each
//! engine gets a directory of its own, named by its fingerprint.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use hotswap_core::Digest;
use sha2::{Digest as _, Sha256};
use wasmtime::Engine;

/// `<cache_dir>/<engine fingerprint>`: a different wasmtime version or
/// setting looks in a different directory, never at the wrong code.
pub struct CodeDir {
    dir: PathBuf,
}

impl CodeDir {
    /// The directory for `engine`'s code under `cache_dir`, created if
    /// needed; `None` (with a warning saying why) when it cannot be trusted,
    /// so the cache lives in memory only.
    pub fn open(engine: &Engine, cache_dir: &Path) -> Option<CodeDir> {
        let dir = cache_dir.join(engine_fingerprint(engine));
        match trusted_dir(&dir) {
            Ok(()) => Some(CodeDir { dir }),
            Err(why) => {
                tracing::warn!(dir = %dir.display(), "compile cache on disk disabled: {why}");
                None
            }
        }
    }

    /// What [`CodeDir::write`] kept for `digest`, if it is there whole. The
    /// file ends with the sha256 of the rest, so a torn or corrupted file
    /// reads as missing (and is compiled again) rather than being handed to
    /// wasmtime's `deserialize`, which trusts its input.
    pub fn read(&self, digest: &Digest) -> Option<Vec<u8>> {
        let path = self.path(digest);
        let mut data = std::fs::read(&path).ok()?;
        let body_len = data.len().checked_sub(32)?;
        if Sha256::digest(&data[..body_len]).as_slice() != &data[body_len..] {
            tracing::warn!(path = %path.display(), "compiled cache file is corrupt; recompiling");
            return None;
        }
        data.truncate(body_len);
        Some(data)
    }

    /// Keeps `serialized` for `digest`, atomically (a temporary file, then a
    /// rename), so a crash never leaves a half-written file under the final
    /// name. Failure is logged, not fatal: the cache is an optimisation.
    pub fn write(&self, digest: &Digest, mut serialized: Vec<u8>) {
        let result = (|| -> std::io::Result<()> {
            let sum = Sha256::digest(&serialized);
            serialized.extend_from_slice(&sum);
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(&serialized)?;
            tmp.as_file().sync_all()?;
            tmp.persist(self.path(digest))
                .map(drop)
                .map_err(|e| e.error)
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the compile cache");
        }
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
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
