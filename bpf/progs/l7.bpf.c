// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* NetProbe application-layer capture: the heads of the messages processes read from
 * and write to their inet sockets, seen at the raw syscall tracepoints (tp_btf
 * sys_enter/sys_exit: no tracefs, no kprobes). Only sockets: a descriptor is checked
 * to be a socket (inode type) of family AF_INET/AF_INET6 before anything is stored.
 * A connection's protocol is inferred here from its first bytes; a connection that
 * shows nothing recognisable in its first NP_L7_MAX_ATTEMPTS data syscalls is marked
 * NP_L7_NONE and costs one hash lookup per syscall from then on. Every record lost
 * (ring full, a table full, unreadable memory) is counted in l7_counters. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <netprobe/abi.h>
#include "ring.h"

#define NP_AF_INET 2
#define NP_AF_INET6 10
#define NP_SOCK_STREAM 1
#define NP_SOCK_DGRAM 2
#define NP_IPPROTO_UDP 17
#define NP_IPPROTO_TCP 6
#define NP_S_IFMT 00170000
#define NP_S_IFSOCK 0140000

/* Syscall arguments and number from the BTF-typed pt_regs: plain loads on x86-64,
 * CO-RE reads elsewhere. Valid at the syscall's exit too: the registers that carried
 * the arguments are the ones the kernel saved at entry (where the return value
 * overwrote the first, libbpf's _SYSCALL accessors read its saved copy). */
#if defined(__TARGET_ARCH_x86)
#define NP_SYSCALL_NR(r) ((r)->orig_ax)
#define NP_ARG1(r) ((r)->di)
#define NP_ARG2(r) ((r)->si)
#define NP_ARG3(r) ((r)->dx)
#define NP_ARG4(r) ((r)->r10)
#define NP_ARG5(r) ((r)->r8)
#else
#if defined(__TARGET_ARCH_arm64)
#define NP_SYSCALL_NR(r) BPF_CORE_READ((r), syscallno)
#elif defined(__TARGET_ARCH_riscv)
#define NP_SYSCALL_NR(r) BPF_CORE_READ((r), a7)
#elif defined(__TARGET_ARCH_s390)
#define NP_SYSCALL_NR(r) (BPF_CORE_READ((r), int_code) & 0xffff)
#else
#error "NP_SYSCALL_NR: the register of the syscall number on this architecture"
#endif
#define NP_ARG5(r) PT_REGS_PARM5_CORE_SYSCALL(r)
#define NP_ARG1(r) PT_REGS_PARM1_CORE_SYSCALL(r)
#define NP_ARG2(r) PT_REGS_PARM2_CORE_SYSCALL(r)
#define NP_ARG3(r) PT_REGS_PARM3_CORE_SYSCALL(r)
#define NP_ARG4(r) PT_REGS_PARM4_CORE_SYSCALL(r)
#endif

/* Set by user space before load. */
const volatile __u32 np_self_tgid = 0;                          /* the agent: not captured */
const volatile __u8 np_syscall_kind[NP_L7_SYSCALL_TABLE] = {};  /* nr -> enum np_l7_syscall */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by user space */
} l7_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64); /* struct sock * */
	__type(value, struct np_l7_conn);
	__uint(max_entries, 65536); /* resized by user space */
} l7_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_L7_CNT_MAX);
} l7_counters SEC(".maps");

/* The record being built, with room after its data so that a copy at any offset below
 * NP_L7_HEAD_MAX of up to NP_L7_HEAD_MAX bytes stays in the value (what the verifier
 * checks); only `captured` bytes are ever output. */
struct np_l7_scratch {
	struct np_l7_event e;
	/* (a piece is written at an offset below 8192 of data: room for one more after it) */
	__u8 slack[NP_L7_HEAD_MAX + 256];
	/* np_l7_copy's arguments beyond the five a BPF function takes, and its second result */
	__u64 iov, iovcnt, buf, seg, len;
	__u64 tail_buf;
	/* np_l7_read_at's cursor: the segment holding the bytes read last (forward only) */
	__u64 cur_base, cur_start, cur_len, cur_idx;
	/* np_l7_walk_amqp's state: the next frame's offset, where its piece goes, the end */
	__u64 walk_off, walk_p, walk_end;
	/* np_l7_output's: bytes written to the ring since this CPU last queried its
	 * backlog; the backlog's band (in NP_L7_WAKEUP_BYTES) at that query */
	__u64 unqueried, woke_band;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct np_l7_scratch);
	/* 0: the programs of process context (the syscall and TLS probes, which never nest
	 * on a CPU); 1: np_l7_sk_close, whose tracepoint fires in softirq too (an incoming
	 * FIN or reset) and may interrupt one of them mid-record on the same CPU. */
	__uint(max_entries, 2);
} l7_scratch SEC(".maps");

static __always_inline void np_l7_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&l7_counters, &idx);
	if (v)
		*v += 1;
}

/* Output without waking the reader except when the backlog crosses another
 * NP_L7_WAKEUP_BYTES: a wakeup per record is an IPI per syscall captured. The reader
 * drains the ring every 100 ms on its own (RingReader), so a record waits at most that
 * long. The backlog is queried (bpf_ringbuf_query: the consumer position's cache line,
 * written by the reader on another CPU; ~0.6% of all CPU under wrk against nginx when
 * read per record) once each CPU has written NP_L7_QUERY_BYTES since its last query, and
 * a CPU wakes the reader once per band the backlog enters (none while it is below the
 * first band). With C CPUs the backlog can run C x NP_L7_QUERY_BYTES past a band before
 * the wakeup: far below the ring's size (8 MiB by default). */
#define NP_L7_WAKEUP_BYTES (256 * 1024)
#define NP_L7_QUERY_BYTES (16 * 1024)
static __always_inline long np_l7_output(struct np_l7_scratch *s, __u64 size)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	s->unqueried += ((size + 7) & ~7ULL) + NP_RING_HDR_SZ;
	if (s->unqueried >= NP_L7_QUERY_BYTES) {
		s->unqueried = 0;
		__u64 band = bpf_ringbuf_query(&l7_events, BPF_RB_AVAIL_DATA) / NP_L7_WAKEUP_BYTES;
		if (band && band != s->woke_band)
			flags = BPF_RB_FORCE_WAKEUP;
		s->woke_band = band;
	}
	return bpf_ringbuf_output(&l7_events, &s->e, size, flags);
}

static __always_inline __u8 np_kind(long id)
{
	if (id < 0 || id >= NP_L7_SYSCALL_TABLE)
		return NP_L7_SC_NONE;
	return np_syscall_kind[id];
}

/* Reads through kernel pointers as plain loads (faults read as zero) instead of a
 * helper call per hop: a cast of an address to its BTF type (kfunc, Linux 6.2+). */
extern void *bpf_rdonly_cast(void *obj, __u32 btf_id) __ksym;

