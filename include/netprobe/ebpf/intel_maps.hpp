// netprobe::ebpf::IntelMaps - the datapath's threat-intel maps (bpf/lib/intel.h):
// installs an indicator set as a new LPM trie swapped into intel_ips[0] (a packet sees
// the old trie or the new one, never none), then bumps the generation that makes the
// flows' cached verdicts stale; reads the per-feed counters.
//
//   auto maps = IntelMaps::create(manager);
//   maps->install(entries);          // on the feed loader's thread
//   auto c = maps->readCounters();   // on the collector thread
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/manager.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::ebpf {

struct IntelEntry {
    util::Addr16 addr{};        // IPv4 as IPv4-mapped
    std::uint8_t prefix = 128;  // over the 128-bit (mapped) form
    np_intel_value value{};
};

struct IntelInstall {
    std::uint32_t generation = 0;
    std::size_t entries = 0;
    double seconds = 0;          // to build the trie
    bool batched = false;        // BPF_MAP_UPDATE_BATCH (else one update per entry)
};

class IntelMaps {
public:
    [[nodiscard]] static Result<std::unique_ptr<IntelMaps>> create(const Manager& manager);
    // The maps of a datapath skeleton loaded elsewhere (benchmarks): intel_ips, intel_state, intel_stats.
    [[nodiscard]] static std::unique_ptr<IntelMaps> adopt(util::UniqueFd outer, util::UniqueFd state, util::UniqueFd stats);
    ~IntelMaps();

    // A trie of exactly these entries (prefixes unique) in place of the current one.
    // On failure the current trie stays.
    Result<IntelInstall> install(std::span<const IntelEntry> entries);
    // Per feed (index < NP_INTEL_FEEDS_MAX), summed over the CPUs.
    Result<std::vector<np_intel_counters>> readCounters() const;

private:
    IntelMaps() = default;
    util::UniqueFd outer_, state_, stats_;
    std::uint32_t generation_ = 0;
};

}  // namespace netprobe::ebpf
