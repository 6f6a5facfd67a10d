#include "metrics/json_api.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <ctime>
#include <set>
#include <tuple>

#include "netprobe/ebpf/cgroup_traffic.hpp"
#include "netprobe/analysis/diagnosis.hpp"
#include "netprobe/analysis/qos.hpp"
#include "netprobe/ebpf/types.hpp"
#include "netprobe/util/json_text.hpp"

namespace netprobe::metrics {

namespace {

template <class T>
std::optional<T> parseUnsigned(const std::string& s, T max) {
    unsigned long long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || v > max) return std::nullopt;
    return static_cast<T>(v);
}

util::Addr16 addrOf(const np_addr& a) { return std::bit_cast<util::Addr16>(a); }

}  // namespace

std::string rfc3339(collector::WallTime t) {
    using namespace std::chrono;
    auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    return buf;
}

nlohmann::json tcpFlagNames(std::uint8_t flags) {
    static constexpr const char* names[8] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"};
    auto out = nlohmann::json::array();
    for (int i = 0; i < 8; ++i)
        if (flags & (1u << i)) out.push_back(names[i]);
    return out;
}

// "invalid value ... for parameter ...": the 400 answer's text.
static std::string badValue(const std::string& k, const std::string& v, const std::string& why) {
    return "invalid value \"" + v + "\" for parameter \"" + k + "\": " + why;
}

// The parameters /api/v1/flows and /api/v1/connections share: src_ip, dst_ip, ip,
// src_port, dst_port, port, container, limit. False when k is none of them; err is set
// when the value is bad.
template <class Q>
bool parseSharedParam(const std::string& k, const std::string& v, Q& q, std::size_t max_limit, std::string& err) {
    if (k == "container") {
        const bool hex = !v.empty() && v.size() <= 64 &&
                         std::all_of(v.begin(), v.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
        if (!hex) err = badValue(k, v, "expected a container id or id prefix (lowercase hex, up to 64 digits)");
        else q.container = v;
        return true;
    }
    if (k == "src_ip" || k == "dst_ip" || k == "ip") {
        auto a = util::parseAddr(v);
        if (!a) err = badValue(k, v, "expected an IPv4 or IPv6 address");
        else (k == "src_ip" ? q.src_ip : k == "dst_ip" ? q.dst_ip : q.ip) = *a;
        return true;
    }
    if (k == "src_port" || k == "dst_port" || k == "port") {
        auto p = parseUnsigned<std::uint16_t>(v, 65535);
        if (!p) err = badValue(k, v, "expected a port number 0-65535");
        else (k == "src_port" ? q.src_port : k == "dst_port" ? q.dst_port : q.port) = *p;
        return true;
    }
    if (k == "limit") {
        auto l = parseUnsigned<std::size_t>(v, max_limit);
        if (!l || *l == 0) err = badValue(k, v, "expected a number from 1 to " + std::to_string(max_limit));
        else q.limit = *l;
        return true;
    }
    return false;
}

std::expected<FlowQuery, std::string> parseFlowQuery(const http::QueryParams& params,
                                                     std::size_t default_limit, std::size_t max_limit) {
    FlowQuery q;
    q.limit = default_limit;
    for (const auto& [k, v] : params) {
        std::string err;
        if (parseSharedParam(k, v, q, max_limit, err)) {
            if (!err.empty()) return std::unexpected(err);
        } else if (k == "interface") {
            q.interface = v;
        } else if (k == "direction") {
            if (v == "ingress" || v == "rx") q.direction = NP_DIR_INGRESS;
            else if (v == "egress" || v == "tx") q.direction = NP_DIR_EGRESS;
            else return std::unexpected(badValue(k, v, "expected ingress or egress"));
        } else if (k == "protocol") {
            auto p = util::parseProtocol(v);
            if (!p) return std::unexpected(badValue(k, v, "expected a protocol name (tcp, udp, icmp, icmpv6, ...) or number 0-255"));
            q.protocol = *p;
        } else if (k == "namespace") {
            if (v.empty()) return std::unexpected(badValue(k, v, "expected a namespace name"));
            q.ns = v;
        } else if (k == "pod") {
            const auto slash = v.find('/');
            if (v.empty() || slash == 0 || slash + 1 == v.size() || v.find('/', slash + 1) != std::string::npos)
                return std::unexpected(badValue(k, v, "expected a pod name or namespace/name"));
            q.pod = v;
        } else if (k == "encap") {
            auto e = ebpf::parseEncap(v);
            if (!e) return std::unexpected(badValue(k, v, "expected none, vxlan, geneve, ipip, ip6ip6, 6in4, 4in6 or gre"));
            q.encap = *e;
        } else if (k == "sort") {
            if (v == "bytes") q.sort = FlowQuery::Sort::Bytes;
            else if (v == "packets") q.sort = FlowQuery::Sort::Packets;
            else if (v == "rate") q.sort = FlowQuery::Sort::Rate;
            else if (v == "last_seen") q.sort = FlowQuery::Sort::LastSeen;
            else return std::unexpected(badValue(k, v, "expected bytes, packets, rate or last_seen"));
        } else {
            return std::unexpected("unknown parameter \"" + k +
                                   "\" (known: interface, direction, protocol, src_ip, dst_ip, ip, src_port, "
                                   "dst_port, port, namespace, pod, container, encap, sort, limit)");
        }
    }
    return q;
}

bool flowMatches(const FlowRecord& f, std::string_view interface, const FlowQuery& q) {
    const auto& k = f.key;
    if (q.interface && interface != *q.interface) return false;
    if (q.direction && k.direction != *q.direction) return false;
    if (q.protocol && k.proto != *q.protocol) return false;
    if (q.src_ip && addrOf(k.src_ip) != *q.src_ip) return false;
    if (q.dst_ip && addrOf(k.dst_ip) != *q.dst_ip) return false;
    if (q.ip && addrOf(k.src_ip) != *q.ip && addrOf(k.dst_ip) != *q.ip) return false;
    if (q.src_port && k.src_port != *q.src_port) return false;
    if (q.dst_port && k.dst_port != *q.dst_port) return false;
    if (q.port && k.src_port != *q.port && k.dst_port != *q.port) return false;
    if (q.encap && k.encap != *q.encap) return false;
    return true;
}

void appendJsonString(std::string& out, std::string_view v) { util::appendJsonString(out, v); }

namespace {

void appendUint(std::string& out, std::uint64_t v) {
    char buf[24];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, p);
}

void appendDouble(std::string& out, double v) {
    char buf[32];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, p);
}

}  // namespace

