// The datapath's security side through BPF_PROG_TEST_RUN: sec_events records for
// new flows and ICMP unreachables (read back from the real ring buffer),
// host_stats counters, and the XDP blocklist in dry-run and on. The skeleton is
// loaded with np_enable_security (and np_mitigate) set, as the agent does.
#include <arpa/inet.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <netprobe/abi.h>

#include "datapath.skel.h"
#include "datapath_l3.skel.h"
#include "ebpf/datapath.hpp"
#include "support/packet_builder.hpp"

namespace {

using namespace netprobe::test;
namespace tf = tcp_flags;

constexpr std::uint32_t kIfindex = 1;
constexpr std::uint32_t kXdpPass = 2, kXdpDrop = 1;

struct SkelDeleter {
    void operator()(datapath_bpf* s) const { datapath_bpf__destroy(s); }
};
using Skel = std::unique_ptr<datapath_bpf, SkelDeleter>;
struct RingDeleter {
    void operator()(ring_buffer* r) const { ring_buffer__free(r); }
};

int quiet(enum libbpf_print_level level, const char* fmt, va_list args) {
    return level == LIBBPF_WARN ? std::vfprintf(stderr, fmt, args) : 0;
}

// flow_entries: the flow table's size (0: the object's default).
Skel load(std::uint32_t security, std::uint32_t mitigate, std::uint32_t flow_entries = 0) {
    libbpf_set_print(quiet);
    Skel s(datapath_bpf__open());
    if (!s) return nullptr;
    s->rodata->np_enable_security = security;
    s->rodata->np_mitigate = mitigate;
    if (flow_entries && bpf_map__set_max_entries(s->maps.flow_stats, flow_entries)) return nullptr;
    if (datapath_bpf__load(s.get())) return nullptr;
    return s;
}

enum class Prog { In, Eg, Xdp, InBlock };

std::uint32_t run(datapath_bpf* s, Prog p, const Bytes& frame) {
    const bpf_program* prog = p == Prog::In        ? s->progs.netprobe_tc_in
                              : p == Prog::Eg      ? s->progs.netprobe_tc_eg
                              : p == Prog::InBlock ? s->progs.netprobe_tc_in_block
                                                   : s->progs.netprobe_xdp;
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.data_in = frame.data();
    o.data_size_in = static_cast<std::uint32_t>(frame.size());
    o.repeat = 1;
    __sk_buff skb{};
    xdp_md xdp{};
    if (p == Prog::Xdp) {
        xdp.data_end = static_cast<std::uint32_t>(frame.size());
        xdp.ingress_ifindex = kIfindex;
        o.ctx_in = &xdp;
        o.ctx_size_in = sizeof(xdp);
    } else {
        skb.ifindex = kIfindex;
        o.ctx_in = &skb;
        o.ctx_size_in = sizeof(skb);
    }
    EXPECT_EQ(bpf_prog_test_run_opts(bpf_program__fd(prog), &o), 0);
    return o.retval;
}

std::vector<np_sec_event> drain(datapath_bpf* s) {
    std::vector<np_sec_event> out;
    auto cb = [](void* ctx, void* data, std::size_t size) -> int {
        auto* v = static_cast<std::vector<np_sec_event>*>(ctx);
        EXPECT_EQ(size, sizeof(np_sec_event));
        np_sec_event e;
        std::memcpy(&e, data, sizeof e);
        v->push_back(e);
        return 0;
    };
    std::unique_ptr<ring_buffer, RingDeleter> rb(ring_buffer__new(bpf_map__fd(s->maps.sec_events), cb, &out, nullptr));
    EXPECT_TRUE(rb);
    if (rb) ring_buffer__consume(rb.get());
    return out;
}

np_addr v4(const char* s) {
    np_addr a{};
    a.v4m.pad[2] = htonl(0xffff);
    inet_pton(AF_INET, s, &a.v4m.v4);
    return a;
}
flow_key key4(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport, std::uint8_t proto,
              std::uint8_t dir) {
    flow_key k{};
    k.src_ip = v4(src);
    k.dst_ip = v4(dst);
    k.src_port = sport;
    k.dst_port = dport;
    k.proto = proto;
    k.family = 4;
    k.direction = dir;
    k.ifindex = kIfindex;
    return k;
}

// Whether sec_flow_seen remembers the flow (its slot holds its tag), and how many of its
// slots are taken.
bool remembered(datapath_bpf* s, const flow_key& k) {
    const auto slots = netprobe::ebpf::seenSlots(s->maps.sec_flow_seen);
    const __u64 tag = np_seen_tag(&k);
    const __u32 idx = np_seen_slot(tag, slots.mask);
    __u64 v = 0;
    EXPECT_EQ(bpf_map_lookup_elem(slots.fd, &idx, &v), 0);
    return v == tag;
}
std::size_t slotsTaken(datapath_bpf* s) {
    const auto slots = netprobe::ebpf::seenSlots(s->maps.sec_flow_seen);
    std::size_t n = 0;
    for (__u32 i = 0; i <= slots.mask; ++i) {
        __u64 v = 0;
        EXPECT_EQ(bpf_map_lookup_elem(slots.fd, &i, &v), 0);
        n += v != 0;
    }
    return n;
}

np_addr v6(const char* s) {
    np_addr a{};
    inet_pton(AF_INET6, s, a.v6);
    return a;
}
bool same(const np_addr& a, const np_addr& b) { return std::memcmp(a.v6, b.v6, 16) == 0; }

np_host_stats host(datapath_bpf* s, const np_addr& a) {
    np_host_stats sum{};
    const std::size_t ncpu = static_cast<std::size_t>(libbpf_num_possible_cpus());
    std::vector<np_host_slot> v(ncpu);
    const std::uint32_t h = np_host_hash(&a);
    for (std::uint32_t idx : {h, h ^ 1u}) {
        if (bpf_map_lookup_elem(bpf_map__fd(s->maps.host_stats), &idx, v.data()) != 0) continue;
        for (const auto& slot : v) {
            if (std::memcmp(&slot.addr, &a, sizeof a) != 0) continue;
            const auto& x = slot.stats;
            sum.in_packets += x.in_packets;
            sum.in_bytes += x.in_bytes;
            sum.out_packets += x.out_packets;
            sum.out_bytes += x.out_bytes;
            sum.tcp_in += x.tcp_in;
            sum.syn_in += x.syn_in;
            sum.synack_out += x.synack_out;
            sum.udp_in += x.udp_in;
            sum.icmp_in += x.icmp_in;
        }
    }
    return sum;
}

std::uint64_t mapErrors(datapath_bpf* s, std::uint32_t id) {
    std::vector<std::uint64_t> v(static_cast<std::size_t>(libbpf_num_possible_cpus()));
    std::uint64_t sum = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(s->maps.map_errors), &id, v.data()) == 0)
        for (auto x : v) sum += x;
    return sum;
}

