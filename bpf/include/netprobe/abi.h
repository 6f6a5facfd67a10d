/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * NetProbe kernel <-> user-space ABI.
 *
 * Every map key, map value and enum shared by the BPF programs and the C++
 * library lives here, in plain C with fixed-width types and explicit padding.
 * Both sides include this one header; static_asserts at the bottom pin sizes
 * and offsets so a layout change fails the build on both sides at once.
 * Versioning rule: append fields, never reorder; mark retired fields reserved.
 */
#ifndef NETPROBE_ABI_H
#define NETPROBE_ABI_H

#ifdef __BPF__
/* vmlinux.h already provides __u8 ... __u64 for BPF programs. */
#else
#include <linux/types.h>
#include <stddef.h>
#endif

#define NP_ABI_VERSION 1

/* Traffic direction, as the spec's tc_device_key.direction: 0=ingress, 1=egress. */
enum np_direction {
	NP_DIR_INGRESS = 0,
	NP_DIR_EGRESS = 1,
	NP_DIR_MAX = 2,
};

/* Protocol classes counted in packet_stats (one packet can count in several:
 * e.g. an 802.1Q-tagged IPv4/TCP first fragment counts in VLAN, IPV4, TCP, FRAGMENT). */
enum np_proto_class {
	NP_PROTO_IPV4 = 0,
	NP_PROTO_IPV6,
	NP_PROTO_ARP,
	NP_PROTO_OTHER_L3,
	NP_PROTO_TCP,
	NP_PROTO_UDP,
	NP_PROTO_ICMP,
	NP_PROTO_ICMPV6,
	NP_PROTO_OTHER_L4,
	NP_PROTO_VLAN,     /* carried at least one 802.1Q/802.1ad tag */
	NP_PROTO_MPLS,     /* carried an MPLS label stack */
	NP_PROTO_FRAGMENT, /* IPv4 or IPv6 fragment (first or later) */
	NP_PROTO_MAX,
};

/* Why a packet was counted as malformed. A malformed packet is counted in the
 * interface counters but never creates or updates a flow. */
enum np_malformed_reason {
	NP_MAL_NONE = 0,
	NP_MAL_TRUNCATED_ETH,
	NP_MAL_TRUNCATED_VLAN,
	NP_MAL_TOO_MANY_VLAN,   /* more tags than the parser follows */
	NP_MAL_TRUNCATED_MPLS,
	NP_MAL_MPLS_TOO_DEEP,   /* label stack deeper than the parser follows */
	NP_MAL_MPLS_BAD_PAYLOAD,/* bottom of stack, payload neither IPv4 nor IPv6 */
	NP_MAL_TRUNCATED_IPV4,
	NP_MAL_IPV4_BAD_IHL,    /* IHL < 5 */
	NP_MAL_IPV4_BAD_LENGTH, /* total length < header length or > frame */
	NP_MAL_IPV4_BAD_VERSION,
	NP_MAL_TRUNCATED_IPV6,
	NP_MAL_IPV6_BAD_LENGTH, /* payload length > frame */
	NP_MAL_IPV6_BAD_VERSION,
	NP_MAL_TRUNCATED_IPV6_EXT,
	NP_MAL_IPV6_EXT_TOO_MANY, /* longer extension-header chain than the parser follows */
	NP_MAL_TRUNCATED_TCP,
	NP_MAL_TCP_BAD_DOFF,    /* data offset < 5 */
	NP_MAL_TRUNCATED_UDP,
	NP_MAL_UDP_BAD_LENGTH,
	NP_MAL_TRUNCATED_ICMP,
	NP_MAL_REASON_MAX,
};

/* Failures counted in-kernel, exported as netprobe_map_update_errors_total{map}. */
enum np_map_id {
	NP_MAP_TC_DEVICE_STATS = 0,
	NP_MAP_FLOW_STATS,
	NP_MAP_FRAG_TRACK,
	NP_MAP_XDP_DEVICE_STATS,
	NP_MAP_ICMP_STATS,
	NP_MAP_SEC_EVENTS,  /* security ring buffer: reserve failed (event lost) */
	NP_MAP_HOST_STATS,  /* security per-host counters: insert failed */
	NP_MAP_SEC_FLOW_SEEN, /* security: announced-flow slot not found (sec_flow_seen; cannot happen) */
	NP_MAP_NAME_EVENTS, /* name capture ring (DNS answers, TLS ClientHello): reserve failed */
	NP_MAP_TCP_HANDSHAKES, /* handshake timing: a handshake in progress lost its slot to another's SYN (not timed) */
	NP_MAP_HANDSHAKE_EVENTS, /* handshake ring: reserve failed (a sample lost) */
	NP_MAP_UDP_TIMING, /* UDP inter-arrival timing: LRU insert failed (that flow not timed) */
	NP_MAP_ID_MAX,
};

/* Interfaces with ifindex < NP_DEV_SLOTS keep their counters in per-CPU arrays
 * (tc_device_stats[ifindex * NP_DIR_MAX + direction], xdp_device_stats[ifindex]),
 * whose lookups the JIT inlines; larger ifindexes fall back to per-CPU hashes
 * keyed by struct tc_device_key (tc_device_stats_hi, xdp_device_stats_hi). */
#define NP_DEV_SLOTS 4096

/* Parser limits (bounded loops). */
#define NP_MAX_VLAN_TAGS 2
#define NP_MAX_MPLS_LABELS 8
#define NP_MAX_IPV6_EXT_HDRS 8

/* The spec's tc_device_key with stat_type folded into the value (packets and
 * bytes travel together, so one lookup per packet, not two). Key of the
 * *_device_stats_hi hashes (XDP uses direction NP_DIR_INGRESS). */
struct tc_device_key {
	__u32 ifindex;
	__u32 direction; /* enum np_direction */
};

/* A packets/bytes pair: the value of tc_device_stats, packet_stats,
 * xdp_device_stats (all per-CPU; user space sums the CPUs). */
struct np_counter {
	__u64 packets;
	__u64 bytes;
};

/* IP addresses are 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so one
 * key type serves both families. */
union np_addr {
	__u8 v6[16];
	__u32 v6_32[4];
	struct {
		__u32 pad[3];
		__u32 v4; /* network byte order */
	} v4m;
};

/* Overlay encapsulations the datapath decapsulates (flow_key.encap, overlay_stats).
 * A tunnel packet is accounted twice on the interface that carries it: its outer
 * (underlay) flow with encap NP_ENCAP_NONE, as any packet, and the flow of the packet
 * it carries with encap set to how it was carried. One level only. */
enum np_encap {
	NP_ENCAP_NONE = 0,
	NP_ENCAP_VXLAN = 1,       /* UDP to 4789 (IANA) or 8472 (Linux's default, Flannel), I flag set: RFC 7348 */
	NP_ENCAP_GENEVE = 2,      /* UDP to 6081, version 0: RFC 8926 */
	NP_ENCAP_IPIP = 3,        /* IPv4 in IPv4 (protocol 4): RFC 2003 */
	NP_ENCAP_IP6IP6 = 4,      /* IPv6 in IPv6 (next header 41): RFC 2473 */
	NP_ENCAP_IP6_IN_IP4 = 5,  /* IPv6 in IPv4 (protocol 41: sit, 6in4): RFC 4213 */
	NP_ENCAP_IP4_IN_IP6 = 6,  /* IPv4 in IPv6 (next header 4): RFC 2473 */
	NP_ENCAP_GRE = 7,         /* GRE version 0 (protocol 47) carrying IPv4, IPv6 or Ethernet: RFC 2784, 2890 */
	NP_ENCAP_MAX,
};

