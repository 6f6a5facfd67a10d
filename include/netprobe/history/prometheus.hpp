// --topology-source=prometheus: the cluster's topology from every agent's
// netprobe_topology_edge_*_total series (analysis/edge_counters.hpp) in a Prometheus
// server, read over its HTTP API (GET /api/v1/query, instant queries of increase()).
//
// An edge seen by several agents (the client's node and the server's, or a node the
// traffic is routed through) counts once: per edge and figure, the largest increase any
// one agent (`instance`) reported - the busiest observation, as the ClickHouse path
// takes per 5-tuple.
//
// Failures, as the ClickHouse cluster history: a query that fails (refused, timed out:
// 1 s to connect, 5 s to answer; an HTTP or PromQL error) returns the error and marks the
// source unavailable for `retry_after`; calls within it fail at once with the same error.
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <netprobe/util/error.hpp>

namespace netprobe::history {

struct PrometheusOptions {
    std::string url;                // http[s]://host:port[/path prefix]
    std::string user, password;     // basic auth (when user is not empty)
    std::string bearer_token_file;  // Authorization: Bearer <the file's content>, read at each query
    std::string ca_file;            // https: the CA to verify the server with (else the system's)
    std::chrono::milliseconds connect_timeout{1000};
    std::chrono::milliseconds read_timeout{5000};
    std::chrono::milliseconds retry_after{15000};
};

// One sample of an instant vector.
struct PromSample {
    std::map<std::string, std::string> labels;
    double value = 0;
};

// One edge of the cluster's topology over a window: increase() of its counters.
struct PromEdge {
    std::string source, target, transport;
    std::uint16_t port = 0;
    double bytes_to_server = 0, bytes_to_client = 0, packets_to_server = 0, packets_to_client = 0;
    double connections = 0, connections_failed = 0, retransmits = 0, requests = 0, request_errors = 0;
    std::vector<std::string> observed_by;  // the instances that saw bytes to the server
};

struct PrometheusStats {
    std::uint64_t queries = 0;  // sent
    std::uint64_t errors = 0;   // of those, failed
    std::uint64_t skipped = 0;  // not sent: the server failed within retry_after
};

// Checks a --prometheus-url: http or https, a host, no query or fragment.
[[nodiscard]] Result<void> checkPrometheusUrl(const std::string& url);

class PrometheusTopology {
public:
    explicit PrometheusTopology(PrometheusOptions options);

    // An instant query (at the server's now).
    [[nodiscard]] Result<std::vector<PromSample>> query(const std::string& expr) const;
    // The edges over the last window_seconds, the PromQL below.
    [[nodiscard]] Result<std::vector<PromEdge>> edges(std::size_t window_seconds) const;
    // The one query edges() sends.
    [[nodiscard]] static std::string edgesQuery(std::size_t window_seconds);

    [[nodiscard]] std::string target() const { return options_.url; }
    [[nodiscard]] PrometheusStats stats() const;

private:
    PrometheusOptions options_;
    mutable std::mutex mu_;
    mutable std::chrono::steady_clock::time_point down_until_{};
    mutable std::string last_error_;
    mutable std::atomic<std::uint64_t> queries_{0}, errors_{0}, skipped_{0};
};

}  // namespace netprobe::history
