// metrics::Attribution over the Kubernetes client's stores: what the agent's metrics
// server uses for the flow fields, /api/v1/pods and the netprobe_pod_* metrics.
#pragma once

#include <memory>
#include <string>

#include <netprobe/k8s/client.hpp>
#include <netprobe/k8s/enrich.hpp>
#include <netprobe/metrics/attribution.hpp>

namespace netprobe::k8s {

// FlowEndpoints of a datapath flow key (addresses as stored, IPv4 IPv4-mapped).
[[nodiscard]] FlowEndpoints endpointsOf(const flow_key& key);
// The API fields of a FlowAttribution (the *_workload_kind fields are not part of them).
[[nodiscard]] metrics::FlowLabels flowLabels(const FlowAttribution& a);
[[nodiscard]] metrics::LocalPod localPod(const PodInfo& pod);

class ClientAttribution final : public metrics::Attribution {
public:
    // node_name: when set, only pods of that node are local (the client's field selector
    // already asks for those; this keeps the invariant when it was not set).
    ClientAttribution(std::shared_ptr<const Client> client, std::string node_name);
    [[nodiscard]] metrics::FlowLabels flow(const flow_key& key) const override;
    [[nodiscard]] std::vector<metrics::LocalPod> localPods() const override;
    [[nodiscard]] bool synced() const override;

private:
    std::shared_ptr<const Client> client_;
    std::string node_name_;
};

}  // namespace netprobe::k8s
