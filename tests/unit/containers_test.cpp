// Container and network-namespace attribution in the pure exports: container fields of
// /api/v1/connections and /api/v1/flows (5-tuple match with connection records), veth
// peers on /api/v1/interfaces, host_interfaces on /api/v1/pods, the workload-to-workload
// counters (dedup across hook points, "external", stale pairs, budget, promtool) and
// the --workload-metrics options.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/grouping.hpp>
#include <netprobe/metrics/render.hpp>

#include "metrics/json_api.hpp"
#include "options.hpp"
#include "promtool_check.hpp"
#include "test_flows.hpp"

using netprobe::testing::makeKey;
using namespace netprobe;
using nlohmann::json;

namespace {

const std::string kCid = std::string(64, 'a');
const std::string kCid2 = std::string(64, 'b');
const std::string kUid = "0d1c2b3a-4e5f-6a7b-8c9d-0e1f2a3b4c5d";

struct PodDef {
    std::string ns, name, workload, ip;
};

// An attribution over fixed data: cgroup ids 100 (container kCid of pod kUid) and 200
// (kCid2, no pod), 1 = the root cgroup (no container); one veth with a peer; pods by IP.
class FakeAttribution final : public analysis::Attribution {
public:
    std::vector<PodDef> pods;
    bool k8s = true;
    mutable int container_lookups = 0;

    analysis::FlowLabels flow(const flow_key& k) const override {
        analysis::FlowLabels l;
        for (const auto& p : pods) {
            auto ip = *util::parseAddr(p.ip);
            if (std::bit_cast<util::Addr16>(k.src_ip) == ip) l.src_namespace = p.ns, l.src_pod = p.name, l.src_workload = p.workload;
            if (std::bit_cast<util::Addr16>(k.dst_ip) == ip) l.dst_namespace = p.ns, l.dst_pod = p.name, l.dst_workload = p.workload;
        }
        return l;
    }
    std::vector<analysis::LocalPod> localPods() const override { return {}; }
    bool synced() const override { return true; }
    bool kubernetes() const override { return k8s; }
    std::optional<analysis::ContainerLabels> container(std::uint64_t id) const override {
        ++container_lookups;
        if (id == 100) return analysis::ContainerLabels{"/kubepods/besteffort/pod" + kUid + "/" + kCid, kCid, kUid, "shop", "web-1", "web"};
        if (id == 200) return analysis::ContainerLabels{"/system.slice/docker-" + kCid2 + ".scope", kCid2, "", "", "", ""};
        if (id == 1) return analysis::ContainerLabels{"/", "", "", "", "", ""};
        return std::nullopt;
    }
    std::vector<analysis::InterfaceLink> interfaceLinks() const override {
        analysis::InterfaceLink l;
        l.ifindex = 7;
        l.name = "veth7";
        l.kind = "veth";
        l.link_netnsid = 3;
        l.peer_ifindex = 2;
        l.peer_name = "eth0";
        l.peer_netns_inode = 4026532999;
        l.peer_netns_name = "pod-a";
        l.peer_addresses = {*util::parseAddr("198.18.5.2")};
        l.pod_namespace = "shop";
        l.pod_name = "web-1";
        l.pod_uid = kUid;
        return {l};
    }
    std::vector<analysis::WorkloadRef> workloads() const override {
        std::vector<analysis::WorkloadRef> out;
        for (const auto& p : pods) out.push_back({p.ns, p.workload});
        return out;
    }
};

ebpf::Connection conn(const std::string& src, std::uint16_t sport, const std::string& dst, std::uint16_t dport,
                      std::uint64_t cgroup, std::uint32_t netns = 4026531840) {
    ebpf::Connection c;
    c.src_ip = *util::parseAddr(src);
    c.dst_ip = *util::parseAddr(dst);
    c.src_port = sport;
    c.dst_port = dport;
    c.family = 4;
    c.tcp_state = 1;
    c.cgroup_id = cgroup;
    c.netns = netns;
    return c;
}

analysis::FlowRecord flowRec(const std::string& src, std::uint16_t sport, const std::string& dst, std::uint16_t dport,
                             std::uint8_t proto, std::uint64_t pkts, std::uint64_t bytes, std::uint32_t ifindex = 7) {
    analysis::FlowRecord f;
    f.key = makeKey(src, dst, sport, dport, proto, ifindex, NP_DIR_INGRESS);
    f.packets = f.interval_packets = pkts;
    f.bytes = f.interval_bytes = bytes;
    return f;
}

using netprobe::testing::TestState;

// The views the main pipeline publishes for a state: its Grouping stage run on it.
analysis::Views grouped(const TestState& t, const analysis::Attribution* a) {
    auto v = t.views();
    std::shared_ptr<const analysis::Attribution> attr(a, [](const analysis::Attribution*) {});
    analysis::Grouping g(a ? attr : nullptr, {});
    g.run(*v.snapshot, v);
    return v;
}
std::string flowsJson(const TestState& t, const metrics::FlowQuery& q, const analysis::Attribution* a = nullptr) {
    return metrics::flowsJson(grouped(t, a), q, a);
}
json containersJson(const TestState& t, const analysis::Attribution* a) { return metrics::containersJson(grouped(t, a), a); }
json connectionsJson(const TestState& t, const metrics::ConnectionQuery& q, const analysis::Attribution* a) {
    return json::parse(metrics::connectionsJson(t.snap, q, a));
}
std::vector<collector::FlowSample> samplesOf(const TestState& t) {
    std::vector<collector::FlowSample> out;
    for (const auto& f : t.flows)
        out.push_back(netprobe::testing::makeSample(f.key, f.interval_packets, f.interval_bytes, 1, 1));
    return out;
}

TestState snapWithConnections() {
    TestState t;
    auto& s = t.snap;
    s.sequence = 1;
    auto st = std::make_shared<ebpf::StackStats>();
    st->features.connections = true;
    // client (root cgroup, host netns) -> server in container 100 (netns of veth7's peer)
    st->connections.push_back(conn("198.18.5.1", 40000, "198.18.5.2", 8080, 1));
    st->connections.push_back(conn("198.18.5.2", 8080, "198.18.5.1", 40000, 100, 4026532999));
    // docker container 200 talking to an outside address
    st->connections.push_back(conn("198.18.6.2", 50000, "198.18.9.9", 443, 200));
    // unknown cgroup
    st->connections.push_back(conn("198.18.6.3", 50001, "198.18.9.9", 443, 999));
    s.stack = st;
    t.flows.push_back(flowRec("198.18.5.1", 40000, "198.18.5.2", 8080, 6, 5, 500));
    t.flows.push_back(flowRec("198.18.5.2", 8080, "198.18.5.1", 40000, 6, 4, 300));
    t.flows.push_back(flowRec("198.18.6.2", 50000, "198.18.9.9", 443, 6, 3, 200));
    t.flows.push_back(flowRec("198.18.6.2", 50000, "198.18.9.9", 443, 17, 3, 200));  // UDP: no connection
    t.flows.push_back(flowRec("198.18.7.1", 1, "198.18.7.2", 2, 6, 1, 60));          // no record
    return t;
}

std::map<std::string, json> flowsBy(const json& doc) {
    std::map<std::string, json> out;
    for (const auto& f : doc["flows"])
        out[f["src_ip"].get<std::string>() + ">" + f["dst_ip"].get<std::string>() + "/" + f["protocol"].get<std::string>()] = f;
    return out;
}

}  // namespace

