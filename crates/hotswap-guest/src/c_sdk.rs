//! The C side of the SDK, for the host that builds C plugins: the header a
//! C plugin includes, and the clang command that makes it a module. The
//! examples' build script and `hotswap watch` both build with it, so a C
//! plugin is built the same way wherever it is built.

use std::path::Path;
use std::process::Command;

/// `hotswap.h`: the ABI's imports, `hs_alloc`, and the manifest macro.
pub const HEADER: &str = include_str!("../include/hotswap.h");

/// The clang command that builds the C plugin `source` into the module
/// `out`, with `include` on the include path (where `hotswap.h` is). The
/// module has no libc and no entry point: a plugin is its exports. `$CLANG`
/// names another clang; it needs `lld` to link wasm32.
pub fn clang(source: &Path, out: &Path, include: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CLANG").unwrap_or_else(|_| "clang".into()));
    cmd.args([
        "--target=wasm32-unknown-unknown",
        "-O2",
        "-nostdlib",
        "-Wl,--no-entry",
    ])
    .arg("-I")
    .arg(include)
    .arg("-o")
    .arg(out)
    .arg(source);
    cmd
}
