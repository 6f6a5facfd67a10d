#include "netprobe/util/capabilities.hpp"

#include <cstdint>
#include <fstream>
#include <string>

namespace netprobe::util {

namespace {
constexpr int kCapNetAdmin = 12;
constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;

std::uint64_t effectiveCaps() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
    }
    return 0;
}
}  // namespace

std::vector<std::string> missingCapabilities() {
    const std::uint64_t eff = effectiveCaps();
    auto has = [&](int cap) { return (eff >> cap) & 1U; };
    std::vector<std::string> missing;
    if (!has(kCapBpf) && !has(kCapSysAdmin)) missing.emplace_back("CAP_BPF");
    if (!has(kCapNetAdmin)) missing.emplace_back("CAP_NET_ADMIN");
    if (!has(kCapPerfmon) && !has(kCapSysAdmin)) missing.emplace_back("CAP_PERFMON");
    return missing;
}

}  // namespace netprobe::util