TEST(ConnectionsContainers, FieldsFromTheCgroup) {
    FakeAttribution attr;
    auto s = snapWithConnections();
    auto doc = connectionsJson(s, *metrics::parseConnectionQuery({}, 100, 1000), &attr);
    ASSERT_EQ(doc["connections"].size(), 4u);
    const auto& client = doc["connections"][0];
    EXPECT_EQ(client["cgroup_path"], "/");
    EXPECT_FALSE(client.contains("container_id"));
    EXPECT_FALSE(client.contains("pod_uid"));
    EXPECT_FALSE(client.contains("host_interface"));  // host namespace: no veth leads there
    const auto& server = doc["connections"][1];
    EXPECT_EQ(server["container_id"], kCid);
    EXPECT_EQ(server["pod_uid"], kUid);
    EXPECT_EQ(server["namespace"], "shop");
    EXPECT_EQ(server["pod"], "web-1");
    EXPECT_EQ(server["workload"], "web");
    EXPECT_EQ(server["host_interface"], "veth7");  // its netns is veth7's peer namespace
    const auto& docker = doc["connections"][2];
    EXPECT_EQ(docker["container_id"], kCid2);
    EXPECT_FALSE(docker.contains("pod_uid"));
    EXPECT_FALSE(docker.contains("pod"));
    const auto& unknown = doc["connections"][3];
    EXPECT_FALSE(unknown.contains("cgroup_path"));
    EXPECT_FALSE(unknown.contains("container_id"));
    EXPECT_EQ(unknown["cgroup_id"], 999);
    EXPECT_EQ(attr.container_lookups, 4);  // one per distinct cgroup id
    // without an attribution: only the id
    auto bare = connectionsJson(s, *metrics::parseConnectionQuery({}, 100, 1000), nullptr);
    EXPECT_FALSE(bare["connections"][1].contains("container_id"));
    EXPECT_EQ(bare["connections"][1]["cgroup_id"], 100);
}

