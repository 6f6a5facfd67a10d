// Shared by the datapath packet tests: the skeleton and its maps, running a frame
// through a program, and the table's row types and builders. See datapath_test.cpp.
#pragma once

#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include <netprobe/abi.h>

#include "datapath.skel.h"
#include "ebpf/clock.hpp"
#include "support/packet_builder.hpp"


namespace netprobe::datapath_test {

using namespace netprobe::test;


constexpr std::uint32_t kIfindex = 1;  // loopback: always exists
constexpr std::int32_t kTcActUnspec = -1;
constexpr std::uint32_t kXdpPass = 2;
// The ABI enums' sizes as plain integers (arithmetic across enum types is deprecated).
constexpr std::uint32_t kDirs = NP_DIR_MAX;
constexpr std::uint32_t kClasses = NP_PROTO_MAX;
constexpr std::uint32_t kReasons = NP_MAL_REASON_MAX;

// ---------------------------------------------------------------- skeleton, maps

struct SkelDeleter {
    void operator()(datapath_bpf* s) const { datapath_bpf__destroy(s); }
};
using Skel = std::unique_ptr<datapath_bpf, SkelDeleter>;

inline int quietLibbpf(enum libbpf_print_level level, const char* fmt, va_list args)
{
    if (level != LIBBPF_WARN)
        return 0;
    return std::vfprintf(stderr, fmt, args);
}

struct LoadOptions {
    std::optional<std::uint32_t> flow_max_entries;
    std::optional<std::uint32_t> enable_flows;
    std::optional<std::uint32_t> enable_decap;
    std::optional<std::uint32_t> enable_handshakes;
    std::optional<std::uint32_t> enable_udp_timing;
};

// Open and load a fresh skeleton; sets err to the libbpf error on failure.
inline Skel loadSkeleton(const LoadOptions& o, int& err)
{
    libbpf_set_print(quietLibbpf);
    Skel skel(datapath_bpf__open());
    if (!skel) {
        err = -errno;
        return nullptr;
    }
    if (o.flow_max_entries)
        bpf_map__set_max_entries(skel->maps.flow_stats, *o.flow_max_entries);
    if (o.enable_flows)
        skel->rodata->np_enable_flows = *o.enable_flows;
    if (o.enable_decap)
        skel->rodata->np_enable_decap = *o.enable_decap;
    if (o.enable_handshakes)
        skel->rodata->np_enable_handshakes = *o.enable_handshakes;
    if (o.enable_udp_timing)
        skel->rodata->np_enable_udp_timing = *o.enable_udp_timing;
    err = datapath_bpf__load(skel.get());
    if (err)
        return nullptr;
    // the flow clock as the agent sets it up (bpf/lib/clock.h)
    err = netprobe::ebpf::calibrateClock(*skel);
    if (err)
        return nullptr;
    return skel;
}

inline int ncpus()
{
    static const int n = libbpf_num_possible_cpus();
    return n;
}

// All per-CPU copies of one value (every value type here is a multiple of 8 bytes).
template <class V>
inline std::vector<V> lookupPercpu(const bpf_map* map, const void* key)
{
    static_assert(sizeof(V) % 8 == 0);
    std::vector<V> vals(static_cast<std::size_t>(ncpus()));
    if (bpf_map_lookup_elem(bpf_map__fd(map), key, vals.data()) != 0)
        return {};
    return vals;
}

template <class K>
inline std::vector<K> keysOf(const bpf_map* map)
{
    std::vector<K> keys;
    K cur{};
    K next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(bpf_map__fd(map), prev, &next) == 0) {
        keys.push_back(next);
        cur = next;
        prev = &cur;
    }
    return keys;
}

template <class K>
inline void clearHash(const bpf_map* map)
{
    for (const K& k : keysOf<K>(map))
        bpf_map_delete_elem(bpf_map__fd(map), &k);
}

template <class V>
inline void zeroPercpuArray(const bpf_map* map)
{
    std::vector<V> zeros(static_cast<std::size_t>(ncpus()));
    for (std::uint32_t i = 0; i < bpf_map__max_entries(map); i++)
        bpf_map_update_elem(bpf_map__fd(map), &i, zeros.data(), BPF_ANY);
}

