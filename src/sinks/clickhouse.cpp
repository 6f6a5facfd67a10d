#include "netprobe/sinks/clickhouse.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "netprobe/ebpf/types.hpp"
#include "netprobe/util/clickhouse.hpp"
#include "netprobe/util/duration.hpp"
#include "netprobe/util/ip.hpp"
#include "netprobe/util/parse.hpp"
#include "netprobe/util/json_text.hpp"

namespace netprobe::sinks {

namespace fs = std::filesystem;
using util::parseNumber;

namespace {

using Clock = std::chrono::steady_clock;

bool validIdentifier(std::string_view s) {
    if (s.empty() || s.size() > 64 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::int64_t nowSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A spool file: <unix ms, 13 digits>-<batch id, 16 hex>-<rows>.jsonl (lexical order is time order);
// <...>-<rows>.series.jsonl holds history points for the series table.
struct SpoolFile {
    fs::path path;
    std::uint64_t batch = 0;
    std::uint64_t rows = 0;
    std::uint64_t bytes = 0;
    bool series = false;
};

std::optional<SpoolFile> parseSpoolName(const fs::path& p) {
    const std::string n = p.filename().string();
    if (!n.ends_with(".jsonl") || n.size() < 13 + 1 + 16 + 1 + 1 + 6) return std::nullopt;
    SpoolFile f;
    f.path = p;
    std::string_view v(n);
    v.remove_suffix(6);
    if (v.ends_with(".series")) {
        f.series = true;
        v.remove_suffix(7);
    }
    const auto d1 = v.find('-'), d2 = v.rfind('-');
    if (d1 != 13 || d2 != 13 + 1 + 16) return std::nullopt;
    auto h = v.substr(14, 16);
    if (std::from_chars(h.data(), h.data() + h.size(), f.batch, 16).ec != std::errc()) return std::nullopt;
    if (!parseNumber(v.substr(d2 + 1), f.rows)) return std::nullopt;
    std::error_code ec;
    f.bytes = fs::file_size(p, ec);
    if (ec) return std::nullopt;
    return f;
}

}  // namespace

Result<ClickHouseConfig> parseClickHouse(std::string_view spec) {
    ClickHouseConfig c;
    auto bad = [&](const std::string& why) {
        return std::unexpected(makeError("--clickhouse=" + std::string(spec) + ": " + why));
    };
    const auto comma = spec.find(',');
    c.url = std::string(spec.substr(0, comma));
    std::string_view opts = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    const bool http = c.url.starts_with("http://"), https = c.url.starts_with("https://");
    if (!http && !https) return bad("the URL must start with http:// or https://");
    const std::string rest = c.url.substr(http ? 7 : 8);
    if (rest.empty() || rest.front() == ':' || rest.find('/') != std::string::npos)
        return bad("expected http[s]://HOST[:PORT] (no path: the database is database=NAME)");
    if (rest.find('@') != std::string::npos)
        return bad("no credentials in the URL: set NETPROBE_CLICKHOUSE_USER and NETPROBE_CLICKHOUSE_PASSWORD");
    auto duration = [&](std::string_view v, auto& out, std::chrono::nanoseconds lo, std::chrono::nanoseconds hi,
                        const char* what) -> std::optional<std::string> {
        // Go durations, and days ("7d": retention is counted in days).
        std::expected<std::chrono::nanoseconds, std::string> d = std::unexpected(std::string());
        if (unsigned days = 0; v.ends_with('d') && parseNumber(v.substr(0, v.size() - 1), days) && days <= 36500)
            d = std::chrono::hours(24) * days;
        else
            d = util::parseDuration(v);
        if (!d || *d < lo || *d > hi) return std::string(what);
        out = std::chrono::duration_cast<std::remove_reference_t<decltype(out)>>(*d);
        return std::nullopt;
    };
    while (!opts.empty()) {
        const auto next = opts.find(',');
        std::string_view kv = opts.substr(0, next);
        opts = next == std::string_view::npos ? std::string_view() : opts.substr(next + 1);
        const auto eq = kv.find('=');
        if (eq == std::string_view::npos) return bad("option \"" + std::string(kv) + "\" is not KEY=VALUE");
        const auto k = kv.substr(0, eq), v = kv.substr(eq + 1);
        std::optional<std::string> err;
        if (k == "database") {
            if (!validIdentifier(v)) return bad("database must be letters, digits and _ (at most 64)");
            c.database = std::string(v);
        } else if (k == "batch") {
            if (!parseNumber(v, c.batch) || c.batch == 0 || c.batch > 1'000'000) return bad("batch must be 1-1000000");
        } else if (k == "flush") {
            err = duration(v, c.flush, std::chrono::milliseconds(100), std::chrono::minutes(10),
                           "flush must be a duration from 100ms to 10m");
        } else if (k == "retention") {
            err = duration(v, c.retention, std::chrono::hours(24), std::chrono::hours(24 * 3650),
                           "retention must be at least 1d (7d, 168h: whole days are dropped)");
        } else if (k == "retention-1m") {
            err = duration(v, c.retention_1m, std::chrono::hours(24), std::chrono::hours(24 * 3650),
                           "retention-1m must be at least 1d");
        } else if (k == "retention-1h") {
            err = duration(v, c.retention_1h, std::chrono::hours(24 * 31), std::chrono::hours(24 * 3650),
                           "retention-1h must be at least 31d (whole months are dropped)");
        } else if (k == "spool-max") {
            auto b = util::parseByteSize(v);
            if (!b || *b < (1u << 20)) return bad("spool-max must be a size of at least 1MiB (64MiB, 1GiB)");
            c.spool_max_bytes = *b;
        } else if (k == "queue") {
            if (!parseNumber(v, c.queue) || c.queue == 0 || c.queue > 10'000'000) return bad("queue must be 1-10000000");
        } else if (k == "series") {
            if (v != "on" && v != "off") return bad("series must be on or off");
            c.series = v == "on";
        } else {
            return bad("unknown option \"" + std::string(k) +
                       "\" (database, batch, flush, retention, retention-1m, retention-1h, spool-max, queue, series)");
        }
        if (err) return bad(*err);
    }
    return c;
}

std::optional<ClickHouseVersion> parseClickHouseVersion(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    ClickHouseVersion v;
    const auto dot = text.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const auto dot2 = text.find('.', dot + 1);
    if (!parseNumber(text.substr(0, dot), v.major)) return std::nullopt;
    if (!parseNumber(text.substr(dot + 1, dot2 == std::string_view::npos ? std::string_view::npos : dot2 - dot - 1),
                     v.minor))
        return std::nullopt;
    return v;
}

std::vector<std::pair<std::string, std::string>> clickHouseAddedFlowColumns(ClickHouseVersion v) {
    const std::string str = v.atLeast(19, 1) ? "LowCardinality(String)" : "String";
    const std::string counter = v.atLeast(20, 1) ? "UInt64 CODEC(T64, LZ4)" : "UInt64";
    return {
        {"l7_protocol", str},          {"l7_side", str},
        {"l7_requests", counter},      {"l7_errors", counter},
        {"l7_client_errors", counter}, {"l7_latency_sum_us", counter},
        {"l7_latency_max_us", "UInt64"}, {"policy_verdict", str},
    };
}

std::optional<std::string> clickHouseFlowMigration(const ClickHouseConfig& c, ClickHouseVersion v,
                                                   const std::vector<std::string>& columns) {
    // Servers before 19.x know no ADD COLUMN IF NOT EXISTS (18.16 answers a syntax
    // error): the sink reads system.columns and adds only what is missing, in one ALTER.
    std::set<std::string> known(columns.begin(), columns.end());
    std::string alter;
    std::string after = "dst_container";  // the last column of the first schema
    for (const auto& [name, type] : clickHouseAddedFlowColumns(v)) {
        if (!known.contains(name)) {
            alter += alter.empty() ? "ALTER TABLE " + c.database + ".flows ADD COLUMN " : ", ADD COLUMN ";
            alter += name + " " + type;
            if (known.contains(after)) alter += " AFTER " + after;  // the schema's order
            known.insert(name);
        }
        after = name;
    }
    if (alter.empty()) return std::nullopt;
    return alter;
}

std::vector<std::string> clickHouseSchema(const ClickHouseConfig& c, ClickHouseVersion v) {
    const std::string db = c.database;
    const bool lc = v.atLeast(19, 1), ttl = v.atLeast(19, 6), codecs = v.atLeast(20, 1);
    const std::string str = lc ? "LowCardinality(String)" : "String";
    auto codec = [&](const char* what) { return codecs ? std::string(" CODEC(") + what + ")" : std::string(); };
    std::string added;
    for (const auto& [name, type] : clickHouseAddedFlowColumns(v)) added += ",\n  " + name + " " + type;
    auto days = [](std::chrono::hours h) { return std::to_string(h.count() / 24); };
    std::vector<std::string> out;
    out.push_back("CREATE DATABASE IF NOT EXISTS " + db);
    out.push_back(
        "CREATE TABLE IF NOT EXISTS " + db + ".flows (\n"
        "  time_received DateTime" + codec("DoubleDelta, LZ4") + ",\n"
        "  node " + str + ",\n"
        "  batch_id UInt64,\n"
        "  seq UInt32,\n"
        "  flow_id UInt64,\n"
        "  start_ms UInt64" + codec("DoubleDelta, LZ4") + ",\n"
        "  end_ms UInt64" + codec("DoubleDelta, LZ4") + ",\n"
        "  end_reason " + str + ",\n"
        "  interface " + str + ",\n"
        "  ifindex UInt32,\n"
        "  direction " + str + ",\n"
        "  ip_version UInt8,\n"
        "  protocol UInt8,\n"
        "  src_addr String,\n"
        "  dst_addr String,\n"
        "  src_port UInt16,\n"
        "  dst_port UInt16,\n"
        "  packets UInt64" + codec("T64, LZ4") + ",\n"
        "  bytes UInt64" + codec("T64, LZ4") + ",\n"
        "  l2_bytes UInt64" + codec("T64, LZ4") + ",\n"
        "  rev_packets UInt64" + codec("T64, LZ4") + ",\n"
        "  rev_bytes UInt64" + codec("T64, LZ4") + ",\n"
        "  rev_l2_bytes UInt64" + codec("T64, LZ4") + ",\n"
        "  tcp_flags UInt8,\n"
        "  rev_tcp_flags UInt8,\n"
        "  biflow UInt8,\n"
        "  src_namespace " + str + ",\n"
        "  src_pod " + str + ",\n"
        "  src_workload " + str + ",\n"
        "  dst_namespace " + str + ",\n"
        "  dst_pod " + str + ",\n"
        "  dst_workload " + str + ",\n"
        "  dst_service " + str + ",\n"
        "  src_container String,\n"
        "  dst_container String" + added + "\n"
        ") ENGINE = ReplacingMergeTree\n"
        "PARTITION BY toYYYYMMDD(time_received)\n"
        "ORDER BY (time_received, node, batch_id, seq)" +
        (ttl ? "\nTTL time_received + INTERVAL " + days(c.retention) + " DAY" : std::string()));
    const std::string dims =
        "node, interface, protocol, src_namespace, src_workload, dst_namespace, dst_workload, dst_service, dst_port";
    for (const auto& [suffix, fn, part, keep] :
         {std::tuple{"1m", "toStartOfMinute", "toYYYYMMDD(t)", c.retention_1m},
          std::tuple{"1h", "toStartOfHour", "toYYYYMM(t)", c.retention_1h}}) {
        const std::string t = db + ".flows_" + suffix;
        out.push_back("CREATE TABLE IF NOT EXISTS " + t + " (\n"
                      "  t DateTime,\n"
                      "  node " + str + ",\n"
                      "  interface " + str + ",\n"
                      "  protocol UInt8,\n"
                      "  src_namespace " + str + ",\n"
                      "  src_workload " + str + ",\n"
                      "  dst_namespace " + str + ",\n"
                      "  dst_workload " + str + ",\n"
                      "  dst_service " + str + ",\n"
                      "  dst_port UInt16,\n"
                      "  records UInt64,\n"
                      "  packets UInt64,\n"
                      "  bytes UInt64,\n"
                      "  rev_packets UInt64,\n"
                      "  rev_bytes UInt64\n"
                      ") ENGINE = SummingMergeTree\n"
                      "PARTITION BY " + part + "\n"
                      "ORDER BY (t, " + dims + ")" +
                      (ttl ? "\nTTL t + INTERVAL " + days(keep) + " DAY" : std::string()));
        out.push_back("CREATE MATERIALIZED VIEW IF NOT EXISTS " + t + "_mv TO " + t + " AS\n"
                      "SELECT " + fn + "(time_received) AS t, " + dims + ",\n"
                      "  count() AS records, sum(packets) AS packets, sum(bytes) AS bytes,\n"
                      "  sum(rev_packets) AS rev_packets, sum(rev_bytes) AS rev_bytes\n"
                      "FROM " + db + ".flows GROUP BY t, " + dims);
    }
    // History series: one row per (node, series, minute) and batch; hours by an
    // AggregatingMergeTree (SummingMergeTree cannot keep min and max). The value columns
    // are v_* because an alias named like its function (sum(...) AS sum) is cyclic.
    out.push_back("CREATE TABLE IF NOT EXISTS " + db + ".series (\n"
                  "  t DateTime" + codec("DoubleDelta, LZ4") + ",\n"
                  "  node " + str + ",\n"
                  "  series " + str + ",\n"
                  "  batch_id UInt64,\n"
                  "  seq UInt32,\n"
                  "  v_sum Float64,\n"
                  "  v_count Float64,\n"
                  "  v_min Float64,\n"
                  "  v_max Float64\n"
                  ") ENGINE = ReplacingMergeTree\n"
                  "PARTITION BY toYYYYMMDD(t)\n"
                  "ORDER BY (series, t, node, batch_id, seq)" +
                  (ttl ? "\nTTL t + INTERVAL " + days(c.retention_1m) + " DAY" : std::string()));
    out.push_back("CREATE TABLE IF NOT EXISTS " + db + ".series_1h (\n"
                  "  t DateTime,\n"
                  "  node " + str + ",\n"
                  "  series " + str + ",\n"
                  "  v_sum AggregateFunction(sum, Float64),\n"
                  "  v_count AggregateFunction(sum, Float64),\n"
                  "  v_min AggregateFunction(min, Float64),\n"
                  "  v_max AggregateFunction(max, Float64)\n"
                  ") ENGINE = AggregatingMergeTree\n"
                  "PARTITION BY toYYYYMM(t)\n"
                  "ORDER BY (series, t, node)" +
                  (ttl ? "\nTTL t + INTERVAL " + days(c.retention_1h) + " DAY" : std::string()));
    out.push_back("CREATE MATERIALIZED VIEW IF NOT EXISTS " + db + ".series_1h_mv TO " + db + ".series_1h AS\n"
                  "SELECT toStartOfHour(t) AS t, node, series, sumState(v_sum) AS v_sum, sumState(v_count) AS v_count,\n"
                  "  minState(v_min) AS v_min, maxState(v_max) AS v_max\n"
                  "FROM " + db + ".series GROUP BY t, node, series");
    return out;
}

std::string clickHouseSeriesRow(const history::Point& p, const std::string& node, std::uint64_t batch,
                                std::uint32_t seq) {
    using namespace util;
    std::string o;
    o.reserve(160 + p.series.size());
    o += '{';
    appendJsonKey(o, "t"), appendJsonInt(o, p.minute - ((p.minute % 60) + 60) % 60);
    appendJsonKey(o, "node"), appendJsonString(o, node);
    appendJsonKey(o, "series"), appendJsonString(o, p.series);
    appendJsonKey(o, "batch_id"), appendJsonUint(o, batch);
    appendJsonKey(o, "seq"), appendJsonUint(o, seq);
    appendJsonKey(o, "v_sum"), appendJsonDouble(o, p.sum);
    appendJsonKey(o, "v_count"), appendJsonDouble(o, p.count);
    appendJsonKey(o, "v_min"), appendJsonDouble(o, p.min);
    appendJsonKey(o, "v_max"), appendJsonDouble(o, p.max);
    o += '}';
    return o;
}

std::string clickHouseRow(const FlowExportRecord& r, const std::string& node, std::uint64_t batch, std::uint32_t seq,
                          std::int64_t received_s) {
    using namespace util;
    std::string o;
    o.reserve(640);
    o += '{';
    auto u = [&](std::string_view k, std::uint64_t v) { appendJsonKey(o, k), appendJsonUint(o, v); };
    auto str = [&](std::string_view k, std::string_view v) { appendJsonKey(o, k), appendJsonString(o, v); };
    appendJsonKey(o, "time_received"), appendJsonInt(o, received_s);
    str("node", node);
    u("batch_id", batch);
    u("seq", seq);
    u("flow_id", r.flow_id);
    appendJsonKey(o, "start_ms"), appendJsonInt(o, r.start_ms);
    appendJsonKey(o, "end_ms"), appendJsonInt(o, r.end_ms);
    str("end_reason", analysis::toString(r.reason));
    str("interface", r.interface);
    u("ifindex", r.key.ifindex);
    str("direction", ebpf::directionName(r.key.direction));
    u("ip_version", r.key.family);
    u("protocol", r.key.proto);
    str("src_addr", formatAddr(std::bit_cast<Addr16>(r.key.src_ip)));
    str("dst_addr", formatAddr(std::bit_cast<Addr16>(r.key.dst_ip)));
    u("src_port", r.key.src_port);
    u("dst_port", r.key.dst_port);
    u("packets", r.packets);
    u("bytes", r.ipBytes());
    u("l2_bytes", r.bytes);
    u("rev_packets", r.rev_packets);
    u("rev_bytes", r.revIpBytes());
    u("rev_l2_bytes", r.rev_bytes);
    u("tcp_flags", r.tcp_flags);
    u("rev_tcp_flags", r.rev_tcp_flags);
    u("biflow", r.reverse_seen ? 1 : 0);
    str("src_namespace", r.labels.src_namespace);
    str("src_pod", r.labels.src_pod);
    str("src_workload", r.labels.src_workload);
    str("dst_namespace", r.labels.dst_namespace);
    str("dst_pod", r.labels.dst_pod);
    str("dst_workload", r.labels.dst_workload);
    str("dst_service", r.labels.dst_service);
    str("src_container", r.src_container);
    str("dst_container", r.dst_container);
    str("l7_protocol", r.l7.protocol);
    str("l7_side", analysis::toString(r.l7.side));
    u("l7_requests", r.l7.requests);
    u("l7_errors", r.l7.errors);
    u("l7_client_errors", r.l7.client_errors);
    u("l7_latency_sum_us", r.l7.latency_sum_us);
    u("l7_latency_max_us", r.l7.latency_max_us);
    str("policy_verdict", analysis::toString(r.policy));
    o += '}';
    return o;
}

// ---- the sink ----

struct ClickHouseSink::Impl {
    ClickHouseConfig cfg;
    RecordQueue queue;
    std::atomic<std::int64_t> drain_deadline_ns{0};
    std::uint64_t run_id = 0;  // high 32 bits of every batch id of this run
    std::uint32_t batch_seq = 0;

    // Owned by the sink's thread.
    std::deque<SpoolFile> spool;   // oldest first
    std::set<std::uint64_t> uncertain;  // batches whose last insert may have landed
    bool ready = false;            // schema created on the server
    bool has_ttl = false;
    Clock::time_point next_attempt{}, next_flush{}, next_retention{};
    std::chrono::seconds backoff{1};

    mutable std::mutex mu;
    SinkStatus status;
    // History points waiting to be spooled (under mu), whole intervals, oldest first.
    std::deque<std::vector<history::Point>> series_queue;
    std::size_t series_queued = 0;

    explicit Impl(ClickHouseConfig c) : cfg(std::move(c)), queue(cfg.queue) {
        status.series = cfg.series;
        status.kind = "clickhouse";
        status.target = cfg.url + "/" + cfg.database;
        status.queue_capacity = queue.capacity();
        std::random_device rd;
        run_id = static_cast<std::uint64_t>(rd()) << 32;
    }

    void error(const std::string& what) {
        std::lock_guard lock(mu);
        ++status.errors_total;
        status.up = false;
        if (status.last_error != what) spdlog::warn("clickhouse {}: {}", status.target, what);
        status.last_error = what;
    }
    void ok() {
        std::lock_guard lock(mu);
        if (!status.up && !status.last_error.empty()) spdlog::info("clickhouse {}: inserting again", status.target);
        status.up = true;
        status.last_error.clear();
    }
    void spoolStatus() {
        std::uint64_t b = 0;
        for (const auto& f : spool) b += f.bytes;
        std::lock_guard lock(mu);
        status.spool_bytes = b;
        status.spool_batches = spool.size();
    }

    // A query; the answer's body, or an error (connection, or the server's message).
    Result<std::string> query(const std::string& sql, const std::string& body = {}, bool* sent = nullptr) {
        return util::clickHouseQuery({cfg.url, cfg.user, cfg.password, std::chrono::seconds(3), std::chrono::seconds(30)},
                                     sql, body, sent);
    }

    void loadSpool() {
        std::error_code ec;
        fs::create_directories(cfg.spool_dir, ec);
        for (const auto& e : fs::directory_iterator(cfg.spool_dir, ec)) {
            if (e.path().extension() == ".tmp") {
                fs::remove(e.path(), ec);  // a write the previous run did not finish
                continue;
            }
            if (auto f = parseSpoolName(e.path())) spool.push_back(*f);
        }
        std::sort(spool.begin(), spool.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
        // Batches of an earlier run may have been inserted just before it stopped.
        for (const auto& f : spool) uncertain.insert(f.batch);
        if (!spool.empty())
            spdlog::info("clickhouse {}: {} batch(es) left in the spool by a previous run", status.target, spool.size());
        spoolStatus();
    }

    // Rows lost with a batch (a failed spool write, a full spool, an unreadable file).
    void dropped(const SpoolFile& f, bool spool_full) {
        std::lock_guard lock(mu);
        if (f.series)
            status.series_points_dropped += f.rows;
        else
            (spool_full ? status.records_dropped_spool : status.records_dropped_send) += f.rows;
    }

    // Queue -> one spool file.
    void spoolBatch(std::vector<FlowExportRecord> recs) {
        if (recs.empty()) return;
        const std::uint64_t batch = run_id | ++batch_seq;
        const std::int64_t now_s = nowSeconds();
        std::string body;
        body.reserve(recs.size() * 520);
        std::uint32_t seq = 0;
        for (const auto& r : recs) {
            body += clickHouseRow(r, cfg.node, batch, seq++, now_s);
            body += '\n';
        }
        writeSpool(batch, recs.size(), body, false);
    }

    // The queued history points -> one spool file.
    void spoolSeries() {
        std::deque<std::vector<history::Point>> q;
        {
            std::lock_guard lock(mu);
            q.swap(series_queue);
            series_queued = 0;
        }
        std::size_t n = 0;
        for (const auto& b : q) n += b.size();
        if (n == 0) return;
        const std::uint64_t batch = run_id | ++batch_seq;
        std::string body;
        body.reserve(n * 120);
        std::uint32_t seq = 0;
        for (const auto& b : q)
            for (const auto& p : b) {
                body += clickHouseSeriesRow(p, cfg.node, batch, seq++);
                body += '\n';
            }
        writeSpool(batch, n, body, true);
    }

    void writeSpool(std::uint64_t batch, std::size_t rows, const std::string& body, bool series) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
        char name[80];
        std::snprintf(name, sizeof name, "%013lld-%016llx-%zu%s.jsonl", static_cast<long long>(ms),
                      static_cast<unsigned long long>(batch), rows, series ? ".series" : "");
        const SpoolFile lost{{}, batch, rows, 0, series};
        const fs::path final_path = fs::path(cfg.spool_dir) / name;
        const fs::path tmp = final_path.string() + ".tmp";
        {
            std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
            f.write(body.data(), static_cast<std::streamsize>(body.size()));
            f.close();
            if (!f) {
                std::error_code ec;
                fs::remove(tmp, ec);
                error("spool write " + tmp.string() + " failed: the batch is dropped");
                dropped(lost, false);
                return;
            }
        }
        std::error_code ec;
        fs::rename(tmp, final_path, ec);
        if (ec) {
            error("spool rename " + final_path.string() + ": " + ec.message());
            fs::remove(tmp, ec);
            dropped(lost, false);
            return;
        }
        spool.push_back({final_path, batch, rows, body.size(), series});
        // Bounded: the oldest go (never the newest batch).
        std::uint64_t total = 0;
        for (const auto& s : spool) total += s.bytes;
        while (total > cfg.spool_max_bytes && spool.size() > 1) {
            const auto& old = spool.front();
            total -= old.bytes;
            fs::remove(old.path, ec);
            dropped(old, true);
            uncertain.erase(old.batch);
            spool.pop_front();
        }
        spoolStatus();
    }

    bool createSchema() {
        auto ver = query("SELECT version()");
        if (!ver) {
            error("cannot reach the server: " + ver.error().what());
            return false;
        }
        auto v = parseClickHouseVersion(*ver);
        if (!v) {
            error("unexpected version answer \"" + ver->substr(0, std::min<std::size_t>(ver->find('\n'), 100)) + "\"");
            return false;
        }
        for (const auto& ddl : clickHouseSchema(cfg, *v)) {
            if (auto r = query(ddl); !r) {
                error("schema: " + r.error().what());
                return false;
            }
        }
        if (!migrateFlows(*v)) return false;
        has_ttl = v->atLeast(19, 6);
        spdlog::info("clickhouse {}: server {}.{}, tables {}.flows, flows_1m, flows_1h, series, series_1h ready{}",
                     status.target,
                     v->major, v->minor, cfg.database, has_ttl ? " (TTL retention)" : " (retention by dropping partitions)");
        return true;
    }

    // A flows table an older agent created lacks the columns added since: add them (the
    // rollups' views read only the columns they name, and keep working).
    bool migrateFlows(ClickHouseVersion v) {
        const std::string list = "SELECT name FROM system.columns WHERE database = '" + cfg.database +
                                 "' AND table = 'flows' FORMAT TSV";
        for (int attempt = 0; attempt < 2; ++attempt) {
            auto cols = query(list);
            if (!cols) {
                error("schema: reading the columns of " + cfg.database + ".flows: " + cols.error().what());
                return false;
            }
            std::vector<std::string> names;
            std::istringstream in(*cols);
            for (std::string line; std::getline(in, line);)
                if (!line.empty()) names.push_back(line);
            auto alter = clickHouseFlowMigration(cfg, v, names);
            if (!alter) return true;
            auto r = query(*alter);
            if (r) {
                spdlog::info("clickhouse {}: added the L7 and policy columns to {}.flows", status.target, cfg.database);
                return true;
            }
            // Another node's agent may have added them meanwhile (code 44: the column
            // exists): read the columns again, once.
            if (attempt == 1 || r.error().code != 44) {
                error("schema: " + *alter + ": " + r.error().what());
                return false;
            }
        }
        return false;
    }

    // Retention where the server has no TTL: whole partitions older than the retention.
    void dropOldPartitions() {
        const std::int64_t now = nowSeconds();
        for (const auto& [table, keep, monthly] :
             {std::tuple{"flows", cfg.retention, false}, std::tuple{"flows_1m", cfg.retention_1m, false},
              std::tuple{"flows_1h", cfg.retention_1h, true}, std::tuple{"series", cfg.retention_1m, false},
              std::tuple{"series_1h", cfg.retention_1h, true}}) {
            auto parts = query("SELECT DISTINCT partition FROM system.parts WHERE database = '" + cfg.database +
                               "' AND table = '" + table + "' AND active FORMAT TSV");
            if (!parts) {
                error("retention: " + parts.error().what());
                return;
            }
            const std::time_t cutoff = static_cast<std::time_t>(now - std::chrono::seconds(keep).count());
            std::tm tm{};
            gmtime_r(&cutoff, &tm);
            // A partition is dropped when all of it is older than the cutoff.
            const long cut = monthly ? (tm.tm_year + 1900) * 100L + tm.tm_mon + 1
                                     : (tm.tm_year + 1900) * 10000L + (tm.tm_mon + 1) * 100L + tm.tm_mday;
            std::istringstream in(*parts);
            std::string id;
            while (std::getline(in, id)) {
                long p = 0;
                if (!parseNumber(std::string_view(id), p) || p >= cut) continue;
                if (auto r = query("ALTER TABLE " + cfg.database + "." + table + " DROP PARTITION " + id); !r) {
                    error("retention: drop partition " + id + " of " + table + ": " + r.error().what());
                    continue;
                }
                spdlog::info("clickhouse {}: dropped partition {} of {} (retention)", status.target, id, table);
                std::lock_guard lock(mu);
                ++status.partitions_dropped;
            }
        }
    }

    // Sends the oldest spool file. False: stop for now (the server is away or refuses).
    bool sendOldest() {
        SpoolFile f = spool.front();
        std::error_code ec;
        const std::string table = cfg.database + (f.series ? ".series" : ".flows");
        if (uncertain.count(f.batch)) {
            // The last attempt may have landed: look before inserting again.
            auto n = query("SELECT count() FROM " + table + " WHERE batch_id = " + std::to_string(f.batch));
            if (!n) {
                error("batch lookup: " + n.error().what());
                return false;
            }
            std::uint64_t rows = 0;
            std::string t = *n;
            while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
            (void)parseNumber(std::string_view(t), rows);
            if (rows >= f.rows) {
                done(f, false);
                return true;
            }
            // Not there (or part of it, when a batch spans two daily partitions: the
            // ReplacingMergeTree collapses the copies).
        }
        std::ifstream in(f.path, std::ios::binary);
        std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in.good() && !in.eof()) {
            error("spool read " + f.path.string() + " failed: batch dropped");
            fs::remove(f.path, ec);
            spool.pop_front();
            dropped(f, false);
            return true;
        }
        bool sent = false;
        auto r = query("INSERT INTO " + table + " FORMAT JSONEachRow", body, &sent);
        if (r) {
            done(f, true);
            std::lock_guard lock(mu);
            status.bytes_sent += body.size();
            return true;
        }
        if (sent) uncertain.insert(f.batch);
        const int code = r.error().code;
        if (code == 60 || code == 81) ready = false;  // table / database gone: create them again
        error("insert of " + std::to_string(f.rows) + (f.series ? " series points: " : " records: ") +
              r.error().what());
        return false;
    }

    void done(const SpoolFile& f, bool inserted) {
        std::error_code ec;
        fs::remove(f.path, ec);
        uncertain.erase(f.batch);
        spool.pop_front();
        spoolStatus();
        ok();
        std::lock_guard lock(mu);
        (f.series ? status.series_points_sent : status.records_sent) += f.rows;
        if (inserted) ++status.messages_sent;
    }
};

ClickHouseSink::ClickHouseSink(ClickHouseConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Result<std::unique_ptr<ClickHouseSink>> ClickHouseSink::start(ClickHouseConfig config) {
    if (config.spool_dir.empty()) return std::unexpected(makeError("--clickhouse: no spool directory"));
    std::error_code ec;
    fs::create_directories(config.spool_dir, ec);
    if (ec) return std::unexpected(makeError("--clickhouse: spool directory " + config.spool_dir + ": " + ec.message()));
    const fs::path probe = fs::path(config.spool_dir) / ".write-test";
    {
        std::ofstream f(probe);
        if (!f) return std::unexpected(makeError("--clickhouse: spool directory " + config.spool_dir + " is not writable"));
    }
    fs::remove(probe, ec);
    std::unique_ptr<ClickHouseSink> s(new ClickHouseSink(std::move(config)));
    s->impl_->loadSpool();
    s->thread_ = std::thread([p = s.get()] { p->loop(); });
    return s;
}

ClickHouseSink::~ClickHouseSink() { drain(std::chrono::milliseconds(0)); }

void ClickHouseSink::offer(const analysis::FlowExportView& view) { impl_->queue.push(view.records); }

void ClickHouseSink::offerSeries(std::vector<history::Point> points) {
    auto& m = *impl_;
    if (!m.cfg.series) return;
    std::erase_if(points, [](const history::Point& p) {
        return p.series.empty() || !std::isfinite(p.sum) || !std::isfinite(p.count) || !std::isfinite(p.min) ||
               !std::isfinite(p.max);
    });
    if (points.empty()) return;
    std::lock_guard lock(m.mu);
    m.series_queued += points.size();
    m.series_queue.push_back(std::move(points));
    while (m.series_queued > m.cfg.series_queue && m.series_queue.size() > 1) {
        m.series_queued -= m.series_queue.front().size();
        m.status.series_points_dropped += m.series_queue.front().size();
        m.series_queue.pop_front();
    }
}

void ClickHouseSink::drain(std::chrono::milliseconds timeout) {
    if (!thread_.joinable()) return;
    impl_->drain_deadline_ns.store((Clock::now() + timeout).time_since_epoch().count());
    impl_->queue.stop();
    thread_.join();
}

SinkStatus ClickHouseSink::status() const {
    std::lock_guard lock(impl_->mu);
    SinkStatus s = impl_->status;
    s.queued = impl_->queue.size();
    s.records_dropped_queue = impl_->queue.dropped();
    return s;
}

void ClickHouseSink::loop() {
    auto& m = *impl_;
    m.next_flush = Clock::now() + m.cfg.flush;
    for (;;) {
        const std::int64_t drain_ns = m.drain_deadline_ns.load();
        const bool draining = drain_ns != 0;
        const auto now = Clock::now();
        // 1. The queue into the spool: full batches at once, the rest every flush interval
        //    (and everything when stopping: the spool outlives the process).
        if (m.queue.size() >= m.cfg.batch || now >= m.next_flush || draining) {
            while (m.queue.size() > 0) {
                m.spoolBatch(m.queue.take(m.cfg.batch, now));
                if (m.queue.size() < m.cfg.batch && !draining) break;
            }
            m.spoolSeries();
            m.next_flush = now + m.cfg.flush;
        }
        if (draining && (m.spool.empty() || now.time_since_epoch().count() >= drain_ns)) break;
        // 2. The spool to the server, oldest first.
        bool progressed = false;
        if (!m.spool.empty() || !m.ready) {
            if (now >= m.next_attempt) {
                if (!m.ready) m.ready = m.createSchema();
                if (m.ready && !m.has_ttl && now >= m.next_retention) {
                    m.dropOldPartitions();
                    m.next_retention = now + std::chrono::hours(1);
                }
                while (m.ready && !m.spool.empty()) {
                    if (!m.sendOldest()) break;
                    progressed = true;
                    if (m.drain_deadline_ns.load() != 0 &&
                        Clock::now().time_since_epoch().count() >= m.drain_deadline_ns.load())
                        break;
                    if (m.queue.size() >= m.cfg.batch) break;  // spool the next batch first
                }
                if (m.spool.empty() && m.ready) {
                    m.backoff = std::chrono::seconds(1);
                } else if (!progressed || !m.ready) {
                    m.next_attempt = Clock::now() + m.backoff;
                    m.backoff = std::min<std::chrono::seconds>(m.backoff * 2, std::chrono::seconds(30));
                }
            }
        } else if (m.ready && !m.has_ttl && now >= m.next_retention) {
            m.dropOldPartitions();
            m.next_retention = now + std::chrono::hours(1);
        }
        if (!progressed) {
            // Wait for records, the flush deadline or the next attempt (at most 200 ms).
            const auto wake = std::min({m.next_flush, now + std::chrono::milliseconds(200),
                                        m.spool.empty() ? now + std::chrono::milliseconds(200)
                                                        : std::max(m.next_attempt, now + std::chrono::milliseconds(10))});
            std::this_thread::sleep_until(wake);
        }
    }
    if (!m.spool.empty())
        spdlog::info("clickhouse {}: {} batch(es) stay in the spool for the next start", m.status.target,
                     m.spool.size());
}

}  // namespace netprobe::sinks