// The /api/v1/connections document as it was built before the text writer (an
// nlohmann::json tree, dumped with invalid UTF-8 replaced): the writer's bytes must equal
// its dump for the same snapshot, with every optional field, odd comm bytes and RTTs.
json connectionsDocument(const collector::Snapshot& s, const metrics::ConnectionQuery& q, const analysis::Attribution* attribution) {
    std::map<std::uint64_t, std::optional<analysis::ContainerLabels>> containers;
    auto arr = json::array();
    std::size_t total = 0;
    const bool enabled = s.stack && s.stack->features.connections;
    std::map<std::uint32_t, std::string> veth_of_netns;
    if (attribution && enabled)
        for (const auto& l : attribution->interfaceLinks())
            if (l.peer_netns_inode) veth_of_netns.emplace(l.peer_netns_inode, l.name);
    if (enabled) {
        auto labelsOf = [&](std::uint64_t cg) -> const std::optional<analysis::ContainerLabels>& {
            auto it = containers.find(cg);
            if (it == containers.end()) it = containers.emplace(cg, attribution->container(cg)).first;
            return it->second;
        };
        for (const auto& c : s.stack->connections) {
            if (!metrics::connectionMatches(c, q)) continue;
            if (q.container) {
                if (!attribution || !c.cgroup_id) continue;
                const auto& l = labelsOf(c.cgroup_id);
                if (!l || l->container_id.empty() || !l->container_id.starts_with(*q.container)) continue;
            }
            ++total;
            if (arr.size() >= q.limit) continue;
            const char* origin = c.origin == NP_CONN_ACTIVE ? "active" : c.origin == NP_CONN_PASSIVE ? "passive" : "unknown";
            json j = {
                {"src_ip", util::formatAddr(c.src_ip)}, {"src_port", c.src_port}, {"dst_ip", util::formatAddr(c.dst_ip)},
                {"dst_port", c.dst_port}, {"ip_version", c.family}, {"direction", origin},
                {"state", ebpf::tcpStateName(c.tcp_state)}, {"open", c.open}, {"failed", c.failed},
                {"pid", c.pid ? json(c.pid) : json(nullptr)}, {"comm", c.comm.empty() ? json(nullptr) : json(c.comm)},
                {"cgroup_id", c.cgroup_id}, {"netns", c.netns}, {"cookie", c.cookie}, {"bytes_sent", c.bytes_sent},
                {"bytes_received", c.bytes_received}, {"retransmits", c.retransmits},
                {"rtt_seconds", c.srtt_us ? json(static_cast<double>(c.srtt_us) / 1e6) : json(nullptr)},
                {"snd_cwnd", c.snd_cwnd}, {"start", metrics::rfc3339(c.start)},
                {"established", c.established == collector::WallTime{} ? json(nullptr) : json(metrics::rfc3339(c.established))},
                {"end", c.end == collector::WallTime{} ? json(nullptr) : json(metrics::rfc3339(c.end))},
            };
            if (auto v = veth_of_netns.find(c.netns); v != veth_of_netns.end()) j["host_interface"] = v->second;
            if (attribution && c.cgroup_id) {
                if (const auto& cl = labelsOf(c.cgroup_id)) {
                    j["cgroup_path"] = cl->cgroup_path;
                    if (!cl->container_id.empty()) j["container_id"] = cl->container_id;
                    if (!cl->pod_uid.empty()) j["pod_uid"] = cl->pod_uid;
                    if (!cl->pod.empty()) {
                        j["namespace"] = cl->ns;
                        j["pod"] = cl->pod;
                        j["workload"] = cl->workload;
                    }
                }
            }
            arr.push_back(std::move(j));
        }
    }
    return {{"collected_at", metrics::rfc3339(s.taken_at)}, {"enabled", enabled}, {"total", total},
            {"returned", arr.size()}, {"connections", std::move(arr)}};
}

