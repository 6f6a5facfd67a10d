/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parser shared by the datapath programs: Ethernet, 802.1Q/802.1ad,
 * MPLS, IPv4 (options, fragments), IPv6 (extension-header chains, fragments),
 * TCP, UDP, ICMP, ICMPv6. Every read is bounds-checked against data_end; every
 * loop is bounded by a constant from abi.h. The parser only reads the packet. */
#ifndef NETPROBE_PARSE_H
#define NETPROBE_PARSE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <netprobe/abi.h>

#define NP_ETH_P_IP 0x0800
#define NP_ETH_P_IPV6 0x86DD
#define NP_ETH_P_ARP 0x0806
#define NP_ETH_P_8021Q 0x8100
#define NP_ETH_P_8021AD 0x88A8
#define NP_ETH_P_MPLS_UC 0x8847
#define NP_ETH_P_MPLS_MC 0x8848

#define NP_IPPROTO_HOPOPTS 0
#define NP_IPPROTO_ICMP 1
#define NP_IPPROTO_TCP 6
#define NP_IPPROTO_UDP 17
#define NP_IPPROTO_ROUTING 43
#define NP_IPPROTO_FRAGMENT 44
#define NP_IPPROTO_AH 51
#define NP_IPPROTO_ICMPV6 58
#define NP_IPPROTO_NONE 59
#define NP_IPPROTO_DSTOPTS 60

/* What the parser learned about one packet. */
struct np_packet {
	struct flow_key key;   /* addresses, ports, proto, family (ifindex/direction set by caller) */
	__u32 proto_mask;      /* bit (1 << enum np_proto_class) per class seen */
	__u32 frag_id;         /* fragment identification, when a fragment */
	__u8 tcp_flags;
	__u8 has_l3;           /* IPv4 or IPv6 parsed: the packet belongs to a flow */
	__u8 frag;             /* 0 = not a fragment, 1 = first fragment, 2 = later fragment */
	__u8 icmp_type;        /* ICMP/ICMPv6 packets (class bit set): the message type */
	__u8 icmp_code;        /* ... and code */
	__u8 tcp_doff;         /* TCP header length in 32-bit words */
	__u16 l4_off;          /* offset of the L4 header from the start of the frame (TCP, UDP,
	                        * ICMP, and the payload of other protocols: a tunnel's) */
	__u16 l3_off;          /* IPv4/IPv6: offset of the IP header from the start of the frame */
	__u32 l3_end;          /* IPv4/IPv6: where the IP datagram ends by its header */
};

#define NP_FRAG_NONE 0
#define NP_FRAG_FIRST 1
#define NP_FRAG_LATER 2

#define NP_MARK(pkt, cls) ((pkt)->proto_mask |= (1u << (cls)))

struct np_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct np_ipv6_opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct np_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

/* Reads are bounds-checked against data_end (the linear part of the packet);
 * length fields are checked against the packet's real length pkt_len, so that a
 * GSO/GRO packet whose payload lies outside the linear part is not mistaken for
 * a truncated one. Offsets (off, end_off) are from the start of the frame. */

/* Parse the L4 header at pos (offset off). end_off is where the IP datagram ends
 * as its header states. Returns NP_MAL_NONE or a malformed reason. */
static __always_inline int np_parse_l4(void *pos, __u32 off, __u32 end_off, void *data_end,
				       struct np_packet *pkt)
{
	__u8 proto = pkt->key.proto;

