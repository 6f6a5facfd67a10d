// The real datapath programs (netprobe_tc_in, netprobe_tc_eg, netprobe_xdp) driven
// through BPF_PROG_TEST_RUN with frames from the packet builder. Each table row is
// its own named test case (Datapath/PacketCase.Run/<name>): a sequence of frames,
// each sent to one program, and the exact state of every map afterwards —
// packet_stats, malformed_stats, tc_device_stats, xdp_device_stats, map_errors, icmp_stats,
// flow_stats (keys and merged per-CPU values), frag_track and overlay_stats (tunnel
// packets, bpf/lib/decap.h; the overlay rows are in datapath_cases.cpp). Maps are emptied
// before every case, so "no flow created" is "flow_stats is empty".
//
// How the kernel builds the test skb (net/bpf/test_run.c): the frame must hold at
// least an Ethernet header (shorter data_in is rejected with EINVAL, so
// NP_MAL_TRUNCATED_ETH cannot be produced here; see FramesShorterThanEthernet),
// skb->dev is the device named by __sk_buff.ifindex in ctx_in (loopback, ifindex
// 1, when it is 0 or 1; ENODEV for an unknown one), and for SCHED_CLS the
// Ethernet header is pushed back, so skb->len is the whole frame and the program
// sees skb->ifindex == ctx ifindex. Newer kernels also refuse an untagged IPv4 /
// IPv6 EtherType followed by less than a full IP header (see
// UntaggedShortIpHeaders), so those truncations are tested behind a VLAN tag or
// MPLS label. The test skb is always linear (6.18 has no ctx data_end for a
// linear size), so the bpf_skb_pull_data() path is not reached here. XDP test
// runs see ingress_ifindex 1 (loopback's rx queue) unless ctx_in names another
// device.
//
// Rows with a `bug` text state the correct behaviour for a known parser bug; they
// are instantiated as DISABLED_KnownBug/PacketCase.Run/<name> (ctest: Disabled);
// run them with --gtest_also_run_disabled_tests.
#include "datapath_support.hpp"

#include <sched.h>
#include <time.h>

#include <chrono>
#include <map>
#include <thread>

namespace {

using namespace netprobe::datapath_test;

// ---------------------------------------------------------------- fixtures

class DatapathSuite : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        int err = 0;
        skel_ = loadSkeleton({}, err);
        load_err_ = err;
    }
    static void TearDownTestSuite() { skel_.reset(); }

    void SetUp() override
    {
        if (!skel_ && geteuid() != 0)
            GTEST_SKIP() << "BPF tests need root (BPF_PROG_TEST_RUN); load failed: " << std::strerror(-load_err_);
        ASSERT_TRUE(skel_) << "datapath skeleton failed to load: " << std::strerror(-load_err_);
        resetMaps(skel_.get());
    }

    static datapath_bpf* skel() { return skel_.get(); }

    static inline Skel skel_;
    static inline int load_err_ = 0;
};

// gtest names the tests after this fixture: Datapath/PacketCase.Run/<row name>.
class PacketCase : public DatapathSuite, public ::testing::WithParamInterface<CaseRow> {};

