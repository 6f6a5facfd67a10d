#include "netprobe/history/store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <expected>
#include <limits>
#include <mutex>
#include <optional>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <spdlog/spdlog.h>

namespace netprobe::history {

namespace {

namespace fs = std::filesystem;

constexpr int kSchemaVersion = 1;
constexpr std::int64_t kMinute = 60;
constexpr std::int64_t kHour = 3600;
constexpr std::int64_t kAutoMinuteSpan = 24 * kHour;
constexpr int kMaxSizeSteps = 16;
constexpr auto kReopenBackoff = std::chrono::seconds(60);
constexpr std::int64_t kNoFloor = std::numeric_limits<std::int64_t>::min();

std::int64_t floorTo(std::int64_t t, std::int64_t step) {
    std::int64_t q = t / step;
    if (t % step != 0 && t < 0) --q;
    return q * step;
}

std::int64_t unixNow() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct SqlError {
    int rc = SQLITE_ERROR;
    std::string message;
};
template <class T>
using Sql = std::expected<T, SqlError>;

// The failures after which the file is replaced by a fresh one.
bool fatal(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB || primary == SQLITE_FULL;
}

// The cached statements.
enum class S : std::size_t {
    FindSeries,
    InsertSeries,
    RaiseLastHour,
    UpsertMinute,
    UpsertHour,
    QueryMinutes,
    QueryHours,
    MinuteExtent,
    HourExtent,
    ListAll,
    ListRange,
    PutState,
    GetState,
    ListStates,
    GetMeta,
    PutMeta,
    DropMinutesBefore,
    DropHoursBefore,
    DeleteGoneSeries,
    CountSeries,
    FileBytes,
    UserVersion,
    JournalMode,
    Count_,
};

// Merging one point into a bucket: sum and count add up, min and max widen.
#define NP_MERGE                                                                          \
    " ON CONFLICT DO UPDATE SET sum = sum + excluded.sum, count = count + excluded.count, " \
    "min = min(min, excluded.min), max = max(max, excluded.max)"

constexpr std::array<const char*, static_cast<std::size_t>(S::Count_)> kSql = {
    "SELECT id, last_hour FROM series WHERE key = ?1",
    "INSERT INTO series(key, last_hour) VALUES(?1, ?2)",
    "UPDATE series SET last_hour = max(last_hour, ?2) WHERE id = ?1",
    "INSERT INTO minutes(minute, series_id, sum, count, min, max) VALUES(?1, ?2, ?3, ?4, ?5, ?6)" NP_MERGE,
    "INSERT INTO hours(hour, series_id, sum, count, min, max) VALUES(?1, ?2, ?3, ?4, ?5, ?6)" NP_MERGE,
    // (the tables are keyed by time first: one seek per bucket of the range, not a scan of
    // every series' rows in it)
    "WITH RECURSIVE t(at) AS (SELECT ?2 UNION ALL SELECT at + 60 FROM t WHERE at + 60 < ?3) "
    "SELECT minute, sum, count, min, max FROM t JOIN minutes ON minute = t.at AND series_id = ?1",
    "WITH RECURSIVE t(at) AS (SELECT ?2 UNION ALL SELECT at + 3600 FROM t WHERE at + 3600 < ?3) "
    "SELECT hour, sum, count, min, max FROM t JOIN hours ON hour = t.at AND series_id = ?1",
    "SELECT (SELECT min(minute) FROM minutes), (SELECT max(minute) FROM minutes)",
    "SELECT (SELECT min(hour) FROM hours), (SELECT max(hour) FROM hours)",
    "SELECT key FROM series WHERE key >= ?1 ORDER BY key LIMIT ?2",
    "SELECT key FROM series WHERE key >= ?1 AND key < ?3 ORDER BY key LIMIT ?2",
    "INSERT INTO state(key, value, updated) VALUES(?1, ?2, ?3) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
    "SELECT value FROM state WHERE key = ?1",
    "SELECT key, value FROM state WHERE key >= ?1 AND key < ?2 ORDER BY key",
    "SELECT value FROM meta WHERE key = ?1",
    "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    "DELETE FROM minutes WHERE minute < ?1",
    "DELETE FROM hours WHERE hour < ?1",
    // every row of a series is in an hour <= its last_hour
    "DELETE FROM series WHERE last_hour < ?1",
    "SELECT count(*) FROM series",
    "SELECT p.page_count * s.page_size FROM pragma_page_count() p, pragma_page_size() s",
    "PRAGMA user_version",
    "PRAGMA journal_mode = WAL",
};

#undef NP_MERGE

// Time first in both keys: a batch (one minute of every series) lands on a few adjacent
// pages at the right edge of the tree, and age and size drops cut its left edge. Keyed by
// series first, each batch rewrote one page per series (~40x the disk writes measured).
constexpr const char* kSchema =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE series(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, last_hour INTEGER NOT NULL);"
    "CREATE TABLE minutes(minute INTEGER NOT NULL, series_id INTEGER NOT NULL, sum REAL NOT NULL, "
    "  count REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, PRIMARY KEY(minute, series_id)) WITHOUT ROWID;"
    "CREATE TABLE hours(hour INTEGER NOT NULL, series_id INTEGER NOT NULL, sum REAL NOT NULL, "
    "  count REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, PRIMARY KEY(hour, series_id)) WITHOUT ROWID;"
    "CREATE TABLE state(key TEXT PRIMARY KEY, value BLOB NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "PRAGMA user_version = 1;"
    "COMMIT;";

// meta: nothing below them is kept (minutes, hours), nor accepted (hours)
constexpr const char* kMinuteFloorKey = "minute_floor";
constexpr const char* kHourFloorKey = "hour_floor";

// One connection and its cached statements.
class Db {
public:
    Db() = default;
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;
    ~Db() { close(); }

