// The topology stage (conversations oriented by sockets or ports, counted once across
// interfaces and connection ends, windowed, bounded) and its export (grouping, filters,
// Grafana's node-graph frames), on snapshots built here with injected time.
#include <gtest/gtest.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/metrics/topology.hpp>
#include <netprobe/util/ip.hpp>

namespace {

using namespace netprobe;
using analysis::Topology;
using analysis::TopologyOptions;
using analysis::Views;

util::Addr16 ip(const char* s) { return *util::parseAddr(s); }

collector::FlowSample sample(const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport,
                             std::uint64_t bytes, std::uint64_t packets, std::uint32_t ifindex = 1,
                             std::uint8_t proto = 6) {
    collector::FlowSample f;
    const auto a = ip(src), b = ip(dst);
    std::memcpy(&f.key.src_ip, a.data(), 16);
    std::memcpy(&f.key.dst_ip, b.data(), 16);
    f.key.src_port = sport;
    f.key.dst_port = dport;
    f.key.proto = proto;
    f.key.family = 4;
    f.key.ifindex = ifindex;
    f.bytes = bytes;
    f.packets = packets;
    return f;
}

ebpf::Connection conn(const char* local, std::uint16_t lport, const char* remote, std::uint16_t rport, bool active) {
    ebpf::Connection c;
    c.src_ip = ip(local);
    c.dst_ip = ip(remote);
    c.src_port = lport;
    c.dst_port = rport;
    c.family = 4;
    c.origin = active ? NP_CONN_ACTIVE : NP_CONN_PASSIVE;
    c.comm = active ? "curl" : "nginx";
    return c;
}

// Snapshots at t0 + seconds (injected monotonic time).
struct Clock {
    std::chrono::steady_clock::time_point t0{std::chrono::hours(1000)};
    std::shared_ptr<collector::Snapshot> at(double seconds) const {
        auto s = std::make_shared<collector::Snapshot>();
        s->mono = t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
        return s;
    }
};

nlohmann::json api(const Views& v, std::vector<std::pair<std::string, std::string>> params = {}) {
    auto q = metrics::parseTopologyQuery(params);
    EXPECT_TRUE(q) << (q ? "" : q.error());
    return nlohmann::json::parse(metrics::topologyJson(v.topology.get(), nullptr, *q));
}

const nlohmann::json* edge(const nlohmann::json& j, const std::string& src, const std::string& dst) {
    for (const auto& e : j["edges"])
        if (e["source"] == src && e["target"] == dst) return &e;
    return nullptr;
}

TEST(Topology, PortHeuristicOrientsAndInterfacesCountOnce) {
    Topology t;
    Clock clk;
    auto s = clk.at(0);
    // a routed path: each packet seen at two interfaces (the datapath source marks the
    // entries at interface 2 as not their 5-tuple's place: FlowDeltaTracker.MarksPlaces)
    for (std::uint32_t ifx : {1u, 2u}) {
        s->flows.push_back(sample("198.18.0.1", 40000, "198.18.1.1", 80, 1000, 10, ifx));
        s->flows.push_back(sample("198.18.1.1", 80, "198.18.0.1", 40000, 50000, 40, ifx));
        s->flows.back().primary = s->flows.end()[-2].primary = ifx == 1;
    }
    Views v;
    t.run(*s, v);
    const auto j = api(v);
    ASSERT_EQ(j["edges"].size(), 1u) << j.dump();
    const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e) << j.dump();
    EXPECT_EQ((*e)["port"], 80);
    EXPECT_EQ((*e)["bytes_out"], 1000);
    EXPECT_EQ((*e)["bytes_in"], 50000);
    EXPECT_EQ((*e)["packets_out"], 10);
    EXPECT_EQ((*e)["packets_in"], 40);
    EXPECT_EQ(j["nodes"].size(), 2u);
}

// The two interfaces' kernel entries are read at slightly different moments: packets
// the first entry counted in one collection the second may count in the next.
TEST(Topology, APacketOnTwoInterfacesCountsOnceAcrossCollections) {
    Topology t;
    Clock clk;
    Views v;
    auto s = clk.at(0);
    s->flows = {sample("198.18.0.1", 40000, "198.18.1.1", 80, 1000, 10, 1),
                sample("198.18.0.1", 40000, "198.18.1.1", 80, 800, 8, 2)};
    s->flows[1].primary = false;  // (the entry at interface 1 lives on: it stays the place)
    t.run(*s, v);
    s = clk.at(1);
    s->flows = {sample("198.18.0.1", 40000, "198.18.1.1", 80, 200, 2, 2)};
    s->flows[0].primary = false;
    t.run(*s, v);
    const auto j = api(v);
    const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["packets_out"], 10);
    EXPECT_EQ((*e)["bytes_out"], 1000);
}