TEST_P(PacketCase, Run)
{
    const auto& c = GetParam();
    if (!c.bug.empty())
        RecordProperty("known_bug", c.bug);
    datapath_bpf* s = skel();

    // Expected counters, accumulated over the steps.
    std::array<Counter, kDirs * kClasses> want_proto{};
    std::array<std::uint64_t, kDirs * kReasons> want_mal{};
    std::array<Counter, kDirs> want_tc{};
    Counter want_xdp;
    std::map<std::pair<std::uint32_t, int>, Counter> want_icmp_total;  // (direction, family)
    std::map<std::tuple<std::uint8_t, std::uint8_t, std::uint8_t, std::uint8_t>, Counter> want_icmp_exact;

    for (std::size_t i = 0; i < c.steps.size(); i++) {
        const Step& st = c.steps[i];
        SCOPED_TRACE("step " + std::to_string(i) + " (" + progName(st.prog) + ", " +
                     std::to_string(st.frame.size()) + " bytes)");
        RunResult r = runFrame(s, st.prog, st.frame);
        ASSERT_EQ(r.err, 0) << "bpf_prog_test_run_opts: " << std::strerror(-r.err);
        if (st.prog == Prog::Xdp) {
            EXPECT_EQ(r.retval, kXdpPass);
            want_xdp.packets += 1;
            want_xdp.bytes += st.frame.size();
            continue;
        }
        EXPECT_EQ(static_cast<std::int32_t>(r.retval), kTcActUnspec);
        const std::uint32_t dir = dirOf(st.prog);
        want_tc[dir].packets += 1;
        want_tc[dir].bytes += st.frame.size();
        for (np_proto_class k : st.classes) {
            want_proto[dir * kClasses + k].packets += 1;
            want_proto[dir * kClasses + k].bytes += st.frame.size();
        }
        if (st.reason != NP_MAL_NONE)
            want_mal[dir * kReasons + st.reason] += 1;
        const bool v4 = std::find(st.classes.begin(), st.classes.end(), NP_PROTO_ICMP) != st.classes.end();
        const bool v6 = std::find(st.classes.begin(), st.classes.end(), NP_PROTO_ICMPV6) != st.classes.end();
        if (st.reason == NP_MAL_NONE && (v4 || v6)) {
            auto& t = want_icmp_total[{dir, v4 ? 4 : 6}];
            t.packets += 1;
            t.bytes += st.frame.size();
            if (st.icmp) {
                auto& e = want_icmp_exact[{static_cast<std::uint8_t>(dir), static_cast<std::uint8_t>(v4 ? 4 : 6),
                                           st.icmp->first, st.icmp->second}];
                e.packets += 1;
                e.bytes += st.frame.size();
            }
        }
    }

    // icmp_stats: the number of messages per (direction, family), and the exact
    // (type, code) entries of the steps that name them.
    {
        std::map<std::pair<std::uint32_t, int>, Counter> got_total;
        for (const np_icmp_key& k : keysOf<np_icmp_key>(s->maps.icmp_stats)) {
            Counter c = sumCounter(s->maps.icmp_stats, &k);
            auto& t = got_total[{k.direction, k.family}];
            t.packets += c.packets;
            t.bytes += c.bytes;
        }
        EXPECT_EQ(got_total, want_icmp_total) << "icmp_stats messages per (direction, family)";
        for (const auto& [k, want] : want_icmp_exact) {
            np_icmp_key key{std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k)};
            EXPECT_EQ(sumCounter(s->maps.icmp_stats, &key), want)
                << "icmp_stats dir=" << int(key.direction) << " family=" << int(key.family) << " type="
                << int(key.type) << " code=" << int(key.code);
        }
    }

    // packet_stats: every (direction, class) slot.
    for (std::uint32_t i = 0; i < want_proto.size(); i++)
        EXPECT_EQ(sumCounter(s->maps.packet_stats, &i), want_proto[i])
            << "packet_stats dir=" << i / kClasses << " class=" << i % kClasses;

    // malformed_stats: every (direction, reason) slot.
    for (std::uint32_t i = 0; i < want_mal.size(); i++)
        EXPECT_EQ(sumU64(s->maps.malformed_stats, i), want_mal[i])
            << "malformed_stats dir=" << i / kReasons << " reason=" << i % kReasons;

    for (std::uint32_t i = 0; i < NP_MAP_ID_MAX; i++)
        EXPECT_EQ(sumU64(s->maps.map_errors, i), 0u) << "map_errors[" << i << "]";

    // tc_device_stats: exactly the (ifindex, direction) keys that saw packets.
    std::size_t tc_keys = 0;
    for (std::uint32_t dir = 0; dir < kDirs; dir++) {
        tc_device_key k{kIfindex, dir};
        EXPECT_EQ(devCounter(s, false, k.ifindex, k.direction), want_tc[dir]) << "tc_device_stats dir=" << dir;
        tc_keys += want_tc[dir].packets ? 1 : 0;
    }
    EXPECT_EQ(devKeys(s, false).size(), tc_keys);

    std::uint32_t ifx = kIfindex;
    EXPECT_EQ(devCounter(s, true, ifx, 0), want_xdp) << "xdp_device_stats";
    EXPECT_EQ(devKeys(s, true).size(), want_xdp.packets ? 1u : 0u);

    // flow_stats: exactly the expected flows.
    const std::vector<Flow> flows = readFlows(s->maps.flow_stats);
    EXPECT_EQ(flows.size(), c.flows.size()) << flowsToString(flows);
    for (const ExpectedFlow& want : c.flows) {
        auto it = std::find_if(flows.begin(), flows.end(), [&](const Flow& f) { return sameKey(f.key, want.key); });
        if (it == flows.end()) {
            ADD_FAILURE() << "missing flow " << keyToString(want.key) << "; have " << flowsToString(flows);
            continue;
        }
        EXPECT_EQ(it->packets, want.packets) << keyToString(want.key);
        EXPECT_EQ(it->bytes, want.bytes) << keyToString(want.key);
        EXPECT_EQ(int(it->tcp_flags), int(want.tcp_flags)) << keyToString(want.key);
        EXPECT_NE(it->first_seen_ns, 0u);
        EXPECT_LE(it->first_seen_ns, it->last_seen_ns);
    }

    // overlay_stats: exactly the expected slots, every other one zero.
    for (std::uint32_t dir = 0; dir < kDirs; dir++) {
        for (std::uint32_t e = 0; e < NP_ENCAP_MAX; e++) {
            Overlay want;
            for (const ExpectedOverlay& o : c.overlay) {
                if (o.direction == dir && static_cast<std::uint32_t>(o.encap) == e) {
                    want.packets += o.value.packets;
                    want.bytes += o.value.bytes;
                    want.inner_bytes += o.value.inner_bytes;
                    want.errors += o.value.errors;
                }
            }
            EXPECT_EQ(overlayCounter(s, dir, e), want) << "overlay_stats dir=" << dir << " encap=" << e;
        }
    }

    // frag_track: exactly the expected first-fragment records.
    const std::vector<np_frag_key> fkeys = keysOf<np_frag_key>(s->maps.frag_track);
    EXPECT_EQ(fkeys.size(), c.frags.size());
    for (const ExpectedFrag& want : c.frags) {
        np_frag_ports got{};
        ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(s->maps.frag_track), &want.key, &got), 0)
            << "frag_track entry missing for id " << want.key.id;
        EXPECT_EQ(got.src_port, want.ports.src_port);
        EXPECT_EQ(got.dst_port, want.ports.dst_port);
        EXPECT_EQ(got.proto, want.ports.proto);
    }
}

std::string caseName(const ::testing::TestParamInfo<CaseRow>& info)
{
    return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Datapath, PacketCase, ::testing::ValuesIn(casesWithBug(false)), caseName);
// Rows stating the correct behaviour for a known parser bug, disabled until it is
// fixed (then clear the row's `bug` and it moves to Datapath/). The DISABLED_
// prefix on the suite is what both gtest and gtest_discover_tests recognise.
INSTANTIATE_TEST_SUITE_P(DISABLED_KnownBug, PacketCase, ::testing::ValuesIn(casesWithBug(true)), caseName);

// ---------------------------------------------------------------- table sanity

