// --history-source=clickhouse: the history of every node, read from the series tables
// the ClickHouse sinks fill (sinks/clickhouse.hpp: netprobe.series by minute,
// series_1h by hour). The same questions as the local Store (series keys, buckets of one
// series), answered per node.
//
// Failures: a query that fails (server away, refused, too slow: timeout) returns the
// error and marks the source unavailable for `retry_after`; within that time calls fail
// at once with the same error (no request waits on a server known to be away), so the
// API falls back to the local store without delay. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/history/store.hpp>
#include <netprobe/util/clickhouse.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::history {

struct ClusterOptions {
    util::ClickHouseEndpoint endpoint;   // timeouts: a query answers within connect + read
    std::string database = "netprobe";
    std::chrono::milliseconds retry_after{15000};
};

struct NodeRows {
    std::string node;
    std::vector<Row> rows;  // oldest first
};

// Traffic between two endpoints over a window, from every node's flow records: the
// cluster topology's input. A 5-tuple seen at several observation points (the client's
// node and the server's, two interfaces of one node) counts once: per 5-tuple the largest
// figures of any one (node, interface).
struct ClusterFlow {
    std::string src_addr, dst_addr;
    std::uint16_t dst_port = 0;
    std::uint8_t protocol = 0;
    std::string src_namespace, src_pod, src_workload, dst_namespace, dst_pod, dst_workload, dst_service;
    std::uint64_t bytes = 0, rev_bytes = 0, packets = 0, rev_packets = 0;  // forward: the record's first direction
    std::uint64_t flows = 0;            // distinct 5-tuples
    std::vector<std::string> nodes;     // the nodes that saw them
};

struct ClusterStats {
    std::uint64_t queries = 0;   // sent to the server
    std::uint64_t errors = 0;    // of those, failed
    std::uint64_t skipped = 0;   // not sent: the server failed within retry_after
};

class ClusterHistory {
public:
    explicit ClusterHistory(ClusterOptions options);

    // Series keys starting with prefix (of node, or of any node when empty), byte order.
    [[nodiscard]] Result<std::vector<std::string>> listSeries(std::string_view prefix, std::size_t limit,
                                                              std::string_view node = {}) const;
    // The nodes that wrote series, in byte order.
    [[nodiscard]] Result<std::vector<std::string>> nodes() const;
    // Buckets of [from, to) per node (one node when node is not empty), nodes in byte
    // order. automatic: minutes for spans up to 24 h, else hours. Minutes are exact
    // (FINAL: a batch inserted twice counts once); hours come from the rollup.
    [[nodiscard]] Result<std::vector<NodeRows>> query(std::string_view series, std::int64_t from, std::int64_t to,
                                                      Resolution resolution, std::string_view node = {}) const;

    // Flow records that ended in [from, to), grouped by (source, destination, destination
    // port, protocol, labels), the busiest `limit` first.
    [[nodiscard]] Result<std::vector<ClusterFlow>> flows(std::int64_t from, std::int64_t to, std::size_t limit) const;

    [[nodiscard]] std::string target() const;
    [[nodiscard]] ClusterStats stats() const;

private:
    [[nodiscard]] Result<std::string> run(const std::string& sql) const;

    ClusterOptions options_;
    mutable std::mutex mu_;
    mutable std::chrono::steady_clock::time_point down_until_{};
    mutable std::string last_error_;
    mutable std::atomic<std::uint64_t> queries_{0}, errors_{0}, skipped_{0};
};

}  // namespace netprobe::history
