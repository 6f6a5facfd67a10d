// The Kafka and AMQP 0-9-1 parsers (l7::MessageParser) on messages built here from the
// protocols' formats (the Kafka protocol guide's schemas, the AMQP 0-9-1 specification):
// request/response pairing (Kafka by correlation id, AMQP per channel), error codes,
// flexible versions, content frames, chunks cut by the capture, corrupt frames. The
// recordings of real traffic (tests/data/l7/kafka.rec, amqp.rec) are replayed by
// L7Recordings and, cut and corrupted byte by byte, by MqRecordings below.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/metrics/l7.hpp>
#include <netprobe/l7/amqp.hpp>
#include <netprobe/l7/kafka.hpp>
#include <netprobe/l7/tracker.hpp>

#include "support/l7_parser_driver.hpp"
#include "support/l7_recording.hpp"

namespace {

using namespace netprobe::l7;

using netprobe::testing::feed;
using netprobe::testing::kRecv;
using netprobe::testing::kSend;
using netprobe::testing::Sink;

// ---- encoders (big-endian primitives of both protocols) ----

struct Bytes {
    std::string s;
    Bytes& i8(int v) { s += static_cast<char>(v); return *this; }
    Bytes& i16(int v) { return i8(v >> 8).i8(v); }
    Bytes& i32(std::int64_t v) { return i16(static_cast<int>(v >> 16)).i16(static_cast<int>(v)); }
    Bytes& i64(std::int64_t v) { return i32(v >> 32).i32(v); }
    Bytes& raw(std::string_view b) { s += b; return *this; }
    Bytes& uvarint(std::uint64_t v) {
        do {
            const int b = static_cast<int>(v & 0x7f);
            v >>= 7;
            i8(b | (v ? 0x80 : 0));
        } while (v);
        return *this;
    }
    // Kafka STRING / COMPACT_STRING, ARRAY / COMPACT_ARRAY, tagged fields
    Bytes& str(bool flex, std::string_view v) {
        if (flex) uvarint(v.size() + 1); else i16(static_cast<int>(v.size()));
        return raw(v);
    }
    Bytes& arr(bool flex, std::int64_t n) { return flex ? uvarint(static_cast<std::uint64_t>(n + 1)) : i32(n); }
    Bytes& tags(bool flex) { return flex ? i8(0) : *this; }
    // AMQP short string
    Bytes& sstr(std::string_view v) { return i8(static_cast<int>(v.size())).raw(v); }
};

// A Kafka request: size, api key, version, correlation id, client id ("kcat"), the
// header's tagged fields in flexible versions, the body.
std::string kafkaRequest(int key, int version, std::int32_t corr, const std::string& body) {
    Bytes h;
    h.i16(key).i16(version).i32(corr).str(false, "kcat");
    if (kafkaFlexible(key, version)) h.tags(true);
    h.raw(body);
    return Bytes{}.i32(static_cast<std::int64_t>(h.s.size())).raw(h.s).s;
}

// A response: size, correlation id, tagged fields (flexible versions but ApiVersions'), body.
std::string kafkaResponse(int key, int version, std::int32_t corr, const std::string& body) {
    Bytes h;
    h.i32(corr);
    if (key != 18 && kafkaFlexible(key, version)) h.tags(true);
    h.raw(body);
    return Bytes{}.i32(static_cast<std::int64_t>(h.s.size())).raw(h.s).s;
}

std::string produceBody(int v, std::string_view topic, int acks, std::string_view records = "0123456789") {
    const bool f = v >= 9;
    Bytes b;
    if (v >= 3) {
        if (f) b.uvarint(0); else b.i16(-1);  // null transactional_id
    }
    b.i16(acks).i32(30000).arr(f, 1).str(f, topic).arr(f, 1).i32(0);
    if (f) b.uvarint(records.size() + 1); else b.i32(static_cast<std::int64_t>(records.size()));
    b.raw(records).tags(f).tags(f).tags(f);
    return b.s;
}

std::string produceResponseBody(int v, std::string_view topic, int error) {
    const bool f = v >= 9;
    Bytes b;
    b.arr(f, 1).str(f, topic).arr(f, 1).i32(0).i16(error).i64(42);
    if (v >= 2) b.i64(-1);
    if (v >= 5) b.i64(0);
    if (v >= 8) {
        b.arr(f, 0);
        if (f) b.uvarint(0); else b.i16(-1);
    }
    b.tags(f).tags(f).i32(0).tags(f);
    return b.s;
}

std::string metadataResponseBody(int v, std::string_view topic, int topic_error, int partition_error) {
    const bool f = v >= 9;
    Bytes b;
    if (v >= 3) b.i32(0);
    b.arr(f, 1).i32(0).str(f, "198.19.0.2").i32(9092);
    if (v >= 1) {
        if (f) b.uvarint(0); else b.i16(-1);  // rack
    }
    b.tags(f);
    if (v >= 2) b.str(f, "cluster");
    if (v >= 1) b.i32(0);
    b.arr(f, 1).i16(topic_error).str(f, topic);
    if (v >= 10) b.raw(std::string(16, '\x07'));
    if (v >= 1) b.i8(0);
    b.arr(f, 1).i16(partition_error).i32(0).i32(0);
    if (v >= 7) b.i32(0);
    b.arr(f, 1).i32(0).arr(f, 1).i32(0);
    if (v >= 5) b.arr(f, 0);
    b.tags(f);
    if (v >= 8) b.i32(0);
    b.tags(f);
    if (v >= 8 && v <= 10) b.i32(0);
    if (v >= 13) b.i16(0);
    b.tags(f);
    return b.s;
}

std::string fetchResponseBody(int v, std::string_view topic, int top_error, std::vector<int> partition_errors,
                              std::size_t record_bytes) {
    const bool f = v >= 12;
    Bytes b;
    b.i32(0);
    if (v >= 7) b.i16(top_error).i32(0);
    b.arr(f, 1).str(f, topic).arr(f, static_cast<std::int64_t>(partition_errors.size()));
    for (std::size_t i = 0; i < partition_errors.size(); ++i) {
        b.i32(static_cast<std::int64_t>(i)).i16(partition_errors[i]).i64(10).i64(10);
        if (v >= 5) b.i64(0);
        b.arr(f, 0);
        if (v >= 11) b.i32(-1);
        if (f) b.uvarint(record_bytes + 1); else b.i32(static_cast<std::int64_t>(record_bytes));
        b.raw(std::string(record_bytes, 'r')).tags(f);
    }
    b.tags(f).tags(f);
    return b.s;
}

std::unique_ptr<MessageParser> kafka(Sink& s) { return makeKafkaParser(s, 128); }

TEST(KafkaParser, ApiVersionsV3FlexibleRequestWithV0ResponseHeader) {
    Sink s;
    auto p = kafka(s);
    Bytes body;
    body.str(true, "librdkafka").str(true, "2.0.2").tags(true);
    feed(*p, kSend, kafkaRequest(18, 3, 1, body.s), 100);
    // error 0, api_keys (compact array), throttle, tags - and the header had no tagged fields
    Bytes resp;
    resp.i16(0).arr(true, 1).i16(0).i16(3).i16(9).tags(true).i32(0).tags(true);
    feed(*p, kRecv, kafkaResponse(18, 3, 1, resp.s), 350);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].method, "ApiVersions");
    EXPECT_EQ(s.got[0].path, "ApiVersions");
    EXPECT_TRUE(s.got[0].client);
    EXPECT_FALSE(s.got[0].error);
    EXPECT_FALSE(s.got[0].outcome_unknown);
    EXPECT_EQ(s.got[0].request_ns, 100u);
    EXPECT_EQ(s.got[0].response_ns, 350u);
    // An UNSUPPORTED_VERSION answer (in v0's format)
    feed(*p, kSend, kafkaRequest(18, 4, 2, body.s), 400);
    feed(*p, kRecv, kafkaResponse(18, 0, 2, Bytes{}.i16(35).i32(0).s), 450);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_TRUE(s.got[1].error);
    EXPECT_EQ(s.got[1].error_code, "35");
    EXPECT_STREQ(kafkaErrorName(35), "UNSUPPORTED_VERSION");
}

