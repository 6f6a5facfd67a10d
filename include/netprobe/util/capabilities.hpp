// Privilege checks before touching BPF, with the missing capability named.
#pragma once

#include <string>
#include <vector>

namespace netprobe::util {

// Capabilities the agent needs that the process lacks in its effective set:
// "CAP_BPF" (or CAP_SYS_ADMIN), "CAP_NET_ADMIN", "CAP_PERFMON" (or CAP_SYS_ADMIN).
[[nodiscard]] std::vector<std::string> missingCapabilities();

}  // namespace netprobe::util
