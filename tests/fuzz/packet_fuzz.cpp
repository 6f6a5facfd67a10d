// The BPF packet parser: every input is one Ethernet frame, run through the real
// datapath programs (netprobe_xdp, netprobe_tc_in, netprobe_tc_eg) with
// BPF_PROG_TEST_RUN, in the skeleton's default configuration (flows on, security
// and mitigation off, empty blocklist). Needs root (CAP_BPF + CAP_NET_ADMIN); without
// it the harness exits with 77, which ctest reports as skipped.
//
// Per input, the verdicts and every counter the programs move are checked against
// one read of the per-CPU arrays before the runs and one after (the skeleton is
// private and nothing is attached: only these runs move its maps):
//  - verdict: XDP_PASS and TC "continue" (TC_ACT_UNSPEC) for every frame the kernel
//    accepts; the kernel refuses < 14 bytes (both hooks), TC frames larger than one
//    page of skb data, and (newer kernels) untagged IPv4/IPv6 EtherTypes followed by
//    less than a full IP header; a refused run counts nothing;
//  - device counters: +1 packet and +frame length for the hook that ran (XDP: the
//    bytes of the first buffer, data_end - data; see xdp_linear below);
//  - protocol / malformed counters, model-free: every class slot moves by 0 or by
//    exactly (1, frame length); at most one L3 class (ipv4, ipv6, arp, other_l3) and
//    at most one L4 class; no L3 class iff a malformed reason of the L2/L3 header;
//    an L4 class only on a well-formed IPv4/IPv6 packet; L4 reasons only after
//    IPv4/IPv6, IPv6 extension reasons only after IPv6; arp/other_l3 never with a
//    reason, an L4 class, MPLS or fragment; at most one malformed reason, never
//    NP_MAL_NONE; vlan iff the frame starts with a complete 802.1Q/802.1ad tag;
//    ingress and egress classify the same frame the same way;
//  - the same counters against a reference parser written from abi.h / parse.h
//    (classify() below): the exact class set and the exact malformed reason;
//  - icmp_stats: a well-formed ICMP/ICMPv6 packet adds (1, length) to exactly its
//    (direction, family, type, code); the family is the one of the class (ICMP: 4,
//    ICMPv6: 6);
//  - flow_stats: a well-formed IPv4/IPv6 packet adds (1, length) and its TCP flags
//    to the flow of the reference parser's 5-tuple (later fragments: the ports the
//    first fragment left in frag_track), per direction; a first fragment leaves its
//    ports in frag_track;
//  - overlay decapsulation (bpf/lib/decap.h) against a reference written from the RFCs
//    (decapsulate() below: VXLAN, Geneve, IPIP / 6in4 / IP6IP6 / 4in6, GRE): a tunnel
//    packet moves its overlay_stats slot by (1, length, inner IP bytes) or by one
//    undecoded packet, every other slot stays; a decoded inner IP packet adds (1, its IP
//    datagram's bytes) and its TCP flags to the inner flow (encap set), per direction;
//  - map_errors never moves.
// Every kAuditEvery inputs (and at exit) an audit compares the whole flow_stats,
// icmp_stats and frag_track with what the inputs since the last audit should have
// left (so a stray entry - e.g. a flow created by a malformed packet - is found),
// then empties them; every kDeviceAuditEvery audits and at exit it also checks that
// no other device slot and no fallback-hash entry moved. On a mismatch the inputs since the last audit are replayed one by one
// from empty maps to find the one that breaks it; its hex is printed and written next
// to libFuzzer's artifacts (libFuzzer itself saves the input it was running).
//
// Found and fixed so far: an IPv6 packet with next header 1 (ICMP) counted as icmp and
// an IPv4 packet with protocol 58 as icmpv6, while icmp_stats filed both under the
// packet's own family (now: other_l4). NP_FUZZ_PACKET_VERBOSE=1 prints
// what the reference parser made of each input (to read a reproducer).
#include <bit>
#include <cinttypes>
#include <fstream>
#include <span>

#include "bpf/datapath_support.hpp"
#include "fuzz_util.hpp"

namespace {

using namespace netprobe::datapath_test;

constexpr std::size_t kMaxFrame = 9000;
constexpr std::size_t kAuditEvery = 128;
constexpr std::uint64_t kDeviceAuditEvery = 32;
constexpr std::uint32_t kTcContinue = static_cast<std::uint32_t>(kTcActUnspec);

// ---------------------------------------------------------------- reference parser

struct Model {
    std::uint32_t mask = 0;
    int reason = NP_MAL_NONE;
    bool has_l3 = false;
    flow_key key{};  // addresses, ports, proto, family (direction and ifindex: per hook)
    int frag = 0;    // 0 none, 1 first, 2 later
    std::uint32_t frag_id = 0;
    std::uint8_t tcp_flags = 0;
    std::uint8_t icmp_type = 0;
    std::uint8_t icmp_code = 0;
    // Offsets from the start of what was parsed: the IP header and the end of its
    // datagram, the L4 header (of every protocol: a tunnel's payload for IPIP and GRE).
    std::size_t l3_off = 0, l3_end = 0, l4_off = 0;
};

constexpr bool isVlan(std::uint16_t p) { return p == 0x8100 || p == 0x88a8; }
constexpr bool isIpv6Ext(std::uint8_t nh) { return nh == 0 || nh == 43 || nh == 60 || nh == 51; }

// What the datapath should make of frame f, from the rules of abi.h (reasons) and
// parse.h: <= 2 VLAN tags, <= 8 MPLS labels (payload by its version nibble), IPv4
// (IHL >= 5, total length within the frame), IPv6 (payload length within the frame)
// with <= 8 extension headers, TCP / UDP / ICMP / ICMPv6 within the IP datagram.
class Classifier {
public:
    // f: the bytes that can be read (to the end of the frame); len: the packet's length,
    // which the length fields are checked against (an inner packet of a tunnel ends
    // before the frame does).
    explicit Classifier(std::span<const std::uint8_t> f) : f_(f), len_(f.size()) {}
    Classifier(std::span<const std::uint8_t> f, std::size_t len) : f_(f), len_(len) {}

    Model run()
    {
        m_.reason = frame();
        return m_;
    }

    // A packet without a link-layer header, of EtherType type (0x0800 or 0x86DD).
    Model runIp(std::uint16_t type)
    {
        m_.reason = type == 0x0800 ? ipv4(0) : ipv6(0);
        return m_;
    }

private:
    std::uint16_t be16(std::size_t o) const { return static_cast<std::uint16_t>(f_[o] << 8 | f_[o + 1]); }
    std::uint32_t be32(std::size_t o) const { return std::uint32_t{be16(o)} << 16 | be16(o + 2); }
    void mark(np_proto_class c) { m_.mask |= 1u << c; }