class SecurityDatapath : public ::testing::Test {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root";
    }
};

// Only a flow's first packet is sent; TCP/UDP only; fields as the packet had them.
TEST_F(SecurityDatapath, NewFlowRecordsOnlyForFirstPackets) {
    Skel s = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    const Bytes syn = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 22, tf::SYN, {2, 4, 5, 0xb4}).build();
    const Bytes ack = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 22, tf::ACK).payload(10).build();
    const Bytes rst = PacketBuilder().eth().ipv4("198.18.0.2", "198.18.0.1").tcp(22, 40000, tf::RST | tf::ACK).build();
    const Bytes dns = PacketBuilder().eth().ipv6("fd6e:7072::1", "fd6e:7072::2").udp(5353, 53).payload(20).build();
    const Bytes echo = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").icmp(icmp_type::ECHO_REQUEST).payload(8).build();
    run(s.get(), Prog::In, syn);
    run(s.get(), Prog::In, ack);  // same flow: nothing
    run(s.get(), Prog::Eg, rst);  // reverse flow: new
    run(s.get(), Prog::In, dns);
    run(s.get(), Prog::In, echo);  // ICMP echo: no record
    auto ev = drain(s.get());
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[0].kind, NP_SEC_NEW_FLOW);
    EXPECT_TRUE(same(ev[0].key.src_ip, v4("198.18.0.1")));
    EXPECT_TRUE(same(ev[0].key.dst_ip, v4("198.18.0.2")));
    EXPECT_EQ(ev[0].key.src_port, 40000);
    EXPECT_EQ(ev[0].key.dst_port, 22);
    EXPECT_EQ(ev[0].key.proto, 6);
    EXPECT_EQ(ev[0].key.direction, NP_DIR_INGRESS);
    EXPECT_EQ(ev[0].tcp_flags, tf::SYN);
    EXPECT_EQ(ev[0].tcp_doff, 6);  // 20 bytes + MSS option
    EXPECT_EQ(ev[0].len, syn.size());
    EXPECT_NE(ev[0].ts_ns, 0u);
    EXPECT_EQ(ev[1].tcp_flags, tf::RST | tf::ACK);
    EXPECT_EQ(ev[1].tcp_doff, 5);
    EXPECT_EQ(ev[1].key.direction, NP_DIR_EGRESS);
    EXPECT_EQ(ev[2].key.proto, 17);
    EXPECT_EQ(ev[2].key.family, 6);
    EXPECT_TRUE(same(ev[2].key.dst_ip, v6("fd6e:7072::2")));
    EXPECT_EQ(mapErrors(s.get(), NP_MAP_SEC_EVENTS), 0u);
}

