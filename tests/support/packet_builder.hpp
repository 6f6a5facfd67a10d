// A fluent builder of raw Ethernet frames for tests and benchmarks.
//
//   auto frame = PacketBuilder()
//                    .eth()
//                    .vlan(100)
//                    .ipv4("198.18.0.1", "198.18.0.2")
//                    .tcp(40000, 80, tcp_flags::SYN)
//                    .payload(32)
//                    .build();
//
// Layers are written in the order they are added. By default build() fills in
// everything a well-formed frame needs: EtherType / VLAN encapsulated protocol /
// IPv4 protocol / IPv6 next header (from the layer that follows), MPLS
// bottom-of-stack bit (set on the last label), IPv4 IHL and total length, IPv6
// payload length, extension-header length fields, TCP data offset, UDP length,
// and every checksum (IPv4 header, TCP, UDP, ICMP, ICMPv6 with the pseudo
// header of the nearest enclosing IP layer). Lengths and L4 checksums cover the
// bytes of this frame: for a fragment that is the fragment, not the datagram
// (override udpLength() to give a first fragment the whole datagram's length).
//
// Every computed field has an explicit override, applied to the most recently
// added layer of the matching kind, to produce malformed frames:
//   .ipVersion(5) .ihl(3) .totalLength(20) .ipChecksum(0) .payloadLength(999)
//   .extHdrLen(4) .mplsBottom(false) .tcpDataOffset(3) .udpLength(4)
//   .l4Checksum(0xdead) .nextProto(47) .truncate(30)
// truncate(n) cuts the finished frame to n bytes after all lengths and
// checksums were computed from the untruncated frame.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace netprobe::test {

using Bytes = std::vector<std::uint8_t>;
using Mac = std::array<std::uint8_t, 6>;
using Ipv4Addr = std::array<std::uint8_t, 4>;
using Ipv6Addr = std::array<std::uint8_t, 16>;

// Parse a textual address; throws std::invalid_argument when it is not one.
Ipv4Addr ip4(std::string_view text);
Ipv6Addr ip6(std::string_view text);
// The IPv4-mapped IPv6 address ::ffff:a.b.c.d.
Ipv6Addr ip4Mapped(const Ipv4Addr& a);

// RFC 1071 one's-complement sum of data (folded, not inverted), to chain sums.
std::uint32_t checksumPartial(std::span<const std::uint8_t> data, std::uint32_t sum = 0);
// Final Internet checksum (folded and inverted) of data plus an initial sum.
std::uint16_t internetChecksum(std::span<const std::uint8_t> data, std::uint32_t sum = 0);

namespace ethertype {
inline constexpr std::uint16_t IPV4 = 0x0800;
inline constexpr std::uint16_t ARP = 0x0806;
inline constexpr std::uint16_t VLAN = 0x8100;   // 802.1Q C-tag
inline constexpr std::uint16_t QINQ = 0x88A8;   // 802.1ad S-tag
inline constexpr std::uint16_t IPV6 = 0x86DD;
inline constexpr std::uint16_t MPLS_UC = 0x8847;
inline constexpr std::uint16_t MPLS_MC = 0x8848;
inline constexpr std::uint16_t LOCAL_EXP = 0x88B5;  // IEEE local experimental
inline constexpr std::uint16_t LLDP = 0x88CC;
}  // namespace ethertype

namespace ipproto {
inline constexpr std::uint8_t HOPOPTS = 0;
inline constexpr std::uint8_t ICMP = 1;
inline constexpr std::uint8_t TCP = 6;
inline constexpr std::uint8_t UDP = 17;
inline constexpr std::uint8_t ROUTING = 43;
inline constexpr std::uint8_t FRAGMENT = 44;
inline constexpr std::uint8_t GRE = 47;
inline constexpr std::uint8_t ESP = 50;
inline constexpr std::uint8_t AH = 51;
inline constexpr std::uint8_t ICMPV6 = 58;
inline constexpr std::uint8_t NONE = 59;  // IPv6 no next header
inline constexpr std::uint8_t DSTOPTS = 60;
inline constexpr std::uint8_t EXPERIMENT = 253;  // RFC 3692, used when nothing follows
}  // namespace ipproto

