// SPDX-License-Identifier: GPL-2.0
//
// A syscall tracer for the raw_syscalls:sys_enter tracepoint. The policy
// map `watch` says which threads to trace and which of their syscalls
// (a syscall number, or -1 for all); `counts` counts them per thread and
// `events` streams each one. Built twice, as VERSION 1 and 2, so that a
// replacement shows in the events.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef VERSION
#define VERSION 1
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   /* thread id */
	__type(value, __s64); /* syscall number, or -1 for every one */
} watch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   /* thread id */
	__type(value, __u64); /* syscalls counted */
} counts SEC(".maps");

struct event {
	__u32 pid;
	__u32 version;
	__s64 syscall;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} events SEC(".maps");

/* Not inlined, so that `struct event` is named in the object's BTF (as a
 * parameter type) and `hotswap ebpf events` can decode the records. */
static __noinline void fill(struct event *e, __u32 pid, __s64 syscall)
{
	e->pid = pid;
	e->version = VERSION;
	e->syscall = syscall;
}

SEC("tracepoint")
int trace_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 pid = (__u32)bpf_get_current_pid_tgid();
	__s64 *want = bpf_map_lookup_elem(&watch, &pid);
	if (!want || (*want >= 0 && *want != ctx->id))
		return 0;

	__u64 one = 1;
	__u64 *n = bpf_map_lookup_elem(&counts, &pid);
	if (n) {
		__sync_fetch_and_add(n, 1);
	} else if (bpf_map_update_elem(&counts, &pid, &one, BPF_NOEXIST)) {
		/* Another CPU created it first: add to that. */
		n = bpf_map_lookup_elem(&counts, &pid);
		if (n)
			__sync_fetch_and_add(n, 1);
	}

	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		fill(e, pid, ctx->id);
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
