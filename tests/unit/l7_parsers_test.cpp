// The Redis, PostgreSQL and MySQL parsers (l7::MessageParser) on chunk sequences built here
// from the protocols' message formats: one connection end, both directions' syscalls in
// order, some cut by the capture (a head, the count moved, maybe a tail). Each test checks
// the exchanges reported and the counters: requests without a response at close
// (unanswered), responses without a request (unmatched), framing lost (desyncs).
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/l7/parser.hpp>

#include "support/l7_parser_driver.hpp"

namespace {

using namespace netprobe::l7;

using netprobe::testing::feed;
using netprobe::testing::kRecv;
using netprobe::testing::kSend;
using netprobe::testing::Sink;



// A syscall that moved all of `whole` of which the capture copied the first `head` bytes
// and, with a tail, the last NP_L7_TAIL_MAX.
void feedCut(MessageParser& p, bool sending, std::string_view whole, std::size_t head, std::uint64_t ts,
             bool tail = true) {
    p.feed(sending, Chunk{whole.substr(0, head), whole.size(),
                          tail ? whole.substr(whole.size() - NP_L7_TAIL_MAX) : std::string_view{}, ts});
}

// ---- Redis (RESP) ----

std::string cmd(std::initializer_list<std::string_view> args) {
    std::string s = "*" + std::to_string(args.size()) + "\r\n";
    for (auto a : args) s += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
    return s;
}

// A client's end (ephemeral local port) and a server's.
std::unique_ptr<MessageParser> redisClient(Sink& s, std::size_t max_pending = 128) {
    return makeRedisParser(s, max_pending, 51000, 6379);
}
std::unique_ptr<MessageParser> redisServer(Sink& s) { return makeRedisParser(s, 128, 6379, 51000); }

TEST(RedisParser, PipelinedCommandsThenTheirReplies) {
    Sink s;
    auto p = redisClient(s);
    const std::string get = cmd({"GET", "a"}), set = cmd({"set", "b", "1"}), ping = cmd({"PING"});
    feed(*p, kSend, get + set + ping, 100);
    EXPECT_TRUE(s.got.empty());
    feed(*p, kRecv, "$-1\r\n+OK\r\n+PONG\r\n", 250);
    ASSERT_EQ(s.got.size(), 3u);
    const char* names[] = {"GET", "SET", "PING"};
    const std::size_t req_bytes[] = {get.size(), set.size(), ping.size()};
    const std::uint64_t resp_bytes[] = {5, 5, 7};
    for (std::size_t i = 0; i < 3; ++i) {
        SCOPED_TRACE(i);
        EXPECT_TRUE(s.got[i].client);
        EXPECT_EQ(s.got[i].method, names[i]);
        EXPECT_EQ(s.got[i].path, names[i]);
        EXPECT_FALSE(s.got[i].error);
        EXPECT_EQ(s.got[i].request_ns, 100u);
        EXPECT_EQ(s.got[i].response_ns, 250u);
        EXPECT_EQ(s.got[i].request_bytes, req_bytes[i]);
        EXPECT_EQ(s.got[i].response_bytes, resp_bytes[i]);
    }
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
    EXPECT_EQ(p->counters().desyncs, 0u);
}

TEST(RedisParser, ServerEndAndInlineCommands) {
    Sink s;
    auto p = redisServer(s);
    feed(*p, kRecv, "PING\r\n", 10);
    feed(*p, kSend, "+PONG\r\n", 20);
    feed(*p, kRecv, cmd({"HGETALL", "h"}), 30);
    feed(*p, kSend, "*2\r\n$1\r\nf\r\n$1\r\nv\r\n", 40);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_FALSE(s.got[0].client);
    EXPECT_EQ(s.got[0].method, "PING");
    EXPECT_EQ(s.got[1].method, "HGETALL");
    EXPECT_EQ(s.got[1].response_bytes, 18u);
    EXPECT_EQ(s.got[1].request_ns, 30u);
    EXPECT_EQ(s.got[1].response_ns, 40u);
}

TEST(RedisParser, RepliesSplitAtEveryByte) {
    // An array with nested aggregates (a RESP3 map, a null) and then an error reply.
    const std::string array_reply = "*3\r\n$5\r\nhello\r\n%1\r\n+k\r\n*2\r\n:1\r\n_\r\n:42\r\n";
    const std::string error_reply = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    const std::string replies = array_reply + error_reply;
    const std::string commands = cmd({"EVAL", "return 1", "0"}) + cmd({"LPUSH", "k", "v"});
    for (std::size_t cut = 1; cut < replies.size(); ++cut) {
        SCOPED_TRACE(cut);
        Sink s;
        auto p = redisClient(s);
        // The commands split at the same place (when it falls inside them).
        const std::size_t ccut = std::min(cut, commands.size() - 1);
        feed(*p, kSend, std::string_view(commands).substr(0, ccut), 1);
        feed(*p, kSend, std::string_view(commands).substr(ccut), 2);
        feed(*p, kRecv, std::string_view(replies).substr(0, cut), 10);
        feed(*p, kRecv, std::string_view(replies).substr(cut), 20);
        ASSERT_EQ(s.got.size(), 2u);
        EXPECT_EQ(s.got[0].method, "EVAL");
        EXPECT_FALSE(s.got[0].error);
        EXPECT_EQ(s.got[0].response_bytes, array_reply.size());
        EXPECT_EQ(s.got[0].response_ns, 10u);
        EXPECT_EQ(s.got[1].method, "LPUSH");
        EXPECT_TRUE(s.got[1].error);
        EXPECT_EQ(s.got[1].error_code, "WRONGTYPE");
        EXPECT_EQ(s.got[1].response_bytes, error_reply.size());
        EXPECT_EQ(s.got[1].response_ns, cut <= array_reply.size() ? 20u : 10u);
        EXPECT_EQ(p->counters().desyncs, 0u);
        EXPECT_EQ(p->counters().unmatched_responses, 0u);
    }
}

TEST(RedisParser, ErrorRepliesAndResp3Values) {
    Sink s;
    auto p = redisClient(s);
    const std::vector<std::pair<std::string, std::string>> exchanges = {
        {cmd({"HELLO", "3"}), "%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nmodules\r\n*2\r\n%1\r\n+name\r\n$2\r\nft\r\n"
                              "~1\r\n+x\r\n"},
        {cmd({"FOO"}), "-ERR unknown command 'FOO'\r\n"},
        {cmd({"GET", "k"}), "!21\r\nSYNTAX invalid syntax\r\n"},  // RESP3 blob error
        {cmd({"GET", "k"}), "-oops lower case\r\n"},               // no upper-case prefix: ERR
        // An attribute before the reply is part of it, not a reply of its own.
        {cmd({"GET", "k"}), "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n$1\r\nv\r\n"},
        {cmd({"INCRBYFLOAT", "f", "1"}), ",3.14\r\n"},
        {cmd({"EXISTS", "k"}), "#t\r\n"},
        {cmd({"SMEMBERS", "s"}), "~2\r\n+a\r\n+b\r\n"},
        {cmd({"DEL", "k"}), "(3492890328409238509324850943850943825024385\r\n"},
        {cmd({"LCS", "a", "b"}), "=15\r\ntxt:Some string\r\n"},
        {cmd({"GET", "nil"}), "_\r\n"},
    };
    std::uint64_t ts = 0;
    for (const auto& [c, r] : exchanges) {
        feed(*p, kSend, c, ++ts);
        // A RESP3 push (pub/sub message, invalidation) is out of band: no reply, not unmatched.
        feed(*p, kRecv, ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", ++ts);
        feed(*p, kRecv, r, ++ts);
    }
    ASSERT_EQ(s.got.size(), exchanges.size());
    const char* methods[] = {"HELLO",  "OTHER",    "GET", "GET", "GET", "INCRBYFLOAT",
                             "EXISTS", "SMEMBERS", "DEL", "LCS", "GET"};
    const char* errors[] = {"", "ERR", "SYNTAX", "ERR", "", "", "", "", "", "", ""};
    for (std::size_t i = 0; i < exchanges.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(s.got[i].method, methods[i]);
        EXPECT_EQ(s.got[i].error_code, errors[i]);
        EXPECT_EQ(s.got[i].error, errors[i][0] != 0);
        if (i != 4) {  // (the attribute before the reply is not counted)
            EXPECT_EQ(s.got[i].response_bytes, exchanges[i].second.size());
        }
        EXPECT_EQ(s.got[i].response_ns, 3 * i + 3);
    }
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
    EXPECT_EQ(p->counters().desyncs, 0u);
}

TEST(RedisParser, PipelineLongerThanTheCaptureAnswersUnknownCommands) {
    Sink s;
    auto p = redisClient(s);
    std::string pipeline;
    for (int i = 0; i < 5; ++i) pipeline += cmd({"SET", "key:" + std::to_string(i), "value"});
    const std::size_t one = cmd({"SET", "key:0", "value"}).size();
    // The capture copied two commands and part of the third; the write moved all five.
    feedCut(*p, kSend, pipeline, 2 * one + 10, 100, false);
    feed(*p, kRecv, "+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n", 200);
    ASSERT_EQ(s.got.size(), 5u);
    for (std::size_t i = 0; i < 5; ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(s.got[i].method, i < 2 ? "SET" : "UNKNOWN");
        EXPECT_EQ(s.got[i].request_ns, 100u);
        EXPECT_EQ(s.got[i].response_ns, 200u);
        EXPECT_FALSE(s.got[i].error);
    }
    EXPECT_EQ(p->counters().desyncs, 1u);
    // The next write of commands starts with a command again.
    feed(*p, kSend, cmd({"PING"}), 300);
    feed(*p, kRecv, "+PONG\r\n", 310);
    ASSERT_EQ(s.got.size(), 6u);
    EXPECT_EQ(s.got[5].method, "PING");
    // A reply then has no command: unmatched, not UNKNOWN.
    feed(*p, kRecv, "+OK\r\n", 320);
    EXPECT_EQ(s.got.size(), 6u);
    EXPECT_EQ(p->counters().unmatched_responses, 1u);
    // Cuts anywhere, a huge count moved with nothing copied: no crash, nothing invented.
    feedCut(*p, kSend, pipeline, 3, 400);
    feed(*p, kSend, std::string_view(pipeline).substr(7, 20), 401);
    p->feed(kRecv, Chunk{{}, 1u << 30, {}, 402});
    feedCut(*p, kRecv, "+OK\r\n+OK\r\n+OK\r\n+OK\r\n", 2, 403, false);
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
}

TEST(RedisParser, UnansweredAndUnmatchedCounters) {
    {
        Sink s;
        auto p = redisClient(s);
        feed(*p, kRecv, "+OK\r\n", 1);  // capture began after the command
        EXPECT_EQ(p->counters().unmatched_responses, 1u);
        feed(*p, kSend, cmd({"GET", "a"}) + cmd({"GET", "b"}), 2);
        feed(*p, kRecv, "$1\r\nx\r\n", 3);
        ASSERT_EQ(s.got.size(), 1u);
        p->close();
        EXPECT_EQ(p->counters().unanswered, 1u);
        EXPECT_EQ(p->counters().unmatched_responses, 1u);
    }
    {
        // At most max_pending commands wait: the oldest beyond is unanswered.
        Sink s;
        auto p = redisClient(s, 2);
        feed(*p, kSend, cmd({"GET", "a"}) + cmd({"SET", "b", "1"}) + cmd({"DEL", "c"}), 1);
        EXPECT_EQ(p->counters().unanswered, 1u);
        feed(*p, kRecv, "+OK\r\n:1\r\n+OK\r\n", 2);
        ASSERT_EQ(s.got.size(), 2u);
        EXPECT_EQ(s.got[0].method, "SET");
        EXPECT_EQ(s.got[1].method, "DEL");
        EXPECT_EQ(p->counters().unmatched_responses, 1u);
        p->close();
        EXPECT_EQ(p->counters().unanswered, 1u);
    }
}

// ---- PostgreSQL (protocol 3.0) ----

std::string be16(std::uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
std::string be32(std::uint32_t v) {
    return be16(static_cast<std::uint16_t>(v >> 16)) + be16(static_cast<std::uint16_t>(v));
}
std::string z(std::string_view s) { return std::string(s) + '\0'; }

std::string pgMsg(char type, const std::string& body) {
    return type + be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}
std::string pgStartup() {
    const std::string body = be32(196608) + z("user") + z("app") + z("database") + z("shop") + '\0';
    return be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}
std::string pgSslRequest() { return be32(8) + be32(80877103); }
std::string pgQuery(std::string_view sql) { return pgMsg('Q', z(sql)); }
std::string pgParse(std::string_view name, std::string_view sql) { return pgMsg('P', z(name) + z(sql) + be16(0)); }
std::string pgBind(std::string_view stmt, std::string_view param) {
    return pgMsg('B', z("") + z(stmt) + be16(0) + be16(1) + be32(static_cast<std::uint32_t>(param.size())) +
                          std::string(param) + be16(0));
}
std::string pgDescribePortal() { return pgMsg('D', z("P")); }
std::string pgDescribeStatement(std::string_view name) { return pgMsg('D', "S" + z(name)); }
std::string pgExecute() { return pgMsg('E', z("") + be32(0)); }
std::string pgSync() { return pgMsg('S', ""); }

std::string pgReady(char status = 'I') { return pgMsg('Z', std::string(1, status)); }
std::string pgLoginOk() {
    return pgMsg('R', be32(0)) + pgMsg('S', z("server_version") + z("16.4")) +
           pgMsg('S', z("client_encoding") + z("UTF8")) + pgMsg('K', be32(4242) + be32(99)) + pgReady();
}
std::string pgRowDescription() {
    return pgMsg('T', be16(1) + z("name") + be32(0) + be16(0) + be32(25) + be16(0xffff) + be32(0xffffffff) + be16(0));
}
std::string pgDataRow(std::string_view v) {
    return pgMsg('D', be16(1) + be32(static_cast<std::uint32_t>(v.size())) + std::string(v));
}
std::string pgComplete(std::string_view tag) { return pgMsg('C', z(tag)); }
std::string pgError(std::string_view sqlstate, std::string_view text) {
    return pgMsg('E', "S" + z("ERROR") + "V" + z("ERROR") + "C" + z(sqlstate) + "M" + z(text) + '\0');
}
std::string pgSelectResult(int rows) {
    std::string r = pgRowDescription();
    for (int i = 0; i < rows; ++i) r += pgDataRow("row value " + std::to_string(i));
    return r + pgComplete("SELECT " + std::to_string(rows)) + pgReady();
}

// A frontend's end logged in (nothing reported for the login).
std::unique_ptr<MessageParser> pgLoggedIn(Sink& s) {
    auto p = makePostgresParser(s, 128);
    feed(*p, kSend, pgStartup(), 1);
    feed(*p, kRecv, pgLoginOk(), 2);
    return p;
}

TEST(PostgresParser, StartupAndAuthenticationAreNotRequests) {
    Sink s;
    auto p = makePostgresParser(s, 128);
    feed(*p, kSend, pgStartup(), 1);
    feed(*p, kRecv, pgMsg('R', be32(5) + "salt"), 2);  // AuthenticationMD5Password
    feed(*p, kSend, pgMsg('p', z("md5 0123456789abcdef")), 3);
    feed(*p, kRecv, pgLoginOk(), 4);
    EXPECT_TRUE(s.got.empty());
    const std::string q = pgQuery("SELECT name FROM users WHERE id = 42");
    const std::string r = pgSelectResult(1);
    feed(*p, kSend, q, 10);
    feed(*p, kRecv, r, 20);
    ASSERT_EQ(s.got.size(), 1u);
    const Exchange& e = s.got[0];
    EXPECT_TRUE(e.client);
    EXPECT_EQ(e.method, "SELECT");
    EXPECT_EQ(e.path, "SELECT name FROM users WHERE id = ?");
    EXPECT_FALSE(e.error);
    EXPECT_EQ(e.request_ns, 10u);
    EXPECT_EQ(e.response_ns, 20u);
    EXPECT_EQ(e.request_bytes, q.size());
    EXPECT_EQ(e.response_bytes, r.size());
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
    EXPECT_EQ(p->counters().desyncs, 0u);
}

TEST(PostgresParser, SimpleQueryErrorReportsSqlState) {
    Sink s;
    auto p = pgLoggedIn(s);
    const std::string r = pgError("42P01", "relation \"nosuch\" does not exist") + pgReady();
    feed(*p, kSend, pgQuery("select * from nosuch where a = 'hunter2'"), 10);
    feed(*p, kRecv, r, 20);
    feed(*p, kSend, pgQuery("BEGIN; SELECT 1; COMMIT"), 30);  // one ReadyForQuery for the whole string
    feed(*p, kRecv, pgComplete("BEGIN") + pgSelectResult(1), 40);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[0].method, "SELECT");
    EXPECT_EQ(s.got[0].path, "select * from nosuch where a = ?");
    EXPECT_TRUE(s.got[0].error);
    EXPECT_EQ(s.got[0].error_code, "42P01");
    EXPECT_EQ(s.got[0].response_bytes, r.size());
    // The error does not stick to the next request.
    EXPECT_EQ(s.got[1].method, "BEGIN");
    EXPECT_FALSE(s.got[1].error);
    EXPECT_EQ(s.got[1].error_code, "");
}

TEST(PostgresParser, ExtendedQueryWithNamedStatementReused) {
    Sink s;
    auto p = pgLoggedIn(s);
    // Prepare only (Parse, Describe, Sync: no Execute) - housekeeping, not a request.
    feed(*p, kSend, pgParse("s1", "SELECT name FROM users WHERE id = $1") + pgDescribeStatement("s1") + pgSync(), 10);
    feed(*p, kRecv, pgMsg('1', "") + pgMsg('t', be16(1) + be32(23)) + pgRowDescription() + pgReady(), 11);
    EXPECT_TRUE(s.got.empty());
    // Bind + Execute of the named statement, twice pipelined, then an unknown statement.
    const std::string b1 = pgBind("s1", "42") + pgDescribePortal() + pgExecute() + pgSync();
    const std::string b2 = pgBind("s1", "43") + pgExecute() + pgSync();
    const std::string r1 = pgMsg('2', "") + pgSelectResult(1);
    const std::string r2 = pgMsg('2', "") + pgDataRow("bob") + pgComplete("SELECT 1") + pgReady();
    feed(*p, kSend, b1 + b2, 20);
    feed(*p, kRecv, r1 + r2, 30);
    // Parse + Bind + Execute in one batch (unnamed statement), with an error.
    const std::string b3 =
        pgParse("", "UPDATE users SET n = n + $1 WHERE id = 7") + pgBind("", "1") + pgExecute() + pgSync();
    feed(*p, kSend, b3, 40);
    feed(*p, kRecv, pgMsg('1', "") + pgMsg('2', "") + pgError("40P01", "deadlock detected") + pgReady('E'), 50);
    feed(*p, kSend, pgBind("s9", "1") + pgExecute() + pgSync(), 60);
    feed(*p, kRecv, pgMsg('2', "") + pgComplete("DELETE 0") + pgReady(), 70);
    // Execute alone: more rows of a portal bound in an earlier batch (a cursor).
    feed(*p, kSend, pgExecute() + pgSync(), 80);
    feed(*p, kRecv, pgDataRow("carol") + pgMsg('s', "") + pgReady('T'), 90);
    ASSERT_EQ(s.got.size(), 5u);
    for (int i = 0; i < 2; ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(s.got[i].method, "SELECT");
        EXPECT_EQ(s.got[i].path, "SELECT name FROM users WHERE id = $1");
        EXPECT_EQ(s.got[i].request_ns, 20u);
        EXPECT_EQ(s.got[i].response_ns, 30u);
        EXPECT_FALSE(s.got[i].error);
    }
    EXPECT_EQ(s.got[0].request_bytes, b1.size());
    EXPECT_EQ(s.got[1].request_bytes, b2.size());
    EXPECT_EQ(s.got[0].response_bytes, r1.size());
    EXPECT_EQ(s.got[1].response_bytes, r2.size());
    EXPECT_EQ(s.got[2].method, "UPDATE");
    EXPECT_EQ(s.got[2].path, "UPDATE users SET n = n + $1 WHERE id = ?");
    EXPECT_EQ(s.got[2].request_bytes, b3.size());
    EXPECT_EQ(s.got[2].error_code, "40P01");
    EXPECT_EQ(s.got[3].method, "OTHER");
    EXPECT_EQ(s.got[3].path, "(prepared before capture began)");
    EXPECT_EQ(s.got[4].method, "OTHER");
    EXPECT_EQ(s.got[4].request_ns, 80u);
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
}

TEST(PostgresParser, SslRequestRefusedThenStartup) {
    Sink s;
    auto p = makePostgresParser(s, 128);
    feed(*p, kSend, pgSslRequest(), 1);
    feed(*p, kRecv, "N", 2);
    feed(*p, kSend, pgStartup(), 3);
    feed(*p, kRecv, pgLoginOk(), 4);
    feed(*p, kSend, pgQuery("SELECT 1"), 5);
    feed(*p, kRecv, pgSelectResult(1), 6);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].path, "SELECT ?");
    EXPECT_EQ(p->counters().desyncs, 0u);
}

