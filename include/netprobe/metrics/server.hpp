// netprobe::metrics::Server - the spec's metrics server: Prometheus /metrics,
// the JSON API (/api/v1/interfaces, /api/v1/flows) and health endpoints, all
// served from the collector's latest snapshot.
//
//   auto cfg = netprobe::metrics::DefaultServerConfig();
//   cfg.port = 8081;
//   netprobe::metrics::Server server(cfg);
//   if (auto r = server.start(collector); !r) { /* r.error().what() */ }
//   ...
//   server.stop();
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <netprobe/collector/snapshot.hpp>
#include <netprobe/collector/tc_collector.hpp>
#include <netprobe/metrics/attribution.hpp>
#include <netprobe/metrics/containers.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::security {
class SecurityMonitor;
}

namespace netprobe::metrics {

struct RenderOptions {
    std::size_t top_flows = 20;  // flows exported as series; the rest aggregated as "other"
};

struct ServerConfig {
    std::string address = "0.0.0.0";
    std::uint16_t port = 8081;
    RenderOptions render;
    std::size_t default_flow_limit = 100;   // /api/v1/flows without ?limit=
    std::size_t max_flow_limit = 10000;     // largest ?limit= accepted
    // Pod/Service attribution (Kubernetes), or host-only attribution (containers by
    // cgroup, namespaces by veth: Attribution::kubernetes() false); null: none of it,
    // /api/v1/pods answers enabled=false and no netprobe_pod_* series are exported.
    std::shared_ptr<const Attribution> attribution;
    PodMetricsOptions pod_metrics;
    // Security analytics: netprobe_security_* metrics and /api/v1/events (null: the
    // endpoint answers enabled=false).
    std::shared_ptr<const security::SecurityMonitor> security;
    WorkloadMetricsOptions workload_metrics;
    // netprobe_container_* series from the per-cgroup traffic (with an attribution).
    ContainerMetricsOptions container_metrics;
};

[[nodiscard]] ServerConfig DefaultServerConfig();

// Renders a snapshot in the Prometheus text format (pure function).
[[nodiscard]] std::string renderMetrics(const collector::Snapshot& snap, const RenderOptions& options);

class Server {
public:
    explicit Server(ServerConfig config = DefaultServerConfig());
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds the port now (an error names the address and reason, e.g. in use)
    // and serves on background threads until stop().
    Result<void> start(collector::TCCollector& collector);
    void stop();
    [[nodiscard]] std::uint16_t port() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace netprobe::metrics
