// Kernel flow entries hold cumulative values; the snapshot carries each interval's
// deltas. FlowDeltaTracker keeps, per live kernel entry, what the previous read saw,
// so every packet is counted exactly once: however long the agent keeps (or
// forgets) its own record of the flow, and whether or not a removal succeeds.
// Pure: no kernel access (the datapath source feeds it what it read).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include <netprobe/collector/snapshot.hpp>
#include <netprobe/ebpf/types.hpp>

namespace netprobe::collector {

struct FlowKeyHash {
    std::size_t operator()(const flow_key& k) const noexcept;
};
struct FlowKeyEq {
    bool operator()(const flow_key& a, const flow_key& b) const noexcept;
};

class FlowDeltaTracker {
public:
    // One full read of the kernel table, entry by entry: begin(), add() each entry
    // (appends its delta to out when it has new packets; a new entry counts in full),
    // end() (entries absent from the read are forgotten: they were removed).
    void begin() { ++generation_; }
    void add(const ebpf::FlowEntry& entry, std::vector<FlowSample>& out);
    void end();
    // begin(), add() of every entry, end().
    void update(std::span<const ebpf::FlowEntry> entries, std::vector<FlowSample>& out);
    // An entry removed with its final values: its delta since the last read (ended),
    // and the entry forgotten.
    [[nodiscard]] FlowSample retire(const flow_key& key, const np_flow_stats& final_values);
    // An entry that no longer exists (its removal found nothing): forgotten.
    void forget(const flow_key& key) { base_.erase(key); }
    // Live entries without a packet since idle_ns before now_ns (CLOCK_MONOTONIC ns).
    [[nodiscard]] std::vector<flow_key> idle(std::uint64_t now_ns, std::uint64_t idle_ns) const;
    [[nodiscard]] std::size_t size() const { return base_.size(); }

private:
    struct Base {  // 32 bytes: a baseline lives as long as its kernel entry
        std::uint64_t packets = 0, bytes = 0, last_seen_ns = 0;
        std::uint32_t generation = 0;
    };
    std::unordered_map<flow_key, Base, FlowKeyHash, FlowKeyEq> base_;
    std::uint32_t generation_ = 0;
};

}  // namespace netprobe::collector
