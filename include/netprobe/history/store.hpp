// The embedded history store (issue 13): per-minute aggregates of named time series in
// one SQLite file (DIR/history.db, WAL), rolled up into hours, bounded by age and by size,
// plus a small key -> blob table for model state. Plain data in, plain data out: it knows
// nothing of NetProbe's views (the keys are the caller's, e.g. "iface/eth0/rx_bytes").
//
// Semantics
// - append() MERGES: a point for a (series, minute) that already has a row adds to it
//   (sum +=, count +=, min/max widened), so a minute written in two batches adds up. The
//   caller must never write the same data twice (no idempotent re-delivery).
// - Hours are exact: each point is merged into its hour in the same transaction as into
//   its minute, so an hour row is the aggregate of every point of that hour (equal to the
//   sum of its minutes up to floating-point addition order). Minutes are dropped (by age or
//   size) a whole hour at a time; a late point whose minutes are already gone still counts
//   in its hour, a point older than the dropped hours is refused (points_rejected).
// - Layout: both tables are keyed by (time, series), so a batch (one minute of many
//   series) writes a few adjacent pages, and drops cut the oldest pages; a query is one
//   index seek per bucket of its range (clamped to the stored extent).
// - Failures: a corrupt file (SQLITE_CORRUPT, SQLITE_NOTADB) is moved aside as
//   history.db.corrupt-<unix time> (one such file kept), a full one (SQLITE_FULL) is
//   removed (keeping it would keep the disk full); either way one warning line, a fresh
//   database, `resets` counted, and the failed operation retried once on it. Within 60 s
//   of a reset there is no other (no reset loop on a full disk): the operation fails and
//   is counted in write_errors. Nothing throws across this API.
//
// Thread safety: a Store is internally synchronised (one mutex around its one connection
// and its cached statements): the agent's writer thread and the API's readers may share
// it. stats() takes no lock. A moved-from Store may only be destroyed or assigned to.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <netprobe/util/error.hpp>

namespace netprobe::history {

// One per-minute aggregate. A counter's rate: sum over the minute, count = samples; a
// gauge: sum/count/min/max of its samples. minute is unix seconds; it is floored to a
// multiple of 60. Non-finite values or an empty key: the point is refused (counted).
struct Point {
    std::string series;
    std::int64_t minute = 0;
    double sum = 0;
    double count = 0;
    double min = 0;
    double max = 0;
};

// One bucket of a query: [time, time + step), step 60 (minutes) or 3600 (hours).
struct Row {
    std::int64_t time = 0;
    std::int64_t step = 0;
    double sum = 0;
    double count = 0;
    double min = 0;
    double max = 0;

    bool operator==(const Row&) const = default;
};

// automatic: minutes when the range spans at most 24 h and no minute in it has been
// dropped yet, hours otherwise.
enum class Resolution { minute, hour, automatic };

struct StoreOptions {
    std::filesystem::path dir;                  // created if missing; the file is dir/history.db
    std::chrono::days minute_retention{7};
    std::chrono::days hour_retention{90};       // hours are kept at least as long as minutes
    std::uint64_t max_bytes = 1ull << 30;       // main file + WAL, enforced by maintain()
    // Hard cap in pages (PRAGMA max_page_count; 0: SQLite's default): a write past it
    // fails as SQLITE_FULL, i.e. the reset path. For tests, and as a last-resort bound.
    std::uint32_t max_pages = 0;
};

struct StoreStats {
    std::uint64_t points_written = 0;     // points committed by append()
    std::uint64_t points_rejected = 0;    // invalid, or older than what was dropped already
    std::uint64_t rows_dropped_age = 0;   // minute + hour rows past their retention
    std::uint64_t rows_dropped_size = 0;  // minute + hour rows dropped to stay under max_bytes
    std::uint64_t write_errors = 0;       // append/putState/maintain calls that failed
    std::uint64_t resets = 0;             // fresh files after corruption or a full disk
    std::uint64_t file_bytes = 0;         // page_count * page_size + WAL, as last measured
    std::uint64_t series = 0;
};

struct MaintenanceResult {
    std::uint64_t rows_dropped_age = 0;
    std::uint64_t rows_dropped_size = 0;
    std::uint64_t series_deleted = 0;
    std::uint64_t bytes_before = 0;
    std::uint64_t bytes_after = 0;
    bool over_budget = false;  // still above max_bytes (work left for the next call, or nothing droppable)
};

class Store {
public:
    // Creates dir, opens (or creates) dir/history.db. A corrupt file is replaced (see
    // above); an error when the directory or file cannot be used, or when the file's
    // schema is newer than this build's (its data is left alone).
    [[nodiscard]] static Result<Store> open(StoreOptions options);

    Store(Store&&) noexcept;
    Store& operator=(Store&&) noexcept;
    ~Store();

    // One transaction: merges the points into their minutes, recomputes the touched hours.
    [[nodiscard]] Result<void> append(std::span<const Point> points);

    // The series' buckets that overlap [from, to), oldest first; empty for an unknown series.
    [[nodiscard]] Result<std::vector<Row>> query(std::string_view series, std::int64_t from, std::int64_t to,
                                                 Resolution resolution = Resolution::automatic) const;
    // Keys starting with prefix, in byte order, at most limit of them.
    [[nodiscard]] Result<std::vector<std::string>> listSeries(std::string_view prefix, std::size_t limit) const;

    // Model state: an opaque blob per key (replaced on put).
    [[nodiscard]] Result<void> putState(std::string_view key, std::string_view blob);
    [[nodiscard]] Result<std::optional<std::string>> getState(std::string_view key) const;
    // Every state whose key starts with prefix (printable ASCII keys), in key order.
    [[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> states(std::string_view prefix) const;

    // Drops minutes older than minute_retention and hours older than hour_retention
    // (cutoffs floored to the hour), then, while the file is above max_bytes, the oldest
    // minutes (then the oldest hours) in growing chunks (at most 16 per call); reclaims the
    // freed pages (incremental vacuum), checkpoints the WAL (TRUNCATE), deletes series
    // left without rows.
    [[nodiscard]] Result<MaintenanceResult> maintain(std::int64_t now_unix);

    // Any thread, no lock.
    [[nodiscard]] StoreStats stats() const;
    [[nodiscard]] std::filesystem::path file() const;
    [[nodiscard]] const StoreOptions& options() const;  // as opened (retention, size)
    // Series whose row ids append() keeps in memory: those of the latest batches (a series
    // that ended, such as a deleted interface's, leaves once there are many more than a batch).
    [[nodiscard]] std::size_t cachedSeries() const;

private:
    struct Impl;
    explicit Store(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace netprobe::history
