// Attribution of traffic to workloads (Kubernetes pods and Services), as seen by the
// metrics server. The core library only knows this interface; netprobe::k8s implements
// it over its API client (k8s::ClientAttribution), tests implement it over fixed data.
// The functions below are pure: they read a snapshot and what the attribution returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::metrics {

// The /api/v1/flows attribution fields; empty strings are unknown (and not written).
struct FlowLabels {
    std::string src_namespace, src_pod, src_workload;
    std::string dst_namespace, dst_pod, dst_workload, dst_service;
    bool operator==(const FlowLabels&) const = default;
};

// A pod running on this node, as far as the agent knows it.
struct LocalPod {
    std::string ns, name, uid, node;
    std::string workload, workload_kind;
    std::vector<util::Addr16> ips;
    bool host_network = false;  // its IPs are the node's: no traffic is attributed to it
};

class Attribution {
public:
    virtual ~Attribution() = default;
    // Never blocks on the network (reads in-memory stores).
    [[nodiscard]] virtual FlowLabels flow(const flow_key& key) const = 0;
    [[nodiscard]] virtual std::vector<LocalPod> localPods() const = 0;
    // The pod list has been received once (until then localPods() may be partial).
    [[nodiscard]] virtual bool synced() const = 0;
};

struct PodTraffic {
    const LocalPod* pod = nullptr;  // points into the vector given to podTraffic
    std::uint64_t rx_packets = 0, rx_bytes = 0;  // flows whose destination is the pod
    std::uint64_t tx_packets = 0, tx_bytes = 0;  // flows whose source is the pod
};

// Per pod (same order as pods), the traffic of the snapshot's flows whose source (tx)
// or destination (rx) is one of the pod's IPs. A packet observed at several hook points
// (the pod's veth and another pod's veth, say) counts once: per 5-tuple the largest
// observation is taken. Host-network pods get no traffic.
[[nodiscard]] std::vector<PodTraffic> podTraffic(const collector::Snapshot& s, const std::vector<LocalPod>& pods);

// Monotonic per-pod totals for the netprobe_pod_*_total counters. Flow records come
// and go (idle timeout, eviction), so sums over the current flows can decrease;
// instead every collection's per-interval deltas are added here, keyed by pod UID.
// A pod that is no longer known is forgotten (its series disappear).
class PodCounters {
public:
    // Once per collection (the snapshot's sequence guards against double counting).
    void observe(const collector::Snapshot& s, const std::vector<LocalPod>& pods);
    // The totals of the given pods, in their order (zero for pods not seen yet).
    [[nodiscard]] std::vector<PodTraffic> traffic(const std::vector<LocalPod>& pods) const;

private:
    struct Totals {
        std::uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
    };
    mutable std::mutex mu_;
    std::unordered_map<std::string, Totals> by_uid_;
    std::uint64_t last_sequence_ = 0;
};

struct PodMetricsOptions {
    bool enabled = true;
    std::size_t limit = 200;  // pods with their own series; the rest summed under namespace/pod "other"
};
// netprobe_pod_{rx,tx}_{packets,bytes}_total{namespace,pod}: the pods with the most bytes
// (then by namespace/name) up to options.limit, the rest summed as {namespace="other",pod="other"}.
// Host-network pods are left out. Series exist only for pods currently known.
[[nodiscard]] std::string renderPodMetrics(const std::vector<PodTraffic>& traffic, const PodMetricsOptions& options);

// The /api/v1/pods document, serialized.
[[nodiscard]] std::string podsJson(const collector::Snapshot& s, const std::vector<PodTraffic>& traffic, bool enabled,
                                   bool synced);

}  // namespace netprobe::metrics
