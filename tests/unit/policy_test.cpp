// NetworkPolicy monitoring: the stage (analysis::PolicyMonitor) after the topology stage on
// snapshots built here with injected time, against real policy sets (k8s::PolicySet behind
// k8s::buildPolicyEvaluator); the verdict keys; the export (netprobe_policy_*,
// /api/v1/policies); the rebuild debounce; PolicySet::summaries.
#include <gtest/gtest.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/policy.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/k8s/netpol.hpp>
#include <netprobe/k8s/policy_publisher.hpp>
#include <netprobe/metrics/policy.hpp>
#include <netprobe/util/ip.hpp>

#include "unit/promtool_check.hpp"

namespace {

using namespace netprobe;
using analysis::PolicyDecision;
using analysis::PolicyMonitor;
using analysis::PolicyMonitorOptions;
using analysis::Topology;
using analysis::Views;
using nlohmann::json;

util::Addr16 ip(const char* s) { return *util::parseAddr(s); }

// Pods: frontend/ui (app=ui) .11, shop/web (app=web, port "http" 8080) .12, shop/db
// (app=db) .13; namespaces frontend and shop; the node at .1.
constexpr const char* kUi = "198.18.7.11";
constexpr const char* kWeb = "198.18.7.12";
constexpr const char* kDb = "198.18.7.13";
constexpr const char* kNode = "198.18.7.1";

k8s::PodInfo pod(const char* ns, const char* name, const char* addr, const char* app) {
    k8s::PodInfo p;
    p.ns = ns;
    p.name = name;
    p.uid = std::string("uid-") + name;
    p.node = "node-a";
    p.ips = {ip(addr)};
    p.labels = {{"app", app}};
    if (std::string(app) == "web") p.ports = {{"http", 8080, 6}};
    return p;
}

k8s::NetworkPolicy policy(const json& j) {
    auto p = k8s::networkPolicyFromJson(j);
    EXPECT_TRUE(p) << (p ? "" : p.error().what());
    return p ? *p : k8s::NetworkPolicy{};
}

json meta(const char* ns, const char* name) {
    return {{"namespace", ns}, {"name", name}, {"uid", std::string("uid-") + name}};
}

// shop: default deny of ingress; web admits the frontend namespace on its "http" port.
std::vector<k8s::NetworkPolicy> shopPolicies() {
    return {policy({{"metadata", meta("shop", "default-deny")},
                    {"spec", {{"podSelector", json::object()}, {"policyTypes", {"Ingress"}}}}}),
            policy({{"metadata", meta("shop", "allow-frontend")},
                    {"spec",
                     {{"podSelector", {{"matchLabels", {{"app", "web"}}}}},
                      {"ingress",
                       {{{"from", {{{"namespaceSelector",
                                     {{"matchLabels", {{"kubernetes.io/metadata.name", "frontend"}}}}}}}},
                         {"ports", {{{"port", "http"}}}}}}}}}})};
}

std::shared_ptr<const analysis::PolicyEvaluator> set(std::vector<k8s::NetworkPolicy> policies, std::uint64_t gen = 1) {
    std::vector<k8s::PodInfo> pods = {pod("frontend", "ui", kUi, "ui"), pod("shop", "web", kWeb, "web"),
                                      pod("shop", "db", kDb, "db")};
    std::vector<k8s::NamespaceInfo> nss = {{"frontend", "uid-frontend", "1", {}}, {"shop", "uid-shop", "1", {}}};
    std::vector<k8s::NodeInfo> nodes = {{"node-a", "uid-node-a", "1", {ip(kNode)}}};
    return k8s::buildPolicyEvaluator(std::move(policies), pods, nss, nodes, {}, gen);
}

collector::FlowSample sample(const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport,
                             std::uint64_t packets, std::uint8_t proto = 6, std::uint64_t first_ns = 0) {
    collector::FlowSample f;
    const auto a = ip(src), b = ip(dst);
    std::memcpy(&f.key.src_ip, a.data(), 16);
    std::memcpy(&f.key.dst_ip, b.data(), 16);
    f.key.src_port = sport;
    f.key.dst_port = dport;
    f.key.proto = proto;
    f.key.family = 4;
    f.key.ifindex = 1;
    f.packets = packets;
    f.bytes = packets * 100;
    f.first_seen_ns = first_ns;
    return f;
}

// The topology and policy stages over snapshots at t0 + seconds; the current set is
// whatever `current` holds.
struct Harness {
    std::shared_ptr<const analysis::PolicyEvaluator> current;
    Topology topology;
    std::unique_ptr<PolicyMonitor> stage;
    std::chrono::steady_clock::time_point t0{std::chrono::hours(1000)};
    Views v;