TEST(DatapathTable, NamesAreUniqueAndValid)
{
    std::set<std::string> seen;
    for (const auto& c : allCases()) {
        EXPECT_TRUE(seen.insert(c.name).second) << "duplicate case " << c.name;
        EXPECT_TRUE(std::all_of(c.name.begin(), c.name.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; }))
            << c.name;
    }
}

// Every malformed reason the TC path can produce (all but NP_MAL_TRUNCATED_ETH,
// see FramesShorterThanEthernet) and every protocol class is exercised by an
// enabled row, on the ingress and on the egress program.
TEST(DatapathTable, CoversEveryMalformedReasonAndClass)
{
    std::set<int> reasons;
    std::set<int> classes;
    std::set<Prog> progs;
    for (const auto& c : allCases()) {
        if (!c.bug.empty())
            continue;
        for (const Step& s : c.steps) {
            reasons.insert(s.reason);
            classes.insert(s.classes.begin(), s.classes.end());
            progs.insert(s.prog);
        }
    }
    for (int r = NP_MAL_NONE + 1; r < NP_MAL_REASON_MAX; r++) {
        if (r != NP_MAL_TRUNCATED_ETH) {
            EXPECT_TRUE(reasons.contains(r)) << "no case for malformed reason " << r;
        }
    }
    for (int k = 0; k < NP_PROTO_MAX; k++)
        EXPECT_TRUE(classes.contains(k)) << "no case for protocol class " << k;
    EXPECT_EQ(progs.size(), 3u);
}

// ---------------------------------------------------------------- harness facts

class DatapathHarness : public DatapathSuite {};

// data_in shorter than an Ethernet header is refused by the kernel for both
// program types, so NP_MAL_TRUNCATED_ETH is unreachable through test_run (and on
// an Ethernet device); nothing is counted.
TEST_F(DatapathHarness, FramesShorterThanEthernet)
{
    const Bytes short_frame = PacketBuilder().eth().truncate(13).build();
    ASSERT_EQ(short_frame.size(), 13u);
    for (Prog p : {Prog::TcIngress, Prog::TcEgress, Prog::Xdp})
        EXPECT_EQ(runFrame(skel(), p, short_frame).err, -EINVAL) << progName(p);
    EXPECT_TRUE(devKeys(skel(), false).empty());
    EXPECT_TRUE(devKeys(skel(), true).empty());
    std::uint32_t idx = NP_MAL_TRUNCATED_ETH;
    EXPECT_EQ(sumU64(skel()->maps.malformed_stats, idx), 0u);
}

// Untagged frames whose IPv4 / IPv6 EtherType is followed by less than a full
// IP header: kernels with the 2026 test_run fix refuse them (EINVAL, nothing
// runs); older kernels run them, and then they must count as truncated.
TEST_F(DatapathHarness, UntaggedShortIpHeaders)
{
    struct Short {
        Bytes frame;
        np_malformed_reason reason;
    };
    const Short frames[] = {
        {eth().ipv4(A4, B4).tcp(1, 2).truncate(14 + 19).build(), NP_MAL_TRUNCATED_IPV4},
        {eth().ipv4(A4, B4).truncate(14).build(), NP_MAL_TRUNCATED_IPV4},
        {eth().ipv6(A6, B6).udp(1, 2).truncate(14 + 39).build(), NP_MAL_TRUNCATED_IPV6},
        {eth().ipv6(A6, B6).truncate(15).build(), NP_MAL_TRUNCATED_IPV6},
    };
    for (const Short& sh : frames) {
        SCOPED_TRACE(std::to_string(sh.frame.size()) + " bytes");
        resetMaps(skel());
        RunResult r = runFrame(skel(), Prog::TcIngress, sh.frame);
        tc_device_key dk{kIfindex, NP_DIR_INGRESS};
        if (r.err == -EINVAL) {
            EXPECT_TRUE(devKeys(skel(), false).empty());
            continue;
        }
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(sumU64(skel()->maps.malformed_stats, sh.reason), 1u);
        EXPECT_EQ(devCounter(skel(), false, dk.ifindex, dk.direction).packets, 1u);
        EXPECT_TRUE(readFlows(skel()->maps.flow_stats).empty());
    }
}

// The kernel resolves __sk_buff.ifindex to a device (ENODEV if there is none), and
// the program sees that device's ifindex in skb->ifindex: tc_device_stats and the
// flow key carry it. Without ctx_in the device is loopback.
TEST_F(DatapathHarness, TcIfindexComesFromCtx)
{
    const unsigned lo = if_nametoindex("lo");
    ASSERT_EQ(lo, kIfindex);
    const Bytes f = eth().ipv4(A4, B4).udp(1, 2).build();

    EXPECT_EQ(runFrame(skel(), Prog::TcIngress, f, 0x7ffffff0u).err, -ENODEV);
    EXPECT_TRUE(devKeys(skel(), false).empty());

    ASSERT_EQ(runFrame(skel(), Prog::TcIngress, f, std::nullopt).err, 0);
    ASSERT_EQ(runFrame(skel(), Prog::TcEgress, f, kIfindex).err, 0);
    auto keys = devKeys(skel(), false);
    ASSERT_EQ(keys.size(), 2u);
    for (const auto& k : keys)
        EXPECT_EQ(k.ifindex, lo);
    for (const Flow& fl : readFlows(skel()->maps.flow_stats))
        EXPECT_EQ(fl.key.ifindex, lo);
}