TEST(PostgresParser, SslAcceptedThenPlaintextFromTheTlsLibrary) {
    Sink s;
    auto p = makePostgresParser(s, 128);
    feed(*p, kSend, pgSslRequest(), 1);
    feed(*p, kRecv, "S", 2);
    // TLS records on the socket: not PostgreSQL messages, not parsed.
    feed(*p, kSend, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 3);
    feed(*p, kRecv, std::string("\x16\x03\x03\x00\x7a\x02\x00\x00\x76", 9), 4);
    // The plaintext (TLS library probes) starts with the startup message.
    feed(*p, kSend, pgStartup(), 5);
    feed(*p, kRecv, pgLoginOk(), 6);
    feed(*p, kSend, pgQuery("DELETE FROM t WHERE id = 5"), 7);
    feed(*p, kRecv, pgComplete("DELETE 1") + pgReady(), 8);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].method, "DELETE");
    EXPECT_EQ(p->counters().desyncs, 0u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
}

TEST(PostgresParser, SslAnswerWhileABackendHeaderIsIncomplete) {
    // Not a valid exchange: the backend's first bytes of a header, then the frontend's
    // SSLRequest makes the header one byte. The framing is lost; it once looped forever.
    Sink s;
    auto p = makePostgresParser(s, 128);
    feed(*p, kSend, pgStartup(), 1);
    feed(*p, kRecv, std::string("Z\0\0", 3), 2);
    feed(*p, kSend, pgSslRequest(), 3);
    feed(*p, kRecv, "N", 4);
    feed(*p, kRecv, pgLoginOk(), 5);
    EXPECT_GE(p->counters().desyncs, 1u);
    EXPECT_TRUE(s.got.empty());
}

