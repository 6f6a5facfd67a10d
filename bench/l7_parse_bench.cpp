// np_l7_parse_bench: what parsing costs the agent per Kafka and AMQP message, in user
// space, on the path every capture record takes (l7::ConnectionTracker::feed: the
// connection's lookup, the protocol's framing and parser, the request it completes, and
// take()). No kernel, no root: the records are built here as the capture delivers them
// (the first bytes of each syscall - 512 for Kafka, 4 KiB for AMQP - its length, and its
// last 16 bytes when it moved more), with the messages of the clients the e2e tests run:
//   kafka_produce  a Produce v7 request (one topic, one partition, a 100-byte record
//                  batch) written by the client, its response read (librdkafka's versions)
//   kafka_fetch    a Fetch v11 request and its response carrying 1 KiB of records (the
//                  copy ends inside them)
//   amqp_publish   a basic.publish of 100 bytes as pika writes it (method, content header
//                  and body frames: three syscalls) and the broker's confirm (basic.ack)
//   amqp_deliver   a basic.deliver of 100 bytes as RabbitMQ writes it (the three frames in
//                  one syscall) and the consumer's basic.ack
//   amqp_publish_1mib  a 1 MiB basic.publish read by the broker in 64 KiB reads (the body
//                  frames beyond the 4 KiB copy followed by their sizes) and its confirm
// Each is fed 200k times on one connection (best of 5); ns per message (= per exchange:
// request and response). The counts are checked (every message reported, none lost).
// Output: human lines on stderr, RESULT<TAB>name<TAB>value on stdout (bench/run.sh).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/l7_capture.hpp>
#include <netprobe/l7/tracker.hpp>

