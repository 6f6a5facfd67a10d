// The diagnosis rules for interface errors/drops and one-way flows, pure (plain structs,
// injected time) and through the Diagnosis stage on hand-built snapshots: each fires on
// its fault with the figures of the window, a healthy baseline raises none, and what the
// rules must not flag (streaming UDP, scans, links NetProbe does not watch, a packet seen
// on two interfaces) is not flagged. Plus the RTM_GETSTATS decoder of the counters.
#include <gtest/gtest.h>

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>

#include <cstring>
#include <string>
#include <vector>

#include <netprobe/analysis/anomaly/stage.hpp>
#include <netprobe/analysis/diagnosis.hpp>
#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/ebpf/interfaces.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>

#include "test_flows.hpp"

namespace {

using namespace netprobe;
using analysis::Diagnosis;
using analysis::DiagnosisOptions;
using analysis::Finding;
using analysis::FlowRecord;
using analysis::Views;

constexpr std::uint64_t kSec = 1'000'000'000ull;

double evidence(const Finding& f, const std::string& name) {
    for (const auto& e : f.evidence)
        if (e.name == name) return e.value;
    ADD_FAILURE() << "no evidence " << name << " in " << f.title;
    return -1;
}
bool hasEvidence(const Finding& f, const std::string& name) {
    for (const auto& e : f.evidence)
        if (e.name == name) return true;
    return false;
}
std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += x + "\n";
    return s;
}

// ---- the RTM_GETSTATS decoder ----

std::vector<std::byte> statsMessage(std::uint32_t ifindex, const rtnl_link_stats64& st, std::size_t stats_len) {
    const std::size_t attr = RTA_LENGTH(stats_len);
    const std::size_t len = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(if_stats_msg)) + RTA_ALIGN(attr));
    std::vector<std::byte> b(NLMSG_ALIGN(len));
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(len);
    h.nlmsg_type = RTM_NEWSTATS;
    std::memcpy(b.data(), &h, sizeof h);
    if_stats_msg m{};
    m.ifindex = ifindex;
    m.filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64);
    std::memcpy(b.data() + NLMSG_HDRLEN, &m, sizeof m);
    rtattr ra{};
    ra.rta_len = static_cast<unsigned short>(attr);
    ra.rta_type = IFLA_STATS_LINK_64;
    const std::size_t a = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(if_stats_msg));
    std::memcpy(b.data() + a, &ra, sizeof ra);
    std::memcpy(b.data() + a + RTA_LENGTH(0), &st, stats_len);
    return b;
}

TEST(LinkCounters, DecodesTheKernelsStatsMessages) {
    rtnl_link_stats64 st{};
    st.rx_packets = 100;
    st.tx_packets = 200;
    st.rx_errors = 7;
    st.tx_dropped = 42;
    st.rx_crc_errors = 5;
    st.rx_missed_errors = 3;
    st.tx_carrier_errors = 2;
    st.rx_nohandler = 9;
    auto a = statsMessage(4, st, sizeof st);
    auto b = statsMessage(9, st, offsetof(rtnl_link_stats64, rx_nohandler));  // an older kernel's shorter struct
    std::vector<std::byte> both(a);
    both.insert(both.end(), b.begin(), b.end());
    auto out = ebpf::decodeLinkStatsMessages(both);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].ifindex, 4u);
    EXPECT_EQ(out[0].rx_packets, 100u);
    EXPECT_EQ(out[0].tx_packets, 200u);
    EXPECT_EQ(out[0].rx_errors, 7u);
    EXPECT_EQ(out[0].tx_dropped, 42u);
    EXPECT_EQ(out[0].rx_crc_errors, 5u);
    EXPECT_EQ(out[0].rx_missed_errors, 3u);
    EXPECT_EQ(out[0].tx_carrier_errors, 2u);
    EXPECT_EQ(out[0].rx_nohandler, 9u);
    EXPECT_EQ(out[1].ifindex, 9u);
    EXPECT_EQ(out[1].tx_dropped, 42u);
    EXPECT_EQ(out[1].rx_nohandler, 0u);  // not in the shorter struct
}

TEST(LinkCounters, TruncatedOrLyingMessagesAreNotRead) {
    rtnl_link_stats64 st{};
    st.tx_dropped = 1;
    auto a = statsMessage(4, st, sizeof st);
    for (std::size_t cut = 0; cut < a.size(); cut += 7) {
        std::vector<std::byte> t(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(cut));
        EXPECT_TRUE(ebpf::decodeLinkStatsMessages(t).empty()) << cut;
    }
    auto lying = a;
    nlmsghdr h;
    std::memcpy(&h, lying.data(), sizeof h);
    h.nlmsg_len = static_cast<std::uint32_t>(lying.size() + 64);
    std::memcpy(lying.data(), &h, sizeof h);
    EXPECT_TRUE(ebpf::decodeLinkStatsMessages(lying).empty());
}

// ---- interface errors (pure) ----

