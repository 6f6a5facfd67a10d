// Helpers to build flow keys and records in unit tests.
#pragma once

#include <algorithm>
#include <bit>
#include <memory>
#include <utility>
#include <vector>
#include <cstring>
#include <string>

#include <netprobe/abi.h>
#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/grouping.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/analysis/talkers.hpp>
#include <netprobe/collector/snapshot.hpp>
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

// A kernel flow entry with its cumulative values.
inline ebpf::FlowEntry makeEntry(const flow_key& k, std::uint64_t pkts, std::uint64_t bytes, std::uint64_t first,
                                 std::uint64_t last, std::uint8_t flags = 0) {
    ebpf::FlowEntry d;
    d.key = k;
    d.stats.packets = pkts;
    d.stats.bytes = bytes;
    d.stats.first_seen_ns = first;
    d.stats.last_seen_ns = last;
    d.stats.tcp_flags = flags;
    return d;
}

// One interval's activity of a flow, as the datapath source puts it in a snapshot.
inline collector::FlowSample makeSample(const flow_key& k, std::uint64_t pkts, std::uint64_t bytes, std::uint64_t first,
                                        std::uint64_t last, std::uint8_t flags = 0) {
    collector::FlowSample s;
    s.key = k;
    s.packets = pkts;
    s.bytes = bytes;
    s.first_seen_ns = first;
    s.last_seen_ns = last;
    s.tcp_flags = flags;
    return s;
}

// A flow-table record: totals, the last interval's share, flags and kernel times.
inline analysis::FlowRecord makeRecord(const flow_key& k, std::uint64_t pkts, std::uint64_t bytes,
                                       std::uint64_t interval_pkts, std::uint64_t interval_bytes,
                                       std::uint8_t flags = 0, std::uint64_t first = 0, std::uint64_t last = 0) {
    analysis::FlowRecord r;
    r.key = k;
    r.packets = pkts;
    r.bytes = bytes;
    r.interval_packets = interval_pkts;
    r.interval_bytes = interval_bytes;
    r.tcp_flags = flags;
    r.first_seen_ns = first;
    r.last_seen_ns = last;
    return r;
}

// A snapshot and what the main pipeline's stages make of it, for the export's pure
// functions: flow records (in the order the stage sorts them) and the group view.
struct TestState {
    collector::Snapshot snap;
    std::vector<analysis::FlowRecord> flows;
    std::vector<std::pair<std::uint32_t, std::string>> ifnames;  // ifindex -> name
    std::shared_ptr<const analysis::GroupView> groups;
    std::shared_ptr<const analysis::TalkerView> talkers;  // the top talkers (null: no such stage ran)

    [[nodiscard]] analysis::Views views() const {
        analysis::Views v;
        v.snapshot = std::make_shared<const collector::Snapshot>(snap);
        auto fv = std::make_shared<analysis::FlowView>();
        fv->records = flows;
        fv->interfaces = ifnames;
        std::sort(fv->interfaces.begin(), fv->interfaces.end());
        v.flows = std::move(fv);
        v.groups = groups;
        v.talkers = talkers;
        return v;
    }
};

}  // namespace netprobe::testing
