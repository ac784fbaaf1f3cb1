// SPDX-License-Identifier: GPL-2.0
//
// hotswap's dispatcher for hooks whose link the kernel cannot update
// (tracepoints, raw tracepoints, uprobes). It is attached once; each
// revision of the real program is loaded and put in slot 0 of `hs_slot`,
// which the kernel swaps atomically. A call that finds the slot empty is
// counted in `hs_missed`, so "no event lost" is something a test can read.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} hs_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hs_missed SEC(".maps");

static __always_inline int dispatch(void *ctx)
{
	__u32 zero = 0;
	bpf_tail_call(ctx, &hs_slot, 0);
	/* Only reached when the slot is empty. */
	__u64 *missed = bpf_map_lookup_elem(&hs_missed, &zero);
	if (missed)
		__sync_fetch_and_add(missed, 1);
	return 0;
}

SEC("tracepoint")
int hs_dispatch_tracepoint(void *ctx) { return dispatch(ctx); }

SEC("raw_tracepoint")
int hs_dispatch_raw_tracepoint(void *ctx) { return dispatch(ctx); }

SEC("uprobe")
int hs_dispatch_uprobe(void *ctx) { return dispatch(ctx); }

char LICENSE[] SEC("license") = "GPL";
