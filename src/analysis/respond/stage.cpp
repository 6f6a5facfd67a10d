#include <netprobe/analysis/respond/stage.hpp>

#include <algorithm>
#include <deque>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include <netprobe/analysis/policy.hpp>
#include <netprobe/analysis/security/stage.hpp>
#include <netprobe/analysis/topology.hpp>

namespace netprobe::analysis::respond {

namespace {

constexpr std::size_t kMaxEventsPerPolicy = 20;
constexpr std::size_t kMaxTrackedConversations = 1000;
constexpr std::chrono::seconds kSelectionRefresh{30};

bool ours(const std::string& id) {
    // "ns/netprobe-isolate-..." or "ns/netprobe-quarantine-..."
    auto slash = id.find('/');
    std::string_view name = slash == std::string::npos ? std::string_view(id) : std::string_view(id).substr(slash + 1);
    return name.starts_with("netprobe-isolate-") || name.starts_with("netprobe-quarantine-");
}

using ConvKey = std::tuple<util::Addr16, util::Addr16, std::uint8_t, std::uint16_t>;

}  // namespace

struct ResponseStage::State {
    ResponseStageOptions o;
    struct Entry {
        PolicySpec spec;
        WallTime until{};  // quarantine: when it ends (isolate: per attacker)
        std::string note;
        std::vector<std::string> selected;
        WallTime selected_at{};
        Verification ver;
        std::map<ConvKey, VerifiedFlow> flows;  // figures as the policy view last showed them
    };
    std::map<std::string, Entry> active;  // "ns/name"
    std::deque<Response> ended;
    std::deque<Refusal> refused;
    std::unordered_map<std::uint64_t, WallTime> seen;  // event id -> last_seen handled
    std::uint64_t responses_total = 0, updates_total = 0, expired_total = 0, superseded_total = 0;
    std::uint64_t refused_total = 0, events_total = 0;

    std::chrono::seconds step() const {
        return std::max<std::chrono::seconds>(std::chrono::seconds(10), o.config.ttl / 10);
    }

    void refuse(WallTime now, const security::SecurityEvent& e, const Request& r, std::string reason) {
        ++refused_total;
        // the same refusal again (an active event re-evaluated): refreshed, not repeated
        for (auto& f : refused)
            if (f.event_id == e.id && f.pod == r.pod && f.action == r.action) {
                f.at = now;
                f.reason = std::move(reason);
                f.attackers = r.attackers;
                return;
            }
        refused.push_front({now, e.id, e.type, r.action, r.pod, r.attackers, std::move(reason)});
        while (refused.size() > o.recent) refused.pop_back();
    }

    void end(const std::string& id, Entry& e, const char* state, WallTime now) {
        Response r;
        r.spec = e.spec;
        r.hash = contentHash(e.spec);
        r.state = state;
        r.ended_at = now;
        r.selected_pods = e.selected;
        r.note = e.note;
        r.verification = e.ver;
        ended.push_front(std::move(r));
        while (ended.size() > o.recent) ended.pop_back();
        active.erase(id);
    }

    // Publishes `spec.expires` from the real expiry, in steps (see contentHash).
    void settleExpiry(Entry& e) {
        WallTime target = e.until;
        if (e.spec.action == Action::Isolate) {
            target = {};
            for (const auto& a : e.spec.attackers) target = std::max(target, a.expires);
        }
        if (target < e.spec.expires || target - e.spec.expires >= step()) e.spec.expires = target;
    }