    explicit Harness(PolicyMonitorOptions o = {}) {
        o.policies = [this] { return current; };
        stage = std::make_unique<PolicyMonitor>(std::move(o));
    }
    const analysis::PolicyView& at(double seconds, std::vector<collector::FlowSample> flows) {
        auto s = std::make_shared<collector::Snapshot>();
        s->mono = t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
        s->taken_at = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000)) +
                      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds));
        s->flows = std::move(flows);
        v = Views{};
        v.snapshot = s;
        topology.run(*s, v);
        stage->run(*s, v);
        return *v.policy;
    }
};

const analysis::PolicySeries* series(const analysis::PolicyView& v, const std::string& ns, const std::string& pol) {
    for (const auto& s : v.series)
        if (s.ns == ns && s.policy == pol) return &s;
    return nullptr;
}
analysis::PolicyCounts counts(const analysis::PolicyView& v, const std::string& ns, const std::string& pol,
                              std::size_t verdict) {
    const auto* s = series(v, ns, pol);
    return s ? s->counts[verdict] : analysis::PolicyCounts{};
}
const analysis::PolicyHits* hits(const analysis::PolicyView& v, const std::string& id) {
    for (const auto& h : v.hits)
        if (h.id == id) return &h;
    return nullptr;
}
constexpr std::size_t kAllowed = 0, kDenied = 1, kNotSelected = 2;

}  // namespace

TEST(PolicyKeys, EachDecidingPolicyOnceWithItsSidesVerdict) {
    analysis::PolicyVerdict v;
    v.egress = {PolicyDecision::NotSelected, false, "frontend/ui", {}};
    v.ingress = {PolicyDecision::Denied, false, "shop/db", {"shop/a", "shop/b"}};
    v.allowed = false;
    auto k = analysis::policyKeys(v);
    ASSERT_EQ(k.size(), 3u);
    EXPECT_EQ(k[0], (analysis::PolicyKey{"frontend", "", 2}));
    EXPECT_EQ(k[1], (analysis::PolicyKey{"shop", "a", 1}));
    EXPECT_EQ(k[2], (analysis::PolicyKey{"shop", "b", 1}));
    // both sides allowed by the same policy (one namespace): once; an exemption: policy ""
    v.egress = {PolicyDecision::Allowed, false, "shop/web", {"shop/both"}};
    v.ingress = {PolicyDecision::Allowed, false, "shop/db", {"shop/both"}};
    EXPECT_EQ(analysis::policyKeys(v), (std::vector<analysis::PolicyKey>{{"shop", "both", 0}}));
    v.ingress = {PolicyDecision::Allowed, true, "shop/db", {}};
    EXPECT_EQ(analysis::policyKeys(v), (std::vector<analysis::PolicyKey>{{"shop", "", 0}, {"shop", "both", 0}}));
    v.egress = {};  // not a pod: nothing
    v.ingress = {};
    EXPECT_TRUE(analysis::policyKeys(v).empty());
}

TEST(PolicyMonitor, NotSyncedCountsNothing) {
    Harness h;
    const auto& v = h.at(0, {sample(kUi, 40000, kDb, 5432, 3), sample(kDb, 5432, kUi, 40000, 2)});
    EXPECT_FALSE(v.synced);
    EXPECT_TRUE(v.topology);
    EXPECT_TRUE(v.series.empty());
    EXPECT_EQ(v.conversations, 0u);
    const auto text = metrics::renderPolicyMetrics(v);
    EXPECT_NE(text.find("netprobe_policy_synced 0\n"), std::string::npos) << text;
}

