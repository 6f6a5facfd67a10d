// The per-edge counters for Prometheus (analysis/edge_counters.hpp) and the cluster
// topology answer built from Prometheus' figures (metrics/cluster_topology.hpp).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/edge_counters.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/history/prometheus.hpp>
#include <netprobe/metrics/cluster_topology.hpp>
#include <netprobe/metrics/topology.hpp>
#include <netprobe/util/ip.hpp>

namespace {

using namespace netprobe;
using analysis::Conversation;
using analysis::TopologySlot;

util::Addr16 ip(const char* s) { return *util::parseAddr(s); }

std::shared_ptr<const Conversation> conv(const char* c, const char* s, std::uint16_t port,
                                         std::vector<TopologySlot> slots, std::uint8_t proto = 17) {
    auto x = std::make_shared<Conversation>();
    x->client.ip = ip(c);
    x->server.ip = ip(s);
    x->port = port;
    x->ip_proto = proto;
    x->slots = std::move(slots);
    return x;
}

TopologySlot slot(std::int64_t id, std::uint64_t out, std::uint64_t in) {
    TopologySlot s;
    s.id = id;
    s.bytes_out = out;
    s.bytes_in = in;
    s.packets_out = out / 100;
    s.packets_in = in / 100;
    return s;
}

analysis::TopologyView view(std::vector<std::shared_ptr<const Conversation>> cs) {
    analysis::TopologyView v;
    v.conversations = std::move(cs);
    return v;
}

const analysis::EdgeCounts* find(const analysis::EdgeCounterView& v, const std::string& src, const std::string& dst,
                                 std::uint16_t port) {
    for (const auto& [k, c] : v.edges)
        if (k.source == src && k.target == dst && k.port == port) return &c;
    return nullptr;
}

using Clock = std::chrono::steady_clock;

// Every edge established at its first growth (the tests of counting, not of admission).
analysis::EdgeCounterOptions immediate() {
    analysis::EdgeCounterOptions o;
    o.min_updates = 1;
    o.min_span = std::chrono::seconds(0);
    return o;
}

TEST(EdgeCounters, CountsGrowthOnceAcrossViews) {
    analysis::EdgeCounters ec(immediate());
    const auto t0 = Clock::now();
    auto c1 = conv("10.0.0.1", "10.0.0.2", 53, {slot(1, 1000, 200)});
    ec.update(view({c1}), t0);
    auto e = find(*ec.latest(), "10.0.0.1", "10.0.0.2", 53);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->bytes_to_server, 1000u);
    EXPECT_EQ(e->bytes_to_client, 200u);
    // the same conversation object again (nothing moved): nothing new
    ec.update(view({c1}), t0 + std::chrono::seconds(1));
    EXPECT_EQ(find(*ec.latest(), "10.0.0.1", "10.0.0.2", 53)->bytes_to_server, 1000u);
    // its slot grew and a new one began
    auto c2 = conv("10.0.0.1", "10.0.0.2", 53, {slot(1, 1500, 300), slot(2, 100, 0)});
    ec.update(view({c2}), t0 + std::chrono::seconds(2));
    e = find(*ec.latest(), "10.0.0.1", "10.0.0.2", 53);
    EXPECT_EQ(e->bytes_to_server, 1600u);
    EXPECT_EQ(e->bytes_to_client, 300u);
    EXPECT_EQ(e->packets_to_server, 16u);
    // old slots dropped from the window: the counter stays
    auto c3 = conv("10.0.0.1", "10.0.0.2", 53, {slot(2, 150, 0)});
    ec.update(view({c3}), t0 + std::chrono::seconds(3));
    EXPECT_EQ(find(*ec.latest(), "10.0.0.1", "10.0.0.2", 53)->bytes_to_server, 1650u);
    // the conversation forgotten: the edge keeps its total until forget_after
    ec.update(view({}), t0 + std::chrono::seconds(4));
    EXPECT_EQ(find(*ec.latest(), "10.0.0.1", "10.0.0.2", 53)->bytes_to_server, 1650u);
    ec.update(view({}), t0 + std::chrono::seconds(1000));
    EXPECT_EQ(find(*ec.latest(), "10.0.0.1", "10.0.0.2", 53), nullptr);
}