TEST(ConnectionsJson, TextWriterEqualsTheDocumentsDump) {
    FakeAttribution attr;
    auto t = snapWithConnections();
    t.snap.taken_at = collector::WallTime(std::chrono::milliseconds(1'700'000'000'123));
    auto st = std::make_shared<ebpf::StackStats>(*t.snap.stack);
    const std::vector<std::string> comms = {"curl", "", "a\"b\\c", "tab\there\nnl\x01\x1f", "caf\xc3\xa9",
                                            "bad\xff\xfeutf8", "cut\xe2\x82", "\xc3", "del\x7f", "\xed\xa0\x80x"};
    const std::vector<std::uint32_t> rtts = {0, 1, 250, 1000, 123456, 1000000, 2500000, 99999999, 7, 33};
    for (std::size_t i = 0; i < comms.size(); ++i) {
        auto c = conn(i % 2 ? "fd6e:7072::1" : "198.18.5.1", static_cast<std::uint16_t>(40000 + i),
                      i % 2 ? "fd6e:7072::2" : "198.18.5.2", 8080, i % 3 == 0 ? 100 : i % 3 == 1 ? 200 : 1,
                      i % 4 == 0 ? 4026532999u : 4026531840u);
        c.family = i % 2 ? 6 : 4;
        c.comm = comms[i];
        c.srtt_us = rtts[i];
        c.pid = i % 5 ? static_cast<std::uint32_t>(1000 + i) : 0;
        c.origin = static_cast<std::uint8_t>(i % 3);
        c.open = i % 2 == 0;
        c.failed = i == 3;
        c.tcp_state = static_cast<std::uint8_t>(1 + i % 11);
        c.cookie = 0xfedcba9876543210ull + i;
        c.bytes_sent = 1ull << (i * 6);
        c.bytes_received = i * 1000;
        c.retransmits = static_cast<std::uint32_t>(i);
        c.snd_cwnd = static_cast<std::uint32_t>(10 * i);
        c.start = collector::WallTime(std::chrono::milliseconds(1'700'000'000'000 + 1001 * i));
        if (i % 2) c.established = c.start + std::chrono::milliseconds(3);
        if (!c.open) c.end = c.start + std::chrono::seconds(2);
        st->connections.push_back(c);
    }
    t.snap.stack = st;
    std::size_t compared = 0;
    for (const analysis::Attribution* a : {static_cast<const analysis::Attribution*>(&attr), static_cast<const analysis::Attribution*>(nullptr)})
        for (const http::QueryParams& params : std::vector<http::QueryParams>{
                 {}, {{"limit", "3"}}, {{"state", "closed"}}, {{"family", "6"}}, {{"container", "aaaa"}}, {{"pid", "1001"}}}) {
            auto q = metrics::parseConnectionQuery(params, 100, 1000);
            ASSERT_TRUE(q);
            const std::string text = metrics::connectionsJson(t.snap, *q, a);
            const json doc = connectionsDocument(t.snap, *q, a);
            EXPECT_EQ(text, doc.dump(-1, ' ', false, json::error_handler_t::replace));
            EXPECT_EQ(json::parse(text), json::parse(doc.dump(-1, ' ', false, json::error_handler_t::replace)));
            ++compared;
        }
    EXPECT_EQ(compared, 12u);
    // the stack monitor off: the same as well
    collector::Snapshot off;
    const auto q = *metrics::parseConnectionQuery({}, 100, 1000);
    EXPECT_EQ(metrics::connectionsJson(off, q, nullptr), connectionsDocument(off, q, nullptr).dump());
    // the non-UTF-8 comm became U+FFFD; the valid one stayed
    const auto all = json::parse(metrics::connectionsJson(t.snap, q, nullptr));
    EXPECT_EQ(all["connections"][4 + 4]["comm"], "caf\u00e9");
    EXPECT_EQ(all["connections"][4 + 5]["comm"], "bad\ufffd\ufffdutf8");
}

