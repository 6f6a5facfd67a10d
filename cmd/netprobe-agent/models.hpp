// The agent's wiring of the history store and the models fed from it: opening the store,
// warm starts (forecast history, anomaly state) and the writes (points per interval,
// model state on the background cadence and at exit).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <netprobe/analysis/anomaly/stage.hpp>
#include <netprobe/history/writer.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {
struct SeriesView;
}

namespace netprobe::agent {

struct AgentOptions;

// The store under STATE_DIR/history and its writer; null (one warning) when it cannot
// be opened: the agent runs without history.
[[nodiscard]] std::shared_ptr<history::Writer> openHistory(const AgentOptions& o);

// Stored minutes of the series the forecasts model (interfaces, edges), the last
// `span` before now, one value per minute (NaN for a gap), by key.
[[nodiscard]] std::map<std::string, std::vector<double>> loadForecastHistory(const history::Store& store,
                                                                             std::chrono::seconds span,
                                                                             std::int64_t now_unix,
                                                                             std::size_t max_series);
// The anomaly models a previous run stored (key -> text).
[[nodiscard]] std::map<std::string, std::string> loadAnomalyState(const history::Store& store);
// Writes the models' state; returns the number written.
std::size_t saveAnomalyState(history::Store& store, const std::map<std::string, std::string>& state);

// One closed interval as store points (its minute; sum = the value, count 1).
[[nodiscard]] std::vector<history::Point> pointsOf(const analysis::SeriesView& v);

// The addresses of this network namespace's interfaces (getifaddrs), IPv4 mapped.
[[nodiscard]] std::set<util::Addr16> interfaceAddresses();

// The anomaly models' options for a learning period of `learning` intervals.
[[nodiscard]] analysis::anomaly::StageOptions anomalyOptions(std::size_t learning);

}  // namespace netprobe::agent
