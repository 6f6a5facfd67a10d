// The L7 capture programs (tp_btf sys_enter/sys_exit) on real sockets of this process:
// a loopback TCP exchange through each family of syscalls must arrive as records with
// the exact bytes and lengths each side moved; pipes, files and unrecognised
// connections must produce none, and the kernel counters must say why.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <netprobe/ebpf/l7_capture.hpp>
#include <netprobe/util/fd.hpp>
#include <netprobe/util/ip.hpp>

namespace {

using netprobe::ebpf::L7Capture;
using netprobe::util::UniqueFd;

// A captured message with its bytes copied (the capture's views live only during its handler).
struct L7Message : netprobe::ebpf::L7Message {
    std::string head, tail;
    explicit L7Message(const netprobe::ebpf::L7Message& m)
        : netprobe::ebpf::L7Message(m), head(m.head), tail(m.tail) {}
};

struct Collected {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<L7Message> msgs;

    // Messages of connections whose local or remote port is `port`, once at least n arrived.
    std::vector<L7Message> waitFor(std::uint16_t port, std::size_t n) {
        std::unique_lock lock(mu);
        std::vector<L7Message> out;
        cv.wait_for(lock, std::chrono::seconds(5), [&] {
            out.clear();
            for (const auto& m : msgs)
                if (m.local_port == port || m.remote_port == port) out.push_back(m);
            return out.size() >= n;
        });
        return out;
    }
    // Waits until a message satisfies pred; returns a copy of it.
    template <class Pred>
    std::optional<L7Message> waitOne(Pred pred) {
        std::unique_lock lock(mu);
        std::optional<L7Message> found;
        cv.wait_for(lock, std::chrono::seconds(5), [&] {
            for (const auto& m : msgs)
                if (pred(m)) {
                    found = m;
                    return true;
                }
            return false;
        });
        return found;
    }
};

struct Pair {
    UniqueFd listener, client, server;
    std::uint16_t port = 0;
};

Pair connectedPair() {
    Pair p;
    p.listener = UniqueFd(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(p.listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(p.listener.get(), 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(p.listener.get(), reinterpret_cast<sockaddr*>(&a), &len);
    p.port = ntohs(a.sin_port);
    p.client = UniqueFd(::socket(AF_INET, SOCK_STREAM, 0));
    EXPECT_EQ(::connect(p.client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    p.server = UniqueFd(::accept(p.listener.get(), nullptr, nullptr));
    return p;
}

std::string readExactly(int fd, std::size_t n) {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd, out.data() + got, n - got);
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
    }
    out.resize(got);
    return out;
}

class L7CaptureTest : public ::testing::Test {
protected:
    void SetUp() override {
        netprobe::ebpf::L7CaptureOptions o = options();
        o.exclude_self = false;  // the sockets under test are this process's
        auto c = L7Capture::create(o, [this](const netprobe::ebpf::L7Message& m) {
            std::lock_guard lock(got_.mu);
            got_.msgs.emplace_back(m);
            got_.cv.notify_all();
        });
        ASSERT_TRUE(c) << c.error().message;
        cap_ = std::move(*c);
    }
    virtual netprobe::ebpf::L7CaptureOptions options() const { return {}; }
    // A classified connection's close(2): a CLOSED record with the descriptor and socket.
    void closeIsReported() {
        Pair p = connectedPair();
        const std::string req = "GET / HTTP/1.1\r\n\r\n";
        ASSERT_EQ(::write(p.client.get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
        const auto sock_fd = static_cast<std::uint32_t>(p.client.get());
        p.client.reset();
        auto ms = got_.waitFor(p.port, 2);
        ASSERT_EQ(ms.size(), 2u);
        EXPECT_EQ(ms[1].direction, NP_L7_CLOSED);
        EXPECT_EQ(ms[1].fd, sock_fd);
        EXPECT_EQ(ms[1].sock, ms[0].sock);
    }
    Collected got_;
    std::unique_ptr<L7Capture> cap_;
};

// close(2) seen at the raw sys_enter tracepoint: where the kernel has no
// syscalls:sys_enter_close (no tracefs).
class L7CaptureRawEnterTest : public L7CaptureTest {
protected:
    netprobe::ebpf::L7CaptureOptions options() const override {
        netprobe::ebpf::L7CaptureOptions o;
        o.close_tracepoint = false;
        return o;
    }
};

TEST_F(L7CaptureTest, HttpOverReadWriteBothSidesExactBytes) {
    Pair p = connectedPair();
    const std::string req = "GET /items/42 HTTP/1.1\r\nHost: x\r\n\r\n";
    const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    ASSERT_EQ(::write(p.client.get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
    ASSERT_EQ(readExactly(p.server.get(), req.size()), req);
    ASSERT_EQ(::send(p.server.get(), resp.data(), resp.size(), 0), static_cast<ssize_t>(resp.size()));
    ASSERT_EQ(readExactly(p.client.get(), resp.size()), resp);

    auto ms = got_.waitFor(p.port, 4);
    ASSERT_EQ(ms.size(), 4u);
    // client write, server read, server send, client read - in syscall order
    EXPECT_EQ(ms[0].direction, NP_L7_SEND);
    EXPECT_EQ(ms[0].remote_port, p.port);
    EXPECT_EQ(ms[0].head, req);
    EXPECT_EQ(ms[0].syscall, NP_L7_SC_WRITE);
    EXPECT_EQ(ms[1].direction, NP_L7_RECV);
    EXPECT_EQ(ms[1].local_port, p.port);
    EXPECT_EQ(ms[1].head, req);
    EXPECT_EQ(ms[2].direction, NP_L7_SEND);
    EXPECT_EQ(ms[2].syscall, NP_L7_SC_SENDTO);
    EXPECT_EQ(ms[2].head, resp);
    EXPECT_EQ(ms[3].direction, NP_L7_RECV);
    EXPECT_EQ(ms[3].head, resp);
    for (const auto& m : ms) {
        EXPECT_EQ(m.protocol, NP_L7_HTTP1);
        EXPECT_EQ(m.pid, static_cast<std::uint32_t>(::getpid()));
        EXPECT_EQ(m.family, 4);
        EXPECT_EQ(m.len, m.head.size());
        EXPECT_FALSE(m.truncated());
    }
    EXPECT_EQ(ms[0].sock, ms[3].sock);  // the client's socket
    EXPECT_EQ(ms[1].sock, ms[2].sock);
    EXPECT_NE(ms[0].sock, ms[1].sock);
}

TEST_F(L7CaptureTest, LargeMessageTruncatedWithTailAndVectorIo) {
    Pair p = connectedPair();
    const std::string req = "POST /upload HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    ASSERT_EQ(::write(p.client.get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
    ASSERT_EQ(readExactly(p.server.get(), req.size()), req);
    // Response: head and a 100000-byte body in one writev (two segments).
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
    std::string body(100000, 'b');
    body.replace(body.size() - 5, 5, "\r\nEND");
    iovec iov[2] = {{head.data(), head.size()}, {body.data(), body.size()}};
    std::thread reader([&] { readExactly(p.client.get(), head.size() + body.size()); });
    ssize_t w = ::writev(p.server.get(), iov, 2);
    reader.join();
    ASSERT_GT(w, 0);
    // sendmsg with a single buffer larger than the head limit: head and tail copied.
    std::string big = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(1000 - 4, 'x') + "TAIL";
    iovec one{big.data(), big.size()};
    msghdr mh{};
    mh.msg_iov = &one;
    mh.msg_iovlen = 1;
    ASSERT_EQ(::sendmsg(p.server.get(), &mh, 0), static_cast<ssize_t>(big.size()));
    ASSERT_EQ(readExactly(p.client.get(), big.size()).size(), big.size());

    auto of = [&](std::uint8_t sc) {
        return got_.waitOne([&](const L7Message& m) { return m.local_port == p.port && m.syscall == sc; });
    };
    auto wv = of(NP_L7_SC_WRITEV);
    auto sm = of(NP_L7_SC_SENDMSG);
    ASSERT_TRUE(wv);
    EXPECT_EQ(wv->len, static_cast<std::uint32_t>(w));
    EXPECT_EQ(wv->head, (head + body).substr(0, NP_L7_COPY));  // the segments gathered up to the copy size
    EXPECT_TRUE(wv->truncated());
    EXPECT_TRUE(wv->tail.empty());  // vector I/O: no tail
    ASSERT_TRUE(sm);
    EXPECT_EQ(sm->len, big.size());
    EXPECT_EQ(sm->head, big.substr(0, NP_L7_COPY));
    EXPECT_EQ(sm->tail, big.substr(big.size() - NP_L7_TAIL_MAX));
    EXPECT_TRUE(sm->truncated());
}

TEST_F(L7CaptureTest, PipesAndUnrecognisedConnectionsProduceNothing) {
    auto before = cap_->counters();
    ASSERT_TRUE(before);
    int pfd[2];
    ASSERT_EQ(::pipe(pfd), 0);
    UniqueFd r(pfd[0]), w(pfd[1]);
    const std::string http = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_EQ(::write(w.get(), http.data(), http.size()), static_cast<ssize_t>(http.size()));
    ASSERT_EQ(readExactly(r.get(), http.size()), http);

    Pair p = connectedPair();
    const std::string bin = std::string("\x00\x01\x02\x03 binary", 10);
    for (int i = 0; i < 10; ++i) {
        ASSERT_EQ(::write(p.client.get(), bin.data(), bin.size()), static_cast<ssize_t>(bin.size()));
        ASSERT_EQ(readExactly(p.server.get(), bin.size()), bin);
    }
    // A later HTTP-looking message on the same connection is not captured: the
    // connection was classified as nothing recognised.
    ASSERT_EQ(::write(p.client.get(), http.data(), http.size()), static_cast<ssize_t>(http.size()));
    ASSERT_EQ(readExactly(p.server.get(), http.size()), http);
    // A marker connection whose records prove the ring was drained past the above.
    Pair marker = connectedPair();
    ASSERT_EQ(::write(marker.client.get(), http.data(), http.size()), static_cast<ssize_t>(http.size()));
    ASSERT_EQ(got_.waitFor(marker.port, 1).size(), 1u);

    EXPECT_TRUE(got_.waitFor(p.port, 0).empty());
    {
        std::lock_guard lock(got_.mu);
        for (const auto& m : got_.msgs) EXPECT_NE(m.fd, static_cast<std::uint32_t>(w.get())) << "pipe captured";
    }
    auto after = cap_->counters();
    ASSERT_TRUE(after);
    // Per side: NP_L7_MAX_ATTEMPTS data syscalls inspected, the rest skipped.
    const auto skipped = (*after)[NP_L7_CNT_SKIPPED_NONE] - (*before)[NP_L7_CNT_SKIPPED_NONE];
    EXPECT_EQ(skipped, 2u * (11 - NP_L7_MAX_ATTEMPTS));
    EXPECT_EQ((*after)[NP_L7_CNT_RING_FULL], 0u);
}

// close(2) at its own tracepoint: its id read from tracefs (mounted in a private mount
// namespace where, as on this machine, it is not mounted).
TEST_F(L7CaptureTest, CloseOfClassifiedConnectionIsReported) {
    ASSERT_STREQ(cap_->closeHook(), "syscalls:sys_enter_close");
    closeIsReported();
}

TEST_F(L7CaptureRawEnterTest, CloseOfClassifiedConnectionIsReported) {
    ASSERT_STREQ(cap_->closeHook(), "sys_enter");
    closeIsReported();
}

TEST_F(L7CaptureTest, UdpOnlyForDnsWithEachDatagramsPeer) {
    // An unconnected client socket sending to port 53 (nobody listens: the send is what
    // is captured) and to another port (not captured).
    UniqueFd u(::socket(AF_INET, SOCK_DGRAM, 0));
    sockaddr_in dns{};
    dns.sin_family = AF_INET;
    dns.sin_port = htons(53);
    dns.sin_addr.s_addr = htonl(0x7f000035);  // 127.0.0.53
    const std::string q = std::string("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x00\x00\x01\x00\x01", 19);
    ASSERT_EQ(::sendto(u.get(), q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&dns), sizeof dns),
              static_cast<ssize_t>(q.size()));
    UniqueFd other(::socket(AF_INET, SOCK_DGRAM, 0));
    sockaddr_in o = dns;
    o.sin_port = htons(5353);
    ASSERT_EQ(::sendto(other.get(), q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&o), sizeof o),
              static_cast<ssize_t>(q.size()));
    // An unconnected socket sending to port 53 with sendmsg (the address in its msghdr).
    UniqueFd viamsg(::socket(AF_INET, SOCK_DGRAM, 0));
    sockaddr_in dns2 = dns;
    dns2.sin_addr.s_addr = htonl(0x7f000036);  // 127.0.0.54
    iovec iov{const_cast<char*>(q.data()), q.size()};
    msghdr mh{};
    mh.msg_name = &dns2;
    mh.msg_namelen = sizeof dns2;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ASSERT_EQ(::sendmsg(viamsg.get(), &mh, 0), static_cast<ssize_t>(q.size()));
    // A marker (TCP HTTP) after them.
    Pair marker = connectedPair();
    const std::string http = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_EQ(::write(marker.client.get(), http.data(), http.size()), static_cast<ssize_t>(http.size()));
    ASSERT_TRUE(got_.waitOne([&](const L7Message& m) { return m.remote_port == marker.port; }));
    auto ms = got_.waitFor(53, 2);
    ASSERT_EQ(ms.size(), 2u);
    for (const auto& m : ms) {
        EXPECT_EQ(m.protocol, NP_L7_DNS);
        EXPECT_EQ(m.ip_proto, 17);
        EXPECT_EQ(m.head, q);
    }
    EXPECT_EQ(ms[0].syscall, NP_L7_SC_SENDTO);
    EXPECT_EQ(netprobe::util::formatAddr(ms[0].remote), "127.0.0.53");  // from sendto's address
    EXPECT_EQ(ms[1].syscall, NP_L7_SC_SENDMSG);
    EXPECT_EQ(netprobe::util::formatAddr(ms[1].remote), "127.0.0.54");  // from the msghdr's address
    EXPECT_TRUE(got_.waitFor(5353, 0).empty());
}

TEST_F(L7CaptureTest, ShortFirstSegmentIsFollowedIntoTheNext) {
    // DNS over TCP: the 2-byte length as a segment of its own, then the message.
    Pair p = connectedPair();
    std::string body = "GET /after-a-prefix HTTP/1.1\r\n\r\n";
    char len[2] = {0, static_cast<char>(body.size())};
    iovec iov[2] = {{len, 2}, {body.data(), body.size()}};
    // The connection is classified by its first bytes: send a plain HTTP request first.
    const std::string first = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_EQ(::write(p.client.get(), first.data(), first.size()), static_cast<ssize_t>(first.size()));
    ASSERT_EQ(::writev(p.client.get(), iov, 2), static_cast<ssize_t>(2 + body.size()));
    auto m = got_.waitOne([&](const L7Message& x) { return x.remote_port == p.port && x.syscall == NP_L7_SC_WRITEV; });
    ASSERT_TRUE(m);
    EXPECT_EQ(m->head, std::string(len, 2) + body);
    EXPECT_EQ(m->len, 2 + body.size());
}

// ---- Kafka and AMQP inference ----

std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// A Kafka ApiVersions v3 request as librdkafka writes it (size, key 18, version 3,
// correlation id, client id "rdkafka", tagged fields, software name and version).
std::string kafkaApiVersions(std::uint32_t corr) {
    std::string body = std::string("\x00\x12\x00\x03", 4) + be32(corr) + std::string("\x00\x07", 2) + "rdkafka" +
                       std::string("\x00\x0b" "librdkafka" "\x06" "2.0.2" "\x00", 19);
    return be32(static_cast<std::uint32_t>(body.size())) + body;
}

TEST_F(L7CaptureTest, KafkaRequestClassifiesTheClientAndABrokerThatReadsTheSizeFirst) {
    Pair p = connectedPair();
    const std::string req = kafkaApiVersions(1);
    ASSERT_EQ(::write(p.client.get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
    // the broker reads as Kafka's does: the size, then the rest
    ASSERT_EQ(readExactly(p.server.get(), 4), req.substr(0, 4));
    ASSERT_EQ(readExactly(p.server.get(), req.size() - 4), req.substr(4));
    const std::string resp = be32(10) + be32(1) + std::string("\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", 6);
    ASSERT_EQ(::write(p.server.get(), resp.data(), resp.size()), static_cast<ssize_t>(resp.size()));
    ASSERT_EQ(readExactly(p.client.get(), 8), resp.substr(0, 8));  // as librdkafka reads: size + correlation id
    ASSERT_EQ(readExactly(p.client.get(), resp.size() - 8), resp.substr(8));
    auto ms = got_.waitFor(p.port, 5);
    ASSERT_EQ(ms.size(), 5u);
    for (const auto& m : ms) EXPECT_EQ(m.protocol, NP_L7_KAFKA);
    EXPECT_EQ(ms[0].direction, NP_L7_SEND);
    EXPECT_EQ(ms[0].head, req);
    EXPECT_EQ(ms[0].flags & NP_L7_F_SPLIT, 0);
    // the broker's read of the rest: its size came alone, in the read before
    EXPECT_EQ(ms[1].direction, NP_L7_RECV);
    EXPECT_EQ(ms[1].head, req.substr(4));
    EXPECT_EQ(ms[1].flags & NP_L7_F_SPLIT, NP_L7_F_SPLIT);
    EXPECT_EQ(ms[2].head, resp);
    EXPECT_EQ(ms[3].head, resp.substr(0, 8));
    EXPECT_EQ(ms[4].head, resp.substr(8));
}

TEST_F(L7CaptureTest, AmqpProtocolHeaderAndMidConnectionMethodFramesClassify) {
    Pair p = connectedPair();
    const std::string header("AMQP\x00\x00\x09\x01", 8);
    ASSERT_EQ(::write(p.client.get(), header.data(), header.size()), 8);
    ASSERT_EQ(readExactly(p.server.get(), 8), header);
    // basic.ack on channel 1 (a connection whose capture began after its header)
    const std::string ack = std::string("\x01\x00\x01\x00\x00\x00\x0d\x00\x3c\x00\x50", 11) + std::string(8, '\0') +
                            std::string("\x00\xce", 2);
    Pair q = connectedPair();
    ASSERT_EQ(::write(q.client.get(), ack.data(), ack.size()), static_cast<ssize_t>(ack.size()));
    ASSERT_EQ(readExactly(q.server.get(), ack.size()), ack);
    // a heartbeat frame alone
    const std::string hb("\x08\x00\x00\x00\x00\x00\x00\xce", 8);
    Pair r = connectedPair();
    ASSERT_EQ(::write(r.client.get(), hb.data(), hb.size()), 8);
    ASSERT_EQ(readExactly(r.server.get(), 8), hb);
    for (const Pair* c : {&p, &q, &r}) {
        auto ms = got_.waitFor(c->port, 2);
        ASSERT_EQ(ms.size(), 2u) << c->port;
        for (const auto& m : ms) EXPECT_EQ(m.protocol, NP_L7_AMQP);
    }
}

// AMQP frames beyond the copy: the kernel walks the frame chain through the user's
// buffers - a writev of segments cut anywhere, a frame's header split between two - and
// sends the first bytes of each frame there (a method's or content header's first
// NP_L7_PIECE_MAX bytes, a body frame's header) at its offset; a write the socket took
// only part of (here: a stream written in two syscalls cut inside a body) leaves the rest
// of that frame for the next syscall, whose walk starts where the frame ends. Oracle: the
// offsets and bytes of the stream the test wrote.
TEST_F(L7CaptureTest, AmqpFramesBeyondTheCopyAreWalkedAcrossSegmentsAndSyscalls) {
    Pair p = connectedPair();
    const std::string header("AMQP\x00\x00\x09\x01", 8);
    ASSERT_EQ(::write(p.client.get(), header.data(), header.size()), 8);
    ASSERT_EQ(readExactly(p.server.get(), 8), header);
    auto frame = [](int type, const std::string& payload) {
        return std::string{static_cast<char>(type), 0, 1} + be32(static_cast<std::uint32_t>(payload.size())) + payload +
               "\xce";
    };
    std::string stream;
    std::vector<std::size_t> starts;
    for (int tag = 1; tag <= 24; ++tag) {
        const std::string ctag = "ctag1.0123456789abcdef0123456789abcdef";
        std::string deliver = std::string("\x00\x3c\x00\x3c", 4) + static_cast<char>(ctag.size()) + ctag +
                              std::string(7, '\0') + static_cast<char>(tag) + '\0' + '\0' + "\x05queue";
        std::string hdr = std::string("\x00\x3c\x00\x00", 4) + std::string(6, '\0') + "\x03\xe8" + std::string(2, '\0');
        for (const std::string& f : {frame(1, deliver), frame(2, hdr), frame(3, std::string(1000, 'b'))}) {
            starts.push_back(stream.size());
            stream += f;
        }
    }
    // The first syscall: a writev of the stream's first 9000 bytes in segments of 1 to 3000
    // bytes (pieces are read across them); the second: the rest, in one write, which
    // begins inside a body frame.
    const std::size_t first = 9000;
    ASSERT_EQ(std::count(starts.begin(), starts.end(), first), 0);
    std::vector<iovec> iov;
    for (std::size_t at = 0, k = 0; at < first; ++k) {
        static constexpr std::size_t kCuts[] = {1500, 7, 2, 700, 3000, 1};
        const std::size_t n = std::min(kCuts[k % std::size(kCuts)], first - at);
        iov.push_back({stream.data() + at, n});
        at += n;
    }
    std::thread reader([&] { readExactly(p.client.get(), stream.size()); });
    ASSERT_EQ(::writev(p.server.get(), iov.data(), static_cast<int>(iov.size())), static_cast<ssize_t>(first));
    ASSERT_EQ(::write(p.server.get(), stream.data() + first, stream.size() - first),
              static_cast<ssize_t>(stream.size() - first));
    reader.join();

    auto of = [&](std::uint8_t sc) {
        return got_.waitOne(
            [&](const L7Message& m) { return m.local_port == p.port && m.syscall == sc && m.direction == NP_L7_SEND; });
    };
    auto wv = of(NP_L7_SC_WRITEV);
    auto w = of(NP_L7_SC_WRITE);
    ASSERT_TRUE(wv);
    ASSERT_TRUE(w);
    const struct {
        const L7Message& m;
        std::size_t base;  // the syscall's first byte in the stream
    } calls[] = {{*wv, 0}, {*w, first}};
    for (const auto& c : calls) {
        SCOPED_TRACE(c.base);
        EXPECT_EQ(c.m.protocol, NP_L7_AMQP);
        EXPECT_EQ(c.m.head, stream.substr(c.base, NP_L7_HEAD_MAX));
        // The pieces: one per frame whose header is not whole in the copy, in order.
        std::size_t expected = 0, i = 0;
        const std::string& pz = c.m.pieces;
        for (std::size_t s : starts) {
            if (s < c.base || s - c.base + 7 <= NP_L7_HEAD_MAX || s + 7 > c.base + c.m.len) continue;
            ++expected;
            const auto type = static_cast<unsigned char>(stream[s]);
            const std::size_t size = (static_cast<unsigned char>(stream[s + 5]) << 8) | static_cast<unsigned char>(stream[s + 6]);
            std::size_t want = type == 3 ? 7 : std::min<std::size_t>(size + 8, NP_L7_PIECE_MAX);
            want = std::min(want, c.base + c.m.len - s);
            ASSERT_LE(i + NP_L7_PIECE_HDR, pz.size()) << "piece for the frame at " << s;
            std::uint32_t off = 0;
            std::memcpy(&off, pz.data() + i, 4);  // (little-endian, as the kernel writes it)
            const std::size_t n = static_cast<unsigned char>(pz[i + 4]) | static_cast<unsigned char>(pz[i + 5]) << 8;
            EXPECT_EQ(off, s - c.base);
            ASSERT_EQ(n, want) << s;
            EXPECT_EQ(pz.substr(i + NP_L7_PIECE_HDR, n), stream.substr(s, n)) << s;
            i += NP_L7_PIECE_HDR + n;
        }
        EXPECT_GT(expected, 5u);
        EXPECT_EQ(i, pz.size());
    }
}

// Binary that looks like the two protocols' framing - sizes that match the syscall,
// frame types, a size read alone - but is not theirs is never classified as either.
TEST_F(L7CaptureTest, BinaryLookalikesAreNeitherKafkaNorAmqp) {
    std::uint64_t rng = 0x2545F4914F6CDD1Dull;
    auto next = [&] {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
    };
    auto random = [&](std::size_t n) {
        std::string s(n, '\0');
        for (auto& ch : s) ch = static_cast<char>(next());
        return s;
    };
    std::vector<std::string> payloads;
    for (int i = 0; i < 120; ++i) {
        const std::size_t n = 10 + next() % 300;
        switch (i % 6) {
            case 0: payloads.push_back(be32(static_cast<std::uint32_t>(n)) + random(n)); break;  // size-prefixed
            case 1: {  // a Kafka header with an api key beyond the table
                std::string b = std::string("\x00\xc8\x00\x01", 4) + be32(7) + std::string("\x00\x04kcat", 6) + random(n);
                payloads.push_back(be32(static_cast<std::uint32_t>(b.size())) + b);
                break;
            }
            case 2: {  // ... with a client id that is not text
                std::string b = std::string("\x00\x03\x00\x01", 4) + be32(7) + std::string("\x00\x04\x01\x02\x03\x04", 6) +
                                random(n);
                payloads.push_back(be32(static_cast<std::uint32_t>(b.size())) + b);
                break;
            }
            case 3: {  // an AMQP method frame header without its frame end
                std::string b = std::string("\x01\x00\x01", 3) + be32(static_cast<std::uint32_t>(n)) +
                                std::string("\x00\x3c\x00\x28", 4) + random(n - 4) + "\x00";
                payloads.push_back(b);
                break;
            }
            case 4: {  // ... with its frame end but a method that does not exist
                std::string b = std::string("\x01\x00\x01", 3) + be32(static_cast<std::uint32_t>(n)) +
                                std::string("\x00\x3c\x00\x29", 4) + random(n - 4) + "\xce";
                payloads.push_back(b);
                break;
            }
            default: payloads.push_back(random(n)); break;
        }
    }
    std::vector<Pair> pairs;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        pairs.push_back(connectedPair());
        const Pair& c = pairs.back();
        const std::string& b = payloads[i];
        if (i % 4 == 3) {
            // a size written alone, then exactly that many random bytes
            const std::string size = be32(static_cast<std::uint32_t>(b.size()));
            ASSERT_EQ(::write(c.client.get(), size.data(), 4), 4);
            ASSERT_EQ(readExactly(c.server.get(), 4), size);
        }
        ASSERT_EQ(::write(c.client.get(), b.data(), b.size()), static_cast<ssize_t>(b.size()));
        ASSERT_EQ(readExactly(c.server.get(), b.size()), b);
    }
    Pair marker = connectedPair();
    const std::string http = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_EQ(::write(marker.client.get(), http.data(), http.size()), static_cast<ssize_t>(http.size()));
    ASSERT_EQ(got_.waitFor(marker.port, 1).size(), 1u);
    std::lock_guard lock(got_.mu);
    for (const auto& m : got_.msgs)
        EXPECT_TRUE(m.protocol != NP_L7_KAFKA && m.protocol != NP_L7_AMQP)
            << "port " << m.local_port << "/" << m.remote_port << " classified " << int(m.protocol);
}

}  // namespace
