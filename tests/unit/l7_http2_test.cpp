// HPACK (RFC 7541) and the HTTP/2 + gRPC parser (l7::makeHttp2Parser) on bytes built here.
//
// HPACK: the test vectors of RFC 7541 Appendix C (integers, the literal forms, requests
// and responses sharing one decoder with and without Huffman coding, evictions at a
// 256-byte table), the Huffman code's error cases, size updates, and what a stale decoder
// (a header block was lost) still decodes. The decoder's dynamic table is read back by
// decoding indexed fields 62, 63, ... on a copy of it.
//
// HTTP/2: frames are written by hand (9-byte header, then the payload) with header blocks
// of static-table references and literals; each test feeds one connection end's syscalls
// (both directions, in order) and checks the exchanges and the counters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <netprobe/l7/hpack.hpp>
#include <netprobe/l7/parser.hpp>

#include "support/hpack_encode.hpp"
#include "support/l7_parser_driver.hpp"

namespace {

using namespace netprobe::l7;

using Fields = std::vector<std::pair<std::string, std::string>>;

// "8286 8441 ..." -> bytes (spaces ignored).
std::string hex(std::string_view h) {
    std::string out;
    int hi = -1;
    for (char c : h) {
        int v = -1;
        if (c >= '0' && c <= '9') v = c - '0';
        else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        if (v < 0) continue;
        if (hi < 0) {
            hi = v;
        } else {
            out += static_cast<char>(hi << 4 | v);
            hi = -1;
        }
    }
    EXPECT_LT(hi, 0) << "odd number of hex digits";
    return out;
}

// Decodes one header block; ok: what decode returned.
Fields decode(HpackDecoder& d, std::string_view block, bool& ok) {
    Fields f;
    ok = d.decode(block, [&](std::string_view n, std::string_view v) { f.emplace_back(n, v); });
    return f;
}

Fields decodeOk(HpackDecoder& d, std::string_view block) {
    bool ok = false;
    Fields f = decode(d, block, ok);
    EXPECT_TRUE(ok);
    return f;
}

// The dynamic table, newest first: indexed fields 62, 63, ... decoded on a copy of the
// decoder until one is out of range.
Fields table(const HpackDecoder& d) {
    HpackDecoder probe = d;
    Fields t;
    for (std::uint8_t i = 62; i < 127; ++i) {
        bool ok = false;
        Fields f = decode(probe, std::string(1, static_cast<char>(0x80 | i)), ok);
        if (!ok) break;
        t.insert(t.end(), f.begin(), f.end());
    }
    return t;
}

// RFC 7541 4.1: each entry is its name and value plus 32 bytes.
std::size_t tableSize(const Fields& t) {
    std::size_t n = 0;
    for (const auto& [name, value] : t) n += name.size() + value.size() + 32;
    return n;
}

// ---- RFC 7541 C.1: integers (reached through size updates, 5-bit prefix, and indexes, 7-bit) ----

TEST(Hpack, C1IntegersThroughSizeUpdatesAndIndexes) {
    {  // C.1.1: 10 with a 5-bit prefix is one byte, 0x0a: as a size update 001 01010
        HpackDecoder at_limit(10), below(9);
        EXPECT_TRUE(decodeOk(at_limit, hex("2a")).empty());
        bool ok = true;
        (void)decode(below, hex("2a"), ok);
        EXPECT_FALSE(ok);  // 10 > 9: the integer decoded to exactly 10
    }
    {  // C.1.2: 1337 with a 5-bit prefix is 1f 9a 0a
        HpackDecoder at_limit(1337), below(1336);
        EXPECT_TRUE(decodeOk(at_limit, hex("3f9a0a")).empty());
        bool ok = true;
        (void)decode(below, hex("3f9a0a"), ok);
        EXPECT_FALSE(ok);
    }
    // C.1.3 (42 with an 8-bit prefix) has no HPACK field to carry it; 42 as a 7-bit index
    // is static entry 42, if-range.
    HpackDecoder d;
    EXPECT_EQ(decodeOk(d, hex("aa")), (Fields{{"if-range", ""}}));
    // The largest single-byte 7-bit value (126) and the first multi-byte one (127 = 7f 00),
    // as indexes into a table of 70 entries ("k", "0") ... ("k", "69"), newest first from 62.
    HpackDecoder big;
    std::string fill;
    for (int i = 0; i < 70; ++i) {
        const std::string v = std::to_string(i);
        fill += hex("40 01") + "k" + static_cast<char>(v.size()) + v;
    }
    (void)decodeOk(big, fill);
    EXPECT_EQ(decodeOk(big, hex("be")), (Fields{{"k", "69"}}));     // 62
    EXPECT_EQ(decodeOk(big, hex("fe")), (Fields{{"k", "5"}}));      // 126
    EXPECT_EQ(decodeOk(big, hex("ff 00")), (Fields{{"k", "4"}}));   // 127
    EXPECT_EQ(decodeOk(big, hex("ff 04")), (Fields{{"k", "0"}}));   // 131, the oldest
}

TEST(Hpack, MalformedIntegersAndTruncationFailWithoutCrashing) {
    const char* bad[] = {
        "ff",                          // index: continuation byte missing
        "ff 80",                       // ... still continuing at the end
        "ff ff ff ff ff ff ff ff 7f",  // more continuation bytes than any real index
        "3f ff ff ff ff ff 0f",        // size update: too long
        "3f ff ff ff ff 0f",           // size update: far above the limit
        "80",                          // index 0
        "be",                          // index 62 in an empty dynamic table
        "ff ff ff ff 0f",              // an index far beyond both tables
        "04 0c 2f 73",                 // literal value: 12 bytes announced, 2 present
        "00 85 61",                    // literal name: Huffman, 5 bytes announced, 1 present
        "40",                          // literal: no name
        "0f",                          // literal with a name index: integer continues
        "44",                          // literal with name :path: no value
        "7f ff ff ff ff ff ff 01 00",  // literal name index: overflows
        "04 7f ff ff ff ff ff ff 01",  // string length: overflows
    };
    for (const char* b : bad) {
        SCOPED_TRACE(b);
        HpackDecoder d;
        bool ok = true;
        (void)decode(d, hex(b), ok);
        EXPECT_FALSE(ok);
        EXPECT_TRUE(d.stale());  // a malformed block leaves the table unknown
    }
}

// ---- C.2: the literal forms and an indexed field, each on a new decoder ----

TEST(Hpack, C2LiteralForms) {
    {  // C.2.1 literal with incremental indexing
        HpackDecoder d;
        EXPECT_EQ(decodeOk(d, hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")),
                  (Fields{{"custom-key", "custom-header"}}));
        EXPECT_EQ(table(d), (Fields{{"custom-key", "custom-header"}}));
        EXPECT_EQ(tableSize(table(d)), 55u);
    }
    {  // C.2.2 literal without indexing
        HpackDecoder d;
        EXPECT_EQ(decodeOk(d, hex("040c 2f73 616d 706c 652f 7061 7468")), (Fields{{":path", "/sample/path"}}));
        EXPECT_TRUE(table(d).empty());
    }
    {  // C.2.3 literal never indexed
        HpackDecoder d;
        EXPECT_EQ(decodeOk(d, hex("1008 7061 7373 776f 7264 0673 6563 7265 74")), (Fields{{"password", "secret"}}));
        EXPECT_TRUE(table(d).empty());
    }
    {  // C.2.4 indexed
        HpackDecoder d;
        EXPECT_EQ(decodeOk(d, hex("82")), (Fields{{":method", "GET"}}));
        EXPECT_TRUE(table(d).empty());
    }
}

// ---- C.3 / C.4: three requests on one decoder, without and with Huffman coding ----

struct Step {
    const char* block;
    Fields fields;
    Fields table;  // newest first
    std::size_t size;
};

void runSteps(HpackDecoder& d, const std::vector<Step>& steps) {
    for (std::size_t i = 0; i < steps.size(); ++i) {
        SCOPED_TRACE(i + 1);
        EXPECT_EQ(decodeOk(d, hex(steps[i].block)), steps[i].fields);
        const Fields t = table(d);
        EXPECT_EQ(t, steps[i].table);
        EXPECT_EQ(tableSize(t), steps[i].size);
    }
}

const Fields kReq1 = {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"}};
const Fields kReq2 = {{":method", "GET"},
                      {":scheme", "http"},
                      {":path", "/"},
                      {":authority", "www.example.com"},
                      {"cache-control", "no-cache"}};
const Fields kReq3 = {{":method", "GET"},
                      {":scheme", "https"},
                      {":path", "/index.html"},
                      {":authority", "www.example.com"},
                      {"custom-key", "custom-value"}};
const Fields kReqTable1 = {{":authority", "www.example.com"}};
const Fields kReqTable2 = {{"cache-control", "no-cache"}, {":authority", "www.example.com"}};
const Fields kReqTable3 = {
    {"custom-key", "custom-value"}, {"cache-control", "no-cache"}, {":authority", "www.example.com"}};

TEST(Hpack, C3RequestsWithoutHuffman) {
    HpackDecoder d;
    runSteps(d, {
                    {"8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", kReq1, kReqTable1, 57},
                    {"8286 84be 5808 6e6f 2d63 6163 6865", kReq2, kReqTable2, 110},
                    {"8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", kReq3,
                     kReqTable3, 164},
                });
}

TEST(Hpack, C4RequestsWithHuffman) {
    HpackDecoder d;
    runSteps(d, {
                    {"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", kReq1, kReqTable1, 57},
                    {"8286 84be 5886 a8eb 1064 9cbf", kReq2, kReqTable2, 110},
                    {"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", kReq3, kReqTable3, 164},
                });
}

// ---- C.5 / C.6: three responses, a 256-byte table: entries are evicted ----

const std::string kDate1 = "Mon, 21 Oct 2013 20:13:21 GMT", kDate2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const std::string kLocation = "https://www.example.com";
const std::string kCookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const Fields kResp1 = {{":status", "302"}, {"cache-control", "private"}, {"date", kDate1}, {"location", kLocation}};
const Fields kResp2 = {{":status", "307"}, {"cache-control", "private"}, {"date", kDate1}, {"location", kLocation}};
const Fields kResp3 = {{":status", "200"},   {"cache-control", "private"},   {"date", kDate2},
                       {"location", kLocation}, {"content-encoding", "gzip"}, {"set-cookie", kCookie}};
const Fields kRespTable1 = {
    {"location", kLocation}, {"date", kDate1}, {"cache-control", "private"}, {":status", "302"}};
const Fields kRespTable2 = {  // (":status", "302") evicted for (":status", "307")
    {":status", "307"}, {"location", kLocation}, {"date", kDate1}, {"cache-control", "private"}};
const Fields kRespTable3 = {{"set-cookie", kCookie}, {"content-encoding", "gzip"}, {"date", kDate2}};

constexpr const char* kC5[] = {
    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133"
    "2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "4803 3330 37c1 c0bf",
    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d"
    "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049"
    "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
};
constexpr const char* kC6[] = {
    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"
    "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    "4883 640e ffc1 c0bf",
    "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab"
    "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f"
    "9587 3160 65c0 03ed 4ee5 b106 3d50 07",
};

// prefix: before the first block (a size update to 256, or nothing).
void runResponses(HpackDecoder& d, const char* const (&blocks)[3], std::string_view prefix) {
    EXPECT_EQ(decodeOk(d, std::string(prefix) + hex(blocks[0])), kResp1);
    EXPECT_EQ(table(d), kRespTable1);
    EXPECT_EQ(tableSize(table(d)), 222u);
    runSteps(d, {
                    {blocks[1], kResp2, kRespTable2, 222},
                    {blocks[2], kResp3, kRespTable3, 215},
                });
}

TEST(Hpack, C5ResponsesWithoutHuffmanEvict) {
    {  // SETTINGS_HEADER_TABLE_SIZE 256 from the start: the blocks as the RFC gives them
        HpackDecoder d(256);
        runResponses(d, kC5, "");
    }
    {  // the decoder allows 64 KiB; the encoder announces 256 with a size update (3f e1 01)
        HpackDecoder d;
        runResponses(d, kC5, hex("3fe101"));
    }
    {  // a larger table keeps (":status", "302"): it is the entry evicted above
        HpackDecoder d;
        (void)decodeOk(d, hex(kC5[0]));
        (void)decodeOk(d, hex(kC5[1]));
        EXPECT_EQ(table(d).size(), 5u);
        EXPECT_EQ(table(d).back(), (std::pair<std::string, std::string>{":status", "302"}));
    }
}

TEST(Hpack, C6ResponsesWithHuffmanEvict) {
    {
        HpackDecoder d(256);
        runResponses(d, kC6, "");
    }
    {
        HpackDecoder d;
        runResponses(d, kC6, hex("3fe101"));
    }
}

// ---- size updates ----

TEST(Hpack, SizeUpdates) {
    {  // above the limit: an error
        HpackDecoder d(256);
        bool ok = true;
        (void)decode(d, hex("3fe201"), ok);  // 257
        EXPECT_FALSE(ok);
        EXPECT_TRUE(d.stale());
    }
    {  // 4096 is allowed at a 4096 limit, 4097 is not
        HpackDecoder d(4096);
        EXPECT_TRUE(decodeOk(d, hex("3fe11f")).empty());
        bool ok = true;
        (void)decode(d, hex("3fe21f"), ok);
        EXPECT_FALSE(ok);
    }
    {  // only at the start of a block (RFC 7541 4.2); two in a row are allowed there
        HpackDecoder d;
        EXPECT_EQ(decodeOk(d, hex("20 3fe11f 82")), (Fields{{":method", "GET"}}));
        bool ok = true;
        (void)decode(d, hex("82 20"), ok);
        EXPECT_FALSE(ok);
    }
    {  // to 0: the table empties; later insertions fit the new size
        HpackDecoder d;
        (void)decodeOk(d, hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"));
        ASSERT_EQ(table(d).size(), 1u);
        EXPECT_TRUE(decodeOk(d, hex("20")).empty());
        EXPECT_TRUE(table(d).empty());
        // At 0 nothing fits: a literal with indexing is reported and not kept.
        EXPECT_EQ(decodeOk(d, hex("4003 616263 0178")), (Fields{{"abc", "x"}}));
        EXPECT_TRUE(table(d).empty());
        EXPECT_FALSE(d.stale());
    }
    {  // an entry larger than the table empties it (RFC 7541 4.4)
        HpackDecoder d;
        (void)decodeOk(d, hex("3f21"));  // 64 bytes
        (void)decodeOk(d, hex("4003 616263 03 646566"));  // 38 bytes
        EXPECT_EQ(table(d), (Fields{{"abc", "def"}}));
        const std::string big = hex("4003 616263 20") + std::string(32, 'v');  // 3 + 32 + 32 > 64
        EXPECT_EQ(decodeOk(d, big), (Fields{{"abc", std::string(32, 'v')}}));
        EXPECT_TRUE(table(d).empty());
    }
}

// ---- Huffman ----

TEST(Hpack, HuffmanDecode) {
    std::string out;
    ASSERT_TRUE(hpackHuffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), out));
    EXPECT_EQ(out, "www.example.com");
    out.clear();
    ASSERT_TRUE(hpackHuffmanDecode(hex("a8eb 1064 9cbf"), out));
    EXPECT_EQ(out, "no-cache");
    out.clear();
    EXPECT_TRUE(hpackHuffmanDecode("", out));
    EXPECT_EQ(out, "");
    // 'a' is 00011: with three bits of padding, all ones.
    out.clear();
    ASSERT_TRUE(hpackHuffmanDecode(hex("1f"), out));
    EXPECT_EQ(out, "a");
    // The output bound.
    out.clear();
    EXPECT_FALSE(hpackHuffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), out, 5));
    out.clear();
    EXPECT_TRUE(hpackHuffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), out, 15));
}

