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
    if (base_[p].generation == (generation_ | 1)) --moved_;
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
    const bool moved = e.stats.packets != b.packets;
    if (moved) {
        out.push_back(sampleOf(e.key, e.stats, b.packets, b.bytes));
        ++moved_;
    }
    b.packets = e.stats.packets;
    b.bytes = e.stats.bytes;
    b.first_seen_ns = e.stats.first_seen_ns;
    b.last_seen_ns = e.stats.last_seen_ns;
    b.generation = moved ? generation_ | 1 : generation_;  // (the low bit: it moved)
}

void FlowDeltaTracker::end() {
    for (std::size_t p = base_.size(); p-- > 0;)
        if ((base_[p].generation & ~1u) != generation_) removeAt(static_cast<std::uint32_t>(p));
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

namespace {
std::uint64_t placeOf(const flow_key& k) noexcept {
    return std::uint64_t{k.ifindex} << 16 | std::uint64_t{k.encap} << 8 | k.direction;
}
}  // namespace

void FlowDeltaTracker::markPlaces(std::span<FlowSample> samples) const {
    if (samples.empty()) return;
    // The samples' 5-tuples, each with the best (first seen, place) among its samples and
    // live entries.
    struct Group {
        std::uint32_t sample;  // one sample of the 5-tuple (its key)
        std::uint64_t first_ns, place;
    };
    std::vector<Group> groups;
    groups.reserve(samples.size());
    std::vector<std::uint32_t> group_of(samples.size());
    FlowTupleIndex index(samples.size());
    auto key_at = [&](std::uint32_t g) -> const flow_key& { return samples[groups[g].sample].key; };
    auto better = [](Group& g, std::uint64_t first_ns, std::uint64_t place) {
        if (first_ns < g.first_ns || (first_ns == g.first_ns && place < g.place)) {
            g.first_ns = first_ns;
            g.place = place;
        }
    };
    for (std::uint32_t i = 0; i < samples.size(); ++i) {
        const auto& s = samples[i];
        std::uint32_t& g = index.slot(s.key, key_at);
        if (g == FlowTupleIndex::npos) {
            g = static_cast<std::uint32_t>(groups.size());
            groups.push_back(Group{i, s.first_seen_ns, placeOf(s.key)});
        } else {
            better(groups[g], s.first_seen_ns, placeOf(s.key));
        }
        group_of[i] = g;
    }
    // The live entries: unless each of them moved in this read (then each is a sample).
    if (moved_ < base_.size()) {
        for (const auto& b : base_) {
            const std::uint32_t g = index.find(b.key, key_at);
            if (g != FlowTupleIndex::npos) better(groups[g], b.first_seen_ns, placeOf(b.key));
        }
    }
    for (std::uint32_t i = 0; i < samples.size(); ++i)
        samples[i].primary = placeOf(samples[i].key) == groups[group_of[i]].place;
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
