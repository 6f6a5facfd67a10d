#include <netprobe/k8s/attribution.hpp>

#include <bit>

#include <netprobe/k8s/enrich.hpp>

namespace netprobe::k8s {

FlowEndpoints endpointsOf(const flow_key& key) {
    FlowEndpoints e;
    e.src = std::bit_cast<util::Addr16>(key.src_ip);
    e.dst = std::bit_cast<util::Addr16>(key.dst_ip);
    e.dst_port = key.dst_port;
    e.protocol = key.proto;
    return e;
}

metrics::FlowLabels flowLabels(const FlowAttribution& a) {
    return {a.src_namespace, a.src_pod, a.src_workload, a.dst_namespace, a.dst_pod, a.dst_workload, a.dst_service};
}

metrics::LocalPod localPod(const PodInfo& p) {
    return {p.ns, p.name, p.uid, p.node, p.workload.name, p.workload.kind, p.ips, p.host_network};
}

ClientAttribution::ClientAttribution(std::shared_ptr<const Client> client, std::string node_name)
    : client_(std::move(client)), node_name_(std::move(node_name)) {}

metrics::FlowLabels ClientAttribution::flow(const flow_key& key) const {
    return flowLabels(enrichFlow(endpointsOf(key), client_->pods(), client_->services(), &client_->endpoints()));
}

std::vector<metrics::LocalPod> ClientAttribution::localPods() const {
    std::vector<metrics::LocalPod> out;
    for (const auto& p : client_->pods().all())
        if (node_name_.empty() || p.node == node_name_) out.push_back(localPod(p));
    return out;
}

bool ClientAttribution::synced() const { return client_->podStatus().synced; }

}  // namespace netprobe::k8s