TEST(Hpack, HuffmanRejectsEosAndBadPadding) {
    std::string out;
    EXPECT_FALSE(hpackHuffmanDecode(hex("ffff fffc"), out));  // EOS (30 ones), then 2 bits
    out.clear();
    EXPECT_FALSE(hpackHuffmanDecode(hex("1fff ffff ff"), out));  // 'a', then EOS inside
    out.clear();
    EXPECT_FALSE(hpackHuffmanDecode(hex("ff"), out));  // 8 bits of padding
    out.clear();
    EXPECT_FALSE(hpackHuffmanDecode(hex("1fff"), out));  // 'a' and 11 bits of padding
    out.clear();
    EXPECT_FALSE(hpackHuffmanDecode(hex("18"), out));  // 'a' and padding 000: not ones
    out.clear();
    EXPECT_FALSE(hpackHuffmanDecode(hex("1a"), out));  // 'a' and padding 010
    // In a header block, the field is rejected and the block fails.
    HpackDecoder d;
    bool ok = true;
    (void)decode(d, hex("0481 ff"), ok);
    EXPECT_FALSE(ok);
}

// ---- a stale decoder ----

TEST(Hpack, StaleDecoderDecodesStaticAndLiteralsOnly) {
    HpackDecoder d;
    (void)decodeOk(d, hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"));  // C.3.1
    ASSERT_EQ(table(d).size(), 1u);
    d.markStale();
    EXPECT_TRUE(d.stale());
    // 82 static; be dynamic (was :authority www.example.com): unknown; 7e = literal with
    // indexing, name index 62: unknown name; 40 literal name; 04 literal :path.
    EXPECT_EQ(decodeOk(d, hex("82 be 7e03 616263 4003 666f6f 0362 6172 0402 2f78")),
              (Fields{{":method", "GET"}, {"", ""}, {"", "abc"}, {"foo", "bar"}, {":path", "/x"}}));
    // The literal with indexing was not inserted into a table it cannot know: 62 is still unknown.
    EXPECT_EQ(decodeOk(d, hex("be c0 ff 80 01")), (Fields{{"", ""}, {"", ""}, {"", ""}}));
    // Huffman literals still decode.
    EXPECT_EQ(decodeOk(d, hex("418c f1e3 c2e5 f23a 6ba0 ab90 f4ff")), (Fields{{":authority", "www.example.com"}}));
    EXPECT_TRUE(d.stale());
}

// ============================ HTTP/2 ============================

using netprobe::testing::feed;
using netprobe::testing::kRecv;
using netprobe::testing::kSend;
using netprobe::testing::Sink;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum : std::uint8_t {
    kData = 0,
    kHeaders = 1,
    kPriority = 2,
    kRst = 3,
    kSettings = 4,
    kPing = 6,
    kWindowUpdate = 8,
    kContinuation = 9,
};
enum : std::uint8_t { kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPriorityFlag = 0x20 };

// A frame: 24-bit length, type, flags, 31-bit stream id, payload (RFC 9113 4.1).
std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t sid, std::string_view payload) {
    std::string f;
    const auto n = static_cast<std::uint32_t>(payload.size());
    f += static_cast<char>(n >> 16 & 0xff);
    f += static_cast<char>(n >> 8 & 0xff);
    f += static_cast<char>(n & 0xff);
    f += static_cast<char>(type);
    f += static_cast<char>(flags);
    for (int s = 24; s >= 0; s -= 8) f += static_cast<char>(sid >> s & 0xff);
    f += payload;
    return f;
}