    [[nodiscard]] bool isOpen() const { return h_ != nullptr; }

    Sql<void> open(const fs::path& file) {
        close();
        sqlite3* h = nullptr;
        const int rc = sqlite3_open_v2(file.c_str(), &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                       nullptr);
        if (rc != SQLITE_OK) {
            SqlError e{rc, h ? sqlite3_errmsg(h) : sqlite3_errstr(rc)};
            sqlite3_close_v2(h);
            return std::unexpected(std::move(e));
        }
        h_ = h;
        sqlite3_extended_result_codes(h_, 1);
        sqlite3_busy_timeout(h_, 5000);
        return {};
    }

    void close() {
        for (auto& s : stmts_) {
            sqlite3_finalize(s);
            s = nullptr;
        }
        if (h_) sqlite3_close_v2(h_);
        h_ = nullptr;
    }

    [[nodiscard]] SqlError error(int rc) const { return SqlError{rc, h_ ? sqlite3_errmsg(h_) : sqlite3_errstr(rc)}; }

    Sql<void> exec(const char* sql) {
        if (!h_) return std::unexpected(SqlError{SQLITE_MISUSE, "database not open"});
        const int rc = sqlite3_exec(h_, sql, nullptr, nullptr, nullptr);
        if (rc != SQLITE_OK) return std::unexpected(error(rc));
        return {};
    }

    Sql<sqlite3_stmt*> get(S id) {
        if (!h_) return std::unexpected(SqlError{SQLITE_MISUSE, "database not open"});
        auto& s = stmts_[static_cast<std::size_t>(id)];
        if (!s) {
            const int rc = sqlite3_prepare_v3(h_, kSql[static_cast<std::size_t>(id)], -1, SQLITE_PREPARE_PERSISTENT, &s,
                                              nullptr);
            if (rc != SQLITE_OK) {
                sqlite3_finalize(s);
                s = nullptr;
                return std::unexpected(error(rc));
            }
        }
        return s;
    }

    [[nodiscard]] std::int64_t changes() const { return sqlite3_changes64(h_); }
    [[nodiscard]] std::int64_t lastRowid() const { return sqlite3_last_insert_rowid(h_); }
    [[nodiscard]] bool inTransaction() const { return h_ && sqlite3_get_autocommit(h_) == 0; }

private:
    sqlite3* h_ = nullptr;
    std::array<sqlite3_stmt*, static_cast<std::size_t>(S::Count_)> stmts_{};
};

// A cached statement in use: bound, stepped, and reset (read locks released) on scope exit.
class Use {
public:
    Use(Db& db, sqlite3_stmt* s) : db_(db), s_(s) {}
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    ~Use() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }

    Use& bind(int i, std::int64_t v) {
        sqlite3_bind_int64(s_, i, v);
        return *this;
    }
    Use& bind(int i, double v) {
        sqlite3_bind_double(s_, i, v);
        return *this;
    }
    Use& bind(int i, std::string_view v) {
        // (a null pointer would bind NULL, not an empty text)
        sqlite3_bind_text(s_, i, v.data() ? v.data() : "", static_cast<int>(v.size()), SQLITE_STATIC);
        return *this;
    }
    Use& bindBlob(int i, std::string_view v) {
        sqlite3_bind_blob(s_, i, v.data() ? v.data() : "", static_cast<int>(v.size()), SQLITE_STATIC);
        return *this;
    }

