// Bottlenecks and hotspots: GET /api/v1/bottlenecks and the netprobe_bottleneck_findings,
// netprobe_interface_utilisation_ratio and netprobe_conntrack_* metrics, pure functions
// of the Bottlenecks stage's view (docs/bottlenecks.md).
#pragma once

#include <array>
#include <cstddef>
#include <expected>
#include <string>
#include <utility>
#include <vector>

#include <netprobe/analysis/bottlenecks.hpp>

namespace netprobe::metrics {

struct BottleneckQuery {
    std::size_t limit = 100;                                  // findings, by rank
    std::array<bool, analysis::kBottleneckKinds> kinds{};     // none set: every kind
    int min_severity = 2;                                     // 0 critical, 1 warning, 2 info
};

// Parameters: limit (1..1000), kind (comma-separated kinds), severity (critical, warning,
// info: that one and above). Unknown or bad parameters: an error naming the parameter.
[[nodiscard]] std::expected<BottleneckQuery, std::string> parseBottleneckQuery(
    const std::vector<std::pair<std::string, std::string>>& params);

// {"enabled": false} without a view; else the ranked findings (each with kind, subject,
// severity, score, title, since, evidence, explanation, fix, query), the interfaces'
// utilisation where their speed is known, and the conntrack table.
[[nodiscard]] std::string bottlenecksJson(const analysis::BottleneckView* view, const BottleneckQuery& q);

// netprobe_bottleneck_findings{kind,severity} (every kind x severity),
// netprobe_interface_utilisation_ratio{interface,direction} (interfaces with a known
// speed), netprobe_conntrack_entries / _limit (when the namespace has a table).
[[nodiscard]] std::string renderBottleneckMetrics(const analysis::BottleneckView& view);

}  // namespace netprobe::metrics
