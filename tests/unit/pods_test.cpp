// Attribution in the pure exports: the pod fields and namespace= filter of flowsJson,
// podTraffic aggregation, renderPodMetrics (budget, promtool), podsJson.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/grouping.hpp>
#include <netprobe/metrics/render.hpp>

#include "metrics/json_api.hpp"
#include "promtool_check.hpp"
#include "test_flows.hpp"

using netprobe::testing::makeKey;
using namespace netprobe;
using nlohmann::json;

namespace {

analysis::LocalPod pod(const std::string& ns, const std::string& name, std::vector<std::string> ips, bool host_net = false) {
    analysis::LocalPod p;
    p.ns = ns;
    p.name = name;
    p.uid = "uid-" + name;
    p.node = "node-a";
    p.workload = name.substr(0, name.find('-'));
    p.workload_kind = "Deployment";
    for (const auto& ip : ips) p.ips.push_back(*util::parseAddr(ip));
    p.host_network = host_net;
    return p;
}

// Attribution over fixed pods: by IP, and a "Service" 10.96.0.10:53 in kube-system.
class FixedAttribution final : public analysis::Attribution {
public:
    explicit FixedAttribution(std::vector<analysis::LocalPod> pods) : pods_(std::move(pods)) {}
    analysis::FlowLabels flow(const flow_key& k) const override {
        analysis::FlowLabels l;
        auto find = [&](const np_addr& a) -> const analysis::LocalPod* {
            auto addr = std::bit_cast<util::Addr16>(a);
            for (const auto& p : pods_)
                for (const auto& ip : p.ips)
                    if (ip == addr) return &p;
            return nullptr;
        };
        if (auto* s = find(k.src_ip)) l.src_namespace = s->ns, l.src_pod = s->name, l.src_workload = s->workload;
        if (auto* d = find(k.dst_ip)) l.dst_namespace = d->ns, l.dst_pod = d->name, l.dst_workload = d->workload;
        if (std::bit_cast<util::Addr16>(k.dst_ip) == *util::parseAddr("10.96.0.10") && k.dst_port == 53)
            l.dst_namespace = "kube-system", l.dst_service = "kube-dns";
        return l;
    }
    std::vector<analysis::LocalPod> localPods() const override { return pods_; }
    bool synced() const override { return true; }

private:
    std::vector<analysis::LocalPod> pods_;
};

analysis::FlowRecord flow(const std::string& src, const std::string& dst, std::uint16_t dport, std::uint64_t pkts,
                          std::uint64_t bytes, std::uint32_t ifindex = 2, std::uint8_t dir = NP_DIR_INGRESS) {
    analysis::FlowRecord f;
    f.key = makeKey(src, dst, 40000, dport, 6, ifindex, dir);
    f.packets = pkts;
    f.bytes = bytes;
    return f;
}

// The flows as one interval's samples (what the grouping stage counts).
std::vector<collector::FlowSample> samplesOf(const std::vector<analysis::FlowRecord>& flows) {
    std::vector<collector::FlowSample> out;
    for (const auto& f : flows) out.push_back(netprobe::testing::makeSample(f.key, f.packets, f.bytes, 1, 1));
    return out;
}

netprobe::testing::TestState state() {
    netprobe::testing::TestState t;
    t.snap.sequence = 2;
    t.snap.taken_at = std::chrono::system_clock::now();
    t.ifnames = {{2, "veth2"}, {3, "veth3"}};
    // ui -> web seen on ui's veth (ingress) and on web's veth (egress): one packet stream
    t.flows.push_back(flow("10.244.0.5", "10.244.0.6", 8080, 10, 5000, 2, NP_DIR_INGRESS));
    t.flows.push_back(flow("10.244.0.5", "10.244.0.6", 8080, 10, 5000, 3, NP_DIR_EGRESS));
    // web -> ui answers
    analysis::FlowRecord back = flow("10.244.0.6", "10.244.0.5", 40000, 4, 800, 3, NP_DIR_INGRESS);
    back.key.src_port = 8080;
    t.flows.push_back(back);
    // ui -> kube-dns ClusterIP
    t.flows.push_back(flow("10.244.0.5", "10.96.0.10", 53, 2, 150));
    // unrelated
    t.flows.push_back(flow("192.0.2.1", "192.0.2.2", 443, 7, 7000));
    return t;
}

analysis::Views snapshot() { return state().views(); }

std::vector<analysis::LocalPod> twoPods() {
    return {pod("frontend", "ui-abc", {"10.244.0.5"}), pod("shop", "web-xyz", {"10.244.0.6", "fd00::6"})};
}

}  // namespace