inline void resetMaps(datapath_bpf* s)
{
    zeroPercpuArray<np_counter>(s->maps.tc_device_stats);
    zeroPercpuArray<np_counter>(s->maps.xdp_device_stats);
    clearHash<tc_device_key>(s->maps.tc_device_stats_hi);
    clearHash<tc_device_key>(s->maps.xdp_device_stats_hi);
    clearHash<flow_key>(s->maps.flow_stats);
    clearHash<np_frag_key>(s->maps.frag_track);
    zeroPercpuArray<np_counter>(s->maps.packet_stats);
    zeroPercpuArray<std::uint64_t>(s->maps.malformed_stats);
    zeroPercpuArray<std::uint64_t>(s->maps.map_errors);
    clearHash<np_icmp_key>(s->maps.icmp_stats);
    zeroPercpuArray<np_overlay_counter>(s->maps.overlay_stats);
}

struct Counter {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    friend bool operator==(const Counter&, const Counter&) = default;
};

inline std::ostream& operator<<(std::ostream& os, const Counter& c)
{
    return os << "{packets=" << c.packets << ", bytes=" << c.bytes << "}";
}

inline Counter sumCounter(const bpf_map* map, const void* key)
{
    Counter c;
    for (const np_counter& v : lookupPercpu<np_counter>(map, key)) {
        c.packets += v.packets;
        c.bytes += v.bytes;
    }
    return c;
}

// Device counters live in per-CPU array slots for ifindex < NP_DEV_SLOTS and in
// the *_hi hashes above that; these read either place.
inline Counter devCounter(datapath_bpf* s, bool xdp, std::uint32_t ifindex, std::uint32_t dir)
{
    if (ifindex < NP_DEV_SLOTS) {
        std::uint32_t idx = xdp ? ifindex : ifindex * NP_DIR_MAX + dir;
        return sumCounter(xdp ? s->maps.xdp_device_stats : s->maps.tc_device_stats, &idx);
    }
    tc_device_key k{ifindex, xdp ? std::uint32_t{NP_DIR_INGRESS} : dir};
    return sumCounter(xdp ? s->maps.xdp_device_stats_hi : s->maps.tc_device_stats_hi, &k);
}

// Every (ifindex, direction) with a non-zero device counter.
inline std::vector<tc_device_key> devKeys(datapath_bpf* s, bool xdp)
{
    std::vector<tc_device_key> out;
    const bpf_map* arr = xdp ? s->maps.xdp_device_stats : s->maps.tc_device_stats;
    const std::uint32_t per_if = xdp ? 1 : NP_DIR_MAX;
    for (std::uint32_t i = 0; i < bpf_map__max_entries(arr); i++)
        if (sumCounter(arr, &i).packets)
            out.push_back({i / per_if, i % per_if});
    for (const auto& k : keysOf<tc_device_key>(xdp ? s->maps.xdp_device_stats_hi : s->maps.tc_device_stats_hi))
        out.push_back(k);
    return out;
}

inline std::uint64_t sumU64(const bpf_map* map, std::uint32_t index)
{
    std::uint64_t s = 0;
    for (std::uint64_t v : lookupPercpu<std::uint64_t>(map, &index))
        s += v;
    return s;
}

// overlay_stats[direction * NP_ENCAP_MAX + encap], summed over the CPUs.
struct Overlay {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t inner_bytes = 0;
    std::uint64_t errors = 0;
    friend bool operator==(const Overlay&, const Overlay&) = default;
};

inline std::ostream& operator<<(std::ostream& os, const Overlay& o)
{
    return os << "{packets=" << o.packets << ", bytes=" << o.bytes << ", inner_bytes=" << o.inner_bytes
              << ", errors=" << o.errors << "}";
}

inline Overlay overlayCounter(datapath_bpf* s, std::uint32_t dir, std::uint32_t encap)
{
    Overlay o;
    const std::uint32_t idx = dir * NP_ENCAP_MAX + encap;
    for (const np_overlay_counter& v : lookupPercpu<np_overlay_counter>(s->maps.overlay_stats, &idx)) {
        o.packets += v.packets;
        o.bytes += v.bytes;
        o.inner_bytes += v.inner_bytes;
        o.errors += v.errors;
    }
    return o;
}

