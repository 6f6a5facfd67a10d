// Detectors as pure functions over recorded observations (no BPF, no clock).
#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <netprobe/analysis/security/config.hpp>
#include <netprobe/analysis/security/detect.hpp>
#include <netprobe/analysis/security/stage.hpp>
#include <netprobe/metrics/security.hpp>

namespace ns = netprobe::analysis::security;
using namespace std::chrono_literals;
using ns::EventType;
using ns::Finding;
using ns::FlowStart;
using ns::TimePoint;

namespace {

netprobe::util::Addr16 ip(const char* s) { return *netprobe::util::parseAddr(s); }

constexpr std::uint8_t FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10, URG = 0x20;
const TimePoint T0{std::chrono::seconds(1000)};

FlowStart tcp(TimePoint at, const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport,
              std::uint8_t flags, std::uint8_t doff = 6) {
    return FlowStart{at, ip(src), ip(dst), sport, dport, 6, flags, doff};
}
FlowStart udp(TimePoint at, const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport) {
    return FlowStart{at, ip(src), ip(dst), sport, dport, 17, 0, 0};
}

const Finding* find(const std::vector<Finding>& fs, EventType t) {
    for (const auto& f : fs)
        if (f.type == t) return &f;
    return nullptr;
}
// Of a temporary: a copy (a pointer into it would dangle; found by the ASan build).
std::optional<Finding> find(std::vector<Finding>&& fs, EventType t) {
    for (auto& f : fs)
        if (f.type == t) return std::move(f);
    return std::nullopt;
}

std::string str(const Finding& f, const char* key) { return std::get<std::string>(f.evidence.at(key)); }
std::int64_t num(const Finding& f, const char* key) { return std::get<std::int64_t>(f.evidence.at(key)); }

// n probes from src to dst ports 1..n with flags, each answered (if answer != 0) by a
// reverse first packet with those flags.
void probe(ns::ConnectionAnalyzer& a, TimePoint at, int n, std::uint8_t flags, std::uint8_t answer,
           std::uint8_t doff = 6, const char* src = "198.18.0.1", const char* dst = "198.18.0.2") {
    for (int p = 1; p <= n; ++p) {
        a.observe(tcp(at, src, 40000, dst, static_cast<std::uint16_t>(p), flags, doff));
        if (answer) a.observe(tcp(at + 1ms, dst, static_cast<std::uint16_t>(p), src, 40000, answer, 5));
    }
}

}  // namespace

TEST(SecurityClassify, FirstPacketShapes) {
    struct Case {
        std::uint8_t flags, doff;
        ns::FirstPacket want;
    } cases[] = {
        {SYN, 6, ns::FirstPacket::SynRaw},       {SYN, 5, ns::FirstPacket::SynRaw},
        {SYN, 10, ns::FirstPacket::SynStack},    {SYN | 0xc0, 10, ns::FirstPacket::SynStack},  // ECN SYN
        {SYN | ACK, 10, ns::FirstPacket::SynAck}, {RST | ACK, 5, ns::FirstPacket::Rst},
        {RST, 5, ns::FirstPacket::Rst},          {0, 5, ns::FirstPacket::Null},
        {FIN, 5, ns::FirstPacket::Fin},          {FIN | PSH | URG, 5, ns::FirstPacket::Xmas},
        {ACK, 5, ns::FirstPacket::AckOnly},      {ACK | PSH, 8, ns::FirstPacket::Other},
        {FIN | ACK, 8, ns::FirstPacket::Other},
    };
    for (const auto& c : cases)
        EXPECT_EQ(ns::classify(tcp(T0, "198.18.0.1", 1, "198.18.0.2", 2, c.flags, c.doff)), c.want)
            << "flags " << int(c.flags);
    EXPECT_EQ(ns::classify(udp(T0, "198.18.0.1", 1, "198.18.0.2", 2)), ns::FirstPacket::Udp);
}

TEST(SecurityScan, VerticalSynScanRefusedByRst) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    probe(a, T0, 25, SYN, RST | ACK);
    auto fs = a.evaluate(T0 + 100ms);
    const Finding* f = find(fs, EventType::PortScan);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(str(*f, "scan_type"), "syn");
    EXPECT_EQ(str(*f, "mode"), "vertical");
    EXPECT_EQ(num(*f, "ports_probed"), 25);
    EXPECT_EQ(num(*f, "refused"), 25);
    EXPECT_EQ(*f->src, ip("198.18.0.1"));
    EXPECT_EQ(*f->dst, ip("198.18.0.2"));
    EXPECT_EQ(f->first_seen, T0);
    // the refusals of a scan are not also reported as failed connections
    EXPECT_EQ(find(fs, EventType::ConnectionFailures), nullptr);
}

