// Per-cgroup traffic in the pure exports: grouping of cgroup counters by container,
// /api/v1/containers traffic by protocol, netprobe_container_* series (budget, "other",
// promtool), the cgroup_traffic map health series, and the options.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/grouping.hpp>
#include <netprobe/metrics/render.hpp>
#include <netprobe/metrics/server.hpp>

#include "metrics/json_api.hpp"
#include "metrics_text.hpp"
#include "options.hpp"
#include "promtool_check.hpp"

using namespace netprobe;
using nlohmann::json;

namespace {

const std::string kCid = std::string(64, 'a');
const std::string kCid2 = std::string(64, 'b');
const std::string kUid = "0d1c2b3a-4e5f-6a7b-8c9d-0e1f2a3b4c5d";

// cgroups 100 (container kCid, pod shop/web-1) and 101 (a cgroup below it), 200 (kCid2,
// plain Docker), 1 (the root: no container); others unknown.
class Attr final : public analysis::Attribution {
public:
    analysis::FlowLabels flow(const flow_key&) const override { return {}; }
    std::vector<analysis::LocalPod> localPods() const override { return {}; }
    bool synced() const override { return true; }
    std::optional<analysis::ContainerLabels> container(std::uint64_t id) const override {
        const std::string pod_path = "/kubepods/besteffort/pod" + kUid + "/" + kCid;
        if (id == 100) return analysis::ContainerLabels{pod_path, kCid, kUid, "shop", "web-1", "web"};
        if (id == 101) return analysis::ContainerLabels{pod_path + "/sub", kCid, kUid, "shop", "web-1", "web"};
        if (id == 200) return analysis::ContainerLabels{"/system.slice/docker-" + kCid2 + ".scope", kCid2, "", "", "", ""};
        if (id == 1) return analysis::ContainerLabels{"/", "", "", "", "", ""};
        return std::nullopt;
    }
};

ebpf::CgroupTraffic cg(std::uint64_t id, std::initializer_list<std::tuple<int, int, std::uint64_t, std::uint64_t>> c) {
    ebpf::CgroupTraffic t;
    t.cgroup_id = id;
    for (auto [d, p, packets, bytes] : c) t.counters[d][p] = {packets, bytes};
    return t;
}

collector::Snapshot snapshot() {
    collector::Snapshot s;
    s.sequence = 3;
    auto st = std::make_shared<ebpf::CgroupTrafficStats>();
    st->cgroups = {
        cg(1, {{NP_DIR_EGRESS, NP_CG_PROTO_TCP, 1000, 1000000}}),
        cg(100, {{NP_DIR_EGRESS, NP_CG_PROTO_UDP, 10, 1280}, {NP_DIR_INGRESS, NP_CG_PROTO_UDP, 9, 1152},
                 {NP_DIR_EGRESS, NP_CG_PROTO_ICMP, 3, 252}}),
        cg(101, {{NP_DIR_INGRESS, NP_CG_PROTO_ICMP, 3, 252}, {NP_DIR_EGRESS, NP_CG_PROTO_TCP, 2, 120}}),
        cg(200, {{NP_DIR_EGRESS, NP_CG_PROTO_OTHER, 5, 500}}),
        cg(999, {{NP_DIR_EGRESS, NP_CG_PROTO_UDP, 7, 700}}),
    };
    st->insert_failures = 4;
    st->entries = 8;
    st->capacity = 16;
    s.cgroup_traffic = st;
    return s;
}

// The main pipeline's views of a snapshot: its grouping stage run with the attribution.
analysis::Views grouped(const collector::Snapshot& s, const analysis::Attribution* a) {
    analysis::Views v;
    v.snapshot = std::make_shared<const collector::Snapshot>(s);
    v.flows = std::make_shared<const analysis::FlowView>();
    std::shared_ptr<const analysis::Attribution> attr(a, [](const analysis::Attribution*) {});
    analysis::Grouping g(a ? attr : nullptr, {});
    g.run(*v.snapshot, v);
    return v;
}

TEST(CgroupTraffic, GroupedByContainerLeavingOutOtherCgroups) {
    Attr a;
    auto s = snapshot();
    auto t = analysis::containerTraffic(s, &a);
    ASSERT_EQ(t.size(), 2u);
    EXPECT_EQ(t[0].container_id, kCid);
    EXPECT_EQ(t[0].cgroup_ids, (std::vector<std::uint64_t>{100, 101}));
    EXPECT_EQ(t[0].labels.pod, "web-1");
    EXPECT_EQ(t[0].counters[NP_DIR_EGRESS][NP_CG_PROTO_UDP].packets, 10u);
    EXPECT_EQ(t[0].counters[NP_DIR_INGRESS][NP_CG_PROTO_ICMP].bytes, 252u);
    EXPECT_EQ(t[0].tx().packets, 15u);
    EXPECT_EQ(t[0].tx().bytes, 1280u + 252 + 120);
    EXPECT_EQ(t[0].rx().packets, 12u);
    EXPECT_EQ(t[1].container_id, kCid2);
    EXPECT_EQ(t[1].tx().packets, 5u);
    EXPECT_TRUE(analysis::containerTraffic(s, nullptr).empty());
    s.cgroup_traffic.reset();
    EXPECT_TRUE(analysis::containerTraffic(s, &a).empty());
}

TEST(CgroupTraffic, ContainersJsonByProtocolWithoutTheStackMonitor) {
    Attr a;
    auto s = snapshot();
    auto j = metrics::containersJson(grouped(s, &a), &a);
    EXPECT_TRUE(j["enabled"].get<bool>());
    EXPECT_TRUE(j["cgroup_traffic_enabled"].get<bool>());
    EXPECT_FALSE(j["connections_enabled"].get<bool>());
    ASSERT_EQ(j["total"], 2);
    const auto& c = j["containers"][0];
    EXPECT_EQ(c["container_id"], kCid);
    EXPECT_EQ(c["pod_uid"], kUid);
    EXPECT_EQ(c["namespace"], "shop");
    EXPECT_EQ(c["cgroup_ids"], json::array({100, 101}));
    EXPECT_EQ(c["traffic"]["udp"], json({{"tx_packets", 10}, {"tx_bytes", 1280}, {"rx_packets", 9}, {"rx_bytes", 1152}}));
    EXPECT_EQ(c["traffic"]["icmp"], json({{"tx_packets", 3}, {"tx_bytes", 252}, {"rx_packets", 3}, {"rx_bytes", 252}}));
    EXPECT_EQ(c["traffic"]["tcp"], json({{"tx_packets", 2}, {"tx_bytes", 120}, {"rx_packets", 0}, {"rx_bytes", 0}}));
    EXPECT_EQ(c["traffic"]["other"], json({{"tx_packets", 0}, {"tx_bytes", 0}, {"rx_packets", 0}, {"rx_bytes", 0}}));
    EXPECT_EQ(c["traffic"]["all"],
              json({{"tx_packets", 15}, {"tx_bytes", 1652}, {"rx_packets", 12}, {"rx_bytes", 1404}}));
    EXPECT_EQ(c["connections_open"], 0);
    EXPECT_EQ(j["containers"][1]["traffic"]["other"]["tx_packets"], 5);

    // without the cgroup counters: no traffic member, enabled only with connection records
    s.cgroup_traffic.reset();
    auto off = metrics::containersJson(grouped(s, &a), &a);
    EXPECT_FALSE(off["enabled"].get<bool>());
    EXPECT_FALSE(off["cgroup_traffic_enabled"].get<bool>());
    EXPECT_EQ(off["total"], 0);
}

TEST(CgroupTraffic, ContainerMetricsBudgetOtherAndPromtool) {
    Attr a;
    auto s = snapshot();
    auto t = analysis::containerTraffic(s, &a);
    auto text = metrics::renderContainerMetrics(t, {true, 10});
    auto v = netprobe::testing::samples(text);
    const std::string l1 = "{container_id=\"" + kCid + "\",namespace=\"shop\",pod=\"web-1\"}";
    const std::string l2 = "{container_id=\"" + kCid2 + "\",namespace=\"\",pod=\"\"}";
    EXPECT_EQ(v["netprobe_container_tx_packets_total" + l1], "15") << text;
    EXPECT_EQ(v["netprobe_container_tx_bytes_total" + l1], "1652");
    EXPECT_EQ(v["netprobe_container_rx_packets_total" + l1], "12");
    EXPECT_EQ(v["netprobe_container_rx_bytes_total" + l1], "1404");
    EXPECT_EQ(v["netprobe_container_tx_packets_total" + l2], "5");
    EXPECT_EQ(v.size(), 8u) << text;  // 2 containers x 4 families, no "other"
    auto r = netprobe::testing::promtoolCheckMetrics(text);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "");