// A flow_stats entry with its per-CPU values merged as user space does.
struct Flow {
    flow_key key{};
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint8_t tcp_flags = 0;
    std::uint64_t first_seen_ns = 0;
    std::uint64_t last_seen_ns = 0;
};

inline std::vector<Flow> readFlows(const bpf_map* map)
{
    std::vector<Flow> flows;
    for (const flow_key& k : keysOf<flow_key>(map)) {
        Flow f;
        f.key = k;
        for (const np_flow_stats& v : lookupPercpu<np_flow_stats>(map, &k)) {
            if (v.packets == 0)
                continue;
            f.packets += v.packets;
            f.bytes += v.bytes;
            f.tcp_flags |= v.tcp_flags;
            if (f.first_seen_ns == 0 || v.first_seen_ns < f.first_seen_ns)
                f.first_seen_ns = v.first_seen_ns;
            f.last_seen_ns = std::max<std::uint64_t>(f.last_seen_ns, v.last_seen_ns);
        }
        flows.push_back(f);
    }
    return flows;
}

inline bool sameKey(const flow_key& a, const flow_key& b)
{
    return std::memcmp(&a, &b, sizeof(a)) == 0;
}

inline std::string addrToString(const np_addr& a, std::uint8_t family)
{
    char buf[INET6_ADDRSTRLEN] = {};
    if (family == 4)
        inet_ntop(AF_INET, &a.v4m.v4, buf, sizeof(buf));
    else
        inet_ntop(AF_INET6, a.v6, buf, sizeof(buf));
    return buf;
}

inline std::string keyToString(const flow_key& k)
{
    std::ostringstream os;
    os << "{family=" << int(k.family) << " proto=" << int(k.proto) << " "
       << addrToString(k.src_ip, k.family) << ":" << k.src_port << " -> "
       << addrToString(k.dst_ip, k.family) << ":" << k.dst_port << " dir=" << int(k.direction)
       << " ifindex=" << k.ifindex << " encap=" << int(k.encap) << "}";
    return os.str();
}

inline std::string flowsToString(const std::vector<Flow>& flows)
{
    std::ostringstream os;
    os << flows.size() << " flow(s):";
    for (const Flow& f : flows)
        os << "\n  " << keyToString(f.key) << " packets=" << f.packets << " bytes=" << f.bytes
           << " tcp_flags=0x" << std::hex << int(f.tcp_flags) << std::dec;
    return os.str();
}

// ---------------------------------------------------------------- running programs

enum class Prog { TcIngress, TcEgress, Xdp };

inline const char* progName(Prog p)
{
    switch (p) {
    case Prog::TcIngress: return "netprobe_tc_in";
    case Prog::TcEgress: return "netprobe_tc_eg";
    case Prog::Xdp: return "netprobe_xdp";
    }
    return "?";
}

inline std::uint32_t dirOf(Prog p)
{
    return p == Prog::TcEgress ? NP_DIR_EGRESS : NP_DIR_INGRESS;
}

struct RunResult {
    int err = 0;  // bpf_prog_test_run_opts() result (0 or -errno)
    std::uint32_t retval = 0;
};

// Run one frame through a program. ctx_ifindex: nullopt = no ctx_in at all.
// gso_segs (TC only): the test skb claims to be a GSO packet of that many segments.
inline RunResult runFrame(datapath_bpf* s, Prog p, const Bytes& frame,
                   std::optional<std::uint32_t> ctx_ifindex = kIfindex, std::uint32_t gso_segs = 0)
{
    const bpf_program* prog = p == Prog::TcIngress ? s->progs.netprobe_tc_in
                              : p == Prog::TcEgress ? s->progs.netprobe_tc_eg
                                                    : s->progs.netprobe_xdp;
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<std::uint32_t>(frame.size());
    opts.repeat = 1;
    __sk_buff skb_ctx{};
    xdp_md xdp_ctx{};
    if (ctx_ifindex) {
        if (p == Prog::Xdp) {
            xdp_ctx.data_end = static_cast<std::uint32_t>(frame.size());
            xdp_ctx.ingress_ifindex = *ctx_ifindex;
            opts.ctx_in = &xdp_ctx;
            opts.ctx_size_in = sizeof(xdp_ctx);
        } else {
            skb_ctx.ifindex = *ctx_ifindex;
            if (gso_segs) {
                skb_ctx.gso_segs = gso_segs;
                skb_ctx.gso_size = 1000;
            }
            opts.ctx_in = &skb_ctx;
            opts.ctx_size_in = sizeof(skb_ctx);
        }
    }
    RunResult r;
    r.err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);
    r.retval = opts.retval;
    return r;
}