analysis::InterfaceWindow window(const std::string& name, double seconds) {
    analysis::InterfaceWindow w;
    w.name = name;
    w.seconds = seconds;
    return w;
}

TEST(InterfaceErrors, AVethWhosePeerIsDownDropsEverythingItSends) {
    auto w = window("veth0", 30);
    w.kind = "veth";
    w.delta.tx_dropped = 60;
    auto f = analysis::interfaceErrorFindings({w}, DiagnosisOptions{});
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].rule, "interface_errors");
    EXPECT_EQ(f[0].subject, "veth0");
    EXPECT_EQ(f[0].severity, "critical");  // nothing got through
    EXPECT_EQ(evidence(f[0], "tx_dropped"), 60);
    EXPECT_DOUBLE_EQ(evidence(f[0], "tx_dropped_rate"), 2.0);
    EXPECT_EQ(evidence(f[0], "window"), 30);
    EXPECT_FALSE(hasEvidence(f[0], "rx_dropped"));  // only counters that moved
    EXPECT_NE(f[0].cause.find("peer end is down"), std::string::npos) << f[0].cause;
    EXPECT_NE(joined(f[0].fix).find("ip link show dev veth0"), std::string::npos) << joined(f[0].fix);
    EXPECT_EQ(joined(f[0].fix).find("IFACE"), std::string::npos);  // the interface's name, everywhere
    EXPECT_NE(f[0].query.find("ip -s -s link show dev veth0"), std::string::npos);
    EXPECT_NE(f[0].title.find("tx_dropped 60"), std::string::npos) << f[0].title;
}

TEST(InterfaceErrors, EachCounterKindHasItsCauseAndFix) {
    struct Case {
        std::uint64_t ebpf::LinkCounters::*field;
        const char* cause;
        const char* fix;
    } cases[] = {
        {&ebpf::LinkCounters::rx_missed_errors, "receive descriptors", "ethtool -G eth0 rx"},
        {&ebpf::LinkCounters::rx_crc_errors, "cable", "ethtool -m eth0"},
        {&ebpf::LinkCounters::rx_length_errors, "MTU", "mtu"},
        {&ebpf::LinkCounters::rx_dropped, "netdev_max_backlog", "softnet_stat"},
        {&ebpf::LinkCounters::tx_dropped, "queue", "txqueuelen"},
        {&ebpf::LinkCounters::tx_carrier_errors, "carrier", "firmware"},
        {&ebpf::LinkCounters::collisions, "duplex", "autoneg"},
        {&ebpf::LinkCounters::tx_fifo_errors, "FIFO", "driver/firmware"},
    };
    for (const auto& c : cases) {
        auto w = window("eth0", 60);
        w.delta.*(c.field) = 50;
        w.delta.rx_packets = w.delta.tx_packets = 1'000'000;
        auto f = analysis::interfaceErrorFindings({w}, DiagnosisOptions{});
        ASSERT_EQ(f.size(), 1u) << c.cause;
        EXPECT_EQ(f[0].severity, "warning") << c.cause;  // 50 of a million: not critical
        EXPECT_NE(f[0].cause.find(c.cause), std::string::npos) << f[0].cause;
        EXPECT_NE(joined(f[0].fix).find(c.fix), std::string::npos) << joined(f[0].fix);
    }
}

