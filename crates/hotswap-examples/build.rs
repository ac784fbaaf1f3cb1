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
/// The example components (examples/components), with their versions.
const COMPONENTS: &[(&str, &str)] = &[("hello-v1", "1.0.0"), ("hello-v2", "2.0.0")];

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
        "examples/components",
        "crates/hotswap-abi/wit",
        "crates/hotswap-guest/src",
        "crates/hotswap-guest/include",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    build_rust_plugins(&root, &out);
    build_native_plugins(&root, &out);
    build_c_plugin(&root, &out);
    build_components(&root, &out);
}

/// The example components: `hello` v1 and v2, built for wasm32 in their own
/// workspace, then made into components here with wit-component (no
/// adapter is needed: wasm32-unknown-unknown imports nothing of WASI
/// preview 1), each with its `hotswap.manifest` section.
fn build_components(root: &Path, out: &Path) {
    let target_dir = plugin_target_dir(root);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .args(["--profile", "plugin", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(root.join("examples/components/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    clean_env(&mut cmd);
    run(&mut cmd, "build the example components for wasm32");
    for (name, version) in COMPONENTS {
        let file = format!("{}.wasm", name.replace('-', "_"));
        let built = target_dir.join(WASM_TARGET).join("plugin").join(&file);
        let module = std::fs::read(&built)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", built.display()));
        let mut component = wit_component::ComponentEncoder::default()
            .module(&module)
            .and_then(|e| e.validate(true).encode())
            .unwrap_or_else(|e| panic!("cannot make {name} a component: {e:#}"));
        let manifest = format!(r#"{{"name":"hello","version":"{version}","abi":1}}"#);
        wasm_encoder::ComponentSection::append_to_component(
            &wasm_encoder::CustomSection {
                name: hotswap_guest::abi::MANIFEST_SECTION.into(),
                data: manifest.as_bytes().into(),
            },
            &mut component,
        );
        // In OUT_DIR for `include_bytes!`, and beside the plugins' builds
        // for scripts/run and for trying them by hand.
        let file = format!("{}.wasm", name.replace('-', "_"));
        let shared = target_dir.join("components");
        std::fs::create_dir_all(&shared)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", shared.display()));
        for path in [
            out.join(format!("{}_component.wasm", name.replace('-', "_"))),
            shared.join(&file),
        ] {
            std::fs::write(&path, &component)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
    }
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
    clean_env(&mut cmd);
    cmd
}

/// The outer build's flags and wrappers (clippy's, coverage's) are for the
/// host crates, not for plugins.
fn clean_env(cmd: &mut Command) {
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
