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
        r.key = makeKey("198.18.0.1", "198.18.0.2", static_cast<std::uint16_t>(n), 80, 6, 3);
        r.interval_packets = r.packets = 1;
        r.interval_bytes = r.bytes = 100 + (nflows - n);  // already sorted, descending
        t.flows.push_back(r);
    }
    t.ifnames = {{3, "veth0"}, {5, i.name}};
    return t;
}

std::string render(const netprobe::testing::TestState& t, netprobe::metrics::RenderOptions o = {}) {
    return netprobe::metrics::renderMetrics(t.views(), o);
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

TEST(Render, TopFlowsAreCappedAndTheRestAggregated) {
    netprobe::metrics::RenderOptions o;
    o.top_flows = 5;
    auto snap = sampleState(1000);
    auto m = samples(render(snap, o));
    std::size_t top = 0;
    for (const auto& [k, v] : m)
        if (k.rfind("netprobe_top_flow_bytes_rate{", 0) == 0) ++top;
    EXPECT_EQ(top, 6u);  // 5 + other
    // other = the 995 remaining flows' bytes per second
    double other_bytes = 0;
    for (std::size_t n = 5; n < snap.flows.size(); ++n) other_bytes += static_cast<double>(snap.flows[n].interval_bytes);
    const std::string other =
        R"(netprobe_top_flow_bytes_rate{interface="other",direction="other",protocol="other",src_ip="other",src_port="other",dst_ip="other",dst_port="other"})";
    ASSERT_TRUE(m.contains(other));
    EXPECT_DOUBLE_EQ(std::stod(m[other]), other_bytes / 0.5);
    // The series count does not depend on the number of flows.
    auto m2 = samples(render(sampleState(20000), o));
    EXPECT_EQ(m.size(), m2.size());
}

TEST(Render, PassesPromtoolCheckMetrics) {
    auto r = netprobe::testing::promtoolCheckMetrics(render(sampleState(50)));
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "") << r.output;
}
