// The HTTP request head parser, query strings, basic auth and the web configuration.
#include <gtest/gtest.h>

#include <string>

#include <netprobe/http/message.hpp>
#include <netprobe/http/web_config.hpp>

#include "http/auth.hpp"

using namespace netprobe::http;

namespace {

ParseResult parse(const std::string& s, Request& r, Limits l = {}) { return parseRequestHead(s, l, r); }

}  // namespace

TEST(HttpParse, CompleteRequestWithQueryAndHeaders) {
    Request r;
    const std::string raw =
        "GET /api/v1/flows?protocol=udp&ip=fd6e%3A7072%3A%3A1&x=a+b HTTP/1.1\r\nHost: h\r\nX-Thing:  v  \r\n\r\nNEXT";
    auto p = parse(raw, r);
    ASSERT_EQ(p.status, ParseResult::Status::Complete) << p.reason;
    EXPECT_EQ(p.consumed, raw.size() - 4);
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.path, "/api/v1/flows");
    ASSERT_EQ(r.query.size(), 3u);
    EXPECT_EQ(r.query[0], (std::pair<std::string, std::string>{"protocol", "udp"}));
    EXPECT_EQ(r.query[1].second, "fd6e:7072::1");
    EXPECT_EQ(r.query[2].second, "a b");
    EXPECT_EQ(r.header("x-thing").value_or(""), "v");
    EXPECT_TRUE(r.keep_alive);
    EXPECT_FALSE(r.hasBody());
}

TEST(HttpParse, IncompleteUntilTheEmptyLine) {
    const std::string raw = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    for (std::size_t n = 0; n < raw.size(); ++n) {
        Request r;
        EXPECT_EQ(parse(raw.substr(0, n), r).status, ParseResult::Status::Incomplete) << n;
    }
    Request r;
    EXPECT_EQ(parse(raw, r).status, ParseResult::Status::Complete);
}

TEST(HttpParse, BareLineFeedsAndLeadingEmptyLines) {
    Request r;
    auto p = parse("\r\n\nGET / HTTP/1.0\nConnection: keep-alive\n\n", r);
    ASSERT_EQ(p.status, ParseResult::Status::Complete) << p.reason;
    EXPECT_EQ(r.version_minor, 0);
    EXPECT_TRUE(r.keep_alive);
    Request r2;
    ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", r2).status, ParseResult::Status::Complete);
    EXPECT_FALSE(r2.keep_alive);
    Request r3;
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", r3).status, ParseResult::Status::Complete);
    EXPECT_FALSE(r3.keep_alive);
}

TEST(HttpParse, AbsoluteFormTarget) {
    Request r;
    ASSERT_EQ(parse("GET http://10.0.0.1:8081/metrics?a=1 HTTP/1.1\r\n\r\n", r).status, ParseResult::Status::Complete);
    EXPECT_EQ(r.path, "/metrics");
    ASSERT_EQ(r.query.size(), 1u);
}

TEST(HttpParse, LimitsGive414And431) {
    Limits l;
    l.max_request_line = 64;
    l.max_header_bytes = 128;
    l.max_headers = 3;
    Request r;
    // A request line over the limit: 414 as soon as the limit is passed, before its end.
    auto p = parse("GET /" + std::string(100, 'a'), r, l);
    EXPECT_EQ(p.status, ParseResult::Status::Error);
    EXPECT_EQ(p.error_status, 414);
    p = parse("GET /" + std::string(70, 'a') + " HTTP/1.1\r\n\r\n", r, l);
    EXPECT_EQ(p.error_status, 414);
    // Exactly at the limit is fine.
    const std::string at = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1";
    ASSERT_EQ(at.size(), 64u);
    EXPECT_EQ(parse(at + "\r\n\r\n", r, l).status, ParseResult::Status::Complete);
    // Header fields over the limit, complete or not.
    p = parse("GET / HTTP/1.1\r\nX: " + std::string(200, 'b'), r, l);
    EXPECT_EQ(p.error_status, 431);
    p = parse("GET / HTTP/1.1\r\nX: " + std::string(200, 'b') + "\r\n\r\n", r, l);
    EXPECT_EQ(p.error_status, 431);
    p = parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", r, l);
    EXPECT_EQ(p.error_status, 431);
}