// A full flow table must not hide new flows from the detectors (c2ebe38 sent records
// only after a successful flow_stats insert: a spoofed-source flood that filled the
// table blinded scan detection). Each new flow is still announced once.
TEST_F(SecurityDatapath, NewFlowsAnnouncedWhenTheFlowTableIsFull) {
    Skel s = load(1, NP_MITIGATE_OFF, 4);
    ASSERT_TRUE(s);
    for (int i = 0; i < 4; ++i) {  // fill the table
        const std::string src = "198.18.1." + std::to_string(i + 1);
        run(s.get(), Prog::In, PacketBuilder().eth().ipv4(src.c_str(), "198.18.0.2").tcp(1000, 80, tf::SYN).build());
    }
    ASSERT_EQ(drain(s.get()).size(), 4u);
    ASSERT_EQ(mapErrors(s.get(), NP_MAP_FLOW_STATS), 0u);
    const Bytes syn = PacketBuilder().eth().ipv4("198.18.9.9", "198.18.0.2").tcp(40000, 443, tf::SYN).build();
    const Bytes ack = PacketBuilder().eth().ipv4("198.18.9.9", "198.18.0.2").tcp(40000, 443, tf::ACK).build();
    const Bytes rst = PacketBuilder().eth().ipv4("198.18.0.2", "198.18.9.9").tcp(443, 40000, tf::RST | tf::ACK).build();
    const Bytes dgram = PacketBuilder().eth().ipv4("198.18.9.9", "198.18.0.2").udp(40001, 161).payload(8).build();
    run(s.get(), Prog::In, syn);
    run(s.get(), Prog::In, ack);  // the same flow, not in the table either: not again
    run(s.get(), Prog::Eg, rst);  // the answer
    run(s.get(), Prog::In, dgram);
    run(s.get(), Prog::In, dgram);
    auto ev = drain(s.get());
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[0].tcp_flags, tf::SYN);
    EXPECT_TRUE(same(ev[0].key.src_ip, v4("198.18.9.9")));
    EXPECT_EQ(ev[1].tcp_flags, tf::RST | tf::ACK);
    EXPECT_EQ(ev[2].key.proto, 17);
    EXPECT_EQ(mapErrors(s.get(), NP_MAP_FLOW_STATS), 5u);  // every packet not attributed to a flow is counted
    EXPECT_EQ(mapErrors(s.get(), NP_MAP_SEC_FLOW_SEEN), 0u);
    // What was remembered: the SYN's flow (its ACK followed) and the datagrams' flow; not
    // the RST's (a RST ends its direction: nothing that does not open again follows it).
    EXPECT_TRUE(remembered(s.get(), key4("198.18.9.9", "198.18.0.2", 40000, 443, 6, NP_DIR_INGRESS)));
    EXPECT_TRUE(remembered(s.get(), key4("198.18.9.9", "198.18.0.2", 40001, 161, 17, NP_DIR_INGRESS)));
    EXPECT_FALSE(remembered(s.get(), key4("198.18.0.2", "198.18.9.9", 443, 40000, 6, NP_DIR_EGRESS)));
    EXPECT_EQ(slotsTaken(s.get()), 2u);
}

// User space removes idle flow_stats entries: a long-lived connection that resumes is
// not announced again (c2ebe38 announced it, and its bare ACK looked like an ACK-scan
// probe). A SYN on the same 5-tuple is a new connection: announced.
TEST_F(SecurityDatapath, ResumedFlowNotAnnouncedAgainButANewSynIs) {
    Skel s = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    const Bytes syn = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 22, tf::SYN).build();
    const Bytes keepalive = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 22, tf::ACK).build();
    const Bytes data = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 22, tf::PSH | tf::ACK).payload(64).build();
    const auto seen = netprobe::ebpf::seenSlots(s->maps.sec_flow_seen);
    auto removeFlow = [&] {  // what the agent does with an idle entry (Datapath::removeFlow)
        flow_key k{};
        const int fd = bpf_map__fd(s->maps.flow_stats);
        ASSERT_EQ(bpf_map_get_next_key(fd, nullptr, &k), 0);
        auto last = netprobe::ebpf::removeIdleFlow(fd, seen, k);
        ASSERT_TRUE(last) << last.error().what();
        EXPECT_GE(last->last.packets, 1u);
        EXPECT_FALSE(last->remember_failed);
    };
    run(s.get(), Prog::In, syn);
    run(s.get(), Prog::In, keepalive);  // the handshake's ACK: the entry has seen an ACK
    ASSERT_EQ(drain(s.get()).size(), 1u);
    removeFlow();
    run(s.get(), Prog::In, keepalive);
    run(s.get(), Prog::In, data);
    EXPECT_TRUE(drain(s.get()).empty());
    removeFlow();
    run(s.get(), Prog::In, syn);  // the tuple reused by a new connection
    auto ev = drain(s.get());
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].tcp_flags, tf::SYN);
}

// A TCP flow that never acknowledged anything (a SYN no one answered, a scan's probe) or
// that saw a RST is not remembered when it is removed: what its sender sends next opens
// again and is announced anyway (under a SYN flood every removal is such a flow).
TEST_F(SecurityDatapath, EndedOrUnansweredFlowsAreNotRememberedWhenRemoved) {
    Skel s = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    const int fd = bpf_map__fd(s->maps.flow_stats);
    const auto seen = netprobe::ebpf::seenSlots(s->maps.sec_flow_seen);
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40001, 80, tf::SYN).build());
    run(s.get(), Prog::Eg, PacketBuilder().eth().ipv4("198.18.0.2", "198.18.0.1").tcp(80, 40001, tf::RST | tf::ACK).build());
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40002, 80, tf::FIN).build());
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").udp(40003, 161).payload(8).build());
    EXPECT_EQ(drain(s.get()).size(), 4u);
    std::vector<flow_key> keys;
    flow_key k{}, next{};
    for (flow_key* prev = nullptr; bpf_map_get_next_key(fd, prev, &next) == 0; prev = &k) {
        k = next;
        keys.push_back(k);
    }
    ASSERT_EQ(keys.size(), 4u);
    for (const auto& key : keys) {
        auto last = netprobe::ebpf::removeIdleFlow(fd, seen, key);
        ASSERT_TRUE(last) << last.error().what();
        EXPECT_EQ(remembered(s.get(), key), key.proto == 17) << "port " << key.src_port << "->" << key.dst_port;
    }
}