// HPACK field representations (tests/support/hpack_encode.hpp)
using netprobe::testing::hpack::indexed;
using netprobe::testing::hpack::indexing;
using netprobe::testing::hpack::literal;

// Static table indexes (RFC 7541 Appendix A).
constexpr int kAuthority = 1, kGet = 2, kPost = 3, kPathRoot = 4, kSchemeHttp = 6, kSchemeHttps = 7, kStatus200 = 8,
              kStatus404 = 13, kPath = 4, kStatus = 8, kContentType = 31;

std::string getBlock(std::string_view path) {
    return indexed(kGet) + indexed(kSchemeHttps) + literal(kPath, path) + literal(kAuthority, "example.com");
}
std::string grpcRequestBlock(std::string_view path, std::string_view content_type = "application/grpc") {
    return indexed(kPost) + indexed(kSchemeHttp) + literal(kPath, path) + literal(kAuthority, "localhost:50051") +
           literal(kContentType, content_type) + literal("te", "trailers");
}
std::string grpcResponseBlock() { return indexed(kStatus200) + literal(kContentType, "application/grpc"); }
std::string trailersBlock(std::string_view grpc_status) {
    return literal("grpc-status", grpc_status) + literal("grpc-message", "no such echo");
}

std::string settings() { return frame(kSettings, 0, 0, hex("0003 00000064 0004 00010000")); }
std::string settingsAck() { return frame(kSettings, kAck, 0, ""); }
std::string dataFrame(std::uint32_t sid, std::size_t n, std::uint8_t flags = 0) {
    return frame(kData, flags, sid, std::string(n, 'd'));
}

