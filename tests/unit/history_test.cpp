// history::Store and history::Writer over real SQLite files in temporary directories:
// round trip, merge semantics, exact hour rollups (against an independent computation and
// the sqlite3 CLI reading the file), retention by age and by size, model state, recovery
// from a corrupt or full file, restart, and the writer's queue.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <netprobe/history/store.hpp>
#include <netprobe/history/writer.hpp>

namespace fs = std::filesystem;
using namespace netprobe::history;

namespace {

struct TempDir {
    fs::path root;
    TempDir() {
        char tmpl[] = "/tmp/np-history-XXXXXX";
        root = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

constexpr std::int64_t kT0 = 1'700'000'000 / 3600 * 3600;  // an hour boundary (2023-11-14)

Point pt(std::string series, std::int64_t minute, double sum, double count, double min, double max) {
    return Point{std::move(series), minute, sum, count, min, max};
}
Point gauge(std::string series, std::int64_t minute, double v) {
    return pt(std::move(series), minute, v, 1, v, v);
}

Store openStore(const fs::path& dir, StoreOptions o = {}) {
    o.dir = dir;
    auto s = Store::open(std::move(o));
    if (!s) ADD_FAILURE() << s.error().what();
    return std::move(*s);
}

std::vector<Row> query(const Store& s, std::string_view series, std::int64_t from, std::int64_t to,
                       Resolution r = Resolution::automatic) {
    auto rows = s.query(series, from, to, r);
    EXPECT_TRUE(rows.has_value()) << (rows ? "" : rows.error().what());
    return rows ? *rows : std::vector<Row>{};
}

std::vector<fs::path> corruptFiles(const fs::path& dir) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().starts_with("history.db.corrupt-")) out.push_back(e.path());
    return out;
}

// The sqlite3 CLI's answer, one line per row ('|' between columns): an oracle that is not
// this code.
// (tests need the sqlite3 package from scripts/setup-deps.sh; a missing CLI fails them)
std::vector<std::string> sqliteCli(const fs::path& file, const std::string& sql) {
    if (::access("/usr/bin/sqlite3", X_OK) != 0) {
        ADD_FAILURE() << "sqlite3 missing: run scripts/setup-deps.sh";
        return {};
    }
    const std::string cmd = "/usr/bin/sqlite3 -readonly -batch -separator '|' '" + file.string() + "' \"" + sql + "\"";
    std::vector<std::string> lines;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return lines;
    char buf[4096];
    std::string cur;
    while (std::fgets(buf, sizeof buf, p)) {
        cur += buf;
        if (!cur.empty() && cur.back() == '\n') {
            cur.pop_back();
            lines.push_back(cur);
            cur.clear();
        }
    }
    EXPECT_EQ(::pclose(p), 0) << cmd;
    return lines;
}

std::vector<double> fields(const std::string& line) {
    std::vector<double> out;
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, '|')) out.push_back(std::stod(f));
    return out;
}

}  // namespace

TEST(HistoryStore, RoundTrip) {
    TempDir tmp;
    auto s = openStore(tmp.root);
    std::vector<Point> batch{gauge("iface/eth0/rx_bytes", kT0, 10), gauge("iface/eth0/rx_bytes", kT0 + 60, 20),
                             pt("edge/web->db:5432/tcp/rtt_us", kT0 + 125, 300, 3, 90, 110)};
    ASSERT_TRUE(s.append(batch));
    EXPECT_EQ(query(s, "iface/eth0/rx_bytes", kT0, kT0 + 3600),
              (std::vector<Row>{{kT0, 60, 10, 1, 10, 10}, {kT0 + 60, 60, 20, 1, 20, 20}}));
    // the minute is floored; a range starting inside a bucket includes it
    EXPECT_EQ(query(s, "edge/web->db:5432/tcp/rtt_us", kT0 + 130, kT0 + 150),
              (std::vector<Row>{{kT0 + 120, 60, 300, 3, 90, 110}}));
    EXPECT_EQ(query(s, "iface/eth0/rx_bytes", kT0, kT0 + 7200, Resolution::hour),
              (std::vector<Row>{{kT0, 3600, 30, 2, 10, 20}}));
    // [from, to): the bucket at `to` is not included
    EXPECT_EQ(query(s, "iface/eth0/rx_bytes", kT0, kT0 + 60).size(), 1u);
    const auto st = s.stats();
    EXPECT_EQ(st.points_written, 3u);
    EXPECT_EQ(st.series, 2u);
    EXPECT_GT(st.file_bytes, 0u);
}

