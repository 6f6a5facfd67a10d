// Kernel flow entries hold cumulative values; the snapshot carries each interval's
// deltas. FlowDeltaTracker keeps, per live kernel entry, what the previous read saw,
// so every packet is counted exactly once: however long the agent keeps (or
// forgets) its own record of the flow, and whether or not a removal succeeds.
// Pure: no kernel access (the datapath source feeds it what it read).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <netprobe/collector/flow_index.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/ebpf/types.hpp>

namespace netprobe::collector {

class FlowDeltaTracker {
public:
    // One full read of the kernel table, entry by entry: begin(), add() each entry
    // (appends its delta to out when it has new packets; a new entry counts in full),
    // end() (entries absent from the read are forgotten: they were removed).
    void begin() {
        generation_ += 2;  // even: an entry read gets it, | 1 when it moved
        moved_ = 0;
    }
    void add(const ebpf::FlowEntry& entry, std::vector<FlowSample>& out);
    void end();
    // begin(), add() of every entry, end().
    void update(std::span<const ebpf::FlowEntry> entries, std::vector<FlowSample>& out);
    // An entry removed with its final values: its delta since the last read (ended),
    // and the entry forgotten.
    [[nodiscard]] FlowSample retire(const flow_key& key, const np_flow_stats& final_values);
    // An entry that no longer exists (its removal found nothing): forgotten.
    void forget(const flow_key& key);
    // Live entries without a packet since idle_ns before now_ns (CLOCK_MONOTONIC ns); at
    // most max of them (the first in table order).
    [[nodiscard]] std::vector<flow_key> idle(std::uint64_t now_ns, std::uint64_t idle_ns,
                                             std::size_t max = static_cast<std::size_t>(-1)) const;
    // Sets each sample's `primary`: whether its kernel entry is the one its directed
    // 5-tuple is counted at. Of the live entries (those read, and those the last reads
    // kept) and these samples with the sample's 5-tuple, the one first seen by the kernel
    // (then the lowest ifindex, tunnel and direction). The choice holds while that entry
    // lives: an entry created later at another place of the same 5-tuple (the same
    // packets one interface further) is never primary. Cost: a hash of every live entry
    // when there are samples; memory: ~40 bytes a sample, while it runs.
    void markPlaces(std::span<FlowSample> samples) const;
    [[nodiscard]] std::size_t size() const { return base_.size(); }
    // Room for n entries (the kernel table's capacity): the baselines never regrow
    // (a regrowth copies them all). Address space until entries are written.
    void reserve(std::size_t n) { base_.reserve(n); }

private:
    struct Base {  // 80 bytes: a baseline lives as long as its kernel entry
        flow_key key{};
        std::uint32_t generation = 0;
        std::uint64_t packets = 0, bytes = 0, first_seen_ns = 0, last_seen_ns = 0;
    };
    static_assert(sizeof(Base) == 80);
    void removeAt(std::uint32_t p);
    [[nodiscard]] std::uint32_t find(const flow_key& key) const;

    std::vector<Base> base_;  // flat: no per-entry allocation
    FlowIndex index_;         // key -> position in base_
    std::uint32_t generation_ = 0;
    std::size_t moved_ = 0;  // live entries that moved in the current read (each a sample)
};

}  // namespace netprobe::collector