TEST(FlowsContainers, MatchedByFiveTuple) {
    FakeAttribution attr;
    auto doc = json::parse(flowsJson(snapWithConnections(), metrics::FlowQuery{}, &attr));
    auto by = flowsBy(doc);
    ASSERT_EQ(by.size(), 5u);
    // client -> server: the sender is in the root cgroup (no container), the receiver in kCid
    const auto& req = by.at("198.18.5.1>198.18.5.2/tcp");
    EXPECT_EQ(req["container_id"], kCid);
    EXPECT_FALSE(req.contains("src_container_id"));
    EXPECT_EQ(req["dst_container_id"], kCid);
    EXPECT_EQ(req["dst_pod_uid"], kUid);
    const auto& resp = by.at("198.18.5.2>198.18.5.1/tcp");
    EXPECT_EQ(resp["container_id"], kCid);
    EXPECT_EQ(resp["src_container_id"], kCid);
    EXPECT_EQ(resp["src_pod_uid"], kUid);
    EXPECT_FALSE(resp.contains("dst_container_id"));
    const auto& docker = by.at("198.18.6.2>198.18.9.9/tcp");
    EXPECT_EQ(docker["src_container_id"], kCid2);
    EXPECT_FALSE(docker.contains("src_pod_uid"));
    for (const char* k : {"198.18.6.2>198.18.9.9/udp", "198.18.7.1>198.18.7.2/tcp"}) {
        EXPECT_FALSE(by.at(k).contains("container_id")) << k;
        EXPECT_FALSE(by.at(k).contains("src_container_id")) << k;
    }
    // no attribution, or no stack monitor: no container fields
    auto bare = flowsBy(json::parse(flowsJson(snapWithConnections(), metrics::FlowQuery{})));
    EXPECT_FALSE(bare.at("198.18.5.1>198.18.5.2/tcp").contains("container_id"));
    auto nostack = snapWithConnections();
    nostack.snap.stack.reset();
    auto ns = flowsBy(json::parse(flowsJson(nostack, metrics::FlowQuery{}, &attr)));
    EXPECT_FALSE(ns.at("198.18.5.1>198.18.5.2/tcp").contains("container_id"));
}

TEST(InterfacesPeer, VethPeerNamespaceAndPod) {
    FakeAttribution attr;
    collector::Snapshot s;
    collector::InterfaceStats a, b;
    a.name = "veth7";
    a.index = 7;
    b.name = "eth9";
    b.index = 9;
    s.interfaces = {b, a};
    auto doc = metrics::interfacesJson(s, &attr);
    std::map<std::string, json> by;
    for (const auto& i : doc["interfaces"]) by[i["name"].get<std::string>()] = i;
    const auto& p = by.at("veth7")["peer"];
    EXPECT_EQ(p["kind"], "veth");
    EXPECT_EQ(p["netnsid"], 3);
    EXPECT_EQ(p["netns_inode"], 4026532999u);
    EXPECT_EQ(p["netns_name"], "pod-a");
    EXPECT_EQ(p["ifindex"], 2);
    EXPECT_EQ(p["name"], "eth0");
    EXPECT_EQ(p["addresses"], json::array({"198.18.5.2"}));
    EXPECT_EQ(p["pod_namespace"], "shop");
    EXPECT_EQ(p["pod"], "web-1");
    EXPECT_EQ(p["pod_uid"], kUid);
    EXPECT_TRUE(by.at("eth9")["peer"].is_null());
    // an interface renamed/reused under the same index is not matched
    s.interfaces[1].name = "other";
    auto doc2 = metrics::interfacesJson(s, &attr);
    for (const auto& i : doc2["interfaces"]) EXPECT_TRUE(i["peer"].is_null());
    // without an attribution: no peer field at all
    auto bare = metrics::interfacesJson(s);
    for (const auto& i : bare["interfaces"]) EXPECT_FALSE(i.contains("peer"));
}

TEST(PodsJson, HostInterfaces) {
    analysis::LocalPod p;
    p.ns = "shop";
    p.name = "web-1";
    p.uid = kUid;
    p.host_interfaces = {"veth7"};
    TestState t;
    auto g = std::make_shared<analysis::GroupView>();
    g->attribution = g->kubernetes = g->synced = true;
    g->pods = {p};
    g->pod_traffic = analysis::podTraffic({}, g->pods);
    t.groups = g;
    auto doc = json::parse(metrics::podsJson(t.views()));
    EXPECT_EQ(doc["pods"][0]["host_interfaces"], json::array({"veth7"}));
}

namespace {

TestState workloadSnap(std::uint64_t seq) {
    TestState s;
    s.snap.sequence = seq;
    // ui -> web seen on two veths (one packet stream), web -> ui, ui -> outside, outside -> outside
    s.flows.push_back(flowRec("10.244.0.5", 40000, "10.244.0.6", 8080, 6, 10, 5000, 2));
    s.flows.push_back(flowRec("10.244.0.5", 40000, "10.244.0.6", 8080, 6, 10, 5000, 3));
    s.flows.push_back(flowRec("10.244.0.6", 8080, "10.244.0.5", 40000, 6, 4, 800, 3));
    s.flows.push_back(flowRec("10.244.0.5", 40001, "192.0.2.9", 443, 6, 2, 100, 2));
    s.flows.push_back(flowRec("192.0.2.1", 1, "192.0.2.2", 2, 6, 7, 7000, 1));
    return s;
}

std::map<std::string, std::uint64_t> bytesByPair(const std::vector<analysis::WorkloadTraffic>& t) {
    std::map<std::string, std::uint64_t> out;
    for (const auto& w : t)
        out[w.pair.src.ns + "/" + w.pair.src.name + ">" + w.pair.dst.ns + "/" + w.pair.dst.name] = w.bytes;
    return out;
}

}  // namespace

