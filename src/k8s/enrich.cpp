#include <netprobe/k8s/enrich.hpp>


namespace netprobe::k8s {

FlowAttribution attribute(const PodInfo* src, const PodInfo* dst, const ServiceMatch* svc, const BackendMatch* backend) {
    FlowAttribution a;
    if (src) {
        a.src_namespace = src->ns;
        a.src_pod = src->name;
        a.src_workload = src->workload.name;
        a.src_workload_kind = src->workload.kind;
        a.src_mesh = src->mesh;
    }
    if (dst) {
        a.dst_namespace = dst->ns;
        a.dst_pod = dst->name;
        a.dst_workload = dst->workload.name;
        a.dst_workload_kind = dst->workload.kind;
        a.dst_mesh = dst->mesh;
    }
    if (svc) {
        a.dst_service = svc->service.name;
        if (!dst) a.dst_namespace = svc->service.ns;
    } else if (backend) {
        a.dst_service = backend->service;
        if (!dst) a.dst_namespace = backend->ns;
    }
    return a;
}

FlowAttribution enrichFlow(const FlowEndpoints& flow, const PodStore& pods, const ServiceStore& services,
                           const EndpointStore* endpoints) {
    auto src = pods.byIp(flow.src);
    auto dst = pods.byIp(flow.dst);
    std::optional<ServiceMatch> svc;
    std::optional<BackendMatch> backend;
    if (!dst) svc = services.byClusterIp(flow.dst, flow.dst_port, flow.protocol);
    if (!svc && endpoints) backend = endpoints->serviceByBackend(flow.dst, flow.dst_port, flow.protocol);
    return attribute(src ? &*src : nullptr, dst ? &*dst : nullptr, svc ? &*svc : nullptr,
                     backend ? &*backend : nullptr);
}

CgroupAttribution attributeCgroup(const CgroupIndex::Entry& entry, const PodInfo* pod) {
    CgroupAttribution a;
    a.cgroup_path = entry.path;
    if (entry.container) {
        a.container_id = entry.container->container_id;
        a.pod_uid = entry.container->pod_uid;
    }
    if (pod) {
        a.pod_uid = pod->uid;
        a.ns = pod->ns;
        a.pod = pod->name;
        a.workload = pod->workload.name;
        a.workload_kind = pod->workload.kind;
    }
    return a;
}

std::optional<CgroupAttribution> attributeCgroupId(std::uint64_t cgroup_id, const CgroupIndex& index,
                                                   const PodStore* pods) {
    auto e = index.lookup(cgroup_id);
    if (!e) return std::nullopt;
    std::optional<PodInfo> pod;
    if (pods && e->container) {
        if (!e->container->pod_uid.empty()) pod = pods->byUid(e->container->pod_uid);
        if (!pod) pod = pods->byContainerId(e->container->container_id);
    }
    return attributeCgroup(*e, pod ? &*pod : nullptr);
}

}  // namespace netprobe::k8s
