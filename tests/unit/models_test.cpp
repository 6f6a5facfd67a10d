// The Series stage (intervals aligned to the clock, interface rates, edges and behaviour
// from the topology's slots as deltas), the forecast and anomaly stages over it, and their
// export (JSON, metrics, query errors), on snapshots built here with injected time.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdlib.h>
#include <random>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/anomaly/stage.hpp>
#include <netprobe/analysis/cost.hpp>
#include <netprobe/analysis/forecast/stage.hpp>
#include <netprobe/analysis/series.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/history/cluster.hpp>
#include <netprobe/history/store.hpp>
#include <netprobe/metrics/models.hpp>
#include <netprobe/util/ip.hpp>

namespace {

using namespace netprobe;
using analysis::Views;

util::Addr16 ip(const char* s) { return *util::parseAddr(s); }

// A snapshot at unix second t with eth0's cumulative counters.
std::shared_ptr<collector::Snapshot> snapAt(double t, std::uint64_t rx_bytes, double interval = 1) {
    auto s = std::make_shared<collector::Snapshot>();
    s->taken_at = collector::WallTime(std::chrono::duration_cast<collector::WallTime::duration>(std::chrono::duration<double>(t)));
    s->mono = collector::MonoTime(std::chrono::duration_cast<collector::MonoTime::duration>(std::chrono::duration<double>(t)));
    s->interval_seconds = interval;
    collector::InterfaceStats i;
    i.name = "eth0";
    i.ingress_bytes = rx_bytes;
    i.ingress_packets = rx_bytes / 100;
    s->interfaces.push_back(i);
    return s;
}

const analysis::SeriesPoint* point(const analysis::SeriesView& v, const std::string& key) {
    for (const auto& p : v.points)
        if (p.key == key) return &p;
    return nullptr;
}

TEST(SeriesStage, IntervalsAlignedToTheClockWithRatesOverTheCoveredTime) {
    analysis::SeriesOptions o;
    o.step = std::chrono::seconds(10);
    analysis::Series series(o);
    Views v;
    // collections every second from t=1000 (an interval boundary) to 1025; 1000 bytes/s
    std::uint64_t bytes = 0;
    std::uint64_t closed = 0;
    for (int t = 1000; t <= 1025; ++t) {
        v = {};
        series.run(*snapAt(t, bytes), v);
        bytes += 1000;
        ASSERT_TRUE(v.series);
        if (v.series->intervals != closed) {
            closed = v.series->intervals;
            EXPECT_EQ(v.series->start_unix % 10, 0);
        }
    }
    // closed: [1000, 1010) and [1010, 1020)
    EXPECT_EQ(v.series->intervals, 2u);
    EXPECT_EQ(v.series->start_unix, 1010);
    const auto* rx = point(*v.series, "iface/eth0/rx_bytes_rate");
    ASSERT_TRUE(rx);
    EXPECT_DOUBLE_EQ(rx->value, 1000.0);
    const auto* tx = point(*v.series, "iface/eth0/tx_bytes_rate");
    ASSERT_TRUE(tx);
    EXPECT_DOUBLE_EQ(tx->value, 0.0);
}

TEST(SeriesStage, EdgesAndBehaviourFromTopologySlotDeltas) {
    analysis::SeriesOptions o;
    o.step = std::chrono::seconds(10);
    analysis::Series series(o);
    auto conv = [](const char* server, std::uint16_t port, std::uint64_t bytes, std::int64_t slot) {
        auto c = std::make_shared<analysis::Conversation>();
        c->client.ip = ip("198.18.0.1");
        c->server.ip = ip(server);
        c->port = port;
        analysis::TopologySlot sl;
        sl.id = slot;
        sl.bytes_out = bytes;
        sl.packets_out = bytes / 100;
        sl.opened = 1;
        c->slots.push_back(sl);
        return c;
    };
    auto topo = std::make_shared<analysis::TopologyView>();
    topo->conversations.push_back(conv("198.18.1.1", 80, 1000, 1));
    Views v;
    v.topology = topo;
    series.run(*snapAt(1000, 0), v);
    // the same slot grew: only the growth counts; then a new slot
    topo = std::make_shared<analysis::TopologyView>();
    topo->conversations.push_back(conv("198.18.1.1", 80, 3000, 1));
    topo->conversations.push_back(conv("198.18.1.2", 443, 500, 1));
    auto lo = conv("127.0.0.1", 8081, 700, 1);  // the host talking to itself: no entity
    lo->client.ip = ip("127.0.0.1");
    topo->conversations.push_back(lo);
    v = {};
    v.topology = topo;
    series.run(*snapAt(1005, 0), v);
    v = {};
    series.run(*snapAt(1010, 0), v);
    ASSERT_EQ(v.series->intervals, 1u);
    const auto* e = point(*v.series, "edge/198.18.0.1->198.18.1.1:80/tcp/bytes_rate");
    ASSERT_TRUE(e);
    // 3000 bytes over the 2 collections' covered seconds (1 + 1)
    EXPECT_DOUBLE_EQ(e->value, 3000.0 / 2.0);
    ASSERT_TRUE(point(*v.series, "edge/198.18.0.1->198.18.1.2:443/tcp/bytes_rate"));
    // behaviour: the client used ports 80 and 443 with two peers; each server served its port
    const analysis::BehaviourInput* client = nullptr;
    const analysis::BehaviourInput* server = nullptr;
    for (const auto& b : v.series->behaviour) {
        if (b.entity == "198.18.0.1") client = &b;
        if (b.entity == "198.18.1.2") server = &b;
    }
    ASSERT_TRUE(client);
    ASSERT_TRUE(server);
    for (const auto& b : v.series->behaviour) EXPECT_NE(b.entity, "127.0.0.1");
    ASSERT_TRUE(point(*v.series, "edge/127.0.0.1->127.0.0.1:8081/tcp/bytes_rate"));  // still an edge
    EXPECT_EQ(client->sample.ports_used, (std::vector<std::uint32_t>{80, 443}));
    EXPECT_EQ(client->sample.peers.size(), 2u);
    EXPECT_EQ(client->sample.bytes_out, 3500.0);
    EXPECT_EQ(server->sample.ports_served, (std::vector<std::uint32_t>{443}));
    EXPECT_EQ(server->sample.bytes_in, 500.0);
}

// Feeds n intervals of eth0 at rate(i) bytes/s through Series -> stage.
template <class Stage>
Views feed(analysis::Series& series, Stage& stage, int& t, std::uint64_t& bytes, int n, const std::function<double(int)>& rate) {
    Views v;
    for (int i = 0; i < n; ++i) {
        // two collections per 10 s interval
        for (int k = 0; k < 2; ++k) {
            v = {};
            // the agent's first collection covers no time (it has no previous one)
            auto s = snapAt(t, bytes, bytes == 0 && i == 0 && k == 0 ? 0 : 5);
            series.run(*s, v);
            stage.run(*s, v);
            bytes += static_cast<std::uint64_t>(rate(i) * 5);
            t += 5;
        }
    }
    return v;
}

TEST(AnomalyStage, LevelShiftOpensAnEventWithItsExpectedRangeAndStateRoundTrips) {
    analysis::SeriesOptions so;
    so.step = std::chrono::seconds(10);
    analysis::Series series(so);
    auto ao = analysis::anomaly::StageOptions{};
    ao.series.learning_points = 60;
    ao.series.min_train_points = 30;
    ao.series.train_every = 10;
    ao.series.range_window = 30;
    ao.state_every = 1;
    analysis::anomaly::AnomalyStage stage(ao);
    std::mt19937_64 rng(7);
    std::normal_distribution<double> noise(0, 50);
    int t = 10000;
    std::uint64_t bytes = 0;
    auto v = feed(series, stage, t, bytes, 150, [&](int) { return 10000 + noise(rng); });
    ASSERT_TRUE(v.anomaly);
    EXPECT_TRUE(v.anomaly->events.empty()) << v.anomaly->events.front().summary;
    // the rate jumps tenfold: an event within 3 intervals, observed outside the expected range
    v = feed(series, stage, t, bytes, 3, [&](int) { return 100000 + noise(rng); });
    ASSERT_FALSE(v.anomaly->events.empty());
    const auto& e = v.anomaly->events.front();
    EXPECT_EQ(e.kind, "metric");
    EXPECT_EQ(e.scope, "interface");
    EXPECT_TRUE(e.subject.starts_with("iface/eth0/rx_")) << e.subject;
    ASSERT_EQ(e.features.size(), 1u);
    EXPECT_GT(e.features[0].observed, e.features[0].expected_hi);
    EXPECT_TRUE(e.open);
    auto j = nlohmann::json::parse(*metrics::anomaliesJson(v.anomaly.get(), {{"scope", "interface"}}));
    EXPECT_EQ(j["events"][0]["subject"].get<std::string>(), e.subject);
    const std::string m = metrics::renderAnomalyMetrics(*v.anomaly);
    EXPECT_NE(m.find("netprobe_anomaly_events_total{scope=\"interface\"}"), std::string::npos) << m;

    // the state the view carries restores models that judge the same
    ASSERT_TRUE(v.anomaly->state);
    analysis::anomaly::AnomalyStage again(ao, *v.anomaly->state);
    analysis::Series series2(so);
    int t2 = t;
    std::uint64_t b2 = bytes;
    auto v2 = feed(series2, again, t2, b2, 2, [&](int) { return 100000.0; });
    EXPECT_EQ(v2.anomaly->state_restored, v.anomaly->state->size());
    EXPECT_EQ(v2.anomaly->state_rejected, 0u);

    EXPECT_FALSE(metrics::anomaliesJson(v.anomaly.get(), {{"scope", "galaxy"}}));
    EXPECT_FALSE(metrics::anomaliesJson(v.anomaly.get(), {{"open", "maybe"}}));
    EXPECT_FALSE(metrics::anomaliesJson(v.anomaly.get(), {{"nope", "1"}}));
}

TEST(ForecastStage, SeasonalWarmStartForecastsTheSeasonAndFlagsCapacity) {
    analysis::SeriesOptions so;
    so.step = std::chrono::seconds(10);
    analysis::Series series(so);
    analysis::forecast::StageOptions fo;
    fo.season = std::chrono::seconds(600);  // 60 steps
    fo.horizons = {std::chrono::seconds(150), std::chrono::seconds(300)};
    fo.capacity_horizon = std::chrono::seconds(600);
    auto rate = [](int i) { return 50000.0 + 20000.0 * std::sin(2 * M_PI * i / 60.0); };
    std::vector<double> past;
    for (int i = 0; i < 240; ++i) past.push_back(rate(i));
    analysis::forecast::ForecastStage stage(fo, {{"iface/eth0/rx_bytes_rate", past}});
    int t = 20000;  // an interval boundary; the live series continues the stored phase
    std::uint64_t bytes = 0;
    auto v = feed(series, stage, t, bytes, 2, [&](int i) { return rate(240 + i); });
    ASSERT_TRUE(v.forecast);
    ASSERT_EQ(v.forecast->series.size(), 2u);  // rx and tx
    const auto& rx = v.forecast->series[0];
    EXPECT_EQ(rx.key, "iface/eth0/rx_bytes_rate");
    EXPECT_TRUE(rx.season_ready);
    // 150 s = 15 steps after the last update (interval 240: the first closed one)
    const double want = rate(240 + 15);
    EXPECT_NEAR(rx.horizons[0].f.mean, want, 0.05 * want);
    EXPECT_LE(rx.horizons[0].f.inner.lower, rx.horizons[0].f.mean);
    EXPECT_GE(rx.horizons[0].f.inner.upper, rx.horizons[0].f.mean);
    const std::string m = metrics::renderForecastMetrics(*v.forecast);
    EXPECT_NE(m.find("netprobe_interface_forecast_bytes_rate{interface=\"eth0\",direction=\"receive\",horizon=\"150s\",bound=\"mean\"}"),
              std::string::npos) << m;
    auto j = nlohmann::json::parse(*metrics::forecastJson(v.forecast.get(), {{"series", "iface/eth0/rx"}}));
    ASSERT_EQ(j["series"].size(), 1u);
    EXPECT_EQ(j["series"][0]["forecasts"][1]["horizon"], "5m");
    EXPECT_FALSE(metrics::forecastJson(v.forecast.get(), {{"limit", "0"}}));

    // a link of 0.64 Mb/s (80 kB/s): the seasonal peak (70 kB/s) crosses 80% (64 kB/s)
    auto s = snapAt(t, bytes, 5);
    auto links = std::make_shared<collector::LinkSample>();
    collector::LinkState l;
    l.name = "eth0";
    l.speed_mbps = 1;  // 125 kB/s: 80% = 100 kB/s, never reached
    links->links.push_back(l);
    s->links = links;
    for (int i = 0; i < 2; ++i) {
        v = {};
        s = snapAt(t, bytes, 5);
        s->links = links;
        series.run(*s, v);
        stage.run(*s, v);
        bytes += static_cast<std::uint64_t>(rate(242) * 5);
        t += 5;
    }
    for (const auto& f : v.forecast->findings) EXPECT_NE(f.kind, "capacity") << f.message;
}

// Interfaces created and deleted (pods' veths): 1000 of them, 10 per 10 s interval, each
// listed by two collections with traffic and gone afterwards, while eth0 stays. A deleted
// interface's traffic of its last interval is reported; afterwards none of its series, forecast
// models or anomaly detectors is left (before: quiet zeros for every interface ever seen, the
// forecast's 64 models and the detectors' budget filled by dead interfaces).
TEST(SeriesStage, DeletedInterfacesLeaveNoSeriesModelsOrDetectors) {
    analysis::SeriesOptions so;
    so.step = std::chrono::seconds(10);
    analysis::Series series(so);
    analysis::forecast::ForecastStage forecast{analysis::forecast::StageOptions{}};
    analysis::anomaly::StageOptions ao;
    ao.max_series = 100000;  // not the budget: the detectors of deleted interfaces must go
    analysis::anomaly::AnomalyStage anomaly(ao);
    int t = 30000;  // an interval boundary
    std::uint64_t eth0 = 0;
    Views v;
    auto collect = [&](int churn_interval, int k) {
        auto s = snapAt(t, eth0, 5);
        for (int j = 0; churn_interval >= 0 && j < 10; ++j) {
            collector::InterfaceStats i;
            i.name = "veth" + std::to_string(churn_interval) + "x" + std::to_string(j);
            i.index = static_cast<std::uint32_t>(100 + churn_interval * 10 + j);
            i.ingress_bytes = i.egress_bytes = 5000u * static_cast<unsigned>(k);  // 1000 B/s over the 5 s
            s->interfaces.push_back(i);
        }
        v = {};
        series.run(*s, v);
        forecast.run(*s, v);
        anomaly.run(*s, v);
        eth0 += 5000;
        t += 5;
    };
    std::size_t most_points = 0;
    for (int i = 0; i < 100; ++i)
        for (int k = 0; k < 2; ++k) {
            collect(i, k);
            most_points = std::max(most_points, v.series->points.size());
        }
    // the previous interval (99) closed at this collection: its interfaces carried traffic
    collect(-1, 0);
    ASSERT_EQ(v.series->intervals, 100u);
    const auto* gone = point(*v.series, "iface/veth99x3/rx_bytes_rate");
    ASSERT_TRUE(gone);
    EXPECT_DOUBLE_EQ(gone->value, 5000.0 / 10.0);  // 5000 B in the interval's 10 covered seconds
    EXPECT_FALSE(point(*v.series, "iface/veth98x3/rx_bytes_rate"));  // deleted an interval before
    EXPECT_EQ(v.series->points.size(), most_points);  // flat: eth0 + the interval's 10
    collect(-1, 1);
    collect(-1, 0);  // interval 100 closed: only eth0 was there
    ASSERT_EQ(v.series->intervals, 101u);
    std::vector<std::string> iface_keys;
    for (const auto& p : v.series->points)
        if (p.key.starts_with("iface/")) iface_keys.push_back(p.key);
    EXPECT_EQ(iface_keys, (std::vector<std::string>{"iface/eth0/rx_bytes_rate", "iface/eth0/rx_packets_rate",
                                                    "iface/eth0/tx_bytes_rate", "iface/eth0/tx_packets_rate"}));
    ASSERT_TRUE(v.forecast);
    ASSERT_EQ(v.forecast->series.size(), 2u);  // eth0 rx and tx
    EXPECT_EQ(v.forecast->series[0].key, "iface/eth0/rx_bytes_rate");
    EXPECT_EQ(v.forecast->series_not_modelled, 0u);  // every interface got its models while it lived
    ASSERT_TRUE(v.anomaly);
    EXPECT_EQ(v.anomaly->scopes.at("interface").series, 4u);
    EXPECT_EQ(v.anomaly->series_not_modelled, 0u);
}

TEST(ModelsExport, HistoryQueryErrorsAndDisabled) {
    EXPECT_EQ(nlohmann::json::parse(*metrics::historyJson({}, {}, 1000))["enabled"], false);
    EXPECT_FALSE(metrics::historyJson({}, {{"from", "yesterday"}}, 1000));
    EXPECT_FALSE(metrics::historyJson({}, {{"resolution", "second"}}, 1000));
    EXPECT_FALSE(metrics::historyJson({}, {{"bogus", "1"}}, 1000));
    EXPECT_FALSE(metrics::historyJson({}, {{"node", ""}}, 1000));
    auto e = metrics::historyJson({}, {{"source", "clickhouse"}}, 1000);  // not configured
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().status, 400);
    EXPECT_FALSE(metrics::historyJson({}, {{"source", "remote"}}, 1000));
    EXPECT_EQ(nlohmann::json::parse(*metrics::forecastJson(nullptr, {}))["enabled"], false);
    EXPECT_EQ(nlohmann::json::parse(*metrics::anomaliesJson(nullptr, {}))["enabled"], false);
}

