// Security configuration: CIDRs, YAML parsing with line-numbered errors, validation.
#include "netprobe/analysis/security/config.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <netprobe/util/duration.hpp>

namespace netprobe::analysis::security {

bool Cidr::contains(const util::Addr16& a) const {
    const int full = prefix / 8, rest = prefix % 8;
    for (int i = 0; i < full; ++i)
        if (a[i] != addr[i]) return false;
    if (rest == 0) return true;
    const std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (a[full] & mask) == (addr[full] & mask);
}

std::string Cidr::str() const {
    if (util::isV4Mapped(addr) && prefix >= 96) return util::formatAddr(addr) + "/" + std::to_string(prefix - 96);
    return util::formatAddr(addr) + "/" + std::to_string(prefix);
}

std::optional<Cidr> parseCidr(std::string_view text) {
    auto slash = text.find('/');
    auto a = util::parseAddr(text.substr(0, slash));
    if (!a) return std::nullopt;
    const bool v4 = util::isV4Mapped(*a) && text.substr(0, slash).find(':') == std::string_view::npos;
    int bits = v4 ? 32 : 128;
    if (slash != std::string_view::npos) {
        auto p = text.substr(slash + 1);
        int v = -1;
        auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
        if (ec != std::errc() || ptr != p.data() + p.size() || v < 0 || v > bits) return std::nullopt;
        bits = v;
    }
    Cidr c;
    c.prefix = static_cast<std::uint8_t>(v4 ? bits + 96 : bits);
    c.addr = util::maskAddr(*a, c.prefix);  // canonical form: host bits cleared
    return c;
}

const char* toString(MitigationMode m) {
    switch (m) {
    case MitigationMode::Off: return "off";
    case MitigationMode::DryRun: return "dry-run";
    case MitigationMode::On: return "on";
    }
    return "off";
}

std::optional<MitigationMode> parseMitigationMode(std::string_view s) {
    if (s == "off") return MitigationMode::Off;
    if (s == "dry-run") return MitigationMode::DryRun;
    if (s == "on") return MitigationMode::On;
    return std::nullopt;
}

const FloodThresholds& SecurityConfig::thresholdsFor(const util::Addr16& dst) const {
    for (const auto& g : host_groups)
        for (const auto& c : g.cidrs)
            if (c.contains(dst)) return g.thresholds;
    return flood;
}

bool SecurityConfig::allowed(const util::Addr16& a) const {
    for (const auto& c : allow)
        if (c.contains(a)) return true;
    return false;
}

// ---------------------------------------------------------------------------
// YAML

namespace {

struct ConfigError {
    std::string message;
};

[[noreturn]] void fail(const YAML::Node& n, const std::string& path, const std::string& why) {
    throw ConfigError{"line " + std::to_string(n.Mark().line + 1) + ": " + path + ": " + why};
}

std::string scalar(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) fail(n, path, "expected a value, not a list or map");
    return n.Scalar();
}

Duration duration(const YAML::Node& n, const std::string& path) {
    auto d = util::parseDuration(scalar(n, path));
    if (!d) fail(n, path, "expected a duration such as 500ms, 10s or 5m (" + d.error() + ")");
    if (d->count() <= 0) fail(n, path, "must be positive");
    return std::chrono::duration_cast<Duration>(*d);
}

double number(const YAML::Node& n, const std::string& path, double lo, double hi) {
    const std::string s = scalar(n, path);
    double v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size())
        fail(n, path, "expected a number, got \"" + s + "\"");
    if (v < lo || v > hi) {
        std::ostringstream o;
        o << "must be between " << lo << " and " << hi;
        fail(n, path, o.str());
    }
    return v;
}

std::uint32_t count(const YAML::Node& n, const std::string& path, std::uint32_t lo = 1,
                    std::uint32_t hi = 100000000) {
    const std::string s = scalar(n, path);
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size())
        fail(n, path, "expected a positive integer, got \"" + s + "\"");
    if (v < lo || v > hi) fail(n, path, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return static_cast<std::uint32_t>(v);
}

bool boolean(const YAML::Node& n, const std::string& path) {
    const std::string s = scalar(n, path);
    if (s == "true" || s == "on" || s == "yes") return true;
    if (s == "false" || s == "off" || s == "no") return false;
    fail(n, path, "expected true or false, got \"" + s + "\"");
}

std::vector<Cidr> cidrs(const YAML::Node& n, const std::string& path) {
    if (!n.IsSequence()) fail(n, path, "expected a list of CIDRs");
    std::vector<Cidr> out;
    for (std::size_t i = 0; i < n.size(); ++i) {
        const std::string item = path + "[" + std::to_string(i) + "]";
        auto c = parseCidr(scalar(n[i], item));
        if (!c) fail(n[i], item, "not an IPv4/IPv6 address or CIDR: \"" + n[i].Scalar() + "\"");
        out.push_back(*c);
    }
    return out;
}

using Handler = std::function<void(const YAML::Node&, const std::string&)>;

