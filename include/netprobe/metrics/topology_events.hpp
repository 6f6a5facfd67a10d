// Topology events: a *new boundary edge* - an edge between two segments (namespace,
// subnet or community: analysis::segmentGraph) not seen before since the agent started -
// is an event, listed by GET /api/v1/events with type "new_boundary_edge" next to the
// security events, and counted (netprobe_topology_new_boundary_edges_total).
//
// The graph is this node's workload graph over the topology's whole window (addresses
// without a workload stay hosts), as GET /api/v1/topology?group_by=workload segments it.
// The boundary edges of the first view are the baseline (what runs when the agent starts
// is not new). An edge is reported once: the edges seen are remembered (at most
// max_seen; the oldest are forgotten first, counted). Computed once per view by a
// subscriber of the pipeline (views only, no BPF call).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/pipeline.hpp>

namespace netprobe::metrics {

struct BoundaryEdgeEvent {
    std::uint64_t id = 0;
    std::chrono::system_clock::time_point detected_at{};
    std::string edge;                              // the edge's id (source->target:port/transport)
    std::string source, target;                    // node ids
    std::string source_segment, target_segment;
    std::string src_ip, dst_ip;                    // the nodes' first addresses
    std::uint16_t port = 0;
    std::string transport;
};

struct BoundaryTrackerOptions {
    std::size_t max_seen = 20000;   // edges remembered
    std::size_t max_events = 1000;  // events kept for the API
};

// Pure over the documents it is given (topologyDocument answers) and the times.
class BoundaryTracker {
public:
    explicit BoundaryTracker(BoundaryTrackerOptions o = {}) : opts_(o) {}
    // The new boundary edges of doc (none the first time: the baseline).
    std::vector<std::shared_ptr<const BoundaryEdgeEvent>> observe(const nlohmann::json& doc,
                                                                  std::chrono::system_clock::time_point now);
    [[nodiscard]] const std::deque<std::shared_ptr<const BoundaryEdgeEvent>>& events() const { return events_; }
    [[nodiscard]] std::uint64_t total() const { return total_; }
    [[nodiscard]] std::size_t tracked() const { return order_.size(); }
    [[nodiscard]] std::uint64_t forgotten() const { return forgotten_; }

private:
    BoundaryTrackerOptions opts_;
    bool baseline_done_ = false;
    std::unordered_set<std::string> seen_;
    std::deque<std::string> order_;  // seen_, oldest first
    std::deque<std::shared_ptr<const BoundaryEdgeEvent>> events_;  // oldest first
    std::uint64_t total_ = 0, forgotten_ = 0, next_id_ = 0;
};

// The JSON of an event, in /api/v1/events's shape (ids from 2^40 up: apart from the
// security events').
[[nodiscard]] nlohmann::json boundaryEventJson(const BoundaryEdgeEvent& e);

class TopologyEvents {
public:
    explicit TopologyEvents(std::shared_ptr<const analysis::Pipeline> pipeline, BoundaryTrackerOptions o = {});
    ~TopologyEvents();
    TopologyEvents(const TopologyEvents&) = delete;
    TopologyEvents& operator=(const TopologyEvents&) = delete;
    void publish(const analysis::Pipeline::ViewsPtr& v);
    // Events detected at or after since (all: nullopt), newest first, at most limit.
    [[nodiscard]] std::vector<std::shared_ptr<const BoundaryEdgeEvent>> select(
        std::optional<std::chrono::system_clock::time_point> since, std::size_t limit) const;
    // netprobe_topology_new_boundary_edges_total, netprobe_topology_boundary_edges_tracked,
    // netprobe_topology_boundary_edges_forgotten_total
    [[nodiscard]] std::string renderMetrics() const;

private:
    std::shared_ptr<const analysis::Pipeline> pipeline_;
    mutable std::mutex mu_;
    BoundaryTracker tracker_;
    std::uint64_t last_seq_ = 0;
    analysis::Pipeline::Subscription sub_;
};

// /api/v1/events with the topology's events: the security events' answer (its JSON)
// merged with the boundary events, newest first, at most limit. want_security false:
// only the topology's (type=new_boundary_edge alone).
[[nodiscard]] std::string mergeEventsJson(const std::string& security_json, bool want_security,
                                          const std::vector<std::shared_ptr<const BoundaryEdgeEvent>>& topology,
                                          std::size_t limit);

}  // namespace netprobe::metrics
