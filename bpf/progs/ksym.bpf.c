// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The name of a kernel text address, from the kernel's own symbol table: one
 * kallsyms lookup (bpf_snprintf's %pS) per address instead of reading and formatting all
 * of /proc/kallsyms (~120k lines, ~60 ms of CPU each time a new drop location appeared).
 * User space runs it with BPF_PROG_TEST_RUN (context: the address) and reads the name
 * from its global np_ksym_result; one run at a time (one background task). Linux 5.14+
 * (syscall programs); where it does not load, user space reads /proc/kallsyms. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <netprobe/abi.h>

/* bpf_snprintf writes to memory the verifier knows the size of (not a syscall
 * program's context): a global, read by user space after the run. */
struct np_ksym_result np_ksym_result = {};

SEC("syscall")
int np_ksym_name(struct np_ksym_ctx *ctx)
{
	__u64 args[1] = {ctx->addr};
	np_ksym_result.ret = bpf_snprintf(np_ksym_result.name, sizeof(np_ksym_result.name), "%pS", args, sizeof(args));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
