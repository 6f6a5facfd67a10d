// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* NetProbe datapath: XDP (driver-level receive counters, and the blocklist when
 * mitigation is on) and TC ingress/egress (interface, protocol, malformed and
 * per-flow accounting, security records). TC returns "continue": it observes. A
 * packet is dropped only when its source matches a blocklist rule and mitigation is on
 * (--mitigate=on): by XDP, or on interfaces without XDP by the *_block TC ingress
 * programs; in dry-run the match is counted and the packet passes. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netprobe/abi.h>
#include "parse.h"
#include "maps.h"
#include "security.h"
#include "intel.h"
#include "names.h"
#include "decap.h"
#include "handshake.h"
#include "udp_timing.h"
#include "trace.h"
#include "clock.h"

#define NP_TC_ACT_UNSPEC (-1) /* tcx: continue with the next program; clsact: default action */
#define NP_XDP_PASS 2
#define NP_XDP_DROP 1
#define NP_PULL_MAX 512

/* Set by user space before load. */
const volatile __u32 np_enable_flows = 1;

/* Set by user space while flow_stats is under pressure (DatapathSource: filled past 3/4,
 * counting the connection attempts aggregated meanwhile). Then a TCP packet without an
 * entry that only tries to open (a SYN) or refuses (a RST) is counted in the aggregate
 * entry of its 5-tuple with the initiator's port 0, not in an entry of its own: a
 * random-port SYN flood keeps two entries instead of filling the table (which left every
 * later flow without an entry, and made each collection read a full table). */
volatile __u32 np_flow_pressure SEC(".data.pressure") = 0;

static __always_inline void np_count_protocols(__u32 dir, __u32 mask, __u32 segs, __u64 len)
{
#pragma unroll
	for (__u32 cls = 0; cls < NP_PROTO_MAX; cls++) {
		if (!(mask & (1u << cls)))
			continue;
		__u32 idx = dir * NP_PROTO_MAX + cls;
		struct np_counter *c = bpf_map_lookup_elem(&packet_stats, &idx);
		if (c) {
			c->packets += segs;
			c->bytes += len;
		}
	}
}

static __always_inline void np_count_malformed(__u32 dir, __u32 reason, __u32 segs)
{
	__u32 idx = dir * NP_MAL_REASON_MAX + reason;
	if (idx >= NP_DIR_MAX * NP_MAL_REASON_MAX)
		return;
	__u64 *v = bpf_map_lookup_elem(&malformed_stats, &idx);
	if (v)
		*v += segs;
}

static __always_inline void np_frag_key(struct np_frag_key *fk, const struct np_packet *pkt)
{
	__builtin_memcpy(&fk->src_ip, &pkt->key.src_ip, sizeof(fk->src_ip));
	__builtin_memcpy(&fk->dst_ip, &pkt->key.dst_ip, sizeof(fk->dst_ip));
	fk->id = pkt->frag_id;
	fk->proto = pkt->key.family == 4 ? pkt->key.proto : 0;
	fk->family = pkt->key.family;
	fk->reserved = 0;
}

/* First fragments remember their ports; later fragments borrow them. A later
 * fragment whose first fragment was not seen (reordering, loss) keeps ports 0. */
static __always_inline void np_track_fragment(struct np_packet *pkt)
{
	struct np_frag_key fk;
	np_frag_key(&fk, pkt);
	if (pkt->frag == NP_FRAG_FIRST) {
		struct np_frag_ports fp = {
			.src_port = pkt->key.src_port,
			.dst_port = pkt->key.dst_port,
			.proto = pkt->key.proto,
		};
		if (bpf_map_update_elem(&frag_track, &fk, &fp, BPF_ANY))
			np_count_map_error(NP_MAP_FRAG_TRACK);
		return;
	}
	struct np_frag_ports *fp = bpf_map_lookup_elem(&frag_track, &fk);
	if (fp) {
		pkt->key.src_port = fp->src_port;
		pkt->key.dst_port = fp->dst_port;
		pkt->key.proto = fp->proto;
	}
}