TEST(HistoryStore, EmptyAndUnknown) {
    TempDir tmp;
    auto s = openStore(tmp.root);
    EXPECT_TRUE(query(s, "nope", kT0, kT0 + 3600).empty());
    EXPECT_TRUE(query(s, "", kT0, kT0 + 3600).empty());
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", kT0, 1)}));
    EXPECT_TRUE(query(s, "nope", kT0, kT0 + 3600).empty());
    EXPECT_TRUE(query(s, "a", kT0 + 60, kT0).empty());  // from >= to
    EXPECT_TRUE(query(s, "a", kT0 + 3600, kT0 + 7200).empty());
    ASSERT_TRUE(s.append(std::span<const Point>{}));
    // invalid points are refused, the rest written
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("", kT0, 1), gauge("b", kT0, std::nan("")), gauge("b", kT0, 2)}));
    EXPECT_EQ(s.stats().points_rejected, 2u);
    EXPECT_EQ(query(s, "b", kT0, kT0 + 60).size(), 1u);
}

TEST(HistoryStore, ListSeries) {
    TempDir tmp;
    auto s = openStore(tmp.root);
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("iface/eth0/rx", kT0, 1), gauge("iface/eth0/tx", kT0, 1),
                                            gauge("iface/eth1/rx", kT0, 1), gauge("edge/a->b:80/tcp/rtt_us", kT0, 1),
                                            gauge("ifacex", kT0, 1)}));
    EXPECT_EQ(*s.listSeries("iface/", 100),
              (std::vector<std::string>{"iface/eth0/rx", "iface/eth0/tx", "iface/eth1/rx"}));
    EXPECT_EQ(*s.listSeries("iface/", 2), (std::vector<std::string>{"iface/eth0/rx", "iface/eth0/tx"}));
    EXPECT_EQ(s.listSeries("", 100)->size(), 5u);
    EXPECT_TRUE(s.listSeries("zzz", 100)->empty());
    EXPECT_TRUE(s.listSeries("iface/", 0)->empty());
}

// Interfaces created and deleted: each minute's batch has eth0's series and those of 20
// interfaces seen that minute only (3000 in all). The ids append() keeps in memory stay
// bounded by the batch (not one per series ever seen); a series that ended is still
// queryable and, seen again, continues its row (no second series row).
TEST(HistoryStore, SeriesOfDeletedInterfacesLeaveTheCache) {
    TempDir tmp;
    auto s = openStore(tmp.root);
    std::size_t most_cached = 0;
    for (int m = 0; m < 150; ++m) {
        std::vector<Point> batch{gauge("iface/eth0/rx_bytes_rate", kT0 + 60 * m, 1)};
        for (int j = 0; j < 20; ++j)
            batch.push_back(gauge("iface/veth" + std::to_string(m) + "x" + std::to_string(j) + "/rx_bytes_rate",
                                  kT0 + 60 * m, m + j));
        ASSERT_TRUE(s.append(batch));
        most_cached = std::max(most_cached, s.cachedSeries());
    }
    EXPECT_EQ(s.stats().series, 1u + 150 * 20);
    EXPECT_LE(most_cached, 2u * 21 + 1024 + 21);  // (trimmed once above 2 x batch + 1024)
    EXPECT_LT(s.cachedSeries(), 1100u);
    EXPECT_EQ(query(s, "iface/veth3x7/rx_bytes_rate", kT0, kT0 + 3600, Resolution::minute),
              (std::vector<Row>{{kT0 + 180, 60, 10, 1, 10, 10}}));
    EXPECT_EQ(query(s, "iface/eth0/rx_bytes_rate", kT0, kT0 + 150 * 60, Resolution::minute).size(), 150u);
    // an ended series seen again: the same row (its id from the table)
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("iface/veth3x7/rx_bytes_rate", kT0 + 60 * 150, 5)}));
    EXPECT_EQ(s.stats().series, 1u + 150 * 20);
    EXPECT_EQ(query(s, "iface/veth3x7/rx_bytes_rate", kT0, kT0 + 151 * 60, Resolution::minute).size(), 2u);
}

