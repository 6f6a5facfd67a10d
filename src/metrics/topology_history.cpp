// Topology frames in the history store and the graph at a past time (see topology_history.hpp).
#include <netprobe/metrics/topology_history.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <map>

#include <netprobe/analysis/topology.hpp>
#include <netprobe/util/ip.hpp>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {
namespace {

constexpr std::string_view kPrefix = "topo/";
constexpr const char* kFields[] = {"bytes_out", "bytes_in", "packets_out", "packets_in", "opened", "failed", "retransmits"};
constexpr std::size_t kNumFields = std::size(kFields);

std::string escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char ch : s) {
        if (ch == '/' || ch == '%' || static_cast<unsigned char>(ch) < 0x20) {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(ch));
            out += buf;
        } else {
            out += ch;
        }
    }
    return out;
}

std::string unescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::strtol(std::string(s.substr(i + 1, 2)).c_str(), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

// The conversation part of a frame's key (without the field).
std::string conversationKey(const analysis::Conversation& c) {
    std::string k(kPrefix);
    for (const std::string& part :
         {std::to_string(c.ip_proto), std::to_string(c.port), util::formatAddr(c.client.ip), util::formatAddr(c.server.ip),
          c.client.ns, c.client.workload, c.client.pod, c.server.ns, c.server.workload, c.server.pod, c.client.process,
          c.server.process}) {
        k += escape(part);
        k += '/';
    }
    return k;
}

std::vector<std::string> splitKey(std::string_view key) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        const auto slash = key.find('/', start);
        parts.push_back(unescape(key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start)));
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return parts;
}

}  // namespace

std::optional<std::int64_t> parseTimeParam(const std::string& s) {
    if (s.empty() || s.size() > 40) return std::nullopt;
    char* end = nullptr;
    const double unix_s = std::strtod(s.c_str(), &end);
    if (end == s.c_str() + s.size()) {
        if (!(unix_s >= 0 && unix_s <= 9.0e9)) return std::nullopt;
        return static_cast<std::int64_t>(unix_s);
    }
    std::tm tm{};
    const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) return std::nullopt;
    if (*rest == '.')
        for (++rest; *rest >= '0' && *rest <= '9';) ++rest;
    long offset = 0;
    if (*rest == 'Z' || *rest == 'z') {
        ++rest;
    } else if ((*rest == '+' || *rest == '-') && std::strlen(rest) == 6 && rest[3] == ':') {
        const auto num = [&](int i) { return rest[i] >= '0' && rest[i] <= '9' ? rest[i] - '0' : -100; };
        const int hh = num(1) * 10 + num(2), mm = num(4) * 10 + num(5);
        if (hh < 0 || hh > 23 || mm < 0 || mm > 59) return std::nullopt;
        offset = (hh * 3600L + mm * 60L) * (*rest == '-' ? -1 : 1);
        rest += 6;
    } else {
        return std::nullopt;
    }
    if (*rest != '\0') return std::nullopt;
    const std::time_t t = timegm(&tm) - offset;
    if (t < 0) return std::nullopt;
    return static_cast<std::int64_t>(t);
}

std::vector<history::Point> topologyFramePoints(const analysis::TopologyView& v, collector::WallTime taken_at,
                                                std::int64_t& after_slot) {
    std::vector<history::Point> out;
    const std::int64_t last_complete = v.now_slot - 1;
    if (last_complete <= after_slot) return out;
    const std::int64_t slot_ns = std::max<std::int64_t>(v.slot.count(), 1) * 1'000'000'000;
    const std::int64_t taken_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(taken_at.time_since_epoch()).count();
    for (const auto& cp : v.conversations) {
        const auto& c = *cp;
        std::string base;
        // per minute: the fields' sums of this conversation's slots in it
        std::map<std::int64_t, std::array<double, kNumFields>> minutes;
        for (const auto& sl : c.slots) {
            if (sl.id <= after_slot || sl.id > last_complete) continue;
            const std::int64_t wall_ns = taken_ns - (static_cast<std::int64_t>(v.now_ns) - sl.id * slot_ns);
            const std::int64_t unix_s = wall_ns >= 0 ? wall_ns / 1'000'000'000 : 0;
            auto& m = minutes.try_emplace(unix_s - unix_s % 60).first->second;
            const double f[kNumFields] = {static_cast<double>(sl.bytes_out), static_cast<double>(sl.bytes_in),
                                          static_cast<double>(sl.packets_out), static_cast<double>(sl.packets_in),
                                          static_cast<double>(sl.opened), static_cast<double>(sl.failed),
                                          static_cast<double>(sl.retransmits)};
            for (std::size_t i = 0; i < kNumFields; ++i) m[i] += f[i];
        }
        if (minutes.empty()) continue;
        base = conversationKey(c);
        for (const auto& [minute, f] : minutes)
            for (std::size_t i = 0; i < kNumFields; ++i)
                if (f[i] != 0) out.push_back({base + kFields[i], minute, f[i], 1, f[i], f[i]});
    }
    after_slot = last_complete;
    return out;
}