    // true: a row; false: done.
    Sql<bool> step() {
        const int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        return std::unexpected(db_.error(rc));
    }
    Sql<void> run() {
        auto r = step();
        if (!r) return std::unexpected(std::move(r.error()));
        return {};
    }

    [[nodiscard]] std::int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
    [[nodiscard]] double f64(int c) const { return sqlite3_column_double(s_, c); }
    [[nodiscard]] bool null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
    [[nodiscard]] std::string text(int c) const {
        const auto* p = sqlite3_column_blob(s_, c);  // (blob: no conversion, any bytes)
        const int n = sqlite3_column_bytes(s_, c);
        return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
    }

private:
    Db& db_;
    sqlite3_stmt* s_;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed.
class Txn {
public:
    explicit Txn(Db& db) : db_(db) {}
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;
    ~Txn() {
        if (db_.inTransaction()) (void)db_.exec("ROLLBACK");
    }
    Sql<void> begin() { return db_.exec("BEGIN IMMEDIATE"); }
    Sql<void> commit() { return db_.exec("COMMIT"); }

private:
    Db& db_;
};

#define NP_TRY(expr)                                                   \
    do {                                                               \
        if (auto np_try_r = (expr); !np_try_r)                         \
            return std::unexpected(std::move(np_try_r.error()));       \
    } while (0)

}  // namespace

struct Store::Impl {
    struct SeriesRef {
        std::int64_t id = 0;
        std::int64_t last_hour = 0;  // its newest hour (series.last_hour)
    };

    StoreOptions opt;
    fs::path file;
    mutable std::mutex mu;
    Db db;
    std::unordered_map<std::string, SeriesRef> series_refs;  // committed rows only
    std::int64_t minute_floor = kNoFloor;  // minutes below it were dropped; minute_floor >= hour_floor
    std::int64_t hour_floor = kNoFloor;    // hours below it were dropped; points below it are refused
    std::optional<std::chrono::steady_clock::time_point> last_reset, last_open;

    std::atomic<std::uint64_t> points_written{0}, points_rejected{0}, rows_dropped_age{0}, rows_dropped_size{0},
        write_errors{0}, resets{0}, file_bytes{0}, series{0};

    explicit Impl(StoreOptions o) : opt(std::move(o)), file(opt.dir / "history.db") {
        opt.hour_retention = std::max(opt.hour_retention, opt.minute_retention);
    }

    // ---- opening, recovery ----

    Sql<void> openDatabase() {
        series_refs.clear();
        minute_floor = hour_floor = kNoFloor;
        series = 0;
        last_open = std::chrono::steady_clock::now();
        NP_TRY(db.open(file));
        if (auto r = configure(); !r) {
            if (db.inTransaction()) (void)db.exec("ROLLBACK");
            db.close();
            return r;
        }
        return {};
    }

    // Pragmas, schema, what the store keeps in memory. (No statement in use on return.)
    Sql<void> configure() {
        // auto_vacuum only takes on a file without tables: a fresh one. It lets maintain()
        // give freed pages back (incremental_vacuum), so the file shrinks.
        NP_TRY(db.exec("PRAGMA auto_vacuum = INCREMENTAL"));
        {
            auto s = db.get(S::JournalMode);
            if (!s) return std::unexpected(s.error());
            Use u(db, *s);
            auto row = u.step();
            if (!row) return std::unexpected(row.error());
            if (!*row || u.text(0) != "wal") return std::unexpected(SqlError{SQLITE_ERROR, "cannot switch to WAL mode"});
        }
        NP_TRY(db.exec("PRAGMA synchronous = NORMAL"));
        // The WAL counts against max_bytes: checkpoint it (and cut the file back) at about
        // 1/16 of the budget, at most SQLite's default 1000 pages.
        const auto wal_pages = std::clamp<std::uint64_t>(opt.max_bytes / 16 / 4096, 16, 1000);
        const auto pragmas = "PRAGMA wal_autocheckpoint = " + std::to_string(wal_pages) +
                             "; PRAGMA journal_size_limit = " + std::to_string(wal_pages * 4096);
        NP_TRY(db.exec(pragmas.c_str()));
        if (opt.max_pages != 0) {
            const auto sql = "PRAGMA max_page_count = " + std::to_string(opt.max_pages);
            NP_TRY(db.exec(sql.c_str()));
        }
        auto version = scalar(S::UserVersion);
        if (!version) return std::unexpected(version.error());
        if (version->value_or(0) == 0) {
            NP_TRY(db.exec(kSchema));
        } else if (**version > kSchemaVersion) {
            return std::unexpected(SqlError{SQLITE_ERROR, "schema version " + std::to_string(**version) +
                                                              " is newer than this build's " +
                                                              std::to_string(kSchemaVersion)});
        }
        auto mf = getMeta(kMinuteFloorKey);
        if (!mf) return std::unexpected(mf.error());
        auto hf = getMeta(kHourFloorKey);
        if (!hf) return std::unexpected(hf.error());
        minute_floor = mf->value_or(kNoFloor);
        hour_floor = hf->value_or(kNoFloor);
        // (reads the series table: a corrupt file is usually found here)
        auto n = scalar(S::CountSeries);
        if (!n) return std::unexpected(n.error());
        series = static_cast<std::uint64_t>(n->value_or(0));
        if (auto b = fileBytes(); b) file_bytes = *b;
        return {};
    }