TEST(HistoryStore, AppendMerges) {
    TempDir tmp;
    auto s = openStore(tmp.root);
    ASSERT_TRUE(s.append(std::vector<Point>{pt("x", kT0, 10, 2, 4, 6)}));
    ASSERT_TRUE(s.append(std::vector<Point>{pt("x", kT0 + 30, 5, 1, 5, 5)}));  // same minute, second batch
    // and twice in one batch
    ASSERT_TRUE(s.append(std::vector<Point>{pt("x", kT0, 1, 1, 1, 1), pt("x", kT0, 20, 1, 20, 20)}));
    EXPECT_EQ(query(s, "x", kT0, kT0 + 60), (std::vector<Row>{{kT0, 60, 36, 5, 1, 20}}));
    EXPECT_EQ(query(s, "x", kT0, kT0 + 60, Resolution::hour), (std::vector<Row>{{kT0, 3600, 36, 5, 1, 20}}));
}

TEST(HistoryStore, HourRollupsAreExact) {
    TempDir tmp;
    auto s = openStore(tmp.root);
    std::mt19937_64 rng(13);
    std::uniform_int_distribution<int> minute(0, 3 * 60 - 1), series(0, 3), whole(-1000, 1000);
    std::uniform_real_distribution<double> real(-1e6, 1e6);
    struct Agg {
        double sum = 0, count = 0, min = 1e300, max = -1e300;
    };
    std::map<std::pair<std::string, std::int64_t>, Agg> hours;  // the independent computation
    for (int b = 0; b < 20; ++b) {
        std::vector<Point> batch;
        for (int i = 0; i < 50; ++i) {
            const auto key = "s" + std::to_string(series(rng));
            const std::int64_t m = kT0 + minute(rng) * 60;
            // whole numbers for series s0..s2 (exact sums), any doubles for s3
            const double a = key == "s3" ? real(rng) : whole(rng), c = key == "s3" ? real(rng) : whole(rng);
            const Point p = pt(key, m, a + c, 2, std::min(a, c), std::max(a, c));
            auto& h = hours[{key, m / 3600 * 3600}];
            h.sum += p.sum, h.count += p.count, h.min = std::min(h.min, p.min), h.max = std::max(h.max, p.max);
            batch.push_back(p);
        }
        ASSERT_TRUE(s.append(batch));
    }
    for (int k = 0; k < 4; ++k) {
        const auto key = "s" + std::to_string(k);
        const auto rows = query(s, key, kT0, kT0 + 3 * 3600, Resolution::hour);
        std::size_t expected = 0;
        for (const auto& [hk, agg] : hours) {
            if (hk.first != key) continue;
            ++expected;
            auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.time == hk.second; });
            ASSERT_NE(it, rows.end()) << key << " " << hk.second;
            EXPECT_EQ(it->count, agg.count);
            EXPECT_EQ(it->min, agg.min);
            EXPECT_EQ(it->max, agg.max);
            if (k < 3)
                EXPECT_EQ(it->sum, agg.sum);
            else
                EXPECT_NEAR(it->sum, agg.sum, 1e-9 * std::abs(agg.sum) + 1e-6);
            // and the hour is the sum of the store's own minutes
            double msum = 0, mcount = 0;
            for (const auto& m : query(s, key, hk.second, hk.second + 3600, Resolution::minute))
                msum += m.sum, mcount += m.count;
            EXPECT_NEAR(it->sum, msum, 1e-9 * std::abs(msum) + 1e-6);
            EXPECT_EQ(it->count, mcount);
        }
        EXPECT_EQ(rows.size(), expected);
    }
}

