//! How an eBPF C source becomes a CO-RE object: `vmlinux.h` dumped from
//! the kernel's BTF with bpftool, then clang for the `bpf` target with BTF
//! (`-g`), so the loader can relocate the object to the kernel it meets.
//!
//! Shared by this crate's build script (the examples) and `hotswap watch`
//! (a user's `.bpf.c`), so both build with the same flags. It uses the
//! standard library alone, which is what lets the build script include it.

use std::path::Path;
use std::process::Command;

/// Where the kernel describes its own types.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The bpftool to run: `$BPFTOOL`, else the first of `bpftool`,
/// `/usr/sbin/bpftool` and `/sbin/bpftool` that runs (Debian keeps it in
/// sbin, which a user's PATH often lacks).
pub fn bpftool() -> String {
    if let Ok(b) = std::env::var("BPFTOOL") {
        return b;
    }
    ["bpftool", "/usr/sbin/bpftool", "/sbin/bpftool"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or("bpftool")
        .to_string()
}

/// Every type of the running kernel as C (`vmlinux.h`), from its BTF.
pub fn vmlinux_h() -> Result<Vec<u8>, String> {
    let bpftool = bpftool();
    let dump = Command::new(&bpftool)
        .args(["btf", "dump", "file", KERNEL_BTF, "format", "c"])
        .output();
    match dump {
        Ok(o) if o.status.success() => Ok(o.stdout),
        Ok(o) => Err(format!(
            "bpftool could not dump the kernel's BTF (is {KERNEL_BTF} there?): {}",
            String::from_utf8_lossy(&o.stderr).trim_end()
        )),
        Err(e) => Err(format!(
            "cannot run {bpftool} ({e}): install bpftool (scripts/setup does)"
        )),
    }
}

/// The clang command that compiles `source` into the CO-RE object `out`,
/// for a kernel on `arch` (Rust's name: `x86_64`, `aarch64`), with
/// `include` on the include path (where `vmlinux.h` is) and `extra`
/// arguments (`-DVERSION=2`). `$CLANG` names another clang.
pub fn clang(
    source: &Path,
    out: &Path,
    include: &Path,
    arch: &str,
    extra: &[&str],
) -> Result<Command, String> {
    // bpf_tracing.h's register macros want the kernel's name for the arch.
    let kernel_arch = match arch {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        "riscv64" => "riscv",
        "s390x" => "s390",
        "powerpc64" => "powerpc",
        other => return Err(format!("no eBPF target arch for {other}")),
    };
    let mut cmd = Command::new(std::env::var("CLANG").unwrap_or_else(|_| "clang".into()));
    // Warnings are shown but do not fail the build: that is for `extra`
    // (`-Werror`) to decide, as the examples do.
    cmd.args(["-g", "-O2", "-target", "bpf", "-Wall"])
        .arg(format!("-D__TARGET_ARCH_{kernel_arch}"))
        .args(extra)
        .arg("-I")
        .arg(include)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(out);
    Ok(cmd)
}

/// Runs a [`clang`] command; on failure, the compiler's own words.
pub fn run(mut cmd: Command) -> Result<(), String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim_end().to_string()),
        Err(e) => Err(format!(
            "cannot run {:?} ({e}): install clang (scripts/setup does)",
            cmd.get_program()
        )),
    }
}