TEST(WorkloadCounters, CountsPairsOnceAndMonotonically) {
    FakeAttribution attr;
    attr.pods = {{"frontend", "ui-1", "ui", "10.244.0.5"}, {"shop", "web-1", "web", "10.244.0.6"}};
    analysis::WorkloadCounters wc;
    wc.observe(analysis::perTuple(samplesOf(workloadSnap(1))), attr);
    auto b = bytesByPair(wc.traffic());
    EXPECT_EQ(b, (std::map<std::string, std::uint64_t>{{"frontend/ui>shop/web", 5000},
                                                       {"shop/web>frontend/ui", 800},
                                                       {"frontend/ui>/external", 100}}));
    wc.observe(analysis::perTuple(samplesOf(workloadSnap(2))), attr);
    EXPECT_EQ(bytesByPair(wc.traffic())["frontend/ui>shop/web"], 10000u);
    auto empty = workloadSnap(3);
    empty.flows.clear();  // flows expired: the totals stay
    wc.observe(analysis::perTuple(samplesOf(empty)), attr);
    EXPECT_EQ(bytesByPair(wc.traffic())["frontend/ui>shop/web"], 10000u);
    for (const auto& t : wc.traffic())
        if (t.pair.dst.name == "web") {
            EXPECT_EQ(t.packets, 20u);
        }
}

TEST(WorkloadCounters, PairsOfAGoneWorkloadDisappear) {
    FakeAttribution attr;
    attr.pods = {{"frontend", "ui-1", "ui", "10.244.0.5"}, {"shop", "web-1", "web", "10.244.0.6"}};
    analysis::WorkloadCounters wc;
    wc.observe(analysis::perTuple(samplesOf(workloadSnap(1))), attr);
    ASSERT_EQ(wc.traffic().size(), 3u);
    attr.pods.pop_back();  // every web pod is gone
    auto s = workloadSnap(2);
    s.flows.clear();
    wc.observe(analysis::perTuple(samplesOf(s)), attr);
    EXPECT_EQ(bytesByPair(wc.traffic()), (std::map<std::string, std::uint64_t>{{"frontend/ui>/external", 100}}));
}

TEST(WorkloadMetrics, BudgetOtherAndPromtool) {
    std::vector<analysis::WorkloadTraffic> t;
    for (int i = 0; i < 5; ++i)
        t.push_back({{{"ns", "src" + std::to_string(i)}, {"ns", "dst"}}, static_cast<std::uint64_t>(i + 1),
                     static_cast<std::uint64_t>((i + 1) * 100)});
    auto text = metrics::renderWorkloadMetrics(t, {true, 3});
    // the 3 largest pairs by bytes, the rest (src0, src1: 300 bytes, 3 packets) as "other"
    EXPECT_NE(text.find("netprobe_workload_traffic_bytes_total{src_namespace=\"ns\",src_workload=\"src4\",dst_namespace=\"ns\",dst_workload=\"dst\"} 500"),
              std::string::npos) << text;
    EXPECT_EQ(text.find("src_workload=\"src1\""), std::string::npos) << text;
    EXPECT_NE(text.find("netprobe_workload_traffic_bytes_total{src_namespace=\"other\",src_workload=\"other\",dst_namespace=\"other\",dst_workload=\"other\"} 300"),
              std::string::npos) << text;
    EXPECT_NE(text.find("netprobe_workload_traffic_packets_total{src_namespace=\"other\",src_workload=\"other\",dst_namespace=\"other\",dst_workload=\"other\"} 3"),
              std::string::npos) << text;
    auto r = netprobe::testing::promtoolCheckMetrics(text);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "");
    EXPECT_EQ(metrics::renderWorkloadMetrics(t, {false, 3}), "");
    // within the budget: no "other" series
    EXPECT_EQ(metrics::renderWorkloadMetrics(t, {true, 5}).find("src_workload=\"other\""), std::string::npos);
}

