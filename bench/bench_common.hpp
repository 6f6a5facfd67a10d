// Synthetic flows and snapshots shared by the user-space benchmarks.
#pragma once

#include <arpa/inet.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/analysis/flow_table.hpp>
#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/ebpf/types.hpp>

namespace npbench {

// Distinct flow i: IPv4 198.18.x.y:port -> 198.18.255.1:5201, TCP, on one of
// `ifaces` interfaces (ifindex 2..), alternating direction. Every field of the
// key that the datapath sets is set the same way (IPv4-mapped addresses).
inline flow_key flowKey(std::uint32_t i, std::uint32_t ifaces = 4) {
    flow_key k{};
    k.src_ip.v4m.pad[2] = htonl(0x0000ffff);
    k.dst_ip.v4m.pad[2] = htonl(0x0000ffff);
    k.src_ip.v4m.v4 = htonl((198u << 24) | (18u << 16) | ((i >> 16) & 0xff) << 8 | ((i >> 8) & 0xff));
    k.dst_ip.v4m.v4 = htonl((198u << 24) | (18u << 16) | (255u << 8) | 1u);
    k.src_port = static_cast<std::uint16_t>(1024 + (i & 0xff) * 200 + (i >> 24));
    k.dst_port = 5201;
    k.proto = 6;
    k.family = 4;
    k.direction = static_cast<std::uint8_t>(i & 1);
    k.ifindex = 2 + (i % ifaces);
    return k;
}

inline std::uint64_t monoNowNs() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

// n kernel flow entries as a collection reads them: distinct keys, varying sizes.
inline std::vector<netprobe::ebpf::FlowEntry> makeEntries(std::uint32_t n, std::uint64_t now_ns,
                                                          std::uint32_t ifaces = 4) {
    std::vector<netprobe::ebpf::FlowEntry> v(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        auto& d = v[i];
        d.key = flowKey(i, ifaces);
        d.stats.packets = 1 + i % 97;
        d.stats.bytes = d.stats.packets * (64 + i % 1400);
        d.stats.first_seen_ns = now_ns - 1'000'000'000ull + i;
        d.stats.last_seen_ns = now_ns - (i % 1000);
        d.stats.tcp_flags = 0x18;
    }
    return v;
}

// The same flows as one interval's samples (new kernel entries count in full).
inline std::vector<netprobe::collector::FlowSample> makeSamples(std::uint32_t n, std::uint64_t now_ns,
                                                                std::uint32_t ifaces = 4) {
    std::vector<netprobe::collector::FlowSample> out;
    out.reserve(n);
    for (const auto& e : makeEntries(n, now_ns, ifaces)) {
        netprobe::collector::FlowSample s;
        s.key = e.key;
        s.packets = e.stats.packets;
        s.bytes = e.stats.bytes;
        s.first_seen_ns = e.stats.first_seen_ns;
        s.last_seen_ns = e.stats.last_seen_ns;
        s.tcp_flags = e.stats.tcp_flags;
        out.push_back(s);
    }
    return out;
}

inline std::string ifName(std::uint32_t ifindex) { return "veth" + std::to_string(ifindex); }

// Flow records as the flow accounting stage publishes them in a view: the table's own
// buffer, shared (the records keep the kernel's times; a view converts them with its
// snapshot, so now_mono is not needed any more).
inline netprobe::analysis::FlowRecords makeRecords(const netprobe::analysis::FlowTable& t, std::uint64_t /*now_mono*/) {
    return t.records();
}

// A snapshot with `ifaces` attached interfaces (XDP native, all counters set).
inline void addInterfaces(netprobe::collector::Snapshot& s, std::uint32_t ifaces) {
    s.taken_at = std::chrono::system_clock::now();
    s.interval_seconds = 5;
    s.sequence = 42;
    for (std::uint32_t i = 0; i < ifaces; ++i) {
        netprobe::collector::InterfaceStats st;
        st.name = ifName(2 + i);
        st.index = 2 + i;
        st.ingress_packets = 1'000'000ull * i + 17;
        st.ingress_bytes = st.ingress_packets * 900;
        st.egress_packets = 500'000ull * i + 3;
        st.egress_bytes = st.egress_packets * 700;
        st.ingress_packets_rate = 1234.5 + i;
        st.ingress_bytes_rate = 1234.5 * 900 + i;
        st.egress_packets_rate = 617.25 + i;
        st.egress_bytes_rate = 617.25 * 700 + i;
        st.last_updated = s.taken_at;
        st.xdp_packets = st.ingress_packets;
        st.xdp_bytes = st.ingress_bytes;
        st.tc_mode = "tcx";
        st.xdp_mode = "native";
        s.interfaces.push_back(std::move(st));
    }
    for (auto& dir : s.protocols)
        for (auto& c : dir) c = {123456789, 98765432100};
    for (auto& dir : s.malformed)
        for (auto& c : dir) c = 7;
}

// Samples (non-comment lines) of a Prometheus text exposition.
inline std::size_t countSeries(const std::string& text) {
    std::size_t n = 0, pos = 0;
    while (pos < text.size()) {
        std::size_t e = text.find('\n', pos);
        if (e == std::string::npos) e = text.size();
        if (e > pos && text[pos] != '#') ++n;
        pos = e + 1;
    }
    return n;
}

}  // namespace npbench
