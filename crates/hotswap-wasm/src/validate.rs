//! The ABI v1 validator: checks a module against docs/abi.md without running it.
//!
//! What it checks against (export and import names and types) is
//! hotswap-abi's; this module only reads the module.

use hotswap_abi::{exports, Export, HostFn, IMPORTS, WASM_EXPORTS};
use hotswap_core::{Manifest, ManifestError};
use wasmtime::wasmparser::{
    CompositeInnerType, Encoding, ExternalKind, FuncType, Parser, Payload, TypeRef, ValType,
};
use wasmtime::Engine;

pub use hotswap_core::SUPPORTED_ABI;

/// The custom section that holds a plugin's manifest.
pub use hotswap_core::MANIFEST_SECTION;

/// The module of the host's own imports.
pub use hotswap_abi::HOST_MODULE;

/// The module of WASI preview 1 imports.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Why a module is not a valid ABI v1 plugin. Each says what is wrong and
/// where, in words a plugin author can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not WebAssembly at all.
    #[error("not a WebAssembly module: {0}")]
    NotWasm(String),
    /// WebAssembly, but structurally invalid.
    #[error("malformed module: {0}")]
    Malformed(String),
    /// A component, not a core module.
    #[error("this is a WebAssembly component, not an ABI v1 plugin (a core module); `hotswap serve` runs wasi:http components in their own tier (docs/components.md)")]
    Component,
    /// A required export is missing.
    #[error("missing export `{name}`: ABI v1 requires {expected}")]
    MissingExport {
        /// The export.
        name: &'static str,
        /// What it should be.
        expected: String,
    },
    /// An ABI export has the wrong kind or signature.
    #[error("export `{name}` is {found}, but ABI v1 requires {expected}")]
    WrongExport {
        /// The export.
        name: String,
        /// What it should be.
        expected: String,
        /// What it is.
        found: String,
    },
    /// An import the sandbox does not provide.
    #[error("import `{module}.{name}` is not allowed: {reason}")]
    ForbiddenImport {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A start function, which would run during instantiation, before the
    /// host is ready for it and outside `hs_init`'s contract.
    #[error(
        "the module has a start function (function {0}); put start-up work in `hs_init` instead"
    )]
    StartFunction(u32),
    /// Not exactly one 32-bit, unshared memory.
    #[error("wrong memory: {0}")]
    Memory(String),
    /// No manifest section, several, one that breaks its rules, or one
    /// that names an ABI version this host does not run.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// What validation learned about a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The plugin's manifest.
    pub manifest: Manifest,
    /// Which of the ABI's optional exports it has.
    pub optional: exports::Optional,
    /// Whether it imports WASI preview 1.
    pub uses_wasi: bool,
    /// Every import, as `module.name`.
    pub imports: Vec<String>,
}

/// A module's function type, printed as hotswap-abi prints the ABI's.
fn show(ty: &FuncType) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("func({}) -> ({})", list(ty.params()), list(ty.results()))
}

/// Whether a module's function type is exactly `params -> results`.
fn same_type(
    params: &[hotswap_abi::ValType],
    results: &[hotswap_abi::ValType],
    ty: &FuncType,
) -> bool {
    let same = |abi: &[hotswap_abi::ValType], wasm: &[ValType]| {
        abi.len() == wasm.len()
            && abi.iter().zip(wasm).all(|(a, w)| {
                *w == match a {
                    hotswap_abi::ValType::I32 => ValType::I32,
                    hotswap_abi::ValType::I64 => ValType::I64,
                }
            })
    };
    same(params, ty.params()) && same(results, ty.results())
}

fn export_matches(e: &Export, ty: &FuncType) -> bool {
    same_type(e.params, e.results, ty)
}

fn import_matches(f: &HostFn, ty: &FuncType) -> bool {
    same_type(f.params, f.results, ty)
}