TEST(HttpParse, MalformedHeads) {
    struct Case {
        const char* raw;
        int status;
    } cases[] = {
        {"GET\r\n\r\n", 400},
        {"GET /\r\n\r\n", 400},                       // HTTP/0.9
        {"GET  / HTTP/1.1\r\n\r\n", 400},             // two spaces
        {"GET / HTTP/1.1 x\r\n\r\n", 400},
        {"G(T / HTTP/1.1\r\n\r\n", 400},              // not a token
        {"GET nope HTTP/1.1\r\n\r\n", 400},           // not origin form
        {"GET /\x01 HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\n\r\n", 505},
        {"GET / HTTP/9.9\r\n\r\n", 505},
        {"GET / HTTPS/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nA: x\r\n folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nA: x\x7fy\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
        {"GET /%zz HTTP/1.1\r\n\r\n", 400},
        {"GET /a%00 HTTP/1.1\r\n\r\n", 400},
        {"GET /?a=%4 HTTP/1.1\r\n\r\n", 400},
    };
    for (const auto& c : cases) {
        Request r;
        auto p = parse(c.raw, r);
        EXPECT_EQ(p.status, ParseResult::Status::Error) << c.raw;
        EXPECT_EQ(p.error_status, c.status) << c.raw << ": " << p.reason;
        EXPECT_FALSE(p.reason.empty());
    }
}

TEST(HttpParse, BodiesAreDetected) {
    Request r;
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n", r).status, ParseResult::Status::Complete);
    EXPECT_TRUE(r.hasBody());
    EXPECT_EQ(r.content_length.value_or(0), 100000000u);
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nContent-Length: 0, 0\r\n\r\n", r).status, ParseResult::Status::Complete);
    EXPECT_FALSE(r.hasBody());
    ASSERT_EQ(parse("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", r).status, ParseResult::Status::Complete);
    EXPECT_TRUE(r.hasBody());
}

TEST(HttpQuery, Decoding) {
    auto q = parseQuery("a=1&&b&c=x%2By+z&=v");
    ASSERT_TRUE(q);
    ASSERT_EQ(q->size(), 4u);
    EXPECT_EQ((*q)[1], (std::pair<std::string, std::string>{"b", ""}));
    EXPECT_EQ((*q)[2].second, "x+y z");
    EXPECT_EQ((*q)[3].first, "");
    EXPECT_FALSE(parseQuery("a=%G1"));
    EXPECT_FALSE(parseQuery("a=%00"));
    EXPECT_EQ(percentDecode("a+b", false).value_or(""), "a+b");
}

TEST(HttpResponse, Serialization) {
    Response r = Response::error(404, "not \"found\"");
    const auto s = serialize(r, false, false, {{"X-Frame-Options", "deny"}});
    EXPECT_TRUE(s.starts_with("HTTP/1.1 404 Not Found\r\nDate: ")) << s;
    EXPECT_NE(s.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
    EXPECT_NE(s.find("\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n"), std::string::npos);
    EXPECT_NE(s.find("\r\nConnection: close\r\n"), std::string::npos);
    EXPECT_NE(s.find("\r\nX-Frame-Options: deny\r\n\r\n"), std::string::npos);
    EXPECT_TRUE(s.ends_with(R"({"error":"not \"found\""})"));
    const auto h = serialize(r, true, true, {});
    EXPECT_TRUE(h.ends_with("\r\n\r\n"));  // HEAD: the length of the body, no body
    EXPECT_NE(h.find("Content-Length: " + std::to_string(r.body.size())), std::string::npos);
}

// Taking the body: the same bytes, written in the body's own buffer when it has room.
TEST(HttpResponse, SerializationTakingTheBody) {
    const std::vector<std::pair<std::string, std::string>> extra{{"X-Frame-Options", "deny"}};
    for (const std::size_t room : {std::size_t{0}, std::size_t{4096}}) {
        Response r = Response::json(200, std::string(100000, 'x'));
        r.body.reserve(r.body.size() + room);
        r.headers.emplace_back("Cache-Control", "no-store");
        const Response copy = r;
        const char* buffer = r.body.data();
        const auto s = serialize(std::move(r), true, false, extra);
        auto expect = serialize(copy, true, false, extra);
        // the Date line may differ if a second passed between the two calls
        const auto date = [](std::string t) {
            const auto b = t.find("\r\nDate: "), e = t.find("\r\n", b + 2);
            return t.erase(b, e - b);
        };
        EXPECT_EQ(date(s), date(expect)) << room;
        if (room) {
            EXPECT_EQ(s.data(), buffer);  // in place: no second copy of the body
        }
    }
    Response h = Response::text(200, "body");
    const auto head = serialize(std::move(h), false, true, {});
    EXPECT_TRUE(head.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n")) << head;
}

// ---- basic auth ----

TEST(HttpAuth, Base64AndBasicCredentials) {
    EXPECT_EQ(base64Decode("YWxpY2U6czNjcmV0IHBhc3M=").value_or("?"), "alice:s3cret pass");
    EXPECT_EQ(base64Decode("YQ").value_or("?"), "a");
    EXPECT_FALSE(base64Decode("Y"));
    EXPECT_FALSE(base64Decode("YW*j"));
    auto c = parseBasicAuth("Basic YWxpY2U6czNjcmV0OnBhc3M=");  // alice:s3cret:pass (colons in the password)
    ASSERT_TRUE(c);
    EXPECT_EQ(c->user, "alice");
    EXPECT_EQ(c->password, "s3cret:pass");
    EXPECT_FALSE(parseBasicAuth("Bearer abc"));
    EXPECT_FALSE(parseBasicAuth("Basic bm9jb2xvbg=="));  // "nocolon"
    EXPECT_FALSE(parseBasicAuth("Basic"));
}

// Hashes made by Apache's htpasswd -nbB (an independent bcrypt implementation).
constexpr const char* kAliceCost5 = "$2y$05$9mPk.8cv63R0aaZ4vcO2t.bHDem9xFzeQJRDcb0..fP.8R.dZa.Ay";  // "s3cret pass"
constexpr const char* kBobCost10 = "$2y$10$z87X40VEb8/XVXNj7pYOBuOqH95Cr0fxBleqMU0U1djmUGcXCTmIW";   // "hunter2"

TEST(HttpAuth, BcryptOfHtpasswd) {
    EXPECT_TRUE(bcryptVerify("s3cret pass", kAliceCost5));
    EXPECT_FALSE(bcryptVerify("s3cret pasS", kAliceCost5));
    EXPECT_FALSE(bcryptVerify("", kAliceCost5));
    EXPECT_TRUE(bcryptVerify("hunter2", kBobCost10));
    EXPECT_FALSE(bcryptVerify("hunter2", "not a hash"));
    BasicAuth auth({{"alice", kAliceCost5}, {"bob", kBobCost10}});
    for (int i = 0; i < 3; ++i) {  // the second and third come from the cache, same answers
        EXPECT_TRUE(auth.check({"alice", "s3cret pass"}));
        EXPECT_FALSE(auth.check({"alice", "hunter2"}));
        EXPECT_FALSE(auth.check({"bob", "s3cret pass"}));
        EXPECT_TRUE(auth.check({"bob", "hunter2"}));
        EXPECT_FALSE(auth.check({"mallory", "hunter2"}));
        EXPECT_FALSE(auth.check({"", ""}));
    }
}

// ---- web configuration ----

TEST(WebConfig, FullExample) {
    auto c = parseWebConfig(R"(
tls_server_config:
  cert_file: server.crt
  key_file: /abs/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  curve_preferences: [X25519, CurveP256]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  alice: $2y$05$9mPk.8cv63R0aaZ4vcO2t.bHDem9xFzeQJRDcb0..fP.8R.dZa.Ay
rate_limit:
  interval: 100ms
  burst: 5
)",
                            "/etc/netprobe");
    ASSERT_TRUE(c) << c.error().what();
    ASSERT_TRUE(c->tls);
    EXPECT_EQ(c->tls->cert_file, "/etc/netprobe/server.crt");
    EXPECT_EQ(c->tls->key_file, "/abs/server.key");
    EXPECT_EQ(c->tls->client_ca_file, "/etc/netprobe/ca.crt");
    EXPECT_EQ(c->tls->client_auth, ClientAuth::RequireAndVerifyClientCert);
    EXPECT_EQ(c->tls->min_version, 0x0304);
    EXPECT_EQ(c->tls->cipher_suites, std::vector<std::string>{"ECDHE-RSA-AES128-GCM-SHA256"});
    EXPECT_EQ(c->tls->curves, (std::vector<std::string>{"X25519", "P-256"}));
    EXPECT_EQ(c->headers.size(), 2u);
    EXPECT_EQ(c->basic_auth_users.at("alice"), kAliceCost5);
    EXPECT_EQ(c->rate_interval, std::chrono::milliseconds(100));
    EXPECT_EQ(c->rate_burst, 5u);
    auto empty = parseWebConfig("");
    ASSERT_TRUE(empty);
    EXPECT_FALSE(empty->tls);
}

TEST(WebConfig, ErrorsNameTheLineTheKeyAndTheReason) {
    struct Case {
        const char* yaml;
        const char* want;  // substrings of the error
    } cases[] = {
        {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n",
         "line 4: tls_server_config.client_auth_type: unknown value \"Maybe\""},
        {"tls_server_config:\n  key_file: b\n", "tls_server_config: cert_file (or cert) is required"},
        {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
         "tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert"},
        {"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n", "line 4: tls_server_config.min_version"},
        {"tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_BOGUS]\n",
         "unknown cipher suite \"TLS_BOGUS\""},
        {"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
         "min_version: above max_version"},
        {"basic_auth_users:\n  alice: hunter2\n", "line 2: basic_auth_users.alice: not a bcrypt hash"},
        {"basic_auth_users: [a]\n", "basic_auth_users: expected a mapping"},
        {"http_server_config:\n  headers:\n    Server: x\n", "line 3: http_server_config.headers.Server: unknown key"},
        {"tls_config:\n  cert_file: a\n", "line 1: tls_config: unknown key"},
        {"rate_limit:\n  interval: soon\n", "rate_limit.interval"},
        {"rate_limit:\n  burst: -3\n", "rate_limit.burst: expected an integer"},
        {"tls_server_config: [\n", "line "},
    };
    for (const auto& c : cases) {
        auto r = parseWebConfig(c.yaml);
        ASSERT_FALSE(r) << c.yaml;
        EXPECT_NE(r.error().what().find(c.want), std::string::npos) << "got: " << r.error().what() << "\nwant: " << c.want;
        EXPECT_EQ(r.error().what().find('\n'), std::string::npos) << "one line: " << r.error().what();
    }
    auto missing = loadWebConfig("/nonexistent/web.yml");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().what().find("/nonexistent/web.yml"), std::string::npos);
}

TEST(WebConfig, BcryptHashShape) {
    EXPECT_TRUE(isBcryptHash(kAliceCost5));
    EXPECT_TRUE(isBcryptHash(kBobCost10));
    EXPECT_FALSE(isBcryptHash("$2y$03$9mPk.8cv63R0aaZ4vcO2t.bHDem9xFzeQJRDcb0..fP.8R.dZa.Ay"));  // cost 3
    EXPECT_FALSE(isBcryptHash("$1$abc"));
    EXPECT_FALSE(isBcryptHash(std::string(kAliceCost5).substr(0, 59)));
}