TEST(SecurityScan, BelowThresholdIsQuiet) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    probe(a, T0, 19, SYN, RST | ACK);
    EXPECT_FALSE(find(a.evaluate(T0 + 100ms), EventType::PortScan));
}

TEST(SecurityScan, OpenPortsDoNotCount) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    probe(a, T0, 50, SYN, SYN | ACK);  // every port open: ordinary connections
    EXPECT_TRUE(a.evaluate(T0 + 5s).empty());
}

TEST(SecurityScan, ConnectScanByTheSynShape) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    probe(a, T0, 30, SYN, RST | ACK, /*doff=*/10);
    const auto f = find(a.evaluate(T0 + 100ms), EventType::PortScan);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(str(*f, "scan_type"), "connect");
}

TEST(SecurityScan, StealthScansCountRefusedAndUnanswered) {
    for (auto [flags, want] : {std::pair{std::uint8_t(FIN), "fin"}, std::pair{std::uint8_t(0), "null"},
                               std::pair{std::uint8_t(FIN | PSH | URG), "xmas"}}) {
        ns::SecurityConfig cfg;
        ns::ConnectionAnalyzer a(cfg, T0);
        probe(a, T0, 25, flags, 0);  // open|filtered: no answer at all
        EXPECT_FALSE(find(a.evaluate(T0 + 500ms), EventType::PortScan)) << want << ": not yet unanswered";
        const auto f = find(a.evaluate(T0 + 1100ms), EventType::PortScan);
        ASSERT_TRUE(f.has_value()) << want;
        EXPECT_EQ(str(*f, "scan_type"), want);
        EXPECT_EQ(num(*f, "unanswered"), 25);
    }
}

TEST(SecurityScan, AckProbesCountOnlyWhenRefused) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer quiet(cfg, T0);
    probe(quiet, T0, 40, ACK, 0);  // mid-stream ACKs of long-lived connections look like this
    EXPECT_FALSE(find(quiet.evaluate(T0 + 3s), EventType::PortScan));
    ns::ConnectionAnalyzer scan(cfg, T0);
    probe(scan, T0, 40, ACK, RST);
    const auto f = find(scan.evaluate(T0 + 100ms), EventType::PortScan);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(str(*f, "scan_type"), "ack");
}

TEST(SecurityScan, UdpScanRefusedByIcmpAndRepliesAreNotProbes) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    for (int p = 1; p <= 30; ++p) {
        a.observe(udp(T0, "198.18.0.1", 50000, "198.18.0.2", static_cast<std::uint16_t>(p)));
        ns::Unreachable u{T0 + 1ms, ip("198.18.0.2"), ip("198.18.0.1"), ip("198.18.0.2"), 50000,
                          static_cast<std::uint16_t>(p), 17};
        a.observe(u);
    }
    const auto f = find(a.evaluate(T0 + 100ms), EventType::PortScan);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(str(*f, "scan_type"), "udp");
    EXPECT_EQ(num(*f, "unreachable"), 30);

    // DNS-like: 30 queries to one server, every one answered: nothing
    ns::ConnectionAnalyzer b(cfg, T0);
    for (int p = 1; p <= 30; ++p) {
        b.observe(udp(T0, "198.18.0.1", static_cast<std::uint16_t>(40000 + p), "198.18.0.53", 53));
        b.observe(udp(T0 + 1ms, "198.18.0.53", 53, "198.18.0.1", static_cast<std::uint16_t>(40000 + p)));
    }
    EXPECT_TRUE(b.evaluate(T0 + 5s).empty());
}

// traceroute: UDP to 33434+ with rising TTLs; routers answer time exceeded, the
// target port unreachable for the last few. Not a scan.
TEST(SecurityScan, TracerouteIsNotAScan) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    for (int p = 0; p < 30; ++p) {
        const auto port = static_cast<std::uint16_t>(33434 + p);
        a.observe(udp(T0 + p * 10ms, "198.18.0.1", 40000, "198.18.5.5", port));
        ns::Unreachable u{T0 + p * 10ms + 1ms, ip(p < 27 ? "198.18.0.254" : "198.18.5.5"), ip("198.18.0.1"),
                          ip("198.18.5.5"), 40000, port, 17, /*time_exceeded=*/p < 27};
        a.observe(u);
    }
    EXPECT_FALSE(find(a.evaluate(T0 + 3s), EventType::PortScan));
}