// Written straight into a string, not through nlohmann::json: a 10k-flow answer
// as a json tree cost ~28 MiB of transient heap (docs/benchmarks.md).
std::string flowsJson(const Views& v, const FlowQuery& q, const Attribution* attribution) {
    const auto& s = *v.snapshot;
    static const analysis::FlowView kNoFlows;
    const analysis::FlowView& fv = v.flows ? *v.flows : kNoFlows;
    std::vector<std::uint32_t> sel;  // indexes into fv.records (a record is built when read)
    const analysis::ConnectionIndex* conns = attribution && v.groups ? &v.groups->connections : nullptr;
    std::map<std::uint64_t, std::optional<ContainerLabels>> containers;  // cgroup id -> labels, per answer
    auto containerOf = [&](std::uint64_t cg) -> const ContainerLabels* {
        if (!cg) return nullptr;
        auto it = containers.find(cg);
        if (it == containers.end()) it = containers.emplace(cg, attribution->container(cg)).first;
        return it->second && !it->second->container_id.empty() ? &*it->second : nullptr;
    };
    sel.reserve(fv.records.size());  // never regrows (address space beyond what is written)
    for (std::size_t idx = 0; idx < fv.records.size(); ++idx) {
        const FlowRecord f = fv.records[idx];
        if (!flowMatches(f, q.interface ? fv.interfaceName(f.key.ifindex) : std::string(), q)) continue;
        if (q.ns || q.pod) {
            if (!attribution) continue;
            auto l = attribution->flow(f.key);
            if (q.ns && l.src_namespace != *q.ns && l.dst_namespace != *q.ns) continue;
            if (q.pod) {
                const auto slash = q.pod->find('/');
                auto is = [&](const std::string& ns, const std::string& pod) {
                    if (pod.empty()) return false;
                    return slash == std::string::npos ? pod == *q.pod
                                                      : ns == q.pod->substr(0, slash) && pod == q.pod->substr(slash + 1);
                };
                if (!is(l.src_namespace, l.src_pod) && !is(l.dst_namespace, l.dst_pod)) continue;
            }
        }
        if (q.container) {
            if (!conns || f.key.proto != 6) continue;
            const auto src = addrOf(f.key.src_ip), dst = addrOf(f.key.dst_ip);
            const auto* sc = containerOf(conns->cgroupOf(src, f.key.src_port, dst, f.key.dst_port));
            const auto* dc = containerOf(conns->cgroupOf(dst, f.key.dst_port, src, f.key.src_port));
            if (!(sc && sc->container_id.starts_with(*q.container)) && !(dc && dc->container_id.starts_with(*q.container)))
                continue;
        }
        sel.push_back(static_cast<std::uint32_t>(idx));
    }
    const auto& recs = fv.records;
    auto by = [&](auto proj) {
        std::stable_sort(sel.begin(), sel.end(), [&](std::uint32_t a, std::uint32_t b) { return proj(a) > proj(b); });
    };
    switch (q.sort) {
        case FlowQuery::Sort::Bytes: by([&](std::uint32_t i) { return recs.storedAt(i).bytes; }); break;
        case FlowQuery::Sort::Packets: by([&](std::uint32_t i) { return recs.storedAt(i).packets; }); break;
        case FlowQuery::Sort::Rate: break;  // snapshot order: interval bytes
        case FlowQuery::Sort::LastSeen: by([&](std::uint32_t i) { return recs.storedAt(i).last_seen_ns; }); break;
    }
    const double secs = s.interval_seconds;
    const std::size_t n = std::min(sel.size(), q.limit);
    std::string out;
    out.reserve(128 + n * 420);
    out += "{\"collected_at\":";
    appendJsonString(out, rfc3339(s.taken_at));
    out += ",\"total\":";
    appendUint(out, sel.size());
    out += ",\"returned\":";
    appendUint(out, n);
    out += ",\"flows\":[";
    static constexpr const char* flag_names[8] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"};
    for (std::size_t i = 0; i < n; ++i) {
        const FlowRecord f = recs[sel[i]];
        if (i) out += ',';
        out += "{\"src_ip\":";
        appendJsonString(out, util::formatAddr(addrOf(f.key.src_ip)));
        out += ",\"dst_ip\":";
        appendJsonString(out, util::formatAddr(addrOf(f.key.dst_ip)));
        out += ",\"src_port\":";
        appendUint(out, f.key.src_port);
        out += ",\"dst_port\":";
        appendUint(out, f.key.dst_port);
        out += ",\"protocol\":";
        appendJsonString(out, util::protocolName(f.key.proto));
        out += ",\"ip_version\":";
        appendUint(out, f.key.family);
        out += ",\"encap\":";
        appendJsonString(out, ebpf::encapName(f.key.encap));
        out += ",\"packets\":";
        appendUint(out, f.packets);
        out += ",\"bytes\":";
        appendUint(out, f.bytes);
        out += ",\"packets_rate\":";
        appendDouble(out, secs > 0 ? static_cast<double>(f.interval_packets) / secs : 0.0);
        out += ",\"bytes_rate\":";
        appendDouble(out, secs > 0 ? static_cast<double>(f.interval_bytes) / secs : 0.0);
        out += ",\"interface\":";
        appendJsonString(out, fv.interfaceName(f.key.ifindex));
        out += ",\"ifindex\":";
        appendUint(out, f.key.ifindex);
        out += ",\"direction\":";
        appendJsonString(out, ebpf::directionName(f.key.direction));
        out += ",\"first_seen\":";
        appendJsonString(out, rfc3339(s.wallOf(f.first_seen_ns)));
        out += ",\"last_seen\":";
        appendJsonString(out, rfc3339(s.wallOf(f.last_seen_ns)));
        out += ",\"tcp_flags\":[";
        bool first = true;
        for (int b = 0; b < 8; ++b) {
            if (!(f.tcp_flags & (1u << b))) continue;
            if (!first) out += ',';
            first = false;
            appendJsonString(out, flag_names[b]);
        }
        out += ']';
        if (f.key.proto == 17 && v.qos) {
            if (const auto* j = v.qos->udpJitter(f.key)) {
                out += ",\"udp_jitter\":{\"jitter_seconds\":";
                appendDouble(out, j->jitter_seconds);
                out += ",\"mean_deviation_seconds\":";
                appendDouble(out, j->mean_deviation_seconds);
                out += ",\"interarrival_seconds\":";
                appendDouble(out, j->interarrival_seconds);
                out += ",\"samples\":";
                appendUint(out, j->samples);
                out += '}';
            }
        }
        if (attribution) {
            const auto l = attribution->flow(f.key);
            auto put = [&](const char* name, const std::string& v) {
                if (v.empty()) return;
                out += ",\"";
                out += name;
                out += "\":";
                appendJsonString(out, v);
            };
            put("src_namespace", l.src_namespace);
            put("src_pod", l.src_pod);
            put("src_workload", l.src_workload);
            put("dst_namespace", l.dst_namespace);
            put("dst_pod", l.dst_pod);
            put("dst_workload", l.dst_workload);
            put("dst_service", l.dst_service);
            if (f.key.proto == 6 && conns && !conns->empty()) {
                const auto src = addrOf(f.key.src_ip), dst = addrOf(f.key.dst_ip);
                const auto* sc = containerOf(conns->cgroupOf(src, f.key.src_port, dst, f.key.dst_port));
                const auto* dc = containerOf(conns->cgroupOf(dst, f.key.dst_port, src, f.key.src_port));
                // container_id: the sender's container, else the receiver's
                if (sc || dc) put("container_id", (sc ? sc : dc)->container_id);
                if (sc) {
                    put("src_container_id", sc->container_id);
                    put("src_pod_uid", sc->pod_uid);
                }
                if (dc) {
                    put("dst_container_id", dc->container_id);
                    put("dst_pod_uid", dc->pod_uid);
                }
            }
        }
        out += '}';
    }
    out += "]}";
    return out;
}