    int frame()
    {
        const std::size_t n = f_.size();
        if (n < 14)
            return NP_MAL_TRUNCATED_ETH;
        std::uint16_t proto = be16(12);
        std::size_t off = 14;
        int tags = 0;
        for (; tags < NP_MAX_VLAN_TAGS && isVlan(proto); tags++) {
            if (off + 4 > n) {
                if (tags)
                    mark(NP_PROTO_VLAN);
                return NP_MAL_TRUNCATED_VLAN;
            }
            proto = be16(off + 2);
            off += 4;
        }
        if (tags)
            mark(NP_PROTO_VLAN);
        if (isVlan(proto))
            return NP_MAL_TOO_MANY_VLAN;
        if (proto == 0x8847 || proto == 0x8848) {
            mark(NP_PROTO_MPLS);
            bool bottom = false;
            for (int i = 0; i < NP_MAX_MPLS_LABELS && !bottom; i++) {
                if (off + 4 > n)
                    return NP_MAL_TRUNCATED_MPLS;
                bottom = f_[off + 2] & 1;
                off += 4;
            }
            if (!bottom)
                return NP_MAL_MPLS_TOO_DEEP;
            if (off + 1 > n)
                return NP_MAL_TRUNCATED_MPLS;
            switch (f_[off] >> 4) {
            case 4: proto = 0x0800; break;
            case 6: proto = 0x86dd; break;
            default: return NP_MAL_MPLS_BAD_PAYLOAD;
            }
        }
        if (proto == 0x0800)
            return ipv4(off);
        if (proto == 0x86dd)
            return ipv6(off);
        mark(proto == 0x0806 ? NP_PROTO_ARP : NP_PROTO_OTHER_L3);
        return NP_MAL_NONE;
    }

    int ipv4(std::size_t off)
    {
        if (off + 20 > f_.size())
            return NP_MAL_TRUNCATED_IPV4;
        if (f_[off] >> 4 != 4)
            return NP_MAL_IPV4_BAD_VERSION;
        const std::size_t hlen = (f_[off] & 0xfu) * 4u;
        if (hlen < 20)
            return NP_MAL_IPV4_BAD_IHL;
        if (off + hlen > f_.size())
            return NP_MAL_TRUNCATED_IPV4;
        const std::size_t tot = be16(off + 2);  // (BIG TCP's tot_len 0 needs > 64 KiB)
        if (tot < hlen || off + tot > len_)
            return NP_MAL_IPV4_BAD_LENGTH;
        mark(NP_PROTO_IPV4);
        m_.has_l3 = true;
        m_.l3_off = off;
        m_.l3_end = off + tot;
        m_.key.family = 4;
        m_.key.proto = f_[off + 9];
        for (np_addr* a : {&m_.key.src_ip, &m_.key.dst_ip}) {
            a->v6[10] = a->v6[11] = 0xff;
            std::memcpy(&a->v4m.v4, &f_[off + (a == &m_.key.src_ip ? 12 : 16)], 4);
        }
        const std::uint16_t fo = be16(off + 6);
        if (fo & 0x3fff) {
            mark(NP_PROTO_FRAGMENT);
            m_.frag_id = be16(off + 4);
            if (fo & 0x1fff) {
                m_.frag = 2;
                return NP_MAL_NONE;
            }
            m_.frag = 1;
        }
        return l4(off + hlen, off + tot);
    }

    int ipv6(std::size_t off)
    {
        if (off + 40 > f_.size())
            return NP_MAL_TRUNCATED_IPV6;
        if (f_[off] >> 4 != 6)
            return NP_MAL_IPV6_BAD_VERSION;
        const std::size_t end = off + 40 + be16(off + 4);  // (jumbograms need > 64 KiB)
        if (end > len_)
            return NP_MAL_IPV6_BAD_LENGTH;
        mark(NP_PROTO_IPV6);
        m_.has_l3 = true;
        m_.l3_off = off;
        m_.l3_end = end;
        m_.key.family = 6;
        std::memcpy(m_.key.src_ip.v6, &f_[off + 8], 16);
        std::memcpy(m_.key.dst_ip.v6, &f_[off + 24], 16);
        std::uint8_t nh = f_[off + 6];
        std::size_t pos = off + 40;
        for (int i = 0; i < NP_MAX_IPV6_EXT_HDRS; i++) {
            if (nh == 44) {  // fragment header: 8 bytes
                if (pos + 8 > end)
                    return NP_MAL_TRUNCATED_IPV6_EXT;
                mark(NP_PROTO_FRAGMENT);
                m_.frag_id = be32(pos + 4);
                nh = f_[pos];
                const bool later = be16(pos + 2) & 0xfff8;
                pos += 8;
                if (later) {
                    m_.frag = 2;
                    m_.key.proto = nh;
                    return NP_MAL_NONE;
                }
                m_.frag = 1;
                continue;
            }
            if (!isIpv6Ext(nh))
                break;
            if (pos + 2 > end)
                return NP_MAL_TRUNCATED_IPV6_EXT;
            const std::size_t len = nh == 51 ? (f_[pos + 1] + 2u) * 4u : (f_[pos + 1] + 1u) * 8u;
            if (pos + len > end)
                return NP_MAL_TRUNCATED_IPV6_EXT;
            nh = f_[pos];
            pos += len;
        }
        if (isIpv6Ext(nh) || nh == 44)
            return NP_MAL_IPV6_EXT_TOO_MANY;
        m_.key.proto = nh;
        if (nh == 59)
            return NP_MAL_NONE;
        return l4(pos, end);
    }

    // end: where the IP datagram ends by its header (never beyond the frame)
    int l4(std::size_t pos, std::size_t end)
    {
        const std::uint8_t proto = m_.key.proto;
        if (proto == 6) {
            if (pos + 20 > end)
                return NP_MAL_TRUNCATED_TCP;
            const std::size_t doff = f_[pos + 12] >> 4;
            if (doff < 5)
                return NP_MAL_TCP_BAD_DOFF;
            if (pos + doff * 4 > end)
                return NP_MAL_TRUNCATED_TCP;
            mark(NP_PROTO_TCP);
            m_.key.src_port = be16(pos);
            m_.key.dst_port = be16(pos + 2);
            m_.tcp_flags = f_[pos + 13];
            return NP_MAL_NONE;
        }
        if (proto == 17) {
            if (pos + 8 > end)
                return NP_MAL_TRUNCATED_UDP;
            const std::size_t ulen = be16(pos + 4);
            // a first fragment carries the whole datagram's length
            if (ulen < 8 || (m_.frag == 0 && pos + ulen > end))
                return NP_MAL_UDP_BAD_LENGTH;
            mark(NP_PROTO_UDP);
            m_.key.src_port = be16(pos);
            m_.key.dst_port = be16(pos + 2);
            m_.l4_off = pos;
            return NP_MAL_NONE;
        }
        if ((proto == 1 && m_.key.family == 4) || (proto == 58 && m_.key.family == 6)) {
            if (pos + 4 > end)
                return NP_MAL_TRUNCATED_ICMP;
            mark(proto == 1 ? NP_PROTO_ICMP : NP_PROTO_ICMPV6);
            m_.icmp_type = f_[pos];
            m_.icmp_code = f_[pos + 1];
            return NP_MAL_NONE;
        }
        mark(NP_PROTO_OTHER_L4);
        m_.l4_off = pos;
        return NP_MAL_NONE;
    }