TEST(EdgeCounters, BudgetSendsTheRestToOtherAndEveryCounterIsMonotonic) {
    analysis::EdgeCounterOptions o = immediate();
    o.series = 1;
    analysis::EdgeCounters ec(o);
    const auto t0 = Clock::now();
    auto a1 = conv("10.0.0.1", "10.0.0.9", 80, {slot(1, 5000, 0)}, 6);
    auto b1 = conv("10.0.0.2", "10.0.0.9", 80, {slot(1, 100, 0)}, 6);
    ec.update(view({a1, b1}), t0);
    auto v = ec.latest();
    ASSERT_EQ(v->edges.size(), 1u);
    EXPECT_EQ(v->edges[0].first.source, "10.0.0.1");
    EXPECT_EQ(v->other.bytes_to_server, 100u);
    // b becomes far busier: it takes the series; a's later growth goes to other
    auto a2 = conv("10.0.0.1", "10.0.0.9", 80, {slot(1, 5010, 0)}, 6);
    auto b2 = conv("10.0.0.2", "10.0.0.9", 80, {slot(1, 100100, 0)}, 6);
    ec.update(view({a2, b2}), t0 + std::chrono::seconds(1));
    v = ec.latest();
    ASSERT_EQ(v->edges.size(), 1u);
    EXPECT_EQ(v->edges[0].first.source, "10.0.0.2");
    EXPECT_EQ(v->edges[0].second.bytes_to_server, 100000u);  // counted on its series from the moment it has one
    EXPECT_EQ(v->other.bytes_to_server, 110u);              // b's first 100, a's last 10
    // everything seen is in the series and other
    EXPECT_EQ(5000u + v->edges[0].second.bytes_to_server + v->other.bytes_to_server, 5010u + 100100u);
}

TEST(EdgeCounters, ACorrectedOrientationIsNotCountedTwice) {
    analysis::EdgeCounters ec(immediate());
    const auto t0 = Clock::now();
    // guessed: 10.0.0.2:40000 is the client of 10.0.0.1:5000 ...
    ec.update(view({conv("10.0.0.2", "10.0.0.1", 5000, {slot(1, 300, 700)}, 6)}), t0);
    // ... a socket says the other way round: the figures move, swapped
    auto right = conv("10.0.0.1", "10.0.0.2", 40000, {slot(1, 700, 300)}, 6);
    ec.update(view({right}), t0 + std::chrono::seconds(1));
    auto v = ec.latest();
    EXPECT_EQ(find(*v, "10.0.0.1", "10.0.0.2", 40000), nullptr);  // nothing new on the corrected edge yet
    EXPECT_EQ(find(*v, "10.0.0.2", "10.0.0.1", 5000)->bytes_to_server, 300u);
    ec.update(view({conv("10.0.0.1", "10.0.0.2", 40000, {slot(1, 750, 300)}, 6)}), t0 + std::chrono::seconds(2));
    EXPECT_EQ(find(*ec.latest(), "10.0.0.1", "10.0.0.2", 40000)->bytes_to_server, 50u);
}

