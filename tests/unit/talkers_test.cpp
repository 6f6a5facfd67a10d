// Top talkers (issue 10): flows -> talkers without the ephemeral port, the server end
// of a connection, the sticky top-K and its hold, exact sums, and the stage.
#include <gtest/gtest.h>

#include <netinet/in.h>

#include <random>
#include <set>

#include <netprobe/analysis/talkers.hpp>

#include "test_flows.hpp"

using namespace std::chrono_literals;
using netprobe::analysis::ServerEndpoints;
using netprobe::analysis::ServerSide;
using netprobe::analysis::TalkerKey;
using netprobe::analysis::TalkerSelector;
using netprobe::analysis::TalkerTraffic;
using netprobe::collector::FlowSample;
using netprobe::testing::makeKey;
using netprobe::testing::makeSample;

namespace {

netprobe::util::Addr16 addr(const char* s) { return *netprobe::util::parseAddr(s); }

netprobe::ebpf::Connection conn(const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport,
                                std::uint8_t origin) {
    netprobe::ebpf::Connection c;
    c.src_ip = addr(src);
    c.dst_ip = addr(dst);
    c.src_port = sport;
    c.dst_port = dport;
    c.origin = origin;
    c.family = 4;
    return c;
}

TalkerTraffic traffic(const char* peer, std::uint64_t bytes, std::uint16_t port = 443) {
    TalkerTraffic t;
    t.key.local = addr("10.0.0.1");
    t.key.peer = addr(peer);
    t.key.ifindex = 2;
    t.key.server_port = port;
    t.key.proto = IPPROTO_TCP;
    t.key.server = ServerSide::Local;
    t.packets = bytes / 100 + 1;
    t.bytes = bytes;
    return t;
}

std::set<TalkerKey> keysOf(const netprobe::analysis::TalkerSelection& s) {
    std::set<TalkerKey> out;
    for (const auto& t : s.top) out.insert(t.key);
    return out;
}

bool contains(const netprobe::analysis::TalkerSelection& s, const TalkerTraffic& t) {
    return keysOf(s).contains(t.key);
}

// Snapshot of one 5 s interval at time `at`, with samples.
netprobe::collector::Snapshot snapshotAt(std::chrono::nanoseconds at, std::vector<FlowSample> flows) {
    netprobe::collector::Snapshot s;
    s.mono = netprobe::collector::MonoTime(at);
    s.interval_seconds = 5;
    s.flows = std::move(flows);
    netprobe::collector::InterfaceStats i;
    i.name = "eth0";
    i.index = 2;
    s.interfaces.push_back(i);
    return s;
}

}  // namespace

// ---- the talker of a flow ----

TEST(Talkers, BothDirectionsOfAConnectionAreOneTalkerWithoutTheEphemeralPort) {
    ServerEndpoints servers;
    // Client 10.0.0.1 (local) -> server 93.184.216.34:443, seen at egress and ingress.
    const auto out = servers.talkerOf(makeKey("10.0.0.1", "93.184.216.34", 51234, 443, IPPROTO_TCP, 2, NP_DIR_EGRESS));
    const auto in = servers.talkerOf(makeKey("93.184.216.34", "10.0.0.1", 443, 51234, IPPROTO_TCP, 2, NP_DIR_INGRESS));
    EXPECT_EQ(out.local, addr("10.0.0.1"));
    EXPECT_EQ(out.peer, addr("93.184.216.34"));
    EXPECT_EQ(out.server_port, 443);
    EXPECT_EQ(out.server, ServerSide::Peer);
    EXPECT_EQ(in.local, out.local);
    EXPECT_EQ(in.peer, out.peer);
    EXPECT_EQ(in.server_port, 443);
    EXPECT_EQ(in.server, ServerSide::Peer);
    EXPECT_EQ(in.direction, NP_DIR_INGRESS);
    // Another connection from another ephemeral port: the same talker.
    EXPECT_EQ(servers.talkerOf(makeKey("10.0.0.1", "93.184.216.34", 60001, 443, IPPROTO_TCP, 2, NP_DIR_EGRESS)), out);
    // A local server: the local end serves.
    const auto srv = servers.talkerOf(makeKey("198.18.0.9", "10.0.0.1", 40000, 8080, IPPROTO_TCP, 2, NP_DIR_INGRESS));
    EXPECT_EQ(srv.server, ServerSide::Local);
    EXPECT_EQ(srv.server_port, 8080);
    EXPECT_EQ(srv.local, addr("10.0.0.1"));
}

