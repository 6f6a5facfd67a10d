// Helpers to build flow keys and records in unit tests.
#pragma once

#include <bit>
#include <cstring>
#include <string>

#include <netprobe/abi.h>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::testing {

inline flow_key makeKey(const std::string& src, const std::string& dst, std::uint16_t sport, std::uint16_t dport,
                        std::uint8_t proto, std::uint32_t ifindex = 2, std::uint8_t dir = NP_DIR_INGRESS) {
    flow_key k{};
    auto s = util::parseAddr(src);
    auto d = util::parseAddr(dst);
    std::memcpy(&k.src_ip, s->data(), 16);
    std::memcpy(&k.dst_ip, d->data(), 16);
    k.src_port = sport;
    k.dst_port = dport;
    k.proto = proto;
    k.family = util::isV4Mapped(*s) ? 4 : 6;
    k.direction = dir;
    k.ifindex = ifindex;
    return k;
}

inline ebpf::FlowDelta makeDelta(const flow_key& k, std::uint64_t pkts, std::uint64_t bytes, std::uint64_t first,
                                 std::uint64_t last, std::uint8_t flags = 0) {
    ebpf::FlowDelta d;
    d.key = k;
    d.stats.packets = pkts;
    d.stats.bytes = bytes;
    d.stats.first_seen_ns = first;
    d.stats.last_seen_ns = last;
    d.stats.tcp_flags = flags;
    return d;
}

}  // namespace netprobe::testing