TEST(PostgresParser, TruncatedBackendChunkEndingInReadyForQuery) {
    Sink s;
    auto p = pgLoggedIn(s);
    const std::string big = pgSelectResult(2000);
    ASSERT_GT(big.size(), 40000u);
    feed(*p, kSend, pgQuery("SELECT * FROM big"), 10);
    // One write of the whole result, of which the first 512 bytes and the last 16 were copied.
    feedCut(*p, kRecv, big, NP_L7_HEAD_MAX, 20);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].method, "SELECT");
    EXPECT_EQ(s.got[0].response_ns, 20u);
    EXPECT_EQ(s.got[0].response_bytes, big.size());  // the bytes not copied are the response's too
    EXPECT_EQ(p->counters().desyncs, 1u);
    // Framing continues with the next write.
    feed(*p, kSend, pgQuery("SELECT 2"), 30);
    feed(*p, kRecv, pgSelectResult(1), 40);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[1].path, "SELECT ?");
    EXPECT_EQ(s.got[1].request_ns, 30u);

    // A result in two writes: the first cut without a tail, the second starting inside a
    // message and ending in ReadyForQuery.
    feed(*p, kSend, pgQuery("SELECT * FROM big"), 50);
    const std::size_t split = big.size() / 2 + 3;
    feedCut(*p, kRecv, std::string_view(big).substr(0, split), NP_L7_HEAD_MAX, 60, false);
    feedCut(*p, kRecv, std::string_view(big).substr(split), NP_L7_HEAD_MAX, 61);
    ASSERT_EQ(s.got.size(), 3u);
    EXPECT_EQ(s.got[2].response_ns, 60u);
    EXPECT_EQ(s.got[2].response_bytes, big.size());
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
}

