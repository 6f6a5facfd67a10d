// netprobe::analysis::PolicyMonitor - what the cluster's NetworkPolicies say about the
// traffic the agent observes, and whether the network enforces it.
//
// Input: the topology stage's conversations (client -> server:port over a transport, oriented
// by the connection: see topology.hpp) and the current policy set, a PolicyEvaluator that
// the Kubernetes side rebuilds on its own cadence and publishes (k8s::PolicyPublisher; this
// layer only sees the interface). Each conversation is evaluated once per policy-set
// generation: the verdict is kept with the conversation (the cache, keyed by client,
// server, protocol and server port, bounded by max_conversations) and evaluated again only
// when a new set is published. Nothing here blocks or reads the API.
//
// Output (PolicyView), cumulative from the stage's start:
//  - per (namespace, policy, verdict): conversations and packets. A conversation counts for
//    every policy that decided one of its two sides (the client pod's egress, the server
//    pod's ingress), with that side's decision: allowed (the policies allowing it), denied
//    (every policy isolating the pod: none allowed it); a side whose pod no policy selects
//    counts as not_selected for the pod's namespace with policy "", and a side allowed by
//    an exemption (own node, same pod) as allowed with policy "". Ends that are no known
//    pod add nothing. Packets: both directions, counted in the interval they were seen.
//    A conversation counts once per key; a new policy set that changes its keys counts it
//    again under the new ones.
//  - per policy: the same figures, enforcement gaps and confirmations.
//  - denied conversations (the overall verdict: a side denies) and their enforcement:
//      gap       packets both ways after the verdict: the denied traffic reached the server
//                and was answered (a SYN answered by SYN-ACK or RST, a UDP reply), so the
//                network did not enforce the policy;
//      enforced  TCP or SCTP: client packets and no answer for confirm_after since the
//                first one (SYNs without an answer);
//      unanswered  UDP and other transports: one way only for confirm_after (a one-way
//                protocol looks the same, so it confirms nothing);
//      pending   not decided yet.
//    A conversation becomes a gap at most once (an enforced one that gets answered later
//    becomes a gap too: both are then counted).
//  - recent denied conversations (with their current figures) and recent gaps (as detected),
//    each a bounded ring.
//
// Series budget: the first max_series (namespace, policy) pairs seen get their own series;
// the rest are summed into namespace="other",policy="other" (counters never go down; a
// policy no longer in the set frees its pair).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

// ---- the policy set, as the analysis layer sees it ----

enum class PolicyDecision : std::uint8_t {
    NotApplicable,  // this end is not a known pod
    NotSelected,    // no policy of this direction selects the pod: allowed, not isolated
    Allowed,        // isolated, and allowed (by the named policies, or by an exemption)
    Denied,         // isolated, and no rule of the policies isolating it allows the flow
};
[[nodiscard]] std::string_view toString(PolicyDecision d);  // not_applicable, not_selected, allowed, denied

struct PolicySide {
    PolicyDecision decision = PolicyDecision::NotApplicable;
    bool exempt = false;                // allowed because the peer is the pod's node or itself
    std::string pod;                    // "ns/name" ("" when NotApplicable)
    std::vector<std::string> policies;  // "ns/name": Allowed: those allowing; Denied: those isolating
    bool operator==(const PolicySide&) const = default;
};

// A conversation's verdict: the client pod's egress and the server pod's ingress.
struct PolicyVerdict {
    PolicySide egress, ingress;
    bool allowed = true;  // neither side denies
    // The server is a Service's ClusterIP (and port): the traffic seen before kube-proxy's
    // DNAT. Policies apply to the pod behind it (seen after the DNAT, on the server pod's
    // side); not evaluated (both sides NotApplicable).
    bool service = false;
    bool operator==(const PolicyVerdict&) const = default;
};

struct PolicyInfo {
    std::string ns, name;
    bool ingress = false, egress = false;  // policyTypes
    std::size_t selected_pods = 0;
    std::vector<std::string> pods;  // "ns/name", sorted, bounded (selected_pods is the count)
};

struct PolicySetInfo {
    std::uint64_t generation = 0;  // 1 for the first set published, +1 per rebuild
    std::chrono::system_clock::time_point built_at{};
    double build_seconds = 0;
    std::size_t pods = 0, namespaces = 0, node_addresses = 0;
    std::vector<PolicyInfo> policies;   // sorted by namespace, name
    std::vector<std::string> rejected;  // policies in the API the agent could not read (the reason)
};

// An immutable policy set. evaluate() is const and thread-safe; client/server as the
// topology orients them, port the server's.
class PolicyEvaluator {
public:
    virtual ~PolicyEvaluator() = default;
    [[nodiscard]] virtual PolicyVerdict evaluate(const util::Addr16& client, const util::Addr16& server,
                                                 std::uint8_t proto, std::uint16_t port) const = 0;
    [[nodiscard]] virtual const PolicySetInfo& info() const = 0;
};

// The current set (an atomic load); null until one has been built.
using PolicyProvider = std::function<std::shared_ptr<const PolicyEvaluator>()>;

// ---- the view ----

// The verdict labels of the counters, in PolicySeries::counts order.
inline constexpr std::array<std::string_view, 3> kPolicyVerdicts = {"allowed", "denied", "not_selected"};

