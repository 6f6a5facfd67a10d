#include <netprobe/metrics/qos.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/qos.hpp>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/metrics/topology.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::metrics {
namespace {

using analysis::Conversation;
using analysis::QosConversation;
using ConvKey = analysis::TcpConversationKey;

// What an edge or a service adds up over the window.
struct Agg {
    std::string client, server;
    std::uint16_t port = 0;
    std::size_t conversations = 0;
    std::uint64_t bytes_out = 0, bytes_in = 0, packets_out = 0, packets_in = 0;
    std::uint64_t retrans_client = 0, retrans_server = 0, opened = 0, failed = 0;
    std::uint64_t drops_to_server = 0, drops_to_client = 0;
    std::map<std::uint32_t, std::uint64_t> drop_reasons;
    double srtt_sum_ms = 0;
    std::size_t srtt_n = 0;
    std::string l7_protocol;
    std::uint64_t requests = 0, errors = 0;
    std::array<std::uint64_t, analysis::kTopologyLatencyBuckets.size() + 1> latency{};
    std::vector<double> rtt_ms, server_ms, client_ms, delta_ms;

    void add(const analysis::ConversationTotals& t) {
        ++conversations;
        bytes_out += t.bytes_out;
        bytes_in += t.bytes_in;
        packets_out += t.packets_out;
        packets_in += t.packets_in;
        retrans_client += t.retrans_client;
        retrans_server += t.retrans_server;
        drops_to_server += t.drops_to_server;
        drops_to_client += t.drops_to_client;
        for (const auto& [r, n] : t.drop_reasons) drop_reasons[r] += n;
        opened += t.opened;
        failed += t.failed;
        if (t.rtt_ms > 0) {
            srtt_sum_ms += t.rtt_ms;
            ++srtt_n;
        }
        if (t.l7) {
            if (l7_protocol.empty()) l7_protocol = t.l7_protocol;
            requests += t.requests;
            errors += t.errors;
            for (std::size_t i = 0; i < latency.size(); ++i) latency[i] += t.latency[i];
        }
    }
    void add(const analysis::RttSample& r) {
        rtt_ms.push_back(r.rttUs() / 1000.0);
        server_ms.push_back(r.server_us / 1000.0);
        client_ms.push_back(r.client_us / 1000.0);
        if (r.delta_us != analysis::RttSample::kNoDelta) delta_ms.push_back(r.delta_us / 1000.0);
    }
};

double ratio(std::uint64_t a, std::uint64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; }

double mean(const std::vector<double>& v) {
    if (v.empty()) return 0;
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
}

nlohmann::json figures(Agg& a, double window_seconds, const std::map<std::uint32_t, std::string>& reason_names) {
    nlohmann::json o = {{"conversations", a.conversations},
                        {"bytes_out", a.bytes_out},
                        {"bytes_in", a.bytes_in},
                        {"packets_out", a.packets_out},
                        {"packets_in", a.packets_in},
                        {"bytes_per_second", static_cast<double>(a.bytes_out + a.bytes_in) / window_seconds},
                        {"connections_opened", a.opened},
                        {"connections_failed", a.failed},
                        {"handshakes", a.rtt_ms.size()}};
    if (!a.rtt_ms.empty()) {
        std::vector<double> v = a.rtt_ms;
        o["rtt_ms"] = {{"min", *std::min_element(v.begin(), v.end())},
                       {"p50", analysis::quantileOf(v, 0.5)},
                       {"p90", analysis::quantileOf(v, 0.9)},
                       {"p99", analysis::quantileOf(v, 0.99)},
                       {"max", v.back()},
                       {"mean", mean(v)}};
        o["server_side_rtt_ms_p50"] = analysis::quantileOf(a.server_ms, 0.5);
        o["client_side_rtt_ms_p50"] = analysis::quantileOf(a.client_ms, 0.5);
    }
    if (!a.delta_ms.empty()) o["jitter_ms"] = mean(a.delta_ms);
    if (a.srtt_n) o["srtt_ms"] = a.srtt_sum_ms / static_cast<double>(a.srtt_n);
    o["retransmits_client"] = a.retrans_client;
    o["retransmits_server"] = a.retrans_server;
    nlohmann::json by_reason = nlohmann::json::object();
    for (const auto& [r, n] : a.drop_reasons) {
        auto name = reason_names.find(r);
        by_reason[name != reason_names.end() ? name->second : std::to_string(r)] = n;
    }
    o["drops"] = {{"client_to_server", a.drops_to_server},
                  {"server_to_client", a.drops_to_client},
                  {"by_reason", std::move(by_reason)}};
    o["loss_ratio"] = {{"client_to_server", ratio(a.retrans_client, a.packets_out)},
                       {"server_to_client", ratio(a.retrans_server, a.packets_in)},
                       {"total", ratio(a.retrans_client + a.retrans_server, a.packets_out + a.packets_in)}};
    if (!a.l7_protocol.empty()) {
        o["l7"] = {{"protocol", a.l7_protocol},
                   {"requests", a.requests},
                   {"errors", a.errors},
                   {"error_rate", ratio(a.errors, a.requests)},
                   {"p50_seconds", analysis::latencyQuantile(a.latency, 0.5)},
                   {"p99_seconds", analysis::latencyQuantile(a.latency, 0.99)}};
    }
    return o;
}


}  // namespace

