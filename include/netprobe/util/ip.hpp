// Addresses as they appear in the ABI (16 bytes, IPv4 mapped) <-> text.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace netprobe::util {

using Addr16 = std::array<std::uint8_t, 16>;

// "198.18.0.1" for IPv4-mapped addresses, RFC 5952 text for IPv6.
[[nodiscard]] std::string formatAddr(const Addr16& a);
// "198.18.0.1:80", "[fd00::1]:443".
[[nodiscard]] std::string formatEndpoint(const Addr16& a, std::uint16_t port);
// Parses IPv4 (stored mapped) or IPv6 text.
[[nodiscard]] std::optional<Addr16> parseAddr(std::string_view text);
[[nodiscard]] bool isV4Mapped(const Addr16& a);
// a with every bit after the first prefix_len cleared (prefix_len over the 128-bit
// form: an IPv4 /24 is 96 + 24).
[[nodiscard]] Addr16 maskAddr(const Addr16& a, unsigned prefix_len);

// A hash of the 16 bytes, for unordered containers keyed by address.
struct AddrHash {
    std::size_t operator()(const Addr16& a) const noexcept;
};
// "tcp", "udp", "icmp", "icmpv6", "gre", ... or the number as text.
[[nodiscard]] std::string protocolName(std::uint8_t proto);
// Inverse of protocolName; also accepts a decimal number.
[[nodiscard]] std::optional<std::uint8_t> parseProtocol(std::string_view name);

}  // namespace netprobe::util
