#include "netprobe/history/cluster.hpp"

#include <algorithm>
#include <charconv>
#include <optional>

#include "netprobe/util/parse.hpp"

namespace netprobe::history {

namespace {

// One TabSeparated field, unescaped (\\, \t, \n, \', \0 ... as ClickHouse writes them).
std::string unescapeTsv(std::string_view f) {
    std::string o;
    o.reserve(f.size());
    for (std::size_t i = 0; i < f.size(); ++i) {
        if (f[i] != '\\' || i + 1 == f.size()) {
            o += f[i];
            continue;
        }
        const char c = f[++i];
        switch (c) {
            case 't': o += '\t'; break;
            case 'n': o += '\n'; break;
            case 'r': o += '\r'; break;
            case '0': o += '\0'; break;
            case 'b': o += '\b'; break;
            case 'f': o += '\f'; break;
            default: o += c;
        }
    }
    return o;
}

std::vector<std::string_view> splitTabs(std::string_view line) {
    std::vector<std::string_view> out;
    for (;;) {
        const auto t = line.find('\t');
        out.push_back(line.substr(0, t));
        if (t == std::string_view::npos) return out;
        line.remove_prefix(t + 1);
    }
}

template <class F>
void eachLine(std::string_view text, F&& f) {
    while (!text.empty()) {
        const auto e = text.find('\n');
        std::string_view l = text.substr(0, e);
        if (!l.empty()) f(l);
        if (e == std::string_view::npos) break;
        text.remove_prefix(e + 1);
    }
}

bool parseDouble(std::string_view s, double& out) {
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

ClusterHistory::ClusterHistory(ClusterOptions options) : options_(std::move(options)) {}

std::string ClusterHistory::target() const { return options_.endpoint.url + "/" + options_.database; }

ClusterStats ClusterHistory::stats() const { return {queries_.load(), errors_.load(), skipped_.load()}; }

Result<std::string> ClusterHistory::run(const std::string& sql) const {
    {
        std::lock_guard lock(mu_);
        if (std::chrono::steady_clock::now() < down_until_) {
            ++skipped_;
            return std::unexpected(makeError(last_error_ + " (not retried for " +
                                             std::to_string(options_.retry_after.count() / 1000) + " s)"));
        }
    }
    ++queries_;
    auto r = util::clickHouseQuery(options_.endpoint, sql);
    if (!r) {
        ++errors_;
        std::lock_guard lock(mu_);
        last_error_ = "clickhouse " + target() + ": " + r.error().what();
        down_until_ = std::chrono::steady_clock::now() + options_.retry_after;
        return std::unexpected(makeError(last_error_));
    }
    return r;
}

Result<std::vector<std::string>> ClusterHistory::listSeries(std::string_view prefix, std::size_t limit,
                                                            std::string_view node) const {
    std::string sql = "SELECT DISTINCT series FROM " + options_.database + ".series_1h";
    std::string where;
    if (!prefix.empty())
        where += "substring(series, 1, " + std::to_string(prefix.size()) + ") = " + util::clickHouseString(prefix);
    if (!node.empty()) where += std::string(where.empty() ? "" : " AND ") + "node = " + util::clickHouseString(node);
    if (!where.empty()) sql += " WHERE " + where;
    sql += " ORDER BY series LIMIT " + std::to_string(limit) + " FORMAT TabSeparated";
    auto body = run(sql);
    if (!body) return std::unexpected(body.error());
    std::vector<std::string> out;
    eachLine(*body, [&](std::string_view l) { out.push_back(unescapeTsv(l)); });
    return out;
}

Result<std::vector<std::string>> ClusterHistory::nodes() const {
    auto body = run("SELECT DISTINCT node FROM " + options_.database + ".series_1h ORDER BY node FORMAT TabSeparated");
    if (!body) return std::unexpected(body.error());
    std::vector<std::string> out;
    eachLine(*body, [&](std::string_view l) { out.push_back(unescapeTsv(l)); });
    return out;
}

Result<std::vector<NodeRows>> ClusterHistory::query(std::string_view series, std::int64_t from, std::int64_t to,
                                                    Resolution resolution, std::string_view node) const {
    if (resolution == Resolution::automatic)
        resolution = to - from <= 24 * 3600 ? Resolution::minute : Resolution::hour;
    const std::int64_t step = resolution == Resolution::minute ? 60 : 3600;
    from = std::max<std::int64_t>(0, from - ((from % step) + step) % step);  // buckets that overlap [from, to)
    to = std::max(to, from);
    std::string where = "series = " + util::clickHouseString(series) + " AND t >= toDateTime(" + std::to_string(from) +
                        ") AND t < toDateTime(" + std::to_string(to) + ")";
    if (!node.empty()) where += " AND node = " + util::clickHouseString(node);
    std::string sql;
    if (resolution == Resolution::minute)
        sql = "SELECT node, toUInt32(t) AS b, sum(v_sum), sum(v_count), min(v_min), max(v_max) FROM " +
              options_.database + ".series FINAL WHERE " + where + " GROUP BY node, b ORDER BY node, b";
    else
        sql = "SELECT node, toUInt32(t) AS b, sumMerge(v_sum), sumMerge(v_count), minMerge(v_min), maxMerge(v_max) FROM " +
              options_.database + ".series_1h WHERE " + where + " GROUP BY node, b ORDER BY node, b";
    auto body = run(sql + " FORMAT TabSeparated");
    if (!body) return std::unexpected(body.error());
    std::vector<NodeRows> out;
    std::optional<Error> bad;
    eachLine(*body, [&](std::string_view l) {
        const auto f = splitTabs(l);
        Row r;
        r.step = step;
        if (f.size() != 6 || !util::parseNumber(f[1], r.time) || !parseDouble(f[2], r.sum) ||
            !parseDouble(f[3], r.count) || !parseDouble(f[4], r.min) || !parseDouble(f[5], r.max)) {
            if (!bad) bad = makeError("clickhouse " + target() + ": unexpected row \"" + std::string(l.substr(0, 200)) + "\"");
            return;
        }
        auto n = unescapeTsv(f[0]);
        if (out.empty() || out.back().node != n) out.push_back({std::move(n), {}});
        out.back().rows.push_back(r);
    });
    if (bad) return std::unexpected(*bad);
    return out;
}

Result<std::vector<ClusterFlow>> ClusterHistory::flows(std::int64_t from, std::int64_t to, std::size_t limit) const {
    const std::string db = options_.database;
    const std::string labels = "src_namespace, src_pod, src_workload, dst_namespace, dst_pod, dst_workload, dst_service";
    // 1. per observation point (node, interface) and 5-tuple; 2. per 5-tuple, the largest
    // observation (max() of strings prefers a filled label over an empty one); 3. per edge.
    const std::string sql =
        "SELECT src_addr, dst_addr, dst_port, protocol, " + labels +
        ", sum(b), sum(rb), sum(p), sum(rp), count(), groupUniqArrayArray(ns) FROM ("
        "SELECT src_addr, src_port, dst_addr, dst_port, protocol, max(src_namespace) AS src_namespace, "
        "max(src_pod) AS src_pod, max(src_workload) AS src_workload, max(dst_namespace) AS dst_namespace, "
        "max(dst_pod) AS dst_pod, max(dst_workload) AS dst_workload, max(dst_service) AS dst_service, "
        "max(ob) AS b, max(orb) AS rb, max(op) AS p, max(orp) AS rp, groupUniqArray(node) AS ns FROM ("
        "SELECT node, interface, src_addr, src_port, dst_addr, dst_port, protocol, " + labels +
        ", sum(bytes) AS ob, sum(rev_bytes) AS orb, sum(packets) AS op, sum(rev_packets) AS orp FROM " + db +
        ".flows WHERE end_ms >= " + std::to_string(from * 1000) + " AND end_ms < " + std::to_string(to * 1000) +
        " AND time_received >= toDateTime(" + std::to_string(std::max<std::int64_t>(0, from - 3600)) +
        ") GROUP BY node, interface, src_addr, src_port, dst_addr, dst_port, protocol, " + labels +
        ") GROUP BY src_addr, src_port, dst_addr, dst_port, protocol"
        ") GROUP BY src_addr, dst_addr, dst_port, protocol, " + labels +
        " ORDER BY sum(b) + sum(rb) DESC LIMIT " + std::to_string(limit) + " FORMAT TabSeparated";
    auto body = run(sql);
    if (!body) return std::unexpected(body.error());
    std::vector<ClusterFlow> out;
    std::optional<Error> bad;
    eachLine(*body, [&](std::string_view l) {
        const auto f = splitTabs(l);
        ClusterFlow c;
        std::uint32_t port = 0, proto = 0;
        if (f.size() != 17 || !util::parseNumber(f[2], port) || port > 65535 || !util::parseNumber(f[3], proto) ||
            proto > 255 || !util::parseNumber(f[11], c.bytes) || !util::parseNumber(f[12], c.rev_bytes) ||
            !util::parseNumber(f[13], c.packets) || !util::parseNumber(f[14], c.rev_packets) ||
            !util::parseNumber(f[15], c.flows)) {
            if (!bad) bad = makeError("clickhouse " + target() + ": unexpected row \"" + std::string(l.substr(0, 200)) + "\"");
            return;
        }
        c.dst_port = static_cast<std::uint16_t>(port);
        c.protocol = static_cast<std::uint8_t>(proto);
        c.src_addr = unescapeTsv(f[0]);
        c.dst_addr = unescapeTsv(f[1]);
        std::string* lab[] = {&c.src_namespace, &c.src_pod, &c.src_workload, &c.dst_namespace,
                              &c.dst_pod, &c.dst_workload, &c.dst_service};
        for (std::size_t i = 0; i < 7; ++i) *lab[i] = unescapeTsv(f[4 + i]);
        // ['node-a','node-b']
        std::string_view arr = f[16];
        if (arr.size() >= 2 && arr.front() == '[' && arr.back() == ']') {
            arr = arr.substr(1, arr.size() - 2);
            while (!arr.empty()) {
                if (arr.front() != '\'') break;
                std::size_t e = 1;
                while (e < arr.size() && arr[e] != '\'') e += arr[e] == '\\' ? 2 : 1;
                if (e >= arr.size()) break;
                c.nodes.push_back(unescapeTsv(arr.substr(1, e - 1)));
                arr.remove_prefix(std::min(arr.size(), e + 2));  // the quote and the comma
            }
        }
        out.push_back(std::move(c));
    });
    if (bad) return std::unexpected(*bad);
    return out;
}

}  // namespace netprobe::history
