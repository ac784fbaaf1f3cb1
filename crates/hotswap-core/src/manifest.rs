//! `Manifest`: what a revision says about itself, read without running it.

use serde::{Deserialize, Serialize};

/// The identity a plugin declares: its name, its own version, and the ABI it
/// was built against. Every tier reads one during validation, before any of
/// the plugin's code runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The plugin's name, e.g. `greet`.
    pub name: String,
    /// The plugin's own version, e.g. `1.2.0`. Free-form; shown to operators.
    pub version: String,
    /// The ABI version the plugin was built for.
    pub abi: u32,
}