TEST(KafkaParser, ProduceTopicAndPerPartitionErrorsNonFlexibleAndFlexible) {
    for (int v : {3, 7, 8, 9, 10}) {
        SCOPED_TRACE(v);
        Sink s;
        auto p = kafka(s);
        feed(*p, kSend, kafkaRequest(0, v, 7, produceBody(v, "orders", -1)), 10);
        feed(*p, kSend, kafkaRequest(0, v, 8, produceBody(v, "orders", -1)), 20);
        feed(*p, kRecv, kafkaResponse(0, v, 7, produceResponseBody(v, "orders", 0)), 30);
        feed(*p, kRecv, kafkaResponse(0, v, 8, produceResponseBody(v, "orders", 87)), 40);
        ASSERT_EQ(s.got.size(), 2u);
        EXPECT_EQ(s.got[0].method, "Produce");
        EXPECT_EQ(s.got[0].path, "orders");
        EXPECT_FALSE(s.got[0].error);
        EXPECT_FALSE(s.got[0].outcome_unknown);
        EXPECT_TRUE(s.got[1].error);
        EXPECT_EQ(s.got[1].error_code, "87");
        EXPECT_EQ(s.got[1].request_ns, 20u);
        EXPECT_EQ(s.got[1].response_ns, 40u);
        p->close();
        EXPECT_EQ(p->counters().unanswered, 0u);
        EXPECT_EQ(p->counters().unmatched_responses, 0u);
        EXPECT_EQ(p->counters().desyncs, 0u);
    }
}

TEST(KafkaParser, ProduceWithAcksZeroHasNoResponseAndIsReportedAtOnce) {
    Sink s;
    auto p = kafka(s);
    feed(*p, kSend, kafkaRequest(0, 7, 3, produceBody(7, "fire", 0)), 10);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_TRUE(s.got[0].outcome_unknown);
    EXPECT_EQ(s.got[0].response_ns, 10u);
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
}

TEST(KafkaParser, MetadataErrorsPerTopicAndPartitionInEveryVersion) {
    for (int v = 0; v <= 13; ++v) {
        SCOPED_TRACE(v);
        Sink s;
        auto p = kafka(s);
        const bool f = v >= 9;
        Bytes req;
        req.arr(f, 1);
        if (v >= 10) req.raw(std::string(16, '\0'));
        req.str(f, "orders").tags(f);
        if (v >= 4) req.i8(1);
        req.tags(f);
        feed(*p, kSend, kafkaRequest(3, v, 1, req.s), 1);
        feed(*p, kRecv, kafkaResponse(3, v, 1, metadataResponseBody(v, "orders", 0, 0)), 2);
        feed(*p, kSend, kafkaRequest(3, v, 2, req.s), 3);
        feed(*p, kRecv, kafkaResponse(3, v, 2, metadataResponseBody(v, "orders", 3, 0)), 4);
        feed(*p, kSend, kafkaRequest(3, v, 3, req.s), 5);
        feed(*p, kRecv, kafkaResponse(3, v, 3, metadataResponseBody(v, "orders", 0, 5)), 6);
        ASSERT_EQ(s.got.size(), 3u);
        EXPECT_FALSE(s.got[0].error);
        EXPECT_FALSE(s.got[0].outcome_unknown) << "the whole response was parsed";
        EXPECT_EQ(s.got[1].error_code, "3");
        EXPECT_EQ(s.got[2].error_code, "5");
        EXPECT_EQ(s.got[0].path, "Metadata");
    }
}

TEST(KafkaParser, FetchTopicTopLevelAndPartitionErrorsAndResponsesCutByTheCapture) {
    for (int v : {4, 7, 11, 12}) {
        SCOPED_TRACE(v);
        const bool f = v >= 12;
        Bytes req;
        req.i32(-1).i32(500).i32(1).i32(1 << 20).i8(0);
        if (v >= 7) req.i32(0).i32(-1);
        req.arr(f, 1).str(f, "orders").arr(f, 0).tags(f);
        if (v >= 7) req.arr(f, 0);
        if (v >= 11) req.str(f, "");
        req.tags(f);
        Sink s;
        auto p = kafka(s);
        feed(*p, kSend, kafkaRequest(1, v, 1, req.s), 1);
        feed(*p, kRecv, kafkaResponse(1, v, 1, fetchResponseBody(v, "orders", 0, {0, 0}, 40)), 2);
        feed(*p, kSend, kafkaRequest(1, v, 2, req.s), 3);
        feed(*p, kRecv, kafkaResponse(1, v, 2, fetchResponseBody(v, "orders", 0, {0, 1}, 40)), 4);
        // records of 2000 bytes in the first partition: the capture's 512 bytes end in them,
        // the second partition's code is not seen: unknown, not ok
        feed(*p, kSend, kafkaRequest(1, v, 3, req.s), 5);
        const std::string big = kafkaResponse(1, v, 3, fetchResponseBody(v, "orders", 0, {0, 0}, 2000));
        p->feed(kRecv, Chunk{std::string_view(big).substr(0, 512), big.size(), {}, 6});
        // ... but a non-zero code seen before the cut is an error
        feed(*p, kSend, kafkaRequest(1, v, 4, req.s), 7);
        const std::string bad = kafkaResponse(1, v, 4, fetchResponseBody(v, "orders", 0, {6, 0}, 2000));
        p->feed(kRecv, Chunk{std::string_view(bad).substr(0, 512), bad.size(), {}, 8});
        // one partition whose records run past the capture: its code was seen, nothing follows
        feed(*p, kSend, kafkaRequest(1, v, 6, req.s), 9);
        const std::string one = kafkaResponse(1, v, 6, fetchResponseBody(v, "orders", 0, {0}, 20000));
        p->feed(kRecv, Chunk{std::string_view(one).substr(0, 512), one.size(), {}, 10});
        ASSERT_EQ(s.got.size(), 5u);
        EXPECT_FALSE(s.got[4].outcome_unknown);
        EXPECT_FALSE(s.got[4].error);
        s.got.pop_back();
        EXPECT_EQ(s.got[0].path, "orders");
        EXPECT_FALSE(s.got[0].error);
        EXPECT_FALSE(s.got[0].outcome_unknown);
        EXPECT_EQ(s.got[1].error_code, "1");
        EXPECT_TRUE(s.got[2].outcome_unknown);
        EXPECT_EQ(s.got[3].error_code, "6");
        EXPECT_EQ(s.got[2].response_bytes, big.size());
        if (v >= 7) {
            feed(*p, kSend, kafkaRequest(1, v, 5, req.s), 9);
            feed(*p, kRecv, kafkaResponse(1, v, 5, fetchResponseBody(v, "orders", 70, {}, 0)), 10);
            ASSERT_EQ(s.got.size(), 5u);
            EXPECT_EQ(s.got[4].error_code, "70");  // FETCH_SESSION_ID_NOT_FOUND, top level
        }
        EXPECT_EQ(p->counters().desyncs, 0u);
    }
}