TEST(SecurityScan, HorizontalScan) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    for (int h = 1; h <= 12; ++h) {
        const std::string dst = "198.19.0." + std::to_string(h);
        a.observe(tcp(T0, "198.18.0.1", 40000, dst.c_str(), 22, SYN));
        a.observe(tcp(T0 + 1ms, dst.c_str(), 22, "198.18.0.1", 40000, RST | ACK, 5));
    }
    const auto f = find(a.evaluate(T0 + 100ms), EventType::PortScan);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(str(*f, "mode"), "horizontal");
    EXPECT_EQ(num(*f, "dst_port"), 22);
    EXPECT_EQ(f->targets.size(), 12u);
    EXPECT_FALSE(f->dst.has_value());
}

TEST(SecurityScan, EndsAndTheNextScanStartsClean) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    probe(a, T0, 100, SYN, RST | ACK);
    ASSERT_TRUE(find(a.evaluate(T0 + 1s), EventType::PortScan));
    EXPECT_FALSE(find(a.evaluate(T0 + cfg.scan_end_after + 1ms), EventType::PortScan));  // over
    const TimePoint t1 = T0 + cfg.scan_end_after + 2s;
    probe(a, t1, 25, FIN, RST | ACK);
    const auto f = find(a.evaluate(t1 + 100ms), EventType::PortScan);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(str(*f, "scan_type"), "fin");
    EXPECT_EQ(num(*f, "ports_probed"), 25);
    EXPECT_EQ(f->first_seen, t1);
}

TEST(SecurityScan, AllowListedSourceNeverFlagged) {
    ns::SecurityConfig cfg;
    cfg.allow = {*ns::parseCidr("198.18.0.0/24")};
    ns::ConnectionAnalyzer a(cfg, T0);
    probe(a, T0, 200, SYN, RST | ACK);
    EXPECT_TRUE(a.evaluate(T0 + 100ms).empty());
}

TEST(SecurityScan, SourceStateIsBounded) {
    ns::SecurityConfig cfg;
    cfg.max_sources = 10;
    cfg.max_probes_per_source = 8;
    ns::ConnectionAnalyzer a(cfg, T0);
    for (int s = 1; s <= 50; ++s) {
        const std::string src = "198.18.1." + std::to_string(s);
        probe(a, T0, 20, SYN, 0, 6, src.c_str());
    }
    EXPECT_EQ(a.sources(), 10u);
    EXPECT_EQ(a.sourcesEvicted(), 40u);
    EXPECT_EQ(a.probes(), 10u * 8u);  // evicted sources' probes are released too
}

TEST(SecurityScan, ProbesAreBoundedOverAllSources) {
    ns::SecurityConfig cfg;
    cfg.max_probes_total = 50;
    ns::ConnectionAnalyzer a(cfg, T0);
    probe(a, T0, 40, SYN, 0, 6, "198.18.1.1");
    probe(a, T0, 40, SYN, 0, 6, "198.18.1.2");
    EXPECT_EQ(a.probes(), 50u);
    EXPECT_EQ(a.probesDropped(), 30u);
    (void)a.evaluate(T0 + cfg.scan_window + 1s);  // out of the window: released
    EXPECT_EQ(a.probes(), 0u);
    probe(a, T0 + cfg.scan_window + 2s, 40, SYN, RST | ACK, 6, "198.18.1.3");
    EXPECT_EQ(a.probes(), 40u);
}

TEST(SecurityConnections, FailureBurstToOnePort) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    for (int i = 0; i < 25; ++i) {
        const auto sport = static_cast<std::uint16_t>(41000 + i);
        a.observe(tcp(T0 + i * 10ms, "198.18.0.1", sport, "198.18.0.2", 5432, SYN, 10));
        a.observe(tcp(T0 + i * 10ms + 1ms, "198.18.0.2", 5432, "198.18.0.1", sport, RST | ACK, 5));
    }
    auto fs = a.evaluate(T0 + 1s);
    EXPECT_EQ(find(fs, EventType::PortScan), nullptr);
    const Finding* f = find(fs, EventType::ConnectionFailures);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(num(*f, "failures"), 25);
    EXPECT_EQ(num(*f, "dst_port"), 5432);
    // outside the window: over
    EXPECT_FALSE(find(a.evaluate(T0 + cfg.conn_window + 2s), EventType::ConnectionFailures));
}