    std::span<const std::uint8_t> f_;
    std::size_t len_;
    Model m_;
};

// ---------------------------------------------------------------- reference decapsulation

// What the datapath should make of a tunnel packet (bpf/lib/decap.h), from the RFCs:
// VXLAN (RFC 7348) to UDP 4789 / 8472 with the I flag; Geneve (RFC 8926) to UDP 6081,
// version 0, Opt Len x 4 bytes of options; IP protocol 4 / 41 (RFC 2003, 2473, 4213);
// GRE (RFC 2784, 2890) version 0 without the routing flag, 4 bytes more for each of C,
// K, S. Payload: Ethernet (0x6558; VXLAN always), IPv4, IPv6. Tunnel headers must start,
// and the inner packet begin, within the first 1024 bytes (the datapath's bound).
struct Decap {
    std::uint8_t encap = NP_ENCAP_NONE;  // NONE: not a tunnel packet
    bool decoded = false;                // the inner packet parsed (else: undecoded)
    Model inner;                         // offsets from the start of the inner packet
    std::uint64_t ip_bytes = 0;          // the inner IP datagram (0: not IP)
};

Decap decapsulate(std::span<const std::uint8_t> f, const Model& m)
{
    Decap d;
    if (m.reason != NP_MAL_NONE || !m.has_l3 || m.frag != 0)
        return d;
    auto be16 = [&](std::size_t o) { return static_cast<std::uint16_t>(f[o] << 8 | f[o + 1]); };
    constexpr std::size_t kMaxOff = 1024;
    const std::uint8_t proto = m.key.proto;
    std::size_t end = 0, in = 0;
    std::uint16_t type = 0;
    if (proto == 17) {
        const std::uint16_t port = m.key.dst_port;
        if (port != 4789 && port != 8472 && port != 6081)
            return d;
        if (m.l4_off > kMaxOff)
            return d;
        const std::size_t ulen = be16(m.l4_off + 4);
        if (ulen < 16)
            return d;  // too short to carry either header: plain UDP
        end = m.l4_off + ulen;
        const std::size_t th = m.l4_off + 8;
        if (port == 6081) {
            if (f[th] >> 6 != 0)
                return d;  // not Geneve version 0
            d.encap = NP_ENCAP_GENEVE;
            in = th + 8 + (f[th] & 0x3fu) * 4;
            type = be16(th + 2);
        } else {
            if (!(f[th] & 0x08))
                return d;  // no I flag: not VXLAN
            d.encap = NP_ENCAP_VXLAN;
            in = th + 8;
            type = 0x6558;
        }
    } else if (proto == 4 || proto == 41 || proto == 47) {
        if (m.l4_off > kMaxOff)
            return d;
        end = m.l3_end;
        in = m.l4_off;
        if (proto == 47) {
            d.encap = NP_ENCAP_GRE;
            if (in + 4 > end)
                return d;
            const std::uint16_t flags = be16(in);
            if (flags & 0x4007)  // routing present, or version != 0
                return d;
            type = be16(in + 2);
            in += 4 + (flags & 0x8000 ? 4 : 0) + (flags & 0x2000 ? 4 : 0) + (flags & 0x1000 ? 4 : 0);
        } else if (proto == 4) {
            d.encap = m.key.family == 4 ? NP_ENCAP_IPIP : NP_ENCAP_IP4_IN_IP6;
            type = 0x0800;
        } else {
            d.encap = m.key.family == 4 ? NP_ENCAP_IP6_IN_IP4 : NP_ENCAP_IP6IP6;
            type = 0x86dd;
        }
    } else {
        return d;
    }
    if (type != 0x6558 && type != 0x0800 && type != 0x86dd)
        return d;
    if (in > end || in > kMaxOff)
        return d;
    const std::size_t len = end - in;
    if (type == 0x6558) {
        if (len < 14)
            return d;
        d.inner = Classifier(f.subspan(in), len).run();
    } else {
        d.inner = Classifier(f.subspan(in), len).runIp(type);
    }
    if (d.inner.reason != NP_MAL_NONE)
        return d;
    d.decoded = true;
    d.inner.key.encap = d.encap;
    if (d.inner.has_l3)
        d.ip_bytes = d.inner.l3_end - d.inner.l3_off;
    return d;
}

constexpr std::uint32_t bit(np_proto_class c) { return 1u << c; }
constexpr std::uint32_t kL3 = bit(NP_PROTO_IPV4) | bit(NP_PROTO_IPV6) | bit(NP_PROTO_ARP) | bit(NP_PROTO_OTHER_L3);
constexpr std::uint32_t kIp = bit(NP_PROTO_IPV4) | bit(NP_PROTO_IPV6);
constexpr std::uint32_t kL4 = bit(NP_PROTO_TCP) | bit(NP_PROTO_UDP) | bit(NP_PROTO_ICMP) | bit(NP_PROTO_ICMPV6) |
                              bit(NP_PROTO_OTHER_L4);
constexpr std::uint32_t kIcmp = bit(NP_PROTO_ICMP) | bit(NP_PROTO_ICMPV6);

// Reasons found before an L3 class is counted (L2, MPLS, IPv4/IPv6 header).
constexpr bool beforeL3(int r)
{
    return r >= NP_MAL_TRUNCATED_ETH && r <= NP_MAL_IPV6_BAD_VERSION;
}
constexpr bool ipv6ExtReason(int r) { return r == NP_MAL_TRUNCATED_IPV6_EXT || r == NP_MAL_IPV6_EXT_TOO_MANY; }
constexpr bool l4Reason(int r) { return r >= NP_MAL_TRUNCATED_TCP && r <= NP_MAL_TRUNCATED_ICMP; }

// ---------------------------------------------------------------- the harness state

struct Snapshot {
    std::array<Counter, kDirs * kClasses> proto{};
    std::array<std::uint64_t, kDirs * kReasons> mal{};
    std::array<std::uint64_t, NP_MAP_ID_MAX> errs{};
    std::array<Counter, kDirs> tc{};
    Counter xdp;
    std::array<np_overlay_counter, kDirs * NP_ENCAP_MAX> overlay{};
};

struct FlowVal {
    bool present = false;
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint8_t flags = 0;
};

using FlowBytes = std::array<std::uint8_t, sizeof(flow_key)>;
using FragBytes = std::array<std::uint8_t, sizeof(np_frag_key)>;

template <class T>
std::array<std::uint8_t, sizeof(T)> bytesOf(const T& v)
{
    std::array<std::uint8_t, sizeof(T)> b;
    std::memcpy(b.data(), &v, sizeof(T));
    return b;
}

template <class T, std::size_t N>
T fromBytes(const std::array<std::uint8_t, N>& b)
{
    static_assert(sizeof(T) == N);
    T v;
    std::memcpy(&v, b.data(), N);
    return v;
}

struct Harness {
    Skel skel;
    std::uint32_t tc_max = 0;      // largest frame TC test_run takes (one page of skb data)
    std::uint32_t xdp_max = 0;     // largest frame XDP test_run takes (capped at kMaxFrame)
    std::uint32_t xdp_linear = 0;  // bytes of a frame in XDP's first buffer (data_end - data)
    bool verbose = false;  // NP_FUZZ_PACKET_VERBOSE=1: one line per input
    std::string artifact_prefix;
    Snapshot snap;  // the arrays as of the end of the last input
    // What the inputs since the last audit must have left in the hash maps.
    std::map<FlowBytes, FlowVal> shadow_flows;
    std::map<std::uint32_t, Counter> shadow_icmp;  // np_icmp_key as u32
    std::map<FragBytes, np_frag_ports> shadow_frags;
    std::vector<Bytes> window;  // the inputs since the last audit
    bool replaying = false;
    std::uint64_t inputs = 0;
    std::uint64_t audits = 0;
    std::uint64_t tc_runs = 0;
    std::uint64_t tc_refused = 0;
    std::vector<std::uint8_t> buf;  // batch lookups

