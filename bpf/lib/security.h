/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Security analytics, datapath side. Per packet only what needs per-packet state:
 *  - host_stats: per-address in/out counters in a 2-way set-associative per-CPU
 *    array (an inlined array lookup per packet; see abi.h), read by user space
 *    on a sub-second tick for flood detection;
 *  - sec_events: a ring-buffer record for the first packet of every new TCP/UDP
 *    flow (the insert path only: a flow's later packets cost nothing more) and for
 *    every ICMP destination-unreachable, with the tuple it quotes. Port scans,
 *    failed connections, fan-out and new peers are decided from these in user space;
 *  - blocklist: an LPM trie of source prefixes XDP consults when mitigation is on
 *    (or dry-run); a build with mitigation off never looks it up.
 * Failed reserves and inserts are counted in map_errors. */
#ifndef NETPROBE_SECURITY_H
#define NETPROBE_SECURITY_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <netprobe/abi.h>
#include "parse.h"
#include "maps.h"
#include "ring.h"

/* Set by user space before load. */
const volatile __u32 np_enable_security = 0;
const volatile __u32 np_mitigate = NP_MITIGATE_OFF;

/* 1 MiB: ~9,300 records. The agent drains it continuously; its whole size counts
 * twice in the agent's RSS (libbpf maps the data area twice, populated at mmap). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} sec_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_host_slot);
	__uint(max_entries, NP_HOST_SLOTS);
} host_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct np_block_key);
	__type(value, struct np_block_value);
	__uint(max_entries, NP_BLOCK_RULES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} blocklist SEC(".maps");

/* Flows already announced on sec_events that may come back without a flow_stats entry
 * (a tag per slot: np_seen_tag, netprobe/abi.h). Consulted only when a packet finds no
 * flow_stats entry, so a flow is announced once: not again when it resumes after user
 * space removed its idle entry (np_sec_new_flow), and also when flow_stats is full (a
 * spoofed-source flood that fills it must not hide a scan). Direct-mapped: a write is a
 * store (under a random-port SYN flood, one per SYN), a flow that hashes to a taken slot
 * takes it over. User space sizes it (a power of two, like the flow table) and sets
 * np_seen_mask before load. */
const volatile __u32 np_seen_mask = 65535;
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 65536);
} sec_flow_seen SEC(".maps");

static __always_inline __u64 *np_seen_lookup(__u64 tag)
{
	__u32 idx = np_seen_slot(tag, np_seen_mask);
	return bpf_map_lookup_elem(&sec_flow_seen, &idx);
}

/* index: rule_id; packets/bytes matched (dropped, or in dry-run: would have been) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_counter);
	__uint(max_entries, NP_BLOCK_RULES_MAX);
} block_stats SEC(".maps");

#define NP_TCP_FIN 0x01
#define NP_TCP_SYN 0x02
#define NP_TCP_RST 0x04
#define NP_TCP_ACK 0x10

static __always_inline int np_addr_eq(const union np_addr *a, const union np_addr *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1];
}

/* The slots changed since user space last took the bits (netprobe/abi.h,
 * NP_HOST_DIRTY_WORDS). Shared by every CPU: a packet reads its word (a line every CPU
 * keeps cached while the bit is set) and writes it only the first time in a tick. */
volatile __u64 np_host_dirty[NP_HOST_DIRTY_WORDS] SEC(".data.hostdirty") = {};

/* After the slot's counters changed. A change whose stores become visible only after
 * user space took the bit and read the slot (the bit was set already, or the CPU
 * reordered the stores) is carried by the slot's next change or by user space's periodic
 * full read: the counters are cumulative, so a delta can be late, never lost. */
static __always_inline void np_host_mark(__u32 idx)
{
	__u32 w = (idx / 64) % NP_HOST_DIRTY_WORDS;
	__u64 bit = 1ULL << (idx % 64);
	if (!(np_host_dirty[w] & bit))
		__sync_fetch_and_or(&np_host_dirty[w], bit);
}

