// netprobe::collector::Snapshot - what the sources read in one collection: immutable
// once published, shared with the analysis stages and the export through an atomic
// shared_ptr swap. A scrape never touches BPF maps.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/cgroup_traffic.hpp>
#include <netprobe/ebpf/interfaces.hpp>
#include <netprobe/ebpf/l7_capture.hpp>
#include <netprobe/l7/tracker.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/collector/trace_sample.hpp>
#include <netprobe/intel/indicators.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::collector {

using WallTime = std::chrono::system_clock::time_point;
using MonoTime = std::chrono::steady_clock::time_point;

// The spec's InterfaceStats, plus where the counters come from.
struct InterfaceStats {
    std::string name;
    std::uint32_t index = 0;
    std::uint64_t ingress_packets = 0;
    std::uint64_t ingress_bytes = 0;
    std::uint64_t egress_packets = 0;
    std::uint64_t egress_bytes = 0;
    double ingress_packets_rate = 0;  // per second over the last collect interval
    double ingress_bytes_rate = 0;
    double egress_packets_rate = 0;
    double egress_bytes_rate = 0;
    WallTime last_updated{};
    std::uint64_t xdp_packets = 0;  // driver-level receive (XDP), when attached
    std::uint64_t xdp_bytes = 0;
    std::string tc_mode;   // "tcx" | "clsact"
    std::string xdp_mode;  // "native" | "generic" | "off" | "failed: ..."
    bool layer3 = false;   // no link-layer header: byte counts start at the IP header
};

// One kernel flow entry's activity since the previous collection (every entry that
// had packets, exactly once: the datapath source turns the kernel's cumulative values
// into deltas and keeps the baselines of live entries).
// 80 bytes (the small fields fill flow_key's tail padding): a snapshot holds one per
// kernel entry that moved, up to the whole kernel table.
struct FlowSample {
    flow_key key{};
    std::uint8_t tcp_flags = 0;  // OR of the flags the kernel entry has seen
    bool ended = false;          // the kernel entry was removed (idle) at this collection
    // The entry is its directed 5-tuple's place: of the kernel entries of one 5-tuple at
    // several places (interface, direction, tunnel: a routed packet crosses two monitored
    // interfaces), the one the kernel created first (then the lowest place). A stage that
    // counts a 5-tuple once counts only these (FlowDeltaTracker::markPlaces).
    bool primary = true;
    std::uint64_t packets = 0;   // during the interval
    std::uint64_t bytes = 0;
    std::uint64_t first_seen_ns = 0;  // monotonic (bpf_ktime_get_coarse_ns) of the kernel entry
    std::uint64_t last_seen_ns = 0;
};
static_assert(sizeof(FlowSample) == 80, "FlowSample: up to one per kernel flow entry, keep it small");

// The kernel flow table, as the datapath source manages it.
struct KernelFlowHealth {
    std::uint32_t capacity = 0;             // flow_stats max_entries
    std::uint64_t entries = 0;              // entries at this collection
    std::uint64_t removed_idle_total = 0;   // idle entries removed (their final values kept)
    std::uint64_t remove_failures_total = 0;// removals that failed (retried; never counted twice)
    std::uint64_t read_failures_total = 0;  // reads that failed part way (the rest counts next time)
    std::uint64_t remember_failures_total = 0; // removed flows not remembered in sec_flow_seen (may be announced again)
    bool pressure = false;                  // connection attempts/refusals aggregated (DatapathSource)
    std::uint64_t aggregated_packets_total = 0; // packets counted in aggregate entries (a zero TCP port)
};

// An address's host_stats counter deltas since the previous security collection.
struct HostDelta {
    util::Addr16 addr{};
    np_host_stats delta{};
};

// Field-wise sum of host counters (np_host_stats is nine __u64 counters).
void addHostStats(np_host_stats& to, const np_host_stats& x);
// cur - prev, field by field; a counter below its previous value counts afresh.
[[nodiscard]] np_host_stats hostStatsSince(const np_host_stats& cur, const np_host_stats& prev);

// What the security source read: the datapath's ring records (new flows, ICMP
// errors) since the previous collection, and per-address counter deltas.
struct SecuritySample {
    std::vector<np_sec_event> records;    // in arrival order
    std::uint64_t records_total = 0;      // received since start
    std::uint64_t records_dropped = 0;    // not queued: the user-space queue was full (since start)
    std::vector<HostDelta> hosts;         // addresses with packets since the previous collection
    double seconds = 0;                   // what the deltas cover (0 on the first collection)
    std::uint64_t host_read_errors = 0;   // failed host_stats reads (since start)
};