// Under pressure (user space: the table 3/4 full) a SYN flood from random ports and the
// RSTs that refuse it keep one aggregate entry each (the initiator's port 0), every
// packet counted in it; each attempt is still announced, by a record of its own or folded
// into the aggregate entry's next record (one per tick and CPU). Other packets, and every
// packet of a flow that has an entry, are counted as before. Without pressure: an entry
// each.
TEST_F(SecurityDatapath, UnderPressureAttemptsAndRefusalsShareAggregateEntries) {
    Skel s = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    ASSERT_NE(s->data_pressure, nullptr);
    const int fd = bpf_map__fd(s->maps.flow_stats);
    auto entries = [&] {
        std::vector<std::pair<flow_key, np_flow_stats>> out;
        flow_key k{}, next{};
        std::vector<np_flow_stats> v(static_cast<std::size_t>(libbpf_num_possible_cpus()));
        for (flow_key* prev = nullptr; bpf_map_get_next_key(fd, prev, &next) == 0; prev = &k) {
            k = next;
            EXPECT_EQ(bpf_map_lookup_elem(fd, &k, v.data()), 0);
            np_flow_stats sum{};
            for (const auto& c : v) {
                sum.packets += c.packets;
                sum.bytes += c.bytes;
                sum.tcp_flags |= c.tcp_flags;
            }
            out.emplace_back(k, sum);
        }
        return out;
    };
    // Folding is per CPU (each CPU's copy of an aggregate entry carries its own count):
    // every packet of this test runs on one CPU.
    cpu_set_t before, one;
    ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    struct Restore {
        cpu_set_t* mask;
        ~Restore() { sched_setaffinity(0, sizeof *mask, mask); }
    } restore{&before};
    const Bytes established = PacketBuilder().eth().ipv4("198.18.0.7", "198.18.0.2").tcp(50000, 80, tf::SYN).build();
    run(s.get(), Prog::In, established);  // before the pressure: its own entry
    s->data_pressure->np_flow_pressure = 1;
    constexpr int kAttempts = 20;
    std::uint64_t syn_bytes = 0, rst_bytes = 0;
    for (int i = 0; i < kAttempts; ++i) {
        const auto port = static_cast<std::uint16_t>(1024 + i);
        const Bytes syn = PacketBuilder().eth().ipv4("198.18.0.9", "198.18.0.2").tcp(port, 80, tf::SYN).build();
        const Bytes rst = PacketBuilder().eth().ipv4("198.18.0.2", "198.18.0.9").tcp(80, port, tf::RST | tf::ACK).build();
        run(s.get(), Prog::In, syn);
        run(s.get(), Prog::Eg, rst);
        syn_bytes += syn.size();
        rst_bytes += rst.size();
    }
    // the attempts of a tick after its first are folded: no record yet
    auto ev = drain(s.get());
    auto announced = [](const std::vector<np_sec_event>& v, std::uint8_t flag) {
        std::uint64_t records = 0, attempts = 0;
        for (const auto& e : v)
            if (e.kind == NP_SEC_NEW_FLOW && (e.tcp_flags & flag)) ++records, attempts += 1 + std::uint64_t{e.folded};
        return std::pair{records, attempts};
    };
    const auto [syn_records, syn_folded_before] = announced(ev, tf::SYN);
    const auto [rst_records, rst_folded_before] = announced(ev, tf::RST);
    // 40 test runs span a tick boundary or two, not ten
    EXPECT_LT(syn_records, 1u + kAttempts / 2) << "the attempts of a tick were not folded";
    EXPECT_LT(rst_records, kAttempts / 2) << "the refusals of a tick were not folded";
    // a tick later the aggregate entries' next packets carry what was folded: every
    // attempt and refusal announced exactly once
    usleep(30000);  // ticks of at most 10 ms (HZ >= 100)
    constexpr std::uint16_t kLate = 5000;
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.9", "198.18.0.2").tcp(kLate, 80, tf::SYN).build());
    run(s.get(), Prog::Eg, PacketBuilder().eth().ipv4("198.18.0.2", "198.18.0.9").tcp(80, kLate, tf::RST | tf::ACK).build());
    // the established flow's next packet, and a new flow's first ACK: entries of their own
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.7", "198.18.0.2").tcp(50000, 80, tf::ACK).build());
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.9", "198.18.0.2").tcp(1024, 80, tf::ACK).build());
    auto late = drain(s.get());
    // the late SYN and RST; not the ACK that completes an aggregated attempt (its SYN was
    // the aggregate entry's first, announced and remembered: sec_flow_seen)
    ASSERT_EQ(late.size(), 2u);
    EXPECT_EQ(late[0].key.src_port, kLate);
    EXPECT_EQ(late[1].key.dst_port, kLate);
    EXPECT_EQ(syn_folded_before + announced(late, tf::SYN).second, 1u + kAttempts + 1u);  // with the SYN before
    EXPECT_EQ(rst_folded_before + announced(late, tf::RST).second, kAttempts + 1u);
    syn_bytes += late[0].len;
    rst_bytes += late[1].len;
    const auto all = entries();
    ASSERT_EQ(all.size(), 4u);
    int seen = 0;
    for (const auto& [k, st] : all) {
        if (k.src_port == 0) {  // the attempts: 198.18.0.9:0 -> 198.18.0.2:80
            EXPECT_EQ(k.dst_port, 80);
            EXPECT_EQ(k.direction, NP_DIR_INGRESS);
            EXPECT_EQ(st.packets, std::uint64_t{kAttempts} + 1);
            EXPECT_EQ(st.bytes, syn_bytes);
            EXPECT_EQ(st.tcp_flags, tf::SYN);
            ++seen;
        } else if (k.dst_port == 0) {  // the refusals: 198.18.0.2:80 -> 198.18.0.9:0
            EXPECT_EQ(k.src_port, 80);
            EXPECT_EQ(k.direction, NP_DIR_EGRESS);
            EXPECT_EQ(st.packets, std::uint64_t{kAttempts} + 1);
            EXPECT_EQ(st.bytes, rst_bytes);
            ++seen;
        } else {
            EXPECT_TRUE(k.src_port == 50000 || k.src_port == 1024) << k.src_port;
            EXPECT_EQ(st.packets, k.src_port == 50000 ? 2u : 1u);
            ++seen;
        }
    }
    EXPECT_EQ(seen, 4);
    EXPECT_EQ(mapErrors(s.get(), NP_MAP_FLOW_STATS), 0u);
    // pressure off: attempts get entries of their own again
    s->data_pressure->np_flow_pressure = 0;
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.9", "198.18.0.2").tcp(2000, 80, tf::SYN).build());
    EXPECT_EQ(entries().size(), 5u);
}