static __always_inline struct np_host_slot *np_host_slot(const union np_addr *addr, __u32 *idx_out)
{
	__u32 idx = np_host_hash(addr);
	*idx_out = idx;
	struct np_host_slot *slot = bpf_map_lookup_elem(&host_stats, &idx);
	if (!slot)
		return 0;
	if (np_addr_eq(&slot->addr, addr))
		return slot;
	__u32 alt_idx = idx ^ 1;
	struct np_host_slot *alt = bpf_map_lookup_elem(&host_stats, &alt_idx);
	if (!alt)
		return 0;
	if (np_addr_eq(&alt->addr, addr)) {
		*idx_out = alt_idx;
		return alt;
	}
	/* Neither: take over the quieter of the two (a free slot has no packets). */
	__u64 a = slot->stats.in_packets + slot->stats.out_packets;
	__u64 b = alt->stats.in_packets + alt->stats.out_packets;
	if (b < a) {
		slot = alt;
		a = b;
		*idx_out = alt_idx;
	}
	if (a)
		np_count_map_error(NP_MAP_HOST_STATS);
	__builtin_memset(&slot->stats, 0, sizeof(slot->stats));
	__builtin_memcpy(&slot->addr, addr, sizeof(slot->addr));
	return slot;
}

static __always_inline void np_host_account(const struct np_packet *pkt, __u32 dir, __u32 segs, __u64 len)
{
	__u32 idx = 0;
	struct np_host_slot *slot =
		np_host_slot(dir == NP_DIR_INGRESS ? &pkt->key.dst_ip : &pkt->key.src_ip, &idx);
	if (!slot)
		return;
	struct np_host_stats *hs = &slot->stats;
	__u8 fl = pkt->tcp_flags;
	if (dir == NP_DIR_INGRESS) {
		hs->in_packets += segs;
		hs->in_bytes += len;
		if (pkt->key.proto == NP_IPPROTO_TCP) {
			hs->tcp_in += segs;
			if ((fl & (NP_TCP_SYN | NP_TCP_ACK)) == NP_TCP_SYN)
				hs->syn_in += 1;
		} else if (pkt->key.proto == NP_IPPROTO_UDP) {
			hs->udp_in += segs;
		} else if (pkt->key.proto == NP_IPPROTO_ICMP || pkt->key.proto == NP_IPPROTO_ICMPV6) {
			hs->icmp_in += 1;
		}
	} else {
		hs->out_packets += segs;
		hs->out_bytes += len;
		if (pkt->key.proto == NP_IPPROTO_TCP && (fl & (NP_TCP_SYN | NP_TCP_ACK)) == (NP_TCP_SYN | NP_TCP_ACK))
			hs->synack_out += 1;
	}
	np_host_mark(idx);
}

/* Submits a record without waking the reader except when the backlog crosses another
 * NP_SEC_WAKEUP_BYTES (bpf/lib/ring.h): a wakeup per record cost the agent a context
 * switch per new flow under a flood (half its CPU in finish_task_switch), and each is an
 * IPI. The reader also drains the ring every 100 ms on its own (RingReader), so a record
 * waits at most that long. The band is a quarter of the ring: the reader is woken when a
 * burst fills that much within 100 ms (~2,300 records; a 10k pps SYN flood writes ~2,000
 * per 100 ms, two per SYN), long before the ring is full. In a virtual machine each
 * wakeup is a VM exit: with a 64 KiB band the wakeups were a sixth of the BPF time of a
 * 10k pps flood here. */
#define NP_SEC_WAKEUP_BYTES (256 * 1024)
static __always_inline void np_sec_submit(struct np_sec_event *e)
{
	bpf_ringbuf_submit(e, np_ring_submit_flags(&sec_events, sizeof(*e), NP_SEC_WAKEUP_BYTES));
}

/* A zeroed sec_events record with its time, key, kind and length filled in; NULL
 * (counted) when the ring is full. */
static __always_inline struct np_sec_event *np_sec_reserve(const struct np_packet *pkt, __u8 kind, __u32 len)
{
	struct np_sec_event *e = bpf_ringbuf_reserve(&sec_events, sizeof(*e), 0);
	if (!e) {
		np_count_map_error(NP_MAP_SEC_EVENTS);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&e->key, &pkt->key, sizeof(e->key));
	e->kind = kind;
	e->len = len;
	return e;
}