/// Checks `bytes` against ABI v1 without running anything: the structure (by
/// wasmtime's own validator, so it matches what the engine accepts), the
/// exports and their exact signatures, the imports, and the manifest.
///
/// With `allow_wasi`, imports from `wasi_snapshot_preview1` are accepted too.
pub fn validate(engine: &Engine, bytes: &[u8], allow_wasi: bool) -> Result<ModuleInfo, Rejection> {
    check_header(bytes)?;
    wasmtime::Module::validate(engine, bytes)
        .map_err(|e| Rejection::Malformed(format!("{e:#}")))?;

    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut funcs: Vec<u32> = Vec::new(); // type index of every function, imports first
    let mut manifests: Vec<&[u8]> = Vec::new();
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    let mut imports = Vec::new();
    let mut uses_wasi = false;
    let malformed =
        |e: wasmtime::wasmparser::BinaryReaderError| Rejection::Malformed(e.to_string());

    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for ty in group.map_err(malformed)?.into_types() {
                        // Non-function (GC) types take an index but can
                        // never be an ABI function's type.
                        types.push(match ty.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(malformed)?;
                    let TypeRef::Func(ty) = import.ty else {
                        return Err(Rejection::ForbiddenImport {
                            module: import.module.into(),
                            name: import.name.into(),
                            reason: "plugins may import functions only (not memories, tables, globals or tags)".into(),
                        });
                    };
                    check_import(
                        import.module,
                        import.name,
                        types.get(ty as usize),
                        allow_wasi,
                    )?;
                    uses_wasi |= import.module == WASI_MODULE;
                    imports.push(format!("{}.{}", import.module, import.name));
                    funcs.push(ty);
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    funcs.push(ty.map_err(malformed)?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(malformed)?;
                    exports.push((export.name.to_string(), export.kind, export.index));
                }
            }
            Payload::StartSection { func, .. } => return Err(Rejection::StartFunction(func)),
            Payload::MemorySection(reader) => {
                // The ABI's pointers are i32 offsets into one memory.
                if reader.count() != 1 {
                    return Err(Rejection::Memory(format!(
                        "the module defines {} memories; ABI v1 plugins have exactly one",
                        reader.count()
                    )));
                }
                for memory in reader {
                    let memory = memory.map_err(malformed)?;
                    if memory.memory64 || memory.shared {
                        return Err(Rejection::Memory(
                            "its memory is 64-bit or shared; ABI v1 plugins have one 32-bit, unshared memory".into(),
                        ));
                    }
                }
            }
            Payload::CustomSection(reader) if reader.name() == MANIFEST_SECTION => {
                manifests.push(reader.data());
            }
            _ => {}
        }
    }

    let export = |name: &str| exports.iter().find(|(n, ..)| n == name);
    match export(exports::MEMORY) {
        None => {
            return Err(Rejection::MissingExport {
                name: exports::MEMORY,
                expected: "the plugin's linear memory".into(),
            })
        }
        Some((_, ExternalKind::Memory, _)) => {}
        Some((_, kind, _)) => {
            return Err(Rejection::WrongExport {
                name: exports::MEMORY.into(),
                expected: "a memory".into(),
                found: kind_name(*kind).into(),
            })
        }
    }
    let mut present = [false; WASM_EXPORTS.len()];
    for (i, e) in WASM_EXPORTS.iter().enumerate() {
        let sig = e.signature();
        let Some((_, kind, index)) = export(e.name) else {
            if e.required {
                return Err(Rejection::MissingExport {
                    name: e.name,
                    expected: format!("a function {sig}"),
                });
            }
            continue;
        };
        let wrong = |found: String| Rejection::WrongExport {
            name: e.name.to_string(),
            expected: format!("a function {sig}"),
            found,
        };
        if *kind != ExternalKind::Func {
            return Err(wrong(kind_name(*kind).into()));
        }
        let ty = funcs
            .get(*index as usize)
            .and_then(|t| types.get(*t as usize))
            .and_then(|t| t.as_ref());
        match ty {
            Some(ty) if export_matches(e, ty) => present[i] = true,
            Some(ty) => return Err(wrong(show(ty))),
            None => return Err(wrong("a function of a non-function type".into())),
        }
    }

    let manifest = Manifest::from_sections(manifests.iter().copied())?;
    let has = |name: &str| {
        WASM_EXPORTS
            .iter()
            .zip(present)
            .any(|(e, there)| there && e.name == name)
    };
    Ok(ModuleInfo {
        manifest,
        optional: exports::Optional::of(has),
        uses_wasi,
        imports,
    })
}

/// Tells garbage and components from modules before anything else, so those
/// get a plain message rather than a parser's.
fn check_header(bytes: &[u8]) -> Result<(), Rejection> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(Rejection::NotWasm(if bytes.len() < 4 {
            format!("only {} bytes", bytes.len())
        } else {
            "it does not start with the WebAssembly magic bytes `\\0asm`".into()
        }));
    }
    match Parser::new(0).parse(bytes, true) {
        Ok(wasmtime::wasmparser::Chunk::Parsed {
            payload:
                Payload::Version {
                    encoding: Encoding::Component,
                    ..
                },
            ..
        }) => Err(Rejection::Component),
        Ok(_) => Ok(()),
        Err(e) => Err(Rejection::NotWasm(e.to_string())),
    }
}

fn check_import(
    module: &str,
    name: &str,
    ty: Option<&Option<FuncType>>,
    allow_wasi: bool,
) -> Result<(), Rejection> {
    let forbidden = |reason: String| Rejection::ForbiddenImport {
        module: module.into(),
        name: name.into(),
        reason,
    };
    match module {
        HOST_MODULE => {
            let Some(f) = hotswap_abi::imports::find(name) else {
                let known: Vec<_> = IMPORTS.iter().map(|f| f.name).collect();
                return Err(forbidden(format!(
                    "the host has no function `{name}`; it has {}",
                    known.join(", ")
                )));
            };
            match ty {
                Some(Some(ty)) if import_matches(f, ty) => Ok(()),
                Some(Some(ty)) => Err(forbidden(format!(
                    "it is imported as {} but the host's is {}",
                    show(ty),
                    f.signature()
                ))),
                _ => Err(forbidden("its type is not a function type".into())),
            }
        }
        WASI_MODULE if allow_wasi => Ok(()),
        WASI_MODULE => Err(forbidden(
            "WASI is not allowed on this host; enable it (`allow_wasi`, `--allow-wasi`) or use the `hotswap` host functions"
                .into(),
        )),
        _ => Err(forbidden(format!(
            "plugins may import only from `{HOST_MODULE}` (and `{WASI_MODULE}` when the host allows WASI)"
        ))),
    }
}

fn kind_name(kind: ExternalKind) -> &'static str {
    match kind {
        ExternalKind::Func | ExternalKind::FuncExact => "a function",
        ExternalKind::Table => "a table",
        ExternalKind::Memory => "a memory",
        ExternalKind::Global => "a global",
        ExternalKind::Tag => "a tag",
    }
}
