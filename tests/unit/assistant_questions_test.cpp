// netprobe ask: the offline parser of questions (a table of questions -> intent and API
// queries, and of questions it must refuse), and the answers built from API documents
// captured from a real agent by tests/e2e/test_ask.py (tests/unit/data/ask/*.json).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/bottlenecks.hpp>
#include <netprobe/analysis/diagnosis.hpp>
#include <netprobe/assistant/questions.hpp>
#include <netprobe/metrics/bottlenecks.hpp>

#include "cli.hpp"
#include "metrics/json_api.hpp"

namespace {

using namespace netprobe::assistant;
using json = nlohmann::json;
using K = Intent::Kind;

// Monday 2026-01-05 15:30:00 UTC
constexpr std::int64_t kNow = 1767627000;
const Clock kUtc{kNow, 0};

struct Case {
    const char* question;
    K kind;
    std::vector<std::string> queries;
};

const std::vector<std::string> kChanges1400 = {
    "/api/v1/anomalies?limit=1000",
    "/api/v1/events?since=1767621600&limit=1000",
    "/api/v1/diagnosis",
    "/api/v1/bottlenecks?severity=warning",
    "/api/v1/history?series=node/retransmit_ratio&from=1767616200&to=1767627060",
    "/api/v1/history?series=node/connections_failed_rate&from=1767616200&to=1767627060",
    "/api/v1/history?series=node/listen_overflows_rate&from=1767616200&to=1767627060"};

const std::vector<Case> kCases = {
    // top talkers, ports, pods, workloads, namespaces, services
    {"top talkers in the last 10 minutes", K::TopTalkers, {"/api/v1/topology?window=10m&group_by=host"}},
    {"Top talkers?", K::TopTalkers, {"/api/v1/topology?window=5m&group_by=host"}},
    {"who are the top senders over the past hour", K::TopTalkers, {"/api/v1/topology?window=1h&group_by=host"}},
    {"show me the top 5 flows", K::TopTalkers, {"/api/v1/topology?window=5m&group_by=host"}},
    {"what are the busiest hosts since 14:00", K::TopTalkers, {"/api/v1/topology?window=1h30m&group_by=host"}},
    {"who sends the most traffic", K::TopTalkers, {"/api/v1/topology?window=5m&group_by=host"}},
    {"who uses the most bandwidth in the last 2h", K::TopTalkers, {"/api/v1/topology?window=2h&group_by=host"}},
    {"top talkers in namespace shop", K::TopTalkers, {"/api/v1/topology?window=5m&group_by=pod&namespace=shop"}},
    {"top   TALKERS   IN   THE   LAST   TEN   MINUTES!!!", K::TopTalkers, {"/api/v1/topology?window=10m&group_by=host"}},
    {"top talkers in the past half hour", K::TopTalkers, {"/api/v1/topology?window=30m&group_by=host"}},
    {"top talkers since 1 hour ago", K::TopTalkers, {"/api/v1/topology?window=1h&group_by=host"}},
    {"top 5 ports over the past hour", K::TopPorts, {"/api/v1/topology?window=1h&group_by=host"}},
    {"what are the busiest ports", K::TopPorts, {"/api/v1/topology?window=5m&group_by=host"}},
    {"which pods send the most traffic", K::TopPods, {"/api/v1/topology?window=5m&group_by=pod"}},
    {"top pods in the last 30m", K::TopPods, {"/api/v1/topology?window=30m&group_by=pod"}},
    {"top workloads in namespace shop", K::TopWorkloads, {"/api/v1/topology?window=5m&group_by=workload&namespace=shop"}},
    {"which deployments use the most bandwidth", K::TopWorkloads, {"/api/v1/topology?window=5m&group_by=workload"}},
    {"top namespaces", K::TopNamespaces, {"/api/v1/topology?window=5m&group_by=namespace"}},
    {"busiest services", K::TopServices, {"/api/v1/topology?window=5m&group_by=workload"}},
    // who talks to X
    {"who talks to 198.18.0.10:5432", K::WhoTalks, {"/api/v1/topology?window=5m&group_by=host"}},
    {"who is talking to fd00::1 in the last 15 minutes", K::WhoTalks, {"/api/v1/topology?window=15m&group_by=host"}},
    {"what does pod shop/cart-1 talk to", K::WhoTalks, {"/api/v1/topology?window=5m&group_by=pod"}},
    {"who connects to port 5432", K::WhoTalks, {"/api/v1/topology?window=5m&group_by=host"}},
    {"who uses tcp/443", K::WhoTalks, {"/api/v1/topology?window=5m&group_by=host"}},
    {"clients of workload shop/db", K::WhoTalks, {"/api/v1/topology?window=5m&group_by=workload"}},
    {"peers of 198.18.0.7", K::WhoTalks, {"/api/v1/topology?window=5m&group_by=host"}},
    {"who talks with namespace payments", K::WhoTalks,
     {"/api/v1/topology?window=5m&group_by=namespace&namespace=payments"}},
    {"who talks to db.example.com", K::WhoTalks, {"/api/v1/topology?window=5m&group_by=host"}},
    {"who talks to pod cart-1 in namespace shop", K::WhoTalks, {"/api/v1/topology?window=5m&group_by=pod"}},
    {"who's talking to [fd00::1]:443", K::WhoTalks, {"/api/v1/topology?window=5m&group_by=host"}},
    // latency and errors
    {"latency between 198.18.0.1 and 198.18.0.2", K::Latency, {"/api/v1/qos?window=5m&group_by=host"}},
    {"what is the RTT from 198.18.0.1 to 198.18.0.2:80", K::Latency, {"/api/v1/qos?window=5m&group_by=host"}},
    {"p99 latency of 198.18.0.10:8080", K::Latency, {"/api/v1/qos?window=5m&group_by=host"}},
    {"which pods have the highest latency", K::Latency, {"/api/v1/qos?window=5m&group_by=pod"}},
    {"is 198.18.0.10 slow", K::Latency, {"/api/v1/qos?window=5m&group_by=host"}},
    {"latency and errors between workload shop/cart and workload shop/db", K::Latency,
     {"/api/v1/qos?window=5m&group_by=workload", "/api/v1/l7/endpoints?limit=1000"}},
    {"latency between 198.18.0.1 and db.example.com", K::Latency,
     {"/api/v1/qos?window=5m&group_by=host", "/api/v1/l7/dns/names"}},
    {"errors between workload shop/cart and workload shop/db in the last 15 minutes", K::Errors,
     {"/api/v1/qos?window=15m&group_by=workload", "/api/v1/l7/endpoints?limit=1000"}},
    {"is there packet loss between 198.18.0.1 and 198.18.0.2", K::Errors,
     {"/api/v1/qos?window=5m&group_by=host", "/api/v1/l7/endpoints?limit=1000"}},
    {"which connections have the most retransmits", K::Errors,
     {"/api/v1/qos?window=5m&group_by=host", "/api/v1/l7/endpoints?limit=1000"}},
    {"any 5xx errors on 198.18.0.10:80", K::Errors,
     {"/api/v1/qos?window=5m&group_by=host", "/api/v1/l7/endpoints?limit=1000"}},
    // scans, attacks
    {"is anything being scanned", K::Scans, {"/api/v1/events?type=port_scan&limit=1000"}},
    {"is anything being scanned in the last hour", K::Scans,
     {"/api/v1/events?type=port_scan&since=1767623400&limit=1000"}},
    {"is 198.18.0.5 being scanned", K::Scans, {"/api/v1/events?type=port_scan&limit=1000"}},
    {"who is port scanning us", K::Scans, {"/api/v1/events?type=port_scan&limit=1000"}},
    {"are we under attack", K::Attacks, {"/api/v1/events?limit=1000"}},
    {"any security events since 2h ago", K::Attacks, {"/api/v1/events?since=1767619800&limit=1000"}},
    {"any ddos in the past day", K::Attacks, {"/api/v1/events?since=1767540600&limit=1000"}},
    // what changed
    {"what changed since 14:00", K::Changes, kChanges1400},
    {"anything unusual since 2pm", K::Changes, kChanges1400},
    {"what changed in the last hour", K::Changes,
     {"/api/v1/anomalies?limit=1000", "/api/v1/events?since=1767623400&limit=1000", "/api/v1/diagnosis",
      "/api/v1/bottlenecks?severity=warning",
      "/api/v1/history?series=node/retransmit_ratio&from=1767619800&to=1767627060",
      "/api/v1/history?series=node/connections_failed_rate&from=1767619800&to=1767627060",
      "/api/v1/history?series=node/listen_overflows_rate&from=1767619800&to=1767627060"}},
    {"any anomalies since 2026-01-05T12:00:00Z", K::Changes,
     {"/api/v1/anomalies?limit=1000", "/api/v1/events?since=1767614400&limit=1000", "/api/v1/diagnosis",
      "/api/v1/bottlenecks?severity=warning",
      "/api/v1/history?series=node/retransmit_ratio&from=1767601800&to=1767627060",
      "/api/v1/history?series=node/connections_failed_rate&from=1767601800&to=1767627060",
      "/api/v1/history?series=node/listen_overflows_rate&from=1767601800&to=1767627060"}},
    // why slow, diagnosis
    {"why is 198.18.0.10 slow", K::WhySlow,
     {"/api/v1/diagnosis", "/api/v1/bottlenecks", "/api/v1/qos?window=5m&group_by=host", "/api/v1/l7/endpoints?limit=1000"}},
    {"why is workload shop/cart slow", K::WhySlow,
     {"/api/v1/diagnosis", "/api/v1/bottlenecks", "/api/v1/qos?window=5m&group_by=workload",
      "/api/v1/l7/endpoints?limit=1000"}},
    {"why is the network slow", K::WhySlow, {"/api/v1/diagnosis", "/api/v1/bottlenecks"}},
    {"what's wrong with pod shop/cart-1", K::WhySlow,
     {"/api/v1/diagnosis", "/api/v1/bottlenecks", "/api/v1/qos?window=5m&group_by=pod", "/api/v1/l7/endpoints?limit=1000"}},
    {"is anything wrong", K::Diagnosis, {"/api/v1/diagnosis", "/api/v1/bottlenecks?severity=warning"}},
    {"is the network healthy", K::Diagnosis, {"/api/v1/diagnosis", "/api/v1/bottlenecks?severity=warning"}},
    // drops
    {"which pods drop packets", K::PodDrops, {"/api/v1/qos?window=5m&group_by=pod", "/api/v1/diagnosis"}},
    {"which workloads drop packets in the last 10 minutes", K::PodDrops,
     {"/api/v1/qos?window=10m&group_by=workload", "/api/v1/diagnosis"}},
    {"which pods in namespace shop drop packets", K::PodDrops,
     {"/api/v1/qos?window=5m&group_by=pod&namespace=shop", "/api/v1/diagnosis"}},
    {"which interfaces drop packets", K::InterfaceDrops,
     {"/api/v1/bottlenecks?kind=qdisc_drops,qdisc_backlog", "/api/v1/diagnosis"}},
    {"is eth0 dropping packets", K::InterfaceDrops,
     {"/api/v1/bottlenecks?kind=qdisc_drops,qdisc_backlog", "/api/v1/diagnosis"}},
    {"what is dropping packets", K::Drops, {"/api/v1/qos?window=5m&group_by=host", "/api/v1/diagnosis"}},
    // dns
    {"any dns failures", K::Dns, {"/api/v1/l7/endpoints?protocol=dns&limit=1000", "/api/v1/diagnosis"}},
    {"are there DNS errors in the last 5 minutes", K::Dns,
     {"/api/v1/l7/endpoints?protocol=dns&limit=1000", "/api/v1/diagnosis"}},
    {"dns failures on 198.18.0.53:53", K::Dns, {"/api/v1/l7/endpoints?protocol=dns&limit=1000", "/api/v1/diagnosis"}},
    // interfaces, forecasts
    {"what is the busiest interface", K::BusiestInterface, {"/api/v1/interfaces", "/api/v1/bottlenecks"}},
    {"what are the 3 busiest interfaces", K::BusiestInterface, {"/api/v1/interfaces", "/api/v1/bottlenecks"}},
    {"which interface has the most traffic", K::BusiestInterface, {"/api/v1/interfaces", "/api/v1/bottlenecks"}},
    {"will eth0 fill up", K::Forecast, {"/api/v1/forecast?series=iface/eth0/", "/api/v1/bottlenecks"}},
    {"when will interface eth1 be saturated", K::Forecast, {"/api/v1/forecast?series=iface/eth1/", "/api/v1/bottlenecks"}},
    {"will the conntrack table fill up", K::Forecast,
     {"/api/v1/forecast?series=node/conntrack_usage", "/api/v1/bottlenecks"}},
    {"is any interface going to run out of capacity", K::Forecast, {"/api/v1/forecast?series=iface/", "/api/v1/bottlenecks"}},
    // cost
    {"how much cross-zone traffic do we have", K::Cost, {"/api/v1/cost?limit=1000"}},
    {"which workloads cost the most", K::Cost, {"/api/v1/cost?limit=1000"}},
    {"how much traffic goes to the internet", K::Cost, {"/api/v1/cost?limit=1000"}},
};

std::vector<std::string> targets(const Intent& in) {
    std::vector<std::string> v;
    for (const auto& q : in.queries) v.push_back(q.target());
    return v;
}

TEST(AskParser, TableOfQuestionsMapsToIntentsAndQueries) {
    ASSERT_GE(kCases.size(), 50u);
    std::set<K> kinds;
    for (const auto& c : kCases) {
        auto in = parse(c.question, kUtc);
        ASSERT_TRUE(in.has_value()) << c.question << ": " << in.error().reason;
        EXPECT_EQ(toString(in->kind), toString(c.kind)) << c.question;
        EXPECT_EQ(targets(*in), c.queries) << c.question;
        kinds.insert(in->kind);
    }
    EXPECT_EQ(kinds.size(), 21u) << "every kind of intent is in the table";
}

TEST(AskParser, SubjectsDirectionsLimitsAndTimes) {
    auto in = parse("who talks to 198.18.0.10:5432", kUtc);
    ASSERT_TRUE(in);
    ASSERT_EQ(in->subjects.size(), 1u);
    EXPECT_EQ(in->subjects[0].kind, Subject::Kind::Endpoint);
    EXPECT_EQ(in->subjects[0].ip, "198.18.0.10");
    EXPECT_EQ(in->subjects[0].port, 5432);
    EXPECT_EQ(in->direction, Intent::Direction::In);

    in = parse("what does pod shop/cart-1 talk to", kUtc);
    ASSERT_TRUE(in);
    EXPECT_EQ(in->direction, Intent::Direction::Out);
    EXPECT_EQ(in->subjects[0].kind, Subject::Kind::Pod);
    EXPECT_EQ(in->subjects[0].ns, "shop");
    EXPECT_EQ(in->subjects[0].name, "cart-1");
    EXPECT_EQ(parse("peers of 198.18.0.7", kUtc)->direction, Intent::Direction::Both);
    EXPECT_EQ(parse("who talks to pod cart-1 in namespace shop", kUtc)->subjects[0].text, "shop/cart-1");
    // IPv6 as the API writes it
    in = parse("who's talking to [FD00:0::1]:443", kUtc);
    ASSERT_TRUE(in);
    EXPECT_EQ(in->subjects[0].ip, "fd00::1");
    EXPECT_EQ(in->subjects[0].text, "[fd00::1]:443");
    // ports with a transport
    in = parse("who uses udp/53", kUtc);
    ASSERT_TRUE(in);
    EXPECT_EQ(in->subjects[0].transport, "udp");
    EXPECT_EQ(in->subjects[0].port, 53);

    EXPECT_EQ(parse("show me the top 5 flows", kUtc)->limit, 5u);
    EXPECT_EQ(parse("what are the top three talkers", kUtc)->limit, 3u);
    EXPECT_EQ(parse("what is the busiest interface", kUtc)->limit, 1u);
    EXPECT_EQ(parse("what are the busiest interfaces", kUtc)->limit, 10u);

    EXPECT_EQ(parse("top talkers in the last 10 minutes", kUtc)->window, std::chrono::minutes(10));
    EXPECT_EQ(*parse("what changed since 14:00", kUtc)->since_unix, 1767621600);
    // "since 14:00" is the asker's local time: 14:00 CET is 13:00 UTC
    EXPECT_EQ(*parse("what changed since 14:00", Clock{kNow, 3600})->since_unix, 1767621600 - 3600);
    // a time of day still to come today is yesterday's
    EXPECT_EQ(*parse("what changed since 16:00", kUtc)->since_unix, 1767571200 - 86400 + 16 * 3600);
    EXPECT_EQ(*parse("what changed since 2:30pm", kUtc)->since_unix, 1767621600 + 1800);
    EXPECT_EQ(*parse("what changed since 90 minutes ago", kUtc)->since_unix, kNow - 5400);
    EXPECT_EQ(*parse("what changed since midnight", kUtc)->since_unix, 1767571200);
    EXPECT_EQ(*parse("what changed since 2026-01-05T14:00:00+01:00", kUtc)->since_unix, 1767618000);
    EXPECT_EQ(*parse("what changed today", kUtc)->since_unix, 1767571200);

    in = parse("how much cross-zone traffic do we have", kUtc);
    ASSERT_TRUE(in);
    EXPECT_EQ(in->focus, "cross_zone");
    EXPECT_TRUE(parse("latency and errors between 198.18.0.1 and 198.18.0.2", kUtc)->also_errors);
}

TEST(AskParser, RefusesWhatItCannotMapWithAReasonAndExamples) {
    const std::vector<std::pair<const char*, const char*>> refused = {
        {"", "empty"},
        {"?????", "empty"},
        {"hello", "\"hello\""},
        {"what's the weather like", "\"weather\""},
        {"tell me a joke", "\"joke\""},
        {"delete all pods", "\"delete\""},
        {"SELECT * FROM flows", "\"SELECT\""},
        {"top talkers; rm -rf /", "\"rm\""},
        {"top talkers on mars", "\"mars\""},
        {"who is not talking", "\"not\""},
        {"what is the p95 latency of 198.18.0.1", "\"p95\""},
        {"who talks to redis", "\"redis\""},
        {"who talks to shop/cart", "a pod or a workload"},
        {"who talks to pod cart-1", "which namespace"},
        {"latency between pod shop/a and workload shop/b", "different kinds"},
        {"latency between 198.18.0.1 and 198.18.0.1", "both ends"},
        {"latency between service shop/cart and service shop/db", "Services are not ends"},
        {"what changed", "since when"},
        {"what changed recently", "since when"},
        {"top talkers and top ports", "one ranking at a time"},
        {"who talks to 10.0.0.1 and 10.0.0.2", "one end at a time"},
        {"top talkers in the last 45 days", "31 days"},
        {"top talkers since 25:00", "since 25:00"},
        {"what changed since 2099-01-01T00:00:00Z", "future"},
        {"top talkers in the last", "say how long"},
        {"top 500 talkers", "at most the top 100"},
        {"is anything being scanned 5", "\"5\""},
        {"top talkers on eth0", "interface \"eth0\""},
        {"is anything wrong with eth0", "interface"},
        {"will foo fill up", "\"foo\""},
        {"top namespaces in namespace shop", "whole node"},
        {"who talks to port 70000", "not a port"},
    };
    std::size_t n = 0;
    for (const auto& [q, why] : refused) {
        ++n;
        auto in = parse(q, kUtc);
        ASSERT_FALSE(in.has_value()) << q << " was answered as " << in->toJson().dump();
        EXPECT_NE(in.error().reason.find(why), std::string::npos) << q << ": " << in.error().reason;
        EXPECT_GE(in.error().examples.size(), 10u) << q;
        // every example is itself understood
        for (const auto& e : in.error().examples) EXPECT_TRUE(parse(e, kUtc).has_value()) << e;
    }
    EXPECT_GE(n, 10u);
}

TEST(AskParser, BadInputIsAnErrorNeverACrash) {
    EXPECT_FALSE(parse(std::string(600, 'a'), kUtc));
    EXPECT_NE(parse(std::string(600, 'a'), kUtc).error().reason.find("longer than"), std::string::npos);
    EXPECT_FALSE(parse(std::string("top\x01talkers"), kUtc));
    EXPECT_FALSE(parse(std::string("top talkers \xff\xfe"), kUtc));
    EXPECT_FALSE(parse(std::string("top talkers\0 now", 16), kUtc));
    // every prefix and suffix of a long question parses or refuses, nothing else
    const std::string q = "what does pod shop/cart-1 talk to in the last 10 minutes since [fd00::1]:443 2pm";
    for (std::size_t i = 0; i <= q.size(); ++i) {
        (void)parse(q.substr(0, i), kUtc);
        (void)parse(q.substr(i), kUtc);
    }
    // a query's values are percent-encoded where they must be
    Query x{"/api/v1/history", {{"series", "edge/a b->c:80/tcp"}}};
    EXPECT_EQ(x.target(), "/api/v1/history?series=edge/a%20b-%3Ec:80/tcp");
}

// ---- answers on documents captured from a real agent --------------------------------------

std::vector<json> captures() {
    std::vector<json> out;
    const std::filesystem::path dir = std::filesystem::path(NETPROBE_SOURCE_DIR) / "tests/unit/data/ask";
    if (!std::filesystem::exists(dir)) return out;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        std::ifstream in(f);
        out.push_back(json::parse(in));
        out.back()["file"] = f.filename().string();
    }
    return out;
}