namespace tcp_flags {
inline constexpr std::uint8_t FIN = 0x01;
inline constexpr std::uint8_t SYN = 0x02;
inline constexpr std::uint8_t RST = 0x04;
inline constexpr std::uint8_t PSH = 0x08;
inline constexpr std::uint8_t ACK = 0x10;
inline constexpr std::uint8_t URG = 0x20;
inline constexpr std::uint8_t ECE = 0x40;
inline constexpr std::uint8_t CWR = 0x80;
}  // namespace tcp_flags

namespace icmp_type {
inline constexpr std::uint8_t ECHO_REPLY = 0;
inline constexpr std::uint8_t DEST_UNREACH = 3;
inline constexpr std::uint8_t ECHO_REQUEST = 8;
inline constexpr std::uint8_t V6_ECHO_REQUEST = 128;
inline constexpr std::uint8_t V6_ECHO_REPLY = 129;
inline constexpr std::uint8_t V6_NEIGHBOR_SOLICIT = 135;
inline constexpr std::uint8_t V6_NEIGHBOR_ADVERT = 136;
}  // namespace icmp_type

// Optional IPv4 header fields.
struct Ipv4Options {
    Bytes options;              // raw option bytes, padded with EOL to a 4-byte multiple
    std::uint16_t id = 0x1234;  // identification
    std::uint8_t ttl = 64;
    std::uint8_t tos = 0;
    bool dont_fragment = false;
    bool more_fragments = false;
    std::uint16_t fragment_offset = 0;  // in bytes; must be a multiple of 8

    // Common options, to append to `options`.
    static Bytes routerAlert() { return {0x94, 0x04, 0x00, 0x00}; }
    static Bytes nop() { return {0x01}; }
    static Bytes timestamp(std::size_t slots);  // type 68, `slots` empty 4-byte slots
};

// Optional IPv6 header fields.
struct Ipv6Options {
    std::uint8_t traffic_class = 0;
    std::uint32_t flow_label = 0;
    std::uint8_t hop_limit = 64;
};