	if (proto == NP_IPPROTO_TCP) {
		struct tcphdr *tcp = pos;
		if ((void *)(tcp + 1) > data_end || off + sizeof(*tcp) > end_off)
			return NP_MAL_TRUNCATED_TCP;
		if (tcp->doff < 5)
			return NP_MAL_TCP_BAD_DOFF;
		if (off + tcp->doff * 4 > end_off)
			return NP_MAL_TRUNCATED_TCP;
		NP_MARK(pkt, NP_PROTO_TCP);
		pkt->key.src_port = bpf_ntohs(tcp->source);
		pkt->key.dst_port = bpf_ntohs(tcp->dest);
		pkt->tcp_flags = ((__u8 *)tcp)[13];
		pkt->tcp_doff = tcp->doff;
		pkt->l4_off = off;
		return NP_MAL_NONE;
	}
	if (proto == NP_IPPROTO_UDP) {
		struct udphdr *udp = pos;
		if ((void *)(udp + 1) > data_end || off + sizeof(*udp) > end_off)
			return NP_MAL_TRUNCATED_UDP;
		__u32 ulen = bpf_ntohs(udp->len);
		/* A first fragment carries the whole datagram's UDP length. */
		if (ulen < sizeof(*udp) || (pkt->frag == NP_FRAG_NONE && off + ulen > end_off))
			return NP_MAL_UDP_BAD_LENGTH;
		NP_MARK(pkt, NP_PROTO_UDP);
		pkt->key.src_port = bpf_ntohs(udp->source);
		pkt->key.dst_port = bpf_ntohs(udp->dest);
		pkt->l4_off = off;
		return NP_MAL_NONE;
	}
	/* ICMP only over IPv4 and ICMPv6 only over IPv6; the other pairing is not an
	 * ICMP message of either kind (icmp_stats is keyed by the packet's family). */
	if ((proto == NP_IPPROTO_ICMP && pkt->key.family == 4) ||
	    (proto == NP_IPPROTO_ICMPV6 && pkt->key.family == 6)) {
		/* type, code, checksum: the 4 bytes every ICMP message has */
		if (pos + 4 > data_end || off + 4 > end_off)
			return NP_MAL_TRUNCATED_ICMP;
		NP_MARK(pkt, proto == NP_IPPROTO_ICMP ? NP_PROTO_ICMP : NP_PROTO_ICMPV6);
		pkt->icmp_type = ((__u8 *)pos)[0];
		pkt->icmp_code = ((__u8 *)pos)[1];
		pkt->l4_off = off;
		return NP_MAL_NONE;
	}
	NP_MARK(pkt, NP_PROTO_OTHER_L4);
	pkt->l4_off = off; /* a tunnel's payload (IPIP, GRE): bpf/lib/decap.h */
	return NP_MAL_NONE;
}

static __always_inline int np_parse_ipv4(void *pos, __u32 off, void *data_end, __u32 pkt_len,
					 struct np_packet *pkt)
{
	struct iphdr *ip = pos;

	if ((void *)(ip + 1) > data_end)
		return NP_MAL_TRUNCATED_IPV4;
	if (ip->version != 4)
		return NP_MAL_IPV4_BAD_VERSION;
	__u32 hlen = ip->ihl * 4;
	if (hlen < sizeof(*ip))
		return NP_MAL_IPV4_BAD_IHL;
	if (pos + hlen > data_end)
		return NP_MAL_TRUNCATED_IPV4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	/* BIG TCP (GSO packets over 64 KiB) carries tot_len 0: the skb length rules. */
	if (tot == 0 && pkt_len > off + 0xffff)
		tot = pkt_len - off;
	if (tot < hlen || off + tot > pkt_len)
		return NP_MAL_IPV4_BAD_LENGTH;

	NP_MARK(pkt, NP_PROTO_IPV4);
	pkt->has_l3 = 1;
	pkt->l3_off = off;
	pkt->l3_end = off + tot;
	pkt->key.family = 4;
	pkt->key.proto = ip->protocol;
	pkt->key.src_ip.v4m.pad[2] = bpf_htonl(0x0000ffff);
	pkt->key.src_ip.v4m.v4 = ip->saddr;
	pkt->key.dst_ip.v4m.pad[2] = bpf_htonl(0x0000ffff);
	pkt->key.dst_ip.v4m.v4 = ip->daddr;

	__u16 frag_off = bpf_ntohs(ip->frag_off);
	if (frag_off & 0x3fff) { /* MF set or offset != 0 */
		NP_MARK(pkt, NP_PROTO_FRAGMENT);
		pkt->frag_id = bpf_ntohs(ip->id);
		if (frag_off & 0x1fff) {
			pkt->frag = NP_FRAG_LATER;
			return NP_MAL_NONE; /* no L4 header in this fragment */
		}
		pkt->frag = NP_FRAG_FIRST;
	}
	return np_parse_l4(pos + hlen, off + hlen, off + tot, data_end, pkt);
}

