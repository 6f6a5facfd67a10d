// Fault diagnosis without an LLM (issue 16): rules over the snapshots' counters and the
// security view, each finding with its evidence (figures over a window), the likely cause,
// the fix as commands, and the query to look yourself. Pure over its input: the stage
// keeps the cumulative counters of the previous snapshot and the per-interval deltas of
// the window; time comes from the snapshots.
//
// Rules (docs/diagnosis.md): listen-queue overflows (the kernel's netstat counters: a SYN
// refused on a full accept queue is consumed, not dropped with a reason), packet drops by
// kernel reason (MTU,
// firewall, receive buffers, qdisc, checksum, ... each with its meaning and fix),
// connection failures to a service, TCP retransmissions, data NetProbe itself lost,
// security events in progress, interface errors/drops (the devices' own counters),
// one-way flows (asymmetric routing, unanswered connections or requests); and the bottleneck stage's fault findings and the
// forecasts' capacity/trend findings of the same collection (views run before this stage).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <netprobe/analysis/flow_table.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/ebpf/interfaces.hpp>

namespace netprobe::analysis {

namespace security {
struct SecurityView;
}

struct Evidence {
    std::string name;   // "drops", "failed_connections", ...
    double value = 0;
    std::string unit;   // "packets", "connections", "ratio", ...
};

struct Finding {
    std::string rule;       // listen_overflow, path_mtu, packet_drops, connection_failures, tcp_retransmits,
                            // dns_failures, dns_timeouts, dns_nxdomain, http_errors, netprobe_data_loss, security_event,
                            // interface_errors, one_way_flows; from the anomaly models: rtt_jump, retransmit_jump;
                            // from the bottleneck stage: conntrack_usage, interface_utilisation, qdisc_drops,
                            // qdisc_backlog, socket_buffer_pressure, retransmit_hotspot, rtt_hotspot;
                            // from the forecasts: capacity_forecast
    std::string subject;    // what it is about: a drop reason, ip:port, a map, an event id
    std::string severity;   // critical, warning, info
    std::string title;
    std::vector<Evidence> evidence;  // over the window
    std::string cause;
    std::vector<std::string> fix;    // commands or configuration, in order
    std::string query;               // how to see it yourself (netprobe / PromQL)
    collector::WallTime since{};     // first evaluation that found it (kept while it holds)
};

struct DiagnosisView {
    std::vector<Finding> findings;   // critical first, then warning, info; by rule and subject
    double window_seconds = 0;       // what the evidence covers (shorter while the agent starts)
    collector::WallTime evaluated_at{};
};

struct DiagnosisOptions {
    std::chrono::seconds window{60};
    std::uint64_t drops_min = 20;             // drops of one reason in the window
    std::uint64_t failed_connections_min = 5; // connection attempts that failed in the window
    std::uint64_t listen_overflows_min = 5;   // accept-queue overflows in the window (TcpExtListenOverflows)
    std::uint64_t frag_needed_min = 3;        // ICMP fragmentation-needed / packet-too-big messages
    std::uint64_t retransmits_min = 100;      // and a ratio of at least:
    double retransmit_ratio_min = 0.02;       // retransmitted / TCP packets sent
    // Application layer (the L7 view's 60 s endpoint figures, with --l7=on):
    std::uint64_t dns_errors_min = 5;         // SERVFAIL/REFUSED/FORMERR/NOTIMP answers of one server
    std::uint64_t dns_timeouts_min = 5;       // DNS queries of one server that got no answer at all
    std::uint64_t nxdomain_min = 20;          // NXDOMAIN answers of one server, and a ratio of at least:
    double nxdomain_ratio_min = 0.5;
    std::uint64_t http_errors_min = 10;       // 5xx answers of one service, and a ratio of at least:
    double http_error_ratio_min = 0.05;
    // Interface errors and drops: the devices' own counters (rtnl_link_stats64) of the
    // interfaces NetProbe watches, per interface, in the window:
    std::uint64_t interface_errors_min = 10;  // one error counter (rx/tx_errors, crc, frame, fifo, carrier, ...)
    std::uint64_t interface_drops_min = 20;   // one drop counter (rx_dropped, tx_dropped, rx_missed_errors)
    // One-way flows (the flow view's records; one direction of a 5-tuple, nothing back on
    // any watched interface):
    std::chrono::seconds one_way_min{5};      // the direction seen carried packets over at least this long
    std::uint64_t one_way_tcp_packets_min = 3;  // TCP segments of one 5-tuple
    std::uint64_t one_way_udp_packets_min = 5;  // UDP datagrams of one client to one request/response service
    std::size_t one_way_max_findings = 10;      // conversations reported (most packets first)
    // The security pipeline's latest view (may be null or return null).
    std::function<std::shared_ptr<const security::SecurityView>()> security;
};

// Interface errors/drops (pure): one watched interface's counter deltas over the window.
struct InterfaceWindow {
    std::string name;
    std::string kind;            // IFLA_INFO_KIND ("veth", "" for a physical device), when known
    ebpf::LinkCounters delta;    // the kernel's counters, increase over the window
    double seconds = 0;          // what the deltas cover
};
// A finding per interface whose error or drop counters reached the options' minimums, with
// every counter that moved, its rate, the cause of each kind and the fix as commands.
[[nodiscard]] std::vector<Finding> interfaceErrorFindings(const std::vector<InterfaceWindow>& ifaces,
                                                          const DiagnosisOptions& options);

// One-way flows (pure): TCP 5-tuples with packets in one direction only, nothing back on
// any watched interface (for >= one_way_min, >= one_way_tcp_packets_min segments, the last
// within the window), and UDP to request/response services (DNS 53, NTP 123, QUIC 443,
// Kerberos 88, SNMP 161, LDAP 389, RADIUS 1812, DNS over QUIC 853) of one client with
// >= one_way_udp_packets_min datagrams and not one back. Not flagged: other UDP (streaming,
// RTP, telemetry, syslog, tunnels are one-way by design), ICMP, multicast/broadcast,
// tunnel-inner flows. A 5-tuple seen on several interfaces counts its busiest (a routed
// packet is seen entering and leaving). now_ns: the snapshot's monotonic time.
[[nodiscard]] std::vector<Finding> oneWayFlowFindings(const FlowRecords& records, std::uint64_t now_ns,
                                                      const DiagnosisOptions& options,
                                                      const std::function<std::string(std::uint32_t)>& ifname);

// What a drop reason means and what to do (reasons this table lacks get a generic text).
struct DropAdvice {
    std::string title;
    std::string severity;
    std::string cause;
    std::vector<std::string> fix;
    bool benign = false;  // part of normal operation: not reported
};
[[nodiscard]] DropAdvice dropAdvice(const std::string& reason);

class Diagnosis final : public Stage {
public:
    explicit Diagnosis(DiagnosisOptions options) : options_(std::move(options)) {}
    [[nodiscard]] std::string_view name() const override { return "diagnosis"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct Counters {
        std::map<std::string, std::uint64_t> drops;  // by reason name
        std::uint64_t failed = 0, retransmits = 0, resets_received = 0, tcp_out = 0;
        std::uint64_t listen_overflows = 0, listen_drops = 0;  // the kernel's TcpExt counters
        std::uint64_t frag_needed = 0;  // ICMP fragmentation needed / ICMPv6 packet too big, either direction
        std::map<std::string, std::uint64_t> lost;   // NetProbe's own losses, by what
        std::map<std::uint32_t, ebpf::LinkCounters> links;  // the devices' counters, by ifindex
        std::uint64_t flows_evicted = 0;  // flow records forgotten because the table was full
        bool stack = false;
    };
    struct Interval {
        collector::MonoTime at{};
        double seconds = 0;
        Counters delta;
        std::vector<collector::FullListener> full_listeners;  // read when the overflow counter moved
    };
    [[nodiscard]] static Counters countersOf(const collector::Snapshot& s);
    DiagnosisOptions options_;
    std::optional<Counters> prev_;
    collector::MonoTime prev_at_{};
    std::deque<Interval> window_;
    std::map<std::string, collector::WallTime> since_;  // rule/subject -> first seen
};

}  // namespace netprobe::analysis