/* A new connection on the 5-tuple of key, whose entry holds an earlier one: every CPU's
 * copy gets its conn_mark (abi.h), so that the checks of a connection's first packets
 * (np_handshake_check, np_names_check) see this one's on whichever CPU they arrive - the
 * client's first ACK often on another CPU than its SYN, where the earlier connection's
 * count would skip it. The copies are those of CPUs 0 .. nr_cpu_ids - 1 (the lookup of a
 * higher one is NULL: the loop ends there). Written into other CPUs' copies while they
 * may update theirs: only this function writes conn_mark. A global function: verified
 * once, on its own. */
__attribute__((noinline)) int np_flow_mark_conn(const struct flow_key *key)
{
	if (!key)
		return 0;
	for (__u32 cpu = 0; cpu < NP_MAX_CPUS; cpu++) {
		struct np_flow_stats *c = bpf_map_lookup_percpu_elem(&flow_stats, key, cpu);
		if (!c)
			break;
		c->conn_mark = NP_CONN_MARK_SET | ((__u16)c->packets & NP_CONN_MARK_MASK);
	}
	return 0;
}

/* The packets of the connection now on fs's 5-tuple on this CPU: the entry's count, or
 * since its conn_mark (modulo 2^15: past that a first-packet check may run again, and
 * finds nothing to do). */
static __always_inline __u64 np_conn_packets(const struct np_flow_stats *fs)
{
	__u16 mark = fs->conn_mark;
	if (!mark)
		return fs->packets;
	return ((__u16)fs->packets - mark) & NP_CONN_MARK_MASK;
}

static __always_inline void np_flow_add(struct np_flow_stats *fs, __u32 segs, __u64 len, __u8 flags, __u64 now)
{
	fs->packets += segs;
	fs->bytes += len;
	if (!fs->first_seen_ns)
		fs->first_seen_ns = now; /* first packet of this flow on this CPU */
	fs->last_seen_ns = now;
	fs->tcp_flags |= flags;
}

/* Which port of a TCP packet that tries to open (SYN without ACK: the sender initiates,
 * 1: its source port) or refuses (RST: it answers the receiver, 2: the destination port)
 * its aggregate entry leaves out; 0 for any other packet. */
static __always_inline int np_flow_aggregate_side(const struct np_packet *pkt)
{
	if (pkt->key.proto != NP_IPPROTO_TCP)
		return 0;
	__u8 fl = pkt->tcp_flags;
	if ((fl & (NP_TCP_SYN | NP_TCP_ACK | NP_TCP_RST)) == NP_TCP_SYN)
		return 1;
	return fl & NP_TCP_RST ? 2 : 0;
}

/* The key is changed in place around the map operations (the aggregate key is the
 * packet's with one port 0): a second flow_key on the stack took the programs with
 * threat intel over the 512-byte stack limit. */
static __always_inline void np_flow_set_port(struct np_packet *pkt, int side, __u16 port)
{
	if (side == 1)
		pkt->key.src_port = port;
	else
		pkt->key.dst_port = port;
}

/* Returns 1 when the packet is to be dropped (threat intel: a block indicator with
 * mitigation on); it is counted in its flow all the same, as the device counted it.
 * *flow_packets: the packet count on this CPU, after this packet, of the connection its
 * flow entry now holds (np_conn_packets; 0: the packet has no entry). */
