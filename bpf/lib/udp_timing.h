/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* UDP inter-arrival jitter at TC (QoS): per flow, interface and direction, the spacing
 * of its datagrams and how far each departs from the flow's mean spacing - RFC 3550's
 * interarrival jitter for constant-rate streams, without the sender's timestamps
 * (struct np_udp_timing in the ABI header).
 *
 * Cost: only with QoS on, only UDP packets: one LRU lookup (an insert for a flow's
 * first datagram) and a few stores. Packets of one flow on two CPUs at once may race on
 * the fields; the figures are estimates, the counts are not used as totals. */
#ifndef NETPROBE_UDP_TIMING_H
#define NETPROBE_UDP_TIMING_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netprobe/abi.h>
#include "parse.h"
#include "maps.h"

const volatile __u32 np_enable_udp_timing = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, struct np_udp_timing);
	__uint(max_entries, 8192);
} udp_timing SEC(".maps");

/* Global function: verified once on its own. */
__attribute__((noinline)) int np_udp_timing_packet(const struct flow_key *key)
{
	if (!key)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct np_udp_timing *t = bpf_map_lookup_elem(&udp_timing, key);
	if (!t) {
		struct np_udp_timing init = {.first_ns = now, .last_ns = now};
		if (bpf_map_update_elem(&udp_timing, key, &init, BPF_NOEXIST) != 0)
			np_count_map_error(NP_MAP_UDP_TIMING); /* EEXIST (another CPU) counts too: rare */
		return 0;
	}
	__u64 last = t->last_ns;
	if (now <= last) /* the same instant, or another CPU's later datagram already */
		return 0;
	__u64 ia = now - last;
	t->last_ns = now;
	if (ia > NP_UDP_GAP_NS) { /* a pause: a new run, its spacing measured afresh */
		t->first_ns = now;
		t->intervals = 0;
		return 0;
	}
	__u32 n = t->intervals + 1;
	t->intervals = n;
	if (n < 2) /* the spacing is the first interval itself: no deviation yet */
		return 0;
	__u64 mean = (now - t->first_ns) / n;
	__u64 d = ia > mean ? ia - mean : mean - ia;
	t->dev_sum_ns += d;
	t->samples += 1;
	/* J16 += |D| - J16/16 (RFC 3550 A.8, in ns scaled by 16) */
	t->jitter16_ns = t->jitter16_ns + d - ((t->jitter16_ns + 8) >> 4);
	return 0;
}

static __always_inline void np_udp_timing_check(const struct np_packet *pkt)
{
	if (np_enable_udp_timing && pkt->key.proto == NP_IPPROTO_UDP)
		np_udp_timing_packet(&pkt->key);
}

#endif /* NETPROBE_UDP_TIMING_H */
