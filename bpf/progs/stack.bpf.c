// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* NetProbe stack monitor: the socket layer and the network stack seen through
 * tracepoints (BTF-typed, tp_btf) and netfilter BPF links; no kprobes/fentry.
 *  - sock:inet_sock_set_state  TCP connection lifecycle + per-connection records
 *  - tcp:tcp_retransmit_skb    retransmitted segments, total and per connection
 *  - tcp:tcp_send_reset / tcp:tcp_receive_reset
 *  - tcp:tcp_probe             srtt and snd_cwnd log2 histograms
 *  - skb:kfree_skb             drops by the kernel's drop reason, location and 5-tuple
 *  - netfilter                 packets/bytes per hook x family x protocol
 *  - packet path tracing       netfilter stages, drops, socket reads/writes of traced
 *                              flows (bpf/lib/trace.h; attached only while a trace runs)
 * User space disables (autoload off) whatever the running kernel lacks. Every
 * program only observes; the netfilter program always returns NF_ACCEPT. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <netprobe/abi.h>
#include "stack_maps.h"
#include "parse.h" /* the IP protocol numbers */
#include "lookup.h"
#include "trace.h"

#define NP_NF_ACCEPT 1
#define NP_AF_INET 2
#define NP_AF_INET6 10
#define NP_NFPROTO_IPV4 2
#define NP_NFPROTO_IPV6 10

/* Set by user space before load: count only events of this network namespace
 * (inode of /proc/self/ns/net); 0 = every namespace. */
const volatile __u32 np_netns_filter = 0;

/* sk and skb are BTF pointers here (tp_btf and netfilter arguments): plain loads, no
 * helper call per hop (a pointer that faults reads as 0). */
static __always_inline __u32 np_sk_netns(const struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

static __always_inline int np_sk_wanted(const struct sock *sk)
{
	if (!np_netns_filter)
		return 1;
	return sk && np_sk_netns(sk) == np_netns_filter;
}

/* Namespace of a packet: its device's, else its socket's; 0 if neither is known. */
static __always_inline __u32 np_skb_netns(const struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	if (dev)
		return dev->nd_net.net->ns.inum;
	struct sock *sk = skb->sk;
	if (sk)
		return np_sk_netns(sk);
	return 0;
}

static __always_inline int np_skb_wanted(const struct sk_buff *skb)
{
	return !np_netns_filter || np_skb_netns(skb) == np_netns_filter;
}

static __always_inline void np_tcp_count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&tcp_counters, &idx);
	if (v)
		*v += n;
}

static __always_inline void np_stack_error(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stack_errors, &idx);
	if (v)
		*v += 1;
}

static __always_inline void np_hist_add(__u32 hist, __u64 v)
{
	__u32 idx = hist * NP_HIST_SLOTS + np_log2_bucket(v);
	__u64 *c = bpf_map_lookup_elem(&tcp_hist, &idx);
	if (c)
		*c += 1;
	idx = hist * NP_HIST_SLOTS + NP_HIST_BUCKETS;
	__u64 *sum = bpf_map_lookup_elem(&tcp_hist, &idx);
	if (sum)
		*sum += v;
}

static __always_inline void np_fill_endpoints(struct np_conn *c, const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	c->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == NP_AF_INET6) {
		c->family = 6;
		BPF_CORE_READ_INTO(&c->saddr.v6, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&c->daddr.v6, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		c->family = 4;
		c->saddr.v4m.pad[2] = bpf_htonl(0x0000ffff);
		c->saddr.v4m.v4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		c->daddr.v4m.pad[2] = bpf_htonl(0x0000ffff);
		c->daddr.v4m.v4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	}
}

/* Reads the TCP health fields kept in struct tcp_sock. */
static __always_inline void np_fill_tcp(struct np_conn *c, const struct sock *sk, int final)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	c->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	c->bytes_received = BPF_CORE_READ(tp, bytes_received);
	c->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	c->snd_cwnd = BPF_CORE_READ(tp, snd_cwnd);
	if (final)
		c->retransmits = BPF_CORE_READ(tp, total_retrans);
}