nlohmann::json interfacesJson(const collector::Snapshot& s, const Attribution* attribution) {
    auto arr = nlohmann::json::array();
    std::map<std::uint32_t, analysis::InterfaceLink> links;
    if (attribution)
        for (auto& l : attribution->interfaceLinks()) links.emplace(l.ifindex, std::move(l));
    for (const auto& i : s.interfaces) {
        nlohmann::json peer = nullptr;
        if (auto it = links.find(i.index); it != links.end() && it->second.name == i.name) {
            const auto& l = it->second;
            auto addrs = nlohmann::json::array();
            for (const auto& a : l.peer_addresses) addrs.push_back(util::formatAddr(a));
            peer = {
                {"kind", l.kind},
                {"netnsid", l.link_netnsid},
                {"netns_inode", l.peer_netns_inode ? nlohmann::json(l.peer_netns_inode) : nlohmann::json(nullptr)},
                {"netns_name", l.peer_netns_name.empty() ? nlohmann::json(nullptr) : nlohmann::json(l.peer_netns_name)},
                {"ifindex", l.peer_ifindex},
                {"name", l.peer_name.empty() ? nlohmann::json(nullptr) : nlohmann::json(l.peer_name)},
                {"addresses", std::move(addrs)},
            };
            if (!l.pod_name.empty()) {
                peer["pod_namespace"] = l.pod_namespace;
                peer["pod"] = l.pod_name;
                peer["pod_uid"] = l.pod_uid;
            }
        }
        arr.push_back({
            {"name", i.name},
            {"index", i.index},
            {"ingress_packets", i.ingress_packets},
            {"ingress_bytes", i.ingress_bytes},
            {"egress_packets", i.egress_packets},
            {"egress_bytes", i.egress_bytes},
            {"ingress_packets_rate", i.ingress_packets_rate},
            {"ingress_bytes_rate", i.ingress_bytes_rate},
            {"egress_packets_rate", i.egress_packets_rate},
            {"egress_bytes_rate", i.egress_bytes_rate},
            {"xdp_packets", i.xdp_packets},
            {"xdp_bytes", i.xdp_bytes},
            {"tc_mode", i.tc_mode},
            {"xdp_mode", i.xdp_mode},
            {"last_updated", rfc3339(i.last_updated)},
        });
        if (attribution) arr.back()["peer"] = std::move(peer);
        // The device's own counters at this collection (rtnl_link_stats64): errors and drops.
        if (s.link_counters) {
            nlohmann::json k = nullptr;
            if (const auto* c = s.link_counters->find(i.index)) {
                k = {{"rx_packets", c->rx_packets}, {"tx_packets", c->tx_packets}, {"rx_bytes", c->rx_bytes},
                     {"tx_bytes", c->tx_bytes}, {"multicast", c->multicast}};
                for (const auto& f : ebpf::kLinkErrorCounters) k[f.name] = c->*(f.field);
            }
            arr.back()["kernel"] = std::move(k);
        }
    }
    return {{"collected_at", rfc3339(s.taken_at)}, {"interfaces", std::move(arr)}};
}