// Under pressure the kernel aggregates a SYN flood's attempts (source port 0) and their
// refusals (destination port 0): the end with port 0 initiated, whatever the ports' order.
TEST(Talkers, KernelAggregatesOfAttemptsAndRefusalsServeFromTheOtherEnd) {
    ServerEndpoints servers;
    const auto syns = servers.talkerOf(makeKey("198.18.0.9", "10.0.0.1", 0, 80, IPPROTO_TCP, 2, NP_DIR_INGRESS));
    const auto rsts = servers.talkerOf(makeKey("10.0.0.1", "198.18.0.9", 80, 0, IPPROTO_TCP, 2, NP_DIR_EGRESS));
    for (const auto& t : {syns, rsts}) {
        EXPECT_EQ(t.server, ServerSide::Local);
        EXPECT_EQ(t.server_port, 80);
        EXPECT_EQ(t.local, addr("10.0.0.1"));
        EXPECT_EQ(t.peer, addr("198.18.0.9"));
    }
    // the flood's own address, attacking from this node
    const auto out = servers.talkerOf(makeKey("10.0.0.1", "198.18.0.9", 0, 443, IPPROTO_TCP, 2, NP_DIR_EGRESS));
    EXPECT_EQ(out.server, ServerSide::Peer);
    EXPECT_EQ(out.server_port, 443);
}

TEST(Talkers, ConnectionRecordsNameTheServerWhereTheLowerPortWouldNot) {
    // A service listening on a high port (50000), its client on a lower one (40000):
    // the lower-port rule alone gets it wrong.
    ServerEndpoints servers;
    const auto k = makeKey("198.18.0.2", "198.18.0.1", 40000, 50000, IPPROTO_TCP, 2, NP_DIR_INGRESS);
    EXPECT_EQ(servers.talkerOf(k).server_port, 40000);
    // The accepted connection's record (passive: the local end is the listener).
    const std::vector accepted{conn("198.18.0.1", 50000, "198.18.0.2", 40000, NP_CONN_PASSIVE)};
    servers.learn(accepted, 1);
    auto t = servers.talkerOf(k);
    EXPECT_EQ(t.server_port, 50000);
    EXPECT_EQ(t.server, ServerSide::Local);
    // Learned: later connections to it from other ports resolve with no record.
    t = servers.talkerOf(makeKey("198.18.0.1", "198.18.0.2", 50000, 12345, IPPROTO_TCP, 2, NP_DIR_EGRESS));
    EXPECT_EQ(t.server_port, 50000);
    EXPECT_EQ(t.server, ServerSide::Local);
    // connect() to a remote service on a high port: the remote end serves.
    const std::vector active{conn("198.18.0.1", 33000, "203.0.113.5", 61000, NP_CONN_ACTIVE)};
    servers.learn(active, 2);
    t = servers.talkerOf(makeKey("198.18.0.1", "203.0.113.5", 33000, 61000, IPPROTO_TCP, 2, NP_DIR_EGRESS));
    EXPECT_EQ(t.server_port, 61000);
    EXPECT_EQ(t.server, ServerSide::Peer);
    // Learned for TCP only: UDP on the same port falls back to the lower port.
    EXPECT_EQ(servers.talkerOf(makeKey("198.18.0.1", "203.0.113.5", 33000, 61000, IPPROTO_UDP, 2, NP_DIR_EGRESS))
                  .server_port,
              33000);
}

TEST(Talkers, LearnedServersAreBounded) {
    ServerEndpoints servers(8);
    for (std::uint16_t i = 0; i < 20; ++i) {
        const std::vector c{conn("198.18.0.1", static_cast<std::uint16_t>(50000 + i), "198.18.0.2", 40000,
                                 NP_CONN_PASSIVE)};
        servers.learn(c, i + 1);
        EXPECT_LE(servers.size(), 8u);
    }
    // The most recent is kept.
    const auto t = servers.talkerOf(makeKey("198.18.0.2", "198.18.0.1", 40000, 50019, IPPROTO_TCP, 2, NP_DIR_INGRESS));
    EXPECT_EQ(t.server_port, 50019);
}