TEST(PostgresParser, UnansweredAndUnmatchedCounters) {
    Sink s;
    auto p = makePostgresParser(s, 128);
    feed(*p, kRecv, pgReady(), 1);  // capture began mid-connection: a ReadyForQuery first
    EXPECT_EQ(p->counters().unmatched_responses, 1u);
    feed(*p, kSend, pgQuery("SELECT pg_sleep(10)"), 2);
    feed(*p, kSend, pgMsg('X', ""), 3);  // Terminate: no response
    p->close();
    EXPECT_TRUE(s.got.empty());
    EXPECT_EQ(p->counters().unanswered, 1u);
    // A login cut short is not a request left unanswered.
    Sink s2;
    auto p2 = makePostgresParser(s2, 128);
    feed(*p2, kSend, pgStartup(), 1);
    p2->close();
    EXPECT_EQ(p2->counters().unanswered, 0u);
}

// ---- MySQL ----

constexpr std::uint32_t kProtocol41 = 0x200, kSecureConnection = 0x8000, kPluginAuth = 0x80000,
                        kDeprecateEof = 0x01000000;

std::string le(std::uint64_t v, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
}
std::string lenenc(std::string_view s) { return static_cast<char>(s.size()) + std::string(s); }
std::string myPacket(int seq, const std::string& payload) {
    return le(payload.size(), 3) + static_cast<char>(seq) + payload;
}
std::string myGreeting(std::uint32_t caps) {
    return myPacket(0, "\x0a" + z("8.0.36") + le(42, 4) + "abcdefgh" + '\0' + le(caps & 0xffff, 2) + "\xff" +
                           le(2, 2) + le(caps >> 16, 2) + "\x15" + std::string(10, '\0') + z("ijklmnopqrst") +
                           z("caching_sha2_password"));
}
std::string myHandshakeResponse(std::uint32_t caps) {
    return myPacket(1, le(caps, 4) + le(1 << 24, 4) + "\xff" + std::string(23, '\0') + z("app") + "\x14" +
                           std::string(20, 'x') + z("shop") + z("caching_sha2_password"));
}
std::string myOk(int seq) { return myPacket(seq, std::string("\x00\x00\x00\x02\x00\x00\x00", 7)); }
std::string myEof(int seq) { return myPacket(seq, std::string("\xfe\x00\x00\x02\x00", 5)); }
std::string myQuery(std::string_view sql) { return myPacket(0, "\x03" + std::string(sql)); }
std::string myColumn(int seq, std::string_view name) {
    return myPacket(seq, lenenc("def") + lenenc("shop") + lenenc("users") + lenenc("users") + lenenc(name) +
                             lenenc(name) + "\x0c" + le(33, 2) + le(255, 4) + "\xfd" + le(0, 2) + '\0' + le(0, 2));
}
std::string myRow(int seq, std::string_view a, std::string_view b) { return myPacket(seq, lenenc(a) + lenenc(b)); }
std::string myErr(int seq, int code, std::string_view state, std::string_view text) {
    return myPacket(seq, "\xff" + le(static_cast<std::uint64_t>(code), 2) + "#" + std::string(state) +
                             std::string(text));
}

