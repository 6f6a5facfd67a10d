// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* When a ring-buffer record wakes its reader. A wakeup is an irq_work: a self-IPI, which
 * in a virtual machine is an exit to the hypervisor (a write of the x2APIC MSR, ~1-2 us).
 * The readers drain their rings every 100 ms on their own (RingReader), so records need
 * no wakeup to be read; a wakeup only shortens the wait when a backlog builds up. One
 * wakeup each time the unread data crosses a multiple of `band` bytes: waking at every
 * record once the backlog was above the band (as before) sent an IPI per record while
 * the reader was being scheduled - under wrk against nginx with --l7=on, a fifth of the
 * capture's time was spent in that MSR write. Concurrent producers may both wake or
 * (both just below a multiple) neither: the reader's own 100 ms drain covers that. */
#pragma once

#define NP_RING_HDR_SZ 8 /* BPF_RINGBUF_HDR_SZ: each record's header */

/* band: a power of two. before/after: the unread bytes before and after the record. */
static __always_inline __u64 np_ring_wakeup(__u64 before, __u64 after, __u64 band)
{
	return (before & ~(band - 1)) != (after & ~(band - 1)) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* The flags for bpf_ringbuf_output() of a size-byte record to ring. */
#define np_ring_output_flags(ring, size, band)                                                                  \
	({                                                                                                       \
		__u64 __before = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);                                     \
		np_ring_wakeup(__before, __before + (((size) + 7) & ~7ULL) + NP_RING_HDR_SZ, band);              \
	})

/* The flags for bpf_ringbuf_submit() of a size-byte record already reserved in ring
 * (the reservation counts as unread data). */
#define np_ring_submit_flags(ring, size, band)                                                                  \
	({                                                                                                       \
		__u64 __after = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);                                      \
		__u64 __rec = (((size) + 7) & ~7ULL) + NP_RING_HDR_SZ;                                           \
		np_ring_wakeup(__after > __rec ? __after - __rec : 0, __after, band);                             \
	})