TEST(Talkers, ProtocolsWithoutPortsHaveNoServerPort) {
    ServerEndpoints servers;
    const auto t = servers.talkerOf(makeKey("198.18.0.2", "198.18.0.1", 0, 0, IPPROTO_ICMP, 2, NP_DIR_INGRESS));
    EXPECT_EQ(t.server, ServerSide::None);
    EXPECT_EQ(t.server_port, 0);
    EXPECT_STREQ(netprobe::analysis::toString(t.server), "");
}

TEST(Talkers, EqualPortsGiveTheSameTalkerBothWays) {
    ServerEndpoints servers;
    const auto a = servers.talkerOf(makeKey("198.18.0.1", "198.18.0.2", 123, 123, IPPROTO_UDP, 2, NP_DIR_EGRESS));
    const auto b = servers.talkerOf(makeKey("198.18.0.2", "198.18.0.1", 123, 123, IPPROTO_UDP, 2, NP_DIR_INGRESS));
    EXPECT_EQ(a.server, b.server);
    EXPECT_EQ(a.server_port, 123);
    EXPECT_EQ(a.local, b.local);
}

TEST(Talkers, RandomSourcePortsMakeNoNewTalkers) {
    ServerEndpoints servers;
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> eph(32768, 60999);
    const std::uint16_t ports[] = {8080, 8081, 8443, 9000};
    std::vector<FlowSample> samples;
    for (int n = 0; n < 1000; ++n) {
        const auto sp = static_cast<std::uint16_t>(eph(rng));
        const auto dp = ports[n % 4];
        samples.push_back(makeSample(makeKey("198.18.5.1", "198.18.5.2", sp, dp, IPPROTO_TCP, 2, NP_DIR_INGRESS), 5, 500,
                                     1, 2));
        samples.push_back(makeSample(makeKey("198.18.5.2", "198.18.5.1", dp, sp, IPPROTO_TCP, 2, NP_DIR_EGRESS), 7, 9000,
                                     1, 2));
    }
    const auto t = netprobe::analysis::talkerTraffic(samples, servers);
    EXPECT_EQ(t.size(), 8u);  // 4 server ports x 2 directions
    std::uint64_t bytes = 0;
    for (const auto& x : t) bytes += x.bytes;
    EXPECT_EQ(bytes, 1000u * (500 + 9000));
}

TEST(Talkers, AsManyTalkersAsFlowsAreEachCountedOnce) {
    // A scan from 20000 addresses: one talker per flow (the table grows many times).
    ServerEndpoints servers;
    std::vector<FlowSample> samples;
    std::uint64_t bytes = 0;
    for (int n = 0; n < 20000; ++n) {
        const std::string src = "10." + std::to_string(n / 65536) + "." + std::to_string((n / 256) % 256) + "." +
                                std::to_string(n % 256);
        samples.push_back(makeSample(makeKey(src, "198.18.0.1", 40000, 22, IPPROTO_TCP, 2, NP_DIR_INGRESS), 1,
                                     static_cast<std::uint64_t>(60 + n % 7), 1, 2));
        bytes += samples.back().bytes;
    }
    samples.push_back(samples.front());  // the same flow twice (an entry removed and re-created)
    bytes += samples.back().bytes;
    const auto t = netprobe::analysis::talkerTraffic(samples, servers);
    ASSERT_EQ(t.size(), 20000u);
    std::set<TalkerKey> keys;
    std::uint64_t sum = 0;
    for (const auto& x : t) {
        keys.insert(x.key);
        sum += x.bytes;
    }
    EXPECT_EQ(keys.size(), 20000u);
    EXPECT_EQ(sum, bytes);
    EXPECT_EQ(t.front().packets, 2u);
}

// ---- the sticky top-K ----

