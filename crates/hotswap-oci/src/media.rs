//! The media types of hotswap's artifacts, written once.

/// An OCI image manifest, the kind every artifact here is.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The config of a WebAssembly artifact (CNCF TAG Runtime's layout).
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";

/// The one layer of a WebAssembly artifact: the module's bytes.
pub const WASM_LAYER: &str = "application/wasm";

/// The config of a signature artifact (an empty JSON object).
pub const SIGNATURE_CONFIG: &str = "application/vnd.hotswap.signature.config.v1+json";

/// The one layer of a signature artifact: the ed25519 signature of the
/// module's bytes, in hex, as `hotswap deploy --signature` takes it.
pub const SIGNATURE_LAYER: &str = "application/vnd.hotswap.signature.v1+hex";