// A client port below the ephemeral range (1024) alone would make the lower port the
// server's; a port of the same client in the range (40000) shows which end serves. In
// either order of the samples: one conversation to port 5201.
TEST(Topology, PortsOrderDecidesLastWhateverTheOrderOfSamples) {
    for (const bool low_first : {true, false}) {
        Topology t;
        Clock clk;
        auto s = clk.at(0);
        auto low = sample("198.18.0.1", 1024, "198.18.1.1", 5201, 100, 1);
        auto eph = sample("198.18.0.1", 40000, "198.18.1.1", 5201, 200, 2);
        s->flows = low_first ? std::vector{low, eph} : std::vector{eph, low};
        Views v;
        t.run(*s, v);
        const auto j = api(v);
        ASSERT_EQ(j["edges"].size(), 1u) << j.dump();
        const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
        ASSERT_TRUE(e) << j.dump();
        EXPECT_EQ((*e)["port"], 5201);
        EXPECT_EQ((*e)["bytes_out"], 300);
    }
}

// Under pressure the kernel aggregates a SYN flood's attempts (source port 0) and their
// refusals (destination port 0), created in the same tick: the end with port 0 is the
// client (the ports' order would make port 0 the server's).
TEST(Topology, KernelAggregatesOfAttemptsAndRefusalsAreTheClientsSide) {
    Topology t;
    Clock clk;
    auto s = clk.at(0);
    s->flows = {sample("198.18.1.1", 80, "198.18.0.1", 0, 540, 10), sample("198.18.0.1", 0, "198.18.1.1", 80, 600, 10)};
    Views v;
    t.run(*s, v);
    const auto j = api(v);
    ASSERT_EQ(j["edges"].size(), 1u) << j.dump();
    const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e) << j.dump();
    EXPECT_EQ((*e)["port"], 80);
    EXPECT_EQ((*e)["bytes_out"], 600);
}

// Without a local socket: the direction whose first packet came first is the client's
// (its SYN); equal times fall back to the ports.
TEST(Topology, FirstPacketOrientsWhenNoSocketIsLocal) {
    Topology t;
    Clock clk;
    auto s = clk.at(0);
    auto a = sample("198.18.0.1", 33000, "198.18.1.1", 50051, 100, 2);
    auto b = sample("198.18.1.1", 50051, "198.18.0.1", 33000, 900, 2);
    a.first_seen_ns = 1000;
    b.first_seen_ns = 1004;
    s->flows = {b, a};
    Views v;
    t.run(*s, v);
    const auto j = api(v);
    const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e) << j.dump();
    EXPECT_EQ((*e)["port"], 50051);
    EXPECT_EQ((*e)["bytes_out"], 100);
    EXPECT_EQ((*e)["bytes_in"], 900);
}

// The port heuristic got it wrong (both ports ephemeral, the client's lower); an L7
// request (whose parser knows the client) moves the figures to the right orientation.
TEST(Topology, ADefinitiveOrientationMovesAGuessedConversation) {
    Topology t;
    Clock clk;
    auto s = clk.at(0);
    s->flows = {sample("198.18.0.1", 33000, "198.18.1.1", 50051, 100, 2),
                sample("198.18.1.1", 50051, "198.18.0.1", 33000, 900, 3)};
    Views v;
    t.run(*s, v);
    ASSERT_TRUE(edge(api(v), "198.18.1.1", "198.18.0.1"));  // the guess: 198.18.1.1 called :33000
    s = clk.at(1);
    auto l7 = std::make_shared<collector::L7Sample>();
    l7::Request r;
    r.protocol = "grpc";
    r.side = l7::Side::Client;
    r.client = ip("198.18.0.1");
    r.server = ip("198.18.1.1");
    r.client_port = 33000;
    r.server_port = 50051;
    l7->requests = {r};
    s->l7 = l7;
    s->flows = {sample("198.18.0.1", 33000, "198.18.1.1", 50051, 10, 1)};
    t.run(*s, v);
    const auto j = api(v);
    ASSERT_EQ(j["edges"].size(), 1u) << j.dump();
    const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e) << j.dump();
    EXPECT_EQ((*e)["port"], 50051);
    EXPECT_EQ((*e)["bytes_out"], 110);
    EXPECT_EQ((*e)["bytes_in"], 900);
    EXPECT_EQ((*e)["requests"], 1);
}

