#include "support/packet_builder.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace netprobe::test {

namespace {

void put16(Bytes& b, std::size_t at, std::uint16_t v)
{
    b.at(at) = static_cast<std::uint8_t>(v >> 8);
    b.at(at + 1) = static_cast<std::uint8_t>(v);
}

void put32(Bytes& b, std::size_t at, std::uint32_t v)
{
    put16(b, at, static_cast<std::uint16_t>(v >> 16));
    put16(b, at + 2, static_cast<std::uint16_t>(v));
}

void append(Bytes& b, std::span<const std::uint8_t> more)
{
    b.insert(b.end(), more.begin(), more.end());
}

void padTo(Bytes& b, std::size_t multiple, std::uint8_t fill)
{
    while (b.size() % multiple != 0)
        b.push_back(fill);
}

}  // namespace

Ipv4Addr ip4(std::string_view text)
{
    Ipv4Addr a{};
    if (inet_pton(AF_INET, std::string(text).c_str(), a.data()) != 1)
        throw std::invalid_argument("not an IPv4 address: " + std::string(text));
    return a;
}

Ipv6Addr ip6(std::string_view text)
{
    Ipv6Addr a{};
    if (inet_pton(AF_INET6, std::string(text).c_str(), a.data()) != 1)
        throw std::invalid_argument("not an IPv6 address: " + std::string(text));
    return a;
}

Ipv6Addr ip4Mapped(const Ipv4Addr& a)
{
    Ipv6Addr m{};
    m[10] = 0xff;
    m[11] = 0xff;
    std::copy(a.begin(), a.end(), m.begin() + 12);
    return m;
}

