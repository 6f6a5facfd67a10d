// netprobe::analysis::Bottlenecks - where the node's traffic is held up, ranked: links
// near their speed, queueing disciplines dropping or holding a standing queue, accept
// queues overflowing, the conntrack table filling, edges with many retransmissions or a
// long round trip, socket buffers overflowing, and (informational) the heaviest edges.
// Each finding carries its evidence (figures with units over the window), what it means,
// the fix as commands and the query to look yourself (docs/bottlenecks.md).
//
// Pure over its input: the kernel's cumulative counters of each snapshot (netstat, the
// interfaces' byte counters, the links source's qdisc statistics at the instant its task
// read them, conntrack) go into a CounterWindow, whose increase over the window is the
// evidence; the topology and QoS views give the edges. Time comes from the snapshots.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/analysis/diagnosis.hpp>  // Evidence
#include <netprobe/analysis/pipeline.hpp>

namespace netprobe::analysis {

// Readings of cumulative counters, keyed by name -> their increase over a sliding window.
// A reading below its key's previous one counts afresh (the counter was reset or
// wrapped); a key without a reading for a whole window is forgotten.
class CounterWindow {
public:
    explicit CounterWindow(std::chrono::nanoseconds window) : window_(window) {}
    // A reading of `key` taken at `at`. Readings of a key come in time order; one not
    // later than the key's last is ignored (a source that did not read again).
    void add(const std::string& key, collector::MonoTime at, std::uint64_t value);
    // Drops what lies outside the window ending at now.
    void expire(collector::MonoTime now);
    struct Increase {
        std::uint64_t delta = 0;  // over the readings in the window
        double seconds = 0;       // from the reading before the window's first to its last
        std::size_t readings = 0; // readings in the window (deltas)
    };
    [[nodiscard]] Increase increase(const std::string& key) const;
    [[nodiscard]] std::size_t keys() const { return series_.size(); }

private:
    struct Point {
        collector::MonoTime at{};
        std::uint64_t delta = 0;
    };
    struct Series {
        collector::MonoTime base_at{};  // the reading before the first point (or the first reading)
        std::uint64_t last = 0;
        collector::MonoTime last_at{};
        std::deque<Point> points;
    };
    std::chrono::nanoseconds window_;
    std::map<std::string, Series, std::less<>> series_;
};

enum class BottleneckKind : std::uint8_t {
    InterfaceUtilisation,
    QdiscDrops,
    QdiscBacklog,
    ListenOverflow,
    ConntrackUsage,
    RetransmitHotspot,
    RttHotspot,
    SocketBufferPressure,
    TopTalker,
};
inline constexpr std::size_t kBottleneckKinds = 9;
[[nodiscard]] const char* toString(BottleneckKind k);  // "interface_utilisation", ...
[[nodiscard]] std::optional<BottleneckKind> parseBottleneckKind(std::string_view s);

struct BottleneckFinding {
    BottleneckKind kind = BottleneckKind::TopTalker;
    std::string subject;     // an interface, "tcp"/"udp", "conntrack", "client -> server:port"
    std::string severity;    // critical, warning, info
    // Ranking: severity's base (critical 200, warning 100, info 0) + how far past its
    // threshold the figure is, 0..99 (99 x (1 - threshold / figure)).
    double score = 0;
    std::string title;
    std::vector<Evidence> evidence;  // over the window
    std::string explanation;
    std::vector<std::string> fix;    // commands, in order
    std::string query;               // PromQL or a netprobe / system command
    collector::WallTime since{};     // first evaluation that found it (kept while it holds)
};

// An interface's load over the window against its speed (the monitored interfaces whose
// speed is known: physical devices, bonds, VLANs on them).
struct InterfaceLoad {
    std::string interface;
    std::uint32_t speed_mbps = 0;
    bool speed_configured = false;  // the operator's figure (--link-speed), not the device's
    double ingress_bps = 0, egress_bps = 0;  // bits per second, mean over the window
    double ingress_ratio = 0, egress_ratio = 0;
};

struct BottleneckView {
    std::vector<BottleneckFinding> findings;  // by score, then kind and subject
    std::vector<InterfaceLoad> interfaces;    // by name
    double window_seconds = 0;                // what the counter evidence covers (shorter at start)
    collector::WallTime evaluated_at{};
    bool links = false;                       // link speeds and qdiscs were read (the links source)
    collector::WallTime links_read_at{};
    bool conntrack = false;                   // a conntrack table exists in the agent's namespace
    std::uint64_t conntrack_entries = 0, conntrack_max = 0;
};

// Thresholds (docs/bottlenecks.md). A finding is raised when its figure reaches the
// "min" (warning) threshold, and is critical from the "critical" one.
struct BottleneckOptions {
    std::chrono::seconds window{60};
    std::size_t max_per_kind = 5;                // findings of one kind (the highest scores)
    // interface_utilisation: mean bits/s over the window / the link's speed, per direction
    double utilisation_min = 0.80, utilisation_critical = 0.95;
    // qdisc_drops: packets a root qdisc dropped in the window, and their share of what it
    // handled (dropped / (sent + dropped)) for critical
    std::uint64_t qdisc_drops_min = 100;
    double qdisc_drop_ratio_critical = 0.01;
    // qdisc_backlog: a standing queue - the mean backlog of the readings in the window
    std::uint64_t qdisc_backlog_bytes_min = 64 * 1024;
    std::uint64_t qdisc_backlog_packets_min = 100;
    std::uint64_t qdisc_backlog_bytes_critical = 1024 * 1024;
    // listen_overflow: TcpExtListenOverflows in the window (as the diagnosis rule)
    std::uint64_t listen_overflows_min = 5;
    std::uint64_t listen_overflows_critical = 100;
    // conntrack_usage: nf_conntrack_count / nf_conntrack_max now; any drop or early drop
    // in the window is critical
    double conntrack_usage_min = 0.75, conntrack_usage_critical = 0.90;
    // retransmit_hotspot: per edge, segments retransmitted (either end) and their share
    // of the edge's packets
    std::uint64_t retransmits_min = 50;
    double retransmit_ratio_min = 0.02, retransmit_ratio_critical = 0.10;
    // rtt_hotspot: per edge, the median handshake RTT (QoS), else the sockets' smoothed
    // RTT (topology), with at least rtt_samples_min samples
    double rtt_ms_min = 50, rtt_ms_critical = 250;
    std::size_t rtt_samples_min = 5;
    // socket_buffer_pressure: receive-queue and buffer drops (TcpExtTCPRcvQDrop,
    // TCPBacklogDrop, RcvPruned, OfoPruned, TCPOFODrop; UdpRcvbufErrors, UdpSndbufErrors)
    std::uint64_t socket_drops_min = 10;
    std::uint64_t socket_drops_critical = 1000;
    // top_talker (info): the heaviest edges over the window, from this many bytes
    std::size_t top_talkers = 3;
    std::uint64_t top_talker_bytes_min = 1024 * 1024;
};

class Bottlenecks final : public Stage {
public:
    explicit Bottlenecks(BottleneckOptions options = {});
    [[nodiscard]] std::string_view name() const override { return "bottlenecks"; }
    // Reads the topology and QoS views when present (after those stages).
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct Backlog {
        collector::MonoTime at{};
        std::uint64_t bytes = 0, packets = 0;
    };
    BottleneckOptions options_;
    CounterWindow counters_;
    collector::MonoTime first_{};
    bool started_ = false;
    collector::MonoTime links_at_{};
    std::map<std::string, std::deque<Backlog>> backlog_;  // interface -> the root qdiscs' readings
    std::map<std::string, collector::WallTime> since_;   // kind/subject -> first seen
};

}  // namespace netprobe::analysis
