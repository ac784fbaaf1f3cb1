// SPDX-License-Identifier: GPL-2.0
//
// A test fixture for uprobes: counts, per thread, the calls into the
// probed function. Built as VERSION 1 and 2; `last` holds the version that
// counted last, so a replacement shows.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef VERSION
#define VERSION 1
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   /* thread id */
	__type(value, __u64); /* calls */
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32); /* the version that counted last */
} last SEC(".maps");

SEC("uprobe")
int count_calls(void *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 one = 1;
	__u64 *n = bpf_map_lookup_elem(&counts, &tid);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&counts, &tid, &one, BPF_NOEXIST);
	__u32 zero = 0, version = VERSION;
	bpf_map_update_elem(&last, &zero, &version, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