TEST(InterfaceErrors, ThresholdsAndWhatIsNotAFault) {
    DiagnosisOptions o;
    auto w = window("eth0", 60);
    w.delta.rx_packets = 5000;
    w.delta.tx_dropped = o.interface_drops_min - 1;
    w.delta.rx_crc_errors = o.interface_errors_min - 1;
    w.delta.rx_nohandler = 100'000;  // a bond's backup port: normal
    EXPECT_TRUE(analysis::interfaceErrorFindings({w}, o).empty());
    w.delta.rx_crc_errors = o.interface_errors_min;
    auto f = analysis::interfaceErrorFindings({w}, o);
    ASSERT_EQ(f.size(), 1u);
    // every counter that moved is evidence, the ones below their minimum too
    EXPECT_EQ(evidence(f[0], "rx_crc_errors"), o.interface_errors_min);
    EXPECT_EQ(evidence(f[0], "tx_dropped"), o.interface_drops_min - 1);
    EXPECT_EQ(evidence(f[0], "rx_nohandler"), 100'000);
    EXPECT_EQ(evidence(f[0], "rx_packets"), 5000);
    EXPECT_TRUE(analysis::interfaceErrorFindings({window("eth0", 60)}, o).empty());
}

// ---- the stage: counters over the window, watched interfaces only ----

struct Clock {
    std::chrono::steady_clock::time_point t0{std::chrono::hours(1000)};
    collector::MonoTime mono(double s) const {
        return t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
    }
};

std::shared_ptr<collector::Snapshot> snap(const Clock& clk, double at, std::vector<ebpf::LinkCounters> links) {
    auto s = std::make_shared<collector::Snapshot>();
    s->mono = clk.mono(at);
    s->taken_at = collector::WallTime(std::chrono::seconds(1'700'000'000)) +
                  std::chrono::duration_cast<collector::WallTime::duration>(std::chrono::duration<double>(at));
    collector::InterfaceStats i;
    i.name = "eth0";
    i.index = 2;
    s->interfaces.push_back(i);
    auto lc = std::make_shared<collector::LinkCountersSample>();
    lc->read_at = s->mono;
    lc->links = std::move(links);
    s->link_counters = lc;
    return s;
}

ebpf::LinkCounters link(std::uint32_t idx, std::uint64_t tx_dropped, std::uint64_t rx_errors, std::uint64_t pkts) {
    ebpf::LinkCounters c;
    c.ifindex = idx;
    c.tx_dropped = tx_dropped;
    c.rx_errors = rx_errors;
    c.rx_packets = c.tx_packets = pkts;
    return c;
}

std::vector<Finding> rule(const Views& v, const std::string& r) {
    std::vector<Finding> out;
    for (const auto& f : v.diagnosis->findings)
        if (f.rule == r) out.push_back(f);
    return out;
}

TEST(InterfaceErrors, TheStageCountsTheWindowOfTheWatchedInterfaces) {
    Clock clk;
    DiagnosisOptions o;
    o.window = std::chrono::seconds(60);
    Diagnosis d(o);
    // eth0 (2) is watched; link 7 is not (another interface of the namespace), with errors.
    // Their history before the agent started is not the window's.
    Views v;
    d.run(*snap(clk, 0, {link(2, 1000, 500, 1000), link(7, 0, 0, 0)}), v);
    EXPECT_TRUE(rule(v, "interface_errors").empty());
    d.run(*snap(clk, 10, {link(2, 1010, 500, 2000), link(7, 100, 100, 0)}), v);
    EXPECT_TRUE(rule(v, "interface_errors").empty());  // 10 drops: below the minimum
    // a link seen for the first time brings its history: not counted
    d.run(*snap(clk, 20, {link(2, 1025, 500, 3000), link(7, 200, 200, 0), link(8, 9999, 9999, 0)}), v);
    auto f = rule(v, "interface_errors");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].subject, "eth0");
    EXPECT_EQ(evidence(f[0], "tx_dropped"), 25);
    EXPECT_EQ(evidence(f[0], "tx_packets"), 2000);
    EXPECT_EQ(evidence(f[0], "window"), 20);
    EXPECT_FALSE(hasEvidence(f[0], "rx_errors"));
    EXPECT_EQ(f[0].severity, "critical");  // 25 of 2025 packets: over 1%
    // flat counters: the drops leave with the window (all of them after 60 s)
    for (double t = 30; t <= 80; t += 10) d.run(*snap(clk, t, {link(2, 1025, 500, 3000 + 1000 * t)}), v);
    EXPECT_TRUE(rule(v, "interface_errors").empty());
    // counters of a re-created device (lower than before) start over
    d.run(*snap(clk, 90, {link(2, 30, 0, 10)}), v);
    f = rule(v, "interface_errors");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(evidence(f[0], "tx_dropped"), 30);
}

TEST(InterfaceErrors, HealthyCountersRaiseNothing) {
    Clock clk;
    Diagnosis d(DiagnosisOptions{});
    Views v;
    for (int t = 0; t < 10; ++t) d.run(*snap(clk, t, {link(2, 3, 1, 1000u * static_cast<unsigned>(t))}), v);
    EXPECT_TRUE(v.diagnosis->findings.empty());
}

// ---- one-way flows (pure) ----

FlowRecord rec(const std::string& src, const std::string& dst, std::uint16_t sport, std::uint16_t dport,
               std::uint8_t proto, std::uint64_t packets, double first_s, double last_s, std::uint8_t flags = 0,
               std::uint32_t ifindex = 2, std::uint8_t dir = NP_DIR_INGRESS) {
    FlowRecord r;
    r.key = netprobe::testing::makeKey(src, dst, sport, dport, proto, ifindex, dir);
    r.packets = packets;
    r.bytes = packets * 100;
    r.first_seen_ns = static_cast<std::uint64_t>(first_s * kSec);
    r.last_seen_ns = static_cast<std::uint64_t>(last_s * kSec);
    r.tcp_flags = flags;
    return r;
}

constexpr std::uint8_t SYN = 0x02, ACK = 0x10, PSH = 0x08, FIN = 0x01;

std::vector<Finding> oneWay(const std::vector<FlowRecord>& r, double now_s, DiagnosisOptions o = {}) {
    return analysis::oneWayFlowFindings(r, static_cast<std::uint64_t>(now_s * kSec), o,
                                        [](std::uint32_t i) { return "if" + std::to_string(i); });
}

TEST(OneWayFlows, TcpWhoseRepliesTakeAnotherPathIsAsymmetricRouting) {
    // The client's segments of one connection, seen entering on if2 and leaving on if3 (a
    // routed path): 12 packets, counted once. Nothing comes back through the node.
    std::vector<FlowRecord> r = {
        rec("198.18.0.1", "198.18.0.9", 40000, 7400, IPPROTO_TCP, 12, 100, 106, SYN | ACK | PSH | FIN, 2, NP_DIR_INGRESS),
        rec("198.18.0.1", "198.18.0.9", 40000, 7400, IPPROTO_TCP, 12, 100, 106, SYN | ACK | PSH | FIN, 3, NP_DIR_EGRESS),
    };
    auto f = oneWay(r, 110);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].rule, "one_way_flows");
    EXPECT_EQ(f[0].subject, "tcp 198.18.0.1 -> 198.18.0.9:7400");
    EXPECT_EQ(evidence(f[0], "packets_seen"), 12);
    EXPECT_EQ(evidence(f[0], "bytes_seen"), 1200);
    EXPECT_EQ(evidence(f[0], "packets_back"), 0);
    EXPECT_EQ(evidence(f[0], "flows"), 1);
    EXPECT_DOUBLE_EQ(evidence(f[0], "duration"), 6);
    EXPECT_EQ(evidence(f[0], "flow 198.18.0.1:40000 -> 198.18.0.9:7400"), 12);
    EXPECT_NE(f[0].title.find("Asymmetric routing"), std::string::npos) << f[0].title;
    EXPECT_NE(f[0].cause.find("acknowledges"), std::string::npos);
    const auto fix = joined(f[0].fix);
    EXPECT_NE(fix.find("ip route get 198.18.0.1 from 198.18.0.9"), std::string::npos) << fix;
    EXPECT_NE(fix.find("rp_filter"), std::string::npos);
    EXPECT_NE(fix.find("nft list ruleset"), std::string::npos);
    EXPECT_NE(f[0].query.find("netprobe flows --ip 198.18.0.1 --port 7400"), std::string::npos) << f[0].query;

    // Healthy: the same with the replies crossing the node (on any interface).
    r.push_back(rec("198.18.0.9", "198.18.0.1", 7400, 40000, IPPROTO_TCP, 10, 100, 106, SYN | ACK | PSH | FIN, 3));
    EXPECT_TRUE(oneWay(r, 110).empty());
}