// The capture's question parsed at the capture's clock, and the documents by query.
struct Captured {
    Intent intent;
    std::vector<json> docs;
};

Captured load(const json& c) {
    const Clock clk{c.at("now_unix").get<std::int64_t>(), c.at("utc_offset_seconds").get<std::int32_t>()};
    auto in = parse(c.at("question").get<std::string>(), clk);
    EXPECT_TRUE(in.has_value()) << c.at("question");
    Captured out{*in, {}};
    // the capture holds what the agent answered for each query the intent names
    EXPECT_EQ(targets(*in), c.at("queries").get<std::vector<std::string>>()) << c.at("file");
    for (const auto& d : c.at("documents")) out.docs.push_back(d);
    return out;
}

const json* findCapture(const std::vector<json>& all, const std::string& kind) {
    for (const auto& c : all)
        if (c.at("kind") == kind) return &c;
    return nullptr;
}

TEST(AskAnswers, CapturedDocumentsGiveTheirOwnFigures) {
    const auto all = captures();
    ASSERT_GE(all.size(), 5u) << "run tests/e2e/test_ask.py with NETPROBE_ASK_RECORD=1 to capture them";
    for (const auto& c : all) {
        auto cap = load(c);
        auto a = answer(cap.intent, cap.docs);
        ASSERT_TRUE(a.has_value()) << c.at("file") << ": " << a.error().what();
        EXPECT_FALSE(a->text.empty());
        EXPECT_EQ(a->queries, cap.intent.queries);
        // a document that is not what the endpoint answers: an error, not an answer
        for (std::size_t i = 0; i < cap.docs.size(); ++i) {
            auto broken = cap.docs;
            broken[i] = json::array();
            EXPECT_FALSE(answer(cap.intent, broken).has_value()) << c.at("file") << " doc " << i;
        }
        auto fewer = cap.docs;
        fewer.pop_back();
        EXPECT_FALSE(answer(cap.intent, fewer).has_value());
    }
}

