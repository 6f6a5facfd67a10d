// netprobe::analysis::l7::L7Stage - application-layer requests (parsed and paired by the
// L7 source's connection tracker, netprobe::l7) into figures: every request counts once
// in the totals (by protocol, side, service, method, status class), in its endpoint's
// window figures and in the recent-requests sample. The service is the server's
// Kubernetes service or workload when the attribution knows it, else its address:port;
// services and endpoints are label budgets (later ones are "other").
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/l7/tracker.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {
class Attribution;
}

namespace netprobe::analysis::l7 {

using WallTime = std::chrono::system_clock::time_point;
using netprobe::l7::Request;
using netprobe::l7::Side;
using netprobe::l7::sideName;

// How a request's status reads, per protocol (pure; the metrics' status_class label, the
// API's status filter and the error counts all use these):
//   http, http2  status class "2xx".."5xx" ("unknown" outside 100..599); error: >= 500,
//                client error: 4xx
//   grpc         the code's name ("OK", "NOT_FOUND", "UNKNOWN_OUTCOME" when the stream ended
//                without a grpc-status); error: codes a server fault causes (see
//                grpcStatusIsError), client error: the other non-OK codes
//   dns          the rcode's name; error: SERVFAIL, NOTIMP, REFUSED...; client error: NXDOMAIN
//   kafka, amqp  "ok", "unknown", or the error's name (Kafka's error code, AMQP's reply
//                code: "UNKNOWN_TOPIC_OR_PARTITION", "PRECONDITION_FAILED"; "error" for a
//                code not in the tables); error: any non-zero code
//   others       "ok", "error", "unknown" (status 0 / 1 / 2); error: status 1
[[nodiscard]] std::string statusClass(const Request& r);
[[nodiscard]] bool isError(const Request& r);
[[nodiscard]] bool isClientError(const Request& r);

struct L7Options {
    std::size_t max_services = 200;       // service label values; later ones are "other"
    std::size_t max_endpoints = 500;      // (service, side, method, route) kept; later ones: route "other"
    std::size_t max_rpc_methods = 200;    // gRPC method label values (/pkg.Service/Method); later ones: "other"
    std::size_t max_topics = 200;         // Kafka topics and AMQP queues/exchanges as routes; later ones: "other"
    std::size_t recent_requests = 1000;   // requests kept for /api/v1/l7/requests (the latest)
    std::chrono::seconds window{60};      // endpoint figures cover this much recent time
    std::size_t max_dns_names = 10000;    // addresses named by DNS answers kept (earliest expiry goes first)
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
    std::uint64_t requests_total = 0, errors_total = 0;  // since start (errors: isError)
    // Over the window:
    std::uint64_t requests = 0, errors = 0, client_errors = 0;  // client_errors: 4xx
    double rate = 0;         // requests per second
    double error_rate = 0;   // errors / requests
    double p50 = 0, p90 = 0, p99 = 0;  // seconds, nearest rank over the window's durations (exact up to
                                       // 512 requests per tenth of the window, a uniform sample beyond)
    std::uint64_t request_bytes = 0, response_bytes = 0;
};

// DNS queries of one server that got no answer (the client gave up and closed its socket,
// retried the same id, or the tracker's dns_timeout passed), per side, by when the wait
// ended.
struct DnsTimeoutSummary {
    std::string service, side;
    std::uint64_t total = 0;                 // since start
    std::uint64_t timeouts = 0;              // in the window
    double max_wait_seconds = 0;             // the longest wait of the window's (query -> give-up)
    std::vector<std::pair<std::string, std::uint64_t>> names;  // the window's names, most first (at most 3)
};

struct L7Counters {
    netprobe::l7::TrackerCounters parse;   // the source's tracker (since start)
    std::uint64_t services_overflow = 0;   // requests labelled service="other"
    std::uint64_t endpoints_overflow = 0;  // requests labelled route="other"
    std::uint64_t methods_overflow = 0;    // gRPC requests labelled method="other"
    std::uint64_t topics_overflow = 0;     // Kafka/AMQP requests whose topic or queue is route="other"
    std::uint64_t dns_names_dropped = 0;   // answers not kept: the name table was full
    std::uint64_t mesh_proxy_legs = 0;     // requests seen on a mesh sidecar's leg (the app's own are counted)
};

// A service mesh sidecar's leg of a request, which the application's own socket also saw
// (counting it would count the request twice on that side):
//  - server side on a sidecar's redirect listener: Istio 15001 (outbound), 15006 (inbound),
//    15008 (HBONE); Linkerd 4140 (outbound), 4143 (inbound): the app's request as its own
//    sidecar received it (after the REDIRECT the socket's local port is the listener's);
//  - client side from the sidecar to the app: from 127.0.0.6 (Istio's inbound passthrough
//    address, reserved for it), or, to a mesh pod (server_mesh non-empty), from loopback or
//    the pod's own address (Linkerd's inbound proxy).
[[nodiscard]] bool meshProxyLeg(const Request& r, std::string_view server_mesh);

// An address a DNS answer gave, and the name that was asked for it (so a flow to the
// address can be named by the domain it was resolved from).
struct DnsName {
    util::Addr16 addr{};
    std::string name;            // the query name (what the client looked up)
    WallTime expires{};          // answer time + TTL
};

struct L7View {
    std::map<SeriesKey, SeriesTotals> series;  // cumulative since start
    std::vector<EndpointSummary> endpoints;    // by requests in the window, descending
    std::vector<Request> recent;               // oldest first
    L7Counters counters;
    std::size_t connections = 0;               // with parser state (the source's tracker)
    std::vector<DnsName> dns_names;            // unexpired, by address (at most max_dns_names)
    std::vector<DnsTimeoutSummary> dns_timeouts;  // every server with unanswered queries since start, most in the window first
    std::chrono::seconds window{60};
};

class L7Stage final : public Stage {
public:
    explicit L7Stage(L7Options options = {}, std::shared_ptr<const Attribution> attribution = nullptr);
    ~L7Stage() override;
    [[nodiscard]] std::string_view name() const override { return "l7"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct Endpoint;
    struct DnsTimeouts;
    // keep: the request goes to the recent ring too (one of the batch's last).
    void add(const collector::Snapshot& snap, const Request& r, bool keep);
    void addUnanswered(const Request& r);
    std::string serviceOf(const Request& r);  // cached per run
    std::string nameOf(const Request& r);
    [[nodiscard]] std::string serverMesh(const Request& r) const;  // the server pod's mesh ("" unknown)

    L7Options opts_;
    std::shared_ptr<const Attribution> attribution_;
    std::map<SeriesKey, SeriesTotals> series_;
    std::map<std::string, std::unique_ptr<Endpoint>> endpoints_;  // key: protocol|side|service|method|route
    std::map<std::pair<std::string, std::string>, std::unique_ptr<DnsTimeouts>> dns_timeouts_;  // (service, side)
    std::set<std::string> services_;                             // admitted service names
    std::set<std::string> rpc_methods_;                          // admitted gRPC method names
    std::set<std::string> topics_;                               // admitted Kafka topics, AMQP queues/exchanges
    std::map<std::array<std::uint8_t, 18>, std::string> service_cache_;  // server address+port -> service
    std::deque<Request> recent_;
    // The series and endpoint of the previous request of this run on each side, and the
    // labels that found them: a run of requests to the same endpoint (the common case;
    // both ends of a connection on this node interleave client and server requests) skips
    // both lookups. The pointers stay valid (map nodes; nothing is erased while adding).
    struct LastLabels {
        bool valid = false;
        std::string protocol, service, method, route, status_class;
        SeriesTotals* series = nullptr;
        Endpoint* endpoint = nullptr;
        bool endpoint_overflow = false;  // labelled route="other": the budget was full
    };
    std::array<LastLabels, 2> last_;  // by netprobe::l7::Side
    L7Counters counters_;
    std::map<util::Addr16, std::pair<std::string, std::uint64_t>> dns_names_;  // addr -> (name, expiry mono ns)
    std::uint64_t start_ns_ = 0;                 // the first run's monotonic time
    std::uint64_t rng_ = 0x9E3779B97F4A7C15ull;  // xorshift state of the duration samples
};

}  // namespace netprobe::analysis::l7
