/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Name capture: the heads of the payloads that carry names, for matching domain
 * indicators where the L7 capture (syscalls) is off. Two kinds of packets:
 *  - DNS responses over UDP (source port 53), every one: each carries its question
 *    and answers, and user space parses the message;
 *  - TLS ClientHello: a TCP payload starting with a handshake record (0x16 0x03 x) of
 *    handshake type 1, looked for in the first few packets of a flow only (its
 *    CPU's copy of the flow entry counts them), so a bulk transfer costs one compare
 *    per packet.
 * At most NP_NAME_CAP bytes of each go on the name_events ring; a failed reserve is
 * counted in map_errors[NP_MAP_NAME_EVENTS]. A build without it (np_enable_names 0)
 * has none of this. */
#ifndef NETPROBE_NAMES_H
#define NETPROBE_NAMES_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netprobe/abi.h>
#include "maps.h"

const volatile __u32 np_enable_names = 0;

/* 512 KiB: a DNS answer takes ~100-200 bytes of it, a ClientHello up to 1 KiB (user
 * space sizes it down to one page when name capture is off). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 19);
} name_events SEC(".maps");

/* The record is built here, then only its header and the captured bytes are copied
 * to the ring (records of the payload's size, not NP_NAME_CAP). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_name_event);
	__uint(max_entries, 1);
} name_scratch SEC(".maps");

#define NP_NAME_HELLO_PACKETS 4 /* a ClientHello is among a flow's first packets */

/* Copies the payload head at off (len bytes in the packet) for kind. Global function:
 * verified once on its own. */
__attribute__((noinline)) int np_name_emit(struct __sk_buff *skb, const struct flow_key *key, __u32 kind, __u32 off,
					   __u32 len)
{
	if (!skb || !key)
		return 0;
	__u32 zero = 0;
	struct np_name_event *e = bpf_map_lookup_elem(&name_scratch, &zero);
	if (!e)
		return 0;
	__u64 cap = len < NP_NAME_CAP ? len : NP_NAME_CAP; /* 64 bits: the register passed is the one tested */
	/* clang would pass len itself to the helper, whose bounds the verifier does not
	 * know: make it forget that cap <= NP_NAME_CAP, so the test below is a real one on
	 * the register that is passed */
	asm volatile("" : "+r"(cap));
	if (cap == 0 || cap > NP_NAME_CAP || bpf_skb_load_bytes(skb, off, e->data, cap) != 0)
		return 0;
	e->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&e->key, key, sizeof(e->key));
	e->kind = (__u8)kind;
	e->pad = 0;
	e->cap_len = (__u16)cap;
	e->payload_len = len;
	if (bpf_ringbuf_output(&name_events, e, NP_NAME_HDR_LEN + cap, 0) != 0)
		np_count_map_error(NP_MAP_NAME_EVENTS);
	return 1;
}

/* After the packet was accounted: flow_packets is the count on this CPU of the connection its flow entry holds
 * (0 when it has none). */
static __always_inline void np_names_check(struct __sk_buff *skb, const struct np_packet *pkt, __u32 segs,
					   __u64 flow_packets)
{
	if (!np_enable_names || segs != 1 || pkt->frag != NP_FRAG_NONE)
		return;
	__u32 skb_len = skb->len;
	if (pkt->key.proto == NP_IPPROTO_UDP) {
		if (pkt->key.src_port != 53)
			return;
		__u32 off = (__u32)pkt->l4_off + 8;
		if (skb_len > off + 12) /* at least a DNS header */
			np_name_emit(skb, &pkt->key, NP_NAME_DNS, off, skb_len - off);
		return;
	}
	if (pkt->key.proto != NP_IPPROTO_TCP || flow_packets == 0 || flow_packets > NP_NAME_HELLO_PACKETS)
		return;
	__u32 off = (__u32)pkt->l4_off + (__u32)pkt->tcp_doff * 4;
	if (skb_len < off + 6)
		return;
	__u8 h[6];
	if (bpf_skb_load_bytes(skb, off, h, sizeof(h)) != 0)
		return;
	/* record type handshake, version 3.x, handshake type ClientHello */
	if (h[0] != 0x16 || h[1] != 0x03 || h[2] > 0x04 || h[5] != 0x01)
		return;
	np_name_emit(skb, &pkt->key, NP_NAME_TLS_HELLO, off, skb_len - off);
}

#endif /* NETPROBE_NAMES_H */
