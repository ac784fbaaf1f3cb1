//! What `hotswap watch` builds from each kind of source, and how.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context};
use hotswap_core::Digest;
use hotswap_ebpf::compile;
use hotswap_guest::c_sdk;

/// A source `hotswap watch` knows how to turn into a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Cargo plugin crate (its directory): `cargo build` for wasm32.
    Cargo(PathBuf),
    /// A C plugin: clang to wasm32, with `hotswap.h` on the include path.
    C(PathBuf),
    /// An eBPF program (`.bpf.c`): clang to a CO-RE object, with the
    /// kernel's `vmlinux.h` on the include path.
    Bpf(PathBuf),
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
            return Ok(Source::Bpf(path));
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("c") => Ok(Source::C(path)),
            Some("wat") => Ok(Source::Wat(path)),
            Some("wasm") => Ok(Source::Wasm(path)),
            _ => bail!(
                "{}: not a source hotswap watch knows (a plugin crate, .c, .wat, .wasm, or an eBPF .bpf.c)",
                path.display()
            ),
        }
    }

    /// The file or directory to watch for changes.
    pub fn path(&self) -> &Path {
        match self {
            Source::Cargo(p) | Source::C(p) | Source::Bpf(p) | Source::Wat(p) | Source::Wasm(p) => {
                p
            }
        }
    }

    /// Whether it builds an eBPF program (else a WASM plugin).
    pub fn is_ebpf(&self) -> bool {
        matches!(self, Source::Bpf(_))
    }

    /// The name it deploys under when none is given, for an eBPF program:
    /// the file's name before `.bpf.c`. (A plugin's comes from its manifest.)
    pub fn program_name(&self) -> String {
        let name = self
            .path()
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        name.trim_end_matches(".bpf.c").to_string()
    }

    /// What to register with the file watcher, and how.
    ///
    /// A file's directory, not the file: editors save by renaming a new
    /// file over the old one, which a watch on the file itself loses. A
    /// crate's directory and each of its subdirectories but `target` (and
    /// hidden ones): a build writes thousands of files under `target`,
    /// enough to overflow the kernel's event queue and lose a real change.
    pub fn watch_points(&self) -> std::io::Result<Vec<(PathBuf, notify::RecursiveMode)>> {
        use notify::RecursiveMode::{NonRecursive, Recursive};
        match self {
            Source::Cargo(dir) => {
                let mut points = vec![(dir.clone(), NonRecursive)];
                for entry in std::fs::read_dir(dir)? {
                    let path = entry?.path();
                    if path.is_dir() && self.is_new_watch_point(&path) {
                        points.push((path, Recursive));
                    }
                }
                Ok(points)
            }
            other => {
                let dir = other.path().parent().unwrap_or(other.path());
                Ok(vec![(dir.to_path_buf(), NonRecursive)])
            }
        }
    }

    /// Whether `path`, just created, is a directory to watch as well: one
    /// at the top of a crate, but not `target` or a hidden one.
    pub fn is_new_watch_point(&self, path: &Path) -> bool {
        let Source::Cargo(dir) = self else {
            return false;
        };
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        path.parent() == Some(dir) && path.is_dir() && name != "target" && !name.starts_with('.')
    }

    /// Whether a change to `changed` concerns this source.
    pub fn concerns(&self, changed: &Path) -> bool {
        match self {
            // Anything in the crate but its build output, and its lock
            // file: cargo writes that during a build, which must not start
            // another. (The lock is still in the fingerprint, so the next
            // edit builds with it.)
            Source::Cargo(dir) => {
                changed.starts_with(dir)
                    && !changed.starts_with(dir.join("target"))
                    && changed != dir.join("Cargo.lock")
            }
            // The file, or a header beside it that it may include.
            Source::C(p) | Source::Bpf(p) => changed == p || is_header_beside(changed, p),
            Source::Wat(p) | Source::Wasm(p) => changed == p,
        }
    }

    /// A digest of everything the build reads: the file (with the headers
    /// beside a C source), or every file of the crate but its `target` (and
    /// hidden) directories. Two equal fingerprints build the same module,
    /// so the build is skipped.
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
            Source::C(p) | Source::Bpf(p) => {
                all = std::fs::read(p)?;
                let dir = p.parent().unwrap_or(Path::new("."));
                let mut headers: Vec<PathBuf> = std::fs::read_dir(dir)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|h| is_header_beside(h, p))
                    .collect();
                headers.sort();
                for h in headers {
                    let bytes = std::fs::read(&h)?;
                    all.extend_from_slice(h.as_os_str().as_encoded_bytes());
                    all.push(0);
                    all.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    all.extend_from_slice(&bytes);
                }
            }
            Source::Wat(p) | Source::Wasm(p) => all = std::fs::read(p)?,
        }
        Ok(Digest::of(&all))
    }

    /// Builds the module (or the eBPF object). A failure is the compiler's
    /// own message.
    pub fn build(&self, scratch: &Scratch) -> anyhow::Result<Vec<u8>> {
        match self {
            Source::Wat(p) | Source::Wasm(p) => crate::input::read_module(p),
            Source::C(p) => build_c(p, scratch),
            Source::Bpf(p) => build_bpf(p, scratch),
            Source::Cargo(dir) => build_cargo(dir),
        }
    }
}