TEST(KafkaParser, PairedByCorrelationIdAcrossSplitReadsAndOlderRequestsUnanswered) {
    Sink s;
    auto p = kafka(s);
    const std::string body = produceBody(7, "orders", -1);
    for (int corr = 10; corr < 14; ++corr) feed(*p, kSend, kafkaRequest(0, 7, corr, body), 100 + corr);
    // the response to 12, read as the client reads it: its size and correlation id, then the rest
    const std::string r12 = kafkaResponse(0, 7, 12, produceResponseBody(7, "orders", 0));
    feed(*p, kRecv, std::string_view(r12).substr(0, 8), 200);
    feed(*p, kRecv, std::string_view(r12).substr(8), 201);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].request_ns, 112u);
    EXPECT_EQ(s.got[0].response_ns, 200u);
    EXPECT_EQ(s.got[0].response_bytes, r12.size());
    EXPECT_EQ(p->counters().unanswered, 2u);  // 10 and 11: answered in bytes not seen
    feed(*p, kRecv, kafkaResponse(0, 7, 99, produceResponseBody(7, "orders", 0)), 300);
    EXPECT_EQ(p->counters().unmatched_responses, 1u);
    p->close();
    EXPECT_EQ(p->counters().unanswered, 3u);  // 13
}

TEST(KafkaParser, ServerEndAndLostFramingResynchronisesOnARequest) {
    Sink s;
    auto p = kafka(s);
    const std::string req = kafkaRequest(3, 4, 1, Bytes{}.i32(0).i8(1).s);
    feed(*p, kRecv, req, 1);  // the broker reads the request
    feed(*p, kSend, kafkaResponse(3, 4, 1, metadataResponseBody(4, "t", 0, 0)), 2);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_FALSE(s.got[0].client);
    // a read whose next request's size fell in bytes not captured: lost ...
    const std::string two = req + req;
    p->feed(kRecv, Chunk{std::string_view(two).substr(0, 3), two.size() + 5000, {}, 3});
    EXPECT_EQ(p->counters().desyncs, 1u);
    // ... until a read starts with a request again
    feed(*p, kRecv, kafkaRequest(3, 4, 9, Bytes{}.i32(0).i8(1).s), 4);
    feed(*p, kSend, kafkaResponse(3, 4, 9, metadataResponseBody(4, "t", 0, 0)), 5);
    ASSERT_EQ(s.got.size(), 2u);
    EXPECT_EQ(s.got[1].request_ns, 4u);
}

TEST(KafkaParser, NotARequestIsNeverOne) {
    // size, api key, version, correlation id, client id (all of it, the size right)
    auto header = [](int key, int version, std::int32_t corr, std::string_view client) {
        Bytes h;
        h.i16(key).i16(version).i32(corr).i16(static_cast<int>(client.size())).raw(client);
        return Bytes{}.i32(static_cast<std::int64_t>(h.s.size())).raw(h.s).s;
    };
    const std::string good = header(3, 1, 5, "kcat");
    auto q = parseKafkaRequest(good, good.size());
    ASSERT_TRUE(q);
    EXPECT_EQ(q->api_key, 3);
    EXPECT_EQ(q->correlation_id, 5);
    EXPECT_FALSE(parseKafkaRequest(good, good.size() + 1));  // size and length disagree
    EXPECT_FALSE(parseKafkaRequest(std::string(20, '\0'), 20));  // size 0
    for (const std::string& bad : {header(900, 1, 5, "kcat"),   // api key beyond the table
                                   header(3, 40, 5, "kcat"),    // version out of range
                                   header(3, 1, -5, "kcat"),    // negative correlation id
                                   header(3, 1, 5, "\x01\x02\x03\x04"),  // client id not text
                                   header(3, 1, 5, "kcat\xff")}) {        // ... in its first 8 bytes
        EXPECT_FALSE(parseKafkaRequest(bad, bad.size())) << testing::PrintToString(bad);
    }
    // a client id longer than the request
    std::string longer = good;
    longer[13] = 40;
    EXPECT_FALSE(parseKafkaRequest(longer, longer.size()));
}

TEST(KafkaTracker, SplitSizeFromTheKernelIsPutBack) {
    // A broker that read the size alone: the kernel's record of the rest has NP_L7_F_SPLIT.
    ConnectionTracker t;
    netprobe::ebpf::L7Message m;
    m.sock = 0xabc;
    m.protocol = NP_L7_KAFKA;
    m.local_port = 9092;
    m.remote_port = 50000;
    m.family = 4;
    const std::string req = kafkaRequest(18, 3, 1, Bytes{}.str(true, "x").str(true, "1").tags(true).s);
    m.direction = NP_L7_RECV;
    m.flags = NP_L7_F_SPLIT;
    m.head = req.substr(4);
    m.len = static_cast<std::uint32_t>(m.head.size());
    m.ts_ns = 1000;
    t.feed(m);
    m.direction = NP_L7_SEND;
    m.flags = 0;
    m.head = kafkaResponse(18, 3, 1, Bytes{}.i16(0).arr(true, 0).i32(0).tags(true).s);
    m.len = static_cast<std::uint32_t>(m.head.size());
    m.ts_ns = 3000;
    t.feed(m);
    auto rs = t.take();
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].protocol, "kafka");
    EXPECT_EQ(rs[0].side, Side::Server);
    EXPECT_EQ(rs[0].method, "ApiVersions");
    EXPECT_EQ(rs[0].request_bytes, req.size());
    EXPECT_EQ(netprobe::analysis::l7::statusClass(rs[0]), "ok");
}

