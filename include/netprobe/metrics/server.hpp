// netprobe::metrics::Server - the spec's metrics server: Prometheus /metrics, the JSON
// API (/api/v1/...) and health endpoints, all answered from the latest published views
// (no BPF syscall, no lock an analysis stage holds).
//
// The spec's usage - a collector and a server - collects by itself:
//   netprobe::collector::TCCollector collector(*manager);
//   auto cfg = netprobe::metrics::DefaultServerConfig();
//   cfg.port = 8081;
//   netprobe::metrics::Server server(cfg);
//   if (auto r = server.start(collector); !r) { /* r.error().what() */ }   // starts collecting
//   ...
//   server.stop();   // stops what start() started
//
// The agent builds its own pipeline (more sources and stages) and passes it instead.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/collector/tc_collector.hpp>
#include <netprobe/ebpf/mitigator.hpp>
#include <netprobe/metrics/render.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/scheduler.hpp>

namespace netprobe::metrics {

struct ServerConfig {
    std::string address = "0.0.0.0";
    std::uint16_t port = 8081;
    RenderOptions render;
    std::size_t default_flow_limit = 100;   // /api/v1/flows without ?limit=
    std::size_t max_flow_limit = 10000;     // largest ?limit= accepted
    // Pod/Service attribution (Kubernetes), or host-only attribution (containers by
    // cgroup, namespaces by veth: Attribution::kubernetes() false); null: none of it,
    // /api/v1/pods answers enabled=false and no netprobe_pod_* series are exported.
    std::shared_ptr<const analysis::Attribution> attribution;
    PodMetricsOptions pod_metrics;
    WorkloadMetricsOptions workload_metrics;
    ContainerMetricsOptions container_metrics;
    // Security analytics: the security pipeline (netprobe_security_*, /api/v1/events;
    // null: the endpoint answers enabled=false) and the mitigator's status (null: none).
    std::shared_ptr<const analysis::Pipeline> security;
    std::shared_ptr<const ebpf::Mitigator> mitigator;
    // The background tasks' health (optional).
    std::shared_ptr<const util::Scheduler> scheduler;
};

[[nodiscard]] ServerConfig DefaultServerConfig();

class Server {
public:
    explicit Server(ServerConfig config = DefaultServerConfig());
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // The spec's start: sets up the analysis of the collector's snapshots (flow
    // accounting; grouping with the configured attribution) and, unless it is already
    // running, starts the collector (stop() stops it again). Binds the port now (an
    // error names the address and reason, e.g. in use) and serves on background threads.
    // The collector must outlive stop().
    Result<void> start(collector::TCCollector& collector);
    // Serves the views of an existing pipeline; starts its collector if it is not running.
    Result<void> start(std::shared_ptr<const analysis::Pipeline> pipeline);
    void stop();
    [[nodiscard]] std::uint16_t port() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace netprobe::metrics
