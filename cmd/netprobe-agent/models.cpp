#include "models.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include <algorithm>
#include <cmath>
#include <limits>

#include <netprobe/analysis/forecast/stage.hpp>
#include <netprobe/analysis/series.hpp>

#include "options.hpp"

namespace netprobe::agent {

std::shared_ptr<history::Writer> openHistory(const AgentOptions& o) {
    history::StoreOptions so;
    so.dir = o.state_dir + "/history";
    so.minute_retention = std::max(std::chrono::days(1), std::chrono::duration_cast<std::chrono::days>(o.history_minutes));
    so.hour_retention = std::max(std::chrono::days(1), std::chrono::duration_cast<std::chrono::days>(o.history_hours));
    so.max_bytes = o.history_max_bytes;
    auto store = history::Store::open(so);
    if (!store) {
        spdlog::warn("history store off: {}", store.error().what());
        return nullptr;
    }
    auto w = history::Writer::start(std::move(*store));
    if (!w) {
        spdlog::warn("history store off: {}", w.error().what());
        return nullptr;
    }
    spdlog::info("history store: {} (minutes kept {}d, hours {}d, at most {} MiB)", (*w)->store().file().string(),
                 so.minute_retention.count(), so.hour_retention.count(), so.max_bytes >> 20);
    return std::shared_ptr<history::Writer>(std::move(*w));
}

std::map<std::string, std::vector<double>> loadForecastHistory(const history::Store& store, std::chrono::seconds span,
                                                               std::int64_t now, std::size_t max_series) {
    std::map<std::string, std::vector<double>> out;
    const std::int64_t to = now - now % 60;  // the current minute is not complete
    const std::int64_t from = to - span.count();
    for (const char* prefix : {"iface/", "edge/"}) {
        auto keys = store.listSeries(prefix, 100000);
        if (!keys) {
            spdlog::warn("history: {}", keys.error().what());
            continue;
        }
        for (const auto& key : *keys) {
            if (out.size() >= max_series) break;
            if (!analysis::forecast::isForecastSeries(key)) continue;
            auto rows = store.query(key, from, to, history::Resolution::minute);
            if (!rows || rows->empty()) continue;
            const std::int64_t first = rows->front().time;
            std::vector<double> v(static_cast<std::size_t>((to - first) / 60), std::numeric_limits<double>::quiet_NaN());
            for (const auto& r : *rows) {
                const auto i = static_cast<std::size_t>((r.time - first) / 60);
                if (i < v.size() && r.count > 0) v[i] = r.sum / r.count;
            }
            out.emplace(key, std::move(v));
        }
    }
    return out;
}

std::map<std::string, std::string> loadAnomalyState(const history::Store& store) {
    std::map<std::string, std::string> out;
    auto s = store.states("anomaly/");
    if (!s) {
        spdlog::warn("history: anomaly models not read: {}", s.error().what());
        return out;
    }
    for (auto& [k, v] : *s) out.emplace(std::move(k), std::move(v));
    return out;
}

std::size_t saveAnomalyState(history::Store& store, const std::map<std::string, std::string>& state) {
    std::size_t n = 0;
    for (const auto& [k, v] : state) {
        if (auto r = store.putState(k, v); !r) {
            spdlog::warn("history: anomaly models not saved: {}", r.error().what());
            break;
        }
        ++n;
    }
    return n;
}

std::vector<history::Point> pointsOf(const analysis::SeriesView& v) {
    std::vector<history::Point> out;
    out.reserve(v.points.size());
    const std::int64_t minute = v.start_unix - ((v.start_unix % 60) + 60) % 60;
    for (const auto& p : v.points) {
        if (!std::isfinite(p.value)) continue;
        out.push_back({p.key, minute, p.value, 1, p.value, p.value});
    }
    return out;
}

std::set<util::Addr16> interfaceAddresses() {
    std::set<util::Addr16> out;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return out;
    for (ifaddrs* i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        util::Addr16 a{};
        if (i->ifa_addr->sa_family == AF_INET) {
            a[10] = a[11] = 0xff;
            std::memcpy(a.data() + 12, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            std::memcpy(a.data(), &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
        } else {
            continue;
        }
        out.insert(a);
    }
    ::freeifaddrs(list);
    return out;
}

analysis::anomaly::StageOptions anomalyOptions(std::size_t learning) {
    analysis::anomaly::StageOptions o;
    auto& s = o.series;
    s.learning_points = learning;
    // the first k-means models exist by the end of learning; train every learning/6
    // intervals (60 with the default 360), on up to twice the learning period
    s.min_train_points = std::clamp<std::size_t>(learning / 2, 16, 180);
    s.train_every = std::clamp<std::size_t>(learning / 6, 4, 60);
    s.train_window = std::clamp<std::size_t>(learning * 2, s.min_train_points, 720);
    s.range_window = std::clamp<std::size_t>(learning / 2, 8, 60);
    // Traffic, not lab signals: a change within 5% of the usual level is no event however
    // unusual its shape (an RTT moving between 2.21 and 2.30 ms), and the shape alone flags
    // only when it is far out (score 4: every model at 4x its threshold).
    s.min_spread_fraction = 0.05;
    s.strong_score = 4;
    // behaviour learns as long as the series: the learning period must span the workload's
    // cycles (a transfer every few minutes) for its bytes and mix ranges to hold them
    o.behaviour.learning_intervals = learning;
    return o;
}

}  // namespace netprobe::agent