// Allowed, denied and answered (a gap), denied and unanswered (enforced), UDP one way
// (unanswered): verdicts, counters, per-policy figures, enforcement.
TEST(PolicyMonitor, VerdictsCountersAndEnforcement) {
    PolicyMonitorOptions o;
    o.confirm_after = std::chrono::seconds(5);
    Harness h(o);
    h.current = set(shopPolicies());
    // t=0: ui -> web:8080 answered (allowed), ui -> db:5432 answered (denied: a gap),
    // ui -> web:9090 SYN only (denied), ui -> db:53/udp one way (denied)
    auto v = &h.at(0, {sample(kUi, 40000, kWeb, 8080, 10, 6, 100), sample(kWeb, 8080, kUi, 40000, 8, 6, 200),
                       sample(kUi, 40001, kDb, 5432, 3, 6, 100), sample(kDb, 5432, kUi, 40001, 2, 6, 200),
                       sample(kUi, 40002, kWeb, 9090, 1), sample(kUi, 40003, kDb, 53, 1, 17)});
    ASSERT_TRUE(v->synced);
    EXPECT_EQ(v->conversations, 4u);
    EXPECT_EQ(v->evaluations_total, 4u);
    // the ui pod's egress: no policy selects it (frontend has none), for all four
    EXPECT_EQ(counts(*v, "frontend", "", kNotSelected).flows, 4u);
    EXPECT_EQ(counts(*v, "frontend", "", kNotSelected).packets, 18u + 5u + 1u + 1u);
    EXPECT_EQ(counts(*v, "shop", "allow-frontend", kAllowed).flows, 1u);
    EXPECT_EQ(counts(*v, "shop", "allow-frontend", kAllowed).packets, 18u);
    // web is isolated by both policies: 9090 is denied by both; db only by default-deny
    EXPECT_EQ(counts(*v, "shop", "allow-frontend", kDenied).flows, 1u);
    EXPECT_EQ(counts(*v, "shop", "allow-frontend", kDenied).packets, 1u);
    EXPECT_EQ(counts(*v, "shop", "default-deny", kDenied).flows, 3u);
    EXPECT_EQ(counts(*v, "shop", "default-deny", kDenied).packets, 5u + 1u + 1u);
    EXPECT_EQ(counts(*v, "shop", "default-deny", kAllowed).flows, 0u);  // allowing is allow-frontend's
    EXPECT_EQ(v->denied_total, 3u);
    EXPECT_EQ(v->gaps_total, 1u);
    EXPECT_EQ(v->enforced_total, 0u);
    ASSERT_EQ(v->gaps.size(), 1u);
    EXPECT_EQ(v->gaps[0].server, ip(kDb));
    EXPECT_EQ(v->gaps[0].port, 5432);
    EXPECT_EQ(v->gaps[0].packets_out, 3u);
    EXPECT_EQ(v->gaps[0].packets_in, 2u);
    EXPECT_EQ(v->gaps[0].server_pod, "shop/db");
    EXPECT_EQ(v->gaps[0].verdict.ingress.policies, std::vector<std::string>{"shop/default-deny"});
    ASSERT_EQ(v->denied.size(), 3u);
    for (const auto& d : v->denied)
        EXPECT_EQ(d.enforcement, d.port == 5432 ? analysis::Enforcement::Gap : analysis::Enforcement::Pending);

    // t=3: the SYN retried (still pending); t=6: one more; 5 s after the first: enforced
    v = &h.at(3, {sample(kUi, 40002, kWeb, 9090, 1)});
    EXPECT_EQ(v->enforced_total, 0u);
    v = &h.at(6, {});
    EXPECT_EQ(v->enforced_total, 1u);
    EXPECT_EQ(v->gaps_total, 1u);
    for (const auto& d : v->denied) {
        if (d.port == 9090) {
            EXPECT_EQ(d.enforcement, analysis::Enforcement::Enforced);
            EXPECT_EQ(d.packets_out, 2u);
            EXPECT_EQ(d.packets_in, 0u);
        }
        if (d.port == 53) {
            EXPECT_EQ(d.enforcement, analysis::Enforcement::Unanswered);
        }
    }
    const auto* dd = hits(*v, "shop/default-deny");
    ASSERT_TRUE(dd);
    EXPECT_EQ(dd->gaps, 1u);
    EXPECT_EQ(dd->enforced, 1u);  // 9090: both policies isolate web
    EXPECT_EQ(dd->denied.flows, 3u);
    EXPECT_EQ(dd->denied.packets, 8u);
    const auto* af = hits(*v, "shop/allow-frontend");
    ASSERT_TRUE(af);
    EXPECT_EQ(af->allowed.flows, 1u);
    EXPECT_EQ(af->allowed.packets, 18u);
    EXPECT_EQ(af->denied.flows, 1u);
    EXPECT_EQ(af->enforced, 1u);
    EXPECT_EQ(af->gaps, 0u);
    // the verdicts were cached: no evaluation after the first collection
    EXPECT_EQ(v->evaluations_total, 4u);
    EXPECT_EQ(counts(*v, "shop", "default-deny", kDenied).flows, 3u);  // flows count once

    // the enforced conversation answered after all: a gap too
    v = &h.at(7, {sample(kUi, 40002, kWeb, 9090, 1), sample(kWeb, 9090, kUi, 40002, 1)});
    EXPECT_EQ(v->gaps_total, 2u);
    EXPECT_EQ(v->enforced_total, 1u);
    ASSERT_EQ(v->gaps.size(), 2u);
    EXPECT_EQ(v->gaps[0].port, 9090);  // newest first
    EXPECT_EQ(counts(*v, "shop", "default-deny", kDenied).packets, 10u);
}