TEST(KafkaTracker, StatusClassIsTheErrorsName) {
    netprobe::l7::Request r;
    r.protocol = "kafka";
    r.status = 1;
    r.error = "3";
    EXPECT_EQ(netprobe::analysis::l7::statusClass(r), "UNKNOWN_TOPIC_OR_PARTITION");
    EXPECT_TRUE(netprobe::analysis::l7::isError(r));
    r.error = "-1";
    EXPECT_EQ(netprobe::analysis::l7::statusClass(r), "UNKNOWN_SERVER_ERROR");
    r.error = "31000";
    EXPECT_EQ(netprobe::analysis::l7::statusClass(r), "error");
    r.status = 2;
    EXPECT_EQ(netprobe::analysis::l7::statusClass(r), "unknown");
    r.protocol = "amqp";
    r.status = 1;
    r.error = "406";
    EXPECT_EQ(netprobe::analysis::l7::statusClass(r), "PRECONDITION_FAILED");
}

// Topics and queues are route values from traffic: a budget of their own, then "other";
// a route that is the method (no topic) takes none of it.
TEST(KafkaStage, TopicsAreBudgetedAndErrorNamesFilter) {
    netprobe::analysis::l7::L7Options o;
    o.max_topics = 2;
    netprobe::analysis::l7::L7Stage stage(o);
    netprobe::collector::Snapshot snap;
    snap.mono = std::chrono::steady_clock::now();
    auto sample = std::make_shared<netprobe::collector::L7Sample>();
    auto add = [&](const char* protocol, const char* method, const char* route, int status, const char* error) {
        netprobe::l7::Request r;
        r.protocol = protocol;
        r.method = method;
        r.path = r.route = route;
        r.status = status;
        r.error = error;
        r.server_port = 9092;
        sample->requests.push_back(r);
    };
    add("kafka", "Produce", "orders", 0, "");
    add("kafka", "Metadata", "Metadata", 0, "");
    add("amqp", "basic.publish", "events", 0, "");
    add("kafka", "Produce", "audit", 1, "3");  // a third name: past the budget
    add("amqp", "queue.declare", "events", 1, "406");
    snap.l7 = sample;
    netprobe::analysis::Views v;
    stage.run(snap, v);
    std::map<std::string, std::uint64_t> routes;
    for (const auto& e : v.l7->endpoints) routes[e.protocol + " " + e.method + " " + e.route] += e.requests_total;
    EXPECT_EQ(routes, (std::map<std::string, std::uint64_t>{{"amqp basic.publish events", 1},
                                                            {"amqp queue.declare events", 1},
                                                            {"kafka Metadata Metadata", 1},
                                                            {"kafka Produce orders", 1},
                                                            {"kafka Produce other", 1}}));
    EXPECT_EQ(v.l7->counters.topics_overflow, 1u);
    std::map<std::string, std::uint64_t> classes;
    for (const auto& [k, t] : v.l7->series) classes[k.protocol + " " + k.status_class] += t.requests;
    EXPECT_EQ(classes["kafka UNKNOWN_TOPIC_OR_PARTITION"], 1u);
    EXPECT_EQ(classes["amqp PRECONDITION_FAILED"], 1u);
    // the API's status filter takes the names
    for (const char* name : {"UNKNOWN_TOPIC_OR_PARTITION", "INVALID_RECORD", "PRECONDITION_FAILED", "NO_ROUTE"}) {
        auto q = netprobe::metrics::parseL7Query({{"status", name}}, true);
        ASSERT_TRUE(q) << name;
        EXPECT_EQ(q->status_name, name);
    }
    const std::string json = netprobe::metrics::l7RequestsJson(v.l7.get(), *netprobe::metrics::parseL7Query(
                                                                               {{"status", "PRECONDITION_FAILED"}}, true));
    EXPECT_NE(json.find("\"queue.declare\""), std::string::npos) << json;
    EXPECT_EQ(json.find("basic.publish"), std::string::npos) << json;
}

// ---- AMQP 0-9-1 ----

std::string frame(int type, int channel, const std::string& payload) {
    return Bytes{}.i8(type).i16(channel).i32(static_cast<std::int64_t>(payload.size())).raw(payload).i8(0xce).s;
}
std::string method(int channel, int cls, int mth, const std::string& args = {}) {
    return frame(1, channel, Bytes{}.i16(cls).i16(mth).raw(args).s);
}
std::string contentHeader(int channel, std::uint64_t body) {
    return frame(2, channel, Bytes{}.i16(60).i16(0).i64(static_cast<std::int64_t>(body)).i16(0).s);
}
const std::string kProtocolHeader("AMQP\x00\x00\x09\x01", 8);

std::unique_ptr<MessageParser> amqpClient(Sink& s) { return makeAmqpParser(s, 51000, 5672); }

// The connection's opening as pika and RabbitMQ exchange it.
void open(MessageParser& p, int channel = 1) {
    feed(p, kSend, kProtocolHeader, 1);
    feed(p, kRecv, method(0, 10, 10, Bytes{}.i8(0).i8(9).i32(0).i32(5).raw("PLAIN").i32(5).raw("en_US").s), 2);
    feed(p, kSend, method(0, 10, 11), 3);
    feed(p, kRecv, method(0, 10, 30, Bytes{}.i16(2047).i32(131072).i16(60).s), 4);
    feed(p, kSend, method(0, 10, 31) + method(0, 10, 40, Bytes{}.sstr("/").sstr("").i8(0).s), 5);
    feed(p, kRecv, method(0, 10, 41, Bytes{}.sstr("").s), 6);
    feed(p, kSend, method(channel, 20, 10, Bytes{}.sstr("").s), 7);
    feed(p, kRecv, method(channel, 20, 11, Bytes{}.i32(0).s), 8);
}

std::map<std::string, int> methods(const Sink& s) {
    std::map<std::string, int> m;
    for (const auto& e : s.got) ++m[e.method];
    return m;
}