static __always_inline void np_new_record(const struct sock *sk, __u8 origin, __u64 now)
{
	struct np_conn c = {};
	__u64 key = (__u64)(unsigned long)sk;
	np_fill_endpoints(&c, sk);
	c.origin = origin;
	c.state = origin == NP_CONN_ACTIVE ? TCP_SYN_SENT : TCP_SYN_RECV;
	c.start_ns = now;
	c.netns = np_sk_netns(sk);
	c.sock = key;
	/* the same cookie inet_diag reports (idiag_cookie): lets user space find records
	 * whose close it never saw (a missed event) and remove them */
	c.cookie = bpf_get_socket_cookie((void *)sk);
	c.cgroup_id = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	if (origin == NP_CONN_ACTIVE) {
		/* connect() runs in the owner's context; the passive side is created in
		 * softirq, where the current task is unrelated: leave pid/comm empty. */
		c.pid = (__u32)(bpf_get_current_pid_tgid() >> 32);
		bpf_get_current_comm(&c.comm, sizeof(c.comm));
	}
	int exists = bpf_map_lookup_elem(&conn_table, &key) != 0;
	if (bpf_map_update_elem(&conn_table, &key, &c, BPF_ANY)) {
		np_stack_error(NP_STACK_ERR_CONN_INSERT);
		return;
	}
	if (!exists) /* a reused socket address overwrote a stale record */
		np_tcp_count(NP_TCP_TRACKED_DELTA, 1);
}

static __always_inline void np_close_record(const struct sock *sk, int failed, __u64 now)
{
	__u64 key = (__u64)(unsigned long)sk;
	struct np_conn *c = bpf_map_lookup_elem(&conn_table, &key);
	if (!c)
		return; /* opened before NetProbe started, or the table was full */
	struct np_conn *ev = bpf_ringbuf_reserve(&conn_events, sizeof(*ev), 0);
	if (ev) {
		__builtin_memcpy(ev, c, sizeof(*ev));
		/* connect() records its SYN_SENT before the local port is chosen; at CLOSE
		 * the socket may already have given its port back (TIME_WAIT hand-over),
		 * so only a port still unknown is read again. */
		if (!ev->sport)
			ev->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
		np_fill_tcp(ev, sk, 1);
		ev->state = TCP_CLOSE;
		ev->failed = (__u8)failed;
		ev->end_ns = now;
		bpf_ringbuf_submit(ev, 0);
	} else {
		np_stack_error(NP_STACK_ERR_RINGBUF);
	}
	if (bpf_map_delete_elem(&conn_table, &key) == 0)
		np_tcp_count(NP_TCP_TRACKED_DELTA, (__u64)-1);
}

static __always_inline int np_was_established(int state)
{
	return state == TCP_ESTABLISHED || state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 ||
	       state == TCP_CLOSE_WAIT || state == TCP_LAST_ACK || state == TCP_CLOSING ||
	       state == TCP_TIME_WAIT;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(netprobe_sk_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != NP_IPPROTO_TCP || !np_sk_wanted(sk))
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 key = (__u64)(unsigned long)sk;

	if (newstate == TCP_SYN_SENT && oldstate == TCP_CLOSE) {
		np_new_record(sk, NP_CONN_ACTIVE, now);
		return 0;
	}
	if (newstate == TCP_SYN_RECV) {
		np_new_record(sk, NP_CONN_PASSIVE, now);
		return 0;
	}
	if (newstate == TCP_ESTABLISHED) {
		if (oldstate == TCP_SYN_SENT)
			np_tcp_count(NP_TCP_OPENED_ACTIVE, 1);
		else if (oldstate == TCP_SYN_RECV)
			np_tcp_count(NP_TCP_OPENED_PASSIVE, 1);
		struct np_conn *c = bpf_map_lookup_elem(&conn_table, &key);
		if (c) {
			c->state = TCP_ESTABLISHED;
			c->established_ns = now;
			np_fill_endpoints(c, sk); /* the local address is final now */
		}
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		if (oldstate == TCP_SYN_SENT) {
			np_tcp_count(NP_TCP_FAILED, 1);
			np_close_record(sk, 1, now);
		} else if (np_was_established(oldstate)) {
			np_tcp_count(NP_TCP_CLOSED, 1);
			np_close_record(sk, 0, now);
		} else if (oldstate == TCP_SYN_RECV) {
			np_close_record(sk, 1, now);
		}
		return 0;
	}
	struct np_conn *c = bpf_map_lookup_elem(&conn_table, &key);
	if (c)
		c->state = (__u8)newstate;
	return 0;
}

