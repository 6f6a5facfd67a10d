/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet path tracing: a handful of "trace this flow for N seconds" slots
 * (trace_specs) that the datapath's XDP/TC programs and the stack monitor's
 * netfilter, kfree_skb and socket programs check. Each object that includes this
 * header has its own copy of the maps; user space writes the same specs into each and
 * reads the stages of each (the stage sets are disjoint).
 *
 * Cost with no trace: every caller tests np_trace_on first (one load from the
 * object's .data.trace and a branch); the matching code lives in global functions,
 * verified once and never reached then. */
#ifndef NETPROBE_TRACE_H
#define NETPROBE_TRACE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netprobe/abi.h>

/* Non-zero while a trace slot is in use (user space writes it; a map of its own so
 * that nothing else shares the value). */
volatile __u32 np_trace_on SEC(".data.trace") = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct np_trace_spec);
	__uint(max_entries, NP_TRACE_MAX);
} trace_specs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_counter);
	__uint(max_entries, NP_TRACE_COUNT_SLOTS);
} trace_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct np_trace_key);
	__type(value, __u64);
	__uint(max_entries, 256);
} trace_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct np_trace_key);
	__type(value, __u64);
	__uint(max_entries, 256);
} trace_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct np_trace_proc_key);
	__type(value, struct np_trace_proc);
	__uint(max_entries, 128);
} trace_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_trace_last);
	__uint(max_entries, NP_TRACE_MAX);
} trace_last SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_TRACE_ERR_MAX);
} trace_errors SEC(".maps");

static __always_inline void np_trace_error(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&trace_errors, &idx);
	if (v)
		*v += 1;
}

/* a == b, or b is all zero (any address); wild: a all zero matches too (an unconnected
 * or unbound socket's side). */
static __always_inline int np_trace_addr_ok(const union np_addr *want, const union np_addr *a, int wild)
{
	__u32 w = want->v6_32[0] | want->v6_32[1] | want->v6_32[2] | want->v6_32[3];
	if (!w)
		return 1;
	if (wild) {
		/* IPv4-mapped any (::ffff:0.0.0.0) or :: */
		if (!(a->v6_32[0] | a->v6_32[1] | a->v6_32[3]))
			return 1;
	}
	return want->v6_32[0] == a->v6_32[0] && want->v6_32[1] == a->v6_32[1] &&
	       want->v6_32[2] == a->v6_32[2] && want->v6_32[3] == a->v6_32[3];
}

static __always_inline int np_trace_port_ok(__u16 want, __u16 p, int wild)
{
	return !want || want == p || (wild && !p);
}

/* The slot and direction a packet (k: src, dst, ports, proto, family) belongs to:
 * slot * NP_TRACE_DIRS + dir + 1, or 0 when no active slot matches. */
static __always_inline int np_trace_find(const struct flow_key *k, int wild)
{
	__u64 now = 0;
#pragma unroll
	for (__u32 i = 0; i < NP_TRACE_MAX; i++) {
		__u32 slot = i;
		struct np_trace_spec *s = bpf_map_lookup_elem(&trace_specs, &slot);
		if (!s || s->family != k->family)
			continue;
		if (s->proto && s->proto != k->proto)
			continue;
		int dir = -1;
		if (np_trace_addr_ok(&s->saddr, &k->src_ip, wild) && np_trace_addr_ok(&s->daddr, &k->dst_ip, wild) &&
		    np_trace_port_ok(s->sport, k->src_port, wild) && np_trace_port_ok(s->dport, k->dst_port, wild))
			dir = 0;
		else if (np_trace_addr_ok(&s->saddr, &k->dst_ip, wild) && np_trace_addr_ok(&s->daddr, &k->src_ip, wild) &&
			 np_trace_port_ok(s->sport, k->dst_port, wild) && np_trace_port_ok(s->dport, k->src_port, wild))
			dir = 1;
		if (dir < 0)
			continue;
		if (!now)
			now = bpf_ktime_get_ns();
		if (now >= s->expires_ns)
			continue;
		return (int)(i * NP_TRACE_DIRS + (__u32)dir + 1);
	}
	return 0;
}

static __always_inline void np_trace_count_key(void *map, __u32 slot, __u32 dir, __u32 stage, __u32 value,
					       __u32 err)
{
	struct np_trace_key tk = {.slot = (__u8)slot, .dir = (__u8)dir, .stage = (__u8)stage, .value = value};
	__u64 *n = bpf_map_lookup_elem(map, &tk);
	if (n) {
		*n += 1;
		return;
	}
	__u64 one = 1;
	/* another CPU's insert of the same key: that CPU's value is its own (per-CPU) */
	long r = bpf_map_update_elem(map, &tk, &one, BPF_NOEXIST);
	if (r == -17 /* EEXIST */) {
		n = bpf_map_lookup_elem(map, &tk);
		if (n)
			*n += 1;
	} else if (r) {
		np_trace_error(err);
	}
}

/* A packet of k (src/dst as it travels) at stage: counted for its slot and direction,
 * with the device (0: none). Returns slot * NP_TRACE_DIRS + dir + 1, or 0 (no trace).
 * Global: verified once. */
__attribute__((noinline)) int np_trace_packet(struct flow_key *k, __u32 stage, __u32 ifindex, __u32 len)
{
	if (!k || stage >= NP_TRACE_STAGE_MAX)
		return 0;
	int m = np_trace_find(k, 0);
	if (!m)
		return 0;
	__u32 slot = (__u32)(m - 1) / NP_TRACE_DIRS;
	__u32 dir = (__u32)(m - 1) % NP_TRACE_DIRS;
	__u32 idx = (__u32)(m - 1) * NP_TRACE_STAGE_MAX + stage;
	struct np_counter *c = bpf_map_lookup_elem(&trace_counts, &idx);
	if (c) {
		c->packets += 1;
		c->bytes += len;
	}
	if (ifindex)
		np_trace_count_key(&trace_ifaces, slot, dir, stage, ifindex, NP_TRACE_ERR_IFACES);
	return m;
}

#endif /* NETPROBE_TRACE_H */
