// The QoS stage (handshake samples per conversation: one per connection across
// interfaces, jitter as successive deviations, window expiry, budgets) and its export
// (/api/v1/qos figures, netprobe_edge_* metrics), on snapshots built here with injected time.
#include <gtest/gtest.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/qos.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/metrics/qos.hpp>
#include <netprobe/util/ip.hpp>

namespace {

using namespace netprobe;
using analysis::Qos;
using analysis::QosOptions;
using analysis::Views;

util::Addr16 ip(const char* s) { return *util::parseAddr(s); }

flow_key key(const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport, std::uint32_t ifindex) {
    flow_key k{};
    const auto a = ip(src), b = ip(dst);
    std::memcpy(&k.src_ip, a.data(), 16);
    std::memcpy(&k.dst_ip, b.data(), 16);
    k.src_port = sport;
    k.dst_port = dport;
    k.proto = 6;
    k.family = 4;
    k.ifindex = ifindex;
    return k;
}

ebpf::HandshakeSample hs(const char* c, std::uint16_t cport, const char* s, std::uint16_t port, double server_ms,
                         double client_ms, std::uint32_t ifindex = 1) {
    return {key(c, cport, s, port, ifindex), static_cast<std::uint64_t>(server_ms * 1e6),
            static_cast<std::uint64_t>(client_ms * 1e6)};
}

struct Clock {
    std::chrono::steady_clock::time_point t0{std::chrono::hours(1000)};
    std::shared_ptr<collector::Snapshot> at(double seconds) const {
        auto s = std::make_shared<collector::Snapshot>();
        s->mono = t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
        return s;
    }
};

Views run(Qos& q, const collector::Snapshot& s) {
    Views v;
    q.run(s, v);
    return v;
}

TEST(QosStage, OneSamplePerConnectionAcrossInterfacesAndSuccessiveDeviations) {
    Qos q;
    Clock clk;
    auto s = clk.at(1);
    // the same connection at a pod's veth (whole path) and at the uplink (its client side only)
    s->handshakes.push_back(hs("198.18.0.1", 40000, "198.18.1.1", 80, 10, 0.1, 3));
    s->handshakes.push_back(hs("198.18.0.1", 40000, "198.18.1.1", 80, 0.05, 10.0, 2));
    s->handshakes.push_back(hs("198.18.0.1", 40001, "198.18.1.1", 80, 14, 0.1, 3));
    auto v = run(q, *s);
    ASSERT_TRUE(v.qos);
    EXPECT_EQ(v.qos->handshakes_total, 2u);
    EXPECT_EQ(v.qos->handshakes_duplicate, 1u);
    ASSERT_EQ(v.qos->conversations.size(), 1u);
    const auto& c = *v.qos->conversations[0];
    ASSERT_EQ(c.samples.size(), 2u);
    EXPECT_EQ(c.samples[0].rttUs(), 10100u);  // the larger of the two vantage points' totals
    EXPECT_EQ(c.samples[0].delta_us, analysis::RttSample::kNoDelta);
    EXPECT_EQ(c.samples[1].rttUs(), 14100u);
    EXPECT_EQ(c.samples[1].delta_us, 4000u);

    s = clk.at(2);
    s->handshakes.push_back(hs("198.18.0.1", 40002, "198.18.1.1", 80, 11, 0.1));
    v = run(q, *s);
    EXPECT_EQ(v.qos->conversations[0]->samples.back().delta_us, 3000u);
    // jitter = mean(|14.1-10.1|, |11.1-14.1|) = 3.5 ms; RTT quantiles over 10.1, 14.1, 11.1
    auto j = nlohmann::json::parse(metrics::qosJson(nullptr, v.qos.get(), metrics::QosQuery{}));
    ASSERT_EQ(j["edges"].size(), 1u);
    const auto& e = j["edges"][0];
    EXPECT_EQ(e["client"], "198.18.0.1");
    EXPECT_EQ(e["server"], "198.18.1.1");
    EXPECT_EQ(e["handshakes"], 3);
    EXPECT_NEAR(e["jitter_ms"].get<double>(), 3.5, 1e-9);
    EXPECT_NEAR(e["rtt_ms"]["p50"].get<double>(), 11.1, 1e-9);
    EXPECT_NEAR(e["rtt_ms"]["min"].get<double>(), 10.1, 1e-9);
    EXPECT_NEAR(e["rtt_ms"]["max"].get<double>(), 14.1, 1e-9);
    EXPECT_NEAR(e["server_side_rtt_ms_p50"].get<double>(), 11.0, 1e-9);

    // the histogram: 10.1, 14.1 and 11.1 ms are all in (0.01, 0.02]
    const std::string m = metrics::renderQosMetrics(nullptr, *v.qos);
    EXPECT_NE(m.find("netprobe_edge_rtt_seconds_bucket{client=\"198.18.0.1\",server=\"198.18.1.1\",port=\"80\",le=\"0.01\"} 0"),
              std::string::npos) << m;
    EXPECT_NE(m.find("netprobe_edge_rtt_seconds_bucket{client=\"198.18.0.1\",server=\"198.18.1.1\",port=\"80\",le=\"0.02\"} 3"),
              std::string::npos) << m;
    EXPECT_NE(m.find("netprobe_edge_rtt_seconds_count{client=\"198.18.0.1\",server=\"198.18.1.1\",port=\"80\"} 3"),
              std::string::npos) << m;
    EXPECT_NE(m.find("netprobe_edge_jitter_seconds{client=\"198.18.0.1\",server=\"198.18.1.1\",port=\"80\"} 0.0035"),
              std::string::npos) << m;
}

TEST(QosStage, WindowExpiryAndBudgets) {
    QosOptions o;
    o.window = std::chrono::seconds(60);
    o.max_edges = 2;
    o.max_conversations = 3;
    o.max_samples = 4;
    Qos q(o);
    Clock clk;
    auto s = clk.at(1);
    for (int i = 0; i < 4; ++i) {  // four servers: two edges of their own, then "other"; the 4th not kept
        const std::string srv = "198.18.1." + std::to_string(i + 1);
        s->handshakes.push_back(hs("198.18.0.1", 40000, srv.c_str(), 80, 1, 0));
    }
    for (int i = 0; i < 6; ++i) s->handshakes.push_back(hs("198.18.0.1", 41000 + i, "198.18.1.1", 80, 1 + i, 0));
    auto v = run(q, *s);
    EXPECT_EQ(v.qos->conversations.size(), 3u);
    EXPECT_EQ(v.qos->overflow, 1u);
    ASSERT_EQ(v.qos->edges.size(), 3u);  // two + other
    EXPECT_EQ(v.qos->edges[2].key, analysis::kOtherEdge);
    EXPECT_EQ(v.qos->edges[2].count, 1u);
    EXPECT_EQ(v.qos->edges[0].count, 7u);  // 198.18.1.1: its series counts every sample
    // samples per conversation: the newest 4
    for (const auto& c : v.qos->conversations)
        if (c->server == ip("198.18.1.1")) {
            ASSERT_EQ(c->samples.size(), 4u);
            EXPECT_EQ(c->samples.back().rttUs(), 6000u);
        }
    // a window later, without samples: everything leaves, series included
    v = run(q, *clk.at(62));
    EXPECT_TRUE(v.qos->conversations.empty());
    EXPECT_TRUE(v.qos->edges.empty());
}

TEST(QosExport, LossPerDirectionFromTheTopologyAndQueryErrors) {
    // one conversation: the client sent 1000 segments, 10 retransmitted; the server 4000, 80
    analysis::TopologyView t;
    t.slot = std::chrono::seconds(10);
    t.slots = 90;
    t.now_slot = 100;
    auto c = std::make_shared<analysis::Conversation>();
    c->client.ip = ip("198.18.0.1");
    c->server.ip = ip("198.18.1.1");
    c->server.ns = "shop";
    c->server.workload = "db";
    c->port = 5432;
    analysis::TopologySlot sl;
    sl.id = 100;
    sl.packets_out = 1000;
    sl.packets_in = 4000;
    sl.retrans_client = 10;
    sl.retrans_server = 80;
    sl.retransmits = 90;
    c->slots.push_back(sl);
    t.conversations.push_back(c);
    analysis::QosView qv;
    qv.now_ns = 1'000'000'000'000ull;
    auto q = metrics::parseQosQuery({{"group_by", "workload"}});
    ASSERT_TRUE(q);
    auto j = nlohmann::json::parse(metrics::qosJson(&t, &qv, *q));
    ASSERT_EQ(j["edges"].size(), 1u);
    EXPECT_EQ(j["edges"][0]["server"], "shop/db");
    EXPECT_DOUBLE_EQ(j["edges"][0]["loss_ratio"]["client_to_server"].get<double>(), 0.01);
    EXPECT_DOUBLE_EQ(j["edges"][0]["loss_ratio"]["server_to_client"].get<double>(), 0.02);
    EXPECT_DOUBLE_EQ(j["edges"][0]["loss_ratio"]["total"].get<double>(), 90.0 / 5000.0);
    EXPECT_EQ(j["services"][0]["server"], "shop/db");
    // no edge series yet: the conversation's loss is "other"'s
    const std::string m = metrics::renderQosMetrics(&t, qv);
    EXPECT_NE(m.find("netprobe_edge_loss_ratio{client=\"other\",server=\"other\",port=\"other\",direction=\"server_to_client\"} 0.02"),
              std::string::npos) << m;

    EXPECT_FALSE(metrics::parseQosQuery({{"window", "soon"}}));
    EXPECT_FALSE(metrics::parseQosQuery({{"group_by", "segment"}}));
    EXPECT_FALSE(metrics::parseQosQuery({{"limit", "0"}}));
    EXPECT_FALSE(metrics::parseQosQuery({{"bogus", "1"}}));
    EXPECT_EQ(nlohmann::json::parse(metrics::qosJson(nullptr, nullptr, metrics::QosQuery{}))["enabled"], false);
}

}  // namespace

