#include "netprobe/util/ip.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace netprobe::util {

bool isV4Mapped(const Addr16& a) {
    static constexpr std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(a.data(), prefix, sizeof prefix) == 0;
}

std::string formatAddr(const Addr16& a) {
    char buf[INET6_ADDRSTRLEN];
    if (isV4Mapped(a)) {
        inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
    } else {
        inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
    }
    return buf;
}

std::string formatEndpoint(const Addr16& a, std::uint16_t port) {
    const std::string ip = formatAddr(a);
    return (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

std::optional<Addr16> parseAddr(std::string_view text) {
    // inet_pton stops at a NUL: "1.2.3.4\0junk" must not parse as 1.2.3.4
    if (text.size() >= INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos) return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    Addr16 a{};
    if (inet_pton(AF_INET, buf, a.data() + 12) == 1) {
        a[10] = a[11] = 0xff;
        return a;
    }
    if (inet_pton(AF_INET6, buf, a.data()) == 1) return a;
    return std::nullopt;
}

namespace {
struct ProtoName {
    std::uint8_t num;
    const char* name;
};
constexpr ProtoName kProtos[] = {
    {1, "icmp"}, {2, "igmp"}, {6, "tcp"}, {17, "udp"}, {41, "ipv6"}, {47, "gre"},
    {50, "esp"}, {51, "ah"}, {58, "icmpv6"}, {59, "none"}, {89, "ospf"}, {103, "pim"},
    {112, "vrrp"}, {132, "sctp"},
};
}  // namespace

Addr16 maskAddr(const Addr16& a, unsigned prefix_len) {
    Addr16 m{};
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned keep = prefix_len > i * 8 ? std::min(prefix_len - i * 8, 8u) : 0;
        m[i] = static_cast<std::uint8_t>(a[i] & (0xff00u >> keep));
    }
    return m;
}

std::string protocolName(std::uint8_t proto) {
    for (const auto& p : kProtos)
        if (p.num == proto) return p.name;
    return std::to_string(proto);
}

std::optional<std::uint8_t> parseProtocol(std::string_view name) {
    for (const auto& p : kProtos)
        if (name == p.name) return p.num;
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
    if (ec != std::errc{} || ptr != name.data() + name.size() || v > 255) return std::nullopt;
    return static_cast<std::uint8_t>(v);
}

std::size_t AddrHash::operator()(const Addr16& a) const noexcept {
    std::uint64_t x, y;
    std::memcpy(&x, a.data(), 8);
    std::memcpy(&y, a.data() + 8, 8);
    return static_cast<std::size_t>((x * 0x9E3779B97F4A7C15ull) ^ (y + 0x7F4A7C159E3779B9ull + (x << 6)));
}

}  // namespace netprobe::util