// ---------------------------------------------------------------- the table

using Classes = std::vector<np_proto_class>;

struct Step {
    Prog prog = Prog::TcIngress;
    Bytes frame;
    Classes classes;  // packet_stats classes this frame counts in
    np_malformed_reason reason = NP_MAL_NONE;
    // ICMP/ICMPv6 frames: the (type, code) icmp_stats must count it under. Without it
    // the harness checks only the number of messages per direction and family.
    std::optional<std::pair<std::uint8_t, std::uint8_t>> icmp = std::nullopt;
};

struct ExpectedFlow {
    flow_key key{};
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint8_t tcp_flags = 0;
};

struct ExpectedFrag {
    np_frag_key key{};
    np_frag_ports ports{};
};

// One overlay_stats slot (the harness checks every slot: the others stay zero).
struct ExpectedOverlay {
    std::uint32_t direction = NP_DIR_INGRESS;
    np_encap encap = NP_ENCAP_NONE;
    Overlay value;
};

struct CaseRow {
    std::string name;
    std::vector<Step> steps;
    std::vector<ExpectedFlow> flows;  // exactly the flows in flow_stats afterwards
    std::vector<ExpectedFrag> frags;  // exactly the entries in frag_track afterwards
    std::vector<ExpectedOverlay> overlay;  // exactly the non-zero overlay_stats slots afterwards
    std::string bug;                  // non-empty: a known parser bug; the row is DISABLED_
};

inline void PrintTo(const CaseRow& c, std::ostream* os)
{
    *os << c.name;
}

// Short names for the classes in the table.
namespace cls {
constexpr auto IPV4 = NP_PROTO_IPV4;
constexpr auto IPV6 = NP_PROTO_IPV6;
constexpr auto ARP = NP_PROTO_ARP;
constexpr auto OTHER_L3 = NP_PROTO_OTHER_L3;
constexpr auto TCP = NP_PROTO_TCP;
constexpr auto UDP = NP_PROTO_UDP;
constexpr auto ICMP = NP_PROTO_ICMP;
constexpr auto ICMPV6 = NP_PROTO_ICMPV6;
constexpr auto OTHER_L4 = NP_PROTO_OTHER_L4;
constexpr auto VLAN = NP_PROTO_VLAN;
constexpr auto MPLS = NP_PROTO_MPLS;
constexpr auto FRAG = NP_PROTO_FRAGMENT;
}  // namespace cls

// Addresses from the RFC 2544 benchmarking ranges of TESTBED.md.
constexpr const char* A4 = "198.18.0.1";
constexpr const char* B4 = "198.18.0.2";
constexpr const char* C4 = "198.19.255.254";
constexpr const char* A6 = "fd6e:7072::1";
constexpr const char* B6 = "fd6e:7072:0:1::2";

inline np_addr addrOf(std::string_view text, std::uint8_t family)
{
    np_addr a{};
    Ipv6Addr bytes = family == 4 ? ip4Mapped(ip4(text)) : ip6(text);
    std::memcpy(a.v6, bytes.data(), sizeof(a.v6));
    return a;
}

// The flow key the programs should produce for a packet seen by prog on kIfindex.
inline flow_key fkey(std::uint8_t family, std::string_view src, std::string_view dst, std::uint16_t sport,
              std::uint16_t dport, std::uint8_t proto, Prog prog = Prog::TcIngress)
{
    flow_key k{};
    k.src_ip = addrOf(src, family);
    k.dst_ip = addrOf(dst, family);
    k.src_port = sport;
    k.dst_port = dport;
    k.proto = proto;
    k.family = family;
    k.direction = static_cast<std::uint8_t>(dirOf(prog));
    k.ifindex = kIfindex;
    return k;
}

inline flow_key key4(std::string_view src, std::string_view dst, std::uint16_t sport, std::uint16_t dport,
              std::uint8_t proto, Prog prog = Prog::TcIngress)
{
    return fkey(4, src, dst, sport, dport, proto, prog);
}

