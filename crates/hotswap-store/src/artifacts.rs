//! `Artifacts`: code bytes on disk, one file per digest, written atomically
//! and verified on every read.

use std::io::Write;
use std::path::{Path, PathBuf};

use hotswap_core::{Artifact, Digest};

use crate::StoreError;

/// A directory of artifacts named `<sha256>.wasm`.
#[derive(Clone)]
pub(crate) struct Artifacts {
    dir: PathBuf,
}

impl Artifacts {
    pub fn open(dir: PathBuf) -> Result<Artifacts, StoreError> {
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            what: "cannot create",
            path: dir.clone(),
            source,
        })?;
        let artifacts = Artifacts { dir };
        artifacts.remove_leftovers();
        Ok(artifacts)
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}.wasm"))
    }

    /// Stores `artifact` durably: a temporary file, fsynced, renamed into
    /// place, and the directory fsynced, so that once this returns the file
    /// survives a crash, and before it returns no file of that name exists.
    pub fn put(&self, artifact: &Artifact) -> Result<(), StoreError> {
        let path = self.path(&artifact.digest());
        if self.get(&artifact.digest()).is_ok() {
            return Ok(()); // content-addressed: the same bytes are already here
        }
        let io = |what, source| StoreError::Io {
            what,
            path: path.clone(),
            source,
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&self.dir)
            .map_err(|e| io("cannot create a file beside", e))?;
        tmp.write_all(artifact.bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| io("cannot write", e))?;
        tmp.persist(&path)
            .map_err(|e| io("cannot store", e.error))?;
        sync_dir(&self.dir)
    }

    /// Whether an artifact of that digest is on disk (unverified: a
    /// cheap check for records that must only name stored code).
    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The artifact, if stored and intact.
    pub fn get(&self, digest: &Digest) -> Result<Artifact, StoreError> {
        let path = self.path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(*digest))
            }
            Err(source) => {
                return Err(StoreError::Io {
                    what: "cannot read",
                    path,
                    source,
                })
            }
        };
        let artifact = Artifact::new(bytes);
        if artifact.digest() != *digest {
            return Err(StoreError::Corrupt {
                digest: *digest,
                reason: format!("its bytes hash to sha256:{}", artifact.digest()),
            });
        }
        Ok(artifact)
    }

    /// Temporary files of writes a crash interrupted: never referenced by
    /// anything, so safe to delete.
    fn remove_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".incoming-")
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            what: "cannot sync",
            path: dir.to_path_buf(),
            source,
        })
}
