// The agent's one logger (spdlog's default logger), with libbpf's output routed into it.
#pragma once

#include <string_view>

namespace netprobe::util {

// Sets the level ("trace", "debug", "info", "warn", "error"); false if unknown.
bool setLogLevel(std::string_view level);
// Routes libbpf's print callback into the logger (libbpf warnings -> warn,
// info -> debug, debug -> trace).
void routeLibbpfLogs();

// While alive, libbpf messages on this thread go to trace level: for probes whose
// failure is an expected answer (e.g. querying a qdisc that may not exist).
class QuietLibbpf {
public:
    QuietLibbpf();
    ~QuietLibbpf();
    QuietLibbpf(const QuietLibbpf&) = delete;
    QuietLibbpf& operator=(const QuietLibbpf&) = delete;
};

}  // namespace netprobe::util