TEST(AmqpParser, OpeningHandshakeIsPairedAndTheClientIsKnown) {
    Sink s;
    auto p = makeAmqpParser(s, 5672, 5672);  // the ports do not tell: the protocol header does
    open(*p);
    auto m = methods(s);
    EXPECT_EQ(m["connection.start"], 1);
    EXPECT_EQ(m["connection.tune"], 1);
    EXPECT_EQ(m["connection.open"], 1);
    EXPECT_EQ(m["channel.open"], 1);
    EXPECT_EQ(s.got.size(), 4u);
    for (const auto& e : s.got) EXPECT_TRUE(e.client) << e.method;
    EXPECT_EQ(s.got[0].request_ns, 2u);  // start: the server's request, the client's start-ok
    EXPECT_EQ(s.got[0].response_ns, 3u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
}

TEST(AmqpParser, QueueDeclareLatencyAndPreconditionFailedByChannelClose) {
    Sink s;
    auto p = amqpClient(s);
    open(*p);
    s.got.clear();
    const std::string declare = method(1, 50, 10, Bytes{}.i16(0).sstr("orders").i8(0).i32(0).s);
    feed(*p, kSend, declare, 100);
    feed(*p, kRecv, method(1, 50, 11, Bytes{}.sstr("orders").i32(0).i32(0).s), 160);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].method, "queue.declare");
    EXPECT_EQ(s.got[0].path, "orders");
    EXPECT_EQ(s.got[0].response_ns - s.got[0].request_ns, 60u);
    EXPECT_EQ(s.got[0].request_bytes, declare.size());
    EXPECT_FALSE(s.got[0].error);
    // durable this time: the broker closes the channel with 406, naming queue.declare
    feed(*p, kSend, method(1, 50, 10, Bytes{}.i16(0).sstr("orders").i8(2).i32(0).s), 200);
    feed(*p, kRecv, method(1, 20, 40, Bytes{}.i16(406).sstr("PRECONDITION_FAILED - inequivalent arg").i16(50).i16(10).s),
         230);
    feed(*p, kSend, method(1, 20, 41), 240);
    ASSERT_EQ(s.got.size(), 3u);
    EXPECT_EQ(s.got[1].method, "queue.declare");
    EXPECT_TRUE(s.got[1].error);
    EXPECT_EQ(s.got[1].error_code, "406");
    EXPECT_EQ(s.got[1].response_ns, 230u);
    EXPECT_EQ(s.got[2].method, "channel.close");
    EXPECT_EQ(s.got[2].error_code, "406");
    EXPECT_EQ(s.got[2].request_ns, 230u);
    EXPECT_EQ(s.got[2].response_ns, 240u);
    EXPECT_STREQ(amqpReplyName(406), "PRECONDITION_FAILED");
    // a channel closed normally is no error
    feed(*p, kSend, method(2, 20, 10, Bytes{}.sstr("").s), 300);
    feed(*p, kRecv, method(2, 20, 11, Bytes{}.i32(0).s), 301);
    feed(*p, kSend, method(2, 20, 40, Bytes{}.i16(200).sstr("Normal shutdown").i16(0).i16(0).s), 302);
    feed(*p, kRecv, method(2, 20, 41), 303);
    ASSERT_EQ(s.got.size(), 5u);
    EXPECT_EQ(s.got[4].method, "channel.close");
    EXPECT_FALSE(s.got[4].error);
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
    EXPECT_EQ(p->counters().unmatched_responses, 0u);
    EXPECT_EQ(p->counters().desyncs, 0u);
}

TEST(AmqpParser, PublishDeliverAckWithContentInOneWriteOrSplitOrCut) {
    Sink s;
    auto p = amqpClient(s);
    open(*p);
    s.got.clear();
    auto publish = [](int ch, std::string_view exchange, std::string_view key, std::size_t body) {
        return method(ch, 60, 40, Bytes{}.i16(0).sstr(exchange).sstr(key).i8(0).s) + contentHeader(ch, body) +
               frame(3, ch, std::string(body, 'b'));
    };
    const std::string one = publish(1, "", "orders", 20);
    feed(*p, kSend, one + publish(1, "", "orders", 20), 10);  // two in one write
    // one whose frames come in three writes
    const std::string split = publish(1, "amq.topic", "a.b", 30);
    feed(*p, kSend, std::string_view(split).substr(0, 25), 20);
    feed(*p, kSend, std::string_view(split).substr(25, 20), 21);
    feed(*p, kSend, std::string_view(split).substr(45), 22);
    // a 100 kB body of which 512 bytes were copied
    const std::string big = publish(1, "", "orders", 100000);
    p->feed(kSend, Chunk{std::string_view(big).substr(0, 512), big.size(), {}, 30});
    // deliveries, three in one read, then their acks
    std::string deliveries;
    for (int tag = 1; tag <= 3; ++tag)
        deliveries += method(1, 60, 60, Bytes{}.sstr("ctag1").i64(tag).i8(0).sstr("").sstr("orders").s) +
                      contentHeader(1, 5) + frame(3, 1, "hello");
    feed(*p, kRecv, deliveries, 40);
    for (int tag = 1; tag <= 3; ++tag) feed(*p, kSend, method(1, 60, 80, Bytes{}.i64(tag).i8(0).s), 50 + tag);
    // a publisher confirm from the broker
    feed(*p, kRecv, method(1, 60, 80, Bytes{}.i64(1).i8(0).s), 60);
    auto m = methods(s);
    EXPECT_EQ(m["basic.publish"], 4);
    EXPECT_EQ(m["basic.deliver"], 3);
    EXPECT_EQ(m["basic.ack"], 4);
    ASSERT_GE(s.got.size(), 4u);
    EXPECT_EQ(s.got[0].path, "orders");
    EXPECT_EQ(s.got[0].request_bytes, one.size());  // method, header and body frames
    EXPECT_EQ(s.got[2].path, "amq.topic");
    EXPECT_EQ(s.got[2].request_bytes, split.size());
    EXPECT_EQ(s.got[3].request_bytes, big.size());
    for (const auto& e : s.got) {
        EXPECT_EQ(e.request_ns, e.response_ns);  // asynchronous: no response
        EXPECT_FALSE(e.error);
    }
    EXPECT_EQ(p->counters().desyncs, 0u);
}

// A message split as pika and RabbitMQ split it: method, content header, and body frames
// of frame_max - 8 bytes of payload each (the last one shorter).
std::string largeMessage(int ch, std::size_t body, std::size_t frame_max, const std::string& method_frame) {
    std::string out = method_frame + contentHeader(ch, body);
    for (std::size_t at = 0; at < body; at += frame_max - 8)
        out += frame(3, ch, std::string(std::min(frame_max - 8, body - at), static_cast<char>('a' + at % 26)));
    return out;
}

// What the kernel gives of a syscall that moved `bytes`: its first `copy` bytes and, when
// it moved more, its last 16.
Chunk captured(std::string_view bytes, std::size_t copy, std::uint64_t ts) {
    Chunk c{bytes.substr(0, std::min(copy, bytes.size())), bytes.size(), {}, ts};
    if (bytes.size() >= c.head.size() + 16 && bytes.size() > c.head.size()) c.tail = bytes.substr(bytes.size() - 16);
    return c;
}