    ~Harness();
};

Harness* H = nullptr;
const Bytes* g_frame = nullptr;  // the frame being checked, for failure reports

std::string hex(const Bytes& b)
{
    static const char* d = "0123456789abcdef";
    std::string s;
    s.reserve(b.size() * 2);
    for (std::uint8_t c : b) {
        s += d[c >> 4];
        s += d[c & 15];
    }
    return s;
}

[[noreturn]] void failf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void failf(const char* fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "fuzz invariant violated: %s\n", msg);
    if (g_frame) {
        std::fprintf(stderr, "frame (%zu bytes): %s\n", g_frame->size(), hex(*g_frame).c_str());
        if (H && H->replaying) {
            const std::string path = H->artifact_prefix + "fuzz_packet-culprit-" + std::to_string(g_frame->size());
            std::ofstream(path, std::ios::binary)
                .write(reinterpret_cast<const char*>(g_frame->data()), static_cast<std::streamsize>(g_frame->size()));
            std::fprintf(stderr, "(found by replay; written to %s)\n", path.c_str());
        }
    }
    std::abort();
}

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond))                                                              \
            failf("%s [" #cond "]", ::netprobe::fuzz::detail(__VA_ARGS__).c_str()); \
    } while (0)

}  // namespace

namespace netprobe::fuzz {
inline std::string detail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string detail(const char* fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return msg;
}
}  // namespace netprobe::fuzz