/// Whether `file` is a C header in the directory of `source`.
fn is_header_beside(file: &Path, source: &Path) -> bool {
    file.extension().is_some_and(|e| e == "h") && file.parent() == source.parent()
}

/// A directory for the builds of one watch: the C SDK header, the
/// kernel's `vmlinux.h` (dumped on the first eBPF build), and outputs.
pub struct Scratch {
    dir: tempfile::TempDir,
    /// Set once `vmlinux.h` is written.
    vmlinux: OnceCell<()>,
}

impl Scratch {
    pub fn new() -> anyhow::Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix("hotswap-watch-")
            .tempdir()
            .context("cannot make a directory for builds")?;
        // The C SDK's header, so that a C plugin anywhere builds.
        std::fs::write(dir.path().join("hotswap.h"), c_sdk::HEADER)?;
        Ok(Scratch {
            dir,
            vmlinux: OnceCell::new(),
        })
    }

    /// Where the headers are, for `-I`.
    fn include(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh path for a build's output.
    fn output(&self, name: &str) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
        let dir = tempfile::tempdir_in(self.dir.path())?;
        let out = dir.path().join(name);
        Ok((dir, out))
    }

    /// Writes `vmlinux.h` on first use. A failure is tried again on the
    /// next build: installing bpftool meanwhile fixes it.
    fn vmlinux_h(&self) -> anyhow::Result<()> {
        if self.vmlinux.get().is_none() {
            let header = compile::vmlinux_h().map_err(|e| anyhow!(e))?;
            std::fs::write(self.dir.path().join("vmlinux.h"), header)
                .context("cannot write vmlinux.h")?;
            let _ = self.vmlinux.set(());
        }
        Ok(())
    }
}

fn build_bpf(source: &Path, scratch: &Scratch) -> anyhow::Result<Vec<u8>> {
    scratch.vmlinux_h()?;
    let (_dir, out) = scratch.output("program.o")?;
    let cmd = compile::clang(source, &out, scratch.include(), std::env::consts::ARCH, &[])
        .map_err(|e| anyhow!(e))?;
    compile::run(cmd).map_err(|e| anyhow!(e))?;
    Ok(std::fs::read(&out)?)
}

fn build_c(source: &Path, scratch: &Scratch) -> anyhow::Result<Vec<u8>> {
    let (_dir, out) = scratch.output("plugin.wasm")?;
    let mut cmd = c_sdk::clang(source, &out, scratch.include());
    let result = cmd
        .output()
        .with_context(|| format!("cannot run {:?} (install clang and lld)", cmd.get_program()))?;
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
            // The compiler's errors without cargo's progress lines.
            "--quiet",
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