namespace {

using Clock = std::chrono::steady_clock;

struct Bytes {
    std::string s;
    Bytes& i8(int v) { s += static_cast<char>(v); return *this; }
    Bytes& i16(int v) { return i8(v >> 8).i8(v); }
    Bytes& i32(std::int64_t v) { return i16(static_cast<int>(v >> 16)).i16(static_cast<int>(v)); }
    Bytes& i64(std::int64_t v) { return i32(v >> 32).i32(v); }
    Bytes& raw(std::string_view b) { s += b; return *this; }
    Bytes& str(std::string_view v) { return i16(static_cast<int>(v.size())).raw(v); }   // Kafka STRING
    Bytes& sstr(std::string_view v) { return i8(static_cast<int>(v.size())).raw(v); }   // AMQP short string
};

std::string sized(const std::string& body) { return Bytes{}.i32(static_cast<std::int64_t>(body.size())).raw(body).s; }

std::string kafkaRequest(int key, int version, std::int32_t corr, const std::string& body) {
    return sized(Bytes{}.i16(key).i16(version).i32(corr).str("rdkafka").raw(body).s);
}
std::string kafkaResponse(std::int32_t corr, const std::string& body) { return sized(Bytes{}.i32(corr).raw(body).s); }

std::string amqpFrame(int type, int channel, const std::string& payload) {
    return Bytes{}.i8(type).i16(channel).i32(static_cast<std::int64_t>(payload.size())).raw(payload).i8(0xce).s;
}
std::string amqpMethod(int channel, int cls, int mth, const std::string& args) {
    return amqpFrame(1, channel, Bytes{}.i16(cls).i16(mth).raw(args).s);
}
std::string amqpHeader(int channel, std::uint64_t body) {
    return amqpFrame(2, channel, Bytes{}.i16(60).i16(0).i64(static_cast<std::int64_t>(body)).i16(0x8000).sstr("text/plain").s);
}

// One syscall as the capture records it on this connection.
struct Syscall {
    std::uint8_t direction;
    std::string bytes;
};

netprobe::ebpf::L7Message record(const Syscall& s, std::uint8_t protocol, std::size_t copy, std::uint16_t lport,
                                 std::uint16_t rport) {
    netprobe::ebpf::L7Message m;
    m.sock = 0xffff888012345678ULL;
    m.pid = 4242;
    m.family = 4;
    m.local_port = lport;
    m.remote_port = rport;
    m.direction = s.direction;
    m.protocol = protocol;
    m.len = static_cast<std::uint32_t>(s.bytes.size());
    m.head = s.bytes.substr(0, std::min(copy, s.bytes.size()));
    if (s.bytes.size() > m.head.size()) {
        m.flags |= NP_L7_F_TRUNCATED;
        if (s.bytes.size() >= m.head.size() + NP_L7_TAIL_MAX) m.tail = s.bytes.substr(s.bytes.size() - NP_L7_TAIL_MAX);
    }
    return m;
}

struct Workload {
    const char* name;
    std::uint8_t protocol;
    std::size_t copy;
    std::uint16_t lport, rport;
    std::vector<Syscall> opening;   // once per connection (AMQP: protocol header, tune-ok)
    std::vector<Syscall> message;   // one message: fed `n` times
    std::string method;             // the request each message completes
};

// ns per message, best of `rounds`; every message must complete one request of `method`.
double run(const Workload& w, int n, int rounds) {
    std::vector<netprobe::ebpf::L7Message> opening, message;
    for (const auto& s : w.opening) opening.push_back(record(s, w.protocol, w.copy, w.lport, w.rport));
    for (const auto& s : w.message) message.push_back(record(s, w.protocol, w.copy, w.lport, w.rport));
    double best = 1e18;
    for (int r = 0; r < rounds; ++r) {
        netprobe::l7::ConnectionTracker t;
        std::uint64_t ts = 1;
        for (auto& m : opening) {
            m.ts_ns = ts++;
            t.feed(m);
        }
        (void)t.take();
        std::size_t done = 0;
        const auto t0 = Clock::now();
        for (int i = 0; i < n; ++i) {
            for (auto& m : message) {
                m.ts_ns = ts++;
                t.feed(m);
            }
            if ((i & 255) == 255)
                for (const auto& req : t.take()) done += req.method == w.method;
        }
        for (const auto& req : t.take()) done += req.method == w.method;
        const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / n;
        const auto c = t.counters();
        if (done != static_cast<std::size_t>(n) || c.desyncs || c.unmatched_responses) {
            std::fprintf(stderr, "%s: %zu of %d messages reported as %s (desyncs %llu, unmatched %llu)\n", w.name, done,
                         n, w.method.c_str(), static_cast<unsigned long long>(c.desyncs),
                         static_cast<unsigned long long>(c.unmatched_responses));
            std::exit(1);
        }
        best = std::min(best, ns);
    }
    return best;
}

std::vector<Workload> workloads() {
    std::vector<Workload> out;
    const std::string batch(100, 'b');
    {   // Produce v7: transactional_id null, acks -1, timeout, [topic [partition, records]]
        const std::string req = kafkaRequest(0, 7, 1, Bytes{}.i16(-1).i16(-1).i32(30000).i32(1).str("np-orders")
                                                        .i32(1).i32(0).i32(static_cast<std::int64_t>(batch.size()))
                                                        .raw(batch).s);
        const std::string resp = kafkaResponse(1, Bytes{}.i32(1).str("np-orders").i32(1).i32(0).i16(0).i64(42)
                                                      .i64(-1).i64(0).i32(0).s);
        out.push_back({"kafka_produce", NP_L7_KAFKA, 512, 40000, 9092, {},
                       {{NP_L7_SEND, req}, {NP_L7_RECV, resp}}, "Produce"});
    }
    {   // Fetch v11 and a response with 1 KiB of records in one partition
        const std::string req = kafkaRequest(1, 11, 1, Bytes{}.i32(-1).i32(500).i32(1).i32(1 << 20).i8(0).i32(0)
                                                         .i32(-1).i32(1).str("np-orders").i32(1).i32(0).i32(-1)
                                                         .i64(0).i64(-1).i32(1 << 20).i32(0).str("").s);
        const std::string records(1024, 'r');
        const std::string resp = kafkaResponse(1, Bytes{}.i32(0).i16(0).i32(0).i32(1).str("np-orders").i32(1).i32(0)
                                                      .i16(0).i64(10).i64(10).i64(0).i32(-1).i32(-1)
                                                      .i32(static_cast<std::int64_t>(records.size())).raw(records).s);
        out.push_back({"kafka_fetch", NP_L7_KAFKA, 512, 40000, 9092, {},
                       {{NP_L7_SEND, req}, {NP_L7_RECV, resp}}, "Fetch"});
    }
    const std::vector<Syscall> opening = {
        {NP_L7_SEND, std::string("AMQP\x00\x00\x09\x01", 8)},
        {NP_L7_RECV, amqpMethod(0, 10, 30, Bytes{}.i16(2047).i32(131072).i16(60).s)},  // tune
        {NP_L7_SEND, amqpMethod(0, 10, 31, Bytes{}.i16(2047).i32(131072).i16(0).s)},   // tune-ok
    };
    const std::string publish = amqpMethod(1, 60, 40, Bytes{}.i16(0).sstr("").sstr("np-orders").i8(0).s);
    const std::string confirm = amqpMethod(1, 60, 80, Bytes{}.i64(1).i8(0).s);
    out.push_back({"amqp_publish", NP_L7_AMQP, NP_L7_HEAD_MAX, 40000, 5672, opening,
                   {{NP_L7_SEND, publish}, {NP_L7_SEND, amqpHeader(1, batch.size())},
                    {NP_L7_SEND, amqpFrame(3, 1, batch)}, {NP_L7_RECV, confirm}},
                   "basic.publish"});
    const std::string deliver = amqpMethod(1, 60, 60, Bytes{}.sstr("ctag1.0").i64(1).i8(0).sstr("").sstr("np-orders").s) +
                                amqpHeader(1, batch.size()) + amqpFrame(3, 1, batch);
    out.push_back({"amqp_deliver", NP_L7_AMQP, NP_L7_HEAD_MAX, 40000, 5672, opening,
                   {{NP_L7_RECV, deliver}, {NP_L7_SEND, confirm}}, "basic.deliver"});
    {   // the broker's end: 1 MiB read in 64 KiB pieces
        std::string msg = publish + amqpHeader(1, 1 << 20);
        for (std::size_t at = 0; at < (1u << 20); at += 131064)
            msg += amqpFrame(3, 1, std::string(std::min<std::size_t>(131064, (1u << 20) - at), 'x'));
        std::vector<Syscall> reads;
        for (std::size_t at = 0; at < msg.size(); at += 65536) reads.push_back({NP_L7_RECV, msg.substr(at, 65536)});
        reads.push_back({NP_L7_SEND, confirm});
        std::vector<Syscall> server_opening = opening;
        for (auto& s : server_opening) s.direction = s.direction == NP_L7_SEND ? NP_L7_RECV : NP_L7_SEND;
        out.push_back({"amqp_publish_1mib", NP_L7_AMQP, NP_L7_HEAD_MAX, 5672, 40000, server_opening, reads,
                       "basic.publish"});
    }
    return out;
}

}  // namespace

int main() {
    const int n = 200000;
    for (const auto& w : workloads()) {
        const int count = std::string_view(w.name).ends_with("1mib") ? n / 20 : n;
        const double ns = run(w, count, 5);
        std::fprintf(stderr, "%-18s %8.0f ns per message (%zu records each, %d messages, best of 5)\n", w.name, ns,
                     w.message.size(), count);
        std::printf("RESULT\tl7_parse_ns_%s\t%.0f\n", w.name, ns);
    }
    return 0;
}