// Messages larger than the capture's copy (64 KiB and 1 MiB bodies, frame_max 131072 as
// RabbitMQ negotiates it): the body frames whose headers fall in bytes that were not
// copied are known from the content's size and the frame size, through syscalls cut
// anywhere (a broker reading whatever has arrived), so every publication is counted with
// its exact size and the framing is never lost.
TEST(AmqpParser, BodyFramesBeyondTheCopyAreFollowedByTheContentsSize) {
    for (const bool tuned : {true, false}) {
        Sink s;
        auto p = amqpClient(s);
        if (tuned) {
            open(*p);
            feed(*p, kSend, method(0, 10, 31, Bytes{}.i16(2047).i32(131072).i16(0).s), 9);  // tune-ok: the size used
        }
        s.got.clear();
        std::vector<std::size_t> sizes;
        for (int i = 0; i < 6; ++i) sizes.push_back(i % 3 == 0 ? 65536 : i % 3 == 1 ? 1048576 : 300000);
        std::vector<std::string> msgs;
        for (std::size_t i = 0; i < sizes.size(); ++i)
            msgs.push_back(largeMessage(1, sizes[i], 131072,
                                        method(1, 60, 40, Bytes{}.i16(0).sstr("").sstr("big").i8(0).s)));
        // Each message read in pieces of various sizes (the next message starts a read:
        // the publisher waits for its confirm); only 4 KiB of each is copied.
        const std::size_t cuts[] = {70000, 4096, 131080, 5000, 200000, 9};
        std::uint64_t ts = 10;
        for (std::size_t i = 0; i < msgs.size(); ++i) {
            std::string_view rest = msgs[i];
            for (std::size_t k = i; !rest.empty(); ++k) {
                const std::size_t n = std::min(rest.size(), cuts[k % std::size(cuts)]);
                p->feed(kRecv, captured(rest.substr(0, n), 4096, ts++));
                rest.remove_prefix(n);
            }
            // the broker's confirm
            feed(*p, kSend, method(1, 60, 80, Bytes{}.i64(static_cast<std::int64_t>(i + 1)).i8(0).s), ts++);
        }
        p->close();
        auto m = methods(s);
        EXPECT_EQ(m["basic.publish"], 6) << tuned;
        EXPECT_EQ(m["basic.ack"], 6) << tuned;
        std::vector<std::uint64_t> bytes;
        for (const auto& e : s.got)
            if (e.method == "basic.publish") bytes.push_back(e.request_bytes);
        ASSERT_EQ(bytes.size(), msgs.size());
        // (without the tune - capture began later - the frame size is learnt from the first
        // body frame that is not its content's last: the 1 MiB message's first one)
        for (std::size_t i = 0; i < msgs.size(); ++i) EXPECT_EQ(bytes[i], msgs[i].size()) << tuned << i;
        EXPECT_EQ(p->counters().desyncs, 0u) << tuned;
        EXPECT_EQ(p->counters().unanswered, 0u);
    }
}

// The pieces the kernel sends with a syscall's record (Chunk::pieces): per frame that
// begins in [from, bytes.size()) beyond the first `copy` bytes, its first bytes (up to
// NP_L7_PIECE_MAX of a method or content header, the header of any other frame), the
// frame chain starting at byte `first` of the syscall - as bpf/progs/l7.bpf.c walks it.
std::string kernelPieces(std::string_view bytes, std::size_t copy, std::size_t first) {
    std::string out;
    for (std::size_t off = first; off + 7 <= bytes.size();) {
        const auto type = static_cast<unsigned char>(bytes[off]);
        const std::size_t size = static_cast<std::size_t>(
            (std::uint32_t{static_cast<unsigned char>(bytes[off + 3])} << 24) |
            (std::uint32_t{static_cast<unsigned char>(bytes[off + 4])} << 16) |
            (std::uint32_t{static_cast<unsigned char>(bytes[off + 5])} << 8) | static_cast<unsigned char>(bytes[off + 6]));
        if (off + 7 > copy) {
            std::size_t want = type == 1 || type == 2 ? std::min<std::size_t>(size + 8, NP_L7_PIECE_MAX) : 7;
            want = std::min(want, bytes.size() - off);
            out += Bytes{}.raw(std::string{static_cast<char>(off), static_cast<char>(off >> 8),
                                           static_cast<char>(off >> 16), static_cast<char>(off >> 24),
                                           static_cast<char>(want), 0})
                       .raw(bytes.substr(off, want))
                       .s;
        }
        off += size + 8;
    }
    return out;
}

TEST(Pieces, APieceIsFoundByItsOffsetAndACutListEndsIt) {
    const std::string one = kernelPieces(method(1, 60, 80, Bytes{}.i64(1).i8(0).s) + frame(3, 1, "xy"), 0, 0);
    auto a = pieceAt(one, 0);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->bytes.size(), 21u);  // the whole ack frame (8 + 13)
    auto b = pieceAt(one, 21);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->bytes.size(), 7u);  // a body frame: its header
    EXPECT_FALSE(pieceAt(one, 7));
    EXPECT_FALSE(pieceAt(one, 1000));
    for (std::size_t cut = 0; cut < one.size(); ++cut) {  // a cut list gives what is whole before the cut
        auto c = pieceAt(std::string_view(one).substr(0, cut), 21);
        EXPECT_EQ(c.has_value(), cut >= one.size()) << cut;
    }
    EXPECT_FALSE(pieceAt(std::string(5, '\xff'), 0));
}

// A broker writing deliveries faster than the socket takes them (64 KiB bodies, a
// prefetch of 10, as RabbitMQ does; here the client's end reads them in syscalls of any
// size, framed the same way): syscalls end and begin anywhere in a frame,
// and the method and content-header frames of the later deliveries lie beyond the 4 KiB
// copy. With the kernel's pieces (the frame chain walked from where the previous syscall
// left it) every delivery is counted with its exact bytes; without them the framing is
// lost at the first such method frame.
TEST(AmqpParser, DeliveriesBeyondTheCopyAreFramedFromTheKernelsPieces) {
    std::string stream;
    std::vector<std::size_t> sizes;
    for (int tag = 1; tag <= 10; ++tag) {
        const std::string d = largeMessage(
            1, tag % 3 ? 65536 : 300000, 131072,
            method(1, 60, 60, Bytes{}.sstr("ctag1.0123456789abcdef").i64(tag).i8(0).sstr("").sstr("big").s));
        sizes.push_back(d.size());
        stream += d;
    }
    // the syscalls' sizes (the socket taking what it has room for)
    const std::size_t cuts[] = {65699, 44661, 86635, 200000, 131072, 7, 3, 250000, 90000};
    for (const bool pieces : {true, false}) {
        Sink s;
        auto p = amqpClient(s);  // (the client's reads: framed as the broker's writes are)
        open(*p);
        feed(*p, kSend, method(0, 10, 31, Bytes{}.i16(2047).i32(131072).i16(0).s), 9);
        s.got.clear();
        std::uint64_t ts = 100;
        std::size_t at = 0, next = 0;  // the chain: where the next frame begins
        for (std::size_t k = 0; at < stream.size(); ++k) {
            const std::string_view sc = std::string_view(stream).substr(at, cuts[k % std::size(cuts)]);
            Chunk c = captured(sc, 4096, ts++);
            const std::string pz = kernelPieces(sc, 4096, next - at);
            if (pieces) c.pieces = pz;
            p->feed(kRecv, c);
            at += sc.size();
            while (next < at) {  // (the test's own walk of the whole stream)
                std::size_t size = 0;
                for (std::size_t i = 3; i < 7; ++i) size = size << 8 | static_cast<unsigned char>(stream[next + i]);
                next += size + 8;
            }
        }
        p->close();
        std::vector<std::uint64_t> bytes;
        for (const auto& e : s.got)
            if (e.method == "basic.deliver") bytes.push_back(e.request_bytes);
        if (pieces) {
            ASSERT_EQ(bytes.size(), sizes.size());
            for (std::size_t i = 0; i < sizes.size(); ++i) EXPECT_EQ(bytes[i], sizes[i]) << i;
            EXPECT_EQ(p->counters().desyncs, 0u);
            for (const auto& e : s.got) EXPECT_EQ(e.path, "big");
        } else {
            EXPECT_LT(bytes.size(), sizes.size());
            EXPECT_GT(p->counters().desyncs, 0u);
        }
    }
}

