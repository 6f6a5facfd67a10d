// http::Server over real loopback sockets: slow clients, limits, timeouts, eviction,
// pipelining, auth swaps, restarts on a port with lingering connections.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <netprobe/http/server.hpp>
#include <netprobe/http/stream.hpp>
#include <netprobe/util/fd.hpp>

using namespace netprobe::http;
using netprobe::util::UniqueFd;
using namespace std::chrono_literals;

namespace {

UniqueFd connectTo(std::uint16_t port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
    return fd;
}

void sendAll(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        const auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;
        off += static_cast<std::size_t>(n);
    }
}

// Reads until the peer closes or `timeout` passes; returns what arrived and whether it closed.
struct Read {
    std::string data;
    bool closed = false;
};
Read readFor(int fd, std::chrono::milliseconds timeout, std::size_t stop_after_responses = 0) {
    Read r;
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
        if (left.count() <= 0) return r;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return r;
        char buf[65536];
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            r.closed = true;
            return r;
        }
        r.data.append(buf, static_cast<std::size_t>(n));
        if (stop_after_responses) {
            // Count complete responses (head + Content-Length body).
            std::size_t count = 0, pos = 0;
            for (;;) {
                const auto he = r.data.find("\r\n\r\n", pos);
                if (he == std::string::npos) break;
                const auto cl = r.data.find("Content-Length: ", pos);
                if (cl == std::string::npos || cl > he) break;
                const std::size_t len = std::stoul(r.data.substr(cl + 16));
                if (r.data.size() < he + 4 + len) break;
                pos = he + 4 + len;
                ++count;
            }
            if (count >= stop_after_responses) return r;
        }
    }
}

int statusOf(const std::string& resp) {
    if (!resp.starts_with("HTTP/1.1 ")) return 0;
    return std::stoi(resp.substr(9, 3));
}

struct Fixture {
    std::unique_ptr<Server> server;
    std::uint16_t port = 0;
    explicit Fixture(ServerOptions o = {}, WebConfig web = {}, Handler h = nullptr) {
        o.address = "127.0.0.1";
        o.port = 0;
        if (!h) h = [](const Request& r) {
            if (r.path == "/boom") throw std::runtime_error("boom");
            return Response::text(200, "hello " + r.path + "\n");
        };
        auto s = Server::start(o, web, h);
        if (!s) throw std::runtime_error(s.error().what());
        server = std::move(*s);
        port = server->port();
    }
    std::string get(const std::string& path, const std::string& extra = "") {
        auto fd = connectTo(port);
        sendAll(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + "\r\n");
        return readFor(fd.get(), 5s).data;
    }
};

}  // namespace

TEST(HttpServer, ServesGetAndHeadAndRefusesOtherMethods) {
    Fixture f;
    const auto r = f.get("/x");
    EXPECT_EQ(statusOf(r), 200) << r;
    EXPECT_TRUE(r.ends_with("hello /x\n")) << r;
    auto fd = connectTo(f.port);
    sendAll(fd.get(), "HEAD /x HTTP/1.1\r\nConnection: close\r\n\r\n");
    const auto h = readFor(fd.get(), 5s);
    EXPECT_TRUE(h.closed);
    EXPECT_EQ(statusOf(h.data), 200);
    EXPECT_NE(h.data.find("Content-Length: 9\r\n"), std::string::npos) << h.data;
    EXPECT_TRUE(h.data.ends_with("\r\n\r\n")) << "no body after a HEAD: " << h.data;
    const auto p = f.get("/x", "");
    auto fd2 = connectTo(f.port);
    sendAll(fd2.get(), "DELETE /x HTTP/1.1\r\n\r\n");
    const auto d = readFor(fd2.get(), 5s, 1);
    EXPECT_EQ(statusOf(d.data), 405);
    EXPECT_NE(d.data.find("Allow: GET, HEAD\r\n"), std::string::npos);
    EXPECT_EQ(statusOf(f.get("/boom")), 500);
}