// A syscall of `whole` of which the capture copied the first `head` bytes (no tail).
void feedCut(MessageParser& p, bool sending, std::string_view whole, std::size_t head, std::uint64_t ts) {
    p.feed(sending, Chunk{whole.substr(0, head), whole.size(), {}, ts});
}

// A client's end with the connection set up: preface + SETTINGS, the server's SETTINGS
// and the acknowledgements.
std::unique_ptr<MessageParser> client(Sink& s, std::size_t max_streams = 100) {
    auto p = makeHttp2Parser(s, max_streams);
    feed(*p, kSend, std::string(kPreface) + settings(), 1);
    feed(*p, kRecv, settings() + settingsAck(), 2);
    feed(*p, kSend, settingsAck(), 3);
    return p;
}

void expectClean(MessageParser& p) {
    p.close();
    EXPECT_EQ(p.counters().unanswered, 0u);
    EXPECT_EQ(p.counters().unmatched_responses, 0u);
    EXPECT_EQ(p.counters().desyncs, 0u);
}

TEST(Http2Parser, GetAnsweredWith200) {
    Sink s;
    auto p = client(s);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 1, getBlock("/api/items/42?full=1")), 100);
    EXPECT_TRUE(s.got.empty());
    feed(*p, kRecv, frame(kHeaders, kEndHeaders, 1, indexed(kStatus200) + literal(kContentType, "text/plain")), 250);
    EXPECT_TRUE(s.got.empty());  // the response ends with END_STREAM
    feed(*p, kRecv, frame(kPing, 0, 0, std::string(8, 'p')) + dataFrame(1, 300) + dataFrame(1, 11, kEndStream), 300);
    ASSERT_EQ(s.got.size(), 1u);
    const Exchange& e = s.got[0];
    EXPECT_EQ(e.protocol, "http2");
    EXPECT_TRUE(e.client);
    EXPECT_EQ(e.method, "GET");
    EXPECT_EQ(e.path, "/api/items/42");  // without the query
    EXPECT_EQ(e.route, "/api/items/{id}");
    EXPECT_EQ(e.status, 200);
    EXPECT_FALSE(e.error);
    EXPECT_FALSE(e.outcome_unknown);
    EXPECT_TRUE(e.error_code.empty());
    EXPECT_EQ(e.request_ns, 100u);   // the request's HEADERS
    EXPECT_EQ(e.response_ns, 250u);  // the response's first HEADERS
    EXPECT_EQ(e.request_bytes, 0u);  // sizes: the DATA payloads
    EXPECT_EQ(e.response_bytes, 311u);
    expectClean(*p);
}

TEST(Http2Parser, PostBodyBytesAndTheServersEnd) {
    Sink s;
    auto p = makeHttp2Parser(s, 100);
    // The server's end: it reads the preface, SETTINGS and the request in one read.
    const std::string request = std::string(kPreface) + settings() +
                                frame(kHeaders, kEndHeaders, 1, indexed(kPost) + literal(kPath, "/upload")) +
                                dataFrame(1, 1000) + frame(kWindowUpdate, 0, 0, hex("0000ffff")) +
                                dataFrame(1, 24, kEndStream);
    feed(*p, kRecv, request, 1000);
    feed(*p, kSend, settings() + frame(kHeaders, kEndHeaders | kEndStream, 1, indexed(9)), 1700);  // :status 204
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_FALSE(s.got[0].client);
    EXPECT_EQ(s.got[0].method, "POST");
    EXPECT_EQ(s.got[0].path, "/upload");
    EXPECT_EQ(s.got[0].status, 204);
    EXPECT_EQ(s.got[0].request_bytes, 1024u);
    EXPECT_EQ(s.got[0].response_bytes, 0u);
    EXPECT_EQ(s.got[0].request_ns, 1000u);
    EXPECT_EQ(s.got[0].response_ns, 1700u);
    expectClean(*p);
}

TEST(Http2Parser, WithoutThePrefaceTheRequestFieldsTellTheClient) {
    Sink s;
    auto p = makeHttp2Parser(s, 100);  // the capture began after the preface
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 7, getBlock("/late")), 10);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 7, indexed(kStatus404)), 20);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_FALSE(s.got[0].client);  // the request was read: this end is the server
    EXPECT_EQ(s.got[0].path, "/late");
    EXPECT_EQ(s.got[0].status, 404);
    expectClean(*p);
}

TEST(Http2Parser, InterleavedStreamsPairById) {
    Sink s;
    auto p = client(s);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 3, getBlock("/a")), 100);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 5, getBlock("/b")), 110);
    // Stream 5 is answered first, and both responses' frames interleave.
    feed(*p, kRecv,
         frame(kHeaders, kEndHeaders, 5, indexed(kStatus404)) + frame(kHeaders, kEndHeaders, 3, indexed(kStatus200)) +
             dataFrame(3, 10) + dataFrame(5, 20, kEndStream),
         200);
    feed(*p, kRecv, dataFrame(3, 30, kEndStream), 300);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[0].path, "/b");
    EXPECT_EQ(s.got[0].status, 404);
    EXPECT_EQ(s.got[0].request_ns, 110u);
    EXPECT_EQ(s.got[0].response_ns, 200u);
    EXPECT_EQ(s.got[0].response_bytes, 20u);
    EXPECT_EQ(s.got[1].path, "/a");
    EXPECT_EQ(s.got[1].status, 200);
    EXPECT_EQ(s.got[1].request_ns, 100u);
    EXPECT_EQ(s.got[1].response_ns, 200u);
    EXPECT_EQ(s.got[1].response_bytes, 40u);
    expectClean(*p);
}

