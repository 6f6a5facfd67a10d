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

std::uint32_t FlowDeltaTracker::find(const flow_key& key) const {
    return index_.find(key, [this](std::uint32_t p) -> const flow_key& { return base_[p].key; });
}

void FlowDeltaTracker::removeAt(std::uint32_t p) {
    auto key_at = [this](std::uint32_t i) -> const flow_key& { return base_[i].key; };
    index_.erase(base_[p].key, p, key_at);
    const auto last = static_cast<std::uint32_t>(base_.size() - 1);
    if (p != last) {
        index_.move(base_[last].key, last, p);
        base_[p] = base_[last];
    }
    base_.pop_back();
}

void FlowDeltaTracker::add(const ebpf::FlowEntry& e, std::vector<FlowSample>& out) {
    std::uint32_t p = find(e.key);
    const bool fresh = p == FlowIndex::npos;
    if (fresh) {
        p = static_cast<std::uint32_t>(base_.size());
        base_.push_back(Base{.key = e.key});
        index_.insert(e.key, p, [this](std::uint32_t i) -> const flow_key& { return base_[i].key; });
    }
    Base& b = base_[p];
    // Below the baseline: not the entry we knew (removed and created again).
    if (!fresh && (e.stats.packets < b.packets || e.stats.bytes < b.bytes)) b.packets = b.bytes = b.last_seen_ns = 0;
    if (e.stats.packets != b.packets) out.push_back(sampleOf(e.key, e.stats, b.packets, b.bytes));
    b.packets = e.stats.packets;
    b.bytes = e.stats.bytes;
    b.last_seen_ns = e.stats.last_seen_ns;
    b.generation = generation_;
}

void FlowDeltaTracker::end() {
    for (std::size_t p = base_.size(); p-- > 0;)
        if (base_[p].generation != generation_) removeAt(static_cast<std::uint32_t>(p));
}

void FlowDeltaTracker::update(std::span<const ebpf::FlowEntry> entries, std::vector<FlowSample>& out) {
    begin();
    for (const auto& e : entries) add(e, out);
    end();
}

FlowSample FlowDeltaTracker::retire(const flow_key& key, const np_flow_stats& final_values) {
    std::uint64_t packets = 0, bytes = 0;
    if (const std::uint32_t p = find(key); p != FlowIndex::npos) {
        packets = base_[p].packets;
        bytes = base_[p].bytes;
        removeAt(p);
    }
    if (final_values.packets < packets || final_values.bytes < bytes) packets = bytes = 0;
    FlowSample s = sampleOf(key, final_values, packets, bytes);
    s.ended = true;
    return s;
}

void FlowDeltaTracker::forget(const flow_key& key) {
    if (const std::uint32_t p = find(key); p != FlowIndex::npos) removeAt(p);
}

std::vector<flow_key> FlowDeltaTracker::idle(std::uint64_t now_ns, std::uint64_t idle_ns, std::size_t max) const {
    std::vector<flow_key> out;
    for (const auto& b : base_) {
        if (out.size() >= max) break;
        if (now_ns > b.last_seen_ns && now_ns - b.last_seen_ns > idle_ns) out.push_back(b.key);
    }
    return out;
}

}  // namespace netprobe::collector