TEST(SecurityConnections, FanOut) {
    ns::SecurityConfig cfg;
    ns::ConnectionAnalyzer a(cfg, T0);
    for (int h = 0; h < 120; ++h) {
        const std::string dst = "198.19." + std::to_string(h / 200) + "." + std::to_string(h % 200 + 1);
        a.observe(tcp(T0 + h * 10ms, "198.18.0.1", static_cast<std::uint16_t>(30000 + h), dst.c_str(), 443, SYN, 10));
        a.observe(tcp(T0 + h * 10ms + 1ms, dst.c_str(), 443, "198.18.0.1", static_cast<std::uint16_t>(30000 + h),
                      SYN | ACK, 10));
    }
    auto fs = a.evaluate(T0 + 2s);
    const Finding* f = find(fs, EventType::FanOut);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(num(*f, "peers"), 120);
    EXPECT_EQ(find(fs, EventType::PortScan), nullptr);  // answered: not a scan
}

TEST(SecurityConnections, NewPeerAfterLearning) {
    ns::SecurityConfig cfg;
    cfg.learning_period = 60s;
    ns::ConnectionAnalyzer a(cfg, T0);
    auto connect = [&](TimePoint at, const char* client, const char* server, std::uint16_t port, std::uint16_t sport) {
        a.observe(tcp(at, client, sport, server, port, SYN, 10));
        a.observe(tcp(at + 1ms, server, port, client, sport, SYN | ACK, 10));
    };
    connect(T0 + 1s, "198.18.0.1", "198.18.0.2", 80, 40001);
    EXPECT_TRUE(a.takeNewPeers().empty());  // learning
    connect(T0 + 61s, "198.18.0.1", "198.18.0.2", 80, 40002);
    EXPECT_TRUE(a.takeNewPeers().empty());  // known pair
    connect(T0 + 62s, "198.18.0.3", "198.18.0.2", 80, 40003);
    auto p = a.takeNewPeers();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].type, EventType::NewPeer);
    EXPECT_TRUE(p[0].instant);
    EXPECT_EQ(num(p[0], "new_service"), 0);
    connect(T0 + 63s, "198.18.0.3", "198.18.0.2", 8443, 40004);
    p = a.takeNewPeers();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(num(p[0], "new_service"), 1);
}

// ---- floods ----

namespace {

ns::HostRates rates(const char* addr, double seconds, std::uint64_t in, std::uint64_t out, std::uint64_t tcp,
                    std::uint64_t syn, std::uint64_t udp, std::uint64_t icmp, std::uint64_t bytes = 0) {
    ns::HostRates r;
    r.addr = ip(addr);
    r.seconds = seconds;
    r.delta.in_packets = in;
    r.delta.in_bytes = bytes ? bytes : in * 60;
    r.delta.out_packets = out;
    r.delta.tcp_in = tcp;
    r.delta.syn_in = syn;
    r.delta.udp_in = udp;
    r.delta.icmp_in = icmp;
    return r;
}

// Feeds the same per-tick sample for `ticks` ticks of 250 ms; returns the last findings.
std::vector<Finding> feed(ns::FloodAnalyzer& f, TimePoint& now, int ticks, const ns::HostRates& r) {
    std::vector<Finding> out;
    for (int i = 0; i < ticks; ++i) {
        now += 250ms;
        out = f.evaluate({r}, now);
    }
    return out;
}

}  // namespace

TEST(SecurityFlood, SynFloodNeedsToLastAndEnds) {
    ns::SecurityConfig cfg;
    ns::FloodAnalyzer f(cfg);
    TimePoint now = T0;
    // a burst of 500 SYNs (a fast scan of 500 ports) then silence: 500 SYN/s over the
    // second that follows, below the 1000/s threshold
    EXPECT_TRUE(feed(f, now, 1, rates("198.18.0.2", 0.25, 500, 0, 500, 500, 0, 0)).empty());
    for (int i = 0; i < 8; ++i) {
        now += 250ms;
        EXPECT_TRUE(f.evaluate({}, now).empty());
    }
    const auto syn = rates("198.18.0.2", 0.25, 1000, 0, 1000, 1000, 0, 0);  // 4000 SYN/s
    EXPECT_TRUE(feed(f, now, 3, syn).empty());  // not yet a second
    auto fs = feed(f, now, 1, syn);
    const Finding* x = find(fs, EventType::SynFlood);
    ASSERT_NE(x, nullptr);
    EXPECT_EQ(*x->dst, ip("198.18.0.2"));
    EXPECT_DOUBLE_EQ(std::get<double>(x->evidence.at("pps")), 4000.0);
    // quiet for less than end_after: still on; then over
    EXPECT_TRUE(find(f.evaluate({}, now + 2s), EventType::SynFlood));
    EXPECT_FALSE(find(f.evaluate({}, now + cfg.flood_end_after + 1ms), EventType::SynFlood));
}