TEST(Http2Parser, DynamicTableEntriesAreReusedPerDirection) {
    Sink s;
    auto p = client(s);
    // Request 1 enters :path and user-agent into the client's table: [62] user-agent, [63] :path.
    feed(*p, kSend,
         frame(kHeaders, kEndHeaders | kEndStream, 1,
               indexed(kGet) + indexing(kPath, "/users/7/orders") + indexing(58, "np-test/1.0")),
         100);
    // Response 1 enters (":status", "201") into the server's table: [62].
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, indexing(kStatus, "201")), 150);
    // Request 2 refers to both entries; response 2 to its own table's 62, not the client's.
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kGet) + indexed(63) + indexed(62)), 200);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(62)), 250);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[0].path, "/users/7/orders");
    EXPECT_EQ(s.got[0].status, 201);
    EXPECT_EQ(s.got[1].method, "GET");
    EXPECT_EQ(s.got[1].path, "/users/7/orders");
    EXPECT_EQ(s.got[1].route, "/users/{id}/orders");
    EXPECT_EQ(s.got[1].status, 201);
    expectClean(*p);
}

TEST(Http2Parser, HeadersAndContinuations) {
    Sink s;
    auto p = client(s);
    // The block is cut inside the :path literal and again inside the authority.
    const std::string block = getBlock("/continued/path");
    feed(*p, kSend,
         frame(kHeaders, kEndStream, 1, block.substr(0, 5)) + frame(kContinuation, 0, 1, block.substr(5, 10)) +
             frame(kContinuation, kEndHeaders, 1, block.substr(15)),
         100);
    // The response's block in two frames that come in two reads.
    const std::string rblock = indexed(kStatus200) + literal(kContentType, "text/html");
    feed(*p, kRecv, frame(kHeaders, kEndStream, 1, rblock.substr(0, 3)), 200);
    EXPECT_TRUE(s.got.empty());
    feed(*p, kRecv, frame(kContinuation, kEndHeaders, 1, rblock.substr(3)), 210);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].path, "/continued/path");
    EXPECT_EQ(s.got[0].status, 200);
    EXPECT_EQ(s.got[0].response_ns, 200u);  // the block's first frame
    expectClean(*p);
}

TEST(Http2Parser, AnInterruptedHeaderBlockLosesTheTable) {
    Sink s;
    auto p = client(s);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 1, indexing(kPath, "/a") + indexed(kGet)), 100);
    // HEADERS without END_HEADERS, then a DATA frame: not a CONTINUATION (RFC 9113 6.10).
    feed(*p, kSend, frame(kHeaders, 0, 3, indexed(kGet)) + dataFrame(3, 4, kEndStream), 110);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 5, indexed(kGet) + indexed(62)), 120);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, indexed(kStatus200)), 200);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 5, indexed(kStatus200)), 210);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[0].path, "/a");
    EXPECT_EQ(s.got[1].method, "GET");
    EXPECT_EQ(s.got[1].path, "UNKNOWN");  // 62 may be anything the lost block entered
    p->close();
    EXPECT_EQ(p->counters().desyncs, 1u);
}

TEST(Http2Parser, PaddingAndPriorityInHeaders) {
    Sink s;
    auto p = client(s);
    const std::string priority = hex("80000003 10");  // exclusive, depends on stream 3, weight 17
    const std::string b1 = getBlock("/padded"), b2 = getBlock("/prioritized"), b3 = getBlock("/both");
    // PADDED: pad length, the block, the padding.
    feed(*p, kSend,
         frame(kHeaders, kEndHeaders | kEndStream | kPadded, 1, std::string(1, '\x06') + b1 + std::string(6, '\0')),
         100);
    // PRIORITY: dependency and weight before the block.
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream | kPriorityFlag, 3, priority + b2), 110);
    // Both: pad length, dependency, weight, block, padding; the padding fills the rest.
    feed(*p, kSend,
         frame(kHeaders, kEndHeaders | kEndStream | kPadded | kPriorityFlag, 5,
               std::string(1, '\x03') + priority + b3 + std::string(3, '\0')),
         120);
    // A PRIORITY frame on its own changes nothing.
    feed(*p, kSend, frame(kPriority, 0, 5, priority), 130);
    // The response: padded, with a padding of 0 bytes.
    for (std::uint32_t sid : {1u, 3u, 5u})
        feed(*p, kRecv,
             frame(kHeaders, kEndHeaders | kEndStream | kPadded, sid, std::string(1, '\0') + indexed(kStatus200)), 200);
    ASSERT_EQ(s.got.size(), 3u);
    EXPECT_EQ(s.got[0].path, "/padded");
    EXPECT_EQ(s.got[1].path, "/prioritized");
    EXPECT_EQ(s.got[2].path, "/both");
    for (const auto& e : s.got) EXPECT_EQ(e.status, 200);
    expectClean(*p);
}

TEST(Http2Parser, PaddingLongerThanThePayloadIsAnError) {
    Sink s;
    auto p = client(s);
    // Pad length 40 in a payload of 1 + 10: a PROTOCOL_ERROR (RFC 9113 6.2); the block is
    // not decoded, and the decoder no longer knows its table.
    feed(*p, kSend,
         frame(kHeaders, kEndHeaders | kEndStream | kPadded, 1, std::string(1, '\x28') + getBlock("/x").substr(0, 10)),
         100);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 3, getBlock("/next")), 110);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kStatus200)), 200);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].path, "/next");  // static and literal fields still decode
    p->close();
    EXPECT_EQ(p->counters().desyncs, 1u);
    EXPECT_EQ(p->counters().unanswered, 0u);
}