TEST(Topology, SocketsOrientAgainstThePortHeuristic) {
    // A client that connected from port 80 to a server listening on 50000.
    Topology t;
    Clock clk;
    auto s = clk.at(0);
    auto st = std::make_shared<ebpf::StackStats>();
    st->connections = {conn("198.18.0.1", 80, "198.18.1.1", 50000, true)};
    s->stack = st;
    s->flows = {sample("198.18.0.1", 80, "198.18.1.1", 50000, 300, 3),
                sample("198.18.1.1", 50000, "198.18.0.1", 80, 700, 5)};
    Views v;
    t.run(*s, v);
    const auto j = api(v, {{"group_by", "process"}});
    const auto* e = edge(j, "curl@198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e) << j.dump();
    EXPECT_EQ((*e)["port"], 50000);
    EXPECT_EQ((*e)["bytes_out"], 300);
    EXPECT_EQ((*e)["connections_opened"], 1);
}

TEST(Topology, AConnectionWithBothEndsOnTheNodeCountsOnce) {
    Topology t;
    Clock clk;
    auto st = std::make_shared<ebpf::StackStats>();
    auto a = conn("198.18.0.1", 41000, "198.18.1.1", 443, true);
    auto p = conn("198.18.1.1", 443, "198.18.0.1", 41000, false);
    a.retransmits = 2;
    p.retransmits = 3;
    a.srtt_us = 1000;
    p.srtt_us = 3000;
    st->connections = {a, p};
    auto s = clk.at(0);
    s->stack = st;
    Views v;
    t.run(*s, v);
    // the next collection: the same connection, retransmits grew on the client's end
    auto st2 = std::make_shared<ebpf::StackStats>(*st);
    st2->connections[0].retransmits = 5;
    auto s2 = clk.at(1);
    s2->stack = st2;
    t.run(*s2, v);
    const auto j = api(v);
    const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e) << j.dump();
    EXPECT_EQ((*e)["connections_opened"], 1);
    EXPECT_EQ((*e)["retransmits"], 5 + 3);
    EXPECT_DOUBLE_EQ((*e)["rtt_ms"].get<double>(), 2.0);  // each end's estimate, both collections
    EXPECT_EQ(j["edges"].size(), 1u) << j.dump();
}

// Drops by 5-tuple and reason (the stack monitor's cumulative table): the deltas go to
// the conversation by direction; a tuple re-created after eviction counts afresh; drops of
// tuples without a conversation go nowhere.
TEST(Topology, DropsAttributedToTheConversationByDirectionAndReason) {
    Topology t;
    Clock clk;
    auto drop = [](const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport, std::uint32_t reason,
                   std::uint64_t n) {
        ebpf::DropFlow d;
        d.src = ip(src);
        d.dst = ip(dst);
        d.sport = sport;
        d.dport = dport;
        d.proto = 6;
        d.reason = reason;
        d.packets = n;
        return d;
    };
    auto st = std::make_shared<ebpf::StackStats>();
    st->connections = {conn("198.18.0.1", 40000, "198.18.1.1", 80, true)};
    st->drop_flows = {drop("198.18.1.1", 80, "198.18.0.1", 40000, 9, 4),   // server -> client
                      drop("198.18.0.1", 40000, "198.18.1.1", 80, 9, 1),   // client -> server
                      drop("198.18.9.9", 1, "198.18.8.8", 2, 9, 100)};     // no conversation
    auto s = clk.at(0);
    s->stack = st;
    s->flows = {sample("198.18.0.1", 40000, "198.18.1.1", 80, 300, 3)};
    Views v;
    t.run(*s, v);
    // the next read: 3 more server -> client, 1 more client -> server, a new reason
    auto st2 = std::make_shared<ebpf::StackStats>(*st);
    st2->drop_flows = {drop("198.18.1.1", 80, "198.18.0.1", 40000, 9, 7),
                       drop("198.18.0.1", 40000, "198.18.1.1", 80, 9, 2),
                       drop("198.18.1.1", 80, "198.18.0.1", 40000, 77, 1)};
    auto s2 = clk.at(1);
    s2->stack = st2;
    t.run(*s2, v);
    // then the server -> client entry was evicted and came back with 2: a count below the
    // last one is a new entry, all of it new
    auto st3 = std::make_shared<ebpf::StackStats>(*st2);
    st3->drop_flows = {drop("198.18.1.1", 80, "198.18.0.1", 40000, 9, 2)};
    auto s3 = clk.at(2);
    s3->stack = st3;
    t.run(*s3, v);
    ASSERT_TRUE(v.topology);
    const auto convs = analysis::tcpConversations(*v.topology);
    auto it = convs.find({ip("198.18.0.1"), ip("198.18.1.1"), 80});
    ASSERT_NE(it, convs.end());
    const auto tot = analysis::totals(*it->second, *v.topology, 100);
    EXPECT_EQ(tot.drops_to_client, 4u + 3u + 1u + 2u);
    EXPECT_EQ(tot.drops_to_server, 1u + 1u);
    EXPECT_EQ(tot.drop_reasons.at(9), 4u + 1u + 3u + 1u + 2u);
    EXPECT_EQ(tot.drop_reasons.at(77), 1u);
    EXPECT_EQ(tot.drop_reasons.size(), 2u);
    EXPECT_EQ(convs.size(), 1u);  // the unmatched tuple made no conversation
}