/* The TCP or UDP socket behind descriptor fd of the current task, or NULL (not a
 * socket, not inet, neither). Loads only, no helper call: the fd array's slot is read
 * as the one pointer of a struct llist_node cast onto it (the array itself has no BTF
 * type to cast to; bpf_probe_read_kernel of the slot cost ~80 ns a syscall in perf). */
static __always_inline struct sock *np_fd_inet_sock(int fd, __u8 *ip_proto)
{
	if (fd < 0)
		return NULL;
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	if ((unsigned int)fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	struct llist_node *slot = bpf_rdonly_cast(&fds[fd], bpf_core_type_id_kernel(struct llist_node));
	void *fp = slot->next;
	if (!fp)
		return NULL;
	struct file *f = bpf_rdonly_cast(fp, bpf_core_type_id_kernel(struct file));
	if ((f->f_inode->i_mode & NP_S_IFMT) != NP_S_IFSOCK)
		return NULL;
	struct socket *so = bpf_rdonly_cast(f->private_data, bpf_core_type_id_kernel(struct socket));
	struct sock *sk = so->sk;
	if (!sk)
		return NULL;
	__u16 family = sk->__sk_common.skc_family;
	if (family != NP_AF_INET && family != NP_AF_INET6)
		return NULL;
	if (sk->sk_type == NP_SOCK_STREAM && sk->sk_protocol == NP_IPPROTO_TCP)
		*ip_proto = NP_IPPROTO_TCP;
	else if (sk->sk_type == NP_SOCK_DGRAM && sk->sk_protocol == NP_IPPROTO_UDP)
		*ip_proto = NP_IPPROTO_UDP;
	else
		return NULL;
	return sk;
}

/* The port (host order) of a user-space sockaddr_in/in6, 0 if unreadable or neither. */
static __always_inline __u16 np_sockaddr_port(__u64 uaddr)
{
	__u16 hdr[2] = {};
	if (!uaddr || bpf_probe_read_user(hdr, sizeof(hdr), (void *)uaddr))
		return 0;
	if (hdr[0] != NP_AF_INET && hdr[0] != NP_AF_INET6)
		return 0;
	return bpf_ntohs(hdr[1]);
}

static __always_inline void np_sk_ports(struct sock *sk, __u16 *local, __u16 *remote)
{
	*local = sk->__sk_common.skc_num;
	*remote = bpf_ntohs(sk->__sk_common.skc_dport);
}

/* The connection record of sk if it belongs to this socket (same ports), else NULL. */
static __always_inline struct np_l7_conn *np_conn(__u64 key, __u16 lport, __u16 rport)
{
	struct np_l7_conn *c = bpf_map_lookup_elem(&l7_conns, &key);
	if (c && (c->local_port != lport || c->remote_port != rport))
		return NULL;
	return c;
}

/* The inet socket behind descriptor fd (NULL: none), its ports, and its connection
 * record (*c NULL when it has none). */
static __always_inline struct sock *np_fd_conn(int fd, __u8 *ip_proto, __u16 *lport, __u16 *rport,
					       struct np_l7_conn **c)
{
	struct sock *sk = np_fd_inet_sock(fd, ip_proto);
	if (!sk)
		return NULL;
	np_sk_ports(sk, lport, rport);
	*c = np_conn((__u64)sk, *lport, *rport);
	return sk;
}

static __always_inline int np_is_recv(__u8 kind)
{
	return kind == NP_L7_SC_READ || kind == NP_L7_SC_READV || kind == NP_L7_SC_RECVFROM ||
	       kind == NP_L7_SC_RECVMSG || kind == NP_L7_SC_RECVMMSG;
}

/* Set by user space once uprobes are attached: the syscall program then notes, for a
 * thread inside a TLS call, the socket the call reads or writes. */
volatile __u32 np_tls_active = 0;

/* The thread's TLS call between its entry and return probes: task storage, which costs
 * less per call than a hash keyed by pid_tgid (an update at the entry, a lookup and a
 * delete at the return). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct np_l7_tls_call);
} l7_tls_calls SEC(".maps");

/* The socket of each SSL object, for calls served from OpenSSL's buffer (no syscall). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);   /* SSL * */
	__type(value, __u64); /* struct sock * */
	__uint(max_entries, 65536);
} l7_tls_ssl SEC(".maps");

/* Whether a TLS library call may read or write this connection's socket: not when the
 * connection is known to carry a plaintext protocol in which TLS never starts mid-way
 * (HTTP, HTTP/2, Redis, DNS, Kafka and AMQP use TLS from the first byte, classified TLS;
 * PostgreSQL and MySQL switch after an SSLRequest). Spares those connections' syscalls
 * the task storage lookup. */
static __always_inline int np_tls_may_use(const struct np_l7_conn *c)
{
	if (!c)
		return 1;
	__u8 p = c->protocol;
	return !(p == NP_L7_HTTP1 || p == NP_L7_HTTP2 || p == NP_L7_REDIS || p == NP_L7_DNS || p == NP_L7_KAFKA ||
		 p == NP_L7_AMQP);
}

/* The connection is over: tell user space its parser state can go (when it has any);
 * on close(2) (flags 0) forget it here too. */
static __always_inline void np_l7_closed(__u64 key, struct np_l7_conn *c, __u64 pid_tgid, __u16 lport, __u16 rport,
					 int fd, __u32 kind, __u8 flags)
{
	/* A TLS connection's parser state is its plaintext protocol's. */
	__u8 parsed = c->protocol == NP_L7_TLS ? c->inner : c->protocol;
	if (parsed != NP_L7_NONE && parsed != NP_L7_UNKNOWN && parsed != NP_L7_TLS) {
		/* (flags: from np_l7_sk_close, maybe in softirq: a scratch of its own) */
		__u32 slot = flags ? 1 : 0;
		struct np_l7_scratch *s = bpf_map_lookup_elem(&l7_scratch, &slot);
		if (s) {
			struct np_l7_event *e = &s->e;
			e->ts_ns = bpf_ktime_get_ns();
			e->sock = key;
			e->pid_tgid = pid_tgid;
			e->cgroup_id = bpf_get_current_cgroup_id();
			e->local_port = lport;
			e->remote_port = rport;
			e->direction = NP_L7_CLOSED;
			e->protocol = parsed;
			e->syscall = kind;
			e->flags = flags;
			e->captured = 0;
			e->fd = fd;
			e->len = 0;
			e->tail_len = 0;
			e->pieces_len = 0;
			if (np_l7_output(s, offsetof(struct np_l7_event, tail)))
				np_l7_count(NP_L7_CNT_RING_FULL);
			else
				np_l7_count(NP_L7_CNT_EVENTS);
		}
	}
	if (!flags)
		bpf_map_delete_elem(&l7_conns, &key);
}