TEST(HistoryStore, SqliteCliOracle) {
    TempDir tmp;
    fs::path file;
    std::vector<Row> minutes, hours;
    {
        auto s = openStore(tmp.root);
        file = s.file();
        for (int b = 0; b < 3; ++b) {
            std::vector<Point> batch;
            for (int i = 0; i < 150; ++i)
                batch.push_back(pt(i % 2 ? "edge/web->db:5432/tcp/rtt_us" : "other", kT0 + i * 60, 1.5 * i + b, 1,
                                   0.25 * i, 2.5 * i + b));
            ASSERT_TRUE(s.append(batch));
        }
        minutes = query(s, "edge/web->db:5432/tcp/rtt_us", kT0, kT0 + 3 * 3600, Resolution::minute);
        hours = query(s, "edge/web->db:5432/tcp/rtt_us", kT0, kT0 + 3 * 3600, Resolution::hour);
    }  // closed: the CLI reads the checkpointed file
    const auto cli = sqliteCli(file,
                               "SELECT m.minute, m.sum, m.count, m.min, m.max FROM minutes m JOIN series s ON "
                               "s.id = m.series_id WHERE s.key = 'edge/web->db:5432/tcp/rtt_us' ORDER BY m.minute");
    ASSERT_EQ(cli.size(), minutes.size());
    ASSERT_EQ(minutes.size(), 75u);
    for (std::size_t i = 0; i < cli.size(); ++i) {
        const auto f = fields(cli[i]);
        ASSERT_EQ(f.size(), 5u);
        EXPECT_EQ(f[0], minutes[i].time);
        EXPECT_EQ(f[1], minutes[i].sum);
        EXPECT_EQ(f[2], minutes[i].count);
        EXPECT_EQ(f[3], minutes[i].min);
        EXPECT_EQ(f[4], minutes[i].max);
    }
    // the CLI's own rollup of the minutes against the store's hours table
    const auto cli_hours = sqliteCli(file,
                                     "SELECT m.minute / 3600 * 3600 AS h, sum(m.sum), sum(m.count), min(m.min), "
                                     "max(m.max) FROM minutes m JOIN series s ON s.id = m.series_id WHERE s.key = "
                                     "'edge/web->db:5432/tcp/rtt_us' GROUP BY h ORDER BY h");
    ASSERT_EQ(cli_hours.size(), hours.size());
    for (std::size_t i = 0; i < hours.size(); ++i) {
        const auto f = fields(cli_hours[i]);
        EXPECT_EQ(f, (std::vector<double>{double(hours[i].time), hours[i].sum, hours[i].count, hours[i].min,
                                          hours[i].max}));
    }
    EXPECT_EQ(sqliteCli(file, "PRAGMA journal_mode"), std::vector<std::string>{"wal"});
    EXPECT_EQ(sqliteCli(file, "PRAGMA user_version"), std::vector<std::string>{"1"});
    EXPECT_EQ(sqliteCli(file, "PRAGMA auto_vacuum"), std::vector<std::string>{"2"});
}

TEST(HistoryStore, AutoResolution) {
    TempDir tmp;
    auto s = openStore(tmp.root);
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", kT0, 1), gauge("a", kT0 + 60, 2)}));
    EXPECT_EQ(query(s, "a", kT0, kT0 + 24 * 3600).front().step, 60);
    EXPECT_EQ(query(s, "a", kT0, kT0 + 24 * 3600 + 1).front().step, 3600);
}