// Flow times come from jiffies (bpf/lib/clock.h), calibrated as the agent does it: the
// kernel's CLOCK_MONOTONIC_COARSE read around the packets is the oracle, within one tick
// (a read can fall either side of a tick update) plus the tick interrupt's lateness (the
// coarse clock is stamped when the tick runs; jiffies x tick_ns assumes its due time:
// the calibration absorbs the lateness of the tick it saw, not each tick's own; a VM's
// steal time can delay a tick by milliseconds): two ticks in all. A wrong base is off by
// far more (the calibration reads seconds-scale values).
TEST_F(DatapathHarness, FlowTimesAreTheCoarseMonotonicClock)
{
    ASSERT_NE(skel()->data_clock->np_clock.tick_ns, 0u) << "the jiffies clock is not calibrated";
    timespec res{};
    ASSERT_EQ(::clock_getres(CLOCK_MONOTONIC_COARSE, &res), 0);
    EXPECT_EQ(skel()->data_clock->np_clock.tick_ns, static_cast<std::uint64_t>(res.tv_nsec));
    const std::uint64_t tick = skel()->data_clock->np_clock.tick_ns;
    const std::uint64_t slack = 2 * tick;
    auto coarse = [] {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
    };
    const Bytes f = eth().ipv4(A4, B4).udp(1, 2).build();
    const std::uint64_t t0 = coarse();
    ASSERT_EQ(runFrame(skel(), Prog::TcIngress, f).err, 0);
    const std::uint64_t t1 = coarse();
    // a later packet, several ticks on: last_seen moves with the clock
    std::this_thread::sleep_for(std::chrono::nanoseconds(5 * tick));
    const std::uint64_t t2 = coarse();
    ASSERT_EQ(runFrame(skel(), Prog::TcIngress, f).err, 0);
    const std::uint64_t t3 = coarse();
    const std::vector<Flow> flows = readFlows(skel()->maps.flow_stats);
    ASSERT_EQ(flows.size(), 1u);
    EXPECT_GE(flows[0].first_seen_ns + slack, t0);
    EXPECT_LE(flows[0].first_seen_ns, t1 + slack);
    EXPECT_GE(flows[0].last_seen_ns + slack, t2);
    EXPECT_LE(flows[0].last_seen_ns, t3 + slack);
    EXPECT_GE(flows[0].last_seen_ns - flows[0].first_seen_ns, 4 * tick);
}

// An ifindex >= NP_DEV_SLOTS has no array slot: its counters go to the fallback
// hash. A veth pair with a chosen large index stands in for such a device.
TEST_F(DatapathHarness, LargeIfindexCountsInFallbackHash)
{
    const std::string name = "npbig" + std::to_string(::getpid() % 100000);
    struct Cleanup {
        std::string n;
        ~Cleanup() { (void)std::system(("ip link del " + n + " 2>/dev/null").c_str()); }
    } cleanup{name};
    unsigned idx = 0;
    for (unsigned cand = NP_DEV_SLOTS + 1000 + static_cast<unsigned>(::getpid() % 1000); cand < 200000; cand += 997) {
        std::string cmd = "ip link add " + name + " index " + std::to_string(cand) + " type veth peer name " + name +
                          "p 2>/dev/null";
        if (std::system(cmd.c_str()) == 0) {
            idx = cand;
            break;
        }
    }
    ASSERT_NE(idx, 0u) << "could not create a veth with a large ifindex";
    ASSERT_EQ(if_nametoindex(name.c_str()), idx);

    const Bytes f = eth().ipv4(A4, B4).udp(1, 2).build();
    ASSERT_EQ(runFrame(skel(), Prog::TcEgress, f, idx).err, 0);
    ASSERT_EQ(runFrame(skel(), Prog::TcEgress, f, idx).err, 0);
    EXPECT_EQ(devCounter(skel(), false, idx, NP_DIR_EGRESS), (Counter{2, 2 * f.size()}));
    auto hi = keysOf<tc_device_key>(skel()->maps.tc_device_stats_hi);
    ASSERT_EQ(hi.size(), 1u);
    EXPECT_EQ(hi[0].ifindex, idx);
    EXPECT_EQ(hi[0].direction, std::uint32_t{NP_DIR_EGRESS});
    // nothing landed in an array slot
    auto all = devKeys(skel(), false);
    EXPECT_EQ(all.size(), 1u);
}

TEST_F(DatapathHarness, XdpIfindexWithAndWithoutCtx)
{
    const Bytes f = eth().ipv4(A4, B4).udp(1, 2).build();
    RunResult a = runFrame(skel(), Prog::Xdp, f, std::nullopt);
    ASSERT_EQ(a.err, 0);
    EXPECT_EQ(a.retval, kXdpPass);
    RunResult b = runFrame(skel(), Prog::Xdp, f, kIfindex);
    ASSERT_EQ(b.err, 0);
    EXPECT_EQ(b.retval, kXdpPass);
    std::uint32_t ifx = kIfindex;
    EXPECT_EQ(devCounter(skel(), true, ifx, 0), (Counter{2, 2 * f.size()}));
    EXPECT_EQ(devKeys(skel(), true).size(), 1u);
}

// ---------------------------------------------------------------- separate skeletons

class DatapathCustomLoad : public ::testing::Test {
protected:
    Skel load(const LoadOptions& o)
    {
        int err = 0;
        Skel s = loadSkeleton(o, err);
        if (!s && geteuid() != 0)
            skipped_ = true;
        else if (!s)
            ADD_FAILURE() << "load failed: " << std::strerror(-err);
        return s;
    }
    bool skipped_ = false;
};