static __always_inline int np_parse_ipv6(void *pos, __u32 off, void *data_end, __u32 pkt_len,
					 struct np_packet *pkt)
{
	struct ipv6hdr *ip6 = pos;

	if ((void *)(ip6 + 1) > data_end)
		return NP_MAL_TRUNCATED_IPV6;
	if (ip6->version != 6)
		return NP_MAL_IPV6_BAD_VERSION;
	__u32 plen = bpf_ntohs(ip6->payload_len);
	/* BIG TCP / jumbograms: payload_len 0 on a packet longer than 64 KiB. */
	if (plen == 0 && pkt_len > off + sizeof(*ip6) + 0xffff)
		plen = pkt_len - off - sizeof(*ip6);
	__u32 end_off = off + sizeof(*ip6) + plen;
	if (end_off > pkt_len)
		return NP_MAL_IPV6_BAD_LENGTH;

	NP_MARK(pkt, NP_PROTO_IPV6);
	pkt->has_l3 = 1;
	pkt->l3_off = off;
	pkt->l3_end = end_off;
	pkt->key.family = 6;
	__builtin_memcpy(&pkt->key.src_ip, &ip6->saddr, 16);
	__builtin_memcpy(&pkt->key.dst_ip, &ip6->daddr, 16);

	__u8 nexthdr = ip6->nexthdr;
	pos = ip6 + 1;
	off += sizeof(*ip6);
#pragma unroll
	for (int i = 0; i < NP_MAX_IPV6_EXT_HDRS; i++) {
		if (nexthdr == NP_IPPROTO_FRAGMENT) {
			struct np_ipv6_frag_hdr *fh = pos;
			if ((void *)(fh + 1) > data_end || off + sizeof(*fh) > end_off)
				return NP_MAL_TRUNCATED_IPV6_EXT;
			NP_MARK(pkt, NP_PROTO_FRAGMENT);
			pkt->frag_id = bpf_ntohl(fh->identification);
			nexthdr = fh->nexthdr;
			pos = fh + 1;
			off += sizeof(*fh);
			if (bpf_ntohs(fh->frag_off) & 0xfff8) {
				pkt->frag = NP_FRAG_LATER;
				pkt->key.proto = nexthdr;
				return NP_MAL_NONE;
			}
			pkt->frag = NP_FRAG_FIRST;
			continue;
		}
		if (nexthdr != NP_IPPROTO_HOPOPTS && nexthdr != NP_IPPROTO_ROUTING &&
		    nexthdr != NP_IPPROTO_DSTOPTS && nexthdr != NP_IPPROTO_AH)
			break;
		struct np_ipv6_opt_hdr *oh = pos;
		if ((void *)(oh + 1) > data_end || off + sizeof(*oh) > end_off)
			return NP_MAL_TRUNCATED_IPV6_EXT;
		/* AH counts its length in 4-byte units minus 2, the others in 8-byte units minus 1 */
		__u32 len = nexthdr == NP_IPPROTO_AH ? ((__u32)oh->hdrlen + 2) * 4
						      : ((__u32)oh->hdrlen + 1) * 8;
		if (pos + len > data_end || off + len > end_off)
			return NP_MAL_TRUNCATED_IPV6_EXT;
		nexthdr = oh->nexthdr;
		pos += len;
		off += len;
	}
	if (nexthdr == NP_IPPROTO_HOPOPTS || nexthdr == NP_IPPROTO_ROUTING ||
	    nexthdr == NP_IPPROTO_DSTOPTS || nexthdr == NP_IPPROTO_AH ||
	    nexthdr == NP_IPPROTO_FRAGMENT)
		return NP_MAL_IPV6_EXT_TOO_MANY;

	pkt->key.proto = nexthdr;
	if (nexthdr == NP_IPPROTO_NONE)
		return NP_MAL_NONE;
	return np_parse_l4(pos, off, end_off, data_end, pkt);
}