TEST(Http2Parser, FramesSplitAcrossReadsAtEveryByte) {
    // After the preface, the client's bytes and the server's, each split in two reads at
    // every position; also everything in a single read (two and more frames in one chunk).
    const std::string req = settings() +
                            frame(kHeaders, kEndHeaders, 1, grpcRequestBlock("/np.Echo/Say") + indexing("x-id", "7")) +
                            dataFrame(1, 12, kEndStream);
    const std::string resp = settings() + settingsAck() + frame(kHeaders, kEndHeaders, 1, grpcResponseBlock()) +
                             dataFrame(1, 9) + frame(kHeaders, kEndHeaders | kEndStream, 1, trailersBlock("0"));
    const std::size_t req_headers = settings().size();               // where the request HEADERS start
    const std::size_t resp_headers = settings().size() + settingsAck().size();
    for (std::size_t cut = 0; cut <= std::max(req.size(), resp.size()); ++cut) {
        SCOPED_TRACE(cut);
        Sink s;
        auto p = makeHttp2Parser(s, 100);
        feed(*p, kSend, kPreface, 1);
        const std::size_t rc = std::min(cut, req.size()), sc = std::min(cut, resp.size());
        feed(*p, kSend, std::string_view(req).substr(0, rc), 10);
        feed(*p, kSend, std::string_view(req).substr(rc), 20);
        feed(*p, kRecv, std::string_view(resp).substr(0, sc), 30);
        feed(*p, kRecv, std::string_view(resp).substr(sc), 40);
        ASSERT_EQ(s.got.size(), 1u);
        const Exchange& e = s.got[0];
        EXPECT_EQ(e.protocol, "grpc");
        EXPECT_EQ(e.path, "/np.Echo/Say");
        EXPECT_EQ(e.status, 0);
        EXPECT_EQ(e.error_code, "OK");
        EXPECT_FALSE(e.error);
        EXPECT_EQ(e.request_bytes, 12u);
        EXPECT_EQ(e.response_bytes, 9u);
        EXPECT_EQ(e.request_ns, rc > req_headers ? 10u : 20u);
        EXPECT_EQ(e.response_ns, sc > resp_headers ? 30u : 40u);
        expectClean(*p);
    }
}

// ---- gRPC ----

TEST(Http2Parser, GrpcCallWithTrailers) {
    Sink s;
    auto p = client(s);
    feed(*p, kSend, frame(kHeaders, kEndHeaders, 1, grpcRequestBlock("/np.Echo/Say")), 100);
    feed(*p, kSend, dataFrame(1, 5 + 7, kEndStream), 101);  // the length-prefixed message
    feed(*p, kRecv, frame(kHeaders, kEndHeaders, 1, grpcResponseBlock()), 180);
    feed(*p, kRecv, dataFrame(1, 5 + 5), 181);
    EXPECT_TRUE(s.got.empty());
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, trailersBlock("5")), 182);
    ASSERT_EQ(s.got.size(), 1u);
    const Exchange& e = s.got[0];
    EXPECT_EQ(e.protocol, "grpc");
    EXPECT_TRUE(e.client);
    EXPECT_EQ(e.method, "/np.Echo/Say");
    EXPECT_EQ(e.path, "/np.Echo/Say");
    EXPECT_EQ(e.route, "/np.Echo/Say");
    EXPECT_EQ(e.status, 5);
    EXPECT_TRUE(e.error);
    EXPECT_EQ(e.error_code, "NOT_FOUND");
    EXPECT_FALSE(e.outcome_unknown);
    EXPECT_EQ(e.request_ns, 100u);
    EXPECT_EQ(e.response_ns, 180u);
    EXPECT_EQ(e.request_bytes, 12u);
    EXPECT_EQ(e.response_bytes, 10u);
    expectClean(*p);
}

TEST(Http2Parser, GrpcTrailersOnlyResponse) {
    Sink s;
    auto p = client(s);
    feed(*p, kSend,
         frame(kHeaders, kEndHeaders, 1, grpcRequestBlock("/np.Echo/Missing", "application/grpc+proto")) +
             dataFrame(1, 5, kEndStream),
         100);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, grpcResponseBlock() + trailersBlock("12")), 150);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].protocol, "grpc");
    EXPECT_EQ(s.got[0].method, "/np.Echo/Missing");
    EXPECT_EQ(s.got[0].status, 12);
    EXPECT_EQ(s.got[0].error_code, "UNIMPLEMENTED");
    EXPECT_TRUE(s.got[0].error);
    EXPECT_EQ(s.got[0].response_ns, 150u);
    expectClean(*p);
}

TEST(Http2Parser, GrpcWithoutGrpcStatusIsUnknownOutcome) {
    Sink s;
    auto p = client(s);
    feed(*p, kSend, frame(kHeaders, kEndHeaders, 1, grpcRequestBlock("/np.Echo/Say")) + dataFrame(1, 8, kEndStream),
         100);
    // HEADERS, then DATA with END_STREAM: the stream ends without trailers.
    feed(*p, kRecv, frame(kHeaders, kEndHeaders, 1, grpcResponseBlock()) + dataFrame(1, 6, kEndStream), 150);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].protocol, "grpc");
    EXPECT_EQ(s.got[0].status, 17);
    EXPECT_TRUE(s.got[0].outcome_unknown);
    EXPECT_FALSE(s.got[0].error);
    EXPECT_TRUE(s.got[0].error_code.empty());
    EXPECT_EQ(s.got[0].response_bytes, 6u);
    expectClean(*p);
}

TEST(Http2Parser, GrpcHttpErrorsMapAsClientsMapThem) {
    // gRPC's HTTP to gRPC status mapping, for responses without grpc-status.
    const std::pair<int, int> cases[] = {{400, 13}, {401, 16}, {403, 7},  {404, 12}, {429, 14},
                                         {502, 14}, {503, 14}, {504, 14}, {500, 2},  {302, 2}};
    for (auto [http, grpc] : cases) {
        SCOPED_TRACE(http);
        Sink s;
        auto p = client(s);
        feed(*p, kSend, frame(kHeaders, kEndHeaders, 1, grpcRequestBlock("/np.Echo/Say")) + dataFrame(1, 5, kEndStream),
             100);
        feed(*p, kRecv,
             frame(kHeaders, kEndHeaders | kEndStream, 1,
                   literal(kStatus, std::to_string(http)) + literal(kContentType, "text/html")),
             150);
        ASSERT_EQ(s.got.size(), 1u);
        EXPECT_EQ(s.got[0].protocol, "grpc");
        EXPECT_EQ(s.got[0].status, grpc);
        EXPECT_TRUE(s.got[0].error);
        EXPECT_EQ(s.got[0].error_code, grpcStatusName(grpc));
        EXPECT_FALSE(s.got[0].outcome_unknown);
    }
}

TEST(Http2Parser, GrpcStatusOutsideTheCodesIsUnknown) {
    for (const char* v : {"42", "17", "x", "999999"}) {
        SCOPED_TRACE(v);
        Sink s;
        auto p = client(s);
        feed(*p, kSend, frame(kHeaders, kEndHeaders, 1, grpcRequestBlock("/np.Echo/Say")) + dataFrame(1, 5, kEndStream),
             100);
        feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, grpcResponseBlock() + trailersBlock(v)), 150);
        ASSERT_EQ(s.got.size(), 1u);
        EXPECT_EQ(s.got[0].status, 2);  // UNKNOWN, as gRPC clients read it; 17 means "not seen"
        EXPECT_EQ(s.got[0].error_code, "UNKNOWN");
        EXPECT_FALSE(s.got[0].outcome_unknown);
    }
}

