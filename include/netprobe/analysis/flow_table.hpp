// Flow records built from the snapshots' per-interval flow samples: totals that
// outlive the kernel entries, an idle timeout and a capacity (least recently seen
// evicted). Pure data structure: unit-testable and benchmarkable.
#pragma once

#include <chrono>
#include <cstdint>
#include <array>
#include <compare>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <netprobe/collector/flow_deltas.hpp>
#include <netprobe/collector/flow_index.hpp>
#include <netprobe/collector/snapshot.hpp>

namespace netprobe::analysis {

using collector::WallTime;

// One flow as the agent reports it. Times are the kernel's (CLOCK_MONOTONIC ns, 0 = none);
// the snapshot of the view converts them (Snapshot::wallOf). The table stores 80 bytes a
// flow (detail::StoredFlow) and the interval counters of the flows that moved.
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

namespace detail {

// A flow as the table stores it: its record without the interval counters. 80 bytes.
struct StoredFlow {
    flow_key key{};
    std::uint8_t tcp_flags = 0;
    std::uint64_t packets = 0, bytes = 0, first_seen_ns = 0, last_seen_ns = 0;
};
static_assert(sizeof(StoredFlow) == 80, "StoredFlow: one per tracked flow, keep it small");

inline constexpr std::size_t kFlowChunk = 1024;  // flows a chunk (80 KiB)
using FlowChunk = std::array<StoredFlow, kFlowChunk>;

struct FlowInterval {
    std::uint64_t packets = 0, bytes = 0;
};

// The record of a stored flow with these interval counters.
[[nodiscard]] inline FlowRecord recordOf(const StoredFlow& s, FlowInterval iv = {}) {
    FlowRecord r;
    r.key = s.key;
    r.tcp_flags = s.tcp_flags;
    r.packets = s.packets;
    r.bytes = s.bytes;
    r.interval_packets = iv.packets;
    r.interval_bytes = iv.bytes;
    r.first_seen_ns = s.first_seen_ns;
    r.last_seen_ns = s.last_seen_ns;
    return r;
}

// The records of one collection. The flows sit in chunks at fixed positions; a chunk is
// shared by every version it did not change in (a new version copies a chunk only when a
// flow in it moved and an older version is still held). order: the positions of the
// records, sorted; interval: the interval counters of the first records in that order
// (the ones that moved: they sort first), the others have none.
struct FlowVersion {
    std::vector<std::shared_ptr<FlowChunk>> chunks;
    std::vector<std::uint32_t> order;
    std::vector<FlowInterval> interval;

    [[nodiscard]] const StoredFlow& stored(std::uint32_t pos) const { return (*chunks[pos / kFlowChunk])[pos % kFlowChunk]; }
    [[nodiscard]] FlowRecord at(std::size_t i) const {
        return recordOf(stored(order[i]), i < interval.size() ? interval[i] : FlowInterval{});
    }
};

}  // namespace detail

// The records of a flow table at one collection, shared (never copied) by the table
// and by every view that publishes them. Immutable. A record is read by value (built
// from the stored flow and the interval counters): iterate, or index in sort order.
class FlowRecords {
public:
    using value_type = FlowRecord;
    using size_type = std::size_t;

    class const_iterator {
    public:
        using iterator_category = std::random_access_iterator_tag;
        using value_type = FlowRecord;
        using difference_type = std::ptrdiff_t;
        using reference = FlowRecord;
        using pointer = void;

        const_iterator() = default;
        const_iterator(const detail::FlowVersion* v, std::size_t i) : v_(v), i_(i) {}
        FlowRecord operator*() const { return v_->at(i_); }
        FlowRecord operator[](difference_type n) const { return v_->at(static_cast<std::size_t>(static_cast<difference_type>(i_) + n)); }
        const_iterator& operator++() {
            ++i_;
            return *this;
        }
        const_iterator operator++(int) {
            auto t = *this;
            ++i_;
            return t;
        }
        const_iterator& operator--() {
            --i_;
            return *this;
        }
        const_iterator operator--(int) {
            auto t = *this;
            --i_;
            return t;
        }
        const_iterator& operator+=(difference_type n) {
            i_ = static_cast<std::size_t>(static_cast<difference_type>(i_) + n);
            return *this;
        }
        const_iterator& operator-=(difference_type n) { return *this += -n; }
        friend const_iterator operator+(const_iterator a, difference_type n) { return a += n; }
        friend const_iterator operator+(difference_type n, const_iterator a) { return a += n; }
        friend const_iterator operator-(const_iterator a, difference_type n) { return a -= n; }
        friend difference_type operator-(const const_iterator& a, const const_iterator& b) {
            return static_cast<difference_type>(a.i_) - static_cast<difference_type>(b.i_);
        }
        friend bool operator==(const const_iterator& a, const const_iterator& b) { return a.i_ == b.i_; }
        friend auto operator<=>(const const_iterator& a, const const_iterator& b) { return a.i_ <=> b.i_; }