TEST(AskAnswers, TopTalkersAddUpTheMapsEdges) {
    const auto all = captures();
    const json* c = findCapture(all, "top_talkers");
    ASSERT_NE(c, nullptr);
    auto cap = load(*c);
    auto a = answer(cap.intent, cap.docs);
    ASSERT_TRUE(a);
    const json& topo = cap.docs[0];
    // independently: bytes per (source, target) pair
    std::map<std::pair<std::string, std::string>, double> pairs;
    std::map<std::string, std::string> names;
    for (const auto& n : topo["nodes"]) names[n["id"]] = n["name"];
    for (const auto& e : topo["edges"])
        pairs[{names[e["source"]], names[e["target"]]}] += e["bytes_out"].get<double>() + e["bytes_in"].get<double>();
    ASSERT_FALSE(a->tables.empty());
    const auto& rows = a->tables[0].rows;
    ASSERT_FALSE(rows.empty());
    for (const auto& r : rows)
        EXPECT_DOUBLE_EQ(r["bytes"].get<double>(), pairs.at({r["client"], r["server"]})) << r.dump();
    // busiest first
    for (std::size_t i = 1; i < rows.size(); ++i) EXPECT_GE(rows[i - 1]["bytes"].get<double>(), rows[i]["bytes"].get<double>());
    // the text shows the window the API says it covers
    const double w = topo["window_seconds"].get<double>();
    EXPECT_NE(a->text.find("over the last " + (w < 120 ? std::to_string(static_cast<int>(w)) + " s"
                                                       : std::to_string(static_cast<int>(w / 60)) + " min")),
              std::string::npos)
        << a->text;
}