/* Classifies a data syscall on descriptor fd that moved bytes: fills *a (the socket,
 * the connection's protocol when its record has one, the buffers) and returns 1 when
 * its bytes are to be captured; 0 for a descriptor that is no inet socket, a connection
 * classified as nothing we parse, or UDP that is not DNS. */
static __always_inline int np_l7_classify(__u8 kind, int fd, __u64 arg2, __u64 arg3, __u64 arg4, __u64 arg5,
					  __u64 pid_tgid, struct np_l7_args *a)
{
	__u8 ip_proto = 0;
	__u16 lport, rport;
	struct np_l7_conn *c = NULL;
	struct sock *sk = np_fd_conn(fd, &ip_proto, &lport, &rport, &c);
	if (!sk)
		return 0;
	__u64 key = (__u64)sk;

	np_l7_count(NP_L7_CNT_SOCKET_SYSCALLS);
	if (np_tls_active && np_tls_may_use(c)) {
		/* Inside a TLS library call: this is the socket it reads or writes (the call's
		 * return probe runs after this exit). */
		struct np_l7_tls_call *tc = bpf_task_storage_get(&l7_tls_calls, bpf_get_current_task_btf(), 0, 0);
		if (tc && tc->active)
			tc->sock = key;
	}
	if (c && (c->protocol == NP_L7_NONE || c->protocol == NP_L7_TLS)) {
		np_l7_count(NP_L7_CNT_SKIPPED_NONE);
		return 0;
	}
	a->sock = key;
	a->fd = (__u32)fd;
	a->syscall = kind;
	a->ip_proto = ip_proto;
	if (kind == NP_L7_SC_SENDFILE) {
		a->buf = 0;
		a->count = arg4;
	} else {
		a->buf = arg2;
		a->count = arg3;
	}
	if (c && c->protocol != NP_L7_UNKNOWN) {
		/* a protocol we parse (NONE and TLS returned above): a connection's protocol
		 * only changes while UNKNOWN, or on a TLS call (not a syscall) */
		a->proto = c->protocol;
		a->known = 1;
	}
	if (kind == NP_L7_SC_SENDTO || kind == NP_L7_SC_RECVFROM)
		a->addr = arg5;
	if (!c && (ip_proto == NP_IPPROTO_UDP || lport == NP_L7_DNS_PORT || rport == NP_L7_DNS_PORT)) {
		/* Classified by port: DNS (UDP or TCP) at port 53; other UDP is not captured.
		 * A UDP socket without a peer is DNS when it sends to port 53. (At the exit a
		 * send has bound the socket's local port.) */
		__u8 proto = NP_L7_NONE;
		if (lport == NP_L7_DNS_PORT || rport == NP_L7_DNS_PORT)
			proto = NP_L7_DNS;
		else if (kind == NP_L7_SC_SENDTO && np_sockaddr_port(a->addr) == NP_L7_DNS_PORT)
			proto = NP_L7_DNS;
		else if (kind == NP_L7_SC_SENDMSG || kind == NP_L7_SC_SENDMMSG) {
			/* (an mmsghdr begins with its msghdr) */
			struct user_msghdr m = {};
			if (!bpf_probe_read_user(&m, sizeof(m), (void *)a->buf) &&
			    np_sockaddr_port((__u64)m.msg_name) == NP_L7_DNS_PORT)
				proto = NP_L7_DNS;
		} else if (ip_proto == NP_IPPROTO_UDP && !rport &&
			   (kind == NP_L7_SC_RECVFROM || kind == NP_L7_SC_RECVMSG || kind == NP_L7_SC_RECVMMSG ||
			    kind == NP_L7_SC_READ)) {
			proto = NP_L7_UNKNOWN; /* a receive before any send: decide at the next send */
		}
		if (ip_proto == NP_IPPROTO_TCP && proto == NP_L7_NONE)
			proto = NP_L7_UNKNOWN; /* TCP: inferred from the bytes, as usual */
		if (proto != NP_L7_UNKNOWN) {
			a->proto = proto;
			struct np_l7_conn nc = {.local_port = lport, .remote_port = rport, .protocol = proto};
			if (bpf_map_update_elem(&l7_conns, &key, &nc, BPF_ANY))
				np_l7_count(NP_L7_CNT_CONNS_FULL);
			if (proto == NP_L7_NONE) {
				np_l7_count(NP_L7_CNT_SKIPPED_NONE);
				return 0;
			}
		} else if (ip_proto == NP_IPPROTO_UDP) {
			return 0;
		}
	}
	return 1;
}

/* Only close(2) is seen at the entry (afterwards the descriptor is gone): the data
 * syscalls are captured at their exit alone, where the registers still hold their
 * arguments (libbpf's _SYSCALL accessors: the first argument's own copy where the return
 * value overwrote its register). One program run per syscall less, and nothing kept
 * between entry and exit. */
static __always_inline void np_l7_close_fd(int fd)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if ((__u32)(pid_tgid >> 32) == np_self_tgid)
		return;
	__u8 ip_proto = 0;
	__u16 lport, rport;
	struct np_l7_conn *c = NULL;
	struct sock *sk = np_fd_conn(fd, &ip_proto, &lport, &rport, &c);
	if (sk && c)
		np_l7_closed((__u64)sk, c, pid_tgid, lport, rport, fd, NP_L7_SC_CLOSE, 0);
}

/* close(2)'s own tracepoint (user space attaches it when tracefs has it): every other
 * syscall's entry then costs the kernel a bit test, not a program run (the raw sys_enter
 * tracepoint below runs a program at every syscall's entry: ~0.9% of all CPU under wrk
 * against nginx in perf, dispatch included). */
SEC("tracepoint/syscalls/sys_enter_close")
int np_l7_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	np_l7_close_fd((int)ctx->args[0]);
	return 0;
}

/* The fallback where syscall tracepoints are missing (no tracefs, or a kernel built
 * without CONFIG_FTRACE_SYSCALLS). */
SEC("tp_btf/sys_enter")
int BPF_PROG(np_l7_enter, struct pt_regs *regs, long id)
{
	if (np_kind(id) == NP_L7_SC_CLOSE)
		np_l7_close_fd((int)NP_ARG1(regs));
	return 0;
}

static __always_inline int np_prefix(const __u8 *d, __u32 n, const char *p, __u32 plen)
{
	if (n < plen)
		return 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if ((__u32)i >= plen)
			break;
		if (d[i] != (__u8)p[i])
			return 0;
	}
	return 1;
}

static __always_inline __u32 np_be32(const __u8 *d)
{
	return ((__u32)d[0] << 24) | ((__u32)d[1] << 16) | ((__u32)d[2] << 8) | d[3];
}

/* Kafka: a request's header at h (the bytes after its 4-byte size), avail of them
 * copied, size = its size field: an api key and version within bounds, a non-negative
 * correlation id, and a client id (nullable STRING) that fits in the request and whose
 * first bytes are printable. With the size equal to what the syscall moved, random
 * binary passes this about once in 2^60. */
