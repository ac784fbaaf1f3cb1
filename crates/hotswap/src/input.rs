//! Reading plugin files: `.wasm` as they are, `.wat` assembled first.

use std::path::Path;

use anyhow::Context;

/// The module bytes in `path`. Text-format files (`.wat`) are assembled, so
/// a hand-written test module needs no extra tool.
pub fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "wat") {
        return wat::parse_bytes(&bytes)
            .map(|b| b.into_owned())
            .with_context(|| format!("{} is not valid WebAssembly text", path.display()));
    }
    Ok(bytes)
}