static __always_inline int np_account_flow(struct np_packet *pkt, __u32 segs, __u64 len, __u64 *flow_packets)
{
	/* CLOCK_MONOTONIC at tick resolution from jiffies (bpf/lib/clock.h): ~1 ns
	 * instead of a TSC read (~28 ns) or the coarse clock's helper (~10 ns); flow
	 * times need no better. */
	__u64 now = np_now_coarse();
	struct np_flow_stats *fs = bpf_map_lookup_elem(&flow_stats, &pkt->key);
	if (fs) {
		/* A SYN on a quiet entry: a new connection on a reused 5-tuple. */
		if ((np_enable_handshakes || np_enable_names) && pkt->key.proto == NP_IPPROTO_TCP &&
		    (pkt->tcp_flags & (NP_TCP_SYN | NP_TCP_ACK)) == NP_TCP_SYN && now - fs->last_seen_ns >= NP_FLOW_REUSE_IDLE_NS)
			np_flow_mark_conn(&pkt->key);
		np_flow_add(fs, segs, len, pkt->tcp_flags, now);
		*flow_packets = np_conn_packets(fs);
		return np_enable_intel ? np_intel_flow(pkt, fs, segs, len) : 0;
	}
	/* Under pressure, a connection attempt or refusal goes to its aggregate entry. */
	const int side = np_flow_pressure ? np_flow_aggregate_side(pkt) : 0;
	const __u16 port = side == 1 ? pkt->key.src_port : pkt->key.dst_port;
	const int aggregated = side != 0;
	if (aggregated) {
		np_flow_set_port(pkt, side, 0);
		fs = bpf_map_lookup_elem(&flow_stats, &pkt->key);
		np_flow_set_port(pkt, side, port);
		if (fs) {
			__u64 prev_seen = fs->last_seen_ns;
			np_flow_add(fs, segs, len, pkt->tcp_flags, now);
			if (np_enable_security)
				np_sec_aggregated(pkt, fs, len, prev_seen);
			return np_enable_intel ? np_intel_flow(pkt, fs, segs, len) : 0;
		}
	}
	struct np_flow_stats init = {
		.packets = segs,
		.bytes = len,
		.first_seen_ns = now,
		.last_seen_ns = now,
		.tcp_flags = pkt->tcp_flags,
	};
	/* The new entry carries its threat-intel verdict from the start (the generation
	 * read before the trie: a reload in between leaves the verdict stale, not wrong). */
	if (np_enable_intel) {
		__u16 feed = 0;
		init.intel_gen = np_intel_gen();
		init.intel_match = np_intel_evaluate(pkt, &feed);
		init.intel_feed = feed;
	}
	/* The lookup above missed: insert at once (no second lookup); another CPU may
	 * have inserted the key meanwhile (-EEXIST), then add to its entry. */
	if (aggregated)
		np_flow_set_port(pkt, side, 0);
	long err = bpf_map_update_elem(&flow_stats, &pkt->key, &init, BPF_NOEXIST);
	int in_table = err == 0;
	if (err == -NP_EEXIST)
		fs = bpf_map_lookup_elem(&flow_stats, &pkt->key);
	if (aggregated)
		np_flow_set_port(pkt, side, port);
	if (fs) {
		np_flow_add(fs, segs, len, pkt->tcp_flags, now);
		if (aggregated) {
			if (np_enable_security)
				np_sec_new_flow(pkt, len, 0);
		} else {
			*flow_packets = fs->packets;
		}
		return np_enable_intel ? np_intel_flow(pkt, fs, segs, len) : 0;
	}
	if (in_table && !aggregated)
		*flow_packets = segs;
	else if (!in_table)
		np_count_map_error(NP_MAP_FLOW_STATS);
	/* Not in the flow table: a new flow, one whose idle entry user space removed, or
	 * one the full table could not take. The security side decides which it is
	 * (np_sec_new_flow announces a flow once, full table or not). An aggregated
	 * packet's 5-tuple has no entry of its own: announced like one the table could not
	 * take (*flow_packets stays 0: the packet has no entry). */
	if (np_enable_security)
		np_sec_new_flow(pkt, len, in_table && !aggregated);
	if (!np_enable_intel)
		return 0;
	/* announced when the entry exists (a full table under a flood must not turn into a
	 * ring record per packet); counted either way */
	if (in_table && (init.intel_match & (NP_INTEL_MATCH_SRC | NP_INTEL_MATCH_DST)))
		np_intel_announce(pkt, init.intel_match, init.intel_feed, len);
	return np_intel_account(init.intel_match, init.intel_feed, segs, len);
}

/* Packets are wire packets: a GSO/GRO skb (TSO on transmit, GRO on receive) counts
 * its gso_segs segments, as a NIC's counters and TCP's OutSegs/InSegs count them,
 * and its bytes are the segments' bytes: the headers up to the TCP/UDP payload are
 * repeated in each segment (hdr_len; 0 when the packet was not parsed that far, then
 * the skb's bytes). A plain skb is one packet of skb->len bytes. */