static __always_inline int np_kafka_request(const __u8 *h, __u32 avail, __u32 size)
{
	if (avail < 10 || size < 10 || size > NP_L7_KAFKA_MAX_SIZE)
		return 0;
	__u32 key = ((__u32)h[0] << 8) | h[1];
	__u32 ver = ((__u32)h[2] << 8) | h[3];
	if (key > NP_L7_KAFKA_MAX_API_KEY || ver > NP_L7_KAFKA_MAX_API_VERSION || (h[4] & 0x80))
		return 0;
	__u32 clen = ((__u32)h[8] << 8) | h[9];
	if (clen == 0xffff)
		return 1; /* a null client id */
	if (10 + clen > size)
		return 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if ((__u32)i >= clen || 10 + (__u32)i >= avail)
			break;
		__u8 ch = h[10 + i];
		if (ch < 0x20 || ch > 0x7e)
			return 0;
	}
	return 1;
}

/* AMQP 0-9-1: whether (class id, method id) is one of the specification's methods
 * (with RabbitMQ's extensions: exchange.bind/unbind, confirm, connection.blocked and
 * update-secret). */
#define NP_B(x) (1ULL << (x))
static __always_inline int np_amqp_method(__u32 cls, __u32 mth)
{
	__u64 lo = 0, hi = 0; /* method ids 0..63, 64..127 */
	switch (cls) {
	case 10: /* connection */
		lo = NP_B(10) | NP_B(11) | NP_B(20) | NP_B(21) | NP_B(30) | NP_B(31) | NP_B(40) | NP_B(41) | NP_B(50) |
		     NP_B(51) | NP_B(60) | NP_B(61);
		hi = NP_B(70 - 64) | NP_B(71 - 64);
		break;
	case 20: /* channel */
		lo = NP_B(10) | NP_B(11) | NP_B(20) | NP_B(21) | NP_B(40) | NP_B(41);
		break;
	case 40: /* exchange */
		lo = NP_B(10) | NP_B(11) | NP_B(20) | NP_B(21) | NP_B(30) | NP_B(31) | NP_B(40) | NP_B(51);
		break;
	case 50: /* queue */
		lo = NP_B(10) | NP_B(11) | NP_B(20) | NP_B(21) | NP_B(30) | NP_B(31) | NP_B(40) | NP_B(41) | NP_B(50) |
		     NP_B(51);
		break;
	case 60: /* basic */
		lo = NP_B(10) | NP_B(11) | NP_B(20) | NP_B(21) | NP_B(30) | NP_B(31) | NP_B(40) | NP_B(50) | NP_B(60);
		hi = NP_B(70 - 64) | NP_B(71 - 64) | NP_B(72 - 64) | NP_B(80 - 64) | NP_B(90 - 64) | NP_B(100 - 64) |
		     NP_B(110 - 64) | NP_B(111 - 64) | NP_B(120 - 64);
		break;
	case 85: /* confirm */
		lo = NP_B(10) | NP_B(11);
		break;
	case 90: /* tx */
		lo = NP_B(10) | NP_B(11) | NP_B(20) | NP_B(21) | NP_B(30) | NP_B(31);
		break;
	default:
		return 0;
	}
	if (mth < 64)
		return (lo >> mth) & 1;
	if (mth < 128)
		return (hi >> (mth - 64)) & 1;
	return 0;
}
#undef NP_B

/* The protocol a connection's first captured bytes show, or NP_L7_UNKNOWN. n bytes of
 * the message are at d; len is what the syscall moved (the whole message when one write
 * or read carries it, which the length checks below rely on). */
static __always_inline __u8 np_l7_infer(const __u8 *d, __u32 n, __u64 len)
{
	if (n >= 3 && d[0] == 0x16 && d[1] == 0x03 && d[2] <= 0x04)
		return NP_L7_TLS;
	if (np_prefix(d, n, "PRI * HT", 8))
		return NP_L7_HTTP2;
	/* AMQP 0-9-1: the protocol header the client opens with (and the server reads). */
	if (np_prefix(d, n, "AMQP\x00\x00\x09\x01", 8))
		return NP_L7_AMQP;
	if (np_prefix(d, n, "HTTP/1.", 7) || np_prefix(d, n, "GET /", 5) || np_prefix(d, n, "POST /", 6) ||
	    np_prefix(d, n, "PUT /", 5) || np_prefix(d, n, "HEAD /", 6) || np_prefix(d, n, "DELETE /", 8) ||
	    np_prefix(d, n, "PATCH /", 7) || np_prefix(d, n, "OPTIONS ", 8) || np_prefix(d, n, "CONNECT ", 8) ||
	    np_prefix(d, n, "TRACE /", 7) || np_prefix(d, n, "GET http", 8) || np_prefix(d, n, "POST htt", 8))
		return NP_L7_HTTP1;
	if (n < 8)
		return NP_L7_UNKNOWN;
	/* Redis: a command is an array of bulk strings: "*<1-3 digits>\r\n$". */
	if (d[0] == '*' && d[1] >= '1' && d[1] <= '9') {
		if (d[2] == '\r' && d[3] == '\n' && d[4] == '$')
			return NP_L7_REDIS;
		if (d[2] >= '0' && d[2] <= '9' && d[3] == '\r' && d[4] == '\n' && d[5] == '$')
			return NP_L7_REDIS;
		if (d[2] >= '0' && d[2] <= '9' && d[3] >= '0' && d[3] <= '9' && d[4] == '\r' && d[5] == '\n' &&
		    d[6] == '$')
			return NP_L7_REDIS;
		return NP_L7_UNKNOWN;
	}
	/* PostgreSQL: a startup message (length = the whole write, protocol 3.0), an
	 * SSLRequest or GSSENCRequest (length 8, magic codes), or mid-connection a simple
	 * query ('Q', length + 1 = the whole message, NUL-terminated). */
	__u32 l0 = np_be32(d), c4 = np_be32(d + 4);
	if (l0 == len && c4 == 0x00030000 && len <= 10000)
		return NP_L7_POSTGRES;
	if (l0 == 8 && len == 8 && (c4 == 80877103 || c4 == 80877104))
		return NP_L7_POSTGRES;
	if (d[0] == 'Q' && np_be32(d + 1) + 1 == len && len <= n && d[(len - 1) & (NP_L7_HEAD_MAX - 1)] == 0)
		return NP_L7_POSTGRES;
	/* MySQL/MariaDB: the server's greeting (a packet with sequence 0 holding the whole
	 * write/read, protocol version 10, a version string starting with a digit), or
	 * mid-connection a client command packet (sequence 0, COM_QUERY / COM_STMT_PREPARE /
	 * COM_STMT_EXECUTE). */
	__u32 p3 = (__u32)d[0] | ((__u32)d[1] << 8) | ((__u32)d[2] << 16);
	if (d[3] == 0 && p3 + 4 == len) {
		if (d[4] == 0x0a && d[5] >= '0' && d[5] <= '9' && d[6] == '.')
			return NP_L7_MYSQL;
		if ((d[4] == 0x03 || d[4] == 0x16 || d[4] == 0x17) && p3 > 1)
			return NP_L7_MYSQL;
	}
	/* Kafka: a request whose size field is the rest of the syscall. */
	if ((__u64)l0 + 4 == len && np_kafka_request(d + 4, n - 4, l0))
		return NP_L7_KAFKA;
	/* AMQP mid-connection: a method frame (type 1) of a known class and method whose
	 * frame-end octet (0xCE) is where its size puts it, or a heartbeat frame alone. */
	if (d[0] == 1 && n >= 12) {
		__u32 fsize = np_be32(d + 3);
		__u32 cls = ((__u32)d[7] << 8) | d[8], mth = ((__u32)d[9] << 8) | d[10];
		if (fsize >= 4 && (__u64)fsize + 8 <= len && fsize + 7 < n &&
		    d[(fsize + 7) & (NP_L7_HEAD_MAX - 1)] == 0xce && np_amqp_method(cls, mth))
			return NP_L7_AMQP;
	}
	if (len == 8 && d[0] == 8 && d[1] == 0 && d[2] == 0 && d[3] == 0 && c4 == 0xce) /* channel 0, size 0, frame end */
		return NP_L7_AMQP;
	return NP_L7_UNKNOWN;
}

