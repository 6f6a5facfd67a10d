// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* NetProbe per-cgroup traffic: cgroup_skb programs attached (BPF links) to the root of
 * the cgroup v2 hierarchy, so they run for every socket's packets in every descendant
 * cgroup and every network namespace. Counted per (socket's cgroup v2 id, direction,
 * protocol class): packets on the wire (a GSO/GRO skb counts its segments) and their
 * IP bytes (each segment's headers included). Both programs only observe: they always
 * return 1 (allow); nothing is ever dropped. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <netprobe/abi.h>

#include "parse.h" /* the EtherType and IP protocol numbers */
#include "lookup.h"

#define NP_CG_ALLOW 1

/* key: (cgroup id, direction, protocol class); preallocated, not LRU: a full table is
 * a counted insert failure, never a silent eviction. User space may resize before
 * load and deletes the entries of cgroups that no longer exist. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct np_cgroup_key);
	__type(value, struct np_counter);
	__uint(max_entries, 16384);
} cgroup_traffic SEC(".maps");

/* index: enum np_cg_error */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_CG_ERR_MAX);
} cgroup_errors SEC(".maps");

/* The skb starts at the network header in cgroup_skb programs. Returns the L4 protocol
 * number and sets *l4off to the L4 header's offset (0 when unknown). */
static __always_inline __u8 np_cg_l4(struct __sk_buff *skb, __u32 *l4off)
{
	__u8 b[2];
	if (skb->protocol == bpf_htons(NP_ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, b, 1) || bpf_skb_load_bytes(skb, 9, &b[1], 1))
			return 255;
		*l4off = (__u32)(b[0] & 0xf) * 4;
		return b[1];
	}
	if (skb->protocol != bpf_htons(NP_ETH_P_IPV6))
		return 255;
	__u8 nh;
	if (bpf_skb_load_bytes(skb, 6, &nh, 1))
		return 255;
	__u32 off = 40;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (nh == NP_IPPROTO_HOPOPTS || nh == NP_IPPROTO_ROUTING || nh == NP_IPPROTO_DSTOPTS) {
			if (bpf_skb_load_bytes(skb, off, b, 2))
				return 255;
			nh = b[0];
			off += ((__u32)b[1] + 1) * 8;
		} else if (nh == NP_IPPROTO_FRAGMENT) {
			if (bpf_skb_load_bytes(skb, off, b, 1))
				return 255;
			nh = b[0];
			off += 8;
		} else {
			break;
		}
	}
	*l4off = off;
	return nh;
}

/* Fast path: IPv4 and IPv6 without extension headers, read directly from the linear
 * area (no helper calls). Returns 0 when the slow path must decide. Sets *l4, *l4off
 * and *tcp_doff (the TCP data offset byte, when TCP and in the linear area). */
static __always_inline int np_cg_fast(struct __sk_buff *skb, __u8 *l4, __u32 *l4off, __u8 *tcp_doff)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *b = data;
	__u32 off;
	if (skb->protocol == bpf_htons(NP_ETH_P_IP)) {
		if (b + 20 > (__u8 *)end)
			return 0;
		off = (__u32)(b[0] & 0xf) * 4;
		*l4 = b[9];
	} else if (skb->protocol == bpf_htons(NP_ETH_P_IPV6)) {
		if (b + 40 > (__u8 *)end)
			return 0;
		*l4 = b[6];
		if (*l4 == NP_IPPROTO_HOPOPTS || *l4 == NP_IPPROTO_ROUTING || *l4 == NP_IPPROTO_DSTOPTS ||
		    *l4 == NP_IPPROTO_FRAGMENT)
			return 0;
		off = 40;
	} else {
		return 0;
	}
	*l4off = off;
	if (*l4 == NP_IPPROTO_TCP) {
		__u8 *d = b + (off & 0x3f) + 12; /* off <= 60 */
		if (d + 1 > (__u8 *)end)
			return 0;
		*tcp_doff = *d;
	}
	return 1;
}

static __always_inline void np_cg_count(struct __sk_buff *skb, __u8 direction)
{
	__u32 l4off = 0;
	__u8 l4 = 255, doff = 0;
	int fast = np_cg_fast(skb, &l4, &l4off, &doff);
	if (!fast)
		l4 = np_cg_l4(skb, &l4off);
	struct np_cgroup_key key = {
		.cgroup_id = bpf_skb_cgroup_id(skb),
		.direction = direction,
		.proto = NP_CG_PROTO_OTHER,
	};
	__u32 hdr = 0; /* headers repeated in every segment of a GSO/GRO skb */
	if (l4 == NP_IPPROTO_TCP) {
		key.proto = NP_CG_PROTO_TCP;
		if (fast || !bpf_skb_load_bytes(skb, l4off + 12, &doff, 1))
			hdr = l4off + (__u32)(doff >> 4) * 4;
	} else if (l4 == NP_IPPROTO_UDP) {
		key.proto = NP_CG_PROTO_UDP;
		hdr = l4off + 8;
	} else if (l4 == NP_IPPROTO_ICMP || l4 == NP_IPPROTO_ICMPV6) {
		key.proto = NP_CG_PROTO_ICMP;
	}
	__u64 packets = 1;
	__u64 bytes = skb->len;
	__u32 segs = skb->gso_segs;
	if (segs > 1 && hdr) {
		packets = segs;
		bytes += (__u64)(segs - 1) * hdr;
	}

	struct np_counter init = { .packets = packets, .bytes = bytes };
	struct np_counter *c = 0;
	enum np_lookup_result r = np_lookup_or_init(&cgroup_traffic, &key, &init, (void **)&c);
	if (r == NP_FOUND && c) {
		c->packets += packets; /* per-CPU value: no atomics needed */
		c->bytes += bytes;
	} else if (r == NP_FAILED) {
		__u32 idx = NP_CG_ERR_INSERT;
		__u64 *e = bpf_map_lookup_elem(&cgroup_errors, &idx);
		if (e)
			*e += 1;
	}
}

SEC("cgroup_skb/ingress")
int netprobe_cg_in(struct __sk_buff *skb)
{
	np_cg_count(skb, NP_DIR_INGRESS);
	return NP_CG_ALLOW;
}

SEC("cgroup_skb/egress")
int netprobe_cg_eg(struct __sk_buff *skb)
{
	np_cg_count(skb, NP_DIR_EGRESS);
	return NP_CG_ALLOW;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