TEST(WorkloadOptions, Parse) {
    auto parse = [](std::vector<const char*> args) {
        args.insert(args.begin(), "netprobe-agent");
        return netprobe::agent::parseOptions(static_cast<int>(args.size()), args.data(), nullptr);
    };
    auto d = parse({});
    ASSERT_TRUE(d.run);
    EXPECT_TRUE(d.options.workload_metrics);
    EXPECT_EQ(d.options.workload_metrics_limit, 500u);
    auto off = parse({"--workload-metrics=off", "--workload-metrics-limit=7"});
    ASSERT_TRUE(off.run) << off.output;
    EXPECT_FALSE(off.options.workload_metrics);
    EXPECT_EQ(off.options.workload_metrics_limit, 7u);
    auto bad = parse({"--workload-metrics=maybe"});
    EXPECT_FALSE(bad.run);
    EXPECT_NE(bad.output.find("--workload-metrics"), std::string::npos) << bad.output;
    auto big = parse({"--workload-metrics-limit=100001"});
    EXPECT_FALSE(big.run);
    EXPECT_NE(big.output.find("--workload-metrics-limit"), std::string::npos) << big.output;
}

TEST(ContainersJson, GroupsRecordsAndFlowsByContainer) {
    FakeAttribution attr;
    auto s = snapWithConnections();
    auto doc = containersJson(s, &attr);
    ASSERT_TRUE(doc["enabled"].get<bool>());
    ASSERT_EQ(doc["total"], 2);  // kCid (web) and kCid2 (docker); the root and unknown cgroups are not containers
    std::map<std::string, json> by;
    for (const auto& c : doc["containers"]) by[c["container_id"].get<std::string>()] = c;
    const auto& web = by.at(kCid);
    EXPECT_EQ(web["pod_uid"], kUid);
    EXPECT_EQ(web["namespace"], "shop");
    EXPECT_EQ(web["pod"], "web-1");
    EXPECT_EQ(web["workload"], "web");
    EXPECT_EQ(web["cgroup_ids"], json::array({100}));
    EXPECT_EQ(web["netns"], json::array({4026532999u}));
    EXPECT_EQ(web["host_interfaces"], json::array({"veth7"}));
    EXPECT_EQ(web["connections_open"], 1);
    EXPECT_EQ(web["connections_closed"], 0);
    // the server's socket received the client's flow (5 packets, 500 bytes) and sent 4/300
    EXPECT_EQ(web["rx_packets"], 5);
    EXPECT_EQ(web["rx_bytes"], 500);
    EXPECT_EQ(web["tx_packets"], 4);
    EXPECT_EQ(web["tx_bytes"], 300);
    EXPECT_FALSE(web.contains("netns_tx_bytes"));  // veth7 is not in the snapshot (not monitored)
    const auto& docker = by.at(kCid2);
    EXPECT_TRUE(docker["pod_uid"].is_null());
    EXPECT_FALSE(docker.contains("pod"));
    EXPECT_EQ(docker["tx_packets"], 3);  // TCP only: the UDP flow of the same ports is not its socket's
    EXPECT_EQ(docker["tx_bytes"], 200);
    EXPECT_EQ(docker["rx_bytes"], 0);
    EXPECT_EQ(docker["host_interfaces"], json::array());

    // with veth7 monitored: its namespace's traffic, all protocols (ingress on the host side = sent)
    {
        auto m = s;
        collector::InterfaceStats v;
        v.name = "veth7";
        v.index = 7;
        v.ingress_packets = 11;
        v.ingress_bytes = 1100;
        v.egress_packets = 22;
        v.egress_bytes = 2200;
        m.snap.interfaces = {v};
        for (const auto& c : containersJson(m, &attr)["containers"]) {
            if (c["container_id"] != kCid) {
                EXPECT_FALSE(c.contains("netns_tx_bytes"));
                continue;
            }
            EXPECT_EQ(c["netns_tx_packets"], 11);
            EXPECT_EQ(c["netns_tx_bytes"], 1100);
            EXPECT_EQ(c["netns_rx_packets"], 22);
            EXPECT_EQ(c["netns_rx_bytes"], 2200);
        }
    }
    // the same packets seen at two hooks count once
    s.flows.push_back(s.flows[0]);
    s.flows.back().key.ifindex = 9;
    auto twice = containersJson(s, &attr);
    for (const auto& c : twice["containers"])
        if (c["container_id"] == kCid) {
            EXPECT_EQ(c["rx_bytes"], 500);
        }

    EXPECT_FALSE(containersJson(s, nullptr)["enabled"].get<bool>());
    s.snap.stack.reset();
    auto off = containersJson(s, &attr);
    EXPECT_FALSE(off["enabled"].get<bool>());
    EXPECT_EQ(off["containers"].size(), 0u);
}

