// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark reference for the L7 capture (bench/l7_http.sh): empty programs at the hooks
 * a syscall-level capture can use without kprobes. What they cost a workload is the
 * floor of any capture attached there: the kernel's dispatch (and, for a syscall
 * tracepoint, the slow syscall path every task then takes), with no work of ours.
 *  - np_ref_sys_exit: the raw tracepoint sys_exit (what bpf/progs/l7.bpf.c uses); it
 *    runs at the exit of every syscall of the machine.
 *  - np_ref_sock_send / np_ref_sock_recv: sock:sock_send_length / sock_recv_length
 *    (Linux 6.3+), which fire only for socket I/O. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/sys_exit")
int BPF_PROG(np_ref_sys_exit, struct pt_regs *regs, long ret)
{
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(np_ref_sock_send, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(np_ref_sock_recv, struct sock *sk, int ret, int flags)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