// A new set is evaluated once per conversation; changed keys count the conversation again,
// a conversation allowed now leaves the denied list; removed policies lose their series.
TEST(PolicyMonitor, NewSetReevaluatesOnce) {
    Harness h;
    h.current = set(shopPolicies(), 1);
    auto v = &h.at(0, {sample(kUi, 40001, kDb, 5432, 3, 6, 100), sample(kDb, 5432, kUi, 40001, 2, 6, 200)});
    EXPECT_EQ(v->denied.size(), 1u);
    EXPECT_EQ(v->evaluations_total, 1u);
    h.current = set({shopPolicies()[1]}, 2);  // default-deny deleted: db is not isolated anymore
    v = &h.at(1, {sample(kUi, 40001, kDb, 5432, 1)});
    EXPECT_EQ(v->evaluations_total, 2u);
    v = &h.at(2, {sample(kUi, 40001, kDb, 5432, 1)});
    EXPECT_EQ(v->evaluations_total, 2u);
    EXPECT_TRUE(v->denied.empty());
    EXPECT_EQ(v->denied_total, 1u);
    EXPECT_FALSE(series(*v, "shop", "default-deny"));  // a policy gone: its series too
    EXPECT_FALSE(hits(*v, "shop/default-deny"));
    EXPECT_EQ(counts(*v, "shop", "", kNotSelected).flows, 1u);
    EXPECT_EQ(counts(*v, "shop", "", kNotSelected).packets, 2u);
    EXPECT_EQ(counts(*v, "frontend", "", kNotSelected).flows, 1u);  // same key under both sets: once
    EXPECT_EQ(counts(*v, "frontend", "", kNotSelected).packets, 7u);
}

TEST(PolicyMonitor, SeriesBudgetAndConversationLimit) {
    PolicyMonitorOptions o;
    // One series: whichever two conversations are tracked (the order of the topology's
    // conversations is not specified), they have two series keys between them at least.
    o.max_series = 1;
    o.max_conversations = 2;
    Harness h(o);
    h.current = set(shopPolicies());
    const auto& v = h.at(0, {sample(kUi, 40000, kWeb, 8080, 1), sample(kUi, 40001, kDb, 5432, 1),
                             sample(kUi, 40002, kDb, 5433, 1)});
    EXPECT_EQ(v.conversations, 2u);
    EXPECT_EQ(v.untracked_total, 1u);
    EXPECT_EQ(v.series.size(), 1u);
    std::uint64_t flows = v.other.counts[kAllowed].flows + v.other.counts[kDenied].flows +
                          v.other.counts[kNotSelected].flows;
    for (const auto& s : v.series)
        for (const auto& c : s.counts) flows += c.flows;
    EXPECT_EQ(flows, 4u);  // 2 conversations x 2 keys, whatever got a series
    EXPECT_GT(v.other.counts[kAllowed].flows + v.other.counts[kDenied].flows + v.other.counts[kNotSelected].flows, 0u);
}