class PacketBuilder {
public:
    static constexpr Mac kDefaultDst{0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    static constexpr Mac kDefaultSrc{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

    // ---- layers, in wire order ----
    // EtherType defaults to the next layer's (LOCAL_EXP when nothing follows).
    PacketBuilder& eth(const Mac& dst = kDefaultDst, const Mac& src = kDefaultSrc,
                       std::optional<std::uint16_t> type = std::nullopt);
    // An 802.1Q (tpid 0x8100) or 802.1ad (tpid 0x88A8) tag; the TPID is written
    // into the previous layer's type field, the tag's own type comes from the next layer.
    PacketBuilder& vlan(std::uint16_t tci, std::uint16_t tpid = ethertype::VLAN);
    // One MPLS label stack entry. bottom: nullopt = set on the last label only.
    PacketBuilder& mpls(std::uint32_t label, std::optional<bool> bottom = std::nullopt,
                        std::uint8_t tc = 0, std::uint8_t ttl = 64);
    // An ARP request (Ethernet/IPv4) from sender to target.
    PacketBuilder& arp(const Ipv4Addr& sender, const Ipv4Addr& target, std::uint16_t op = 1);
    // proto: nullopt = from the next layer (EXPERIMENT when only payload follows).
    PacketBuilder& ipv4(const Ipv4Addr& src, const Ipv4Addr& dst,
                        std::optional<std::uint8_t> proto = std::nullopt, Ipv4Options opts = {});
    PacketBuilder& ipv4(std::string_view src, std::string_view dst,
                        std::optional<std::uint8_t> proto = std::nullopt, Ipv4Options opts = {});
    // Mark the last IPv4 layer a fragment: identification, offset in bytes, MF bit.
    PacketBuilder& ipv4Fragment(std::uint16_t id, std::uint16_t offset_bytes, bool more);
    // next: nullopt = from the next layer (NONE (59) when nothing follows).
    PacketBuilder& ipv6(const Ipv6Addr& src, const Ipv6Addr& dst,
                        std::optional<std::uint8_t> next = std::nullopt, Ipv6Options opts = {});
    PacketBuilder& ipv6(std::string_view src, std::string_view dst,
                        std::optional<std::uint8_t> next = std::nullopt, Ipv6Options opts = {});
    // A generic extension header of `type` (HOPOPTS, ROUTING, DSTOPTS, AH, or any
    // value) and `len` total bytes (multiple of 8; of 4 for AH), filled with PadN
    // options (HOPOPTS/DSTOPTS), a type-4 routing header with segments left 0
    // (ROUTING), or zeros. The length byte is computed from len.
    PacketBuilder& ipv6Ext(std::uint8_t type, std::size_t len = 8,
                           std::optional<std::uint8_t> next = std::nullopt);
    // An IPv6 fragment header: offset in bytes (multiple of 8), M flag, identification.
    PacketBuilder& ipv6Frag(std::uint32_t id, std::uint16_t offset_bytes, bool more,
                            std::optional<std::uint8_t> next = std::nullopt);
    // TCP; options are raw bytes, padded with EOL (0) to a 4-byte multiple.
    PacketBuilder& tcp(std::uint16_t sport, std::uint16_t dport, std::uint8_t flags = tcp_flags::ACK,
                       Bytes options = {}, std::uint32_t seq = 1000, std::uint32_t ack = 0);
    PacketBuilder& udp(std::uint16_t sport, std::uint16_t dport);
    // ICMP / ICMPv6 header: type, code, checksum and 4 bytes of "rest" (id/seq for echo).
    PacketBuilder& icmp(std::uint8_t type, std::uint8_t code = 0, std::uint16_t id = 1,
                        std::uint16_t seq = 1);
    PacketBuilder& icmpv6(std::uint8_t type, std::uint8_t code = 0, std::uint16_t id = 1,
                          std::uint16_t seq = 1);
    // ICMPv6 neighbour solicitation for target (with no options).
    PacketBuilder& icmpv6NeighborSolicit(const Ipv6Addr& target);
    // n payload bytes (a repeating 0x00..0xff pattern starting at fill), or raw bytes.
    PacketBuilder& payload(std::size_t n, std::uint8_t fill = 0);
    PacketBuilder& raw(std::span<const std::uint8_t> bytes);

    // ---- overrides (apply to the most recent layer of that kind) ----
    PacketBuilder& ipVersion(std::uint8_t v);         // last IPv4 or IPv6 header
    PacketBuilder& ihl(std::uint8_t words);           // last IPv4
    PacketBuilder& totalLength(std::uint16_t bytes);  // last IPv4
    PacketBuilder& ipChecksum(std::uint16_t value);   // last IPv4
    PacketBuilder& payloadLength(std::uint16_t bytes);  // last IPv6
    PacketBuilder& extHdrLen(std::uint8_t raw);       // last IPv6 extension header's length byte
    PacketBuilder& nextProto(std::uint8_t proto);     // last IPv4/IPv6/extension/fragment header
    PacketBuilder& etherType(std::uint16_t type);     // last Ethernet or VLAN layer
    PacketBuilder& mplsBottom(bool bottom);           // last MPLS label
    PacketBuilder& tcpDataOffset(std::uint8_t words); // last TCP
    PacketBuilder& udpLength(std::uint16_t bytes);    // last UDP
    PacketBuilder& l4Checksum(std::uint16_t value);   // last TCP/UDP/ICMP/ICMPv6
    PacketBuilder& truncate(std::size_t bytes);       // cut the finished frame

    // The finished frame.
    [[nodiscard]] Bytes build() const;

private:
    enum class Kind { Eth, Vlan, Mpls, Arp, Ipv4, Ipv6, Ipv6Ext, Ipv6Frag, Tcp, Udp, Icmp, Icmpv6, Raw };

    struct Layer {
        Kind kind = Kind::Raw;
        Bytes header;            // serialized with computed fields left zero
        std::uint16_t ident = 0; // what the previous layer's type field names: VLAN TPID, ext type
        // overrides / parameters; meaning depends on kind
        std::optional<std::uint16_t> type;       // Eth/Vlan type, IP proto / next header
        std::optional<bool> bottom;              // Mpls
        std::optional<std::uint8_t> version;     // Ipv4/Ipv6
        std::optional<std::uint8_t> ihl;         // Ipv4
        std::optional<std::uint16_t> length;     // Ipv4 total, Ipv6 payload, Udp length
        std::optional<std::uint16_t> checksum;   // Ipv4 header or L4 checksum
        std::optional<std::uint8_t> hdr_len;     // Ipv6Ext length byte
        std::optional<std::uint8_t> doff;        // Tcp data offset
    };

    Layer& add(Kind kind, Bytes header);
    Layer& last(std::initializer_list<Kind> kinds, const char* what);
    static std::optional<std::uint16_t> typeFor(const Layer& next, bool ip_layer);

    std::vector<Layer> layers_;
    std::optional<std::size_t> truncate_;
};

}  // namespace netprobe::test
