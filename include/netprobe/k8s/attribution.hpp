// analysis::Attribution implementations:
//  - HostAttribution: without Kubernetes. Containers by cgroup (socket-layer records
//    carry the socket's cgroup v2 id; CgroupIndex maps it to the kubelet/Docker path,
//    container id and pod UID) and network namespaces by veth (host-side links whose
//    peer is in another namespace, refreshed in the background).
//  - ClientAttribution: the same plus the Kubernetes client's stores: the flow fields,
//    /api/v1/pods, the netprobe_pod_* and workload metrics, host veth -> pod (a peer
//    address that is a pod IP), and the client's health metrics.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <netprobe/k8s/cgroup.hpp>
#include <netprobe/k8s/client.hpp>
#include <netprobe/k8s/enrich.hpp>
#include <netprobe/analysis/attribution.hpp>
#include <netprobe/util/cgroup.hpp>
#include <netprobe/util/scheduler.hpp>

namespace netprobe::k8s {

// FlowEndpoints of a datapath flow key (addresses as stored, IPv4 IPv4-mapped).
[[nodiscard]] FlowEndpoints endpointsOf(const flow_key& key);
// The API fields of a FlowAttribution (the *_workload_kind fields are not part of them).
[[nodiscard]] analysis::FlowLabels flowLabels(const FlowAttribution& a);
[[nodiscard]] analysis::LocalPod localPod(const PodInfo& pod);
[[nodiscard]] analysis::ContainerLabels containerLabels(const CgroupAttribution& a);

struct HostAttributionOptions {
    // empty: the cgroup2 mount of /proc/mounts, else (a mount namespace without it, as under
    // `ip netns exec`) the nearest ancestor process's; none: no container attribution
    std::string cgroup_mount;
    std::chrono::milliseconds links_interval{2000};    // veth refresh
    std::chrono::milliseconds cgroups_interval{30000}; // full cgroup walk (a lookup miss asks for one sooner)
    std::chrono::milliseconds min_cgroup_refresh{1000};// at most one walk per this, misses included
    // Where the refreshes run (null: only at construction and when refreshLinks() /
    // refreshCgroups() are called, as tests do).
    util::Scheduler* scheduler = nullptr;
};

class HostAttribution : public analysis::Attribution {
public:
    explicit HostAttribution(HostAttributionOptions options = {});
    ~HostAttribution() override;
    HostAttribution(const HostAttribution&) = delete;
    HostAttribution& operator=(const HostAttribution&) = delete;

    [[nodiscard]] analysis::FlowLabels flow(const flow_key&) const override { return {}; }
    [[nodiscard]] std::vector<analysis::LocalPod> localPods() const override { return {}; }
    [[nodiscard]] bool synced() const override { return true; }
    [[nodiscard]] bool kubernetes() const override { return false; }
    [[nodiscard]] std::optional<analysis::ContainerLabels> container(std::uint64_t cgroup_id) const override;
    [[nodiscard]] std::vector<analysis::InterfaceLink> interfaceLinks() const override;

    // The refreshes (what the scheduled tasks run).
    void refreshLinks();
    void refreshCgroups();
    [[nodiscard]] const CgroupIndex* cgroups() const { return cgroups_.get(); }

protected:
    // The cgroup attribution, with the pod looked up in pods (may be null). A miss asks
    // the background walk to run soon; it never walks here.
    [[nodiscard]] std::optional<CgroupAttribution> cgroupAttribution(std::uint64_t cgroup_id, const PodStore* pods) const;

private:
    HostAttributionOptions options_;
    util::CgroupHierarchy hierarchy_;  // holds an ancestor's cgroup mount open when needed
    std::unique_ptr<CgroupIndex> cgroups_;
    mutable std::mutex links_mu_;
    std::vector<analysis::InterfaceLink> links_;
    std::vector<util::Scheduler::TaskId> tasks_;  // cancelled in the destructor
    std::optional<util::Scheduler::TaskId> cgroup_task_;
};

class ClientAttribution final : public HostAttribution {
public:
    // node_name: when set, only pods of that node are local (the client's field selector
    // already asks for those; this keeps the invariant when it was not set).
    ClientAttribution(std::shared_ptr<const Client> client, std::string node_name, HostAttributionOptions host = {});
    ~ClientAttribution() override;
    [[nodiscard]] analysis::FlowLabels flow(const flow_key& key) const override;
    [[nodiscard]] std::vector<analysis::LocalPod> localPods() const override;
    [[nodiscard]] bool synced() const override;
    [[nodiscard]] bool kubernetes() const override { return true; }
    [[nodiscard]] std::optional<analysis::ContainerLabels> container(std::uint64_t cgroup_id) const override;
    [[nodiscard]] std::vector<analysis::InterfaceLink> interfaceLinks() const override;
    [[nodiscard]] std::vector<analysis::WorkloadRef> workloads() const override;
    [[nodiscard]] std::vector<analysis::ClusterNode> clusterNodes() const override;
    [[nodiscard]] std::string nodeName() const override { return node_name_; }
    [[nodiscard]] std::string healthMetrics() const override;

private:
    std::shared_ptr<const Client> client_;
    std::string node_name_;
};

// netprobe_k8s_* health series of a client (pure over the statuses and store sizes):
// watch restarts, relists, 410s, failures, events, bookmarks per resource; synced and
// last-sync time per resource; objects per kind.
struct ClientHealth {
    std::vector<WatchStatus> resources;
    std::size_t pods = 0, services = 0, endpointslices = 0;
    // With NetworkPolicy monitoring: networkpolicies, namespaces, nodes, remote_pods.
    std::vector<std::pair<std::string, std::size_t>> more_objects;
};
[[nodiscard]] ClientHealth clientHealth(const Client& client);
[[nodiscard]] std::string renderClientHealth(const ClientHealth& h);

}  // namespace netprobe::k8s