TEST(AskAnswers, WhoTalksListsTheEdgesIntoTheSubject) {
    const auto all = captures();
    const json* c = findCapture(all, "who_talks");
    ASSERT_NE(c, nullptr);
    auto cap = load(*c);
    auto a = answer(cap.intent, cap.docs);
    ASSERT_TRUE(a);
    const Subject& s = cap.intent.subjects.at(0);
    std::size_t expected = 0;
    for (const auto& e : cap.docs[0]["edges"]) {
        const bool port_ok = s.kind != Subject::Kind::Endpoint || e["port"] == s.port;
        if (e["target"] == s.ip && port_ok) ++expected;
    }
    ASSERT_GT(expected, 0u);
    EXPECT_EQ(a->tables.at(0).rows.size(), std::min<std::size_t>(expected, cap.intent.limit));
    for (const auto& r : a->tables[0].rows) EXPECT_EQ(r["server"], s.ip);
}

TEST(AskAnswers, LatencyIsTheQosEdgesFigures) {
    const auto all = captures();
    const json* c = findCapture(all, "latency");
    ASSERT_NE(c, nullptr);
    auto cap = load(*c);
    auto a = answer(cap.intent, cap.docs);
    ASSERT_TRUE(a);
    const auto& rows = a->tables.at(0).rows;
    ASSERT_FALSE(rows.empty());
    for (const auto& r : rows) {
        const json* edge = nullptr;
        for (const auto& e : cap.docs[0]["edges"])
            if (e["client"] == r["client"] && e["server"] == r["server"] && e["port"] == r["port"]) edge = &e;
        ASSERT_NE(edge, nullptr) << r.dump();
        EXPECT_EQ(r["handshakes"], (*edge)["handshakes"]);
        if (edge->contains("rtt_ms")) {
            EXPECT_EQ(r["rtt_p50_ms"], (*edge)["rtt_ms"]["p50"]);
            EXPECT_EQ(r["rtt_p99_ms"], (*edge)["rtt_ms"]["p99"]);
        } else {
            EXPECT_TRUE(r["rtt_p50_ms"].is_null());
        }
    }
}