    // Replaces the file by a fresh database after `why` (corrupt or full). One warning line.
    Sql<void> reset(const SqlError& why) {
        db.close();
        last_reset = std::chrono::steady_clock::now();
        ++resets;
        std::error_code ec;
        std::string done;
        if ((why.rc & 0xff) == SQLITE_FULL) {
            fs::remove(file, ec);
            done = "removed it";
        } else {
            // keep one old file for a post-mortem: the previous one goes
            const std::string prefix = file.filename().string() + ".corrupt-";
            for (const auto& e : fs::directory_iterator(opt.dir, ec)) {
                if (e.path().filename().string().starts_with(prefix)) fs::remove(e.path(), ec);
            }
            auto aside = file;
            aside += ".corrupt-" + std::to_string(unixNow());
            fs::rename(file, aside, ec);
            if (ec) {
                fs::remove(file, ec);
                done = "removed it";
            } else {
                done = "moved it aside to " + aside.filename().string();
            }
        }
        for (const char* suffix : {"-wal", "-shm", "-journal"}) {
            auto p = file;
            p += suffix;
            fs::remove(p, ec);
        }
        spdlog::warn("history: {}: {}; {}, starting a fresh database", file.string(), why.message, done);
        return openDatabase();
    }

    bool resetAllowed() const {
        return !last_reset || std::chrono::steady_clock::now() - *last_reset >= kReopenBackoff;
    }

    // Runs op on the open database; after a corrupt or full file: a fresh one and op once more.
    template <class T, class F>
    Result<T> guarded(std::string_view what, F&& op) {
        if (!db.isOpen()) {
            // a previous reset could not open a fresh file: retry now and then
            if (last_open && std::chrono::steady_clock::now() - *last_open < kReopenBackoff)
                return std::unexpected(makeError("history: " + file.string() + " is not open"));
            if (auto r = openDatabase(); !r) {
                if (!fatal(r.error().rc) || !resetAllowed() || !reset(r.error()))
                    return std::unexpected(makeError("history: open " + file.string() + ": " + r.error().message));
            }
        }
        Sql<T> r = op();
        if (!r && fatal(r.error().rc) && resetAllowed()) {
            if (db.inTransaction()) (void)db.exec("ROLLBACK");
            if (reset(r.error())) r = op();
        }
        if (!r) return std::unexpected(makeError("history: " + std::string(what) + ": " + r.error().message));
        if constexpr (std::is_void_v<T>)
            return {};
        else
            return std::move(*r);
    }

    // ---- helpers (locked, open) ----

    Sql<std::uint64_t> fileBytes() {
        auto s = db.get(S::FileBytes);
        if (!s) return std::unexpected(s.error());
        std::uint64_t bytes = 0;
        {
            Use u(db, *s);
            auto row = u.step();
            if (!row) return std::unexpected(row.error());
            if (*row) bytes = static_cast<std::uint64_t>(u.i64(0));
        }
        std::error_code ec;
        auto wal = file;
        wal += "-wal";
        const auto w = fs::file_size(wal, ec);
        if (!ec) bytes += w;
        return bytes;
    }

    Sql<std::optional<std::int64_t>> scalar(S id) {
        auto s = db.get(id);
        if (!s) return std::unexpected(s.error());
        Use u(db, *s);
        auto row = u.step();
        if (!row) return std::unexpected(row.error());
        if (!*row || u.null(0)) return std::optional<std::int64_t>{};
        return std::optional<std::int64_t>{u.i64(0)};
    }

