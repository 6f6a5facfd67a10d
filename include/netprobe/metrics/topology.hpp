// GET /api/v1/topology: the topology view's conversations grouped into nodes and edges
// (pure functions of the views; see docs/topology.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace netprobe::analysis {
struct TopologyEnd;
struct TopologyView;
namespace l7 {
struct L7View;
}
}  // namespace netprobe::analysis

namespace netprobe::history {
struct ClusterFlow;
}

namespace netprobe::metrics {

struct TopologyQuery {
    std::size_t window_seconds = 300;  // up to the view's window (rounded up to whole slots)
    std::string group_by = "host";     // host, workload, namespace, pod, process, segment
    std::string ns;                    // only edges with an end in this namespace
    std::string protocol;              // tcp, udp, or an L7 protocol (http, grpc, dns, ...)
    std::string format = "netprobe";   // netprobe, or nodegraph (Grafana's Node Graph panel frames)
    std::size_t limit = 2000;          // edges, by bytes; their nodes
    std::string source = "local";      // local (this node's view), clickhouse (every node's flow records) or
                                       // prometheus (every agent's edge series; metrics/cluster_topology.hpp)
    std::optional<std::int64_t> at_unix;  // at=: the graph of the window ending then, from the history store
};

// netprobe_topology_conversations, netprobe_topology_conversations_dropped_total,
// netprobe_topology_samples_without_ports_total.
[[nodiscard]] std::string renderTopologyMetrics(const analysis::TopologyView& view);

// The id of the node an end belongs to under group_by (host, workload, namespace, pod,
// process), as topologyJson names it (addresses not named by DNS).
[[nodiscard]] std::string topologyNodeId(const analysis::TopologyEnd& end, const std::string& group_by);

// "tcp", "udp", "sctp", else the protocol number.
[[nodiscard]] std::string transportName(std::uint8_t ip_proto);
// 1536 -> "1.5 KiB" (B, KiB, MiB, GiB, TiB).
[[nodiscard]] std::string humanBytes(double bytes);

[[nodiscard]] std::expected<TopologyQuery, std::string> parseTopologyQuery(
    const std::vector<std::pair<std::string, std::string>>& params);
// view null: {"enabled": false}. l7 (may be null): DNS names for remote addresses.
// The cluster's topology from every node's flow records in ClickHouse (source=clickhouse;
// group_by host, workload, namespace or pod): nodes and edges as topologyJson names them,
// edges with the nodes that observed them. Direction: a record's first direction (the
// client's, for connections whose start was seen).
[[nodiscard]] std::string clusterTopologyJson(const std::vector<history::ClusterFlow>& flows, const TopologyQuery& q,
                                              const std::string& target);

[[nodiscard]] std::string topologyJson(const analysis::TopologyView* view, const analysis::l7::L7View* l7,
                                       const TopologyQuery& q);
// The same answer as a document (the model GET /api/v1/topology/stream diffs).
[[nodiscard]] nlohmann::json topologyDocument(const analysis::TopologyView* view, const analysis::l7::L7View* l7,
                                              const TopologyQuery& q);

}  // namespace netprobe::metrics
