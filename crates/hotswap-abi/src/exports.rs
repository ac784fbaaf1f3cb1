//! What a plugin exports (docs/abi.md, "Exports" and "Native plugins").
//!
//! The lifecycle exports ([`OPTIONAL`]) have the same names and meaning in
//! both bindings; the call path differs: `hs_alloc` and `hs_process` in
//! WASM, `hs_bind` and `hs_call` natively.

use crate::sig::{Signature, ValType, ValType::I32, ValType::I64};

/// The plugin's linear memory (WASM): a memory, not a function.
pub const MEMORY: &str = "memory";
/// `hs_alloc(len) -> ptr` (WASM, required).
pub const ALLOC: &str = "hs_alloc";
/// `hs_process(ptr, len) -> packed` (WASM, required; [`crate::packed`]).
pub const PROCESS: &str = "hs_process";
/// `hs_bind(table) -> i32` (native, required).
pub const BIND: &str = "hs_bind";
/// `hs_call(input, len, sink, write) -> i32` (native, required).
pub const CALL: &str = "hs_call";
/// `hs_init() -> i32`: once per instance (per library natively); 0 = ready.
pub const INIT: &str = "hs_init";
/// `hs_health() -> i32`: once per prepared revision; 0 = healthy.
pub const HEALTH: &str = "hs_health";
/// `hs_shutdown()`: once per instance (per library) when retired.
pub const SHUTDOWN: &str = "hs_shutdown";
/// `hs_migrate(from_schema) -> i32`: converts the slot's state; 0 = done.
/// Optional to the validator; the slot requires it when the manifest raises
/// the state schema.
pub const MIGRATE: &str = "hs_migrate";

/// The exports both bindings may have, and that validation reports.
pub const OPTIONAL: &[&str] = &[INIT, HEALTH, SHUTDOWN, MIGRATE];

/// Which of the optional exports ([`OPTIONAL`]) a plugin has: what
/// validation learns of either tier, and what `hotswap check` reports.
///
/// ```
/// use hotswap_abi::exports::{Optional, INIT, MIGRATE};
///
/// let has = Optional::of(|name| name == INIT || name == MIGRATE);
/// assert!(has.init && !has.health);
/// assert_eq!(has.names().collect::<Vec<_>>(), [INIT, MIGRATE]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Optional {
    /// `hs_init`.
    pub init: bool,
    /// `hs_health`.
    pub health: bool,
    /// `hs_shutdown`.
    pub shutdown: bool,
    /// `hs_migrate`.
    pub migrate: bool,
}

impl Optional {
    /// From whether the plugin exports each name.
    pub fn of(mut has: impl FnMut(&'static str) -> bool) -> Optional {
        Optional::try_of(|name| Ok::<_, core::convert::Infallible>(has(name)))
            .unwrap_or_else(|never| match never {})
    }

    /// From a reader of each name that can fail (an ELF symbol table).
    pub fn try_of<E>(mut has: impl FnMut(&'static str) -> Result<bool, E>) -> Result<Optional, E> {
        Ok(Optional {
            init: has(INIT)?,
            health: has(HEALTH)?,
            shutdown: has(SHUTDOWN)?,
            migrate: has(MIGRATE)?,
        })
    }

    /// The names it has, in the ABI's order ([`OPTIONAL`]).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        let has = [self.init, self.health, self.shutdown, self.migrate];
        OPTIONAL
            .iter()
            .zip(has)
            .filter(|(_, has)| *has)
            .map(|(name, _)| *name)
    }
}

/// The exports a native library must have.
pub const NATIVE_REQUIRED: &[&str] = &[BIND, CALL];

/// One function a WASM plugin exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Export {
    /// Its export name.
    pub name: &'static str,
    /// Its parameters.
    pub params: &'static [ValType],
    /// Its results.
    pub results: &'static [ValType],
    /// Whether every plugin must export it.
    pub required: bool,
}

impl Export {
    /// Its type, printable.
    pub const fn signature(&self) -> Signature<'static> {
        Signature {
            params: self.params,
            results: self.results,
        }
    }
}

/// The function exports of a WASM plugin, with their exact types. (Besides
/// these, [`MEMORY`] is required.)
pub const WASM_EXPORTS: &[Export] = &[
    Export {
        name: ALLOC,
        params: &[I32],
        results: &[I32],
        required: true,
    },
    Export {
        name: PROCESS,
        params: &[I32, I32],
        results: &[I64],
        required: true,
    },
    Export {
        name: INIT,
        params: &[],
        results: &[I32],
        required: false,
    },
    Export {
        name: HEALTH,
        params: &[],
        results: &[I32],
        required: false,
    },
    Export {
        name: SHUTDOWN,
        params: &[],
        results: &[],
        required: false,
    },
    Export {
        name: MIGRATE,
        params: &[I32],
        results: &[I32],
        required: false,
    },
];