    // (oldest, newest) of a table, or nothing when it is empty
    Sql<std::optional<std::pair<std::int64_t, std::int64_t>>> extent(S id) {
        using Out = std::optional<std::pair<std::int64_t, std::int64_t>>;
        auto s = db.get(id);
        if (!s) return std::unexpected(s.error());
        Use u(db, *s);
        auto row = u.step();
        if (!row) return std::unexpected(row.error());
        if (!*row || u.null(0)) return Out{};
        return Out{std::pair{u.i64(0), u.i64(1)}};
    }

    Sql<std::optional<std::int64_t>> getMeta(const char* key) {
        auto s = db.get(S::GetMeta);
        if (!s) return std::unexpected(s.error());
        Use u(db, *s);
        u.bind(1, std::string_view(key));
        auto row = u.step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return std::optional<std::int64_t>{};
        return std::optional<std::int64_t>{u.i64(0)};
    }

    Sql<void> putMeta(const char* key, std::int64_t value) {
        auto s = db.get(S::PutMeta);
        if (!s) return std::unexpected(s.error());
        Use u(db, *s);
        u.bind(1, std::string_view(key)).bind(2, value);
        return u.run();
    }

    Sql<std::int64_t> deleteBefore(S id, std::int64_t cut) {
        auto s = db.get(id);
        if (!s) return std::unexpected(s.error());
        Use u(db, *s);
        u.bind(1, cut);
        NP_TRY(u.run());
        return db.changes();
    }

    // Drops what is below the new floors (in the caller's transaction); the floors are
    // persisted with it and adopted by commit().
    struct Floors {
        std::int64_t minute, hour;
    };
    Sql<void> putFloors(Floors f) {
        NP_TRY(putMeta(kMinuteFloorKey, f.minute));
        NP_TRY(putMeta(kHourFloorKey, f.hour));
        return {};
    }

    Sql<void> reclaim() {
        NP_TRY(db.exec("PRAGMA incremental_vacuum"));
        NP_TRY(db.exec("PRAGMA wal_checkpoint(TRUNCATE)"));
        return {};
    }

    Sql<std::optional<std::int64_t>> seriesId(std::string_view key) {
        if (auto it = series_refs.find(std::string(key)); it != series_refs.end())
            return std::optional<std::int64_t>{it->second.id};
        auto s = db.get(S::FindSeries);
        if (!s) return std::unexpected(s.error());
        Use u(db, *s);
        u.bind(1, key);
        auto row = u.step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return std::optional<std::int64_t>{};
        return std::optional<std::int64_t>{u.i64(0)};
    }

    // ---- operations (locked, open) ----

    Sql<std::uint64_t> append(std::span<const Point> points, std::span<const std::int64_t> minutes) {
        Txn txn(db);
        NP_TRY(txn.begin());
        std::unordered_map<std::string, SeriesRef> pending;  // series rows made or changed in this transaction
        std::uint64_t created = 0, written = 0;
        for (std::size_t i = 0; i < points.size(); ++i) {
            const auto& p = points[i];
            const std::int64_t minute = minutes[i];
            if (minute == kNoFloor) continue;  // refused
            const std::int64_t hour = floorTo(minute, kHour);
            SeriesRef ref;
            bool changed = false;
            if (auto it = pending.find(p.series); it != pending.end()) {
                ref = it->second;
            } else if (auto c = series_refs.find(p.series); c != series_refs.end()) {
                ref = c->second;
            } else {
                auto s = db.get(S::FindSeries);
                if (!s) return std::unexpected(s.error());
                Use u(db, *s);
                u.bind(1, std::string_view(p.series));
                auto row = u.step();
                if (!row) return std::unexpected(row.error());
                if (*row) {
                    ref = SeriesRef{u.i64(0), u.i64(1)};
                } else {
                    auto ins = db.get(S::InsertSeries);
                    if (!ins) return std::unexpected(ins.error());
                    Use iu(db, *ins);
                    iu.bind(1, std::string_view(p.series)).bind(2, hour);
                    NP_TRY(iu.run());
                    ref = SeriesRef{db.lastRowid(), hour};
                    ++created;
                }
                changed = true;
            }
            if (ref.last_hour < hour) {
                auto s = db.get(S::RaiseLastHour);
                if (!s) return std::unexpected(s.error());
                Use u(db, *s);
                u.bind(1, ref.id).bind(2, hour);
                NP_TRY(u.run());
                ref.last_hour = hour;
                changed = true;
            }
            if (changed) pending.insert_or_assign(p.series, ref);
            // a late point whose minutes were dropped still counts in its hour
            if (minute_floor == kNoFloor || minute >= minute_floor) {
                auto s = db.get(S::UpsertMinute);
                if (!s) return std::unexpected(s.error());
                Use u(db, *s);
                u.bind(1, minute).bind(2, ref.id).bind(3, p.sum).bind(4, p.count).bind(5, p.min).bind(6, p.max);
                NP_TRY(u.run());
            }
            auto s = db.get(S::UpsertHour);
            if (!s) return std::unexpected(s.error());
            Use u(db, *s);
            u.bind(1, hour).bind(2, ref.id).bind(3, p.sum).bind(4, p.count).bind(5, p.min).bind(6, p.max);
            NP_TRY(u.run());
            ++written;
        }
        NP_TRY(txn.commit());
        for (auto& [key, ref] : pending) series_refs.insert_or_assign(key, ref);
        // A batch is an interval of every live series: the cache keeps those. Series that
        // ended (a deleted interface's) leave it once it holds many more than a batch, so it
        // does not grow with every interface ever seen (a dropped entry refills from the table).
        if (series_refs.size() > 2 * points.size() + 1024) {
            std::unordered_set<std::string_view> live;
            for (const auto& p : points) live.insert(p.series);
            std::erase_if(series_refs, [&](const auto& e) { return !live.contains(e.first); });
        }
        series += created;
        if (auto b = fileBytes(); b) file_bytes = *b;
        return written;
    }