TEST(AskAnswers, ScansAreTheEventsOfTypePortScan) {
    const auto all = captures();
    const json* c = findCapture(all, "scans");
    ASSERT_NE(c, nullptr);
    auto cap = load(*c);
    auto a = answer(cap.intent, cap.docs);
    ASSERT_TRUE(a);
    const auto& events = cap.docs[0]["events"];
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(a->tables.at(0).rows.size(), events.size());
    EXPECT_EQ(a->tables[0].rows[0]["source"], events[0]["src_ip"]);
    EXPECT_TRUE(a->text.starts_with("Yes") || a->text.starts_with("Not now")) << a->text;
}

TEST(AskAnswers, DisabledFeaturesAreSaidNotGuessed) {
    auto in = parse("latency between 198.18.0.1 and 198.18.0.2", kUtc);
    ASSERT_TRUE(in);
    auto a = answer(*in, {json{{"enabled", false}}});
    ASSERT_TRUE(a);
    EXPECT_NE(a->text.find("--qos=off"), std::string::npos);
    EXPECT_TRUE(a->tables.empty());
    in = parse("any dns failures", kUtc);
    a = answer(*in, {json{{"enabled", false}}, json{{"enabled", false}, {"count", 0}, {"findings", json::array()}}});
    ASSERT_TRUE(a);
    EXPECT_NE(a->text.find("--l7=on"), std::string::npos);
    in = parse("is anything being scanned", kUtc);
    a = answer(*in, {json{{"enabled", false}, {"count", 0}, {"events", json::array()}}});
    ASSERT_TRUE(a);
    EXPECT_NE(a->text.find("--security=off"), std::string::npos);
    // a field of the wrong type is an error that names it
    in = parse("top talkers", kUtc);
    a = answer(*in, {json{{"enabled", true}, {"window_seconds", "300"}, {"nodes", json::array()}, {"edges", json::array()}}});
    ASSERT_FALSE(a);
    EXPECT_NE(a.error().what().find("window_seconds"), std::string::npos);
}

