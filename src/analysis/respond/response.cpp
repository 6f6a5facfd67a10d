#include <netprobe/analysis/respond/response.hpp>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include <netprobe/analysis/security/incidents.hpp>

namespace netprobe::analysis::respond {

std::string_view toString(Mode m) {
    switch (m) {
    case Mode::Off: return "off";
    case Mode::DryRun: return "dry-run";
    case Mode::On: return "on";
    }
    return "off";
}

std::string_view toString(Action a) { return a == Action::Isolate ? "isolate" : "quarantine"; }

namespace {

// FNV-1a, 64 bit: stable across runs and builds (names must not change on a restart).
struct Fnv {
    std::uint64_t h = 0xcbf29ce484222325ull;
    void add(std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 0x100000001b3ull;
        }
        h ^= 0xff;  // separator: ("ab","c") != ("a","bc")
        h *= 0x100000001b3ull;
    }
};

std::string secondsRfc3339(WallTime t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

std::string cidrOf(const util::Addr16& a) {
    return util::formatAddr(a) + (util::isV4Mapped(a) ? "/32" : "/128");
}

bool configured(const ResponseConfig& cfg, security::EventType t) {
    return std::find(cfg.events.begin(), cfg.events.end(), t) != cfg.events.end();
}

}  // namespace

std::string policyName(Action a, const std::string& ns, const std::map<std::string, std::string>& selector) {
    Fnv f;
    f.add(ns);
    for (const auto& [k, v] : selector) {
        f.add(k);
        f.add(v);
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
    return "netprobe-" + std::string(toString(a)) + "-" + std::string(hex, 8);
}

std::vector<Request> planFor(const security::SecurityEvent& e, const ResponseConfig& cfg, const PodLookup& pods,
                             const Initiated& initiated) {
    std::vector<Request> out;
    if (cfg.mode == Mode::Off || !pods || !configured(cfg, e.type)) return out;
    if (static_cast<int>(e.severity) < static_cast<int>(cfg.min_severity)) return out;

    // The attacker and the pods it targets, by event type.
    std::vector<util::Addr16> attackers;
    std::vector<util::Addr16> victims;
    bool outbound_intel = false;
    if (e.type == security::EventType::ThreatIntelMatch) {
        auto dir = e.evidence.find("direction");
        outbound_intel = dir != e.evidence.end() && std::holds_alternative<std::string>(dir->second) &&
                         std::get<std::string>(dir->second) == "outbound";
        // src: the indicator inbound, the local end outbound (see IntelAnalyzer)
        if (e.src && e.dst) {
            attackers.push_back(*e.src);
            victims.push_back(*e.dst);
        }
    } else if (security::floodType(e.type)) {
        if (e.dst) victims.push_back(*e.dst);
        for (const auto& s : e.top_sources) {
            if (attackers.size() >= cfg.flood_sources) break;
            attackers.push_back(s.addr);
        }
    } else if (security::sourceBased(e.type)) {
        if (e.src) attackers.push_back(*e.src);
        victims = e.targets;
        if (e.dst && std::find(victims.begin(), victims.end(), *e.dst) == victims.end()) victims.push_back(*e.dst);
    } else {
        return out;  // a surge or a new peer names no attacker
    }

    // A pod of this node that attacks: quarantined (its own outbound intel hit, a scan from it).
    if (cfg.quarantine) {
        const util::Addr16* self = nullptr;
        if (outbound_intel && e.src && e.dst && initiated && initiated(*e.src, *e.dst)) self = &*e.src;
        else if (security::sourceBased(e.type) && e.src) self = &*e.src;
        if (self) {
            if (auto p = pods(*self); p && p->local && !p->labels.empty()) {
                Request r;
                r.action = Action::Quarantine;
                r.ns = p->ns;
                r.selector = p->labels;
                r.pod = p->ns + "/" + p->name;
                r.pod_ip = *self;
                out.push_back(std::move(r));
                return out;
            }
        }
    }
    if (outbound_intel) return out;  // the remote end is the indicator: nothing of ours to isolate

    std::vector<std::pair<util::Addr16, bool>> atk;
    for (const auto& a : attackers) {
        auto p = pods(a);
        atk.emplace_back(a, p.has_value());
    }
    if (atk.empty()) return out;
    for (const auto& v : victims) {
        auto p = pods(v);
        if (!p || !p->local || p->labels.empty()) continue;
        // one request per selector: replicas targeted together make one policy
        auto it = std::find_if(out.begin(), out.end(),
                               [&](const Request& r) { return r.ns == p->ns && r.selector == p->labels; });
        if (it != out.end()) continue;
        Request r;
        r.action = Action::Isolate;
        r.ns = p->ns;
        r.selector = p->labels;
        r.pod = p->ns + "/" + p->name;
        r.pod_ip = v;
        for (const auto& [a, is_pod] : atk) {
            if (a == v) continue;  // a pod does not isolate itself
            r.attackers.push_back(a);
            r.attacker_is_pod.push_back(is_pod);
        }
        if (!r.attackers.empty()) out.push_back(std::move(r));
    }
    return out;
}

nlohmann::json manifest(const PolicySpec& p) {
    using nlohmann::json;
    json labels = {{std::string(kManagedByLabel), std::string(kManagedByValue)},
                   {std::string(kActionLabel), std::string(toString(p.action))}};
    if (!p.node.empty()) labels[std::string(kNodeLabel)] = p.node;
    std::string ids;
    for (auto id : p.events) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    json annotations = {{std::string(kExpiresAnnotation), secondsRfc3339(p.expires)},
                        {"netprobe.io/events", ids},
                        {"netprobe.io/event-types", p.event_types},
                        {"netprobe.io/pod", p.pod}};
    json spec;
    spec["podSelector"] = {{"matchLabels", p.selector}};
    if (p.action == Action::Isolate) {
        std::vector<std::string> v4, v6;
        std::string list;
        bool any_pod = false;
        for (const auto& a : p.attackers) {
            (util::isV4Mapped(a.addr) ? v4 : v6).push_back(cidrOf(a.addr));
            list += (list.empty() ? "" : ",") + util::formatAddr(a.addr);
            any_pod = any_pod || a.is_pod;
        }
        annotations["netprobe.io/attackers"] = list;
        json b4 = {{"cidr", "0.0.0.0/0"}}, b6 = {{"cidr", "::/0"}};
        if (!v4.empty()) b4["except"] = v4;
        if (!v6.empty()) b6["except"] = v6;
        json from = json::array({{{"ipBlock", b4}}, {{"ipBlock", b6}}});
        // Every pod too, unless an attacker is a pod (a namespaceSelector cannot leave one out):
        // where ipBlock does not match pod addresses (Cilium) the pods are still admitted.
        if (!any_pod) from.push_back({{"namespaceSelector", json::object()}});
        spec["policyTypes"] = {"Ingress"};
        spec["ingress"] = json::array({{{"from", from}}});
    } else {
        spec["policyTypes"] = {"Ingress", "Egress"};
        spec["ingress"] = json::array();
        spec["egress"] = json::array({{{"ports", json::array({{{"protocol", "UDP"}, {"port", 53}},
                                                               {{"protocol", "TCP"}, {"port", 53}}})}}});
    }
    return {{"apiVersion", "networking.k8s.io/v1"},
            {"kind", "NetworkPolicy"},
            {"metadata", {{"name", p.name}, {"namespace", p.ns}, {"labels", labels}, {"annotations", annotations}}},
            {"spec", spec}};
}

namespace {

void emit(YAML::Emitter& out, const nlohmann::json& j) {
    if (j.is_object()) {
        out << YAML::BeginMap;
        for (const auto& [k, v] : j.items()) {
            out << YAML::Key << k << YAML::Value;
            emit(out, v);
        }
        out << YAML::EndMap;
    } else if (j.is_array()) {
        out << YAML::BeginSeq;
        for (const auto& v : j) emit(out, v);
        out << YAML::EndSeq;
    } else if (j.is_string()) {
        const auto& s = j.get_ref<const std::string&>();
        // quoted when YAML would read it as something else (a number, a bool, empty)
        out << (s.empty() || s.find_first_not_of("0123456789.:") == std::string::npos ? YAML::DoubleQuoted
                                                                                      : YAML::Auto)
            << s;
    } else if (j.is_boolean()) {
        out << j.get<bool>();
    } else if (j.is_number_unsigned()) {
        out << j.get<std::uint64_t>();
    } else if (j.is_number_integer()) {
        out << j.get<std::int64_t>();
    } else if (j.is_number_float()) {
        out << j.get<double>();
    } else {
        out << YAML::Null;
    }
}

}  // namespace

std::string manifestYaml(const PolicySpec& p) {
    YAML::Emitter out;
    out.SetIndent(2);
    out.SetSeqFormat(YAML::Block);
    emit(out, manifest(p));
    return std::string(out.c_str()) + "\n";
}

std::uint64_t contentHash(const PolicySpec& p) {
    Fnv f;
    f.add(manifest(p).dump());
    return f.h;
}

}  // namespace netprobe::analysis::respond