TEST(TalkerSelector, NewHeavyTalkerReplacesALightOneOnlyAfterTheHold) {
    TalkerSelector sel({.k = 2, .hold = 60s, .margin = 2.0});
    const auto a = traffic("198.18.0.10", 1000), b = traffic("198.18.0.11", 2000), c = traffic("198.18.0.12", 100000);
    auto r = sel.update(std::vector{a, b}, 0s, 5);
    EXPECT_EQ(r.top.size(), 2u);
    EXPECT_EQ(r.entered, 2u);
    for (auto t = 5s; t < 60s; t += 5s) {
        r = sel.update(std::vector{a, b, c}, t, 5);
        EXPECT_FALSE(contains(r, c)) << "at " << t.count() << " s, within the members' hold";
        EXPECT_EQ(r.other_bytes, c.bytes);
        EXPECT_EQ(r.entered, 0u);
    }
    r = sel.update(std::vector{a, b, c}, 60s, 5);
    EXPECT_TRUE(contains(r, c));
    EXPECT_TRUE(contains(r, b));  // the lighter one went
    EXPECT_FALSE(contains(r, a));
    EXPECT_EQ(r.other_bytes, a.bytes);
    EXPECT_EQ(r.top.front().key, c.key);  // sorted by bytes
    // The light talker that went does not come back in the new member's hold, nor
    // afterwards while it stays lighter.
    for (auto t = 65s; t < 300s; t += 5s) {
        r = sel.update(std::vector{a, b, c}, t, 5);
        EXPECT_FALSE(contains(r, a)) << t.count();
    }
    EXPECT_EQ(sel.enteredTotal(), 3u);
}

TEST(TalkerSelector, ChallengerMustClearlyBeatTheMembersAverage) {
    TalkerSelector sel({.k = 1, .hold = 10s, .margin = 2.0});
    const auto a = traffic("198.18.0.10", 10000);
    auto b = traffic("198.18.0.11", 15000);  // heavier, but not twice as heavy
    (void)sel.update(std::vector{a}, 0s, 5);
    for (auto t = 5s; t < 200s; t += 5s) {
        auto r = sel.update(std::vector{a, b}, t, 5);
        ASSERT_TRUE(contains(r, a)) << t.count();
    }
    b.bytes = 30000;  // now clearly heavier
    auto r = sel.update(std::vector{a, b}, 200s, 5);
    EXPECT_TRUE(contains(r, b));
}

TEST(TalkerSelector, SeriesAndOtherAddUpToTheTotalEveryInterval) {
    TalkerSelector sel({.k = 5, .hold = 20s, .margin = 2.0});
    std::vector<std::uint64_t> entered;  // per interval
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> peer(0, 40), size(1, 100000);
    for (int i = 0; i < 200; ++i) {
        std::vector<TalkerTraffic> v;
        std::set<int> used;
        std::uint64_t tp = 0, tb = 0;
        for (int n = 0; n < 30; ++n) {
            const int p = peer(rng);
            if (!used.insert(p).second) continue;
            const std::string a = "198.18.1." + std::to_string(p);
            v.push_back(traffic(a.c_str(), static_cast<std::uint64_t>(size(rng))));
            tp += v.back().packets;
            tb += v.back().bytes;
        }
        auto r = sel.update(v, std::chrono::seconds(5 * i), 5);
        ASSERT_LE(r.top.size(), 5u);
        std::uint64_t sp = r.other_packets, sb = r.other_bytes;
        for (const auto& t : r.top) {
            sp += t.packets;
            sb += t.bytes;
        }
        ASSERT_EQ(sp, tp) << "interval " << i;
        ASSERT_EQ(sb, tb) << "interval " << i;
        ASSERT_EQ(r.talkers, v.size());
        // At most K talkers enter in any hold (20 s = 4 intervals of 5 s).
        entered.push_back(r.entered);
        std::uint64_t in_hold = 0;
        for (std::size_t j = entered.size() >= 4 ? entered.size() - 4 : 0; j < entered.size(); ++j) in_hold += entered[j];
        ASSERT_LE(in_hold, 5u) << "interval " << i;
    }
    // Churn bound: each slot changes talker at most once per hold (20 s) over 1000 s.
    EXPECT_LE(sel.enteredTotal(), 5u * (1 + 1000 / 20));
    EXPECT_GT(sel.enteredTotal(), 5u);  // ... and it did change: the top-K is not frozen
}

