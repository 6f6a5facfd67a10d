// The NetworkPolicy stage (see policy.hpp).
#include <netprobe/analysis/policy.hpp>

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include <netprobe/analysis/topology.hpp>

namespace netprobe::analysis {

std::string_view toString(PolicyDecision d) {
    switch (d) {
        case PolicyDecision::NotApplicable: return "not_applicable";
        case PolicyDecision::NotSelected: return "not_selected";
        case PolicyDecision::Allowed: return "allowed";
        case PolicyDecision::Denied: return "denied";
    }
    return "not_applicable";
}

std::string_view toString(Enforcement e) {
    switch (e) {
        case Enforcement::Pending: return "pending";
        case Enforcement::Enforced: return "enforced";
        case Enforcement::Gap: return "gap";
        case Enforcement::Unanswered: return "unanswered";
    }
    return "pending";
}

namespace {

constexpr std::uint8_t kAllowed = 0, kDenied = 1, kNotSelected = 2;  // kPolicyVerdicts indexes

// "ns/name" -> ns ("" without a slash).
std::string nsOf(std::string_view id) {
    const auto slash = id.find('/');
    return slash == std::string_view::npos ? std::string() : std::string(id.substr(0, slash));
}
std::string nameOf(std::string_view id) {
    const auto slash = id.find('/');
    return std::string(slash == std::string_view::npos ? id : id.substr(slash + 1));
}

// A conversation as the topology keys it.
struct Key {
    util::Addr16 client{}, server{};
    std::uint16_t port = 0;
    std::uint8_t proto = 0;
    auto operator<=>(const Key&) const = default;
    bool operator==(const Key&) const = default;
};
struct KeyHash {  // the published index's hash, one definition
    std::size_t operator()(const Key& k) const noexcept {
        return ConversationVerdicts::KeyHash{}({k.client, k.server, k.port, k.proto});
    }
};

bool hasHandshake(std::uint8_t proto) { return proto == 6 || proto == 132; }  // TCP, SCTP: answers are expected

// A verdict and what it counts under (shared by the conversation until the next set).
struct Outcome {
    PolicyVerdict verdict;
    std::vector<PolicyKey> keys;
    std::vector<std::string> denying;  // the policies of the denying side(s) ("ns/name")
};

}  // namespace

std::size_t ConversationVerdicts::KeyHash::operator()(const Key& k) const noexcept {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a
    auto mix = [&](const std::uint8_t* p, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    };
    mix(k.client.data(), 16);
    mix(k.server.data(), 16);
    const std::uint8_t tail[3] = {static_cast<std::uint8_t>(k.port), static_cast<std::uint8_t>(k.port >> 8), k.proto};
    mix(tail, sizeof tail);
    return static_cast<std::size_t>(h ^ (h >> 29));
}

std::optional<ConversationVerdicts::Verdict> ConversationVerdicts::find(const Key& k) const {
    const auto& shard = shards_[shardOf(k)];
    if (!shard) return std::nullopt;
    auto it = shard->find(k);
    if (it == shard->end()) return std::nullopt;
    return it->second;
}

std::size_t ConversationVerdicts::size() const {
    std::size_t n = 0;
    for (const auto& s : shards_) n += s ? s->size() : 0;
    return n;
}

std::vector<PolicyKey> policyKeys(const PolicyVerdict& v) {
    std::vector<PolicyKey> out;
    for (const PolicySide* s : {&v.egress, &v.ingress}) {
        switch (s->decision) {
            case PolicyDecision::NotApplicable:
                break;
            case PolicyDecision::NotSelected:
                out.push_back({nsOf(s->pod), "", kNotSelected});
                break;
            case PolicyDecision::Allowed:
                if (s->policies.empty()) out.push_back({nsOf(s->pod), "", kAllowed});
                for (const auto& p : s->policies) out.push_back({nsOf(p), nameOf(p), kAllowed});
                break;
            case PolicyDecision::Denied:
                for (const auto& p : s->policies) out.push_back({nsOf(p), nameOf(p), kDenied});
                break;
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

struct PolicyMonitor::State {
    PolicyMonitorOptions opts;

    struct Conv {
        std::uint64_t generation = 0;            // of the outcome's set (0: not evaluated)
        std::shared_ptr<const Outcome> outcome;
        // The topology slot figures already counted: slot id and its figures then.
        std::int64_t slot = std::numeric_limits<std::int64_t>::min();
        std::uint64_t slot_out_p = 0, slot_in_p = 0, slot_out_b = 0, slot_in_b = 0;
        std::uint64_t last_ns = 0;
        std::uint8_t family = 4;
        std::unique_ptr<DeniedFlow> denied;  // while the verdict denies it
        std::uint64_t first_out_ns = 0;      // first client packets since denied (0: none yet)
    };
    std::unordered_map<Key, Conv, KeyHash> convs;
    std::set<Key> pending;              // denied conversations whose enforcement is undecided
    std::deque<Key> recent_denied;      // newest first
    std::deque<DeniedFlow> recent_gaps; // newest first

    using Counts = std::array<PolicyCounts, kPolicyVerdicts.size()>;
    std::map<std::pair<std::string, std::string>, Counts> series;  // own series
    Counts other{};
    std::map<std::string, PolicyHits> hits;  // by policy id

    // The verdicts for per-flow lookups: the stage's shards (copied before a write while a
    // published index shares them) and the last index published.
    std::array<std::shared_ptr<ConversationVerdicts::Shard>, ConversationVerdicts::kShards> verdict_shards;
    std::shared_ptr<const ConversationVerdicts> verdicts;
    bool verdicts_changed = true;

    std::uint64_t generation = 0;  // of the last set seen
    std::uint64_t run = 0;
    std::uint64_t denied_total = 0, gaps_total = 0, enforced_total = 0, evaluations = 0, untracked = 0;

    Counts& countsOf(const PolicyKey& k) {
        auto pair = std::make_pair(k.ns, k.policy);
        if (auto it = series.find(pair); it != series.end()) return it->second;
        if (series.size() >= opts.max_series) return other;
        return series.emplace(std::move(pair), Counts{}).first->second;
    }

    // The conversation's verdict in the lookup index (nullopt: removed); a write only when it changes.
    void setVerdict(const Key& k, std::optional<ConversationVerdicts::Verdict> v) {
        const ConversationVerdicts::Key ck{k.client, k.server, k.port, k.proto};
        auto& shard = verdict_shards[ConversationVerdicts::shardOf(ck)];
        if (shard) {
            auto it = shard->find(ck);
            if (v ? (it != shard->end() && it->second == *v) : it == shard->end()) return;
        } else if (!v) {
            return;
        }
        if (!shard)
            shard = std::make_shared<ConversationVerdicts::Shard>();
        else if (shard.use_count() > 1)  // a published index holds it: copy on write
            shard = std::make_shared<ConversationVerdicts::Shard>(*shard);
        if (v)
            (*shard)[ck] = *v;
        else
            shard->erase(ck);
        verdicts_changed = true;
    }

    std::shared_ptr<const ConversationVerdicts> publishVerdicts() {
        if (verdicts_changed || !verdicts) {
            ConversationVerdicts::Shards shards;
            for (std::size_t i = 0; i < shards.size(); ++i) shards[i] = verdict_shards[i];
            verdicts = std::make_shared<const ConversationVerdicts>(std::move(shards));
            verdicts_changed = false;
        }
        return verdicts;
    }

    static ConversationVerdicts::Verdict verdictOf(const PolicyVerdict& v) {
        if (!v.allowed) return ConversationVerdicts::Verdict::Denied;
        if (v.egress.decision == PolicyDecision::NotApplicable && v.ingress.decision == PolicyDecision::NotApplicable)
            return ConversationVerdicts::Verdict::None;
        return ConversationVerdicts::Verdict::Allowed;
    }

    PolicyHits& hitsOf(const std::string& id) {
        auto it = hits.find(id);
        if (it == hits.end()) it = hits.emplace(id, PolicyHits{.id = id}).first;
        return it->second;
    }

    // A new set: forget the series pairs and per-policy figures of policies it no longer has.
    void newSet(const PolicySetInfo& info) {
        std::set<std::string> ids;
        for (const auto& p : info.policies) ids.insert(p.ns + "/" + p.name);
        std::erase_if(series, [&](const auto& e) {
            return !e.first.second.empty() && !ids.contains(e.first.first + "/" + e.first.second);
        });
        std::erase_if(hits, [&](const auto& e) { return !ids.contains(e.first); });
        generation = info.generation;
    }

    std::shared_ptr<const Outcome> evaluate(const Key& k, const PolicyEvaluator& set) {
        ++evaluations;
        auto o = std::make_shared<Outcome>();
        o->verdict = set.evaluate(k.client, k.server, k.proto, k.port);
        o->keys = policyKeys(o->verdict);
        for (const PolicySide* s : {&o->verdict.egress, &o->verdict.ingress})
            if (s->decision == PolicyDecision::Denied)
                o->denying.insert(o->denying.end(), s->policies.begin(), s->policies.end());
        std::sort(o->denying.begin(), o->denying.end());
        o->denying.erase(std::unique(o->denying.begin(), o->denying.end()), o->denying.end());
        return o;
    }

    void pushRecent(const Key& k) {
        std::erase(recent_denied, k);
        recent_denied.push_front(k);
        while (recent_denied.size() > opts.recent) recent_denied.pop_back();
    }

    // (Re)evaluates c under set when its outcome is from another generation; counts the
    // conversation under the keys it did not count under before.
    void refresh(const Key& k, Conv& c, const PolicyEvaluator& set, std::uint64_t now_ns) {
        const auto gen = set.info().generation;
        if (c.generation == gen && c.outcome) return;
        auto o = evaluate(k, set);
        const auto* old = c.outcome.get();
        for (const auto& key : o->keys) {
            if (old && std::binary_search(old->keys.begin(), old->keys.end(), key)) continue;
            ++countsOf(key)[key.verdict].flows;
            if (!key.policy.empty()) {
                auto& h = hitsOf(key.ns + "/" + key.policy);
                ++(key.verdict == kDenied ? h.denied : h.allowed).flows;
            }
        }
        const bool was_denied = old && !old->verdict.allowed;
        c.outcome = std::move(o);
        c.generation = gen;
        setVerdict(k, verdictOf(c.outcome->verdict));
        if (c.outcome->verdict.allowed) {
            if (c.denied) std::erase(recent_denied, k);
            c.denied.reset();
            pending.erase(k);
            return;
        }
        if (was_denied && c.denied) {  // still denied (maybe by other policies): keep its figures
            c.denied->verdict = c.outcome->verdict;
            c.denied->generation = gen;
            return;
        }
        ++denied_total;
        c.denied = std::make_unique<DeniedFlow>();
        auto& d = *c.denied;
        d.client = k.client;
        d.server = k.server;
        d.family = c.family;
        d.proto = k.proto;
        d.port = k.port;
        d.client_pod = c.outcome->verdict.egress.pod;
        d.server_pod = c.outcome->verdict.ingress.pod;
        d.verdict = c.outcome->verdict;
        d.denied_ns = now_ns;
        d.generation = gen;
        c.first_out_ns = 0;
        pending.insert(k);
        pushRecent(k);
    }

    // Enforcement of a denied conversation from its figures since the verdict.
    void classify(const Key& k, Conv& c, std::uint64_t now_ns) {
        if (!c.denied) return;
        auto& d = *c.denied;
        if (d.enforcement == Enforcement::Gap) return;
        auto count = [&](bool gap) {
            for (const auto& id : c.outcome->denying) ++(gap ? hitsOf(id).gaps : hitsOf(id).enforced);
        };
        if (d.packets_out > 0 && d.packets_in > 0) {
            d.enforcement = Enforcement::Gap;
            d.decided_ns = now_ns;
            ++gaps_total;
            count(true);
            pending.erase(k);
            recent_gaps.push_front(d);
            while (recent_gaps.size() > opts.recent) recent_gaps.pop_back();
            return;
        }
        if (d.enforcement != Enforcement::Pending || d.packets_out == 0 || d.packets_in > 0 || c.first_out_ns == 0)
            return;
        const auto confirm = static_cast<std::uint64_t>(std::chrono::nanoseconds(opts.confirm_after).count());
        if (now_ns < c.first_out_ns + confirm) return;
        d.decided_ns = now_ns;
        if (hasHandshake(k.proto)) {
            d.enforcement = Enforcement::Enforced;
            ++enforced_total;
            count(false);
        } else {
            d.enforcement = Enforcement::Unanswered;
        }
        pending.erase(k);
    }
};

PolicyMonitor::PolicyMonitor(PolicyMonitorOptions options) : s_(std::make_unique<State>()) {
    s_->opts = std::move(options);
    if (s_->opts.max_conversations == 0) s_->opts.max_conversations = 1;
}

PolicyMonitor::~PolicyMonitor() = default;

void PolicyMonitor::run(const collector::Snapshot& /*snapshot*/, Views& views) {
    State& s = *s_;
    ++s.run;
    auto v = std::make_shared<PolicyView>();
    const auto* topo = views.topology.get();
    auto set = s.opts.policies ? s.opts.policies() : nullptr;
    v->topology = topo != nullptr;
    v->synced = set != nullptr;
    v->set = set;

    if (topo && set) {
        const std::uint64_t now_ns = topo->now_ns;
        if (set->info().generation != s.generation) s.newSet(set->info());
        for (const auto& cp : topo->conversations) {
            const Conversation& conv = *cp;
            if (conv.last_seen_ns != now_ns || conv.slots.empty()) continue;  // nothing new this collection
            const Key k{conv.client.ip, conv.server.ip, conv.port, conv.ip_proto};
            auto it = s.convs.find(k);
            if (it == s.convs.end()) {
                if (s.convs.size() >= s.opts.max_conversations) {
                    ++s.untracked;
                    continue;
                }
                it = s.convs.emplace(k, State::Conv{}).first;
                it->second.family = conv.client.family;
            }
            auto& c = it->second;
            // The figures since the last count: slots after the one counted, plus what the
            // counted slot gained (only the newest slot grows; a reoriented conversation
            // may add to older ones: ignored, never negative).
            std::uint64_t out_p = 0, in_p = 0, out_b = 0, in_b = 0;
            auto plus = [](std::uint64_t now, std::uint64_t before) { return now > before ? now - before : 0; };
            for (const auto& sl : conv.slots) {
                if (sl.id < c.slot) continue;
                if (sl.id == c.slot) {
                    out_p += plus(sl.packets_out, c.slot_out_p);
                    in_p += plus(sl.packets_in, c.slot_in_p);
                    out_b += plus(sl.bytes_out, c.slot_out_b);
                    in_b += plus(sl.bytes_in, c.slot_in_b);
                } else {
                    out_p += sl.packets_out;
                    in_p += sl.packets_in;
                    out_b += sl.bytes_out;
                    in_b += sl.bytes_in;
                }
            }
            const auto& last = conv.slots.back();
            c.slot = last.id;
            c.slot_out_p = last.packets_out;
            c.slot_in_p = last.packets_in;
            c.slot_out_b = last.bytes_out;
            c.slot_in_b = last.bytes_in;
            c.last_ns = now_ns;

            s.refresh(k, c, *set, now_ns);
            const std::uint64_t packets = out_p + in_p;
            if (packets > 0) {
                for (const auto& key : c.outcome->keys) {
                    s.countsOf(key)[key.verdict].packets += packets;
                    if (!key.policy.empty()) {
                        auto& h = s.hitsOf(key.ns + "/" + key.policy);
                        (key.verdict == kDenied ? h.denied : h.allowed).packets += packets;
                    }
                }
            }
            if (c.denied) {
                auto& d = *c.denied;
                d.packets_out += out_p;
                d.packets_in += in_p;
                d.bytes_out += out_b;
                d.bytes_in += in_b;
                if (packets > 0) d.last_ns = now_ns;
                if (out_p > 0 && c.first_out_ns == 0) c.first_out_ns = now_ns;
                s.classify(k, c, now_ns);
            }
        }
        // Denied conversations gone quiet: one-way traffic is decided by time.
        for (auto it = s.pending.begin(); it != s.pending.end();) {
            const Key k = *it++;
            auto c = s.convs.find(k);
            if (c == s.convs.end() || !c->second.denied) {
                s.pending.erase(k);
                continue;
            }
            if (c->second.generation != set->info().generation) {
                s.refresh(k, c->second, *set, now_ns);
                if (!c->second.denied) continue;
            }
            s.classify(k, c->second, now_ns);
        }
        // Forget conversations the topology window no longer holds.
        const std::uint64_t window_ns =
            static_cast<std::uint64_t>(std::chrono::nanoseconds(topo->slot).count()) * topo->slots;
        if (s.run % 12 == 0) {
            std::erase_if(s.convs, [&](const auto& e) {
                if (e.second.last_ns + window_ns >= now_ns) return false;
                s.pending.erase(e.first);
                s.setVerdict(e.first, std::nullopt);
                return true;
            });
            std::erase_if(s.recent_denied, [&](const Key& k) { return !s.convs.contains(k); });
        }
    }

    v->series.reserve(s.series.size());
    for (const auto& [pair, counts] : s.series) v->series.push_back(PolicySeries{pair.first, pair.second, counts});
    v->other = PolicySeries{"other", "other", s.other};
    v->hits.reserve(s.hits.size());
    for (const auto& [id, h] : s.hits) v->hits.push_back(h);
    for (const auto& k : s.recent_denied) {
        auto it = s.convs.find(k);
        if (it != s.convs.end() && it->second.denied) v->denied.push_back(*it->second.denied);
    }
    v->gaps.assign(s.recent_gaps.begin(), s.recent_gaps.end());
    v->denied_total = s.denied_total;
    v->gaps_total = s.gaps_total;
    v->enforced_total = s.enforced_total;
    v->evaluations_total = s.evaluations;
    v->conversations = s.convs.size();
    v->untracked_total = s.untracked;
    if (set) v->verdicts = s.publishVerdicts();
    views.policy = std::move(v);
}

}  // namespace netprobe::analysis
