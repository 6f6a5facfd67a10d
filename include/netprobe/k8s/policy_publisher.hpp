// NetworkPolicy monitoring, Kubernetes side: a k8s::PolicySet built from the client's
// stores (policies, namespaces, nodes, local and remote pods) and published as the
// analysis layer's analysis::PolicyEvaluator (analysis/policy.hpp).
//
// Cadence: a background task calls tick() (every 250 ms in the agent). It rebuilds only
// when the stores changed (their generations) and only once every policy input has been
// listed; a burst of changes (a rollout) is debounced: the build waits until the inputs
// have been quiet for `debounce`, or `max_delay` after the first unbuilt change when they
// never are. The new set replaces the old one atomically (current()); nothing in a scrape,
// a lookup or the pipeline ever builds one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <netprobe/analysis/policy.hpp>
#include <netprobe/k8s/client.hpp>
#include <netprobe/k8s/netpol.hpp>

namespace netprobe::k8s {

struct PolicyPublisherOptions {
    std::chrono::milliseconds debounce{1000};
    std::chrono::milliseconds max_delay{5000};
    PolicySetOptions set;
    std::size_t max_listed_pods = 100;  // per policy, in PolicyInfo::pods
};

// When to rebuild (pure, injected time). due(): the inputs' change count now -> build now?
// built(): the build of that generation is done.
class RebuildDebounce {
public:
    using Clock = std::chrono::steady_clock;
    RebuildDebounce(std::chrono::milliseconds debounce, std::chrono::milliseconds max_delay)
        : debounce_(debounce), max_delay_(max_delay) {}
    [[nodiscard]] bool due(std::uint64_t generation, Clock::time_point now);
    void built(std::uint64_t generation) {
        built_ = generation;
        waiting_ = false;
    }

private:
    std::chrono::milliseconds debounce_, max_delay_;
    std::optional<std::uint64_t> built_;  // none yet: the first build is due at once
    std::uint64_t seen_ = 0;
    bool waiting_ = false;
    Clock::time_point first_change_{}, last_change_{};
};

// Whether addr:port/protocol is a Service's ClusterIP (the traffic before DNAT).
using ClusterIpLookup = std::function<bool(const util::Addr16& addr, std::uint16_t port, std::uint8_t protocol)>;

// An analysis::PolicyEvaluator over a PolicySet: verdicts converted, the set's policies
// with their selected pods (PolicySet::summaries), sizes. info.generation and
// info.built_at come from the caller. cluster_ip (may be empty): a server it names gets
// the verdict {service = true} without evaluation.
[[nodiscard]] std::shared_ptr<const analysis::PolicyEvaluator> makePolicyEvaluator(
    std::shared_ptr<const PolicySet> set, analysis::PolicySetInfo info, std::size_t max_listed_pods = 100,
    ClusterIpLookup cluster_ip = {});

// The set of the given inputs (what tick() builds from the stores; pure but for cluster_ip).
[[nodiscard]] std::shared_ptr<const analysis::PolicyEvaluator> buildPolicyEvaluator(
    std::vector<NetworkPolicy> policies, const std::vector<PodInfo>& pods, const std::vector<NamespaceInfo>& namespaces,
    const std::vector<NodeInfo>& nodes, std::vector<std::string> rejected, std::uint64_t generation,
    const PolicyPublisherOptions& options = {}, ClusterIpLookup cluster_ip = {});

class PolicyPublisher {
public:
    // client: started with ClientOptions::watch_network_policies.
    explicit PolicyPublisher(std::shared_ptr<const Client> client, PolicyPublisherOptions options = {});

    // One step of the background task: builds and publishes when due. True when it did.
    bool tick(std::chrono::steady_clock::time_point now);
    // The current set (null until the inputs were listed and a first set built).
    [[nodiscard]] std::shared_ptr<const analysis::PolicyEvaluator> current() const {
        return current_.load(std::memory_order_acquire);
    }
    // The inputs' change count (sum of the stores' generations).
    [[nodiscard]] std::uint64_t inputGeneration() const;

private:
    std::shared_ptr<const Client> client_;
    PolicyPublisherOptions options_;
    RebuildDebounce debounce_;
    std::uint64_t builds_ = 0;
    std::atomic<std::shared_ptr<const analysis::PolicyEvaluator>> current_;
};

}  // namespace netprobe::k8s
