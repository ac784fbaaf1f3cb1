//! Compiles the eBPF C sources under `ebpf/` into CO-RE objects in OUT_DIR:
//! `vmlinux.h` is generated from this kernel's BTF with bpftool (never
//! committed), then clang builds each program with BTF (`-g`). The tracer
//! and the XDP filter are built twice, as versions 1 and 2.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (source, output, extra clang arguments)
const OBJECTS: &[(&str, &str, &[&str])] = &[
    ("dispatch.bpf.c", "dispatch.o", &[]),
    ("tracer.bpf.c", "tracer_v1.o", &["-DVERSION=1"]),
    ("tracer.bpf.c", "tracer_v2.o", &["-DVERSION=2"]),
    ("xdp_filter.bpf.c", "xdp_filter_v1.o", &["-DVERSION=1"]),
    ("xdp_filter.bpf.c", "xdp_filter_v2.o", &["-DVERSION=2"]),
    // Test fixtures, for the tests only (they find them through OUT_DIR).
    ("tests/rejected.bpf.c", "rejected.o", &[]),
    (
        "tests/uprobe_counter.bpf.c",
        "uprobe_counter_v1.o",
        &["-DVERSION=1"],
    ),
    (
        "tests/uprobe_counter.bpf.c",
        "uprobe_counter_v2.o",
        &["-DVERSION=2"],
    ),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let sources = manifest.join("../../ebpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", sources.display());
    println!("cargo:rerun-if-env-changed=BPFTOOL");
    println!("cargo:rerun-if-env-changed=CLANG");

    vmlinux_h(&out);
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86",
        Ok("aarch64") => "arm64",
        Ok(other) => panic!("no eBPF target arch for {other}"),
        Err(_) => "x86",
    };
    for (source, object, extra) in OBJECTS {
        let mut cmd = Command::new(&clang);
        cmd.args(["-g", "-O2", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-D__TARGET_ARCH_{arch}"))
            .args(*extra)
            .arg("-I")
            .arg(&out)
            .arg("-c")
            .arg(sources.join(source))
            .arg("-o")
            .arg(out.join(object));
        run(
            &mut cmd,
            &format!(
                "compile ebpf/{source} with clang (scripts/setup installs clang and libbpf-dev)"
            ),
        );
    }
}

/// Writes `vmlinux.h`, every kernel type, from /sys/kernel/btf/vmlinux.
fn vmlinux_h(out: &Path) {
    let bpftool = std::env::var("BPFTOOL").ok().unwrap_or_else(|| {
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
    });
    let dump = Command::new(&bpftool)
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "c",
        ])
        .output();
    match dump {
        Ok(o) if o.status.success() => {
            std::fs::write(out.join("vmlinux.h"), o.stdout).expect("cannot write vmlinux.h")
        }
        Ok(o) => panic!(
            "bpftool could not dump the kernel's BTF (is /sys/kernel/btf/vmlinux there?): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run bpftool ({e}): scripts/setup installs it"),
    }
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "could not {what}: {cmd:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("could not {what}: cannot run {cmd:?}: {e}"),
    }
}
