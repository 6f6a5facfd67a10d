// The topology stream's diff (pure): a client applying each diff to its copy holds the
// next document exactly; only what changed is sent.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include <netprobe/metrics/topology_stream.hpp>

using namespace netprobe::metrics;
using nlohmann::json;

namespace {

json node(int i, std::uint64_t sent) {
    return {{"id", "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250)},
            {"name", "n" + std::to_string(i)},
            {"kind", "host"},
            {"ips", json::array({"10.0.0." + std::to_string(i % 250)})},
            {"bytes_sent", sent},
            {"bytes_received", sent / 2},
            {"client", true},
            {"server", i % 3 == 0},
            {"segment", "cluster:" + std::to_string(i % 7)}};
}

json edge(int a, int b, int port, std::uint64_t bytes) {
    const std::string s = node(a, 0)["id"], t = node(b, 0)["id"];
    return {{"id", s + "->" + t + ":" + std::to_string(port) + "/tcp"},
            {"source", s},
            {"target", t},
            {"port", port},
            {"transport", "tcp"},
            {"bytes_out", bytes},
            {"bytes_in", bytes / 3},
            {"packets_out", bytes / 1000},
            {"packets_in", bytes / 3000},
            {"bytes_per_second", static_cast<double>(bytes) / 300.0},
            {"boundary", false}};
}

json document(const std::vector<json>& nodes, const std::vector<json>& edges) {
    return {{"enabled", true}, {"window_seconds", 300.0}, {"group_by", "host"}, {"overflow", 0},
            {"truncated", false}, {"nodes", nodes}, {"edges", edges}};
}

}  // namespace

TEST(TopologyStream, DiffOfEqualDocumentsIsNull) {
    auto d = document({node(1, 10), node(2, 20)}, {edge(1, 2, 80, 1000)});
    EXPECT_TRUE(diffTopology(topologyGraph(d), topologyGraph(d)).is_null());
}

TEST(TopologyStream, DiffCarriesOnlyWhatChanged) {
    auto a = document({node(1, 10), node(2, 20), node(3, 30)}, {edge(1, 2, 80, 1000), edge(1, 3, 443, 500)});
    auto n2 = node(2, 25);
    auto e12 = edge(1, 2, 80, 1000);
    e12["bytes_in"] = 999;
    e12["protocol"] = "http";
    auto e13 = edge(1, 3, 443, 500);
    auto b = document({node(1, 10), n2, node(4, 40)}, {e12, edge(1, 4, 53, 7)});
    b["truncated"] = true;
    const auto d = diffTopology(topologyGraph(a), topologyGraph(b));
    ASSERT_TRUE(d.is_object()) << d;
    EXPECT_EQ(d["nodes"]["added"].size(), 1u);
    EXPECT_EQ(d["nodes"]["added"][0]["id"], node(4, 0)["id"]);
    EXPECT_EQ(d["nodes"]["removed"], json::array({node(3, 0)["id"]}));
    // node 2: bytes_sent and bytes_received changed, nothing else sent
    ASSERT_EQ(d["nodes"]["updated"].size(), 1u);
    EXPECT_EQ(d["nodes"]["updated"][0], json({{"id", node(2, 0)["id"]}, {"bytes_sent", 25}, {"bytes_received", 12}}));
    ASSERT_EQ(d["edges"]["updated"].size(), 1u);
    EXPECT_EQ(d["edges"]["updated"][0], json({{"id", e12["id"]}, {"bytes_in", 999}, {"protocol", "http"}}));
    EXPECT_EQ(d["edges"]["removed"], json::array({e13["id"]}));
    EXPECT_EQ(d["meta"], json({{"truncated", true}}));
    // A field that went away is sent as null and removed by the client.
    auto c = b;
    c["edges"][0].erase("protocol");
    const auto d2 = diffTopology(topologyGraph(b), topologyGraph(c));
    EXPECT_TRUE(d2["edges"]["updated"][0]["protocol"].is_null()) << d2;
    EXPECT_EQ(topologyDocumentOf(applyTopologyDiff(topologyGraph(b), d2)), topologyDocumentOf(topologyGraph(c)));
}

// 2000 edges, 5% changed per step (updated, added, removed) over many steps: the client's
// copy equals the server's document after every diff, and a diff is far smaller than the
// document.
TEST(TopologyStream, ApplyingDiffsReproducesEveryDocument) {
    std::mt19937 rng(12);
    std::vector<json> nodes, edges;
    for (int i = 0; i < 500; ++i) nodes.push_back(node(i, 1000 + i));
    int next_port = 1;
    for (int i = 0; i < 2000; ++i) edges.push_back(edge(i % 500, (i * 7 + 1) % 500, next_port++, 10000 + i));
    auto server = document(nodes, edges);
    auto client = topologyGraph(server);
    for (int step = 0; step < 20; ++step) {
        for (int k = 0; k < 100; ++k) {  // 5%
            auto& e = edges[rng() % edges.size()];
            switch (rng() % 4) {
                case 0: e = edge(static_cast<int>(rng() % 500), static_cast<int>(rng() % 500), next_port++, rng() % 100000); break;
                case 1: e["bytes_out"] = e["bytes_out"].get<std::uint64_t>() + 1 + rng() % 5000; break;
                case 2: e["rtt_ms"] = static_cast<double>(rng() % 1000) / 10; break;
                default: e.erase("boundary"); break;
            }
            nodes[rng() % nodes.size()]["bytes_sent"] = rng();
        }
        const auto before = topologyGraph(server);
        server = document(nodes, edges);
        const auto after = topologyGraph(server);
        const auto d = diffTopology(before, after);
        ASSERT_FALSE(d.is_null());
        client = applyTopologyDiff(std::move(client), d);
        ASSERT_EQ(topologyDocumentOf(client), topologyDocumentOf(after)) << "step " << step;
        EXPECT_LT(d.dump().size() * 5, server.dump().size()) << "a 5% change is not a small diff";
    }
}

TEST(TopologyStream, EventFormat) {
    EXPECT_EQ(sseEvent("diff", "7.3", "{\"a\":1}"), "event: diff\nid: 7.3\ndata: {\"a\":1}\n\n");
}

// ---- segments by subnet, new boundary edges, topology frames in the history store ----

#include <cstdlib>
#include <filesystem>

#include <netprobe/analysis/topology.hpp>
#include <netprobe/history/store.hpp>
#include <netprobe/metrics/topology_events.hpp>
#include <netprobe/metrics/topology_history.hpp>
#include <netprobe/util/ip.hpp>

namespace {
netprobe::util::Addr16 ip(const char* s) { return *netprobe::util::parseAddr(s); }
}  // namespace

TEST(TopologySubnets, PrefixesAndLongestMatch) {
    using netprobe::analysis::localSubnet;
    auto s30 = localSubnet(ip("198.19.0.1"), 30);
    ASSERT_TRUE(s30);
    EXPECT_EQ(s30->cidr, "198.19.0.0/30");
    EXPECT_EQ(s30->bits, 126u);
    EXPECT_FALSE(localSubnet(ip("198.19.0.1"), 32));   // a host prefix
    EXPECT_FALSE(localSubnet(ip("198.19.0.1"), 0));    // a default route
    EXPECT_FALSE(localSubnet(ip("127.0.0.1"), 8));     // loopback
    EXPECT_FALSE(localSubnet(ip("169.254.1.1"), 16));  // link-local
    EXPECT_FALSE(localSubnet(ip("fe80::1"), 64));
    EXPECT_FALSE(localSubnet(ip("::1"), 64));
    EXPECT_EQ(localSubnet(ip("fd6e:7072:1::1"), 64)->cidr, "fd6e:7072:1::/64");
    auto nets = netprobe::analysis::normalizeSubnets(
        {*localSubnet(ip("198.18.9.9"), 15), *s30, *localSubnet(ip("198.19.0.2"), 30), *localSubnet(ip("fd6e:7072:1::1"), 64)});
    ASSERT_EQ(nets.size(), 3u);  // the /30 once
    EXPECT_EQ(netprobe::analysis::subnetOf(nets, ip("198.19.0.2"))->cidr, "198.19.0.0/30");
    EXPECT_EQ(netprobe::analysis::subnetOf(nets, ip("198.18.5.5"))->cidr, "198.18.0.0/15");
    EXPECT_EQ(netprobe::analysis::subnetOf(nets, ip("fd6e:7072:1::9"))->cidr, "fd6e:7072:1::/64");
    EXPECT_EQ(netprobe::analysis::subnetOf(nets, ip("10.0.0.1")), nullptr);
}

TEST(TopologySubnets, NamespaceBeforeSubnetBeforeCommunity) {
    netprobe::analysis::SegmentInput in;
    in.nodes = {"a", "b", "c", "d", "e"};
    in.ns = {"shop", "", "", "", ""};
    in.subnet = {"198.19.0.0/30", "198.19.0.0/30", "198.19.0.4/30", "", ""};
    in.edges = {{0, 1, 10}, {1, 2, 10}, {3, 4, 5}, {2, 3, 1}};
    const auto seg = netprobe::analysis::segmentGraph(in);
    EXPECT_EQ(seg, (std::vector<std::string>{"ns:shop", "subnet:198.19.0.0/30", "subnet:198.19.0.4/30", "cluster:d",
                                             "cluster:d"}));
}

TEST(TopologyEvents, NewBoundaryEdgesOnceAfterTheBaseline) {
    auto node = [](const std::string& id, const std::string& seg) {
        return json{{"id", id}, {"ips", json::array({id})}, {"segment", seg}};
    };
    auto edge = [](const std::string& a, const std::string& b, int port, bool boundary) {
        return json{{"id", a + "->" + b + ":" + std::to_string(port) + "/tcp"}, {"source", a}, {"target", b},
                    {"port", port}, {"transport", "tcp"}, {"boundary", boundary}};
    };
    json nodes = json::array({node("198.19.0.2", "subnet:198.19.0.0/30"), node("198.19.0.6", "subnet:198.19.0.4/30"),
                              node("198.19.0.10", "subnet:198.19.0.8/30")});
    netprobe::metrics::BoundaryTracker t({.max_seen = 2, .max_events = 10});
    const auto t0 = std::chrono::system_clock::time_point(std::chrono::seconds(1800000000));
    // the first document: the baseline
    EXPECT_TRUE(t.observe({{"nodes", nodes}, {"edges", json::array({edge("198.19.0.2", "198.19.0.6", 80, true)})}}, t0).empty());
    json edges = json::array({edge("198.19.0.2", "198.19.0.6", 80, true), edge("198.19.0.2", "198.19.0.10", 443, true),
                              edge("198.19.0.6", "198.19.0.6", 22, false)});
    auto fresh = t.observe({{"nodes", nodes}, {"edges", edges}}, t0 + std::chrono::seconds(5));
    ASSERT_EQ(fresh.size(), 1u);
    EXPECT_EQ(fresh[0]->edge, "198.19.0.2->198.19.0.10:443/tcp");
    EXPECT_EQ(fresh[0]->source_segment, "subnet:198.19.0.0/30");
    EXPECT_EQ(fresh[0]->target_segment, "subnet:198.19.0.8/30");
    EXPECT_EQ(fresh[0]->dst_ip, "198.19.0.10");
    const auto j = netprobe::metrics::boundaryEventJson(*fresh[0]);
    EXPECT_EQ(j["type"], "new_boundary_edge");
    EXPECT_EQ(j["evidence"]["target_segment"], "subnet:198.19.0.8/30");
    EXPECT_EQ(j["detected_at"], "2027-01-15T08:00:05.000Z");
    // a repeat: nothing
    EXPECT_TRUE(t.observe({{"nodes", nodes}, {"edges", edges}}, t0 + std::chrono::seconds(10)).empty());
    EXPECT_EQ(t.total(), 1u);
    // the bound: a third edge makes the oldest forgotten
    edges.push_back(edge("198.19.0.6", "198.19.0.10", 53, true));
    EXPECT_EQ(t.observe({{"nodes", nodes}, {"edges", edges}}, t0 + std::chrono::seconds(15)).size(), 1u);
    EXPECT_EQ(t.tracked(), 2u);
    EXPECT_EQ(t.forgotten(), 1u);
    // merged into the events answer, newest first, limited
    const auto merged = json::parse(netprobe::metrics::mergeEventsJson(
        R"({"enabled":true,"count":1,"events":[{"id":1,"type":"port_scan","detected_at":"2027-01-15T08:00:07.000Z"}]})",
        true, {t.events().rbegin(), t.events().rend()}, 2));
    ASSERT_EQ(merged["events"].size(), 2u);
    EXPECT_EQ(merged["events"][0]["evidence"]["edge"], "198.19.0.6->198.19.0.10:53/tcp");
    EXPECT_EQ(merged["events"][1]["type"], "port_scan");
}

TEST(TopologyHistory, FramesWrittenOnceAndTheGraphAtAPastTime) {
    using namespace netprobe;
    const auto dir = std::filesystem::temp_directory_path() / ("np-topo-frames-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    struct Cleanup {
        std::filesystem::path d;
        ~Cleanup() { std::filesystem::remove_all(d); }
    } cleanup{dir};
    auto store = history::Store::open({.dir = dir});
    ASSERT_TRUE(store) << store.error().what();

    analysis::TopologyView v;
    v.slot = std::chrono::seconds(10);
    v.now_slot = 1000;
    v.now_ns = 1000ull * 10'000'000'000ull + 5'000'000'000ull;
    const std::int64_t t_now = 1800000005;  // the view's wall time: slot 1000 started at 1800000000 (a minute)
    const auto taken = collector::WallTime(std::chrono::seconds(t_now));
    auto conv = [&](const char* c, const char* s, std::uint16_t port, std::vector<std::pair<std::int64_t, std::uint64_t>> slots) {
        auto x = std::make_shared<analysis::Conversation>();
        x->client.ip = ip(c);
        x->server.ip = ip(s);
        x->client.process = "curl/x";  // a '/' in a name: escaped in the key
        x->port = port;
        for (auto [id, bytes] : slots) {
            analysis::TopologySlot sl;
            sl.id = id;
            sl.bytes_out = bytes;
            sl.bytes_in = bytes / 10;
            sl.packets_out = bytes / 1000;
            sl.opened = 1;
            x->slots.push_back(sl);
        }
        return x;
    };
    // slots 994..999 complete (the minutes 1799999940 and ...880), 1000 the current one
    v.conversations = {conv("198.19.0.2", "198.19.0.6", 5201, {{994, 1000}, {997, 2000}, {999, 4000}, {1000, 99999}}),
                       conv("198.19.0.10", "198.19.0.6", 80, {{999, 700}})};
    std::int64_t last = INT64_MIN;
    auto points = metrics::topologyFramePoints(v, taken, last);
    EXPECT_EQ(last, 999);
    ASSERT_FALSE(points.empty());
    ASSERT_TRUE(store->append(points));
    EXPECT_TRUE(metrics::topologyFramePoints(v, taken, last).empty()) << "a slot is written once";

    metrics::TopologyQuery q;
    q.window_seconds = 900;
    q.at_unix = t_now;
    auto doc = metrics::topologyAt(*store, q, t_now + 10);
    ASSERT_TRUE(doc) << doc.error().message;
    EXPECT_EQ((*doc)["source"], "history");
    std::map<std::string, json> edges;
    for (const auto& e : (*doc)["edges"]) edges[e["id"]] = e;
    ASSERT_EQ(edges.size(), 2u) << doc->dump();
    const auto& e = edges.at("198.19.0.2->198.19.0.6:5201/tcp");
    EXPECT_EQ(e["bytes_out"], 7000u);  // the complete slots, not the current one
    EXPECT_EQ(e["bytes_in"], 700u);
    EXPECT_EQ(e["packets_out"], 7u);
    EXPECT_EQ(e["connections_opened"], 3u);
    EXPECT_EQ(edges.at("198.19.0.10->198.19.0.6:80/tcp")["bytes_out"], 700u);
    // with the process grouping: the escaped name comes back
    q.group_by = "process";
    auto byproc = metrics::topologyAt(*store, q, t_now + 10);
    ASSERT_TRUE(byproc);
    EXPECT_NE(byproc->dump().find("curl/x@198.19.0.2"), std::string::npos) << byproc->dump();
    q.group_by = "host";
    // a window that ends before the frames: empty; beyond the retention, the future: refused
    q.at_unix = t_now - 3600;
    q.window_seconds = 300;
    EXPECT_TRUE((*metrics::topologyAt(*store, q, t_now + 10))["edges"].empty());
    q.at_unix = t_now - 8 * 86400;
    EXPECT_EQ(metrics::topologyAt(*store, q, t_now).error().status, 400);
    q.at_unix = t_now + 3600;
    EXPECT_EQ(metrics::topologyAt(*store, q, t_now).error().status, 400);
    EXPECT_EQ(metrics::parseTimeParam("2027-01-15T08:00:05Z"), t_now);
    EXPECT_EQ(metrics::parseTimeParam("2027-01-15T09:00:05+01:00"), t_now);
    EXPECT_EQ(metrics::parseTimeParam("1800000005"), t_now);
    EXPECT_FALSE(metrics::parseTimeParam("yesterday"));
    EXPECT_FALSE(metrics::parseTimeParam("2027-01-15T08:00:05"));
}