// Every feature on at once (the agent's default plus threat intel, mitigation and UDP
// timing): the programs still pass the verifier. Each feature's own tests load it alone;
// together they take the most stack (an extra flow_key on the stack took the
// programs with threat intel to 560 bytes of the 512 and only e2e_intel saw it).
TEST_F(SecurityDatapath, LoadsWithEveryFeatureOn) {
    libbpf_set_print(quiet);
    auto everyFeature = [](auto& skel) {
        skel.rodata->np_enable_flows = 1;
        skel.rodata->np_enable_security = 1;
        skel.rodata->np_mitigate = NP_MITIGATE_ON;
        skel.rodata->np_enable_intel = 1;
        skel.rodata->np_enable_names = 1;
        skel.rodata->np_enable_decap = 1;
        skel.rodata->np_enable_handshakes = 1;
        skel.rodata->np_enable_udp_timing = 1;
    };
    Skel s(datapath_bpf__open());
    ASSERT_TRUE(s);
    everyFeature(*s);
    ASSERT_EQ(datapath_bpf__load(s.get()), 0) << "the verifier refused the programs with every feature on";
    // the layer-3 device programs, with the same constants and the first object's maps
    std::unique_ptr<datapath_l3_bpf, void (*)(datapath_l3_bpf*)> l3(datapath_l3_bpf__open(), datapath_l3_bpf__destroy);
    ASSERT_TRUE(l3);
    everyFeature(*l3);
    auto shared = netprobe::ebpf::shareMaps(s->obj, l3->obj);
    ASSERT_TRUE(shared) << shared.error().what();
    EXPECT_EQ(datapath_l3_bpf__load(l3.get()), 0) << "the verifier refused the layer-3 programs with every feature on";
    s->data_pressure->np_flow_pressure = 1;
    const Bytes syn = PacketBuilder().eth().ipv4("198.18.0.9", "198.18.0.2").tcp(1024, 80, tf::SYN).build();
    EXPECT_EQ(run(s.get(), Prog::In, syn), static_cast<std::uint32_t>(-1));  // continue
}

// The record says how much data the first packet carried (a bare ACK probe carries none).
TEST_F(SecurityDatapath, NewFlowRecordCarriesThePayloadLength) {
    Skel s = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 22, tf::ACK).payload(37).build());
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.3").tcp(40000, 22, tf::ACK).build());
    run(s.get(), Prog::In, PacketBuilder().eth().ipv6("fd6e:7072::1", "fd6e:7072::2").udp(1, 2).payload(20).build());
    auto ev = drain(s.get());
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[0].payload_len, 37);
    EXPECT_EQ(ev[1].payload_len, 0);
    EXPECT_EQ(ev[2].payload_len, 20);
}