TEST(TalkerSelector, IdleMemberIsDroppedAfterTheHoldAndItsSlotReused) {
    TalkerSelector sel({.k = 1, .hold = 30s, .margin = 2.0});
    const auto a = traffic("198.18.0.10", 1000000), b = traffic("198.18.0.11", 10);
    (void)sel.update(std::vector{a}, 0s, 5);
    // a stops; b is far lighter than a's average: it waits for a to be idle for the hold.
    for (auto t = 5s; t < 30s; t += 5s) {
        auto r = sel.update(std::vector{b}, t, 5);
        ASSERT_TRUE(contains(r, a)) << t.count();
        ASSERT_EQ(r.top.front().bytes, 0u);  // an idle member's series reads 0
        ASSERT_EQ(r.other_bytes, b.bytes);
    }
    auto r = sel.update(std::vector{b}, 30s, 5);  // idle since 0 s: for the hold
    EXPECT_FALSE(contains(r, a));
    EXPECT_TRUE(contains(r, b));
    EXPECT_EQ(r.other_bytes, 0u);
}

TEST(TalkerSelector, ZeroKPutsEverythingInOther) {
    TalkerSelector sel({.k = 0, .hold = 30s, .margin = 2.0});
    auto r = sel.update(std::vector{traffic("198.18.0.10", 100), traffic("198.18.0.11", 200)}, 0s, 5);
    EXPECT_TRUE(r.top.empty());
    EXPECT_EQ(r.other_bytes, 300u);
}

// ---- the stage ----

TEST(TopTalkersStage, RandomSourcePortsEveryIntervalCreateNoNewSeries) {
    netprobe::analysis::TopTalkersOptions o;
    o.selector.k = 20;
    netprobe::analysis::TopTalkers stage(o);
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> eph(32768, 60999), size(1000, 65000);
    const std::uint16_t ports[] = {8080, 8081, 8443, 9000};
    std::set<TalkerKey> seen;
    for (int i = 0; i < 120; ++i) {  // 10 minutes of 5 s intervals
        std::vector<FlowSample> flows;
        for (int n = 0; n < 20; ++n) {  // 20 connections, each from a new port
            const auto sp = static_cast<std::uint16_t>(eph(rng));
            const auto dp = ports[n % 4];
            flows.push_back(makeSample(makeKey("198.18.5.1", "198.18.5.2", sp, dp, IPPROTO_TCP, 2, NP_DIR_INGRESS), 6,
                                       400, 1, 2));
            flows.push_back(makeSample(makeKey("198.18.5.2", "198.18.5.1", dp, sp, IPPROTO_TCP, 2, NP_DIR_EGRESS), 8,
                                       static_cast<std::uint64_t>(size(rng)), 1, 2));
        }
        netprobe::analysis::Views v;
        stage.run(snapshotAt(std::chrono::seconds(5 * i), flows), v);
        ASSERT_TRUE(v.talkers);
        for (const auto& r : v.talkers->top) {
            seen.insert(r.traffic.key);
            EXPECT_EQ(r.interface, "eth0");
        }
        if (i > 0) {
            EXPECT_EQ(v.talkers->top.size(), 8u);
        }
        EXPECT_EQ(v.talkers->other_bytes, 0u);
    }
    EXPECT_EQ(seen.size(), 8u);  // 4 server ports x 2 directions, for 2400 connections
}

TEST(TopTalkersStage, LearnsServersFromTheSnapshotsConnectionRecords) {
    netprobe::analysis::TopTalkers stage({});
    auto s = snapshotAt(5s, {makeSample(makeKey("198.18.0.2", "198.18.0.1", 40000, 50000, IPPROTO_TCP, 2,
                                                 NP_DIR_INGRESS),
                                         3, 300, 1, 2)});
    auto stack = std::make_shared<netprobe::ebpf::StackStats>();
    stack->connections.push_back(conn("198.18.0.1", 50000, "198.18.0.2", 40000, NP_CONN_PASSIVE));
    s.stack = stack;
    netprobe::analysis::Views v;
    stage.run(s, v);
    ASSERT_EQ(v.talkers->top.size(), 1u);
    EXPECT_EQ(v.talkers->top[0].traffic.key.server_port, 50000);
    EXPECT_EQ(v.talkers->top[0].traffic.key.server, ServerSide::Local);
}