/* flow_stats key: the spec's 5-tuple widened for IPv6, plus where it was seen. */
struct flow_key {
	union np_addr src_ip;
	union np_addr dst_ip;
	__u16 src_port;  /* host byte order; 0 for protocols without ports */
	__u16 dst_port;  /* host byte order */
	__u8 proto;      /* IPPROTO_* */
	__u8 family;     /* 4 or 6 */
	__u8 direction;  /* enum np_direction */
	__u8 encap;      /* enum np_encap: NP_ENCAP_NONE for every packet as it is on the wire
	                  * (formerly `reserved`, always 0); else the inner flow of a tunnel
	                  * packet seen on this interface */
	__u32 ifindex;
};

/* flow_stats map value (per-CPU: user space sums packets/bytes, takes min first_seen,
 * max last_seen and ORs the TCP flags). Times are CLOCK_MONOTONIC at jiffy resolution (the
 * coarse clock, computed from jiffies: bpf/lib/clock.h), the same clock as bpf_ktime_get_ns(). */
struct np_flow_stats {
	__u64 packets;
	__u64 bytes;
	__u64 first_seen_ns;
	__u64 last_seen_ns;
	__u8 tcp_flags; /* OR of every TCP flags byte seen (FIN=0x01 ... CWR=0x80) */
	/* Threat-intel verdict of this CPU's copy, cached so a flow's later packets pay
	 * no trie lookup (bpf/lib/intel.h): valid while intel_gen equals the current
	 * generation of the indicator set. Per CPU; user space ignores these fields. */
	__u8 intel_match; /* NP_INTEL_MATCH_* bits */
	__u16 intel_gen;
	__u16 intel_feed; /* feed index of the matched indicator (source side first) */
	/* Per CPU; user space ignores it. In an aggregate entry (flow pressure,
	 * bpf/progs/datapath.bpf.c): folded, its packets on this CPU since its last
	 * sec_events record that no record announced yet (records of an aggregate entry are
	 * limited to one per tick and CPU; the next one carries the count in
	 * np_sec_event.folded). In the entry of one 5-tuple: conn_mark, NP_CONN_MARK_SET |
	 * the low 15 bits of this copy's packet count before the connection now on the
	 * 5-tuple began - set on every CPU's copy by a SYN that finds the entry quiet for
	 * NP_FLOW_REUSE_IDLE_NS (a client reused the 5-tuple before user space removed the
	 * idle entry), 0 while the entry holds its first connection. The checks of a
	 * connection's first packets (handshake timing, names) count from it. */
	union {
		__u16 folded;
		__u16 conn_mark;
	};
};
#define NP_CONN_MARK_SET 0x8000
#define NP_CONN_MARK_MASK 0x7fff
/* A SYN without ACK on a 5-tuple whose entry this CPU has not updated for this long
 * begins a new connection on it (a retransmitted SYN, at least a second after the first,
 * marks it again: harmless). A SYN flood on one 5-tuple keeps the entry busy and pays
 * nothing more. */
#define NP_FLOW_REUSE_IDLE_NS (100ULL * 1000000ULL)
/* The CPUs whose copies a new connection on a reused 5-tuple marks: at most this many
 * (a larger machine's later CPUs keep the previous connection's count, and their
 * first-packet checks miss that connection). */
#define NP_MAX_CPUS 1024

/* frag_track map key: identifies the fragments of one datagram so later fragments
 * (which carry no L4 header) can be attributed to their flow's ports. */
struct np_frag_key {
	union np_addr src_ip;
	union np_addr dst_ip;
	__u32 id;    /* IPv4 identification (16 bits) or IPv6 fragment id */
	__u8 proto;  /* IPv4: the IP protocol; IPv6: 0 (a later fragment's Fragment
	              * header may name an extension header, not the L4 protocol) */
	__u8 family;
	__u16 reserved;
};

/* frag_track value: what the first fragment revealed. */
struct np_frag_ports {
	__u16 src_port;
	__u16 dst_port;
	__u8 proto; /* final L4 protocol after the extension-header chain */
	__u8 reserved[3];
};

/* overlay_stats (PERCPU_ARRAY, index = direction * NP_ENCAP_MAX + enum np_encap; slot
 * NP_ENCAP_NONE unused): tunnel packets seen by TC while decapsulation is on
 * (np_enable_decap), by how they were carried. packets/bytes: wire packets whose inner
 * packet was parsed, and their outer bytes (what the underlay carried, as the device
 * counters count them); inner_bytes: the inner bytes of the same packets (as their inner
 * flows count them); errors: packets that their tunnel header identified as tunnel
 * packets whose tunnel header or inner packet was truncated or malformed, or of an
 * unsupported version or flags: counted as usual, without an inner flow. */
struct np_overlay_counter {
	__u64 packets;
	__u64 bytes;
	__u64 inner_bytes;
	__u64 errors;
};

#ifdef __cplusplus
#define NP_STATIC_ASSERT static_assert
#else
#define NP_STATIC_ASSERT _Static_assert
#endif

#define NP_OFFSETOF(t, m) __builtin_offsetof(t, m)

