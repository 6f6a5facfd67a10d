// netprobe::analysis::l7::L7Stage - application-layer requests from the captured
// messages: per connection (kernel socket), each direction's bytes are framed by the
// protocol's parser (HTTP/1.x today), requests are paired with their responses in
// order (pipelining), and every completed request counts once in the totals (by
// protocol, side, service, method, status class), in its endpoint's window figures
// and in the recent-requests sample. A socket is one end of a connection: its side is
// "server" when it read the request, "client" when it wrote it; with both ends on this
// node a request is seen once from each side.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {
class Attribution;
}

namespace netprobe::analysis::l7 {

using WallTime = std::chrono::system_clock::time_point;

enum class Side : std::uint8_t { Client, Server };
[[nodiscard]] const char* sideName(Side s);

struct L7Options {
    std::size_t max_connections = 50000;  // connections with parser state; beyond: messages dropped, counted
    std::size_t max_pending = 128;        // requests awaiting a response per connection
    std::size_t max_services = 200;       // service label values; later ones are "other"
    std::size_t max_endpoints = 500;      // (service, side, method, route) kept; later ones: route "other"
    std::size_t recent_requests = 1000;   // sampled requests kept for /api/v1/l7/requests
    std::chrono::seconds idle_timeout{300};  // a connection without messages is forgotten
    std::chrono::seconds window{60};      // endpoint figures cover this much recent time
};

// One request and its response.
struct Request {
    WallTime time{};               // the request's first byte
    std::uint64_t mono_ns = 0;     // the same, CLOCK_MONOTONIC
    double duration_seconds = 0;   // request first byte -> response first byte, at this side
    std::string protocol;          // "http"
    Side side = Side::Server;
    std::string service;           // the server: Kubernetes service/workload, else address:port
    std::string method;
    std::string path;              // the target without query string (bounded)
    std::string route;             // route template (bounded cardinality)
    int status = 0;
    std::uint64_t request_bytes = 0;
    std::uint64_t response_bytes = 0;
    std::uint32_t pid = 0;
    std::uint64_t cgroup_id = 0;
    util::Addr16 client{}, server{};
    std::uint16_t client_port = 0, server_port = 0;
    std::uint64_t sock = 0;
};

// Fixed buckets of netprobe_l7_request_duration_seconds.
inline constexpr std::array<double, 14> kDurationBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                             0.1,    0.25,  0.5,    1,     2.5,  5,    10};

struct SeriesKey {
    std::string protocol, side, service, method, status_class;
    auto operator<=>(const SeriesKey&) const = default;
};
struct SeriesTotals {
    std::uint64_t requests = 0;
    std::array<std::uint64_t, kDurationBuckets.size()> buckets{};  // non-cumulative; +Inf = requests - sum
    double duration_sum = 0;
    std::uint64_t request_bytes = 0, response_bytes = 0;
};

struct EndpointSummary {
    std::string protocol, side, service, method, route;
    std::uint64_t requests_total = 0, errors_total = 0;  // since start (errors: status >= 500)
    // Over the window:
    std::uint64_t requests = 0, errors = 0, client_errors = 0;  // client_errors: 4xx
    double rate = 0;         // requests per second
    double error_rate = 0;   // errors / requests
    double p50 = 0, p90 = 0, p99 = 0;  // seconds, nearest rank over the window's durations (exact up to
                                       // 512 requests per tenth of the window, a uniform sample beyond)
    std::uint64_t request_bytes = 0, response_bytes = 0;
};

struct L7Counters {
    std::uint64_t messages = 0;            // captured messages processed
    std::uint64_t requests = 0;            // completed (paired) requests
    std::uint64_t unanswered = 0;          // requests whose connection closed (or pending list overflowed) first
    std::uint64_t unmatched_responses = 0; // responses without a request (capture began mid-connection)
    std::uint64_t desyncs = 0;             // times a parser lost the framing and resynchronised
    std::uint64_t connections_dropped = 0; // messages not parsed: connection table full
    std::uint64_t connections_expired = 0;
    std::uint64_t other_protocol = 0;      // messages of protocols without a parser yet
    std::uint64_t services_overflow = 0;   // requests labelled service="other"
    std::uint64_t endpoints_overflow = 0;  // requests labelled route="other"
};

struct L7View {
    std::map<SeriesKey, SeriesTotals> series;  // cumulative since start
    std::vector<EndpointSummary> endpoints;    // by requests in the window, descending
    std::vector<Request> recent;               // oldest first
    L7Counters counters;
    std::size_t connections = 0;               // with parser state
    std::chrono::seconds window{60};
};

class L7Stage final : public Stage {
public:
    explicit L7Stage(L7Options options = {}, std::shared_ptr<const Attribution> attribution = nullptr);
    ~L7Stage() override;
    [[nodiscard]] std::string_view name() const override { return "l7"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct Conn;
    struct Endpoint;
    void process(const ebpf::L7Message& m);
    void complete(Conn& c, Request&& r);
    std::string serviceOf(const Conn& c, Side side);

    L7Options opts_;
    std::shared_ptr<const Attribution> attribution_;
    std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> conns_;
    std::map<SeriesKey, SeriesTotals> series_;
    std::map<std::string, std::unique_ptr<Endpoint>> endpoints_;  // key: protocol|side|service|method|route
    std::map<std::string, bool> services_;                        // admitted service names
    std::deque<Request> recent_;
    L7Counters counters_;
    std::uint64_t start_ns_ = 0;  // the first run's monotonic time
    const collector::Snapshot* current_ = nullptr;  // during run() only
    std::uint64_t rng_ = 0x9E3779B97F4A7C15ull;     // xorshift state of the duration samples
};

}  // namespace netprobe::analysis::l7