TEST(Topology, FailedConnectionsCountOnceAndRecordsLeaving) {
    Topology t;
    Clock clk;
    Views v;
    auto c = conn("198.18.0.1", 41001, "198.18.1.1", 9, true);
    c.failed = true;
    c.open = false;
    for (int i = 0; i < 3; ++i) {
        auto st = std::make_shared<ebpf::StackStats>();
        st->connections = {c};
        auto s = clk.at(i);
        s->stack = st;
        t.run(*s, v);
    }
    const auto j = api(v);
    const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e) << j.dump();
    EXPECT_EQ((*e)["connections_opened"], 1);
    EXPECT_EQ((*e)["connections_failed"], 1);
}

TEST(Topology, WindowsSlotsAndForgetting) {
    TopologyOptions o;
    o.slot = std::chrono::seconds(10);
    o.slots = 6;  // one minute
    Topology t(o);
    Clock clk;
    Views v;
    for (int i = 0; i < 6; ++i) {
        auto s = clk.at(10.0 * i);
        s->flows = {sample("198.18.0.1", 40000, "198.18.1.1", 80, 100, 1)};
        t.run(*s, v);
    }
    auto out = [](const Views& vs, const char* window) {
        const auto j = api(vs, {{"window", window}});
        const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
        return e ? (*e)["bytes_out"].get<int>() : -1;
    };
    EXPECT_EQ(out(v, "1m"), 600);
    EXPECT_EQ(out(v, "20s"), 200);
    EXPECT_EQ(out(v, "1h"), 600);  // capped at the window kept
    const auto first = v.topology;  // a published view never changes
    auto s = clk.at(60);
    t.run(*s, v);
    EXPECT_EQ(out(v, "1m"), 500);
    Views old;
    old.topology = first;
    EXPECT_EQ(out(old, "1m"), 600);
    // idle for the whole window: forgotten
    s = clk.at(120);
    t.run(*s, v);
    EXPECT_TRUE(v.topology->conversations.empty());
}

TEST(Topology, ConversationsAreBudgeted) {
    TopologyOptions o;
    o.max_conversations = 3;
    Topology t(o);
    Clock clk;
    auto s = clk.at(0);
    for (std::uint16_t p = 1; p <= 5; ++p) s->flows.push_back(sample("198.18.0.1", 40000, "198.18.1.1", p, 10, 1));
    Views v;
    t.run(*s, v);
    EXPECT_EQ(v.topology->conversations.size(), 3u);
    EXPECT_EQ(v.topology->overflow, 2u);
    EXPECT_EQ(api(v)["overflow"], 2);
    const std::string m = metrics::renderTopologyMetrics(*v.topology);
    EXPECT_NE(m.find("netprobe_topology_conversations_dropped_total 2\n"), std::string::npos) << m;
    EXPECT_NE(m.find("netprobe_topology_conversations 3\n"), std::string::npos) << m;
}

