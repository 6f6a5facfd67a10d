#include <netprobe/metrics/bottlenecks.hpp>

#include <nlohmann/json.hpp>

#include <netprobe/metrics/exposition.hpp>
#include <netprobe/util/parse.hpp>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {
namespace {

constexpr const char* kSeverities[] = {"critical", "warning", "info"};

int severityRank(const std::string& s) { return s == "critical" ? 0 : s == "warning" ? 1 : 2; }

std::string knownKinds() {
    std::string k;
    for (std::size_t i = 0; i < analysis::kBottleneckKinds; ++i)
        k += (i ? ", " : "") + std::string(analysis::toString(static_cast<analysis::BottleneckKind>(i)));
    return k;
}

}  // namespace

std::expected<BottleneckQuery, std::string> parseBottleneckQuery(
    const std::vector<std::pair<std::string, std::string>>& params) {
    BottleneckQuery q;
    auto bad = [](const std::string& k, const std::string& v, const std::string& why) {
        return std::unexpected("bad value \"" + v + "\" for parameter \"" + k + "\": " + why);
    };
    for (const auto& [k, v] : params) {
        if (k == "limit") {
            std::size_t n = 0;
            if (!util::parseNumber(v, n) || n == 0 || n > 1000) return bad(k, v, "expected 1..1000");
            q.limit = n;
        } else if (k == "kind") {
            std::string_view rest = v;
            if (rest.empty()) return bad(k, v, "expected one or more of " + knownKinds());
            while (true) {
                const auto comma = rest.find(',');
                const auto one = rest.substr(0, comma);
                auto kind = analysis::parseBottleneckKind(one);
                if (!kind) return bad(k, v, "unknown kind \"" + std::string(one) + "\" (known: " + knownKinds() + ")");
                q.kinds[static_cast<std::size_t>(*kind)] = true;
                if (comma == std::string_view::npos) break;
                rest = rest.substr(comma + 1);
            }
        } else if (k == "severity") {
            if (v != "critical" && v != "warning" && v != "info") return bad(k, v, "expected critical, warning or info");
            q.min_severity = severityRank(v);
        } else {
            return std::unexpected("unknown parameter \"" + k + "\" (known: limit, kind, severity)");
        }
    }
    return q;
}

std::string bottlenecksJson(const analysis::BottleneckView* v, const BottleneckQuery& q) {
    nlohmann::json j;
    j["enabled"] = v != nullptr;
    if (!v) return j.dump();
    const bool all_kinds = std::none_of(q.kinds.begin(), q.kinds.end(), [](bool b) { return b; });
    auto arr = nlohmann::json::array();
    std::size_t matched = 0;
    for (const auto& f : v->findings) {
        if (!all_kinds && !q.kinds[static_cast<std::size_t>(f.kind)]) continue;
        if (severityRank(f.severity) > q.min_severity) continue;
        if (++matched > q.limit) continue;
        auto ev = nlohmann::json::array();
        for (const auto& e : f.evidence) ev.push_back({{"name", e.name}, {"value", e.value}, {"unit", e.unit}});
        arr.push_back({{"rank", matched},
                       {"kind", analysis::toString(f.kind)},
                       {"subject", f.subject},
                       {"severity", f.severity},
                       {"score", f.score},
                       {"title", f.title},
                       {"since", rfc3339(f.since)},
                       {"evidence", std::move(ev)},
                       {"explanation", f.explanation},
                       {"fix", f.fix},
                       {"query", f.query}});
    }
    auto ifs = nlohmann::json::array();
    for (const auto& i : v->interfaces)
        ifs.push_back({{"interface", i.interface},
                       {"speed_mbps", i.speed_mbps},
                       {"speed_source", i.speed_configured ? "configured" : "device"},
                       {"ingress_bits_per_second", i.ingress_bps},
                       {"egress_bits_per_second", i.egress_bps},
                       {"ingress_utilisation", i.ingress_ratio},
                       {"egress_utilisation", i.egress_ratio}});
    j["evaluated_at"] = rfc3339(v->evaluated_at);
    j["window_seconds"] = v->window_seconds;
    j["links"] = {{"read", v->links}};
    if (v->links) j["links"]["read_at"] = rfc3339(v->links_read_at);
    j["conntrack"] = {{"available", v->conntrack}};
    if (v->conntrack)
        j["conntrack"].update({{"entries", v->conntrack_entries},
                               {"max", v->conntrack_max},
                               {"usage", v->conntrack_max ? static_cast<double>(v->conntrack_entries) /
                                                                static_cast<double>(v->conntrack_max)
                                                          : 0.0}});
    j["interfaces"] = std::move(ifs);
    j["count"] = arr.size();
    j["truncated"] = matched > q.limit;
    j["findings"] = std::move(arr);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string renderBottleneckMetrics(const analysis::BottleneckView& v) {
    ExpositionWriter w;
    w.family("netprobe_bottleneck_findings", MetricType::Gauge,
             "Bottleneck and hotspot findings at the last evaluation, by kind and severity (/api/v1/bottlenecks).");
    std::array<std::array<std::uint64_t, 3>, analysis::kBottleneckKinds> n{};
    for (const auto& f : v.findings) ++n[static_cast<std::size_t>(f.kind)][static_cast<std::size_t>(severityRank(f.severity))];
    for (std::size_t k = 0; k < analysis::kBottleneckKinds; ++k)
        for (std::size_t s = 0; s < 3; ++s)
            w.sample("netprobe_bottleneck_findings",
                     {{"kind", analysis::toString(static_cast<analysis::BottleneckKind>(k))}, {"severity", kSeverities[s]}},
                     n[k][s]);
    w.family("netprobe_interface_utilisation_ratio", MetricType::Gauge,
             "Mean bits per second over the bottleneck window / the link's speed, per direction; monitored interfaces "
             "whose speed is known (not veth, tun, bridge).");
    for (const auto& i : v.interfaces) {
        w.sample("netprobe_interface_utilisation_ratio", {{"interface", i.interface}, {"direction", "ingress"}},
                 i.ingress_ratio);
        w.sample("netprobe_interface_utilisation_ratio", {{"interface", i.interface}, {"direction", "egress"}},
                 i.egress_ratio);
    }
    if (v.conntrack) {
        w.family("netprobe_conntrack_entries", MetricType::Gauge,
                 "Connection tracking entries of the agent's network namespace (nf_conntrack_count).");
        w.sample("netprobe_conntrack_entries", {}, v.conntrack_entries);
        w.family("netprobe_conntrack_entries_limit", MetricType::Gauge, "The conntrack table's limit (nf_conntrack_max).");
        w.sample("netprobe_conntrack_entries_limit", {}, v.conntrack_max);
    }
    return w.take();
}

}  // namespace netprobe::metrics