TEST(AskCli, SubcommandExitCodeAndCompletion) {
    std::vector<const char*> args = {"netprobe", "ask", "top", "talkers", "in", "the", "last", "10", "minutes"};
    auto r = netprobe::cli::parse(static_cast<int>(args.size()), args.data(), {}, false);
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.kind, netprobe::cli::Invocation::Kind::Ask);
    EXPECT_EQ(r.inv.question, "top talkers in the last 10 minutes");
    std::vector<const char*> none = {"netprobe", "ask"};
    r = netprobe::cli::parse(static_cast<int>(none.size()), none.data(), {}, false);
    EXPECT_FALSE(r.run);
    EXPECT_EQ(r.exit_code, netprobe::cli::kExitUsage);
    EXPECT_NE(netprobe::cli::kExitCannotAnswer, netprobe::cli::kExitNotFound);
    EXPECT_NE(netprobe::cli::completionScript("bash").find(" ask "), std::string::npos);
    EXPECT_NE(netprobe::cli::completionScript("bash").find("    ask) "), std::string::npos);
    auto refused = parse("tell me a joke", kUtc);
    ASSERT_FALSE(refused);
    const auto text = netprobe::cli::refusalText(refused.error());
    EXPECT_TRUE(text.starts_with("netprobe: cannot answer: not understood: \"joke\"")) << text;
    EXPECT_NE(text.find("netprobe ask \"top talkers in the last 10 minutes\""), std::string::npos);
    const auto j = netprobe::cli::refusalJson("tell me a joke", refused.error());
    EXPECT_EQ(j["question"], "tell me a joke");
    EXPECT_FALSE(j["cannot_answer"]["examples"].empty());
}