TEST(HistoryStore, RetentionByAge) {
    TempDir tmp;
    StoreOptions o;
    o.minute_retention = std::chrono::days(7);
    o.hour_retention = std::chrono::days(90);
    auto s = openStore(tmp.root, o);
    const std::int64_t now = kT0 + 100 * 86400;
    const std::int64_t d = 86400;
    // 100 days ago: 2 minutes in one hour; 8 days ago: 3 minutes in one hour; 1 day ago: 2 minutes
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("old", now - 100 * d, 1), gauge("old", now - 100 * d + 60, 1),
                                            gauge("a", now - 8 * d, 1), gauge("a", now - 8 * d + 60, 1),
                                            gauge("a", now - 8 * d + 120, 1), gauge("a", now - d, 5),
                                            gauge("a", now - d + 60, 6)}));
    EXPECT_EQ(s.stats().series, 2u);
    auto m = s.maintain(now);
    ASSERT_TRUE(m) << m.error().what();
    // minutes: 2 (100 d) + 3 (8 d); hours: 1 (100 d); the 8-day-old hour stays as an hour
    EXPECT_EQ(m->rows_dropped_age, 6u);
    EXPECT_EQ(m->rows_dropped_size, 0u);
    EXPECT_EQ(m->series_deleted, 1u);  // "old" has no rows left
    EXPECT_EQ(s.stats().rows_dropped_age, 6u);
    EXPECT_EQ(s.stats().series, 1u);
    EXPECT_TRUE(query(s, "a", now - 8 * d, now - 8 * d + 3600, Resolution::minute).empty());
    EXPECT_EQ(query(s, "a", now - 8 * d, now - 8 * d + 3600, Resolution::hour),
              (std::vector<Row>{{now - 8 * d, 3600, 3, 3, 1, 1}}));
    // automatic: the range's minutes are gone, so hours
    EXPECT_EQ(query(s, "a", now - 8 * d, now - 8 * d + 3600).front().step, 3600);
    EXPECT_EQ(query(s, "a", now - d, now - d + 3600).size(), 2u);
    EXPECT_TRUE(s.listSeries("old", 10)->empty());
    // a late point whose minutes were dropped still counts in its hour (and makes no minute)
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", now - 8 * d + 180, 1)}));
    EXPECT_EQ(s.stats().points_rejected, 0u);
    EXPECT_EQ(query(s, "a", now - 8 * d, now - 8 * d + 3600, Resolution::hour).front().count, 4);
    EXPECT_TRUE(query(s, "a", now - 8 * d, now - 8 * d + 3600, Resolution::minute).empty());
    // one older than the dropped hours is refused
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", now - 91 * d, 1)}));
    EXPECT_EQ(s.stats().points_rejected, 1u);
    EXPECT_TRUE(query(s, "a", now - 91 * d, now - 91 * d + 3600, Resolution::hour).empty());
    // a second run drops nothing more
    EXPECT_EQ(s.maintain(now)->rows_dropped_age, 0u);
}

