// Flow records built from the snapshots' per-interval flow samples: totals that
// outlive the kernel entries, an idle timeout and a capacity (least recently seen
// evicted). Pure data structure: unit-testable and benchmarkable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include <netprobe/collector/flow_deltas.hpp>
#include <netprobe/collector/snapshot.hpp>

namespace netprobe::analysis {

using collector::WallTime;

struct FlowRecord {
    flow_key key{};  // key.ifindex: the interface (FlowView::interfaceName)
    std::uint64_t packets = 0;  // since the agent first saw the flow
    std::uint64_t bytes = 0;
    std::uint64_t interval_packets = 0;  // during the last collect interval
    std::uint64_t interval_bytes = 0;
    WallTime first_seen{};
    WallTime last_seen{};
    std::uint8_t tcp_flags = 0;  // OR of all flags seen
};

class FlowTable {
public:
    struct Entry {
        std::uint64_t packets = 0, bytes = 0;
        std::uint64_t interval_packets = 0, interval_bytes = 0;
        std::uint64_t first_seen_ns = 0, last_seen_ns = 0;  // monotonic (bpf_ktime_get_*)
        std::uint8_t tcp_flags = 0;
    };

    FlowTable(std::size_t max_flows, std::chrono::nanoseconds idle_timeout);

    // One collection: the interval's samples (each packet in exactly one sample), then
    // flows idle past the timeout are forgotten and the least recently seen beyond
    // max_flows evicted (both counted).
    void apply(std::span<const collector::FlowSample> samples, std::uint64_t now_ns);

    [[nodiscard]] std::size_t size() const { return flows_.size(); }
    [[nodiscard]] std::size_t capacity() const { return max_flows_; }
    [[nodiscard]] std::uint64_t expiredTotal() const { return expired_; }
    [[nodiscard]] std::uint64_t evictedTotal() const { return evicted_; }
    [[nodiscard]] const Entry* find(const flow_key& k) const;

    // Flow records sorted by interval bytes then cumulative bytes, descending.
    // mono_to_wall converts a monotonic timestamp to wall-clock time.
    [[nodiscard]] std::vector<FlowRecord> records(const std::function<WallTime(std::uint64_t)>& mono_to_wall) const;

private:
    std::unordered_map<flow_key, Entry, collector::FlowKeyHash, collector::FlowKeyEq> flows_;
    std::size_t max_flows_;
    std::uint64_t idle_ns_;
    std::uint64_t expired_ = 0;
    std::uint64_t evicted_ = 0;
};

}  // namespace netprobe::analysis
