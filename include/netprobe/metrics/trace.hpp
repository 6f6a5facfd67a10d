// Packet path tracing over the API: GET /api/v1/trace?src=&dst=&sport=&dport=&proto=&seconds=
// starts a trace (queued: the trace source arms it at the next collection), GET
// /api/v1/trace?id= reads one, GET /api/v1/trace lists them. The documents are pure
// functions of the published snapshot and the queue's state.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <variant>

#include <netprobe/collector/snapshot.hpp>
#include <netprobe/collector/trace.hpp>
#include <netprobe/http/message.hpp>

namespace netprobe::metrics {

struct TraceStart {
    collector::TraceQueue::Request request;
};
struct TraceRead {
    std::uint64_t id = 0;  // 0: every trace
};
inline constexpr std::uint32_t kMaxTraceSeconds = 300;
inline constexpr std::uint32_t kDefaultTraceSeconds = 10;

// The query as a start (src= or dst= given) or a read; an error names the parameter.
[[nodiscard]] std::expected<std::variant<TraceStart, TraceRead>, std::string> parseTraceQuery(const http::QueryParams& q);
// The read document: one trace (id) or all; nullopt when id names no trace known.
[[nodiscard]] std::optional<std::string> traceJson(const collector::TraceSample* sample, const collector::TraceQueue& queue,
                                                   std::uint64_t id);
[[nodiscard]] std::string renderTraceMetrics(const collector::TraceSample& sample);

}  // namespace netprobe::metrics
