// Go-style durations ("500ms", "5s", "1m30s", "1h") as used by the agent's flags.
#pragma once

#include <chrono>
#include <expected>
#include <string>
#include <string_view>

namespace netprobe::util {

// Parses a Go time.ParseDuration-style string: a sequence of decimal numbers, each
// with optional fraction and a unit ("ns", "us", "µs", "ms", "s", "m", "h", and "d" = 24h
// as Prometheus spells retention periods).
// Negative values, a missing unit (except "0"), unknown units and overflow are
// errors; the error string says what is wrong.
[[nodiscard]] std::expected<std::chrono::nanoseconds, std::string> parseDuration(std::string_view text);

// Formats like Go's Duration.String(): "5s", "500ms", "1m30s", "1h0m0s".
[[nodiscard]] std::string formatDuration(std::chrono::nanoseconds d);

}  // namespace netprobe::util
