// Attribution of traffic to workloads (Kubernetes pods and Services) and containers:
// the analysis layer's port for what the agent knows about the node's pods, cgroups
// and veths. netprobe::k8s implements it (k8s::HostAttribution without the API,
// k8s::ClientAttribution with it), tests implement it over fixed data. Every method
// reads in-memory state kept fresh by background tasks: it never blocks on the network
// or walks the filesystem, so stages and HTTP handlers may call it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

// The /api/v1/flows attribution fields; empty strings are unknown (and not written).
struct FlowLabels {
    std::string src_namespace, src_pod, src_workload;
    std::string dst_namespace, dst_pod, dst_workload, dst_service;
    std::string src_mesh, dst_mesh;  // the pods' service mesh: "istio", "linkerd" (sidecar in the pod spec)
    bool operator==(const FlowLabels&) const = default;
};

// A pod running on this node, as far as the agent knows it.
struct LocalPod {
    std::string ns, name, uid, node;
    std::string workload, workload_kind;
    std::vector<util::Addr16> ips;
    bool host_network = false;  // its IPs are the node's: no traffic is attributed to it
    std::vector<std::string> host_interfaces;  // host-side veths whose peer holds one of its IPs
    std::string mesh;  // "istio", "linkerd" or "" (its sidecar)
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

// A node of the cluster as the attribution knows it (Kubernetes Nodes): its zone label,
// its addresses and the pod ranges it allocates from.
struct ClusterNode {
    std::string name, zone;
    std::vector<util::Addr16> addrs;
    std::vector<std::pair<util::Addr16, unsigned>> pod_cidrs;  // prefix, length over the 128-bit form
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
    // The container of a socket's cgroup; nullopt when the id is unknown (yet: an
    // unknown id asks the background walk to run soon).
    [[nodiscard]] virtual std::optional<ContainerLabels> container(std::uint64_t /*cgroup_id*/) const {
        return std::nullopt;
    }
    // Host interfaces whose peer is in another namespace (cached, refreshed in the background).
    [[nodiscard]] virtual std::vector<InterfaceLink> interfaceLinks() const { return {}; }
    // Every workload of a known pod (any node): workload series of others are dropped.
    [[nodiscard]] virtual std::vector<WorkloadRef> workloads() const { return {}; }
    // The cluster's nodes (empty without Kubernetes or before the node list arrived) and
    // this node's name ("" when unknown).
    [[nodiscard]] virtual std::vector<ClusterNode> clusterNodes() const { return {}; }
    [[nodiscard]] virtual std::string nodeName() const { return {}; }
    // Extra exposition text (the Kubernetes client's health), appended to /metrics.
    [[nodiscard]] virtual std::string healthMetrics() const { return {}; }
};

}  // namespace netprobe::analysis
