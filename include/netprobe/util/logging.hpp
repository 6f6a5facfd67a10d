// The agent's one logger (spdlog's default logger), with libbpf's output routed into it.
#pragma once

#include <string_view>

namespace netprobe::util {

// Sets the level ("trace", "debug", "info", "warn", "error"); false if unknown.
bool setLogLevel(std::string_view level);
// Routes libbpf's print callback into the logger (libbpf warnings -> warn,
// info -> debug, debug -> trace).
void routeLibbpfLogs();

}  // namespace netprobe::util
