//! Compiles the eBPF C sources under `ebpf/` into CO-RE objects in OUT_DIR,
//! as `src/compile.rs` says: `vmlinux.h` is generated from this kernel's BTF
//! (never committed), then clang builds each program with BTF (`-g`). The tracer
//! and the XDP filter are built twice, as versions 1 and 2.

use std::path::PathBuf;

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

// The same module the library exports as `hotswap_ebpf::compile`.
#[allow(dead_code)]
#[path = "src/compile.rs"]
mod compile;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let sources = manifest.join("../../ebpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", sources.display());
    println!("cargo:rerun-if-env-changed=BPFTOOL");
    println!("cargo:rerun-if-env-changed=CLANG");

    let vmlinux = compile::vmlinux_h().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(out.join("vmlinux.h"), vmlinux).expect("cannot write vmlinux.h");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    for (source, object, extra) in OBJECTS {
        // Warnings are errors in our own sources (not in a user's: see compile::clang).
        let args: Vec<&str> = ["-Werror"].iter().chain(extra.iter()).copied().collect();
        let cmd = compile::clang(&sources.join(source), &out.join(object), &out, &arch, &args)
            .unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = compile::run(cmd) {
            panic!("could not compile ebpf/{source} (scripts/setup installs clang and libbpf-dev):\n{e}");
        }
    }
}
