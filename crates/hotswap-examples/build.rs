//! Builds the example plugins under examples/plugins for wasm32 (and some of
//! them as native libraries) and puts them in OUT_DIR for `include_bytes!`. Rust plugins are built by a nested
//! cargo in a target directory of their own (so it never waits on the outer
//! build's lock); the C plugin by clang.

use std::path::{Path, PathBuf};
use std::process::Command;

const RUST_PLUGINS: &[&str] = &[
    "greet-v1", "greet-v2", "counter", "auth", "tally-v1", "tally-v2",
];
/// Built natively too. (`auth` is left out: it would build serde_json a
/// second time for the host, and the tier comparison needs no more.)
const NATIVE_PLUGINS: &[&str] = &["greet-v1", "greet-v2", "counter", "tally-v1", "tally-v2"];
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
    build_native_plugins(&root, &out);
    build_c_plugin(&root, &out);
}

fn build_rust_plugins(root: &Path, out: &Path) {
    let target_dir = plugin_target_dir(root);
    let mut cmd = nested_cargo(root, &target_dir, "plugin", WASM_TARGET, RUST_PLUGINS);
    run(&mut cmd, "build the Rust example plugins for wasm32 (is the wasm32-unknown-unknown target installed? rust-toolchain.toml asks rustup for it)");
    for p in RUST_PLUGINS {
        let file = format!("{}.wasm", p.replace('-', "_"));
        let built = target_dir.join(WASM_TARGET).join("plugin").join(&file);
        std::fs::copy(&built, out.join(&file))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
    }
}

/// The same plugin sources as native `cdylib`s for this machine, for the
/// native tier. (`--target` keeps them apart from the host's own builds.)
fn build_native_plugins(root: &Path, out: &Path) {
    let target = std::env::var("TARGET").unwrap();
    let target_dir = plugin_target_dir(root);
    let mut cmd = nested_cargo(root, &target_dir, "plugin-native", &target, NATIVE_PLUGINS);
    run(
        &mut cmd,
        "build the Rust example plugins as native libraries",
    );
    for p in NATIVE_PLUGINS {
        let file = format!("lib{}.so", p.replace('-', "_"));
        let built = target_dir.join(&target).join("plugin-native").join(&file);
        std::fs::copy(&built, out.join(&file))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
    }
}

fn plugin_target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("plugins")
}

/// A cargo that builds `plugins` for `target` in a target directory of its
/// own (so it never waits on the outer build's lock).
fn nested_cargo(
    root: &Path,
    target_dir: &Path,
    profile: &str,
    target: &str,
    plugins: &[&str],
) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .args(["--profile", profile, "--target", target])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for p in plugins {
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
    cmd
}

fn build_c_plugin(root: &Path, out: &Path) {
    let mut cmd = hotswap_guest::c_sdk::clang(
        &root.join("examples/plugins/c-upper/upper.c"),
        &out.join("c_upper.wasm"),
        &root.join("crates/hotswap-guest/include"),
    );
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
