// netprobe::ebpf::L7Capture - the heads of the messages processes exchange over their
// TCP sockets (bpf/progs/l7.bpf.c at the raw syscall tracepoints): every record of the
// l7_events ring is handed, on the capture's own thread, to a handler. Only
// connections the kernel side recognised as an application protocol produce records;
// the rest cost a lookup per syscall.
//
//   auto cap = L7Capture::create({}, [&](const L7Message& m) { tracker.feed(m); });
//   auto c = (*cap)->counters();   // Result<L7KernelCounters>: one map read
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/tls_probes.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::ebpf {

// One captured syscall (or a close) on a classified connection. The handler's message is
// valid only during its call (the capture reuses it for the next record).
struct L7Message {
    std::uint64_t ts_ns = 0;   // CLOCK_MONOTONIC at the syscall's exit
    std::uint64_t sock = 0;    // kernel socket address: the connection's identity while it lives
    std::uint32_t pid = 0;     // tgid
    std::uint32_t tid = 0;
    std::uint64_t cgroup_id = 0;
    util::Addr16 local{};      // IPv4 as IPv4-mapped
    util::Addr16 remote{};
    std::uint16_t local_port = 0;
    std::uint16_t remote_port = 0;
    std::uint8_t family = 0;   // 4 or 6
    std::uint8_t ip_proto = 6; // IPPROTO_TCP or IPPROTO_UDP
    std::uint8_t direction = NP_L7_SEND;  // enum np_l7_direction
    std::uint8_t protocol = NP_L7_UNKNOWN;  // enum np_l7_protocol (the kernel's inference)
    std::uint8_t syscall = 0;  // enum np_l7_syscall
    std::uint8_t flags = 0;    // NP_L7_F_*
    std::uint32_t fd = 0;
    std::uint32_t len = 0;     // bytes the syscall moved
    std::string head;          // the first min(len, NP_L7_HEAD_MAX) bytes (fewer for vector I/O)
    std::string tail;          // the last NP_L7_TAIL_MAX bytes when truncated (plain buffers only)
    std::string pieces;        // AMQP: first bytes of the frames beyond head (l7::Chunk::pieces)

    [[nodiscard]] bool truncated() const { return (flags & NP_L7_F_TRUNCATED) != 0; }
};

// The kernel side's counters (enum np_l7_counter), summed over CPUs.
using L7KernelCounters = std::array<std::uint64_t, NP_L7_CNT_MAX>;

struct L7CaptureOptions {
    std::uint32_t ring_bytes = 8u << 20;      // l7_events ring (a power of two >= page size)
    std::uint32_t max_connections = 65536;    // l7_conns (LRU): classifications kept
    bool exclude_self = true;                 // the calling process's own sockets are not captured
    bool tls = true;                          // uprobes on OpenSSL's SSL_read/SSL_write (attachTlsLibraries)
    TlsProbeMode tls_probes = TlsProbeMode::Auto;  // where in the library (tls_probes.hpp)
    // close(2) is seen at its own tracepoint (syscalls:sys_enter_close, through tracefs)
    // when the kernel has it, else at the raw sys_enter tracepoint, which runs a program
    // at every syscall's entry. false: the raw tracepoint (tests of the fallback).
    bool close_tracepoint = true;
};

// An OpenSSL library the TLS uprobes are attached to.
struct TlsLibrary {
    std::string path;      // as the agent opened it (/proc/PID/root/... for another mount namespace)
    std::uint64_t dev = 0, ino = 0;
    int functions = 0;     // functions probed (TlsProbe: SSL_read, SSL_write, SSL_read_ex, SSL_write_ex
                           // or the internal callees of the read and write pairs)
};

class L7Capture {
public:
    using Handler = std::function<void(const L7Message&)>;
    // Loads and attaches the programs (tp_btf/sys_exit; syscalls:sys_enter_close, else
    // tp_btf/sys_enter; tp_btf/inet_sock_set_state); on_message runs on
    // the capture's ring thread. Fails (nothing attached) when the kernel lacks BTF raw
    // tracepoints or the syscall numbers are unknown for this architecture.
    [[nodiscard]] static Result<std::unique_ptr<L7Capture>> create(L7CaptureOptions options, Handler on_message);
    ~L7Capture();
    L7Capture(const L7Capture&) = delete;
    L7Capture& operator=(const L7Capture&) = delete;

    [[nodiscard]] Result<L7KernelCounters> counters() const;

    // Finds the OpenSSL libraries (libssl.so*) mapped by running processes (/proc/*/maps)
    // and attaches the TLS uprobes to each new one (a uprobe is per file: every process
    // mapping it, now or later, is covered). Slow (reads every process's maps): call it
    // from a background task. Returns the number of libraries newly attached.
    Result<std::size_t> attachTlsLibraries(const std::string& proc = "/proc");
    [[nodiscard]] std::vector<TlsLibrary> tlsLibraries() const;
    // Where close(2) is seen: "syscalls:sys_enter_close" or "sys_enter" (the raw tracepoint).
    [[nodiscard]] const char* closeHook() const;

private:
    struct Impl;
    explicit L7Capture(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Name of an np_l7_protocol value ("http", "http2", "dns", "tls", "unknown", "none").
[[nodiscard]] const char* l7ProtocolName(std::uint8_t protocol);
// Name of an np_l7_counter slot ("socket_syscalls", "events", "ring_full", ...).
[[nodiscard]] const char* l7CounterName(std::uint32_t counter);

}  // namespace netprobe::ebpf