std::uint32_t checksumPartial(std::span<const std::uint8_t> data, std::uint32_t sum)
{
    std::size_t i = 0;
    for (; i + 1 < data.size(); i += 2)
        sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    if (i < data.size())
        sum += static_cast<std::uint32_t>(data[i] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

std::uint16_t internetChecksum(std::span<const std::uint8_t> data, std::uint32_t sum)
{
    return static_cast<std::uint16_t>(~checksumPartial(data, sum) & 0xffff);
}

Bytes Ipv4Options::timestamp(std::size_t slots)
{
    Bytes b{68, static_cast<std::uint8_t>(4 + 4 * slots), 5, 0};
    b.resize(4 + 4 * slots, 0);
    return b;
}

// ---------------------------------------------------------------- layers

PacketBuilder::Layer& PacketBuilder::add(Kind kind, Bytes header)
{
    Layer& l = layers_.emplace_back();
    l.kind = kind;
    l.header = std::move(header);
    return l;
}

PacketBuilder::Layer& PacketBuilder::last(std::initializer_list<Kind> kinds, const char* what)
{
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it)
        if (std::find(kinds.begin(), kinds.end(), it->kind) != kinds.end())
            return *it;
    throw std::logic_error(std::string("PacketBuilder: no layer for override ") + what);
}

PacketBuilder& PacketBuilder::eth(const Mac& dst, const Mac& src, std::optional<std::uint16_t> type)
{
    Bytes h;
    append(h, dst);
    append(h, src);
    h.resize(14, 0);
    add(Kind::Eth, std::move(h)).type = type;
    return *this;
}

PacketBuilder& PacketBuilder::vlan(std::uint16_t tci, std::uint16_t tpid)
{
    Bytes h(4, 0);
    put16(h, 0, tci);
    add(Kind::Vlan, std::move(h)).ident = tpid;
    return *this;
}

PacketBuilder& PacketBuilder::mpls(std::uint32_t label, std::optional<bool> bottom, std::uint8_t tc,
                                   std::uint8_t ttl)
{
    Bytes h(4, 0);
    put32(h, 0, (label & 0xfffff) << 12 | static_cast<std::uint32_t>(tc & 0x7) << 9 | ttl);
    add(Kind::Mpls, std::move(h)).bottom = bottom;
    return *this;
}

PacketBuilder& PacketBuilder::arp(const Ipv4Addr& sender, const Ipv4Addr& target, std::uint16_t op)
{
    Bytes h(8, 0);
    put16(h, 0, 1);                // hardware type: Ethernet
    put16(h, 2, ethertype::IPV4);  // protocol type
    h[4] = 6;
    h[5] = 4;
    put16(h, 6, op);
    append(h, kDefaultSrc);
    append(h, sender);
    h.insert(h.end(), 6, 0);  // target MAC unknown
    append(h, target);
    add(Kind::Arp, std::move(h));
    return *this;
}

PacketBuilder& PacketBuilder::ipv4(const Ipv4Addr& src, const Ipv4Addr& dst,
                                   std::optional<std::uint8_t> proto, Ipv4Options opts)
{
    Bytes h(20, 0);
    h[1] = opts.tos;
    put16(h, 4, opts.id);
    std::uint16_t frag = static_cast<std::uint16_t>((opts.fragment_offset / 8) & 0x1fff);
    if (opts.dont_fragment)
        frag |= 0x4000;
    if (opts.more_fragments)
        frag |= 0x2000;
    put16(h, 6, frag);
    h[8] = opts.ttl;
    std::copy(src.begin(), src.end(), h.begin() + 12);
    std::copy(dst.begin(), dst.end(), h.begin() + 16);
    append(h, opts.options);
    padTo(h, 4, 0);  // EOL
    add(Kind::Ipv4, std::move(h)).type = proto;
    return *this;
}

PacketBuilder& PacketBuilder::ipv4(std::string_view src, std::string_view dst,
                                   std::optional<std::uint8_t> proto, Ipv4Options opts)
{
    return ipv4(ip4(src), ip4(dst), proto, std::move(opts));
}

PacketBuilder& PacketBuilder::ipv4Fragment(std::uint16_t id, std::uint16_t offset_bytes, bool more)
{
    Layer& l = last({Kind::Ipv4}, "ipv4Fragment");
    put16(l.header, 4, id);
    std::uint16_t frag = static_cast<std::uint16_t>(l.header[6] << 8 | l.header[7]) & 0x4000;
    frag |= static_cast<std::uint16_t>((offset_bytes / 8) & 0x1fff);
    if (more)
        frag |= 0x2000;
    put16(l.header, 6, frag);
    return *this;
}

PacketBuilder& PacketBuilder::ipv6(const Ipv6Addr& src, const Ipv6Addr& dst,
                                   std::optional<std::uint8_t> next, Ipv6Options opts)
{
    Bytes h(40, 0);
    put32(h, 0, 6u << 28 | static_cast<std::uint32_t>(opts.traffic_class) << 20 |
                    (opts.flow_label & 0xfffff));
    h[7] = opts.hop_limit;
    std::copy(src.begin(), src.end(), h.begin() + 8);
    std::copy(dst.begin(), dst.end(), h.begin() + 24);
    add(Kind::Ipv6, std::move(h)).type = next;
    return *this;
}

PacketBuilder& PacketBuilder::ipv6(std::string_view src, std::string_view dst,
                                   std::optional<std::uint8_t> next, Ipv6Options opts)
{
    return ipv6(ip6(src), ip6(dst), next, opts);
}

PacketBuilder& PacketBuilder::ipv6Ext(std::uint8_t type, std::size_t len, std::optional<std::uint8_t> next)
{
    if (len < 2)
        throw std::invalid_argument("PacketBuilder::ipv6Ext: len < 2");
    Bytes h(len, 0);
    if (type == ipproto::HOPOPTS || type == ipproto::DSTOPTS) {
        std::size_t pad = len - 2;  // one PadN option (or Pad1) fills the rest
        if (pad == 1) {
            h[2] = 0;
        } else if (pad >= 2) {
            h[2] = 1;
            h[3] = static_cast<std::uint8_t>(pad - 2);
        }
    } else if (type == ipproto::ROUTING && len >= 4) {
        h[2] = 0;  // routing type 0, segments left 0: nothing to process
        h[3] = 0;
    } else if (type == ipproto::AH && len >= 8) {
        put32(h, 4, 0x100);  // SPI
    }
    Layer& l = add(Kind::Ipv6Ext, std::move(h));
    l.ident = type;
    l.type = next;
    return *this;
}

PacketBuilder& PacketBuilder::ipv6Frag(std::uint32_t id, std::uint16_t offset_bytes, bool more,
                                       std::optional<std::uint8_t> next)
{
    Bytes h(8, 0);
    put16(h, 2, static_cast<std::uint16_t>((offset_bytes & 0xfff8) | (more ? 1 : 0)));
    put32(h, 4, id);
    Layer& l = add(Kind::Ipv6Frag, std::move(h));
    l.ident = ipproto::FRAGMENT;
    l.type = next;
    return *this;
}

PacketBuilder& PacketBuilder::tcp(std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
                                  Bytes options, std::uint32_t seq, std::uint32_t ack)
{
    Bytes h(20, 0);
    put16(h, 0, sport);
    put16(h, 2, dport);
    put32(h, 4, seq);
    put32(h, 8, ack);
    h[13] = flags;
    put16(h, 14, 65535);  // window
    append(h, options);
    padTo(h, 4, 0);
    add(Kind::Tcp, std::move(h)).ident = ipproto::TCP;
    return *this;
}

PacketBuilder& PacketBuilder::udp(std::uint16_t sport, std::uint16_t dport)
{
    Bytes h(8, 0);
    put16(h, 0, sport);
    put16(h, 2, dport);
    add(Kind::Udp, std::move(h)).ident = ipproto::UDP;
    return *this;
}

PacketBuilder& PacketBuilder::icmp(std::uint8_t type, std::uint8_t code, std::uint16_t id, std::uint16_t seq)
{
    Bytes h(8, 0);
    h[0] = type;
    h[1] = code;
    put16(h, 4, id);
    put16(h, 6, seq);
    add(Kind::Icmp, std::move(h)).ident = ipproto::ICMP;
    return *this;
}

PacketBuilder& PacketBuilder::icmpv6(std::uint8_t type, std::uint8_t code, std::uint16_t id,
                                     std::uint16_t seq)
{
    Bytes h(8, 0);
    h[0] = type;
    h[1] = code;
    put16(h, 4, id);
    put16(h, 6, seq);
    add(Kind::Icmpv6, std::move(h)).ident = ipproto::ICMPV6;
    return *this;
}

PacketBuilder& PacketBuilder::icmpv6NeighborSolicit(const Ipv6Addr& target)
{
    Bytes h(8, 0);  // type, code, checksum, reserved
    h[0] = icmp_type::V6_NEIGHBOR_SOLICIT;
    append(h, target);
    add(Kind::Icmpv6, std::move(h)).ident = ipproto::ICMPV6;
    return *this;
}

PacketBuilder& PacketBuilder::payload(std::size_t n, std::uint8_t fill)
{
    Bytes h(n);
    for (std::size_t i = 0; i < n; i++)
        h[i] = static_cast<std::uint8_t>(fill + i);
    add(Kind::Raw, std::move(h));
    return *this;
}

PacketBuilder& PacketBuilder::raw(std::span<const std::uint8_t> bytes)
{
    add(Kind::Raw, Bytes(bytes.begin(), bytes.end()));
    return *this;
}

// ---------------------------------------------------------------- overrides

PacketBuilder& PacketBuilder::ipVersion(std::uint8_t v)
{
    last({Kind::Ipv4, Kind::Ipv6}, "ipVersion").version = v;
    return *this;
}

PacketBuilder& PacketBuilder::ihl(std::uint8_t words)
{
    last({Kind::Ipv4}, "ihl").ihl = words;
    return *this;
}

PacketBuilder& PacketBuilder::totalLength(std::uint16_t bytes)
{
    last({Kind::Ipv4}, "totalLength").length = bytes;
    return *this;
}

PacketBuilder& PacketBuilder::ipChecksum(std::uint16_t value)
{
    last({Kind::Ipv4}, "ipChecksum").checksum = value;
    return *this;
}

PacketBuilder& PacketBuilder::payloadLength(std::uint16_t bytes)
{
    last({Kind::Ipv6}, "payloadLength").length = bytes;
    return *this;
}

PacketBuilder& PacketBuilder::extHdrLen(std::uint8_t raw)
{
    last({Kind::Ipv6Ext}, "extHdrLen").hdr_len = raw;
    return *this;
}

PacketBuilder& PacketBuilder::nextProto(std::uint8_t proto)
{
    last({Kind::Ipv4, Kind::Ipv6, Kind::Ipv6Ext, Kind::Ipv6Frag}, "nextProto").type = proto;
    return *this;
}

PacketBuilder& PacketBuilder::etherType(std::uint16_t type)
{
    last({Kind::Eth, Kind::Vlan}, "etherType").type = type;
    return *this;
}

PacketBuilder& PacketBuilder::mplsBottom(bool bottom)
{
    last({Kind::Mpls}, "mplsBottom").bottom = bottom;
    return *this;
}

PacketBuilder& PacketBuilder::tcpDataOffset(std::uint8_t words)
{
    last({Kind::Tcp}, "tcpDataOffset").doff = words;
    return *this;
}

PacketBuilder& PacketBuilder::udpLength(std::uint16_t bytes)
{
    last({Kind::Udp}, "udpLength").length = bytes;
    return *this;
}

PacketBuilder& PacketBuilder::l4Checksum(std::uint16_t value)
{
    last({Kind::Tcp, Kind::Udp, Kind::Icmp, Kind::Icmpv6}, "l4Checksum").checksum = value;
    return *this;
}

PacketBuilder& PacketBuilder::truncate(std::size_t bytes)
{
    truncate_ = bytes;
    return *this;
}

// ---------------------------------------------------------------- build

std::optional<std::uint16_t> PacketBuilder::typeFor(const Layer& next, bool ip_layer)
{
    if (ip_layer) {
        switch (next.kind) {
        case Kind::Ipv4: return 4;   // IP-in-IP
        case Kind::Ipv6: return 41;  // IPv6-in-IP
        case Kind::Ipv6Ext:
        case Kind::Ipv6Frag:
        case Kind::Tcp:
        case Kind::Udp:
        case Kind::Icmp:
        case Kind::Icmpv6: return next.ident;
        default: return std::nullopt;
        }
    }
    switch (next.kind) {
    case Kind::Vlan: return next.ident;
    case Kind::Mpls: return ethertype::MPLS_UC;
    case Kind::Arp: return ethertype::ARP;
    case Kind::Ipv4: return ethertype::IPV4;
    case Kind::Ipv6: return ethertype::IPV6;
    default: return std::nullopt;
    }
}

Bytes PacketBuilder::build() const
{
    Bytes out;
    std::vector<std::size_t> off(layers_.size());
    for (std::size_t i = 0; i < layers_.size(); i++) {
        off[i] = out.size();
        append(out, layers_[i].header);
    }
    const std::size_t end = out.size();
    auto nextOf = [&](std::size_t i) -> const Layer* {
        return i + 1 < layers_.size() ? &layers_[i + 1] : nullptr;
    };
    auto len16 = [](std::size_t n) { return static_cast<std::uint16_t>(n); };

    // Pass 1: types, lengths, header fields.
    for (std::size_t i = 0; i < layers_.size(); i++) {
        const Layer& l = layers_[i];
        const Layer* next = nextOf(i);
        const std::size_t o = off[i];
        switch (l.kind) {
        case Kind::Eth:
        case Kind::Vlan: {
            std::uint16_t t = l.type.value_or(
                (next ? typeFor(*next, false) : std::nullopt).value_or(ethertype::LOCAL_EXP));
            put16(out, o + (l.kind == Kind::Eth ? 12 : 2), t);
            break;
        }
        case Kind::Mpls: {
            bool bottom = l.bottom.value_or(!next || next->kind != Kind::Mpls);
            if (bottom)
                out[o + 2] |= 0x01;
            else
                out[o + 2] &= static_cast<std::uint8_t>(~0x01);
            break;
        }
        case Kind::Ipv4: {
            std::uint8_t ihl = l.ihl.value_or(static_cast<std::uint8_t>(l.header.size() / 4));
            out[o] = static_cast<std::uint8_t>(l.version.value_or(4) << 4 | (ihl & 0x0f));
            put16(out, o + 2, l.length.value_or(len16(end - o)));
            out[o + 9] = static_cast<std::uint8_t>(
                l.type.value_or((next ? typeFor(*next, true) : std::nullopt).value_or(ipproto::EXPERIMENT)));
            break;
        }
        case Kind::Ipv6: {
            out[o] = static_cast<std::uint8_t>((out[o] & 0x0f) | l.version.value_or(6) << 4);
            put16(out, o + 4, l.length.value_or(len16(end - o - 40)));
            out[o + 6] = static_cast<std::uint8_t>(
                l.type.value_or((next ? typeFor(*next, true) : std::nullopt).value_or(ipproto::NONE)));
            break;
        }
        case Kind::Ipv6Ext:
        case Kind::Ipv6Frag: {
            out[o] = static_cast<std::uint8_t>(
                l.type.value_or((next ? typeFor(*next, true) : std::nullopt).value_or(ipproto::NONE)));
            if (l.kind == Kind::Ipv6Ext) {
                std::size_t n = l.header.size();
                std::uint8_t computed = l.ident == ipproto::AH ? static_cast<std::uint8_t>(n / 4 - 2)
                                                               : static_cast<std::uint8_t>(n / 8 - 1);
                out[o + 1] = l.hdr_len.value_or(computed);
            }
            break;
        }
        case Kind::Tcp: {
            std::uint8_t doff = l.doff.value_or(static_cast<std::uint8_t>(l.header.size() / 4));
            out[o + 12] = static_cast<std::uint8_t>((doff & 0x0f) << 4);
            break;
        }
        case Kind::Udp:
            put16(out, o + 4, l.length.value_or(len16(end - o)));
            break;
        default:
            break;
        }
    }

    // Pass 2: L4 checksums, innermost first, over the bytes up to the frame end.
    for (std::size_t i = layers_.size(); i-- > 0;) {
        const Layer& l = layers_[i];
        std::size_t csum_at;
        switch (l.kind) {
        case Kind::Tcp: csum_at = 16; break;
        case Kind::Udp: csum_at = 6; break;
        case Kind::Icmp:
        case Kind::Icmpv6: csum_at = 2; break;
        default: continue;
        }
        const std::size_t o = off[i];
        put16(out, o + csum_at, 0);
        if (l.checksum) {
            put16(out, o + csum_at, *l.checksum);
            continue;
        }
        const std::size_t l4len = end - o;
        std::uint32_t sum = 0;
        if (l.kind != Kind::Icmp) {
            // pseudo header of the nearest enclosing IP layer
            std::optional<std::size_t> ip;
            for (std::size_t j = i; j-- > 0;)
                if (layers_[j].kind == Kind::Ipv4 || layers_[j].kind == Kind::Ipv6) {
                    ip = j;
                    break;
                }
            if (ip) {
                Bytes ph;
                const std::size_t io = off[*ip];
                if (layers_[*ip].kind == Kind::Ipv4) {
                    ph.assign(out.begin() + static_cast<std::ptrdiff_t>(io + 12),
                              out.begin() + static_cast<std::ptrdiff_t>(io + 20));
                    ph.push_back(0);
                    ph.push_back(static_cast<std::uint8_t>(l.ident));
                    ph.push_back(static_cast<std::uint8_t>(l4len >> 8));
                    ph.push_back(static_cast<std::uint8_t>(l4len));
                } else {
                    ph.assign(out.begin() + static_cast<std::ptrdiff_t>(io + 8),
                              out.begin() + static_cast<std::ptrdiff_t>(io + 40));
                    Bytes tail(8, 0);
                    put32(tail, 0, static_cast<std::uint32_t>(l4len));
                    tail[7] = static_cast<std::uint8_t>(l.ident);
                    append(ph, tail);
                }
                sum = checksumPartial(ph);
            }
        }
        std::uint16_t c = internetChecksum(std::span(out).subspan(o, l4len), sum);
        if (l.kind == Kind::Udp && c == 0)
            c = 0xffff;
        put16(out, o + csum_at, c);
    }

    // Pass 3: IPv4 header checksums (their headers are final now).
    for (std::size_t i = 0; i < layers_.size(); i++) {
        const Layer& l = layers_[i];
        if (l.kind != Kind::Ipv4)
            continue;
        const std::size_t o = off[i];
        put16(out, o + 10, 0);
        put16(out, o + 10, l.checksum.value_or(internetChecksum(std::span(out).subspan(o, l.header.size()))));
    }

    if (truncate_ && *truncate_ < out.size())
        out.resize(*truncate_);
    return out;
}

}  // namespace netprobe::test