    // budget 1: the container with the most bytes keeps its series, the other is summed
    auto one = netprobe::testing::samples(metrics::renderContainerMetrics(t, {true, 1}));
    const std::string other = "{container_id=\"other\",namespace=\"other\",pod=\"other\"}";
    EXPECT_EQ(one["netprobe_container_tx_packets_total" + l1], "15");
    EXPECT_EQ(one.count("netprobe_container_tx_packets_total" + l2), 0u);
    EXPECT_EQ(one["netprobe_container_tx_packets_total" + other], "5");
    EXPECT_EQ(one["netprobe_container_rx_bytes_total" + other], "0");
    EXPECT_EQ(one.size(), 8u);
    // budget 0: everything in "other"
    auto none = netprobe::testing::samples(metrics::renderContainerMetrics(t, {true, 0}));
    EXPECT_EQ(none["netprobe_container_tx_packets_total" + other], "20");
    EXPECT_EQ(none.size(), 4u);
    EXPECT_EQ(metrics::renderContainerMetrics(t, {false, 10}), "");
    // no containers: the families are declared, with no series
    EXPECT_TRUE(netprobe::testing::samples(metrics::renderContainerMetrics({}, {true, 10})).empty());
}

TEST(CgroupTraffic, MapHealthSeries) {
    auto s = snapshot();
    auto v = netprobe::testing::samples(metrics::renderMetrics(grouped(s, nullptr)));
    EXPECT_EQ(v["netprobe_map_update_errors_total{map=\"cgroup_traffic\"}"], "4");
    EXPECT_EQ(v["netprobe_map_entries{map=\"cgroup_traffic\"}"], "8");
    EXPECT_EQ(v["netprobe_map_capacity{map=\"cgroup_traffic\"}"], "16");
    EXPECT_EQ(v["netprobe_map_fill_ratio{map=\"cgroup_traffic\"}"], "0.5");
    s.cgroup_traffic.reset();
    auto off = netprobe::testing::samples(metrics::renderMetrics(grouped(s, nullptr)));
    EXPECT_EQ(off.count("netprobe_map_entries{map=\"cgroup_traffic\"}"), 0u);
    EXPECT_EQ(off.count("netprobe_map_update_errors_total{map=\"cgroup_traffic\"}"), 0u);
}

