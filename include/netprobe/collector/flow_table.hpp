// Cumulative per-flow records built from the kernel's per-interval deltas.
// Pure data structure (no kernel access): unit-testable and benchmarkable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
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

class FlowTable {
public:
    struct Entry {
        std::uint64_t packets = 0, bytes = 0;
        std::uint64_t interval_packets = 0, interval_bytes = 0;
        std::uint64_t first_seen_ns = 0, last_seen_ns = 0;  // monotonic (bpf_ktime_get_*)
        std::uint8_t tcp_flags = 0;
        // What the kernel entry held at the last read (0 when it has no entry).
        std::uint64_t kernel_packets = 0, kernel_bytes = 0;
        bool in_kernel = false;
    };

    FlowTable(std::size_t max_flows, std::chrono::nanoseconds idle_timeout);

    // One collection: beginInterval(), observe() each kernel entry (cumulative
    // values of that entry), retire() the final values of entries removed from
    // the kernel, then expire().
    void beginInterval();
    void observe(const ebpf::FlowDelta& kernel_entry);
    void retire(const ebpf::FlowDelta& final_values);
    // Kernel entries not updated for idle_ns (to be removed from the kernel table).
    [[nodiscard]] std::vector<flow_key> kernelIdle(std::uint64_t now_ns, std::uint64_t idle_ns) const;
    // Forgets flows idle past the timeout, then evicts the least recently seen
    // flows beyond max_flows (only flows without a kernel entry are forgotten
    // for idleness; eviction applies to all).
    void expire(std::uint64_t now_ns);

    // Convenience for tests and benchmarks: one collection from kernel entries.
    void apply(const std::vector<ebpf::FlowDelta>& kernel_entries, std::uint64_t now_ns);

    [[nodiscard]] std::size_t size() const { return flows_.size(); }
    [[nodiscard]] std::size_t capacity() const { return max_flows_; }
    [[nodiscard]] std::uint64_t expiredTotal() const { return expired_; }
    [[nodiscard]] std::uint64_t evictedTotal() const { return evicted_; }
    [[nodiscard]] const Entry* find(const flow_key& k) const;

    // Flow records sorted by interval bytes then cumulative bytes, descending.
    // mono_to_wall converts a monotonic timestamp to wall-clock time.
    [[nodiscard]] std::vector<FlowRecord> records(
        const std::function<std::string(std::uint32_t)>& ifname,
        const std::function<WallTime(std::uint64_t)>& mono_to_wall) const;

private:
    std::unordered_map<flow_key, Entry, FlowKeyHash, FlowKeyEq> flows_;
    std::size_t max_flows_;
    std::uint64_t idle_ns_;
    std::uint64_t expired_ = 0;
    std::uint64_t evicted_ = 0;
};

}  // namespace netprobe::collector
