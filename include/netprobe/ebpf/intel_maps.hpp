// netprobe::ebpf::IntelMaps - the datapath's threat-intel maps (bpf/lib/intel.h):
// installs an indicator set as a new LPM trie swapped into intel_ips[0] (a packet sees
// the old trie or the new one, never none), then bumps the generation that makes the
// flows' cached verdicts stale; keeps the addresses resolved from domain indicators
// (intel_resolved) equal to what it is given; reads the per-feed counters. Both writers
// may run on different threads (the feed loader's, the pipeline's sink).
//
//   auto maps = IntelMaps::create(manager);
//   maps->install(entries);          // on the feed loader's thread
//   auto c = maps->readCounters();   // on the collector thread
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
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

struct IntelResolvedEntry {
    util::Addr16 addr{};  // IPv4 as IPv4-mapped
    np_intel_value value{};
};

struct IntelResolvedApply {
    std::uint32_t generation = 0;  // unchanged when nothing changed
    std::size_t entries = 0;       // in the kernel after the apply
    std::size_t added = 0, removed = 0, updated = 0;
    std::size_t failed = 0;        // inserts/deletes that failed (retried at the next apply)
};

class IntelMaps {
public:
    [[nodiscard]] static Result<std::unique_ptr<IntelMaps>> create(const Manager& manager);
    // The maps of a datapath skeleton loaded elsewhere (benchmarks): intel_ips, intel_state,
    // intel_stats (and intel_resolved, optional).
    [[nodiscard]] static std::unique_ptr<IntelMaps> adopt(util::UniqueFd outer, util::UniqueFd state, util::UniqueFd stats,
                                                          util::UniqueFd resolved = {});
    ~IntelMaps();

    // A trie of exactly these entries (prefixes unique) in place of the current one.
    // On failure the current trie stays.
    Result<IntelInstall> install(std::span<const IntelEntry> entries);
    // intel_resolved holds exactly `desired` (addresses unique; at most
    // NP_INTEL_RESOLVED_MAX, the rest is not inserted and counted as failed); the
    // generation is bumped when anything changed. A failed insert or delete is retried at
    // the next call (the kernel and the record of it never disagree).
    IntelResolvedApply applyResolved(std::span<const IntelResolvedEntry> desired);
    // Per feed (index < NP_INTEL_FEEDS_MAX), summed over the CPUs.
    Result<std::vector<np_intel_counters>> readCounters() const;

private:
    IntelMaps() = default;
    Result<std::uint32_t> bumpLocked();  // a new generation in intel_state (mu_ held)
    util::UniqueFd outer_, state_, stats_, resolved_;
    std::mutex mu_;  // generation_, in_kernel_ and the intel_state writes
    std::uint32_t generation_ = 0;
    bool bump_pending_ = false;  // intel_resolved changed but the generation write failed
    std::unordered_map<util::Addr16, np_intel_value, util::AddrHash> in_kernel_;  // intel_resolved's content
};

}  // namespace netprobe::ebpf
