// netprobe::l7::ConnectionTracker - requests from captured messages, as they arrive:
// per connection (kernel socket), each direction's bytes are framed by the protocol's
// parser (HTTP/1.x today) and requests are paired with their responses in order
// (pipelining). It runs on the capture's ring thread (collector::L7Source), reading each
// record in place: no copy of message bytes, a few hundred bytes of state per connection.
// A socket is one end of a connection: its side is "server" when it read the request,
// "client" when it wrote it; with both ends on this node a request is seen from each.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <netprobe/ebpf/l7_capture.hpp>
#include <netprobe/l7/dns.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::l7 {

enum class Side : std::uint8_t { Client, Server };
[[nodiscard]] const char* sideName(Side s);

// One request and its response. HTTP: method, path, route, status as in HTTP. DNS: method
// is the query type ("A"), path and route the name queried, status the response code.
// Redis: method, path and route the command; PostgreSQL, MySQL: method the statement
// type, path and route the normalized statement; Kafka: method the API (Produce, Fetch,
// ...), path and route the topic (Produce, Fetch) or the API; AMQP: method the class and
// method (queue.declare, basic.publish, ...), path and route the queue or exchange, or
// the method. For these status is 1 for an error reply (error: its code; Kafka: the
// error code, AMQP: the reply code), 2 when the response was not parsed (its outcome is
// unknown), else 0.
struct Request {
    std::uint64_t mono_ns = 0;     // the request's first byte (CLOCK_MONOTONIC)
    double duration_seconds = 0;   // request first byte -> response first byte, at this side
    std::string protocol;          // "http", "http2", "grpc", "dns", "redis", "postgres", "mysql", "kafka", "amqp"
    Side side = Side::Server;
    std::string method;
    std::string path;              // the target without query string (bounded)
    std::string route;             // route template (bounded cardinality)
    int status = 0;
    std::string error;             // Redis: error prefix; PostgreSQL: SQLSTATE; MySQL: error number; Kafka: error
                                   // code; AMQP: reply code
    std::vector<DnsAnswer> answers;  // DNS: A/AAAA/CNAME answers of the response
    std::uint64_t request_bytes = 0;
    std::uint64_t response_bytes = 0;
    std::uint32_t pid = 0;
    std::uint64_t cgroup_id = 0;
    std::uint8_t family = 4;
    util::Addr16 client{}, server{};
    std::uint16_t client_port = 0, server_port = 0;
    std::uint64_t sock = 0;
    // Set by the analysis stage: the server's name, and the request's wall time.
    std::string service;
    std::chrono::system_clock::time_point time{};
};

struct TrackerOptions {
    std::size_t max_connections = 50000;   // with parser state; beyond: messages not parsed, counted
    std::size_t max_pending = 128;         // requests awaiting a response per connection
    std::size_t max_dns_pending = 4096;    // DNS queries awaiting a response per socket (a server's: all its clients')
    std::chrono::nanoseconds dns_timeout = std::chrono::seconds(30);  // a query without response by then is unanswered
    std::size_t max_requests = 1000000;    // completed requests held between two take()s
    std::chrono::nanoseconds idle_timeout = std::chrono::seconds(300);
};

struct TrackerCounters {
    std::uint64_t messages = 0;             // captured messages fed
    std::uint64_t requests = 0;             // completed (paired) requests
    std::uint64_t requests_dropped = 0;     // completed but not held: the buffer was full
    std::uint64_t unanswered = 0;           // requests whose connection closed (or pending list overflowed) first
    std::uint64_t unmatched_responses = 0;  // responses without a request (capture began mid-connection)
    std::uint64_t desyncs = 0;              // times a parser lost the framing and resynchronised
    std::uint64_t connections_dropped = 0;  // messages not parsed: connection table full
    std::uint64_t connections_expired = 0;
    std::uint64_t other_protocol = 0;       // messages of protocols without a parser yet
    std::uint64_t not_parsed = 0;           // DNS messages that were not a standard query/response
    std::uint64_t dns_unanswered_dropped = 0;  // DNS queries without answer not held: the buffer was full
};

class ConnectionTracker {
public:
    explicit ConnectionTracker(TrackerOptions options = {});
    ~ConnectionTracker();
    ConnectionTracker(const ConnectionTracker&) = delete;
    ConnectionTracker& operator=(const ConnectionTracker&) = delete;

    void feed(const ebpf::L7Message& m);
    // The requests completed since the last take(). The next ones go to `spare`'s
    // storage (emptied) when it fits them: a vector of the size the last take() had,
    // whose pages the process already has, instead of a fresh one that faults in every
    // page again each collection. A spare too small, or more than twice as large as
    // needed (the load fell), is freed.
    [[nodiscard]] std::vector<Request> take(std::vector<Request> spare = {});
    // The DNS queries that got no answer since the last call: their socket closed first
    // (a client that gave up: dig's timeout), the same id was sent again (a resolver's
    // retry), or dns_timeout passed. As Requests with status -1 (no response code),
    // duration the time waited (to the close, the retry or the expiry), response_bytes 0;
    // side Client when this socket sent the query, Server when it received it.
    [[nodiscard]] std::vector<Request> takeDnsUnanswered();
    // Forgets connections without a message for the idle timeout (now: CLOCK_MONOTONIC ns).
    void expire(std::uint64_t now_ns);
    [[nodiscard]] TrackerCounters counters() const;
    [[nodiscard]] std::size_t connections() const { return conns_.size(); }

private:
    struct Conn;
    friend struct Conn;
    void finish(Conn& c, std::uint64_t now_ns);
    void complete(Request&& r);
    void dnsMessage(Conn& c, const ebpf::L7Message& m, std::string_view bytes, std::uint64_t len);
    void dnsTcp(Conn& c, const ebpf::L7Message& m);
    struct DnsPendingRef;
    void dnsUnanswered(const Conn& c, const DnsPendingRef& p, std::uint64_t until_ns);

    TrackerOptions opts_;
    std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> conns_;
    std::vector<Request> out_;
    std::vector<Request> dns_unanswered_;
    TrackerCounters counters_;
};

}  // namespace netprobe::l7
