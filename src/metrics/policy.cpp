// The NetworkPolicy export (see policy.hpp).
#include <netprobe/metrics/policy.hpp>

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/policy.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/util/ip.hpp>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {
namespace {

using analysis::DeniedFlow;
using analysis::PolicySide;
using nlohmann::json;

bool inNamespace(const std::string& id, const std::string& ns) {
    return id.size() > ns.size() && id.compare(0, ns.size(), ns) == 0 && id[ns.size()] == '/';
}

json sideJson(const PolicySide& s) {
    json j = {{"decision", analysis::toString(s.decision)}, {"policies", s.policies}};
    if (s.exempt) j["exempt"] = true;
    return j;
}

json deniedJson(const DeniedFlow& d, const collector::Snapshot& snap) {
    auto when = [&](std::uint64_t ns) { return ns ? json(rfc3339(snap.wallOf(ns))) : json(nullptr); };
    return {{"client", util::formatAddr(d.client)},
            {"server", util::formatAddr(d.server)},
            {"port", d.port},
            {"protocol", util::protocolName(d.proto)},
            {"client_pod", d.client_pod},
            {"server_pod", d.server_pod},
            {"egress", sideJson(d.verdict.egress)},
            {"ingress", sideJson(d.verdict.ingress)},
            {"packets_out", d.packets_out},
            {"packets_in", d.packets_in},
            {"bytes_out", d.bytes_out},
            {"bytes_in", d.bytes_in},
            {"enforcement", analysis::toString(d.enforcement)},
            {"denied_at", when(d.denied_ns)},
            {"last_seen", when(d.last_ns)},
            {"decided_at", when(d.decided_ns)},
            {"generation", d.generation}};
}

json countsJson(const analysis::PolicyCounts& c) { return {{"flows", c.flows}, {"packets", c.packets}}; }

}  // namespace

std::string renderPolicyMetrics(const analysis::PolicyView& v) {
    ExpositionWriter w;
    w.family("netprobe_policy_synced", MetricType::Gauge,
             "1 once a NetworkPolicy set has been built from the API (policies, namespaces, nodes and pods listed).");
    w.sample("netprobe_policy_synced", {}, v.synced ? 1.0 : 0.0);
    if (v.set) {
        const auto& info = v.set->info();
        w.family("netprobe_policy_set_builds_total", MetricType::Counter,
                 "NetworkPolicy sets built (after the inputs changed, debounced).");
        w.sample("netprobe_policy_set_builds_total", {}, info.generation);
        w.family("netprobe_policy_set_build_seconds", MetricType::Gauge, "Time the last set took to build.");
        w.sample("netprobe_policy_set_build_seconds", {}, info.build_seconds);
        w.family("netprobe_policy_set_policies", MetricType::Gauge, "NetworkPolicies in the current set.");
        w.sample("netprobe_policy_set_policies", {}, static_cast<std::uint64_t>(info.policies.size()));
        w.family("netprobe_policy_set_rejected", MetricType::Gauge,
                 "NetworkPolicies of the API the agent could not read (left out of the set; /api/v1/policies says why).");
        w.sample("netprobe_policy_set_rejected", {}, static_cast<std::uint64_t>(info.rejected.size()));
    }
    static constexpr const char* kFlows = "netprobe_policy_flows_total";
    static constexpr const char* kPackets = "netprobe_policy_packets_total";
    for (const char* name : {kFlows, kPackets}) {
        const bool flows = name == kFlows;
        w.family(name, MetricType::Counter,
                 flows ? "Conversations (client, server, port, protocol) by the policy that decided a side of them and "
                         "that side's verdict (policy \"\": no policy selects the pod, or an exemption)."
                       : "Packets (both directions) of those conversations, by policy and verdict.");
        auto emit = [&](const analysis::PolicySeries& s) {
            for (std::size_t i = 0; i < analysis::kPolicyVerdicts.size(); ++i) {
                const auto& c = s.counts[i];
                if (c.flows == 0 && c.packets == 0) continue;
                w.sample(name, {{"namespace", s.ns}, {"policy", s.policy}, {"verdict", analysis::kPolicyVerdicts[i]}},
                         flows ? c.flows : c.packets);
            }
        };
        for (const auto& s : v.series) emit(s);
        emit(v.other);
    }
    w.family("netprobe_policy_enforcement_gaps_total", MetricType::Counter,
             "Denied conversations that carried packets both ways after the verdict: the network did not enforce "
             "the policy.");
    w.sample("netprobe_policy_enforcement_gaps_total", {}, v.gaps_total);
    w.family("netprobe_policy_enforcement_confirmed_total", MetricType::Counter,
             "Denied TCP/SCTP conversations whose client packets went unanswered for the confirmation delay.");
    w.sample("netprobe_policy_enforcement_confirmed_total", {}, v.enforced_total);
    w.family("netprobe_policy_denied_conversations_total", MetricType::Counter,
             "Conversations evaluated as denied (by a new policy set too).");
    w.sample("netprobe_policy_denied_conversations_total", {}, v.denied_total);
    w.family("netprobe_policy_evaluations_total", MetricType::Counter,
             "Policy evaluations: a conversation's first, and its first after each new set (the rest are cached).");
    w.sample("netprobe_policy_evaluations_total", {}, v.evaluations_total);
    w.family("netprobe_policy_conversations", MetricType::Gauge, "Conversations whose verdict the agent keeps.");
    w.sample("netprobe_policy_conversations", {}, static_cast<std::uint64_t>(v.conversations));
    w.family("netprobe_policy_conversations_untracked_total", MetricType::Counter,
             "Conversations not evaluated because the tracked ones reached the limit.");
    w.sample("netprobe_policy_conversations_untracked_total", {}, v.untracked_total);
    return w.take();
}

std::expected<PolicyQuery, std::string> parsePolicyQuery(const std::vector<std::pair<std::string, std::string>>& params) {
    PolicyQuery q;
    for (const auto& [k, v] : params) {
        if (k != "namespace") return std::unexpected("unknown parameter \"" + k + "\" (known: namespace)");
        if (v.empty()) return std::unexpected("invalid value \"\" for parameter \"namespace\": expected a namespace");
        q.ns = v;
    }
    return q;
}

std::string policiesJson(const analysis::Views& views, const PolicyQuery& q) {
    const auto* v = views.policy.get();
    if (!v) return json{{"enabled", false}}.dump();
    const auto& snap = *views.snapshot;
    json doc = {{"enabled", true}, {"synced", v->synced}};
    if (!v->topology) doc["note"] = "no topology stage: nothing is evaluated";
    std::map<std::string, const analysis::PolicyHits*> hits;
    for (const auto& h : v->hits) hits.emplace(h.id, &h);
    json policies = json::array();
    if (v->set) {
        const auto& info = v->set->info();
        doc["set"] = {{"generation", info.generation},
                      {"built_at", rfc3339(info.built_at)},
                      {"build_seconds", info.build_seconds},
                      {"policies", info.policies.size()},
                      {"pods", info.pods},
                      {"namespaces", info.namespaces},
                      {"node_addresses", info.node_addresses}};
        doc["rejected"] = info.rejected;
        for (const auto& p : info.policies) {
            if (!q.ns.empty() && p.ns != q.ns) continue;
            json types = json::array();
            if (p.ingress) types.push_back("Ingress");
            if (p.egress) types.push_back("Egress");
            static const analysis::PolicyHits none{};
            auto it = hits.find(p.ns + "/" + p.name);
            const auto& h = it == hits.end() ? none : *it->second;
            policies.push_back({{"namespace", p.ns},
                                {"name", p.name},
                                {"policy_types", types},
                                {"selected_pods", p.selected_pods},
                                {"pods", p.pods},
                                {"hits", {{"allowed", countsJson(h.allowed)}, {"denied", countsJson(h.denied)}}},
                                {"enforcement_gaps", h.gaps},
                                {"enforcement_confirmed", h.enforced}});
        }
    }
    doc["policies"] = std::move(policies);
    auto keep = [&](const DeniedFlow& d) {
        return q.ns.empty() || inNamespace(d.client_pod, q.ns) || inNamespace(d.server_pod, q.ns);
    };
    json denied = json::array(), gaps = json::array();
    for (const auto& d : v->denied)
        if (keep(d)) denied.push_back(deniedJson(d, snap));
    for (const auto& d : v->gaps)
        if (keep(d)) gaps.push_back(deniedJson(d, snap));
    doc["denied"] = std::move(denied);
    doc["gaps"] = std::move(gaps);
    doc["totals"] = {{"denied_conversations", v->denied_total},
                     {"enforcement_gaps", v->gaps_total},
                     {"enforcement_confirmed", v->enforced_total},
                     {"evaluations", v->evaluations_total},
                     {"conversations", v->conversations},
                     {"untracked", v->untracked_total}};
    return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace netprobe::metrics
