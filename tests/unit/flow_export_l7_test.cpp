// Flow records with the L7 summary and the NetworkPolicy verdict: the FlowExport stage's
// join of the snapshot's completed L7 requests (once per request, either orientation,
// deltas per record, the bounded waiting list), the policy verdict through the real
// Topology -> PolicyMonitor -> FlowExport stages with a real policy set, and the three
// encoders (IPFIX template and record bytes decoded back, the flow log's JSON, the
// ClickHouse row and DDL, the migration of an older agent's table).
#include <gtest/gtest.h>

#include <netinet/in.h>

#include <algorithm>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/flow_export.hpp>
#include <netprobe/analysis/policy.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/k8s/netpol.hpp>
#include <netprobe/k8s/policy_publisher.hpp>
#include <netprobe/sinks/clickhouse.hpp>
#include <netprobe/sinks/flow_log.hpp>
#include <netprobe/sinks/ipfix.hpp>
#include <netprobe/util/ip.hpp>

#include "test_flows.hpp"

namespace netprobe {
namespace {

using analysis::FlowEndReason;
using analysis::FlowExport;
using analysis::FlowExportOptions;
using analysis::FlowExportRecord;
using analysis::FlowPolicyVerdict;
using analysis::L7Side;
using testing::makeKey;
using testing::makeSample;
using nlohmann::json;

constexpr std::uint8_t kAck = 0x10;

std::uint64_t ns(double t) { return static_cast<std::uint64_t>((1000.0 + t) * 1e9); }

// A completed request of the connection client:cport -> server:sport.
l7::Request request(const char* client, std::uint16_t cport, const char* server, std::uint16_t sport, int status,
                    double seconds, l7::Side side = l7::Side::Server, const char* protocol = "http") {
    l7::Request r;
    r.protocol = protocol;
    r.side = side;
    r.status = status;
    r.duration_seconds = seconds;
    r.client = *util::parseAddr(client);
    r.server = *util::parseAddr(server);
    r.client_port = cport;
    r.server_port = sport;
    r.family = util::isV4Mapped(r.client) ? 4 : 6;
    r.method = "GET";
    r.path = r.route = "/";
    return r;
}

// The stage over snapshots at t seconds (monotonic clock from 1000 s), with interfaces 2
// and 5 (Ethernet), and L7 on: every snapshot carries an L7 sample.
class L7Stage {
public:
    explicit L7Stage(FlowExportOptions o = {}) : stage_(nullptr, o) {}
    std::vector<FlowExportRecord> at(double t, std::vector<collector::FlowSample> samples,
                                     std::vector<l7::Request> requests = {}) {
        collector::Snapshot s = snap(t);
        s.flows = std::move(samples);
        auto l7 = std::make_shared<collector::L7Sample>();
        l7->requests = std::move(requests);
        s.l7 = std::move(l7);
        analysis::Views v;
        stage_.run(s, v);
        health = v.exports->health;
        return v.exports->records;
    }
    std::vector<FlowExportRecord> finish(double t) {
        collector::Snapshot s = snap(t);
        analysis::Views v;
        stage_.finish(s, v);
        health = v.exports->health;
        return v.exports->records;
    }
    analysis::FlowExportHealth health;

private:
    static collector::Snapshot snap(double t) {
        collector::Snapshot s;
        s.mono = collector::MonoTime(std::chrono::nanoseconds(ns(t)));
        s.taken_at = collector::WallTime(std::chrono::seconds(1'700'000'000)) +
                     std::chrono::duration_cast<collector::WallTime::duration>(std::chrono::duration<double>(t));
        for (std::uint32_t i : {2u, 5u}) {
            collector::InterfaceStats is;
            is.name = "if" + std::to_string(i);
            is.index = i;
            s.interfaces.push_back(is);
        }
        return s;
    }
    FlowExport stage_;
};

const char* kC = "198.18.0.2";
const char* kS = "198.18.0.1";
// The client's packets and the server's answers, on interface 2.
flow_key fwdOn(std::uint32_t ifindex) { return makeKey(kC, kS, 40000, 80, 6, ifindex, NP_DIR_INGRESS); }
flow_key revOn(std::uint32_t ifindex) { return makeKey(kS, kC, 80, 40000, 6, ifindex, NP_DIR_EGRESS); }

std::vector<collector::FlowSample> exchange(double t, std::uint32_t ifindex = 2) {
    return {makeSample(fwdOn(ifindex), 2, 200, ns(t - 0.9), ns(t - 0.5), kAck),
            makeSample(revOn(ifindex), 2, 300, ns(t - 0.8), ns(t - 0.4), kAck)};
}

const FlowExportRecord* on(const std::vector<FlowExportRecord>& recs, std::uint32_t ifindex) {
    for (const auto& r : recs)
        if (r.key.ifindex == ifindex) return &r;
    return nullptr;
}

TEST(FlowExportL7, ARequestCountsOnceOnTheLowestInterfaceOfItsConnection) {
    L7Stage st;
    // The connection crosses interfaces 5 and 2 (a pod's veth and the uplink).
    auto samples = exchange(1, 5);
    for (auto& s : exchange(1, 2)) samples.push_back(s);
    st.at(1, samples, {request(kC, 40000, kS, 80, 200, 0.002), request(kC, 40000, kS, 80, 200, 0.004)});
    EXPECT_EQ(st.health.l7_requests_matched, 2u);
    auto r = st.finish(2);
    ASSERT_EQ(r.size(), 2u);
    const auto* two = on(r, 2);
    const auto* five = on(r, 5);
    ASSERT_TRUE(two && five);
    EXPECT_TRUE(two->l7.present());
    EXPECT_EQ(two->l7.requests, 2u);
    EXPECT_EQ(two->l7.protocol, "http");
    EXPECT_EQ(two->l7.side, L7Side::Server);
    EXPECT_EQ(two->l7.latency_sum_us, 6000u);
    EXPECT_EQ(two->l7.latency_max_us, 4000u);
    EXPECT_FALSE(five->l7.present());
    EXPECT_EQ(five->l7.requests, 0u);
}

TEST(FlowExportL7, MatchedInEitherOrientationOfTheFlow) {
    L7Stage st;
    // The first packets seen were the server's (capture began mid-connection): the
    // record's forward direction is server -> client; the request still joins it.
    st.at(1, {makeSample(revOn(2), 3, 300, ns(0.1), ns(0.2), kAck)},
          {request(kC, 40000, kS, 80, 200, 0.001)});
    auto r = st.finish(2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].key.src_port, 80);
    EXPECT_EQ(r[0].l7.requests, 1u);
    EXPECT_EQ(st.health.l7_requests_matched, 1u);
}

TEST(FlowExportL7, ServerSideFiguresWhenTheServerIsOnThisNodeElseClientSide) {
    L7Stage st;
    // Both ends on the node: each request is seen twice, once per side.
    st.at(1, exchange(1), {request(kC, 40000, kS, 80, 200, 0.010, l7::Side::Server),
                           request(kC, 40000, kS, 80, 200, 0.012, l7::Side::Client),
                           request(kC, 40000, kS, 80, 503, 0.020, l7::Side::Server),
                           request(kC, 40000, kS, 80, 503, 0.022, l7::Side::Client)});
    auto r = st.finish(2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].l7.side, L7Side::Server);
    EXPECT_EQ(r[0].l7.requests, 2u);  // not 4
    EXPECT_EQ(r[0].l7.errors, 1u);
    EXPECT_EQ(r[0].l7.latency_sum_us, 30000u);
    EXPECT_EQ(r[0].l7.latency_max_us, 20000u);