struct PolicyCounts {
    std::uint64_t flows = 0, packets = 0;
};

struct PolicySeries {
    std::string ns, policy;  // policy "": not_selected, or allowed by an exemption
    std::array<PolicyCounts, kPolicyVerdicts.size()> counts{};
};

struct PolicyHits {
    std::string id;  // "ns/name"
    PolicyCounts allowed, denied;
    std::uint64_t gaps = 0, enforced = 0;  // of the denied conversations it isolated
};

enum class Enforcement : std::uint8_t { Pending, Enforced, Gap, Unanswered };
[[nodiscard]] std::string_view toString(Enforcement e);  // pending, enforced, gap, unanswered

struct DeniedFlow {
    util::Addr16 client{}, server{};
    std::uint8_t family = 4;
    std::uint8_t proto = 6;
    std::uint16_t port = 0;
    std::string client_pod, server_pod;  // "ns/name" or ""
    PolicyVerdict verdict;
    // Since the conversation was denied (client -> server: out; server -> client: in).
    std::uint64_t packets_out = 0, packets_in = 0, bytes_out = 0, bytes_in = 0;
    Enforcement enforcement = Enforcement::Pending;
    std::uint64_t denied_ns = 0;    // monotonic: evaluated as denied
    std::uint64_t last_ns = 0;      // monotonic: last packets
    std::uint64_t decided_ns = 0;   // monotonic: enforcement decided (0: pending)
    std::uint64_t generation = 0;   // of the policy set that denied it
};

// The verdicts of the conversations the stage tracks (its cache), for lookups per flow
// (the flow export's records): immutable, shared between views. Kept by shard, copy on
// write: a run copies only the shards whose conversations it added, re-evaluated to
// another verdict or forgot, and a run that changed nothing publishes the same index.
class ConversationVerdicts {
public:
    struct Key {  // a conversation as the topology orients it
        util::Addr16 client{}, server{};
        std::uint16_t port = 0;  // the server's
        std::uint8_t proto = 0;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& k) const noexcept;
    };
    // Denied: a side denies; None: neither end is a known pod (or the server is a
    // Service's ClusterIP: not evaluated); Allowed: otherwise (allowed or not selected).
    enum class Verdict : std::uint8_t { None, Allowed, Denied };
    static constexpr std::size_t kShards = 256;
    using Shard = std::unordered_map<Key, Verdict, KeyHash>;
    using Shards = std::array<std::shared_ptr<const Shard>, kShards>;  // null: empty

    ConversationVerdicts() = default;
    explicit ConversationVerdicts(Shards shards) : shards_(std::move(shards)) {}
    // The verdict of client -> server:port over proto; nullopt when not tracked (not seen
    // by the stage, no policy set yet, beyond max_conversations, or forgotten).
    [[nodiscard]] std::optional<Verdict> find(const Key& k) const;
    [[nodiscard]] std::size_t size() const;
    [[nodiscard]] static std::size_t shardOf(const Key& k) { return (KeyHash{}(k) >> 24) % kShards; }

private:
    Shards shards_{};
};

struct PolicyView {
    bool topology = true;  // false: no topology stage ran before this one (nothing to evaluate)
    bool synced = false;   // a policy set has been built (set is non-null)
    std::shared_ptr<const PolicyEvaluator> set;
    std::vector<PolicySeries> series;  // with their own series, sorted by (namespace, policy)
    PolicySeries other;                // "other"/"other": the pairs beyond the budget
    std::vector<PolicyHits> hits;      // policies with figures, sorted by id
    std::vector<DeniedFlow> denied;    // recent denied conversations, newest first, current figures
    std::vector<DeniedFlow> gaps;      // recent enforcement gaps, newest first, as detected
    std::uint64_t denied_total = 0;    // conversations evaluated as denied
    std::uint64_t gaps_total = 0, enforced_total = 0;
    std::uint64_t evaluations_total = 0;  // PolicyEvaluator::evaluate calls (cache misses)
    std::size_t conversations = 0;        // tracked (the verdict cache)
    std::uint64_t untracked_total = 0;    // conversations not tracked: max_conversations reached
    // Per conversation, the verdict under the set that last evaluated it (null before the
    // first set).
    std::shared_ptr<const ConversationVerdicts> verdicts;
};

struct PolicyMonitorOptions {
    PolicyProvider policies;
    std::size_t max_series = 200;          // (namespace, policy) pairs with their own series
    std::size_t max_conversations = 50000; // conversations tracked (verdict cache)
    std::size_t recent = 100;              // denied conversations and gaps listed
    std::chrono::seconds confirm_after{5}; // one-way traffic this long decides enforced / unanswered
};

// The (namespace, policy, verdict index into kPolicyVerdicts) keys a verdict counts under
// (see above), without duplicates, sorted. Pure.
struct PolicyKey {
    std::string ns, policy;
    std::uint8_t verdict = 0;
    auto operator<=>(const PolicyKey&) const = default;
};
[[nodiscard]] std::vector<PolicyKey> policyKeys(const PolicyVerdict& v);

class PolicyMonitor final : public Stage {
public:
    explicit PolicyMonitor(PolicyMonitorOptions options);
    ~PolicyMonitor() override;
    [[nodiscard]] std::string_view name() const override { return "policy"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace netprobe::analysis