std::expected<ConnectionQuery, std::string> parseConnectionQuery(const http::QueryParams& params,
                                                                 std::size_t default_limit, std::size_t max_limit) {
    ConnectionQuery q;
    q.limit = default_limit;
    for (const auto& [k, v] : params) {
        std::string err;
        if (parseSharedParam(k, v, q, max_limit, err)) {
            if (!err.empty()) return std::unexpected(err);
        } else if (k == "state") {
            if (v == "all") q.state = ConnectionQuery::State::All;
            else if (v == "open") q.state = ConnectionQuery::State::Open;
            else if (v == "closed") q.state = ConnectionQuery::State::Closed;
            else return std::unexpected(badValue(k, v, "expected open, closed or all"));
        } else if (k == "family" || k == "ip_version") {
            if (v == "4" || v == "ipv4") q.family = 4;
            else if (v == "6" || v == "ipv6") q.family = 6;
            else return std::unexpected(badValue(k, v, "expected 4 or 6"));
        } else if (k == "pid") {
            auto p = parseUnsigned<std::uint32_t>(v, 0xffffffffu);
            if (!p) return std::unexpected(badValue(k, v, "expected a process id"));
            q.pid = *p;
        } else {
            return std::unexpected("unknown parameter \"" + k +
                                   "\" (known: state, family, src_ip, dst_ip, ip, src_port, dst_port, port, pid, "
                                   "container, limit)");
        }
    }
    return q;
}

