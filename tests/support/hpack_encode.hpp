// HPACK field encoders for the tests and fuzzers (RFC 7541 5.1, 5.2, 6): integers with an
// n-bit prefix, string literals without Huffman coding, and the field representations
// built from them. Test input only; the agent decodes, it never encodes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace netprobe::testing::hpack {

// An integer with an n-bit prefix, the first byte's other bits from flags (5.1).
inline std::string integer(std::uint8_t flags, int prefix, std::uint64_t v) {
    const std::uint64_t max = (1u << prefix) - 1;
    std::string s;
    if (v < max) {
        s += static_cast<char>(flags | v);
        return s;
    }
    s += static_cast<char>(flags | max);
    for (v -= max; v >= 128; v >>= 7) s += static_cast<char>(0x80 | (v & 0x7f));
    s += static_cast<char>(v);
    return s;
}
// A string literal, not Huffman coded (5.2).
inline std::string string(std::string_view v) { return integer(0, 7, v.size()) + std::string(v); }
// An indexed field (6.1).
inline std::string indexed(std::uint64_t i) { return integer(0x80, 7, i); }
// A literal without indexing (6.2.2): a name from the tables, or a new name.
inline std::string literal(std::uint64_t name_index, std::string_view value) {
    return integer(0, 4, name_index) + string(value);
}
inline std::string literal(std::string_view name, std::string_view value) {
    return integer(0, 4, 0) + string(name) + string(value);
}
// A literal with incremental indexing (6.2.1): it enters the dynamic table.
inline std::string indexing(std::uint64_t name_index, std::string_view value) {
    return integer(0x40, 6, name_index) + string(value);
}
inline std::string indexing(std::string_view name, std::string_view value) {
    return integer(0x40, 6, 0) + string(name) + string(value);
}

}  // namespace netprobe::testing::hpack
