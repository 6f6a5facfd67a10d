// JSON text written straight into a string (no document tree): the hot serializers
// (/api/v1/flows, flow records for the sinks) use these instead of nlohmann::json, whose
// trees cost several microseconds and a few allocations per object.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace netprobe::util {

// v as a JSON string literal: quotes and backslashes escaped, control characters and any
// non-ASCII byte as \u00XX (names are bytes, not necessarily UTF-8: always valid JSON).
void appendJsonString(std::string& out, std::string_view v);
void appendJsonUint(std::string& out, std::uint64_t v);
void appendJsonInt(std::string& out, std::int64_t v);
// The shortest text that reads back as v; null when v is not finite (JSON has no NaN).
void appendJsonDouble(std::string& out, double v);
// ,"key": (a comma unless out ends with '{')
void appendJsonKey(std::string& out, std::string_view key);

}  // namespace netprobe::util