namespace {
using namespace netprobe;

TEST(QosStage, UdpFlowsJitterFromTheKernelsTiming) {
    analysis::Qos q;
    auto s = std::make_shared<collector::Snapshot>();
    s->mono = std::chrono::steady_clock::time_point(std::chrono::hours(1000));
    auto udp = [](const char* src, std::uint16_t sport, std::uint32_t ifindex) {
        flow_key k{};
        const auto a = *util::parseAddr(src), b = *util::parseAddr("198.18.1.1");
        std::memcpy(&k.src_ip, a.data(), 16);
        std::memcpy(&k.dst_ip, b.data(), 16);
        k.src_port = sport;
        k.dst_port = 5004;
        k.proto = 17;
        k.family = 4;
        k.ifindex = ifindex;
        return k;
    };
    // 100 intervals of 20 ms in the run, 98 deviations summing 294 ms, J = 3.5 ms
    np_udp_timing t{};
    t.first_ns = 1'000'000'000;
    t.last_ns = t.first_ns + 100 * 20'000'000ull;
    t.intervals = 100;
    t.samples = 98;
    t.dev_sum_ns = 294'000'000;
    t.jitter16_ns = 16 * 3'500'000;
    s->udp_timings.push_back({udp("198.18.0.2", 6000, 2), t});
    np_udp_timing small = t;
    small.jitter16_ns = 16 * 100'000;
    s->udp_timings.push_back({udp("198.18.0.1", 6000, 2), small});
    np_udp_timing young = t;
    young.samples = 1;  // one deviation: not yet a figure
    s->udp_timings.push_back({udp("198.18.0.3", 6000, 2), young});
    analysis::Views v;
    q.run(*s, v);
    ASSERT_TRUE(v.qos);
    ASSERT_EQ(v.qos->udp_flows.size(), 2u);
    const auto* j = v.qos->udpJitter(udp("198.18.0.2", 6000, 2));
    ASSERT_NE(j, nullptr);
    EXPECT_NEAR(j->jitter_seconds, 0.0035, 1e-12);
    EXPECT_NEAR(j->mean_deviation_seconds, 0.003, 1e-12);
    EXPECT_NEAR(j->interarrival_seconds, 0.020, 1e-12);
    EXPECT_EQ(j->samples, 98u);
    EXPECT_EQ(v.qos->udpJitter(udp("198.18.0.2", 6000, 3)), nullptr);  // another interface
    EXPECT_EQ(v.qos->udpJitter(udp("198.18.0.3", 6000, 2)), nullptr);

    // /api/v1/qos: the highest jitter first, within the limit
    metrics::QosQuery qq;
    qq.limit = 1;
    auto doc = nlohmann::json::parse(metrics::qosJson(nullptr, v.qos.get(), qq));
    EXPECT_EQ(doc["udp_flows_total"], 2);
    ASSERT_EQ(doc["udp_flows"].size(), 1u);
    EXPECT_EQ(doc["udp_flows"][0]["src_ip"].get<std::string>(), "198.18.0.2");
    EXPECT_EQ(doc["udp_flows"][0]["direction"].get<std::string>(), "ingress");
    EXPECT_NEAR(doc["udp_flows"][0]["jitter_seconds"].get<double>(), 0.0035, 1e-12);
}
}  // namespace
