// FlowIndex: flow_key -> position in an array the caller owns. Open addressing with
// linear probing, 4 bytes a slot, at most half full: ~1 MiB for 100k flows, against
// ~14 MiB for an unordered_map of the same flows (a 128-byte node each plus buckets).
// The keys are not stored twice: every operation that compares keys takes
// key_at(position), which reads the key from the caller's array.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/util/hash.hpp>

namespace netprobe::collector {

// Hash and equality of the whole key (its bytes; flow_key has no padding).
struct FlowKeyHash {
    std::size_t operator()(const flow_key& k) const noexcept;
};
struct FlowKeyEq {
    bool operator()(const flow_key& a, const flow_key& b) const noexcept;
};

// A flow_key is a directed 5-tuple (addresses, ports, protocol, family: its first 38
// bytes) at a place (direction, tunnel, ifindex: its last 6).
inline constexpr std::size_t kFlowTupleBytes = 38;
static_assert(offsetof(flow_key, direction) == kFlowTupleBytes && sizeof(flow_key) == 44);
// Hash and equality of the 5-tuple alone (a multiply a word, then util::mix64).
[[nodiscard]] inline std::size_t flowTupleHash(const flow_key& k) noexcept {
    std::uint64_t w[5] = {};
    std::memcpy(w, &k, kFlowTupleBytes);
    std::uint64_t h = 0;
    for (const std::uint64_t x : w) h = (h ^ x) * 0x9e3779b97f4a7c15ULL;
    return util::mix64(0, h);
}

// Slots of an open-addressing table for n keys, at most half full (a power of two).
[[nodiscard]] inline std::size_t flowIndexSlots(std::size_t n) noexcept {
    std::size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}
[[nodiscard]] inline bool sameFlowTuple(const flow_key& a, const flow_key& b) noexcept {
    return std::memcmp(&a, &b, kFlowTupleBytes) == 0;
}
// The same 5-tuple the other way (place fields kept).
[[nodiscard]] inline flow_key reversedFlowTuple(const flow_key& k) noexcept {
    flow_key r = k;
    r.src_ip = k.dst_ip;
    r.dst_ip = k.src_ip;
    r.src_port = k.dst_port;
    r.dst_port = k.src_port;
    return r;
}

// 5-tuple -> a position in an array the caller owns (one per 5-tuple), built once for
// a pass over that array: open addressing, 4 bytes a slot, at most half full.
class FlowTupleIndex {
public:
    static constexpr std::uint32_t npos = ~std::uint32_t{0};
    explicit FlowTupleIndex(std::size_t n) : slots_(flowIndexSlots(n), npos) {}
    // The slot of k's 5-tuple: its position, or npos (then assign one to add it).
    template <class KeyAt>
    [[nodiscard]] std::uint32_t& slot(const flow_key& k, KeyAt&& key_at) {
        return slots_[probe(k, key_at)];
    }
    template <class KeyAt>
    [[nodiscard]] std::uint32_t find(const flow_key& k, KeyAt&& key_at) const {
        return slots_[probe(k, key_at)];
    }

private:
    template <class KeyAt>
    [[nodiscard]] std::size_t probe(const flow_key& k, KeyAt& key_at) const {
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = flowTupleHash(k) & mask;; i = (i + 1) & mask)
            if (slots_[i] == npos || sameFlowTuple(key_at(slots_[i]), k)) return i;
    }

    std::vector<std::uint32_t> slots_;
};

class FlowIndex {
public:
    static constexpr std::uint32_t npos = ~std::uint32_t{0};

    // Forgets every key; room for n keys before the next growth.
    void reset(std::size_t n) {
        slots_.assign(flowIndexSlots(n), kEmpty);
        size_ = 0;
    }

    // The position of k, or npos.
    template <class KeyAt>
    [[nodiscard]] std::uint32_t find(const flow_key& k, KeyAt&& key_at) const {
        if (slots_.empty()) return npos;
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = FlowKeyHash{}(k) & mask;; i = (i + 1) & mask) {
            const std::uint32_t p = slots_[i];
            if (p == kEmpty) return npos;
            if (same(key_at(p), k)) return p;
        }
    }

    // Adds k (absent) at pos; grows (re-reading the keys with key_at) beyond half full.
    template <class KeyAt>
    void insert(const flow_key& k, std::uint32_t pos, KeyAt&& key_at) {
        if (2 * (size_ + 1) > slots_.size()) grow(key_at);
        place(k, pos);
        ++size_;
    }

    // Removes k (present at pos): the slots after it move back (no tombstones).
    template <class KeyAt>
    void erase(const flow_key& k, std::uint32_t pos, KeyAt&& key_at) {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = FlowKeyHash{}(k) & mask;
        while (slots_[i] != pos) i = (i + 1) & mask;
        for (std::size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
            const std::uint32_t p = slots_[j];
            if (p == kEmpty) break;
            const std::size_t home = FlowKeyHash{}(key_at(p)) & mask;
            // p may fill the hole at i unless its home lies cyclically in (i, j].
            if (((j - home) & mask) >= ((j - i) & mask)) {
                slots_[i] = p;
                i = j;
            }
        }
        slots_[i] = kEmpty;
        --size_;
    }

    // The key k moved from position from to position to in the caller's array.
    void move(const flow_key& k, std::uint32_t from, std::uint32_t to) {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = FlowKeyHash{}(k) & mask;
        while (slots_[i] != from) i = (i + 1) & mask;
        slots_[i] = to;
    }

    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] std::size_t bytes() const { return slots_.size() * sizeof(std::uint32_t); }

private:
    static constexpr std::uint32_t kEmpty = npos;

    static bool same(const flow_key& a, const flow_key& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

    void place(const flow_key& k, std::uint32_t pos) {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = FlowKeyHash{}(k) & mask;
        while (slots_[i] != kEmpty) i = (i + 1) & mask;
        slots_[i] = pos;
    }

    template <class KeyAt>
    void grow(KeyAt& key_at) {
        std::vector<std::uint32_t> old;
        old.swap(slots_);
        slots_.assign(old.empty() ? 16 : old.size() * 2, kEmpty);
        for (const std::uint32_t p : old)
            if (p != kEmpty) place(key_at(p), p);
    }

    std::vector<std::uint32_t> slots_;
    std::size_t size_ = 0;
};

}  // namespace netprobe::collector