    void merge(WallTime now, const security::SecurityEvent& ev, const Request& r, const PolicyView* policy) {
        const std::string name = policyName(r.action, r.ns, r.selector);
        const std::string id = r.ns + "/" + name;
        const WallTime until = ev.last_seen + o.config.ttl;
        if (until <= now) return;  // an old event: its response would already have expired

        if (r.action == Action::Isolate) {
            // a quarantine of the same pods is stricter and must stay alone (policies add up)
            const std::string q = r.ns + "/" + policyName(Action::Quarantine, r.ns, r.selector);
            if (active.contains(q)) return;
        }
        std::string note;
        if (r.action == Action::Isolate && !active.contains(id)) {
            if (!policy) {
                note = "not checked against the pod's other NetworkPolicies (NetworkPolicy monitoring is off)";
            } else if (policy->set) {
                // isolated for ingress by a policy of someone else: an allow-all-but rule would widen it
                for (const auto& a : r.attackers) {
                    PolicyVerdict v = policy->set->evaluate(a, r.pod_ip, 6, 0);
                    if (v.ingress.decision != PolicyDecision::Allowed && v.ingress.decision != PolicyDecision::Denied)
                        continue;
                    std::string others;
                    for (const auto& p : v.ingress.policies)
                        if (!ours(p)) others += (others.empty() ? "" : ", ") + p;
                    if (others.empty()) continue;
                    refuse(now, ev, r,
                           "pod " + r.pod + " is already isolated for ingress by " + others +
                               ": NetworkPolicies only allow, so a policy admitting all but the attacker would widen "
                               "what they allow; add the attacker to their rules' ipBlock.except instead");
                    return;
                }
            }
        }
        auto it = active.find(id);
        if (it == active.end()) {
            if (active.size() >= o.config.max_policies) {
                refuse(now, ev, r,
                       "policy budget reached (" + std::to_string(o.config.max_policies) +
                           " responses at once, --respond-max-policies)");
                return;
            }
            Entry e;
            e.spec.action = r.action;
            e.spec.ns = r.ns;
            e.spec.name = name;
            e.spec.selector = r.selector;
            e.spec.pod = r.pod;
            e.spec.node = o.config.node;
            e.spec.created = now;
            e.note = std::move(note);
            it = active.emplace(id, std::move(e)).first;
            ++responses_total;
            if (r.action == Action::Quarantine) {
                const std::string iso = r.ns + "/" + policyName(Action::Isolate, r.ns, r.selector);
                if (auto i = active.find(iso); i != active.end()) {
                    ++superseded_total;
                    end(iso, i->second, "superseded", now);
                }
            }
        } else {
            ++updates_total;
        }
        Entry& e = it->second;
        auto& evs = e.spec.events;
        if (std::find(evs.begin(), evs.end(), ev.id) == evs.end()) {
            evs.push_back(ev.id);
            if (evs.size() > kMaxEventsPerPolicy) evs.erase(evs.begin());
            std::string t = security::toString(ev.type);
            if (("," + e.spec.event_types + ",").find("," + t + ",") == std::string::npos)
                e.spec.event_types += (e.spec.event_types.empty() ? "" : ",") + t;
        }
        e.until = std::max(e.until, until);
        for (std::size_t i = 0; i < r.attackers.size(); ++i) {
            auto& atk = e.spec.attackers;
            auto a = std::find_if(atk.begin(), atk.end(), [&](const Attacker& x) { return x.addr == r.attackers[i]; });
            if (a == atk.end()) {
                atk.push_back({r.attackers[i], r.attacker_is_pod[i], ev.id, until});
            } else {
                a->expires = std::max(a->expires, until);
                a->event_id = ev.id;
                a->is_pod = a->is_pod || r.attacker_is_pod[i];
            }
        }
        auto& atk = e.spec.attackers;
        if (atk.size() > o.config.max_attackers) {  // the ones expiring first leave
            std::sort(atk.begin(), atk.end(), [](const Attacker& a, const Attacker& b) { return a.expires > b.expires; });
            atk.resize(o.config.max_attackers);
        }
        std::sort(atk.begin(), atk.end(), [](const Attacker& a, const Attacker& b) { return a.addr < b.addr; });
        settleExpiry(e);
        e.selected_at = {};  // select again
    }

