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

impl Artifact {
    /// What kind of code it is, by its magic number.
    pub fn kind(&self) -> Kind {
        Kind::of(&self.bytes)
    }
}

/// The kinds of code hotswap runs; each has its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A WebAssembly core module (ABI v1).
    #[default]
    Wasm,
    /// A native shared library (ELF).
    Native,
    /// A WebAssembly component (a `wasi:http/proxy` handler).
    Component,
}

impl Kind {
    /// What `bytes` are, by their magic number. Anything that is neither
    /// ELF nor a component counts as a core module, whose validator then
    /// says what it is not.
    ///
    /// ```
    /// use hotswap_core::Kind;
    ///
    /// assert_eq!(Kind::of(b"\0asm\x01\0\0\0"), Kind::Wasm);
    /// assert_eq!(Kind::of(b"\0asm\x0d\0\x01\0"), Kind::Component);
    /// assert_eq!(Kind::of(b"\x7fELF\x02"), Kind::Native);
    /// ```
    pub fn of(bytes: &[u8]) -> Kind {
        // The binary format's preamble: magic, then a 16-bit version and a
        // 16-bit layer (0 for core modules, 1 for components).
        const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
        if bytes.starts_with(b"\x7fELF") {
            Kind::Native
        } else if bytes.starts_with(COMPONENT) {
            Kind::Component
        } else {
            Kind::Wasm
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Wasm => "wasm",
            Kind::Native => "native",
            Kind::Component => "component",
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_read_from_the_magic_number() {
        assert_eq!(Kind::of(b"\x7fELF\x02"), Kind::Native);
        assert_eq!(Kind::of(b"\0asm\x01\0\0\0"), Kind::Wasm);
        // Anything else is for the WASM validator to refuse by name.
        assert_eq!(Kind::of(b""), Kind::Wasm);
        assert_eq!(Artifact::new(b"\x7fELF".to_vec()).kind(), Kind::Native);
    }
}