    Sql<std::vector<Row>> query(std::string_view key, std::int64_t from, std::int64_t to, Resolution resolution) {
        const bool minute = resolution == Resolution::minute;
        const std::int64_t step = minute ? kMinute : kHour;
        std::vector<Row> rows;
        auto id = seriesId(key);
        if (!id) return std::unexpected(id.error());
        if (!*id) return rows;
        // the range within the table's extent: one seek per bucket in it
        auto ext = extent(minute ? S::MinuteExtent : S::HourExtent);
        if (!ext) return std::unexpected(ext.error());
        if (!*ext) return rows;
        const std::int64_t lo = std::max(floorTo(from, step), (*ext)->first);
        const std::int64_t hi = std::min(to, (*ext)->second + step);
        if (lo >= hi) return rows;
        auto s = db.get(minute ? S::QueryMinutes : S::QueryHours);
        if (!s) return std::unexpected(s.error());
        Use u(db, *s);
        u.bind(1, **id).bind(2, lo).bind(3, hi);
        for (;;) {
            auto row = u.step();
            if (!row) return std::unexpected(row.error());
            if (!*row) break;
            rows.push_back(Row{u.i64(0), step, u.f64(1), u.f64(2), u.f64(3), u.f64(4)});
        }
        if (!std::is_sorted(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.time < b.time; }))
            std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.time < b.time; });
        return rows;
    }

    Sql<MaintenanceResult> maintain(std::int64_t now) {
        MaintenanceResult res;
        auto before = fileBytes();
        if (!before) return std::unexpected(before.error());
        res.bytes_before = *before;

        // by age (cutoffs on hour boundaries: an hour keeps all its minutes or none)
        {
            const Floors f{std::max(minute_floor, floorTo(now - opt.minute_retention.count() * 86400, kHour)),
                           std::max(hour_floor, floorTo(now - opt.hour_retention.count() * 86400, kHour))};
            Txn txn(db);
            NP_TRY(txn.begin());
            auto m = deleteBefore(S::DropMinutesBefore, f.minute);
            if (!m) return std::unexpected(m.error());
            auto h = deleteBefore(S::DropHoursBefore, f.hour);
            if (!h) return std::unexpected(h.error());
            NP_TRY(putFloors(f));
            NP_TRY(txn.commit());
            minute_floor = f.minute, hour_floor = f.hour;
            res.rows_dropped_age = static_cast<std::uint64_t>(*m + *h);
            rows_dropped_age += res.rows_dropped_age;
        }
        NP_TRY(reclaim());

        // by size: the oldest minutes, then the oldest hours, in doubling chunks; never the
        // current hour
        auto bytes = fileBytes();
        if (!bytes) return std::unexpected(bytes.error());
        const std::int64_t limit = floorTo(now, kHour);
        std::int64_t chunk = 1;
        for (int step = 0; *bytes > opt.max_bytes && step < kMaxSizeSteps; ++step, chunk *= 2) {
            Txn txn(db);
            NP_TRY(txn.begin());
            Floors f{minute_floor, hour_floor};
            Sql<std::int64_t> dropped = 0;
            auto mins = extent(S::MinuteExtent);
            if (!mins) return std::unexpected(mins.error());
            if (*mins && floorTo((*mins)->first, kHour) < limit) {
                f.minute = std::max(f.minute, std::min(floorTo((*mins)->first, kHour) + chunk * kHour, limit));
                dropped = deleteBefore(S::DropMinutesBefore, f.minute);
            } else {
                auto hrs = extent(S::HourExtent);
                if (!hrs) return std::unexpected(hrs.error());
                if (!*hrs || (*hrs)->first >= limit) break;  // nothing droppable
                f.hour = std::max(f.hour, std::min((*hrs)->first + chunk * 24 * kHour, limit));
                f.minute = std::max(f.minute, f.hour);
                dropped = deleteBefore(S::DropHoursBefore, f.hour);
            }
            if (!dropped) return std::unexpected(dropped.error());
            NP_TRY(putFloors(f));
            NP_TRY(txn.commit());
            minute_floor = f.minute, hour_floor = f.hour;
            res.rows_dropped_size += static_cast<std::uint64_t>(*dropped);
            rows_dropped_size += static_cast<std::uint64_t>(*dropped);
            NP_TRY(reclaim());
            bytes = fileBytes();
            if (!bytes) return std::unexpected(bytes.error());
        }

        // series whose every row is gone
        auto gone = deleteBefore(S::DeleteGoneSeries, hour_floor);
        if (!gone) return std::unexpected(gone.error());
        res.series_deleted = static_cast<std::uint64_t>(*gone);
        if (res.series_deleted > 0) {
            series_refs.clear();  // (the cache refills from the table)
            auto n = scalar(S::CountSeries);
            if (!n) return std::unexpected(n.error());
            series = static_cast<std::uint64_t>(n->value_or(0));
            NP_TRY(reclaim());
            bytes = fileBytes();
            if (!bytes) return std::unexpected(bytes.error());
        }
        res.bytes_after = *bytes;
        res.over_budget = *bytes > opt.max_bytes;
        file_bytes = *bytes;
        return res;
    }
};

