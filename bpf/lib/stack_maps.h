/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps of the stack monitor (bpf/progs/stack.bpf.c). Counters indexed by small
 * dense enums are PERCPU_ARRAY (inlined lookups, no atomics); conn_table is a
 * preallocated HASH (not LRU: a full table is an insert failure we count, never a
 * silent eviction); close records travel on a ring buffer whose failed reserves
 * are counted in stack_errors. */
#ifndef NETPROBE_STACK_MAPS_H
#define NETPROBE_STACK_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netprobe/abi.h>

/* index: enum np_tcp_counter */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_TCP_COUNTER_MAX);
} tcp_counters SEC(".maps");

/* index: enum np_stack_error */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_STACK_ERR_MAX);
} stack_errors SEC(".maps");

/* index: hist * NP_HIST_SLOTS + slot */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_HIST_MAX * NP_HIST_SLOTS);
} tcp_hist SEC(".maps");

/* index: enum skb_drop_reason (capped) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_DROP_REASON_MAX);
} drop_reasons SEC(".maps");

/* drops by (location, reason) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct np_drop_loc_key);
	__type(value, __u64);
	__uint(max_entries, NP_DROP_LOC_MAX);
} drop_locations SEC(".maps");

/* drops by the packet's 5-tuple (the QoS figures: drops attributed to a conversation) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__type(key, struct np_drop_flow_key);
	__type(value, __u64);
	__uint(max_entries, NP_DROP_FLOW_MAX);
} drop_flows SEC(".maps");

/* This CPU's budget window for new drop_flows entries: its start and the entries
 * created in it (kernel-internal: user space never reads it). */
struct np_drop_flow_window {
	__u64 start_ns;
	__u64 created;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_drop_flow_window);
	__uint(max_entries, 1);
} drop_flow_window SEC(".maps");

/* index: (hook * NP_NF_FAMILY_MAX + family) * NP_NF_PROTO_MAX + proto */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_counter);
	__uint(max_entries, NP_NF_HOOK_MAX * NP_NF_FAMILY_MAX * NP_NF_PROTO_MAX);
} nf_stats SEC(".maps");

/* open TCP connections, keyed by the struct sock address */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, struct np_conn);
	__uint(max_entries, 65536); /* user space may resize before load */
} conn_table SEC(".maps");

/* close records (struct np_conn) */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} conn_events SEC(".maps");

#endif /* NETPROBE_STACK_MAPS_H */