TEST(SecurityFlood, AJitteryFloodIsJudgedOnItsAverage) {
    ns::SecurityConfig cfg;
    ns::FloodAnalyzer f(cfg);
    TimePoint now = T0;
    // 8000 and 3000 UDP packets/s alternating: every other interval is under the
    // 5000/s threshold, the second's average (5500/s) is over it
    std::vector<Finding> fs;
    for (int i = 0; i < 8 && fs.empty(); ++i)
        fs = feed(f, now, 1, rates("198.18.0.2", 0.25, i % 2 ? 750 : 2000, 0, 0, 0, i % 2 ? 750 : 2000, 0));
    ASSERT_NE(find(fs, EventType::UdpFlood), nullptr);
    EXPECT_NEAR(std::get<double>(find(fs, EventType::UdpFlood)->evidence.at("pps")), 5500, 1);
}

TEST(SecurityFlood, SynsAmongBusyTrafficAreNotAFlood) {
    ns::SecurityConfig cfg;
    ns::FloodAnalyzer f(cfg);
    TimePoint now = T0;
    // 4000 SYN/s but 10x as many other TCP packets: a busy server, syn ratio 0.1
    EXPECT_TRUE(feed(f, now, 8, rates("198.18.0.2", 0.25, 10000, 10000, 10000, 1000, 0, 0)).empty());
}

TEST(SecurityFlood, UdpAndIcmpFloods) {
    ns::SecurityConfig cfg;
    ns::FloodAnalyzer f(cfg);
    TimePoint now = T0;
    auto fs = feed(f, now, 5, rates("198.18.0.2", 0.25, 3000, 0, 0, 0, 2000, 1000));  // 8000 udp/s, 4000 icmp/s
    EXPECT_NE(find(fs, EventType::UdpFlood), nullptr);
    EXPECT_NE(find(fs, EventType::IcmpFlood), nullptr);
    EXPECT_EQ(find(fs, EventType::TrafficSurge), nullptr);
}

TEST(SecurityFlood, HostGroupThresholds) {
    ns::SecurityConfig cfg;
    ns::HostGroup g;
    g.name = "dns";
    g.cidrs = {*ns::parseCidr("198.18.0.53/32")};
    g.thresholds = cfg.flood;
    g.thresholds.udp_pps = 50000;
    cfg.host_groups.push_back(g);
    ns::FloodAnalyzer f(cfg);
    TimePoint now = T0;
    EXPECT_TRUE(feed(f, now, 5, rates("198.18.0.53", 0.25, 2500, 2500, 0, 0, 2500, 0)).empty());  // 10k/s < 50k
    EXPECT_FALSE(feed(f, now, 5, rates("198.18.0.54", 0.25, 2500, 2500, 0, 0, 2500, 0)).empty());
}

TEST(SecurityFlood, AdaptiveSurgeNeedsBaselineAndAsymmetry) {
    ns::SecurityConfig cfg;
    cfg.baseline_warmup = 5s;
    ns::FloodAnalyzer f(cfg);
    TimePoint now = T0;
    // 10 s of 1000 pps baseline (a quarter second each)
    feed(f, now, 40, rates("198.18.0.2", 0.25, 250, 250, 250, 1, 0, 0));
    ASSERT_TRUE(f.baseline(ip("198.18.0.2")).has_value());
    EXPECT_NEAR(*f.baseline(ip("198.18.0.2")), 1000.0, 1.0);
    // 40k pps answered packet for packet (a bulk transfer and its ACKs): no surge
    EXPECT_TRUE(feed(f, now, 8, rates("198.18.0.2", 0.25, 10000, 10000, 10000, 0, 0, 0)).empty());
    // 40k pps of unanswered TCP (not SYNs): surge
    auto fs = feed(f, now, 8, rates("198.18.0.2", 0.25, 10000, 100, 10000, 0, 0, 0));
    const Finding* x = find(fs, EventType::TrafficSurge);
    ASSERT_NE(x, nullptr);
    // the baseline did not learn the attack
    EXPECT_LT(*f.baseline(ip("198.18.0.2")), 20000.0);
}

