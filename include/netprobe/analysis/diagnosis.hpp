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
// security events in progress; and the bottleneck stage's fault findings and the
// forecasts' capacity/trend findings of the same collection (views run before this stage).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/analysis/pipeline.hpp>

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
                            // dns_failures, dns_nxdomain, http_errors, netprobe_data_loss, security_event;
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
    std::uint64_t nxdomain_min = 20;          // NXDOMAIN answers of one server, and a ratio of at least:
    double nxdomain_ratio_min = 0.5;
    std::uint64_t http_errors_min = 10;       // 5xx answers of one service, and a ratio of at least:
    double http_error_ratio_min = 0.05;
    // The security pipeline's latest view (may be null or return null).
    std::function<std::shared_ptr<const security::SecurityView>()> security;
};

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
        bool stack = false;
    };
    struct Interval {
        collector::MonoTime at{};
        double seconds = 0;
        Counters delta;
    };
    [[nodiscard]] static Counters countersOf(const collector::Snapshot& s);
    DiagnosisOptions options_;
    std::optional<Counters> prev_;
    collector::MonoTime prev_at_{};
    std::deque<Interval> window_;
    std::map<std::string, collector::WallTime> since_;  // rule/subject -> first seen
};

}  // namespace netprobe::analysis
