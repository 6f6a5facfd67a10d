// HTTP/1 framing over captured chunks, route templates, and the L7 stage's pairing and
// totals, on messages built here (the e2e test drives the real capture with nginx).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/l7/http1.hpp>
#include <netprobe/l7/tracker.hpp>

namespace {

using namespace netprobe::l7;
using netprobe::analysis::l7::L7Options;
using netprobe::analysis::l7::L7Stage;
using netprobe::analysis::l7::SeriesKey;

struct Seen final : Http1Listener {
    std::vector<Http1Message> heads;
    std::vector<std::uint64_t> ends;
    bool head_no_body = false;  // answer for responses
    bool onHead(bool, Http1Message& m) override {
        heads.push_back(m);
        return !m.request && head_no_body;
    }
    void onEnd(bool, std::uint64_t b) override { ends.push_back(b); }
};

Http1Stream stream(Seen& s) { return Http1Stream(&s, true); }

Chunk whole(const std::string& d, std::uint64_t ts = 0) { return Chunk{d, d.size(), {}, ts}; }

TEST(Http1Head, RequestsAndResponses) {
    auto r = parseHttp1Head("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->request);
    EXPECT_EQ(r->method, "GET");
    EXPECT_EQ(r->target, "/a?b=1");
    EXPECT_EQ(r->content_length, 5u);
    auto s = parseHttp1Head("HTTP/1.0 404 Not Found\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n");
    ASSERT_TRUE(s);
    EXPECT_FALSE(s->request);
    EXPECT_EQ(s->status, 404);
    EXPECT_EQ(s->version_minor, 0);
    EXPECT_TRUE(s->chunked);
    EXPECT_FALSE(s->content_length);  // Transfer-Encoding wins
    EXPECT_TRUE(parseHttp1Head("HTTP/1.1 200\r\n\r\n"));  // empty reason
}

TEST(Http1Head, NotHttp) {
    for (std::string bad : {std::string("get / HTTP/1.1\r\n\r\n"), std::string("GET / HTTP/2.0\r\n\r\n"),
                            std::string("GET  / HTTP/1.1\r\n\r\n"), std::string("GET x HTTP/1.1\r\n\r\n"),
                            std::string("FOO / HTTP/1.1\r\n\r\n"), std::string("HTTP/1.1 20 OK\r\n\r\n"),
                            std::string("HTTP/1.1 999 OK\r\n\r\n"), std::string("\x16\x03\x01\x02\x00", 5),
                            std::string("GET /\x01 HTTP/1.1\r\n\r\n"), std::string("GET / HTTP/1.1")})
        EXPECT_FALSE(parseHttp1Head(bad)) << bad;
    EXPECT_FALSE(looksLikeHttp1Start(std::string("\x00\x01GET / HTTP/1.1", 16)));
}

TEST(Http1Stream, PipelinedRequestsInOneChunk) {
    Seen s;
    auto st = stream(s);
    st.feed(whole("GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n\r\n"));
    ASSERT_EQ(s.heads.size(), 3u);
    EXPECT_EQ(s.heads[1].method, "POST");
    EXPECT_EQ(s.heads[2].target, "/3");
    EXPECT_EQ(s.ends, (std::vector<std::uint64_t>{19, 42, 19}));
    EXPECT_TRUE(st.synced());
}

TEST(Http1Stream, HeadSplitAcrossChunksAndBodyAcrossChunks) {
    Seen s;
    auto st = stream(s);
    st.feed(whole("HTTP/1.1 200 OK\r\nContent-Le", 10));
    EXPECT_TRUE(s.heads.empty());
    st.feed(whole("ngth: 10\r\n\r\n01234", 20));
    ASSERT_EQ(s.heads.size(), 1u);
    EXPECT_EQ(s.heads[0].start_ts_ns, 10u);  // the first byte's chunk
    EXPECT_TRUE(s.ends.empty());
    st.feed(whole("56789HTTP/1.1 204 No Content\r\n\r\n"));
    ASSERT_EQ(s.heads.size(), 2u);
    EXPECT_EQ(s.heads[1].status, 204);
    ASSERT_EQ(s.ends.size(), 2u);
    EXPECT_EQ(s.ends[0], 39u + 10u);
}

TEST(Http1Stream, ChunkedBodyScannedAndThroughAHoleByItsTail) {
    Seen s;
    auto st = stream(s);
    st.feed(whole("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
    st.feed(whole("6;ext=1\r\n world\r\n0\r\n\r\n"));
    ASSERT_EQ(s.ends.size(), 1u);
    EXPECT_EQ(s.ends[0], 47u + 10u + 22u);
    // A large chunked response whose middle was not copied: its tail shows the end.
    std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\nxxxx";
    st.feed(Chunk{head, 20000, "xxxxx\r\n0\r\n\r\n", 0});
    ASSERT_EQ(s.ends.size(), 2u);
    EXPECT_EQ(s.ends[1], 20000u);
    // Without the end in sight it waits; the next response's start line ends it.
    st.feed(Chunk{head, 20000, "xxxxxxxxxxxx", 0});
    EXPECT_EQ(s.ends.size(), 2u);
    st.feed(Chunk{"xxxx", 50000, "xxxx", 0});
    st.feed(whole("HTTP/1.1 304 Not Modified\r\n\r\n"));
    ASSERT_EQ(s.heads.size(), 4u);
    ASSERT_EQ(s.ends.size(), 4u);
    EXPECT_EQ(s.ends[2], 70000u);  // at least what was seen
}

TEST(Http1Stream, HeadResponseInterimAndUntilClose) {
    Seen s;
    auto st = stream(s);
    s.head_no_body = true;  // answers a HEAD: Content-Length describes the GET
    st.feed(whole("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"));
    EXPECT_EQ(s.ends.size(), 1u);
    s.head_no_body = false;
    st.feed(whole("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nbody"));
    ASSERT_EQ(s.heads.size(), 3u);
    EXPECT_EQ(s.ends.size(), 2u);  // the 100, then the until-close body is open
    st.feed(whole("more body HTTP/1.1 200 OK\r\n\r\n"));
    EXPECT_EQ(s.heads.size(), 3u);  // inside a body read until close: not a message
    st.close();
    ASSERT_EQ(s.ends.size(), 3u);
    EXPECT_EQ(s.ends[2], 19u + 4u + 29u);
}

TEST(Http1Stream, BinaryIsNeverAMessageAndResyncFindsTheNext) {
    Seen s;
    auto st = stream(s);
    st.feed(whole(std::string("\x00\x01\x02 not http at all\r\n\r\n", 24)));
    EXPECT_TRUE(s.heads.empty());
    EXPECT_FALSE(st.synced());
    st.feed(whole("GET / HTTP/1.1\r\n\r\n"));
    EXPECT_EQ(s.heads.size(), 1u);
    EXPECT_EQ(st.desyncs(), 1u);
    // A head that runs into uncopied bytes: reported (start line) with its framing unknown.
    std::string big = "GET /upload HTTP/1.1\r\nX: " + std::string(600, 'a');
    st.feed(Chunk{std::string_view(big).substr(0, 512), 5000, {}, 0});
    ASSERT_EQ(s.heads.size(), 2u);
    EXPECT_FALSE(s.heads[1].head_complete);
    EXPECT_FALSE(st.synced());
}

TEST(Http1Route, Templates) {
    EXPECT_EQ(routeTemplate("/items/42?x=1"), "/items/{id}");
    EXPECT_EQ(routeTemplate("/u/3f2b8c1e-9d4a-4b7e-8f00-0123456789ab/orders"), "/u/{uuid}/orders");
    EXPECT_EQ(routeTemplate("/blob/0123456789abcdef0123"), "/blob/{hash}");
    EXPECT_EQ(routeTemplate("/t/eyJhbGciOiJIUzI1NiJ9abc123"), "/t/{token}");
    EXPECT_EQ(routeTemplate("http://h:80/a/7"), "/a/{id}");
    EXPECT_EQ(routeTemplate("/a/b/c/d/e/f/g/h/i/j"), "/a/b/c/d/e/f/g/h/...");
    EXPECT_EQ(routeTemplate("/"), "/");
    EXPECT_EQ(routeTemplate("*"), "*");
    EXPECT_EQ(routeTemplate("/api/v1/users"), "/api/v1/users");
}

struct Msg {
    netprobe::ebpf::L7Message m;
    std::string data;
};

Msg msg(std::uint64_t sock, std::uint8_t dir, std::string data, std::uint64_t ts, std::uint16_t local_port = 8080) {
    Msg x;
    auto& m = x.m;
    m.sock = sock;
    m.ts_ns = ts;
    m.direction = dir;
    m.protocol = NP_L7_HTTP1;
    m.family = 4;
    m.local = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
    m.remote = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2};
    m.local_port = local_port;
    m.remote_port = 40000;
    m.len = static_cast<std::uint32_t>(data.size());
    x.data = std::move(data);
    return x;
}

void feed(ConnectionTracker& t, Msg& x) {
    x.m.head = x.data;
    t.feed(x.m);
}

std::shared_ptr<netprobe::collector::Snapshot> snapshotWith(ConnectionTracker& t) {
    auto snap = std::make_shared<netprobe::collector::Snapshot>();
    snap->mono = std::chrono::steady_clock::now();
    snap->taken_at = std::chrono::system_clock::now();
    auto sample = std::make_shared<netprobe::collector::L7Sample>();
    sample->requests = t.take();
    sample->parse = t.counters();
    sample->connections = t.connections();
    snap->l7 = sample;
    return snap;
}

TEST(L7Tracker, PairsInOrderCountsOnceAndKnowsUnanswered) {
    ConnectionTracker t;
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now().time_since_epoch()).count();
    const std::uint64_t t0 = static_cast<std::uint64_t>(now) - 1'000'000'000;
    // server side: reads two pipelined requests, answers both, then a third is never answered
    std::vector<Msg> ms;
    ms.push_back(msg(1, NP_L7_RECV, "GET /a/1 HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", t0));
    ms.push_back(msg(1, NP_L7_SEND, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", t0 + 50'000'000));
    ms.push_back(msg(1, NP_L7_SEND, "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", t0 + 60'000'000));
    ms.push_back(msg(1, NP_L7_RECV, "DELETE /c HTTP/1.1\r\n\r\n", t0 + 70'000'000));
    ms.push_back(msg(1, NP_L7_CLOSED, "", t0 + 80'000'000));
    for (auto& x : ms) feed(t, x);
    EXPECT_EQ(t.connections(), 0u);
    EXPECT_EQ(t.counters().unanswered, 1u);
    auto snap = snapshotWith(t);
    ASSERT_EQ(snap->l7->requests.size(), 2u);
    EXPECT_EQ(snap->l7->requests[0].route, "/a/{id}");
    EXPECT_EQ(snap->l7->requests[0].side, Side::Server);
    EXPECT_DOUBLE_EQ(snap->l7->requests[1].duration_seconds, 0.06);

    L7Stage stage;
    netprobe::analysis::Views v;
    stage.run(*snap, v);
    ASSERT_TRUE(v.l7);
    const auto& series = v.l7->series;
    ASSERT_EQ(series.size(), 2u);
    auto ok = series.at(SeriesKey{"http", "server", "10.0.0.1:8080", "GET", "2xx"});
    EXPECT_EQ(ok.requests, 1u);
    EXPECT_EQ(ok.buckets[6], 1u);  // 0.05 s: (0.025, 0.05]
    EXPECT_EQ(ok.response_bytes, 40u);
    EXPECT_EQ(series.at(SeriesKey{"http", "server", "10.0.0.1:8080", "GET", "5xx"}).requests, 1u);
    EXPECT_EQ(v.l7->counters.parse.unanswered, 1u);
    ASSERT_EQ(v.l7->recent.size(), 2u);
    ASSERT_FALSE(v.l7->endpoints.empty());
    for (const auto& e : v.l7->endpoints) EXPECT_EQ(e.requests, 1u);
}

// A client socket that reached TCP_CLOSE (a reset, or the server's FIN after our shutdown)
// before its process read the response: the response it still held is paired, and the
// state goes a few seconds after the last data (without close(2): not at the idle timeout).
TEST(L7Tracker, SocketClosedWithoutCloseKeepsItsStateForWhatItStillHolds) {
    ConnectionTracker t;
    const std::uint64_t t0 = 1'000'000'000'000;
    std::vector<Msg> ms;
    ms.push_back(msg(7, NP_L7_SEND, "GET /x HTTP/1.1\r\n\r\n", t0, 40000));
    ms.push_back(msg(7, NP_L7_CLOSED, "", t0 + 10'000'000, 40000));
    ms.back().m.flags = NP_L7_F_SOCK_CLOSED;
    ms.push_back(msg(7, NP_L7_RECV, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", t0 + 20'000'000, 40000));
    for (auto& x : ms) feed(t, x);
    EXPECT_EQ(t.connections(), 1u);
    t.expire(t0 + 2'000'000'000);  // within the grace: kept
    EXPECT_EQ(t.connections(), 1u);
    t.expire(t0 + 6'000'000'000);  // 5 s after its last data: gone, not counted as expired
    EXPECT_EQ(t.connections(), 0u);
    EXPECT_EQ(t.counters().connections_expired, 0u);
    auto reqs = t.take();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].status, 200);
    EXPECT_EQ(reqs[0].side, Side::Client);
    // a close(2) still releases at once
    std::vector<Msg> more;
    more.push_back(msg(8, NP_L7_SEND, "GET /y HTTP/1.1\r\n\r\n", t0, 40001));
    more.push_back(msg(8, NP_L7_CLOSED, "", t0 + 1, 40001));
    for (auto& x : more) feed(t, x);
    EXPECT_EQ(t.connections(), 0u);
}

// take() hands the next requests the storage of a spare vector when it fits them (no
// fresh pages each collection), and frees a spare that is too small or far too large.
TEST(L7Tracker, TakeReusesASpareThatFitsAndFreesOneThatDoesNot) {
    ConnectionTracker t;
    const std::uint64_t t0 = 1'000'000'000'000;
    auto exchange = [&](std::uint64_t sock, int n) {
        for (int i = 0; i < n; ++i) {
            const auto at = t0 + static_cast<std::uint64_t>(i) * 1000;
            auto rq = msg(sock, NP_L7_RECV, "GET / HTTP/1.1\r\n\r\n", at, 8080);
            auto rs = msg(sock, NP_L7_SEND, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", at + 10, 8080);
            feed(t, rq);
            feed(t, rs);
        }
    };
    exchange(1, 100);
    auto first = t.take();
    ASSERT_EQ(first.size(), 100u);
    // Handed back emptied at the next take(), its storage holds the requests after it.
    const auto* storage = first.data();
    exchange(2, 100);
    auto second = t.take(std::move(first));
    exchange(3, 100);
    auto third = t.take();
    ASSERT_EQ(second.size(), 100u);
    ASSERT_EQ(third.size(), 100u);
    EXPECT_NE(second.data(), storage);
    EXPECT_EQ(third.data(), storage);
    EXPECT_EQ(third[99].status, 200);
    // A spare of `capacity` handed back is not used: the requests after it are elsewhere.
    auto refused = [&](std::size_t capacity, std::uint64_t sock) {
        std::vector<Request> spare;
        spare.reserve(capacity);
        const auto* spare_storage = spare.data();
        exchange(sock, 100);
        auto before = t.take(std::move(spare));
        exchange(sock + 1, 100);
        auto after = t.take();
        EXPECT_EQ(after.size(), 100u);
        EXPECT_NE(after.data(), spare_storage);
        return after.capacity();
    };
    refused(10, 4);  // too small for what the last take() had
    // far larger than needed (the load fell): 100 last time, room for 100000
    EXPECT_LT(refused(100000, 6), 100000u);
}

TEST(L7Stage, ServiceLabelBudget) {
    ConnectionTracker t;
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now().time_since_epoch()).count();
    const std::uint64_t t0 = static_cast<std::uint64_t>(now) - 1'000'000;
    for (std::uint64_t sock = 1; sock <= 3; ++sock) {
        const auto port = static_cast<std::uint16_t>(8000 + sock);
        auto rq = msg(sock, NP_L7_RECV, "GET / HTTP/1.1\r\n\r\n", t0, port);
        auto rs = msg(sock, NP_L7_SEND, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", t0 + 1000, port);
        feed(t, rq);
        feed(t, rs);
    }
    L7Options o;
    o.max_services = 1;
    L7Stage stage(o);
    netprobe::analysis::Views v;
    stage.run(*snapshotWith(t), v);
    EXPECT_EQ(v.l7->series.at(SeriesKey{"http", "server", "10.0.0.1:8001", "GET", "2xx"}).requests, 1u);
    EXPECT_EQ(v.l7->series.at(SeriesKey{"http", "server", "other", "GET", "2xx"}).requests, 2u);
    EXPECT_EQ(v.l7->counters.services_overflow, 2u);
}

// The endpoint budget, with runs of requests to one endpoint and alternations (the stage
// reuses the previous request's series and endpoint when the labels are the same): every
// request beyond the budget is counted once, and only the batch's last requests are kept
// in the recent ring, with their labels.
TEST(L7Stage, EndpointBudgetCountsEveryRequestBeyondItAndRecentKeepsTheLast) {
    ConnectionTracker t;
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now().time_since_epoch()).count();
    const std::uint64_t t0 = static_cast<std::uint64_t>(now) - 1'000'000;
    const std::vector<std::pair<std::string, int>> reqs = {
        {"/a", 200}, {"/b", 200}, {"/c", 200}, {"/c", 200}, {"/a", 200}, {"/d", 500}, {"/a", 200}, {"/c", 404}};
    std::uint64_t at = t0;
    for (const auto& [path, status] : reqs) {
        auto rq = msg(1, NP_L7_RECV, "GET " + path + " HTTP/1.1\r\n\r\n", at, 8080);
        auto rs = msg(1, NP_L7_SEND,
                      "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 0\r\n\r\n", at + 1000, 8080);
        feed(t, rq);
        feed(t, rs);
        at += 10'000;
    }
    L7Options o;
    o.max_endpoints = 2;
    o.recent_requests = 3;
    L7Stage stage(o);
    netprobe::analysis::Views v;
    stage.run(*snapshotWith(t), v);
    std::map<std::string, std::uint64_t> by_route;
    for (const auto& e : v.l7->endpoints) by_route[e.route] += e.requests_total;
    EXPECT_EQ(by_route, (std::map<std::string, std::uint64_t>{{"/a", 3}, {"/b", 1}, {"other", 4}}));
    EXPECT_EQ(v.l7->counters.endpoints_overflow, 4u);
    EXPECT_EQ(v.l7->series.at(SeriesKey{"http", "server", "10.0.0.1:8080", "GET", "2xx"}).requests, 6u);
    EXPECT_EQ(v.l7->series.at(SeriesKey{"http", "server", "10.0.0.1:8080", "GET", "4xx"}).requests, 1u);
    EXPECT_EQ(v.l7->series.at(SeriesKey{"http", "server", "10.0.0.1:8080", "GET", "5xx"}).requests, 1u);
    ASSERT_EQ(v.l7->recent.size(), 3u);
    EXPECT_EQ(v.l7->recent[0].path, "/d");
    EXPECT_EQ(v.l7->recent[1].path, "/a");
    EXPECT_EQ(v.l7->recent[2].path, "/c");
    EXPECT_EQ(v.l7->recent[2].status, 404);
    for (const auto& r : v.l7->recent) EXPECT_EQ(r.service, "10.0.0.1:8080");
}

TEST(L7Tracker, IdleConnectionsExpireAndTableIsBounded) {
    TrackerOptions o;
    o.max_connections = 2;
    o.idle_timeout = std::chrono::seconds(10);
    ConnectionTracker t(o);
    for (std::uint64_t sock = 1; sock <= 3; ++sock) {
        auto rq = msg(sock, NP_L7_RECV, "GET / HTTP/1.1\r\n\r\n", 1'000'000'000);
        feed(t, rq);
    }
    EXPECT_EQ(t.connections(), 2u);
    EXPECT_EQ(t.counters().connections_dropped, 1u);
    t.expire(5'000'000'000);
    EXPECT_EQ(t.connections(), 2u);
    t.expire(12'000'000'000);
    EXPECT_EQ(t.connections(), 0u);
    EXPECT_EQ(t.counters().connections_expired, 2u);
    EXPECT_EQ(t.counters().unanswered, 2u);
}

}  // namespace