TEST(WorkloadCounters, MaxPairsFoldsNewPairsIntoOther) {
    FakeAttribution attr;
    attr.pods = {{"frontend", "ui-1", "ui", "10.244.0.5"}, {"shop", "web-1", "web", "10.244.0.6"}};
    analysis::WorkloadCounters wc(2);  // room for two pairs
    wc.observe(analysis::perTuple(samplesOf(workloadSnap(1))), attr);  // three pairs: the third goes to other
    auto t = wc.traffic();
    ASSERT_EQ(t.size(), 3u);
    std::uint64_t total = 0;
    for (const auto& w : t) total += w.bytes;
    EXPECT_EQ(total, 5000u + 800u + 100u);
    const analysis::WorkloadPair other{{"other", "other"}, {"other", "other"}};
    EXPECT_TRUE(std::any_of(t.begin(), t.end(), [&](const auto& w) { return w.pair == other; }));
    // rendered once as "other", whatever the budget
    for (std::size_t limit : {0u, 1u, 5u}) {
        auto text = metrics::renderWorkloadMetrics(t, {true, limit});
        std::size_t n = 0;
        for (auto pos = text.find("netprobe_workload_traffic_bytes_total{src_namespace=\"other\""); pos != std::string::npos;
             pos = text.find("netprobe_workload_traffic_bytes_total{src_namespace=\"other\"", pos + 1))
            ++n;
        EXPECT_EQ(n, 1u) << text;
        auto r = netprobe::testing::promtoolCheckMetrics(text);
        EXPECT_EQ(r.exit_status, 0) << r.output;
    }
    // the overflow pair survives the workloads' churn
    attr.pods.clear();
    auto s = workloadSnap(2);
    s.flows.clear();
    wc.observe(analysis::perTuple(samplesOf(s)), attr);
    ASSERT_EQ(wc.traffic().size(), 1u);
    EXPECT_EQ(wc.traffic()[0].pair, other);
}

TEST(ContainerFilter, ConnectionsAndFlows) {
    FakeAttribution attr;
    auto s = snapWithConnections();
    auto cq = [&](netprobe::http::QueryParams p, const analysis::Attribution* a) {
        auto q = metrics::parseConnectionQuery(p, 100, 1000);
        EXPECT_TRUE(q) << (q ? "" : q.error());
        return connectionsJson(s, *q, a);
    };
    auto web = cq({{"container", kCid}}, &attr);
    ASSERT_EQ(web["total"], 1);
    EXPECT_EQ(web["connections"][0]["src_port"], 8080);
    EXPECT_EQ(cq({{"container", "bbbbbbbbbbbb"}}, &attr)["connections"][0]["container_id"], kCid2);  // short id
    EXPECT_EQ(cq({{"container", "0123"}}, &attr)["total"], 0);
    EXPECT_EQ(cq({{"container", kCid}}, nullptr)["total"], 0);  // no attribution: nothing matches

    auto fq = [&](netprobe::http::QueryParams p) {
        auto q = metrics::parseFlowQuery(p, 100, 1000);
        EXPECT_TRUE(q) << (q ? "" : q.error());
        return json::parse(flowsJson(s, *q, &attr));
    };
    auto f = fq({{"container", "aaaa"}});  // either end: the request and the answer
    EXPECT_EQ(f["total"], 2);
    for (const auto& x : f["flows"]) EXPECT_EQ(x["protocol"], "tcp");
    EXPECT_EQ(fq({{"container", kCid2}})["total"], 1);  // TCP only: not the UDP flow of the same ports
    EXPECT_EQ(fq({{"container", "0123"}})["total"], 0);

    for (const char* bad : {"", "ABC", "xyz", "a-b"}) {
        EXPECT_FALSE(metrics::parseConnectionQuery({{"container", bad}}, 100, 1000)) << bad;
        auto r = metrics::parseFlowQuery({{"container", bad}}, 100, 1000);
        ASSERT_FALSE(r) << bad;
        EXPECT_NE(r.error().find("container"), std::string::npos) << r.error();
    }
    EXPECT_FALSE(metrics::parseFlowQuery({{"container", std::string(65, 'a')}}, 100, 1000));
}
