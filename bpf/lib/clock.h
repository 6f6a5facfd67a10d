// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Flow times at tick resolution for ~1 ns a packet. bpf_jiffies64() is inlined by the
 * JIT (a load of jiffies_64); bpf_ktime_get_coarse_ns() is a helper call through the
 * timekeeping seqlock (~10% of a steady TC packet). jiffies advance with CLOCK_MONOTONIC
 * (the tick derives them from it), so
 *     monotonic ns ~= jiffies x np_clock.tick_ns + np_clock.base_ns
 * within a tick, the coarse clock's own resolution. User space measures tick_ns and
 * base_ns after load (ebpf::calibrateClock, with np_clock_probe) before attaching
 * anything; while tick_ns is 0 the coarse clock is read instead. */
#pragma once

/* struct np_clock: netprobe/abi.h. Shared by the datapath objects (user space reuses the map). */
volatile struct np_clock np_clock SEC(".data.clock") = {};

static __always_inline __u64 np_now_coarse(void)
{
	__u64 tick = np_clock.tick_ns;
	if (!tick)
		return bpf_ktime_get_coarse_ns();
	return bpf_jiffies64() * tick + np_clock.base_ns;
}