TEST(HistoryStore, SizeBoundDropsOldestFirst) {
    TempDir tmp;
    StoreOptions o;
    o.max_bytes = 512 * 1024;
    o.minute_retention = std::chrono::days(3650);
    o.hour_retention = std::chrono::days(3650);
    auto s = openStore(tmp.root, o);
    // 20 series, one batch per hour of minutes, until the file is well past the budget
    std::int64_t minute = kT0;
    std::uint64_t rows = 0;
    while (s.stats().file_bytes < 2 * o.max_bytes) {
        std::vector<Point> batch;
        for (int i = 0; i < 60; ++i, minute += 60)
            for (int k = 0; k < 20; ++k) batch.push_back(pt("s" + std::to_string(k), minute, k, 1, k, k));
        ASSERT_TRUE(s.append(batch));
        rows += batch.size();
        ASSERT_LT(rows, 1'000'000u);
    }
    const std::int64_t newest = minute - 60;
    const auto before = s.stats().file_bytes;
    EXPECT_GT(before, 2 * o.max_bytes - 1);
    auto m = s.maintain(newest + 3600);
    ASSERT_TRUE(m) << m.error().what();
    EXPECT_EQ(m->rows_dropped_age, 0u);
    EXPECT_GT(m->rows_dropped_size, 0u);
    EXPECT_FALSE(m->over_budget);
    EXPECT_LE(m->bytes_after, o.max_bytes);
    EXPECT_EQ(m->bytes_after, s.stats().file_bytes);
    EXPECT_LE(fs::file_size(s.file()), o.max_bytes);  // the file itself shrank
    EXPECT_EQ(s.stats().rows_dropped_size, m->rows_dropped_size);
    // oldest first: the first hour's minutes are gone, the newest minute is there
    EXPECT_TRUE(query(s, "s3", kT0, kT0 + 3600, Resolution::minute).empty());
    EXPECT_EQ(query(s, "s3", newest, newest + 60, Resolution::minute).size(), 1u);
    // hours outlive the minutes
    EXPECT_EQ(query(s, "s3", kT0, kT0 + 3600, Resolution::hour).size(), 1u);
    EXPECT_EQ(s.stats().series, 20u);
}

TEST(HistoryStore, State) {
    TempDir tmp;
    auto s = openStore(tmp.root);
    EXPECT_EQ(*s.getState("model/baseline"), std::nullopt);
    const std::string blob("a\0b\xff\x01", 5);
    ASSERT_TRUE(s.putState("model/baseline", blob));
    EXPECT_EQ(*s.getState("model/baseline"), blob);
    ASSERT_TRUE(s.putState("model/baseline", "v2"));
    EXPECT_EQ(*s.getState("model/baseline"), "v2");
    ASSERT_TRUE(s.putState("empty", ""));
    EXPECT_EQ(*s.getState("empty"), std::string());
}

TEST(HistoryStore, SurvivesRestart) {
    TempDir tmp;
    const std::int64_t now = kT0 + 30 * 86400;
    {
        auto s = openStore(tmp.root);
        ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", now - 10 * 86400, 1), gauge("a", now - 60, 7),
                                                gauge("b", now - 120, 8)}));
        ASSERT_TRUE(s.putState("k", "v"));
        ASSERT_TRUE(s.maintain(now));
    }
    auto s = openStore(tmp.root);
    EXPECT_EQ(query(s, "a", now - 3600, now), (std::vector<Row>{{now - 60, 60, 7, 1, 7, 7}}));
    EXPECT_EQ(query(s, "a", now - 11 * 86400, now, Resolution::hour).size(), 2u);
    EXPECT_EQ(*s.getState("k"), "v");
    EXPECT_EQ(s.stats().series, 2u);
    EXPECT_EQ(s.stats().resets, 0u);
    // what was dropped stays dropped across the restart: a late point there is refused
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", now - 95 * 86400, 1)}));
    EXPECT_EQ(s.stats().points_rejected, 1u);
    EXPECT_TRUE(query(s, "a", now - 10 * 86400, now - 10 * 86400 + 60, Resolution::minute).empty());
    // and the series ids are the same rows: appending to an existing series merges
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", now - 60, 3)}));
    EXPECT_EQ(query(s, "a", now - 60, now).front().sum, 10);
}