/* The kernel (6.13+) fires this on every retransmit attempt, with the error. It adds
 * the skb's segments to TcpRetransSegs and tcp_sock.total_retrans before handing the
 * skb to the device, so an attempt the device then drops (a full veth backlog:
 * NET_XMIT_DROP, err 1) is counted; the attempts that give up earlier (still in the
 * host queue, outside the window, no memory, no route) are not. */
static __always_inline int np_retx_counted_by_kernel(int err)
{
	return err == 0 || err > 0 /* NET_XMIT_* from the device */ ||
	       (err != -16 /* EBUSY */ && err != -22 /* EINVAL */ && err != -12 /* ENOMEM */ &&
	        err != -113 /* EHOSTUNREACH */ && err != -11 /* EAGAIN */);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(netprobe_tcp_retx, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (!np_sk_wanted(sk))
		return 0;
	__u64 key = (__u64)(unsigned long)sk;
	struct np_conn *c = bpf_map_lookup_elem(&conn_table, &key);
	if (c) {
		/* A tracked connection: exactly what the kernel added to total_retrans
		 * since the last look (retransmits of one socket run under its lock). */
		__u32 total = BPF_CORE_READ((const struct tcp_sock *)sk, total_retrans);
		__u32 delta = total - c->retransmits;
		if (delta) {
			c->retransmits = total;
			np_tcp_count(NP_TCP_RETRANS_SEGS, delta);
		}
		return 0;
	}
	if (!np_retx_counted_by_kernel(err))
		return 0;
	/* TcpRetransSegs counts segments: a GSO skb carries tcp_gso_segs of them. */
	const struct tcp_skb_cb *cb = (const struct tcp_skb_cb *)&skb->cb[0];
	__u32 segs = BPF_CORE_READ(cb, tcp_gso_segs);
	if (!segs)
		segs = 1;
	np_tcp_count(NP_TCP_RETRANS_SEGS, segs);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(netprobe_tcp_rst_tx, const struct sock *sk, const struct sk_buff *skb)
{
	/* sk is NULL for a reset answering a packet without a socket */
	if (np_netns_filter) {
		__u32 ns = sk ? np_sk_netns(sk) : (skb ? np_skb_netns(skb) : 0);
		if (ns != np_netns_filter)
			return 0;
	}
	np_tcp_count(NP_TCP_RST_SENT, 1);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(netprobe_tcp_rst_rx, const struct sock *sk)
{
	if (!np_sk_wanted(sk))
		return 0;
	np_tcp_count(NP_TCP_RST_RECEIVED, 1);
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(netprobe_tcp_probe, const struct sock *sk, const struct sk_buff *skb)
{
	if (!np_sk_wanted(sk))
		return 0;
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	/* Sampled: this fires for every segment a socket receives (every ACK of a bulk
	 * sender). A connection's first 8 segments are all taken (short connections get
	 * their RTT), then about 1 in 8 (segs_in moves by the GRO segment count). At 20
	 * Gbit/s this was most of the agent's cost on the TCP path (docs/benchmarks.md). */
	__u32 segs = BPF_CORE_READ(tp, segs_in);
	if (segs > 8 && (segs & 7))
		return 0;
	__u32 srtt = BPF_CORE_READ(tp, srtt_us) >> 3;
	__u32 cwnd = BPF_CORE_READ(tp, snd_cwnd);
	if (srtt)
		np_hist_add(NP_HIST_SRTT_US, srtt);
	np_hist_add(NP_HIST_CWND, cwnd);
	__u64 key = (__u64)(unsigned long)sk;
	struct np_conn *c = bpf_map_lookup_elem(&conn_table, &key);
	if (c) {
		c->srtt_us = srtt;
		c->snd_cwnd = cwnd;
	}
	return 0;
}

/* The 5-tuple of skb's IP header (skb->head + network_header) into k (IPv4 stored
 * IPv4-mapped; ports 0 for other protocols and later fragments); 0 when the header is not
 * set or not IP (an early drop before the IP layer). skb: a BTF pointer (its fields are
 * loads); the headers are probe reads (skb->head is a plain address to the verifier). */
static __always_inline int np_skb_tuple(const struct sk_buff *skb, struct flow_key *k)
{
	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	__u16 proto_be = skb->protocol;
	if (!head || nh == (__u16)~0U)
		return 0;
	__u32 l4 = 0;
	int ports = 0;
	if (proto_be == bpf_htons(0x0800)) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) || ip.version != 4 || ip.ihl < 5)
			return 0;
		k->family = 4;
		k->src_ip.v4m.pad[2] = bpf_htonl(0x0000ffff);
		k->src_ip.v4m.v4 = ip.saddr;
		k->dst_ip.v4m.pad[2] = bpf_htonl(0x0000ffff);
		k->dst_ip.v4m.v4 = ip.daddr;
		k->proto = ip.protocol;
		l4 = (__u32)nh + (__u32)ip.ihl * 4;
		ports = !(ip.frag_off & bpf_htons(0x1fff)); /* the first fragment carries them */
	} else if (proto_be == bpf_htons(0x86DD)) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh) || ip6.version != 6)
			return 0;
		k->family = 6;
		__builtin_memcpy(k->src_ip.v6, &ip6.saddr, 16);
		__builtin_memcpy(k->dst_ip.v6, &ip6.daddr, 16);
		k->proto = ip6.nexthdr;
		l4 = (__u32)nh + sizeof(ip6);
		ports = 1;
	} else {
		return 0;
	}
	if (ports && (k->proto == NP_IPPROTO_TCP || k->proto == NP_IPPROTO_UDP)) {
		__u16 p[2];
		if (!bpf_probe_read_kernel(p, sizeof(p), head + l4)) {
			k->src_port = bpf_ntohs(p[0]);
			k->dst_port = bpf_ntohs(p[1]);
		}
	}
	return 1;
}

