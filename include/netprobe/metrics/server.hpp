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

#include <functional>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/cni.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/analysis/talkers.hpp>
#include <netprobe/collector/tc_collector.hpp>
#include <netprobe/collector/trace.hpp>
#include <netprobe/ebpf/features.hpp>
#include <netprobe/ebpf/mitigator.hpp>
#include <netprobe/sinks/sink.hpp>
#include <netprobe/http/server.hpp>
#include <netprobe/http/web_config.hpp>
#include <netprobe/metrics/render.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/scheduler.hpp>

namespace netprobe::history {
class Writer;
class ClusterHistory;
class PrometheusTopology;
}
namespace netprobe::analysis {
class EdgeCounters;
}

namespace netprobe::metrics {

struct ServerConfig {
    std::string address = "0.0.0.0";
    std::uint16_t port = 8081;
    // The JSON API (/api/v1/...: flows, connections with their processes, containers,
    // security events): on the metrics listener (Same), switched off (404), or on a
    // listener of its own (api_address:api_port, e.g. 127.0.0.1).
    enum class Api { Same, Off, Separate } api = Api::Same;
    std::string api_address = "127.0.0.1";
    std::uint16_t api_port = 0;
    // TLS, basic auth, response headers, rate limit (exporter-toolkit format). A file
    // (web_config_file) wins over web; reloadWebConfig() reads it again.
    http::WebConfig web;
    std::string web_config_file;
    // Connection limits and timeouts of every listener (name/address/port are set here).
    http::ServerOptions http;
    // The top talkers' K and hold, for the pipeline start(collector) builds (an agent
    // that builds its own pipeline sets them on its TopTalkers stage).
    analysis::TopTalkersOptions talkers;
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
    // Flow export sinks (IPFIX collectors, the flow log): their status as metrics.
    std::vector<std::shared_ptr<const sinks::FlowSink>> flow_sinks;
    // The background tasks' health (optional).
    std::shared_ptr<const util::Scheduler> scheduler;
    // The kernel features probed at start (optional: netprobe_feature_enabled).
    std::shared_ptr<const ebpf::KernelInfo> kernel;
    // The CNI plugin the node's links tell (a background task lists them; optional:
    // netprobe_cni_info and "cni" in /api/v1/interfaces).
    std::function<std::shared_ptr<const analysis::CniInfo>()> cni;
    // The history store's writer (null: --history=off): /api/v1/history reads its store,
    // netprobe_history_* its counters.
    std::shared_ptr<history::Writer> history;
    // --history-source=clickhouse: /api/v1/history answers for every node from ClickHouse
    // (falling back to the local store when it fails); netprobe_history_cluster_* counters.
    std::shared_ptr<const history::ClusterHistory> cluster_history;
    std::string node_name;  // this agent's node (the local store's)
    // Packet path tracing: GET /api/v1/trace queues starts here (null: the endpoint
    // answers enabled=false and refuses starts with 503).
    std::shared_ptr<collector::TraceQueue> trace;
    // The topology's per-edge counters (netprobe_topology_edge_*_total; null: not exported).
    std::shared_ptr<const analysis::EdgeCounters> edge_counters;
    // --topology-source=prometheus: /api/v1/topology?source=prometheus answers for the
    // cluster from the agents' edge series in Prometheus (this node's graph when it
    // fails); netprobe_topology_prometheus_queries_total.
    std::shared_ptr<const history::PrometheusTopology> prometheus_topology;
};

[[nodiscard]] ServerConfig DefaultServerConfig();

class Server {
public:
    explicit Server(ServerConfig config = DefaultServerConfig());
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // The spec's start: sets up the analysis of the collector's snapshots (flow
    // accounting; grouping with the configured attribution; top talkers) and, unless it is already
    // running, starts the collector (stop() stops it again). Binds the port now (an
    // error names the address and reason, e.g. in use) and serves on background threads.
    // The collector must outlive stop().
    Result<void> start(collector::TCCollector& collector);
    // Serves the views of an existing pipeline; starts its collector if it is not running.
    Result<void> start(std::shared_ptr<const analysis::Pipeline> pipeline);
    // Binds and serves the pipeline's views without starting its collector: /healthz
    // answers and /readyz says 503 while the caller still sets up (the agent attaches
    // its interfaces in between); start(pipeline) then starts collecting.
    Result<void> listen(std::shared_ptr<const analysis::Pipeline> pipeline);
    void stop();
    [[nodiscard]] std::uint16_t port() const;
    [[nodiscard]] std::uint16_t apiPort() const;  // 0 unless the API has a listener of its own

    // Web configuration reload (SIGHUP, or the file or a file it names changed): the
    // new configuration applies to new connections; on error the current one stays and
    // the error is returned (and counted: netprobe_web_config_reloads_total).
    Result<void> reloadWebConfig();
    [[nodiscard]] bool webConfigChanged() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace netprobe::metrics
