// Flow attribution: a flow's endpoints -> namespace / pod / workload, and the Service
// behind a ClusterIP destination. Pure functions (the store overload only reads the stores).
#pragma once

#include <cstdint>
#include <string>


#include <netprobe/k8s/cgroup.hpp>
#include <netprobe/k8s/store.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::k8s {

struct FlowEndpoints {
    util::Addr16 src{}, dst{};  // IPv4 stored IPv4-mapped, as in flow_key
    std::uint16_t dst_port = 0;
    std::uint8_t protocol = 0;  // IPPROTO_*
};

// The flows API fields; empty strings are unknown. A ClusterIP destination has no pod:
// dst_namespace is then the Service's namespace.
struct FlowAttribution {
    std::string src_namespace, src_pod, src_workload, src_workload_kind;
    std::string dst_namespace, dst_pod, dst_workload, dst_workload_kind;
    std::string dst_service;  // Service name (its namespace is dst_namespace)
    std::string src_mesh, dst_mesh;  // the pods' service mesh (PodInfo::mesh)
    bool operator==(const FlowAttribution&) const = default;
    [[nodiscard]] bool empty() const { return *this == FlowAttribution{}; }
};

// From what the lookups found (nullptr = not found). dst_service comes from the ClusterIP
// match, else from the backend match (EndpointSlices: a flow seen after DNAT).
[[nodiscard]] FlowAttribution attribute(const PodInfo* src, const PodInfo* dst, const ServiceMatch* cluster_ip,
                                        const BackendMatch* backend = nullptr);
// Looks the endpoints up: src and dst by pod IP, dst by ClusterIP:port/protocol, and when
// endpoints is given, a destination pod IP:port by the Service it backs.
[[nodiscard]] FlowAttribution enrichFlow(const FlowEndpoints& flow, const PodStore& pods, const ServiceStore& services,
                                         const EndpointStore* endpoints = nullptr);

// The container and pod behind a cgroup v2 id (socket-layer records, per-cgroup traffic).
struct CgroupAttribution {
    std::string cgroup_path;
    std::string container_id;  // empty: not a container cgroup
    std::string pod_uid;
    std::string ns, pod, workload, workload_kind;  // empty without the API (or pod unknown)
    bool operator==(const CgroupAttribution&) const = default;
};
// From an index entry and the pod found for it (nullptr = none). Pure.
[[nodiscard]] CgroupAttribution attributeCgroup(const CgroupIndex::Entry& entry, const PodInfo* pod);
// Looks the cgroup id up, then the pod by UID (from the cgroup path) or by container id.
// nullopt when the id is not in the index (the caller may refresh it and retry).
[[nodiscard]] std::optional<CgroupAttribution> attributeCgroupId(std::uint64_t cgroup_id, const CgroupIndex& index,
                                                                 const PodStore* pods);

}  // namespace netprobe::k8s
