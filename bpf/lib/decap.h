/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Overlay decapsulation (TC): the packet a tunnel packet carries is parsed with the
 * same parser and accounted as a flow of its own (flow_key.encap = how it was
 * carried) on the interface, direction and hook that saw the tunnel packet, after the
 * tunnel packet's own (outer, underlay) flow. One level only: what the inner packet
 * carries is not looked into.
 *
 * A packet is a tunnel packet when its outer headers say so:
 *  - UDP to port 4789 (IANA) or 8472 (Linux's default; Flannel) whose first 8 payload
 *    bytes are a VXLAN header with the I flag set (RFC 7348 5): an Ethernet frame
 *    follows;
 *  - UDP to port 6081 whose first 8 payload bytes are a Geneve header of version 0
 *    (RFC 8926 3.4): Opt Len x 4 bytes of options, then the Protocol Type's packet
 *    (0x6558 Ethernet, 0x0800 IPv4, 0x86DD IPv6);
 *  - IP protocol 4 (IPv4 inside: IPIP over IPv4, RFC 2003; 4in6 over IPv6) or 41 (IPv6
 *    inside: 6in4 / sit over IPv4, IP6IP6 over IPv6): the payload is the inner packet;
 *  - IP protocol 47, GRE (RFC 2784, with the key and sequence number of RFC 2890): a
 *    4-byte header, then 4 bytes each for the checksum (C), key (K) and sequence
 *    number (S) when their flag is set; Protocol Type 0x0800, 0x86DD or 0x6558
 *    (transparent Ethernet bridging, gretap).
 * Outer fragments are not decapsulated (a fragment holds part of the inner packet).
 * The inner flow's bytes are the inner IP datagram's, as its header states (IPv4 total
 * length, 40 + IPv6 payload length): without the inner Ethernet header (and VLAN tags)
 * that VXLAN, Geneve and GRE-TEB carry and IPIP and GRE-IP do not, so an inner flow's
 * bytes mean the same whatever carried it. (On the tunnel device, flannel.1 say, the
 * same packets count 14 bytes more each: Ethernet frames.)
 *
 * A tunnel packet whose tunnel header or inner packet is truncated or malformed, or
 * whose GRE version / routing flag or payload type is not one of the above, is
 * counted as undecoded in overlay_stats: its outer flow is counted as always, there is
 * no inner flow. UDP to the VXLAN or Geneve ports that fails the I-flag / version test,
 * or is too short to carry the tunnel header, is ordinary UDP.
 *
 * Cost for other packets: one test of the parsed protocol and port
 * (np_decap_candidate). A build with np_enable_decap = 0 has none of this. */
#ifndef NETPROBE_DECAP_H
#define NETPROBE_DECAP_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <netprobe/abi.h>
#include "parse.h"

/* Set by user space before load (--decap). */
const volatile __u32 np_enable_decap = 1;

#define NP_IPPROTO_IPIP 4
#define NP_IPPROTO_IPV6 41
#define NP_IPPROTO_GRE 47
#define NP_PORT_VXLAN 4789
#define NP_PORT_VXLAN_LINUX 8472
#define NP_PORT_GENEVE 6081
#define NP_ETH_P_TEB 0x6558

#define NP_VXLAN_HLEN 8
#define NP_VXLAN_FLAG_I 0x08  /* RFC 7348: flags R R R R I R R R */
#define NP_GENEVE_HLEN 8
#define NP_GRE_HLEN 4
#define NP_GRE_F_C 0x8000     /* checksum (and reserved1) present */
#define NP_GRE_F_R 0x4000     /* RFC 1701 routing present: not decapsulated */
#define NP_GRE_F_K 0x2000     /* key present (RFC 2890) */
#define NP_GRE_F_S 0x1000     /* sequence number present (RFC 2890) */
#define NP_GRE_VERSION 0x0007 /* 0 only (1 is PPTP's enhanced GRE) */

/* Offsets from the start of the frame of the tunnel header and of the inner packet
 * stay below this: it bounds the variable packet offsets for the verifier. */
#define NP_DECAP_MAX_OFF 1024

/* index: direction * NP_ENCAP_MAX + enum np_encap (abi.h) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_overlay_counter);
	__uint(max_entries, NP_DIR_MAX * NP_ENCAP_MAX);
} overlay_stats SEC(".maps");

enum np_decap_status {
	NP_DECAP_NOT_TUNNEL = 0,
	NP_DECAP_OK = 1,        /* inner packet parsed */
	NP_DECAP_UNDECODED = 2, /* a tunnel packet whose inner packet is not accounted */
	NP_DECAP_SHORT = 3,     /* a header lies beyond the linear part of the skb: pull, retry */
};