#undef NP_TRY

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Result<Store> Store::open(StoreOptions options) {
    std::error_code ec;
    fs::create_directories(options.dir, ec);
    if (ec) return std::unexpected(errnoError(ec.value(), "history: create " + options.dir.string()));
    auto impl = std::make_unique<Impl>(std::move(options));
    {
        std::lock_guard lock(impl->mu);
        auto r = impl->openDatabase();
        if (!r && fatal(r.error().rc)) r = impl->reset(r.error());
        if (!r) return std::unexpected(makeError("history: open " + impl->file.string() + ": " + r.error().message));
    }
    return Store(std::move(impl));
}

Result<void> Store::append(std::span<const Point> points) {
    auto& d = *impl_;
    std::lock_guard lock(d.mu);
    // the minute of each point, or kNoFloor when refused
    std::vector<std::int64_t> minutes(points.size(), kNoFloor);
    std::uint64_t rejected = 0;
    constexpr std::int64_t kMaxTime = std::int64_t{1} << 40;  // (keeps bucket arithmetic far from overflow)
    for (std::size_t i = 0; i < points.size(); ++i) {
        const auto& p = points[i];
        const bool ok = !p.series.empty() && std::isfinite(p.sum) && std::isfinite(p.count) && std::isfinite(p.min) &&
                        std::isfinite(p.max) && p.minute > -kMaxTime && p.minute < kMaxTime;
        const std::int64_t m = ok ? floorTo(p.minute, kMinute) : kNoFloor;
        if (!ok || (d.hour_floor != kNoFloor && m < d.hour_floor)) {
            ++rejected;
            continue;
        }
        minutes[i] = m;
    }
    d.points_rejected += rejected;
    if (rejected == points.size()) return {};
    auto r = d.guarded<std::uint64_t>("append", [&] { return d.append(points, minutes); });
    if (!r) {
        ++d.write_errors;
        return std::unexpected(std::move(r.error()));
    }
    d.points_written += *r;
    return {};
}