TEST(FlowsJsonAttribution, AddsKnownFieldsOnly) {
    FixedAttribution attr(twoPods());
    auto s = snapshot();
    metrics::FlowQuery q;
    auto doc = json::parse(metrics::flowsJson(s, q, &attr));
    ASSERT_EQ(doc["flows"].size(), 5u);
    std::map<std::string, json> by_dst;
    for (const auto& f : doc["flows"]) by_dst[f["dst_ip"].get<std::string>() + "/" + f["interface"].get<std::string>()] = f;
    const auto& uw = by_dst.at("10.244.0.6/veth2");
    EXPECT_EQ(uw["src_namespace"], "frontend");
    EXPECT_EQ(uw["src_pod"], "ui-abc");
    EXPECT_EQ(uw["src_workload"], "ui");
    EXPECT_EQ(uw["dst_namespace"], "shop");
    EXPECT_EQ(uw["dst_pod"], "web-xyz");
    EXPECT_EQ(uw["dst_workload"], "web");
    EXPECT_FALSE(uw.contains("dst_service"));
    const auto& dns = by_dst.at("10.96.0.10/veth2");
    EXPECT_EQ(dns["dst_service"], "kube-dns");
    EXPECT_EQ(dns["dst_namespace"], "kube-system");
    EXPECT_FALSE(dns.contains("dst_pod"));
    const auto& other = by_dst.at("192.0.2.2/veth2");
    for (const char* k : {"src_namespace", "src_pod", "src_workload", "dst_namespace", "dst_pod", "dst_workload",
                          "dst_service"})
        EXPECT_FALSE(other.contains(k)) << k;
    EXPECT_EQ(other["protocol"], "tcp");  // the existing fields are untouched
}

TEST(FlowsJsonAttribution, WithoutAttributionNoFields) {
    auto s = snapshot();
    auto doc = json::parse(metrics::flowsJson(s, metrics::FlowQuery{}));
    for (const auto& f : doc["flows"]) EXPECT_FALSE(f.contains("src_pod"));
}

TEST(FlowsJsonAttribution, EscapesNames) {
    FixedAttribution attr({pod("we\"ird\\ns", "p\n-1", {"10.244.0.5"})});
    auto doc = json::parse(metrics::flowsJson(snapshot(), metrics::FlowQuery{}, &attr));
    bool seen = false;
    for (const auto& f : doc["flows"])
        if (f.contains("src_pod")) {
            EXPECT_EQ(f["src_namespace"], "we\"ird\\ns");
            EXPECT_EQ(f["src_pod"], "p\n-1");
            seen = true;
        }
    EXPECT_TRUE(seen);
}

TEST(FlowsJsonAttribution, NamespaceFilter) {
    FixedAttribution attr(twoPods());
    auto q = metrics::parseFlowQuery({{"namespace", "shop"}}, 100, 1000);
    ASSERT_TRUE(q);
    auto doc = json::parse(metrics::flowsJson(snapshot(), *q, &attr));
    EXPECT_EQ(doc["total"], 3);  // ui->web twice (two hooks) and web->ui
    for (const auto& f : doc["flows"])
        EXPECT_TRUE(f.value("src_namespace", "") == "shop" || f.value("dst_namespace", "") == "shop");
    q = metrics::parseFlowQuery({{"namespace", "kube-system"}}, 100, 1000);
    EXPECT_EQ(json::parse(metrics::flowsJson(snapshot(), *q, &attr))["total"], 1);
    // without an attribution nothing is known to be in a namespace
    EXPECT_EQ(json::parse(metrics::flowsJson(snapshot(), *q))["total"], 0);
    EXPECT_FALSE(metrics::parseFlowQuery({{"namespace", ""}}, 100, 1000));
}

TEST(PodTraffic, SumsBothEndsAndCountsEachTupleOnce) {
    auto pods = twoPods();
    pods.push_back(pod("kube-system", "node-exporter-1", {"10.244.0.5"}, true));  // host network: no traffic
    pods.push_back(pod("shop", "idle-1", {"10.244.0.9"}));
    auto t = analysis::podTraffic(analysis::perTuple(samplesOf(state().flows)), pods);
    ASSERT_EQ(t.size(), 4u);
    EXPECT_EQ(t[0].pod, &pods[0]);
    // ui: tx = ui->web (5000, once) + ui->dns (150); rx = web->ui
    EXPECT_EQ(t[0].tx_packets, 12u);
    EXPECT_EQ(t[0].tx_bytes, 5150u);
    EXPECT_EQ(t[0].rx_packets, 4u);
    EXPECT_EQ(t[0].rx_bytes, 800u);
    EXPECT_EQ(t[1].rx_bytes, 5000u);
    EXPECT_EQ(t[1].tx_bytes, 800u);
    EXPECT_EQ(t[2].tx_bytes + t[2].rx_bytes, 0u);
    EXPECT_EQ(t[3].tx_bytes + t[3].rx_bytes, 0u);
}

