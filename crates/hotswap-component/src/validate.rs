//! What a component must be before anything of it runs: a valid component
//! (not a core module), exporting `wasi:http/incoming-handler`, importing
//! nothing beyond the `wasi:http/proxy` world and hotswap's own interfaces.

use hotswap_core::{Manifest, ManifestError, MANIFEST_SECTION};
use wasmtime::wasmparser::{self, Parser, Payload, Validator, WasmFeatures};

/// The export a handler must have (at any 0.2 version).
pub const HANDLER_EXPORT: &str = "wasi:http/incoming-handler";

/// The interfaces a component may import, by name without version: what
/// the linker gives (`wasmtime_wasi_http::p2::add_to_linker_async`, the
/// `wasi:http/proxy` world, and `hotswap:plugin/kv`, the slot's state from
/// `crates/hotswap-abi/wit`). A test instantiates against the linker, so
/// this list cannot promise what the linker lacks.
pub(crate) const ALLOWED: &[&str] = &[
    "wasi:http/types",
    "wasi:http/outgoing-handler",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/stdin",
    "hotswap:plugin/kv",
];

/// What validation learnt about a component.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    /// Its manifest: from its `hotswap.manifest` custom section, or made up
    /// when it has none (see [`default_manifest`]).
    pub manifest: Manifest,
    /// Whether the manifest came from the component itself.
    pub has_manifest: bool,
    /// The interfaces it imports, as named in the component.
    pub imports: Vec<String>,
    /// What it exports, as named in the component.
    pub exports: Vec<String>,
}

/// Why bytes are not a component hotswap can serve. Each names what is
/// wrong, so that the author can fix it without reading hotswap's source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentRejection {
    /// A core module where a component is expected.
    #[error("this is a core WebAssembly module (an ABI v1 plugin), not a component; a wasi:http handler is a component (docs/components.md says how to build one)")]
    CoreModule,
    /// Not WebAssembly at all.
    #[error("not WebAssembly: a component starts with \\0asm and layer 1")]
    NotWasm,
    /// Malformed, or uses a feature this host does not run.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// It does not export the handler.
    #[error("the component does not export `{HANDLER_EXPORT}` (it exports: {found}); a handler targets the `wasi:http/proxy` world")]
    NoHandler {
        /// What it does export.
        found: String,
    },
    /// It imports an interface components are not given.
    #[error("the component imports `{name}`, which hotswap does not give components: {why}")]
    ForbiddenImport {
        /// The import, as named in the component.
        name: String,
        /// Why it is refused, and what to use instead.
        why: &'static str,
    },
    /// Its manifest section is malformed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// Checks `bytes` without running or compiling any of it.
///
/// ```
/// use hotswap_component::{validate, ComponentRejection};
///
/// let core = wat::parse_str("(module)").unwrap();
/// assert_eq!(validate(&core).unwrap_err(), ComponentRejection::CoreModule);
/// let empty = wat::parse_str("(component)").unwrap();
/// assert!(matches!(validate(&empty), Err(ComponentRejection::NoHandler { .. })));
/// ```
pub fn validate(bytes: &[u8]) -> Result<ComponentInfo, ComponentRejection> {
    match hotswap_core::Kind::of(bytes) {
        hotswap_core::Kind::Component => {}
        hotswap_core::Kind::Wasm if bytes.starts_with(b"\0asm") => {
            return Err(ComponentRejection::CoreModule)
        }
        _ => return Err(ComponentRejection::NotWasm),
    }
    let features = WasmFeatures::default() | WasmFeatures::COMPONENT_MODEL;
    Validator::new_with_features(features)
        .validate_all(bytes)
        .map_err(|e| ComponentRejection::Invalid(e.to_string()))?;

    let outline = outline(bytes).map_err(|e| ComponentRejection::Invalid(e.to_string()))?;
    for name in &outline.imports {
        if let Some(why) = refused(name) {
            return Err(ComponentRejection::ForbiddenImport {
                name: name.clone(),
                why,
            });
        }
    }
    if !outline
        .exports
        .iter()
        .any(|e| unversioned(e) == HANDLER_EXPORT)
    {
        let found = if outline.exports.is_empty() {
            "nothing".to_string()
        } else {
            outline.exports.join(", ")
        };
        return Err(ComponentRejection::NoHandler { found });
    }
    let (manifest, has_manifest) = match outline.manifests.as_slice() {
        [] => (default_manifest(), false),
        many => (
            Manifest::from_sections(many.iter().map(Vec::as_slice))?,
            true,
        ),
    };
    Ok(ComponentInfo {
        manifest,
        has_manifest,
        imports: outline.imports,
        exports: outline.exports,
    })
}