TEST(OneWayFlows, UnansweredSynsAndTheServersSideOnly) {
    // SYN, retransmitted at 1, 3 and 7 s: no reply through this node.
    auto f = oneWay({rec("198.18.0.1", "198.18.0.9", 41000, 443, IPPROTO_TCP, 4, 100, 107, SYN)}, 108);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_NE(f[0].title.find("get no reply"), std::string::npos) << f[0].title;
    EXPECT_EQ(evidence(f[0], "packets_seen"), 4);
    // Only the server's packets (its port 443 facing an ephemeral one): the requests go around.
    f = oneWay({rec("198.18.0.9", "198.18.0.1", 443, 41000, IPPROTO_TCP, 30, 100, 110, SYN | ACK | PSH)}, 111);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].subject, "tcp 198.18.0.1 -> 198.18.0.9:443");
    EXPECT_NE(f[0].title.find("Only the server's side"), std::string::npos) << f[0].title;
}

// Under pressure the kernel aggregates connection attempts without an entry (source port
// 0): unanswered, they are the client's SYNs to port 80, not a server's side on port 0.
TEST(OneWayFlows, UnansweredAggregateOfAttempts) {
    auto f = oneWay({rec("198.18.0.1", "198.18.0.9", 0, 80, IPPROTO_TCP, 400, 100, 107, SYN)}, 108);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].subject, "tcp 198.18.0.1 -> 198.18.0.9:80");
    EXPECT_NE(f[0].title.find("get no reply"), std::string::npos) << f[0].title;
}

TEST(OneWayFlows, NotFlagged) {
    DiagnosisOptions o;
    // A scan's SYN (and its retry), a TCP flow one-way for less than one_way_min, a flow over
    // before the window.
    EXPECT_TRUE(oneWay({rec("198.18.0.1", "198.18.0.9", 41000, 22, IPPROTO_TCP, 2, 100, 101, SYN)}, 102).empty());
    EXPECT_TRUE(oneWay({rec("198.18.0.1", "198.18.0.9", 41000, 22, IPPROTO_TCP, 50, 100, 104, SYN | ACK)}, 105).empty());
    EXPECT_TRUE(oneWay({rec("198.18.0.1", "198.18.0.9", 41000, 22, IPPROTO_TCP, 50, 100, 110, SYN | ACK)},
                       110 + static_cast<double>(o.window.count()) + 1)
                    .empty());
    // Streaming UDP (RTP, telemetry, syslog, statsd): one-way by design.
    EXPECT_TRUE(oneWay({rec("198.18.0.1", "198.18.0.9", 41000, 5004, IPPROTO_UDP, 5000, 100, 160),
                        rec("198.18.0.1", "198.18.0.9", 41001, 514, IPPROTO_UDP, 5000, 100, 160),
                        rec("198.18.0.1", "198.18.0.9", 41002, 8125, IPPROTO_UDP, 5000, 100, 160)},
                       161)
                    .empty());
    // Multicast DNS-like queries, tunnel-inner flows.
    EXPECT_TRUE(oneWay({rec("198.18.0.1", "224.0.0.251", 41000, 53, IPPROTO_UDP, 50, 100, 160)}, 161).empty());
    auto inner = rec("198.18.0.1", "198.18.0.9", 41000, 80, IPPROTO_TCP, 50, 100, 160, SYN | ACK);
    inner.key.encap = NP_ENCAP_VXLAN;
    EXPECT_TRUE(oneWay({inner}, 161).empty());
    // Few DNS queries: under one_way_udp_packets_min.
    EXPECT_TRUE(oneWay({rec("198.18.0.1", "198.18.0.53", 41000, 53, IPPROTO_UDP, 2, 100, 105),
                        rec("198.18.0.1", "198.18.0.53", 41001, 53, IPPROTO_UDP, 2, 105, 110)},
                       111)
                    .empty());
}