// Both pods' veths monitored: a packet is in two samples (ui's veth ingress, web's veth
// egress), read at slightly different moments. The one kept is at the sender's own veth,
// so the totals add up to what that veth counted, interval after interval.
TEST(PodTraffic, CountsATupleAtTheSendersOwnVeth) {
    auto pods = twoPods();
    pods[0].host_interfaces = {"veth-ui"};
    pods[1].host_interfaces = {"veth-web"};
    std::vector<collector::InterfaceStats> ifs(2);
    ifs[0].name = "veth-ui";
    ifs[0].index = 11;
    ifs[1].name = "veth-web";
    ifs[1].index = 12;
    const auto veths = analysis::podVeths(pods, ifs);
    ASSERT_EQ(veths.size(), 2u);
    auto at = [](const char* src, const char* dst, std::uint32_t ifindex, std::uint8_t dir, std::uint64_t pkts) {
        return netprobe::testing::makeSample(makeKey(src, dst, 40000, 8080, 6, ifindex, dir), pkts, pkts * 100, 1, 1);
    };
    // interval 1: ui's veth read 10 packets, web's veth (read a little later) 11
    // interval 2: ui's veth 10 more, web's veth 9 (the 11th of interval 1 was in its count)
    std::vector<collector::FlowSample> i1{at("10.244.0.5", "10.244.0.6", 11, NP_DIR_INGRESS, 10),
                                          at("10.244.0.5", "10.244.0.6", 12, NP_DIR_EGRESS, 11)};
    std::vector<collector::FlowSample> i2{at("10.244.0.5", "10.244.0.6", 11, NP_DIR_INGRESS, 10),
                                          at("10.244.0.5", "10.244.0.6", 12, NP_DIR_EGRESS, 9)};
    analysis::PodCounters c;
    c.observe(analysis::perTuple(i1, veths), pods);
    c.observe(analysis::perTuple(i2, veths), pods);
    auto t = c.traffic(pods);
    EXPECT_EQ(t[0].tx_packets, 20u);  // the largest of each interval would say 21
    EXPECT_EQ(t[1].rx_packets, 20u);
    // interval 3: the last packet was read at web's veth only (ui's veth had read it in
    // interval 2): not counted again
    std::vector<collector::FlowSample> i3{at("10.244.0.5", "10.244.0.6", 12, NP_DIR_EGRESS, 1)};
    c.observe(analysis::perTuple(i3, veths), pods);
    EXPECT_EQ(c.traffic(pods)[0].tx_packets, 20u);
    // the sender's veth not monitored: the receiver's own veth, not another hook
    std::vector<collector::InterfaceStats> web_only{ifs[1]};
    const auto veths2 = analysis::podVeths(pods, web_only);
    std::vector<collector::FlowSample> only_web{at("10.244.0.5", "10.244.0.6", 12, NP_DIR_EGRESS, 9),
                                                at("10.244.0.5", "10.244.0.6", 99, NP_DIR_INGRESS, 12)};
    auto kept = analysis::perTuple(only_web, veths2);
    ASSERT_EQ(kept.size(), 1u);
    EXPECT_EQ(kept[0].packets, 9u);
    EXPECT_EQ(kept[0].key.ifindex, 12u);
}

TEST(PodMetrics, SeriesPerPodAndPromtool) {
    auto pods = twoPods();
    auto text = metrics::renderPodMetrics(analysis::podTraffic(analysis::perTuple(samplesOf(state().flows)), pods), {});
    EXPECT_NE(text.find("netprobe_pod_tx_bytes_total{namespace=\"frontend\",pod=\"ui-abc\"} 5150\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("netprobe_pod_rx_bytes_total{namespace=\"shop\",pod=\"web-xyz\"} 5000\n"), std::string::npos);
    EXPECT_EQ(text.find("{namespace=\"other\",pod=\"other\"}"), std::string::npos);  // within budget: no "other"
    auto r = netprobe::testing::promtoolCheckMetrics(text);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "") << r.output;
}

