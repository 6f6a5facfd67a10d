#include "netprobe/collector/flow_table.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace netprobe::collector {

std::size_t FlowKeyHash::operator()(const flow_key& k) const noexcept {
    return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(&k), sizeof k));
}

bool FlowKeyEq::operator()(const flow_key& a, const flow_key& b) const noexcept {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

FlowTable::FlowTable(std::size_t max_flows, std::chrono::nanoseconds idle_timeout)
    : max_flows_(max_flows), idle_ns_(static_cast<std::uint64_t>(idle_timeout.count())) {}

void FlowTable::beginInterval() {
    for (auto& [_, e] : flows_) e.interval_packets = e.interval_bytes = 0;
}

void FlowTable::observe(const ebpf::FlowDelta& d) {
    auto [it, inserted] = flows_.try_emplace(d.key);
    auto& e = it->second;
    // A kernel value below what we saw last is a new kernel entry (the old one
    // was removed): all of it is new.
    const bool fresh = !e.in_kernel || d.stats.packets < e.kernel_packets;
    const std::uint64_t dp = fresh ? d.stats.packets : d.stats.packets - e.kernel_packets;
    const std::uint64_t db = fresh ? d.stats.bytes : d.stats.bytes - e.kernel_bytes;
    e.packets += dp;
    e.bytes += db;
    e.interval_packets += dp;
    e.interval_bytes += db;
    e.kernel_packets = d.stats.packets;
    e.kernel_bytes = d.stats.bytes;
    e.in_kernel = true;
    if (inserted || (d.stats.first_seen_ns && d.stats.first_seen_ns < e.first_seen_ns))
        e.first_seen_ns = d.stats.first_seen_ns;
    e.last_seen_ns = std::max<std::uint64_t>(e.last_seen_ns, d.stats.last_seen_ns);
    e.tcp_flags |= d.stats.tcp_flags;
}

void FlowTable::retire(const ebpf::FlowDelta& d) {
    observe(d);
    auto it = flows_.find(d.key);
    it->second.in_kernel = false;
    it->second.kernel_packets = it->second.kernel_bytes = 0;
}

std::vector<flow_key> FlowTable::kernelIdle(std::uint64_t now_ns, std::uint64_t idle_ns) const {
    std::vector<flow_key> out;
    for (const auto& [k, e] : flows_)
        if (e.in_kernel && now_ns > e.last_seen_ns && now_ns - e.last_seen_ns > idle_ns) out.push_back(k);
    return out;
}

void FlowTable::expire(std::uint64_t now_ns) {
    if (idle_ns_ > 0) {
        std::erase_if(flows_, [&](const auto& kv) {
            const auto& e = kv.second;
            bool idle = !e.in_kernel && e.interval_packets == 0 && now_ns > e.last_seen_ns &&
                        now_ns - e.last_seen_ns > idle_ns_;
            expired_ += idle ? 1 : 0;
            return idle;
        });
    }
    if (flows_.size() > max_flows_) {
        std::vector<std::pair<std::uint64_t, flow_key>> by_age;
        by_age.reserve(flows_.size());
        for (const auto& [k, e] : flows_) by_age.emplace_back(e.last_seen_ns, k);
        std::size_t excess = flows_.size() - max_flows_;
        std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(excess), by_age.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (std::size_t i = 0; i < excess; ++i) flows_.erase(by_age[i].second);
        evicted_ += excess;
    }
}

void FlowTable::apply(const std::vector<ebpf::FlowDelta>& kernel_entries, std::uint64_t now_ns) {
    beginInterval();
    for (const auto& d : kernel_entries) observe(d);
    expire(now_ns);
}

const FlowTable::Entry* FlowTable::find(const flow_key& k) const {
    auto it = flows_.find(k);
    return it == flows_.end() ? nullptr : &it->second;
}

std::vector<FlowRecord> FlowTable::records(const std::function<std::string(std::uint32_t)>& ifname,
                                           const std::function<WallTime(std::uint64_t)>& mono_to_wall) const {
    std::vector<FlowRecord> out;
    out.reserve(flows_.size());
    std::unordered_map<std::uint32_t, std::string> names;
    for (const auto& [k, e] : flows_) {
        FlowRecord r;
        r.key = k;
        auto [nit, fresh] = names.try_emplace(k.ifindex);
        if (fresh) nit->second = ifname(k.ifindex);
        r.interface = nit->second;
        r.packets = e.packets;
        r.bytes = e.bytes;
        r.interval_packets = e.interval_packets;
        r.interval_bytes = e.interval_bytes;
        r.first_seen = mono_to_wall(e.first_seen_ns);
        r.last_seen = mono_to_wall(e.last_seen_ns);
        r.tcp_flags = e.tcp_flags;
        out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(), [](const FlowRecord& a, const FlowRecord& b) {
        if (a.interval_bytes != b.interval_bytes) return a.interval_bytes > b.interval_bytes;
        if (a.bytes != b.bytes) return a.bytes > b.bytes;
        return std::memcmp(&a.key, &b.key, sizeof a.key) < 0;
    });
    return out;
}

}  // namespace netprobe::collector
