// The automatic response export (see respond.hpp).
#include <netprobe/metrics/respond.hpp>

#include <map>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/analysis/respond/stage.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/util/ip.hpp>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {
namespace {

namespace respond = analysis::respond;
using nlohmann::json;

json when(respond::WallTime t) { return t == respond::WallTime{} ? json(nullptr) : json(rfc3339(t)); }

json responseJson(const respond::Response& r) {
    json atk = json::array();
    for (const auto& a : r.spec.attackers)
        atk.push_back({{"address", util::formatAddr(a.addr)}, {"is_pod", a.is_pod}, {"event_id", a.event_id},
                       {"expires_at", when(a.expires)}});
    const auto& v = r.verification;
    json flows = json::array();
    for (const auto& f : v.flows)
        flows.push_back({{"client", util::formatAddr(f.client)},
                         {"server", util::formatAddr(f.server)},
                         {"protocol", util::protocolName(f.proto)},
                         {"port", f.port},
                         {"client_pod", f.client_pod},
                         {"server_pod", f.server_pod},
                         {"enforcement", f.enforcement},
                         {"packets_out", f.packets_out},
                         {"packets_in", f.packets_in}});
    json j = {{"name", r.spec.name},
              {"namespace", r.spec.ns},
              {"action", respond::toString(r.spec.action)},
              {"state", r.state},
              {"pod", r.spec.pod},
              {"selector", r.spec.selector},
              {"selected_pods", r.selected_pods},
              {"attackers", atk},
              {"events", r.spec.events},
              {"event_types", r.spec.event_types},
              {"created_at", when(r.spec.created)},
              {"expires_at", when(r.spec.expires)},
              {"applied_at", when(r.applied_at)},
              {"verification",
               {{"state", v.state},
                {"in_policy_set", v.in_policy_set},
                {"policy_generation", v.policy_generation},
                {"denied_conversations", v.denied},
                {"enforced", v.enforced},
                {"gaps", v.gaps},
                {"unanswered", v.unanswered},
                {"pending", v.pending},
                {"flows", flows}}},
              {"manifest", respond::manifest(r.spec)},
              {"yaml", respond::manifestYaml(r.spec)}};
    if (!r.error.empty()) j["error"] = r.error;
    if (!r.note.empty()) j["note"] = r.note;
    if (r.ended_at != respond::WallTime{}) j["ended_at"] = when(r.ended_at);
    return j;
}

}  // namespace

std::string renderResponseMetrics(const respond::ResponseView& v) {
    ExpositionWriter w;
    w.family("netprobe_response_mode", MetricType::Gauge, "Automatic response mode (--respond): 1 for the current one.");
    w.sample("netprobe_response_mode", {{"mode", respond::toString(v.mode)}}, 1.0);
    std::map<std::pair<std::string, std::string>, std::uint64_t> by_state;
    std::map<std::string, std::uint64_t> by_check;
    for (const auto& r : v.active) {
        ++by_state[{std::string(respond::toString(r.spec.action)), r.state}];
        ++by_check[r.verification.state];
    }
    w.family("netprobe_response_policies", MetricType::Gauge,
             "Response NetworkPolicies wanted now, by action (isolate, quarantine) and state (dry_run, pending, "
             "active, failed).");
    for (const char* a : {"isolate", "quarantine"})
        for (const char* s : {"dry_run", "pending", "active", "failed"}) {
            auto it = by_state.find({a, s});
            const bool shown = v.mode == respond::Mode::DryRun ? std::string_view(s) == "dry_run"
                                                               : std::string_view(s) != "dry_run";
            if (shown || it != by_state.end())
                w.sample("netprobe_response_policies", {{"action", a}, {"state", s}},
                         it == by_state.end() ? std::uint64_t{0} : it->second);
        }
    w.family("netprobe_response_verification", MetricType::Gauge,
             "Response policies wanted now by what the traffic shows: not_applied, awaiting_policy_set, no_traffic, "
             "pending, enforced, unanswered, gap (a denied conversation answered: not enforced), unverified.");
    for (const char* s : {"not_applied", "awaiting_policy_set", "no_traffic", "pending", "enforced", "unanswered", "gap",
                          "unverified"}) {
        auto it = by_check.find(s);
        w.sample("netprobe_response_verification", {{"state", s}}, it == by_check.end() ? std::uint64_t{0} : it->second);
    }
    auto counter = [&](const char* name, const char* help, std::uint64_t value) {
        w.family(name, MetricType::Counter, help);
        w.sample(name, {}, value);
    };
    counter("netprobe_response_planned_total", "Response policies planned (a new namespace and selector).", v.responses_total);
    counter("netprobe_response_expired_total", "Response policies ended by their TTL.", v.expired_total);
    counter("netprobe_response_superseded_total", "Isolate policies replaced by a quarantine of the same pods.",
            v.superseded_total);
    counter("netprobe_response_refused_total",
            "Responses not made: the pod is isolated by other policies (a deny cannot be expressed), or the budget.",
            v.refused_total);
    counter("netprobe_response_events_total", "Security events considered (new, or seen again while active).",
            v.events_total);
    if (const auto& a = v.applier) {
        w.family("netprobe_response_api_requests_total", MetricType::Counter,
                 "NetworkPolicy writes that succeeded, by operation.");
        w.sample("netprobe_response_api_requests_total", {{"op", "create"}}, a->creates_total);
        w.sample("netprobe_response_api_requests_total", {{"op", "replace"}}, a->replaces_total);
        w.sample("netprobe_response_api_requests_total", {{"op", "delete"}}, a->deletes_total);
        counter("netprobe_response_api_failures_total", "NetworkPolicy requests that failed (retried).",
                a->failures_total);
        counter("netprobe_response_adopted_total",
                "Response policies a previous run left, kept until their expiry (expired ones are deleted at start).",
                a->adopted_total);
    }
    return w.take();
}

std::string responsesJson(const analysis::Views& views) {
    const auto* v = views.responses.get();
    if (!v) return json{{"enabled", false}}.dump();
    json active = json::array(), ended = json::array(), refused = json::array();
    for (const auto& r : v->active) active.push_back(responseJson(r));
    for (const auto& r : v->ended) ended.push_back(responseJson(r));
    for (const auto& f : v->refused) {
        json atk = json::array();
        for (const auto& a : f.attackers) atk.push_back(util::formatAddr(a));
        refused.push_back({{"at", when(f.at)},
                           {"event_id", f.event_id},
                           {"event_type", analysis::security::toString(f.event_type)},
                           {"action", respond::toString(f.action)},
                           {"pod", f.pod},
                           {"attackers", atk},
                           {"reason", f.reason}});
    }
    json doc = {{"enabled", true},
                {"mode", respond::toString(v->mode)},
                {"ttl_seconds", v->ttl.count()},
                {"policy_monitoring", v->policy_monitoring},
                {"totals",
                 {{"planned", v->responses_total},
                  {"updates", v->updates_total},
                  {"expired", v->expired_total},
                  {"superseded", v->superseded_total},
                  {"refused", v->refused_total},
                  {"events", v->events_total}}},
                {"responses", active},
                {"ended", ended},
                {"refused", refused}};
    if (const auto& a = v->applier)
        doc["applier"] = {{"listed", a->listed},
                          {"creates", a->creates_total},
                          {"replaces", a->replaces_total},
                          {"deletes", a->deletes_total},
                          {"failures", a->failures_total},
                          {"adopted", a->adopted_total},
                          {"last_error", a->last_error}};
    return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace netprobe::metrics
