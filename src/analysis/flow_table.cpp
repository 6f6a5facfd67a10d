#include "netprobe/analysis/flow_table.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>

namespace netprobe::analysis {

using detail::FlowChunk;
using detail::FlowInterval;
using detail::FlowVersion;
using detail::kFlowChunk;
using detail::StoredFlow;

FlowRecords::FlowRecords(const std::vector<FlowRecord>& records) {
    auto v = std::make_shared<FlowVersion>();
    v->order.reserve(records.size());
    v->interval.reserve(records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        if (i % kFlowChunk == 0) v->chunks.push_back(std::make_shared<FlowChunk>());
        const auto& r = records[i];
        (*v->chunks.back())[i % kFlowChunk] = StoredFlow{.key = r.key,
                                                         .tcp_flags = r.tcp_flags,
                                                         .packets = r.packets,
                                                         .bytes = r.bytes,
                                                         .first_seen_ns = r.first_seen_ns,
                                                         .last_seen_ns = r.last_seen_ns};
        v->order.push_back(static_cast<std::uint32_t>(i));
        v->interval.push_back({r.interval_packets, r.interval_bytes});
    }
    v_ = std::move(v);
}

FlowTable::FlowTable(std::size_t max_flows, std::chrono::nanoseconds idle_timeout)
    : max_flows_(max_flows), idle_ns_(static_cast<std::uint64_t>(std::max<std::int64_t>(idle_timeout.count(), 0))) {}

StoredFlow& FlowTable::writable(std::uint32_t pos) {
    auto& c = chunks_[pos / kFlowChunk];
    if (c.use_count() > 1) {
        c = std::make_shared<FlowChunk>(*c);  // a published version still reads the old one
    } else {
        // Ours alone: whoever held it before (a view on another thread) is done with it.
        std::atomic_thread_fence(std::memory_order_acquire);
    }
    return (*c)[pos % kFlowChunk];
}

void FlowTable::apply(std::span<const collector::FlowSample> samples, std::uint64_t now_ns) {
    auto idle = [&](const StoredFlow& e) {
        return idle_ns_ > 0 && now_ns > e.last_seen_ns && now_ns - e.last_seen_ns > idle_ns_;
    };
    // What the previous version had: its order (every live flow) and how many of them
    // moved in its interval (their counters go back to 0 now).
    std::vector<std::uint32_t> prev_order;
    std::size_t prev_moved = 0;
    if (cur_) {
        prev_moved = cur_->interval.size();
        // Nothing moved then or now, nothing to expire or evict: the next records would
        // equal these, which stay (shared with the views that publish them).
        if (samples.empty() && prev_moved == 0 && size() <= max_flows_ &&
            std::none_of(cur_->order.begin(), cur_->order.end(), [&](std::uint32_t p) { return idle(stored(p)); }))
            return;
        // Unless a view holds it, the previous version goes now: its chunks are then this
        // table's alone and change in place.
        if (cur_.use_count() == 1) {
            prev_order = std::move(cur_->order);
        } else {
            prev_order = cur_->order;
        }
        cur_.reset();
    }

    // The samples: totals, times and flags written to the stored flows (new flows take a
    // free position), the interval counters collected by position.
    struct Moved {
        std::uint32_t pos;
        std::uint64_t packets, bytes;  // in the interval
        std::uint64_t total;           // the flow's bytes (the second sort key)
    };
    std::vector<Moved> moved;
    moved.reserve(samples.size() + prev_moved);
    auto key_at = [this](std::uint32_t p) -> const flow_key& { return stored(p).key; };
    for (const auto& s : samples) {
        std::uint32_t p = index_.find(s.key, key_at);
        const bool inserted = p == collector::FlowIndex::npos;
        if (inserted) {
            if (!free_.empty()) {  // the lowest free position: the last chunks empty out
                std::pop_heap(free_.begin(), free_.end(), std::greater<>());
                p = free_.back();
                free_.pop_back();
            } else {
                p = end_++;
                if (p / kFlowChunk == chunks_.size()) {
                    chunks_.push_back(std::make_shared<FlowChunk>());
                    chunk_live_.push_back(0);
                }
            }
            ++chunk_live_[p / kFlowChunk];
            writable(p) = StoredFlow{.key = s.key};
            index_.insert(s.key, p, key_at);
        }
        StoredFlow& e = writable(p);
        e.packets += s.packets;
        e.bytes += s.bytes;
        if (inserted || (s.first_seen_ns && s.first_seen_ns < e.first_seen_ns)) e.first_seen_ns = s.first_seen_ns;
        e.last_seen_ns = std::max(e.last_seen_ns, s.last_seen_ns);
        e.tcp_flags |= s.tcp_flags;
        moved.push_back({p, s.packets, s.bytes, 0});
    }
    // One entry a position (a flow may have two samples: its entry read, then removed).
    std::sort(moved.begin(), moved.end(), [](const Moved& a, const Moved& b) { return a.pos < b.pos; });
    std::size_t n = 0;
    for (std::size_t i = 0; i < moved.size(); ++i) {
        if (n > 0 && moved[n - 1].pos == moved[i].pos) {
            moved[n - 1].packets += moved[i].packets;
            moved[n - 1].bytes += moved[i].bytes;
        } else {
            moved[n++] = moved[i];
        }
    }
    moved.resize(n);
    // By position: whether its place in the order may change (a sample, or counters that
    // go back to 0), whether it moved (packets in the interval: it does not expire), and
    // whether it is gone (expired or evicted).
    enum : std::uint8_t { kChanged = 1, kMoved = 2, kGone = 4 };
    std::vector<std::uint8_t> mark(end_, 0);
    for (const auto& m : moved) mark[m.pos] = kChanged | (m.packets != 0 ? kMoved : 0);
    for (std::size_t i = 0; i < prev_moved && i < prev_order.size(); ++i) {
        const std::uint32_t p = prev_order[i];
        if (!(mark[p] & kChanged)) {
            mark[p] = kChanged;
            moved.push_back({p, 0, 0, 0});
        }
    }
    auto forget = [&](std::uint32_t p) {
        index_.erase(stored(p).key, p, key_at);
        free_.push_back(p);
        std::push_heap(free_.begin(), free_.end(), std::greater<>());
        --chunk_live_[p / kFlowChunk];
        mark[p] |= kGone;
    };
    // Flows idle past the timeout (none that moved in this interval) are forgotten.
    if (idle_ns_ > 0) {
        auto expire = [&](std::uint32_t p) {
            if (mark[p] & (kMoved | kGone) || !idle(stored(p))) return;
            forget(p);
            ++expired_;
        };
        for (const std::uint32_t p : prev_order) expire(p);
        for (std::size_t i = 0; i < n; ++i) expire(moved[i].pos);  // (new flows whose samples had no packets)
    }
    // Beyond max_flows: the least recently seen are evicted.
    if (size() > max_flows_) {
        std::vector<std::uint32_t> live;
        live.reserve(prev_order.size() + moved.size());
        for (const std::uint32_t p : prev_order)
            if (!(mark[p] & (kGone | kChanged))) live.push_back(p);
        for (const auto& m : moved)
            if (!(mark[m.pos] & kGone)) live.push_back(m.pos);
        const std::size_t excess = live.size() - max_flows_;
        std::nth_element(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(max_flows_), live.end(),
                         [&](std::uint32_t a, std::uint32_t b) { return stored(a).last_seen_ns > stored(b).last_seen_ns; });
        for (std::size_t i = max_flows_; i < live.size(); ++i) forget(live[i]);
        evicted_ += excess;
    }

    // The order: by interval bytes, then bytes, descending, then by position. The flows
    // that did not change keep their order among themselves (no interval counters before
    // or now, the same bytes): the changed ones are sorted and merged in.
    std::erase_if(moved, [&](const Moved& m) { return mark[m.pos] & kGone; });
    for (auto& m : moved) m.total = stored(m.pos).bytes;
    auto before = [](std::uint64_t ib_a, std::uint64_t b_a, std::uint32_t p_a, std::uint64_t ib_b, std::uint64_t b_b,
                     std::uint32_t p_b) {
        if (ib_a != ib_b) return ib_a > ib_b;
        if (b_a != b_b) return b_a > b_b;
        return p_a < p_b;
    };
    std::sort(moved.begin(), moved.end(), [&](const Moved& a, const Moved& b) {
        return before(a.bytes, a.total, a.pos, b.bytes, b.total, b.pos);
    });
    auto next = std::make_shared<FlowVersion>();
    next->order.reserve(size());
    auto& order = next->order;
    auto& interval = next->interval;
    std::size_t mi = 0;
    auto take_moved = [&] {
        const auto& m = moved[mi++];
        order.push_back(m.pos);
        if (m.packets != 0 || m.bytes != 0) {
            interval.resize(order.size());
            interval.back() = {m.packets, m.bytes};
        }
    };
    for (const std::uint32_t p : prev_order) {
        if (mark[p] & (kGone | kChanged)) continue;
        const std::uint64_t total = stored(p).bytes;
        while (mi < moved.size() && before(moved[mi].bytes, moved[mi].total, moved[mi].pos, 0, total, p)) take_moved();
        order.push_back(p);
    }
    while (mi < moved.size()) take_moved();
    // The last chunks, once none of their flows is live, go (after a burst of flows).
    if (!chunk_live_.empty() && chunk_live_.back() == 0) {
        while (!chunk_live_.empty() && chunk_live_.back() == 0) {
            chunks_.pop_back();
            chunk_live_.pop_back();
        }
        end_ = std::min<std::uint32_t>(end_, static_cast<std::uint32_t>(chunks_.size() * kFlowChunk));
        std::erase_if(free_, [&](std::uint32_t p) { return p >= end_; });
        std::make_heap(free_.begin(), free_.end(), std::greater<>());
    }
    next->chunks = chunks_;
    cur_ = std::move(next);
}

std::optional<FlowRecord> FlowTable::find(const flow_key& k) const {
    if (!cur_) return std::nullopt;
    const std::uint32_t p = index_.find(k, [this](std::uint32_t i) -> const flow_key& { return stored(i).key; });
    if (p == collector::FlowIndex::npos) return std::nullopt;
    // Its place in the order: only the flows that moved have interval counters.
    for (std::size_t i = 0; i < cur_->interval.size(); ++i)
        if (cur_->order[i] == p) return cur_->at(i);
    return detail::recordOf(stored(p));
}

}  // namespace netprobe::analysis