// A client's end after the handshake (greeting, handshake response, OK).
std::unique_ptr<MessageParser> myLoggedIn(Sink& s, std::uint32_t server_caps, std::uint32_t client_caps) {
    auto p = makeMySqlParser(s, 128);
    feed(*p, kRecv, myGreeting(server_caps), 1);
    feed(*p, kSend, myHandshakeResponse(client_caps), 2);
    feed(*p, kRecv, myOk(2), 3);
    return p;
}

constexpr std::uint32_t kCaps = kProtocol41 | kSecureConnection | kPluginAuth;

TEST(MySqlParser, HandshakeThenQueryWithResultSet) {
    Sink s;
    auto p = myLoggedIn(s, kCaps | kDeprecateEof, kCaps);  // the client did not agree: EOF packets
    EXPECT_TRUE(s.got.empty());
    const std::string q = myQuery("SELECT id, name FROM users WHERE id > 10");
    const std::string r = myPacket(1, "\x02") + myColumn(2, "id") + myColumn(3, "name") + myEof(4) +
                          myRow(5, "11", "alice") + myRow(6, "12", "bob") + myEof(7);
    feed(*p, kSend, q, 10);
    feed(*p, kRecv, r, 20);
    ASSERT_EQ(s.got.size(), 1u);
    const Exchange& e = s.got[0];
    EXPECT_TRUE(e.client);
    EXPECT_EQ(e.method, "SELECT");
    EXPECT_EQ(e.path, "SELECT id, name FROM users WHERE id > ?");
    EXPECT_FALSE(e.error);
    EXPECT_EQ(e.request_ns, 10u);
    EXPECT_EQ(e.response_ns, 20u);
    EXPECT_EQ(e.request_bytes, q.size());
    EXPECT_EQ(e.response_bytes, r.size());

    // The same result set a packet per read.
    feed(*p, kSend, q, 30);
    for (std::size_t at = 0; at < r.size();) {
        const std::size_t n = 4 + (static_cast<unsigned char>(r[at]) | static_cast<unsigned char>(r[at + 1]) << 8);
        feed(*p, kRecv, std::string_view(r).substr(at, n), 40 + at);
        at += n;
    }
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[1].response_bytes, r.size());
    EXPECT_EQ(s.got[1].response_ns, 40u);
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
    EXPECT_EQ(p->counters().desyncs, 0u);
}

