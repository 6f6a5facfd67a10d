#include <netprobe/metrics/models.hpp>

#include <algorithm>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/anomaly/stage.hpp>
#include <netprobe/analysis/cost.hpp>
#include <netprobe/analysis/forecast/stage.hpp>
#include <netprobe/history/cluster.hpp>
#include <netprobe/history/store.hpp>
#include <netprobe/history/writer.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/util/duration.hpp>
#include <netprobe/util/parse.hpp>

namespace netprobe::metrics {
namespace {

std::string unknown(const std::string& k, const char* known) {
    return "unknown parameter \"" + k + "\" (known: " + known + ")";
}
std::string bad(const std::string& k, const std::string& v, const std::string& why) {
    return "bad value \"" + v + "\" for parameter \"" + k + "\": " + why;
}
std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string horizonLabel(std::chrono::seconds s) {
    const auto n = s.count();
    if (n % 86400 == 0) return std::to_string(n / 86400) + "d";
    if (n % 3600 == 0) return std::to_string(n / 3600) + "h";
    if (n % 60 == 0) return std::to_string(n / 60) + "m";
    return std::to_string(n) + "s";
}

// "iface/<name>/rx_bytes_rate" -> {name, "receive"}
std::pair<std::string, std::string> ifaceDirection(const std::string& key) {
    const auto a = key.find('/'), b = key.rfind('/');
    return {key.substr(a + 1, b - a - 1), key.ends_with("/rx_bytes_rate") ? "receive" : "transmit"};
}

}  // namespace

std::expected<std::string, std::string> forecastJson(const analysis::forecast::ForecastView* v, const Params& params) {
    std::string prefix;
    std::size_t limit = 200;
    for (const auto& [k, val] : params) {
        if (k == "series") {
            prefix = val;
        } else if (k == "limit") {
            if (!util::parseNumber(val, limit) || limit == 0 || limit > 10000) return std::unexpected(bad(k, val, "expected 1..10000"));
        } else {
            return std::unexpected(unknown(k, "series, limit"));
        }
    }
    nlohmann::json j;
    j["enabled"] = v != nullptr;
    if (!v) return dump(j);
    j["step_seconds"] = v->step.count();
    j["updated_unix"] = v->updated_unix;
    j["series_not_modelled"] = v->series_not_modelled;
    j["memory_bytes"] = v->memory_bytes;
    auto arr = nlohmann::json::array();
    for (const auto& f : v->series) {
        if (!f.key.starts_with(prefix)) continue;
        if (arr.size() >= limit) break;
        nlohmann::json o = {{"series", f.key},     {"last", f.last},   {"points", f.points},
                            {"season_ready", f.season_ready},
                            {"parameters", {{"alpha", f.alpha}, {"beta", f.beta}, {"gamma", f.gamma}}}};
        if (f.capacity > 0) o["capacity_bytes_per_second"] = f.capacity;
        auto hs = nlohmann::json::array();
        for (const auto& h : f.horizons)
            hs.push_back({{"horizon", horizonLabel(h.horizon)},
                          {"horizon_seconds", h.horizon.count()},
                          {"mean", h.f.mean},
                          {"lower_80", h.f.inner.lower},
                          {"upper_80", h.f.inner.upper},
                          {"lower_95", h.f.outer.lower},
                          {"upper_95", h.f.outer.upper},
                          {"calibrated", h.f.empirical}});
        o["forecasts"] = std::move(hs);
        arr.push_back(std::move(o));
    }
    j["series"] = std::move(arr);
    auto fs = nlohmann::json::array();
    for (const auto& x : v->findings)
        fs.push_back({{"kind", x.kind},
                      {"subject", x.subject},
                      {"severity", x.severity},
                      {"lead_seconds", x.lead_seconds},
                      {"current", x.current},
                      {"threshold", x.threshold},
                      {"slope_per_hour", x.slope_per_hour},
                      {"message", x.message}});
    j["findings"] = std::move(fs);
    return dump(j);
}

std::expected<std::string, std::string> anomaliesJson(const analysis::anomaly::AnomalyView* v, const Params& params) {
    std::string scope;
    std::optional<bool> open;
    std::size_t limit = 100;
    for (const auto& [k, val] : params) {
        if (k == "scope") {
            if (val != "interface" && val != "edge" && val != "service" && val != "node" && val != "entity")
                return std::unexpected(bad(k, val, "expected interface, edge, service, node or entity"));
            scope = val;
        } else if (k == "open") {
            if (val != "true" && val != "false") return std::unexpected(bad(k, val, "expected true or false"));
            open = val == "true";
        } else if (k == "limit") {
            if (!util::parseNumber(val, limit) || limit == 0 || limit > 10000) return std::unexpected(bad(k, val, "expected 1..10000"));
        } else {
            return std::unexpected(unknown(k, "scope, open, limit"));
        }
    }
    nlohmann::json j;
    j["enabled"] = v != nullptr;
    if (!v) return dump(j);
    j["updated_unix"] = v->updated_unix;
    j["memory_bytes"] = v->memory_bytes;
    j["series_not_modelled"] = v->series_not_modelled;
    j["profiles_not_modelled"] = v->profiles_not_modelled;
    j["state_restored"] = v->state_restored;
    j["state_rejected"] = v->state_rejected;
    nlohmann::json sc = nlohmann::json::object();
    for (const auto& [name, st] : v->scopes)
        sc[name] = {{"series", st.series},
                    {"learning", st.learning},
                    {"anomalous", st.anomalous},
                    {"anomaly_rate", st.anomaly_rate},
                    {"events_total", st.events_total}};
    j["scopes"] = std::move(sc);
    auto ev = nlohmann::json::array();
    for (const auto& e : v->events) {
        if (!scope.empty() && e.scope != scope) continue;
        if (open && e.open != *open) continue;
        if (ev.size() >= limit) break;
        auto fs = nlohmann::json::array();
        for (const auto& f : e.features)
            fs.push_back({{"name", f.name},
                          {"observed", f.observed},
                          {"expected_lo", f.expected_lo},
                          {"expected_hi", f.expected_hi},
                          {"baseline", f.baseline},
                          {"score", f.score},
                          {"examples", f.examples}});
        ev.push_back({{"id", e.id},
                      {"kind", e.kind},
                      {"scope", e.scope},
                      {"subject", e.subject},
                      {"summary", e.summary},
                      {"score", e.score},
                      {"first_unix", e.first_unix},
                      {"last_unix", e.last_unix},
                      {"intervals", e.intervals},
                      {"open", e.open},
                      {"features", std::move(fs)}});
    }
    j["events"] = std::move(ev);
    return dump(j);
}

std::expected<std::string, ApiError> historyJson(const HistorySources& src, const Params& params, std::int64_t now) {
    std::string series, prefix, node, source = "auto";
    bool list = false;
    std::int64_t from = now - 3600, to = now + 60;
    auto res = history::Resolution::automatic;
    std::string res_name = "auto";
    std::size_t limit = 1000;
    auto fail = [](std::string m) { return std::unexpected(ApiError{400, std::move(m)}); };
    auto time = [&](const std::string& k, const std::string& val) -> std::expected<std::int64_t, std::string> {
        if (val.starts_with("-")) {  // relative: -1h
            auto d = util::parseDuration(val.substr(1));
            if (!d) return std::unexpected(bad(k, val, "expected unix seconds or -DURATION (-1h)"));
            return now - std::chrono::duration_cast<std::chrono::seconds>(*d).count();
        }
        std::int64_t t = 0;
        if (!util::parseNumber(val, t) || t < 0) return std::unexpected(bad(k, val, "expected unix seconds or -DURATION (-1h)"));
        return t;
    };
    for (const auto& [k, val] : params) {
        if (k == "series") {
            if (val.empty() || val.size() > 512) return fail(bad(k, val, "expected a series key"));
            series = val;
        } else if (k == "prefix") {
            list = true;
            prefix = val;
        } else if (k == "from" || k == "to") {
            auto t = time(k, val);
            if (!t) return fail(t.error());
            (k == "from" ? from : to) = *t;
        } else if (k == "resolution") {
            if (val == "minute") res = history::Resolution::minute;
            else if (val == "hour") res = history::Resolution::hour;
            else if (val == "auto") res = history::Resolution::automatic;
            else return fail(bad(k, val, "expected minute, hour or auto"));
            res_name = val;
        } else if (k == "limit") {
            if (!util::parseNumber(val, limit) || limit == 0 || limit > 100000) return fail(bad(k, val, "expected 1..100000"));
        } else if (k == "node") {
            if (val.empty() || val.size() > 253) return fail(bad(k, val, "expected a node name"));
            node = val;
        } else if (k == "source") {
            if (val != "auto" && val != "local" && val != "clickhouse")
                return fail(bad(k, val, "expected auto, local or clickhouse"));
            if (val == "clickhouse" && !src.cluster)
                return fail(bad(k, val, "this agent has no --history-source=clickhouse"));
            source = val;
        } else {
            return fail(unknown(k, "series, prefix, from, to, resolution, limit, node, source"));
        }
    }
    const bool want_series = !list && !series.empty();
    if (want_series && to <= from) return fail(bad("to", std::to_string(to), "must be after from"));
    nlohmann::json j;
    j["enabled"] = src.local != nullptr || src.cluster != nullptr;
    if (!j["enabled"]) return dump(j);
    auto point = [](const history::Row& r) {
        return nlohmann::json{{"time", r.time}, {"step", r.step}, {"mean", r.count ? r.sum / r.count : 0.0},
                              {"min", r.min}, {"max", r.max}, {"count", r.count}};
    };
    // Every node's history, from ClickHouse.
    std::string fallback;
    if (src.cluster && source != "local") {
        if (!want_series) {
            auto names = src.cluster->listSeries(prefix, limit, node);
            auto nodes = names ? src.cluster->nodes() : std::unexpected(names.error());
            if (names && nodes) {
                j["source"] = "clickhouse";
                j["series"] = *names;
                j["nodes"] = *nodes;
                return dump(j);
            }
            fallback = (names ? nodes.error() : names.error()).what();
        } else {
            auto rows = src.cluster->query(series, from, to, res, node);
            if (rows) {
                j["source"] = "clickhouse";
                j["series"] = series;
                j["from"] = from;
                j["to"] = to;
                auto per_node = nlohmann::json::array();
                // Buckets over nodes: mean of every sample, min, max, samples, and the sum of
                // the nodes' means ("total": a rate's cluster-wide value).
                struct Agg {
                    history::Row row;
                    double total = 0;
                    std::size_t nodes = 0;
                };
                std::map<std::int64_t, Agg> agg;
                for (const auto& nr : *rows) {
                    auto pts = nlohmann::json::array();
                    for (const auto& r : nr.rows) {
                        if (pts.size() < limit) pts.push_back(point(r));
                        auto [it, fresh] = agg.try_emplace(r.time);
                        auto& a = it->second;
                        if (fresh) {
                            a.row = r;
                        } else {
                            a.row.sum += r.sum;
                            a.row.count += r.count;
                            a.row.min = std::min(a.row.min, r.min);
                            a.row.max = std::max(a.row.max, r.max);
                        }
                        a.total += r.count ? r.sum / r.count : 0.0;
                        ++a.nodes;
                    }
                    per_node.push_back({{"node", nr.node}, {"points", std::move(pts)}});
                }
                auto arr = nlohmann::json::array();
                for (const auto& [t, a] : agg) {
                    if (arr.size() >= limit) break;
                    auto p = point(a.row);
                    p["total"] = a.total;
                    p["nodes"] = a.nodes;
                    arr.push_back(std::move(p));
                }
                j["points"] = std::move(arr);
                j["nodes"] = std::move(per_node);
                return dump(j);
            }
            fallback = rows.error().what();
        }
        if (source == "clickhouse") return std::unexpected(ApiError{503, fallback});
    }
    // This node's store.
    if (!src.local) {
        if (!fallback.empty()) return std::unexpected(ApiError{503, fallback + "; and this agent keeps no local history"});
        j["enabled"] = false;
        return dump(j);
    }
    if (!node.empty() && node != src.node) {
        const std::string why = "the local store holds only node \"" + src.node + "\"";
        if (!fallback.empty()) return std::unexpected(ApiError{503, fallback + "; " + why});
        return fail(bad("node", node, why));
    }
    j["source"] = "local";
    j["node"] = src.node;
    if (!fallback.empty()) j["fallback"] = fallback;
    if (!want_series) {
        auto names = src.local->listSeries(prefix, limit);
        if (!names) return std::unexpected(ApiError{500, "history store: " + names.error().what()});
        j["series"] = *names;
        return dump(j);
    }
    auto rows = src.local->query(series, from, to, res);
    if (!rows) return std::unexpected(ApiError{500, "history store: " + rows.error().what()});
    auto arr = nlohmann::json::array();
    for (const auto& r : *rows) {
        if (arr.size() >= limit) break;
        arr.push_back(point(r));
    }
    j["series"] = series;
    j["from"] = from;
    j["to"] = to;
    j["points"] = std::move(arr);
    return dump(j);
}

std::expected<std::string, std::string> costJson(const analysis::CostView* v, const Params& params) {
    std::size_t limit = 100;
    for (const auto& [k, val] : params) {
        if (k == "limit") {
            if (!util::parseNumber(val, limit) || limit == 0 || limit > 10000) return std::unexpected(bad(k, val, "expected 1..10000"));
        } else {
            return std::unexpected(unknown(k, "limit"));
        }
    }
    nlohmann::json j;
    j["enabled"] = v != nullptr;
    if (!v) return dump(j);
    j["window_seconds"] = v->window_seconds;
    j["currency"] = v->currency;
    j["zone"] = v->zone;
    j["zone_source"] = v->zone_source;
    j["cluster_nodes"] = {{"seen", v->cluster_nodes}, {"with_zone", v->cluster_zoned_nodes}};
    nlohmann::json prices = nlohmann::json::object();
    for (std::size_t i = 0; i < analysis::kCostClassNames.size(); ++i) prices[analysis::kCostClassNames[i]] = v->price_per_gb[i];
    j["price_per_gb"] = std::move(prices);
    auto arr = nlohmann::json::array();
    double total = 0;
    for (const auto& e : v->entities) {
        total += e.cost;
        if (arr.size() >= limit) continue;
        nlohmann::json sent = nlohmann::json::object(), received = nlohmann::json::object();
        for (std::size_t i = 0; i < analysis::kCostClassNames.size(); ++i) {
            sent[analysis::kCostClassNames[i]] = e.sent[i];
            received[analysis::kCostClassNames[i]] = e.received[i];
        }
        arr.push_back({{"entity", e.entity},
                       {"bytes_sent", std::move(sent)},
                       {"bytes_received", std::move(received)},
                       {"cost", e.cost},
                       {"cost_per_hour", v->window_seconds > 0 ? e.cost * 3600.0 / v->window_seconds : 0.0}});
    }
    j["entities"] = std::move(arr);
    j["total_cost"] = total;
    j["total_cost_per_hour"] = v->window_seconds > 0 ? total * 3600.0 / v->window_seconds : 0.0;
    return dump(j);
}

std::string renderCostMetrics(const analysis::CostView& v) {
    ExpositionWriter w;
    constexpr std::size_t kTop = 20;
    struct Row {
        std::array<std::uint64_t, 5> sent{}, received{};
        double cost = 0;
    };
    std::vector<std::pair<std::string, Row>> rows;
    Row other;
    bool has_other = false;
    for (std::size_t i = 0; i < v.entities.size(); ++i) {
        const auto& e = v.entities[i];
        Row& r = i < kTop ? rows.emplace_back(e.entity, Row{}).second : other;
        if (i >= kTop) has_other = true;
        for (std::size_t c = 0; c < 5; ++c) {
            r.sent[c] += e.sent[c];
            r.received[c] += e.received[c];
        }
        r.cost += e.cost;
    }
    if (has_other) rows.emplace_back("other", other);
    w.family("netprobe_cost_window_bytes", MetricType::Gauge,
             "Bytes a local workload sent and received over the cost window (5 minutes), by where the other end is: "
             "same_node, same_zone, cross_zone, private, internet (the 20 costliest, then other).");
    for (const auto& [name, r] : rows)
        for (std::size_t c = 0; c < 5; ++c) {
            if (r.sent[c])
                w.sample("netprobe_cost_window_bytes",
                         {{"entity", name}, {"class", analysis::kCostClassNames[c]}, {"direction", "sent"}}, r.sent[c]);
            if (r.received[c])
                w.sample("netprobe_cost_window_bytes",
                         {{"entity", name}, {"class", analysis::kCostClassNames[c]}, {"direction", "received"}},
                         r.received[c]);
        }
    w.family("netprobe_cost_per_hour", MetricType::Gauge,
             "What a local workload's traffic costs per hour at the window's rate and the price table (bytes sent x "
             "price per GB of their class).");
    for (const auto& [name, r] : rows)
        w.sample("netprobe_cost_per_hour", {{"entity", name}},
                 v.window_seconds > 0 ? r.cost * 3600.0 / v.window_seconds : 0.0);
    return w.take();
}

std::string renderForecastMetrics(const analysis::forecast::ForecastView& v) {
    ExpositionWriter w;
    w.family("netprobe_interface_forecast_bytes_rate", MetricType::Gauge,
             "Forecast of an interface's bytes per second at a horizon (Holt-Winters, seasonal): the mean and the 80% "
             "prediction interval's bounds.");
    for (const auto& f : v.series) {
        if (!f.key.starts_with("iface/")) continue;
        const auto [iface, dir] = ifaceDirection(f.key);
        for (const auto& h : f.horizons) {
            const std::string hl = horizonLabel(h.horizon);
            for (auto [bound, value] : {std::pair{"mean", h.f.mean}, std::pair{"lower_80", h.f.inner.lower},
                                        std::pair{"upper_80", h.f.inner.upper}})
                w.sample("netprobe_interface_forecast_bytes_rate",
                         {{"interface", iface}, {"direction", dir}, {"horizon", hl}, {"bound", bound}}, value);
        }
    }
    w.family("netprobe_forecast_models", MetricType::Gauge, "Series with a forecast model.");
    w.sample("netprobe_forecast_models", {}, static_cast<std::uint64_t>(v.series.size()));
    w.family("netprobe_forecast_series_not_modelled_total", MetricType::Counter,
             "Series not modelled: the budget of models was spent.");
    w.sample("netprobe_forecast_series_not_modelled_total", {}, v.series_not_modelled);
    w.family("netprobe_forecast_model_memory_bytes", MetricType::Gauge, "Memory of the forecast models.");
    w.sample("netprobe_forecast_model_memory_bytes", {}, static_cast<std::uint64_t>(v.memory_bytes));
    w.family("netprobe_forecast_lead_seconds", MetricType::Gauge,
             "Time until a forecast finding happens at the current trend: kind capacity (an interface at the "
             "capacity threshold of its link speed), flow_table_fill, conntrack_fill, retransmit_trend.");
    for (const auto& x : v.findings)
        w.sample("netprobe_forecast_lead_seconds", {{"kind", x.kind}, {"subject", x.subject}}, x.lead_seconds);
    return w.take();
}

std::string renderAnomalyMetrics(const analysis::anomaly::AnomalyView& v) {
    ExpositionWriter w;
    w.family("netprobe_anomaly_rate", MetricType::Gauge,
             "Anomaly rate by scope: the mean over its modelled series of the fraction of recent intervals judged "
             "anomalous (entity: the fraction of profiles that deviated in the last interval).");
    for (const auto& [scope, st] : v.scopes) w.sample("netprobe_anomaly_rate", {{"scope", scope}}, st.anomaly_rate);
    w.family("netprobe_anomaly_events_total", MetricType::Counter, "Anomaly events opened, by scope.");
    for (const auto& [scope, st] : v.scopes) w.sample("netprobe_anomaly_events_total", {{"scope", scope}}, st.events_total);
    w.family("netprobe_anomaly_series", MetricType::Gauge,
             "Modelled series (entity: behaviour profiles) by scope, and those still learning.");
    for (const auto& [scope, st] : v.scopes) {
        w.sample("netprobe_anomaly_series", {{"scope", scope}, {"state", "modelled"}}, static_cast<std::uint64_t>(st.series));
        w.sample("netprobe_anomaly_series", {{"scope", scope}, {"state", "learning"}}, static_cast<std::uint64_t>(st.learning));
    }
    std::map<std::string, std::uint64_t> open;
    for (const auto& e : v.events)
        if (e.open) ++open[e.scope];
    w.family("netprobe_anomaly_open_events", MetricType::Gauge, "Metric anomaly events still open, by scope.");
    for (const auto& [scope, n] : open) w.sample("netprobe_anomaly_open_events", {{"scope", scope}}, n);
    w.family("netprobe_anomaly_model_memory_bytes", MetricType::Gauge, "Memory of every anomaly model.");
    w.sample("netprobe_anomaly_model_memory_bytes", {}, static_cast<std::uint64_t>(v.memory_bytes));
    w.family("netprobe_anomaly_not_modelled_total", MetricType::Counter,
             "Series (kind series) or entities (kind profile) not modelled: the budget was spent.");
    w.sample("netprobe_anomaly_not_modelled_total", {{"kind", "series"}}, v.series_not_modelled);
    w.sample("netprobe_anomaly_not_modelled_total", {{"kind", "profile"}}, v.profiles_not_modelled);
    w.family("netprobe_anomaly_state_models", MetricType::Gauge,
             "Models read from the history store at start: restored, or rejected (unreadable, or of other options).");
    w.sample("netprobe_anomaly_state_models", {{"result", "restored"}}, v.state_restored);
    w.sample("netprobe_anomaly_state_models", {{"result", "rejected"}}, v.state_rejected);
    return w.take();
}

std::string renderHistoryMetrics(const history::WriterStats& s) {
    ExpositionWriter w;
    auto counter = [&](const char* name, const char* help, std::uint64_t v) {
        w.family(name, MetricType::Counter, help);
        w.sample(name, {}, v);
    };
    counter("netprobe_history_points_written_total", "Points appended to the history store.", s.store.points_written);
    counter("netprobe_history_points_rejected_total", "Points refused: older than the hours kept.", s.store.points_rejected);
    w.family("netprobe_history_rows_dropped_total", MetricType::Counter,
             "Rows removed by the store's retention: by age (the configured days) or by size (--history-max-size).");
    w.sample("netprobe_history_rows_dropped_total", {{"reason", "age"}}, s.store.rows_dropped_age);
    w.sample("netprobe_history_rows_dropped_total", {{"reason", "size"}}, s.store.rows_dropped_size);
    counter("netprobe_history_write_errors_total", "Store writes that failed.", s.store.write_errors);
    counter("netprobe_history_resets_total", "Fresh database files started (a corrupt or full one).", s.store.resets);
    counter("netprobe_history_batches_dropped_total", "Batches of points dropped from the writer's full queue.",
            s.batches_dropped);
    w.family("netprobe_history_file_bytes", MetricType::Gauge, "Size of the history database with its WAL.");
    w.sample("netprobe_history_file_bytes", {}, s.store.file_bytes);
    w.family("netprobe_history_series", MetricType::Gauge, "Series in the history store.");
    w.sample("netprobe_history_series", {}, s.store.series);
    return w.take();
}

std::string renderClusterHistoryMetrics(const history::ClusterStats& s) {
    ExpositionWriter w;
    w.family("netprobe_history_cluster_queries_total", MetricType::Counter,
             "Cluster history (--history-source=clickhouse) queries: ok, error (answered from the local store), "
             "skipped (not sent: the server failed moments ago).");
    w.sample("netprobe_history_cluster_queries_total", {{"result", "ok"}}, s.queries - s.errors);
    w.sample("netprobe_history_cluster_queries_total", {{"result", "error"}}, s.errors);
    w.sample("netprobe_history_cluster_queries_total", {{"result", "skipped"}}, s.skipped);
    return w.take();
}

}  // namespace netprobe::metrics