// A full flow table: the insert fails, is counted in map_errors, and the packet is
// still counted everywhere else; existing flows keep updating.
TEST_F(DatapathCustomLoad, FlowTableFullCountsMapError)
{
    Skel s = load({.flow_max_entries = 4});
    if (skipped_)
        GTEST_SKIP() << "needs root";
    ASSERT_TRUE(s);
    Bytes frames[5];
    std::uint64_t bytes = 0;
    for (std::uint16_t i = 0; i < 5; i++) {
        frames[i] = eth().ipv4(A4, B4).udp(static_cast<std::uint16_t>(10000 + i), 53).payload(i).build();
        bytes += frames[i].size();
        RunResult r = runFrame(s.get(), Prog::TcIngress, frames[i]);
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(static_cast<std::int32_t>(r.retval), kTcActUnspec);
    }
    std::vector<Flow> flows = readFlows(s->maps.flow_stats);
    EXPECT_EQ(flows.size(), 4u) << flowsToString(flows);
    EXPECT_EQ(sumU64(s->maps.map_errors, NP_MAP_FLOW_STATS), 1u);
    EXPECT_EQ(sumU64(s->maps.map_errors, NP_MAP_TC_DEVICE_STATS), 0u);
    tc_device_key dk{kIfindex, NP_DIR_INGRESS};
    EXPECT_EQ(devCounter(s.get(), false, dk.ifindex, dk.direction), (Counter{5, bytes}));
    std::uint32_t udp = NP_DIR_INGRESS * kClasses + NP_PROTO_UDP;
    EXPECT_EQ(sumCounter(s->maps.packet_stats, &udp).packets, 5u);
    // the fifth flow (sport 10004) is the one missing
    for (const Flow& f : flows)
        EXPECT_NE(f.key.src_port, 10004);

    // an existing flow still updates, and no new error is counted
    ASSERT_EQ(runFrame(s.get(), Prog::TcIngress, frames[0]).err, 0);
    flows = readFlows(s->maps.flow_stats);
    auto it = std::find_if(flows.begin(), flows.end(), [](const Flow& f) { return f.key.src_port == 10000; });
    ASSERT_NE(it, flows.end());
    EXPECT_EQ(it->packets, 2u);
    EXPECT_EQ(sumU64(s->maps.map_errors, NP_MAP_FLOW_STATS), 1u);
}

// np_enable_decap = 0 (--decap=off): a tunnel packet is its outer flow only, and
// overlay_stats stays empty.
TEST_F(DatapathCustomLoad, DecapDisabled)
{
    Skel s = load({.enable_decap = 0});
    if (skipped_)
        GTEST_SKIP() << "needs root";
    ASSERT_TRUE(s);
    const Bytes vxlan = eth().ipv4(A4, B4).udp(40001, 4789).raw(Bytes{0x08, 0, 0, 0, 0, 0, 42, 0})
                            .eth().ipv4("198.19.1.10", "198.19.2.20").tcp(33000, 80, tcp_flags::SYN).build();
    const Bytes gre = eth().ipv4(A4, B4, ipproto::GRE).raw(Bytes{0, 0, 0x08, 0x00}).ipv4(C4, A4).udp(1, 2).build();
    ASSERT_EQ(runFrame(s.get(), Prog::TcIngress, vxlan).err, 0);
    ASSERT_EQ(runFrame(s.get(), Prog::TcEgress, gre).err, 0);
    std::vector<Flow> flows = readFlows(s->maps.flow_stats);
    ASSERT_EQ(flows.size(), 2u) << flowsToString(flows);
    for (const Flow& f : flows)
        EXPECT_EQ(f.key.encap, NP_ENCAP_NONE) << keyToString(f.key);
    for (std::uint32_t d = 0; d < kDirs; d++)
        for (std::uint32_t e = 0; e < NP_ENCAP_MAX; e++)
            EXPECT_EQ(overlayCounter(s.get(), d, e), Overlay{}) << d << " " << e;
}

// The records of a skeleton's handshake_events ring: drain() returns those written since
// the last call.
class HandshakeRecords {
public:
    explicit HandshakeRecords(int ring_fd) : rb_(ring_buffer__new(ring_fd, sink, &got_, nullptr)) {}
    ~HandshakeRecords() { ring_buffer__free(rb_); }
    HandshakeRecords(const HandshakeRecords&) = delete;
    HandshakeRecords& operator=(const HandshakeRecords&) = delete;
    bool ok() const { return rb_ != nullptr; }
    std::vector<np_hs_event> drain() {
        got_.clear();
        ring_buffer__consume(rb_);
        return got_;
    }

private:
    static int sink(void* ctx, void* data, size_t size) {
        if (size >= sizeof(np_hs_event))
            static_cast<std::vector<np_hs_event>*>(ctx)->push_back(*static_cast<const np_hs_event*>(data));
        return 0;
    }
    std::vector<np_hs_event> got_;
    ring_buffer* rb_;
};

