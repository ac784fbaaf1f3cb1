//! The BPF objects built from `ebpf/` by this crate's build script:
//! hotswap's dispatcher, and the examples in two versions each.

/// Bytes aligned as aya's loader wants them (it reads the ELF in place).
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

macro_rules! object {
    ($file:literal) => {{
        static OBJECT: &Aligned<[u8]> =
            &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/", $file)));
        &OBJECT.0
    }};
}

/// hotswap's dispatcher (`ebpf/dispatch.bpf.c`).
pub(crate) const DISPATCH: &[u8] = object!("dispatch.o");

/// The syscall tracer (`ebpf/tracer.bpf.c`), version 1: program
/// `trace_sys_enter` for `tracepoint:raw_syscalls:sys_enter`; maps `watch`
/// (thread id → syscall number or -1), `counts`, `events` (ring buffer).
pub const TRACER_V1: &[u8] = object!("tracer_v1.o");
/// The syscall tracer, version 2: the same, with `version` 2 in its events.
pub const TRACER_V2: &[u8] = object!("tracer_v2.o");
/// The XDP filter (`ebpf/xdp_filter.bpf.c`), version 1: program
/// `xdp_filter`; maps `blocklist` (IPv4 source → u8) and `stats`
/// (per-CPU: 0 passed, 1 dropped).
pub const XDP_FILTER_V1: &[u8] = object!("xdp_filter_v1.o");
/// The XDP filter, version 2: also counts every IPv4 packet in `stats[2]`.
pub const XDP_FILTER_V2: &[u8] = object!("xdp_filter_v2.o");