// Walks a map, calling the handler of each known key; unknown keys are errors.
void walk(const YAML::Node& n, const std::string& path, const std::map<std::string, Handler>& keys) {
    if (n.IsNull()) return;
    if (!n.IsMap()) fail(n, path.empty() ? "(top level)" : path, "expected a map of settings");
    for (const auto& kv : n) {
        const std::string k = kv.first.as<std::string>();
        const std::string p = path.empty() ? k : path + "." + k;
        auto it = keys.find(k);
        if (it == keys.end()) {
            std::string known;
            for (const auto& [name, h] : keys) known += (known.empty() ? "" : ", ") + name;
            fail(kv.first, p, "unknown setting (known: " + known + ")");
        }
        it->second(kv.second, p);
    }
}

// The threshold settings of FloodThresholds t, added to a map of handlers.
void thresholds(FloodThresholds& t, std::map<std::string, Handler>& keys) {
    keys["syn_pps"] = [&t](const YAML::Node& v, const std::string& p) { t.syn_pps = number(v, p, 0, 1e10); };
    keys["syn_ratio"] = [&t](const YAML::Node& v, const std::string& p) { t.syn_ratio = number(v, p, 0, 1); };
    keys["udp_pps"] = [&t](const YAML::Node& v, const std::string& p) { t.udp_pps = number(v, p, 0, 1e10); };
    keys["icmp_pps"] = [&t](const YAML::Node& v, const std::string& p) { t.icmp_pps = number(v, p, 0, 1e10); };
    keys["pps"] = [&t](const YAML::Node& v, const std::string& p) { t.pps = number(v, p, 0, 1e10); };
    keys["mbps"] = [&t](const YAML::Node& v, const std::string& p) { t.mbps = number(v, p, 0, 1e9); };
    keys["flows"] = [&t](const YAML::Node& v, const std::string& p) { t.flows = number(v, p, 0, 1e10); };
}

void parseInto(const YAML::Node& root, SecurityConfig& c) {
    std::map<std::string, Handler> top;
    top["enabled"] = [&c](const YAML::Node& v, const std::string& p) { c.enabled = boolean(v, p); };
    top["tick"] = [&c](const YAML::Node& v, const std::string& p) { c.tick = duration(v, p); };
    top["allow"] = [&c](const YAML::Node& v, const std::string& p) { c.allow = cidrs(v, p); };
    top["scan"] = [&c](const YAML::Node& v, const std::string& p) {
        walk(v, p, {
            {"window", [&c](const YAML::Node& x, const std::string& q) { c.scan_window = duration(x, q); }},
            {"vertical_ports", [&c](const YAML::Node& x, const std::string& q) { c.scan_vertical_ports = count(x, q); }},
            {"horizontal_hosts", [&c](const YAML::Node& x, const std::string& q) { c.scan_horizontal_hosts = count(x, q); }},
            {"unanswered_after", [&c](const YAML::Node& x, const std::string& q) { c.scan_unanswered_after = duration(x, q); }},
            {"end_after", [&c](const YAML::Node& x, const std::string& q) { c.scan_end_after = duration(x, q); }},
        });
    };
    top["flood"] = [&c](const YAML::Node& v, const std::string& p) {
        std::map<std::string, Handler> keys;
        thresholds(c.flood, keys);
        keys["end_after"] = [&c](const YAML::Node& x, const std::string& q) { c.flood_end_after = duration(x, q); };
        keys["min_duration"] = [&c](const YAML::Node& x, const std::string& q) { c.flood_min_duration = duration(x, q); };
        keys["surge"] = [&c](const YAML::Node& x, const std::string& q) {
            walk(x, q, {
                {"factor", [&c](const YAML::Node& y, const std::string& r) { c.surge_factor = number(y, r, 1, 1e6); }},
                {"min_pps", [&c](const YAML::Node& y, const std::string& r) { c.surge_min_pps = number(y, r, 0, 1e10); }},
                {"asymmetry", [&c](const YAML::Node& y, const std::string& r) { c.surge_asymmetry = number(y, r, 0, 1e6); }},
                {"half_life", [&c](const YAML::Node& y, const std::string& r) { c.baseline_half_life = duration(y, r); }},
                {"warmup", [&c](const YAML::Node& y, const std::string& r) { c.baseline_warmup = duration(y, r); }},
            });
        };
        keys["host_groups"] = [&c](const YAML::Node& x, const std::string& q) {
            if (!x.IsSequence()) fail(x, q, "expected a list of host groups");
            c.host_groups.clear();
            for (std::size_t i = 0; i < x.size(); ++i) {
                const std::string gp = q + "[" + std::to_string(i) + "]";
                HostGroup g;
                g.thresholds = c.flood;  // a group starts from the global thresholds
                std::map<std::string, Handler> gk;
                thresholds(g.thresholds, gk);
                gk["name"] = [&g](const YAML::Node& y, const std::string& r) { g.name = scalar(y, r); };
                gk["cidrs"] = [&g](const YAML::Node& y, const std::string& r) { g.cidrs = cidrs(y, r); };
                walk(x[i], gp, gk);
                if (g.cidrs.empty()) fail(x[i], gp, "a host group needs cidrs");
                if (g.name.empty()) g.name = "group" + std::to_string(i);
                c.host_groups.push_back(std::move(g));
            }
        };
        walk(v, p, keys);
    };
    top["connections"] = [&c](const YAML::Node& v, const std::string& p) {
        walk(v, p, {
            {"window", [&c](const YAML::Node& x, const std::string& q) { c.conn_window = duration(x, q); }},
            {"failures", [&c](const YAML::Node& x, const std::string& q) { c.conn_failures = count(x, q); }},
            {"fanout_window", [&c](const YAML::Node& x, const std::string& q) { c.fanout_window = duration(x, q); }},
            {"fanout_peers", [&c](const YAML::Node& x, const std::string& q) { c.fanout_peers = count(x, q); }},
            {"learning_period", [&c](const YAML::Node& x, const std::string& q) { c.learning_period = duration(x, q); }},
            {"new_peer", [&c](const YAML::Node& x, const std::string& q) { c.new_peer = boolean(x, q); }},
            {"learned_max", [&c](const YAML::Node& x, const std::string& q) { c.learned_max = count(x, q); }},
        });
    };
    top["mitigation"] = [&c](const YAML::Node& v, const std::string& p) {
        walk(v, p, {
            {"mode", [&c](const YAML::Node& x, const std::string& q) {
                 auto m = parseMitigationMode(scalar(x, q));
                 if (!m) fail(x, q, "expected off, dry-run or on, got \"" + x.Scalar() + "\"");
                 c.mitigate = *m;
             }},
            {"block_duration", [&c](const YAML::Node& x, const std::string& q) { c.block_duration = duration(x, q); }},
        });
    };
    top["limits"] = [&c](const YAML::Node& v, const std::string& p) {
        walk(v, p, {
            {"max_sources", [&c](const YAML::Node& x, const std::string& q) { c.max_sources = count(x, q); }},
            {"max_probes_per_source", [&c](const YAML::Node& x, const std::string& q) { c.max_probes_per_source = count(x, q); }},
            {"max_probes_total", [&c](const YAML::Node& x, const std::string& q) { c.max_probes_total = count(x, q); }},
            {"max_hosts", [&c](const YAML::Node& x, const std::string& q) { c.max_hosts = count(x, q); }},
            {"max_events", [&c](const YAML::Node& x, const std::string& q) { c.max_events = count(x, q); }},
        });
    };
    walk(root, "", top);
}

}  // namespace