// TCP handshake timing (bpf/lib/handshake.h): a SYN leaving, its SYN/ACK arriving and the
// client's first ACK leaving make one handshake_events record keyed client -> server, its
// two halves within the time the three runs took; a retransmitted SYN or SYN/ACK makes
// the handshake untimed; later ACKs, a server's data and an ACK without a handshake
// make nothing; with np_enable_handshakes = 0 nothing is recorded either.
TEST_F(DatapathCustomLoad, HandshakeTiming)
{
    Skel s = load({.enable_handshakes = 1});
    if (skipped_)
        GTEST_SKIP() << "needs root";
    ASSERT_TRUE(s);
    HandshakeRecords records(bpf_map__fd(s->maps.handshake_events));
    ASSERT_TRUE(records.ok());
    auto drain = [&] { return records.drain(); };
    namespace tf = tcp_flags;
    auto handshake = [&](std::uint16_t cport, int syns, int synacks, int acks) {
        for (int i = 0; i < syns; i++)
            ASSERT_EQ(runFrame(s.get(), Prog::TcEgress, eth().ipv4(A4, B4).tcp(cport, 80, tf::SYN).build()).err, 0);
        for (int i = 0; i < synacks; i++)
            ASSERT_EQ(runFrame(s.get(), Prog::TcIngress,
                               eth().ipv4(B4, A4).tcp(80, cport, tf::SYN | tf::ACK).build()).err, 0);
        for (int i = 0; i < acks; i++)
            ASSERT_EQ(runFrame(s.get(), Prog::TcEgress, eth().ipv4(A4, B4).tcp(cport, 80, tf::ACK).build()).err, 0);
    };

    const auto t0 = std::chrono::steady_clock::now();
    handshake(40000, 1, 1, 3);  // three ACKs: the first completes the handshake
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    auto r = drain();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].key.src_port, 40000);
    EXPECT_EQ(r[0].key.dst_port, 80);
    EXPECT_EQ(r[0].key.proto, ipproto::TCP);
    EXPECT_EQ(r[0].key.ifindex, kIfindex);
    EXPECT_EQ(r[0].key.direction, 0);
    const flow_key want = key4(A4, B4, 40000, 80, ipproto::TCP);
    EXPECT_EQ(std::memcmp(&r[0].key.src_ip, &want.src_ip, 32), 0);
    EXPECT_GT(r[0].server_ns + r[0].client_ns, 0u);
    EXPECT_LE(r[0].server_ns + r[0].client_ns,
              static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));

    handshake(40001, 2, 1, 1);  // SYN retransmitted
    handshake(40002, 1, 2, 1);  // SYN/ACK retransmitted
    handshake(40003, 0, 1, 1);  // no SYN seen here
    handshake(40004, 1, 0, 1);  // the client ACKs a SYN/ACK not seen here (asymmetric path)
    handshake(40004, 0, 1, 1);
    EXPECT_TRUE(drain().empty());
    handshake(40005, 1, 1, 1);  // and the next connection is timed again
    r = drain();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].key.src_port, 40005);
    // the server's data (ACKs from the server side) times nothing
    ASSERT_EQ(runFrame(s.get(), Prog::TcIngress, eth().ipv4(B4, A4).tcp(80, 40000, tf::ACK).payload(100).build()).err, 0);
    EXPECT_TRUE(drain().empty());
    EXPECT_EQ(sumU64(s->maps.map_errors, NP_MAP_HANDSHAKE_EVENTS), 0u);
    EXPECT_EQ(sumU64(s->maps.map_errors, NP_MAP_TCP_HANDSHAKES), 0u);

    // Two handshakes in progress whose keys share a slot of the direct-mapped table: the
    // second SYN takes the slot, the first is not timed and is counted as displaced.
    auto slotOf = [](std::uint16_t cport) {
        const flow_key k = key4(A4, B4, cport, 80, ipproto::TCP);
        return np_hs_hash(&k);
    };
    std::uint16_t first = 0, second = 0;
    std::map<std::uint32_t, std::uint16_t> taken;
    for (std::uint32_t p = 41000; p < 65535 && !second; p++) {
        auto [it, fresh] = taken.emplace(slotOf(static_cast<std::uint16_t>(p)), static_cast<std::uint16_t>(p));
        if (!fresh) first = it->second, second = static_cast<std::uint16_t>(p);
    }
    ASSERT_NE(second, 0);
    handshake(first, 1, 0, 0);
    handshake(second, 1, 0, 0);
    EXPECT_EQ(sumU64(s->maps.map_errors, NP_MAP_TCP_HANDSHAKES), 1u);
    handshake(first, 0, 1, 1);
    handshake(second, 0, 1, 1);
    r = drain();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].key.src_port, second);

    Skel off = load({.enable_handshakes = 0});
    ASSERT_TRUE(off);
    HandshakeRecords none(bpf_map__fd(off->maps.handshake_events));
    ASSERT_TRUE(none.ok());
    ASSERT_EQ(runFrame(off.get(), Prog::TcEgress, eth().ipv4(A4, B4).tcp(40000, 80, tf::SYN).build()).err, 0);
    ASSERT_EQ(runFrame(off.get(), Prog::TcIngress, eth().ipv4(B4, A4).tcp(80, 40000, tf::SYN | tf::ACK).build()).err, 0);
    ASSERT_EQ(runFrame(off.get(), Prog::TcEgress, eth().ipv4(A4, B4).tcp(40000, 80, tf::ACK).build()).err, 0);
    EXPECT_TRUE(none.drain().empty());
}