NP_STATIC_ASSERT(sizeof(struct tc_device_key) == 8, "tc_device_key size");
NP_STATIC_ASSERT(sizeof(struct np_counter) == 16, "np_counter size");
NP_STATIC_ASSERT(sizeof(union np_addr) == 16, "np_addr size");
NP_STATIC_ASSERT(sizeof(struct flow_key) == 44, "flow_key size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct flow_key, dst_ip) == 16, "flow_key.dst_ip");
NP_STATIC_ASSERT(NP_OFFSETOF(struct flow_key, src_port) == 32, "flow_key.src_port");
NP_STATIC_ASSERT(NP_OFFSETOF(struct flow_key, proto) == 36, "flow_key.proto");
NP_STATIC_ASSERT(NP_OFFSETOF(struct flow_key, direction) == 38, "flow_key.direction");
NP_STATIC_ASSERT(NP_OFFSETOF(struct flow_key, encap) == 39, "flow_key.encap");
NP_STATIC_ASSERT(NP_OFFSETOF(struct flow_key, ifindex) == 40, "flow_key.ifindex");
NP_STATIC_ASSERT(sizeof(struct np_flow_stats) == 40, "flow_stats size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_flow_stats, tcp_flags) == 32, "flow_stats.tcp_flags");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_flow_stats, intel_gen) == 34, "flow_stats.intel_gen");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_flow_stats, intel_feed) == 36, "flow_stats.intel_feed");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_flow_stats, folded) == 38, "flow_stats.folded");
NP_STATIC_ASSERT(sizeof(struct np_frag_key) == 40, "frag_key size");
NP_STATIC_ASSERT(sizeof(struct np_frag_ports) == 8, "np_frag_ports size");
NP_STATIC_ASSERT(sizeof(struct np_overlay_counter) == 32, "np_overlay_counter size");


/* ===================================================================== */
/* Socket layer, TCP health, drops and netfilter (bpf/progs/stack.bpf.c) */
/* ===================================================================== */

/* Counters of tcp_counters (PERCPU_ARRAY, index = enum np_tcp_counter). */
enum np_tcp_counter {
	NP_TCP_OPENED_ACTIVE = 0, /* SYN_SENT -> ESTABLISHED */
	NP_TCP_OPENED_PASSIVE,    /* SYN_RECV -> ESTABLISHED */
	NP_TCP_CLOSED,            /* an established connection reached CLOSE */
	NP_TCP_FAILED,            /* SYN_SENT -> CLOSE */
	NP_TCP_RETRANS_SEGS,      /* tcp_retransmit_skb, as TcpRetransSegs counts them, in segments */
	NP_TCP_RST_SENT,
	NP_TCP_RST_RECEIVED,
	NP_TCP_TRACKED_DELTA,     /* +1 per record inserted in conn_table, -1 per record removed */
	NP_TCP_COUNTER_MAX,
};

/* Failures counted in-kernel by the stack programs (stack_errors, PERCPU_ARRAY). */
enum np_stack_error {
	NP_STACK_ERR_CONN_INSERT = 0, /* conn_table full: connection not tracked */
	NP_STACK_ERR_RINGBUF,         /* conn_events reserve failed: close record lost */
	NP_STACK_ERR_DROP_LOC,        /* drop_locations full: a drop counted by reason only */
	NP_STACK_ERR_DROP_FLOW,       /* drop_flows insert failed: a drop not attributed to its flow */
	NP_STACK_ERR_DROP_FLOW_BUDGET, /* a drop of a 5-tuple new to drop_flows over the CPU's budget of
	                                * new entries (np_drop_flow_budget per NP_DROP_FLOW_WINDOW_NS):
	                                * counted by reason and location, not attributed to its flow */
	NP_STACK_ERR_MAX,
};

/* log2 histograms (tcp_hist, PERCPU_ARRAY of __u64, index = hist * NP_HIST_SLOTS + slot).
 * Slot b < NP_HIST_BUCKETS counts values v with 2^(b-1) < v <= 2^b (b = 0: v <= 1);
 * the last bucket also takes everything larger. Slot NP_HIST_BUCKETS holds the sum. */
enum np_hist_id {
	NP_HIST_SRTT_US = 0, /* tcp_probe srtt, microseconds */
	NP_HIST_CWND,        /* tcp_probe snd_cwnd, segments */
	NP_HIST_MAX,
};
#define NP_HIST_BUCKETS 32
#define NP_HIST_SLOTS (NP_HIST_BUCKETS + 1)

/* Bucket of v: the smallest b with v <= 2^b, capped at NP_HIST_BUCKETS - 1. Shared
 * by the BPF programs and user space (and unit-tested there). */
static inline __u32 np_log2_bucket(__u64 v)
{
	if (v <= 1)
		return 0;
	__u64 x = v - 1; /* b = number of significant bits of v - 1 */
	__u32 b = 0;
	if (x >> 32) { x >>= 32; b += 32; }
	if (x >> 16) { x >>= 16; b += 16; }
	if (x >> 8) { x >>= 8; b += 8; }
	if (x >> 4) { x >>= 4; b += 4; }
	if (x >> 2) { x >>= 2; b += 2; }
	if (x >> 1) { x >>= 1; b += 1; }
	b += (__u32)x;
	return b < NP_HIST_BUCKETS ? b : NP_HIST_BUCKETS - 1;
}

/* drop_reasons: PERCPU_ARRAY of __u64 indexed by enum skb_drop_reason; reasons at or
 * above NP_DROP_REASON_MAX - 1 (e.g. subsystem reasons) count in the last slot. */
#define NP_DROP_REASON_MAX 1024

/* drop_locations key (PERCPU_HASH, value __u64): where (kernel text address passed to
 * kfree_skb) packets were dropped, and why. Bounded by NP_DROP_LOC_MAX. */
struct np_drop_loc_key {
	__u64 location;
	__u32 reason;
	__u32 reserved;
};
#define NP_DROP_LOC_MAX 1024

/* drop_flows key (LRU_PERCPU_HASH, value __u64 packets): the 5-tuple of a dropped
 * packet as its IP header says (source -> destination) and the drop reason; ports 0 for protocols without
 * them and for later fragments. IPv6 extension headers are not walked (proto = the
 * first next header). */
struct np_drop_flow_key {
	union np_addr saddr;
	union np_addr daddr;
	__u16 sport; /* host byte order */
	__u16 dport;
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u16 reason; /* enum skb_drop_reason (at most 0xffff) */
};
#define NP_DROP_FLOW_MAX 4096
/* The window of the per-CPU budget of new drop_flows entries (stack.bpf.c). */
#define NP_DROP_FLOW_WINDOW_NS (100ULL * 1000000ULL)

/* netfilter hooks (NF_INET_*) and families counted in nf_stats
 * (PERCPU_ARRAY of struct np_counter, index = (hook * NP_NF_FAMILY_MAX + family) *
 * NP_NF_PROTO_MAX + proto). */
#define NP_NF_HOOK_MAX 5
enum np_nf_family {
	NP_NF_IPV4 = 0,
	NP_NF_IPV6,
	NP_NF_FAMILY_MAX,
};
enum np_nf_proto {
	NP_NF_PROTO_TCP = 0,
	NP_NF_PROTO_UDP,
	NP_NF_PROTO_ICMP, /* ICMP or ICMPv6 */
	NP_NF_PROTO_OTHER,
	NP_NF_PROTO_MAX,
};

/* How a tracked connection was opened. */
enum np_conn_origin {
	NP_CONN_UNKNOWN = 0,
	NP_CONN_ACTIVE = 1,  /* connect() */
	NP_CONN_PASSIVE = 2, /* accepted */
};

/* conn_table value (HASH keyed by the struct sock address) and the record sent on
 * conn_events when a connection closes. pid/comm are the task that called connect()
 * (active); for passive connections the kernel establishes them in softirq context,
 * where the current task is not the owner, so pid is 0 and comm empty. cgroup_id is
 * the socket's cgroup (v2), known for both. Times are bpf_ktime_get_ns(). */
struct np_conn {
	union np_addr saddr;
	union np_addr daddr;
	__u16 sport;         /* host byte order */
	__u16 dport;
	__u8 family;         /* 4 or 6 */
	__u8 origin;         /* enum np_conn_origin */
	__u8 state;          /* TCP state (TCP_ESTABLISHED = 1 ...); TCP_CLOSE in close records */
	__u8 failed;         /* 1: SYN_SENT -> CLOSE */
	__u32 pid;           /* tgid */
	char comm[16];
	__u32 reserved;
	__u64 cgroup_id;
	__u64 start_ns;      /* connect() (active) or SYN_RECV (passive) */
	__u64 established_ns;
	__u64 end_ns;        /* close records only */
	__u64 bytes_acked;   /* tcp_sock.bytes_acked (sent and acknowledged) */
	__u64 bytes_received;/* tcp_sock.bytes_received */
	__u32 retransmits;   /* retransmitted segments seen; close records: tcp_sock.total_retrans */
	__u32 srtt_us;       /* last smoothed RTT */
	__u32 snd_cwnd;
	__u32 netns;         /* network namespace inode */
	__u64 sock;          /* kernel address of the socket (identity only) */
	__u64 cookie;        /* socket cookie (bpf_get_socket_cookie = inet_diag's idiag_cookie):
	                      * user space drops records whose socket no longer exists */
};

NP_STATIC_ASSERT(sizeof(struct np_conn) == 144, "np_conn size");
NP_STATIC_ASSERT(sizeof(struct np_drop_loc_key) == 16, "np_drop_loc_key size");
NP_STATIC_ASSERT(sizeof(struct np_drop_flow_key) == 40, "np_drop_flow_key size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_drop_flow_key, sport) == 32, "np_drop_flow_key.sport");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_conn, sport) == 32, "np_conn.sport");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_conn, pid) == 40, "np_conn.pid");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_conn, cgroup_id) == 64, "np_conn.cgroup_id");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_conn, retransmits) == 112, "np_conn.retransmits");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_conn, sock) == 128, "np_conn.sock");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_conn, cookie) == 136, "np_conn.cookie");

/* Per-cgroup traffic (bpf/progs/cgroup_traffic.bpf.c, cgroup_skb ingress/egress on the
 * root of the cgroup v2 hierarchy): cgroup_traffic is a PERCPU_HASH keyed by
 * (socket's cgroup v2 id, direction, protocol class), value struct np_counter
 * (packets on the wire - GSO/GRO segments - and their IP bytes). The table is bounded;
 * a failed insert counts in cgroup_errors[NP_CG_ERR_INSERT]. */
enum np_cg_proto {
	NP_CG_PROTO_TCP = 0,
	NP_CG_PROTO_UDP,
	NP_CG_PROTO_ICMP, /* ICMP or ICMPv6 */
	NP_CG_PROTO_OTHER,
	NP_CG_PROTO_MAX,
};
enum np_cg_error {
	NP_CG_ERR_INSERT = 0, /* cgroup_traffic full: the packet was not counted */
	NP_CG_ERR_MAX,
};
struct np_cgroup_key {
	__u64 cgroup_id; /* bpf_skb_cgroup_id(): the socket's cgroup v2 id (directory inode) */
	__u8 direction;  /* enum np_direction: ingress = received by the cgroup's socket */
	__u8 proto;      /* enum np_cg_proto */
	__u8 reserved[6];
};
NP_STATIC_ASSERT(sizeof(struct np_cgroup_key) == 16, "np_cgroup_key size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_cgroup_key, direction) == 8, "np_cgroup_key.direction");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_cgroup_key, proto) == 9, "np_cgroup_key.proto");

/* icmp_stats key (datapath, PERCPU_HASH, value struct np_counter): ICMP and ICMPv6
 * messages by type and code, counted by the TC programs. The table is bounded
 * (NP_ICMP_STATS_MAX); a failed insert counts in map_errors[NP_MAP_ICMP_STATS]. */
struct np_icmp_key {
	__u8 direction; /* enum np_direction */
	__u8 family;    /* 4 (ICMP) or 6 (ICMPv6) */
	__u8 type;
	__u8 code;
};
#define NP_ICMP_STATS_MAX 1024

NP_STATIC_ASSERT(sizeof(struct np_icmp_key) == 4, "np_icmp_key size");

/* ===================================================================== */
/* Security analytics (datapath side; user space: src/security)           */
/* ===================================================================== */

/* Why a sec_events record was sent. */
enum np_sec_kind {
	NP_SEC_NEW_FLOW = 1,   /* first packet of a new flow_stats entry (TCP, UDP) */
	NP_SEC_ICMP_ERROR = 2, /* ICMP(v6) destination unreachable or time exceeded, with the quoted tuple */
	NP_SEC_INTEL = 3,      /* a flow entry's first packet (per CPU and indicator-set generation)
	                        * whose source or destination matched a threat-intel indicator;
	                        * inner_proto holds the NP_INTEL_MATCH_* bits, inner_src_port the feed */
};

/* Record on the sec_events ring buffer. For NP_SEC_NEW_FLOW key is the new flow
 * (as seen at ifindex/direction); for NP_SEC_ICMP_ERROR key is the ICMP packet's
 * own addresses and inner_* the header it quotes (the packet that failed, as that
 * packet's sender sent it). */
struct np_sec_event {
	__u64 ts_ns;      /* bpf_ktime_get_ns() */
	struct flow_key key;
	__u8 kind;        /* enum np_sec_kind */
	__u8 tcp_flags;   /* TCP: flags byte of the first packet */
	__u8 tcp_doff;    /* TCP: header length in 32-bit words (5 = no options) */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 inner_proto; /* ICMP error: protocol of the quoted packet (0 if not parsed) */
	__u16 inner_src_port;
	__u16 inner_dst_port;
	__u16 payload_len; /* new flow: bytes after the TCP/UDP header (capped at 65535) */
	__u32 len;        /* bytes of the packet */
	union np_addr inner_src;
	union np_addr inner_dst;
	/* new flow: connection attempts (or refusals) of the same aggregate entry this record
	 * announces besides its own packet (flow pressure: records of an aggregate entry are
	 * limited to one per tick and CPU); 0 otherwise */
	__u32 folded;
};

/* host_stats: traffic per address, towards it seen at ingress ("in") and from it
 * seen at egress ("out"). A PERCPU_ARRAY of NP_HOST_SLOTS slots, 2-way
 * set-associative (4096 slots: 2048 sets of two): an address lives in slot h or h ^ 1 (h = np_host_hash), each CPU
 * keeping its own copy. A hash map lookup cost 3x more per packet (bench). When
 * both candidate slots belong to other addresses, the one with fewer packets is
 * taken over (heavy hitters stay; counted in map_errors[NP_MAP_HOST_STATS]); user
 * space computes deltas per (CPU, slot) and knows a slot changed owner by its addr. */
struct np_host_stats {
	__u64 in_packets;
	__u64 in_bytes;
	__u64 out_packets;
	__u64 out_bytes;
	__u64 tcp_in;      /* TCP packets in */
	__u64 syn_in;      /* SYN without ACK in */
	__u64 synack_out;  /* SYN+ACK out */
	__u64 udp_in;
	__u64 icmp_in;     /* ICMP + ICMPv6 in */
};

struct np_host_slot {
	union np_addr addr; /* owner; all zero: free */
	struct np_host_stats stats;
};
#define NP_HOST_SLOT_BITS 12
#define NP_HOST_SLOTS (1u << NP_HOST_SLOT_BITS)
/* np_host_dirty (a mapped data section, .data.hostdirty): a bit per slot, set by the
 * programs after they changed the slot on any CPU (an atomic OR, only when the bit is
 * clear); user space takes the words with an atomic exchange and reads only the slots
 * whose bit was set, not all NP_HOST_SLOTS x CPUs every tick (SecuritySource). */
#define NP_HOST_DIRTY_WORDS (NP_HOST_SLOTS / 64)

/* Slot of an address: multiplicative hash of its four words (both sides use it). */
static inline __u32 np_host_hash(const union np_addr *a)
{
	__u32 h = a->v6_32[0] ^ a->v6_32[1] ^ a->v6_32[2] ^ a->v6_32[3];
	return (h * 0x9E3779B1u) >> (32 - NP_HOST_SLOT_BITS);
}

/* blocklist (LPM_TRIE, consulted by XDP when mitigation is on or dry-run):
 * key = prefix length in bits over the 16-byte (IPv4-mapped) source address. */
struct np_block_key {
	__u32 prefixlen;
	union np_addr addr;
};
struct np_block_value {
	__u32 rule_id;    /* index into block_stats */
	__u32 reserved;
};
#define NP_BLOCK_RULES_MAX 1024

/* np_mitigate values */
enum np_mitigate_mode {
	NP_MITIGATE_OFF = 0,
	NP_MITIGATE_DRY_RUN = 1, /* count what would be dropped, pass it */
	NP_MITIGATE_ON = 2,      /* drop */
};

/* Threat intelligence (bpf/lib/intel.h; user space: ebpf::IntelMaps, src/intel).
 * intel_ips is an ARRAY_OF_MAPS of one LPM trie keyed like the blocklist (prefix
 * length over the 16-byte, IPv4-mapped address): user space builds a new trie for
 * each indicator-set generation and swaps it in, then bumps intel_state.gen. */
struct np_intel_value {
	__u16 feed;       /* feed index (< NP_INTEL_FEEDS_MAX) */
	__u8 action;      /* enum np_intel_action */
	__u8 confidence;  /* 0..100 */
	__u32 reserved;
};
enum np_intel_action {
	NP_INTEL_ALERT = 0,
	NP_INTEL_BLOCK = 1, /* dropped at TC when mitigation is on */
};
enum np_intel_match_bits {
	NP_INTEL_MATCH_SRC = 1,    /* the source address is an indicator (traffic from it) */
	NP_INTEL_MATCH_DST = 2,    /* the destination is (traffic to it) */
	NP_INTEL_MATCH_BLOCK = 4,  /* a matching indicator's action is block */
	NP_INTEL_MATCH_DONE = 0x80 /* evaluated (with or without a match) */
};
struct np_intel_state {
	__u32 gen;      /* generation of the indicators (trie and resolved; 0: none yet) */
	__u32 resolved; /* entries in intel_resolved (0: the packet path skips its lookups) */
};
/* intel_resolved (HASH, key = union np_addr, value = struct np_intel_value): addresses
 * that a DNS answer gave for a domain indicator, until the record's TTL runs out (user
 * space adds and removes them, then bumps intel_state.gen). */
#define NP_INTEL_RESOLVED_MAX 65536
/* intel_stats (PERCPU_ARRAY, index = feed): traffic matched by the feed's indicators. */
struct np_intel_counters {
	__u64 from_packets; /* from an indicator (source matched) */
	__u64 from_bytes;
	__u64 to_packets;   /* to an indicator (destination matched; not counted again as "from") */
	__u64 to_bytes;
	__u64 dropped_packets; /* dropped (action block, mitigation on) */
	__u64 dropped_bytes;
};
#define NP_INTEL_FEEDS_MAX 64

/* Name capture (bpf/lib/names.h; with domain indicators and no L7 capture): the payload
 * head of DNS responses (UDP from port 53) and of TLS ClientHello records (the first
 * TCP payload of a flow starting with a handshake record of type 1), on the name_events
 * ring. User space parses the names (l7::parseDns, l7::parseClientHelloSni). */
#define NP_NAME_CAP 1024
enum np_name_kind {
	NP_NAME_DNS = 1,
	NP_NAME_TLS_HELLO = 2,
};
struct np_name_event {
	__u64 ts_ns;            /* CLOCK_MONOTONIC */
	struct flow_key key;    /* as the packet travels: a DNS response is server -> client */
	__u8 kind;              /* enum np_name_kind */
	__u8 pad;
	__u16 cap_len;          /* bytes of data that hold the payload's head */
	__u32 payload_len;      /* the payload's length in this packet */
	__u8 data[NP_NAME_CAP]; /* on the ring: only cap_len bytes of it (the record is shorter) */
};
#define NP_NAME_HDR_LEN 60 /* offsetof(struct np_name_event, data) */

NP_STATIC_ASSERT(sizeof(struct np_intel_value) == 8, "np_intel_value size");
NP_STATIC_ASSERT(sizeof(struct np_intel_state) == 8, "np_intel_state size");
NP_STATIC_ASSERT(sizeof(struct np_intel_counters) == 48, "np_intel_counters size");
NP_STATIC_ASSERT(sizeof(struct np_name_event) == 1088, "np_name_event size (60 + 1024, padded to 8)");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_name_event, data) == NP_NAME_HDR_LEN, "np_name_event.data");

NP_STATIC_ASSERT(sizeof(struct np_sec_event) == 104, "np_sec_event size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_sec_event, key) == 8, "np_sec_event.key");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_sec_event, kind) == 52, "np_sec_event.kind");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_sec_event, len) == 64, "np_sec_event.len");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_sec_event, inner_src) == 68, "np_sec_event.inner_src");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_sec_event, folded) == 100, "np_sec_event.folded");
NP_STATIC_ASSERT(sizeof(struct np_host_slot) == 88, "np_host_slot size");
NP_STATIC_ASSERT(sizeof(struct np_host_stats) == 72, "np_host_stats size");
NP_STATIC_ASSERT(sizeof(struct np_block_key) == 20, "np_block_key size");
NP_STATIC_ASSERT(sizeof(struct np_block_value) == 8, "np_block_value size");

/* ===================================================================== */
/* Application-layer capture (bpf/progs/l7.bpf.c; user space: ebpf::L7Capture) */
/* ===================================================================== */

/* Bytes of each message head, and of its tail, copied to user space: NP_L7_COPY of
 * most protocols' messages, up to NP_L7_HEAD_MAX for those that pack many messages in a
 * syscall (HTTP/2 frames of many streams, Redis pipelines). */
#define NP_L7_HEAD_MAX 4096
#define NP_L7_COPY 512
/* Vector I/O: segments gathered into one record (until the copy size is reached). */
#define NP_L7_GATHER 32
#define NP_L7_TAIL_MAX 16
/* AMQP: the frames of a syscall that begin beyond the copy (a broker writing many
 * deliveries at once) are walked in the kernel, up to NP_L7_WALK_MAX of them, and the
 * first NP_L7_PIECE_MAX bytes of each (a method frame's class, method and names; a
 * content header's body size; a body frame's header) follow the copy in the record as
 * "pieces": a 4-byte offset in the syscall's data, a 2-byte length (both host order),
 * the bytes. At most NP_L7_PIECES_BYTES of pieces per record. */
#define NP_L7_WALK_MAX 128
/* ... and beyond those, frames whose header alone is read (to know where the syscall's
 * last frame ends: the next syscall's first frame) */
#define NP_L7_SKIP_MAX 256
#define NP_L7_PIECE_MAX 128
#define NP_L7_PIECE_HDR 6
#define NP_L7_PIECES_BYTES 3584
/* Syscall numbers below this are looked up in the program's kind table. */
#define NP_L7_SYSCALL_TABLE 512

/* The syscalls captured; user space fills the table nr -> kind before load. */
enum np_l7_syscall {
	NP_L7_SC_NONE = 0,
	NP_L7_SC_READ,
	NP_L7_SC_WRITE,
	NP_L7_SC_READV,
	NP_L7_SC_WRITEV,
	NP_L7_SC_RECVFROM,
	NP_L7_SC_SENDTO,
	NP_L7_SC_RECVMSG,
	NP_L7_SC_SENDMSG,
	NP_L7_SC_RECVMMSG,
	NP_L7_SC_SENDMMSG,
	NP_L7_SC_SENDFILE,
	NP_L7_SC_CLOSE,
	NP_L7_SC_SSL_WRITE,  /* OpenSSL SSL_write / SSL_write_ex (uprobe): plaintext */
	NP_L7_SC_SSL_READ,   /* OpenSSL SSL_read / SSL_read_ex (uprobe): plaintext */
	NP_L7_SC_MAX,
};

/* What a connection carries, as inferred in the kernel from its first bytes. */
enum np_l7_protocol {
	NP_L7_UNKNOWN = 0,  /* not yet seen enough */
	NP_L7_HTTP1 = 1,
	NP_L7_HTTP2 = 2,
	NP_L7_DNS = 3,
	NP_L7_TLS = 4,      /* encrypted: the plaintext comes from TLS library probes */
	NP_L7_REDIS = 5,    /* RESP2/RESP3 */
	NP_L7_POSTGRES = 6, /* PostgreSQL frontend/backend protocol 3.0 */
	NP_L7_MYSQL = 7,    /* MySQL/MariaDB client/server protocol */
	NP_L7_KAFKA = 8,    /* Apache Kafka's protocol (size-delimited requests with api key/version) */
	NP_L7_AMQP = 9,     /* AMQP 0-9-1 (RabbitMQ) */
	NP_L7_NONE = 255,   /* nothing recognised in its first messages: not captured */
};

enum np_l7_direction {
	NP_L7_SEND = 0,  /* the process wrote it */
	NP_L7_RECV = 1,  /* the process read it */
	NP_L7_CLOSED = 2, /* close(2) of a descriptor of the socket: no data */
};

/* np_l7_event.flags */
#define NP_L7_F_TRUNCATED 0x01 /* len > captured: the middle was not copied */
#define NP_L7_F_NO_TAIL 0x02   /* truncated, and the message spans several segments: no tail */
#define NP_L7_F_TLS 0x04       /* plaintext of a TLS connection (from the TLS library) */
#define NP_L7_F_SPLIT 0x08     /* Kafka: the message's 4-byte size came alone in the connection's previous
				* syscall of this direction (read while the protocol was being inferred, not
				* recorded): this record starts after it (a Java broker reads the size first) */
#define NP_L7_F_SOCK_CLOSED 0x10 /* NP_L7_CLOSED without close(2): the TCP socket reached TCP_CLOSE (its
				  * process exited, or a reset); data it still holds may be read after */

/* Record on the l7_events ring: a header, `captured` bytes of data, then `pieces_len`
 * bytes of pieces (the record is only as long as that). */
struct np_l7_event {
	__u64 ts_ns;       /* bpf_ktime_get_ns() at the syscall's exit */
	__u64 sock;        /* address of the kernel socket: its identity while it lives */
	__u64 pid_tgid;
	__u64 cgroup_id;
	union np_addr local;   /* IPv4 as IPv4-mapped */
	union np_addr remote;
	__u16 local_port;  /* host byte order */
	__u16 remote_port;
	__u8 family;       /* 4 or 6 */
	__u8 ip_proto;     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 direction;    /* enum np_l7_direction */
	__u8 protocol;     /* enum np_l7_protocol */
	__u8 syscall;      /* enum np_l7_syscall */
	__u8 flags;        /* NP_L7_F_* */
	__u16 captured;    /* bytes in data */
	__u32 fd;
	__u32 len;         /* bytes the syscall moved (its return value; per message for *mmsg) */
	__u8 tail_len;     /* bytes in tail: the message's last bytes when it was truncated */
	__u8 pad;
	__u16 pieces_len;  /* bytes of pieces in data after the `captured` bytes (NP_L7_PIECE_MAX) */
	__u8 tail[NP_L7_TAIL_MAX];
	__u8 data[NP_L7_HEAD_MAX];
};

/* l7_conns (LRU hash, key: socket address): what the connection was classified as.
 * The ports guard against a freed socket's address reused by a new one. */
struct np_l7_conn {
	__u16 local_port;
	__u16 remote_port;
	__u8 protocol;     /* enum np_l7_protocol */
	__u8 attempts;     /* data syscalls seen while NP_L7_UNKNOWN */
	__u8 inner;        /* NP_L7_TLS: the plaintext's protocol (enum np_l7_protocol) */
	__u8 inner_attempts;
	/* While inferring: a syscall that moved exactly 4 bytes, alone (a Kafka broker reads a
	 * request's size before the request): the big-endian value, and its direction + 1
	 * (0: none). The next syscall in that direction is checked as the rest of a message. */
	__u32 split_len;
	__u8 split_dir;
	__u8 pad[3];
	/* AMQP, per direction (enum np_l7_direction): where the next frame begins in the
	 * direction's next syscall, + 1 (0: not known - a syscall is then taken to begin with
	 * a frame). The frames of each syscall are walked from there (a broker's write that
	 * the socket took only part of leaves the rest of a frame for the next one). */
	__u32 amqp_next[2];
};
/* Unrecognised data syscalls before a connection is NP_L7_NONE. */
#define NP_L7_MAX_ATTEMPTS 4
/* DNS: UDP and TCP sockets with this port at either end (UDP sockets without it are
 * NP_L7_NONE at once). */
#define NP_L7_DNS_PORT 53
/* Kafka inference: a request's api key (Produce 0 .. DescribeTopicPartitions 75) and
 * version bounds, and its size bound (the broker's default socket.request.max.bytes). */
#define NP_L7_KAFKA_MAX_API_KEY 75
#define NP_L7_KAFKA_MAX_API_VERSION 20
#define NP_L7_KAFKA_MAX_SIZE (100 << 20)

/* A data syscall the capture classified at its exit (bpf/progs/l7.bpf.c: np_l7_classify;
 * a program's own stack, no map). */
struct np_l7_args {
	__u64 sock;
	__u64 buf;        /* buffer, iovec array, msghdr or mmsghdr vector */
	__u64 count;      /* buffer length or vector length */
	__u32 fd;
	__u8 syscall;     /* enum np_l7_syscall */
	__u8 ip_proto;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 proto;       /* classified from the socket (by port: DNS), else NP_L7_UNKNOWN */
	__u8 known;       /* 1: proto is the connection record's own, a protocol we parse
			   * (the exit needs no lookup of the record) */
	__u64 addr;       /* sendto/recvfrom: the peer's sockaddr (UDP without connect) */
};

/* l7_tls_calls (task storage): a thread's TLS library call between its entry and return,
 * and the socket its own syscalls touched. */
struct np_l7_tls_call {
	__u64 ssl;        /* the SSL * */
	__u64 buf;
	__u64 len_ptr;    /* _ex variants: where the byte count is written (0: the return value) */
	__u64 sock;       /* set by the sys_exit program: the socket written/read inside the call */
	__u8 syscall;     /* NP_L7_SC_SSL_WRITE or NP_L7_SC_SSL_READ */
	__u8 active;      /* between the entry and the return probe */
	__u8 pad[6];
};

/* l7_counters (per-CPU array) slots. */
enum np_l7_counter {
	NP_L7_CNT_SOCKET_SYSCALLS = 0, /* data syscalls on inet sockets that moved bytes */
	NP_L7_CNT_EVENTS,              /* records written to the ring */
	NP_L7_CNT_RING_FULL,           /* records lost: the ring had no room */
	NP_L7_CNT_ARGS_FULL,           /* TLS calls not captured: their l7_tls_calls task storage not allocated */
	NP_L7_CNT_CONNS_FULL,          /* connections not classified: l7_conns insert failed */
	NP_L7_CNT_READ_FAILED,         /* user memory that could not be read */
	NP_L7_CNT_SKIPPED_NONE,        /* syscalls on connections classified NP_L7_NONE */
	NP_L7_CNT_TLS_NO_SOCKET,       /* TLS library calls whose socket is unknown (not captured) */
	NP_L7_CNT_MAX,
};

NP_STATIC_ASSERT(sizeof(struct np_l7_event) == 104 + NP_L7_HEAD_MAX, "np_l7_event size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_l7_event, local) == 32, "np_l7_event.local");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_l7_event, local_port) == 64, "np_l7_event.local_port");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_l7_event, fd) == 76, "np_l7_event.fd");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_l7_event, tail) == 88, "np_l7_event.tail");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_l7_event, data) == 104, "np_l7_event.data");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_l7_event, pieces_len) == 86, "np_l7_event.pieces_len");
NP_STATIC_ASSERT(NP_L7_PIECE_MAX + NP_L7_PIECE_HDR <= 255 && NP_L7_HEAD_MAX + NP_L7_PIECES_BYTES <= 8064, "piece bounds the verifier follows (l7.bpf.c: np_l7_walk_hop)");
NP_STATIC_ASSERT(sizeof(struct np_l7_conn) == 24, "np_l7_conn size");
NP_STATIC_ASSERT(sizeof(struct np_l7_args) == 40, "np_l7_args size");
NP_STATIC_ASSERT(sizeof(struct np_l7_tls_call) == 40, "np_l7_tls_call size");

/* ===================================================================== */
/* TCP handshake timing at TC (bpf/lib/handshake.h)                      */
/* ===================================================================== */

/* Under pressure (np_flow_pressure, bpf/progs/datapath.bpf.c) a TCP SYN or RST without an
 * entry is counted in an aggregate entry: its 5-tuple with the initiator's port 0 (a SYN's
 * source port, a RST's destination port). Of a 5-tuple: 1 when it is such an aggregate and
 * its source initiated, -1 when its destination did, 0 when it is none (TCP has no port 0
 * on the wire). */
static inline int np_flow_aggregate_initiator(__u8 proto, __u16 sport, __u16 dport)
{
	if (proto != 6 || (sport == 0) == (dport == 0))
		return 0;
	return sport == 0 ? 1 : -1;
}

/* sec_flow_seen: the flows already announced on sec_events (bpf/lib/security.h) that may
 * come back without an entry in flow_stats. A direct-mapped BPF_MAP_TYPE_ARRAY of __u64
 * tags, a power of two of slots (user space sizes it before load and sets np_seen_mask =
 * slots - 1): a flow is remembered by storing np_seen_tag(key) in slot np_seen_slot(tag,
 * mask), and is known when that slot holds its tag (a 64-bit match: another flow's tag
 * matches about never). Another flow hashing to the slot takes it over, and the first is
 * then announced again if it comes back (an LRU hash evicted the oldest instead, for
 * ~450 ns per write under a flood against ~100 ns for the store). 0: a free slot. */
static inline __u64 np_seen_tag(const struct flow_key *k)
{
	/* through the union's words, not a cast: the same in C++ (no type punning) */
	__u64 h = (__u64)k->ifindex | ((__u64)k->proto << 32) | ((__u64)k->family << 40) |
		  ((__u64)k->direction << 48) | ((__u64)k->encap << 56);
	for (int i = 0; i < 4; i++)
		h = (h ^ k->src_ip.v6_32[i]) * 0x9E3779B97F4A7C15ULL;
	for (int i = 0; i < 4; i++)
		h = (h ^ k->dst_ip.v6_32[i]) * 0x9E3779B97F4A7C15ULL;
	h = (h ^ ((__u64)k->src_port | ((__u64)k->dst_port << 16))) * 0x9E3779B97F4A7C15ULL;
	h ^= h >> 31;
	return h | 1;
}

static inline __u32 np_seen_slot(__u64 tag, __u32 mask)
{
	return (__u32)(tag >> 32) & mask;
}

/* tcp_handshakes: a direct-mapped table (BPF_MAP_TYPE_ARRAY of NP_HS_SLOTS slots, shared
 * by every CPU) indexed by np_hs_hash(key); key: a struct flow_key with src = the client
 * (the SYN's sender), dst = the server, direction 0 and encap 0; ifindex = where it was
 * seen. A SYN takes its slot whatever the slot held (no lock, no allocation, no eviction
 * scan: under a SYN flood every packet is a new handshake, and an LRU hash insert cost
 * each ~350 ns); a handshake still in progress that loses its slot is not timed and is
 * counted in map_errors[NP_MAP_TCP_HANDSHAKES]. Two CPUs writing one slot at once can
 * leave it mixed: the key check then fails and that handshake is not timed. */
#define NP_HS_SLOT_BITS 14
#define NP_HS_SLOTS (1u << NP_HS_SLOT_BITS)
/* A slot's handshake is in progress for this long after its SYN (the SYN's retransmissions
 * within it are retransmissions: Karn); older, the slot is free for any SYN, its own key's
 * included (a new attempt on a reused 5-tuple). */
#define NP_HS_LIVE_NS (30ULL * 1000000000ULL)
enum np_hs_state {
	NP_HS_FREE = 0,    /* no handshake (never used, completed, or ended by the client's ACK) */
	NP_HS_SYN = 1,     /* a SYN seen: syn_ns */
	NP_HS_SYNACK = 2,  /* its SYN/ACK seen: synack_ns */
	NP_HS_INVALID = 3, /* a SYN or SYN/ACK was seen twice (retransmitted): not timed (Karn) */
};

struct np_hs_slot {
	struct flow_key key;
	__u32 state;     /* enum np_hs_state */
	__u64 syn_ns;    /* bpf_ktime_get_ns() */
	__u64 synack_ns;
};

static inline __u32 np_hs_hash(const struct flow_key *k)
{
	/* through the union's words, not a cast: the same in C++ (no type punning) */
	__u32 h = k->ifindex;
	for (int i = 0; i < 4; i++)
		h = (h ^ k->src_ip.v6_32[i]) * 0x9E3779B1u;
	for (int i = 0; i < 4; i++)
		h = (h ^ k->dst_ip.v6_32[i]) * 0x9E3779B1u;
	h = (h ^ ((__u32)k->src_port | ((__u32)k->dst_port << 16))) * 0x9E3779B1u;
	return h >> (32 - NP_HS_SLOT_BITS);
}

/* handshake_events ring record: one per handshake completed (the client's first ACK
 * after the SYN/ACK) at an interface. server_ns: SYN -> SYN/ACK, the round trip from
 * this interface to the server and back; client_ns: SYN/ACK -> ACK, to the client and
 * back. Their sum is the connection's round trip time at the handshake. */
struct np_hs_event {
	struct flow_key key; /* as the tcp_handshakes key */
	__u32 pad;
	__u64 server_ns;
	__u64 client_ns;
};

/* ===================================================================== */
/* UDP inter-arrival timing at TC (bpf/lib/udp_timing.h)                 */
/* ===================================================================== */

/* udp_timing (LRU_HASH) key: the flow's struct flow_key as in flow_stats (this
 * interface and direction). Value: the arrival times of its datagrams here. The
 * expected spacing is the run's mean inter-arrival time, (last - first) / intervals, so
 * for a constant-rate stream (RTP voice and video, telemetry) the deviation of an
 * inter-arrival time from it is RFC 3550's D(i-1, i) without the sender's timestamps.
 * A gap of more than NP_UDP_GAP_NS starts a new run (the spacing is measured afresh;
 * the jitter carries on). */
#define NP_UDP_GAP_NS 1000000000ULL
struct np_udp_timing {
	__u64 first_ns;    /* bpf_ktime_get_ns() of the run's first datagram */
	__u64 last_ns;     /* of the last datagram */
	__u64 dev_sum_ns;  /* sum of |inter-arrival - mean inter-arrival| over `samples` */
	__u64 jitter16_ns; /* RFC 3550's running J (J += (|D| - J) / 16), times 16 */
	__u32 intervals;   /* inter-arrival intervals in the current run */
	__u32 samples;     /* deviations taken (the second interval of a run on) */
};

NP_STATIC_ASSERT(sizeof(struct np_udp_timing) == 40, "np_udp_timing size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_udp_timing, intervals) == 32, "np_udp_timing.intervals");

NP_STATIC_ASSERT(sizeof(struct np_hs_slot) == 64, "np_hs_slot size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_hs_slot, syn_ns) == 48, "np_hs_slot.syn_ns");
NP_STATIC_ASSERT(sizeof(struct np_hs_event) == 64, "np_hs_event size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_hs_event, server_ns) == 48, "np_hs_event.server_ns");

/* ===================================================================== */
/* Packet path tracing (bpf/lib/trace.h; datapath and stack programs)    */
/* ===================================================================== */

/* At most NP_TRACE_MAX traces at once: one trace_specs slot each. Every program that
 * takes part reads its object's np_trace_on (.data.trace) first: 0 = no trace, one load
 * and a branch; user space sets it while a slot is in use. */
#define NP_TRACE_MAX 4
#define NP_TRACE_DIRS 2 /* 0: as the spec says (src -> dst), 1: the reverse (replies) */

/* Where a traced packet was seen, in path order. The netfilter stages are
 * NP_TRACE_PREROUTING + NF_INET_* (attached only while a trace is active). */
enum np_trace_stage {
	NP_TRACE_XDP = 0,
	NP_TRACE_TC_INGRESS,
	NP_TRACE_PREROUTING,
	NP_TRACE_INPUT,
	NP_TRACE_FORWARD,
	NP_TRACE_OUTPUT,
	NP_TRACE_POSTROUTING,
	NP_TRACE_TC_EGRESS,
	NP_TRACE_SOCKET, /* a process read (dir of the packets it reads) or wrote a socket of the flow */
	NP_TRACE_STAGE_MAX,
};
/* np_trace_key.stage of a drop that no netfilter stage saw the packet at first: a
 * received packet (dropped between TC ingress and prerouting), a local one. */
#define NP_TRACE_STAGE_BEFORE_NF_RX 0xfe
#define NP_TRACE_STAGE_BEFORE_NF_TX 0xff

/* trace_specs (ARRAY, NP_TRACE_MAX): what a slot matches, either direction. */
struct np_trace_spec {
	union np_addr saddr; /* all zero: any */
	union np_addr daddr; /* all zero: any */
	__u16 sport;         /* host order; 0: any */
	__u16 dport;
	__u8 proto;          /* IPPROTO_*; 0: any */
	__u8 family;         /* 4 or 6; 0: slot free */
	__u8 pad[2];
	__u64 expires_ns;    /* bpf_ktime_get_ns(): the slot matches nothing from then on */
};

/* trace_counts (PERCPU_ARRAY of struct np_counter), index
 * (slot * NP_TRACE_DIRS + dir) * NP_TRACE_STAGE_MAX + stage. */
#define NP_TRACE_COUNT_SLOTS (NP_TRACE_MAX * NP_TRACE_DIRS * NP_TRACE_STAGE_MAX)

/* trace_drops key (value: reason = enum skb_drop_reason) and trace_ifaces key (value:
 * ifindex: the input device at XDP, TC ingress, prerouting, input; the output device at
 * forward, output, postrouting, TC egress); PERCPU_HASH -> __u64 packets. */
struct np_trace_key {
	__u8 slot;
	__u8 dir;
	__u8 stage; /* enum np_trace_stage, or NP_TRACE_STAGE_BEFORE_NF_* (drops) */
	__u8 pad;
	__u32 value;
};

/* trace_procs (HASH): the processes that read or wrote a socket of the flow. */
struct np_trace_proc_key {
	__u8 slot;
	__u8 dir;
	__u8 pad[2];
	__u32 tgid;
};
struct np_trace_proc {
	__u64 calls; /* recvmsg/sendmsg calls that moved data */
	__u64 bytes;
	char comm[16];
};

/* The last netfilter stage a traced skb reached on this CPU (trace_last, PERCPU_ARRAY
 * of NP_TRACE_MAX): a drop of the same skb happened at that stage. */
struct np_trace_last {
	__u64 skb;
	__u32 stage;
	__u32 dir;
};

/* trace_errors (PERCPU_ARRAY): records lost. */
enum np_trace_error {
	NP_TRACE_ERR_DROPS = 0, /* trace_drops insert failed (a drop counted at no reason) */
	NP_TRACE_ERR_IFACES,    /* trace_ifaces insert failed */
	NP_TRACE_ERR_PROCS,     /* trace_procs insert failed */
	NP_TRACE_ERR_MAX,
};

NP_STATIC_ASSERT(sizeof(struct np_trace_spec) == 48, "np_trace_spec size");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_trace_spec, sport) == 32, "np_trace_spec.sport");
NP_STATIC_ASSERT(NP_OFFSETOF(struct np_trace_spec, expires_ns) == 40, "np_trace_spec.expires_ns");
NP_STATIC_ASSERT(sizeof(struct np_trace_key) == 8, "np_trace_key size");
NP_STATIC_ASSERT(sizeof(struct np_trace_proc_key) == 8, "np_trace_proc_key size");
NP_STATIC_ASSERT(sizeof(struct np_trace_proc) == 32, "np_trace_proc size");
NP_STATIC_ASSERT(sizeof(struct np_trace_last) == 16, "np_trace_last size");
NP_STATIC_ASSERT(NP_TRACE_PREROUTING + 4 == NP_TRACE_POSTROUTING, "netfilter stages follow NF_INET_*");

/* The datapath's clock (bpf/lib/clock.h, global np_clock in section .data.clock):
 * CLOCK_MONOTONIC ns ~= jiffies x tick_ns + base_ns (mod 2^64), set by user space after
 * load; tick_ns 0: the programs read bpf_ktime_get_coarse_ns() instead. */
struct np_clock {
	__u64 tick_ns;
	__u64 base_ns;
};

/* What np_clock_probe read (global np_clock_sample in .data.clock_probe). */
struct np_clock_sample {
	__u64 jiffies;
	__u64 coarse_ns;
};

NP_STATIC_ASSERT(sizeof(struct np_clock) == 16, "np_clock size");
NP_STATIC_ASSERT(sizeof(struct np_clock_sample) == 16, "np_clock_sample size");

/* Kernel text addresses named by the kernel itself (bpf/progs/ksym.bpf.c, a syscall
 * program run with BPF_PROG_TEST_RUN): its context is the address; its global
 * np_ksym_result holds %pS of it, e.g. "tcp_v4_rcv+0x99/0x10a0" or
 * "nf_hook_slow+0x3c/0xb0 [nf_tables]"; an address that is no symbol prints as "0x..."
 * (ret: bpf_snprintf's, the length with the NUL, or -errno). */
#define NP_KSYM_NAME_MAX 192
struct np_ksym_ctx {
	__u64 addr;
};
struct np_ksym_result {
	__s64 ret;
	char name[NP_KSYM_NAME_MAX];
};

NP_STATIC_ASSERT(sizeof(struct np_ksym_ctx) == 8, "np_ksym_ctx size");
NP_STATIC_ASSERT(sizeof(struct np_ksym_result) == 8 + NP_KSYM_NAME_MAX, "np_ksym_result size");

#endif /* NETPROBE_ABI_H */
