// The L7 JSON API's query parameters and status filters across protocols (a view built
// by hand: the filters are pure functions of it).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/metrics/l7.hpp>

namespace {

using netprobe::analysis::l7::L7View;
using netprobe::analysis::l7::Request;
using netprobe::metrics::L7Query;
using netprobe::metrics::QueryList;

Request req(std::string protocol, int status, std::string method = "m") {
    Request r;
    r.protocol = std::move(protocol);
    r.status = status;
    r.method = std::move(method);
    return r;
}

L7View view() {
    L7View v;
    v.recent = {req("http", 200, "GET"),   req("http", 404, "GET"),     req("http", 503, "POST"),
                req("http2", 200, "GET"),  req("http2", 502, "GET"),    req("grpc", 0, "/np.Echo/Say"),
                req("grpc", 5, "/np.Echo/Say"), req("grpc", 14, "/np.Echo/Say"), req("grpc", 17, "/np.Echo/Say"),
                req("dns", 0, "A"),        req("dns", 3, "A"),          req("dns", 2, "AAAA"),
                req("redis", 0, "GET"),    req("redis", 1, "GET"),      req("redis", 2, "GET"),
                req("postgres", 1, "SELECT")};
    return v;
}

// the (protocol, status) of every request the query returns, oldest first
std::vector<std::pair<std::string, int>> select(const QueryList& params) {
    auto q = netprobe::metrics::parseL7Query(params, true);
    EXPECT_TRUE(q) << (q ? "" : q.error());
    if (!q) return {};
    const L7View v = view();
    const auto j = nlohmann::json::parse(netprobe::metrics::l7RequestsJson(&v, *q));
    std::vector<std::pair<std::string, int>> out;
    for (const auto& r : j["requests"]) out.emplace_back(r["protocol"], r["status"]);
    std::reverse(out.begin(), out.end());
    return out;
}

using P = std::vector<std::pair<std::string, int>>;

TEST(L7Api, StatusClassAndOutcomePerProtocol) {
    EXPECT_EQ(select({{"status", "5xx"}}), (P{{"http", 503}, {"http2", 502}}));
    EXPECT_EQ(select({{"status", "4xx"}}), (P{{"http", 404}}));
    EXPECT_EQ(select({{"status", "error"}}),
              (P{{"http", 503}, {"http2", 502}, {"grpc", 14}, {"dns", 2}, {"redis", 1}, {"postgres", 1}}));
    EXPECT_EQ(select({{"status", "client_error"}}), (P{{"http", 404}, {"grpc", 5}, {"dns", 3}}));
    EXPECT_EQ(select({{"status", "unknown"}}), (P{{"grpc", 17}, {"redis", 2}}));
    EXPECT_EQ(select({{"status", "ok"}, {"protocol", "grpc"}}), (P{{"grpc", 0}}));
    EXPECT_EQ(select({{"status", "ok"}, {"protocol", "http2"}}), (P{{"http2", 200}}));
    EXPECT_EQ(select({{"status", "NOT_FOUND"}}), (P{{"grpc", 5}}));
    EXPECT_EQ(select({{"status", "UNKNOWN_OUTCOME"}}), (P{{"grpc", 17}}));
    EXPECT_EQ(select({{"status", "NXDOMAIN"}}), (P{{"dns", 3}}));
    EXPECT_EQ(select({{"status", "200"}, {"protocol", "http2"}}), (P{{"http2", 200}}));
    EXPECT_EQ(select({{"protocol", "grpc"}, {"method", "/np.Echo/Say"}}).size(), 4u);
}

TEST(L7Api, EveryRequestNamesItsStatusClassAndOutcome) {
    const L7View v = view();
    const auto j = nlohmann::json::parse(netprobe::metrics::l7RequestsJson(&v, L7Query{.limit = 100}));
    std::map<std::string, std::string> seen;
    for (const auto& r : j["requests"])
        seen[r["protocol"].get<std::string>() + "/" + std::to_string(r["status"].get<int>())] =
            r["status_class"].get<std::string>() + " " + r["outcome"].get<std::string>();
    EXPECT_EQ(seen["grpc/14"], "UNAVAILABLE error");
    EXPECT_EQ(seen["grpc/5"], "NOT_FOUND client_error");
    EXPECT_EQ(seen["http2/502"], "5xx error");
    EXPECT_EQ(seen["dns/3"], "NXDOMAIN client_error");
    EXPECT_EQ(seen["redis/2"], "unknown unknown");
}

TEST(L7Api, BadParametersAreNamed) {
    for (const QueryList& bad : std::vector<QueryList>{{{"protocol", "mqtt"}},
                                                       {{"status", "6xx"}},
                                                       {{"status", "NOT_A_CODE"}},
                                                       {{"status", "600"}},
                                                       {{"limit", "0"}},
                                                       {{"min_duration", "-1"}},
                                                       {{"colour", "blue"}}}) {
        auto q = netprobe::metrics::parseL7Query(bad, true);
        ASSERT_FALSE(q) << bad[0].first << "=" << bad[0].second;
        EXPECT_NE(q.error().find(bad[0].first), std::string::npos) << q.error();
    }
    // endpoints take no status or min_duration
    EXPECT_FALSE(netprobe::metrics::parseL7Query({{"status", "ok"}}, false));
    for (const char* p : {"http", "http2", "grpc", "dns", "redis", "postgres", "mysql", "kafka", "amqp"})
        EXPECT_TRUE(netprobe::metrics::parseL7Query({{"protocol", p}}, false)) << p;
}

}  // namespace

namespace {

// gRPC methods are label values from traffic: past the budget they are "other", counted.
TEST(L7Stage, GrpcMethodsAreBudgeted) {
    netprobe::analysis::l7::L7Options o;
    o.max_rpc_methods = 1;
    netprobe::analysis::l7::L7Stage stage(o);
    netprobe::collector::Snapshot snap;
    snap.mono = std::chrono::steady_clock::now();
    auto sample = std::make_shared<netprobe::collector::L7Sample>();
    for (const char* m : {"/np.Echo/Say", "/np.Echo/Slow", "/np.Echo/Say"}) {
        Request r = req("grpc", 0, m);
        r.route = m;
        sample->requests.push_back(r);
    }
    snap.l7 = sample;
    netprobe::analysis::Views v;
    stage.run(snap, v);
    std::map<std::string, std::uint64_t> by_method;
    for (const auto& [k, t] : v.l7->series) by_method[k.method] += t.requests;
    EXPECT_EQ(by_method, (std::map<std::string, std::uint64_t>{{"/np.Echo/Say", 2}, {"other", 1}}));
    EXPECT_EQ(v.l7->counters.methods_overflow, 1u);
}

}  // namespace
