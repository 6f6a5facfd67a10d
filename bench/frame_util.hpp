// Byte helpers for the hand-built frames of the benchmarks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace npbench {

// RFC 1071 one's-complement checksum of n bytes (n even).
inline std::uint16_t ipChecksum(const std::uint8_t* p, std::size_t n) {
    std::uint32_t s = 0;
    for (std::size_t i = 0; i + 1 < n; i += 2) s += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(~s);
}

// Big-endian 16-bit store.
inline void put16(std::uint8_t* p, std::uint16_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

}  // namespace npbench