// A client reuses a 5-tuple before user space removed its idle flow entry (seen in the
// soak: python's connections got an earlier connection's source port back within a
// minute, while the entry lives 2 minutes). The new connection's SYN finds the entry quiet
// and marks every CPU's copy (np_flow_mark_conn), so the client's first ACK completes the
// handshake whichever CPU it arrives on - before, the copy of a CPU that had carried the
// earlier connection counted past 2 and skipped the check: the handshake was not timed, its
// slot stayed in progress for 30 s, and a later SYN that hashed there counted a displaced
// handshake. The entry's counts stay exact.
TEST_F(DatapathCustomLoad, HandshakeTimingOnReusedFiveTuple)
{
    Skel s = load({.enable_handshakes = 1});
    if (skipped_)
        GTEST_SKIP() << "needs root";
    ASSERT_TRUE(s);
    cpu_set_t before;
    ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; c++)
        if (CPU_ISSET(c, &before))
            cpus.push_back(c);
    if (cpus.size() < 2)
        GTEST_SKIP() << "needs two CPUs";
    struct Restore {
        cpu_set_t* mask;
        ~Restore() { sched_setaffinity(0, sizeof *mask, mask); }
    } restore{&before};
    auto onCpu = [&](int i) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[static_cast<std::size_t>(i)], &one);
        ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    };
    HandshakeRecords records(bpf_map__fd(s->maps.handshake_events));
    ASSERT_TRUE(records.ok());
    auto drain = [&] { return records.drain(); };
    namespace tf = tcp_flags;
    const std::uint16_t cport = 40100;
    const Bytes syn = eth().ipv4(A4, B4).tcp(cport, 80, tf::SYN).build();
    const Bytes synack = eth().ipv4(B4, A4).tcp(80, cport, tf::SYN | tf::ACK).build();
    const Bytes ack = eth().ipv4(A4, B4).tcp(cport, 80, tf::ACK).build();
    const Bytes data = eth().ipv4(A4, B4).tcp(cport, 80, tf::ACK | tf::PSH).payload(100).build();
    const Bytes fin = eth().ipv4(A4, B4).tcp(cport, 80, tf::ACK | tf::FIN).build();
    std::uint64_t sent = 0;  // client -> server frames (egress)
    auto out = [&](const Bytes& f) {
        ASSERT_EQ(runFrame(s.get(), Prog::TcEgress, f).err, 0);
        ++sent;
    };
    auto in = [&](const Bytes& f) { ASSERT_EQ(runFrame(s.get(), Prog::TcIngress, f).err, 0); };

    // The first connection: its handshake on the first CPU; data and its end on both.
    onCpu(0);
    out(syn);
    in(synack);
    out(ack);
    out(data);
    onCpu(1);
    out(data);
    out(data);
    out(fin);
    ASSERT_EQ(drain().size(), 1u);

    // The 5-tuple again, after the entry was quiet: its SYN on the first CPU, the client's
    // first ACK on the second (where the first connection left a count of 3).
    std::this_thread::sleep_for(std::chrono::milliseconds(NP_FLOW_REUSE_IDLE_NS / 1000000 + 50));
    onCpu(0);
    out(syn);
    in(synack);
    onCpu(1);
    out(ack);
    out(data);
    auto r = drain();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].key.src_port, cport);

    // And a third connection, the other way round: its SYN on the second CPU, its ACK on
    // the first.
    out(fin);
    std::this_thread::sleep_for(std::chrono::milliseconds(NP_FLOW_REUSE_IDLE_NS / 1000000 + 50));
    out(syn);
    in(synack);
    onCpu(0);
    out(ack);
    EXPECT_EQ(drain().size(), 1u);

    // Nothing stays in progress, nothing was displaced, and the entry's count is exact.
    const int hs = bpf_map__fd(s->maps.tcp_handshakes);
    for (std::uint32_t i = 0; i < NP_HS_SLOTS; i++) {
        np_hs_slot slot{};
        ASSERT_EQ(bpf_map_lookup_elem(hs, &i, &slot), 0);
        EXPECT_NE(slot.state, static_cast<std::uint32_t>(NP_HS_SYNACK)) << "slot " << i;
    }
    EXPECT_EQ(sumU64(s->maps.map_errors, NP_MAP_TCP_HANDSHAKES), 0u);
    std::vector<Flow> flows = readFlows(s->maps.flow_stats);
    auto it = std::find_if(flows.begin(), flows.end(), [&](const Flow& f) {
        return f.key.src_port == cport && f.key.direction == NP_DIR_EGRESS;
    });
    ASSERT_NE(it, flows.end()) << flowsToString(flows);
    EXPECT_EQ(it->packets, sent);

    // A SYN on a busy entry (within NP_FLOW_REUSE_IDLE_NS of its last packet here: a flood
    // on one 5-tuple, or a reconnection that quick) is no new connection to the entry:
    // nothing is marked, and the ACK after its SYN/ACK is past the first packets.
    out(syn);
    in(synack);
    out(ack);
    EXPECT_TRUE(drain().empty());
}

// UDP inter-arrival timing (bpf/lib/udp_timing.h): datagrams of one flow sent 2, 6 and
// 4 ms apart (by the test's clock) give intervals 3, samples 2 and the deviations from
// the running mean spacing; a pause of more than a second starts a new run (spacing
// measured afresh, jitter kept); TCP is not timed; with the timing off nothing is.
TEST_F(DatapathCustomLoad, UdpTiming)
{
    Skel s = load({.enable_udp_timing = 1});
    if (skipped_)
        GTEST_SKIP() << "needs root";
    ASSERT_TRUE(s);
    const Bytes dgram = eth().ipv4(A4, B4).udp(5004, 5006).payload(172).build();
    auto at = [&](std::chrono::milliseconds gap) {
        std::this_thread::sleep_for(gap);
        ASSERT_EQ(runFrame(s.get(), Prog::TcIngress, dgram).err, 0);
    };
    const flow_key k = key4(A4, B4, 5004, 5006, ipproto::UDP);  // this interface, ingress
    auto timing = [&] {
        np_udp_timing t{};
        EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(s->maps.udp_timing), &k, &t), 0);
        return t;
    };
    at(std::chrono::milliseconds(0));
    np_udp_timing t = timing();
    EXPECT_EQ(t.first_ns, t.last_ns);
    EXPECT_EQ(t.intervals, 0u);
    at(std::chrono::milliseconds(2));
    at(std::chrono::milliseconds(6));
    at(std::chrono::milliseconds(4));
    t = timing();
    EXPECT_EQ(t.intervals, 3u);
    EXPECT_EQ(t.samples, 2u);
    // the second interval (~6 ms) against the mean of two (~4 ms), the third (~4 ms)
    // against the mean of three (~4 ms): about 2 ms in all, with the sleeps' overshoot
    EXPECT_GT(t.dev_sum_ns, 1'000'000u);
    EXPECT_LT(t.dev_sum_ns, 6'000'000u);
    // J16 after two steps from 0: d1 + (d2 + d1 - d1/16 ...) stays below 16 * sum
    EXPECT_GT(t.jitter16_ns, 0u);
    EXPECT_LE(t.jitter16_ns, 2 * t.dev_sum_ns);
    const auto run_start = t.first_ns;
    const auto j16 = t.jitter16_ns;
    at(std::chrono::milliseconds(1100));  // a pause: a new run
    t = timing();
    EXPECT_GT(t.first_ns, run_start);
    EXPECT_EQ(t.first_ns, t.last_ns);
    EXPECT_EQ(t.intervals, 0u);
    EXPECT_EQ(t.samples, 2u);
    EXPECT_EQ(t.jitter16_ns, j16);
    // TCP is not timed
    ASSERT_EQ(runFrame(s.get(), Prog::TcIngress, eth().ipv4(A4, B4).tcp(5004, 5006, tcp_flags::ACK).build()).err, 0);
    const flow_key tk = key4(A4, B4, 5004, 5006, ipproto::TCP);
    np_udp_timing none{};
    EXPECT_NE(bpf_map_lookup_elem(bpf_map__fd(s->maps.udp_timing), &tk, &none), 0);
    EXPECT_EQ(sumU64(s->maps.map_errors, NP_MAP_UDP_TIMING), 0u);

    Skel off = load({.enable_udp_timing = 0});
    ASSERT_TRUE(off);
    ASSERT_EQ(runFrame(off.get(), Prog::TcIngress, dgram).err, 0);
    np_udp_timing t2{};
    EXPECT_NE(bpf_map_lookup_elem(bpf_map__fd(off->maps.udp_timing), &k, &t2), 0);
}