TEST(Topology, RequestsFromTheServersEndWhenBothEndsCaptured) {
    Topology t;
    Clock clk;
    auto s = clk.at(0);
    auto l7 = std::make_shared<collector::L7Sample>();
    for (auto side : {l7::Side::Client, l7::Side::Server})
        for (int i = 0; i < 10; ++i) {
            l7::Request r;
            r.protocol = "http";
            r.side = side;
            r.client = ip("198.18.0.1");
            r.server = ip("198.18.1.1");
            r.client_port = 40000;
            r.server_port = 80;
            r.status = i < 2 ? 503 : 200;
            r.duration_seconds = side == l7::Side::Server ? 0.004 : 0.006;
            l7->requests.push_back(r);
        }
    s->l7 = l7;
    Views v;
    t.run(*s, v);
    const auto j = api(v);
    const auto* e = edge(j, "198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e) << j.dump();
    EXPECT_EQ((*e)["protocol"], "http");
    EXPECT_EQ((*e)["requests"], 10);
    EXPECT_EQ((*e)["errors"], 2);
    EXPECT_DOUBLE_EQ((*e)["error_rate"].get<double>(), 0.2);
    EXPECT_GT((*e)["p50_seconds"].get<double>(), 0.0025);  // within the server's (2.5, 5] ms bucket
    EXPECT_LE((*e)["p50_seconds"].get<double>(), 0.005);
    EXPECT_EQ(api(v, {{"protocol", "http"}})["edges"].size(), 1u);
    EXPECT_EQ(api(v, {{"protocol", "grpc"}})["edges"].size(), 0u);
}

// A run's requests go into one copy of each conversation end's figures; a view published
// before keeps the figures it had (it shares the slot with the state until the next run).
TEST(Topology, RequestsOfALaterRunLeaveAPublishedViewAsItWas) {
    Topology t;
    Clock clk;
    auto batch = [](int n, int errors) {
        auto l7 = std::make_shared<collector::L7Sample>();
        for (int i = 0; i < n; ++i) {
            l7::Request r;
            r.protocol = "http";
            r.side = l7::Side::Server;
            r.client = ip("198.18.0.1");
            r.server = ip("198.18.1.1");
            r.client_port = static_cast<std::uint16_t>(40000 + i % 3);
            r.server_port = 80;
            r.status = i < errors ? 500 : 200;
            r.duration_seconds = 0.004;
            l7->requests.push_back(r);
        }
        return l7;
    };
    auto s0 = clk.at(0);
    s0->l7 = batch(10, 1);
    Views v0;
    t.run(*s0, v0);
    auto s1 = clk.at(0.5);  // the same slot
    s1->l7 = batch(5, 2);
    Views v1;
    t.run(*s1, v1);
    const auto j0 = api(v0), j1 = api(v1);
    const auto* e0 = edge(j0, "198.18.0.1", "198.18.1.1");
    const auto* e1 = edge(j1, "198.18.0.1", "198.18.1.1");
    ASSERT_TRUE(e0 && e1) << j0.dump() << j1.dump();
    EXPECT_EQ((*e0)["requests"], 10);
    EXPECT_EQ((*e0)["errors"], 1);
    EXPECT_EQ((*e1)["requests"], 15);
    EXPECT_EQ((*e1)["errors"], 3);
}

TEST(Topology, NodeGraphFramesAndQueryErrors) {
    Topology t;
    Clock clk;
    auto s = clk.at(0);
    s->flows = {sample("198.18.0.1", 40000, "198.18.1.1", 80, 1000, 10)};
    Views v;
    t.run(*s, v);
    const auto j = api(v, {{"format", "nodegraph"}});
    ASSERT_EQ(j["nodes"].size(), 2u);
    for (const auto& n : j["nodes"])
        for (const char* f : {"id", "title", "subTitle", "mainStat", "arc__ok", "arc__errors"}) EXPECT_TRUE(n.contains(f)) << f;
    ASSERT_EQ(j["edges"].size(), 1u);
    EXPECT_EQ(j["edges"][0]["source"], "198.18.0.1");
    EXPECT_EQ(j["edges"][0]["secondaryStat"], "80/tcp");
    for (auto bad : std::vector<std::pair<std::string, std::string>>{
             {"window", "0s"}, {"window", "x"}, {"group_by", "rack"}, {"format", "dot"}, {"limit", "0"}, {"zone", "a"}}) {
        auto q = metrics::parseTopologyQuery({bad});
        ASSERT_FALSE(q) << bad.first;
        EXPECT_NE(q.error().find(bad.first), std::string::npos) << q.error();
    }
    EXPECT_EQ(nlohmann::json::parse(metrics::topologyJson(nullptr, nullptr, {}))["enabled"], false);
}

TEST(Topology, LatencyQuantileInterpolatesWithinBuckets) {
    std::array<std::uint64_t, analysis::kTopologyLatencyBuckets.size() + 1> h{};
    EXPECT_EQ(analysis::latencyQuantile(h, 0.5), 0);
    h[5] = 100;  // (0.025, 0.05]
    EXPECT_NEAR(analysis::latencyQuantile(h, 0.5), 0.0375, 1e-9);
    EXPECT_NEAR(analysis::latencyQuantile(h, 1.0), 0.05, 1e-9);
    h[h.size() - 1] = 100;  // beyond the last bound
    EXPECT_EQ(analysis::latencyQuantile(h, 0.99), 10);
}

}  // namespace