TEST(CgroupTraffic, Options) {
    auto parse = [](std::vector<const char*> args) {
        args.insert(args.begin(), "netprobe-agent");
        return netprobe::agent::parseOptions(static_cast<int>(args.size()), args.data(), nullptr);
    };
    auto d = parse({});
    ASSERT_TRUE(d.run);
    EXPECT_TRUE(d.options.cgroup_traffic);
    EXPECT_TRUE(d.options.container_metrics);
    EXPECT_EQ(d.options.container_metrics_limit, 500u);
    auto off = parse({"--cgroup-traffic=off", "--container-metrics=off", "--container-metrics-limit=0"});
    ASSERT_TRUE(off.run) << off.output;
    EXPECT_FALSE(off.options.cgroup_traffic);
    EXPECT_FALSE(off.options.container_metrics);
    EXPECT_EQ(off.options.container_metrics_limit, 0u);
    for (auto [arg, flag] : {std::pair{"--cgroup-traffic=maybe", "--cgroup-traffic"},
                             std::pair{"--container-metrics=1", "--container-metrics"},
                             std::pair{"--container-metrics-limit=-1", "--container-metrics-limit"},
                             std::pair{"--container-metrics-limit=100001", "--container-metrics-limit"}}) {
        auto bad = parse({arg});
        EXPECT_FALSE(bad.run) << arg;
        EXPECT_EQ(bad.exit_code, 2) << arg;
        EXPECT_NE(bad.output.find(flag), std::string::npos) << bad.output;
        EXPECT_EQ(bad.output.find('\n'), std::string::npos) << bad.output;
    }
}

}  // namespace
