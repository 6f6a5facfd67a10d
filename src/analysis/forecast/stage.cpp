#include <netprobe/analysis/forecast/stage.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

#include <netprobe/analysis/series.hpp>
#include <netprobe/collector/snapshot.hpp>

namespace netprobe::analysis::forecast {
namespace {

bool endsWith(std::string_view s, std::string_view t) { return s.size() >= t.size() && s.substr(s.size() - t.size()) == t; }

std::string ifaceOf(std::string_view key) {  // "iface/<name>/rx_bytes_rate" -> name
    const auto a = key.find('/');
    const auto b = key.rfind('/');
    return a == std::string_view::npos || b <= a ? std::string() : std::string(key.substr(a + 1, b - a - 1));
}

std::string humanDuration(double s) {
    char buf[64];
    if (s < 3600)
        std::snprintf(buf, sizeof buf, "%.0f minutes", s / 60);
    else if (s < 2 * 86400)
        std::snprintf(buf, sizeof buf, "%.1f hours", s / 3600);
    else
        std::snprintf(buf, sizeof buf, "%.1f days", s / 86400);
    return buf;
}

}  // namespace

bool isForecastSeries(std::string_view key) {
    return (key.starts_with("iface/") && (endsWith(key, "/rx_bytes_rate") || endsWith(key, "/tx_bytes_rate"))) ||
           (key.starts_with("edge/") && endsWith(key, "/bytes_rate"));
}

struct ForecastStage::State {
    StageOptions opts;
    std::map<std::string, std::vector<double>> history;  // until the step is known
    std::map<std::string, HoltWinters> models;
    std::map<std::string, std::deque<double>> trends;     // node/* values, newest last
    std::uint64_t seen_intervals = 0;
    std::uint64_t not_modelled = 0;
    std::map<std::string, double> speed;  // bytes/s by interface: the links source's last reading
    std::shared_ptr<const ForecastView> last = std::make_shared<ForecastView>();