static __always_inline __u64 np_wire_bytes(__u64 len, __u32 segs, __u32 hdr_len)
{
	return segs > 1 ? len + (__u64)(segs - 1) * hdr_len : len;
}

/* A tunnel packet (bpf/lib/decap.h) after its outer flow was accounted: overlay_stats,
 * and the flow of the inner packet (d->inner.key with the ifindex and direction of the
 * outer one; bytes: the inner IP datagram). outer_len: the tunnel packet's wire bytes.
 * Returns 1 when the packet is to be dropped (threat intel: an inner address is a block
 * indicator, mitigation on). Global function: verified once on its own. */
__attribute__((noinline)) int np_decap_account(struct np_decap *d, __u32 segs, __u64 outer_len)
{
	if (!d)
		return 0;
	__u32 encap = d->encap;
	__u32 dir = d->inner.key.direction;
	if (encap == NP_ENCAP_NONE || encap >= NP_ENCAP_MAX || dir >= NP_DIR_MAX)
		return 0;
	__u32 idx = dir * NP_ENCAP_MAX + encap;
	struct np_overlay_counter *c = bpf_map_lookup_elem(&overlay_stats, &idx);
	if (d->status != NP_DECAP_OK) {
		if (c)
			c->errors += segs;
		return 0;
	}
	__u64 len = np_wire_bytes(d->len, segs, d->inner_hdr);
	if (c) {
		c->packets += segs;
		c->bytes += outer_len;
		c->inner_bytes += len;
	}
	if (!d->inner.has_l3)
		return 0; /* ARP and other non-IP frames in an overlay: no flow */
	if (d->inner.frag != NP_FRAG_NONE)
		np_track_fragment(&d->inner);
	__u64 flow_packets = 0;
	return np_account_flow(&d->inner, segs, len, &flow_packets);
}

/* Parse the skb into pkt. Global (non-inlined) functions: the verifier checks each
 * once on its own instead of once per call site and per path of the caller, which
 * keeps the programs far below the complexity limit. */
__attribute__((noinline)) int np_parse_skb(struct __sk_buff *skb, struct np_packet *pkt)
{
	if (!pkt)
		return NP_MAL_NONE;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	return np_parse_frame(data, data_end, skb->len, pkt);
}

/* A layer-3 device's skb: no link-layer header, the device set skb->protocol. */
__attribute__((noinline)) int np_parse_skb_l3(struct __sk_buff *skb, struct np_packet *pkt)
{
	if (!pkt)
		return NP_MAL_NONE;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	return np_parse_l3_packet(data, data_end, skb->len, bpf_ntohs((__u16)skb->protocol), pkt);
}

#define NP_TC_ACT_SHOT 2

/* block: this ingress program enforces the blocklist itself (interfaces without the
 * XDP program: layer-3 devices, and virtual devices in --xdp-mode=auto). A compile-time
 * constant of each program; with mitigation off (read-only data) the check is removed
 * at load. */
