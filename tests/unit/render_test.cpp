#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include <netprobe/metrics/server.hpp>

#include "metrics_text.hpp"
#include "promtool_check.hpp"
#include "test_flows.hpp"

using netprobe::testing::makeKey;

namespace {

netprobe::testing::TestState sampleState(std::size_t nflows) {
    netprobe::testing::TestState t;
    auto& s = t.snap;
    s.sequence = 3;
    s.interval_seconds = 0.5;
    s.taken_at = std::chrono::system_clock::now();
    netprobe::collector::InterfaceStats i;
    i.name = "veth\"odd\\name";  // exercises label escaping
    i.index = 5;
    i.ingress_packets = 18446744073709551615ULL;
    i.ingress_bytes = 9007199254740993ULL;
    i.egress_packets = 7;
    i.ingress_packets_rate = 12.5;
    i.tc_mode = "tcx";
    i.xdp_mode = "native";
    s.interfaces.push_back(i);
    s.protocols[NP_DIR_INGRESS][NP_PROTO_TCP] = {10, 1000};
    s.malformed[NP_DIR_INGRESS][NP_MAL_TRUNCATED_TCP] = 4;
    s.map_errors[NP_MAP_FLOW_STATS] = 2;
    for (std::size_t n = 0; n < nflows; ++n) {
        netprobe::analysis::FlowRecord r;
        // Each flow from a peer of its own (198.18.x.y), to 198.18.0.2:80, seen at ingress.
        const std::string peer =
            "198.18." + std::to_string(1 + n / 250) + "." + std::to_string(1 + n % 250);
        r.key = makeKey(peer, "198.18.0.2", static_cast<std::uint16_t>(40000 + n), 80, 6, 3);
        r.interval_packets = r.packets = 1;
        r.interval_bytes = r.bytes = 100 + (nflows - n);  // already sorted, descending
        t.flows.push_back(r);
        t.snap.flows.push_back(netprobe::testing::makeSample(r.key, 1, r.interval_bytes, 1, 2));
    }
    t.ifnames = {{3, "veth0"}, {5, i.name}};
    return t;
}

// What the TopTalkers stage makes of the state's samples (one interval).
void addTalkers(netprobe::testing::TestState& t, std::size_t k) {
    netprobe::analysis::TopTalkersOptions o;
    o.selector.k = k;
    netprobe::analysis::Views v = t.views();
    netprobe::analysis::TopTalkers(o).run(t.snap, v);
    t.talkers = v.talkers;
}

std::string render(const netprobe::testing::TestState& t) {
    return netprobe::metrics::renderMetrics(t.views());
}

using netprobe::testing::samples;

}  // namespace

TEST(Render, SpecMetricsWithExactValues) {
    auto text = render(sampleState(0));
    auto m = samples(text);
    const std::string lbl = R"({interface="veth\"odd\\name"})";
    EXPECT_EQ(m["netprobe_interface_rx_packets_total" + lbl], "18446744073709551615");
    EXPECT_EQ(m["netprobe_interface_rx_bytes_total" + lbl], "9007199254740993");
    EXPECT_EQ(m["netprobe_interface_tx_packets_total" + lbl], "7");
    EXPECT_EQ(m["netprobe_interface_tx_bytes_total" + lbl], "0");
    EXPECT_EQ(m["netprobe_interface_rx_packets_rate" + lbl], "12.5");
    for (const char* n : {"netprobe_interface_tx_packets_rate", "netprobe_interface_rx_bytes_rate",
                          "netprobe_interface_tx_bytes_rate"})
        EXPECT_TRUE(m.contains(n + lbl)) << n;
    EXPECT_EQ(m[R"(netprobe_malformed_packets_total{direction="ingress",reason="truncated_tcp"})"], "4");
    EXPECT_EQ(m[R"(netprobe_map_update_errors_total{map="flow_stats"})"], "2");
    EXPECT_EQ(m[R"(netprobe_protocol_packets_total{direction="ingress",protocol="tcp"})"], "10");
    EXPECT_NE(text.find("# TYPE netprobe_interface_rx_packets_total counter"), std::string::npos);
    EXPECT_NE(text.find("# TYPE netprobe_interface_rx_packets_rate gauge"), std::string::npos);
}

TEST(Render, TopTalkersAreCappedAndTheRestAggregated) {
    auto state = sampleState(1000);  // 1000 talkers: one flow from each of 1000 peers
    addTalkers(state, 5);
    auto m = samples(render(state));
    std::size_t top = 0;
    for (const auto& [k, v] : m)
        if (k.rfind("netprobe_top_talker_bytes_rate{", 0) == 0) ++top;
    EXPECT_EQ(top, 6u);  // 5 + other
    // The heaviest: peer 198.18.1.1 (flow 0, 1100 bytes in 0.5 s), its server port 80 local.
    EXPECT_EQ(
        m[R"(netprobe_top_talker_bytes_rate{interface="veth0",direction="ingress",protocol="tcp",local_ip="198.18.0.2",peer_ip="198.18.1.1",server_port="80",server_side="local"})"],
        "2200");
    EXPECT_EQ(
        m[R"(netprobe_top_talker_packets_rate{interface="veth0",direction="ingress",protocol="tcp",local_ip="198.18.0.2",peer_ip="198.18.1.1",server_port="80",server_side="local"})"],
        "2");
    // other = the 995 remaining talkers' bytes per second
    double other_bytes = 0;
    for (std::size_t n = 5; n < state.flows.size(); ++n) other_bytes += static_cast<double>(state.flows[n].interval_bytes);
    const std::string other =
        R"(netprobe_top_talker_bytes_rate{interface="other",direction="other",protocol="other",local_ip="other",peer_ip="other",server_port="other",server_side="other"})";
    ASSERT_TRUE(m.contains(other));
    EXPECT_DOUBLE_EQ(std::stod(m[other]), other_bytes / 0.5);
    EXPECT_EQ(m["netprobe_talkers_active"], "1000");
    EXPECT_EQ(m["netprobe_top_talker_entries_total"], "5");
    // The series count does not depend on the number of flows or talkers.
    auto big = sampleState(20000);
    addTalkers(big, 5);
    auto m2 = samples(render(big));
    EXPECT_EQ(m.size(), m2.size());
    // No per-flow series any more (the flows are in /api/v1/flows).
    for (const auto& [k, v] : m) EXPECT_EQ(k.find("netprobe_top_flow_"), std::string::npos) << k;
}

TEST(Render, TopTalkersWithoutPortsAndWithoutTheStage) {
    auto state = sampleState(0);
    state.snap.flows.push_back(netprobe::testing::makeSample(makeKey("198.18.0.9", "198.18.0.2", 0, 0, 1, 3), 4, 400, 1, 2));
    // Without the TopTalkers stage there is no top-talker family at all.
    EXPECT_EQ(render(state).find("netprobe_top_talker_"), std::string::npos);
    addTalkers(state, 20);
    auto m = samples(render(state));
    EXPECT_EQ(
        m[R"(netprobe_top_talker_packets_rate{interface="veth0",direction="ingress",protocol="icmp",local_ip="198.18.0.2",peer_ip="198.18.0.9",server_port="",server_side=""})"],
        "8");
}

TEST(Render, PassesPromtoolCheckMetrics) {
    auto state = sampleState(50);
    addTalkers(state, 20);
    auto r = netprobe::testing::promtoolCheckMetrics(render(state));
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "") << r.output;
}
