// Attribution of traffic to workloads (Kubernetes pods and Services), as seen by the
// metrics server. The core library only knows this interface; netprobe::k8s implements
// it over its API client (k8s::ClientAttribution), tests implement it over fixed data.
// The functions below are pure: they read a snapshot and what the attribution returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
    std::vector<std::string> host_interfaces;  // host-side veths whose peer holds one of its IPs
};

// The container behind a cgroup v2 id (socket-layer records), from the cgroup path
// (container id, pod UID) and, with Kubernetes, the pod with that UID or container id.
struct ContainerLabels {
    std::string cgroup_path;   // relative to the cgroup v2 mount ("/kubepods.slice/...")
    std::string container_id;  // empty: the cgroup is not a container's
    std::string pod_uid;
    std::string ns, pod, workload;  // with Kubernetes, when the pod is known
    bool operator==(const ContainerLabels&) const = default;
};

// A host interface whose other end lives in another network namespace (the host side
// of a veth pair, as container runtimes and CNIs create them), read over rtnetlink.
struct InterfaceLink {
    std::uint32_t ifindex = 0;
    std::string name;
    std::string kind;                 // IFLA_INFO_KIND ("veth", ...)
    std::int32_t link_netnsid = -1;   // IFLA_LINK_NETNSID: the peer's namespace, as ids go in ours
    std::uint32_t peer_ifindex = 0;   // IFLA_LINK: the peer's index in that namespace
    std::string peer_name;
    std::uint32_t peer_netns_inode = 0;  // 0: no process or /run/netns file of ours shows that namespace
    std::string peer_netns_name;         // its /run/netns name, if any
    std::vector<util::Addr16> peer_addresses;  // the peer interface's addresses
    std::string pod_namespace, pod_name, pod_uid;  // with Kubernetes: the local pod owning a peer address
};

// A workload (namespace + name) that some known pod belongs to.
struct WorkloadRef {
    std::string ns, name;
    auto operator<=>(const WorkloadRef&) const = default;
};

class Attribution {
public:
    virtual ~Attribution() = default;
    // Never blocks on the network (reads in-memory stores).
    [[nodiscard]] virtual FlowLabels flow(const flow_key& key) const = 0;
    [[nodiscard]] virtual std::vector<LocalPod> localPods() const = 0;
    // The pod list has been received once (until then localPods() may be partial).
    [[nodiscard]] virtual bool synced() const = 0;
    // False for host-only attribution (containers by cgroup, namespaces by veth, no API):
    // /api/v1/pods then answers enabled=false.
    [[nodiscard]] virtual bool kubernetes() const { return true; }
    // The container of a socket's cgroup; nullopt when the id is unknown. Never blocks on
    // the network (may walk the cgroup hierarchy, at most about once a second).
    [[nodiscard]] virtual std::optional<ContainerLabels> container(std::uint64_t /*cgroup_id*/) const {
        return std::nullopt;
    }
    // Host interfaces whose peer is in another namespace (cached, refreshed in the background).
    [[nodiscard]] virtual std::vector<InterfaceLink> interfaceLinks() const { return {}; }
    // Every workload of a known pod (any node): workload series of others are dropped.
    [[nodiscard]] virtual std::vector<WorkloadRef> workloads() const { return {}; }
    // Extra exposition text (the Kubernetes client's health), appended to /metrics.
    [[nodiscard]] virtual std::string healthMetrics() const { return {}; }
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

// Workload-to-workload traffic: every collection's per-interval flow deltas (one
// observation per 5-tuple, as for the pods), added per (source workload, destination
// workload) pair; an end that is not a pod is the workload "external" (empty namespace).
// Flows with no pod at either end are not counted. Pairs whose pod workloads are no
// longer known (workloads()) are forgotten, so their series disappear.
struct WorkloadMetricsOptions {
    bool enabled = true;
    std::size_t limit = 500;  // pairs with their own series; the rest summed under "other"
};
struct WorkloadPair {
    WorkloadRef src, dst;
    auto operator<=>(const WorkloadPair&) const = default;
};
struct WorkloadTraffic {
    WorkloadPair pair;
    std::uint64_t packets = 0, bytes = 0;
};
class WorkloadCounters {
public:
    // max_pairs bounds the memory: once that many pairs are held, new pairs are added to
    // one pair whose four labels are "other" (kept as long as it has traffic).
    explicit WorkloadCounters(std::size_t max_pairs = 100000) : max_pairs_(max_pairs) {}
    void observe(const collector::Snapshot& s, const Attribution& attribution);
    [[nodiscard]] std::vector<WorkloadTraffic> traffic() const;  // sorted by pair

private:
    mutable std::mutex mu_;
    std::map<WorkloadPair, WorkloadTraffic> by_pair_;
    std::uint64_t last_sequence_ = 0;
    std::size_t max_pairs_;
};
inline constexpr const char* kExternalWorkload = "external";
// netprobe_workload_traffic_{packets,bytes}_total{src_namespace,src_workload,dst_namespace,dst_workload}:
// the pairs with the most bytes up to options.limit, the rest summed as workload "other".
[[nodiscard]] std::string renderWorkloadMetrics(const std::vector<WorkloadTraffic>& traffic,
                                                const WorkloadMetricsOptions& options);

// The /api/v1/pods document, serialized.
[[nodiscard]] std::string podsJson(const collector::Snapshot& s, const std::vector<PodTraffic>& traffic, bool enabled,
                                   bool synced);

}  // namespace netprobe::metrics