/* First packet of a TCP/UDP flow not in flow_stats before it (key already carries
 * ifindex/direction). A TCP segment that opens, refuses or probes (SYN, RST, or no
 * ACK: FIN/NULL/Xmas) is always announced: on a reused 5-tuple it is a new attempt
 * or a new answer. The rest (ACK-bearing segments, UDP) continue a flow: announced
 * only when sec_flow_seen does not hold the flow. sec_flow_seen holds the flows the
 * full table could not take or the pressure aggregated (written here: in_table 0) and
 * the flows whose idle entry user space removed (written by user space with the
 * removal, ebpf::removeIdleFlow). A flow that got its flow_stats entry is found there by
 * its next packets, so it is not written here. */
static __always_inline int np_sec_new_flow_folded(const struct np_packet *pkt, __u64 len, int in_table, __u32 folded)
{
	if (pkt->key.proto != NP_IPPROTO_TCP && pkt->key.proto != NP_IPPROTO_UDP)
		return 0;
	__u8 fl = pkt->tcp_flags;
	int opens = pkt->key.proto == NP_IPPROTO_TCP && ((fl & (NP_TCP_SYN | NP_TCP_RST)) || !(fl & NP_TCP_ACK));
	/* Remembered: a flow without an entry of its own, unless the packet is a RST (it
	 * ends its flow in this direction: what the sender sends next on the 5-tuple opens
	 * again and is announced anyway; under a SYN flood every refusal is one). */
	int remember = !in_table && !(fl & NP_TCP_RST);
	__u64 tag = 0, *slot = 0;
	if (!opens || remember) {
		tag = np_seen_tag(&pkt->key);
		slot = np_seen_lookup(tag);
		if (!slot)
			np_count_map_error(NP_MAP_SEC_FLOW_SEEN);
	}
	if (!opens && slot && *slot == tag)
		return 0;
	if (remember && slot)
		*slot = tag;
	struct np_sec_event *e = np_sec_reserve(pkt, NP_SEC_NEW_FLOW, (__u32)len);
	if (!e)
		return 0;
	e->folded = folded;
	e->tcp_flags = pkt->tcp_flags;
	e->tcp_doff = pkt->tcp_doff;
	__u64 hdr = (__u64)pkt->l4_off + (pkt->key.proto == NP_IPPROTO_TCP ? (__u64)pkt->tcp_doff * 4 : 8);
	__u64 payload = len > hdr ? len - hdr : 0;
	e->payload_len = payload > 0xffff ? 0xffff : (__u16)payload;
	np_sec_submit(e);
	return 1;
}

static __always_inline void np_sec_new_flow(const struct np_packet *pkt, __u64 len, int in_table)
{
	np_sec_new_flow_folded(pkt, len, in_table, 0);
}

/* A packet counted in an existing aggregate entry fs (flow pressure: a connection
 * attempt or refusal without an entry of its own), prev_seen: fs's last_seen_ns on this
 * CPU before this packet. Under a random-port flood every packet is one: a record each
 * cost the datapath a ring reserve and a sec_flow_seen store per packet and the agent
 * the record's decoding. One record per tick (np_now_coarse) and CPU announces an
 * aggregate entry's packets: the first of a tick; the tick's later ones are folded into
 * fs->folded, carried by the entry's next record on this CPU (np_sec_event.folded), so
 * the count of attempts stays exact; what a burst's last tick folded waits for the
 * entry's next packet. A folded packet is not remembered in sec_flow_seen (it was not
 * announced by a record of its own): a real connection among the attempts is announced
 * by its first ACK. A record the full ring refused keeps its count folded. */
static __always_inline void np_sec_aggregated(const struct np_packet *pkt, struct np_flow_stats *fs, __u64 len,
					      __u64 prev_seen)
{
	__u16 folded = fs->folded;
	if (prev_seen == fs->last_seen_ns && folded < 0xffff) {
		fs->folded = folded + 1;
		return;
	}
	if (np_sec_new_flow_folded(pkt, len, 0, folded))
		fs->folded = 0;
	else if (folded < 0xffff)
		fs->folded = folded + 1;
}

/* An ICMP error (np_is_icmp_unreachable): send it with the tuple of the packet it
 * quotes. Reads with bpf_skb_load_bytes (the quote may lie
 * beyond the linear area). Global function: verified once on its own. */
