/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP handshake timing at TC (passive RTT): at each interface, the time from a SYN to
 * its SYN/ACK (the round trip to the server and back, seen from here) and from the
 * SYN/ACK to the client's first ACK (to the client and back). One ring record per
 * completed handshake; a retransmitted SYN or SYN/ACK makes the handshake untimed
 * (Karn's rule: which copy was answered is unknown).
 *
 * Cost: SYN and SYN/ACK packets read and write one slot of a direct-mapped array
 * (tcp_handshakes, abi.h: an inlined lookup, no lock, nothing allocated, so a SYN flood
 * costs a hash and a store per packet); the first ACK-only packets of a connection (at
 * most 2 per CPU: flow_packets, the per-CPU count of the connection its flow entry holds,
 * is at most the connection's total count; a 5-tuple reused before its idle entry was
 * removed counts from the new connection's SYN, np_flow_mark_conn) read one slot; every
 * other packet pays a test of its flags and count. */
#ifndef NETPROBE_HANDSHAKE_H
#define NETPROBE_HANDSHAKE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netprobe/abi.h>
#include "parse.h"
#include "maps.h"
#include "security.h"

const volatile __u32 np_enable_handshakes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct np_hs_slot);
	__uint(max_entries, NP_HS_SLOTS);
} tcp_handshakes SEC(".maps");

/* 256 KiB: 4096 records of 64 bytes per collection interval */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} handshake_events SEC(".maps");

/* k: the handshake key of a packet from the client (reverse = 0) or from the server. */
static __always_inline void np_hs_key(struct flow_key *k, const struct np_packet *pkt, int reverse)
{
	if (reverse) {
		k->src_ip = pkt->key.dst_ip;
		k->dst_ip = pkt->key.src_ip;
		k->src_port = pkt->key.dst_port;
		k->dst_port = pkt->key.src_port;
	} else {
		k->src_ip = pkt->key.src_ip;
		k->dst_ip = pkt->key.dst_ip;
		k->src_port = pkt->key.src_port;
		k->dst_port = pkt->key.dst_port;
	}
	k->proto = pkt->key.proto;
	k->family = pkt->key.family;
	k->direction = 0;
	k->encap = 0;
	k->ifindex = pkt->key.ifindex;
}

static __always_inline int np_hs_key_eq(const struct flow_key *a, const struct flow_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4] && x[5] == y[5] &&
	       x[6] == y[6] && x[7] == y[7] && x[8] == y[8] && x[9] == y[9] && x[10] == y[10];
}

/* The slot of k's handshake when it holds k's handshake (in progress: younger than
 * NP_HS_LIVE_NS), else 0; *slot_out is k's slot either way (0 if the lookup failed). */
static __always_inline struct np_hs_slot *np_hs_find(const struct flow_key *k, __u64 now, struct np_hs_slot **slot_out)
{
	__u32 idx = np_hs_hash(k);
	struct np_hs_slot *s = bpf_map_lookup_elem(&tcp_handshakes, &idx);
	*slot_out = s;
	if (!s || s->state == NP_HS_FREE || now - s->syn_ns >= NP_HS_LIVE_NS || !np_hs_key_eq(&s->key, k))
		return 0;
	return s;
}

/* Global function: verified once on its own. */
__attribute__((noinline)) int np_handshake_packet(const struct np_packet *pkt)
{
	if (!pkt)
		return 0;
	__u8 fl = pkt->tcp_flags;
	struct flow_key k = {};
	struct np_hs_slot *slot = 0;
	__u64 now = bpf_ktime_get_ns();
	if ((fl & (NP_TCP_SYN | NP_TCP_ACK | NP_TCP_RST)) == NP_TCP_SYN) {
		np_hs_key(&k, pkt, 0);
		struct np_hs_slot *v = np_hs_find(&k, now, &slot);
		if (v) {
			v->state = NP_HS_INVALID; /* a retransmitted SYN */
			return 0;
		}
		if (!slot)
			return 0;
		/* another handshake still in progress loses its slot: not timed, counted */
		if ((slot->state == NP_HS_SYN || slot->state == NP_HS_SYNACK) && now - slot->syn_ns < NP_HS_LIVE_NS)
			np_count_map_error(NP_MAP_TCP_HANDSHAKES);
		__builtin_memcpy(&slot->key, &k, sizeof(k));
		slot->syn_ns = now;
		slot->synack_ns = 0;
		slot->state = NP_HS_SYN;
		return 0;
	}
	if ((fl & (NP_TCP_SYN | NP_TCP_ACK | NP_TCP_RST)) == (NP_TCP_SYN | NP_TCP_ACK)) {
		np_hs_key(&k, pkt, 1);
		struct np_hs_slot *v = np_hs_find(&k, now, &slot);
		if (!v)
			return 0;
		if (v->state == NP_HS_SYN) {
			v->synack_ns = now;
			v->state = NP_HS_SYNACK;
		} else {
			v->state = NP_HS_INVALID; /* a retransmitted SYN/ACK */
		}
		return 0;
	}
	/* an ACK without SYN or RST: the client's first ACK completes a handshake */
	np_hs_key(&k, pkt, 0);
	struct np_hs_slot *v = np_hs_find(&k, now, &slot);
	if (!v)
		return 0;
	if (v->state == NP_HS_SYNACK) {
		struct np_hs_event *e = bpf_ringbuf_reserve(&handshake_events, sizeof(*e), 0);
		if (e) {
			__builtin_memcpy(&e->key, &k, sizeof(k));
			e->pad = 0;
			e->server_ns = v->synack_ns - v->syn_ns;
			e->client_ns = now - v->synack_ns;
			bpf_ringbuf_submit(e, 0);
		} else {
			np_count_map_error(NP_MAP_HANDSHAKE_EVENTS);
		}
	}
	/* else: retransmitted (untimed), or the client ACKs a SYN/ACK this interface did not
	 * see (an asymmetric path): never timed here */
	v->state = NP_HS_FREE;
	return 0;
}

/* After the packet was accounted in its flow entry (flow_packets: the count on this CPU
 * of the connection the entry holds, 0 when the packet has no entry). */
static __always_inline void np_handshake_check(const struct np_packet *pkt, __u64 flow_packets)
{
	if (!np_enable_handshakes || pkt->key.proto != NP_IPPROTO_TCP)
		return;
	__u8 fl = pkt->tcp_flags;
	if ((fl & NP_TCP_SYN) || ((fl & (NP_TCP_ACK | NP_TCP_RST)) == NP_TCP_ACK && flow_packets >= 1 && flow_packets <= 2))
		np_handshake_packet(pkt);
}

#endif /* NETPROBE_HANDSHAKE_H */
