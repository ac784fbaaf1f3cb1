//! What `hotswap watch` builds from each kind of source, and how.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context};
use hotswap_core::Digest;

/// A source `hotswap watch` knows how to turn into a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Cargo plugin crate (its directory): `cargo build` for wasm32.
    Cargo(PathBuf),
    /// A C plugin: clang to wasm32, with `hotswap.h` on the include path.
    C(PathBuf),
    /// WebAssembly text: assembled.
    Wat(PathBuf),
    /// A built module, used as it is.
    Wasm(PathBuf),
}

impl Source {
    /// What `path` is, by its name; a directory must hold a `Cargo.toml`.
    pub fn of(path: &Path) -> anyhow::Result<Source> {
        let path = path
            .canonicalize()
            .with_context(|| format!("cannot watch {}", path.display()))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if path.join("Cargo.toml").is_file() {
                return Ok(Source::Cargo(path));
            }
            bail!("{} is a directory without a Cargo.toml: watch a plugin crate, or a .c, .wat or .wasm file", path.display());
        }
        if name == "Cargo.toml" {
            return Ok(Source::Cargo(path.parent().unwrap_or(&path).to_path_buf()));
        }
        if name.ends_with(".bpf.c") {
            bail!(
                "{}: eBPF sources are not watched yet; use `hotswap ebpf replace`",
                path.display()
            );
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("c") => Ok(Source::C(path)),
            Some("wat") => Ok(Source::Wat(path)),
            Some("wasm") => Ok(Source::Wasm(path)),
            _ => bail!(
                "{}: not a source hotswap watch knows (a plugin crate, .c, .wat or .wasm)",
                path.display()
            ),
        }
    }

    /// The file or directory to watch for changes.
    pub fn path(&self) -> &Path {
        match self {
            Source::Cargo(p) | Source::C(p) | Source::Wat(p) | Source::Wasm(p) => p,
        }
    }

    /// Whether a change to `changed` concerns this source.
    pub fn concerns(&self, changed: &Path) -> bool {
        match self {
            // Anything in the crate but its build output.
            Source::Cargo(dir) => {
                changed.starts_with(dir) && !changed.starts_with(dir.join("target"))
            }
            Source::C(p) | Source::Wat(p) | Source::Wasm(p) => changed == p,
        }
    }

    /// A digest of everything the build reads: the file, or every file of
    /// the crate but its `target` (and hidden) directories. Two equal
    /// fingerprints build the same module, so the build is skipped.
    pub fn fingerprint(&self) -> std::io::Result<Digest> {
        let mut all = Vec::new();
        match self {
            Source::Cargo(dir) => {
                let mut files = Vec::new();
                crate_files(dir, dir, &mut files)?;
                files.sort();
                for rel in files {
                    all.extend_from_slice(rel.to_string_lossy().as_bytes());
                    all.push(0);
                    let bytes = std::fs::read(dir.join(&rel))?;
                    all.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    all.extend_from_slice(&bytes);
                }
            }
            Source::C(p) | Source::Wat(p) | Source::Wasm(p) => all = std::fs::read(p)?,
        }
        Ok(Digest::of(&all))
    }

    /// Builds the module. A failure is the compiler's own message.
    pub fn build(&self) -> anyhow::Result<Vec<u8>> {
        match self {
            Source::Wasm(p) => {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            }
            Source::Wat(p) => crate::input::read_module(p),
            Source::C(p) => build_c(p),
            Source::Cargo(dir) => build_cargo(dir),
        }
    }
}

/// The C SDK header, embedded so that a C plugin anywhere builds.
const HEADER: &str = include_str!("../../../hotswap-guest/include/hotswap.h");

fn build_c(source: &Path) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("hotswap.h"), HEADER)?;
    let out = dir.path().join("plugin.wasm");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let result = Command::new(&clang)
        .args([
            "--target=wasm32-unknown-unknown",
            "-O2",
            "-nostdlib",
            "-Wl,--no-entry",
        ])
        .arg("-I")
        .arg(dir.path())
        .arg("-o")
        .arg(&out)
        .arg(source)
        .output()
        .with_context(|| format!("cannot run {clang} (install clang and lld)"))?;
    if !result.status.success() {
        return Err(anyhow!(
            "{}",
            String::from_utf8_lossy(&result.stderr).trim_end()
        ));
    }
    Ok(std::fs::read(&out)?)
}

fn build_cargo(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let result = Command::new(&cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--message-format=json-render-diagnostics",
        ])
        .output()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !result.status.success() {
        return Err(anyhow!(
            "{}",
            String::from_utf8_lossy(&result.stderr).trim_end()
        ));
    }
    // The module is the `.wasm` among the artifacts of the crate in `dir`.
    let manifest = dir.join("Cargo.toml");
    let wasm = String::from_utf8_lossy(&result.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(&manifest))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| anyhow!("cargo built no .wasm: is the crate a `cdylib`?"))?;
    Ok(std::fs::read(&wasm)?)
}

/// Every file under `dir` (relative to `root`) but `target` and hidden entries.
fn crate_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || (dir == root && name == "target") {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            crate_files(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}