TEST(MySqlParser, ResultSetWithDeprecateEof) {
    Sink s;
    auto p = myLoggedIn(s, kCaps | kDeprecateEof, kCaps | kDeprecateEof);
    // No EOF after the column definitions; the rows end with an OK packet headed 0xfe.
    const std::string r = myPacket(1, "\x01") + myColumn(2, "name") + myPacket(3, lenenc("alice")) +
                          myPacket(4, std::string("\xfe\x00\x00\x02\x00\x00\x00", 7));
    feed(*p, kSend, myQuery("SELECT name FROM users"), 10);
    feed(*p, kRecv, r, 20);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].response_bytes, r.size());
    feed(*p, kSend, myQuery("SELECT 1"), 30);
    feed(*p, kRecv, myPacket(1, "\x01") + myColumn(2, "1") + myPacket(3, lenenc("1")) +
                        myPacket(4, std::string("\xfe\x00\x00\x02\x00\x00\x00", 7)), 40);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[1].request_ns, 30u);
}

TEST(MySqlParser, ErrorPacketReportsErrorNumber) {
    Sink s;
    auto p = myLoggedIn(s, kCaps, kCaps);
    const std::string err = myErr(1, 1146, "42S02", "Table 'shop.nosuch' doesn't exist");
    feed(*p, kSend, myQuery("SELECT * FROM nosuch WHERE a = \"hunter2\""), 10);
    feed(*p, kRecv, err, 20);
    feed(*p, kSend, myPacket(0, "\x0e"), 30);  // COM_PING
    feed(*p, kRecv, myOk(1), 40);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[0].path, "SELECT * FROM nosuch WHERE a = ?");
    EXPECT_TRUE(s.got[0].error);
    EXPECT_EQ(s.got[0].error_code, "1146");
    EXPECT_EQ(s.got[0].response_bytes, err.size());
    EXPECT_EQ(s.got[1].method, "PING");
    EXPECT_FALSE(s.got[1].error);
}