    void verify(const std::string& id, Entry& e, const PolicyView* policy, const AppliedPolicy* applied) {
        Verification& v = e.ver;
        if (!policy) {
            v.state = applied && applied->exists ? "unverified" : "not_applied";
            return;
        }
        if (!v.in_policy_set && policy->set) {
            for (const auto& p : policy->set->info().policies)
                if (p.ns == e.spec.ns && p.name == e.spec.name) {
                    v.in_policy_set = true;
                    v.policy_generation = policy->set->info().generation;
                    break;
                }
        }
        if (v.in_policy_set) {
            for (const auto& d : policy->denied) {
                if (d.generation < v.policy_generation) continue;
                auto has = [&](const PolicySide& s) {
                    return std::find(s.policies.begin(), s.policies.end(), id) != s.policies.end();
                };
                bool match = e.spec.action == Action::Isolate ? has(d.verdict.ingress)
                                                              : has(d.verdict.ingress) || has(d.verdict.egress);
                if (!match) continue;
                ConvKey k{d.client, d.server, d.proto, d.port};
                if (!e.flows.contains(k) && e.flows.size() >= kMaxTrackedConversations) continue;
                auto& f = e.flows[k];
                f.client = d.client;
                f.server = d.server;
                f.proto = d.proto;
                f.port = d.port;
                f.client_pod = d.client_pod;
                f.server_pod = d.server_pod;
                f.enforcement = std::string(toString(d.enforcement));
                f.packets_out = d.packets_out;
                f.packets_in = d.packets_in;
            }
        }
        v.denied = e.flows.size();
        v.enforced = v.gaps = v.unanswered = v.pending = 0;
        for (const auto& [k, f] : e.flows) {
            if (f.enforcement == "enforced") ++v.enforced;
            else if (f.enforcement == "gap") ++v.gaps;
            else if (f.enforcement == "unanswered") ++v.unanswered;
            else ++v.pending;
        }
        v.flows.clear();
        for (const auto& [k, f] : e.flows) {
            if (v.flows.size() >= o.verified_flows) break;
            v.flows.push_back(f);
        }
        if (!applied || !applied->exists) v.state = "not_applied";
        else if (!v.in_policy_set) v.state = "awaiting_policy_set";
        else if (v.gaps) v.state = "gap";
        else if (v.enforced) v.state = "enforced";
        else if (v.unanswered) v.state = "unanswered";
        else if (v.pending) v.state = "pending";
        else v.state = "no_traffic";
    }
};

ResponseStage::ResponseStage(ResponseStageOptions options) : s_(std::make_unique<State>()) { s_->o = std::move(options); }
ResponseStage::~ResponseStage() = default;

void ResponseStage::run(const collector::Snapshot& snapshot, Views& views) {
    State& s = *s_;
    const WallTime now = snapshot.taken_at;
    const PolicyView* policy = views.policy.get();
    const bool policy_ready = !policy || policy->synced;

    // 1. events: new ones, and known ones seen again (an active event extends its responses)
    if (s.o.security && policy_ready) {
        if (auto sec = s.o.security()) {
            // who opened what, from the topology (built once per run, when an event needs it)
            std::optional<std::set<std::pair<util::Addr16, util::Addr16>>> opened;
            Initiated initiated = [&](const util::Addr16& c, const util::Addr16& srv) {
                if (!views.topology) return false;
                if (!opened) {
                    opened.emplace();
                    for (const auto& cv : views.topology->conversations) opened->emplace(cv->client.ip, cv->server.ip);
                }
                return opened->contains({c, srv});
            };
            std::unordered_map<std::uint64_t, WallTime> still;
            for (auto it = sec->events.rbegin(); it != sec->events.rend(); ++it) {
                const auto& ev = **it;
                auto seen = s.seen.find(ev.id);
                still[ev.id] = ev.last_seen;
                if (seen != s.seen.end() && ev.last_seen <= seen->second) continue;
                ++s.events_total;
                for (const auto& r : planFor(ev, s.o.config, s.o.pods, initiated)) s.merge(now, ev, r, policy);
            }
            s.seen = std::move(still);  // events that left the view are forgotten
        }
    }

    // 2. expiry
    for (auto it = s.active.begin(); it != s.active.end();) {
        auto& e = it->second;
        auto& atk = e.spec.attackers;
        const auto n = atk.size();
        atk.erase(std::remove_if(atk.begin(), atk.end(), [&](const Attacker& a) { return a.expires <= now; }),
                  atk.end());
        const bool over = e.spec.action == Action::Isolate ? atk.empty() : e.until <= now;
        if (over) {
            ++s.expired_total;
            auto id = it->first;
            ++it;
            s.end(id, s.active.at(id), "expired", now);
            continue;
        }
        if (atk.size() != n) s.settleExpiry(e);
        ++it;
    }

    // 3. the applier's state, verification, the view
    auto applier = s.o.applier ? s.o.applier() : nullptr;
    auto view = std::make_shared<ResponseView>();
    view->mode = s.o.config.mode;
    view->ttl = s.o.config.ttl;
    view->policy_monitoring = policy != nullptr;
    view->applier = applier;
    for (auto& [id, e] : s.active) {
        if (s.o.selection && (e.selected_at == WallTime{} || now - e.selected_at >= kSelectionRefresh)) {
            e.selected = s.o.selection(e.spec.ns, e.spec.selector);
            e.selected_at = now;
        }
        const AppliedPolicy* ap = nullptr;
        if (applier)
            if (auto a = applier->policies.find(id); a != applier->policies.end()) ap = &a->second;
        s.verify(id, e, policy, ap);
        Response r;
        r.spec = e.spec;
        r.hash = contentHash(e.spec);
        r.selected_pods = e.selected;
        r.note = e.note;
        r.verification = e.ver;
        if (s.o.config.mode == Mode::DryRun) {
            r.state = "dry_run";
        } else if (ap && ap->exists && ap->hash == r.hash) {
            r.state = "active";
            r.applied_at = ap->applied_at;
        } else if (ap && !ap->error.empty()) {
            r.state = "failed";
            r.error = ap->error;
        } else {
            r.state = "pending";
        }
        view->active.push_back(std::move(r));
    }
    for (auto& r : s.ended) {
        if (!applier || r.state == "deleted") continue;
        auto a = applier->policies.find(r.spec.ns + "/" + r.spec.name);
        if (a != applier->policies.end() && !a->second.exists && a->second.deleted_at >= r.ended_at) r.state = "deleted";
    }
    view->ended.assign(s.ended.begin(), s.ended.end());
    view->refused.assign(s.refused.begin(), s.refused.end());
    view->responses_total = s.responses_total;
    view->updates_total = s.updates_total;
    view->expired_total = s.expired_total;
    view->superseded_total = s.superseded_total;
    view->refused_total = s.refused_total;
    view->events_total = s.events_total;
    views.responses = std::move(view);
}

}  // namespace netprobe::analysis::respond