// A predicted body frame whose header or frame end the copied bytes contradict is not
// taken: the framing is lost (counted) until a syscall starts with a frame.
TEST(AmqpParser, BodyFramesContradictedByTheCopiedBytesLoseTheFraming) {
    Sink s;
    auto p = amqpClient(s);
    open(*p);
    feed(*p, kSend, method(0, 10, 31, Bytes{}.i16(2047).i32(131072).i16(0).s), 9);
    s.got.clear();
    // the sender used frames of 4096 bytes of payload, not the frame size's: the second
    // body frame's header, of which the copy has 6 bytes, is not the one expected there
    const std::string pub = method(1, 60, 40, Bytes{}.i16(0).sstr("").sstr("q").i8(0).s);
    const std::string msg = largeMessage(1, 20000, 4096 + 8, pub);
    const std::size_t second = pub.size() + contentHeader(1, 20000).size() + 4096 + 8;
    ASSERT_EQ(msg.substr(second, 7), Bytes{}.i8(3).i16(1).i32(4096).s);
    p->feed(kSend, captured(msg, second + 6, 10));
    EXPECT_EQ(p->counters().desyncs, 1u);
    // with 5 bytes of it copied nothing contradicts the frame the frame size puts there
    // (the same type, channel and first size bytes): it is taken, the content ends with it
    // 24 bytes before the syscall does, and the bytes after it are not known - the
    // framing is lost there (counted), the publication counted once
    Sink s1;
    auto p1 = amqpClient(s1);
    open(*p1);
    feed(*p1, kSend, method(0, 10, 31, Bytes{}.i16(2047).i32(131072).i16(0).s), 9);
    s1.got.clear();
    p1->feed(kSend, captured(msg, second + 5, 10));
    EXPECT_EQ(p1->counters().desyncs, 1u);
    EXPECT_EQ(methods(s1)["basic.publish"], 1);
    // the tail contradicts: a frame-end octet missing at the end of the syscall
    Sink s2;
    auto p2 = amqpClient(s2);
    open(*p2);
    feed(*p2, kSend, method(0, 10, 31, Bytes{}.i16(2047).i32(131072).i16(0).s), 9);
    std::string msg2 = largeMessage(1, 300000, 131072, method(1, 60, 40, Bytes{}.i16(0).sstr("").sstr("q").i8(0).s));
    msg2.back() = 'x';
    p2->feed(kSend, captured(msg2, 4096, 10));
    EXPECT_EQ(p2->counters().desyncs, 1u);
    feed(*p2, kSend, method(1, 60, 80, Bytes{}.i64(1).i8(0).s), 11);  // a frame starts a syscall: in sync again
    EXPECT_EQ(methods(s2)["basic.ack"], 1);
}

TEST(AmqpParser, GetOkCarriesContentGetEmptyNoWaitAndReturn) {
    Sink s;
    auto p = amqpClient(s);
    open(*p);
    s.got.clear();
    feed(*p, kSend, method(1, 60, 70, Bytes{}.i16(0).sstr("orders").i8(1).s), 10);
    const std::string ok = method(1, 60, 71, Bytes{}.i64(1).i8(0).sstr("").sstr("orders").i32(0).s);
    const std::string content = contentHeader(1, 3) + frame(3, 1, "abc");
    feed(*p, kRecv, ok + content, 15);
    feed(*p, kSend, method(1, 60, 70, Bytes{}.i16(0).sstr("orders").i8(1).s), 20);
    feed(*p, kRecv, method(1, 60, 72, Bytes{}.sstr("").s), 22);
    // queue.bind with no-wait: no reply comes, reported at once
    feed(*p, kSend, method(1, 50, 20, Bytes{}.i16(0).sstr("orders").sstr("amq.direct").sstr("k").i8(1).i32(0).s), 30);
    // a mandatory message the broker could not route
    feed(*p, kRecv,
         method(1, 60, 50, Bytes{}.i16(312).sstr("NO_ROUTE").sstr("amq.direct").sstr("nowhere").s) +
             contentHeader(1, 0),
         40);
    ASSERT_EQ(s.got.size(), 4u);
    EXPECT_EQ(s.got[0].method, "basic.get");
    EXPECT_EQ(s.got[0].response_bytes, ok.size() + content.size());
    EXPECT_EQ(s.got[0].response_ns, 15u);
    EXPECT_EQ(s.got[1].method, "basic.get");
    EXPECT_EQ(s.got[1].response_ns, 22u);
    EXPECT_EQ(s.got[2].method, "queue.bind");
    EXPECT_EQ(s.got[2].response_ns, 30u);
    EXPECT_EQ(s.got[3].method, "basic.return");
    EXPECT_EQ(s.got[3].error_code, "312");
    EXPECT_EQ(s.got[3].path, "amq.direct");
}

TEST(AmqpParser, AFrameWithoutItsFrameEndLosesTheDirectionUntilAFrameStarts) {
    Sink s;
    auto p = amqpClient(s);
    open(*p);
    s.got.clear();
    std::string bad = method(1, 60, 80, Bytes{}.i64(1).i8(0).s);
    bad.back() = 'x';
    feed(*p, kSend, bad + method(1, 60, 80, Bytes{}.i64(2).i8(0).s), 10);
    EXPECT_EQ(s.got.size(), 0u);
    EXPECT_EQ(p->counters().desyncs, 1u);
    feed(*p, kSend, "garbage that is no frame", 11);
    feed(*p, kSend, method(1, 60, 80, Bytes{}.i64(3).i8(0).s), 12);
    ASSERT_EQ(s.got.size(), 1u);
    EXPECT_EQ(s.got[0].request_ns, 12u);
}

