// The cluster-wide topology from Prometheus (docs/topology.md): the per-edge counters
// every agent exports for it, the answer of GET /api/v1/topology?source=prometheus, and
// the counters of its queries. Pure functions of their inputs.
#pragma once

#include <string>
#include <vector>

namespace netprobe::analysis {
struct EdgeCounterView;
}
namespace netprobe::history {
struct PromEdge;
struct PrometheusStats;
}  // namespace netprobe::history

namespace netprobe::metrics {

struct TopologyQuery;

// netprobe_topology_edge_{bytes,packets}_total{source,target,port,transport,direction},
// netprobe_topology_edge_{connections,connections_failed,retransmits,requests,request_errors}_total
// {source,target,port,transport}: the budgeted edges and one "other" edge; and
// netprobe_topology_edges (edges tracked, edges with series).
[[nodiscard]] std::string renderEdgeCounterMetrics(const analysis::EdgeCounterView& view);

// netprobe_topology_prometheus_queries_total{result="ok|error|skipped"}.
[[nodiscard]] std::string renderPrometheusTopologyMetrics(const history::PrometheusStats& stats);

// The answer for source=prometheus: nodes (workloads "namespace/name", or addresses) and
// edges with their figures over q.window_seconds (increase() estimates, rounded), in the
// netprobe or the nodegraph format; group_by host/workload (the exported grain) or
// namespace; namespace, protocol (tcp, udp) and limit as for the local view.
[[nodiscard]] std::string prometheusTopologyJson(const std::vector<history::PromEdge>& edges, const TopologyQuery& q,
                                                 const std::string& target);

}  // namespace netprobe::metrics
