// SPDX-License-Identifier: GPL-2.0
//
// An XDP packet filter: IPv4 packets from an address in `blocklist` are
// dropped, the rest pass; `stats` counts IPv4 packets per action
// (0 = passed, 1 = dropped). Built twice, as VERSION 1 and 2; version 2
// also counts, in `stats[2]`, the packets it saw, so a replacement shows.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef VERSION
#define VERSION 1
#endif

#define ETH_P_IP 0x0800

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __be32); /* IPv4 source address, network order */
	__type(value, __u8);
} blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &slot);
	if (n)
		*n += 1; /* per CPU: no other writer */
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
#if VERSION >= 2
	count(2);
#endif
	__be32 src = ip->saddr;
	if (bpf_map_lookup_elem(&blocklist, &src)) {
		count(1);
		return XDP_DROP;
	}
	count(0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