/// The manifest of a component that carries none: components built by the
/// usual toolchains (cargo-component, componentize-py, jco) have no
/// `hotswap.manifest` section, and need none to be served. Its name and
/// version say so; its state schema is 0.
pub fn default_manifest() -> Manifest {
    Manifest {
        name: "component".into(),
        version: "unversioned".into(),
        abi: hotswap_abi::ABI_VERSION,
        state_schema: 0,
    }
}

/// Why an import is refused, or `None` if it is allowed.
fn refused(import: &str) -> Option<&'static str> {
    let name = unversioned(import);
    if ALLOWED.contains(&name) {
        let version = import.split_once('@').map(|(_, v)| v);
        let wanted = if name.starts_with("hotswap:") {
            "1."
        } else {
            "0.2."
        };
        return match version {
            Some(v) if v.starts_with(wanted) => None,
            _ if name.starts_with("hotswap:") => {
                Some("hotswap:plugin is at version 1 (crates/hotswap-abi/wit/hotswap.wit)")
            }
            _ => Some("this host serves WASI 0.2 (interfaces @0.2.x, up to 0.2.12)"),
        };
    }
    Some(if name.starts_with("wasi:filesystem/") {
        "files are refused; keep state in `hotswap:plugin/kv`, which survives swaps"
    } else if name.starts_with("wasi:sockets/") {
        "sockets are refused; outgoing requests go through `wasi:http/outgoing-handler`, to the hosts the slot's config allows"
    } else if name.starts_with("wasi:cli/") {
        "only stdin, stdout and stderr of `wasi:cli` are given (a handler has no environment, arguments or exit); build for the `wasi:http/proxy` world"
    } else {
        "it is outside the `wasi:http/proxy` world and hotswap's `hotswap:plugin` interfaces"
    })
}

/// `wasi:http/types@0.2.12` → `wasi:http/types`.
fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// The component's own imports, exports and manifest sections (not those
/// of the modules and components nested in it).
#[derive(Default)]
struct Outline {
    imports: Vec<String>,
    exports: Vec<String>,
    manifests: Vec<Vec<u8>>,
}

fn outline(bytes: &[u8]) -> Result<Outline, wasmparser::BinaryReaderError> {
    let mut out = Outline::default();
    // Every module and component, the outer one included, starts with a
    // `Version` payload and ends with `End`: depth 1 is the outer one.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(imports) if depth == 1 => {
                for import in imports {
                    out.imports.push(extern_name(&import?.name));
                }
            }
            Payload::ComponentExportSection(exports) if depth == 1 => {
                for export in exports {
                    out.exports.push(extern_name(&export?.name));
                }
            }
            Payload::CustomSection(c) if depth == 1 && c.name() == MANIFEST_SECTION => {
                out.manifests.push(c.data().to_vec());
            }
            _ => {}
        }
    }
    Ok(out)
}

/// An import's or export's name as written, with its version when the
/// binary keeps that apart.
fn extern_name(name: &wasmparser::ComponentExternName<'_>) -> String {
    match name.version_suffix {
        Some(v) => format!("{}{v}", name.name),
        None => name.name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_imports_are_the_proxy_world_and_kv_at_any_version() {
        assert_eq!(refused("wasi:http/types@0.2.12"), None);
        assert_eq!(refused("wasi:io/streams@0.2.0"), None);
        assert_eq!(refused("hotswap:plugin/kv@1.0.0"), None);
        assert!(refused("wasi:http/types@0.3.0")
            .unwrap()
            .contains("WASI 0.2"));
        assert!(refused("wasi:http/types").is_some());
        assert!(refused("hotswap:plugin/kv@2.0.0").is_some());
        assert!(refused("wasi:random/insecure@0.2.0").is_some());
        assert!(refused("wasi:filesystem/preopens@0.2.0")
            .unwrap()
            .contains("files"));
        assert!(refused("wasi:sockets/tcp@0.2.0")
            .unwrap()
            .contains("sockets"));
        assert!(refused("wasi:cli/environment@0.2.0").is_some());
        assert!(refused("acme:secret/keys").is_some());
    }
}
