//! What the native tier's tests share: a tier and slot, and C fixtures built
//! with clang at test time.
#![allow(dead_code)] // each test binary uses its own part of this

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use hotswap_core::{Artifact, EventBus, MemoryKv, Slot};
use hotswap_native::NativeTier;

pub fn tier() -> Arc<NativeTier> {
    Arc::new(NativeTier::new())
}

pub fn slot(tier: &Arc<NativeTier>, name: &str) -> Slot<NativeTier> {
    Slot::new(
        name,
        tier.clone(),
        Arc::new(MemoryKv::default()),
        EventBus::new(),
    )
}

pub fn art(bytes: &[u8]) -> Artifact {
    Artifact::new(bytes.to_vec())
}

/// The start of every C fixture: the ABI's types, and a manifest macro that
/// writes the JSON without C's trailing NUL.
pub const PRELUDE: &str = r#"
#include <stddef.h>
#include <stdint.h>
typedef void (*hs_sink)(void *sink, const uint8_t *ptr, size_t len);
#define MANIFEST(json) \
    __attribute__((section("hotswap.manifest"), used)) \
    static const char hs_manifest[sizeof(json) - 1] = json
"#;

/// An echo plugin in C: binds, and replies with its input.
pub const ECHO: &str = r#"
MANIFEST("{\"name\":\"c-echo\",\"version\":\"1.0.0\",\"abi\":1}");
int32_t hs_bind(const void *host) { return 0; }
int32_t hs_call(const uint8_t *in, size_t len, void *sink, hs_sink write) {
    write(sink, in, len);
    return 0;
}
"#;

/// Builds `source` (after [`PRELUDE`]) into a shared library with clang and
/// returns its bytes.
pub fn build_c(name: &str, source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join(format!("{name}.c"));
    let so = dir.path().join(format!("lib{name}.so"));
    std::fs::write(&c, format!("{PRELUDE}\n{source}")).unwrap();
    compile(&c, &so, &["-shared"]);
    std::fs::read(&so).unwrap()
}

/// Runs clang on `c` into `out` with `extra` flags; fails the test with
/// clang's own message if it cannot.
pub fn compile(c: &Path, out: &Path, extra: &[&str]) {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-O2", "-fPIC", "-Wall", "-Werror"])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(c)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {clang} (scripts/setup installs it): {e}"));
    assert!(status.success(), "clang failed on {}", c.display());
}
