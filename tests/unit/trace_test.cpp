// Packet path tracing, the pure parts: the API's parameters, the queue's bounds, where a
// traced drop is shown, the CLI's flow words.
#include <gtest/gtest.h>

#include <thread>
#include <variant>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/collector/collector.hpp>
#include <netprobe/collector/trace.hpp>
#include <netprobe/metrics/server.hpp>
#include <netprobe/metrics/trace.hpp>
#include <netprobe/util/ip.hpp>

#include "agent_api.hpp"
#include "cli.hpp"

namespace netprobe {
namespace {

http::QueryParams q(std::initializer_list<std::pair<std::string, std::string>> kv) { return {kv.begin(), kv.end()}; }

TEST(TraceQuery, StartReadAndErrorsNamingTheParameter) {
    auto s = metrics::parseTraceQuery(q({{"src", "198.18.0.1"}, {"dst", "198.18.0.2"}, {"dport", "80"}, {"proto", "tcp"},
                                         {"seconds", "30"}}));
    ASSERT_TRUE(s);
    const auto& st = std::get<metrics::TraceStart>(*s);
    EXPECT_EQ(st.request.spec.family, 4);
    EXPECT_EQ(st.request.spec.dport, 80);
    EXPECT_EQ(st.request.spec.sport, 0);
    EXPECT_EQ(st.request.spec.proto, 6);
    EXPECT_EQ(st.request.spec.src, *util::parseAddr("198.18.0.1"));
    EXPECT_EQ(st.request.duration.count(), 30);
    auto v6 = metrics::parseTraceQuery(q({{"dst", "fd6e:7072::1"}}));
    ASSERT_TRUE(v6);
    EXPECT_EQ(std::get<metrics::TraceStart>(*v6).request.spec.family, 6);
    EXPECT_EQ(std::get<metrics::TraceStart>(*v6).request.duration.count(), metrics::kDefaultTraceSeconds);
    auto r = metrics::parseTraceQuery(q({{"id", "7"}}));
    ASSERT_TRUE(r);
    EXPECT_EQ(std::get<metrics::TraceRead>(*r).id, 7u);
    EXPECT_EQ(std::get<metrics::TraceRead>(*metrics::parseTraceQuery({})).id, 0u);
    for (auto [params, name] : std::initializer_list<std::pair<http::QueryParams, std::string>>{
             {q({{"src", "x"}}), "src"},
             {q({{"dst", "198.18.0.1"}, {"seconds", "0"}}), "seconds"},
             {q({{"dst", "198.18.0.1"}, {"seconds", "301"}}), "seconds"},
             {q({{"dst", "198.18.0.1"}, {"sport", "0"}}), "sport"},
             {q({{"dst", "198.18.0.1"}, {"dport", "65536"}}), "dport"},
             {q({{"dst", "198.18.0.1"}, {"proto", "nope"}}), "proto"},
             {q({{"dport", "80"}}), "src"},
             {q({{"src", "198.18.0.1"}, {"dst", "fd6e:7072::1"}}), "dst"},
             {q({{"id", "0"}}), "id"},
             {q({{"id", "1"}, {"dst", "198.18.0.1"}}), "id"},
             {q({{"what", "1"}}), "what"}}) {
        auto e = metrics::parseTraceQuery(params);
        ASSERT_FALSE(e) << name;
        EXPECT_NE(e.error().find(name), std::string::npos) << e.error();
    }
}

TEST(TraceQueue, BoundedAndReleased) {
    collector::TraceQueue queue(2);
    collector::TraceQueue::Request r;
    auto a = queue.submit(r), b = queue.submit(r);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*b, *a + 1);
    EXPECT_TRUE(queue.pending(*a));
    EXPECT_FALSE(queue.submit(r));  // full
    auto taken = queue.take();
    EXPECT_EQ(taken.size(), 2u);
    EXPECT_FALSE(queue.pending(*a));
    EXPECT_FALSE(queue.submit(r));  // still running: still full
    queue.release(*a);
    auto c = queue.submit(r);
    ASSERT_TRUE(c);
    EXPECT_EQ(queue.lastId(), *c);
}

// GET /api/v1/trace?id= while the collector publishes new views: the answer is built
// from the views it read, which it holds until it is done (it kept a raw pointer into a
// temporary's snapshot, freed when the next views came: the agent died in memmove once in
// a CI run at a 200 ms interval). ASan (make test-sanitize) sees the use after free here.
TEST(TraceApi, ReadWhileTheCollectorPublishesNewViews) {
    using namespace std::chrono_literals;
    collector::Collector coll("trace-test", 1h);
    auto pipeline = std::make_shared<analysis::Pipeline>(coll);
    auto snapshot = [](std::uint64_t seq) {
        auto s = std::make_shared<collector::Snapshot>();
        s->sequence = seq;
        auto t = std::make_shared<collector::TraceSample>();
        collector::TraceResult r;
        r.id = 1;
        r.spec.family = 4;
        r.spec.dst = *util::parseAddr("198.18.0.1");
        r.seconds = 10;
        for (std::uint32_t i = 0; i < 64; ++i)
            r.processes.push_back({0, 1000 + i, "process-with-a-long-name-" + std::to_string(i), seq, 100});
        for (std::uint32_t i = 0; i < 32; ++i) r.devices.push_back({0, "tc_ingress", i + 1, "veth-" + std::to_string(i), seq});
        t->traces.push_back(std::move(r));
        s->trace = std::move(t);
        return s;
    };
    pipeline->run(snapshot(1));
    metrics::ServerConfig cfg;
    cfg.address = "127.0.0.1";
    cfg.port = 0;
    cfg.trace = std::make_shared<collector::TraceQueue>();
    metrics::Server server(cfg);
    ASSERT_TRUE(server.listen(pipeline));
    std::jthread publisher([&](std::stop_token st) {  // (joined on any return)
        for (std::uint64_t seq = 2; !st.stop_requested(); ++seq) pipeline->run(snapshot(seq));
    });
    cli::Connection conn;
    conn.server = "http://127.0.0.1:" + std::to_string(server.port());
    conn.timeout = 5s;
    int answered = 0;
    for (int i = 0; i < 300; ++i) {
        auto body = cli::agentGet(conn, "/api/v1/trace", {{"id", "1"}});
        ASSERT_TRUE(body) << body.error().what();
        const auto doc = nlohmann::json::parse(*body);
        EXPECT_EQ(doc["id"], 1);
        EXPECT_EQ(doc["processes"].size(), 64u);
        ++answered;
    }
    publisher.request_stop();
    publisher.join();
    server.stop();
    EXPECT_EQ(answered, 300);
}

TEST(TraceDropStage, ByReasonThenByTheLastNetfilterStage) {
    using collector::traceDropStage;
    EXPECT_EQ(traceDropStage(NP_TRACE_INPUT, "NETFILTER_DROP"), "input");
    EXPECT_EQ(traceDropStage(NP_TRACE_FORWARD, "NETFILTER_DROP"), "forward");
    EXPECT_EQ(traceDropStage(NP_TRACE_INPUT, "NO_SOCKET"), "socket");
    EXPECT_EQ(traceDropStage(NP_TRACE_INPUT, "SOCKET_RCVBUFF"), "socket");
    EXPECT_EQ(traceDropStage(NP_TRACE_POSTROUTING, "NEIGH_FAILED"), "postrouting");
    EXPECT_EQ(traceDropStage(NP_TRACE_STAGE_BEFORE_NF_RX, "IP_CSUM"), "tc_ingress");
    EXPECT_EQ(traceDropStage(NP_TRACE_STAGE_BEFORE_NF_TX, "NOT_SPECIFIED"), "socket");
    EXPECT_EQ(traceDropStage(NP_TRACE_STAGE_BEFORE_NF_RX, "TC_INGRESS"), "tc_ingress");
    EXPECT_EQ(traceDropStage(NP_TRACE_STAGE_BEFORE_NF_TX, "TC_EGRESS"), "tc_egress");
}

TEST(TraceCli, FlowWords) {
    auto a = cli::parseTraceFlow({"udp", "198.18.0.1", "198.18.0.2:7777"});
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, (std::map<std::string, std::string>{
                      {"proto", "udp"}, {"src", "198.18.0.1"}, {"dst", "198.18.0.2"}, {"dport", "7777"}}));
    auto b = cli::parseTraceFlow({"[fd6e:7072::1]:443", "fd6e:7072::2"});
    ASSERT_TRUE(b);
    EXPECT_EQ(*b, (std::map<std::string, std::string>{{"src", "fd6e:7072::1"}, {"sport", "443"}, {"dst", "fd6e:7072::2"}}));
    EXPECT_FALSE(cli::parseTraceFlow({"198.18.0.1"}));
    EXPECT_FALSE(cli::parseTraceFlow({"[fd6e::1", "198.18.0.1"}));
    auto p = cli::parse(4, std::array<const char*, 4>{"netprobe", "trace", "--id", "0"}.data(), {}, false);
    EXPECT_EQ(p.exit_code, cli::kExitUsage);
    auto ok = cli::parse(6, std::array<const char*, 6>{"netprobe", "trace", "icmp", "198.18.0.1", "198.18.0.2", "--no-wait"}.data(),
                         {}, false);
    ASSERT_TRUE(ok.run) << ok.output;
    EXPECT_EQ(ok.inv.kind, cli::Invocation::Kind::Trace);
    EXPECT_FALSE(ok.inv.trace_wait);
    EXPECT_EQ(ok.inv.query.at("proto"), "icmp");
}

}  // namespace
}  // namespace netprobe
