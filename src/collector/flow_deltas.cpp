#include "netprobe/collector/flow_deltas.hpp"

#include <cstring>
#include <string_view>

namespace netprobe::collector {

std::size_t FlowKeyHash::operator()(const flow_key& k) const noexcept {
    return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(&k), sizeof k));
}

bool FlowKeyEq::operator()(const flow_key& a, const flow_key& b) const noexcept {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

namespace {
FlowSample sampleOf(const flow_key& key, const np_flow_stats& cur, std::uint64_t prev_packets, std::uint64_t prev_bytes) {
    FlowSample s;
    s.key = key;
    s.packets = cur.packets - prev_packets;
    s.bytes = cur.bytes - prev_bytes;
    s.first_seen_ns = cur.first_seen_ns;
    s.last_seen_ns = cur.last_seen_ns;
    s.tcp_flags = cur.tcp_flags;
    return s;
}
}  // namespace

void FlowDeltaTracker::add(const ebpf::FlowEntry& e, std::vector<FlowSample>& out) {
    auto [it, fresh] = base_.try_emplace(e.key);
    Base& b = it->second;
    // Below the baseline: not the entry we knew (removed and created again).
    if (!fresh && (e.stats.packets < b.packets || e.stats.bytes < b.bytes)) b = Base{};
    if (e.stats.packets != b.packets) out.push_back(sampleOf(e.key, e.stats, b.packets, b.bytes));
    b.packets = e.stats.packets;
    b.bytes = e.stats.bytes;
    b.last_seen_ns = e.stats.last_seen_ns;
    b.generation = generation_;
}

void FlowDeltaTracker::end() {
    std::erase_if(base_, [this](const auto& kv) { return kv.second.generation != generation_; });
}

void FlowDeltaTracker::update(std::span<const ebpf::FlowEntry> entries, std::vector<FlowSample>& out) {
    begin();
    for (const auto& e : entries) add(e, out);
    end();
}

FlowSample FlowDeltaTracker::retire(const flow_key& key, const np_flow_stats& final_values) {
    Base b;
    if (auto it = base_.find(key); it != base_.end()) {
        b = it->second;
        base_.erase(it);
    }
    if (final_values.packets < b.packets || final_values.bytes < b.bytes) b = Base{};
    FlowSample s = sampleOf(key, final_values, b.packets, b.bytes);
    s.ended = true;
    return s;
}

std::vector<flow_key> FlowDeltaTracker::idle(std::uint64_t now_ns, std::uint64_t idle_ns) const {
    std::vector<flow_key> out;
    for (const auto& [k, b] : base_)
        if (now_ns > b.last_seen_ns && now_ns - b.last_seen_ns > idle_ns) out.push_back(k);
    return out;
}

}  // namespace netprobe::collector
