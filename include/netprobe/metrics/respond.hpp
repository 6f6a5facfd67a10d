// The automatic response export: netprobe_response_* series and GET /api/v1/responses, pure
// functions of the response view (analysis/respond/stage.hpp; see docs/respond.md).
#pragma once

#include <string>

namespace netprobe::analysis {
struct Views;
namespace respond {
struct ResponseView;
}
}  // namespace netprobe::analysis

namespace netprobe::metrics {

[[nodiscard]] std::string renderResponseMetrics(const analysis::respond::ResponseView& view);
// The document of /api/v1/responses; without the stage (--respond=off): {"enabled": false}.
[[nodiscard]] std::string responsesJson(const analysis::Views& views);

}  // namespace netprobe::metrics