TEST(OneWayFlows, UnansweredRequestsToAServiceThatAlwaysAnswers) {
    // DNS queries from three source ports, none answered; a fourth one answered is not counted.
    std::vector<FlowRecord> r = {
        rec("198.18.0.1", "198.18.0.53", 41000, 53, IPPROTO_UDP, 2, 100, 105),
        rec("198.18.0.1", "198.18.0.53", 41001, 53, IPPROTO_UDP, 2, 105, 110),
        rec("198.18.0.1", "198.18.0.53", 41002, 53, IPPROTO_UDP, 2, 110, 115),
        rec("198.18.0.1", "198.18.0.53", 41003, 53, IPPROTO_UDP, 1, 115, 115),
        rec("198.18.0.53", "198.18.0.1", 53, 41003, IPPROTO_UDP, 1, 115, 115),
    };
    auto f = oneWay(r, 116);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].subject, "udp 198.18.0.1 -> 198.18.0.53:53");
    EXPECT_EQ(evidence(f[0], "packets_seen"), 6);
    EXPECT_EQ(evidence(f[0], "flows"), 3);
    EXPECT_DOUBLE_EQ(evidence(f[0], "duration"), 15);
    EXPECT_NE(f[0].title.find("get no answer"), std::string::npos);
}

TEST(OneWayFlows, AtMostTheBusiestConversations) {
    DiagnosisOptions o;
    o.one_way_max_findings = 3;
    std::vector<FlowRecord> r;
    for (std::uint16_t i = 0; i < 8; ++i)
        r.push_back(rec("198.18.0.1", "198.18.1." + std::to_string(i + 1), 40000, 80, IPPROTO_TCP, 10u + i, 100, 110,
                        SYN | ACK));
    auto f = oneWay(r, 111, o);
    ASSERT_EQ(f.size(), 3u);
    EXPECT_EQ(evidence(f[0], "packets_seen"), 17);
    EXPECT_EQ(evidence(f[2], "packets_seen"), 15);
}

TEST(OneWayFlows, TheStageIsSilentWhileFlowRecordsAreLost) {
    Clock clk;
    Diagnosis d(DiagnosisOptions{});
    auto fv = std::make_shared<analysis::FlowView>();
    const double now = 200;
    std::vector<FlowRecord> recs = {
        rec("198.18.0.1", "198.18.0.9", 40000, 7400, IPPROTO_TCP, 12, now - 10, now - 1, SYN | ACK)};
    // The stage's time is the snapshot's monotonic clock.
    auto at = [&](double t) {
        auto s = snap(clk, t, {});
        return s;
    };
    const double base = std::chrono::duration<double>(clk.mono(now).time_since_epoch()).count();
    for (auto& r : recs) {
        r.first_seen_ns = static_cast<std::uint64_t>((base - 10) * 1e9);
        r.last_seen_ns = static_cast<std::uint64_t>((base - 1) * 1e9);
    }
    fv->records = analysis::FlowRecords(recs);
    Views v;
    v.flows = fv;
    d.run(*at(now - 1), v);
    d.run(*at(now), v);
    ASSERT_EQ(rule(v, "one_way_flows").size(), 1u);
    auto evicting = std::make_shared<analysis::FlowView>(*fv);
    evicting->health.evicted_total = 5;
    v.flows = evicting;
    d.run(*at(now + 1), v);
    EXPECT_TRUE(rule(v, "one_way_flows").empty());
}

// ---- path MTU: too-big messages, and with >= 100 retransmitted segments a black hole ----

std::shared_ptr<collector::Snapshot> mtuSnap(const Clock& clk, double at, std::uint64_t too_big,
                                             std::uint64_t retransmits, std::uint64_t tcp_out) {
    auto s = snap(clk, at, {});
    ebpf::IcmpCount c;
    c.key.direction = NP_DIR_INGRESS;
    c.key.family = 4;
    c.key.type = 3;
    c.key.code = 4;
    c.counter.packets = too_big;
    s->icmp.push_back(c);
    ebpf::IcmpCount other;  // port unreachable: not a too-big message
    other.key.family = 4;
    other.key.type = 3;
    other.key.code = 3;
    other.counter.packets = 1000;
    s->icmp.push_back(other);
    auto st = std::make_shared<ebpf::StackStats>();
    st->retransmits = retransmits;
    s->stack = st;
    s->protocols[NP_DIR_EGRESS][NP_PROTO_TCP].packets = tcp_out;
    return s;
}