TEST(SecurityFlood, StaticMbpsThreshold) {
    ns::SecurityConfig cfg;
    cfg.flood.mbps = 100;
    ns::FloodAnalyzer f(cfg);
    TimePoint now = T0;
    // 1000 packets of 9000 bytes per quarter second = 288 Mbit/s
    auto fs = feed(f, now, 5, rates("198.18.0.2", 0.25, 1000, 1000, 1000, 0, 0, 0, 9000000));
    EXPECT_NE(find(fs, EventType::TrafficSurge), nullptr);
}

TEST(SecurityFlood, StaticNewFlowsThreshold) {
    ns::SecurityConfig cfg;
    cfg.flood.flows = 1000;
    ns::FloodAnalyzer f(cfg);
    TimePoint now = T0;
    auto r = rates("198.18.0.2", 0.25, 500, 500, 500, 0, 0, 0);
    r.new_flows = 100;  // 400 flows/s: under
    EXPECT_TRUE(feed(f, now, 6, r).empty());
    r.new_flows = 300;  // 1200 flows/s
    auto fs = feed(f, now, 6, r);
    const Finding* x = find(fs, EventType::TrafficSurge);
    ASSERT_NE(x, nullptr);
    EXPECT_NEAR(std::get<double>(x->evidence.at("flows_per_second")), 1200, 1);
}

// Under flow pressure the datapath announces an aggregate entry's attempts of a tick with
// one record that carries the others' count (np_sec_event.folded): the stage counts each
// attempt towards the destination's new flows/s, and the records as records.
TEST(SecurityFlood, FoldedAttemptsCountAsNewFlows) {
    ns::SecurityStage::Options o;
    o.config.flood.flows = 1000;
    o.config.flood.syn_pps = 0;  // the flows threshold alone
    ns::SecurityStage stage(o, T0);
    const auto src = ip("198.18.0.9"), dst = ip("198.18.0.2");
    std::shared_ptr<const ns::SecurityView> view;
    for (int tick = 1; tick <= 8; ++tick) {
        netprobe::collector::Snapshot snap;
        snap.mono = T0 + tick * 250ms;
        auto sample = std::make_shared<netprobe::collector::SecuritySample>();
        sample->seconds = 0.25;
        np_sec_event e{};
        e.kind = NP_SEC_NEW_FLOW;
        e.ts_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds((snap.mono).time_since_epoch()).count());
        e.key.family = 4;
        e.key.proto = 6;
        e.key.direction = NP_DIR_INGRESS;
        std::memcpy(&e.key.src_ip, src.data(), 16);
        std::memcpy(&e.key.dst_ip, dst.data(), 16);
        e.key.src_port = static_cast<std::uint16_t>(40000 + tick);
        e.key.dst_port = 80;
        e.tcp_flags = SYN;
        e.tcp_doff = 5;
        e.folded = 299;  // 300 attempts a quarter second: 1200 flows/s
        sample->records.push_back(e);
        netprobe::collector::HostDelta h;
        h.addr = dst;
        h.delta.in_packets = h.delta.tcp_in = h.delta.syn_in = 300;
        h.delta.in_bytes = 300 * 60;
        sample->hosts.push_back(h);
        snap.security = sample;
        netprobe::analysis::Views v;
        stage.run(snap, v);
        view = v.security;
    }
    ASSERT_TRUE(view);
    EXPECT_EQ(view->stats.new_flows, 8u);
    EXPECT_EQ(view->stats.new_flows_folded, 8u * 299u);
    ASSERT_FALSE(view->events.empty());
    const auto& ev = *view->events.front();
    EXPECT_EQ(ev.type, EventType::TrafficSurge);
    EXPECT_EQ(ev.dst, dst);
    EXPECT_NEAR(std::get<double>(ev.evidence.at("flows_per_second")), 1200, 1);
}

TEST(SecurityFlood, AllowListedTargetIgnored) {
    ns::SecurityConfig cfg;
    cfg.allow = {*ns::parseCidr("198.18.0.2")};
    ns::FloodAnalyzer f(cfg);
    TimePoint now = T0;
    EXPECT_TRUE(feed(f, now, 8, rates("198.18.0.2", 0.25, 1000, 0, 1000, 1000, 0, 0)).empty());
}

// ---- configuration ----

