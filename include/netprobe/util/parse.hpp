// Small parsers of flag and option values shared by the agent's options and the sinks'
// KEY=VALUE specs.
#pragma once

#include <charconv>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace netprobe::util {

// The whole of s as a number of type T (no sign for unsigned types, no trailing text).
template <class T>
[[nodiscard]] bool parseNumber(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

// "100MiB", "64k", "1G", "4096": bytes (binary multiples; B, K/KB/KiB, M/MB/MiB, G/GB/GiB).
[[nodiscard]] std::expected<std::uint64_t, std::string> parseByteSize(std::string_view s);

// Percent-encoding of a URL query value (RFC 3986: unreserved characters kept).
[[nodiscard]] std::string urlEncode(std::string_view s);

}  // namespace netprobe::util