TEST(HistoryStore, CorruptFileIsMovedAside) {
    TempDir tmp;
    fs::path file;
    {
        auto s = openStore(tmp.root);
        file = s.file();
        ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", kT0, 1)}));
    }
    const auto size = fs::file_size(file);
    {
        std::ofstream f(file, std::ios::binary | std::ios::trunc);
        f << std::string(size, 'Z');
    }
    {
        auto s = openStore(tmp.root);
        EXPECT_EQ(s.stats().resets, 1u);
        ASSERT_EQ(corruptFiles(tmp.root).size(), 1u);
        EXPECT_EQ(fs::file_size(corruptFiles(tmp.root).front()), size);  // the bad file, kept for a look
        EXPECT_TRUE(query(s, "a", kT0, kT0 + 60).empty());
        ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", kT0, 2)}));
        EXPECT_EQ(query(s, "a", kT0, kT0 + 60).front().sum, 2);
    }
    // a page in the middle of a good file: found when the table is read; still one old file kept
    {
        std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(4096);
        f << std::string(fs::file_size(file) - 4096, '\x5a');
    }
    auto s = openStore(tmp.root);
    EXPECT_EQ(s.stats().resets, 1u);
    EXPECT_EQ(corruptFiles(tmp.root).size(), 1u);
    EXPECT_TRUE(query(s, "a", kT0, kT0 + 60).empty());
    ASSERT_TRUE(s.append(std::vector<Point>{gauge("a", kT0, 3)}));
    EXPECT_EQ(query(s, "a", kT0, kT0 + 60).front().sum, 3);
}

TEST(HistoryStore, FullDatabaseResets) {
    TempDir tmp;
    StoreOptions o;
    o.max_pages = 64;  // 256 KiB at 4 KiB pages
    auto s = openStore(tmp.root, o);
    std::int64_t minute = kT0;
    int batches = 0;
    while (s.stats().resets == 0 && batches < 10000) {
        std::vector<Point> batch;
        for (int k = 0; k < 50; ++k) batch.push_back(gauge("series/" + std::to_string(k), minute, k));
        auto r = s.append(batch);
        ASSERT_TRUE(r) << r.error().what();  // the batch that hit the limit went into the fresh file
        minute += 60;
        ++batches;
    }
    EXPECT_EQ(s.stats().resets, 1u);
    EXPECT_EQ(s.stats().write_errors, 0u);
    EXPECT_TRUE(corruptFiles(tmp.root).empty());  // a full file is removed, not kept
    // the fresh file holds the last batch only
    EXPECT_TRUE(query(s, "series/1", kT0, minute - 60).empty());
    EXPECT_EQ(query(s, "series/1", minute - 60, minute).size(), 1u);
    EXPECT_EQ(s.stats().series, 50u);
    // a second full file within the back-off: an error, counted, no reset loop
    std::uint64_t errors = 0;
    for (int i = 0; i < 10000 && errors == 0; ++i) {
        std::vector<Point> batch;
        for (int k = 0; k < 50; ++k) batch.push_back(gauge("series/" + std::to_string(k), minute, k));
        minute += 60;
        if (!s.append(batch)) ++errors;
    }
    EXPECT_EQ(errors, 1u);
    EXPECT_EQ(s.stats().write_errors, 1u);
    EXPECT_EQ(s.stats().resets, 1u);
    // reads still work, and state
    EXPECT_FALSE(query(s, "series/1", kT0, minute).empty());
}

TEST(HistoryStore, NewerSchemaIsLeftAlone) {
    TempDir tmp;
    fs::path file;
    {
        auto s = openStore(tmp.root);
        file = s.file();
    }
    ASSERT_EQ(std::system(("/usr/bin/sqlite3 '" + file.string() + "' 'PRAGMA user_version = 7' >/dev/null").c_str()), 0);
    StoreOptions o;
    o.dir = tmp.root;
    auto s = Store::open(o);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().what().find("newer"), std::string::npos) << s.error().what();
    EXPECT_TRUE(corruptFiles(tmp.root).empty());
}