/* One message to capture: where its bytes are and on which socket. */
struct np_l7_cap {
	__u64 sock;
	__u64 pid_tgid;
	__u64 buf;   /* where the message's bytes start (0: none to copy) */
	__u64 seg;   /* contiguous bytes at buf */
	__u64 len;   /* bytes the call moved */
	__u32 fd;
	__u8 syscall;
	__u8 direction;
	__u8 tls;    /* plaintext of a TLS connection: its protocol is the connection's inner one */
	__u8 ip_proto;
	__u64 peer;  /* UDP: the peer's sockaddr in user memory (a socket without connect) */
	__u64 iov;   /* vector I/O: the iovec array (its segments are gathered) */
	__u64 iovcnt;
	__u8 proto_hint; /* classified from the socket (by port: DNS), else NP_L7_UNKNOWN */
	__u8 known;      /* proto_hint is the connection record's protocol (no lookup needed) */
};

/* Copies up to cap bytes of a message into s->e.data - vector I/O (s->iov != 0): its
 * segments in order, up to NP_L7_GATHER of them - and returns the count; s->tail_buf is
 * the buffer that holds the whole message when one does (its tail can be read). A global
 * function: verified once, on its own, whatever the caller's state. */
__noinline int np_l7_copy(struct np_l7_scratch *s, __u64 cap)
{
	if (!s)
		return 0;
	const __u64 iov = s->iov, iovcnt = s->iovcnt, buf = s->buf, seg = s->seg, len = s->len;
	if (cap > len)
		cap = len;
	s->tail_buf = buf && seg == len ? buf : 0;
	if (iov) {
		/* A bounded loop, not bpf_loop: this kernel's verifier (6.18) fails a bpf_loop
		 * callback whose copy size it must backtrack into the caller ("verifier bug:
		 * backtracking call unexpected regs"). */
		__u64 n = 0;
		for (__u32 i = 0; i < NP_L7_GATHER; i++) {
			if (i >= iovcnt || n >= cap)
				break;
			struct iovec v = {};
			if (bpf_probe_read_user(&v, sizeof(v), (void *)(iov + i * sizeof(struct iovec)))) {
				np_l7_count(NP_L7_CNT_READ_FAILED);
				break;
			}
			if (i == 0 && v.iov_len >= len)
				s->tail_buf = (__u64)v.iov_base;
			__u64 want = v.iov_len < cap - n ? v.iov_len : cap - n;
			/* Bounds the verifier can follow: off < HEAD_MAX, w <= HEAD_MAX, so the copy
			 * ends within the scratch value's slack. */
			__u64 off = n, w = want;
			asm volatile("%0 &= 4095" : "+r"(off));
			asm volatile("%0 &= 8191" : "+r"(w));
			if (w > NP_L7_HEAD_MAX)
				break;
			if (bpf_probe_read_user(s->e.data + off, w, (void *)v.iov_base)) {
				np_l7_count(NP_L7_CNT_READ_FAILED);
				break;
			}
			n += w;
		}
		return (int)(n & 0x1fff);
	}
	if (buf && seg) {
		__u64 w = seg < cap ? seg : cap;
		asm volatile("%0 &= 8191" : "+r"(w));
		if (w > NP_L7_HEAD_MAX)
			return 0;
		if (bpf_probe_read_user(s->e.data, w, (void *)buf)) {
			np_l7_count(NP_L7_CNT_READ_FAILED);
			return 0;
		}
		return (int)w;
	}
	return 0;
}

/* Moves the cursor over the syscall's bytes (s->buf, or the iovecs at s->iov) forward to
 * the segment that holds byte `at`; 0 when there. */
static __always_inline int np_l7_seek(struct np_l7_scratch *s, __u64 at)
{
	for (int i = 0; i < NP_L7_GATHER; i++) {
		if (at < s->cur_start + s->cur_len)
			return 0;
		if (!s->iov || s->cur_idx >= s->iovcnt)
			return -1;
		struct iovec v = {};
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(s->iov + s->cur_idx * sizeof(struct iovec)))) {
			np_l7_count(NP_L7_CNT_READ_FAILED);
			return -1;
		}
		s->cur_start += s->cur_len;
		s->cur_base = (__u64)v.iov_base;
		s->cur_len = v.iov_len;
		s->cur_idx++;
	}
	return -1;
}

/* Reads `want` (<= NP_L7_PIECE_MAX) bytes at byte `at` of the syscall's data into
 * s->e.data + dst (dst < 8192), across segments; returns the count read (fewer at the
 * end of the data, past the segments the cursor may visit, or when a read fails). A
 * global function: verified once. */
__noinline int np_l7_read_at(struct np_l7_scratch *s, __u64 at, __u64 dst, __u64 want)
{
	if (!s)
		return 0;
	__u64 got = 0;
	for (int part = 0; part < 4; part++) {
		if (got >= want || np_l7_seek(s, at + got))
			break;
		__u64 in_seg = s->cur_start + s->cur_len - (at + got);
		__u64 take = want - got < in_seg ? want - got : in_seg;
		__u64 off = dst + got;
		asm volatile("%0 &= 8191" : "+r"(off));
		asm volatile("%0 &= 255" : "+r"(take));
		if (take == 0 || take > NP_L7_PIECE_MAX)
			break;
		if (bpf_probe_read_user(s->e.data + off, take, (void *)(s->cur_base + (at + got - s->cur_start)))) {
			np_l7_count(NP_L7_CNT_READ_FAILED);
			break;
		}
		got += take;
	}
	return (int)got;
}

