#include <gtest/gtest.h>

#include "metrics/json_api.hpp"
#include "test_flows.hpp"

using netprobe::metrics::FlowQuery;
using netprobe::metrics::flowsJson;
using netprobe::metrics::parseFlowQuery;
using netprobe::testing::makeKey;

namespace {

netprobe::http::QueryParams P(std::initializer_list<std::pair<std::string, std::string>> l) { return {l}; }

netprobe::testing::TestState snapshotWithFlows() {
    netprobe::testing::TestState t;
    t.snap.interval_seconds = 2.0;
    t.ifnames = {{3, "veth0"}, {4, "veth1"}};
    auto add = [&](flow_key k, std::uint64_t pkts, std::uint64_t bytes, std::uint8_t flags) {
        netprobe::analysis::FlowRecord r;
        r.key = k;
        r.packets = pkts;
        r.bytes = bytes;
        r.interval_packets = pkts;
        r.interval_bytes = bytes;
        r.tcp_flags = flags;
        t.flows.push_back(r);
    };
    add(makeKey("198.18.0.1", "198.18.0.2", 40000, 80, 6, 3, NP_DIR_EGRESS), 10, 5000, 0x12);
    add(makeKey("198.18.0.2", "198.18.0.1", 53, 41000, 17, 3, NP_DIR_INGRESS), 4, 400, 0);
    add(makeKey("fd6e:7072::2", "fd6e:7072::1", 0, 0, 58, 4, NP_DIR_INGRESS), 1, 90, 0);
    return t;
}

}  // namespace

TEST(FlowQuery, DefaultsAndValidValues) {
    auto q = parseFlowQuery({}, 100, 10000);
    ASSERT_TRUE(q);
    EXPECT_EQ(q->limit, 100u);
    q = parseFlowQuery(P({{"protocol", "udp"}, {"direction", "egress"}, {"limit", "5"}, {"port", "53"},
                          {"src_ip", "fd6e:7072::1"}, {"sort", "packets"}}),
                       100, 10000);
    ASSERT_TRUE(q) << q.error();
    EXPECT_EQ(q->protocol, 17);
    EXPECT_EQ(q->direction, NP_DIR_EGRESS);
    EXPECT_EQ(q->limit, 5u);
    EXPECT_EQ(q->port, 53);
    EXPECT_EQ(q->sort, FlowQuery::Sort::Packets);
}

TEST(FlowQuery, RejectsBadValuesNamingTheParameter) {
    struct Case {
        const char* k;
        const char* v;
    } cases[] = {{"limit", "0"},      {"limit", "abc"},     {"limit", "10001"}, {"limit", "-1"},
                 {"protocol", "x"},   {"direction", "up"},  {"src_ip", "1.2.3"}, {"port", "65536"},
                 {"sort", "name"},    {"dst_port", ""},     {"bogus", "1"}};
    for (const auto& c : cases) {
        auto q = parseFlowQuery(P({{c.k, c.v}}), 100, 10000);
        ASSERT_FALSE(q) << c.k << "=" << c.v;
        EXPECT_NE(q.error().find(c.k), std::string::npos) << q.error();
    }
}

TEST(FlowsJson, FiltersLimitsAndShapesFlows) {
    const auto s = snapshotWithFlows().views();
    auto all = nlohmann::json::parse(flowsJson(s, *parseFlowQuery({}, 100, 10000)));
    EXPECT_EQ(all["total"], 3);
    ASSERT_EQ(all["flows"].size(), 3u);
    const auto& f = all["flows"][0];
    for (const char* field : {"src_ip", "dst_ip", "src_port", "dst_port", "protocol", "packets", "bytes", "interface",
                              "direction", "first_seen", "last_seen", "tcp_flags"})
        EXPECT_TRUE(f.contains(field)) << field;
    EXPECT_EQ(f["protocol"], "tcp");
    EXPECT_EQ(f["src_ip"], "198.18.0.1");
    EXPECT_EQ(f["direction"], "egress");
    EXPECT_EQ(f["tcp_flags"], nlohmann::json({"SYN", "ACK"}));
    EXPECT_DOUBLE_EQ(f["bytes_rate"].get<double>(), 2500.0);

    auto udp = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"protocol", "udp"}}), 100, 10000)));
    ASSERT_EQ(udp["flows"].size(), 1u);
    EXPECT_EQ(udp["flows"][0]["src_port"], 53);

    auto v6 = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"ip", "fd6e:7072::1"}}), 100, 10000)));
    ASSERT_EQ(v6["flows"].size(), 1u);
    EXPECT_EQ(v6["flows"][0]["protocol"], "icmpv6");

    auto lim = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"limit", "1"}}), 100, 10000)));
    EXPECT_EQ(lim["total"], 3);
    EXPECT_EQ(lim["returned"], 1);

    auto ifc = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"interface", "veth1"}}), 100, 10000)));
    EXPECT_EQ(ifc["total"], 1);
}

TEST(Json, Rfc3339IsUtcWithMilliseconds) {
    auto t = netprobe::collector::WallTime{} + std::chrono::milliseconds(1'700'000'000'123LL);
    EXPECT_EQ(netprobe::metrics::rfc3339(t), "2023-11-14T22:13:20.123Z");
}

TEST(FlowsJson, OddInterfaceNamesStayValidJson) {
    auto t = snapshotWithFlows();
    t.ifnames[0].second = std::string("we\"ird\\\n\xff\x01");
    auto doc = nlohmann::json::parse(flowsJson(t.views(), *parseFlowQuery(P({{"limit", "1"}}), 100, 10000)));
    EXPECT_EQ(doc["flows"][0]["interface"], "we\"ird\\\n\u00ff\u0001");
}

TEST(FlowsJson, EmptySnapshot) {
    auto doc = nlohmann::json::parse(flowsJson(netprobe::testing::TestState{}.views(), *parseFlowQuery({}, 100, 10000)));
    EXPECT_EQ(doc["total"], 0);
    EXPECT_TRUE(doc["flows"].empty());
}