std::expected<QosQuery, std::string> parseQosQuery(const std::vector<std::pair<std::string, std::string>>& params) {
    // The topology's parameters and checks, less those QoS has no use for (segment
    // grouping, protocol, format); its own defaults.
    bool group_by = false, limit = false;
    for (const auto& [k, v] : params) {
        if (k != "window" && k != "group_by" && k != "namespace" && k != "limit")
            return std::unexpected("unknown parameter \"" + k + "\" (known: window, group_by, namespace, limit)");
        if (k == "group_by" && (v == "segment" || !parseTopologyQuery({{k, v}})))
            return std::unexpected("bad value \"" + v + "\" for parameter \"" + k +
                                   "\": expected host, workload, namespace, pod, container, process or service");
        group_by |= k == "group_by";
        limit |= k == "limit";
    }
    auto t = parseTopologyQuery(params);
    if (!t) return std::unexpected(t.error());
    if (t->source != "local") return std::unexpected("bad value \"" + t->source + "\" for parameter \"source\": QoS is per node");
    QosQuery q;
    q.window_seconds = t->window_seconds;
    if (group_by) q.group_by = t->group_by;
    q.ns = t->ns;
    if (limit) q.limit = t->limit;
    return q;
}

std::string qosJson(const analysis::TopologyView* topology, const analysis::QosView* qos, const QosQuery& q,
                    const analysis::FlowView* flows) {
    nlohmann::json j;
    j["enabled"] = qos != nullptr;
    if (!qos) return j.dump();
    std::size_t window_slots = 1;
    double window_seconds = static_cast<double>(q.window_seconds);
    if (topology) {
        window_slots = analysis::windowSlots(*topology, q.window_seconds);
        window_seconds = analysis::windowSeconds(*topology, window_slots);
    }
    window_seconds = std::min(window_seconds, static_cast<double>(qos->window.count()));

    using EdgeKey = std::tuple<std::string, std::string, std::uint16_t>;
    std::map<EdgeKey, Agg> edges;
    std::map<std::pair<std::string, std::uint16_t>, Agg> services;
    auto edgeOf = [&](const std::string& a, const std::string& b, std::uint16_t port) -> Agg& {
        auto& e = edges[{a, b, port}];
        e.client = a;
        e.server = b;
        e.port = port;
        return e;
    };
    auto serviceOf = [&](const std::string& b, std::uint16_t port) -> Agg& {
        auto& s = services[{b, port}];
        s.server = b;
        s.port = port;
        return s;
    };
    const auto topo = topology ? analysis::tcpConversations(*topology) : std::map<ConvKey, const Conversation*>{};
    if (topology) {
        for (const auto& [_, c] : topo) {
            if (!q.ns.empty() && c->client.ns != q.ns && c->server.ns != q.ns) continue;
            auto t = analysis::totals(*c, *topology, window_slots);
            if (t.packets_out + t.packets_in + t.opened + t.requests == 0) continue;
            const std::string a = topologyNodeId(c->client, q.group_by), b = topologyNodeId(c->server, q.group_by);
            edgeOf(a, b, c->port).add(t);
            serviceOf(b, c->port).add(t);
        }
    }
    const std::uint64_t window_ns = static_cast<std::uint64_t>(window_seconds * 1e9);
    const std::uint64_t oldest = qos->now_ns > window_ns ? qos->now_ns - window_ns : 0;
    for (const auto& cp : qos->conversations) {
        const QosConversation& c = *cp;
        std::string a, b;
        auto t = topo.find(ConvKey{c.client, c.server, c.port});
        if (t != topo.end()) {
            if (!q.ns.empty() && t->second->client.ns != q.ns && t->second->server.ns != q.ns) continue;
            a = topologyNodeId(t->second->client, q.group_by);
            b = topologyNodeId(t->second->server, q.group_by);
        } else {
            if (!q.ns.empty()) continue;
            a = util::formatAddr(c.client);
            b = util::formatAddr(c.server);
        }
        Agg* e = nullptr;
        Agg* s = nullptr;
        for (const auto& r : c.samples) {
            if (r.mono_ns < oldest) continue;
            if (!e) {
                e = &edgeOf(a, b, c.port);
                s = &serviceOf(b, c.port);
            }
            e->add(r);
            s->add(r);
        }
    }

    auto ranked = [&](auto& m) {
        std::vector<Agg*> v;
        for (auto& [_, a] : m) v.push_back(&a);
        std::sort(v.begin(), v.end(), [](const Agg* x, const Agg* y) {
            const auto bx = x->bytes_out + x->bytes_in, by = y->bytes_out + y->bytes_in;
            if (bx != by) return bx > by;
            return x->rtt_ms.size() > y->rtt_ms.size();
        });
        const bool truncated = v.size() > q.limit;
        if (truncated) v.resize(q.limit);
        return std::pair{v, truncated};
    };
    auto [eo, etrunc] = ranked(edges);
    auto [so, strunc] = ranked(services);
    auto es = nlohmann::json::array(), ss = nlohmann::json::array();
    for (Agg* e : eo) {
        auto o = figures(*e, window_seconds, qos->drop_reason_names);
        o["client"] = e->client;
        o["server"] = e->server;
        o["port"] = e->port;
        o["transport"] = "tcp";
        es.push_back(std::move(o));
    }
    for (Agg* s : so) {
        auto o = figures(*s, window_seconds, qos->drop_reason_names);
        o["server"] = s->server;
        o["port"] = s->port;
        o["transport"] = "tcp";
        ss.push_back(std::move(o));
    }
    j["window_seconds"] = window_seconds;
    j["group_by"] = q.group_by;
    j["handshakes_total"] = qos->handshakes_total;
    j["handshakes_duplicate"] = qos->handshakes_duplicate;
    j["overflow"] = qos->overflow;
    j["truncated"] = etrunc || strunc;
    j["edges"] = std::move(es);
    j["services"] = std::move(ss);
    // UDP flows by jitter (the kernel's current figures; not windowed)
    std::vector<const analysis::UdpFlowJitter*> uf;
    for (const auto& u : qos->udp_flows) uf.push_back(&u);
    std::sort(uf.begin(), uf.end(), [](const auto* a, const auto* b) { return a->jitter_seconds > b->jitter_seconds; });
    j["udp_flows_total"] = uf.size();
    if (uf.size() > q.limit) uf.resize(q.limit);
    auto us = nlohmann::json::array();
    for (const auto* u : uf)
        us.push_back({{"src_ip", util::formatAddr(std::bit_cast<util::Addr16>(u->key.src_ip))},
                      {"dst_ip", util::formatAddr(std::bit_cast<util::Addr16>(u->key.dst_ip))},
                      {"src_port", u->key.src_port},
                      {"dst_port", u->key.dst_port},
                      {"interface", flows ? flows->interfaceName(u->key.ifindex) : std::to_string(u->key.ifindex)},
                      {"direction", ebpf::directionName(u->key.direction)},
                      {"jitter_seconds", u->jitter_seconds},
                      {"mean_deviation_seconds", u->mean_deviation_seconds},
                      {"interarrival_seconds", u->interarrival_seconds},
                      {"samples", u->samples}});
    j["udp_flows"] = std::move(us);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string renderQosMetrics(const analysis::TopologyView* topology, const analysis::QosView& v) {
    ExpositionWriter w;
    auto port = [](std::uint16_t p) { return p ? std::to_string(p) : std::string("other"); };
    w.family("netprobe_edge_rtt_seconds", MetricType::Histogram,
             "Round trip times of the TCP handshakes timed at TC (SYN -> SYN/ACK -> ACK), per edge: client -> "
             "server:port, ends named namespace/workload when known, else by address (a bounded set, then \"other\").");
    for (const auto& e : v.edges) {
        const std::string p = port(e.key.port);
        std::uint64_t cum = 0;
        for (std::size_t i = 0; i <= analysis::kRttBuckets.size(); ++i) {
            cum += e.buckets[i];
            char le[32];
            if (i < analysis::kRttBuckets.size())
                std::snprintf(le, sizeof le, "%g", analysis::kRttBuckets[i]);
            else
                std::snprintf(le, sizeof le, "+Inf");
            w.sample("netprobe_edge_rtt_seconds_bucket",
                     {{"client", e.key.client}, {"server", e.key.server}, {"port", p}, {"le", le}}, cum);
        }
        w.sample("netprobe_edge_rtt_seconds_sum", {{"client", e.key.client}, {"server", e.key.server}, {"port", p}},
                 e.sum_seconds);
        w.sample("netprobe_edge_rtt_seconds_count", {{"client", e.key.client}, {"server", e.key.server}, {"port", p}},
                 e.count);
    }

    // The last 5 minutes of each edge.
    constexpr std::uint64_t kRecentNs = 300'000'000'000ull;
    const std::uint64_t oldest = v.now_ns > kRecentNs ? v.now_ns - kRecentNs : 0;
    std::set<analysis::QosEdgeKey> own;
    for (const auto& e : v.edges) own.insert(e.key);
    std::map<analysis::QosEdgeKey, std::pair<double, std::size_t>> jitter;
    for (const auto& c : v.conversations)
        for (const auto& r : c->samples)
            if (r.mono_ns >= oldest && r.delta_us != analysis::RttSample::kNoDelta) {
                auto& j = jitter[own.contains(c->edge) ? c->edge : analysis::kOtherEdge];
                j.first += r.delta_us / 1e6;
                ++j.second;
            }
    w.family("netprobe_edge_jitter_seconds", MetricType::Gauge,
             "Mean deviation between successive handshake round trip times of an edge's conversations, last 5 "
             "minutes (RFC 3550's jitter, over RTT samples).");
    for (const auto& [k, j] : jitter)
        w.sample("netprobe_edge_jitter_seconds", {{"client", k.client}, {"server", k.server}, {"port", port(k.port)}},
                 j.first / static_cast<double>(j.second));

    w.family("netprobe_edge_loss_ratio", MetricType::Gauge,
             "Segments retransmitted / segments sent, per direction, last 5 minutes: client_to_server (the "
             "client's socket retransmitted) and server_to_client; edges of netprobe_edge_rtt_seconds.");
    if (topology) {
        const std::size_t window_slots = analysis::windowSlots(*topology, 300);
        struct Loss {
            std::uint64_t rc = 0, rs = 0, po = 0, pi = 0;
        };
        std::map<analysis::QosEdgeKey, Loss> loss;
        for (const auto& c : topology->conversations) {
            if (c->ip_proto != 6) continue;
            auto t = analysis::totals(*c, *topology, window_slots);
            if (t.packets_out + t.packets_in == 0) continue;
            analysis::QosEdgeKey k{analysis::qosNodeOf(c->client), analysis::qosNodeOf(c->server), c->port};
            if (!own.contains(k)) k = analysis::kOtherEdge;
            auto& l = loss[k];
            l.rc += t.retrans_client;
            l.rs += t.retrans_server;
            l.po += t.packets_out;
            l.pi += t.packets_in;
        }
        for (const auto& [k, l] : loss) {
            const std::string p = port(k.port);
            if (l.po)
                w.sample("netprobe_edge_loss_ratio",
                         {{"client", k.client}, {"server", k.server}, {"port", p}, {"direction", "client_to_server"}},
                         ratio(l.rc, l.po));
            if (l.pi)
                w.sample("netprobe_edge_loss_ratio",
                         {{"client", k.client}, {"server", k.server}, {"port", p}, {"direction", "server_to_client"}},
                         ratio(l.rs, l.pi));
        }
    }
    w.family("netprobe_qos_handshakes_total", MetricType::Counter, "TCP handshakes timed at TC.");
    w.sample("netprobe_qos_handshakes_total", {}, v.handshakes_total);
    w.family("netprobe_qos_handshakes_duplicate_total", MetricType::Counter,
             "Handshakes timed again at another interface of the node (counted once).");
    w.sample("netprobe_qos_handshakes_duplicate_total", {}, v.handshakes_duplicate);
    w.family("netprobe_qos_conversations_dropped_total", MetricType::Counter,
             "Handshake samples of conversations not kept: the QoS budget of conversations was spent.");
    w.sample("netprobe_qos_conversations_dropped_total", {}, v.overflow);
    return w.take();
}

}  // namespace netprobe::metrics