    HoltWintersOptions modelOptions(std::int64_t step) const {
        HoltWintersOptions o;
        o.season_length = static_cast<std::size_t>(std::max<std::int64_t>(opts.season.count() / step, 0));
        std::int64_t longest = 1;
        for (auto h : opts.horizons) longest = std::max<std::int64_t>(longest, h.count() / step);
        o.max_horizon = static_cast<std::size_t>(longest);
        return o;
    }
};

ForecastStage::ForecastStage(StageOptions options, std::map<std::string, std::vector<double>> history)
    : s_(std::make_unique<State>()) {
    s_->opts = std::move(options);
    s_->history = std::move(history);
}

ForecastStage::~ForecastStage() = default;

void ForecastStage::run(const collector::Snapshot& snap, Views& views) {
    State& s = *s_;
    const auto* sv = views.series.get();
    // Warm start: models for the stored series, at the first run (their forecasts are
    // published at once, before the first interval closes).
    const bool warm = !s.history.empty() && sv;
    if (warm) {
        const HoltWintersOptions mo = s.modelOptions(std::max<std::int64_t>(sv->step.count(), 1));
        for (auto& [key, values] : s.history) {
            if (!isForecastSeries(key) || s.models.size() >= s.opts.max_models) continue;
            s.models.emplace(key, HoltWinters::fit(values, mo));
        }
        s.history.clear();
    }
    const bool fresh_interval = sv && sv->intervals != 0 && sv->intervals != s.seen_intervals;
    // Link speeds come with the links source's readings (not every snapshot): kept, and a
    // change (the first reading after a warm start, a link's new speed) republishes the
    // capacity findings at once rather than at the next interval.
    bool speeds_changed = false;
    if (snap.links) {
        std::map<std::string, double> speed;
        for (const auto& l : snap.links->links)
            if (l.speed_mbps) speed[l.name] = static_cast<double>(l.speed_mbps) * 1e6 / 8;
        speeds_changed = speed != s.speed;
        if (speeds_changed) s.speed = std::move(speed);
    }
    if (!fresh_interval && !warm && !(speeds_changed && sv && sv->intervals + s.models.size() > 0)) {
        views.forecast = s.last;
        return;
    }
    if (fresh_interval) s.seen_intervals = sv->intervals;
    const std::int64_t step = std::max<std::int64_t>(sv->step.count(), 1);
    const HoltWintersOptions mo = s.modelOptions(step);

    // This interval's values; a modelled series without one gets a missing point.
    std::map<std::string_view, double> now;
    if (fresh_interval)
        for (const auto& p : sv->points) now.emplace(p.key, p.value);
    for (const auto& p : fresh_interval ? sv->points : std::vector<SeriesPoint>{}) {
        if (p.key.starts_with("node/")) {
            auto& d = s.trends[p.key];
            d.push_back(p.value);
            const std::size_t keep = std::clamp<std::size_t>(static_cast<std::size_t>(86400 / step), 8, 1440);
            while (d.size() > keep) d.pop_front();
            continue;
        }
        if (!isForecastSeries(p.key) || s.models.contains(p.key)) continue;
        if (s.models.size() >= s.opts.max_models) {
            ++s.not_modelled;
            continue;
        }
        s.models.emplace(p.key, HoltWinters(mo));
    }
    // An interface's series has a point every interval while the interface exists (0 when
    // quiet): without one it was deleted, and its models go (interfaces come and go with
    // pods: kept, they would fill max_models and memory).
    if (fresh_interval)
        std::erase_if(s.models, [&](const auto& e) { return e.first.starts_with("iface/") && !now.contains(e.first); });
    if (fresh_interval)
        for (auto& [key, m] : s.models) {
            auto it = now.find(key);
            m.update(it != now.end() ? it->second : std::numeric_limits<double>::quiet_NaN());
        }

    const auto& speed = s.speed;

    auto v = std::make_shared<ForecastView>();
    v->step = sv->step;
    v->updated_unix = sv->start_unix;
    v->series_not_modelled = s.not_modelled;
    const auto capacity_steps = static_cast<std::size_t>(std::max<std::int64_t>(s.opts.capacity_horizon.count() / step, 1));
    for (auto& [key, m] : s.models) {
        SeriesForecast f;
        f.key = key;
        auto it = now.find(key);
        f.last = it != now.end() ? it->second : m.forecast(1).mean;  // (warm start: the model's own)
        f.points = m.steps();
        f.season_ready = m.seasonReady();
        f.alpha = m.alpha();
        f.beta = m.beta();
        f.gamma = m.gamma();
        for (auto h : s.opts.horizons)
            f.horizons.push_back({h, m.forecast(static_cast<std::size_t>(std::max<std::int64_t>(h.count() / step, 1)))});
        if (key.starts_with("iface/"))
            if (auto sp = speed.find(ifaceOf(key)); sp != speed.end()) f.capacity = sp->second;
        v->memory_bytes += m.memoryBytes();
        if (f.capacity > 0 && m.steps() >= 8) {
            const double limit = s.opts.capacity_threshold * f.capacity;
            std::optional<std::size_t> steps;
            if (f.last >= limit) steps = 0;
            if (!steps) steps = stepsUntilAbove(m, limit, std::min<std::size_t>(capacity_steps, m.maxHorizon()), true);
            if (steps) {
                ForecastFinding x;
                x.kind = "capacity";
                x.subject = key;
                x.lead_seconds = static_cast<double>(*steps * static_cast<std::size_t>(step));
                x.current = f.last;
                x.threshold = limit;
                x.severity = x.lead_seconds <= 86400 ? "warning" : "info";
                x.message = ifaceOf(key) + (key.ends_with("rx_bytes_rate") ? " receive" : " transmit") + " reaches " +
                            std::to_string(static_cast<int>(s.opts.capacity_threshold * 100)) + "% of its link speed " +
                            (*steps == 0 ? std::string("now") : "in " + humanDuration(x.lead_seconds)) +
                            " (upper 80% bound of the forecast)";
                v->findings.push_back(std::move(x));
            }
        }
        v->series.push_back(std::move(f));
    }

    // Fault prediction from trends.
    struct Limit {
        const char* key;
        const char* kind;
        double threshold;
        const char* what;
    };
    for (const Limit& l : {Limit{"node/flow_table_usage", "flow_table_fill", 1.0, "the kernel flow table"},
                           Limit{"node/conntrack_usage", "conntrack_fill", 1.0, "the conntrack table"}}) {
        auto it = s.trends.find(l.key);
        if (it == s.trends.end() || it->second.size() < 8) continue;
        std::vector<double> values(it->second.begin(), it->second.end());
        const TrendFit t = trend(values);
        const double current = values.back();
        auto steps = stepsUntil(t, current, l.threshold);
        if (!steps || *steps > capacity_steps) continue;
        ForecastFinding x;
        x.kind = l.kind;
        x.subject = l.key;
        x.lead_seconds = static_cast<double>(*steps * static_cast<std::size_t>(step));
        x.current = current;
        x.threshold = l.threshold;
        x.slope_per_hour = t.slope * 3600.0 / static_cast<double>(step);
        x.severity = x.lead_seconds <= 86400 ? "warning" : "info";
        x.message = std::string(l.what) + " fills in " + humanDuration(x.lead_seconds) + " at the current trend (" +
                    std::to_string(static_cast<int>(current * 100)) + "% used now)";
        v->findings.push_back(std::move(x));
    }
    if (auto it = s.trends.find("node/retransmit_ratio"); it != s.trends.end() && it->second.size() >= 8) {
        std::vector<double> values(it->second.begin(), it->second.end());
        const TrendFit t = trend(values);
        const double current = values.back();
        const double in_hour = current + t.slope * 3600.0 / static_cast<double>(step);
        if (t.slope > 0 && in_hour > 0.01 && in_hour > 2 * std::max(current, 1e-6)) {
            ForecastFinding x;
            x.kind = "retransmit_trend";
            x.subject = it->first;
            x.current = current;
            x.threshold = in_hour;
            x.slope_per_hour = t.slope * 3600.0 / static_cast<double>(step);
            x.lead_seconds = 3600;
            x.severity = "warning";
            char buf[160];
            std::snprintf(buf, sizeof buf, "the retransmit ratio is rising: %.2f%% now, %.2f%% in an hour at this trend",
                          current * 100, in_hour * 100);
            x.message = buf;
            v->findings.push_back(std::move(x));
        }
    }
    std::sort(v->findings.begin(), v->findings.end(),
              [](const ForecastFinding& a, const ForecastFinding& b) { return a.lead_seconds < b.lead_seconds; });
    s.last = v;
    views.forecast = std::move(v);
}

}  // namespace netprobe::analysis::forecast