static __always_inline int np_amqp_frame_type(__u8 t)
{
	return t == 1 || t == 2 || t == 3 || t == 8;
}

/* One frame of the walk below: the frame at s->walk_off becomes a piece at
 * s->e.data + s->walk_p (with `piece` 0: only its header is read, to step over it).
 * 1: walked (the next frame is due), 0: the walk ends. A global function (verified once,
 * whatever the walk's state: a loop of these stays small). */
__noinline int np_l7_walk_hop(struct np_l7_scratch *s, int piece)
{
	if (!s)
		return 0;
	const __u64 off = s->walk_off, p = s->walk_p, len = s->len;
	if (off + 7 > len)
		return 0;
	if (piece && p + NP_L7_PIECE_HDR + NP_L7_PIECE_MAX > s->walk_end)
		return 0;
	/* (a header stepped over is read past the pieces' room: data[8064..8071], below the
	 * 8192 every offset into data is masked to) */
	const __u64 at = piece ? p + NP_L7_PIECE_HDR : 8064;
	if (np_l7_read_at(s, off, at, 7) != 7)
		return 0;
	const __u8 *h = s->e.data + (at & 8191);
	if (!np_amqp_frame_type(h[0]))
		return 0;
	const __u64 size = np_be32(h + 3);
	s->walk_off = off + size + 8;
	if (!piece)
		return 1;
	__u64 want = 7;
	if (h[0] == 1 || h[0] == 2) /* a method, a content header: their first bytes */
		want = size + 8 < NP_L7_PIECE_MAX ? size + 8 : NP_L7_PIECE_MAX;
	if (want > len - off) /* (a receive's segments may be longer than what it moved) */
		want = len - off;
	if (want > 7)
		want = 7 + (__u64)np_l7_read_at(s, off + 7, at + 7, want - 7);
	__u8 *ph = s->e.data + (p & 8191);
	ph[0] = (__u8)off;
	ph[1] = (__u8)(off >> 8);
	ph[2] = (__u8)(off >> 16);
	ph[3] = (__u8)(off >> 24);
	ph[4] = (__u8)want;
	ph[5] = 0;
	s->walk_p = p + NP_L7_PIECE_HDR + want;
	return 1;
}

/* AMQP: the chain of frames of the syscall from byte s->walk_off (where the previous
 * syscall's last frame ended; 0 when not known): through the n copied bytes, then through
 * the user buffer(s), where each frame becomes a piece after the copy in s->e.data (see
 * NP_L7_PIECE_MAX) and, past the pieces' room, is stepped over by its header. Returns the
 * bytes of pieces written; s->walk_off ends where the chain left the syscall's data
 * (>= s->len) when the walk got there, else below s->len (not known). A global function:
 * verified once. */
__noinline int np_l7_walk_amqp(struct np_l7_scratch *s, __u64 n)
{
	if (!s)
		return 0;
	__u64 off = s->walk_off;
	const __u64 len = s->len;
	s->walk_off = 0;
	if (n > NP_L7_HEAD_MAX)
		return 0;
	/* The frames in the copy: their headers are in data. */
	for (int i = 0; i < NP_L7_HEAD_MAX / 8; i++) {
		if (off + 7 > n)
			break;
		const __u8 *h = s->e.data + (off & (NP_L7_HEAD_MAX - 1));
		if (!np_amqp_frame_type(h[0]))
			return 0; /* not a frame where one should start: nothing to walk */
		off += (__u64)np_be32(h + 3) + 8;
	}
	s->walk_off = off;
	if (off >= len || off + 7 > len)
		return 0; /* the chain left the data (or a header is cut by its end: not known) */
	s->cur_idx = 0;
	s->cur_start = 0;
	s->cur_len = s->iov ? 0 : s->seg;
	s->cur_base = s->iov ? 0 : s->buf;
	s->walk_p = n;
	s->walk_end = n + NP_L7_PIECES_BYTES;
	for (int j = 0; j < NP_L7_WALK_MAX; j++)
		if (!np_l7_walk_hop(s, 1))
			break;
	for (int j = 0; j < NP_L7_SKIP_MAX; j++)
		if (!np_l7_walk_hop(s, 0))
			break;
	return (int)(s->walk_p - n);
}

/* Protocols whose syscalls often carry many messages (HTTP/2 frames of many streams,
 * Redis pipelines, AMQP frames of many deliveries): NP_L7_HEAD_MAX bytes are copied. */
static __always_inline int np_l7_big_copy(__u8 proto)
{
	return proto == NP_L7_HTTP2 || proto == NP_L7_REDIS || proto == NP_L7_AMQP;
}

/* Copies the head (and tail) of a message, infers the connection's protocol from its
 * first messages, and writes the record when the protocol is one we parse. */