Result<void> parseSecurityConfig(std::string_view yaml, SecurityConfig& cfg) {
    SecurityConfig work = cfg;
    try {
        YAML::Node root = YAML::Load(std::string(yaml));
        parseInto(root, work);
    } catch (const ConfigError& e) {
        return std::unexpected(makeError(e.message));
    } catch (const YAML::Exception& e) {
        return std::unexpected(makeError("line " + std::to_string(e.mark.line + 1) + ": " + e.msg));
    }
    if (auto r = validate(work); !r) return r;
    cfg = std::move(work);
    return {};
}

Result<void> loadSecurityConfig(const std::string& path, SecurityConfig& cfg) {
    std::ifstream in(path);
    if (!in) return std::unexpected(errnoError(errno, "open security config " + path));
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = parseSecurityConfig(ss.str(), cfg);
    if (!r) return std::unexpected(makeError(path + ": " + r.error().message));
    return {};
}

Result<void> validate(const SecurityConfig& c) {
    if (c.tick < Duration(10)) return std::unexpected(makeError("tick must be at least 10ms"));
    for (auto [name, d] : {std::pair{"scan.window", c.scan_window}, std::pair{"connections.window", c.conn_window},
                           std::pair{"connections.fanout_window", c.fanout_window}})
        if (d < c.tick) return std::unexpected(makeError(std::string(name) + " must not be shorter than tick"));
    if (c.scan_unanswered_after >= c.scan_window)
        return std::unexpected(makeError("scan.unanswered_after must be shorter than scan.window"));
    return {};
}

Result<void> applySecuritySetting(std::string_view kv, SecurityConfig& cfg) {
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0 || kv.substr(0, eq).find_first_not_of("abcdefghijklmnopqrstuvwxyz_.") !=
                                                         std::string_view::npos ||
        kv.front() == '.' || kv[eq - 1] == '.' || kv.substr(0, eq).find("..") != std::string_view::npos)
        return std::unexpected(makeError("expected KEY=VALUE with a dotted lower-case key, e.g. scan.vertical_ports=50"));
    const auto value = kv.substr(eq + 1);
    if (value.find_first_of("\r\n") != std::string_view::npos)
        return std::unexpected(makeError("the value cannot contain a line break"));
    // a.b.c=v -> "a:\n  b:\n    c: v\n"
    std::string yaml, indent;
    std::string_view key = kv.substr(0, eq);
    for (;;) {
        const auto dot = key.find('.');
        yaml += indent + std::string(key.substr(0, dot)) + ":";
        if (dot == std::string_view::npos) break;
        yaml += "\n";
        indent += "  ";
        key.remove_prefix(dot + 1);
    }
    yaml += " " + std::string(value) + "\n";
    return parseSecurityConfig(yaml, cfg);
}

}  // namespace netprobe::analysis::security
