// DNS message parsing and the tracker's DNS pairing (UDP datagrams from several peers on
// one server socket, TCP with its length prefix), on messages built here.
#include <gtest/gtest.h>

#include <algorithm>

#include <string>
#include <vector>

#include <netprobe/l7/dns.hpp>
#include <netprobe/l7/tracker.hpp>

namespace {

using namespace netprobe::l7;

// A DNS message writer (RFC 1035 layout), for the tests.
struct Dns {
    std::string b;
    void u16(unsigned v) {
        b += static_cast<char>(v >> 8);
        b += static_cast<char>(v & 0xff);
    }
    void u32(unsigned v) {
        u16(v >> 16);
        u16(v & 0xffff);
    }
    void name(const std::string& n) {
        std::size_t p = 0;
        while (p < n.size()) {
            auto dot = n.find('.', p);
            std::string label = n.substr(p, dot == std::string::npos ? std::string::npos : dot - p);
            b += static_cast<char>(label.size());
            b += label;
            if (dot == std::string::npos) break;
            p = dot + 1;
        }
        b += '\0';
    }
    static Dns query(unsigned id, const std::string& qname, unsigned qtype) {
        Dns d;
        d.u16(id);
        d.u16(0x0100);  // RD
        d.u16(1);
        d.u16(0);
        d.u16(0);
        d.u16(0);
        d.name(qname);
        d.u16(qtype);
        d.u16(1);
        return d;
    }
    static Dns response(unsigned id, const std::string& qname, unsigned qtype, unsigned rcode, unsigned answers) {
        Dns d = query(id, qname, qtype);
        d.b[2] = static_cast<char>(0x81);
        d.b[3] = static_cast<char>(0x80 | rcode);
        d.b[6] = 0;
        d.b[7] = static_cast<char>(answers);
        return d;
    }
    void answerA(const std::string& owner_ptr_or_name, unsigned ttl, std::string ip4) {
        if (owner_ptr_or_name == "@q") u16(0xc00c); else name(owner_ptr_or_name);
        u16(1);
        u16(1);
        u32(ttl);
        u16(4);
        b += ip4;
    }
    void answerCname(unsigned ttl, const std::string& target) {
        u16(0xc00c);
        u16(5);
        u16(1);
        u32(ttl);
        Dns t;
        t.name(target);
        u16(static_cast<unsigned>(t.b.size()));
        b += t.b;
    }
};

TEST(Dns, QueryAndResponseWithCompressedAnswers) {
    auto q = parseDns(Dns::query(0x1234, "WWW.Example.COM", 1).b);
    ASSERT_TRUE(q);
    EXPECT_FALSE(q->response);
    EXPECT_EQ(q->id, 0x1234);
    EXPECT_EQ(q->qname, "www.example.com");
    EXPECT_EQ(q->qtype, 1);
    Dns r = Dns::response(0x1234, "www.example.com", 1, 0, 2);
    r.answerCname(300, "edge.example.net");
    r.answerA("edge.example.net", 60, std::string("\xc6\x12\x32\x01", 4));
    auto m = parseDns(r.b);
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->response);
    ASSERT_EQ(m->answers.size(), 2u);
    EXPECT_EQ(m->answers[0].type, 5);
    EXPECT_EQ(m->answers[0].name, "www.example.com");
    EXPECT_EQ(m->answers[0].target, "edge.example.net");
    EXPECT_EQ(m->answers[1].ttl, 60u);
    EXPECT_EQ(netprobe::util::formatAddr(m->answers[1].addr), "198.18.50.1");
    // Cut short (the capture's 512 bytes): the answers that fit are kept.
    auto cut = parseDns(std::string_view(r.b).substr(0, r.b.size() - 3));
    ASSERT_TRUE(cut);
    EXPECT_EQ(cut->answers.size(), 1u);
    EXPECT_EQ(cut->answer_count, 2);
}

