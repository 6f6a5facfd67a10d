// Internal: kernel text symbols for drop locations. Readers only look up what a
// background task already resolved (an address seen for the first time reads as
// "0x..." until then); resolvePending() does one pass over /proc/kallsyms for all
// addresses seen since its last run. Only addresses drops came from are kept:
// holding every symbol cost ~19 MiB of resident memory.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace netprobe::ebpf {

class KernelSymbols {
public:
    // The name ("tcp_v4_rcv+0x1a4") when resolved, else the address in hex; an
    // unresolved address is queued for resolvePending(). Returns true in `queued`
    // when it was newly queued.
    [[nodiscard]] std::string name(std::uint64_t addr, bool& queued) const;
    // Resolves every queued address (blocking: reads /proc/kallsyms once).
    void resolvePending();

private:
    static constexpr std::size_t kMaxCached = 4096;
    mutable std::mutex mu_;
    mutable std::unordered_map<std::uint64_t, std::string> names_;
    mutable std::unordered_set<std::uint64_t> pending_;
};

}  // namespace netprobe::ebpf
