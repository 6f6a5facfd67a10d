/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Threat intelligence, datapath side: the addresses of every packet checked against
 * the indicator prefixes of the configured feeds (an LPM trie), counted per feed, and
 * dropped when a matching indicator's action is block and mitigation is on.
 *
 * Cost: a trie lookup walks up to 128 bits of key per node, ~100 ns with a million
 * prefixes, so a packet of a flow in flow_stats reuses the verdict its CPU's copy of
 * the entry cached (np_flow_stats.intel_*), valid for one generation of the indicator
 * set: two trie lookups per flow, CPU and reload. Packets without a flow entry (a full
 * table, flows off) look the trie up each time. A build without feeds (np_enable_intel
 * 0) has none of this.
 *
 * Hot reload: user space builds the next trie, stores it in intel_ips[0] (one pointer
 * swap; a packet sees the old or the new trie, never none) and then bumps
 * intel_state.gen, which makes every cached verdict stale.
 *
 * Addresses resolved from domain indicators (DNS answers, for their TTL) are exact
 * addresses in a small hash, looked up after a trie miss only while it has entries;
 * each change bumps the generation too. */
#ifndef NETPROBE_INTEL_H
#define NETPROBE_INTEL_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netprobe/abi.h>
#include "maps.h"
#include "security.h"

const volatile __u32 np_enable_intel = 0;

struct np_intel_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	/* sizes, not BTF types: clang emits only a forward declaration of a type that a
	 * map-in-map template names and libbpf then cannot size it */
	__uint(key_size, sizeof(struct np_block_key));
	__uint(value_size, sizeof(struct np_intel_value));
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct np_intel_trie);
} intel_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct np_intel_state);
	__uint(max_entries, 1);
} intel_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, union np_addr);
	__type(value, struct np_intel_value);
	__uint(max_entries, NP_INTEL_RESOLVED_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} intel_resolved SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_intel_counters);
	__uint(max_entries, NP_INTEL_FEEDS_MAX);
} intel_stats SEC(".maps");

static __always_inline struct np_intel_value *np_intel_find(void *trie, const union np_addr *a)
{
	struct np_block_key k = { .prefixlen = 128 };
	__builtin_memcpy(&k.addr, a, sizeof(k.addr));
	return bpf_map_lookup_elem(trie, &k);
}

/* An address's indicator: the trie's prefixes, else (when there are any) the addresses
 * resolved from domain indicators. */
static __always_inline struct np_intel_value *np_intel_lookup(void *trie, const union np_addr *a, int resolved)
{
	struct np_intel_value *v = trie ? np_intel_find(trie, a) : NULL;
	if (!v && resolved)
		v = bpf_map_lookup_elem(&intel_resolved, a);
	return v;
}

/* The verdict for a packet's two addresses: NP_INTEL_MATCH_* bits (DONE always set),
 * the matched feed in *feed. */
static __always_inline __u8 np_intel_evaluate(const struct np_packet *pkt, __u16 *feed)
{
	__u32 zero = 0;
	__u8 m = NP_INTEL_MATCH_DONE;
	void *trie = bpf_map_lookup_elem(&intel_ips, &zero);
	struct np_intel_state *st = bpf_map_lookup_elem(&intel_state, &zero);
	int resolved = st && st->resolved;
	if (!trie && !resolved)
		return m;
	struct np_intel_value *d = np_intel_lookup(trie, &pkt->key.dst_ip, resolved);
	if (d) {
		m |= NP_INTEL_MATCH_DST;
		*feed = d->feed;
		if (d->action == NP_INTEL_BLOCK)
			m |= NP_INTEL_MATCH_BLOCK;
	}
	struct np_intel_value *s = np_intel_lookup(trie, &pkt->key.src_ip, resolved);
	if (s) {
		m |= NP_INTEL_MATCH_SRC;
		*feed = s->feed;
		if (s->action == NP_INTEL_BLOCK)
			m |= NP_INTEL_MATCH_BLOCK;
	}
	return m;
}

static __always_inline __u16 np_intel_gen(void)
{
	__u32 zero = 0;
	struct np_intel_state *st = bpf_map_lookup_elem(&intel_state, &zero);
	return st ? (__u16)st->gen : 0;
}

/* Announces a match on the security ring (the security stage opens the event). */
static __always_inline void np_intel_announce(const struct np_packet *pkt, __u8 match, __u16 feed, __u64 len)
{
	if (!np_enable_security)
		return;
	struct np_sec_event *e = np_sec_reserve(pkt, NP_SEC_INTEL, (__u32)len);
	if (!e)
		return;
	e->tcp_flags = pkt->tcp_flags;
	e->inner_proto = match;
	e->inner_src_port = feed;
	np_sec_submit(e);
}

/* Counts a matched packet for its feed; returns 1 when it is to be dropped. */
static __always_inline int np_intel_account(__u8 match, __u16 feed, __u32 segs, __u64 len)
{
	if (!(match & (NP_INTEL_MATCH_SRC | NP_INTEL_MATCH_DST)))
		return 0;
	__u32 idx = feed;
	struct np_intel_counters *c = bpf_map_lookup_elem(&intel_stats, &idx);
	int drop = (match & NP_INTEL_MATCH_BLOCK) && np_mitigate == NP_MITIGATE_ON;
	if (c) {
		if (match & NP_INTEL_MATCH_SRC) {
			c->from_packets += segs;
			c->from_bytes += len;
		} else {
			c->to_packets += segs;
			c->to_bytes += len;
		}
		if (drop) {
			c->dropped_packets += segs;
			c->dropped_bytes += len;
		}
	}
	return drop;
}

/* A packet of a flow with an entry: the cached verdict, refreshed when stale (then
 * announced when it matches). Returns 1 when the packet is to be dropped. */
static __always_inline int np_intel_flow(const struct np_packet *pkt, struct np_flow_stats *fs, __u32 segs, __u64 len)
{
	__u16 gen = np_intel_gen();
	if (fs->intel_gen != gen || !(fs->intel_match & NP_INTEL_MATCH_DONE)) {
		__u16 feed = 0;
		fs->intel_match = np_intel_evaluate(pkt, &feed);
		fs->intel_feed = feed;
		fs->intel_gen = gen;
		if (fs->intel_match & (NP_INTEL_MATCH_SRC | NP_INTEL_MATCH_DST))
			np_intel_announce(pkt, fs->intel_match, feed, len);
	}
	return np_intel_account(fs->intel_match, fs->intel_feed, segs, len);
}

/* A packet with flows off (no flow entry to cache the verdict in): looked up each
 * time, counted, not announced. */
static __always_inline int np_intel_packet(const struct np_packet *pkt, __u32 segs, __u64 len)
{
	__u16 feed = 0;
	__u8 m = np_intel_evaluate(pkt, &feed);
	return np_intel_account(m, feed, segs, len);
}

#endif /* NETPROBE_INTEL_H */