TEST(SecurityConfig, Cidrs) {
    auto c = ns::parseCidr("198.18.0.0/15");
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->contains(ip("198.19.255.1")));
    EXPECT_FALSE(c->contains(ip("198.20.0.1")));
    EXPECT_EQ(c->str(), "198.18.0.0/15");
    EXPECT_EQ(ns::parseCidr("198.18.3.7/24")->str(), "198.18.3.0/24");
    EXPECT_EQ(ns::parseCidr("fd6e:7072::1")->str(), "fd6e:7072::1/128");
    EXPECT_TRUE(ns::parseCidr("fd6e:7072::/32")->contains(ip("fd6e:7072:1::5")));
    EXPECT_FALSE(ns::parseCidr("fd6e:7072::/32")->contains(ip("198.18.0.1")));
    for (const char* bad : {"", "198.18.0.0/33", "fd6e::/129", "x/8", "198.18.0.0/", "198.18.0.0/-1", "1.2.3/8"})
        EXPECT_FALSE(ns::parseCidr(bad)) << bad;
}

TEST(SecurityConfig, ParsesEverySection) {
    ns::SecurityConfig c;
    const char* yaml = R"(
tick: 100ms
allow: [198.18.9.0/24, "fd6e:7072::/32"]
scan:
  window: 5s
  vertical_ports: 30
  horizontal_hosts: 8
  unanswered_after: 500ms
  end_after: 2s
flood:
  syn_pps: 2000
  udp_pps: 7000
  icmp_pps: 300
  mbps: 900
  flows: 3500
  min_duration: 500ms
  end_after: 4s
  surge: {factor: 5, min_pps: 1000, asymmetry: 2, half_life: 30s, warmup: 10s}
  host_groups:
    - name: web
      cidrs: [198.18.5.0/24]
      syn_pps: 50000
connections:
  failures: 10
  fanout_peers: 50
  learning_period: 2m
  new_peer: false
mitigation:
  mode: dry-run
  block_duration: 5m
limits:
  max_events: 50
)";
    auto r = ns::parseSecurityConfig(yaml, c);
    ASSERT_TRUE(r) << r.error().what();
    EXPECT_EQ(c.tick, 100ms);
    EXPECT_EQ(c.allow.size(), 2u);
    EXPECT_EQ(c.scan_vertical_ports, 30u);
    EXPECT_EQ(c.scan_unanswered_after, 500ms);
    EXPECT_EQ(c.flood.syn_pps, 2000);
    EXPECT_EQ(c.flood_min_duration, 500ms);
    EXPECT_EQ(c.flood.flows, 3500);
    EXPECT_EQ(c.surge_factor, 5);
    EXPECT_EQ(c.baseline_warmup, 10s);
    ASSERT_EQ(c.host_groups.size(), 1u);
    EXPECT_EQ(c.host_groups[0].thresholds.syn_pps, 50000);
    EXPECT_EQ(c.host_groups[0].thresholds.udp_pps, 7000);  // inherited
    EXPECT_EQ(c.thresholdsFor(ip("198.18.5.9")).syn_pps, 50000);
    EXPECT_EQ(c.thresholdsFor(ip("198.18.6.9")).syn_pps, 2000);
    EXPECT_EQ(c.learning_period, 120s);
    EXPECT_FALSE(c.new_peer);
    EXPECT_EQ(c.mitigate, ns::MitigationMode::DryRun);
    EXPECT_EQ(c.max_events, 50u);
    EXPECT_TRUE(c.allowed(ip("198.18.9.77")));
}

TEST(SecurityConfig, ErrorsNameTheLineAndReason) {
    struct Case {
        const char* yaml;
        const char* want;
    } cases[] = {
        {"scan:\n  window: 5s\n  vertcal_ports: 3\n", "line 3: scan.vertcal_ports: unknown setting"},
        {"scan:\n  vertical_ports: -4\n", "line 2: scan.vertical_ports: expected a positive integer"},
        {"scan:\n  vertical_ports: 0\n", "line 2: scan.vertical_ports: must be between 1"},
        {"flood:\n  syn_pps: lots\n", "line 2: flood.syn_pps: expected a number"},
        {"flood:\n  syn_ratio: 2\n", "line 2: flood.syn_ratio: must be between 0 and 1"},
        {"tick: soon\n", "line 1: tick: expected a duration"},
        {"allow:\n  - 198.18.0.0/24\n  - 300.1.1.1\n", "line 3: allow[1]: not an IPv4/IPv6 address or CIDR"},
        {"allow: 198.18.0.0/24\n", "line 1: allow: expected a list of CIDRs"},
        {"mitigation:\n  mode: maybe\n", "line 2: mitigation.mode: expected off, dry-run or on"},
        {"flood:\n  host_groups:\n    - name: x\n", "line 3: flood.host_groups[0]: a host group needs cidrs"},
        {"scan: [1, 2\n", "line "},
        {"- 1\n- 2\n", "(top level): expected a map"},
        {"scan:\n  unanswered_after: 20s\n", "scan.unanswered_after must be shorter than scan.window"},
    };
    for (const auto& c : cases) {
        ns::SecurityConfig cfg;
        auto r = ns::parseSecurityConfig(c.yaml, cfg);
        ASSERT_FALSE(r) << c.yaml;
        EXPECT_NE(r.error().message.find(c.want), std::string::npos) << r.error().message << " / want " << c.want;
    }
    ns::SecurityConfig untouched;
    ASSERT_FALSE(ns::parseSecurityConfig("scan:\n  window: 1s\n  bogus: 1\n", untouched));
    EXPECT_EQ(untouched.scan_window, 10s);  // a rejected file changes nothing
    EXPECT_TRUE(ns::parseSecurityConfig("", untouched));  // empty file: defaults
}