std::expected<nlohmann::json, TopologyAtError> topologyAt(const history::Store& store, const TopologyQuery& q,
                                                          std::int64_t now_unix) {
    const std::int64_t at = *q.at_unix;
    const auto window = static_cast<std::int64_t>(q.window_seconds);
    const std::int64_t kept = static_cast<std::int64_t>(store.options().minute_retention.count()) * 86400;
    if (at > now_unix + 60)
        return std::unexpected(TopologyAtError{400, "bad value for parameter \"at\": " + rfc3339(collector::WallTime(std::chrono::seconds(at))) +
                                                        " is in the future"});
    if (at - window < now_unix - kept)
        return std::unexpected(TopologyAtError{
            400, "bad value for parameter \"at\": the window before it reaches beyond the history's retention (" +
                     std::to_string(kept / 86400) + "d of minutes, --history-retention)"});
    const std::int64_t from = at - window, to = at;
    // the series of every conversation (keys: conversation part + field), grouped
    constexpr std::size_t kMaxSeries = 200000;
    auto keys = store.listSeries(kPrefix, kMaxSeries);
    if (!keys) return std::unexpected(TopologyAtError{500, "history store: " + keys.error().what()});
    std::map<std::string, std::array<double, kNumFields>> sums;
    for (const auto& key : *keys) {
        const auto slash = key.rfind('/');
        if (slash == std::string::npos) continue;
        const std::string_view field = std::string_view(key).substr(slash + 1);
        const auto fi = std::find(std::begin(kFields), std::end(kFields), field) - std::begin(kFields);
        if (static_cast<std::size_t>(fi) >= kNumFields) continue;
        auto rows = store.query(key, from, to, history::Resolution::minute);
        if (!rows) return std::unexpected(TopologyAtError{500, "history store: " + rows.error().what()});
        double total = 0;
        for (const auto& r : *rows) total += r.sum;
        if (total == 0) continue;
        sums[key.substr(0, slash + 1)][static_cast<std::size_t>(fi)] += total;
    }
    // A view of one slot per conversation holding the window's sums; the live export answers.
    const std::int64_t minutes = std::max<std::int64_t>(1, (to - 1) / 60 - from / 60 + 1);
    analysis::TopologyView v;
    v.slot = std::chrono::seconds(60);
    v.slots = static_cast<std::size_t>(minutes);
    v.now_slot = to / 60;
    for (const auto& [conv, f] : sums) {
        const auto p = splitKey(std::string_view(conv).substr(kPrefix.size()));
        if (p.size() < 12) continue;
        auto c = std::make_shared<analysis::Conversation>();
        std::uint32_t proto = 0, port = 0;
        try {
            proto = static_cast<std::uint32_t>(std::stoul(p[0]));
            port = static_cast<std::uint32_t>(std::stoul(p[1]));
        } catch (...) {
            continue;
        }
        auto cip = util::parseAddr(p[2]), sip = util::parseAddr(p[3]);
        if (!cip || !sip || proto > 255 || port > 65535) continue;
        c->ip_proto = static_cast<std::uint8_t>(proto);
        c->port = static_cast<std::uint16_t>(port);
        c->client.ip = *cip;
        c->server.ip = *sip;
        c->client.family = util::isV4Mapped(*cip) ? 4 : 6;
        c->server.family = util::isV4Mapped(*sip) ? 4 : 6;
        c->client.ns = p[4], c->client.workload = p[5], c->client.pod = p[6];
        c->server.ns = p[7], c->server.workload = p[8], c->server.pod = p[9];
        c->client.process = p[10], c->server.process = p[11];
        analysis::TopologySlot sl;
        sl.id = v.now_slot;
        sl.bytes_out = static_cast<std::uint64_t>(std::llround(f[0]));
        sl.bytes_in = static_cast<std::uint64_t>(std::llround(f[1]));
        sl.packets_out = static_cast<std::uint64_t>(std::llround(f[2]));
        sl.packets_in = static_cast<std::uint64_t>(std::llround(f[3]));
        sl.opened = static_cast<std::uint32_t>(std::llround(f[4]));
        sl.failed = static_cast<std::uint32_t>(std::llround(f[5]));
        sl.retransmits = static_cast<std::uint32_t>(std::llround(f[6]));
        c->slots.push_back(sl);
        v.conversations.push_back(std::move(c));
    }
    TopologyQuery wq = q;
    wq.window_seconds = static_cast<std::size_t>(minutes * 60);
    auto j = topologyDocument(&v, nullptr, wq);
    j["source"] = "history";
    j["at"] = rfc3339(collector::WallTime(std::chrono::seconds(at)));
    j["from"] = rfc3339(collector::WallTime(std::chrono::seconds(from - from % 60)));
    j["to"] = rfc3339(collector::WallTime(std::chrono::seconds((to + 59) / 60 * 60)));
    j["series_scanned"] = keys->size();
    if (keys->size() >= kMaxSeries) j["series_truncated"] = true;
    return j;
}

}  // namespace netprobe::metrics
