// netprobe::analysis::Qos - quality of service per conversation, passively: round trip
// times from the TCP handshakes timed at TC (SYN -> SYN/ACK: the server's side of the
// vantage point; SYN/ACK -> ACK: the client's side), their jitter, and, from the topology
// view, loss (segments each end retransmitted / segments it sent), the sockets' smoothed
// RTT and L7 latency. Edges (conversations grouped into nodes) are the export's choice,
// like the topology's (metrics/qos.hpp).
//
// Jitter is the RFC 3550 idea applied to the RTT samples of one conversation: the
// deviation between successive samples |R(i) - R(i-1)|; an edge's jitter over a window is
// the mean of those deviations (the quantity RFC 3550's running estimate smooths).
//
// A connection seen at several interfaces of the node (a pod's veth and the uplink) is
// timed once: per collection, the sample of each 5-tuple with the largest round trip (the
// vantage point nearest an end sees the whole path).
//
// Bounded: at most max_conversations (later ones counted, not kept), at most
// max_samples per conversation (the oldest dropped first), samples older than the window
// dropped, conversations without a sample in the window forgotten.
#pragma once

#include <chrono>
#include <cstdint>
#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

struct QosOptions {
    std::chrono::seconds window{900};
    std::size_t max_samples = 512;            // per conversation
    std::size_t max_conversations = 20000;
    std::size_t max_edges = 100;              // edges with their own metric series (+ "other")
};

// Handshake RTT buckets of netprobe_edge_rtt_seconds (seconds; + Inf).
inline constexpr std::array<double, 14> kRttBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                       0.02,   0.05,    0.1,    0.25,  0.5,    1,     2.5};

struct TopologyEnd;
// The metric series' node of an end: "namespace/workload", else "namespace/pod", else
// the address.
[[nodiscard]] std::string qosNodeOf(const TopologyEnd& end);

// An edge of the metrics: client node -> server node:port (TCP).
struct QosEdgeKey {
    std::string client, server;
    std::uint16_t port = 0;
    auto operator<=>(const QosEdgeKey&) const = default;
};
inline const QosEdgeKey kOtherEdge{"other", "other", 0};

// Cumulative handshake RTT histogram of an edge since its series began.
struct QosEdgeSeries {
    QosEdgeKey key;
    std::array<std::uint64_t, kRttBuckets.size() + 1> buckets{};  // non-cumulative; last: +Inf
    std::uint64_t count = 0;
    double sum_seconds = 0;
    std::uint64_t last_ns = 0;  // the last sample
};

struct RttSample {
    std::uint64_t mono_ns = 0;     // the collection that read it
    std::uint32_t server_us = 0;   // SYN -> SYN/ACK at the vantage point
    std::uint32_t client_us = 0;   // SYN/ACK -> ACK
    // |rtt - the previous sample's rtt| of the same conversation; kNoDelta for its first.
    std::uint32_t delta_us = 0;
    static constexpr std::uint32_t kNoDelta = 0xffffffffu;
    [[nodiscard]] std::uint32_t rttUs() const { return server_us + client_us; }
};

struct QosConversation {
    util::Addr16 client{}, server{};
    std::uint16_t port = 0;      // the server's
    std::uint8_t family = 4;
    QosEdgeKey edge;                 // its metric edge (kOtherEdge beyond the budget)
    std::vector<RttSample> samples;  // oldest first, within the window
};

// A UDP flow's datagram spacing at one interface and direction (bpf/lib/udp_timing.h):
// RFC 3550's interarrival jitter with the flow's mean spacing as the expected one (exact
// for constant-rate streams: RTP voice and video, telemetry; for bursty traffic it
// measures the burstiness).
struct UdpFlowJitter {
    flow_key key{};                     // as the flow's (its interface and direction)
    double jitter_seconds = 0;          // RFC 3550's running estimate J, now
    double mean_deviation_seconds = 0;  // mean |inter-arrival - mean inter-arrival| since first seen
    double interarrival_seconds = 0;    // the current run's mean spacing
    std::uint32_t samples = 0;          // deviations taken
    std::uint64_t last_ns = 0;          // the last datagram (monotonic)
};
// Orders flow keys as the view's udp_flows are (bytes of the key).
[[nodiscard]] bool flowKeyLess(const flow_key& a, const flow_key& b);

struct QosView {
    std::chrono::seconds window{900};
    std::uint64_t now_ns = 0;
    // Immutable, shared across views; in key order.
    std::vector<std::shared_ptr<const QosConversation>> conversations;
    std::uint64_t handshakes_total = 0;      // samples taken, since start
    std::uint64_t handshakes_duplicate = 0;  // the same connection at another interface (not counted twice)
    std::uint64_t overflow = 0;              // samples of conversations not kept (budget)
    // Edges with their own series (by key), then kOtherEdge's when it has samples. An edge
    // without a sample for a window leaves (its series end).
    std::vector<QosEdgeSeries> edges;
    // UDP flows timed (a datagram within the flows' idle horizon, at least two deviations),
    // by key (flowKeyLess); udpJitter() finds one.
    std::vector<UdpFlowJitter> udp_flows;
    // The kernel's drop reasons by value (the stack monitor's names), for the edges' drops.
    std::map<std::uint32_t, std::string> drop_reason_names;
    [[nodiscard]] const UdpFlowJitter* udpJitter(const flow_key& key) const;
};

class Qos final : public Stage {
public:
    explicit Qos(QosOptions options = {});
    ~Qos() override;
    [[nodiscard]] std::string_view name() const override { return "qos"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct State;
    std::unique_ptr<State> s_;
};

// Quantile q (0..1) of values (sorted in place), linear between closest ranks; 0 when empty.
[[nodiscard]] double quantileOf(std::vector<double>& values, double q);

}  // namespace netprobe::analysis
