//! `Artifact`: immutable code bytes together with their digest.

use std::sync::Arc;

use crate::Digest;

/// The bytes of one revision's code, named by their digest. Cheap to clone:
/// the bytes are shared, never copied.
#[derive(Clone)]
pub struct Artifact {
    bytes: Arc<[u8]>,
    digest: Digest,
}

impl Artifact {
    /// Hashes `bytes` and wraps them.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Artifact {
        let bytes = bytes.into();
        let digest = Digest::of(&bytes);
        Artifact { bytes, digest }
    }

    /// The sha256 of [`Artifact::bytes`].
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The code itself.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifact")
            .field("digest", &self.digest)
            .field("len", &self.bytes.len())
            .finish()
    }
}
