// SPDX-License-Identifier: GPL-2.0
//
// A test fixture the verifier must reject: it writes through a map lookup's
// result without checking it for NULL. Its maps match the tracer's, so a
// test can offer it as the tracer's next revision.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("tracepoint")
int trace_sys_enter(void *ctx)
{
	__u32 pid = (__u32)bpf_get_current_pid_tgid();
	__u64 *n = bpf_map_lookup_elem(&counts, &pid);
	*n += 1; /* no NULL check: "R0 invalid mem access 'map_value_or_null'" */
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