    // Only the client's end on the node.
    L7Stage cl;
    cl.at(1, exchange(1), {request(kC, 40000, kS, 80, 404, 0.030, l7::Side::Client)});
    r = cl.finish(2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].l7.side, L7Side::Client);
    EXPECT_EQ(r[0].l7.requests, 1u);
    EXPECT_EQ(r[0].l7.errors, 1u);
    EXPECT_EQ(r[0].l7.client_errors, 1u);
    EXPECT_EQ(r[0].l7.latency_max_us, 30000u);
}

TEST(FlowExportL7, ErrorsAreFailedRequestsOfWhichClientErrorsPerProtocol) {
    L7Stage st;
    const auto udp = makeKey(kC, kS, 5353, 53, 17, 2);
    const auto udp_back = makeKey(kS, kC, 53, 5353, 17, 2, NP_DIR_EGRESS);
    std::vector<collector::FlowSample> samples = exchange(1);
    samples.push_back(makeSample(udp, 2, 200, ns(0.1), ns(0.2)));
    samples.push_back(makeSample(udp_back, 2, 300, ns(0.15), ns(0.25)));
    st.at(1, samples,
          {request(kC, 40000, kS, 80, 200, 0.001), request(kC, 40000, kS, 80, 404, 0.001),
           request(kC, 40000, kS, 80, 500, 0.001), request(kC, 40000, kS, 80, 302, 0.001),
           // DNS over UDP: NXDOMAIN (3) is a client error, SERVFAIL (2) an error
           request(kC, 5353, kS, 53, 3, 0.001, l7::Side::Server, "dns"),
           request(kC, 5353, kS, 53, 2, 0.001, l7::Side::Server, "dns"),
           request(kC, 5353, kS, 53, 0, 0.001, l7::Side::Server, "dns")});
    auto r = st.finish(2);
    ASSERT_EQ(r.size(), 2u);
    std::sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.key.proto < b.key.proto; });
    EXPECT_EQ(r[0].key.proto, IPPROTO_TCP);
    EXPECT_EQ(r[0].l7.requests, 4u);
    EXPECT_EQ(r[0].l7.errors, 2u);  // 404 and 500
    EXPECT_EQ(r[0].l7.client_errors, 1u);
    EXPECT_EQ(r[1].key.proto, IPPROTO_UDP);
    EXPECT_EQ(r[1].l7.protocol, "dns");
    EXPECT_EQ(r[1].l7.requests, 3u);
    EXPECT_EQ(r[1].l7.errors, 2u);
    EXPECT_EQ(r[1].l7.client_errors, 1u);
}