TEST(Dns, NotDns) {
    EXPECT_FALSE(parseDns("GET / HTTP/1.1\r\n\r\n"));
    EXPECT_FALSE(parseDns(std::string(11, '\0')));
    Dns two = Dns::query(1, "a.b", 1);
    two.b[5] = 2;  // QDCOUNT 2
    EXPECT_FALSE(parseDns(two.b));
    Dns loop = Dns::query(1, "a", 1);
    loop.b.resize(12);
    loop.b += std::string("\xc0\x0c", 2);  // a pointer to itself
    loop.u16(1);
    loop.u16(1);
    EXPECT_FALSE(parseDns(loop.b));
    EXPECT_EQ(dnsTypeName(28), "AAAA");
    EXPECT_EQ(dnsTypeName(999), "TYPE999");
    EXPECT_EQ(dnsRcodeName(3), "NXDOMAIN");
    EXPECT_TRUE(dnsRcodeIsError(2));
    EXPECT_FALSE(dnsRcodeIsError(3));
}

struct Msg {
    netprobe::ebpf::L7Message m;
    std::string data;
};

Msg udp(std::uint8_t dir, std::uint8_t peer_last, std::uint16_t peer_port, std::string data, std::uint64_t ts) {
    Msg x;
    x.m.sock = 7;
    x.m.ts_ns = ts;
    x.m.direction = dir;
    x.m.protocol = NP_L7_DNS;
    x.m.ip_proto = 17;
    x.m.family = 4;
    x.m.local = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 53};
    x.m.remote = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, peer_last};
    x.m.local_port = 53;
    x.m.remote_port = peer_port;
    x.m.len = static_cast<std::uint32_t>(data.size());
    x.data = std::move(data);
    return x;
}