__attribute__((noinline)) int np_sec_icmp_error(struct __sk_buff *skb, const struct np_packet *pkt, __u32 len)
{
	if (!skb || !pkt)
		return 0;
	struct np_sec_event *e = np_sec_reserve(pkt, NP_SEC_ICMP_ERROR, len);
	if (!e)
		return 0;
	e->icmp_type = pkt->icmp_type;
	e->icmp_code = pkt->icmp_code;
	__u32 off = (__u32)pkt->l4_off + 8; /* ICMP header: type, code, checksum, 4 unused */
	__u32 l4 = 0;
	__u8 proto = 0;
	if (pkt->key.family == 4) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) == 0 && ip.version == 4 && ip.ihl >= 5) {
			e->inner_src.v4m.pad[2] = bpf_htonl(0xffff);
			e->inner_src.v4m.v4 = ip.saddr;
			e->inner_dst.v4m.pad[2] = bpf_htonl(0xffff);
			e->inner_dst.v4m.v4 = ip.daddr;
			proto = ip.protocol;
			l4 = off + ip.ihl * 4;
		}
	} else {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) == 0) {
			__builtin_memcpy(&e->inner_src, &ip6.saddr, 16);
			__builtin_memcpy(&e->inner_dst, &ip6.daddr, 16);
			proto = ip6.nexthdr; /* extension headers in a quote are not followed */
			l4 = off + sizeof(ip6);
		}
	}
	if (l4 && (proto == NP_IPPROTO_TCP || proto == NP_IPPROTO_UDP)) {
		__be16 ports[2];
		if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) == 0) {
			e->inner_src_port = bpf_ntohs(ports[0]);
			e->inner_dst_port = bpf_ntohs(ports[1]);
		}
	}
	e->inner_proto = proto;
	np_sec_submit(e);
	return 0;
}

/* ICMP errors that quote the packet they answer: destination unreachable (v4 3,
 * v6 1) and time exceeded (v4 11, v6 3: a traceroute's hops answer this way). */
static __always_inline int np_is_icmp_unreachable(const struct np_packet *pkt)
{
	if (pkt->key.proto == NP_IPPROTO_ICMP)
		return pkt->icmp_type == 3 || pkt->icmp_type == 11;
	if (pkt->key.proto == NP_IPPROTO_ICMPV6)
		return pkt->icmp_type == 1 || pkt->icmp_type == 3;
	return 0;
}

/* XDP: the source address of an Ethernet frame (IPv4-mapped for IPv4); 0 if none. */
static __always_inline int np_xdp_source(void *data, void *data_end, union np_addr *src)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return 0;
	__u16 proto = bpf_ntohs(eth->h_proto);
	void *pos = eth + 1;
	int tags = 0;
	if (np_skip_vlans(&pos, data_end, &proto, &tags))
		return 0;
	if (proto == NP_ETH_P_IP) {
		struct iphdr *ip = pos;
		if ((void *)(ip + 1) > data_end)
			return 0;
		src->v6_32[0] = 0;
		src->v6_32[1] = 0;
		src->v4m.pad[2] = bpf_htonl(0xffff);
		src->v4m.v4 = ip->saddr;
		return 1;
	}
	if (proto == NP_ETH_P_IPV6) {
		struct ipv6hdr *ip6 = pos;
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(src, &ip6->saddr, 16);
		return 1;
	}
	return 0;
}

/* Blocklist check of one source address: counts a match in its rule's block_stats
 * (packets, bytes) and returns 1 when the packet is to be dropped (mitigation on). */
static __always_inline int np_source_blocked(const union np_addr *src, __u32 packets, __u64 bytes)
{
	struct np_block_key k = { .prefixlen = 128 };
	__builtin_memcpy(&k.addr, src, sizeof(k.addr));
	struct np_block_value *v = bpf_map_lookup_elem(&blocklist, &k);
	if (!v)
		return 0;
	__u32 rule = v->rule_id;
	struct np_counter *c = bpf_map_lookup_elem(&block_stats, &rule);
	if (c) {
		c->packets += packets;
		c->bytes += bytes;
	}
	return np_mitigate == NP_MITIGATE_ON;
}

/* XDP: returns 1 when the frame is to be dropped. */
static __always_inline int np_xdp_blocked(struct xdp_md *ctx, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	union np_addr src;
	if (!np_xdp_source(data, data_end, &src))
		return 0;
	return np_source_blocked(&src, 1, len);
}

#endif /* NETPROBE_SECURITY_H */