TEST(EdgeCounters, WorkloadsWhereKnownElseAddresses) {
    analysis::EdgeCounterOptions o = immediate();
    o.workloads = true;
    analysis::EdgeCounters ec(o);
    auto c = std::make_shared<Conversation>(*conv("10.1.0.5", "203.0.113.7", 443, {slot(1, 10, 20)}, 6));
    c->client.ns = "shop";
    c->client.workload = "cart";
    auto d = std::make_shared<Conversation>(*conv("10.1.0.6", "203.0.113.7", 443, {slot(1, 5, 5)}, 6));
    d->client.ns = "shop";
    d->client.workload = "cart";
    ec.update(view({c, d}), Clock::now());
    auto v = ec.latest();
    EXPECT_EQ(v->grain, "workload");
    ASSERT_EQ(v->edges.size(), 1u);
    EXPECT_EQ(v->edges[0].first.source, "shop/cart");
    EXPECT_EQ(v->edges[0].first.target, "203.0.113.7");
    EXPECT_EQ(v->edges[0].second.bytes_to_server, 15u);

    const auto text = metrics::renderEdgeCounterMetrics(*v);
    EXPECT_NE(text.find("netprobe_topology_edge_bytes_total{source=\"shop/cart\",target=\"203.0.113.7\",port=\"443\","
                        "transport=\"tcp\",direction=\"to_server\"} 15"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("netprobe_topology_edge_bytes_total{source=\"other\",target=\"other\",port=\"other\","
                        "transport=\"other\",direction=\"to_client\"} 0"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("netprobe_topology_edges{state=\"exported\"} 1"), std::string::npos) << text;
}

// A port scan (2000 edges, one probe each) creates no series: its edges wait unexported
// and their bytes reach `other` when they are forgotten; an edge that keeps growing gets
// its series at its third update with everything it carried before; a bulk transfer
// (64 KiB) at once.
TEST(EdgeCounters, OnlyEstablishedEdgesGetSeries) {
    analysis::EdgeCounters ec;  // defaults: 3 updates or 64 KiB
    const auto t0 = Clock::now();
    std::vector<std::shared_ptr<const Conversation>> scan;
    for (int p = 1; p <= 2000; ++p)
        scan.push_back(conv("10.0.0.66", "10.0.0.9", static_cast<std::uint16_t>(p), {slot(1, 60, 54)}, 6));
    auto real = [&](std::uint64_t b) { return conv("10.0.0.1", "10.0.0.9", 8080, {slot(1, b, b / 2)}, 6); };
    auto with = [&](std::shared_ptr<const Conversation> c) {
        auto v = scan;
        v.push_back(std::move(c));
        return v;
    };
    ec.update(view(with(real(100))), t0);
    auto v = ec.latest();
    EXPECT_TRUE(v->edges.empty());
    EXPECT_EQ(v->pending, 2001u);
    EXPECT_EQ(v->other.bytes_to_server, 0u);  // waiting, not lost
    ec.update(view(with(real(200))), t0 + std::chrono::seconds(1));
    EXPECT_TRUE(ec.latest()->edges.empty());
    ec.update(view(with(real(300))), t0 + std::chrono::seconds(2));
    v = ec.latest();
    ASSERT_EQ(v->edges.size(), 1u);  // the real edge, with all three growths
    EXPECT_EQ(v->edges[0].first.port, 8080);
    EXPECT_EQ(v->edges[0].second.bytes_to_server, 300u);
    EXPECT_EQ(v->edges[0].second.bytes_to_client, 150u);
    EXPECT_EQ(v->pending, 2000u);
    const auto text = metrics::renderEdgeCounterMetrics(*v);
    EXPECT_NE(text.find("netprobe_topology_edges{state=\"pending\"} 2000"), std::string::npos) << text;

    // 64 KiB in one update: established at once
    auto bulk = conv("10.0.0.2", "10.0.0.9", 9000, {slot(1, 70000, 100)}, 6);
    ec.update(view({real(300), bulk}), t0 + std::chrono::seconds(3));
    v = ec.latest();
    ASSERT_NE(find(*v, "10.0.0.2", "10.0.0.9", 9000), nullptr);
    EXPECT_EQ(find(*v, "10.0.0.2", "10.0.0.9", 9000)->bytes_to_server, 70000u);

    // the scan's edges forgotten: their bytes in other, counted once; the series stay
    ec.update(view({real(400), bulk}), t0 + std::chrono::seconds(950));
    v = ec.latest();
    EXPECT_EQ(v->pending, 0u);
    EXPECT_EQ(v->other.bytes_to_server, 2000u * 60u);
    EXPECT_EQ(v->other.bytes_to_client, 2000u * 54u);
    EXPECT_EQ(find(*v, "10.0.0.1", "10.0.0.9", 8080)->bytes_to_server, 400u);
}

TEST(ClusterTopology, QueryParametersForPrometheus) {
    auto q = metrics::parseTopologyQuery({{"source", "prometheus"}, {"group_by", "namespace"}});
    ASSERT_TRUE(q) << q.error();
    EXPECT_EQ(q->source, "prometheus");
    EXPECT_FALSE(metrics::parseTopologyQuery({{"source", "prometheus"}, {"group_by", "pod"}}));
    EXPECT_TRUE(metrics::parseTopologyQuery({{"source", "prometheus"}, {"group_by", "segment"}}));
    EXPECT_FALSE(metrics::parseTopologyQuery({{"source", "prometheus"}, {"group_by", "process"}}));
    EXPECT_TRUE(metrics::parseTopologyQuery({{"source", "prometheus"}, {"format", "nodegraph"}}));
    EXPECT_FALSE(metrics::parseTopologyQuery({{"source", "thanos"}}));
    EXPECT_TRUE(history::checkPrometheusUrl("https://prom.example:9090/prometheus"));
    EXPECT_FALSE(history::checkPrometheusUrl("prom:9090"));
    EXPECT_FALSE(history::checkPrometheusUrl("http://prom:9090/?a=b"));
    // one query, every figure tagged
    const auto expr = history::PrometheusTopology::edgesQuery(300);
    EXPECT_NE(expr.find("increase(netprobe_topology_edge_bytes_total{source!=\"other\"}[300s])"), std::string::npos);
    EXPECT_NE(expr.find("\"observed\""), std::string::npos);
}

TEST(ClusterTopology, AnswerFromPrometheusFigures) {
    std::vector<history::PromEdge> edges(3);
    edges[0] = {.source = "shop/web", .target = "shop/cart", .transport = "tcp", .port = 8080,
                .bytes_to_server = 3000.4, .bytes_to_client = 6000, .packets_to_server = 30, .packets_to_client = 40,
                .connections = 3, .requests = 100, .request_errors = 5, .observed_by = {"n1:8081", "n2:8081"}};
    edges[1] = {.source = "shop/web", .target = "db/pg", .transport = "tcp", .port = 5432, .bytes_to_server = 100,
                .observed_by = {"n1:8081"}};
    edges[2] = {.source = "shop/web", .target = "db/pg", .transport = "tcp", .port = 6432};  // no growth
    metrics::TopologyQuery q;
    q.source = "prometheus";
    q.window_seconds = 60;
    q.group_by = "workload";
    auto j = nlohmann::json::parse(metrics::prometheusTopologyJson(edges, q, "http://prom:9090"));
    EXPECT_EQ(j["source"], "prometheus");
    ASSERT_EQ(j["edges"].size(), 2u);
    EXPECT_EQ(j["edges"][0]["id"], "shop/web->shop/cart:8080/tcp");
    EXPECT_EQ(j["edges"][0]["bytes_out"], 3000);
    EXPECT_EQ(j["edges"][0]["bytes_per_second"], 9000.4 / 60);
    EXPECT_EQ(j["edges"][0]["error_rate"], 0.05);
    EXPECT_EQ(j["edges"][0]["observed_by"], nlohmann::json({"n1:8081", "n2:8081"}));
    EXPECT_EQ(j["nodes"].size(), 3u);
    // by namespace: shop -> shop, shop -> db
    q.group_by = "namespace";
    j = nlohmann::json::parse(metrics::prometheusTopologyJson(edges, q, "http://prom:9090"));
    ASSERT_EQ(j["edges"].size(), 2u);
    EXPECT_EQ(j["edges"][0]["source"], "ns:shop");
    EXPECT_EQ(j["edges"][1]["target"], "ns:db");
    // Node Graph frames
    q.format = "nodegraph";
    q.ns = "db";
    j = nlohmann::json::parse(metrics::prometheusTopologyJson(edges, q, "http://prom:9090"));
    ASSERT_EQ(j["edges"].size(), 1u);
    for (const auto* f : {"id", "source", "target", "mainStat", "secondaryStat"}) EXPECT_TRUE(j["edges"][0].contains(f));
    ASSERT_EQ(j["nodes"].size(), 2u);
    for (const auto* f : {"id", "title", "subTitle", "mainStat", "secondaryStat", "arc__ok", "arc__errors"})
        EXPECT_TRUE(j["nodes"][0].contains(f)) << f;
}

TEST(ClusterTopology, SegmentsFromNamespacesAndCommunities) {
    // shop's two workloads and db's one are their namespaces' segments; three hosts without
    // a namespace talk among themselves (a community) and one of them to shop/web.
    auto edge = [](std::string a, std::string b, std::uint16_t port, double bytes, std::string by) {
        history::PromEdge e;
        e.source = std::move(a), e.target = std::move(b), e.transport = "tcp", e.port = port;
        e.bytes_to_server = bytes, e.connections = 1, e.observed_by = {std::move(by)};
        return e;
    };
    std::vector<history::PromEdge> edges = {
        edge("shop/web", "shop/cart", 8080, 5000, "n1:8081"),  // within shop
        edge("shop/cart", "db/pg", 5432, 2000, "n1:8081"),
        edge("shop/web", "db/pg", 5432, 1000, "n2:8081"),
        edge("10.0.0.1", "10.0.0.2", 443, 9000, "n2:8081"),
        edge("10.0.0.2", "10.0.0.3", 443, 9000, "n2:8081"),
        edge("10.0.0.3", "shop/web", 8080, 10, "n3:8081"),
    };
    metrics::TopologyQuery q;
    q.source = "prometheus";
    q.window_seconds = 60;
    q.group_by = "workload";
    auto j = nlohmann::json::parse(metrics::prometheusTopologyJson(edges, q, "http://prom:9090"));
    std::map<std::string, std::string> seg;
    for (const auto& n : j["nodes"]) seg[n["id"]] = n["segment"];
    EXPECT_EQ(seg["shop/web"], "ns:shop");
    EXPECT_EQ(seg["db/pg"], "ns:db");
    EXPECT_EQ(seg["10.0.0.1"], seg["10.0.0.3"]);
    EXPECT_TRUE(seg["10.0.0.1"].starts_with("cluster:")) << seg["10.0.0.1"];
    q.group_by = "segment";
    j = nlohmann::json::parse(metrics::prometheusTopologyJson(edges, q, "http://prom:9090"));
    std::map<std::string, nlohmann::json> by;
    for (const auto& e : j["edges"]) by[e["id"]] = e;
    ASSERT_EQ(by.size(), 2u) << j.dump();  // within shop and within the community: not edges
    const auto& sd = by.at("ns:shop->ns:db:5432/tcp");
    EXPECT_EQ(sd["bytes_out"], 3000);  // both shop workloads' traffic to db, folded
    EXPECT_EQ(sd["connections_opened"], 2);
    EXPECT_EQ(sd["observed_by"], nlohmann::json({"n1:8081", "n2:8081"}));
    const auto cl = seg["10.0.0.1"];
    EXPECT_TRUE(by.contains(cl + "->ns:shop:8080/tcp"));
    for (const auto& n : j["nodes"]) EXPECT_EQ(n["kind"], "segment");
    ASSERT_EQ(j["nodes"].size(), 3u);
}

}  // namespace