struct np_decap {
	struct np_packet inner; /* key: the inner flow (ifindex, direction set by the caller);
	                         * offsets from the start of the inner packet */
	__u32 len;              /* bytes of the inner IP datagram (0: not IP, no flow) */
	__u32 inner_hdr;        /* its headers up to the TCP/UDP payload (0: other), which a GSO
	                         * packet repeats in each segment */
	__u32 outer_hdr;        /* the same from the start of the outer frame: outer headers,
	                         * tunnel header, inner headers (0: not TCP/UDP inside) */
	__u8 encap;             /* enum np_encap */
	__u8 status;            /* enum np_decap_status */
	__u8 pad[2];
};

/* The one test every parsed packet pays. */
static __always_inline int np_decap_candidate(const struct np_packet *pkt)
{
	__u8 p = pkt->key.proto;
	if (pkt->frag != NP_FRAG_NONE)
		return 0;
	if (p == NP_IPPROTO_UDP) {
		__u16 port = pkt->key.dst_port;
		return port == NP_PORT_VXLAN || port == NP_PORT_VXLAN_LINUX || port == NP_PORT_GENEVE;
	}
	return p == NP_IPPROTO_IPIP || p == NP_IPPROTO_IPV6 || p == NP_IPPROTO_GRE;
}

/* Parse the inner packet at in_off (len bytes): an Ethernet frame when type is 0,
 * else a packet of EtherType type. Global function: verified once on its own, not
 * once per kind of tunnel that leads to it. */
__attribute__((noinline)) int np_parse_inner(struct __sk_buff *skb, __u32 in_off, __u32 len, __u32 type,
					     struct np_packet *pkt)
{
	if (!skb || !pkt)
		return NP_MAL_TRUNCATED_ETH;
	/* the bound is tested on the very register added to the packet pointer (clang would
	 * test a 32-bit copy, whose bound the verifier does not carry over) */
	__u64 o = in_off;
	asm volatile("" : "+r"(o));
	if (o > NP_DECAP_MAX_OFF)
		return NP_MAL_TRUNCATED_ETH;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	void *start = data + o;
	if (type == 0) {
		if (len < sizeof(struct ethhdr))
			return NP_MAL_TRUNCATED_ETH;
		return np_parse_frame(start, data_end, len, pkt);
	}
	return np_parse_l3_packet(start, data_end, len, (__u16)type, pkt);
}

/* NP_DECAP_SHORT when the linear part of the skb ends before the packet does (a pull
 * may bring the missing header in), else NP_DECAP_UNDECODED. */
static __always_inline int np_decap_fail(struct __sk_buff *skb)
{
	return (__u64)(skb->data_end - skb->data) < skb->len ? NP_DECAP_SHORT : NP_DECAP_UNDECODED;
}

/* Identify outer (a parsed, well-formed, unfragmented np_decap_candidate) as a tunnel
 * packet and parse what it carries into d (zeroed by the caller). Returns enum
 * np_decap_status; d->encap is set once the packet is known to be a tunnel packet.
 * Global function: verified once on its own. */
