#include "netprobe/util/logging.hpp"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <string>

namespace netprobe::util {

bool setLogLevel(std::string_view level) {
    auto lvl = spdlog::level::from_str(std::string(level));
    if (lvl == spdlog::level::off && level != "off") return false;
    spdlog::set_level(lvl);
    return true;
}

namespace {
thread_local int quiet_depth = 0;

int libbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
    // A verifier log comes as one message of up to megabytes: its end says why the
    // program was refused, so the message is never cut to a fixed buffer.
    va_list again;
    va_copy(again, args);
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof buf, fmt, args);
    std::string big;
    if (n >= static_cast<int>(sizeof buf)) {
        big.resize(static_cast<std::size_t>(n) + 1);
        n = std::vsnprintf(big.data(), big.size(), fmt, again);
    }
    va_end(again);
    if (n <= 0) return n;
    std::string_view msg = big.empty() ? std::string_view(buf, static_cast<std::size_t>(n))
                                       : std::string_view(big.data(), static_cast<std::size_t>(n));
    while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
    if (quiet_depth > 0) {
        spdlog::trace("libbpf: {}", msg);
        return n;
    }
    switch (level) {
        case LIBBPF_WARN: spdlog::warn("libbpf: {}", msg); break;
        case LIBBPF_INFO: spdlog::debug("libbpf: {}", msg); break;
        default: spdlog::trace("libbpf: {}", msg); break;
    }
    return n;
}
}  // namespace

void routeLibbpfLogs() {
    libbpf_set_print(libbpfPrint);
}

QuietLibbpf::QuietLibbpf() { ++quiet_depth; }
QuietLibbpf::~QuietLibbpf() { --quiet_depth; }

}  // namespace netprobe::util