/* New drop_flows entries each CPU may create per NP_DROP_FLOW_WINDOW_NS; 0 = no limit.
 * Set by user space before load from the table's size and how often it is read: a flood
 * of distinct 5-tuples (a random-port SYN flood drops every SYN and every RST answering
 * it) would otherwise insert into the LRU table - and evict from it - at every drop,
 * faster than user space reads it, so the evicted counts were lost anyway. */
const volatile __u32 np_drop_flow_budget = 0;

/* This CPU's budget window (reset when NP_DROP_FLOW_WINDOW_NS have passed), or NULL
 * without a budget. */
static __always_inline struct np_drop_flow_window *np_drop_flow_window_now(void)
{
	if (!np_drop_flow_budget)
		return 0;
	__u32 zero = 0;
	struct np_drop_flow_window *w = bpf_map_lookup_elem(&drop_flow_window, &zero);
	if (!w)
		return 0;
	__u64 now = bpf_ktime_get_ns(); /* tracing programs have no coarse clock helper */
	if (now - w->start_ns >= NP_DROP_FLOW_WINDOW_NS) {
		w->start_ns = now;
		w->created = 0;
	}
	return w;
}

/* The dropped packet's 5-tuple, counted per reason in drop_flows while this CPU's budget
 * of new entries lasts in the current window: an existing entry, or a new one that
 * takes from the budget. Once the window's budget is spent, the drop is counted as over
 * it without parsing the packet or looking the table up (a flood of distinct 5-tuples
 * spent it: each such drop was a lookup that missed, the largest part of this program's
 * time), so drops of a 5-tuple already in the table are unattributed for the rest of
 * that window too. Every drop is counted by reason and location either way. */
