// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark reference: the cheapest useful program, one per-CPU array
 * increment. The datapath programs are measured against it in the same run. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} ref_counter SEC(".maps");

SEC("tc")
int np_bench_ref_tc(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&ref_counter, &k);
	if (v)
		*v += 1;
	return -1;
}

SEC("xdp")
int np_bench_ref_xdp(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&ref_counter, &k);
	if (v)
		*v += 1;
	return 2;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