TEST(DnsTracker, ServerSocketPairsByPeerAndId) {
    ConnectionTracker t;
    std::vector<Msg> ms;
    // two clients use the same id at once; answered in the other order
    ms.push_back(udp(NP_L7_RECV, 2, 4000, Dns::query(9, "a.test", 1).b, 1000));
    ms.push_back(udp(NP_L7_RECV, 3, 5000, Dns::query(9, "b.test", 28).b, 2000));
    ms.push_back(udp(NP_L7_SEND, 3, 5000, Dns::response(9, "b.test", 28, 3, 0).b, 5000));
    ms.push_back(udp(NP_L7_SEND, 2, 4000, Dns::response(9, "a.test", 1, 0, 0).b, 9000));
    ms.push_back(udp(NP_L7_SEND, 2, 4000, Dns::response(10, "a.test", 1, 0, 0).b, 9500));  // never asked
    for (auto& x : ms) {
        x.m.head = x.data;
        t.feed(x.m);
    }
    auto rs = t.take();
    ASSERT_EQ(rs.size(), 2u);
    EXPECT_EQ(rs[0].path, "b.test");
    EXPECT_EQ(rs[0].method, "AAAA");
    EXPECT_EQ(rs[0].status, 3);
    EXPECT_EQ(rs[0].side, Side::Server);
    EXPECT_EQ(rs[0].client_port, 5000);
    EXPECT_EQ(rs[0].duration_seconds, 3e-6);
    EXPECT_EQ(rs[1].path, "a.test");
    EXPECT_EQ(rs[1].duration_seconds, 8e-6);
    EXPECT_EQ(t.counters().unmatched_responses, 1u);
    EXPECT_EQ(t.connections(), 1u);  // one server socket for both peers
    // a query never answered is counted once its timeout passes
    auto late = udp(NP_L7_RECV, 4, 6000, Dns::query(1, "c.test", 1).b, 10'000);
    late.m.head = late.data;
    t.feed(late.m);
    t.expire(10'000 + 31'000'000'000ull);
    EXPECT_EQ(t.counters().unanswered, 1u);
}

TEST(DnsTracker, UnansweredQueriesAreReportedPerServer) {
    // A client socket (dig): three queries to 10.0.0.53:53, one answered; one id sent
    // again (a retry: the first attempt got no answer); then the socket closes with one
    // query pending (dig gave up).
    ConnectionTracker t;
    auto client = [](std::uint8_t dir, std::string data, std::uint64_t ts) {
        Msg x = udp(dir, 53, 53, std::move(data), ts);
        x.m.local_port = 40000;
        return x;
    };
    std::vector<Msg> ms;
    ms.push_back(client(NP_L7_SEND, Dns::query(1, "ok.test", 1).b, 1'000));
    ms.push_back(client(NP_L7_RECV, Dns::response(1, "ok.test", 1, 0, 0).b, 2'000));
    ms.push_back(client(NP_L7_SEND, Dns::query(2, "retry.test", 1).b, 3'000));
    ms.push_back(client(NP_L7_SEND, Dns::query(2, "retry.test", 1).b, 1'000'003'000));
    ms.push_back(client(NP_L7_SEND, Dns::query(3, "gone.test", 28).b, 1'000'004'000));
    for (auto& x : ms) {
        x.m.head = x.data;
        t.feed(x.m);
    }
    EXPECT_EQ(t.take().size(), 1u);
    auto un = t.takeDnsUnanswered();
    ASSERT_EQ(un.size(), 1u);  // the retry's first attempt
    EXPECT_EQ(un[0].path, "retry.test");
    EXPECT_EQ(un[0].status, -1);
    EXPECT_EQ(un[0].side, Side::Client);
    EXPECT_EQ(un[0].server_port, 53);
    EXPECT_EQ(un[0].client_port, 40000);
    EXPECT_EQ(un[0].server[15], 53);
    EXPECT_DOUBLE_EQ(un[0].duration_seconds, 1.0);
    Msg close = client(NP_L7_CLOSED, "", 2'000'004'000);
    t.feed(close.m);
    un = t.takeDnsUnanswered();
    ASSERT_EQ(un.size(), 2u);  // the retried query and gone.test, pending at the close
    std::sort(un.begin(), un.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
    EXPECT_EQ(un[0].path, "gone.test");
    EXPECT_EQ(un[0].method, "AAAA");
    EXPECT_DOUBLE_EQ(un[0].duration_seconds, 1.0);  // query -> close
    EXPECT_EQ(un[1].path, "retry.test");
    EXPECT_EQ(t.counters().unanswered, 3u);
    EXPECT_TRUE(t.takeDnsUnanswered().empty());
    // the server's side: a query received and never answered, past dns_timeout
    Msg q = udp(NP_L7_RECV, 9, 7000, Dns::query(5, "slow.test", 1).b, 5'000);
    q.m.sock = 8;
    q.m.head = q.data;
    t.feed(q.m);
    t.expire(5'000 + 31'000'000'000ull);
    un = t.takeDnsUnanswered();
    ASSERT_EQ(un.size(), 1u);
    EXPECT_EQ(un[0].side, Side::Server);
    EXPECT_EQ(un[0].server_port, 53);
    EXPECT_EQ(un[0].client_port, 7000);
    EXPECT_EQ(un[0].client[15], 9);
}

TEST(DnsTracker, TcpLengthPrefixedMessagesAcrossAndWithinReads) {
    ConnectionTracker t;
    auto frame = [](const std::string& m) {
        std::string f;
        f += static_cast<char>(m.size() >> 8);
        f += static_cast<char>(m.size() & 0xff);
        return f + m;
    };
    Msg q = udp(NP_L7_SEND, 2, 53, frame(Dns::query(5, "x.test", 1).b) + frame(Dns::query(6, "y.test", 1).b), 100);
    Msg r = udp(NP_L7_RECV, 2, 53, frame(Dns::response(6, "y.test", 1, 0, 0).b), 300);
    std::string r2 = frame(Dns::response(5, "x.test", 1, 2, 0).b);
    Msg r2a = udp(NP_L7_RECV, 2, 53, r2.substr(0, 1), 400);  // the length a byte at a time (dnsmasq)
    Msg r2b = udp(NP_L7_RECV, 2, 53, r2.substr(1, 1), 450);
    Msg r2c = udp(NP_L7_RECV, 2, 53, r2.substr(2), 500);
    for (Msg* x : {&q, &r, &r2a, &r2b, &r2c}) {
        x->m.ip_proto = 6;
        x->m.local_port = 40000;
        x->m.head = x->data;
        t.feed(x->m);
    }
    auto rs = t.take();
    ASSERT_EQ(rs.size(), 2u);  // y, then x whose length arrived alone and its message in the next read
    EXPECT_EQ(rs[0].path, "y.test");
    EXPECT_EQ(rs[0].side, Side::Client);
    EXPECT_EQ(rs[1].path, "x.test");
    EXPECT_EQ(rs[1].status, 2);
    EXPECT_EQ(t.counters().not_parsed, 0u);
}

}  // namespace