TEST(FlowExportL7, AnHttpRequestNeverJoinsAUdpFlowOfTheSamePorts) {
    L7Stage st;
    st.at(1, {makeSample(makeKey(kC, kS, 40000, 80, 17, 2), 1, 100, ns(0.1), ns(0.1))},
          {request(kC, 40000, kS, 80, 200, 0.001)});
    EXPECT_EQ(st.health.l7_requests_matched, 0u);
    EXPECT_EQ(st.health.l7_requests_pending, 1u);
    auto r = st.finish(2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_FALSE(r[0].l7.present());
    EXPECT_EQ(st.health.l7_requests_unmatched, 1u);  // given up at the stop
}

TEST(FlowExportL7, ActiveTimeoutRecordsCarryTheRequestsSinceThePreviousRecord) {
    FlowExportOptions o;
    o.active_timeout = std::chrono::seconds(10);
    L7Stage st(o);
    std::vector<FlowExportRecord> all;
    std::uint64_t sent = 0, errors = 0;
    for (int t = 1; t <= 25; ++t) {
        std::vector<l7::Request> reqs;
        for (int i = 0; i < t % 4; ++i) {  // 0..3 requests a collection, some failing
            const int status = (t + i) % 5 == 0 ? 500 : 200;
            reqs.push_back(request(kC, 40000, kS, 80, status, 0.001 * t));
            ++sent;
            errors += status == 500;
        }
        auto r = st.at(t, exchange(t), reqs);
        all.insert(all.end(), r.begin(), r.end());
    }
    ASSERT_EQ(all.size(), 2u);  // at 11 and 21 s
    auto last = st.finish(26);
    ASSERT_EQ(last.size(), 1u);
    all.push_back(last[0]);
    std::uint64_t got = 0, got_errors = 0;
    for (const auto& r : all) {
        got += r.l7.requests;
        got_errors += r.l7.errors;
        EXPECT_GT(r.l7.requests, 0u);
    }
    EXPECT_EQ(got, sent);
    EXPECT_EQ(got_errors, errors);
    // The first record: collections 1..11 (requests t % 4 each, latency t ms).
    std::uint64_t first = 0;
    for (int t = 1; t <= 11; ++t) first += t % 4;
    EXPECT_EQ(all[0].l7.requests, first);
    EXPECT_EQ(all[0].l7.latency_max_us, 11000u);
    // The second: 12..21, its own maximum (21 ms), not the first record's.
    EXPECT_EQ(all[1].l7.latency_max_us, 21000u);
    EXPECT_EQ(all[2].l7.latency_max_us, 25000u);
}

TEST(FlowExportL7, RequestsAfterTheRecordOfTheirPacketsGoInTheNextRecordEvenWithoutPackets) {
    FlowExportOptions o;
    o.active_timeout = std::chrono::seconds(2);
    o.idle_timeout = std::chrono::seconds(5);
    L7Stage st(o);
    EXPECT_TRUE(st.at(1, exchange(1)).empty());
    auto r = st.at(3, {});
    ASSERT_EQ(r.size(), 1u);  // active timeout: the packets
    EXPECT_EQ(r[0].reason, FlowEndReason::ActiveTimeout);
    EXPECT_FALSE(r[0].l7.present());
    // The request of that exchange comes a collection later (the capture's reader lags).
    r = st.at(4, {}, {request(kC, 40000, kS, 80, 200, 0.003)});
    EXPECT_TRUE(r.empty());
    std::vector<FlowExportRecord> all;
    for (int t = 5; t <= 8; ++t) {
        auto x = st.at(t, {});
        all.insert(all.end(), x.begin(), x.end());
    }
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].packets + all[0].rev_packets, 0u);
    EXPECT_EQ(all[0].l7.requests, 1u);
    EXPECT_EQ(all[0].l7.latency_sum_us, 3000u);
    EXPECT_EQ(all[0].start_ms, all[0].end_ms);
    EXPECT_EQ(all[0].flow_id, r.empty() ? all[0].flow_id : r[0].flow_id);
}