TEST(PathMtu, TooBigMessagesWithRetransmissionsAreABlackHole) {
    Clock clk;
    DiagnosisOptions o;
    Diagnosis d(o);
    Views v;
    d.run(*mtuSnap(clk, 0, 50, 1000, 100000), v);  // history before the agent: not the window's
    EXPECT_TRUE(rule(v, "path_mtu").empty());
    d.run(*mtuSnap(clk, 5, 52, 1000, 100100), v);  // 2 messages: below frag_needed_min
    EXPECT_TRUE(rule(v, "path_mtu").empty());
    d.run(*mtuSnap(clk, 10, 56, 1099, 100200), v);  // 6 messages, 99 retransmits: warning
    auto f = rule(v, "path_mtu");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, "warning");
    EXPECT_EQ(evidence(f[0], "frag_needed"), 6);
    EXPECT_EQ(evidence(f[0], "retransmits"), 99);
    EXPECT_EQ(f[0].title.find("black hole"), std::string::npos);
    d.run(*mtuSnap(clk, 15, 56, 1100, 100300), v);  // the 100th retransmitted segment: critical
    f = rule(v, "path_mtu");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, "critical");
    EXPECT_EQ(evidence(f[0], "retransmits"), 100);
    EXPECT_NE(f[0].title.find("black hole"), std::string::npos);
    EXPECT_NE(joined(f[0].fix).find("ICMP type 3 code 4"), std::string::npos);
    // retransmissions alone (no too-big message) are not an MTU problem
    Diagnosis d2(o);
    Views v2;
    d2.run(*mtuSnap(clk, 0, 0, 0, 0), v2);
    d2.run(*mtuSnap(clk, 5, 0, 500, 1000), v2);
    EXPECT_TRUE(rule(v2, "path_mtu").empty());
    EXPECT_EQ(rule(v2, "tcp_retransmits").size(), 1u);
    // the window moves on: the messages leave it
    for (double t = 20; t <= 90; t += 5) d.run(*mtuSnap(clk, t, 56, 1100, 100300), v);
    EXPECT_TRUE(rule(v, "path_mtu").empty());
}

// ---- listen overflows: the listeners found full when the counter moved ----

std::shared_ptr<collector::Snapshot> listenSnap(const Clock& clk, double at, std::uint64_t overflows,
                                                std::vector<collector::FullListener> full) {
    auto s = snap(clk, at, {});
    s->netstat = std::make_shared<std::map<std::string, std::uint64_t>>(
        std::map<std::string, std::uint64_t>{{"TcpExt.ListenOverflows", overflows}, {"TcpExt.ListenDrops", overflows}});
    if (!full.empty()) s->full_listeners = std::make_shared<std::vector<collector::FullListener>>(std::move(full));
    return s;
}

collector::FullListener fullListener(std::uint8_t last, std::uint16_t port, std::uint32_t queued, std::uint32_t backlog) {
    collector::FullListener l;
    l.addr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, last};
    l.port = port;
    l.queued = queued;
    l.backlog = backlog;
    return l;
}

TEST(ListenOverflow, NamesTheListenersWhoseAcceptQueueWasFull) {
    Clock clk;
    DiagnosisOptions o;
    Diagnosis d(o);
    Views v;
    d.run(*listenSnap(clk, 0, 100, {}), v);
    d.run(*listenSnap(clk, 5, 130, {fullListener(1, 8080, 129, 128), fullListener(2, 5432, 5, 5)}), v);
    d.run(*listenSnap(clk, 10, 150, {fullListener(1, 8080, 120, 128)}), v);  // the fullest read counts
    auto f = rule(v, "listen_overflow");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(evidence(f[0], "overflows"), 50);
    EXPECT_EQ(evidence(f[0], "accept queue of 10.0.0.1:8080"), 129);
    EXPECT_EQ(evidence(f[0], "accept queue of 10.0.0.2:5432"), 5);
    EXPECT_TRUE(f[0].title.ends_with(" on :8080")) << f[0].title;
    ASSERT_GE(f[0].fix.size(), 3u);
    EXPECT_EQ(f[0].fix[0], "raise the listen backlog of 10.0.0.1:8080 (now 128; the kernel caps it at "
                           "net.core.somaxconn) or accept() faster there");
    EXPECT_NE(f[0].fix[1].find("10.0.0.2:5432 (now 5;"), std::string::npos);
    // none found full (the burst was over when the queues were read): the node-wide finding
    Diagnosis d2(o);
    Views v2;
    d2.run(*listenSnap(clk, 0, 0, {}), v2);
    d2.run(*listenSnap(clk, 5, 40, {}), v2);
    f = rule(v2, "listen_overflow");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].title.find(" on :"), std::string::npos);
    EXPECT_NE(joined(f[0].fix).find("somaxconn"), std::string::npos);
}