static __always_inline void np_l7_record(const struct np_l7_cap *k)
{
	struct sock *sk = bpf_rdonly_cast((void *)k->sock, bpf_core_type_id_kernel(struct sock));
	__u16 lport, rport;
	np_sk_ports(sk, &lport, &rport);
	/* A syscall on a connection whose protocol its classification found: the record is not
	 * looked up again (only an UNKNOWN connection's record is updated below). */
	struct np_l7_conn *c = k->known && !k->tls ? NULL : np_conn(k->sock, lport, rport);
	__u8 proto;
	if (k->tls && c && c->protocol == NP_L7_MYSQL) {
		/* MySQL's TLS begins inside the protocol (after the client's SSLRequest): the
		 * plaintext goes on where the plaintext protocol left off, and the socket's own
		 * syscalls carry TLS records from now on (skipped, like any TLS connection's). */
		c->protocol = NP_L7_TLS;
		c->inner = NP_L7_MYSQL;
	}
	if (k->tls)
		proto = c && c->protocol == NP_L7_TLS ? c->inner : NP_L7_UNKNOWN;
	else if (k->known)
		proto = k->proto_hint;
	else
		proto = c ? c->protocol : NP_L7_UNKNOWN;
	if (!c && !k->known && k->proto_hint) {
		struct np_l7_conn nc = {.local_port = lport, .remote_port = rport, .protocol = k->proto_hint};
		if (bpf_map_update_elem(&l7_conns, &k->sock, &nc, BPF_ANY))
			np_l7_count(NP_L7_CNT_CONNS_FULL);
		proto = k->proto_hint;
	}
	if (proto == NP_L7_NONE || (!k->tls && proto == NP_L7_TLS))
		return;

	__u32 zero = 0;
	struct np_l7_scratch *scratch = bpf_map_lookup_elem(&l7_scratch, &zero);
	if (!scratch)
		return;
	struct np_l7_event *e = &scratch->e;
	/* Copy size: the protocol's (while it is being inferred, the default). */
	scratch->iov = k->iov;
	scratch->iovcnt = k->iovcnt;
	scratch->buf = k->buf;
	scratch->seg = k->seg;
	scratch->len = k->len;
	__u32 n = (__u32)np_l7_copy(scratch, np_l7_big_copy(proto) ? NP_L7_HEAD_MAX : NP_L7_COPY);

	__u8 split = 0;
	if (proto == NP_L7_UNKNOWN) {
		struct np_l7_conn nc = {.local_port = lport, .remote_port = rport};
		if (c)
			nc = *c;
		const __u8 dir1 = k->direction + 1;
		if (!k->tls && nc.split_dir == dir1 && nc.split_len == k->len && np_kafka_request(e->data, n, nc.split_len)) {
			/* the rest of a Kafka request whose size came alone in the previous syscall */
			proto = NP_L7_KAFKA;
			split = 1;
		} else {
			proto = n ? np_l7_infer(e->data, n, k->len) : NP_L7_UNKNOWN;
		}
		nc.split_len = 0;
		nc.split_dir = 0;
		if (!k->tls && proto == NP_L7_UNKNOWN && n == 4 && k->len == 4) {
			nc.split_len = np_be32(e->data);
			nc.split_dir = dir1;
		}
		if (k->tls) {
			if (proto == NP_L7_TLS)
				proto = NP_L7_UNKNOWN; /* a TLS record inside TLS: not something we parse */
			if (proto == NP_L7_UNKNOWN && ++nc.inner_attempts >= NP_L7_MAX_ATTEMPTS)
				proto = NP_L7_NONE;
			nc.protocol = NP_L7_TLS;
			nc.inner = proto;
		} else {
			if (proto == NP_L7_UNKNOWN && ++nc.attempts >= NP_L7_MAX_ATTEMPTS)
				proto = NP_L7_NONE;
			nc.protocol = proto;
		}
		if (bpf_map_update_elem(&l7_conns, &k->sock, &nc, BPF_ANY))
			np_l7_count(NP_L7_CNT_CONNS_FULL);
		if (proto == NP_L7_UNKNOWN || proto == NP_L7_NONE || proto == NP_L7_TLS)
			return;
		/* Just classified as a protocol with the larger copy (its first write often packs
		 * several messages: the HTTP/2 preface, SETTINGS and the first HEADERS). */
		if (np_l7_big_copy(proto) && n == NP_L7_COPY && k->len > n)
			n = (__u32)np_l7_copy(scratch, NP_L7_HEAD_MAX);
	}

	e->ts_ns = bpf_ktime_get_ns();
	e->sock = k->sock;
	e->pid_tgid = k->pid_tgid;
	e->cgroup_id = bpf_get_current_cgroup_id();
	/* sk is a BTF pointer (bpf_rdonly_cast): plain loads, no helper call per field */
	__u16 family = sk->__sk_common.skc_family;
	if (family == NP_AF_INET) {
		__builtin_memset(&e->local, 0, sizeof(e->local));
		__builtin_memset(&e->remote, 0, sizeof(e->remote));
		e->local.v4m.pad[2] = bpf_htonl(0xffff);
		e->remote.v4m.pad[2] = bpf_htonl(0xffff);
		e->local.v4m.v4 = sk->__sk_common.skc_rcv_saddr;
		e->remote.v4m.v4 = sk->__sk_common.skc_daddr;
		e->family = 4;
	} else {
		const __u32 *l6 = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32;
		const __u32 *r6 = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			e->local.v6_32[i] = l6[i];
			e->remote.v6_32[i] = r6[i];
		}
		e->family = 6;
	}
	e->local_port = lport;
	e->remote_port = rport;
	if (k->peer && !rport) {
		/* An unconnected UDP socket: the peer is the syscall's address. */
		struct sockaddr_in6 sa = {};
		if (!bpf_probe_read_user(&sa, sizeof(sa), (void *)k->peer)) {
			if (sa.sin6_family == NP_AF_INET) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
				__builtin_memset(&e->remote, 0, sizeof(e->remote));
				e->remote.v4m.pad[2] = bpf_htonl(0xffff);
				e->remote.v4m.v4 = s4->sin_addr.s_addr;
				e->remote_port = bpf_ntohs(s4->sin_port);
			} else if (sa.sin6_family == NP_AF_INET6) {
				__builtin_memcpy(&e->remote.v6, &sa.sin6_addr, 16);
				e->remote_port = bpf_ntohs(sa.sin6_port);
			}
		}
	}
	e->ip_proto = k->ip_proto ? k->ip_proto : NP_IPPROTO_TCP;
	e->direction = k->direction;
	e->protocol = proto;
	e->syscall = k->syscall;
	e->fd = k->fd;
	e->len = k->len > 0xffffffffULL ? 0xffffffffU : (__u32)k->len;
	e->captured = (__u16)n;
	e->flags = (k->tls ? NP_L7_F_TLS : 0) | (split ? NP_L7_F_SPLIT : 0);
	e->tail_len = 0;
	if (k->len > n) {
		e->flags |= NP_L7_F_TRUNCATED;
		__u64 tail_buf = scratch->tail_buf;
		if (tail_buf && k->len >= (__u64)n + NP_L7_TAIL_MAX) {
			/* one segment holds the whole message: its last bytes are the tail */
			if (!bpf_probe_read_user(e->tail, NP_L7_TAIL_MAX, (void *)(tail_buf + k->len - NP_L7_TAIL_MAX)))
				e->tail_len = NP_L7_TAIL_MAX;
		} else {
			e->flags |= NP_L7_F_NO_TAIL;
		}
	}
	e->pad = 0;
	e->pieces_len = 0;
	if (proto == NP_L7_AMQP && n && k->direction <= NP_L7_RECV) {
		/* The frame chain: from where the direction's previous syscall left it. */
		if (!c)
			c = np_conn(k->sock, lport, rport);
		const __u8 d = k->direction & 1;
		__u32 next = c ? c->amqp_next[d] : 0;
		scratch->walk_off = next ? next - 1 : 0;
		e->pieces_len = (__u16)(np_l7_walk_amqp(scratch, n) & 0xfff);
		const __u64 end = scratch->walk_off;
		next = 0;
		if (end >= k->len && end - k->len < 0x7fffffff)
			next = (__u32)(end - k->len) + 1;
		if (c)
			c->amqp_next[d] = next;
	}
	__u64 size = offsetof(struct np_l7_event, data) + (n & 0x1fff) + e->pieces_len;
	if (size > sizeof(*e) + NP_L7_PIECES_BYTES)
		size = sizeof(*e) + NP_L7_PIECES_BYTES;
	if (np_l7_output(scratch, size))
		np_l7_count(NP_L7_CNT_RING_FULL);
	else
		np_l7_count(NP_L7_CNT_EVENTS);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(np_l7_exit, struct pt_regs *regs, long ret)
{
	__u8 kind = np_kind(NP_SYSCALL_NR(regs));
	if (kind == NP_L7_SC_NONE || kind == NP_L7_SC_CLOSE || ret <= 0)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if ((__u32)(pid_tgid >> 32) == np_self_tgid)
		return 0;
	struct np_l7_args a = {};
	if (!np_l7_classify(kind, (int)NP_ARG1(regs), NP_ARG2(regs), NP_ARG3(regs), NP_ARG4(regs), NP_ARG5(regs),
			    pid_tgid, &a))
		return 0;

	struct np_l7_cap k = {
		.sock = a.sock,
		.pid_tgid = pid_tgid,
		.len = (__u64)ret,
		.fd = a.fd,
		.syscall = a.syscall,
		.direction = np_is_recv(a.syscall) ? NP_L7_RECV : NP_L7_SEND,
		.ip_proto = a.ip_proto,
		.proto_hint = a.proto,
		.known = a.known,
	};
	if (a.ip_proto == NP_IPPROTO_UDP)
		k.peer = a.addr;
	__u64 iov = 0, iovcnt = 0;
	int vector = 0;
	switch (a.syscall) {
	case NP_L7_SC_READ:
	case NP_L7_SC_WRITE:
	case NP_L7_SC_RECVFROM:
	case NP_L7_SC_SENDTO:
		k.buf = a.buf;
		k.seg = k.len;
		break;
	case NP_L7_SC_READV:
	case NP_L7_SC_WRITEV:
		iov = a.buf;
		iovcnt = a.count;
		vector = 1;
		break;
	case NP_L7_SC_RECVMSG:
	case NP_L7_SC_SENDMSG: {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)a.buf)) {
			np_l7_count(NP_L7_CNT_READ_FAILED);
			break;
		}
		iov = (__u64)m.msg_iov;
		iovcnt = m.msg_iovlen;
		if (a.ip_proto == NP_IPPROTO_UDP)
			k.peer = (__u64)m.msg_name;
		vector = 1;
		break;
	}
	case NP_L7_SC_RECVMMSG:
	case NP_L7_SC_SENDMMSG: {
		/* ret is the number of messages; the first one is captured. */
		struct mmsghdr mm = {};
		if (bpf_probe_read_user(&mm, sizeof(mm), (void *)a.buf)) {
			np_l7_count(NP_L7_CNT_READ_FAILED);
			break;
		}
		k.len = mm.msg_len;
		iov = (__u64)mm.msg_hdr.msg_iov;
		iovcnt = mm.msg_hdr.msg_iovlen;
		if (a.ip_proto == NP_IPPROTO_UDP)
			k.peer = (__u64)mm.msg_hdr.msg_name;
		vector = 1;
		break;
	}
	default: /* sendfile: no bytes to copy */
		break;
	}
	if (vector && iov) {
		k.iov = iov;
		k.iovcnt = iovcnt;
	}
	np_l7_record(&k);
	return 0;
}