// Node traffic is exempt; traffic between addresses that are no pods counts nothing.
TEST(PolicyMonitor, ExemptionsAndNonPods) {
    Harness h;
    h.current = set(shopPolicies());
    const auto& v = h.at(0, {sample(kNode, 40000, kDb, 5432, 2), sample("198.18.9.1", 40000, "198.18.9.2", 80, 2)});
    EXPECT_EQ(counts(v, "shop", "", kAllowed).flows, 1u);  // the node -> db: exempt
    EXPECT_EQ(v.denied_total, 0u);
    EXPECT_EQ(v.conversations, 2u);
    EXPECT_EQ(v.series.size(), 1u);
}

// A Service's ClusterIP is not evaluated (the backend's conversation, after DNAT, is).
TEST(PolicyMonitor, ClusterIpConversationsAreNotEvaluated) {
    Harness h;
    std::vector<k8s::PodInfo> pods = {pod("frontend", "ui", kUi, "ui"), pod("shop", "db", kDb, "db")};
    h.current = k8s::buildPolicyEvaluator(shopPolicies(), pods, {}, {}, {}, 1, {},
                                          [](const util::Addr16& a, std::uint16_t port, std::uint8_t proto) {
                                              return a == ip("198.18.7.200") && port == 80 && proto == 6;
                                          });
    const auto& v = h.at(0, {sample(kUi, 40000, "198.18.7.200", 80, 2), sample(kUi, 40000, kDb, 5432, 2)});
    EXPECT_EQ(v.conversations, 2u);
    EXPECT_EQ(v.denied_total, 1u);  // ui -> db only
    EXPECT_EQ(counts(v, "frontend", "", kNotSelected).flows, 1u);
    EXPECT_TRUE(h.current->evaluate(ip(kUi), ip("198.18.7.200"), 6, 80).service);
    EXPECT_FALSE(h.current->evaluate(ip(kUi), ip("198.18.7.200"), 6, 81).service);
}

TEST(PolicyExport, MetricsAndApi) {
    Harness h;
    h.current = set(shopPolicies());
    h.at(0, {sample(kUi, 40001, kDb, 5432, 3, 6, 100), sample(kDb, 5432, kUi, 40001, 2, 6, 200),
             sample(kUi, 40000, kWeb, 8080, 4, 6, 100), sample(kWeb, 8080, kUi, 40000, 4, 6, 200)});
    const auto& v = *h.v.policy;
    const auto text = metrics::renderPolicyMetrics(v);
    for (const char* want : {
             "netprobe_policy_synced 1\n",
             "netprobe_policy_flows_total{namespace=\"shop\",policy=\"default-deny\",verdict=\"denied\"} 1\n",
             "netprobe_policy_packets_total{namespace=\"shop\",policy=\"default-deny\",verdict=\"denied\"} 5\n",
             "netprobe_policy_flows_total{namespace=\"shop\",policy=\"allow-frontend\",verdict=\"allowed\"} 1\n",
             "netprobe_policy_flows_total{namespace=\"frontend\",policy=\"\",verdict=\"not_selected\"} 2\n",
             "netprobe_policy_enforcement_gaps_total 1\n",
             "netprobe_policy_enforcement_confirmed_total 0\n",
             "netprobe_policy_set_policies 2\n",
             "netprobe_policy_conversations 2\n",
         })
        EXPECT_NE(text.find(want), std::string::npos) << want << "\nin:\n" << text;
    auto r = netprobe::testing::promtoolCheckMetrics(text);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "");

    auto q = metrics::parsePolicyQuery({});
    ASSERT_TRUE(q);
    const auto doc = json::parse(metrics::policiesJson(h.v, *q));
    EXPECT_TRUE(doc["enabled"]);
    EXPECT_TRUE(doc["synced"]);
    EXPECT_EQ(doc["set"]["generation"], 1);
    EXPECT_EQ(doc["set"]["pods"], 3);
    ASSERT_EQ(doc["policies"].size(), 2u);
    const auto& af = doc["policies"][0];  // sorted: allow-frontend, default-deny
    EXPECT_EQ(af["name"], "allow-frontend");
    EXPECT_EQ(af["pods"], json({"shop/web"}));
    EXPECT_EQ(af["selected_pods"], 1);
    EXPECT_EQ(af["policy_types"], json({"Ingress"}));
    EXPECT_EQ(af["hits"]["allowed"]["flows"], 1);
    EXPECT_EQ(af["hits"]["allowed"]["packets"], 8);
    const auto& dd = doc["policies"][1];
    EXPECT_EQ(dd["pods"], json({"shop/db", "shop/web"}));
    EXPECT_EQ(dd["enforcement_gaps"], 1);
    ASSERT_EQ(doc["gaps"].size(), 1u);
    const auto& g = doc["gaps"][0];
    EXPECT_EQ(g["client"], kUi);
    EXPECT_EQ(g["server"], kDb);
    EXPECT_EQ(g["port"], 5432);
    EXPECT_EQ(g["protocol"], "tcp");
    EXPECT_EQ(g["enforcement"], "gap");
    EXPECT_EQ(g["ingress"]["decision"], "denied");
    EXPECT_EQ(g["egress"]["decision"], "not_selected");
    EXPECT_EQ(g["denied_at"], "2023-11-14T22:13:20.000Z");
    EXPECT_EQ(doc["denied"].size(), 1u);
    EXPECT_EQ(doc["totals"]["enforcement_gaps"], 1);

    auto frontend = metrics::parsePolicyQuery({{"namespace", "frontend"}});
    ASSERT_TRUE(frontend);
    const auto fd = json::parse(metrics::policiesJson(h.v, *frontend));
    EXPECT_TRUE(fd["policies"].empty());  // frontend has none
    EXPECT_EQ(fd["gaps"].size(), 1u);     // but its pod is the client of the gap
    EXPECT_FALSE(metrics::parsePolicyQuery({{"ns", "x"}}));
    EXPECT_FALSE(metrics::parsePolicyQuery({{"namespace", ""}}));

    Views none;
    EXPECT_EQ(json::parse(metrics::policiesJson(none, *q)), json({{"enabled", false}}));
}

