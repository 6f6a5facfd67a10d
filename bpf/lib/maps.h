/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps of the datapath programs, and the helpers that update them. Map types are
 * chosen for the per-packet cost:
 *  - counters indexed by a small dense enum are PERCPU_ARRAY: the lookup is
 *    inlined by the JIT and the increment needs no atomic;
 *  - counters keyed by interface are PERCPU_ARRAY slots indexed by ifindex for
 *    ifindex < NP_DEV_SLOTS (an inlined lookup instead of a ~20 ns hash lookup),
 *    with a PERCPU_HASH for larger ifindexes; per-CPU values avoid atomics and
 *    cache-line bouncing between CPUs;
 *  - flow_stats is PERCPU_HASH, preallocated (not LRU): nothing is silently
 *    evicted; a full table is an insert failure we count. User space reads it
 *    with batch lookups every interval and removes only idle flows, each with
 *    BPF_MAP_LOOKUP_AND_DELETE_ELEM (the final values are not lost).
 *    Preallocation makes inserts ~30% cheaper and deletes ~15x cheaper than
 *    BPF_F_NO_PREALLOC (docs/benchmarks.md); the price is that a deleted element
 *    is recycled at once, so a packet of an idle flow racing its deletion on
 *    another CPU could be credited to the flow that reuses the element.
 */
#ifndef NETPROBE_MAPS_H
#define NETPROBE_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netprobe/abi.h>
#include "lookup.h"

/* index: ifindex * NP_DIR_MAX + direction, for ifindex < NP_DEV_SLOTS */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_counter);
	__uint(max_entries, NP_DEV_SLOTS * NP_DIR_MAX);
} tc_device_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct tc_device_key);
	__type(value, struct np_counter);
	__uint(max_entries, 4096);
} tc_device_stats_hi SEC(".maps");

/* index: ifindex, for ifindex < NP_DEV_SLOTS */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_counter);
	__uint(max_entries, NP_DEV_SLOTS);
} xdp_device_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct tc_device_key);
	__type(value, struct np_counter);
	__uint(max_entries, 4096);
} xdp_device_stats_hi SEC(".maps");

/* index: direction * NP_PROTO_MAX + enum np_proto_class */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_counter);
	__uint(max_entries, NP_DIR_MAX * NP_PROTO_MAX);
} packet_stats SEC(".maps");

/* index: direction * NP_MAL_REASON_MAX + enum np_malformed_reason */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_DIR_MAX * NP_MAL_REASON_MAX);
} malformed_stats SEC(".maps");

/* index: enum np_map_id; failed inserts (the packet is still counted everywhere
 * else, only the per-key record is missing) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_MAP_ID_MAX);
} map_errors SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct flow_key);
	__type(value, struct np_flow_stats);
	__uint(max_entries, 65536); /* user space may resize before load */
} flow_stats SEC(".maps");

/* First fragment's ports, so later fragments join their flow. LRU: an entry is
 * only useful for the lifetime of one datagram; old ones may be evicted freely. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct np_frag_key);
	__type(value, struct np_frag_ports);
	__uint(max_entries, 8192);
} frag_track SEC(".maps");

/* ICMP/ICMPv6 messages by direction, family, type, code (bounded; see abi.h) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct np_icmp_key);
	__type(value, struct np_counter);
	__uint(max_entries, NP_ICMP_STATS_MAX);
} icmp_stats SEC(".maps");

static __always_inline void np_count_map_error(__u32 map_id)
{
	__u64 *v = bpf_map_lookup_elem(&map_errors, &map_id);
	if (v)
		*v += 1;
}

/* Add packets/bytes to a per-CPU counter keyed in a hash map, creating the entry
 * on first use. */
static __always_inline void np_counter_add(void *map, const void *key, __u64 packets, __u64 len, __u32 map_id)
{
	struct np_counter init = { .packets = packets, .bytes = len };
	struct np_counter *c = 0;
	enum np_lookup_result r = np_lookup_or_init(map, key, &init, (void **)&c);
	if (r == NP_FOUND && c) {
		c->packets += packets;
		c->bytes += len;
	} else if (r == NP_FAILED) {
		np_count_map_error(map_id);
	}
}

/* Count packets/bytes for (ifindex, direction) in an array slot or, for a large
 * ifindex, in the fallback hash. */
static __always_inline void np_device_add(void *array, void *hash, __u32 ifindex, __u32 dir, __u32 per_if,
					  __u64 packets, __u64 len, __u32 map_id)
{
	if (ifindex < NP_DEV_SLOTS) {
		__u32 idx = ifindex * per_if + dir;
		struct np_counter *c = bpf_map_lookup_elem(array, &idx);
		if (c) {
			c->packets += packets;
			c->bytes += len;
		}
		return;
	}
	struct tc_device_key k = { .ifindex = ifindex, .direction = dir };
	np_counter_add(hash, &k, packets, len, map_id);
}

#endif /* NETPROBE_MAPS_H */