    private:
        const detail::FlowVersion* v_ = nullptr;
        std::size_t i_ = 0;
    };
    using iterator = const_iterator;

    FlowRecords() = default;
    FlowRecords(const std::vector<FlowRecord>& records);  // implicit: records in that order
    explicit FlowRecords(std::shared_ptr<const detail::FlowVersion> v) : v_(std::move(v)) {}

    [[nodiscard]] std::size_t size() const { return v_ ? v_->order.size() : 0; }
    [[nodiscard]] bool empty() const { return size() == 0; }
    [[nodiscard]] const_iterator begin() const { return {v_.get(), 0}; }
    [[nodiscard]] const_iterator end() const { return {v_.get(), size()}; }
    [[nodiscard]] FlowRecord operator[](std::size_t i) const { return v_->at(i); }
    [[nodiscard]] FlowRecord front() const { return v_->at(0); }
    [[nodiscard]] FlowRecord back() const { return v_->at(size() - 1); }
    // The same records (one version of the table, not a copy).
    [[nodiscard]] bool sharesWith(const FlowRecords& o) const { return v_ == o.v_; }
    // The i-th record without its interval counters, in place (no record built).
    [[nodiscard]] const detail::StoredFlow& storedAt(std::size_t i) const { return v_->stored(v_->order[i]); }

private:
    std::shared_ptr<const detail::FlowVersion> v_;
};

class FlowTable {
public:
    using Entry = FlowRecord;

    FlowTable(std::size_t max_flows, std::chrono::nanoseconds idle_timeout);

    // One collection: the interval's samples (each packet in exactly one sample), then
    // flows idle past the timeout are forgotten and the least recently seen beyond
    // max_flows evicted (both counted), and the records sorted. The records of the
    // previous collection are not changed (views may hold them): the chunks of flows
    // that moved are copied unless nobody else holds them; the rest stay shared.
    void apply(std::span<const collector::FlowSample> samples, std::uint64_t now_ns);

    [[nodiscard]] std::size_t size() const { return index_.size(); }
    [[nodiscard]] std::size_t capacity() const { return max_flows_; }
    [[nodiscard]] std::uint64_t expiredTotal() const { return expired_; }
    [[nodiscard]] std::uint64_t evictedTotal() const { return evicted_; }
    [[nodiscard]] std::optional<FlowRecord> find(const flow_key& k) const;
    // Chunks of stored flows (80 KiB each) the table holds: the last ones go once empty.
    [[nodiscard]] std::size_t chunks() const { return chunks_.size(); }

    // Every flow, sorted by interval bytes then cumulative bytes, descending (then by
    // position in the table): the table's current version, shared with the caller.
    [[nodiscard]] FlowRecords records() const { return FlowRecords(std::shared_ptr<const detail::FlowVersion>(cur_)); }

private:
    detail::StoredFlow& writable(std::uint32_t pos);  // copies the chunk first when shared
    [[nodiscard]] const detail::StoredFlow& stored(std::uint32_t pos) const {
        return (*chunks_[pos / detail::kFlowChunk])[pos % detail::kFlowChunk];
    }

    std::shared_ptr<detail::FlowVersion> cur_;                // published (views share it)
    std::vector<std::shared_ptr<detail::FlowChunk>> chunks_;  // the working set: cur_'s chunks, or copies
    std::vector<std::uint32_t> free_;                         // positions of forgotten flows (a min-heap)
    std::vector<std::uint32_t> chunk_live_;                   // live flows in each chunk
    std::uint32_t end_ = 0;                                   // positions used so far
    collector::FlowIndex index_;                              // key -> position
    std::size_t max_flows_;
    std::uint64_t idle_ns_;
    std::uint64_t expired_ = 0;
    std::uint64_t evicted_ = 0;
};

}  // namespace netprobe::analysis