// MySQL over TLS: the client's SSLRequest (its capabilities with CLIENT_SSL, 32 bytes),
// then TLS records on the socket (not parsed), and the plaintext from the TLS library's
// probes (Chunk::tls) going on with the handshake response (sequence 2) and the commands.
TEST(MySqlParser, AfterTheSslRequestOnlyThePlaintextFromTheTlsProbesIsParsed) {
    constexpr std::uint32_t kSsl = 0x800;
    for (const bool client_end : {true, false}) {
        SCOPED_TRACE(client_end);
        const bool out = client_end ? kSend : kRecv, in = !out;  // the client's direction, the server's
        Sink s;
        auto p = makeMySqlParser(s, 128);
        auto tls = [&](bool sending, const std::string& bytes, std::uint64_t ts) {
            p->feed(sending, Chunk{bytes, bytes.size(), {}, ts, true});
        };
        feed(*p, in, myGreeting(kCaps | kSsl | kDeprecateEof), 1);
        feed(*p, out, myPacket(1, le(kCaps | kSsl | kDeprecateEof, 4) + le(1 << 24, 4) + "\xff" + std::string(23, '\0')),
             2);
        // TLS records: a ClientHello, application data that happens to look like a query
        feed(*p, out, std::string("\x16\x03\x01\x00\x40", 5) + std::string(64, 'h'), 3);
        feed(*p, out, myQuery("SELECT not_a_query"), 4);
        feed(*p, in, std::string("\x17\x03\x03\x00\x20", 5) + std::string(32, 'x'), 5);
        // the plaintext: handshake response (sequence 2), OK (3), then commands
        std::string hs = myHandshakeResponse(kCaps | kSsl | kDeprecateEof);
        hs[3] = 2;
        tls(out, hs, 6);
        tls(in, myOk(3), 7);
        tls(out, myQuery("SELECT v FROM t WHERE id = 7"), 10);
        tls(in, myPacket(1, "\x01") + myColumn(2, "v") + myPacket(3, lenenc("a")) +
                    myPacket(4, std::string("\xfe\x00\x00\x02\x00\x00\x00", 7)),
            20);
        tls(out, myQuery("SELECT * FROM missing"), 30);
        tls(in, myErr(1, 1146, "42S02", "Table 'missing' doesn't exist"), 40);
        ASSERT_EQ(s.got.size(), 2u);
        EXPECT_EQ(s.got[0].path, "SELECT v FROM t WHERE id = ?");
        EXPECT_EQ(s.got[0].client, client_end);
        EXPECT_EQ(s.got[0].response_ns, 20u);
        EXPECT_FALSE(s.got[0].error);
        EXPECT_EQ(s.got[1].error_code, "1146");
        EXPECT_EQ(p->counters().unmatched_responses, 0u);
        EXPECT_EQ(p->counters().desyncs, 0u);
    }
}