Result<std::vector<Row>> Store::query(std::string_view series, std::int64_t from, std::int64_t to,
                                      Resolution resolution) const {
    auto& d = *impl_;
    std::lock_guard lock(d.mu);
    if (from >= to) return std::vector<Row>{};
    if (resolution == Resolution::automatic) {
        const bool minutes_cover = d.minute_floor == kNoFloor || floorTo(from, kMinute) >= d.minute_floor;
        resolution = (to - from <= kAutoMinuteSpan && minutes_cover) ? Resolution::minute : Resolution::hour;
    }
    return d.guarded<std::vector<Row>>("query", [&] { return d.query(series, from, to, resolution); });
}

Result<std::vector<std::string>> Store::listSeries(std::string_view prefix, std::size_t limit) const {
    auto& d = *impl_;
    std::lock_guard lock(d.mu);
    // the first key after every key with this prefix (none when the prefix is all 0xff)
    std::string upper(prefix);
    while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
    if (!upper.empty()) upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
    const auto lim = static_cast<std::int64_t>(
        std::min<std::size_t>(limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())));
    return d.guarded<std::vector<std::string>>("list series", [&]() -> Sql<std::vector<std::string>> {
        auto s = d.db.get(upper.empty() ? S::ListAll : S::ListRange);
        if (!s) return std::unexpected(s.error());
        Use u(d.db, *s);
        u.bind(1, prefix).bind(2, lim);
        if (!upper.empty()) u.bind(3, std::string_view(upper));
        std::vector<std::string> keys;
        for (;;) {
            auto row = u.step();
            if (!row) return std::unexpected(row.error());
            if (!*row) break;
            keys.push_back(u.text(0));
        }
        return keys;
    });
}

Result<void> Store::putState(std::string_view key, std::string_view blob) {
    auto& d = *impl_;
    std::lock_guard lock(d.mu);
    auto r = d.guarded<void>("put state", [&]() -> Sql<void> {
        auto s = d.db.get(S::PutState);
        if (!s) return std::unexpected(s.error());
        Use u(d.db, *s);
        u.bind(1, key).bindBlob(2, blob).bind(3, unixNow());
        return u.run();
    });
    if (!r) ++d.write_errors;
    return r;
}

Result<std::optional<std::string>> Store::getState(std::string_view key) const {
    auto& d = *impl_;
    std::lock_guard lock(d.mu);
    return d.guarded<std::optional<std::string>>("get state", [&]() -> Sql<std::optional<std::string>> {
        auto s = d.db.get(S::GetState);
        if (!s) return std::unexpected(s.error());
        Use u(d.db, *s);
        u.bind(1, key);
        auto row = u.step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return std::optional<std::string>{};
        return std::optional<std::string>{u.text(0)};
    });
}

Result<std::vector<std::pair<std::string, std::string>>> Store::states(std::string_view prefix) const {
    auto& d = *impl_;
    std::lock_guard lock(d.mu);
    std::string upper(prefix);
    upper.push_back(static_cast<char>(0x7f));  // keys are text: every key with the prefix sorts below
    using Out = std::vector<std::pair<std::string, std::string>>;
    return d.guarded<Out>("list states", [&]() -> Sql<Out> {
        auto s = d.db.get(S::ListStates);
        if (!s) return std::unexpected(s.error());
        Use u(d.db, *s);
        u.bind(1, prefix).bind(2, std::string_view(upper));
        Out out;
        for (;;) {
            auto row = u.step();
            if (!row) return std::unexpected(row.error());
            if (!*row) break;
            out.emplace_back(u.text(0), u.text(1));
        }
        return out;
    });
}

Result<MaintenanceResult> Store::maintain(std::int64_t now_unix) {
    auto& d = *impl_;
    std::lock_guard lock(d.mu);
    auto r = d.guarded<MaintenanceResult>("maintain", [&] { return d.maintain(now_unix); });
    if (!r) ++d.write_errors;
    return r;
}

StoreStats Store::stats() const {
    const auto& d = *impl_;
    return StoreStats{
        .points_written = d.points_written.load(),
        .points_rejected = d.points_rejected.load(),
        .rows_dropped_age = d.rows_dropped_age.load(),
        .rows_dropped_size = d.rows_dropped_size.load(),
        .write_errors = d.write_errors.load(),
        .resets = d.resets.load(),
        .file_bytes = d.file_bytes.load(),
        .series = d.series.load(),
    };
}

std::size_t Store::cachedSeries() const {
    std::lock_guard lock(impl_->mu);
    return impl_->series_refs.size();
}

std::filesystem::path Store::file() const {
    return impl_->file;
}

const StoreOptions& Store::options() const {
    return impl_->opt;
}

}  // namespace netprobe::history
