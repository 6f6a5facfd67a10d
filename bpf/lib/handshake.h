/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP handshake timing at TC (passive RTT): at each interface, the time from a SYN to
 * its SYN/ACK (the round trip to the server and back, seen from here) and from the
 * SYN/ACK to the client's first ACK (to the client and back). One ring record per
 * completed handshake; a retransmitted SYN or SYN/ACK makes the handshake untimed
 * (Karn's rule: which copy was answered is unknown).
 *
 * Cost: SYN and SYN/ACK packets do one LRU update or lookup; the first ACK-only
 * packets of a flow (at most 2 per CPU: flow_packets, the per-CPU count of the flow
 * entry, is at most the flow's total count) do one lookup; every other packet pays a
 * test of its flags and count. */
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
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, struct np_hs_value);
	__uint(max_entries, 16384);
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

/* Global function: verified once on its own. */
__attribute__((noinline)) int np_handshake_packet(const struct np_packet *pkt)
{
	if (!pkt)
		return 0;
	__u8 fl = pkt->tcp_flags;
	struct flow_key k = {};
	if ((fl & (NP_TCP_SYN | NP_TCP_ACK | NP_TCP_RST)) == NP_TCP_SYN) {
		np_hs_key(&k, pkt, 0);
		struct np_hs_value *v = bpf_map_lookup_elem(&tcp_handshakes, &k);
		if (v) {
			v->state = NP_HS_INVALID; /* a retransmitted SYN */
			return 0;
		}
		struct np_hs_value init = {.syn_ns = bpf_ktime_get_ns(), .state = NP_HS_SYN};
		if (bpf_map_update_elem(&tcp_handshakes, &k, &init, BPF_ANY) != 0)
			np_count_map_error(NP_MAP_TCP_HANDSHAKES);
		return 0;
	}
	if ((fl & (NP_TCP_SYN | NP_TCP_ACK | NP_TCP_RST)) == (NP_TCP_SYN | NP_TCP_ACK)) {
		np_hs_key(&k, pkt, 1);
		struct np_hs_value *v = bpf_map_lookup_elem(&tcp_handshakes, &k);
		if (!v)
			return 0;
		if (v->state == NP_HS_SYN) {
			v->synack_ns = bpf_ktime_get_ns();
			v->state = NP_HS_SYNACK;
		} else {
			v->state = NP_HS_INVALID; /* a retransmitted SYN/ACK */
		}
		return 0;
	}
	/* an ACK without SYN or RST: the client's first ACK completes a handshake */
	np_hs_key(&k, pkt, 0);
	struct np_hs_value *v = bpf_map_lookup_elem(&tcp_handshakes, &k);
	if (!v)
		return 0;
	if (v->state == NP_HS_SYNACK) {
		__u64 now = bpf_ktime_get_ns();
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
	bpf_map_delete_elem(&tcp_handshakes, &k);
	return 0;
}

/* After the packet was accounted in its flow entry (flow_packets: the entry's count on
 * this CPU, 0 when the packet has no entry). */
static __always_inline void np_handshake_check(const struct np_packet *pkt, __u64 flow_packets)
{
	if (!np_enable_handshakes || pkt->key.proto != NP_IPPROTO_TCP)
		return;
	__u8 fl = pkt->tcp_flags;
	if ((fl & NP_TCP_SYN) || ((fl & (NP_TCP_ACK | NP_TCP_RST)) == NP_TCP_ACK && flow_packets >= 1 && flow_packets <= 2))
		np_handshake_packet(pkt);
}

#endif /* NETPROBE_HANDSHAKE_H */