TEST(MySqlParser, PreparedStatementExecutesReportTheirStatement) {
    Sink s;
    auto p = myLoggedIn(s, kCaps, kCaps);
    feed(*p, kSend, myPacket(0, "\x16SELECT name FROM users WHERE id = ?"), 10);
    // Prepare OK: statement id 7, 1 column, 1 parameter; then their definitions.
    feed(*p, kRecv, myPacket(1, std::string(1, '\0') + le(7, 4) + le(1, 2) + le(1, 2) + '\0' + le(0, 2)) +
                        myColumn(2, "?") + myEof(3) + myColumn(4, "name") + myEof(5), 20);
    const std::string exec = myPacket(0, "\x17" + le(7, 4) + '\0' + le(1, 4) + '\0' + "\x01" + le(8, 2) + le(42, 8));
    const std::string rows = myPacket(1, "\x01") + myColumn(2, "name") + myEof(3) +
                             myPacket(4, std::string(2, '\0') + lenenc("alice")) + myEof(5);
    feed(*p, kSend, exec, 30);
    feed(*p, kRecv, rows, 40);
    // An id the capture did not see prepared; then the statement closed (no response).
    feed(*p, kSend, myPacket(0, "\x17" + le(99, 4) + '\0' + le(1, 4)), 50);
    feed(*p, kRecv, myOk(1), 60);
    feed(*p, kSend, myPacket(0, "\x19" + le(7, 4)), 70);
    feed(*p, kSend, exec, 80);
    feed(*p, kRecv, myErr(1, 1243, "HY000", "Unknown prepared statement handler"), 90);
    ASSERT_EQ(s.got.size(), 4u);
    EXPECT_EQ(s.got[0].method, "PREPARE");
    EXPECT_EQ(s.got[0].path, "SELECT name FROM users WHERE id = ?");
    EXPECT_EQ(s.got[1].method, "SELECT");
    EXPECT_EQ(s.got[1].path, "SELECT name FROM users WHERE id = ?");
    EXPECT_EQ(s.got[1].request_bytes, exec.size());
    EXPECT_EQ(s.got[1].response_bytes, rows.size());
    EXPECT_EQ(s.got[2].method, "OTHER");
    EXPECT_EQ(s.got[2].path, "(prepared before capture began)");
    EXPECT_EQ(s.got[3].method, "OTHER");
    EXPECT_EQ(s.got[3].error_code, "1243");
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
}

TEST(MySqlParser, ServerReadsHeaderThenPayload) {
    Sink s;
    auto p = makeMySqlParser(s, 128);  // the server's end: it writes the greeting
    feed(*p, kSend, myGreeting(kCaps), 1);
    const std::string hs = myHandshakeResponse(kCaps);
    feed(*p, kRecv, std::string_view(hs).substr(0, 4), 2);
    feed(*p, kRecv, std::string_view(hs).substr(4), 3);
    feed(*p, kSend, myOk(2), 4);
    const std::string q = myQuery("UPDATE users SET name = 'x' WHERE id = 3");
    feed(*p, kRecv, std::string_view(q).substr(0, 4), 10);
    feed(*p, kRecv, std::string_view(q).substr(4), 11);
    feed(*p, kSend, myPacket(1, std::string("\x00\x01\x00\x02\x00\x00\x00", 7)), 20);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_FALSE(s.got[0].client);
    EXPECT_EQ(s.got[0].method, "UPDATE");
    EXPECT_EQ(s.got[0].path, "UPDATE users SET name = ? WHERE id = ?");
    EXPECT_EQ(s.got[0].request_ns, 10u);
    EXPECT_EQ(s.got[0].request_bytes, q.size());
    EXPECT_EQ(s.got[0].response_ns, 20u);
    EXPECT_EQ(s.got[0].response_bytes, 11u);
    EXPECT_EQ(p->counters().desyncs, 0u);
}

TEST(MySqlParser, TruncatedResultSetEndsAtItsLastPacket) {
    Sink s;
    auto p = myLoggedIn(s, kCaps, kCaps);
    std::string r = myPacket(1, "\x02") + myColumn(2, "id") + myColumn(3, "name") + myEof(4);
    int seq = 5;
    for (int i = 0; i < 500; ++i, seq = (seq + 1) & 0xff) r += myRow(seq, std::to_string(i), "some name");
    r += myEof(seq);
    feed(*p, kSend, myQuery("SELECT id, name FROM users"), 10);
    const std::size_t split = r.size() / 2 + 1;
    feedCut(*p, kRecv, std::string_view(r).substr(0, split), NP_L7_HEAD_MAX, 20, false);
    EXPECT_TRUE(s.got.empty());
    feedCut(*p, kRecv, std::string_view(r).substr(split), NP_L7_HEAD_MAX, 21);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].response_ns, 20u);
    EXPECT_EQ(s.got[0].response_bytes, r.size());
    feed(*p, kSend, myPacket(0, "\x0e"), 30);
    feed(*p, kRecv, myOk(1), 31);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[1].method, "PING");
}

TEST(MySqlParser, UnansweredAndUnmatchedCounters) {
    Sink s;
    auto p = myLoggedIn(s, kCaps, kCaps);
    feed(*p, kRecv, myOk(1), 5);  // a response without a command
    EXPECT_EQ(p->counters().unmatched_responses, 1u);
    // A result set in progress at close is reported as far as it went.
    feed(*p, kSend, myQuery("SELECT 1"), 10);
    feed(*p, kRecv, myPacket(1, "\x01") + myColumn(2, "1"), 20);
    feed(*p, kSend, myQuery("SELECT SLEEP(100)"), 30);  // the next command ends the previous response
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].path, "SELECT ?");
    p->close();
    EXPECT_EQ(p->counters().unanswered, 1u);
    EXPECT_EQ(p->counters().unmatched_responses, 1u);
    EXPECT_EQ(s.got.size(), 1u);
}

}  // namespace
