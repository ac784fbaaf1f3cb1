//! The ABI v1 check for native libraries: reads the ELF file without loading it.

use hotswap_abi::exports;
use hotswap_core::{Manifest, ManifestError};
use object::{Architecture, BinaryFormat, Object, ObjectKind, ObjectSection, ObjectSymbol};

/// The section that holds a plugin's manifest, as in a WASM module.
pub use hotswap_core::MANIFEST_SECTION;

/// Exports a native plugin must have (hotswap-abi's).
pub use hotswap_abi::exports::NATIVE_REQUIRED as REQUIRED_EXPORTS;

/// Why a file is not a native ABI v1 plugin. Each says what is wrong in
/// words a plugin author can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not an ELF file, or a damaged one.
    #[error("not a native library: {0}")]
    NotElf(String),
    /// ELF, but not a shared library (an executable, an object file...).
    #[error("not a shared library but {0}; build the plugin as a `cdylib` (or with -shared)")]
    NotShared(&'static str),
    /// Built for another machine.
    #[error("built for {found}, but this host is {expected}; build the plugin for this machine")]
    WrongMachine {
        /// The library's architecture.
        found: String,
        /// This host's.
        expected: String,
    },
    /// A required function is not exported.
    #[error("the library does not export `{0}`; build it with `hotswap_guest::plugin!` (docs/native.md)")]
    MissingExport(&'static str),
    /// An ABI name is exported, but not as a function.
    #[error("`{0}` is exported but is not a function")]
    NotAFunction(&'static str),
    /// A manifest section the ELF reader cannot read.
    #[error("cannot read the `{MANIFEST_SECTION}` section: {0}")]
    BadManifest(String),
    /// No manifest section, several, one that breaks its rules, or one
    /// that names an ABI version this host does not run.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// What validation learned about a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryInfo {
    /// The plugin's manifest.
    pub manifest: Manifest,
    /// Which of the ABI's optional exports it has.
    pub optional: exports::Optional,
}

/// Checks `bytes` against the native binding of ABI v1 without loading or
/// running any of it: an ELF shared library for this machine, exporting
/// `hs_bind` and `hs_call` as functions, with exactly one manifest section
/// naming a supported ABI version.
///
/// Loading runs the library's constructors, and this cannot tell good code
/// from bad: it turns away what is not a plugin for this host. Whether a
/// library may run at all is the signature's question (docs/native.md).
pub fn validate(bytes: &[u8]) -> Result<LibraryInfo, Rejection> {
    let file = object::File::parse(bytes).map_err(|e| Rejection::NotElf(e.to_string()))?;
    if file.format() != BinaryFormat::Elf {
        return Err(Rejection::NotElf(format!("a {:?} file", file.format())));
    }
    match file.kind() {
        ObjectKind::Dynamic => {}
        ObjectKind::Executable => return Err(Rejection::NotShared("an executable")),
        ObjectKind::Relocatable => return Err(Rejection::NotShared("an object file")),
        ObjectKind::Core => return Err(Rejection::NotShared("a core dump")),
        _ => return Err(Rejection::NotShared("an ELF file of unknown kind")),
    }
    if has_interpreter(&file) {
        // A position-independent executable is ELF type "shared object"
        // too, and dlopen refuses it; say so before anything is loaded.
        return Err(Rejection::NotShared("a position-independent executable"));
    }
    let expected = host_architecture();
    if file.architecture() != expected || file.is_64() != cfg!(target_pointer_width = "64") {
        return Err(Rejection::WrongMachine {
            found: format!(
                "{:?} ({}-bit)",
                file.architecture(),
                if file.is_64() { 64 } else { 32 }
            ),
            expected: format!("{expected:?} ({}-bit)", usize::BITS),
        });
    }

    let exported = |name: &'static str| -> Result<bool, Rejection> {
        let Some(sym) = file
            .dynamic_symbols()
            .find(|s| s.name() == Ok(name) && s.is_definition() && s.is_global())
        else {
            return Ok(false);
        };
        if sym.kind() != object::SymbolKind::Text {
            return Err(Rejection::NotAFunction(name));
        }
        Ok(true)
    };
    for &name in REQUIRED_EXPORTS {
        if !exported(name)? {
            return Err(Rejection::MissingExport(name));
        }
    }

    let manifests: Vec<_> = file
        .sections()
        .filter(|s| s.name() == Ok(MANIFEST_SECTION))
        .collect();
    let manifests = manifests
        .iter()
        .map(|s| s.data().map_err(|e| Rejection::BadManifest(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let manifest = Manifest::from_sections(manifests)?;
    Ok(LibraryInfo {
        manifest,
        optional: exports::Optional::try_of(exported)?,
    })
}

/// Whether the file asks for a program interpreter (`PT_INTERP`): an
/// executable, not a library.
fn has_interpreter(file: &object::File<'_>) -> bool {
    use object::read::elf::{ElfFile, FileHeader, ProgramHeader};
    fn any_interp<Elf: FileHeader>(elf: &ElfFile<'_, Elf>) -> bool {
        let endian = elf.endian();
        elf.elf_program_headers()
            .iter()
            .any(|p| p.p_type(endian) == object::elf::PT_INTERP)
    }
    match file {
        object::File::Elf64(elf) => any_interp(elf),
        object::File::Elf32(elf) => any_interp(elf),
        _ => false,
    }
}

fn host_architecture() -> Architecture {
    if cfg!(target_arch = "x86_64") {
        Architecture::X86_64
    } else if cfg!(target_arch = "aarch64") {
        Architecture::Aarch64
    } else if cfg!(target_arch = "riscv64") {
        Architecture::Riscv64
    } else {
        Architecture::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_elf() {
        assert!(matches!(validate(b""), Err(Rejection::NotElf(_))));
        assert!(matches!(
            validate(b"\0asm\x01\0\0\0"),
            Err(Rejection::NotElf(_))
        ));
        assert!(matches!(
            validate(b"\x7fELF\x02\x01\x01"),
            Err(Rejection::NotElf(_))
        ));
    }
}
