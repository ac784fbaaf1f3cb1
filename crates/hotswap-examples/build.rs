//! Builds the example plugins under examples/plugins for wasm32 and puts the
//! modules in OUT_DIR for `include_bytes!`. Rust plugins are built by a nested
//! cargo in a target directory of their own (so it never waits on the outer
//! build's lock); the C plugin by clang.

use std::path::{Path, PathBuf};
use std::process::Command;

const RUST_PLUGINS: &[&str] = &["greet-v1", "greet-v2", "counter", "auth"];
const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for dir in [
        "examples/plugins",
        "crates/hotswap-guest/src",
        "crates/hotswap-guest/include",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    build_rust_plugins(&root, &out);
    build_c_plugin(&root, &out);
}

fn build_rust_plugins(root: &Path, out: &Path) {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .args(["--profile", "plugin", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for p in RUST_PLUGINS {
        cmd.args(["-p", p]);
    }
    // The outer build's flags and wrappers (clippy's, coverage's) are for
    // the host crates, not for plugins.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    run(&mut cmd, "build the Rust example plugins for wasm32 (is the wasm32-unknown-unknown target installed? rust-toolchain.toml asks rustup for it)");
    for p in RUST_PLUGINS {
        let file = format!("{}.wasm", p.replace('-', "_"));
        let built = target_dir.join(WASM_TARGET).join("plugin").join(&file);
        std::fs::copy(&built, out.join(&file))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
    }
}

fn build_c_plugin(root: &Path, out: &Path) {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let mut cmd = Command::new(&clang);
    cmd.args([
        "--target=wasm32-unknown-unknown",
        "-O2",
        "-nostdlib",
        "-Wl,--no-entry",
    ])
    .arg("-I")
    .arg(root.join("crates/hotswap-guest/include"))
    .arg("-o")
    .arg(out.join("c_upper.wasm"))
    .arg(root.join("examples/plugins/c-upper/upper.c"));
    run(
        &mut cmd,
        "build the C example plugin with clang (install clang and lld: scripts/setup does)",
    );
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("could not {what}: {cmd:?} exited with {s}"),
        Err(e) => panic!("could not {what}: cannot run {cmd:?}: {e}"),
    }
}