static __always_inline void np_drop_flow(const struct sk_buff *skb, __u32 reason)
{
	struct np_drop_flow_window *w = np_drop_flow_window_now();
	/* (a drop without an IP header, which has no 5-tuple anyway, counts here too) */
	if (w && w->created >= np_drop_flow_budget) {
		np_stack_error(NP_STACK_ERR_DROP_FLOW_BUDGET);
		return;
	}
	struct flow_key f = {};
	if (!np_skb_tuple(skb, &f))
		return;
	struct np_drop_flow_key k = {.reason = reason > 0xffff ? 0xffff : (__u16)reason};
	k.family = f.family;
	__builtin_memcpy(&k.saddr, &f.src_ip, sizeof(k.saddr));
	__builtin_memcpy(&k.daddr, &f.dst_ip, sizeof(k.daddr));
	k.proto = f.proto;
	k.sport = f.src_port;
	k.dport = f.dst_port;
	__u64 *n = bpf_map_lookup_elem(&drop_flows, &k);
	if (n) {
		*n += 1;
		return;
	}
	if (w)
		w->created += 1;
	__u64 one = 1;
	enum np_lookup_result r = np_insert_or_get(&drop_flows, &k, &one, (void **)&n);
	if (r == NP_FOUND && n)
		*n += 1;
	else if (r == NP_FAILED)
		np_stack_error(NP_STACK_ERR_DROP_FLOW);
}

/* A traced flow's drop: counted at the netfilter stage this skb last reached on this
 * CPU, else before netfilter (received, or locally sent); user space refines the
 * stage by reason (socket-level reasons: the socket). skb_addr: the skb's address as a
 * number, compared with what the netfilter stages remembered. */
