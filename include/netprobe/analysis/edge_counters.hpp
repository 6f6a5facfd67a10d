// netprobe::analysis::EdgeCounters - the topology's edges as monotonic counters for
// Prometheus (netprobe_topology_edge_*_total), the input of the cluster-wide topology
// (GET /api/v1/topology?source=prometheus, docs/topology.md).
//
// Fed the topology view after every pipeline run (a pipeline subscriber): each
// conversation's growth since the previous view (its newest slot's figures compared with
// the last ones counted; a new conversation: all of its slots; a conversation whose
// orientation a socket or L7 parser corrected starts from what its old orientation
// counted) is added to its edge. Edges group conversations by (client node, server
// node, server port, transport): nodes are workloads (namespace/workload) where the
// attribution knows one, else addresses.
//
// Bounded: the `series` busiest edges (by bytes, decayed with a 5 minute half-life,
// chosen again at every update) count on their own series; every other edge's growth
// goes to one `other` edge. Only an established edge can be chosen: one that grew in
// `min_updates` updates spread over `min_span` or more, or carried `min_bytes`. Until then its growth waits on the edge
// (not exported): moved to its own series when it is chosen, to `other` when it is
// forgotten first. So a port scan or a flood of one-packet flows (thousands of edges that
// each move once) creates no series, while its traffic still ends up in `other`. An edge counts on its series only while it is chosen, so
// every exported counter is monotonic (a re-chosen edge continues where it stopped) and
// the sum over all series is everything seen. At most `max_edges` edges are tracked (the
// rest counted as other); an edge without growth for `forget_after` is forgotten.
// Publishes immutable views; update() and latest() may be called from different threads.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace netprobe::analysis {

struct TopologyView;

struct EdgeCounterOptions {
    bool workloads = false;              // group ends by workload where known (Kubernetes)
    std::size_t series = 500;            // edges with series of their own
    std::size_t max_edges = 20000;       // edges tracked
    std::chrono::seconds half_life{300}; // of the ranking's bytes
    std::chrono::seconds forget_after{900};
    unsigned min_updates = 3;            // an edge is established after growing in this many updates
    std::chrono::seconds min_span{2};    // ... the first and the last at least this far apart
    std::uint64_t min_bytes = 65536;     // ... or carrying this many bytes
};

struct EdgeCounterKey {
    std::string source, target;  // node ids: "namespace/workload" or an address
    std::uint16_t port = 0;
    std::uint8_t ip_proto = 0;
    auto operator<=>(const EdgeCounterKey&) const = default;
};

struct EdgeCounts {
    std::uint64_t bytes_to_server = 0, bytes_to_client = 0, packets_to_server = 0, packets_to_client = 0;
    std::uint64_t connections = 0, connections_failed = 0, retransmits = 0, requests = 0, request_errors = 0;
    void add(const EdgeCounts& o);
    [[nodiscard]] bool empty() const;
};

struct EdgeCounterView {
    std::string grain;                                          // "workload" or "host"
    std::vector<std::pair<EdgeCounterKey, EdgeCounts>> edges;   // with series of their own, by key
    EdgeCounts other;                                           // every other edge's growth
    std::size_t tracked = 0;                                    // edges known
    std::size_t pending = 0;                                    // of which not yet established
    std::uint64_t untracked = 0;                                // growths of edges beyond max_edges
};

class EdgeCounters {
public:
    explicit EdgeCounters(EdgeCounterOptions options = {});
    ~EdgeCounters();
    EdgeCounters(const EdgeCounters&) = delete;
    EdgeCounters& operator=(const EdgeCounters&) = delete;

    // The growth since the previous view; now: the caller's clock (ranking decay, forgetting).
    void update(const TopologyView& view, std::chrono::steady_clock::time_point now);
    // The latest counters (never null).
    [[nodiscard]] std::shared_ptr<const EdgeCounterView> latest() const;

private:
    struct State;
    std::unique_ptr<State> s_;
    mutable std::mutex mu_;  // guards published_
    std::shared_ptr<const EdgeCounterView> published_;
};

}  // namespace netprobe::analysis