TEST(FlowExportL7, ARequestWaitsForItsFlowAndIsGivenUpAfterTheTimeout) {
    FlowExportOptions o;
    o.l7_pending_timeout = std::chrono::seconds(3);
    L7Stage st(o);
    // The request arrives one collection before its connection's packets are read.
    st.at(1, {}, {request(kC, 40000, kS, 80, 200, 0.001), request(kC, 41000, kS, 80, 200, 0.001)});
    EXPECT_EQ(st.health.l7_requests_pending, 2u);
    EXPECT_EQ(st.health.l7_requests_matched, 0u);
    st.at(2, exchange(2));
    EXPECT_EQ(st.health.l7_requests_matched, 1u);
    EXPECT_EQ(st.health.l7_requests_pending, 1u);  // 41000 has no flow
    st.at(3, {});
    EXPECT_EQ(st.health.l7_requests_unmatched, 0u);
    st.at(4, {});  // 3 s after it began waiting
    EXPECT_EQ(st.health.l7_requests_unmatched, 1u);
    EXPECT_EQ(st.health.l7_requests_pending, 0u);
    auto r = st.finish(5);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].l7.requests, 1u);
}

TEST(FlowExportL7, TheWaitingListIsBoundedAndGivesUpTheOldest) {
    FlowExportOptions o;
    o.max_l7_pending = 3;
    L7Stage st(o);
    std::vector<l7::Request> reqs;
    for (std::uint16_t p = 0; p < 5; ++p) reqs.push_back(request(kC, static_cast<std::uint16_t>(40000 + p), kS, 80, 200, 0.001));
    st.at(1, {}, reqs);
    EXPECT_EQ(st.health.l7_requests_pending, 3u);
    EXPECT_EQ(st.health.l7_requests_unmatched, 2u);
    // The oldest two were given up: the flow of 40000 gets nothing, 40004's gets its request.
    auto samples = exchange(2);
    samples.push_back(makeSample(makeKey(kC, kS, 40004, 80, 6, 2), 1, 100, ns(1.5), ns(1.5)));
    st.at(2, samples);
    EXPECT_EQ(st.health.l7_requests_matched, 1u);
    auto r = st.finish(3);
    ASSERT_EQ(r.size(), 2u);
    for (const auto& x : r) EXPECT_EQ(x.l7.requests, x.key.src_port == 40004 ? 1u : 0u) << x.key.src_port;
    EXPECT_EQ(st.health.l7_requests_unmatched + st.health.l7_requests_matched, 5u);
}

TEST(FlowExportL7, FlowsWithoutRequestsCarryNoSummary) {
    L7Stage st;
    st.at(1, exchange(1));
    auto r = st.finish(2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].l7, analysis::FlowL7Summary{});
    EXPECT_EQ(r[0].policy, FlowPolicyVerdict::None);
    EXPECT_EQ(st.health.l7_requests_matched + st.health.l7_requests_unmatched, 0u);
}

// ---- the policy verdict: Topology -> PolicyMonitor -> FlowExport ----

k8s::PodInfo pod(const char* ns, const char* name, const char* addr, const char* app) {
    k8s::PodInfo p;
    p.ns = ns;
    p.name = name;
    p.uid = std::string("uid-") + name;
    p.node = "node-a";
    p.ips = {*util::parseAddr(addr)};
    p.labels = {{"app", app}};
    return p;
}