TEST(Http2Parser, APathWithNothingBeforeTheQueryIsUnknown) {
    // (Found by fuzz_l7_http2: a gRPC call's method is its path, and was left empty.)
    Sink s;
    auto p = client(s);
    feed(*p, kSend, frame(kHeaders, kEndHeaders, 1, grpcRequestBlock("?np.Echo/Say")) + dataFrame(1, 5, kEndStream),
         100);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, grpcResponseBlock() + trailersBlock("0")), 150);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 3, getBlock("#frag")), 200);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kStatus200)), 250);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[0].protocol, "grpc");
    EXPECT_EQ(s.got[0].method, "UNKNOWN");
    EXPECT_EQ(s.got[0].path, "UNKNOWN");
    EXPECT_EQ(s.got[1].method, "GET");
    EXPECT_EQ(s.got[1].path, "UNKNOWN");
    expectClean(*p);
}

TEST(Http2Parser, GrpcWebIsNotGrpc) {
    // gRPC-Web carries its trailers in the body: the stream is plain HTTP/2.
    Sink s;
    auto p = client(s);
    feed(*p, kSend,
         frame(kHeaders, kEndHeaders, 1, grpcRequestBlock("/np.Echo/Say", "application/grpc-web+proto")) +
             dataFrame(1, 5, kEndStream),
         100);
    feed(*p, kRecv,
         frame(kHeaders, kEndHeaders, 1, indexed(kStatus200) + literal(kContentType, "application/grpc-web+proto")) +
             dataFrame(1, 30, kEndStream),
         150);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].protocol, "http2");
    EXPECT_EQ(s.got[0].method, "POST");
    EXPECT_EQ(s.got[0].status, 200);
    EXPECT_FALSE(s.got[0].outcome_unknown);
    expectClean(*p);
}

TEST(Http2Parser, ClientTrailersAfterTheResponseAreNotARequest) {
    Sink s;
    auto p = client(s);
    feed(*p, kSend, frame(kHeaders, kEndHeaders, 1, indexed(kPost) + literal(kPath, "/stream")) + dataFrame(1, 100),
         100);
    // The server answers before the request ended (RFC 9113 8.1) ...
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, literal(kStatus, "413")), 150);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].status, 413);
    // ... and then the client ends its request with trailers: stream 1, not a new request.
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 1, literal("x-checksum", "abc")), 160);
    // A HEADERS on a stream id below the last one is not a new request either.
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 3, getBlock("/three")), 170);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 1, getBlock("/again")), 180);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kStatus200)), 190);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[1].path, "/three");
    expectClean(*p);
}

TEST(Http2Parser, InterimResponsesAreSkipped) {
    Sink s;
    auto p = client(s);
    feed(*p, kSend,
         frame(kHeaders, kEndHeaders, 1,
               indexed(kPost) + literal(kPath, "/big") + literal("expect", "100-continue")),
         100);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders, 1, literal(kStatus, "100")), 120);
    feed(*p, kSend, dataFrame(1, 50, kEndStream), 130);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, indexed(kStatus200)), 200);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].status, 200);
    EXPECT_EQ(s.got[0].response_ns, 200u);
    EXPECT_EQ(s.got[0].request_bytes, 50u);
    expectClean(*p);
}

// ---- resets, bounds ----

TEST(Http2Parser, RstStream) {
    Sink s;
    auto p = client(s);
    const std::string cancel = hex("00000008");  // CANCEL
    // Reset before any response: no exchange, the request is unanswered at once.
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 1, getBlock("/slow")), 100);
    feed(*p, kSend, frame(kRst, 0, 1, cancel), 110);
    EXPECT_TRUE(s.got.empty());
    EXPECT_EQ(p->counters().unanswered, 1u);
    // Frames of the reset stream that were in flight are ignored.
    feed(*p, kRecv, dataFrame(1, 10, kEndStream), 115);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
    // Reset after the response's HEADERS (by either end): the exchange is reported with its status.
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 3, getBlock("/download")), 120);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders, 3, indexed(kStatus200)) + dataFrame(3, 64), 130);
    feed(*p, kSend, frame(kRst, 0, 3, cancel), 140);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].path, "/download");
    EXPECT_EQ(s.got[0].status, 200);
    EXPECT_EQ(s.got[0].response_ns, 130u);
    EXPECT_EQ(s.got[0].response_bytes, 64u);
    // A gRPC call reset after its response HEADERS: its status was not seen.
    feed(*p, kSend, frame(kHeaders, kEndHeaders, 5, grpcRequestBlock("/np.Echo/Stream")), 150);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders, 5, grpcResponseBlock()), 160);
    feed(*p, kRecv, frame(kRst, 0, 5, hex("00000002")), 170);  // INTERNAL_ERROR
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[1].protocol, "grpc");
    EXPECT_EQ(s.got[1].status, 17);
    EXPECT_TRUE(s.got[1].outcome_unknown);
    // Nothing is left open: closing adds no unanswered request.
    p->close();
    EXPECT_EQ(p->counters().unanswered, 1u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
    EXPECT_EQ(p->counters().desyncs, 0u);
}

TEST(Http2Parser, StreamsAreBoundedTheOldestGoesFirst) {
    Sink s;
    auto p = client(s, 2);
    // Streams 1 and 3 whose ends are never seen, then 5: stream 1 is given up.
    for (std::uint32_t sid : {1u, 3u, 5u})
        feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, sid, getBlock("/s" + std::to_string(sid))),
             100 + sid);
    EXPECT_EQ(p->counters().unanswered, 1u);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 5, indexed(kStatus200)), 200);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, indexed(kStatus200)), 210);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].path, "/s5");
    EXPECT_EQ(p->counters().unmatched_responses, 1u);  // stream 1's response
    // A long run of requests never answered keeps at most 2 open.
    for (std::uint32_t sid = 7; sid < 2007; sid += 2)
        feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, sid, getBlock("/lost")), 300);
    // Stream 1, then stream 3 and all the new ones but the two last.
    EXPECT_EQ(p->counters().unanswered, 1u + 1u + (1000u - 2u));
    p->close();  // ... and those two
    EXPECT_EQ(p->counters().unanswered, 1002u);
}

// ---- lost bytes ----

