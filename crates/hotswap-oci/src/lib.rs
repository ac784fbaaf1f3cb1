//! Plugins as OCI artifacts, on any registry that speaks the OCI
//! distribution API.
//!
//! A plugin is pushed in the CNCF layout for WebAssembly (a config of
//! [`media::WASM_CONFIG`], one layer of [`media::WASM_LAYER`]), and its
//! ed25519 signature, when it has one, as a second artifact tagged
//! `sha256-<manifest digest>.sig`. A tag is resolved to a digest once
//! ([`Registry::resolve`]); everything after that pulls by digest only
//! ([`Registry::pull`]), checks every digest on the way (the manifest's
//! against the reference, the layer's against the manifest) and keeps
//! blobs in a cache by digest, so a second pull reads no network.
//!
//! ```no_run
//! use hotswap_oci::{PluginRef, Registry, RegistryOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::new(RegistryOptions::default());
//! let tag: PluginRef = "oci://127.0.0.1:5000/plugins/greet:v1".parse()?;
//! let pushed = registry.push(b"\0asm\x01\0\0\0", &tag, None).await?;
//! let pinned = registry.resolve(&tag).await?;
//! assert_eq!(pinned, pushed.reference);
//! let pulled = registry.pull(&pinned).await?;
//! assert_eq!(pulled.module, b"\0asm\x01\0\0\0");
//! # Ok(()) }
//! ```

pub mod media;
mod reference;
mod registry;

pub use reference::{ParseRefError, PluginRef};
pub use registry::{OciError, Pulled, Pushed, Registry, RegistryOptions};
