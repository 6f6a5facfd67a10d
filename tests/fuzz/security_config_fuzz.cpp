// --security-config (YAML) and --security-set KEY=VALUE: operator input that shapes
// detection and the XDP blocklist.
#include <netprobe/analysis/security/config.hpp>

#include "fuzz_util.hpp"

namespace sec = netprobe::analysis::security;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const auto in = netprobe::fuzz::text(data + 1, size - 1);
    sec::SecurityConfig cfg;
    if (data[0] & 1) {
        // Settings, one per line, applied in order over the defaults.
        std::string_view rest = in;
        while (!rest.empty()) {
            const auto nl = rest.find('\n');
            (void)sec::applySecuritySetting(rest.substr(0, nl), cfg);
            rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        }
    } else {
        (void)sec::parseSecurityConfig(in, cfg);
    }
    // What parsing accepted is a configuration the detectors can run with.
    (void)sec::validate(cfg);
    return 0;
}