bool connectionMatches(const ebpf::Connection& c, const ConnectionQuery& q) {
    if (q.state == ConnectionQuery::State::Open && !c.open) return false;
    if (q.state == ConnectionQuery::State::Closed && c.open) return false;
    if (q.family && c.family != *q.family) return false;
    if (q.src_ip && c.src_ip != *q.src_ip) return false;
    if (q.dst_ip && c.dst_ip != *q.dst_ip) return false;
    if (q.ip && c.src_ip != *q.ip && c.dst_ip != *q.ip) return false;
    if (q.src_port && c.src_port != *q.src_port) return false;
    if (q.dst_port && c.dst_port != *q.dst_port) return false;
    if (q.port && c.src_port != *q.port && c.dst_port != *q.port) return false;
    if (q.pid && c.pid != *q.pid) return false;
    return true;
}

namespace {

// Text exactly as nlohmann::json::dump(-1, ' ', false, error_handler_t::replace) writes
// the value: plain ASCII directly, anything else (escapes, kernel bytes that are not
// UTF-8: U+FFFD) through the library's own serializer for that one string.
void appendDumpString(std::string& out, std::string_view v) {
    const bool plain = std::all_of(v.begin(), v.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
    });
    if (plain) {
        out += '"';
        out += v;
        out += '"';
        return;
    }
    out += nlohmann::json(std::string(v)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void appendDumpDouble(std::string& out, double v) { out += nlohmann::json(v).dump(); }

// ,"key": for the members of one object, written in key order (nlohmann's objects are
// sorted maps: the order its dump had).
void member(std::string& out, const char* k) {
    if (out.back() != '{') out += ',';
    out += '"';
    out += k;
    out += "\":";
}

}  // namespace

// Written straight into one string (the nlohmann document of 10k connections and its dump
// took 34 MiB at the peak, this 5 for a 4.3 MB answer): the same bytes as the document's dump.
std::string connectionsJson(const collector::Snapshot& s, const ConnectionQuery& q, const Attribution* attribution) {
    std::map<std::uint64_t, std::optional<ContainerLabels>> containers;  // cgroup id -> labels, per answer
    std::size_t total = 0, returned = 0;
    const bool enabled = s.stack && s.stack->features.connections;
    std::map<std::uint32_t, std::string> veth_of_netns;  // netns inode -> host-side veth
    if (attribution && enabled)
        for (const auto& l : attribution->interfaceLinks())
            if (l.peer_netns_inode) veth_of_netns.emplace(l.peer_netns_inode, l.name);
    std::string out;  // members in key order: collected_at, connections, enabled, returned, total
    out += "{\"collected_at\":";
    appendDumpString(out, rfc3339(s.taken_at));
    out += ",\"connections\":[";
    if (enabled) {
        auto labelsOf = [&](std::uint64_t cg) -> const std::optional<ContainerLabels>& {
            auto it = containers.find(cg);
            if (it == containers.end()) it = containers.emplace(cg, attribution->container(cg)).first;
            return it->second;
        };
        out.reserve(out.size() + 96 + std::min(q.limit, s.stack->connections.size()) * 480);
        for (const auto& c : s.stack->connections) {
            if (!connectionMatches(c, q)) continue;
            if (q.container) {
                if (!attribution || !c.cgroup_id) continue;
                const auto& l = labelsOf(c.cgroup_id);
                if (!l || l->container_id.empty() || !l->container_id.starts_with(*q.container)) continue;
            }
            ++total;
            if (returned >= q.limit) continue;
            ++returned;
            const ContainerLabels* cl = nullptr;
            if (attribution && c.cgroup_id)
                if (const auto& l = labelsOf(c.cgroup_id)) cl = &*l;
            const auto veth = veth_of_netns.find(c.netns);
            auto str = [&](const char* k, std::string_view v) {
                member(out, k);
                appendDumpString(out, v);
            };
            auto num = [&](const char* k, std::uint64_t v) {
                member(out, k);
                util::appendJsonUint(out, v);
            };
            auto stamp = [&](const char* k, collector::WallTime t) {
                member(out, k);
                if (t == collector::WallTime{}) out += "null";
                else appendDumpString(out, rfc3339(t));
            };
            if (returned > 1) out += ',';
            out += '{';
            num("bytes_received", c.bytes_received);
            num("bytes_sent", c.bytes_sent);
            num("cgroup_id", c.cgroup_id);
            if (cl) str("cgroup_path", cl->cgroup_path);
            member(out, "comm");
            if (c.comm.empty()) out += "null";
            else appendDumpString(out, c.comm);
            if (cl && !cl->container_id.empty()) str("container_id", cl->container_id);
            num("cookie", c.cookie);
            str("direction", c.origin == NP_CONN_ACTIVE ? "active" : c.origin == NP_CONN_PASSIVE ? "passive" : "unknown");
            str("dst_ip", util::formatAddr(c.dst_ip));
            num("dst_port", c.dst_port);
            stamp("end", c.end);
            stamp("established", c.established);
            member(out, "failed");
            out += c.failed ? "true" : "false";
            if (veth != veth_of_netns.end()) str("host_interface", veth->second);
            num("ip_version", c.family);
            if (cl && !cl->pod.empty()) str("namespace", cl->ns);
            num("netns", c.netns);
            member(out, "open");
            out += c.open ? "true" : "false";
            member(out, "pid");
            if (c.pid) util::appendJsonUint(out, c.pid);
            else out += "null";
            if (cl && !cl->pod.empty()) str("pod", cl->pod);
            if (cl && !cl->pod_uid.empty()) str("pod_uid", cl->pod_uid);
            num("retransmits", c.retransmits);
            member(out, "rtt_seconds");
            if (c.srtt_us) appendDumpDouble(out, static_cast<double>(c.srtt_us) / 1e6);
            else out += "null";
            num("snd_cwnd", c.snd_cwnd);
            str("src_ip", util::formatAddr(c.src_ip));
            num("src_port", c.src_port);
            str("start", rfc3339(c.start));
            str("state", ebpf::tcpStateName(c.tcp_state));
            if (cl && !cl->pod.empty()) str("workload", cl->workload);
            out += '}';
        }
    }
    out += "],\"enabled\":";
    out += enabled ? "true" : "false";
    out += ",\"returned\":";
    util::appendJsonUint(out, returned);
    out += ",\"total\":";
    util::appendJsonUint(out, total);
    out += '}';
    return out;
}

std::string diagnosisJson(const analysis::DiagnosisView* v) {
    nlohmann::json j;
    j["enabled"] = v != nullptr;
    auto arr = nlohmann::json::array();
    if (v) {
        j["evaluated_at"] = rfc3339(v->evaluated_at);
        j["window_seconds"] = v->window_seconds;
        for (const auto& f : v->findings) {
            auto ev = nlohmann::json::array();
            for (const auto& e : f.evidence) ev.push_back({{"name", e.name}, {"value", e.value}, {"unit", e.unit}});
            arr.push_back({{"rule", f.rule}, {"subject", f.subject}, {"severity", f.severity}, {"title", f.title},
                           {"since", rfc3339(f.since)}, {"evidence", std::move(ev)}, {"cause", f.cause},
                           {"fix", f.fix}, {"query", f.query}});
        }
    }
    j["count"] = arr.size();
    j["findings"] = std::move(arr);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace netprobe::metrics
