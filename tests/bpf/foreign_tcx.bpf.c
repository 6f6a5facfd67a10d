/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A stand-in for another product's tcx programs (Cilium's): counts every packet and
 * ends the chain with TC_ACT_OK (TCX_PASS), as a CNI's datapath does for the traffic it
 * passes. Programs after it in the chain never see those packets. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2); /* 0: ingress, 1: egress */
} foreign_seen SEC(".maps");

static __always_inline int count(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&foreign_seen, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0; /* TC_ACT_OK */
}

SEC("tc")
int foreign_tc_in(struct __sk_buff *skb)
{
	return count(0);
}

SEC("tc")
int foreign_tc_eg(struct __sk_buff *skb)
{
	return count(1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