// What the L7 source read: the requests completed since the previous collection (in
// completion order) and the capture's and parsers' counters (since start).
struct L7Sample {
    std::vector<l7::Request> requests;
    std::vector<l7::Request> dns_unanswered;  // DNS queries that got no answer (l7::ConnectionTracker::takeDnsUnanswered)
    ebpf::L7KernelCounters kernel{};        // enum np_l7_counter
    l7::TrackerCounters parse;
    std::size_t connections = 0;            // with parser state
    std::size_t tls_libraries = 0;          // OpenSSL libraries probed (TLS plaintext)
};

// Names seen at TC (name capture: DNS responses, TLS ClientHello), parsed on the ring
// thread, since the previous collection.
struct NameObservation {
    enum class Kind : std::uint8_t { Dns, TlsSni };
    Kind kind = Kind::Dns;
    std::uint64_t mono_ns = 0;            // the packet (CLOCK_MONOTONIC)
    util::Addr16 client{}, server{};      // a DNS response goes server -> client, a ClientHello client -> server
    std::uint16_t client_port = 0, server_port = 0;
    std::uint8_t family = 4;
    std::uint16_t dns_id = 0;
    std::string name;                     // the question's name, or the SNI host name
    std::uint16_t qtype = 0;
    std::uint8_t rcode = 0;
    std::vector<l7::DnsAnswer> answers;   // A/AAAA/CNAME within the captured bytes
};

struct NameCaptureCounters {  // since start
    std::uint64_t records_total = 0;      // ring records read
    std::uint64_t queue_dropped = 0;      // parsed but not queued: the queue was full
    std::uint64_t dns_not_parsed = 0;     // not a DNS response with one question
    std::uint64_t hello_without_name = 0; // a ClientHello without server_name
    std::uint64_t hello_truncated = 0;    // the name lies beyond the captured bytes
    std::uint64_t hello_malformed = 0;
};

struct NameSample {
    std::vector<NameObservation> observations;
    NameCaptureCounters counters;
};

// Threat intelligence: the indicator set the kernel checks now and what each feed's
// indicators matched (since start; index = feed).
struct IntelSample {
    std::shared_ptr<const intel::IndicatorSet> set;  // null until the first load
    std::vector<intel::FeedStatus> feeds;            // as of the loader's last refresh (index = feed)
    std::vector<np_intel_counters> counters;
    std::uint64_t read_errors = 0;
    std::uint64_t installs_total = 0, install_failures_total = 0;
    std::string install_error;  // the last install's, empty when it succeeded
    double install_seconds = 0;  // the last successful install
    std::size_t installed_prefixes = 0;
};

// A link of the agent's network namespace as the links source's background task last read
// it: its speed and its queueing disciplines.
struct LinkState {
    std::string name;
    std::uint32_t index = 0;
    std::string kind;                 // IFLA_INFO_KIND ("" for a physical device)
    // Mb/s from /sys/class/net/NAME/speed; 0: unknown (down, not reported, or a virtual
    // device whose figure is nominal: veth says 10000, tun 10, a bridge its fastest port).
    std::uint32_t speed_mbps = 0;
    bool speed_configured = false;    // speed_mbps is the operator's (--link-speed)
    std::vector<ebpf::QdiscInfo> qdiscs;  // every qdisc of the device (root, children, clsact)
};

struct LinkSample {
    MonoTime read_at{};               // when the task read it (the counters' instant)
    std::vector<LinkState> links;     // by index
    std::uint64_t refreshes = 0;      // successful reads since start
    std::uint64_t failures = 0;       // failed reads since start (the previous result stays)
    std::string last_error;           // of the last read, empty when it succeeded
};

// The devices' own counters (errors, drops, ...) of the agent's network namespace, read
// every collection: one RTM_GETSTATS dump (IFLA_STATS_LINK_64).
struct LinkCountersSample {
    MonoTime read_at{};                         // the collection's instant
    std::vector<ebpf::LinkCounters> links;      // every link of the namespace, by ifindex
    [[nodiscard]] const ebpf::LinkCounters* find(std::uint32_t ifindex) const;
};

// The conntrack table of the agent's network namespace (/proc/sys/net/netfilter and
// /proc/net/stat/nf_conntrack), read every collection.
struct ConntrackSample {
    bool available = false;           // false: nf_conntrack is not loaded (no table to fill)
    std::uint64_t count = 0;          // nf_conntrack_count: entries now
    std::uint64_t max = 0;            // nf_conntrack_max: the table's limit
    // Since the namespace's table exists, summed over the CPUs: packets dropped because no
    // entry could be created (drop), entries evicted to make room (early_drop), and
    // inserts that failed (insert_failed).
    std::uint64_t drop = 0, early_drop = 0, insert_failed = 0;
};

// A source's health: its failed collections.
struct SourceHealth {
    std::string name;
    std::uint64_t errors_total = 0;
    std::string last_error;  // empty: the last collection succeeded
};