static __always_inline int np_tc_handle(struct __sk_buff *skb, __u32 dir, const bool l3, const bool block)
{
	__u64 len = skb->len;
	__u32 segs = skb->gso_segs;
	if (segs == 0)
		segs = 1;
	/* An 802.1Q/802.1ad tag the stack moved out of the frame (VLAN offload) is not
	 * in skb->len. On receive the device counted it before the stack untagged the
	 * frame, so count it too; on transmit the tag is added after us (by the NIC or
	 * the device), as the device's own counters see it. */
	__u32 offloaded_vlan = l3 ? 0 : skb->vlan_present;
	__u32 vlan_len = offloaded_vlan && dir == NP_DIR_INGRESS ? 4 : 0;
	len += vlan_len;
	__u32 ifindex = skb->ifindex;

	struct np_packet pkt = {};
	int reason = l3 ? np_parse_skb_l3(skb, &pkt) : np_parse_skb(skb, &pkt);

	/* Headers may sit beyond the linear part of a non-linear skb: pull and
	 * parse again before calling the packet truncated. */
	if (reason != NP_MAL_NONE && (__u64)(skb->data_end - skb->data) < len) {
		__u32 want = len < NP_PULL_MAX ? len : NP_PULL_MAX;
		if (bpf_skb_pull_data(skb, want) == 0) {
			__builtin_memset(&pkt, 0, sizeof(pkt));
			reason = l3 ? np_parse_skb_l3(skb, &pkt) : np_parse_skb(skb, &pkt);
		}
	}

	/* A tunnel packet: its inner packet is parsed before the counting (a GSO packet of
	 * a tunnel repeats the inner headers in each segment too) and accounted after the
	 * outer flow. dc is written only here and read only when decap is set. */
	struct np_decap dc;
	int decap = NP_DECAP_NOT_TUNNEL;
	if (np_enable_decap && np_enable_flows && reason == NP_MAL_NONE && np_decap_candidate(&pkt))
		decap = np_decap_run(skb, &pkt, &dc, NP_PULL_MAX);

	__u32 hdr_len = 0;
	if (segs > 1 && decap == NP_DECAP_OK && dc.outer_hdr) {
		hdr_len = vlan_len + dc.outer_hdr;
	} else if (segs > 1 && reason == NP_MAL_NONE) {
		if (pkt.proto_mask & (1u << NP_PROTO_TCP))
			hdr_len = vlan_len + pkt.l4_off + (__u32)pkt.tcp_doff * 4;
		else if (pkt.proto_mask & (1u << NP_PROTO_UDP))
			hdr_len = vlan_len + pkt.l4_off + 8;
	}
	len = np_wire_bytes(len, segs, hdr_len);
	/* Packet path tracing: one load and a branch while no trace is active. */
	if (np_trace_on && reason == NP_MAL_NONE && pkt.has_l3)
		np_trace_packet(&pkt.key, dir == NP_DIR_INGRESS ? NP_TRACE_TC_INGRESS : NP_TRACE_TC_EGRESS, ifindex,
				skb->len);
	/* As at XDP, a dropped packet is counted by its rule only, not as traffic. */
	if (block && np_mitigate != NP_MITIGATE_OFF && pkt.has_l3 && np_source_blocked(&pkt.key.src_ip, segs, len))
		return NP_TC_ACT_SHOT;
	np_device_add(&tc_device_stats, &tc_device_stats_hi, ifindex, dir, NP_DIR_MAX, segs, len,
		      NP_MAP_TC_DEVICE_STATS);

	if (offloaded_vlan)
		pkt.proto_mask |= 1u << NP_PROTO_VLAN;
	np_count_protocols(dir, pkt.proto_mask, segs, len);
	if (reason != NP_MAL_NONE) {
		np_count_malformed(dir, reason, segs);
		return NP_TC_ACT_UNSPEC;
	}
	/* One test of a mask already in a register on the non-ICMP path. */
	if (pkt.proto_mask & ((1u << NP_PROTO_ICMP) | (1u << NP_PROTO_ICMPV6))) {
		struct np_icmp_key ik = {
			.direction = (__u8)dir,
			.family = pkt.key.family,
			.type = pkt.icmp_type,
			.code = pkt.icmp_code,
		};
		np_counter_add(&icmp_stats, &ik, segs, len, NP_MAP_ICMP_STATS);
		if (np_enable_security && np_is_icmp_unreachable(&pkt))
			np_sec_icmp_error(skb, &pkt, (__u32)len);
	}
	if (!pkt.has_l3)
		return NP_TC_ACT_UNSPEC;
	if (np_enable_security)
		np_host_account(&pkt, dir, segs, len);
	if (!np_enable_flows) {
		if (np_enable_intel && np_intel_packet(&pkt, segs, len))
			return NP_TC_ACT_SHOT;
		return NP_TC_ACT_UNSPEC;
	}

	if (pkt.frag != NP_FRAG_NONE)
		np_track_fragment(&pkt);
	pkt.key.ifindex = ifindex;
	pkt.key.direction = dir;
	__u64 flow_packets = 0;
	if (np_account_flow(&pkt, segs, len, &flow_packets))
		return NP_TC_ACT_SHOT;
	np_names_check(skb, &pkt, segs, flow_packets);
	np_handshake_check(&pkt, flow_packets);
	np_udp_timing_check(&pkt);
	if (decap != NP_DECAP_NOT_TUNNEL) {
		dc.inner.key.ifindex = ifindex;
		dc.inner.key.direction = (__u8)dir;
		if (np_decap_account(&dc, segs, len))
			return NP_TC_ACT_SHOT;
	}
	return NP_TC_ACT_UNSPEC;
}