TEST(AmqpParser, ConnectionCloseAnswersEveryChannelAndMidConnectionCaptureUsesRoles) {
    Sink s;
    auto p = makeAmqpParser(s, 40000, 5672);
    // no protocol header seen: basic.publish is the client's
    feed(*p, kSend, method(3, 50, 10, Bytes{}.i16(0).sstr("q3").i8(0).i32(0).s), 1);
    feed(*p, kSend, method(4, 50, 10, Bytes{}.i16(0).sstr("q4").i8(0).i32(0).s), 2);
    feed(*p, kRecv, method(0, 10, 50, Bytes{}.i16(320).sstr("CONNECTION_FORCED").i16(0).i16(0).s), 3);
    feed(*p, kSend, method(0, 10, 51), 4);
    auto m = methods(s);
    EXPECT_EQ(m["queue.declare"], 2);
    EXPECT_EQ(m["connection.close"], 1);
    for (const auto& e : s.got) EXPECT_EQ(e.error_code, "320") << e.method;
    p->close();
    EXPECT_EQ(p->counters().unanswered, 0u);
}

// ---- the recordings of real traffic, cut and corrupted ----

std::vector<netprobe::ebpf::L7Message> recording(const char* name) {
    auto rec = netprobe::testing::readL7Recording(std::string(NETPROBE_SOURCE_DIR) + "/tests/data/l7/" + name);
    EXPECT_TRUE(rec) << (rec ? "" : rec.error());
    return rec ? rec->messages : std::vector<netprobe::ebpf::L7Message>{};
}

// Every message of every connection of the recording, cut at every length (as a read
// that moved fewer bytes, and as a capture that copied fewer) and with each byte
// corrupted, replayed with the rest of its connection: nothing crashes or loops, and no
// more requests are reported than the connection's bytes can hold (a Kafka request
// takes 14 bytes at least, an AMQP frame 8).
void cutsAndCorruptions(const char* name) {
    const auto msgs = recording(name);
    ASSERT_FALSE(msgs.empty());
    std::map<std::uint64_t, std::vector<const netprobe::ebpf::L7Message*>> conns;
    for (const auto& m : msgs) conns[m.sock].push_back(&m);
    std::size_t replays = 0;
    for (const auto& [sock, cm] : conns) {
        std::uint64_t bytes = 0;
        for (const auto* m : cm) bytes += m->len;
        for (std::size_t i = 0; i < cm.size(); ++i) {
            const auto& target = *cm[i];
            auto replay = [&](auto&& mutate) {
                ConnectionTracker t;
                for (std::size_t j = 0; j < cm.size(); ++j) {
                    if (j != i) {
                        t.feed(*cm[j]);
                        continue;
                    }
                    netprobe::ebpf::L7Message m = target;
                    mutate(m);
                    t.feed(m);
                }
                const auto got = t.take();
                EXPECT_LE(got.size(), bytes / 8 + 1) << name;
                ++replays;
            };
            const std::size_t n = target.head.size();
            for (std::size_t k = 0; k < n; k += (n > 64 ? 3 : 1)) {
                replay([&](netprobe::ebpf::L7Message& m) {  // a shorter read
                    m.head.resize(k);
                    m.len = static_cast<std::uint32_t>(k);
                });
                replay([&](netprobe::ebpf::L7Message& m) {  // a shorter copy of the same read
                    m.head.resize(k);
                    m.flags |= NP_L7_F_TRUNCATED;
                });
                replay([&](netprobe::ebpf::L7Message& m) { m.head[k] = static_cast<char>(m.head[k] ^ 0xa5); });
                replay([&](netprobe::ebpf::L7Message& m) { m.head[k] = '\xff'; });
            }
        }
    }
    EXPECT_GT(replays, 100u);
}

TEST(MqRecordings, KafkaCutsAndCorruptionsNeverCrash) { cutsAndCorruptions("kafka.rec"); }
TEST(MqRecordings, AmqpCutsAndCorruptionsNeverCrash) { cutsAndCorruptions("amqp.rec"); }

// Messages larger than the copy, recorded from RabbitMQ and pika (amqp_large.rec: a 32 KiB
// message at frame_max 4096, published twice - the second for basic.get - and delivered
// once; the broker writes a delivery's 10 frames in one syscall, and reads a publication
// in pieces): every body frame is followed through the bytes not copied, so both ends
// count each publication's exact bytes - method (26), content header (33) and 9 body
// frames (8 of 4088 bytes of payload, 1 of 64) - and the deliveries' bytes agree.
TEST(MqRecordings, AmqpLargeMessagesAreFramedExactlyAtBothEnds) {
    ConnectionTracker t;
    for (const auto& m : recording("amqp_large.rec")) t.feed(m);
    std::map<std::string, std::uint64_t> count, bytes;
    for (const auto& r : t.take()) {
        const std::string key = std::string(netprobe::l7::sideName(r.side)) + " " + r.method;
        ++count[key];
        bytes[key] += r.request_bytes + r.response_bytes;
    }
    const std::uint64_t publish = 26 + 33 + 8 * (4088 + 8) + (64 + 8);
    for (const char* side : {"client", "server"}) {
        SCOPED_TRACE(side);
        EXPECT_EQ(count[std::string(side) + " basic.publish"], 2u);
        EXPECT_EQ(bytes[std::string(side) + " basic.publish"], 2 * publish);
        EXPECT_EQ(count[std::string(side) + " basic.deliver"], 1u);
    }
    EXPECT_EQ(bytes["client basic.deliver"], bytes["server basic.deliver"]);
    EXPECT_GT(bytes["client basic.deliver"], 32768u);
    EXPECT_EQ(bytes["client basic.get"], bytes["server basic.get"]);  // get-ok's content: the response's
    EXPECT_EQ(t.counters().desyncs, 0u);
    EXPECT_EQ(t.counters().unmatched_responses, 0u);
}

// The recordings' Kafka requests all parse as requests, and their responses pair.
TEST(MqRecordings, KafkaRecordingHasNoUnpairedOrLostMessages) {
    ConnectionTracker t;
    for (const auto& m : recording("kafka.rec")) t.feed(m);
    const auto got = t.take();
    EXPECT_GT(got.size(), 20u);
    const auto c = t.counters();
    EXPECT_EQ(c.unmatched_responses, 0u);
    EXPECT_EQ(c.desyncs, 0u);
    std::map<std::string, int> apis;
    for (const auto& r : got) ++apis[r.method];
    EXPECT_GT(apis["ApiVersions"], 0);
    EXPECT_GT(apis["Metadata"], 0);
    EXPECT_GT(apis["Produce"], 0);
    EXPECT_GT(apis["Fetch"], 0);
}

}  // namespace
