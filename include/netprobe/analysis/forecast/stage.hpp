// netprobe::analysis::forecast::ForecastStage - bandwidth forecasts and capacity/fault
// lead times over the Series stage's closed intervals.
//
// Models (forecast.hpp), one per series, updated once per closed interval:
//  - Holt-Winters with a season of --forecast-season / --series-step for every
//    interface's rx/tx bytes rate and the busiest edges' bytes rate (at most max_models;
//    later series are counted, not modelled). A series absent from an interval is a missing
//    point. Warm start: the history store's minutes given to the constructor.
//  - Theil-Sen trends over the last day of node/flow_table_usage, node/conntrack_usage
//    and node/retransmit_ratio.
// Findings, each with its lead time: an interface whose rate reaches capacity_threshold of
// its link speed (where the speed is known) within capacity_horizon, by the trend of the
// last season (the damped seasonal model is conservative far out) or by the model's
// upper 80% bound within its horizons; the kernel flow table or the conntrack table
// filling; the retransmit ratio rising.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <netprobe/analysis/forecast/forecast.hpp>
#include <netprobe/analysis/pipeline.hpp>

namespace netprobe::analysis::forecast {

struct StageOptions {
    std::chrono::seconds season{std::chrono::hours(24)};
    std::vector<std::chrono::seconds> horizons{std::chrono::minutes(5), std::chrono::minutes(15),
                                               std::chrono::hours(1), std::chrono::hours(6), std::chrono::hours(24)};
    double capacity_threshold = 0.8;   // of the link speed
    std::chrono::seconds capacity_horizon{std::chrono::days(30)};
    std::size_t max_models = 64;
};

struct HorizonForecast {
    std::chrono::seconds horizon{};
    Forecast f;
};

struct SeriesForecast {
    std::string key;
    double last = 0;            // the newest value
    std::uint64_t points = 0;   // updates, missing included
    bool season_ready = false;
    double alpha = 0, beta = 0, gamma = 0;
    std::vector<HorizonForecast> horizons;
    double capacity = 0;        // bytes/s (interfaces with a known speed), else 0
};

struct ForecastFinding {
    std::string kind;           // capacity, flow_table_fill, conntrack_fill, retransmit_trend
    std::string subject;        // the series
    std::string severity;       // warning, info
    double lead_seconds = 0;    // until it happens at the current trend
    double current = 0, threshold = 0, slope_per_hour = 0;
    std::string message;
};

struct ForecastView {
    std::chrono::seconds step{60};
    std::int64_t updated_unix = 0;   // the interval the models last saw (its start)
    std::vector<SeriesForecast> series;  // by key
    std::vector<ForecastFinding> findings;
    std::uint64_t series_not_modelled = 0;  // beyond max_models, since start
    std::size_t memory_bytes = 0;
};

class ForecastStage final : public Stage {
public:
    // history: stored per-step values of series (oldest first, NaN for gaps), by key.
    explicit ForecastStage(StageOptions options = {}, std::map<std::string, std::vector<double>> history = {});
    ~ForecastStage() override;
    [[nodiscard]] std::string_view name() const override { return "forecast"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct State;
    std::unique_ptr<State> s_;
};

// Whether the Series stage's key is one the forecasts model with Holt-Winters.
[[nodiscard]] bool isForecastSeries(std::string_view key);

}  // namespace netprobe::analysis::forecast