/* Steps *pos over up to NP_MAX_VLAN_TAGS 802.1Q/802.1ad tags; *proto becomes the
 * EtherType they carry and *tags how many were complete. Returns -1 when a tag is
 * truncated, else 0. */
static __always_inline int np_skip_vlans(void **pos, void *data_end, __u16 *proto, int *tags)
{
#pragma unroll
	for (int i = 0; i < NP_MAX_VLAN_TAGS; i++) {
		if (*proto != NP_ETH_P_8021Q && *proto != NP_ETH_P_8021AD)
			break;
		struct np_vlan_hdr *vh = *pos;
		if ((void *)(vh + 1) > data_end)
			return -1;
		*proto = bpf_ntohs(vh->encap_proto);
		*pos = vh + 1;
		*tags += 1;
	}
	return 0;
}

/* Parse what follows the link-layer header: pos (offset off from data) starts the
 * packet of EtherType proto (host order) - MPLS, IPv4, IPv6, ARP or another L3. */
static __always_inline int np_parse_network(void *data, void *pos, void *data_end, __u32 pkt_len, __u16 proto,
					    struct np_packet *pkt)
{
	if (proto == NP_ETH_P_MPLS_UC || proto == NP_ETH_P_MPLS_MC) {
		int bottom = 0;
		NP_MARK(pkt, NP_PROTO_MPLS);
#pragma unroll
		for (int i = 0; i < NP_MAX_MPLS_LABELS; i++) {
			__u8 *lse = pos;
			if ((void *)(lse + 4) > data_end)
				return NP_MAL_TRUNCATED_MPLS;
			pos = lse + 4;
			if (lse[2] & 0x01) { /* bottom of stack */
				bottom = 1;
				break;
			}
		}
		if (!bottom)
			return NP_MAL_MPLS_TOO_DEEP;
		__u8 *first = pos;
		if ((void *)(first + 1) > data_end)
			return NP_MAL_TRUNCATED_MPLS;
		__u8 version = *first >> 4;
		if (version == 4)
			proto = NP_ETH_P_IP;
		else if (version == 6)
			proto = NP_ETH_P_IPV6;
		else
			return NP_MAL_MPLS_BAD_PAYLOAD;
	}

	__u32 off = (__u32)(pos - data);
	if (proto == NP_ETH_P_IP)
		return np_parse_ipv4(pos, off, data_end, pkt_len, pkt);
	if (proto == NP_ETH_P_IPV6)
		return np_parse_ipv6(pos, off, data_end, pkt_len, pkt);
	NP_MARK(pkt, proto == NP_ETH_P_ARP ? NP_PROTO_ARP : NP_PROTO_OTHER_L3);
	return NP_MAL_NONE;
}

/* Parse one Ethernet frame of pkt_len bytes (data..data_end is the part that can
 * be read directly). Returns NP_MAL_NONE or an enum np_malformed_reason. */
static __always_inline int np_parse_frame(void *data, void *data_end, __u32 pkt_len, struct np_packet *pkt)
{
	struct ethhdr *eth = data;
	void *pos;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return NP_MAL_TRUNCATED_ETH;
	proto = bpf_ntohs(eth->h_proto);
	pos = eth + 1;

	int tags = 0;
	int truncated = np_skip_vlans(&pos, data_end, &proto, &tags);
	if (tags)
		NP_MARK(pkt, NP_PROTO_VLAN);
	if (truncated)
		return NP_MAL_TRUNCATED_VLAN;
	if (proto == NP_ETH_P_8021Q || proto == NP_ETH_P_8021AD)
		return NP_MAL_TOO_MANY_VLAN;
	return np_parse_network(data, pos, data_end, pkt_len, proto, pkt);
}

/* Parse a packet of a layer-3 device (tun, WireGuard, ipip, GRE, sit, PPP: no
 * link-layer header): data starts the packet whose EtherType the device gave the
 * skb (skb->protocol, host order here). */
static __always_inline int np_parse_l3_packet(void *data, void *data_end, __u32 pkt_len, __u16 proto,
					      struct np_packet *pkt)
{
	return np_parse_network(data, data, data_end, pkt_len, proto, pkt);
}

#endif /* NETPROBE_PARSE_H */
