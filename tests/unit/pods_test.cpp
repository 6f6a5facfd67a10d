// Attribution in the pure exports: the pod fields and namespace= filter of flowsJson,
// podTraffic aggregation, renderPodMetrics (budget, promtool), podsJson.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include <netprobe/metrics/attribution.hpp>

#include "export/json_api.hpp"
#include "promtool_check.hpp"
#include "test_flows.hpp"

using netprobe::testing::makeKey;
using namespace netprobe;
using nlohmann::json;

namespace {

metrics::LocalPod pod(const std::string& ns, const std::string& name, std::vector<std::string> ips, bool host_net = false) {
    metrics::LocalPod p;
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
class FixedAttribution final : public metrics::Attribution {
public:
    explicit FixedAttribution(std::vector<metrics::LocalPod> pods) : pods_(std::move(pods)) {}
    metrics::FlowLabels flow(const flow_key& k) const override {
        metrics::FlowLabels l;
        auto find = [&](const np_addr& a) -> const metrics::LocalPod* {
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
    std::vector<metrics::LocalPod> localPods() const override { return pods_; }
    bool synced() const override { return true; }

private:
    std::vector<metrics::LocalPod> pods_;
};

collector::FlowRecord flow(const std::string& src, const std::string& dst, std::uint16_t dport, std::uint64_t pkts,
                           std::uint64_t bytes, std::uint32_t ifindex = 2, std::uint8_t dir = NP_DIR_INGRESS) {
    collector::FlowRecord f;
    f.key = makeKey(src, dst, 40000, dport, 6, ifindex, dir);
    f.interface = "veth" + std::to_string(ifindex);
    f.packets = pkts;
    f.bytes = bytes;
    return f;
}

collector::Snapshot snapshot() {
    collector::Snapshot s;
    s.sequence = 2;
    s.taken_at = std::chrono::system_clock::now();
    // ui -> web seen on ui's veth (ingress) and on web's veth (egress): one packet stream
    s.flows.push_back(flow("10.244.0.5", "10.244.0.6", 8080, 10, 5000, 2, NP_DIR_INGRESS));
    s.flows.push_back(flow("10.244.0.5", "10.244.0.6", 8080, 10, 5000, 3, NP_DIR_EGRESS));
    // web -> ui answers
    collector::FlowRecord back = flow("10.244.0.6", "10.244.0.5", 40000, 4, 800, 3, NP_DIR_INGRESS);
    back.key.src_port = 8080;
    s.flows.push_back(back);
    // ui -> kube-dns ClusterIP
    s.flows.push_back(flow("10.244.0.5", "10.96.0.10", 53, 2, 150));
    // unrelated
    s.flows.push_back(flow("192.0.2.1", "192.0.2.2", 443, 7, 7000));
    return s;
}

std::vector<metrics::LocalPod> twoPods() {
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
    auto t = metrics::podTraffic(snapshot(), pods);
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

TEST(PodMetrics, SeriesPerPodAndPromtool) {
    auto pods = twoPods();
    auto text = metrics::renderPodMetrics(metrics::podTraffic(snapshot(), pods), {});
    EXPECT_NE(text.find("netprobe_pod_tx_bytes_total{namespace=\"frontend\",pod=\"ui-abc\"} 5150\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("netprobe_pod_rx_bytes_total{namespace=\"shop\",pod=\"web-xyz\"} 5000\n"), std::string::npos);
    EXPECT_EQ(text.find("{namespace=\"other\",pod=\"other\"}"), std::string::npos);  // within budget: no "other"
    auto r = netprobe::testing::promtoolCheckMetrics(text);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "") << r.output;
}

TEST(PodMetrics, BudgetAggregatesTheRestAsOther) {
    std::vector<metrics::LocalPod> pods;
    collector::Snapshot s;
    for (int i = 0; i < 5; ++i) {
        std::string ip = "10.244.1." + std::to_string(i + 1);
        pods.push_back(pod("ns", "p" + std::to_string(i), {ip}));
        s.flows.push_back(flow(ip, "192.0.2.1", 80, 1, static_cast<std::uint64_t>(100 * (i + 1))));
    }
    pods.push_back(pod("ns", "hostnet", {"10.0.0.1"}, true));
    metrics::PodMetricsOptions o;
    o.limit = 2;
    auto text = metrics::renderPodMetrics(metrics::podTraffic(s, pods), o);
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
    EXPECT_EQ(metrics::renderPodMetrics(metrics::podTraffic(s, pods), o), "");
    // a pod that is gone from the list has no series
    pods.erase(pods.begin() + 4);
    o = {};
    text = metrics::renderPodMetrics(metrics::podTraffic(s, pods), o);
    EXPECT_EQ(text.find("pod=\"p4\""), std::string::npos);
    EXPECT_NE(text.find("pod=\"p3\""), std::string::npos);
}

TEST(PodsJson, ListsPodsWithTraffic) {
    auto pods = twoPods();
    auto s = snapshot();
    auto doc = json::parse(metrics::podsJson(s, metrics::podTraffic(s, pods), true, true));
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
    auto off = json::parse(metrics::podsJson(s, {}, false, false));
    EXPECT_EQ(off["enabled"], false);
    EXPECT_EQ(off["pods"], json::array());
}

// The _total counters must never go down: flows leave the flow table (idle timeout,
// eviction) but what they carried stays counted. Pods that go away are forgotten.
TEST(PodCounters, TotalsStayMonotonicWhenFlowsExpireAndForgetDeletedPods) {
    std::vector<metrics::LocalPod> pods = {pod("default", "web-1", {"198.18.0.2"}), pod("default", "db-1", {"198.18.0.3"})};
    metrics::PodCounters c;
    collector::Snapshot s1;
    s1.sequence = 1;
    auto f = flow("198.18.0.2", "198.18.0.3", 5432, 10, 1000);
    f.interval_packets = 10;
    f.interval_bytes = 1000;
    s1.flows.push_back(f);
    c.observe(s1, pods);
    c.observe(s1, pods);  // the same collection twice counts once
    auto t = c.traffic(pods);
    EXPECT_EQ(t[0].tx_packets, 10u);
    EXPECT_EQ(t[1].rx_bytes, 1000u);

    collector::Snapshot s2;  // the flow moved 5 more packets
    s2.sequence = 2;
    f.packets = 15;
    f.bytes = 1500;
    f.interval_packets = 5;
    f.interval_bytes = 500;
    s2.flows.push_back(f);
    c.observe(s2, pods);
    EXPECT_EQ(c.traffic(pods)[0].tx_packets, 15u);

    collector::Snapshot s3;  // the flow expired from the table: totals stay
    s3.sequence = 3;
    c.observe(s3, pods);
    t = c.traffic(pods);
    EXPECT_EQ(t[0].tx_packets, 15u);
    EXPECT_EQ(t[1].rx_bytes, 1500u);

    pods.pop_back();  // db-1 deleted
    collector::Snapshot s4;
    s4.sequence = 4;
    c.observe(s4, pods);
    pods.push_back(pod("default", "db-1", {"198.18.0.3"}));  // a new pod with the same name starts from zero
    EXPECT_EQ(c.traffic(pods)[1].rx_bytes, 0u);
}