// ICMP and ICMPv6 destination unreachable carry the tuple they quote; every one is sent.
TEST_F(SecurityDatapath, UnreachableCarriesTheQuotedTuple) {
    Skel s = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    const Bytes u4 = PacketBuilder().eth().ipv4("198.18.0.2", "198.18.0.1").icmp(icmp_type::DEST_UNREACH, 3, 0, 0)
                         .ipv4("198.18.0.1", "198.18.0.2").udp(50000, 161).payload(4).build();
    const Bytes u6 = PacketBuilder().eth().ipv6("fd6e:7072::2", "fd6e:7072::1").icmpv6(1, 4, 0, 0)
                         .ipv6("fd6e:7072::1", "fd6e:7072::2").tcp(41000, 8080, tf::SYN).build();
    const Bytes ttl = PacketBuilder().eth().ipv4("198.18.0.254", "198.18.0.1").icmp(11, 0, 0, 0)
                          .ipv4("198.18.0.1", "198.18.9.9").udp(40000, 33434).payload(4).build();
    const Bytes echo_reply = PacketBuilder().eth().ipv4("198.18.0.2", "198.18.0.1").icmp(icmp_type::ECHO_REPLY).build();
    run(s.get(), Prog::Eg, u4);
    run(s.get(), Prog::Eg, u4);
    run(s.get(), Prog::Eg, u6);
    run(s.get(), Prog::In, ttl);
    run(s.get(), Prog::In, echo_reply);  // not an error: no record
    auto ev = drain(s.get());
    ASSERT_EQ(ev.size(), 4u);
    EXPECT_EQ(ev[3].icmp_type, 11);
    EXPECT_EQ(ev[3].inner_dst_port, 33434);
    EXPECT_TRUE(same(ev[3].inner_dst, v4("198.18.9.9")));
    for (int i : {0, 1}) {
        EXPECT_EQ(ev[i].kind, NP_SEC_ICMP_ERROR);
        EXPECT_EQ(ev[i].icmp_type, 3);
        EXPECT_EQ(ev[i].icmp_code, 3);
        EXPECT_EQ(ev[i].inner_proto, 17);
        EXPECT_TRUE(same(ev[i].inner_src, v4("198.18.0.1")));
        EXPECT_TRUE(same(ev[i].inner_dst, v4("198.18.0.2")));
        EXPECT_EQ(ev[i].inner_src_port, 50000);
        EXPECT_EQ(ev[i].inner_dst_port, 161);
    }
    EXPECT_EQ(ev[2].icmp_type, 1);
    EXPECT_EQ(ev[2].icmp_code, 4);
    EXPECT_EQ(ev[2].inner_proto, 6);
    EXPECT_TRUE(same(ev[2].inner_dst, v6("fd6e:7072::2")));
    EXPECT_EQ(ev[2].inner_src_port, 41000);
    EXPECT_EQ(ev[2].inner_dst_port, 8080);
}

// host_stats: "in" keyed by destination at ingress, "out" by source at egress.
TEST_F(SecurityDatapath, HostCounters) {
    Skel s = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    const Bytes syn = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 80, tf::SYN).build();
    const Bytes synack = PacketBuilder().eth().ipv4("198.18.0.2", "198.18.0.1").tcp(80, 40000, tf::SYN | tf::ACK).build();
    const Bytes data = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 80, tf::ACK).payload(100).build();
    const Bytes dgram = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).payload(30).build();
    const Bytes ping = PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").icmp(icmp_type::ECHO_REQUEST).build();
    for (int i = 0; i < 3; ++i) run(s.get(), Prog::In, syn);
    run(s.get(), Prog::Eg, synack);
    run(s.get(), Prog::In, data);
    run(s.get(), Prog::In, dgram);
    run(s.get(), Prog::In, ping);
    run(s.get(), Prog::In, ping);
    auto h = host(s.get(), v4("198.18.0.2"));
    EXPECT_EQ(h.in_packets, 7u);
    EXPECT_EQ(h.in_bytes, 3 * syn.size() + data.size() + dgram.size() + 2 * ping.size());
    EXPECT_EQ(h.tcp_in, 4u);
    EXPECT_EQ(h.syn_in, 3u);
    EXPECT_EQ(h.udp_in, 1u);
    EXPECT_EQ(h.icmp_in, 2u);
    EXPECT_EQ(h.out_packets, 1u);
    EXPECT_EQ(h.out_bytes, synack.size());
    EXPECT_EQ(h.synack_out, 1u);
    auto client = host(s.get(), v4("198.18.0.1"));  // never a destination at ingress nor a source at egress
    EXPECT_EQ(client.in_packets + client.out_packets, 0u);
}

// Three addresses of one 2-way set of host_stats (the first, then two of 198.19.0.0/16).
std::vector<std::string> sameHostSet(const char* first) {
    std::vector<std::string> same_set{first};
    const std::uint32_t set = np_host_hash(&(const np_addr&)v4(first)) >> 1;
    for (int i = 0; i < 65536 && same_set.size() < 3; ++i) {
        const std::string a = "198.19." + std::to_string(i / 256) + "." + std::to_string(i % 256);
        const np_addr x = v4(a.c_str());
        if ((np_host_hash(&x) >> 1) == set) same_set.push_back(a);
    }
    return same_set;
}

// A UDP datagram to dst, seen at ingress.
Bytes udpTo(const std::string& dst) {
    return PacketBuilder().eth().ipv4("198.18.0.1", dst).udp(1, 2).payload(10).build();
}

// Three addresses of one 2-way set: the third takes over the quieter slot, the
// takeover is counted, and the busy address keeps its counts.
TEST_F(SecurityDatapath, HostSlotTakeoverKeepsTheHeavyHitter) {
    Skel s = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    const std::vector<std::string> same_set = sameHostSet("198.18.0.2");
    ASSERT_EQ(same_set.size(), 3u);
    for (int i = 0; i < 5; ++i) run(s.get(), Prog::In, udpTo(same_set[0]));
    run(s.get(), Prog::In, udpTo(same_set[1]));
    EXPECT_EQ(mapErrors(s.get(), NP_MAP_HOST_STATS), 0u);  // two ways: both fit
    run(s.get(), Prog::In, udpTo(same_set[2]));
    EXPECT_EQ(mapErrors(s.get(), NP_MAP_HOST_STATS), 1u);
    EXPECT_EQ(host(s.get(), v4(same_set[0].c_str())).in_packets, 5u);
    EXPECT_EQ(host(s.get(), v4(same_set[1].c_str())).in_packets, 0u);  // the quieter one went
    EXPECT_EQ(host(s.get(), v4(same_set[2].c_str())).in_packets, 1u);
}