// --history-source=clickhouse with the server away: the local store answers, says why,
// and a second request within retry_after does not wait on the server again.
TEST(ModelsExport, ClusterHistoryFallsBackToTheLocalStore) {
    char tmpl[] = "/tmp/np-unit-hist-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    {
        auto store = history::Store::open({dir});
        ASSERT_TRUE(store) << store.error().what();
        const std::vector<history::Point> pts{{"iface/eth0/rx_bytes_rate", 6000, 300, 3, 50, 150}};
        ASSERT_TRUE(store->append(pts));
        // a port nothing listens on: the connection is refused at once
        history::ClusterOptions co;
        co.endpoint.url = "http://127.0.0.1:9";
        co.retry_after = std::chrono::seconds(60);
        history::ClusterHistory cluster(co);
        const metrics::HistorySources src{&*store, &cluster, "node-a"};
        auto j = nlohmann::json::parse(*metrics::historyJson(
            src, {{"series", "iface/eth0/rx_bytes_rate"}, {"from", "5940"}, {"to", "6120"}}, 6100));
        EXPECT_EQ(j["source"], "local");
        EXPECT_EQ(j["node"], "node-a");
        EXPECT_NE(j["fallback"].get<std::string>().find("127.0.0.1:9"), std::string::npos) << j.dump();
        ASSERT_EQ(j["points"].size(), 1u);
        EXPECT_EQ(j["points"][0]["mean"], 100.0);
        EXPECT_EQ(cluster.stats().queries, 1u);
        EXPECT_EQ(cluster.stats().errors, 1u);
        // within retry_after: answered without asking the server
        j = nlohmann::json::parse(*metrics::historyJson(src, {{"prefix", "iface/"}}, 6100));
        EXPECT_EQ(j["source"], "local");
        EXPECT_EQ(j["series"], nlohmann::json::array({"iface/eth0/rx_bytes_rate"}));
        EXPECT_EQ(cluster.stats().queries, 1u);
        EXPECT_EQ(cluster.stats().skipped, 1u);
        // another node's history cannot come from this node's store
        auto e = metrics::historyJson(src, {{"series", "iface/eth0/rx_bytes_rate"}, {"node", "node-b"}}, 6100);
        ASSERT_FALSE(e);
        EXPECT_EQ(e.error().status, 503);
        e = metrics::historyJson(src, {{"series", "iface/eth0/rx_bytes_rate"}, {"source", "clickhouse"}}, 6100);
        ASSERT_FALSE(e);
        EXPECT_EQ(e.error().status, 503);
        // source=local: this node's store, no fallback note; another node is a bad request
        j = nlohmann::json::parse(*metrics::historyJson(src, {{"prefix", ""}, {"source", "local"}}, 6100));
        EXPECT_FALSE(j.contains("fallback"));
        e = metrics::historyJson(src, {{"series", "x"}, {"node", "node-b"}, {"source", "local"}}, 6100);
        ASSERT_FALSE(e);
        EXPECT_EQ(e.error().status, 400);
        const std::string m = metrics::renderClusterHistoryMetrics(cluster.stats());
        EXPECT_NE(m.find("netprobe_history_cluster_queries_total{result=\"skipped\"} 3"), std::string::npos) << m;
    }
    std::filesystem::remove_all(dir);
}

}  // namespace

