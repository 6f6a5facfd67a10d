// The kernel features NetProbe uses, probed from the running kernel (its BTF and
// libbpf's feature probes), never inferred from the version number alone. The agent
// probes them at start, logs one line per missing feature and exports
// netprobe_feature_enabled{feature}; `netprobe-agent --doctor` prints them.
#pragma once

#include <string>
#include <vector>

namespace netprobe::ebpf {

struct KernelFeature {
    std::string name;         // "ringbuf", "tcx", ...
    std::string min_kernel;   // the mainline release that brought it ("5.8")
    std::string used_for;     // what NetProbe does with it
    std::string without;      // what happens without it
    bool available = false;
    bool required = false;    // the agent refuses to start without it
};

struct KernelInfo {
    std::string release;  // uname -r
    std::string machine;  // uname -m
    std::vector<KernelFeature> features;
    [[nodiscard]] const KernelFeature* find(std::string_view name) const;
};

// Probes every feature (a few BPF_PROG_LOAD/MAP_CREATE probes and one read of the
// vmlinux BTF: milliseconds). Needs CAP_BPF for the program probes; without it
// they report unavailable.
[[nodiscard]] KernelInfo probeKernel();

}  // namespace netprobe::ebpf