TEST(HttpServer, KeepAliveAndPipelining) {
    Fixture f;
    auto fd = connectTo(f.port);
    sendAll(fd.get(), "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
    const auto r = readFor(fd.get(), 5s, 3);
    const auto a = r.data.find("hello /a"), b = r.data.find("hello /b"), c = r.data.find("hello /c");
    ASSERT_NE(c, std::string::npos) << r.data;
    EXPECT_LT(a, b);
    EXPECT_LT(b, c);
    EXPECT_FALSE(r.closed);
    // The same connection serves another request later.
    sendAll(fd.get(), "GET /d HTTP/1.1\r\n\r\n");
    EXPECT_NE(readFor(fd.get(), 5s, 1).data.find("hello /d"), std::string::npos);
}

TEST(HttpServer, SlowAndIdleClientsDoNotDelayOthers) {
    ServerOptions o;
    o.workers = 1;
    Fixture f(o);
    std::vector<UniqueFd> slow;
    for (int i = 0; i < 300; ++i) {
        slow.push_back(connectTo(f.port));
        ASSERT_TRUE(slow.back());
        if (i % 2) sendAll(slow.back().get(), "GET /slow HTTP/1.1\r\nX-A: 1\r\n");  // half a head
    }
    for (int i = 0; i < 20; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        EXPECT_EQ(statusOf(f.get("/fast")), 200);
        // Functional, not a speed target: with 300 stuck connections the request is not
        // queued behind them at all (the old server waited for one of them to time out).
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    }
    EXPECT_EQ(f.server->stats().open, 300u);
}

TEST(HttpServer, LimitsAnsweredAtOnce) {
    Fixture f;
    EXPECT_EQ(statusOf(f.get("/" + std::string(9000, 'a'))), 414);
    EXPECT_EQ(statusOf(f.get("/", "X-Big: " + std::string(17000, 'b') + "\r\n")), 431);
    // A body announced on a GET: 413 without the body being sent at all.
    auto fd = connectTo(f.port);
    sendAll(fd.get(), "GET / HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n");
    auto r = readFor(fd.get(), 5s);
    EXPECT_EQ(statusOf(r.data), 413) << r.data;
    EXPECT_NE(r.data.find("Connection: close"), std::string::npos);
    EXPECT_TRUE(r.closed);
    auto fd2 = connectTo(f.port);
    sendAll(fd2.get(), "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    EXPECT_EQ(statusOf(readFor(fd2.get(), 5s).data), 413);
    EXPECT_EQ(statusOf(f.get("/", "Bad Header: x\r\n")), 400);
    auto fd3 = connectTo(f.port);
    sendAll(fd3.get(), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    EXPECT_EQ(statusOf(readFor(fd3.get(), 5s).data), 505);
}

TEST(HttpServer, PhaseTimeoutsCloseConnections) {
    ServerOptions o;
    o.head_timeout = 300ms;
    o.idle_timeout = 600ms;
    Fixture f(o);
    auto partial = connectTo(f.port);
    sendAll(partial.get(), "GET / HTTP/1.1\r\nX: 1\r\n");
    auto idle = connectTo(f.port);
    sendAll(idle.get(), "GET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(statusOf(readFor(idle.get(), 5s, 1).data), 200);
    // Both close on their own (a bound, not a speed target: well above the timeouts).
    EXPECT_TRUE(readFor(partial.get(), 10s).closed);
    EXPECT_TRUE(readFor(idle.get(), 10s).closed);
    const auto s = f.server->stats();
    EXPECT_EQ(s.closed[static_cast<int>(CloseReason::HeadTimeout)], 1u);
    EXPECT_EQ(s.closed[static_cast<int>(CloseReason::IdleTimeout)], 1u);
    EXPECT_EQ(s.open, 0u);
}

TEST(HttpServer, BeyondMaxConnectionsTheLongestWaitingIsEvicted) {
    ServerOptions o;
    o.max_connections = 8;
    Fixture f(o);
    std::vector<UniqueFd> idle;
    for (int i = 0; i < 8; ++i) idle.push_back(connectTo(f.port));
    std::this_thread::sleep_for(100ms);
    std::vector<UniqueFd> served;  // keep-alive connections that stay open
    for (int i = 0; i < 5; ++i) {
        served.push_back(connectTo(f.port));
        sendAll(served.back().get(), "GET /x HTTP/1.1\r\n\r\n");
        EXPECT_EQ(statusOf(readFor(served.back().get(), 5s, 1).data), 200);
    }
    const auto s = f.server->stats();
    EXPECT_EQ(s.closed[static_cast<int>(CloseReason::Evicted)], 5u);
    EXPECT_EQ(s.open, 8u);
    EXPECT_TRUE(readFor(idle[0].get(), 5s).closed) << "the oldest idle connection made room";
}

TEST(HttpServer, BasicAuthAndHeadersSwappedWhileServing) {
    Fixture f;
    EXPECT_EQ(statusOf(f.get("/x")), 200);
    auto kept = connectTo(f.port);  // an idle keep-alive connection of the old configuration
    sendAll(kept.get(), "GET /x HTTP/1.1\r\n\r\n");
    EXPECT_EQ(statusOf(readFor(kept.get(), 5s, 1).data), 200);
    WebConfig web;
    web.basic_auth_users["alice"] = "$2y$05$9mPk.8cv63R0aaZ4vcO2t.bHDem9xFzeQJRDcb0..fP.8R.dZa.Ay";  // "s3cret pass"
    web.headers.emplace_back("X-Frame-Options", "deny");
    ASSERT_TRUE(f.server->setWebConfig(web));
    const auto no = f.get("/x");
    EXPECT_EQ(statusOf(no), 401);
    EXPECT_NE(no.find("WWW-Authenticate: Basic realm="), std::string::npos);
    EXPECT_NE(no.find("X-Frame-Options: deny\r\n"), std::string::npos);
    EXPECT_EQ(statusOf(f.get("/x", "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n")), 401);  // alice:wrong
    EXPECT_EQ(statusOf(f.get("/x", "Authorization: Basic YWxpY2U6czNjcmV0IHBhc3M=\r\n")), 200);
    // The idle connection of the old configuration is closed at once.
    const auto kr = readFor(kept.get(), 5s);
    EXPECT_TRUE(kr.closed);
    EXPECT_EQ(kr.data, "");
    EXPECT_EQ(f.server->stats().closed[static_cast<int>(CloseReason::ConfigChanged)], 1u);
    EXPECT_EQ(f.server->stats().auth_failures, 2u);
    // A configuration that cannot load leaves the current one.
    WebConfig bad;
    bad.tls = TlsServerConfig{};
    bad.tls->cert_file = "/nonexistent.crt";
    bad.tls->key_file = "/nonexistent.key";
    auto r = f.server->setWebConfig(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what().find("/nonexistent.crt"), std::string::npos) << r.error().what();
    EXPECT_EQ(statusOf(f.get("/x")), 401);
}

TEST(HttpServer, PublicPathsNeedNoCredentials) {
    ServerOptions o;
    o.public_paths = {"/healthz"};
    WebConfig web;
    web.basic_auth_users["alice"] = "$2y$05$9mPk.8cv63R0aaZ4vcO2t.bHDem9xFzeQJRDcb0..fP.8R.dZa.Ay";
    Fixture f(o, web);
    EXPECT_EQ(statusOf(f.get("/healthz")), 200);
    EXPECT_EQ(statusOf(f.get("/healthz?x=1")), 200);
    EXPECT_EQ(statusOf(f.get("/healthz/x")), 401);
    EXPECT_EQ(statusOf(f.get("/metrics")), 401);
}

TEST(HttpServer, RateLimit) {
    WebConfig web;
    web.rate_interval = std::chrono::hours(1);
    web.rate_burst = 3;
    Fixture f({}, web);
    int ok = 0, limited = 0;
    for (int i = 0; i < 6; ++i) {
        const int s = statusOf(f.get("/x"));
        ok += s == 200;
        limited += s == 429;
    }
    EXPECT_EQ(ok, 3);
    EXPECT_EQ(limited, 3);
}

TEST(HttpServer, PortInUseIsNamedAndARestartBindsAtOnce) {
    std::uint16_t port = 0;
    {
        Fixture a;
        port = a.port;
        ServerOptions o;
        o.address = "127.0.0.1";
        o.port = port;
        auto b = Server::start(o, {}, [](const Request&) { return Response::text(200, ""); });
        ASSERT_FALSE(b);
        EXPECT_NE(b.error().what().find("port in use"), std::string::npos) << b.error().what();
        // A client keeps its connection; the server goes away first (its side lingers).
        auto kept = connectTo(port);
        sendAll(kept.get(), "GET /x HTTP/1.1\r\n\r\n");
        EXPECT_EQ(statusOf(readFor(kept.get(), 5s, 1).data), 200);
        a.server->stop();
        EXPECT_TRUE(readFor(kept.get(), 5s).closed);
    }
    ServerOptions o;
    o.address = "127.0.0.1";
    o.port = port;
    auto again = Server::start(o, {}, [](const Request&) { return Response::text(200, "again"); });
    ASSERT_TRUE(again) << again.error().what();
    auto fd = connectTo(port);
    sendAll(fd.get(), "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(readFor(fd.get(), 5s).data.ends_with("again"));
}

TEST(HttpServer, BadListenAddress) {
    ServerOptions o;
    o.address = "localhost";
    auto s = Server::start(o, {}, [](const Request&) { return Response::text(200, ""); });
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().what().find("invalid listen address"), std::string::npos);
}

// ---- streaming responses (http/stream.hpp) ----

namespace {

struct StreamFixture {
    std::shared_ptr<StreamChannel> ch;
    std::unique_ptr<Fixture> f;
    explicit StreamFixture(StreamOptions so, ServerOptions o = {}) {
        o.workers = 1;
        f = std::make_unique<Fixture>(o, WebConfig{}, [this, so](const Request& r) {
            if (r.path != "/stream") return Response::text(200, "plain\n");
            auto c = std::make_shared<StreamChannel>(so);
            (void)c->push("data: first\n\n");
            ch = c;
            Response resp;
            resp.content_type = "text/event-stream";
            resp.stream = c;
            return resp;
        });
    }
    // Opens the stream; returns once the head and the first event arrived.
    UniqueFd open(std::string& got) {
        auto fd = connectTo(f->port);
        sendAll(fd.get(), "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
        const auto end = std::chrono::steady_clock::now() + 5s;
        while (got.find("data: first\n\n") == std::string::npos && std::chrono::steady_clock::now() < end)
            got += readFor(fd.get(), 100ms).data;
        return fd;
    }
};

bool waitUntil(const std::function<bool()>& ok, std::chrono::milliseconds limit = 5s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!ok()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

}  // namespace

TEST(HttpServerStream, PushedBytesHeartbeatsAndClientClose) {
    StreamOptions so;
    so.heartbeat_interval = 300ms;
    StreamFixture sf(so);
    std::string got;
    auto fd = sf.open(got);
    EXPECT_EQ(statusOf(got), 200) << got;
    EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos) << got;
    EXPECT_EQ(got.find("Content-Length"), std::string::npos) << "a stream has no length: " << got;
    EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
    ASSERT_TRUE(waitUntil([&] { return sf.f->server->stats().streams_open == 1; }));
    // The worker is free while the stream is open: a plain request is answered.
    EXPECT_EQ(statusOf(sf.f->get("/plain")), 200);
    // Pushed from another thread, written by the I/O thread.
    std::thread([&] { EXPECT_TRUE(sf.ch->push("data: second\n\n")); }).join();
    got = readFor(fd.get(), 2s).data;  // second, then heartbeats (idle 300 ms)
    EXPECT_NE(got.find("data: second\n\n"), std::string::npos) << got;
    EXPECT_NE(got.find(":\n\n"), std::string::npos) << "no heartbeat in 2 s: " << got;
    fd.reset();
    ASSERT_TRUE(waitUntil([&] { return sf.ch->end() == StreamEnd::Client; }));
    EXPECT_FALSE(sf.ch->push("data: gone\n\n"));
    EXPECT_TRUE(waitUntil([&] { return sf.f->server->stats().streams_open == 0; }));
}

TEST(HttpServerStream, ProducerCloseEndsTheResponseAfterItsBytes) {
    StreamFixture sf(StreamOptions{});
    std::string got;
    auto fd = sf.open(got);
    ASSERT_TRUE(sf.ch);
    EXPECT_TRUE(sf.ch->push("data: last\n\n"));
    sf.ch->close();
    const auto r = readFor(fd.get(), 5s);
    EXPECT_NE(r.data.find("data: last\n\n"), std::string::npos) << r.data;
    EXPECT_TRUE(r.closed);
    EXPECT_TRUE(waitUntil([&] { return sf.ch->end() == StreamEnd::Closed; })) << toString(sf.ch->end());
}

TEST(HttpServerStream, SlowReaderIsDroppedAtItsBufferLimit) {
    StreamOptions so;
    so.max_buffer = 256 * 1024;
    StreamFixture sf(so);
    std::string got;
    auto fd = sf.open(got);  // and then never reads again
    ASSERT_TRUE(sf.ch);
    const std::string chunk(16 * 1024, 'x');
    std::size_t pushed = 0;
    // The socket buffers fill first (a few MiB on loopback), then the channel's 256 KiB.
    for (int i = 0; i < 100000 && sf.ch->push(chunk); ++i) {
        pushed += chunk.size();
        if (i % 64 == 0) std::this_thread::sleep_for(1ms);  // let the I/O thread fill the socket
    }
    EXPECT_EQ(sf.ch->end(), StreamEnd::SlowReader);
    EXPECT_LT(pushed, 100000u * chunk.size());
    ASSERT_TRUE(waitUntil([&] { return sf.f->server->stats().closed[static_cast<int>(CloseReason::SlowReader)] == 1; }));
    EXPECT_EQ(sf.f->server->stats().streams_open, 0u);
}

TEST(HttpServerStream, HeadAndErrorsAreNotStreamed) {
    StreamFixture sf(StreamOptions{});
    auto fd = connectTo(sf.f->port);
    sendAll(fd.get(), "HEAD /stream HTTP/1.1\r\nConnection: close\r\n\r\n");
    const auto r = readFor(fd.get(), 5s);
    EXPECT_EQ(statusOf(r.data), 200);
    EXPECT_TRUE(r.closed);
    ASSERT_TRUE(sf.ch);
    EXPECT_EQ(sf.ch->end(), StreamEnd::NotStarted);
    EXPECT_EQ(sf.f->server->stats().streams_open, 0u);
}

TEST(HttpServerStream, StopEndsStreams) {
    StreamFixture sf(StreamOptions{});
    std::string got;
    auto fd = sf.open(got);
    ASSERT_TRUE(waitUntil([&] { return sf.f->server->stats().streams_open == 1; }));
    sf.f->server->stop();
    EXPECT_EQ(sf.ch->end(), StreamEnd::Shutdown);
    EXPECT_TRUE(readFor(fd.get(), 5s).closed);
}
