#include <netprobe/analysis/anomaly/stage.hpp>

#include <algorithm>
#include <cmath>
#include <deque>

#include <netprobe/analysis/series.hpp>

namespace netprobe::analysis::anomaly {
namespace {

constexpr std::string_view kSeriesPrefix = "anomaly/series/";
constexpr std::string_view kProfilePrefix = "anomaly/profile/";

std::string fmt(double v) {
    char buf[48];
    const double a = std::fabs(v);
    if (a != 0 && (a >= 1e6 || a < 1e-3))
        std::snprintf(buf, sizeof buf, "%.3g", v);
    else
        std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

}  // namespace

std::string scopeOf(std::string_view key) {
    if (key.starts_with("iface/")) return "interface";
    if (key.starts_with("edge/")) return "edge";
    if (key.starts_with("service/")) return "service";
    return "node";
}

struct AnomalyStage::State {
    StageOptions opts;
    std::map<std::string, SeriesDetector, std::less<>> series;
    struct Profile {
        BehaviourProfile p;
        std::uint64_t last_interval = 0;
    };
    std::map<std::string, Profile, std::less<>> profiles;
    std::map<std::string, std::uint64_t, std::less<>> open;  // subject -> id of its open metric event
    std::map<std::string, std::uint32_t, std::less<>> streak;  // subject -> consecutive anomalous intervals
    std::deque<AnomalyEvent> events;                         // newest first
    std::map<std::string, std::uint64_t> events_total;       // by scope
    std::uint64_t next_id = 1, seen_intervals = 0, intervals = 0;
    std::uint64_t series_not_modelled = 0, profiles_not_modelled = 0, restored = 0, rejected = 0;
    std::shared_ptr<const AnomalyView> last = std::make_shared<AnomalyView>();

