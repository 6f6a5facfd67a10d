// The Bottlenecks stage on hand-built snapshots and views with injected time: each kind
// raises its finding from the window's counter deltas, a healthy baseline raises none,
// findings are ranked by score, and counters leave with the window. Plus its export
// (/api/v1/bottlenecks query and document, metrics), the counter window, and the
// sources' parsers (qdisc dump, conntrack statistics).
#include <gtest/gtest.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstdio>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/bottlenecks.hpp>
#include <netprobe/analysis/qos.hpp>
#include <netprobe/analysis/talkers.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/collector/sources.hpp>
#include <netprobe/ebpf/interfaces.hpp>
#include <netprobe/metrics/bottlenecks.hpp>
#include <netprobe/util/ip.hpp>

#include "promtool_check.hpp"

namespace {

using namespace netprobe;
using analysis::BottleneckKind;
using analysis::BottleneckOptions;
using analysis::Bottlenecks;
using analysis::Views;
using std::chrono::seconds;

struct Clock {
    std::chrono::steady_clock::time_point t0{std::chrono::hours(1000)};
    collector::MonoTime mono(double s) const {
        return t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
    }
};

// What one collection read, cumulative as the kernel keeps it.
struct World {
    std::map<std::string, std::uint64_t> netstat;
    std::uint64_t eth_in = 0, eth_out = 0;      // bytes of the monitored interface eth0
    std::uint32_t eth_speed = 0;                // Mb/s (0: unknown)
    ebpf::QdiscInfo root{.ifindex = 2, .handle = 0x10000, .parent = 0xffffffffu, .kind = "tbf", .stats = true};
    bool conntrack = true;
    std::uint64_t ct_count = 100, ct_max = 1000, ct_drop = 0;
};

std::shared_ptr<collector::Snapshot> snap(const Clock& clk, double at, const World& w, double links_at = -1) {
    auto s = std::make_shared<collector::Snapshot>();
    s->mono = clk.mono(at);
    s->taken_at = collector::WallTime(std::chrono::seconds(1'700'000'000)) +
                  std::chrono::duration_cast<collector::WallTime::duration>(std::chrono::duration<double>(at));
    s->interval_seconds = 1;
    collector::InterfaceStats i;
    i.name = "eth0";
    i.index = 2;
    i.ingress_bytes = w.eth_in;
    i.egress_bytes = w.eth_out;
    s->interfaces.push_back(i);
    s->netstat = std::make_shared<const std::map<std::string, std::uint64_t>>(w.netstat);
    auto l = std::make_shared<collector::LinkSample>();
    l->read_at = clk.mono(links_at < 0 ? at : links_at);
    l->refreshes = 1;
    collector::LinkState ls;
    ls.name = "eth0";
    ls.index = 2;
    ls.speed_mbps = w.eth_speed;
    ls.qdiscs.push_back(w.root);
    ebpf::QdiscInfo clsact{.ifindex = 2, .handle = 0xffff0000u, .parent = 0xfffffff1u, .kind = "clsact", .stats = true};
    clsact.drops = 1'000'000;  // not a root qdisc: never counted
    ls.qdiscs.push_back(clsact);
    l->links.push_back(ls);
    s->links = l;
    auto c = std::make_shared<collector::ConntrackSample>();
    c->available = w.conntrack;
    if (w.conntrack) {
        c->count = w.ct_count;
        c->max = w.ct_max;
        c->drop = w.ct_drop;
    }
    s->conntrack = c;
    return s;
}

Views run(Bottlenecks& b, const collector::Snapshot& s, Views v = {}) {
    b.run(s, v);
    return v;
}

std::vector<const analysis::BottleneckFinding*> of(const Views& v, BottleneckKind k) {
    std::vector<const analysis::BottleneckFinding*> out;
    for (const auto& f : v.bottlenecks->findings)
        if (f.kind == k) out.push_back(&f);
    return out;
}

double evidence(const analysis::BottleneckFinding& f, const std::string& name) {
    for (const auto& e : f.evidence)
        if (e.name == name) return e.value;
    ADD_FAILURE() << "no evidence " << name << " in " << f.title;
    return -1;
}

util::Addr16 ip(const char* s) { return *util::parseAddr(s); }

// A topology view with one conversation per (client, server, port, figures) at slot now.
std::shared_ptr<analysis::TopologyView> topology(double now_s) {
    auto t = std::make_shared<analysis::TopologyView>();
    t->slot = seconds(10);
    t->slots = 90;
    t->now_slot = static_cast<std::int64_t>(now_s) / 10;
    return t;
}
void addConversation(analysis::TopologyView& t, const char* client, const char* server, std::uint16_t port,
                     std::uint64_t bytes, std::uint64_t packets, std::uint32_t retrans_client,
                     std::uint32_t retrans_server, std::uint64_t srtt_us = 0, std::uint8_t proto = 6) {
    auto c = std::make_shared<analysis::Conversation>();
    c->client.ip = ip(client);
    c->server.ip = ip(server);
    c->port = port;
    c->ip_proto = proto;
    analysis::TopologySlot sl;
    sl.id = t.now_slot;
    sl.bytes_out = bytes / 2;
    sl.bytes_in = bytes - bytes / 2;
    sl.packets_out = packets / 2;
    sl.packets_in = packets - packets / 2;
    sl.retrans_client = retrans_client;
    sl.retrans_server = retrans_server;
    sl.retransmits = retrans_client + retrans_server;
    if (srtt_us) {
        sl.rtt_us_sum = srtt_us;
        sl.rtt_samples = 1;
    }
    c->slots.push_back(sl);
    t.conversations.push_back(c);
}

TEST(CounterWindow, IncreaseOverTheWindowResetsAndExpiry) {
    Clock clk;
    analysis::CounterWindow w(seconds(60));
    w.add("a", clk.mono(0), 100);
    EXPECT_EQ(w.increase("a").delta, 0u);  // a baseline only
    w.add("a", clk.mono(10), 150);
    w.add("a", clk.mono(10), 999);  // no new reading: ignored
    w.add("a", clk.mono(20), 30);   // reset: counts afresh
    auto i = w.increase("a");
    EXPECT_EQ(i.delta, 80u);
    EXPECT_DOUBLE_EQ(i.seconds, 20);
    EXPECT_EQ(i.readings, 2u);
    w.add("a", clk.mono(65), 40);
    w.expire(clk.mono(70));  // the reading at 10 leaves (60 s old)
    i = w.increase("a");
    EXPECT_EQ(i.delta, 40u);
    EXPECT_DOUBLE_EQ(i.seconds, 55);  // from the reading at 10 (the base) to 65
    w.expire(clk.mono(125));  // nothing read for 60 s: forgotten
    EXPECT_EQ(w.keys(), 0u);
}

TEST(BottlenecksStage, AHealthyBaselineHasNoFindings) {
    Clock clk;
    Bottlenecks b;
    World w;
    w.eth_speed = 1000;
    w.netstat = {{"TcpExt.ListenOverflows", 7}, {"TcpExt.TCPRcvQDrop", 3}, {"Udp.RcvbufErrors", 2}};
    w.root.drops = 5000;  // before the agent: not in the window
    Views v;
    for (int t = 0; t <= 30; ++t) {
        w.eth_in += 1'000'000;  // 8 Mb/s of 1000
        w.eth_out += 2'000'000;
        w.netstat["TcpExt.ListenOverflows"] += t % 10 == 0 ? 1 : 0;  // 3 in 30 s: below 5
        w.root.drops += 1;
        w.root.packets += 1000;
        w.root.backlog_bytes = 1500;
        auto t_s = topology(t);
        addConversation(*t_s, "198.18.0.1", "198.18.0.2", 80, 10'000, 100, 0, 0, 200);
        v = {};
        v.topology = t_s;
        v = run(b, *snap(clk, t, w), v);
    }
    ASSERT_TRUE(v.bottlenecks);
    EXPECT_TRUE(v.bottlenecks->findings.empty()) << v.bottlenecks->findings.front().title;
    ASSERT_EQ(v.bottlenecks->interfaces.size(), 1u);
    EXPECT_NEAR(v.bottlenecks->interfaces[0].egress_ratio, 0.016, 1e-9);
    EXPECT_NEAR(v.bottlenecks->interfaces[0].ingress_bps, 8e6, 1e-3);
    EXPECT_DOUBLE_EQ(v.bottlenecks->window_seconds, 30);
    EXPECT_TRUE(v.bottlenecks->conntrack);
    EXPECT_EQ(v.bottlenecks->conntrack_entries, 100u);
}

TEST(BottlenecksStage, EveryKindTriggers) {
    Clock clk;
    Bottlenecks b;
    World w;
    w.eth_speed = 100;  // 100 Mb/s = 12.5 MB/s
    w.ct_max = 1000;
    w.netstat = {{"TcpExt.ListenOverflows", 0}, {"TcpExt.ListenDrops", 0}, {"TcpExt.TCPRcvQDrop", 0},
                 {"Udp.RcvbufErrors", 0}, {"TcpExt.PruneCalled", 0}};
    Views v;
    for (int t = 0; t <= 10; ++t) {
        if (t > 0) {
            w.eth_out += 12'000'000;  // 96 Mb/s: 96%
            w.eth_in += 1'000'000;
            w.netstat["TcpExt.ListenOverflows"] += 4;
            w.netstat["TcpExt.ListenDrops"] += 4;
            w.netstat["TcpExt.TCPRcvQDrop"] += 3;
            w.netstat["TcpExt.PruneCalled"] += 1;
            w.netstat["Udp.RcvbufErrors"] += 200;
            w.root.drops += 50;
            w.root.packets += 1000;
            w.root.overlimits += 70;
        }
        w.root.backlog_bytes = 120'000;
        w.root.backlog_packets = 80;
        w.ct_count = 800 + static_cast<std::uint64_t>(t);
        v = {};
        auto t_s = topology(t);
        // retransmits 5% of 2000 packets; an RTT of 80 ms; a heavy edge
        addConversation(*t_s, "198.18.0.1", "198.18.0.2", 443, 50'000'000, 2000, 60, 40);
        addConversation(*t_s, "198.18.0.3", "198.18.0.4", 5432, 20'000, 100, 0, 0, 80'000);
        v.topology = t_s;
        auto q = std::make_shared<analysis::QosView>();
        q->now_ns = clk.mono(t).time_since_epoch().count();
        auto qc = std::make_shared<analysis::QosConversation>();
        qc->client = ip("198.18.0.1");
        qc->server = ip("198.18.0.2");
        qc->port = 443;
        for (int k = 0; k < 6; ++k)
            qc->samples.push_back({static_cast<std::uint64_t>(q->now_ns) - static_cast<std::uint64_t>(k) * 1'000'000'000u,
                                   static_cast<std::uint32_t>(300'000 + k), 1000, 0});
        q->conversations.push_back(qc);
        v.qos = q;
        auto tv = std::make_shared<analysis::TalkerView>();
        analysis::TalkerRow r;
        r.interface = "eth0";
        r.traffic.key.local = ip("198.18.0.1");
        r.traffic.key.peer = ip("198.18.0.2");
        r.traffic.key.direction = NP_DIR_EGRESS;
        r.traffic.key.server_port = 443;
        r.traffic.bytes = 12'000'000;
        tv->top.push_back(r);
        v.talkers = tv;
        v = run(b, *snap(clk, t, w), v);
    }
    const auto& bv = *v.bottlenecks;

    auto util = of(v, BottleneckKind::InterfaceUtilisation);
    ASSERT_EQ(util.size(), 1u);
    EXPECT_EQ(util[0]->subject, "eth0");
    EXPECT_EQ(util[0]->severity, "critical");
    EXPECT_NEAR(evidence(*util[0], "egress_utilisation"), 0.96, 1e-9);
    EXPECT_DOUBLE_EQ(evidence(*util[0], "talker 198.18.0.1 -> 198.18.0.2 port 443"), 12'000'000);

    auto drops = of(v, BottleneckKind::QdiscDrops);
    ASSERT_EQ(drops.size(), 1u);
    EXPECT_EQ(evidence(*drops[0], "drops"), 500);
    EXPECT_EQ(evidence(*drops[0], "overlimits"), 700);
    EXPECT_NEAR(evidence(*drops[0], "drop_ratio"), 500.0 / 10500.0, 1e-12);
    EXPECT_EQ(drops[0]->severity, "critical");  // 4.8% >= 1%
    EXPECT_NE(drops[0]->fix[1].find("tc qdisc change dev eth0 root tbf"), std::string::npos);

    auto backlog = of(v, BottleneckKind::QdiscBacklog);
    ASSERT_EQ(backlog.size(), 1u);
    EXPECT_EQ(backlog[0]->severity, "warning");
    EXPECT_EQ(evidence(*backlog[0], "mean_backlog_bytes"), 120'000);
    EXPECT_NEAR(evidence(*backlog[0], "queue_delay_at_link_speed"), 120'000 * 8 / 100e6, 1e-12);

    auto listen = of(v, BottleneckKind::ListenOverflow);
    ASSERT_EQ(listen.size(), 1u);
    EXPECT_EQ(evidence(*listen[0], "overflows"), 40);
    EXPECT_EQ(evidence(*listen[0], "listen_drops"), 40);
    EXPECT_DOUBLE_EQ(evidence(*listen[0], "rate"), 4);
    EXPECT_EQ(listen[0]->fix[1], "sysctl -w net.core.somaxconn=4096");

    auto ct = of(v, BottleneckKind::ConntrackUsage);
    ASSERT_EQ(ct.size(), 1u);
    EXPECT_EQ(ct[0]->severity, "warning");  // 81% of the max
    EXPECT_EQ(evidence(*ct[0], "entries"), 810);
    EXPECT_EQ(evidence(*ct[0], "max"), 1000);
    EXPECT_EQ(ct[0]->fix[0].rfind("sysctl -w net.netfilter.nf_conntrack_max=2000", 0), 0u);

    auto rt = of(v, BottleneckKind::RetransmitHotspot);
    ASSERT_EQ(rt.size(), 1u);
    EXPECT_EQ(rt[0]->subject, "198.18.0.1 -> 198.18.0.2:443");
    EXPECT_EQ(evidence(*rt[0], "retransmits_client"), 60);
    EXPECT_EQ(rt[0]->query, "netprobe_edge_loss_ratio{client=\"198.18.0.1\",server=\"198.18.0.2\",port=\"443\"}");

    auto rtt = of(v, BottleneckKind::RttHotspot);
    ASSERT_EQ(rtt.size(), 2u);  // handshakes (301 ms, critical) and a socket's srtt (80 ms)
    EXPECT_EQ(rtt[0]->subject, "198.18.0.1 -> 198.18.0.2:443");
    EXPECT_EQ(rtt[0]->severity, "critical");
    EXPECT_NEAR(evidence(*rtt[0], "server_side_p50"), 0.3000025, 1e-9);
    EXPECT_EQ(rtt[1]->subject, "198.18.0.3 -> 198.18.0.4:5432");
    EXPECT_NEAR(evidence(*rtt[1], "srtt_mean"), 0.08, 1e-9);

    auto sock = of(v, BottleneckKind::SocketBufferPressure);
    ASSERT_EQ(sock.size(), 2u);
    std::map<std::string, const analysis::BottleneckFinding*> by;
    for (auto* f : sock) by[f->subject] = f;
    EXPECT_EQ(evidence(*by.at("tcp"), "drops"), 30);
    EXPECT_EQ(evidence(*by.at("tcp"), "TcpExtPruneCalled"), 10);  // context, not counted
    EXPECT_EQ(by.at("udp")->severity, "critical");                // 2000 >= 1000
    EXPECT_EQ(evidence(*by.at("udp"), "UdpRcvbufErrors"), 2000);

    auto top = of(v, BottleneckKind::TopTalker);
    ASSERT_EQ(top.size(), 1u);  // the other edge is below 1 MiB
    EXPECT_EQ(top[0]->severity, "info");
    EXPECT_EQ(evidence(*top[0], "bytes"), 50'000'000);

    // Ranking: by score (critical > warning > info), so the info finding is last.
    for (std::size_t i = 1; i < bv.findings.size(); ++i) EXPECT_GE(bv.findings[i - 1].score, bv.findings[i].score);
    EXPECT_EQ(bv.findings.back().kind, BottleneckKind::TopTalker);
    EXPECT_EQ(bv.findings.front().severity, "critical");
}

TEST(BottlenecksStage, RankingWithinASeverityFollowsHowFarPastTheThreshold) {
    Clock clk;
    Bottlenecks b;
    World w;
    Views v;
    w.netstat = {{"TcpExt.ListenOverflows", 0}, {"Udp.RcvbufErrors", 0}};
    v = run(b, *snap(clk, 0, w));
    w.netstat["TcpExt.ListenOverflows"] = 50;  // 10x its threshold (5)
    w.netstat["Udp.RcvbufErrors"] = 20;        // 2x its threshold (10)
    w.ct_count = 760;                          // 76% against 75%: barely
    v = run(b, *snap(clk, 1, w));
    ASSERT_EQ(v.bottlenecks->findings.size(), 3u);
    EXPECT_EQ(v.bottlenecks->findings[0].kind, BottleneckKind::ListenOverflow);
    EXPECT_EQ(v.bottlenecks->findings[1].kind, BottleneckKind::SocketBufferPressure);
    EXPECT_EQ(v.bottlenecks->findings[2].kind, BottleneckKind::ConntrackUsage);
    EXPECT_NEAR(v.bottlenecks->findings[0].score, 100 + 99 * 0.9, 1e-9);
    // A conntrack drop makes it critical, ahead of everything.
    w.ct_drop = 3;
    v = run(b, *snap(clk, 2, w));
    EXPECT_EQ(v.bottlenecks->findings[0].kind, BottleneckKind::ConntrackUsage);
    EXPECT_EQ(v.bottlenecks->findings[0].severity, "critical");
    EXPECT_EQ(evidence(v.bottlenecks->findings[0], "drops"), 3);
}

TEST(BottlenecksStage, FindingsLeaveWithTheWindowAndKeepTheirFirstTime) {
    Clock clk;
    BottleneckOptions o;
    o.window = seconds(30);
    Bottlenecks b(o);
    World w;
    w.netstat = {{"TcpExt.ListenOverflows", 0}};
    run(b, *snap(clk, 0, w));
    w.netstat["TcpExt.ListenOverflows"] = 20;
    auto v = run(b, *snap(clk, 5, w));
    ASSERT_EQ(of(v, BottleneckKind::ListenOverflow).size(), 1u);
    const auto since = of(v, BottleneckKind::ListenOverflow)[0]->since;
    v = run(b, *snap(clk, 20, w));
    ASSERT_EQ(of(v, BottleneckKind::ListenOverflow).size(), 1u);
    EXPECT_EQ(of(v, BottleneckKind::ListenOverflow)[0]->since, since);
    EXPECT_DOUBLE_EQ(v.bottlenecks->window_seconds, 20);
    v = run(b, *snap(clk, 34, w));  // the interval ending at 5 is 29 s old: still in
    ASSERT_EQ(of(v, BottleneckKind::ListenOverflow).size(), 1u);
    EXPECT_DOUBLE_EQ(v.bottlenecks->window_seconds, 30);
    v = run(b, *snap(clk, 35, w));  // 30 s old: gone
    EXPECT_TRUE(of(v, BottleneckKind::ListenOverflow).empty());
}

TEST(BottlenecksStage, QdiscCountersAreReadAtTheLinkTasksInstantOnly) {
    Clock clk;
    Bottlenecks b;
    World w;
    run(b, *snap(clk, 0, w, 0));
    w.root.drops = 400;  // the task read it at 3 s; three collections see the same reading
    for (int t = 1; t <= 4; ++t) {
        auto v = run(b, *snap(clk, t, w, t < 3 ? 0 : 3));
        auto d = of(v, BottleneckKind::QdiscDrops);
        if (t < 3) {
            EXPECT_TRUE(d.empty());
            continue;
        }
        ASSERT_EQ(d.size(), 1u);
        EXPECT_EQ(evidence(*d[0], "drops"), 400);  // once, not per collection
        EXPECT_DOUBLE_EQ(evidence(*d[0], "seconds"), 3);
    }
    // The backlog is the mean of the task's readings in the window.
    w.root.backlog_bytes = 500'000;
    auto v = run(b, *snap(clk, 5, w, 5));
    EXPECT_EQ(of(v, BottleneckKind::QdiscBacklog).size(), 1u);  // readings at 0, 3 (empty) and 5: mean 166 KiB
    EXPECT_NEAR(evidence(*of(v, BottleneckKind::QdiscBacklog)[0], "mean_backlog_bytes"), 500'000 / 3.0, 1e-6);
}

TEST(BottlenecksStage, NoConntrackTableNoSpeedNoFinding) {
    Clock clk;
    Bottlenecks b;
    World w;
    w.conntrack = false;
    w.eth_speed = 0;
    w.eth_out = 0;
    run(b, *snap(clk, 0, w));
    w.eth_out = 100'000'000'000;
    auto v = run(b, *snap(clk, 1, w));
    EXPECT_FALSE(v.bottlenecks->conntrack);
    EXPECT_TRUE(v.bottlenecks->interfaces.empty());
    EXPECT_TRUE(v.bottlenecks->findings.empty());
}

TEST(BottlenecksExport, QueryDocumentAndMetrics) {
    auto q = metrics::parseBottleneckQuery({{"limit", "2"}, {"kind", "listen_overflow,conntrack_usage"}});
    ASSERT_TRUE(q);
    EXPECT_EQ(q->limit, 2u);
    EXPECT_TRUE(q->kinds[static_cast<std::size_t>(BottleneckKind::ListenOverflow)]);
    EXPECT_FALSE(q->kinds[static_cast<std::size_t>(BottleneckKind::TopTalker)]);
    auto bad = metrics::parseBottleneckQuery({{"window", "5m"}});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("\"window\""), std::string::npos);
    bad = metrics::parseBottleneckQuery({{"kind", "listen_overflow,nope"}});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("\"kind\""), std::string::npos);
    EXPECT_NE(bad.error().find("nope"), std::string::npos);
    EXPECT_FALSE(metrics::parseBottleneckQuery({{"limit", "0"}}));
    EXPECT_FALSE(metrics::parseBottleneckQuery({{"severity", "high"}}));

    Clock clk;
    Bottlenecks b;
    World w;
    w.eth_speed = 1000;
    w.netstat = {{"TcpExt.ListenOverflows", 0}, {"Udp.RcvbufErrors", 0}};
    run(b, *snap(clk, 0, w));
    w.netstat = {{"TcpExt.ListenOverflows", 50}, {"Udp.RcvbufErrors", 20}};
    w.ct_count = 950;
    w.eth_out = 1'000'000;
    auto v = run(b, *snap(clk, 1, w));
    auto j = nlohmann::json::parse(metrics::bottlenecksJson(v.bottlenecks.get(), *q));
    EXPECT_TRUE(j["enabled"]);
    ASSERT_EQ(j["findings"].size(), 2u);
    EXPECT_EQ(j["findings"][0]["kind"], "conntrack_usage");  // critical (95%)
    EXPECT_EQ(j["findings"][0]["rank"], 1);
    EXPECT_EQ(j["findings"][1]["kind"], "listen_overflow");
    EXPECT_EQ(j["findings"][1]["evidence"][0]["name"], "overflows");
    EXPECT_EQ(j["findings"][1]["evidence"][0]["unit"], "connections");
    EXPECT_FALSE(j["truncated"]);
    EXPECT_EQ(j["conntrack"]["entries"], 950);
    EXPECT_EQ(j["interfaces"][0]["speed_mbps"], 1000);
    metrics::BottleneckQuery one;
    one.limit = 1;
    j = nlohmann::json::parse(metrics::bottlenecksJson(v.bottlenecks.get(), one));
    EXPECT_EQ(j["findings"].size(), 1u);
    EXPECT_TRUE(j["truncated"]);
    one.min_severity = 0;
    one.limit = 100;
    j = nlohmann::json::parse(metrics::bottlenecksJson(v.bottlenecks.get(), one));
    EXPECT_EQ(j["count"], 1);  // critical only
    EXPECT_EQ(nlohmann::json::parse(metrics::bottlenecksJson(nullptr, one))["enabled"], false);

    const auto m = metrics::renderBottleneckMetrics(*v.bottlenecks);
    EXPECT_NE(m.find("netprobe_bottleneck_findings{kind=\"conntrack_usage\",severity=\"critical\"} 1"), std::string::npos);
    EXPECT_NE(m.find("netprobe_bottleneck_findings{kind=\"top_talker\",severity=\"info\"} 0"), std::string::npos);
    EXPECT_NE(m.find("netprobe_interface_utilisation_ratio{interface=\"eth0\",direction=\"egress\"} 0.008"),
              std::string::npos);
    EXPECT_NE(m.find("netprobe_conntrack_entries_limit 1000"), std::string::npos);
    std::size_t series = 0;
    for (std::size_t p = 0; (p = m.find("\nnetprobe_bottleneck_findings{", p)) != std::string::npos; ++p) ++series;
    EXPECT_EQ(series, analysis::kBottleneckKinds * 3);
    auto r = netprobe::testing::promtoolCheckMetrics(m);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "");
}

TEST(BottleneckSources, ConntrackStatSumsTheCpus) {
    collector::ConntrackSample s;
    collector::parseConntrackStat(
        "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  "
        "expect_new expect_create expect_delete search_restart\n"
        "00000010  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 0000000a 00000002 "
        "00000000  00000000 00000000 00000000 00000000\n"
        "00000010  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000010 00000000 "
        "00000000  00000000 00000000 00000000 00000000\n"
        "garbage\n",
        s);
    EXPECT_EQ(s.drop, 26u);
    EXPECT_EQ(s.early_drop, 2u);
    EXPECT_EQ(s.insert_failed, 1u);
    collector::ConntrackSample empty;
    collector::parseConntrackStat("", empty);
    EXPECT_EQ(empty.drop, 0u);
}

TEST(BottleneckSources, NominalSpeeds) {
    EXPECT_TRUE(collector::nominalSpeed("veth"));
    EXPECT_TRUE(collector::nominalSpeed("tun"));
    EXPECT_FALSE(collector::nominalSpeed(""));
    EXPECT_FALSE(collector::nominalSpeed("bond"));
}

// dumpQdiscs against iproute2's reading of the same dump (tc -s -j qdisc show): every
// qdisc with its kind, handle and parent; counters that cannot go backwards between the
// two reads (ours first).
TEST(BottleneckSources, QdiscDumpMatchesTc) {
    auto ours = ebpf::dumpQdiscs();
    ASSERT_TRUE(ours) << ours.error().what();
    FILE* p = ::popen("tc -s -j qdisc show 2>/dev/null", "r");
    ASSERT_NE(p, nullptr);
    std::string text;
    char chunk[4096];
    for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, p)) > 0;) text.append(chunk, n);
    if (::pclose(p) != 0) GTEST_SKIP() << "tc -j qdisc show failed";
    const auto j = nlohmann::json::parse(text);
    auto links = ebpf::dumpLinks();
    ASSERT_TRUE(links);
    std::map<std::uint32_t, std::string> names;
    for (const auto& l : *links) names[l.index] = l.name;
    std::map<std::pair<std::string, std::string>, const ebpf::QdiscInfo*> by;  // (dev, handle) -> ours
    for (const auto& q : *ours) {
        char h[16];
        std::snprintf(h, sizeof h, "%x:", q.handle >> 16);
        by[{names[q.ifindex], h}] = &q;
    }
    std::size_t matched = 0;
    for (const auto& t : j) {
        auto it = by.find({t["dev"], t["handle"]});
        ASSERT_NE(it, by.end()) << t.dump();
        const auto& q = *it->second;
        EXPECT_EQ(q.kind, t["kind"].get<std::string>());
        EXPECT_EQ(q.root(), t.contains("root") && t["root"].get<bool>()) << t.dump();
        if (t.contains("bytes")) {
            EXPECT_LE(q.bytes, t["bytes"].get<std::uint64_t>());
            EXPECT_LE(q.packets, t["packets"].get<std::uint64_t>());
            EXPECT_LE(q.drops, t["drops"].get<std::uint64_t>());
            EXPECT_TRUE(q.stats);
        }
        ++matched;
    }
    EXPECT_EQ(matched, ours->size());
    // Every prefix of a real answer decodes without reading past it.
    std::vector<std::byte> fake(NLMSG_SPACE(sizeof(tcmsg)) + 64);
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(fake.size());
    h.nlmsg_type = RTM_NEWQDISC;
    std::memcpy(fake.data(), &h, sizeof h);
    for (std::size_t n = 0; n <= fake.size(); ++n)
        EXPECT_LE(ebpf::decodeQdiscMessages(std::span<const std::byte>(fake.data(), n)).size(), 1u);
}

}  // namespace