/* This source builds two objects. The default one (datapath) holds the programs of
 * Ethernet devices: TC and XDP. NP_DATAPATH_L3 builds the layer-3 device programs
 * (datapath_l3), which user space loads only when such a device is attached, with the
 * first object's maps: the kernel verifies each TC program for ~0.4 s, and most nodes
 * have no layer-3 device. */
#ifndef NP_DATAPATH_L3
SEC("tc")
int netprobe_tc_in(struct __sk_buff *skb)
{
	return np_tc_handle(skb, NP_DIR_INGRESS, false, false);
}

SEC("tc")
int netprobe_tc_eg(struct __sk_buff *skb)
{
	return np_tc_handle(skb, NP_DIR_EGRESS, false, false);
}

/* The ingress programs of interfaces without XDP when mitigation is on or dry-run:
 * the same accounting, and the blocklist checked here (user space does not load
 * them when mitigation is off). */
SEC("tc")
int netprobe_tc_in_block(struct __sk_buff *skb)
{
	return np_tc_handle(skb, NP_DIR_INGRESS, false, true);
}

/* XDP sees frames before anything parsed them: parsed here, only while a trace is
 * active. Global function: verified once on its own. */
__attribute__((noinline)) int np_trace_xdp(struct xdp_md *ctx)
{
	if (!ctx)
		return 0;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct np_packet pkt = {};
	if (np_parse_frame(data, data_end, (__u64)(data_end - data), &pkt) != NP_MAL_NONE || !pkt.has_l3)
		return 0;
	return np_trace_packet(&pkt.key, NP_TRACE_XDP, ctx->ingress_ifindex, (__u32)(data_end - data));
}

/* Run by user space (BPF_PROG_TEST_RUN) to calibrate np_clock: jiffies and the
 * coarse monotonic clock read together. Never attached. */
volatile struct np_clock_sample np_clock_sample SEC(".data.clock_probe") = {};

SEC("tc")
int np_clock_probe(struct __sk_buff *skb)
{
	np_clock_sample.jiffies = bpf_jiffies64();
	np_clock_sample.coarse_ns = bpf_ktime_get_coarse_ns();
	return NP_TC_ACT_UNSPEC;
}

SEC("xdp")
int netprobe_xdp(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	__u64 len = (__u64)(ctx->data_end - ctx->data);
	if (np_trace_on)
		np_trace_xdp(ctx);
	np_device_add(&xdp_device_stats, &xdp_device_stats_hi, ifindex, NP_DIR_INGRESS, 1, 1, len,
		      NP_MAP_XDP_DEVICE_STATS);
	if (np_mitigate != NP_MITIGATE_OFF && np_xdp_blocked(ctx, len))
		return NP_XDP_DROP;
	return NP_XDP_PASS;
}

#else /* NP_DATAPATH_L3 */

/* Layer-3 devices (tun, WireGuard, ipip, GRE, sit, PPP): the same accounting, the
 * packet starting at the network header. The manager picks these by link type;
 * XDP is not attached there. */
SEC("tc")
int netprobe_tc_in_l3(struct __sk_buff *skb)
{
	return np_tc_handle(skb, NP_DIR_INGRESS, true, false);
}

SEC("tc")
int netprobe_tc_eg_l3(struct __sk_buff *skb)
{
	return np_tc_handle(skb, NP_DIR_EGRESS, true, false);
}

/* Layer-3 devices have no XDP: with mitigation on (or dry-run), their ingress program
 * checks the blocklist. */
SEC("tc")
int netprobe_tc_in_l3_block(struct __sk_buff *skb)
{
	return np_tc_handle(skb, NP_DIR_INGRESS, true, true);
}

#endif /* NP_DATAPATH_L3 */

char LICENSE[] SEC("license") = "Dual BSD/GPL";