inline flow_key key6(std::string_view src, std::string_view dst, std::uint16_t sport, std::uint16_t dport,
              std::uint8_t proto, Prog prog = Prog::TcIngress)
{
    return fkey(6, src, dst, sport, dport, proto, prog);
}

// The key of an inner (decapsulated) flow: k with its encapsulation.
inline flow_key innerKey(flow_key k, np_encap encap)
{
    k.encap = static_cast<std::uint8_t>(encap);
    return k;
}

inline ExpectedFrag frag(std::uint8_t family, std::string_view src, std::string_view dst, std::uint32_t id,
                  std::uint8_t proto, std::uint16_t sport, std::uint16_t dport)
{
    ExpectedFrag f;
    f.key.src_ip = addrOf(src, family);
    f.key.dst_ip = addrOf(dst, family);
    f.key.id = id;
    f.key.proto = family == 6 ? 0 : proto;  // IPv6 keys leave the protocol to the value
    f.key.family = family;
    f.ports.src_port = sport;
    f.ports.dst_port = dport;
    f.ports.proto = proto;
    return f;
}

// A well-formed single frame: counted in classes, creating `flow` (if any) with
// packets 1, bytes = frame size and tcp_flags.
inline CaseRow ok(std::string name, Bytes frame, Classes classes, std::optional<flow_key> flow,
              std::uint8_t tcp_flags = 0, Prog prog = Prog::TcIngress)
{
    CaseRow c;
    c.name = std::move(name);
    if (flow) {
        flow->direction = static_cast<std::uint8_t>(dirOf(prog));
        c.flows.push_back({*flow, 1, frame.size(), tcp_flags});
    }
    c.steps.push_back({prog, std::move(frame), std::move(classes), NP_MAL_NONE});
    return c;
}

// A well-formed ICMP/ICMPv6 frame that icmp_stats must count under (type, code).
inline CaseRow icmpMsg(std::string name, Bytes frame, Classes classes, flow_key flow, std::uint8_t type, std::uint8_t code,
                Prog prog = Prog::TcIngress)
{
    CaseRow c = ok(std::move(name), std::move(frame), std::move(classes), flow, 0, prog);
    c.steps.back().icmp = std::make_pair(type, code);
    return c;
}

// A malformed single frame: counted under reason (and in the classes parsed before
// the fault), no flow.
inline CaseRow bad(std::string name, Bytes frame, np_malformed_reason reason, Classes classes = {},
               Prog prog = Prog::TcIngress)
{
    CaseRow c;
    c.name = std::move(name);
    c.steps.push_back({prog, std::move(frame), std::move(classes), reason});
    return c;
}

inline CaseRow xdp(std::string name, Bytes frame)
{
    CaseRow c;
    c.name = std::move(name);
    c.steps.push_back({Prog::Xdp, std::move(frame), {}, NP_MAL_NONE});
    return c;
}

inline PacketBuilder eth()
{
    PacketBuilder b;
    b.eth();
    return b;
}

inline Bytes mplsStack(std::size_t labels, bool ipv6)
{
    PacketBuilder b = eth();
    for (std::size_t i = 0; i < labels; i++)
        b.mpls(static_cast<std::uint32_t>(1000 + i));
    if (ipv6)
        b.ipv6(A6, B6).tcp(40000, 443, tcp_flags::ACK).payload(10);
    else
        b.ipv4(A4, B4).udp(40000, 53).payload(10);
    return b.build();
}

// IPv6 + one extension header per entry of `types` (8 bytes each; AH 16 bytes;
// FRAGMENT an atomic fragment header) + TCP.
inline Bytes ipv6Chain(std::initializer_list<std::uint8_t> types)
{
    PacketBuilder b = eth();
    b.ipv6(A6, B6);
    for (std::uint8_t t : types) {
        if (t == ipproto::FRAGMENT)
            b.ipv6Frag(0x42, 0, false);  // atomic fragment
        else
            b.ipv6Ext(t, t == ipproto::AH ? 16 : 8);
    }
    b.tcp(40000, 22, tcp_flags::ACK).payload(8);
    return b.build();
}


// The table (datapath_cases.cpp).
const std::vector<CaseRow>& allCases();
// The rows that pass (known_bug = false) or that state a known bug (true).
std::vector<CaseRow> casesWithBug(bool known_bug);

}  // namespace netprobe::datapath_test