TEST(Http2Parser, ALostHeaderBlockLeavesTheTableUnknownNeverWrong) {
    Sink s;
    auto p = client(s);
    // Request 1 enters "/old" at 62.
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 1, indexed(kGet) + indexing(kPath, "/old")), 100);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, indexed(kStatus200)), 110);
    // Request 3's block enters "/secret" (now 62; "/old" 63), but the capture copied
    // only the frame header and 3 bytes of it.
    const std::string lost = frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kGet) + indexing(kPath, "/secret"));
    feedCut(*p, kSend, lost, 12, 120);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kStatus200)), 130);
    // Request 5 refers to 62: "/secret" for the real decoder; this one must not say "/old".
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 5, indexed(kGet) + indexed(62)), 140);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 5, indexed(kStatus404)), 150);
    // Request 7 uses the static table and literals only: decoded as usual.
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 7, indexed(kGet) + indexed(kPathRoot)), 160);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 7, indexed(kStatus200)), 170);
    ASSERT_EQ(s.got.size(), 4u);
    EXPECT_EQ(s.got[0].path, "/old");
    // The lost block's request still counts, with nothing known of it.
    EXPECT_EQ(s.got[1].method, "UNKNOWN");
    EXPECT_EQ(s.got[1].path, "UNKNOWN");
    EXPECT_EQ(s.got[1].status, 200);
    // The reference into the lost table: unknown, not "/old".
    EXPECT_EQ(s.got[2].method, "GET");
    EXPECT_EQ(s.got[2].path, "UNKNOWN");
    EXPECT_EQ(s.got[2].status, 404);
    EXPECT_EQ(s.got[3].path, "/");
    p->close();
    EXPECT_EQ(p->counters().desyncs, 1u);  // the one lost block
    EXPECT_EQ(p->counters().unanswered, 0u);
}

TEST(Http2Parser, LostFramingLeavesTheTableUnknown) {
    Sink s;
    auto p = client(s);
    // One write: request 1 (enters "/a"), a large DATA frame, and request 3 (enters "/b").
    // The capture copies up to inside the DATA: request 3's frame header is not seen, so
    // where the frames are is lost, and with it whatever the skipped bytes did to the table.
    const std::string r1 = frame(kHeaders, kEndHeaders, 1, indexed(kPost) + indexing(kPath, "/a"));
    const std::string write = r1 + dataFrame(1, 5000, kEndStream) +
                              frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kGet) + indexing(kPath, "/b"));
    feedCut(*p, kSend, write, r1.size() + 9 + 100, 100);
    // The next write starts with a frame: framing is back; 62 is "/b" for the real decoder.
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 5, indexed(kGet) + indexed(62)), 200);
    feed(*p, kRecv,
         frame(kHeaders, kEndHeaders | kEndStream, 1, indexed(kStatus200)) +
             frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kStatus200)) +
             frame(kHeaders, kEndHeaders | kEndStream, 5, indexed(kStatus200)),
         300);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[0].path, "/a");
    EXPECT_EQ(s.got[0].request_bytes, 5000u);
    EXPECT_EQ(s.got[1].method, "GET");
    EXPECT_EQ(s.got[1].path, "UNKNOWN");  // not "/a"
    p->close();
    EXPECT_EQ(p->counters().unmatched_responses, 1u);  // stream 3's request was in the lost bytes
    EXPECT_EQ(p->counters().desyncs, 1u);
}

TEST(Http2Parser, FramingComesBackAtAPriorityFrame) {
    Sink s;
    auto p = client(s);
    const std::string r1 = frame(kHeaders, kEndHeaders, 1, indexed(kPost) + literal(kPath, "/up"));
    feedCut(*p, kSend, r1 + dataFrame(1, 5000) + dataFrame(1, 5000, kEndStream), r1.size() + 50, 100);
    // PRIORITY frames name a stream (RFC 9113 6.3): one on stream 3 starts a frame.
    feed(*p, kSend,
         frame(kPriority, 0, 3, hex("00000000 0f")) +
             frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kGet) + literal(kPath, "/after")),
         200);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kStatus200)), 300);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].path, "/after");
}

}  // namespace

namespace {

// A request whose header block is larger than the 512 bytes other protocols keep of a
// message (a long cookie): decoded whole, its table entries usable by the next request.
TEST(Http2Parser, LargeHeaderBlocksAreDecodedWhole) {
    Sink s;
    auto p = client(s);
    const std::string cookie(3000, 'c');
    feed(*p, kSend,
         frame(kHeaders, kEndHeaders | kEndStream, 1,
               indexed(kGet) + indexing(kPath, "/big/1") + indexing("cookie", cookie)),
         100);
    // the response's block arrives in two reads (3 KiB of it in the second)
    const std::string big = frame(kHeaders, kEndHeaders | kEndStream, 1,
                                  indexed(kStatus200) + literal("x-padding", std::string(3000, 'p')));
    feed(*p, kRecv, big.substr(0, 100), 150);
    feed(*p, kRecv, big.substr(100), 160);
    // request 2: [62] cookie, [63] :path
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kGet) + indexed(63) + indexed(62)), 200);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kStatus200)), 250);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[0].path, "/big/1");
    EXPECT_EQ(s.got[0].status, 200);
    EXPECT_EQ(s.got[1].path, "/big/1");
    expectClean(*p);
}

// Frames of types RFC 9113 does not define (extensions, 4.1: "MUST ignore") are skipped
// without losing the framing.
TEST(Http2Parser, UnknownFrameTypesAreSkipped) {
    Sink s;
    auto p = client(s);
    feed(*p, kSend, frame(0x20, 0, 0, "extension") + frame(kHeaders, kEndHeaders | kEndStream, 1, getBlock("/x")), 100);
    feed(*p, kRecv, frame(0xfa, 0xff, 1, std::string(40, 'u')) + frame(kHeaders, kEndHeaders | kEndStream, 1,
                                                                       indexed(kStatus200)), 200);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].path, "/x");
    expectClean(*p);
}

// A header-block frame whose middle was not captured (the read was longer than the copy)
// and whose end comes in the next read: the block is not whole (the framer stops
// collecting at a gap), so it is never decoded - the table is lost instead.
TEST(Http2Parser, AHeaderBlockWithAGapIsNeverDecodedAcrossIt) {
    Sink s;
    auto p = client(s);
    const std::string block = indexed(kGet) + indexing(kPath, "/gap/" + std::string(5000, 'g')) +
                              indexing("x-after", "the-end");
    const std::string f = frame(kHeaders, kEndHeaders | kEndStream, 1, block);
    // read 1: 4096 bytes copied of 4600; read 2: the rest, copied
    feedCut(*p, kSend, f.substr(0, 4600), 4096, 100);
    feed(*p, kSend, f.substr(4600), 110);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 1, indexed(kStatus200)), 200);
    feed(*p, kSend, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kGet) + indexed(62)), 300);
    feed(*p, kRecv, frame(kHeaders, kEndHeaders | kEndStream, 3, indexed(kStatus200)), 400);
    for (const auto& e : s.got) EXPECT_NE(e.path.substr(0, 5), "/gap/") << "decoded across the gap";
    EXPECT_GE(p->counters().desyncs, 1u);
}

}  // namespace
