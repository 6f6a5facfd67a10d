// Flow records built from the snapshots' per-interval flow samples: totals that
// outlive the kernel entries, an idle timeout and a capacity (least recently seen
// evicted). Pure data structure: unit-testable and benchmarkable.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <netprobe/collector/flow_deltas.hpp>
#include <netprobe/collector/flow_index.hpp>
#include <netprobe/collector/snapshot.hpp>

namespace netprobe::analysis {

using collector::WallTime;

// One flow as the agent keeps it. Times are the kernel's (CLOCK_MONOTONIC ns, 0 = none);
// the snapshot of the view converts them (Snapshot::wallOf). 96 bytes: the flow table
// holds one per tracked flow, and a view under construction another.
struct FlowRecord {
    flow_key key{};              // key.ifindex: the interface (FlowView::interfaceName)
    std::uint8_t tcp_flags = 0;  // OR of all flags seen
    std::uint64_t packets = 0;   // since the agent first saw the flow
    std::uint64_t bytes = 0;
    std::uint64_t interval_packets = 0;  // during the last collect interval
    std::uint64_t interval_bytes = 0;
    std::uint64_t first_seen_ns = 0;
    std::uint64_t last_seen_ns = 0;
};
static_assert(sizeof(FlowRecord) == 96, "FlowRecord: one per tracked flow, keep it small");

// The records of a flow table at one collection, shared (never copied) by the table
// and by every view that publishes them. Immutable.
class FlowRecords {
public:
    using value_type = FlowRecord;
    using const_iterator = const FlowRecord*;
    using iterator = const_iterator;
    using size_type = std::size_t;

    FlowRecords() = default;
    FlowRecords(std::vector<FlowRecord> records)  // implicit: a vector is a valid set of records
        : p_(std::make_shared<const std::vector<FlowRecord>>(std::move(records))) {}
    explicit FlowRecords(std::shared_ptr<const std::vector<FlowRecord>> records) : p_(std::move(records)) {}

    [[nodiscard]] const FlowRecord* data() const { return p_ ? p_->data() : nullptr; }
    [[nodiscard]] std::size_t size() const { return p_ ? p_->size() : 0; }
    [[nodiscard]] bool empty() const { return size() == 0; }
    [[nodiscard]] const FlowRecord* begin() const { return data(); }
    [[nodiscard]] const FlowRecord* end() const { return data() + size(); }
    [[nodiscard]] const FlowRecord& operator[](std::size_t i) const { return (*p_)[i]; }
    [[nodiscard]] const FlowRecord& front() const { return p_->front(); }
    [[nodiscard]] const FlowRecord& back() const { return p_->back(); }
    [[nodiscard]] std::span<const FlowRecord> span() const { return {data(), size()}; }
    operator std::span<const FlowRecord>() const { return span(); }

private:
    std::shared_ptr<const std::vector<FlowRecord>> p_;
};

class FlowTable {
public:
    using Entry = FlowRecord;

    FlowTable(std::size_t max_flows, std::chrono::nanoseconds idle_timeout);

    // One collection: the interval's samples (each packet in exactly one sample), then
    // flows idle past the timeout are forgotten and the least recently seen beyond
    // max_flows evicted (both counted), and the records sorted. The records of the
    // previous collection are not changed (views may hold them): the new ones are
    // written to a new buffer, unless nobody else holds the old one.
    void apply(std::span<const collector::FlowSample> samples, std::uint64_t now_ns);

    [[nodiscard]] std::size_t size() const { return recs_ ? recs_->size() : 0; }
    [[nodiscard]] std::size_t capacity() const { return max_flows_; }
    [[nodiscard]] std::uint64_t expiredTotal() const { return expired_; }
    [[nodiscard]] std::uint64_t evictedTotal() const { return evicted_; }
    [[nodiscard]] const FlowRecord* find(const flow_key& k) const;

    // Every flow, sorted by interval bytes then cumulative bytes, descending (then by
    // key): the table's own buffer, shared with the caller.
    [[nodiscard]] FlowRecords records() const { return FlowRecords(std::shared_ptr<const std::vector<FlowRecord>>(recs_)); }

private:
    std::shared_ptr<std::vector<FlowRecord>> recs_;  // sorted; shared with the views
    collector::FlowIndex index_;                     // key -> position in *recs_
    std::size_t max_flows_;
    std::uint64_t idle_ns_;
    std::uint64_t expired_ = 0;
    std::uint64_t evicted_ = 0;
};

}  // namespace netprobe::analysis
