// netprobe::ebpf::StackMonitor - the socket layer and the network stack: TCP
// connection lifecycle and health (tracepoints), packet drops by the kernel's drop
// reason (skb:kfree_skb), and netfilter hook counters (netfilter BPF links in the
// monitor's own network namespace). Features the running kernel lacks are
// disabled with one log line each; the rest keeps working.
//
//   netprobe::util::Scheduler background;                 // reconciliation, symbol names
//   auto sm = netprobe::ebpf::StackMonitor::create({}, &background);
//   background.start();
//   auto stats = (*sm)->read();                           // Result<StackStats>: map reads only
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/trace.hpp>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/scheduler.hpp>

namespace netprobe::ebpf {

using WallClock = std::chrono::system_clock;

// One TCP connection: open (from the kernel's table) or recently closed (from the
// close records of the ring buffer).
struct Connection {
    std::array<std::uint8_t, 16> src_ip{};  // IPv4 stored IPv4-mapped
    std::array<std::uint8_t, 16> dst_ip{};
    std::uint16_t src_port = 0;
    std::uint16_t dst_port = 0;
    std::uint8_t family = 0;  // 4 or 6
    std::uint8_t origin = NP_CONN_UNKNOWN;  // enum np_conn_origin
    std::uint8_t tcp_state = 0;             // TCP_* (7 = CLOSE)
    bool open = true;
    bool failed = false;  // never established (SYN_SENT/SYN_RECV -> CLOSE)
    std::uint32_t pid = 0;  // 0: unknown (passive connections)
    std::string comm;
    std::uint64_t cgroup_id = 0;
    std::uint32_t netns = 0;
    std::uint64_t bytes_sent = 0;      // tcp_sock.bytes_acked (close records; open: last probe)
    std::uint64_t bytes_received = 0;
    std::uint32_t retransmits = 0;
    std::uint32_t srtt_us = 0;
    std::uint32_t snd_cwnd = 0;
    WallClock::time_point start{};
    WallClock::time_point established{};  // epoch: never established
    WallClock::time_point end{};          // epoch: still open
    std::uint64_t sock = 0;               // identity of the kernel socket
    std::uint64_t cookie = 0;             // socket cookie (unique while the socket lives)
};

// log2 histogram: buckets[b] counts values v with 2^(b-1) < v <= 2^b (b = 0: v <= 1).
struct Log2Histogram {
    std::array<std::uint64_t, NP_HIST_BUCKETS> buckets{};
    std::uint64_t sum = 0;
    [[nodiscard]] std::uint64_t count() const;
    // Upper bound (inclusive) of bucket b: 2^b.
    [[nodiscard]] static std::uint64_t upperBound(std::size_t b) { return std::uint64_t{1} << b; }
};

struct DropCount {
    std::uint32_t reason = 0;
    std::string name;  // from the kernel's BTF, without SKB_DROP_REASON_; "OTHER" for the overflow slot
    std::uint64_t count = 0;
};

struct DropLocation {
    std::string reason;    // as DropCount::name
    std::string location;  // kernel function+offset ("tcp_v4_rcv+0x1a4"), or the address
    std::uint64_t count = 0;
};

// Drops of one 5-tuple (source -> destination as the dropped packet's IP header says),
// cumulative while its entry lives (an LRU table: the least recent go first).
struct DropFlow {
    std::array<std::uint8_t, 16> src{}, dst{};  // IPv4 stored IPv4-mapped
    std::uint16_t sport = 0, dport = 0;
    std::uint8_t proto = 0, family = 4;
    std::uint32_t reason = 0;  // enum skb_drop_reason
    std::uint64_t packets = 0;
};

struct StackFeatures {
    bool connections = false;  // sock:inet_sock_set_state
    bool retransmits = false;  // tcp:tcp_retransmit_skb
    bool resets = false;       // tcp:tcp_send_reset + tcp:tcp_receive_reset
    bool tcp_probe = false;    // tcp:tcp_probe
    bool drops = false;        // skb:kfree_skb
    bool netfilter = false;    // netfilter links (at least one attached)
    std::uint32_t netfilter_hooks = 0;  // bit (1 << NF_INET_*) per hook attached (both families)
};

struct StackStats {
    StackFeatures features;
    std::uint64_t opened_active = 0;
    std::uint64_t opened_passive = 0;
    std::uint64_t closed = 0;
    std::uint64_t failed = 0;
    std::uint64_t retransmits = 0;  // segments
    std::uint64_t resets_sent = 0;
    std::uint64_t resets_received = 0;
    std::uint64_t tracked_open = 0;  // connections in the kernel table (seen opening), less reconciled ones
    // Records removed from the kernel table because their socket no longer existed
    // (its CLOSE was missed, see missed_events); checked against NETLINK_SOCK_DIAG.
    std::uint64_t records_reconciled = 0;
    std::uint64_t reconcile_runs = 0;      // completed comparisons with the kernel's socket list
    std::uint64_t reconcile_skipped = 0;   // checks that needed no comparison (no missed event, no suspect)
    std::uint64_t reconcile_failures = 0;  // namespaces that could not be checked in a run
    std::uint64_t reconcile_delete_failures = 0;  // stale records whose delete failed (retried)
    Log2Histogram srtt_us;
    Log2Histogram cwnd;
    std::vector<DropCount> drops;  // reasons with a non-zero count, by reason value
    std::vector<DropLocation> drop_locations;  // top locations by count (at most kTopDropLocations)
    std::uint64_t drop_location_failures = 0;  // drops not attributed to a location (table full)
    std::vector<DropFlow> drop_flows;          // every 5-tuple in the table (at most NP_DROP_FLOW_MAX)
    std::uint64_t drop_flow_failures = 0;      // drops not attributed to a 5-tuple (insert failed)
    // Drops of 5-tuples new to the table beyond the CPU's budget of new entries
    // (StackMonitorOptions::drop_flow_read_interval): counted by reason, not attributed.
    std::uint64_t drop_flow_over_budget = 0;
    std::uint32_t drop_flow_budget = 0;  // new entries per CPU per 100 ms; 0 = no budget
    static constexpr std::size_t kTopDropLocations = 20;
    // [hook NF_INET_*][np_nf_family][np_nf_proto]
    std::array<std::array<std::array<Counter, NP_NF_PROTO_MAX>, NP_NF_FAMILY_MAX>, NP_NF_HOOK_MAX> netfilter{};
    std::uint64_t conn_insert_failures = 0;     // connections not tracked (table full)
    std::uint64_t ringbuf_reserve_failures = 0; // close records lost in the kernel
    std::uint64_t closed_evicted = 0;           // close records dropped from the bounded user-space list
    // Events the kernel did not deliver to a program because it was already running
    // on that CPU (bpf_prog_info.recursion_misses; e.g. a softirq state change while
    // the program ran in task context). A missed CLOSE leaves its record in the
    // kernel table, so netprobe_tcp_connections_active over-counts by at most these.
    std::vector<std::pair<std::string, std::uint64_t>> missed_events;  // program name -> misses
    std::vector<Connection> connections;        // open (by start), then recently closed (newest first)
};

struct StackMonitorOptions {
    // Network namespace whose socket/drop events are counted: empty = every namespace;
    // otherwise a namespace file ("/proc/self/ns/net" = the monitor's own, "/run/netns/NAME").
    // Netfilter hooks are always those of the monitor's own namespace.
    std::string netns_path;
    std::size_t max_closed = 1024;      // recently closed connections kept
    std::size_t max_open = 10000;       // open connections returned per read
    std::uint32_t conn_table_size = 65536;
    // How often the drop_flows table (drops by 5-tuple, NP_DROP_FLOW_MAX entries, LRU) is
    // read: the agent's collection interval. It bounds the new entries each CPU may create
    // per 100 ms to what the table can hold between two reads (at least 16): beyond that, a
    // flood of distinct 5-tuples only evicts unread entries at an LRU insert per drop.
    // Drops over the budget are counted (StackStats::drop_flow_over_budget). 0: no budget.
    std::chrono::nanoseconds drop_flow_read_interval{0};
    // How often a background task checks whether the open-connection records need
    // comparing with the sockets that exist (inet_diag dumps of the namespaces
    // concerned); 0 = never. The comparison runs when the state-change program missed
    // events since the last one (the kernel's recursion-miss count moved), while a
    // record is under suspicion, and at least every reconcile_full_interval; a record is
    // removed only when its socket was absent from two consecutive comparisons.
    std::chrono::milliseconds reconcile_interval{2000};
    std::chrono::milliseconds reconcile_full_interval{20000};
    // Netfilter hooks counted, bit (1 << NF_INET_*): prerouting 0, input 1, forward 2,
    // output 3, postrouting 4. Default input, forward, output: every packet passes one
    // or two of them (locally delivered, routed, locally sent) instead of two to four,
    // and prerouting/postrouting are their sums plus what routing drops (see
    // docs/metrics.md for the measured cost). 0: no netfilter program at all.
    std::uint32_t netfilter_hooks = kDefaultNetfilterHooks;
    static constexpr std::uint32_t kDefaultNetfilterHooks = (1u << 1) | (1u << 2) | (1u << 3);
};

// "all", "none" or a comma-separated list of prerouting, input, forward, output,
// postrouting -> a hook mask for StackMonitorOptions::netfilter_hooks.
[[nodiscard]] Result<std::uint32_t> parseNetfilterHooks(std::string_view text);

class StackMonitor {
public:
    // With a scheduler, the slow work runs there: the reconciliation of connection
    // records (every reconcile_interval) and the naming of drop locations. Without
    // one, records of missed CLOSE events stay and drop locations stay addresses.
    [[nodiscard]] static Result<std::unique_ptr<StackMonitor>> create(StackMonitorOptions options = {},
                                                                       util::Scheduler* scheduler = nullptr);
    ~StackMonitor();
    StackMonitor(const StackMonitor&) = delete;
    StackMonitor& operator=(const StackMonitor&) = delete;