namespace {

TEST(Cost, ConfigClassesAndBytesPerLocalEntity) {
    auto c = netprobe::analysis::parseCostConfig(R"(
zone: zone-a
zones:
  - {cidr: 198.18.0.0/16, zone: zone-a}
  - {cidr: 198.18.7.0/24, zone: zone-b}
prices: {cross_zone: 0.01, internet: 0.09}
currency: EUR
)");
    ASSERT_TRUE(c) << c.error();
    using netprobe::analysis::CostClass;
    using netprobe::analysis::classify;
    auto ip = [](const char* s) { return *netprobe::util::parseAddr(s); };
    EXPECT_EQ(classify(ip("198.18.1.1"), false, *c), CostClass::SameZone);
    EXPECT_EQ(classify(ip("198.18.7.9"), false, *c), CostClass::CrossZone);  // the longer prefix wins
    EXPECT_EQ(classify(ip("10.1.2.3"), false, *c), CostClass::Private);
    EXPECT_EQ(classify(ip("198.19.0.1"), false, *c), CostClass::Internet);
    EXPECT_EQ(classify(ip("198.19.0.1"), true, *c), CostClass::SameNode);
    for (const char* bad : {"zones: [{cidr: nope, zone: a}]", "prices: {mars: 1}", "prices: {internet: -1}", "color: red",
                            "zones: 3", "[1, 2"})
        EXPECT_FALSE(netprobe::analysis::parseCostConfig(bad)) << bad;

    // a local client (a socket seen) sent 2 GB to the internet and received 1 GB; a local
    // server answered 0.5 GB to another zone
    netprobe::analysis::CostOptions o;
    o.config = *c;
    netprobe::analysis::Cost stage(o);
    auto t = std::make_shared<netprobe::analysis::TopologyView>();
    t->now_slot = 10;
    auto conv = [&](const char* cl, const char* sv, std::uint64_t out, std::uint64_t in, int local) {
        auto x = std::make_shared<netprobe::analysis::Conversation>();
        x->client.ip = ip(cl);
        x->server.ip = ip(sv);
        if (local == 1) x->client.process = "app";
        if (local == 2) x->server.process = "app";
        netprobe::analysis::TopologySlot sl;
        sl.id = 10;
        sl.bytes_out = out;
        sl.bytes_in = in;
        x->slots.push_back(sl);
        t->conversations.push_back(x);
    };
    conv("198.18.1.1", "198.19.0.1", 2'000'000'000, 1'000'000'000, 1);
    conv("198.18.7.9", "198.18.1.1", 100, 500'000'000, 2);
    conv("198.18.1.5", "198.18.1.6", 999, 999, 0);  // neither end local: forwarded
    netprobe::analysis::Views v;
    v.topology = t;
    stage.run(netprobe::collector::Snapshot{}, v);
    ASSERT_TRUE(v.cost);
    ASSERT_EQ(v.cost->entities.size(), 1u);  // both local ends are 198.18.1.1
    const auto& e = v.cost->entities[0];
    EXPECT_EQ(e.entity, "198.18.1.1");
    EXPECT_EQ(e.sent[static_cast<int>(CostClass::Internet)], 2'000'000'000u);
    EXPECT_EQ(e.received[static_cast<int>(CostClass::Internet)], 1'000'000'000u);
    EXPECT_EQ(e.sent[static_cast<int>(CostClass::CrossZone)], 500'000'000u);
    EXPECT_DOUBLE_EQ(e.cost, 2 * 0.09 + 0.5 * 0.01);
    auto j = nlohmann::json::parse(*netprobe::metrics::costJson(v.cost.get(), {}));
    EXPECT_EQ(j["currency"], "EUR");
    EXPECT_DOUBLE_EQ(j["total_cost"].get<double>(), 0.185);
    EXPECT_FALSE(netprobe::metrics::costJson(v.cost.get(), {{"window", "1h"}}));
    const std::string m = netprobe::metrics::renderCostMetrics(*v.cost);
    EXPECT_NE(m.find("netprobe_cost_window_bytes{entity=\"198.18.1.1\",class=\"internet\",direction=\"sent\"} 2000000000"),
              std::string::npos) << m;
}

TEST(Cost, ZonesFromTheClustersNodesMergedUnderTheConfigs) {
    using netprobe::analysis::ClusterNode;
    using netprobe::analysis::CostClass;
    auto ip = [](const char* s) { return *netprobe::util::parseAddr(s); };
    // three nodes: this one (zone-a), one in zone-b with a pod range, one without a label
    std::vector<ClusterNode> nodes = {
        {"node-1", "zone-a", {ip("198.18.0.1")}, {{ip("198.18.64.0"), 96 + 24}}},
        {"node-2", "zone-b", {ip("198.18.0.2")}, {{ip("198.18.65.0"), 96 + 24}}},
        {"node-3", "", {ip("198.18.0.3")}, {{ip("198.18.66.0"), 96 + 24}}},
    };
    auto z = netprobe::analysis::clusterZones(nodes, "node-1");
    EXPECT_EQ(z.node_zone, "zone-a");
    EXPECT_EQ(z.nodes, 3u);
    EXPECT_EQ(z.zoned_nodes, 2u);
    ASSERT_EQ(z.ranges.size(), 4u);
    EXPECT_EQ(z.ranges[0].len, 128u);  // longest first
    EXPECT_EQ(netprobe::analysis::clusterZones(nodes, "node-9").node_zone, "");

    const auto merged = netprobe::analysis::withClusterZones(netprobe::analysis::CostConfig{}, z);
    using netprobe::analysis::classify;
    EXPECT_EQ(classify(ip("198.18.64.7"), false, merged), CostClass::SameZone);   // a pod of node-1's range
    EXPECT_EQ(classify(ip("198.18.65.7"), false, merged), CostClass::CrossZone);  // node-2's pods
    EXPECT_EQ(classify(ip("198.18.0.2"), false, merged), CostClass::CrossZone);   // node-2 itself
    EXPECT_EQ(classify(ip("198.18.66.7"), false, merged), CostClass::Internet);   // no zone: not private either
    // the config's own zone and ranges win: this node declared zone-b, node-2's range remapped
    auto cfg = netprobe::analysis::parseCostConfig("zone: zone-b\nzones:\n  - {cidr: 198.18.65.0/24, zone: zone-c}\n");
    ASSERT_TRUE(cfg) << cfg.error();
    const auto over = netprobe::analysis::withClusterZones(*cfg, z);
    EXPECT_EQ(over.zone, "zone-b");
    EXPECT_EQ(classify(ip("198.18.65.7"), false, over), CostClass::CrossZone);  // zone-c, not zone-b
    EXPECT_EQ(classify(ip("198.18.0.2"), false, over), CostClass::SameZone);    // node-2: zone-b

    // the stage: its view says where the zone came from
    netprobe::analysis::CostOptions o;
    auto shared = std::make_shared<const netprobe::analysis::ClusterZones>(z);
    o.cluster_zones = [shared] { return shared; };
    netprobe::analysis::Cost stage(o);
    netprobe::analysis::Views v;
    v.topology = std::make_shared<netprobe::analysis::TopologyView>();
    stage.run(netprobe::collector::Snapshot{}, v);
    ASSERT_TRUE(v.cost);
    EXPECT_EQ(v.cost->zone, "zone-a");
    EXPECT_EQ(v.cost->zone_source, "kubernetes");
    EXPECT_EQ(v.cost->cluster_zoned_nodes, 2u);
    auto j = nlohmann::json::parse(*netprobe::metrics::costJson(v.cost.get(), {}));
    EXPECT_EQ(j["zone"].get<std::string>(), "zone-a");
    EXPECT_EQ(j["cluster_nodes"]["seen"], 3);
}

}  // namespace