// The slots whose np_host_dirty bit is set, the bits taken (cleared) as the agent does.
std::vector<std::uint32_t> takeDirty(datapath_bpf* s) {
    std::vector<std::uint32_t> out;
    for (std::uint32_t w = 0; w < NP_HOST_DIRTY_WORDS; ++w) {
        std::uint64_t bits = __atomic_exchange_n(&s->data_hostdirty->np_host_dirty[w], 0, __ATOMIC_SEQ_CST);
        for (std::uint32_t b = 0; b < 64; ++b)
            if (bits & (std::uint64_t{1} << b)) out.push_back(w * 64 + b);
    }
    return out;
}

// Which of the address's two slots holds it (on any CPU).
std::uint32_t slotOf(datapath_bpf* s, const np_addr& a) {
    std::vector<np_host_slot> v(static_cast<std::size_t>(libbpf_num_possible_cpus()));
    const std::uint32_t h = np_host_hash(&a);
    for (std::uint32_t idx : {h, h ^ 1u}) {
        if (bpf_map_lookup_elem(bpf_map__fd(s->maps.host_stats), &idx, v.data()) != 0) continue;
        for (const auto& slot : v)
            if (std::memcmp(&slot.addr, &a, sizeof a) == 0) return idx;
    }
    return ~0u;
}

// A packet that changes a slot sets the slot's bit, and only it: the agent reads the
// slots of the set bits instead of every slot on every CPU. Through a takeover too (the
// bit of the slot taken over), and the bit stays set for the next packets until taken.
TEST_F(SecurityDatapath, HostSlotChangesSetTheSlotsDirtyBit) {
    Skel s = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    ASSERT_NE(s->data_hostdirty, nullptr);
    const std::vector<std::string> same_set = sameHostSet("198.18.0.2");
    ASSERT_EQ(same_set.size(), 3u);
    EXPECT_TRUE(takeDirty(s.get()).empty());
    for (int i = 0; i < 3; ++i) run(s.get(), Prog::In, udpTo(same_set[0]));
    const std::uint32_t first = slotOf(s.get(), v4(same_set[0].c_str()));
    ASSERT_NE(first, ~0u);
    EXPECT_EQ(takeDirty(s.get()), std::vector<std::uint32_t>{first});
    EXPECT_TRUE(takeDirty(s.get()).empty());  // taken: nothing changed since
    run(s.get(), Prog::In, udpTo(same_set[1]));  // the other way of the set
    const std::uint32_t second = slotOf(s.get(), v4(same_set[1].c_str()));
    EXPECT_EQ(second, first ^ 1u);
    EXPECT_EQ(takeDirty(s.get()), std::vector<std::uint32_t>{second});
    run(s.get(), Prog::In, udpTo(same_set[2]));  // takes over the quieter slot: the second's
    EXPECT_EQ(slotOf(s.get(), v4(same_set[2].c_str())), second);
    EXPECT_EQ(takeDirty(s.get()), std::vector<std::uint32_t>{second});
    // an egress packet changes its source's slot
    run(s.get(), Prog::Eg, PacketBuilder().eth().ipv4(same_set[0].c_str(), "198.18.0.1").udp(2, 1).payload(10).build());
    EXPECT_EQ(takeDirty(s.get()), std::vector<std::uint32_t>{first});
}

// Security off (as loaded by tests of the core, or --security=off): nothing.
TEST_F(SecurityDatapath, OffMeansNoRecordsNoCounters) {
    Skel s = load(0, NP_MITIGATE_OFF);
    ASSERT_TRUE(s);
    run(s.get(), Prog::In, PacketBuilder().eth().ipv4("198.18.0.1", "198.18.0.2").tcp(40000, 80, tf::SYN).build());
    EXPECT_TRUE(drain(s.get()).empty());
    EXPECT_EQ(host(s.get(), v4("198.18.0.2")).in_packets, 0u);
    EXPECT_TRUE(takeDirty(s.get()).empty());
}

void addRule(datapath_bpf* s, const np_addr& a, std::uint32_t prefixlen, std::uint32_t rule) {
    np_block_key k{};
    k.prefixlen = prefixlen;
    k.addr = a;
    np_block_value v{rule, 0};
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(s->maps.blocklist), &k, &v, BPF_ANY), 0);
}

std::uint64_t rulePackets(datapath_bpf* s, std::uint32_t rule) {
    std::vector<np_counter> v(static_cast<std::size_t>(libbpf_num_possible_cpus()));
    std::uint64_t sum = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(s->maps.block_stats), &rule, v.data()) == 0)
        for (const auto& c : v) sum += c.packets;
    return sum;
}

