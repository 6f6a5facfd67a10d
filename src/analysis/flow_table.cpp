#include "netprobe/analysis/flow_table.hpp"

#include <algorithm>
#include <cstring>

namespace netprobe::analysis {

FlowTable::FlowTable(std::size_t max_flows, std::chrono::nanoseconds idle_timeout)
    : max_flows_(max_flows), idle_ns_(static_cast<std::uint64_t>(std::max<std::int64_t>(idle_timeout.count(), 0))) {}

void FlowTable::apply(std::span<const collector::FlowSample> samples, std::uint64_t now_ns) {
    for (auto& [_, e] : flows_) e.interval_packets = e.interval_bytes = 0;
    for (const auto& s : samples) {
        auto [it, inserted] = flows_.try_emplace(s.key);
        auto& e = it->second;
        e.packets += s.packets;
        e.bytes += s.bytes;
        e.interval_packets += s.packets;
        e.interval_bytes += s.bytes;
        if (inserted || (s.first_seen_ns && s.first_seen_ns < e.first_seen_ns)) e.first_seen_ns = s.first_seen_ns;
        e.last_seen_ns = std::max(e.last_seen_ns, s.last_seen_ns);
        e.tcp_flags |= s.tcp_flags;
    }
    if (idle_ns_ > 0) {
        std::erase_if(flows_, [&](const auto& kv) {
            const auto& e = kv.second;
            const bool idle = e.interval_packets == 0 && now_ns > e.last_seen_ns && now_ns - e.last_seen_ns > idle_ns_;
            expired_ += idle ? 1 : 0;
            return idle;
        });
    }
    if (flows_.size() > max_flows_) {
        std::vector<std::pair<std::uint64_t, flow_key>> by_age;
        by_age.reserve(flows_.size());
        for (const auto& [k, e] : flows_) by_age.emplace_back(e.last_seen_ns, k);
        const std::size_t excess = flows_.size() - max_flows_;
        std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(excess), by_age.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (std::size_t i = 0; i < excess; ++i) flows_.erase(by_age[i].second);
        evicted_ += excess;
    }
}

const FlowTable::Entry* FlowTable::find(const flow_key& k) const {
    auto it = flows_.find(k);
    return it == flows_.end() ? nullptr : &it->second;
}

std::vector<FlowRecord> FlowTable::records(const std::function<WallTime(std::uint64_t)>& mono_to_wall) const {
    std::vector<FlowRecord> out;
    out.reserve(flows_.size());
    for (const auto& [k, e] : flows_) {
        FlowRecord r;
        r.key = k;
        r.packets = e.packets;
        r.bytes = e.bytes;
        r.interval_packets = e.interval_packets;
        r.interval_bytes = e.interval_bytes;
        r.first_seen = mono_to_wall(e.first_seen_ns);
        r.last_seen = mono_to_wall(e.last_seen_ns);
        r.tcp_flags = e.tcp_flags;
        out.push_back(r);
    }
    std::sort(out.begin(), out.end(), [](const FlowRecord& a, const FlowRecord& b) {
        if (a.interval_bytes != b.interval_bytes) return a.interval_bytes > b.interval_bytes;
        if (a.bytes != b.bytes) return a.bytes > b.bytes;
        return std::memcmp(&a.key, &b.key, sizeof a.key) < 0;
    });
    return out;
}

}  // namespace netprobe::analysis