// Decapsulation with flows off: nothing (no inner flow, no overlay counters).
TEST_F(DatapathCustomLoad, DecapNeedsFlows)
{
    Skel s = load({.enable_flows = 0});
    if (skipped_)
        GTEST_SKIP() << "needs root";
    ASSERT_TRUE(s);
    const Bytes ipip = eth().ipv4(A4, B4).ipv4(C4, A4).udp(1, 2).build();
    ASSERT_EQ(runFrame(s.get(), Prog::TcIngress, ipip).err, 0);
    EXPECT_TRUE(readFlows(s->maps.flow_stats).empty());
    EXPECT_EQ(overlayCounter(s.get(), NP_DIR_INGRESS, NP_ENCAP_IPIP), Overlay{});
}

// A GSO tunnel packet (a TSO burst through a VXLAN device): each of its segments
// repeats the outer headers, the VXLAN header and the inner headers up to the TCP
// payload. 3 segments of an skb of L bytes: the outer flow and the device count
// L + 2 x (14 + 20 + 8 + 8 + 14 + 20 + 20 = 104) bytes, the inner flow the inner IP
// datagram's I bytes + 2 x (20 + 20 = 40); 3 packets each.
TEST_F(DatapathHarness, DecapGsoTunnelPacketCountsEverySegmentsHeaders)
{
    const Bytes f = eth().ipv4(A4, B4).udp(40001, 8472).raw(Bytes{0x08, 0, 0, 0, 0, 0, 1, 0})
                        .eth().ipv4("198.19.1.10", "198.19.2.20").tcp(33000, 80, tcp_flags::ACK).payload(3000).build();
    const std::uint64_t L = 14 + 20 + 8 + 8 + 14 + 20 + 20 + 3000;
    const std::uint64_t I = 20 + 20 + 3000;
    ASSERT_EQ(f.size(), L);
    ASSERT_EQ(runFrame(skel(), Prog::TcEgress, f, kIfindex, 3).err, 0);
    EXPECT_EQ(devCounter(skel(), false, kIfindex, NP_DIR_EGRESS), (Counter{3, L + 2 * 104}));
    const std::vector<Flow> flows = readFlows(skel()->maps.flow_stats);
    ASSERT_EQ(flows.size(), 2u) << flowsToString(flows);
    for (const Flow& fl : flows) {
        if (fl.key.encap == NP_ENCAP_NONE) {
            EXPECT_EQ(fl.key.dst_port, 8472);
            EXPECT_EQ(fl.packets, 3u);
            EXPECT_EQ(fl.bytes, L + 2 * 104);
        } else {
            EXPECT_EQ(fl.key.encap, NP_ENCAP_VXLAN);
            EXPECT_EQ(fl.key.dst_port, 80);
            EXPECT_EQ(fl.packets, 3u);
            EXPECT_EQ(fl.bytes, I + 2 * 40);
        }
    }
    EXPECT_EQ(overlayCounter(skel(), NP_DIR_EGRESS, NP_ENCAP_VXLAN), (Overlay{3, L + 2 * 104, I + 2 * 40, 0}));
}

// np_enable_flows = 0 (set in .rodata before load): counters only, no flows, no
// fragment tracking.
TEST_F(DatapathCustomLoad, FlowsDisabled)
{
    Skel s = load({.enable_flows = 0});
    if (skipped_)
        GTEST_SKIP() << "needs root";
    ASSERT_TRUE(s);
    const Bytes tcp = eth().ipv4(A4, B4).tcp(1, 2, tcp_flags::SYN).build();
    const Bytes first = eth().ipv4(A4, B4).ipv4Fragment(4, 0, true).udp(3, 4).payload(8).build();
    ASSERT_EQ(runFrame(s.get(), Prog::TcIngress, tcp).err, 0);
    ASSERT_EQ(runFrame(s.get(), Prog::TcIngress, first).err, 0);
    EXPECT_TRUE(readFlows(s->maps.flow_stats).empty());
    EXPECT_TRUE(keysOf<np_frag_key>(s->maps.frag_track).empty());
    std::uint32_t ipv4 = NP_DIR_INGRESS * kClasses + NP_PROTO_IPV4;
    EXPECT_EQ(sumCounter(s->maps.packet_stats, &ipv4), (Counter{2, tcp.size() + first.size()}));
    tc_device_key dk{kIfindex, NP_DIR_INGRESS};
    EXPECT_EQ(devCounter(s.get(), false, dk.ifindex, dk.direction).packets, 2u);
}

}  // namespace