// The security.yaml that deploy/agent.yaml ships is accepted by the agent's parser.
TEST(SecurityConfig, DeployedConfigMapParses) {
    bool found = false;
    for (const YAML::Node& doc : YAML::LoadAllFromFile(NETPROBE_SOURCE_DIR "/deploy/agent.yaml")) {
        if (doc["kind"].as<std::string>() != "ConfigMap" || doc["metadata"]["name"].as<std::string>() != "netprobe-security")
            continue;
        found = true;
        ns::SecurityConfig c;
        auto r = ns::parseSecurityConfig(doc["data"]["security.yaml"].as<std::string>(), c);
        EXPECT_TRUE(r) << r.error().what();
    }
    EXPECT_TRUE(found);
}

TEST(SecurityApi, EventQuery) {
    using P = std::vector<std::pair<std::string, std::string>>;
    auto q = netprobe::metrics::parseEventQuery(P{{"type", "port_scan,syn_flood"}, {"limit", "5"}, {"since", "2026-11-28T18:00:00Z"}});
    ASSERT_TRUE(q) << q.error();
    EXPECT_EQ(q->types.size(), 2u);
    EXPECT_EQ(q->limit, 5u);
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(q->since->time_since_epoch()).count(), 1795888800);
    auto u = netprobe::metrics::parseEventQuery(P{{"since", "1795888800.5"}});
    ASSERT_TRUE(u);
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(u->since->time_since_epoch()).count(),
              1795888800500);
    auto off = netprobe::metrics::parseEventQuery(P{{"since", "2026-11-28T19:00:00+01:00"}});
    ASSERT_TRUE(off);
    EXPECT_EQ(*off->since, *q->since);
    for (const P& bad : {P{{"type", "nope"}}, P{{"since", "yesterday"}}, P{{"since", "2026-11-28T18:00:00"}},
                         P{{"limit", "0"}}, P{{"limit", "99999999"}}, P{{"limit", "5x"}}, P{{"colour", "red"}},
                         // beyond what a 64-bit nanosecond clock holds; a short offset (fuzzer finds)
                         P{{"since", "9787-12-03T09:00:00Z"}}, P{{"since", "1e30"}}, P{{"since", "nan"}},
                         P{{"since", "0270-12-03T09:00:00Z"}}, P{{"since", "2026-11-28T18:00:00+1:2"}}})
        EXPECT_FALSE(netprobe::metrics::parseEventQuery(bad)) << bad[0].first << "=" << bad[0].second;
}

TEST(SecurityApi, EventJsonFields) {
    ns::SecurityEvent e;
    e.id = 7;
    e.type = EventType::PortScan;
    e.severity = ns::Severity::High;
    e.src = ip("198.18.0.1");
    e.dst = ip("198.18.0.2");
    e.targets = {ip("198.18.0.2")};
    e.detected_at = ns::WallTime(std::chrono::milliseconds(1795888800123));
    e.first_seen = e.last_seen = e.detected_at;
    e.evidence["scan_type"] = std::string("syn");
    e.evidence["ports_probed"] = std::int64_t{1000};
    auto j = nlohmann::json::parse(netprobe::metrics::eventJson(e));
    EXPECT_EQ(j["type"], "port_scan");
    EXPECT_EQ(j["severity"], "high");
    EXPECT_EQ(j["src_ip"], "198.18.0.1");
    EXPECT_EQ(j["dst_ip"], "198.18.0.2");
    EXPECT_EQ(j["detected_at"], "2026-11-28T18:00:00.123Z");
    EXPECT_TRUE(j["ended_at"].is_null());
    EXPECT_TRUE(j["active"].get<bool>());
    EXPECT_EQ(j["evidence"]["scan_type"], "syn");
    EXPECT_EQ(j["evidence"]["ports_probed"], 1000);
}