namespace {

// Two groups that talk among themselves, joined by one thin edge: two segments, named
// after their busiest members; namespaced nodes keep their namespace's segment.
TEST(TopologySegments, CommunitiesAndNamespaces) {
    analysis::SegmentInput in;
    in.nodes = {"a1", "a2", "a3", "b1", "b2", "b3", "k1", "k2"};
    in.ns = {"", "", "", "", "", "", "shop", "shop"};
    auto e = [&](std::size_t a, std::size_t b, double w) { in.edges.push_back({a, b, w}); };
    e(0, 1, 1000), e(1, 2, 900), e(0, 2, 800);  // a-group
    e(3, 4, 1000), e(4, 5, 700), e(3, 5, 600);  // b-group
    e(2, 3, 5);                                 // the thin link
    e(6, 0, 50000);                             // a namespaced client of a1
    e(7, 6, 10);
    const auto seg = analysis::segmentGraph(in);
    ASSERT_EQ(seg.size(), 8u);
    EXPECT_EQ(seg[0], seg[1]);
    EXPECT_EQ(seg[1], seg[2]);
    EXPECT_EQ(seg[3], seg[4]);
    EXPECT_EQ(seg[4], seg[5]);
    EXPECT_NE(seg[0], seg[3]);
    EXPECT_EQ(seg[0], "cluster:a1");  // the busiest: a1 carries its namespaced client's 50000 too
    EXPECT_EQ(seg[6], "ns:shop");
    EXPECT_EQ(seg[7], "ns:shop");
}

TEST(TopologySegments, GroupBySegmentAndBoundaryEdges) {
    Topology t;
    Clock clk;
    auto s = clk.at(0);
    // 198.18.0.1/.2 talk a lot; 198.18.5.1/.2 talk a lot; one small call between the pairs
    s->flows = {sample("198.18.0.1", 40000, "198.18.0.2", 80, 100000, 100),
                sample("198.18.5.1", 40000, "198.18.5.2", 80, 100000, 100),
                sample("198.18.0.2", 40001, "198.18.5.2", 443, 100, 1)};
    Views v;
    t.run(*s, v);
    const auto hosts = api(v);
    for (const auto& e : hosts["edges"])
        EXPECT_EQ(e["boundary"].get<bool>(), e["port"] == 443) << e.dump();
    const auto segs = api(v, {{"group_by", "segment"}});
    ASSERT_EQ(segs["nodes"].size(), 2u) << segs.dump();
    ASSERT_EQ(segs["edges"].size(), 1u) << segs.dump();
    EXPECT_EQ(segs["edges"][0]["port"], 443);
    EXPECT_EQ(segs["edges"][0]["bytes_out"], 100);
    for (const auto& n : segs["nodes"]) EXPECT_EQ(n["kind"], "segment");
}

TEST(TopologyGroups, ParseAndLongestPrefix) {
    auto g = analysis::parseCidrGroup("corp=10.0.0.0/8,fd00::/8");
    ASSERT_TRUE(g) << g.error();
    EXPECT_EQ(g->name, "corp");
    ASSERT_EQ(g->prefixes.size(), 2u);
    auto dc = analysis::parseCidrGroup("dc-1=10.20.0.0/16");
    auto all = analysis::parseCidrGroup("internet=0.0.0.0/0");
    ASSERT_TRUE(dc && all);
    const analysis::CidrGroups groups = {*g, *dc, *all};
    EXPECT_EQ(analysis::groupOf(groups, ip("10.20.3.4"))->name, "dc-1");  // the longest prefix
    EXPECT_EQ(analysis::groupOf(groups, ip("10.9.9.9"))->name, "corp");
    EXPECT_EQ(analysis::groupOf(groups, ip("fd00::1"))->name, "corp");
    EXPECT_EQ(analysis::groupOf(groups, ip("203.0.113.9"))->name, "internet");
    EXPECT_EQ(analysis::groupOf(groups, ip("2001:db8::1")), nullptr);  // /0 of IPv4 only
    for (const char* bad : {"corp", "=10.0.0.0/8", "corp=", "corp=10.0.0.0", "corp=10.0.0.0/33", "corp=10.0.0/8",
                            "c rp=10.0.0.0/8", "corp=10.0.0.0/8,", "corp=fd00::/129", "corp=10.0.0.0/x"})
        EXPECT_FALSE(analysis::parseCidrGroup(bad)) << bad;
}

// Remote ends without a workload or DNS name: a configured group's node, else (in the
// workload groupings) "external" when the address is in none of this node's subnets.
TEST(TopologyGroups, RemoteEndsGroupedOrExternal) {
    TopologyOptions o;
    auto corp = analysis::parseCidrGroup("corp=10.0.0.0/8");
    ASSERT_TRUE(corp);
    o.groups = std::make_shared<const analysis::CidrGroups>(analysis::CidrGroups{*corp});
    auto local = analysis::localSubnet(ip("198.18.0.1"), 24);
    ASSERT_TRUE(local);
    auto subnets = std::make_shared<const analysis::LocalSubnets>(analysis::LocalSubnets{*local});
    o.subnets = [subnets] { return subnets; };
    Topology t(o);
    Clock clk;
    auto s = clk.at(0);
    s->flows = {sample("198.18.0.1", 40000, "10.1.2.3", 443, 1000, 2),       // to the corp group
                sample("198.18.0.1", 40001, "10.4.5.6", 443, 500, 1),        // the same group: one node
                sample("198.18.0.1", 40002, "203.0.113.9", 443, 300, 1),     // outside every subnet: external
                sample("198.18.0.1", 40003, "198.18.0.7", 5432, 200, 1)};    // a local subnet: a host
    Views v;
    t.run(*s, v);
    const auto hosts = api(v);
    ASSERT_NE(edge(hosts, "198.18.0.1", "group:corp"), nullptr) << hosts.dump();
    EXPECT_EQ((*edge(hosts, "198.18.0.1", "group:corp"))["bytes_out"], 1500);
    EXPECT_NE(edge(hosts, "198.18.0.1", "203.0.113.9"), nullptr) << hosts.dump();  // host grouping keeps addresses
    const auto w = api(v, {{"group_by", "workload"}});
    EXPECT_NE(edge(w, "198.18.0.1", "group:corp"), nullptr) << w.dump();
    ASSERT_NE(edge(w, "198.18.0.1", "external"), nullptr) << w.dump();
    EXPECT_EQ((*edge(w, "198.18.0.1", "external"))["bytes_out"], 300);
    EXPECT_NE(edge(w, "198.18.0.1", "198.18.0.7"), nullptr) << w.dump();
    for (const auto& n : w["nodes"]) {
        if (n["id"] == "group:corp") {
            EXPECT_EQ(n["kind"], "group");
            EXPECT_EQ(n["ips"].size(), 2u);
        }
        if (n["id"] == "external") {
            EXPECT_EQ(n["kind"], "external");
        }
    }
}

// group_by=service: the server end of a conversation to a Kubernetes Service is the service
// (two pods of one workload behind it: one node, their traffic summed); the calling ends
// stay workloads; an end without a service falls back as in the workload grouping.
class ServiceLabels final : public analysis::Attribution {
public:
    analysis::FlowLabels flow(const flow_key& k) const override {
        analysis::FlowLabels l;
        auto end = [](const std::uint8_t* a) {
            util::Addr16 x{};
            std::memcpy(x.data(), a, 16);
            return util::formatAddr(x);
        };
        const std::string src = end(reinterpret_cast<const std::uint8_t*>(&k.src_ip));
        const std::string dst = end(reinterpret_cast<const std::uint8_t*>(&k.dst_ip));
        auto pod = [](const std::string& ip, std::string& ns, std::string& pod, std::string& workload) {
            if (ip == "198.18.0.1") ns = "shop", pod = "web-a", workload = "web";
            if (ip == "198.18.0.2") ns = "shop", pod = "web-b", workload = "web";
            if (ip == "198.18.1.1") ns = "shop", pod = "cart-a", workload = "cart";
            if (ip == "198.18.1.2") ns = "shop", pod = "cart-b", workload = "cart";
            if (ip == "198.18.2.1") ns = "shop", pod = "db-0", workload = "db";
        };
        pod(src, l.src_namespace, l.src_pod, l.src_workload);
        pod(dst, l.dst_namespace, l.dst_pod, l.dst_workload);
        if (dst == "198.18.1.1" || dst == "198.18.1.2") l.dst_service = "cart";
        return l;
    }
    std::vector<analysis::LocalPod> localPods() const override { return {}; }
    bool synced() const override { return true; }
};

TEST(Topology, GroupByServiceMergesTheServersBehindAService) {
    Topology t({}, std::make_shared<ServiceLabels>());
    Clock clk;
    auto s = clk.at(0);
    s->flows = {sample("198.18.0.1", 40000, "198.18.1.1", 8080, 1000, 2),   // web-a -> cart-a (service cart)
                sample("198.18.0.2", 40001, "198.18.1.2", 8080, 500, 1),    // web-b -> cart-b (service cart)
                sample("198.18.1.1", 40002, "198.18.2.1", 5432, 300, 1),    // cart-a -> db-0 (no service)
                sample("198.18.0.1", 40003, "203.0.113.9", 443, 200, 1)};   // web-a -> an address
    Views v;
    t.run(*s, v);
    const auto j = api(v, {{"group_by", "service"}});
    EXPECT_EQ(j["group_by"], "service");
    const auto* web_cart = edge(j, "shop/web", "svc:shop/cart");
    ASSERT_NE(web_cart, nullptr) << j.dump();
    EXPECT_EQ((*web_cart)["bytes_out"], 1500);
    EXPECT_EQ((*web_cart)["conversations"], 2);
    // the service's pods call out as their workload; the database has no service
    ASSERT_NE(edge(j, "shop/cart", "shop/db"), nullptr) << j.dump();
    EXPECT_EQ((*edge(j, "shop/cart", "shop/db"))["bytes_out"], 300);
    EXPECT_NE(edge(j, "shop/web", "203.0.113.9"), nullptr) << j.dump();
    EXPECT_EQ(j["edges"].size(), 3u) << j.dump();
    bool seen = false;
    for (const auto& n : j["nodes"]) {
        if (n["id"] != "svc:shop/cart") continue;
        seen = true;
        EXPECT_EQ(n["kind"], "service");
        EXPECT_EQ(n["name"], "shop/cart");
        EXPECT_EQ(n["namespace"], "shop");
        EXPECT_EQ(n["service"], "cart");
        EXPECT_FALSE(n.contains("workload")) << n.dump();
        EXPECT_EQ(n["ips"].size(), 2u) << n.dump();
    }
    EXPECT_TRUE(seen) << j.dump();
    // the workload grouping of the same view: cart is the workload at both ends
    const auto w = api(v, {{"group_by", "workload"}});
    EXPECT_NE(edge(w, "shop/web", "shop/cart"), nullptr) << w.dump();
    EXPECT_EQ(edge(w, "shop/web", "svc:shop/cart"), nullptr) << w.dump();
    // not from ClickHouse (its records carry no service)
    auto bad = metrics::parseTopologyQuery({{"group_by", "service"}, {"source", "clickhouse"}});
    EXPECT_FALSE(bad);
}

// Without Kubernetes a container is the workload: the socket's cgroup names it (looked up
// once per connection), group_by=container and workload show it; a process outside any
// container stays a host.
class ContainerCgroups final : public analysis::Attribution {
public:
    mutable int lookups = 0;
    analysis::FlowLabels flow(const flow_key&) const override { return {}; }
    std::vector<analysis::LocalPod> localPods() const override { return {}; }
    bool synced() const override { return true; }
    bool kubernetes() const override { return false; }
    std::optional<analysis::ContainerLabels> container(std::uint64_t id) const override {
        ++lookups;
        analysis::ContainerLabels l;
        if (id == 11) l.container_id = std::string(64, 'a');
        if (id == 22) l.container_id = std::string(64, 'b');
        return l;  // 33: a cgroup that is no container's
    }
};

TEST(Topology, ContainersAreTheNodesWithoutKubernetes) {
    auto cg = std::make_shared<ContainerCgroups>();
    Topology t({}, cg);
    Clock clk;
    Views v;
    for (int run = 0; run < 3; ++run) {
        auto s = clk.at(run);
        auto st = std::make_shared<ebpf::StackStats>();
        auto c1 = conn("198.18.0.1", 40000, "198.18.1.1", 8080, true);
        c1.cgroup_id = 11;
        auto c2 = conn("198.18.1.1", 8080, "198.18.0.1", 40000, false);
        c2.cgroup_id = 22;
        auto c3 = conn("198.18.0.9", 40001, "198.18.1.1", 8080, true);
        c3.cgroup_id = 33;
        st->connections = {c1, c2, c3};
        s->stack = st;
        if (run == 0)
            s->flows = {sample("198.18.0.1", 40000, "198.18.1.1", 8080, 1000, 2),
                        sample("198.18.0.9", 40001, "198.18.1.1", 8080, 100, 1)};
        t.run(*s, v);
    }
    EXPECT_EQ(cg->lookups, 3);  // one per connection, not per collection
    for (const char* group : {"container", "workload"}) {
        const auto j = api(v, {{"group_by", group}});
        const auto* e = edge(j, "ctr:aaaaaaaaaaaa", "ctr:bbbbbbbbbbbb");
        ASSERT_NE(e, nullptr) << group << " " << j.dump();
        EXPECT_EQ((*e)["bytes_out"], 1000);
        // no container: the host (and the server end of that connection, whose socket no
        // record showed, stays its address)
        ASSERT_NE(edge(j, "198.18.0.9", "198.18.1.1"), nullptr) << j.dump();
        for (const auto& n : j["nodes"])
            if (n["id"] == "ctr:aaaaaaaaaaaa") {
                EXPECT_EQ(n["kind"], "container");
                EXPECT_EQ(n["container"], "aaaaaaaaaaaa");
                EXPECT_EQ(n["ips"], nlohmann::json({"198.18.0.1"}));
            }
    }
    // the host grouping ignores containers
    EXPECT_NE(edge(api(v, {{"group_by", "host"}}), "198.18.0.1", "198.18.1.1"), nullptr);
    EXPECT_FALSE(metrics::parseTopologyQuery({{"group_by", "container"}, {"source", "clickhouse"}}));
}

}  // namespace