__attribute__((noinline)) int np_decap_parse(struct __sk_buff *skb, const struct np_packet *outer, struct np_decap *d)
{
	if (!skb || !outer || !d)
		return NP_DECAP_NOT_TUNNEL;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u64 off = outer->l4_off; /* the UDP header, or the outer IP payload */
	__u8 proto = outer->key.proto;
	__u32 end;                 /* where the tunnel payload ends */
	__u32 in_off;              /* where the inner packet starts */
	__u32 type;                /* its EtherType; 0: an Ethernet frame */
	__u8 encap;

	asm volatile("" : "+r"(off)); /* bound tested on the register added to data */
	if (off > NP_DECAP_MAX_OFF)
		return NP_DECAP_NOT_TUNNEL;
	if (proto == NP_IPPROTO_UDP) {
		__u8 *udp = data + off;
		if ((void *)(udp + 8) > data_end) /* the parser read it: cannot happen */
			return NP_DECAP_NOT_TUNNEL;
		__u32 ulen = ((__u32)udp[4] << 8) | udp[5];
		if (ulen < 8 + NP_VXLAN_HLEN) /* too short for either header: plain UDP */
			return NP_DECAP_NOT_TUNNEL;
		__u8 *th = udp + 8;
		if ((void *)(th + NP_VXLAN_HLEN) > data_end)
			return np_decap_fail(skb) == NP_DECAP_SHORT ? NP_DECAP_SHORT : NP_DECAP_NOT_TUNNEL;
		end = off + ulen;
		if (outer->key.dst_port == NP_PORT_GENEVE) {
			/* Ver (2 bits) | Opt Len (6 bits, 4-byte words); O C Rsvd; Protocol Type */
			if (th[0] >> 6 != 0)
				return NP_DECAP_NOT_TUNNEL;
			encap = NP_ENCAP_GENEVE;
			in_off = off + 8 + NP_GENEVE_HLEN + (__u32)(th[0] & 0x3f) * 4;
			type = ((__u32)th[2] << 8) | th[3];
		} else {
			if (!(th[0] & NP_VXLAN_FLAG_I))
				return NP_DECAP_NOT_TUNNEL;
			encap = NP_ENCAP_VXLAN;
			in_off = off + 8 + NP_VXLAN_HLEN;
			type = NP_ETH_P_TEB;
		}
	} else {
		end = outer->l3_end;
		in_off = off;
		if (proto == NP_IPPROTO_GRE) {
			encap = NP_ENCAP_GRE;
			d->encap = encap;
			if (off + NP_GRE_HLEN > end)
				return NP_DECAP_UNDECODED;
			__u8 *gre = data + off;
			if ((void *)(gre + NP_GRE_HLEN) > data_end)
				return np_decap_fail(skb);
			__u32 flags = ((__u32)gre[0] << 8) | gre[1];
			if (flags & (NP_GRE_F_R | NP_GRE_VERSION))
				return NP_DECAP_UNDECODED;
			type = ((__u32)gre[2] << 8) | gre[3];
			in_off = off + NP_GRE_HLEN + (flags & NP_GRE_F_C ? 4 : 0) + (flags & NP_GRE_F_K ? 4 : 0) +
				 (flags & NP_GRE_F_S ? 4 : 0);
		} else if (proto == NP_IPPROTO_IPIP) {
			encap = outer->key.family == 4 ? NP_ENCAP_IPIP : NP_ENCAP_IP4_IN_IP6;
			type = NP_ETH_P_IP;
		} else if (proto == NP_IPPROTO_IPV6) {
			encap = outer->key.family == 4 ? NP_ENCAP_IP6_IN_IP4 : NP_ENCAP_IP6IP6;
			type = NP_ETH_P_IPV6;
		} else {
			return NP_DECAP_NOT_TUNNEL;
		}
	}
	d->encap = encap;
	d->inner.key.encap = encap;
	if (type == NP_ETH_P_TEB)
		type = 0;
	else if (type != NP_ETH_P_IP && type != NP_ETH_P_IPV6)
		return NP_DECAP_UNDECODED; /* another payload (PPP, ERSPAN, NSH, ...) */
	if (in_off > end || in_off > NP_DECAP_MAX_OFF)
		return NP_DECAP_UNDECODED; /* the tunnel header runs past the payload */
	__u32 len = end - in_off;
	if (np_parse_inner(skb, in_off, len, type, &d->inner) != NP_MAL_NONE)
		return np_decap_fail(skb);
	if (!d->inner.has_l3)
		return NP_DECAP_OK; /* ARP and other non-IP frames: decapsulated, no flow */
	__u32 l3_off = d->inner.l3_off;
	d->len = d->inner.l3_end - l3_off;
	__u32 l4_hdr = 0;
	if (d->inner.proto_mask & (1u << NP_PROTO_TCP))
		l4_hdr = (__u32)d->inner.tcp_doff * 4;
	else if (d->inner.proto_mask & (1u << NP_PROTO_UDP))
		l4_hdr = 8;
	if (l4_hdr) {
		__u32 l4_off = d->inner.l4_off;
		d->inner_hdr = l4_off - l3_off + l4_hdr;
		d->outer_hdr = in_off + l4_off + l4_hdr;
	}
	return NP_DECAP_OK;
}

/* Parse the tunnel packet pkt into *d, pulling headers into the linear part once if
 * needed. Returns (and leaves in d->status) enum np_decap_status, never SHORT. */
static __always_inline int np_decap_run(struct __sk_buff *skb, const struct np_packet *pkt, struct np_decap *d,
					__u32 pull_max)
{
	__builtin_memset(d, 0, sizeof(*d));
	int st = np_decap_parse(skb, pkt, d);
	if (st == NP_DECAP_SHORT) {
		__u32 len = skb->len;
		if (bpf_skb_pull_data(skb, len < pull_max ? len : pull_max) == 0) {
			__builtin_memset(d, 0, sizeof(*d));
			st = np_decap_parse(skb, pkt, d);
		}
		if (st == NP_DECAP_SHORT)
			st = d->encap ? NP_DECAP_UNDECODED : NP_DECAP_NOT_TUNNEL;
	}
	d->status = (__u8)st;
	return st;
}

#endif /* NETPROBE_DECAP_H */