TEST_F(SecurityDatapath, BlocklistDropsWhenOnCountsInDryRun) {
    const Bytes from_blocked = PacketBuilder().eth().ipv4("198.18.7.9", "198.18.0.2").udp(1, 2).payload(10).build();
    const Bytes from_v6 = PacketBuilder().eth().ipv6("fd6e:7072:9::1", "fd6e:7072::2").udp(1, 2).build();
    const Bytes tagged = PacketBuilder().eth().vlan(100).ipv4("198.18.7.10", "198.18.0.2").udp(1, 2).build();
    const Bytes from_other = PacketBuilder().eth().ipv4("198.18.8.1", "198.18.0.2").udp(1, 2).build();
    const Bytes arp = PacketBuilder().eth({}, {}, ethertype::ARP).arp({198, 18, 7, 9}, {198, 18, 0, 2}).build();
    for (std::uint32_t mode : {std::uint32_t{NP_MITIGATE_ON}, std::uint32_t{NP_MITIGATE_DRY_RUN}}) {
        Skel s = load(1, mode);
        ASSERT_TRUE(s);
        addRule(s.get(), v4("198.18.7.0"), 96 + 24, 5);         // 198.18.7.0/24
        addRule(s.get(), v6("fd6e:7072:9::"), 48, 6);           // fd6e:7072:9::/48
        const std::uint32_t hit = mode == NP_MITIGATE_ON ? kXdpDrop : kXdpPass;
        EXPECT_EQ(run(s.get(), Prog::Xdp, from_blocked), hit);
        EXPECT_EQ(run(s.get(), Prog::Xdp, tagged), hit);
        EXPECT_EQ(run(s.get(), Prog::Xdp, from_v6), hit);
        EXPECT_EQ(run(s.get(), Prog::Xdp, from_other), kXdpPass);
        EXPECT_EQ(run(s.get(), Prog::Xdp, arp), kXdpPass);
        EXPECT_EQ(rulePackets(s.get(), 5), 2u) << "mode " << mode;
        EXPECT_EQ(rulePackets(s.get(), 6), 1u);
    }
    // mitigation off: the blocklist is never consulted
    Skel off = load(1, NP_MITIGATE_OFF);
    ASSERT_TRUE(off);
    addRule(off.get(), v4("198.18.7.0"), 96 + 24, 5);
    EXPECT_EQ(run(off.get(), Prog::Xdp, from_blocked), kXdpPass);
    EXPECT_EQ(rulePackets(off.get(), 5), 0u);
}

std::size_t flowCount(datapath_bpf* s) {
    std::size_t n = 0;
    flow_key k{}, next{};
    const int fd = bpf_map__fd(s->maps.flow_stats);
    for (const void* cur = nullptr; bpf_map_get_next_key(fd, cur, &next) == 0; cur = &k, ++n) k = next;
    return n;
}

// Interfaces without XDP (a veth in --xdp-mode=auto, layer-3 devices): the *_block TC
// ingress program enforces the blocklist: TC_ACT_SHOT when on, counted by the rule
// only (no flow, no traffic); in dry-run counted and accounted as usual. The plain
// ingress program (interfaces with XDP) never consults it.
TEST_F(SecurityDatapath, TcIngressBlocklistWhereThereIsNoXdp) {
    constexpr std::uint32_t kTcShot = 2, kTcUnspec = static_cast<std::uint32_t>(-1);
    const Bytes from_blocked = PacketBuilder().eth().ipv4("198.18.7.9", "198.18.0.2").udp(1, 2).payload(10).build();
    const Bytes from_v6 = PacketBuilder().eth().ipv6("fd6e:7072:9::1", "fd6e:7072::2").udp(1, 2).build();
    const Bytes tagged = PacketBuilder().eth().vlan(100).ipv4("198.18.7.10", "198.18.0.2").udp(1, 2).build();
    const Bytes from_other = PacketBuilder().eth().ipv4("198.18.8.1", "198.18.0.2").udp(1, 2).build();
    for (std::uint32_t mode : {std::uint32_t{NP_MITIGATE_ON}, std::uint32_t{NP_MITIGATE_DRY_RUN}}) {
        Skel s = load(1, mode);
        ASSERT_TRUE(s);
        addRule(s.get(), v4("198.18.7.0"), 96 + 24, 5);
        addRule(s.get(), v6("fd6e:7072:9::"), 48, 6);
        const bool on = mode == NP_MITIGATE_ON;
        const std::uint32_t hit = on ? kTcShot : kTcUnspec;
        EXPECT_EQ(run(s.get(), Prog::InBlock, from_blocked), hit);
        EXPECT_EQ(run(s.get(), Prog::InBlock, tagged), hit);
        EXPECT_EQ(run(s.get(), Prog::InBlock, from_v6), hit);
        EXPECT_EQ(flowCount(s.get()), on ? 0u : 3u) << "mode " << mode;
        EXPECT_EQ(run(s.get(), Prog::InBlock, from_other), kTcUnspec);
        EXPECT_EQ(flowCount(s.get()), on ? 1u : 4u);
        EXPECT_EQ(rulePackets(s.get(), 5), 2u) << "mode " << mode;
        EXPECT_EQ(rulePackets(s.get(), 6), 1u);
        // the program of interfaces with XDP leaves the blocklist to XDP
        EXPECT_EQ(run(s.get(), Prog::In, from_blocked), kTcUnspec);
        EXPECT_EQ(rulePackets(s.get(), 5), 2u);
    }
}

}  // namespace