static __always_inline void np_trace_drop(const struct sk_buff *skb, __u64 skb_addr, __u32 reason)
{
	struct flow_key k = {};
	if (!np_skb_tuple(skb, &k))
		return;
	int m = np_trace_find(&k, 0);
	if (!m)
		return;
	__u32 slot = (__u32)(m - 1) / NP_TRACE_DIRS;
	__u32 dir = (__u32)(m - 1) % NP_TRACE_DIRS;
	__u32 stage = BPF_CORE_READ(skb, skb_iif) ? NP_TRACE_STAGE_BEFORE_NF_RX : NP_TRACE_STAGE_BEFORE_NF_TX;
	struct np_trace_last *l = bpf_map_lookup_elem(&trace_last, &slot);
	if (l && l->skb == skb_addr) {
		stage = l->stage;
		l->skb = 0; /* the skb is gone: its address may come back as another packet */
	}
	np_trace_count_key(&trace_drops, slot, dir, stage, reason, NP_TRACE_ERR_DROPS);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(netprobe_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	if (!np_skb_wanted(skb))
		return 0;
	__u32 idx = (__u32)reason;
	if (idx >= NP_DROP_REASON_MAX - 1)
		idx = NP_DROP_REASON_MAX - 1;
	__u64 *v = bpf_map_lookup_elem(&drop_reasons, &idx);
	if (v)
		*v += 1;

	struct np_drop_loc_key lk = { .location = (__u64)(unsigned long)location, .reason = (__u32)reason };
	__u64 one = 1;
	__u64 *n = 0;
	enum np_lookup_result r = np_lookup_or_init(&drop_locations, &lk, &one, (void **)&n);
	if (r == NP_FOUND && n)
		*n += 1;
	else if (r == NP_FAILED)
		np_stack_error(NP_STACK_ERR_DROP_LOC);
	np_drop_flow(skb, (__u32)reason);
	if (np_trace_on) {
		/* the skb's address as a number (ctx[0] holds it): compared, never dereferenced */
		__u64 addr = 0;
		bpf_probe_read_kernel(&addr, sizeof(addr), &ctx[0]);
		np_trace_drop(skb, addr, (__u32)reason);
	}
	return 0;
}

/* Netfilter: libbpf 1.1 does not know this section; user space sets the program
 * type (BPF_PROG_TYPE_NETFILTER) and expected attach type (BPF_NETFILTER) before
 * load, and attaches one link per hook and family in its own network namespace. */
SEC("netfilter")
int netprobe_nf(struct bpf_nf_ctx *ctx)
{
	const struct nf_hook_state *st = ctx->state;
	struct sk_buff *skb = ctx->skb;
	if (!st || !skb)
		return NP_NF_ACCEPT;
	/* ctx->state and ctx->skb are BTF pointers: plain loads (JIT-inlined, CO-RE
	 * relocated) instead of a bpf_probe_read_kernel() call per field. */
	__u32 hook = st->hook;
	__u32 pf = st->pf;
	if (hook >= NP_NF_HOOK_MAX)
		return NP_NF_ACCEPT;
	__u32 fam;
	__u32 off;
	if (pf == NP_NFPROTO_IPV4) {
		fam = NP_NF_IPV4;
		off = 9; /* iphdr.protocol */
	} else if (pf == NP_NFPROTO_IPV6) {
		fam = NP_NF_IPV6;
		off = 6; /* ipv6hdr.nexthdr (first header after the fixed one) */
	} else {
		return NP_NF_ACCEPT;
	}
	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	__u8 l4 = 0;
	bpf_probe_read_kernel(&l4, 1, head + nh + off);
	__u32 proto = NP_NF_PROTO_OTHER;
	if (l4 == NP_IPPROTO_TCP)
		proto = NP_NF_PROTO_TCP;
	else if (l4 == NP_IPPROTO_UDP)
		proto = NP_NF_PROTO_UDP;
	else if (l4 == NP_IPPROTO_ICMP || l4 == NP_IPPROTO_ICMPV6)
		proto = NP_NF_PROTO_ICMP;
	__u32 idx = (hook * NP_NF_FAMILY_MAX + fam) * NP_NF_PROTO_MAX + proto;
	struct np_counter *c = bpf_map_lookup_elem(&nf_stats, &idx);
	if (c) {
		c->packets += 1;
		c->bytes += skb->len;
	}
	return NP_NF_ACCEPT;
}

/* Packet path tracing at the five netfilter hooks: attached (both families) only while
 * a trace is active, at the first priority there is (before conntrack, NAT and every
 * filter chain), so a packet a rule drops was seen at its hook first. */
SEC("netfilter")
int netprobe_nf_trace(struct bpf_nf_ctx *ctx)
{
	const struct nf_hook_state *st = ctx->state;
	struct sk_buff *skb = ctx->skb;
	if (!st || !skb || !np_trace_on)
		return NP_NF_ACCEPT;
	__u32 hook = st->hook;
	if (hook > 4)
		return NP_NF_ACCEPT;
	/* the device the packet came in on (prerouting, input), or goes out of */
	struct net_device *dev = hook <= 1 ? st->in : st->out;
	__u32 ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	struct flow_key k = {};
	if (!np_skb_tuple(skb, &k))
		return NP_NF_ACCEPT;
	int m = np_trace_packet(&k, NP_TRACE_PREROUTING + hook, ifindex, skb->len);
	if (m) {
		/* remembered for a drop of this skb (a later rule of this hook, or later) */
		__u32 slot = (__u32)(m - 1) / NP_TRACE_DIRS;
		struct np_trace_last *l = bpf_map_lookup_elem(&trace_last, &slot);
		if (l) {
			__u64 addr = 0;
			bpf_probe_read_kernel(&addr, sizeof(addr), &ctx->skb);
			l->skb = addr;
			l->stage = NP_TRACE_PREROUTING + hook;
			l->dir = (__u32)(m - 1) % NP_TRACE_DIRS;
		}
	}
	return NP_NF_ACCEPT;
}

/* A socket's flow as its packets travel: rx (read) remote -> local, else local ->
 * remote. An unconnected or unbound side is all zero (the trace's wildcard match). */
static __always_inline void np_sock_tuple(const struct sock *sk, struct flow_key *k, int rx)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	union np_addr local = {}, remote = {};
	if (family == NP_AF_INET6) {
		k->family = 6;
		BPF_CORE_READ_INTO(&local.v6, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&remote.v6, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		k->family = 4;
		local.v4m.pad[2] = bpf_htonl(0x0000ffff);
		local.v4m.v4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		remote.v4m.pad[2] = bpf_htonl(0x0000ffff);
		remote.v4m.v4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	}
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	k->proto = (__u8)BPF_CORE_READ(sk, sk_protocol);
	if (k->proto != NP_IPPROTO_TCP && k->proto != NP_IPPROTO_UDP)
		lport = rport = 0; /* ICMP and raw sockets: the flows have no ports */
	if (rx) {
		k->src_ip = remote;
		k->dst_ip = local;
		k->src_port = rport;
		k->dst_port = lport;
	} else {
		k->src_ip = local;
		k->dst_ip = remote;
		k->src_port = lport;
		k->dst_port = rport;
	}
}

/* A process moved len bytes through a socket of a traced flow (its own context: the
 * process is the current task). */
static __always_inline void np_trace_sock(const struct sock *sk, int len, int rx)
{
	struct flow_key k = {};
	np_sock_tuple(sk, &k, rx);
	int m = np_trace_find(&k, 1);
	if (!m)
		return;
	__u32 idx = (__u32)(m - 1) * NP_TRACE_STAGE_MAX + NP_TRACE_SOCKET;
	struct np_counter *c = bpf_map_lookup_elem(&trace_counts, &idx);
	if (c) {
		c->packets += 1;
		c->bytes += (__u64)len;
	}
	struct np_trace_proc_key pk = {
		.slot = (__u8)((__u32)(m - 1) / NP_TRACE_DIRS),
		.dir = (__u8)((__u32)(m - 1) % NP_TRACE_DIRS),
		.tgid = (__u32)(bpf_get_current_pid_tgid() >> 32),
	};
	struct np_trace_proc *p = bpf_map_lookup_elem(&trace_procs, &pk);
	if (p) {
		__sync_fetch_and_add(&p->calls, 1);
		__sync_fetch_and_add(&p->bytes, (__u64)len);
		return;
	}
	struct np_trace_proc init = {.calls = 1, .bytes = (__u64)len};
	bpf_get_current_comm(&init.comm, sizeof(init.comm));
	long r = bpf_map_update_elem(&trace_procs, &pk, &init, BPF_NOEXIST);
	if (r == -17 /* EEXIST: the same process on another CPU */) {
		p = bpf_map_lookup_elem(&trace_procs, &pk);
		if (p) {
			__sync_fetch_and_add(&p->calls, 1);
			__sync_fetch_and_add(&p->bytes, (__u64)len);
		}
	} else if (r) {
		np_trace_error(NP_TRACE_ERR_PROCS);
	}
}

#define NP_MSG_PEEK 2

SEC("tp_btf/sock_recv_length")
int BPF_PROG(netprobe_sock_recv, struct sock *sk, int ret, int flags)
{
	if (!np_trace_on || ret <= 0 || (flags & NP_MSG_PEEK) || !sk || !np_sk_wanted(sk))
		return 0;
	np_trace_sock(sk, ret, 1);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(netprobe_sock_send, struct sock *sk, int ret, int flags)
{
	if (!np_trace_on || ret <= 0 || !sk || !np_sk_wanted(sk))
		return 0;
	np_trace_sock(sk, ret, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