    std::shared_ptr<const std::map<std::string, std::string>> serialize() const {
        auto st = std::make_shared<std::map<std::string, std::string>>();
        for (const auto& [key, d] : series) st->emplace(std::string(kSeriesPrefix) + key, d.serialize());
        for (const auto& [key, p] : profiles) st->emplace(std::string(kProfilePrefix) + key, p.p.serialize());
        return st;
    }
    AnomalyEvent* find(std::uint64_t id) {
        for (auto& e : events)
            if (e.id == id) return &e;
        return nullptr;
    }
    void push(AnomalyEvent e) {
        ++events_total[e.scope];
        events.push_front(std::move(e));
        while (events.size() > opts.max_events) events.pop_back();
    }
};

AnomalyStage::AnomalyStage(StageOptions options, std::map<std::string, std::string> state)
    : s_(std::make_unique<State>()) {
    s_->opts = std::move(options);
    for (auto& [key, text] : state) {
        if (key.starts_with(kSeriesPrefix)) {
            auto d = SeriesDetector::deserialize(text);
            // a model of other options (the learning period changed) starts afresh
            if (d && d->options() == SeriesDetector(s_->opts.series).options() && s_->series.size() < s_->opts.max_series) {
                s_->series.emplace(key.substr(kSeriesPrefix.size()), std::move(*d));
                ++s_->restored;
            } else {
                ++s_->rejected;
            }
        } else if (key.starts_with(kProfilePrefix)) {
            auto p = BehaviourProfile::deserialize(text);
            if (p && p->options() == BehaviourProfile(s_->opts.behaviour).options() &&
                s_->profiles.size() < s_->opts.max_profiles) {
                s_->profiles.emplace(key.substr(kProfilePrefix.size()), State::Profile{std::move(*p), 0});
                ++s_->restored;
            } else {
                ++s_->rejected;
            }
        }
    }
    // what was restored shows from the first collection on
    auto v = std::make_shared<AnomalyView>();
    v->state_restored = s_->restored;
    v->state_rejected = s_->rejected;
    s_->last = std::move(v);
}

AnomalyStage::~AnomalyStage() = default;

void AnomalyStage::run(const collector::Snapshot&, Views& views) {
    State& s = *s_;
    const auto* sv = views.series.get();
    if (!sv || sv->intervals == 0 || sv->intervals == s.seen_intervals) {
        views.anomaly = s.last;
        return;
    }
    s.seen_intervals = sv->intervals;
    ++s.intervals;
    const std::int64_t when = sv->start_unix;

    // Metrics: one detector per series key.
    std::map<std::string, ScopeStats> scopes;
    std::map<std::string, double> rate_sum;
    for (const auto& p : sv->points) {
        if (p.key.ends_with("_usage")) continue;  // fill levels: the forecasts' trends
        auto it = s.series.find(p.key);
        if (it == s.series.end()) {
            if (s.series.size() >= s.opts.max_series) {
                ++s.series_not_modelled;
                continue;
            }
            it = s.series.emplace(p.key, SeriesDetector(s.opts.series)).first;
        }
        const Verdict v = it->second.observe(p.value);
        const std::string scope = scopeOf(p.key);
        auto& st = scopes[scope];
        if (v.learning) ++st.learning;
        if (v.anomalous) ++st.anomalous;
        auto open = s.open.find(p.key);
        std::uint32_t& streak = s.streak[p.key];
        streak = v.anomalous ? streak + 1 : 0;
        if (streak == 0) s.streak.erase(p.key);
        if (v.anomalous && (open != s.open.end() || streak >= s.opts.confirm)) {
            AnomalyEvent* e = open != s.open.end() ? s.find(open->second) : nullptr;
            AnomalyFeature f{p.key.substr(p.key.rfind('/') + 1), v.observed, v.expected_lo, v.expected_hi, v.score,
                             fmt(v.expected_lo) + " - " + fmt(v.expected_hi), {}};
            if (e) {
                e->last_unix = when;
                ++e->intervals;
                e->score = std::max(e->score, v.score);
                e->features = {f};
            } else {
                AnomalyEvent n;
                n.id = s.next_id++;
                n.kind = "metric";
                n.scope = scope;
                n.subject = p.key;
                n.score = v.score;
                n.first_unix = n.last_unix = when;
                n.summary = p.key + ": observed " + fmt(v.observed) + ", expected " + fmt(v.expected_lo) + " - " +
                            fmt(v.expected_hi);
                n.features = {f};
                s.open[p.key] = n.id;
                s.push(std::move(n));
            }
        } else if (!v.anomalous && open != s.open.end()) {
            if (AnomalyEvent* e = s.find(open->second)) e->open = false;
            s.open.erase(open);
        }
    }
    // Series without a point this interval end their open events.
    for (auto it = s.open.begin(); it != s.open.end();) {
        if (!std::binary_search(sv->points.begin(), sv->points.end(), SeriesPoint{it->first, 0},
                                [](const SeriesPoint& a, const SeriesPoint& b) { return a.key < b.key; })) {
            if (AnomalyEvent* e = s.find(it->second)) e->open = false;
            s.streak.erase(it->first);
            it = s.open.erase(it);
        } else {
            ++it;
        }
    }
    std::erase_if(s.streak, [&](const auto& e) {
        return !std::binary_search(sv->points.begin(), sv->points.end(), SeriesPoint{e.first, 0},
                                   [](const SeriesPoint& a, const SeriesPoint& b) { return a.key < b.key; });
    });
    // An interface's series has a point every interval while the interface exists (0 when
    // quiet): without one it was deleted, and its detector goes (interfaces come and go
    // with pods: kept, they would fill max_series and memory).
    std::erase_if(s.series, [&](const auto& e) {
        return e.first.starts_with("iface/") &&
               !std::binary_search(sv->points.begin(), sv->points.end(), SeriesPoint{e.first, 0},
                                   [](const SeriesPoint& a, const SeriesPoint& b) { return a.key < b.key; });
    });
    std::size_t memory = 0;
    for (const auto& [key, d] : s.series) {
        auto& st = scopes[scopeOf(key)];
        ++st.series;
        rate_sum[scopeOf(key)] += d.anomalyRate();
        memory += d.memoryBytes();
    }

    // Behaviour: one profile per entity.
    auto& ent = scopes["entity"];
    for (const auto& b : sv->behaviour) {
        auto it = s.profiles.find(b.entity);
        if (it == s.profiles.end()) {
            if (s.profiles.size() >= s.opts.max_profiles) {
                ++s.profiles_not_modelled;
                continue;
            }
            it = s.profiles.emplace(b.entity, State::Profile{BehaviourProfile(s.opts.behaviour), 0}).first;
        }
        it->second.last_interval = s.intervals;
        const Deviation d = it->second.p.evaluate(b.sample);
        if (d.learning) ++ent.learning;
        if (d.learning || d.features.empty()) continue;
        ++ent.anomalous;
        AnomalyEvent n;
        n.id = s.next_id++;
        n.kind = "behaviour";
        n.scope = "entity";
        n.subject = b.entity;
        n.score = d.score;
        n.first_unix = n.last_unix = when;
        n.open = false;  // one interval's deviation
        std::string what;
        for (const auto& f : d.features) {
            n.features.push_back({f.feature, f.observed, f.expected_lo, f.expected_hi, f.score, f.baseline, f.examples});
            if (!what.empty()) what += "; ";
            what += f.feature + " " + fmt(f.observed) + " (baseline " + f.baseline + ")";
            if (!f.examples.empty()) {
                what += ": ";
                for (std::size_t i = 0; i < f.examples.size(); ++i) what += (i ? ", " : "") + f.examples[i];
            }
        }
        n.summary = b.entity + " behaves unlike its baseline: " + what;
        s.push(std::move(n));
    }
    std::erase_if(s.profiles, [&](const auto& e) {
        return e.second.last_interval && s.intervals - e.second.last_interval > s.opts.profile_ttl;
    });
    for (const auto& [_, p] : s.profiles) memory += p.p.memoryBytes();
    ent.series = s.profiles.size();
    for (auto& [scope, st] : scopes) {
        if (scope != "entity" && st.series) st.anomaly_rate = rate_sum[scope] / static_cast<double>(st.series);
        if (scope == "entity" && !sv->behaviour.empty())
            st.anomaly_rate = static_cast<double>(st.anomalous) / static_cast<double>(sv->behaviour.size());
    }
    for (const auto& [scope, n] : s.events_total) scopes[scope].events_total = n;

    auto v = std::make_shared<AnomalyView>();
    v->updated_unix = when;
    v->events.assign(s.events.begin(), s.events.end());
    v->scopes = std::move(scopes);
    v->series_not_modelled = s.series_not_modelled;
    v->profiles_not_modelled = s.profiles_not_modelled;
    v->state_restored = s.restored;
    v->state_rejected = s.rejected;
    v->memory_bytes = memory;
    if (s.opts.state_every && s.intervals % s.opts.state_every == 0) v->state = s.serialize();
    s.last = v;
    views.anomaly = std::move(v);
}

void AnomalyStage::finish(const collector::Snapshot&, Views& views) {
    auto v = std::make_shared<AnomalyView>(*s_->last);
    v->state = s_->serialize();
    s_->last = v;
    views.anomaly = std::move(v);
}

}  // namespace netprobe::analysis::anomaly
