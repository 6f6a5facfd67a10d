// --clickhouse: flow records into ClickHouse over its HTTP interface, through an
// on-disk spool, so that an outage of the server loses nothing.
//
//   records -> queue (memory) -> spool file per batch (STATE/spool/clickhouse/*.jsonl)
//           -> INSERT ... FORMAT JSONEachRow (oldest file first) -> file removed
//
// Each batch has an id (the agent's run id + a sequence) stored in every row. After an
// insert whose outcome is unknown (connection lost, timeout) the batch is looked up
// before it is sent again, and the table is a ReplacingMergeTree keyed by (time, node,
// batch, row): a batch inserted twice collapses to one copy when parts merge (queries
// that must be exact before that use FINAL). The spool is bounded (spool-max): beyond
// it the oldest batches are dropped, counted; the collector is never blocked.
//
// Schema (docs/clickhouse.md): netprobe.flows (raw, daily partitions) and two rollups
// fed by materialized views, flows_1m (SummingMergeTree by minute) and flows_1h (by
// hour). Retention: TTL clauses on servers that have them (19.6+), else the sink drops
// whole partitions older than the retention every hour. LowCardinality columns from
// 19.1, column codecs from 20.1 (the server's version decides, at start).
//
// History series (series=on, the default): each closed interval's points of the
// Series stage (the same points the local history store gets) go through the same spool
// into netprobe.series (one row per node, series and minute; ReplacingMergeTree keyed by
// batch and row like the flows) and an hourly AggregatingMergeTree rollup series_1h, so
// `--history-source=clickhouse` can answer /api/v1/history for every node.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <netprobe/history/store.hpp>
#include <netprobe/sinks/sink.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::sinks {

struct ClickHouseConfig {
    std::string url;                  // http[s]://host:port (no path)
    std::string database = "netprobe";
    std::string user = "default";     // env NETPROBE_CLICKHOUSE_USER
    std::string password;             // env NETPROBE_CLICKHOUSE_PASSWORD
    std::size_t batch = 50000;        // records per insert at most
    std::chrono::milliseconds flush{5000};  // a partial batch goes after this long
    std::chrono::hours retention{24 * 7};        // raw records
    std::chrono::hours retention_1m{24 * 30};    // minute rollup
    std::chrono::hours retention_1h{24 * 365};   // hour rollup
    std::uint64_t spool_max_bytes = 1ull << 30;
    std::string spool_dir;            // set by the agent: --state-dir/spool/clickhouse
    std::size_t queue = 200000;
    bool series = true;               // history series points into netprobe.series
    std::size_t series_queue = 100000;  // points waiting in memory at most (oldest dropped)
    std::string node;
};
// --clickhouse=URL[,database=NAME][,batch=N][,flush=DURATION][,retention=DURATION]
//              [,retention-1m=DURATION][,retention-1h=DURATION][,spool-max=SIZE][,queue=N]
//              [,series=on|off]
// (series rows are kept as long as the minute rollup, retention-1m; their hours retention-1h)
[[nodiscard]] Result<ClickHouseConfig> parseClickHouse(std::string_view spec);

// The server's version, as "SELECT version()" gives it: what the DDL may use.
struct ClickHouseVersion {
    int major = 0, minor = 0;
    [[nodiscard]] bool atLeast(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
};
[[nodiscard]] std::optional<ClickHouseVersion> parseClickHouseVersion(std::string_view text);
// The CREATE statements for a server of that version (database, table, rollups, views).
[[nodiscard]] std::vector<std::string> clickHouseSchema(const ClickHouseConfig& c, ClickHouseVersion v);
// The flows columns added after the first schema (name, type): the L7 summary and the
// NetworkPolicy verdict.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> clickHouseAddedFlowColumns(ClickHouseVersion v);
// The ALTER TABLE that adds those of them a flows table with `columns` lacks (an older
// agent's table); nullopt when it has them all.
[[nodiscard]] std::optional<std::string> clickHouseFlowMigration(const ClickHouseConfig& c, ClickHouseVersion v,
                                                                 const std::vector<std::string>& columns);
// One record as the JSONEachRow line the sink inserts (no newline).
[[nodiscard]] std::string clickHouseRow(const FlowExportRecord& r, const std::string& node, std::uint64_t batch,
                                        std::uint32_t seq, std::int64_t received_s);
// One history point as a netprobe.series row (no newline); the minute is floored to 60 s.
[[nodiscard]] std::string clickHouseSeriesRow(const history::Point& p, const std::string& node, std::uint64_t batch,
                                              std::uint32_t seq);

class ClickHouseSink final : public FlowSink {
public:
    // Creates the spool directory (an error if it cannot) and starts the sink's thread;
    // the server need not be up.
    [[nodiscard]] static Result<std::unique_ptr<ClickHouseSink>> start(ClickHouseConfig config);
    ~ClickHouseSink() override;
    void offer(const analysis::FlowExportView& view) override;
    // One closed interval's history points (series=on); never blocks: beyond series_queue
    // points the oldest batches are dropped, counted in series_points_dropped.
    void offerSeries(std::vector<history::Point> points);
    // Writes what is queued to the spool (kept for the next start) and sends what it can
    // within the timeout.
    void drain(std::chrono::milliseconds timeout) override;
    [[nodiscard]] SinkStatus status() const override;

private:
    explicit ClickHouseSink(ClickHouseConfig config);
    void loop();
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::thread thread_;
};

}  // namespace netprobe::sinks