// ---- DNS servers that do not answer (the L7 view's unanswered queries) ----

std::shared_ptr<analysis::l7::L7View> dnsView(std::uint64_t client_timeouts, std::uint64_t answered,
                                              std::uint64_t server_timeouts = 0) {
    auto l7 = std::make_shared<analysis::l7::L7View>();
    if (client_timeouts) {
        analysis::l7::DnsTimeoutSummary t;
        t.service = "10.0.0.53:53";
        t.side = "client";
        t.timeouts = t.total = client_timeouts;
        t.max_wait_seconds = 1.0;
        t.names = {{"a.test", client_timeouts}};
        l7->dns_timeouts.push_back(t);
    }
    if (server_timeouts) {
        analysis::l7::DnsTimeoutSummary t;
        t.service = "10.0.0.53:53";
        t.side = "server";
        t.timeouts = t.total = server_timeouts;
        l7->dns_timeouts.push_back(t);
    }
    analysis::l7::EndpointSummary e;
    e.protocol = "dns";
    e.side = "client";
    e.service = "10.0.0.53:53";
    e.method = "A";
    e.route = "a.test";
    e.requests = answered;
    l7->endpoints.push_back(e);
    return l7;
}

TEST(DnsTimeouts, AServerThatStoppedAnsweringIsCriticalPerServer) {
    Clock clk;
    DiagnosisOptions o;
    Diagnosis d(o);
    Views v;
    v.l7 = dnsView(4, 0);  // below dns_timeouts_min
    d.run(*snap(clk, 0, {}), v);
    EXPECT_TRUE(rule(v, "dns_timeouts").empty());
    v.l7 = dnsView(8, 0, 3);  // nothing answered: critical; the clients' side is reported
    d.run(*snap(clk, 1, {}), v);
    auto f = rule(v, "dns_timeouts");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].subject, "10.0.0.53:53");
    EXPECT_EQ(f[0].severity, "critical");
    EXPECT_EQ(evidence(f[0], "timeouts"), 8);
    EXPECT_EQ(evidence(f[0], "answered"), 0);
    EXPECT_EQ(evidence(f[0], "ratio"), 1.0);
    EXPECT_EQ(evidence(f[0], "name a.test"), 8);
    EXPECT_NE(joined(f[0].fix).find("dig @10.0.0.53 "), std::string::npos);
    v.l7 = dnsView(5, 95);  // 5% unanswered: a warning
    d.run(*snap(clk, 2, {}), v);
    f = rule(v, "dns_timeouts");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, "warning");
    EXPECT_DOUBLE_EQ(evidence(f[0], "ratio"), 0.05);
    v.l7 = dnsView(0, 100);  // answering: nothing
    d.run(*snap(clk, 3, {}), v);
    EXPECT_TRUE(rule(v, "dns_timeouts").empty());
    EXPECT_TRUE(rule(v, "dns_failures").empty());
}

TEST(DnsTimeouts, TheStageCountsUnansweredQueriesOverItsWindow) {
    analysis::l7::L7Stage stage;
    Clock clk;
    auto s = snap(clk, 100, {});
    auto sample = std::make_shared<collector::L7Sample>();
    for (int i = 0; i < 6; ++i) {
        l7::Request r;
        r.protocol = "dns";
        r.side = l7::Side::Client;
        r.method = "A";
        r.path = r.route = i < 4 ? "x.test" : "y.test";
        r.status = -1;
        r.family = 4;
        r.server = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 53};
        r.server_port = 53;
        r.mono_ns = s->monoNs() - 2 * kSec;
        r.duration_seconds = 1.0 + i * 0.1;
        sample->dns_unanswered.push_back(r);
    }
    s->l7 = sample;
    Views v;
    stage.run(*s, v);
    ASSERT_EQ(v.l7->dns_timeouts.size(), 1u);
    const auto& t = v.l7->dns_timeouts[0];
    EXPECT_EQ(t.service, "10.0.0.53:53");
    EXPECT_EQ(t.side, "client");
    EXPECT_EQ(t.timeouts, 6u);
    EXPECT_EQ(t.total, 6u);
    EXPECT_NEAR(t.max_wait_seconds, 1.5, 1e-9);
    ASSERT_EQ(t.names.size(), 2u);
    EXPECT_EQ(t.names[0], (std::pair<std::string, std::uint64_t>{"x.test", 4}));
    EXPECT_TRUE(v.l7->endpoints.empty());  // not requests: no response
    // two minutes later they have left the window, the total stays
    auto later = snap(clk, 220, {});
    later->l7 = std::make_shared<collector::L7Sample>();
    stage.run(*later, v);
    ASSERT_EQ(v.l7->dns_timeouts.size(), 1u);
    EXPECT_EQ(v.l7->dns_timeouts[0].timeouts, 0u);
    EXPECT_EQ(v.l7->dns_timeouts[0].total, 6u);
}

// ---- NetProbe's own losses ----

