#include "netprobe/analysis/flow_table.hpp"

#include <algorithm>
#include <cstring>

namespace netprobe::analysis {

FlowTable::FlowTable(std::size_t max_flows, std::chrono::nanoseconds idle_timeout)
    : max_flows_(max_flows), idle_ns_(static_cast<std::uint64_t>(std::max<std::int64_t>(idle_timeout.count(), 0))) {}

void FlowTable::apply(std::span<const collector::FlowSample> samples, std::uint64_t now_ns) {
    // The next records: the previous ones (positions unchanged, so the index still
    // holds) with the interval counters reset, then the samples. A view may still
    // publish the previous buffer: it is copied unless this table is its only owner.
    // Nothing moved, and nothing to reset, expire or evict: the next records would equal
    // these, which stay (shared with the views that publish them) instead of a copy of
    // the whole table at every quiet collection (9 MiB more at the peak with 100k flows).
    if (samples.empty() && recs_ && recs_->size() <= max_flows_ &&
        std::none_of(recs_->begin(), recs_->end(), [&](const FlowRecord& e) {
            return e.interval_packets != 0 || e.interval_bytes != 0 ||
                   (idle_ns_ > 0 && now_ns > e.last_seen_ns && now_ns - e.last_seen_ns > idle_ns_);
        }))
        return;
    std::shared_ptr<std::vector<FlowRecord>> next;
    const std::size_t prev = size();
    if (recs_ && recs_.use_count() == 1) {
        next = std::move(recs_);
        next->reserve(prev + samples.size());
    } else {
        next = std::make_shared<std::vector<FlowRecord>>();
        // Room for every sample being a new flow: address space only (a large buffer is
        // mmapped, its pages resident once written), so the vector never regrows.
        next->reserve(prev + samples.size());
        if (recs_) next->assign(recs_->begin(), recs_->end());
    }
    recs_.reset();
    auto& v = *next;
    for (auto& r : v) r.interval_packets = r.interval_bytes = 0;
    auto key_at = [&v](std::uint32_t p) -> const flow_key& { return v[p].key; };
    for (const auto& s : samples) {
        std::uint32_t p = index_.find(s.key, key_at);
        const bool inserted = p == collector::FlowIndex::npos;
        if (inserted) {
            p = static_cast<std::uint32_t>(v.size());
            v.push_back(FlowRecord{.key = s.key});
            index_.insert(s.key, p, key_at);
        }
        auto& e = v[p];
        e.packets += s.packets;
        e.bytes += s.bytes;
        e.interval_packets += s.packets;
        e.interval_bytes += s.bytes;
        if (inserted || (s.first_seen_ns && s.first_seen_ns < e.first_seen_ns)) e.first_seen_ns = s.first_seen_ns;
        e.last_seen_ns = std::max(e.last_seen_ns, s.last_seen_ns);
        e.tcp_flags |= s.tcp_flags;
    }
    if (idle_ns_ > 0) {
        expired_ += std::erase_if(v, [&](const FlowRecord& e) {
            return e.interval_packets == 0 && now_ns > e.last_seen_ns && now_ns - e.last_seen_ns > idle_ns_;
        });
    }
    if (v.size() > max_flows_) {
        // The max_flows most recently seen first; the rest are evicted.
        const std::size_t excess = v.size() - max_flows_;
        std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(max_flows_), v.end(),
                         [](const FlowRecord& a, const FlowRecord& b) { return a.last_seen_ns > b.last_seen_ns; });
        v.resize(max_flows_);
        evicted_ += excess;
    }
    std::sort(v.begin(), v.end(), [](const FlowRecord& a, const FlowRecord& b) {
        if (a.interval_bytes != b.interval_bytes) return a.interval_bytes > b.interval_bytes;
        if (a.bytes != b.bytes) return a.bytes > b.bytes;
        return std::memcmp(&a.key, &b.key, sizeof a.key) < 0;
    });
    index_.reset(v.size());
    for (std::uint32_t p = 0; p < v.size(); ++p) index_.insert(v[p].key, p, key_at);
    recs_ = std::move(next);
}

const FlowRecord* FlowTable::find(const flow_key& k) const {
    if (!recs_) return nullptr;
    const auto& v = *recs_;
    const std::uint32_t p = index_.find(k, [&v](std::uint32_t i) -> const flow_key& { return v[i].key; });
    return p == collector::FlowIndex::npos ? nullptr : &v[p];
}

}  // namespace netprobe::analysis
