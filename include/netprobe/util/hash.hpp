// Hashing of fixed-size keys (addresses, ports) for the user-space hash tables: 64-bit
// words through splitmix64's finalizer, so every input bit reaches the low bits the
// tables index by (std::hash of an integer is the identity), a word per step instead of
// a byte per multiply.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <netprobe/util/ip.hpp>

namespace netprobe::util {

// splitmix64's finalizer over (h, v).
[[nodiscard]] inline std::size_t mix64(std::size_t h, std::uint64_t v) noexcept {
    std::uint64_t z = h + 0x9e3779b97f4a7c15ULL + v;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<std::size_t>(z ^ (z >> 31));
}

// h and the 16 bytes of an address, as two words.
[[nodiscard]] inline std::size_t hashAddr(std::size_t h, const Addr16& a) noexcept {
    std::uint64_t lo, hi;
    std::memcpy(&lo, a.data(), 8);
    std::memcpy(&hi, a.data() + 8, 8);
    return mix64(mix64(h, lo), hi);
}

}  // namespace netprobe::util