// A listening TCP socket whose accept queue was full when read (inet_diag: the queue's
// length and the backlog it may reach; the kernel refuses at more than the backlog).
struct FullListener {
    util::Addr16 addr{};  // IPv4 stored IPv4-mapped
    std::uint8_t family = 4;
    std::uint16_t port = 0;
    std::uint32_t queued = 0;
    std::uint32_t backlog = 0;
};

struct Snapshot {
    WallTime taken_at{};
    MonoTime mono{};              // the same instant on the monotonic clock (injected time for stages)
    double interval_seconds = 0;  // since the previous collection (0 on the first)
    std::uint64_t sequence = 0;   // collections so far
    std::vector<InterfaceStats> interfaces;  // sorted by name
    std::vector<FlowSample> flows;           // the interval's flow activity (datapath source)
    // TCP handshakes timed at TC since the previous collection (datapath source); like the
    // flow samples, the stages' input only (not in published views).
    std::vector<ebpf::HandshakeSample> handshakes;
    // UDP flows with a datagram in the last two intervals and their inter-arrival timing
    // (datapath source, with QoS on); stage input only.
    std::vector<ebpf::UdpTimingSample> udp_timings;
    std::array<std::array<ebpf::Counter, NP_PROTO_MAX>, NP_DIR_MAX> protocols{};
    std::array<std::array<std::uint64_t, NP_MAL_REASON_MAX>, NP_DIR_MAX> malformed{};
    std::array<std::uint64_t, NP_MAP_ID_MAX> map_errors{};
    std::vector<ebpf::IcmpCount> icmp;  // ICMP/ICMPv6 by direction, family, type, code
    ebpf::OverlayCounters overlay{};    // tunnel packets by direction and encapsulation (cumulative)
    KernelFlowHealth kernel_flows;
    std::uint64_t device_reset_failures = 0;  // counters of detached interfaces not reset (retried)
    // Socket layer, TCP health, drops, netfilter hooks; null when the stack monitor is off.
    std::shared_ptr<const ebpf::StackStats> stack;
    // Traffic of every protocol per cgroup v2 id; null when --cgroup-traffic is off or
    // the programs could not be attached.
    std::shared_ptr<const ebpf::CgroupTrafficStats> cgroup_traffic;
    // The kernel's SNMP/netstat counters of the agent's network namespace (/proc/net/netstat
    // and /proc/net/snmp: "TcpExt.ListenOverflows", "Tcp.RetransSegs", ...); null without
    // the netstat source.
    std::shared_ptr<const std::map<std::string, std::uint64_t>> netstat;
    // TCP listeners of the agent's namespace whose accept queue was full (queued >= its
    // backlog) when the netstat source saw TcpExt.ListenOverflows move since its previous
    // read (at most 64, fullest first); null when it did not move, empty when the dump failed.
    std::shared_ptr<const std::vector<FullListener>> full_listeners;
    // Link speeds and qdisc statistics of the agent's namespace, as the links source's
    // background task last read them (its own cadence); null without the links source.
    std::shared_ptr<const LinkSample> links;
    // The devices' error/drop counters (every collection); null without the link counters source.
    std::shared_ptr<const LinkCountersSample> link_counters;
    // The conntrack table of the agent's namespace; null without the conntrack source.
    std::shared_ptr<const ConntrackSample> conntrack;
    // Security analytics input; null except in the security collector's snapshots.
    std::shared_ptr<const SecuritySample> security;
    // Threat intelligence; null without --intel-config (security snapshots only).
    std::shared_ptr<const IntelSample> intel;
    // Application-layer requests; null when --l7 is off. Published views keep its
    // counters only (the requests are the L7 stage's input, like the flow samples).
    std::shared_ptr<const L7Sample> l7;
    // Names seen at TC; null without name capture (domain indicators with --l7=off).
    std::shared_ptr<const NameSample> names;
    // Packet path traces (running and recently finished); null without the trace source.
    std::shared_ptr<const TraceSample> trace;
    std::vector<SourceHealth> sources;
    double collect_duration_seconds = 0;
    std::uint64_t collect_errors_total = 0;

    // A kernel monotonic timestamp (CLOCK_MONOTONIC ns) as wall time, relative to this
    // snapshot's instant; epoch for 0.
    [[nodiscard]] WallTime wallOf(std::uint64_t mono_ns) const;
    [[nodiscard]] std::uint64_t monoNs() const;
    // A copy of everything but the flow samples (flows empty) and the other observations
    // that are the stages' input (L7 requests, names, security ring records; their
    // counters stay). The samples are the largest part of a snapshot (up to one per kernel
    // flow entry); an analysis pipeline publishes its views with this copy, and the
    // collector's latest() becomes it once the subscribers ran.
    [[nodiscard]] std::shared_ptr<const Snapshot> withoutFlowSamples() const;
    // Whether withoutFlowSamples() would leave anything out.
    [[nodiscard]] bool hasStageInputs() const;
};

}  // namespace netprobe::collector