TEST(FlowExportPolicy, RecordsCarryTheVerdictOfTheirConversation) {
    // shop: default deny of ingress, web admits namespace frontend on 8080.
    auto deny = k8s::networkPolicyFromJson(
        {{"metadata", {{"namespace", "shop"}, {"name", "default-deny"}, {"uid", "u1"}}},
         {"spec", {{"podSelector", json::object()}, {"policyTypes", {"Ingress"}}}}});
    auto allow = k8s::networkPolicyFromJson(
        {{"metadata", {{"namespace", "shop"}, {"name", "allow-frontend"}, {"uid", "u2"}}},
         {"spec",
          {{"podSelector", {{"matchLabels", {{"app", "web"}}}}},
           {"ingress",
            {{{"from", {{{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", "frontend"}}}}}}}},
              {"ports", {{{"port", 8080}}}}}}}}}});
    ASSERT_TRUE(deny && allow);
    std::vector<k8s::NamespaceInfo> nss = {{"frontend", "uid-frontend", "1", {}}, {"shop", "uid-shop", "1", {}}};
    std::shared_ptr<const analysis::PolicyEvaluator> set = k8s::buildPolicyEvaluator(
        {*deny, *allow},
        {pod("frontend", "ui", "198.18.7.11", "ui"), pod("shop", "web", "198.18.7.12", "web"),
         pod("shop", "db", "198.18.7.13", "db")},
        nss, {{"node-a", "uid-node-a", "1", {*util::parseAddr("198.18.7.1")}}}, {}, 1);

    analysis::Topology topology;
    analysis::PolicyMonitorOptions po;
    po.policies = [set] { return set; };
    analysis::PolicyMonitor policy(po);
    FlowExport exporter(nullptr, {});
    auto run = [&](double t, std::vector<collector::FlowSample> flows, bool finish) {
        auto s = std::make_shared<collector::Snapshot>();
        s->mono = collector::MonoTime(std::chrono::nanoseconds(ns(t)));
        s->taken_at = collector::WallTime(std::chrono::seconds(1'700'000'000));
        s->flows = std::move(flows);
        analysis::Views v;
        v.snapshot = s;
        topology.run(*s, v);
        policy.run(*s, v);
        if (finish)
            exporter.finish(*s, v);
        else
            exporter.run(*s, v);
        return std::make_pair(v.exports->records, v.policy);
    };
    auto flow = [](const char* a, std::uint16_t pa, const char* b, std::uint16_t pb, double first,
                   std::uint32_t ifindex = 1) {
        return makeSample(makeKey(a, b, pa, pb, 6, ifindex), 3, 300, ns(first), ns(first + 0.1), kAck);
    };
    auto [none, pv] = run(1,
                          {// ui -> web:8080: allowed
                           flow("198.18.7.11", 40001, "198.18.7.12", 8080, 0.1),
                           flow("198.18.7.12", 8080, "198.18.7.11", 40001, 0.2),
                           // ui -> db:5432: denied (and answered: a gap)
                           flow("198.18.7.11", 40002, "198.18.7.13", 5432, 0.1),
                           flow("198.18.7.13", 5432, "198.18.7.11", 40002, 0.2),
                           // two addresses that are no pods
                           flow("198.18.9.1", 40004, "198.18.9.2", 80, 0.1)},
                          false);
    EXPECT_TRUE(none.empty());
    ASSERT_TRUE(pv && pv->verdicts);
    EXPECT_EQ(pv->verdicts->size(), 3u);
    // The db's answers on a second interface, seen there before the client's packets: that
    // flow's record is oriented db -> ui, the conversation is still ui -> db:5432.
    auto [more, pv1] = run(2, {flow("198.18.7.13", 5432, "198.18.7.11", 40002, 1.1, 3)}, false);
    EXPECT_TRUE(more.empty());
    auto [records, pv2] = run(3, {}, true);
    std::map<std::pair<std::uint32_t, std::uint16_t>, FlowPolicyVerdict> got;
    for (const auto& r : records) {
        const bool from_server = r.key.src_port == 5432 || r.key.src_port == 8080;
        got[{r.key.ifindex, from_server ? r.key.dst_port : r.key.src_port}] = r.policy;
        if (r.key.ifindex == 3) {
            EXPECT_EQ(r.key.src_port, 5432);
        }
    }
    EXPECT_EQ(got.size(), 4u);
    EXPECT_EQ((got[{1, 40001}]), FlowPolicyVerdict::Allowed);
    EXPECT_EQ((got[{1, 40002}]), FlowPolicyVerdict::Denied);
    EXPECT_EQ((got[{3, 40002}]), FlowPolicyVerdict::Denied);
    EXPECT_EQ((got[{1, 40004}]), FlowPolicyVerdict::None);
    // The index is published once and shared while nothing changes.
    EXPECT_EQ(pv2->verdicts, pv1->verdicts);
}

TEST(FlowExportPolicy, VerdictIndexCopiesOnlyOnWrite) {
    analysis::ConversationVerdicts::Shards shards;
    auto shard = std::make_shared<analysis::ConversationVerdicts::Shard>();
    const analysis::ConversationVerdicts::Key k{*util::parseAddr("198.18.0.1"), *util::parseAddr("198.18.0.2"), 80, 6};
    (*shard)[k] = analysis::ConversationVerdicts::Verdict::Denied;
    shards[analysis::ConversationVerdicts::shardOf(k)] = shard;
    analysis::ConversationVerdicts idx(shards);
    EXPECT_EQ(idx.find(k), analysis::ConversationVerdicts::Verdict::Denied);
    auto other = k;
    other.port = 81;
    EXPECT_FALSE(idx.find(other));
    EXPECT_EQ(idx.size(), 1u);
    EXPECT_FALSE(analysis::ConversationVerdicts{}.find(k));
}

// ---- the encoders ----

FlowExportRecord l7Record() {
    FlowExportRecord r;
    r.key = fwdOn(2);
    r.flow_id = 11;
    r.start_ms = 1'700'000'000'100;
    r.end_ms = 1'700'000'000'600;
    r.packets = 4;
    r.bytes = 4 * 114;
    r.rev_packets = 3;
    r.rev_bytes = 3 * 214;
    r.reverse_seen = true;
    r.interface = "veth0";
    r.l7 = {"grpc", L7Side::Server, 7, 3, 1, 123456, 99999};
    r.policy = FlowPolicyVerdict::Denied;
    return r;
}

std::uint16_t be16(const std::vector<std::uint8_t>& m, std::size_t at) {
    return static_cast<std::uint16_t>(m[at] << 8 | m[at + 1]);
}
std::uint32_t be32(const std::vector<std::uint8_t>& m, std::size_t at) {
    return static_cast<std::uint32_t>(be16(m, at)) << 16 | be16(m, at + 2);
}
std::uint64_t num(const std::vector<std::uint8_t>& b) {
    std::uint64_t v = 0;
    for (auto x : b) v = v << 8 | x;
    return v;
}
std::string text(const std::vector<std::uint8_t>& b) { return std::string(b.begin(), b.end()); }

struct FieldSpec {
    std::uint16_t id, length;
    std::uint32_t pen;
};
using Templates = std::map<std::uint16_t, std::vector<FieldSpec>>;
using Record = std::multimap<std::pair<std::uint32_t, std::uint16_t>, std::vector<std::uint8_t>>;

// A decoder written from RFC 7011 (sets, template records, enterprise bit, variable
// lengths), independent of the encoder.
Templates templatesOf(const std::vector<std::uint8_t>& m) {
    Templates out;
    std::size_t off = 16;
    while (off + 4 <= m.size()) {
        const auto set = be16(m, off), len = be16(m, off + 2);
        std::size_t p = off + 4;
        while (set <= 3 && p + 4 <= off + len) {
            const auto id = be16(m, p), count = be16(m, p + 2);
            p += set == 3 ? 6 : 4;
            for (int i = 0; i < count; ++i) {
                FieldSpec f{static_cast<std::uint16_t>(be16(m, p) & 0x7fff), be16(m, p + 2), 0};
                const bool ent = be16(m, p) & 0x8000;
                p += 4;
                if (ent) f.pen = be32(m, p), p += 4;
                out[id].push_back(f);
            }
        }
        off += len;
    }
    return out;
}
std::vector<Record> recordsOf(const std::vector<std::uint8_t>& m, const Templates& t) {
    std::vector<Record> out;
    EXPECT_EQ(be16(m, 2), m.size());
    std::size_t off = 16;
    while (off + 4 <= m.size()) {
        const auto set = be16(m, off), len = be16(m, off + 2);
        std::size_t p = off + 4;
        while (p < off + len) {
            auto& rec = out.emplace_back();
            for (const auto& f : t.at(set)) {
                std::size_t n = f.length;
                if (n == 65535) {
                    n = m[p++];
                    if (n == 255) n = be16(m, p), p += 2;
                }
                rec.emplace(std::pair{f.pen, f.id}, std::vector<std::uint8_t>(m.begin() + p, m.begin() + p + n));
                p += n;
            }
        }
        EXPECT_EQ(p, off + len);
        off += len;
    }
    return out;
}

TEST(IpfixL7, TemplatesDeclareTheL7AndPolicyElementsWithTheirTypes) {
    sinks::ipfix::Encoder enc({});
    auto t = templatesOf(enc.templates(1).bytes);
    for (std::uint16_t tid : {256, 257}) {
        std::map<std::uint16_t, std::uint16_t> ent;  // id -> length, enterprise 32473
        for (const auto& f : t[tid])
            if (f.pen == 32473) ent[f.id] = f.length;
        EXPECT_EQ(ent[11], 65535) << tid;  // l7Protocol: variable-length string
        EXPECT_EQ(ent[12], 1);             // l7Side
        EXPECT_EQ(ent[13], 8);
        EXPECT_EQ(ent[14], 8);
        EXPECT_EQ(ent[15], 8);
        EXPECT_EQ(ent[16], 8);
        EXPECT_EQ(ent[17], 4);
        EXPECT_EQ(ent[18], 1);  // networkPolicyVerdict
        EXPECT_EQ(ent.size(), 18u);
    }
}

TEST(IpfixL7, BiflowRecordBytesDecodeBackToTheSummaryAndVerdict) {
    sinks::ipfix::EncoderOptions o;
    o.enterprise = 4242;
    sinks::ipfix::Encoder enc(o);
    const auto t = templatesOf(enc.templates(1).bytes);
    auto none = l7Record();
    none.flow_id = 12;
    none.l7 = {};
    none.policy = FlowPolicyVerdict::Allowed;
    auto big = l7Record();
    big.l7.latency_max_us = 1ull << 40;  // beyond unsigned32: saturates
    std::vector<FlowExportRecord> recs{l7Record(), none, big};
    auto msgs = enc.data(recs, 1);
    ASSERT_EQ(msgs.size(), 1u);
    auto d = recordsOf(msgs[0].bytes, t);
    ASSERT_EQ(d.size(), 3u);
    auto get = [&](std::size_t i, std::uint16_t id) { return d[i].find({4242, id})->second; };
    EXPECT_EQ(text(get(0, 11)), "grpc");
    EXPECT_EQ(num(get(0, 12)), 1u);
    EXPECT_EQ(num(get(0, 13)), 7u);
    EXPECT_EQ(num(get(0, 14)), 3u);
    EXPECT_EQ(num(get(0, 15)), 1u);
    EXPECT_EQ(num(get(0, 16)), 123456u);
    EXPECT_EQ(num(get(0, 17)), 99999u);
    EXPECT_EQ(num(get(0, 18)), 2u);
    EXPECT_EQ(num(d[0].find({0, 2})->second), 4u);  // the standard fields are where they were
    EXPECT_EQ(text(get(1, 11)), "");
    EXPECT_EQ(num(get(1, 12)), 0u);
    EXPECT_EQ(num(get(1, 13)), 0u);
    EXPECT_EQ(num(get(1, 18)), 1u);
    EXPECT_EQ(num(get(2, 17)), 0xffffffffu);
}

TEST(IpfixL7, WithoutBiflowsTheFiguresGoWithOneRecordAndARequestsOnlyRecordIsForward) {
    sinks::ipfix::EncoderOptions o;
    o.biflow = false;
    sinks::ipfix::Encoder enc(o);
    const auto t = templatesOf(enc.templates(1).bytes);
    auto only_rev = l7Record();
    only_rev.packets = only_rev.bytes = 0;
    auto only_l7 = l7Record();
    only_l7.packets = only_l7.bytes = only_l7.rev_packets = only_l7.rev_bytes = 0;
    std::vector<FlowExportRecord> recs{l7Record(), only_rev, only_l7};
    auto msgs = enc.data(recs, 1);
    ASSERT_EQ(msgs.size(), 1u);
    auto d = recordsOf(msgs[0].bytes, t);
    ASSERT_EQ(d.size(), 4u);  // 2 + 1 + 1
    auto reqs = [&](std::size_t i) { return num(d[i].find({32473, 13})->second); };
    auto sport = [&](std::size_t i) { return num(d[i].find({0, 7})->second); };
    // both directions: the forward one has the figures, the reverse none; both the verdict
    EXPECT_EQ(sport(0), 40000u);
    EXPECT_EQ(reqs(0), 7u);
    EXPECT_EQ(sport(1), 80u);
    EXPECT_EQ(reqs(1), 0u);
    EXPECT_EQ(text(d[1].find({32473, 11})->second), "");
    EXPECT_EQ(num(d[1].find({32473, 18})->second), 2u);
    // reverse packets only: that record has them
    EXPECT_EQ(sport(2), 80u);
    EXPECT_EQ(reqs(2), 7u);
    // requests without packets: one forward record of zero counts
    EXPECT_EQ(sport(3), 40000u);
    EXPECT_EQ(reqs(3), 7u);
    EXPECT_EQ(num(d[3].find({0, 2})->second), 0u);
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < d.size(); ++i) total += reqs(i);
    EXPECT_EQ(total, 3u * 7);  // each record's requests once
}

TEST(FlowLogL7, FieldsOnlyWhenPresent) {
    auto j = json::parse(sinks::flowRecordJson(l7Record(), "node-1"));
    EXPECT_EQ(j["l7_protocol"], "grpc");
    EXPECT_EQ(j["l7_side"], "server");
    EXPECT_EQ(j["l7_requests"], 7);
    EXPECT_EQ(j["l7_errors"], 3);
    EXPECT_EQ(j["l7_client_errors"], 1);
    EXPECT_EQ(j["l7_latency_sum_us"], 123456);
    EXPECT_EQ(j["l7_latency_max_us"], 99999);
    EXPECT_EQ(j["policy_verdict"], "denied");
    auto plain = l7Record();
    plain.l7 = {};
    plain.policy = FlowPolicyVerdict::None;
    j = json::parse(sinks::flowRecordJson(plain, "node-1"));
    for (const char* k : {"l7_protocol", "l7_side", "l7_requests", "l7_errors", "l7_client_errors",
                          "l7_latency_sum_us", "l7_latency_max_us", "policy_verdict"})
        EXPECT_FALSE(j.contains(k)) << k;
    // an L7 flow with no request in this record: present, zero
    auto quiet = l7Record();
    quiet.l7.requests = quiet.l7.errors = quiet.l7.client_errors = quiet.l7.latency_sum_us = quiet.l7.latency_max_us = 0;
    j = json::parse(sinks::flowRecordJson(quiet, "node-1"));
    EXPECT_EQ(j["l7_requests"], 0);
    EXPECT_EQ(j["l7_protocol"], "grpc");
}

TEST(ClickHouseL7, RowCarriesTheNewColumnsAlways) {
    auto j = json::parse(sinks::clickHouseRow(l7Record(), "node-1", 5, 0, 1'800'000'000));
    EXPECT_EQ(j["l7_protocol"], "grpc");
    EXPECT_EQ(j["l7_side"], "server");
    EXPECT_EQ(j["l7_requests"], 7);
    EXPECT_EQ(j["l7_errors"], 3);
    EXPECT_EQ(j["l7_client_errors"], 1);
    EXPECT_EQ(j["l7_latency_sum_us"], 123456);
    EXPECT_EQ(j["l7_latency_max_us"], 99999);
    EXPECT_EQ(j["policy_verdict"], "denied");
    auto plain = l7Record();
    plain.l7 = {};
    plain.policy = FlowPolicyVerdict::None;
    j = json::parse(sinks::clickHouseRow(plain, "node-1", 5, 1, 1'800'000'000));
    EXPECT_EQ(j["l7_protocol"], "");
    EXPECT_EQ(j["l7_side"], "");
    EXPECT_EQ(j["l7_requests"], 0);
    EXPECT_EQ(j["policy_verdict"], "");
}

std::string ddl(const sinks::ClickHouseConfig& c, const char* version) {
    std::string s;
    for (const auto& x : sinks::clickHouseSchema(c, *sinks::parseClickHouseVersion(version))) s += x + ";\n";
    return s;
}

TEST(ClickHouseL7, NewTablesHaveTheColumnsShapedByTheVersion) {
    sinks::ClickHouseConfig c;
    const auto old = ddl(c, "18.16.1"), now = ddl(c, "24.8");
    EXPECT_NE(old.find("  dst_container String,\n  l7_protocol String,\n  l7_side String,\n  l7_requests UInt64,\n"
                       "  l7_errors UInt64,\n  l7_client_errors UInt64,\n  l7_latency_sum_us UInt64,\n"
                       "  l7_latency_max_us UInt64,\n  policy_verdict String\n) ENGINE = ReplacingMergeTree"),
              std::string::npos)
        << old;
    EXPECT_NE(now.find("l7_protocol LowCardinality(String)"), std::string::npos);
    EXPECT_NE(now.find("l7_requests UInt64 CODEC(T64, LZ4)"), std::string::npos);
    EXPECT_NE(now.find("policy_verdict LowCardinality(String)\n)"), std::string::npos);
    // The rollups are what they were: the views name their columns.
    EXPECT_EQ(old.find("l7_requests", old.find("flows_1m")), std::string::npos);
}

TEST(ClickHouseL7, AnOlderAgentsTableGetsTheMissingColumnsInOneAlter) {
    sinks::ClickHouseConfig c;
    c.database = "np";
    const auto v18 = *sinks::parseClickHouseVersion("18.16.1");
    std::vector<std::string> first = {"time_received", "node", "batch_id", "seq", "flow_id", "src_container",
                                      "dst_container"};
    auto alter = sinks::clickHouseFlowMigration(c, v18, first);
    ASSERT_TRUE(alter);
    EXPECT_EQ(*alter,
              "ALTER TABLE np.flows ADD COLUMN l7_protocol String AFTER dst_container, ADD COLUMN l7_side String AFTER "
              "l7_protocol, ADD COLUMN l7_requests UInt64 AFTER l7_side, ADD COLUMN l7_errors UInt64 AFTER "
              "l7_requests, ADD COLUMN l7_client_errors UInt64 AFTER l7_errors, ADD COLUMN l7_latency_sum_us UInt64 "
              "AFTER l7_client_errors, ADD COLUMN l7_latency_max_us UInt64 AFTER l7_latency_sum_us, ADD COLUMN "
              "policy_verdict String AFTER l7_latency_max_us");
    EXPECT_EQ(alter->find("IF NOT EXISTS"), std::string::npos);  // 18.16 has no ADD COLUMN IF NOT EXISTS
    // Partly migrated (another agent was interrupted): only the rest.
    auto partial = first;
    for (const char* n : {"l7_protocol", "l7_side", "l7_requests"}) partial.push_back(n);
    alter = sinks::clickHouseFlowMigration(c, v18, partial);
    ASSERT_TRUE(alter);
    EXPECT_EQ(alter->find("l7_protocol"), std::string::npos);
    EXPECT_EQ(alter->rfind("ALTER TABLE np.flows ADD COLUMN l7_errors UInt64 AFTER l7_requests", 0), 0u) << *alter;
    // Up to date: nothing to do.
    auto all = partial;
    for (const auto& [name, _] : sinks::clickHouseAddedFlowColumns(v18)) all.push_back(name);
    EXPECT_FALSE(sinks::clickHouseFlowMigration(c, v18, all));
    // A table without dst_container (not the agent's shape): columns are appended.
    alter = sinks::clickHouseFlowMigration(c, v18, {"time_received"});
    ASSERT_TRUE(alter);
    EXPECT_EQ(alter->rfind("ALTER TABLE np.flows ADD COLUMN l7_protocol String, ADD COLUMN l7_side String AFTER "
                           "l7_protocol",
                           0),
              0u)
        << *alter;
    // Newer servers: the types of the new schema.
    alter = sinks::clickHouseFlowMigration(c, *sinks::parseClickHouseVersion("24.8"), first);
    ASSERT_TRUE(alter);
    EXPECT_NE(alter->find("l7_protocol LowCardinality(String) AFTER dst_container"), std::string::npos);
}

}  // namespace
}  // namespace netprobe
