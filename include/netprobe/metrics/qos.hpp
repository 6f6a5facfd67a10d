// Quality of service: GET /api/v1/qos and the netprobe_edge_* metrics, pure functions of
// the topology and QoS views (docs/qos.md).
#pragma once

#include <cstddef>
#include <expected>
#include <string>
#include <utility>
#include <vector>

namespace netprobe::analysis {
struct TopologyView;
struct QosView;
struct FlowView;
}  // namespace netprobe::analysis

namespace netprobe::metrics {

struct QosQuery {
    std::size_t window_seconds = 300;
    std::string group_by = "workload";  // host, workload, namespace, pod, container, process, service
    std::string ns;                     // only edges with an end in this namespace
    std::size_t limit = 500;            // edges, by bytes
};

[[nodiscard]] std::expected<QosQuery, std::string> parseQosQuery(
    const std::vector<std::pair<std::string, std::string>>& params);

// {"enabled": false} without a QoS view. Edges (client -> server:port over TCP) and
// services (server:port, every client) with RTT quantiles from the handshakes, jitter,
// the sockets' smoothed RTT, loss per direction and L7 figures when present; the UDP
// flows' inter-arrival jitter (the highest first; interface names from flows when given).
[[nodiscard]] std::string qosJson(const analysis::TopologyView* topology, const analysis::QosView* qos,
                                  const QosQuery& q, const analysis::FlowView* flows = nullptr);

// netprobe_edge_rtt_seconds (histogram), netprobe_edge_jitter_seconds,
// netprobe_edge_loss_ratio (last 5 minutes), netprobe_qos_* counters. Edges: the QoS
// view's budgeted set + "other".
[[nodiscard]] std::string renderQosMetrics(const analysis::TopologyView* topology, const analysis::QosView& qos);

}  // namespace netprobe::metrics