// "Which interfaces drop packets" also names the interfaces whose own counters grew (the
// diagnosis's interface_errors rule), from the documents the agent renders for them.
TEST(AskAnswers, InterfaceDropsIncludeTheInterfacesOwnCounters) {
    netprobe::analysis::InterfaceWindow down;
    down.name = "veth7";
    down.kind = "veth";
    down.delta.tx_dropped = 60;
    down.seconds = 60;
    netprobe::analysis::InterfaceWindow crc;
    crc.name = "eth1";
    crc.delta.rx_crc_errors = 15;
    crc.delta.rx_packets = 100000;
    crc.seconds = 60;
    netprobe::analysis::DiagnosisView diag;
    diag.window_seconds = 60;
    diag.findings = netprobe::analysis::interfaceErrorFindings({down, crc}, netprobe::analysis::DiagnosisOptions{});
    ASSERT_EQ(diag.findings.size(), 2u);
    netprobe::analysis::BottleneckView bn;
    bn.window_seconds = 60;
    const std::vector<json> docs = {json::parse(netprobe::metrics::bottlenecksJson(&bn, {})),
                                    json::parse(netprobe::metrics::diagnosisJson(&diag))};

    auto in = parse("which interfaces drop packets", kUtc);
    ASSERT_TRUE(in);
    auto a = answer(*in, docs);
    ASSERT_TRUE(a) << a.error().what();
    EXPECT_NE(a->text.find("veth7"), std::string::npos) << a->text;
    EXPECT_NE(a->text.find("eth1"), std::string::npos) << a->text;
    auto t = std::find_if(a->tables.begin(), a->tables.end(), [](const auto& x) { return x.title == "interface counters"; });
    ASSERT_NE(t, a->tables.end());
    EXPECT_EQ(t->rows.size(), 2u);

    // about one interface: only its finding
    in = parse("is veth7 dropping packets", kUtc);
    ASSERT_TRUE(in);
    a = answer(*in, docs);
    ASSERT_TRUE(a) << a.error().what();
    t = std::find_if(a->tables.begin(), a->tables.end(), [](const auto& x) { return x.title == "interface counters"; });
    ASSERT_NE(t, a->tables.end());
    ASSERT_EQ(t->rows.size(), 1u);
    EXPECT_EQ(t->rows[0]["subject"], "veth7");
    EXPECT_EQ(a->text.find("eth1"), std::string::npos) << a->text;

    // none grew: said so
    diag.findings.clear();
    a = answer(*parse("which interfaces drop packets", kUtc),
               {docs[0], json::parse(netprobe::metrics::diagnosisJson(&diag))});
    ASSERT_TRUE(a);
    EXPECT_NE(a->text.find("No interface's own error or drop counters grew"), std::string::npos) << a->text;
}

}  // namespace
