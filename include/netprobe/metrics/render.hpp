// The Prometheus exposition of NetProbe: pure functions of a pipeline's views (the
// snapshot and what the analysis stages made of it). Every label set is bounded: fixed
// enums, interfaces, and top-K + "other" wherever a label comes from traffic.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <netprobe/analysis/cni.hpp>
#include <netprobe/analysis/grouping.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/analysis/security/stage.hpp>
#include <netprobe/ebpf/features.hpp>
#include <netprobe/ebpf/mitigator.hpp>
#include <netprobe/sinks/sink.hpp>
#include <netprobe/http/server.hpp>
#include <netprobe/util/scheduler.hpp>

namespace netprobe::metrics {

// Interfaces, protocols, malformed packets, map health, the top talkers (sticky top-K +
// "other", from views.talkers; absent without the TopTalkers stage), the stack
// monitor, the per-cgroup table's health, the sources' and stages' health. Nothing is
// chosen at render time: the top-K of the traffic-derived series is the TopTalkers
// stage's (analysis::TopTalkersOptions, --top-talkers), since keeping the set stable
// across scrapes needs state, which a pure renderer has not.
[[nodiscard]] std::string renderMetrics(const analysis::Views& views);

// The agent's own machinery: analysis stage durations per pipeline, background tasks.
struct PipelineHealth {
    std::string pipeline;  // "main", "security"
    std::vector<analysis::StageStats> stages;
};
[[nodiscard]] std::string renderAgentHealth(const std::vector<PipelineHealth>& pipelines,
                                            const std::vector<util::Scheduler::TaskStats>& tasks);

// The HTTP listeners (connections, answers by status code, timeouts, evictions, auth
// failures) and the web configuration's reloads.
struct WebConfigHealth {
    bool from_file = false;
    std::uint64_t reloads_ok = 0, reloads_failed = 0;
    bool last_reload_ok = true;
    double last_success_unix_seconds = 0;
};
[[nodiscard]] std::string renderHttpMetrics(const std::vector<http::ServerStats>& listeners, const WebConfigHealth& web);

// netprobe_feature_enabled{feature}: the kernel features probed at start (1: present).
// Diagnosis: findings by rule and severity (netprobe_diagnosis_findings).
[[nodiscard]] std::string renderDiagnosisMetrics(const analysis::DiagnosisView& view);
// netprobe_cni_info{cni,overlay} 1 and netprobe_cni_pod_interfaces: the CNI the links tell.
[[nodiscard]] std::string renderCniMetrics(const analysis::CniInfo& cni);
// Flow export: records emitted by end reason, open flows, and each sink's delivery
// (netprobe_flow_export_*; view may be null before the first collection).
[[nodiscard]] std::string renderFlowExportMetrics(const analysis::FlowExportView* view,
                                                  const std::vector<sinks::SinkStatus>& sinks);
[[nodiscard]] std::string renderKernelFeatures(const ebpf::KernelInfo& kernel);

struct PodMetricsOptions {
    bool enabled = true;
    std::size_t limit = 200;  // pods with their own series; the rest summed under namespace/pod "other"
};
// netprobe_pod_{rx,tx}_{packets,bytes}_total{namespace,pod}: the pods with the most bytes
// (then by namespace/name) up to options.limit, the rest summed as {namespace="other",pod="other"}.
// Host-network pods are left out. Series exist only for pods currently known.
[[nodiscard]] std::string renderPodMetrics(const std::vector<analysis::PodTraffic>& traffic,
                                           const PodMetricsOptions& options);

struct WorkloadMetricsOptions {
    bool enabled = true;
    std::size_t limit = 500;  // pairs with their own series; the rest summed under "other"
};
// netprobe_workload_traffic_{packets,bytes}_total{src_namespace,src_workload,dst_namespace,dst_workload}:
// the pairs with the most bytes up to options.limit, the rest summed as workload "other".
[[nodiscard]] std::string renderWorkloadMetrics(const std::vector<analysis::WorkloadTraffic>& traffic,
                                                const WorkloadMetricsOptions& options);

struct ContainerMetricsOptions {
    bool enabled = true;
    std::size_t limit = 500;  // containers with their own series; the rest summed as container_id="other"
};
// netprobe_container_{rx,tx}_{packets,bytes}_total{container_id,namespace,pod}: the
// containers with the most bytes (rx + tx; then by id) up to options.limit, the rest
// summed into {container_id="other",namespace="other",pod="other"}. namespace/pod are
// empty without Kubernetes. Series exist only for cgroups the kernel table holds, so a
// removed container's series disappear.
[[nodiscard]] std::string renderContainerMetrics(const std::vector<analysis::ContainerTraffic>& traffic,
                                                 const ContainerMetricsOptions& options);

// netprobe_security_*: events, detector state, the blocklist plan and what the
// mitigator did (status may be null: mitigation off).
[[nodiscard]] std::string renderSecurityMetrics(const analysis::security::SecurityView& view,
                                                const ebpf::MitigationStatus* status);

}  // namespace netprobe::metrics