/* ---- TLS: plaintext at OpenSSL's SSL_read/SSL_write (uprobes on libssl) ---- */

static __always_inline int np_tls_enter(void *ssl, const void *buf, void *len_ptr, __u8 syscall)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if ((__u32)(pid_tgid >> 32) == np_self_tgid)
		return 0;
	struct np_l7_tls_call *c =
		bpf_task_storage_get(&l7_tls_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c) {
		np_l7_count(NP_L7_CNT_ARGS_FULL);
		return 0;
	}
	c->ssl = (__u64)ssl;
	c->buf = (__u64)buf;
	c->len_ptr = (__u64)len_ptr;
	c->sock = 0;
	c->syscall = syscall;
	c->active = 1;
	return 0;
}

static __always_inline int np_tls_return(long rax)
{
	/* The functions return int: only the low 32 bits of the register are the value
	 * (SSL_read's -1 arrives as 0xffffffff). */
	int ret = (int)rax;
	struct np_l7_tls_call *cp = bpf_task_storage_get(&l7_tls_calls, bpf_get_current_task_btf(), 0, 0);
	if (!cp || !cp->active)
		return 0;
	struct np_l7_tls_call call = *cp;
	cp->active = 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 len = 0;
	if (call.len_ptr) {
		/* _ex and the internal calls: > 0 on success, the count written through the pointer */
		if (ret <= 0 || bpf_probe_read_user(&len, sizeof(len), (void *)call.len_ptr))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		len = (__u64)ret;
	}
	if (!len)
		return 0;
	__u64 sock = call.sock;
	if (sock) {
		/* (an LRU update takes a lock: only when the SSL object's socket is new) */
		__u64 *known = bpf_map_lookup_elem(&l7_tls_ssl, &call.ssl);
		if (!known || *known != sock)
			bpf_map_update_elem(&l7_tls_ssl, &call.ssl, &sock, BPF_ANY);
	} else {
		__u64 *known = bpf_map_lookup_elem(&l7_tls_ssl, &call.ssl);
		if (!known) {
			np_l7_count(NP_L7_CNT_TLS_NO_SOCKET);
			return 0;
		}
		sock = *known;
	}
	struct np_l7_cap k = {
		.sock = sock,
		.pid_tgid = pid_tgid,
		.buf = call.buf,
		.seg = len,
		.len = len,
		.syscall = call.syscall,
		.direction = call.syscall == NP_L7_SC_SSL_READ ? NP_L7_RECV : NP_L7_SEND,
		.tls = 1,
	};
	np_l7_record(&k);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(np_ssl_write, void *ssl, const void *buf, int num)
{
	return np_tls_enter(ssl, buf, 0, NP_L7_SC_SSL_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(np_ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return np_tls_enter(ssl, buf, written, NP_L7_SC_SSL_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(np_ssl_read, void *ssl, void *buf, int num)
{
	return np_tls_enter(ssl, buf, 0, NP_L7_SC_SSL_READ);
}

SEC("uprobe")
int BPF_KPROBE(np_ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return np_tls_enter(ssl, buf, readbytes, NP_L7_SC_SSL_READ);
}

SEC("uretprobe")
int BPF_KRETPROBE(np_ssl_ret, long ret)
{
	return np_tls_return(ret);
}

/* A TCP socket reaches TCP_CLOSE without a close(2) of it having been seen: its process
 * exited (the kernel closed its descriptors), or a reset or the peer's FIN after our
 * shutdown ended it while the process may still read what it holds. User space lets its
 * parser state go a few seconds after the last data (without this: the idle timeout); the
 * entry here stays for a close(2) or the LRU. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(np_l7_sk_close, const struct sock *sk, const int oldstate, const int newstate)
{
	if (newstate != 7 /* TCP_CLOSE */)
		return 0;
	__u64 key = (__u64)(unsigned long)sk;
	struct np_l7_conn *c = bpf_map_lookup_elem(&l7_conns, &key);
	if (!c)
		return 0;
	np_l7_closed(key, c, bpf_get_current_pid_tgid(), c->local_port, c->remote_port, -1, 0, NP_L7_F_SOCK_CLOSED);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
