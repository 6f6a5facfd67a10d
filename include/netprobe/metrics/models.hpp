// The history store, forecasts and anomalies: GET /api/v1/history, /api/v1/forecast,
// /api/v1/anomalies and their metrics (docs/forecast.md, docs/anomaly.md).
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace netprobe::history {
class Store;
class ClusterHistory;
struct ClusterStats;
struct WriterStats;
}  // namespace netprobe::history
namespace netprobe::analysis::forecast {
struct ForecastView;
}
namespace netprobe::analysis::anomaly {
struct AnomalyView;
}
namespace netprobe::analysis {
struct CostView;
}

namespace netprobe::metrics {

using Params = std::vector<std::pair<std::string, std::string>>;

// /api/v1/forecast?series=PREFIX&limit=N
[[nodiscard]] std::expected<std::string, std::string> forecastJson(const analysis::forecast::ForecastView* v,
                                                                   const Params& params);
// /api/v1/anomalies?scope=&open=true|false&limit=N
[[nodiscard]] std::expected<std::string, std::string> anomaliesJson(const analysis::anomaly::AnomalyView* v,
                                                                    const Params& params);
// Where /api/v1/history reads: this node's store (null: --history=off) and, with
// --history-source=clickhouse, every node's series in ClickHouse.
struct HistorySources {
    history::Store* local = nullptr;
    const history::ClusterHistory* cluster = nullptr;
    std::string node;  // this agent's node name (the local store holds only its series)
};
struct ApiError {
    int status = 400;
    std::string message;
};
// /api/v1/history?series=KEY&from=UNIX|-DURATION&to=UNIX&resolution=minute|hour|auto
// [&node=NAME][&source=auto|local|clickhouse], or ?prefix=P to list series. auto: the
// cluster when configured, else (or when ClickHouse fails: "fallback" says why) the local
// store. No store at all: {"enabled": false}. now_unix: the wall clock.
[[nodiscard]] std::expected<std::string, ApiError> historyJson(const HistorySources& sources, const Params& params,
                                                               std::int64_t now_unix);

// /api/v1/cost?limit=N: bytes by destination class and cost per local workload.
[[nodiscard]] std::expected<std::string, std::string> costJson(const analysis::CostView* v, const Params& params);
// netprobe_cost_window_bytes{entity,class,direction} and netprobe_cost_per_hour{entity}:
// the 20 costliest entities, then "other".
[[nodiscard]] std::string renderCostMetrics(const analysis::CostView& v);

// netprobe_interface_forecast_bytes_rate{interface,direction,horizon,bound},
// netprobe_forecast_* (models, findings with lead times).
[[nodiscard]] std::string renderForecastMetrics(const analysis::forecast::ForecastView& v);
// netprobe_anomaly_rate{scope}, netprobe_anomaly_events_total{scope}, netprobe_anomaly_open_events{scope},
// netprobe_anomaly_models{scope}, netprobe_anomaly_model_memory_bytes, ...
[[nodiscard]] std::string renderAnomalyMetrics(const analysis::anomaly::AnomalyView& v);
// netprobe_history_* (points written, rows dropped by age/size, resets, file bytes, queue drops).
[[nodiscard]] std::string renderHistoryMetrics(const history::WriterStats& s);
// netprobe_history_cluster_queries_total{result="ok|error|skipped"} (--history-source=clickhouse).
[[nodiscard]] std::string renderClusterHistoryMetrics(const history::ClusterStats& s);

}  // namespace netprobe::metrics