TEST(RebuildDebounce, QuietTimeOrMaxDelay) {
    using namespace std::chrono_literals;
    k8s::RebuildDebounce d(1000ms, 5000ms);
    const auto t = std::chrono::steady_clock::time_point(std::chrono::hours(5));
    EXPECT_TRUE(d.due(7, t));  // the first set: at once
    d.built(7);
    EXPECT_FALSE(d.due(7, t + 100ms));
    EXPECT_FALSE(d.due(8, t + 200ms));   // a change: wait for 1 s of quiet
    EXPECT_FALSE(d.due(8, t + 1100ms));
    EXPECT_TRUE(d.due(8, t + 1200ms));
    d.built(8);
    // changes every 500 ms: built at the latest 5 s after the first
    bool built = false;
    for (int i = 1; i <= 12 && !built; ++i) {
        const auto now = t + 2000ms + i * 500ms;
        if (d.due(8 + static_cast<std::uint64_t>(i), now)) {
            EXPECT_EQ(now - (t + 2500ms), 5000ms);
            built = true;
        }
    }
    EXPECT_TRUE(built);
}

TEST(PolicySetSummaries, SelectedPodsPerPolicy) {
    auto ev = set(shopPolicies());
    const auto& info = ev->info();
    ASSERT_EQ(info.policies.size(), 2u);
    EXPECT_EQ(info.policies[0].name, "allow-frontend");
    EXPECT_EQ(info.policies[0].selected_pods, 1u);
    EXPECT_EQ(info.policies[1].name, "default-deny");
    EXPECT_EQ(info.policies[1].pods, (std::vector<std::string>{"shop/db", "shop/web"}));
    EXPECT_EQ(info.pods, 3u);
    EXPECT_EQ(info.node_addresses, 1u);
    // listing bounded, count exact
    std::vector<k8s::PodInfo> pods;
    for (int i = 0; i < 5; ++i) {
        auto p = pod("shop", "p", "198.18.8.1", "db");
        p.name = "p" + std::to_string(i);
        p.ips = {ip(("198.18.8." + std::to_string(i + 1)).c_str())};
        pods.push_back(p);
    }
    k8s::PolicySet s(shopPolicies(), pods, {});
    auto sums = s.summaries(2);
    ASSERT_EQ(sums.size(), 2u);
    EXPECT_EQ(sums[1].selected_pods, 5u);
    EXPECT_EQ(sums[1].pods.size(), 2u);
}
