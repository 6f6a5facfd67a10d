#include <netprobe/k8s/policy_publisher.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace netprobe::k8s {

bool RebuildDebounce::due(std::uint64_t generation, Clock::time_point now) {
    if (built_ && *built_ == generation) {
        waiting_ = false;
        return false;
    }
    if (!built_) return true;  // the first set: as soon as the inputs are listed
    if (!waiting_ || generation != seen_) {
        if (!waiting_) first_change_ = now;
        waiting_ = true;
        seen_ = generation;
        last_change_ = now;
    }
    return now - last_change_ >= debounce_ || now - first_change_ >= max_delay_;
}

namespace {

analysis::PolicyDecision decisionOf(Decision d) {
    switch (d) {
        case Decision::NotApplicable: return analysis::PolicyDecision::NotApplicable;
        case Decision::NotSelected: return analysis::PolicyDecision::NotSelected;
        case Decision::Allowed: return analysis::PolicyDecision::Allowed;
        case Decision::Denied: return analysis::PolicyDecision::Denied;
    }
    return analysis::PolicyDecision::NotApplicable;
}

analysis::PolicySide sideOf(SideVerdict s) {
    analysis::PolicySide out;
    out.decision = decisionOf(s.decision);
    out.exempt = s.exemption != Exemption::None;
    out.pod = std::move(s.pod);
    out.policies = std::move(s.policies);
    return out;
}

class Evaluator final : public analysis::PolicyEvaluator {
public:
    Evaluator(std::shared_ptr<const PolicySet> set, analysis::PolicySetInfo info, ClusterIpLookup cluster_ip)
        : set_(std::move(set)), info_(std::move(info)), cluster_ip_(std::move(cluster_ip)) {}
    analysis::PolicyVerdict evaluate(const util::Addr16& client, const util::Addr16& server, std::uint8_t proto,
                                     std::uint16_t port) const override {
        analysis::PolicyVerdict out;
        if (cluster_ip_ && cluster_ip_(server, port, proto)) {
            out.service = true;
            return out;
        }
        auto v = set_->evaluate(client, server, proto, port);
        out.egress = sideOf(std::move(v.egress));
        out.ingress = sideOf(std::move(v.ingress));
        out.allowed = v.allowed;
        return out;
    }
    const analysis::PolicySetInfo& info() const override { return info_; }

private:
    std::shared_ptr<const PolicySet> set_;
    analysis::PolicySetInfo info_;
    ClusterIpLookup cluster_ip_;
};

}  // namespace

std::shared_ptr<const analysis::PolicyEvaluator> makePolicyEvaluator(std::shared_ptr<const PolicySet> set,
                                                                     analysis::PolicySetInfo info,
                                                                     std::size_t max_listed_pods,
                                                                     ClusterIpLookup cluster_ip) {
    const auto sizes = set->sizes();
    info.pods = sizes.pods;
    info.namespaces = sizes.namespaces;
    info.node_addresses = sizes.node_addrs;
    info.policies.clear();
    for (auto& s : set->summaries(max_listed_pods))
        info.policies.push_back(
            analysis::PolicyInfo{std::move(s.ns), std::move(s.name), s.ingress, s.egress, s.selected_pods, std::move(s.pods)});
    return std::make_shared<const Evaluator>(std::move(set), std::move(info), std::move(cluster_ip));
}

std::shared_ptr<const analysis::PolicyEvaluator> buildPolicyEvaluator(
    std::vector<NetworkPolicy> policies, const std::vector<PodInfo>& pods, const std::vector<NamespaceInfo>& namespaces,
    const std::vector<NodeInfo>& nodes, std::vector<std::string> rejected, std::uint64_t generation,
    const PolicyPublisherOptions& options, ClusterIpLookup cluster_ip) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<NodeAddresses> addrs;
    addrs.reserve(nodes.size());
    for (const auto& n : nodes) addrs.push_back(NodeAddresses{n.name, n.addrs});
    auto set = std::make_shared<const PolicySet>(std::move(policies), pods, namespaces, addrs, options.set);
    analysis::PolicySetInfo info;
    info.generation = generation;
    info.built_at = std::chrono::system_clock::now();
    info.build_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    info.rejected = std::move(rejected);
    return makePolicyEvaluator(std::move(set), std::move(info), options.max_listed_pods, std::move(cluster_ip));
}

PolicyPublisher::PolicyPublisher(std::shared_ptr<const Client> client, PolicyPublisherOptions options)
    : client_(std::move(client)), options_(options), debounce_(options.debounce, options.max_delay) {}

std::uint64_t PolicyPublisher::inputGeneration() const {
    std::uint64_t g = client_->pods().generation();
    if (const auto* r = client_->remotePods()) g += r->generation();
    if (const auto* p = client_->networkPolicies()) g += p->generation();
    if (const auto* n = client_->namespaces()) g += n->generation();
    if (const auto* n = client_->nodes()) g += n->generation();
    return g;
}

bool PolicyPublisher::tick(std::chrono::steady_clock::time_point now) {
    if (!client_->policyInputsSynced()) return false;
    const std::uint64_t gen = inputGeneration();  // before reading the stores: a later change is seen next time
    if (!debounce_.due(gen, now)) return false;
    auto pods = client_->pods().all();
    if (const auto* r = client_->remotePods()) {
        auto more = r->all();
        pods.insert(pods.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    auto policies = client_->networkPolicies()->all();
    auto ev = buildPolicyEvaluator(std::move(policies), pods, client_->namespaces()->all(), client_->nodes()->all(),
                                   client_->networkPolicies()->rejected(), ++builds_, options_,
                                   [client = client_](const util::Addr16& a, std::uint16_t port, std::uint8_t proto) {
                                       return client->serviceByClusterIp(a, port, proto).has_value();
                                   });
    debounce_.built(gen);
    const auto& info = ev->info();
    spdlog::debug("k8s: NetworkPolicy set {} built in {:.3f} s: {} policies, {} pods, {} namespaces{}", info.generation,
                  info.build_seconds, info.policies.size(), info.pods, info.namespaces,
                  info.rejected.empty() ? std::string() : ", " + std::to_string(info.rejected.size()) + " unreadable");
    if (builds_ == 1)
        spdlog::info("k8s: NetworkPolicy monitoring: {} policies over {} pods", info.policies.size(), info.pods);
    current_.store(std::move(ev), std::memory_order_release);
    return true;
}

}  // namespace netprobe::k8s