TEST(PodMetrics, BudgetAggregatesTheRestAsOther) {
    std::vector<analysis::LocalPod> pods;
    std::vector<analysis::FlowRecord> flows;
    for (int i = 0; i < 5; ++i) {
        std::string ip = "10.244.1." + std::to_string(i + 1);
        pods.push_back(pod("ns", "p" + std::to_string(i), {ip}));
        flows.push_back(flow(ip, "192.0.2.1", 80, 1, static_cast<std::uint64_t>(100 * (i + 1))));
    }
    const auto s = samplesOf(flows);
    pods.push_back(pod("ns", "hostnet", {"10.0.0.1"}, true));
    metrics::PodMetricsOptions o;
    o.limit = 2;
    auto text = metrics::renderPodMetrics(analysis::podTraffic(analysis::perTuple(s), pods), o);
    // the two busiest (p4: 500, p3: 400) keep their series; p0..p2 (100+200+300) are "other"
    EXPECT_NE(text.find("netprobe_pod_tx_bytes_total{namespace=\"ns\",pod=\"p4\"} 500\n"), std::string::npos) << text;
    EXPECT_NE(text.find("netprobe_pod_tx_bytes_total{namespace=\"ns\",pod=\"p3\"} 400\n"), std::string::npos);
    EXPECT_NE(text.find("netprobe_pod_tx_bytes_total{namespace=\"other\",pod=\"other\"} 600\n"), std::string::npos);
    EXPECT_NE(text.find("netprobe_pod_tx_packets_total{namespace=\"other\",pod=\"other\"} 3\n"), std::string::npos);
    EXPECT_EQ(text.find("pod=\"p2\""), std::string::npos);
    EXPECT_EQ(text.find("hostnet"), std::string::npos);
    auto r = netprobe::testing::promtoolCheckMetrics(text);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    o.enabled = false;
    EXPECT_EQ(metrics::renderPodMetrics(analysis::podTraffic(analysis::perTuple(s), pods), o), "");
    // a pod that is gone from the list has no series
    pods.erase(pods.begin() + 4);
    o = {};
    text = metrics::renderPodMetrics(analysis::podTraffic(analysis::perTuple(s), pods), o);
    EXPECT_EQ(text.find("pod=\"p4\""), std::string::npos);
    EXPECT_NE(text.find("pod=\"p3\""), std::string::npos);
}

TEST(PodsJson, ListsPodsWithTraffic) {
    auto t = state();
    auto g = std::make_shared<analysis::GroupView>();
    g->attribution = g->kubernetes = g->synced = true;
    g->pods = twoPods();
    g->pod_traffic = analysis::podTraffic(analysis::perTuple(samplesOf(t.flows)), g->pods);
    t.groups = g;
    auto doc = json::parse(metrics::podsJson(t.views()));
    EXPECT_EQ(doc["enabled"], true);
    EXPECT_EQ(doc["synced"], true);
    EXPECT_EQ(doc["total"], 2);
    ASSERT_EQ(doc["pods"].size(), 2u);
    const auto& ui = doc["pods"][0];
    EXPECT_EQ(ui["namespace"], "frontend");
    EXPECT_EQ(ui["name"], "ui-abc");
    EXPECT_EQ(ui["uid"], "uid-ui-abc");
    EXPECT_EQ(ui["node"], "node-a");
    EXPECT_EQ(ui["workload"], "ui");
    EXPECT_EQ(ui["workload_kind"], "Deployment");
    EXPECT_EQ(ui["ips"], json::array({"10.244.0.5"}));
    EXPECT_EQ(ui["tx_bytes"], 5150);
    EXPECT_EQ(ui["rx_bytes"], 800);
    EXPECT_EQ(doc["pods"][1]["ips"], json::array({"10.244.0.6", "fd00::6"}));
    t.groups = nullptr;
    auto off = json::parse(metrics::podsJson(t.views()));
    EXPECT_EQ(off["enabled"], false);
    EXPECT_EQ(off["pods"], json::array());
}

// The _total counters must never go down: flows leave the flow table (idle timeout,
// eviction) but what they carried stays counted. Pods that go away are forgotten.
TEST(PodCounters, TotalsStayMonotonicWhenFlowsExpireAndForgetDeletedPods) {
    std::vector<analysis::LocalPod> pods = {pod("default", "web-1", {"198.18.0.2"}), pod("default", "db-1", {"198.18.0.3"})};
    analysis::PodCounters c;
    auto f = flow("198.18.0.2", "198.18.0.3", 5432, 10, 1000);
    c.observe(analysis::perTuple(samplesOf({f})), pods);
    auto t = c.traffic(pods);
    EXPECT_EQ(t[0].tx_packets, 10u);
    EXPECT_EQ(t[1].rx_bytes, 1000u);

    f.packets = 5;  // the next interval: 5 more packets
    f.bytes = 500;
    c.observe(analysis::perTuple(samplesOf({f})), pods);
    EXPECT_EQ(c.traffic(pods)[0].tx_packets, 15u);

    c.observe({}, pods);  // no traffic: totals stay
    t = c.traffic(pods);
    EXPECT_EQ(t[0].tx_packets, 15u);
    EXPECT_EQ(t[1].rx_bytes, 1500u);

    pods.pop_back();  // db-1 deleted
    c.observe({}, pods);
    pods.push_back(pod("default", "db-1", {"198.18.0.3"}));  // a new pod with the same name starts from zero
    EXPECT_EQ(c.traffic(pods)[1].rx_bytes, 0u);
}