    // Map reads only (batch lookups); thread-safe.
    [[nodiscard]] Result<StackStats> read() const;
    [[nodiscard]] const StackFeatures& features() const;

    // Packet path tracing: the monitor's trace switch and maps (duplicated fds), and the
    // programs that run only while a trace is active: netfilter links at the five hooks
    // (both families, first priority) and the socket read/write tracepoints. Not
    // thread-safe (the tracer's owner calls it).
    [[nodiscard]] Result<TraceMaps> traceMaps() const;
    Result<void> setTraceHooks(bool on);
    [[nodiscard]] std::size_t traceLinks() const;

private:
    struct Impl;
    explicit StackMonitor(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// skb_drop_reason names of the running kernel (index = reason value, prefix
// SKB_DROP_REASON_ stripped), read from its BTF (/sys/kernel/btf/vmlinux).
[[nodiscard]] Result<std::vector<std::string>> dropReasonNamesFromKernelBtf();
// TCP state name ("ESTABLISHED", "SYN_SENT", ...).
[[nodiscard]] const char* tcpStateName(int state);
// NF_INET_* hook name ("prerouting", "input", "forward", "output", "postrouting").
[[nodiscard]] const char* netfilterHookName(int hook);
[[nodiscard]] const char* netfilterProtoName(int proto);  // "tcp", "udp", "icmp", "other"

}  // namespace netprobe::ebpf
