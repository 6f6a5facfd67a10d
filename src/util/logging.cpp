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
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof buf, fmt, args);
    if (n <= 0) return n;
    std::string_view msg(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
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