TEST(HistoryWriter, DrainsOnStop) {
    TempDir tmp;
    auto w = Writer::start(openStore(tmp.root));
    ASSERT_TRUE(w);
    for (int b = 0; b < 100; ++b) {
        std::vector<Point> batch;
        for (int k = 0; k < 10; ++k) batch.push_back(gauge("s" + std::to_string(k), kT0 + b * 60, b));
        EXPECT_TRUE((*w)->push(std::move(batch)));
    }
    (*w)->stop();
    const auto st = (*w)->stats();
    EXPECT_EQ(st.batches_written + st.batches_dropped, 100u);
    EXPECT_EQ(st.store.points_written + st.points_dropped, 1000u);
    EXPECT_EQ(st.queued, 0u);
    EXPECT_FALSE((*w)->push({gauge("late", kT0, 1)}));
    EXPECT_EQ((*w)->stats().batches_refused, 1u);
    // everything written is readable
    EXPECT_EQ(query((*w)->store(), "s0", kT0, kT0 + 100 * 60).size(), 100u - st.batches_dropped);
}

TEST(HistoryWriter, DropsOldestWhenFull) {
    TempDir tmp;
    std::promise<void> entered, release;
    auto released = release.get_future().share();
    std::atomic<int> calls{0};
    WriterOptions o;
    o.queue_batches = 2;
    o.maintain_interval = std::chrono::milliseconds(1);
    // the first maintenance blocks the writer thread until the test has filled the queue
    o.now = [&, released] {
        if (calls++ == 0) {
            entered.set_value();
            released.wait();
        }
        return kT0 + 3600;
    };
    auto w = Writer::start(openStore(tmp.root), o);
    ASSERT_TRUE(w);
    entered.get_future().wait();
    for (int b = 0; b < 5; ++b) EXPECT_TRUE((*w)->push({gauge("s", kT0 + b * 60, b), gauge("t", kT0 + b * 60, b)}));
    auto st = (*w)->stats();
    EXPECT_EQ(st.batches_dropped, 3u);
    EXPECT_EQ(st.points_dropped, 6u);
    EXPECT_EQ(st.queued, 2u);
    release.set_value();
    (*w)->flush();
    st = (*w)->stats();
    EXPECT_EQ(st.batches_written, 2u);
    EXPECT_EQ(st.store.points_written, 4u);
    EXPECT_GE(st.maintenance_runs, 1u);
    EXPECT_EQ(st.maintenance_errors, 0u);
    // the two newest batches survived
    const auto rows = query((*w)->store(), "s", kT0, kT0 + 3600, Resolution::minute);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].time, kT0 + 3 * 60);
    EXPECT_EQ(rows[1].time, kT0 + 4 * 60);
    (*w)->stop();
}

TEST(HistoryWriter, ReadersWhileWriting) {
    TempDir tmp;
    WriterOptions o;
    o.maintain_interval = std::chrono::milliseconds(5);
    o.now = [] { return kT0 + 3600; };
    auto w = Writer::start(openStore(tmp.root), o);
    ASSERT_TRUE(w);
    std::atomic<bool> done{false};
    std::atomic<std::size_t> reads{0};
    std::thread reader([&] {
        while (!done) {
            auto rows = (*w)->store().query("s1", kT0, kT0 + 3600);
            auto keys = (*w)->store().listSeries("s", 100);
            auto st = (*w)->stats();
            EXPECT_TRUE(rows && keys);
            EXPECT_LE(st.store.series, 10u);
            ++reads;
        }
    });
    for (int b = 0; b < 50; ++b) {
        std::vector<Point> batch;
        for (int k = 0; k < 10; ++k) batch.push_back(gauge("s" + std::to_string(k), kT0 + b * 60, b));
        (*w)->push(std::move(batch));
        ASSERT_TRUE((*w)->store().putState("model", std::to_string(b)));
    }
    (*w)->flush();
    // (on a loaded machine the reader may not have run yet: let it read at least once)
    for (int i = 0; i < 1000 && reads.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    done = true;
    reader.join();
    EXPECT_GT(reads.load(), 0u);
    const auto st = (*w)->stats();
    EXPECT_EQ(st.store.points_written + st.points_dropped, 500u);
    EXPECT_EQ(*(*w)->store().getState("model"), "49");
}