namespace {

// ---------------------------------------------------------------- map reads

// count consecutive slots of a per-CPU array from index first, summed over CPUs.
// V: np_counter or std::uint64_t.
template <class V>
void readArray(const bpf_map* map, std::uint32_t first, std::uint32_t count, V* out)
{
    static_assert(sizeof(V) % 8 == 0);
    const std::size_t n = static_cast<std::size_t>(ncpus());
    H->buf.resize(std::size_t{count} * n * sizeof(V));
    std::vector<std::uint32_t> keys(count);
    std::uint32_t prev = first - 1;
    std::uint32_t next = 0;
    std::uint32_t got = count;
    int err = bpf_map_lookup_batch(bpf_map__fd(map), first ? &prev : nullptr, &next, keys.data(), H->buf.data(), &got,
                                   nullptr);
    CHECK((err == 0 || err == -ENOENT) && got == count, "batch read of %s failed: %d (%u of %u)", bpf_map__name(map),
          err, got, count);
    for (std::uint32_t i = 0; i < count; i++) {
        CHECK(keys[i] == first + i, "batch read of %s: key %u at %u", bpf_map__name(map), keys[i], i);
        V sum{};
        for (std::size_t c = 0; c < n; c++) {
            V v;
            std::memcpy(&v, H->buf.data() + (i * n + c) * sizeof(V), sizeof(V));
            if constexpr (std::is_same_v<V, np_counter>) {
                sum.packets += v.packets;
                sum.bytes += v.bytes;
            } else if constexpr (std::is_same_v<V, np_overlay_counter>) {
                sum.packets += v.packets;
                sum.bytes += v.bytes;
                sum.inner_bytes += v.inner_bytes;
                sum.errors += v.errors;
            } else {
                sum += v;
            }
        }
        out[i] = sum;
    }
}

Snapshot readSnapshot()
{
    datapath_bpf* s = H->skel.get();
    Snapshot n;
    std::array<np_counter, kDirs * kClasses> proto{};
    readArray(s->maps.packet_stats, 0, kDirs * kClasses, proto.data());
    for (std::size_t i = 0; i < proto.size(); i++)
        n.proto[i] = {proto[i].packets, proto[i].bytes};
    readArray(s->maps.malformed_stats, 0, kDirs * kReasons, n.mal.data());
    readArray(s->maps.map_errors, 0, NP_MAP_ID_MAX, n.errs.data());
    std::array<np_counter, kDirs> tc{};
    readArray(s->maps.tc_device_stats, kIfindex * kDirs, kDirs, tc.data());
    for (std::size_t i = 0; i < tc.size(); i++)
        n.tc[i] = {tc[i].packets, tc[i].bytes};
    np_counter x{};
    readArray(s->maps.xdp_device_stats, kIfindex, 1, &x);
    n.xdp = {x.packets, x.bytes};
    readArray(s->maps.overlay_stats, 0, kDirs * NP_ENCAP_MAX, n.overlay.data());
    return n;
}

FlowVal readFlow(const flow_key& k)
{
    FlowVal f;
    const std::vector<np_flow_stats> vals = lookupPercpu<np_flow_stats>(H->skel->maps.flow_stats, &k);
    if (vals.empty())
        return f;
    f.present = true;
    for (const np_flow_stats& v : vals) {
        if (v.packets == 0)
            continue;
        CHECK(v.first_seen_ns != 0 && v.first_seen_ns <= v.last_seen_ns, "flow %s: first_seen %" PRIu64
              " last_seen %" PRIu64, keyToString(k).c_str(), std::uint64_t{v.first_seen_ns}, std::uint64_t{v.last_seen_ns});
        f.packets += v.packets;
        f.bytes += v.bytes;
        f.flags |= v.tcp_flags;
    }
    return f;
}

std::uint32_t icmpKeyU32(const np_icmp_key& k)
{
    std::uint32_t u;
    std::memcpy(&u, &k, sizeof(u));
    return u;
}

Counter readIcmp(const np_icmp_key& k)
{
    return sumCounter(H->skel->maps.icmp_stats, &k);
}

np_frag_key fragKeyOf(const Model& m)
{
    np_frag_key fk{};
    fk.src_ip = m.key.src_ip;
    fk.dst_ip = m.key.dst_ip;
    fk.id = m.frag_id;
    fk.proto = m.key.family == 4 ? m.key.proto : 0;
    fk.family = m.key.family;
    return fk;
}

template <class K>
bool hashEmpty(const bpf_map* map)
{
    K next{};
    return bpf_map_get_next_key(bpf_map__fd(map), nullptr, &next) == -ENOENT;
}

// ---------------------------------------------------------------- running

struct Run {
    bool ran = false;  // the kernel ran the program (test_run returned 0)
    std::uint32_t retval = 0;
};

// The kernel's own rules for test_run data (net/bpf/test_run.c): at least an
// Ethernet header; TC: at most one page of skb data; newer kernels: an untagged
// IPv4 / IPv6 EtherType needs a full IP header behind it.
enum class Accept { No, Yes, Maybe };

Accept tcAccepts(const Bytes& f)
{
    if (f.size() < 14 || f.size() > H->tc_max)
        return Accept::No;
    const std::uint16_t et = static_cast<std::uint16_t>(f[12] << 8 | f[13]);
    if ((et == 0x0800 && f.size() < 14 + 20) || (et == 0x86dd && f.size() < 14 + 40))
        return Accept::Maybe;
    return Accept::Yes;
}

Run runChecked(Prog p, const Bytes& f, Accept accept)
{
    RunResult r = runFrame(H->skel.get(), p, f);
    Run out;
    if (r.err == -EINVAL) {
        CHECK(accept != Accept::Yes, "%s: test_run refused a %zu-byte frame it should take", progName(p), f.size());
        return out;
    }
    CHECK(r.err == 0, "%s: test_run failed: %d", progName(p), r.err);
    CHECK(accept != Accept::No, "%s: test_run took a %zu-byte frame it should refuse", progName(p), f.size());
    out.ran = true;
    out.retval = r.retval;
    return out;
}

std::string maskToString(std::uint32_t mask)
{
    static const char* names[] = {"ipv4", "ipv6", "arp", "other_l3", "tcp", "udp",
                                  "icmp", "icmpv6", "other_l4", "vlan", "mpls", "fragment"};
    std::string s = "{";
    for (std::uint32_t c = 0; c < kClasses; c++)
        if (mask & (1u << c))
            s += std::string(s.size() > 1 ? "," : "") + names[c];
    return s + "}";
}

// One frame through XDP, TC ingress and TC egress, and every check.
void processFrame(const Bytes& f)
{
    g_frame = &f;
    datapath_bpf* s = H->skel.get();
    const std::uint64_t len = f.size();
    const Model m = Classifier(f).run();
    const bool well_formed_ip = m.reason == NP_MAL_NONE && m.has_l3;
    const Decap dc = decapsulate(f, m);
    const bool inner_flow = dc.decoded && dc.inner.has_l3;

    // Flow keys (per direction) and what they hold before the runs.
    flow_key fkey = m.key;
    fkey.ifindex = kIfindex;
    if (well_formed_ip && m.frag == 2) {
        // a later fragment takes the ports (and final protocol) its first fragment left
        np_frag_key fk = fragKeyOf(m);
        np_frag_ports fp{};
        if (bpf_map_lookup_elem(bpf_map__fd(s->maps.frag_track), &fk, &fp) == 0) {
            fkey.src_port = fp.src_port;
            fkey.dst_port = fp.dst_port;
            fkey.proto = fp.proto;
        }
    }
    std::array<flow_key, kDirs> keys{fkey, fkey};
    std::array<FlowVal, kDirs> flow_before{};
    // The inner flow of a tunnel packet (its later fragments, too, take their ports from
    // frag_track).
    flow_key ikey = dc.inner.key;
    ikey.ifindex = kIfindex;
    if (inner_flow && dc.inner.frag == 2) {
        np_frag_key fk = fragKeyOf(dc.inner);
        np_frag_ports fp{};
        if (bpf_map_lookup_elem(bpf_map__fd(s->maps.frag_track), &fk, &fp) == 0) {
            ikey.src_port = fp.src_port;
            ikey.dst_port = fp.dst_port;
            ikey.proto = fp.proto;
        }
    }
    std::array<flow_key, kDirs> inner_keys{ikey, ikey};
    std::array<FlowVal, kDirs> inner_before{};
    std::array<np_icmp_key, kDirs> ikeys{};
    std::array<Counter, kDirs> icmp_before{};
    const bool icmp = m.reason == NP_MAL_NONE && (m.mask & kIcmp);
    for (std::uint32_t d = 0; d < kDirs; d++) {
        keys[d].direction = static_cast<std::uint8_t>(d);
        if (well_formed_ip)
            flow_before[d] = readFlow(keys[d]);
        inner_keys[d].direction = static_cast<std::uint8_t>(d);
        if (inner_flow)
            inner_before[d] = readFlow(inner_keys[d]);
        ikeys[d] = {static_cast<std::uint8_t>(d), m.key.family, m.icmp_type, m.icmp_code};
        if (icmp)
            icmp_before[d] = readIcmp(ikeys[d]);
    }

    // The runs. XDP sees the frame as is; TC only what the kernel builds an skb of.
    const Accept xdp_accept = f.size() < 14 ? Accept::No : f.size() <= H->xdp_max ? Accept::Yes : Accept::Maybe;
    const Run xdp = runChecked(Prog::Xdp, f, xdp_accept);
    const Accept tc_accept = tcAccepts(f);
    const std::array<Run, kDirs> tc{runChecked(Prog::TcIngress, f, tc_accept), runChecked(Prog::TcEgress, f, tc_accept)};
    CHECK(tc[0].ran == tc[1].ran, "ingress and egress test_run disagree on taking the frame");
    H->tc_runs += tc[0].ran;
    H->tc_refused += !tc[0].ran;

    // Verdicts: no blocklist, no mitigation: everything passes.
    if (xdp.ran)
        CHECK(xdp.retval == kXdpPass, "XDP verdict %u, want XDP_PASS", xdp.retval);
    for (std::uint32_t d = 0; d < kDirs; d++)
        if (tc[d].ran)
            CHECK(tc[d].retval == kTcContinue, "TC %s verdict %d, want TC_ACT_UNSPEC", d ? "egress" : "ingress",
                  static_cast<int>(tc[d].retval));

    const Snapshot after = readSnapshot();
    const Snapshot& before = H->snap;

    // Device counters.
    const Counter xdp_delta{after.xdp.packets - before.xdp.packets, after.xdp.bytes - before.xdp.bytes};
    const Counter xdp_want = xdp.ran ? Counter{1, std::min<std::uint64_t>(len, H->xdp_linear)} : Counter{};
    CHECK(xdp_delta == xdp_want, "xdp_device_stats moved by (%" PRIu64 ", %" PRIu64 "), want (%" PRIu64 ", %" PRIu64 ")",
          xdp_delta.packets, xdp_delta.bytes, xdp_want.packets, xdp_want.bytes);
    for (std::uint32_t i = 0; i < NP_MAP_ID_MAX; i++)
        CHECK(after.errs[i] == before.errs[i], "map_errors[%u] moved by %" PRIu64, i, after.errs[i] - before.errs[i]);

    std::array<std::uint32_t, kDirs> seen_mask{};
    std::array<int, kDirs> seen_reason{};
    for (std::uint32_t d = 0; d < kDirs; d++) {
        const char* hook = d ? "tc egress" : "tc ingress";
        const bool ran = tc[d].ran;
        const Counter dev{after.tc[d].packets - before.tc[d].packets, after.tc[d].bytes - before.tc[d].bytes};
        CHECK(dev == (ran ? Counter{1, len} : Counter{}), "%s: tc_device_stats moved by (%" PRIu64 ", %" PRIu64
              ") for a %s %" PRIu64 "-byte frame", hook, dev.packets, dev.bytes, ran ? "run" : "refused", len);

        // Protocol classes: each slot by 0 or exactly (1, length).
        std::uint32_t mask = 0;
        for (std::uint32_t c = 0; c < kClasses; c++) {
            const Counter& a = after.proto[d * kClasses + c];
            const Counter& b = before.proto[d * kClasses + c];
            const Counter delta{a.packets - b.packets, a.bytes - b.bytes};
            CHECK(delta == Counter{} || delta == (Counter{1, len}),
                  "%s: packet_stats class %u moved by (%" PRIu64 ", %" PRIu64 ") for a %" PRIu64 "-byte frame", hook, c,
                  delta.packets, delta.bytes, len);
            if (delta.packets)
                mask |= 1u << c;
        }
        // Malformed: at most one reason, never "none".
        int reason = NP_MAL_NONE;
        for (std::uint32_t r = 0; r < kReasons; r++) {
            const std::uint64_t delta = after.mal[d * kReasons + r] - before.mal[d * kReasons + r];
            if (!delta)
                continue;
            CHECK(r != NP_MAL_NONE && delta == 1 && reason == NP_MAL_NONE,
                  "%s: malformed_stats reason %u moved by %" PRIu64 " (reason so far %d)", hook, r, delta, reason);
            reason = static_cast<int>(r);
        }
        seen_mask[d] = mask;
        seen_reason[d] = reason;
        if (!ran) {
            CHECK(mask == 0 && reason == NP_MAL_NONE, "%s: a refused frame counted classes %s reason %d", hook,
                  maskToString(mask).c_str(), reason);
            continue;
        }

        // Structure of the classification (independent of the reference parser).
        const int l3 = std::popcount(mask & kL3);
        const int l4 = std::popcount(mask & kL4);
        const std::string ms = maskToString(mask);
        CHECK(l3 <= 1 && l4 <= 1, "%s: classes %s: more than one L3 or L4 class", hook, ms.c_str());
        CHECK((l3 == 0) == (reason != NP_MAL_NONE && beforeL3(reason)),
              "%s: classes %s with malformed reason %d: an L3 class iff no L2/L3 header fault", hook, ms.c_str(), reason);
        if (l4)
            CHECK((mask & kIp) && reason == NP_MAL_NONE, "%s: L4 class without a well-formed IP packet: %s reason %d",
                  hook, ms.c_str(), reason);
        if (l4Reason(reason))
            CHECK((mask & kIp) && l4 == 0, "%s: L4 reason %d with classes %s", hook, reason, ms.c_str());
        if (ipv6ExtReason(reason))
            CHECK((mask & bit(NP_PROTO_IPV6)) && l4 == 0, "%s: IPv6 extension reason %d with classes %s", hook, reason,
                  ms.c_str());
        if (mask & (bit(NP_PROTO_ARP) | bit(NP_PROTO_OTHER_L3)))
            CHECK(reason == NP_MAL_NONE && !(mask & (kL4 | bit(NP_PROTO_FRAGMENT) | bit(NP_PROTO_MPLS))),
                  "%s: non-IP L3 with classes %s reason %d", hook, ms.c_str(), reason);
        if (mask & bit(NP_PROTO_FRAGMENT))
            CHECK(mask & kIp, "%s: fragment without IPv4/IPv6: %s", hook, ms.c_str());
        if ((mask & bit(NP_PROTO_IPV4)) && reason == NP_MAL_NONE && !(mask & bit(NP_PROTO_FRAGMENT)))
            CHECK(l4 == 1, "%s: a well-formed unfragmented IPv4 packet without an L4 class: %s", hook, ms.c_str());
        const bool tagged = isVlan(static_cast<std::uint16_t>(f[12] << 8 | f[13])) && f.size() >= 18;
        CHECK(bool(mask & bit(NP_PROTO_VLAN)) == tagged, "%s: vlan class %d for a frame %s a complete first tag", hook,
              bool(mask & bit(NP_PROTO_VLAN)), tagged ? "with" : "without");

        // The reference parser: the exact classes and reason.
        CHECK(mask == m.mask && reason == m.reason, "%s: counted classes %s reason %d; the reference parser says %s reason %d",
              hook, ms.c_str(), reason, maskToString(m.mask).c_str(), m.reason);

        // icmp_stats: (1, length) on (direction, family, type, code).
        if (icmp) {
            const Counter a = readIcmp(ikeys[d]);
            const Counter delta{a.packets - icmp_before[d].packets, a.bytes - icmp_before[d].bytes};
            CHECK(delta == (Counter{1, len}), "%s: icmp_stats family %u type %u code %u moved by (%" PRIu64 ", %" PRIu64 ")",
                  hook, ikeys[d].family, ikeys[d].type, ikeys[d].code, delta.packets, delta.bytes);
            auto& sh = H->shadow_icmp[icmpKeyU32(ikeys[d])];
            sh.packets += 1;
            sh.bytes += len;
            const bool v4_class = mask & bit(NP_PROTO_ICMP);
            CHECK((ikeys[d].family == 4) == v4_class, "%s: class %s on an IPv%u packet", hook,
                  v4_class ? "icmp" : "icmpv6", ikeys[d].family);
        }

        // flow_stats: (1, length) and the TCP flags on the flow of the 5-tuple.
        if (well_formed_ip) {
            const FlowVal a = readFlow(keys[d]);
            const FlowVal& b = flow_before[d];
            CHECK(a.present, "%s: no flow_stats entry for %s", hook, keyToString(keys[d]).c_str());
            CHECK(a.packets - b.packets == 1 && a.bytes - b.bytes == len && a.flags == (b.flags | m.tcp_flags),
                  "%s: flow %s moved from (%" PRIu64 ", %" PRIu64 ", flags 0x%x) to (%" PRIu64 ", %" PRIu64
                  ", flags 0x%x); want +1, +%" PRIu64 ", |0x%x",
                  hook, keyToString(keys[d]).c_str(), b.packets, b.bytes, b.flags, a.packets, a.bytes, a.flags, len,
                  m.tcp_flags);
            FlowVal& sh = H->shadow_flows[bytesOf(keys[d])];
            sh.present = true;
            sh.packets += 1;
            sh.bytes += len;
            sh.flags |= m.tcp_flags;
        }

        // Overlay decapsulation: the inner flow (1, its IP datagram's bytes, its flags) and
        // overlay_stats (decoded: 1, the frame, the inner IP bytes; else undecoded 1).
        for (std::uint32_t e = 0; e < NP_ENCAP_MAX; e++) {
            const np_overlay_counter& a = after.overlay[d * NP_ENCAP_MAX + e];
            const np_overlay_counter& b = before.overlay[d * NP_ENCAP_MAX + e];
            np_overlay_counter want{};
            if (e == dc.encap && dc.encap != NP_ENCAP_NONE) {
                if (dc.decoded)
                    want = {1, len, dc.ip_bytes, 0};
                else
                    want.errors = 1;
            }
            CHECK(a.packets - b.packets == want.packets && a.bytes - b.bytes == want.bytes &&
                      a.inner_bytes - b.inner_bytes == want.inner_bytes && a.errors - b.errors == want.errors,
                  "%s: overlay_stats encap %u moved by (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
                  "), want (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
                  hook, e, std::uint64_t{a.packets - b.packets}, std::uint64_t{a.bytes - b.bytes},
                  std::uint64_t{a.inner_bytes - b.inner_bytes}, std::uint64_t{a.errors - b.errors},
                  std::uint64_t{want.packets}, std::uint64_t{want.bytes}, std::uint64_t{want.inner_bytes},
                  std::uint64_t{want.errors});
        }
        if (inner_flow) {
            const FlowVal a = readFlow(inner_keys[d]);
            const FlowVal& b = inner_before[d];
            CHECK(a.present, "%s: no flow_stats entry for the inner flow %s", hook, keyToString(inner_keys[d]).c_str());
            CHECK(a.packets - b.packets == 1 && a.bytes - b.bytes == dc.ip_bytes &&
                      a.flags == (b.flags | dc.inner.tcp_flags),
                  "%s: inner flow %s moved from (%" PRIu64 ", %" PRIu64 ", flags 0x%x) to (%" PRIu64 ", %" PRIu64
                  ", flags 0x%x); want +1, +%" PRIu64 ", |0x%x",
                  hook, keyToString(inner_keys[d]).c_str(), b.packets, b.bytes, b.flags, a.packets, a.bytes, a.flags,
                  dc.ip_bytes, dc.inner.tcp_flags);
            FlowVal& sh = H->shadow_flows[bytesOf(inner_keys[d])];
            sh.present = true;
            sh.packets += 1;
            sh.bytes += dc.ip_bytes;
            sh.flags |= dc.inner.tcp_flags;
        }
    }
    if (tc[0].ran)
        CHECK(seen_mask[0] == seen_mask[1] && seen_reason[0] == seen_reason[1],
              "ingress counted %s reason %d, egress %s reason %d", maskToString(seen_mask[0]).c_str(), seen_reason[0],
              maskToString(seen_mask[1]).c_str(), seen_reason[1]);

    // A first fragment leaves its ports for the later ones.
    if (tc[0].ran && well_formed_ip && m.frag == 1) {
        const np_frag_key fk = fragKeyOf(m);
        np_frag_ports fp{};
        CHECK(bpf_map_lookup_elem(bpf_map__fd(s->maps.frag_track), &fk, &fp) == 0, "first fragment id %u not in frag_track",
              m.frag_id);
        CHECK(fp.src_port == m.key.src_port && fp.dst_port == m.key.dst_port && fp.proto == m.key.proto,
              "frag_track for id %u holds ports %u -> %u proto %u; want %u -> %u proto %u", m.frag_id, fp.src_port,
              fp.dst_port, fp.proto, m.key.src_port, m.key.dst_port, m.key.proto);
        np_frag_ports want{};
        want.src_port = m.key.src_port;
        want.dst_port = m.key.dst_port;
        want.proto = m.key.proto;
        H->shadow_frags[bytesOf(fk)] = want;
    }
    if (tc[0].ran && inner_flow && dc.inner.frag == 1) {
        const np_frag_key fk = fragKeyOf(dc.inner);
        np_frag_ports fp{};
        CHECK(bpf_map_lookup_elem(bpf_map__fd(s->maps.frag_track), &fk, &fp) == 0,
              "inner first fragment id %u not in frag_track", dc.inner.frag_id);
        np_frag_ports want{};
        want.src_port = dc.inner.key.src_port;
        want.dst_port = dc.inner.key.dst_port;
        want.proto = dc.inner.key.proto;
        CHECK(std::memcmp(&fp, &want, sizeof(fp)) == 0, "frag_track for inner id %u holds ports %u -> %u proto %u",
              dc.inner.frag_id, fp.src_port, fp.dst_port, fp.proto);
        H->shadow_frags[bytesOf(fk)] = want;
    }
    if (H->verbose)
        std::fprintf(stderr, "fuzz_packet: %zu bytes: tc %s, classes %s reason %d%s%s\n", f.size(),
                     tc[0].ran ? "ran" : "refused", maskToString(m.mask).c_str(), m.reason,
                     well_formed_ip ? ", flow " : "", well_formed_ip ? keyToString(keys[0]).c_str() : "");
    if (H->verbose && dc.encap != NP_ENCAP_NONE)
        std::fprintf(stderr, "fuzz_packet:   tunnel encap %u %s%s\n", dc.encap, dc.decoded ? "decoded" : "undecoded",
                     inner_flow ? (", inner flow " + keyToString(inner_keys[0])).c_str() : "");
    H->snap = after;
}

// ---------------------------------------------------------------- the audit

// Empty the hash maps and forget the shadow (after an audit, and before a replay).
void clearHashes()
{
    datapath_bpf* s = H->skel.get();
    clearHash<flow_key>(s->maps.flow_stats);
    clearHash<np_icmp_key>(s->maps.icmp_stats);
    clearHash<np_frag_key>(s->maps.frag_track);
    H->shadow_flows.clear();
    H->shadow_icmp.clear();
    H->shadow_frags.clear();
}

// Whole-map comparison with the shadow; "" when all agree, else what differs. With
// devices, also every device slot (12288 per-CPU values: the costliest read, and one
// whose index no frame byte reaches, so it runs only every kDeviceAuditEvery audits).
std::string auditDiff(bool devices)
{
    datapath_bpf* s = H->skel.get();
    std::ostringstream os;
    std::size_t n = 0;
    for (const flow_key& k : keysOf<flow_key>(s->maps.flow_stats)) {
        const FlowVal got = readFlow(k);
        auto it = H->shadow_flows.find(bytesOf(k));
        if (it == H->shadow_flows.end()) {
            os << "\n  stray flow " << keyToString(k) << " packets=" << got.packets;
        } else if (got.packets != it->second.packets || got.bytes != it->second.bytes || got.flags != it->second.flags) {
            os << "\n  flow " << keyToString(k) << " has (" << got.packets << ", " << got.bytes << ", 0x" << std::hex
               << int(got.flags) << std::dec << ") want (" << it->second.packets << ", " << it->second.bytes << ")";
        }
        n++;
    }
    if (n != H->shadow_flows.size())
        os << "\n  flow_stats has " << n << " entries, want " << H->shadow_flows.size();
    n = 0;
    for (const np_icmp_key& k : keysOf<np_icmp_key>(s->maps.icmp_stats)) {
        const Counter got = readIcmp(k);
        auto it = H->shadow_icmp.find(icmpKeyU32(k));
        if (it == H->shadow_icmp.end() || !(it->second == got))
            os << "\n  icmp_stats dir " << int(k.direction) << " family " << int(k.family) << " type " << int(k.type)
               << " code " << int(k.code) << " has " << got;
        n++;
    }
    if (n != H->shadow_icmp.size())
        os << "\n  icmp_stats has " << n << " entries, want " << H->shadow_icmp.size();
    n = 0;
    for (const np_frag_key& k : keysOf<np_frag_key>(s->maps.frag_track)) {
        np_frag_ports got{};
        bpf_map_lookup_elem(bpf_map__fd(s->maps.frag_track), &k, &got);
        auto it = H->shadow_frags.find(bytesOf(k));
        if (it == H->shadow_frags.end() || std::memcmp(&it->second, &got, sizeof(got)) != 0)
            os << "\n  frag_track id " << k.id << " family " << int(k.family) << " holds " << got.src_port << " -> "
               << got.dst_port << " proto " << int(got.proto) << (it == H->shadow_frags.end() ? " (stray)" : "");
        n++;
    }
    if (n != H->shadow_frags.size())
        os << "\n  frag_track has " << n << " entries, want " << H->shadow_frags.size();

    if (!devices)
        return os.str();
    // No device slot but ifindex 1's, no fallback hash entry.
    std::vector<np_counter> dev(NP_DEV_SLOTS * kDirs);
    readArray(s->maps.tc_device_stats, 0, NP_DEV_SLOTS * kDirs, dev.data());
    for (std::uint32_t i = 0; i < dev.size(); i++)
        if (i / kDirs != kIfindex && (dev[i].packets || dev[i].bytes))
            os << "\n  tc_device_stats slot " << i << " moved";
    readArray(s->maps.xdp_device_stats, 0, NP_DEV_SLOTS, dev.data());
    for (std::uint32_t i = 0; i < NP_DEV_SLOTS; i++)
        if (i != kIfindex && (dev[i].packets || dev[i].bytes))
            os << "\n  xdp_device_stats slot " << i << " moved";
    if (!hashEmpty<tc_device_key>(s->maps.tc_device_stats_hi) || !hashEmpty<tc_device_key>(s->maps.xdp_device_stats_hi))
        os << "\n  a *_device_stats_hi entry exists";
    return os.str();
}

void audit(bool devices = false)
{
    const std::string diff = auditDiff(devices || H->replaying || ++H->audits % kDeviceAuditEvery == 0);
    if (H->replaying) {  // the maps keep growing as they did in the original run
        if (!diff.empty())
            failf("audit after this input:%s", diff.c_str());
        return;
    }
    if (diff.empty()) {
        clearHashes();
        H->window.clear();
        return;
    }
    std::fprintf(stderr, "audit of the last %zu inputs failed:%s\nreplaying them one by one\n", H->window.size(),
                 diff.c_str());
    // Find the input: from empty maps, each input of the window, each followed by an audit.
    H->replaying = true;
    resetMaps(H->skel.get());
    clearHashes();
    H->snap = readSnapshot();
    const std::vector<Bytes> window = std::move(H->window);
    for (const Bytes& f : window) {
        processFrame(f);
        audit();  // fails (and names f) on the culprit
    }
    g_frame = nullptr;
    failf("audit failed but no single input of the window reproduces it in isolation:%s", diff.c_str());
}

Harness::~Harness()
{
    if (skel && !replaying) {
        g_frame = nullptr;
        audit(true);
    }
    std::fprintf(stderr, "fuzz_packet: %" PRIu64 " inputs, %" PRIu64 " TC runs, %" PRIu64 " refused by TC test_run\n", inputs,
                 tc_runs, tc_refused);
}

// Largest size in [lo, hi] a program's test_run takes (lo is taken).
std::uint32_t probeMax(Prog p, std::uint32_t lo, std::uint32_t hi)
{
    while (lo < hi) {
        const std::uint32_t mid = lo + (hi - lo + 1) / 2;
        Bytes f(mid, 0);
        f[12] = 0x88;  // local experimental EtherType: no IP rules apply
        f[13] = 0xb5;
        if (runFrame(H->skel.get(), p, f).err == 0)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv)
{
    static Harness harness;
    H = &harness;
    for (int i = 1; i < *argc; i++)
        if (std::string_view a = (*argv)[i]; a.starts_with("-artifact_prefix="))
            H->artifact_prefix = a.substr(std::strlen("-artifact_prefix="));
    const char* verbose = std::getenv("NP_FUZZ_PACKET_VERBOSE");
    H->verbose = verbose && std::string_view(verbose) == "1";
    int err = 0;
    H->skel = loadSkeleton({}, err);
    if (!H->skel) {
        std::fprintf(stderr, "fuzz_packet: the datapath skeleton did not load: %s\n", std::strerror(-err));
        if (geteuid() != 0) {
            std::fprintf(stderr, "fuzz_packet: needs root (BPF_PROG_TEST_RUN); skipped\n");
            std::_Exit(77);
        }
        std::abort();
    }
    H->tc_max = probeMax(Prog::TcIngress, 14, kMaxFrame);
    H->xdp_max = probeMax(Prog::Xdp, 14, kMaxFrame);
    // A frame longer than XDP's first buffer lies partly in fragments; the (non-frags)
    // program sees data_end - data of the first buffer only: measure that length.
    {
        Bytes f(H->xdp_max, 0);
        f[12] = 0x88;
        f[13] = 0xb5;
        std::uint32_t ifx = kIfindex;
        const Counter b = devCounter(H->skel.get(), true, ifx, 0);
        NP_FUZZ_CHECK(runFrame(H->skel.get(), Prog::Xdp, f).err == 0);
        const Counter a = devCounter(H->skel.get(), true, ifx, 0);
        H->xdp_linear = static_cast<std::uint32_t>(a.bytes - b.bytes);
        NP_FUZZ_CHECK(a.packets - b.packets == 1 && H->xdp_linear >= 1500 && H->xdp_linear <= H->xdp_max);
    }
    resetMaps(H->skel.get());
    H->snap = readSnapshot();
    std::fprintf(stderr, "fuzz_packet: TC test_run takes 14..%u bytes, XDP 14..%u (first buffer %u)\n", H->tc_max,
                 H->xdp_max, H->xdp_linear);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    Bytes f(data, data + std::min(size, kMaxFrame));
    processFrame(f);
    H->inputs++;
    H->window.push_back(std::move(f));
    g_frame = nullptr;
    if (H->window.size() >= kAuditEvery)
        audit();
    return 0;
}