TEST(DataLoss, TheL7CaptureLosingMessagesIsAFindingWithItsWindowCount) {
    Clock clk;
    DiagnosisOptions o;
    o.window = std::chrono::seconds(60);
    Diagnosis d(o);
    auto at = [&](double t, std::uint64_t ring_full, std::uint64_t conns_full) {
        auto s = snap(clk, t, {});
        auto l7 = std::make_shared<collector::L7Sample>();
        l7->kernel[NP_L7_CNT_EVENTS] = 1000;
        l7->kernel[NP_L7_CNT_RING_FULL] = ring_full;
        l7->kernel[NP_L7_CNT_CONNS_FULL] = conns_full;
        s->l7 = l7;
        return s;
    };
    Views v;
    d.run(*at(0, 0, 0), v);
    d.run(*at(10, 0, 0), v);
    EXPECT_TRUE(rule(v, "netprobe_data_loss").empty());
    d.run(*at(20, 40, 0), v);
    d.run(*at(30, 75, 3), v);
    auto f = rule(v, "netprobe_data_loss");
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(f[0].subject, "l7_conns");
    EXPECT_EQ(evidence(f[0], "lost"), 3);
    EXPECT_EQ(f[1].subject, "l7_events ring");
    EXPECT_EQ(evidence(f[1], "lost"), 75);
    EXPECT_EQ(f[1].evidence[0].unit, "records");
    EXPECT_NE(joined(f[1].fix).find("--l7-ring-size"), std::string::npos);
    EXPECT_NE(f[1].query.find("netprobe_l7_capture_lost_total"), std::string::npos);
    // no more losses: they leave with the window
    for (double t = 40; t <= 100; t += 10) d.run(*at(t, 75, 3), v);
    EXPECT_TRUE(rule(v, "netprobe_data_loss").empty());
}

// ---- RTT and retransmission jumps: the anomaly models' edge events ----

TEST(EdgeJumps, OpenEdgeEventsAboveTheirBaselineAreFindings) {
    namespace an = analysis::anomaly;
    auto event = [](std::uint64_t id, std::string subject, double observed, double lo, double hi, bool open = true,
                    std::string scope = "edge", std::string kind = "metric") {
        an::AnomalyEvent e;
        e.id = id;
        e.kind = std::move(kind);
        e.scope = std::move(scope);
        e.subject = std::move(subject);
        e.open = open;
        e.intervals = 3;
        e.score = 7.5;
        e.features.push_back({"value", observed, lo, hi, 7.5, "", {}});
        return e;
    };
    auto view = std::make_shared<an::AnomalyView>();
    view->events = {event(1, "edge/10.0.0.1->10.0.0.2:8080/tcp/rtt_ms", 42, 1.5, 2.5),
                    event(2, "edge/10.0.0.1->10.0.0.3:5432/tcp/loss_ratio", 0.04, 0, 0.01),
                    event(3, "edge/10.0.0.1->10.0.0.4:80/tcp/rtt_ms", 4, 1, 2, /*open=*/false),  // over
                    event(4, "edge/10.0.0.1->10.0.0.5:80/tcp/rtt_ms", 0.5, 1, 2),     // faster: no fault
                    event(5, "edge/10.0.0.1->10.0.0.6:80/tcp/bytes_rate", 1e6, 0, 10),  // not RTT or loss
                    event(6, "service/10.0.0.7:80/error_ratio", 0.5, 0, 0.01, true, "service")};
    Clock clk;
    Diagnosis d(DiagnosisOptions{});
    Views v;
    v.anomaly = view;
    d.run(*snap(clk, 0, {}), v);
    auto rtt = rule(v, "rtt_jump");
    ASSERT_EQ(rtt.size(), 1u);
    EXPECT_EQ(rtt[0].subject, "10.0.0.1->10.0.0.2:8080/tcp");
    EXPECT_EQ(rtt[0].severity, "critical");  // 42 ms against at most 2.5
    EXPECT_DOUBLE_EQ(evidence(rtt[0], "rtt_p50"), 0.042);
    EXPECT_DOUBLE_EQ(evidence(rtt[0], "expected_high"), 0.0025);
    EXPECT_EQ(evidence(rtt[0], "intervals"), 3);
    EXPECT_NE(rtt[0].title.find("42 ms (expected 1.5-2.5 ms)"), std::string::npos) << rtt[0].title;
    EXPECT_NE(rtt[0].query.find("event 1"), std::string::npos);
    auto loss = rule(v, "retransmit_jump");
    ASSERT_EQ(loss.size(), 1u);
    EXPECT_EQ(loss[0].subject, "10.0.0.1->10.0.0.3:5432/tcp");
    EXPECT_EQ(loss[0].severity, "warning");
    EXPECT_DOUBLE_EQ(evidence(loss[0], "loss_ratio"), 0.04);
    EXPECT_NE(joined(loss[0].fix).find("netprobe top retransmits"), std::string::npos);
    EXPECT_EQ(v.diagnosis->findings.size(), 2u);
}

}  // namespace
