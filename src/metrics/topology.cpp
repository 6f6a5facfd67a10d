// The topology export (see topology.hpp).
#include <netprobe/metrics/topology.hpp>

#include <algorithm>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/history/cluster.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/metrics/topology_history.hpp>
#include <netprobe/util/duration.hpp>
#include <netprobe/util/ip.hpp>
#include <netprobe/util/parse.hpp>

namespace netprobe::metrics {
namespace {

using analysis::Conversation;
using analysis::ConversationTotals;
using analysis::TopologyEnd;

const std::string kWorkload = "workload";

struct Node {
    std::string id, name, kind, ns, workload, pod, process, container, segment, mesh, service;
    std::vector<std::string> ips;
    std::uint64_t bytes_sent = 0, bytes_received = 0, requests_in = 0, errors_in = 0;
    bool server = false, client = false;
};

struct Edge {
    std::string source, target, transport, protocol;
    std::uint16_t port = 0;
    ConversationTotals t;
    std::size_t conversations = 0;
    std::size_t tls = 0;         // conversations whose client sent a TLS ClientHello
    std::string mesh;            // both ends' sidecars are of this mesh
    double rtt_sum = 0;          // of the conversations' mean RTTs
    std::uint64_t rtt_count = 0; // conversations with an RTT

    // Another edge's figures (conversations, or edges folded into a segment's) added.
    void add(const Edge& o) {
        conversations += o.conversations;
        tls += o.tls;
        if (mesh.empty()) mesh = o.mesh;
        t.bytes_out += o.t.bytes_out;
        t.bytes_in += o.t.bytes_in;
        t.packets_out += o.t.packets_out;
        t.packets_in += o.t.packets_in;
        t.opened += o.t.opened;
        t.failed += o.t.failed;
        t.retransmits += o.t.retransmits;
        t.requests += o.t.requests;
        t.errors += o.t.errors;
        for (std::size_t i = 0; i < t.latency.size(); ++i) t.latency[i] += o.t.latency[i];
        rtt_sum += o.rtt_sum;
        rtt_count += o.rtt_count;
        if (protocol.empty()) protocol = o.protocol;
    }
};

// The node an end belongs to, by the grouping. An end that falls back to an address (no
// workload, pod, namespace or process for the grouping) and no DNS name: in a configured
// group (view->groups) the node "group:NAME"; else, in the workload, pod, namespace and
// process groupings, an address in none of this node's subnets (known), without a
// Kubernetes namespace or a local process, is "external".
Node nodeOf(const TopologyEnd& e, const std::string& group_by, const std::map<util::Addr16, std::string>& names,
            const analysis::TopologyView* view = nullptr) {
    Node n;
    const std::string ip = util::formatAddr(e.ip);
    n.ns = e.ns;
    n.workload = e.workload;
    n.pod = e.pod;
    n.process = e.process;
    n.mesh = e.mesh;
    auto named = names.find(e.ip);
    auto host = [&] {
        if (named == names.end() && view) {
            if (view->groups) {
                if (const auto* g = analysis::groupOf(*view->groups, e.ip)) {
                    n.id = "group:" + g->name;
                    n.kind = "group";
                    n.name = g->name;
                    return;
                }
            }
            if (group_by != "host" && view->subnets && !view->subnets->empty() && e.ns.empty() && e.process.empty() &&
                !analysis::specialAddress(e.ip) && !analysis::subnetOf(*view->subnets, e.ip)) {
                n.id = "external";
                n.kind = "external";
                n.name = "external";
                return;
            }
        }
        n.id = ip;
        n.kind = "host";
        n.name = named != names.end() ? named->second : ip;
    };
    if (group_by == "service" && !e.service.empty()) {
        // the server end of a conversation to a Kubernetes Service (its ClusterIP or one of
        // its endpoints): the service; the calling ends stay workloads
        n.id = "svc:" + e.ns + "/" + e.service;
        n.kind = "service";
        n.name = e.ns + "/" + e.service;
        n.service = e.service;
        n.workload.clear();  // a service may front several workloads
        n.pod.clear();
    } else if ((group_by == "workload" || group_by == "service") && !e.workload.empty()) {
        n.id = e.ns + "/" + e.workload;
        n.kind = "workload";
        n.name = n.id;
    } else if (group_by == "pod" && !e.pod.empty()) {
        n.id = e.ns + "/" + e.pod;
        n.kind = "pod";
        n.name = n.id;
    } else if (group_by == "namespace" && !e.ns.empty()) {
        n.id = "ns:" + e.ns;
        n.kind = "namespace";
        n.name = e.ns;
    } else if ((group_by == "container" || (group_by == "workload" && e.workload.empty())) && !e.container.empty()) {
        // without Kubernetes (or an end outside every pod) a container is the workload
        n.id = "ctr:" + e.container;
        n.kind = "container";
        n.name = "container " + e.container;
        n.container = e.container;
    } else if (group_by == "process" && !e.process.empty()) {
        n.id = e.process + "@" + ip;
        n.kind = "process";
        n.name = e.process + " (" + ip + ")";
    } else {
        host();
    }
    n.ips = {ip};
    return n;
}

}  // namespace

std::string transportName(std::uint8_t p) {
    switch (p) {
        case 6: return "tcp";
        case 17: return "udp";
        case 132: return "sctp";
        default: return std::to_string(p);
    }
}

std::string humanBytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
    return buf;
}

std::string renderTopologyMetrics(const analysis::TopologyView& v) {
    ExpositionWriter w;
    w.family("netprobe_topology_conversations", MetricType::Gauge,
             "Conversations (client -> server:port) the topology holds: active within its window.");
    w.sample("netprobe_topology_conversations", {}, static_cast<std::uint64_t>(v.conversations.size()));
    w.family("netprobe_topology_conversations_dropped_total", MetricType::Counter,
             "New conversations not kept: the topology's budget of conversations was spent.");
    w.sample("netprobe_topology_conversations_dropped_total", {}, v.overflow);
    w.family("netprobe_topology_samples_without_ports_total", MetricType::Counter,
             "Flow samples of protocols without ports (ICMP, ...): not conversations.");
    w.sample("netprobe_topology_samples_without_ports_total", {}, v.samples_unoriented);
    return w.take();
}

std::string topologyNodeId(const analysis::TopologyEnd& end, const std::string& group_by) {
    static const std::map<util::Addr16, std::string> kNoNames;
    return nodeOf(end, group_by, kNoNames).id;
}

std::expected<TopologyQuery, std::string> parseTopologyQuery(
    const std::vector<std::pair<std::string, std::string>>& params) {
    TopologyQuery q;
    auto bad = [](const std::string& k, const std::string& v, const std::string& why) {
        return std::unexpected("bad value \"" + v + "\" for parameter \"" + k + "\": " + why);
    };
    for (const auto& [k, v] : params) {
        if (k == "window") {
            auto d = util::parseDuration(v);
            if (!d || d->count() <= 0) return bad(k, v, "expected a duration (30s, 5m)");
            q.window_seconds = static_cast<std::size_t>(
                std::ceil(std::chrono::duration<double>(*d).count()));
        } else if (k == "group_by") {
            if (v != "host" && v != "workload" && v != "service" && v != "namespace" && v != "pod" && v != "process" &&
                v != "container" && v != "segment")
                return bad(k, v, "expected host, workload, service, namespace, pod, container, process or segment");
            q.group_by = v;
        } else if (k == "namespace") {
            if (v.empty()) return bad(k, v, "expected a namespace");
            q.ns = v;
        } else if (k == "protocol") {
            if (v.empty() || v.size() > 16) return bad(k, v, "expected tcp, udp or an L7 protocol (http, grpc, ...)");
            q.protocol = v;
        } else if (k == "format") {
            if (v != "netprobe" && v != "nodegraph") return bad(k, v, "expected netprobe or nodegraph");
            q.format = v;
        } else if (k == "limit") {
            std::size_t n = 0;
            if (!util::parseNumber(v, n) || n == 0 || n > 100000) return bad(k, v, "expected 1..100000");
            q.limit = n;
        } else if (k == "at") {
            q.at_unix = parseTimeParam(v);
            if (!q.at_unix) return bad(k, v, "expected an RFC 3339 time (2026-12-05T14:00:00Z) or unix seconds");
        } else if (k == "source") {
            if (v != "local" && v != "clickhouse" && v != "prometheus")
                return bad(k, v, "expected local, clickhouse or prometheus");
            q.source = v;
        } else {
            return std::unexpected("unknown parameter \"" + k +
                                   "\" (known: window, group_by, namespace, protocol, format, limit, source, at)");
        }
    }
    if (q.at_unix && q.source != "local")
        return bad("at", std::to_string(*q.at_unix), "the graph at a past time is this node's (no source=)");
    if (q.source == "clickhouse" &&
        (q.group_by == "process" || q.group_by == "segment" || q.group_by == "service" || q.group_by == "container"))
        return bad("group_by", q.group_by, "source=clickhouse groups by host, workload, namespace or pod");
    if (q.source == "clickhouse" && q.format != "netprobe")
        return bad("format", q.format, "source=clickhouse answers in the netprobe format");
    if (q.source == "prometheus" && q.group_by != "host" && q.group_by != "workload" && q.group_by != "namespace" &&
        q.group_by != "segment")
        return bad("group_by", q.group_by,
                   "source=prometheus groups by workload (workloads where known, else hosts: the series' grain), host "
                   "(the same), namespace or segment (pods, containers, processes and Services are below the series' grain: "
                   "source=clickhouse has pods)");
    return q;
}

std::string clusterTopologyJson(const std::vector<history::ClusterFlow>& flows, const TopologyQuery& q,
                                const std::string& target) {
    struct CNode {
        std::string name, kind, ns, workload, pod;
        std::vector<std::string> ips;
        std::uint64_t bytes_sent = 0, bytes_received = 0;
        bool client = false, server = false;
    };
    struct CEdge {
        std::string source, target, transport;
        std::uint16_t port = 0;
        std::uint64_t bytes_out = 0, bytes_in = 0, packets_out = 0, packets_in = 0, flows = 0;
        std::vector<std::string> observed_by;
    };
    std::map<std::string, CNode> nodes;
    std::map<std::tuple<std::string, std::string, std::uint16_t, std::string>, CEdge> edges;
    auto nodeOf = [&](const std::string& ip, const std::string& ns, const std::string& pod,
                      const std::string& workload) -> std::pair<const std::string, CNode>& {
        std::string id, kind = "host", name = ip;
        if (q.group_by == "workload" && !workload.empty()) {
            id = ns + "/" + workload, kind = "workload", name = id;
        } else if (q.group_by == "pod" && !pod.empty()) {
            id = ns + "/" + pod, kind = "pod", name = id;
        } else if (q.group_by == "namespace" && !ns.empty()) {
            id = "ns:" + ns, kind = "namespace", name = ns;
        } else {
            id = ip;
        }
        auto [it, fresh] = nodes.try_emplace(id);
        auto& n = it->second;
        if (fresh) {
            n.name = name, n.kind = kind, n.ns = ns, n.workload = workload;
            if (kind == "pod" || kind == "host") n.pod = pod;
        }
        if (std::find(n.ips.begin(), n.ips.end(), ip) == n.ips.end() && n.ips.size() < 16) n.ips.push_back(ip);
        return *it;
    };
    for (const auto& f : flows) {
        if (!q.ns.empty() && f.src_namespace != q.ns && f.dst_namespace != q.ns) continue;
        const std::string transport = transportName(f.protocol);
        if (!q.protocol.empty() && q.protocol != transport) continue;
        auto& [aid, a] = nodeOf(f.src_addr, f.src_namespace, f.src_pod, f.src_workload);
        auto& [bid, b] = nodeOf(f.dst_addr, f.dst_namespace, f.dst_pod, f.dst_workload);
        a.client = true;
        b.server = true;
        a.bytes_sent += f.bytes, a.bytes_received += f.rev_bytes;
        b.bytes_sent += f.rev_bytes, b.bytes_received += f.bytes;
        auto& e = edges[{aid, bid, f.dst_port, transport}];
        e.source = aid, e.target = bid, e.port = f.dst_port, e.transport = transport;
        e.bytes_out += f.bytes, e.bytes_in += f.rev_bytes, e.packets_out += f.packets, e.packets_in += f.rev_packets;
        e.flows += f.flows;
        for (const auto& n : f.nodes)
            if (std::find(e.observed_by.begin(), e.observed_by.end(), n) == e.observed_by.end()) e.observed_by.push_back(n);
    }
    std::vector<CEdge*> order;
    for (auto& [_, e] : edges) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(),
                     [](const CEdge* x, const CEdge* y) { return x->bytes_out + x->bytes_in > y->bytes_out + y->bytes_in; });
    const bool truncated = order.size() > q.limit;
    if (truncated) order.resize(q.limit);
    std::map<std::string, bool> used;
    for (const CEdge* e : order) used[e->source] = used[e->target] = true;
    const double secs = static_cast<double>(q.window_seconds);
    nlohmann::json j;
    j["enabled"] = true;
    j["source"] = "clickhouse";
    j["clickhouse"] = target;
    j["window_seconds"] = secs;
    j["group_by"] = q.group_by;
    j["truncated"] = truncated;
    auto ns = nlohmann::json::array(), es = nlohmann::json::array();
    for (const auto& [id, n] : nodes) {
        if (!used.contains(id)) continue;
        nlohmann::json o = {{"id", id}, {"name", n.name}, {"kind", n.kind}, {"ips", n.ips},
                            {"bytes_sent", n.bytes_sent}, {"bytes_received", n.bytes_received},
                            {"client", n.client}, {"server", n.server}};
        if (!n.ns.empty()) o["namespace"] = n.ns;
        if (!n.workload.empty()) o["workload"] = n.workload;
        if (!n.pod.empty()) o["pod"] = n.pod;
        ns.push_back(std::move(o));
    }
    for (CEdge* e : order) {
        std::sort(e->observed_by.begin(), e->observed_by.end());
        es.push_back({{"id", e->source + "->" + e->target + ":" + std::to_string(e->port) + "/" + e->transport},
                      {"source", e->source},
                      {"target", e->target},
                      {"port", e->port},
                      {"transport", e->transport},
                      {"flows", e->flows},
                      {"bytes_out", e->bytes_out},
                      {"bytes_in", e->bytes_in},
                      {"packets_out", e->packets_out},
                      {"packets_in", e->packets_in},
                      {"bytes_per_second", static_cast<double>(e->bytes_out + e->bytes_in) / secs},
                      {"observed_by", e->observed_by}});
    }
    j["nodes"] = std::move(ns);
    j["edges"] = std::move(es);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string topologyJson(const analysis::TopologyView* v, const analysis::l7::L7View* l7, const TopologyQuery& q) {
    return topologyDocument(v, l7, q).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json topologyDocument(const analysis::TopologyView* v, const analysis::l7::L7View* l7, const TopologyQuery& q) {
    nlohmann::json j;
    j["enabled"] = v != nullptr;
    if (!v) return j;
    const std::size_t window_slots = analysis::windowSlots(*v, q.window_seconds);
    const double window_seconds = analysis::windowSeconds(*v, window_slots);

    std::map<util::Addr16, std::string> names;
    if (l7)
        for (const auto& n : l7->dns_names) names.emplace(n.addr, n.name);

    std::map<std::string, Node> nodes;
    std::map<std::tuple<std::string, std::string, std::uint16_t, std::string>, Edge> edges;
    for (const auto& cp : v->conversations) {
        const Conversation& c = *cp;
        if (!q.ns.empty() && c.client.ns != q.ns && c.server.ns != q.ns) continue;
        auto t = analysis::totals(c, *v, window_slots);
        if (t.packets_out + t.packets_in + t.opened + t.requests == 0) continue;
        const std::string transport = transportName(c.ip_proto);
        if (!q.protocol.empty() && q.protocol != transport && q.protocol != t.l7_protocol) continue;
        // (segments are found over the workload graph, which falls back to hosts without Kubernetes)
        const std::string& base = q.group_by == "segment" ? kWorkload : q.group_by;
        Node a = nodeOf(c.client, base, names, v), b = nodeOf(c.server, base, names, v);
        auto merge = [&](Node& n) -> Node& {
            auto [it, fresh] = nodes.try_emplace(n.id, n);
            if (!fresh && std::find(it->second.ips.begin(), it->second.ips.end(), n.ips[0]) == it->second.ips.end() &&
                it->second.ips.size() < 16)
                it->second.ips.push_back(n.ips[0]);
            return it->second;
        };
        Node& na = merge(a);
        Node& nb = merge(b);
        na.client = true;
        nb.server = true;
        na.bytes_sent += t.bytes_out;
        na.bytes_received += t.bytes_in;
        nb.bytes_sent += t.bytes_in;
        nb.bytes_received += t.bytes_out;
        nb.requests_in += t.requests;
        nb.errors_in += t.errors;
        auto& e = edges[{a.id, b.id, c.port, transport}];
        e.source = a.id;
        e.target = b.id;
        e.port = c.port;
        e.transport = transport;
        e.add(Edge{.protocol = t.l7 ? t.l7_protocol : std::string(),
                   .t = t,
                   .conversations = 1,
                   .tls = c.tls ? 1u : 0u,
                   .mesh = !c.client.mesh.empty() && c.client.mesh == c.server.mesh ? c.client.mesh : std::string(),
                   .rtt_sum = t.rtt_ms,
                   .rtt_count = t.rtt_ms > 0 ? 1u : 0u});
    }

    // Segments: over the whole graph of this answer (before the limit), bytes as weights.
    {
        analysis::SegmentInput in;
        std::map<std::string, std::size_t> index;
        for (const auto& [id, n] : nodes) {
            index[id] = in.nodes.size();
            in.nodes.push_back(id);
            in.ns.push_back(n.kind == "host" ? std::string() : n.ns);
            // this node's subnets (precedence: namespace > subnet > community)
            const analysis::LocalSubnet* net = nullptr;
            if (v->subnets && !n.ips.empty())
                if (auto ip = util::parseAddr(n.ips[0])) net = analysis::subnetOf(*v->subnets, *ip);
            in.subnet.push_back(net ? net->cidr : std::string());
        }
        for (const auto& [_, e] : edges)
            in.edges.push_back({index[e.source], index[e.target], static_cast<double>(e.t.bytes_out + e.t.bytes_in)});
        const auto seg = analysis::segmentGraph(in);
        for (auto& [id, n] : nodes) n.segment = seg[index[id]];
    }
    if (q.group_by == "segment") {
        // Nodes are the segments; edges the traffic between them (within a segment: its
        // nodes' figures only).
        std::map<std::string, Node> segs;
        for (const auto& [id, n] : nodes) {
            auto [it, fresh] = segs.try_emplace(n.segment);
            Node& sn = it->second;
            if (fresh) {
                sn.id = n.segment;
                sn.name = analysis::segmentName(n.segment);
                sn.kind = "segment";
                sn.segment = n.segment;
            }
            if (sn.ips.size() < 16) sn.ips.push_back(n.ips[0]);
            sn.bytes_sent += n.bytes_sent;
            sn.bytes_received += n.bytes_received;
            sn.requests_in += n.requests_in;
            sn.errors_in += n.errors_in;
            sn.client = sn.client || n.client;
            sn.server = sn.server || n.server;
        }
        std::map<std::tuple<std::string, std::string, std::uint16_t, std::string>, Edge> between;
        for (const auto& [_, e] : edges) {
            const std::string& a = nodes[e.source].segment;
            const std::string& b = nodes[e.target].segment;
            if (a == b) continue;
            auto& d = between[{a, b, e.port, e.transport}];
            d.source = a;
            d.target = b;
            d.port = e.port;
            d.transport = e.transport;
            d.add(e);
        }
        nodes = std::move(segs);
        edges = std::move(between);
    }

    std::vector<Edge*> order;
    order.reserve(edges.size());
    for (auto& [_, e] : edges) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(), [](const Edge* x, const Edge* y) {
        return x->t.bytes_out + x->t.bytes_in > y->t.bytes_out + y->t.bytes_in;
    });
    const bool truncated = order.size() > q.limit;
    if (truncated) order.resize(q.limit);
    std::map<std::string, bool> used;
    for (const Edge* e : order) used[e->source] = used[e->target] = true;

    auto edgeId = [](const Edge& e) {
        return e.source + "->" + e.target + ":" + std::to_string(e.port) + "/" + e.transport;
    };
    auto rtt = [](const Edge& e) { return e.rtt_count ? e.rtt_sum / static_cast<double>(e.rtt_count) : 0.0; };
    if (q.format == "nodegraph") {
        // Grafana's Node Graph panel: a nodes frame and an edges frame, by field name.
        auto ns = nlohmann::json::array(), es = nlohmann::json::array();
        for (const auto& [id, n] : nodes) {
            if (!used.contains(id)) continue;
            const double err = n.requests_in ? static_cast<double>(n.errors_in) / static_cast<double>(n.requests_in) : 0;
            ns.push_back({{"id", id},
                          {"title", n.name},
                          {"subTitle", n.kind},
                          {"mainStat", humanBytes(static_cast<double>(n.bytes_sent + n.bytes_received) / window_seconds) + "/s"},
                          {"secondaryStat", n.requests_in ? std::to_string(n.requests_in) + " requests" : std::string()},
                          {"arc__ok", n.requests_in ? 1 - err : 1.0},
                          {"arc__errors", err}});
        }
        for (const Edge* e : order) {
            es.push_back({{"id", edgeId(*e)},
                          {"source", e->source},
                          {"target", e->target},
                          {"mainStat", humanBytes(static_cast<double>(e->t.bytes_out + e->t.bytes_in) / window_seconds) + "/s"},
                          {"secondaryStat", std::to_string(e->port) + "/" + (e->protocol.empty() ? e->transport : e->protocol)}});
        }
        j["nodes"] = std::move(ns);
        j["edges"] = std::move(es);
        return j;
    }

    j["window_seconds"] = window_seconds;
    j["group_by"] = q.group_by;
    j["overflow"] = v->overflow;
    j["truncated"] = truncated;
    auto ns = nlohmann::json::array(), es = nlohmann::json::array();
    for (const auto& [id, n] : nodes) {
        if (!used.contains(id)) continue;
        nlohmann::json o = {{"id", id},
                            {"name", n.name},
                            {"kind", n.kind},
                            {"ips", n.ips},
                            {"bytes_sent", n.bytes_sent},
                            {"bytes_received", n.bytes_received},
                            {"client", n.client},
                            {"server", n.server},
                            {"segment", n.segment}};
        if (!n.ns.empty()) o["namespace"] = n.ns;
        if (!n.workload.empty()) o["workload"] = n.workload;
        if (!n.service.empty()) o["service"] = n.service;
        if (!n.pod.empty() && (n.kind == "pod" || n.kind == "host")) o["pod"] = n.pod;
        if (!n.process.empty()) o["process"] = n.process;
        if (!n.container.empty()) o["container"] = n.container;
        if (!n.mesh.empty()) o["mesh"] = n.mesh;
        ns.push_back(std::move(o));
    }
    for (const Edge* e : order) {
        const auto& t = e->t;
        nlohmann::json o = {{"id", edgeId(*e)},
                            {"source", e->source},
                            {"target", e->target},
                            {"port", e->port},
                            {"transport", e->transport},
                            {"conversations", e->conversations},
                            {"bytes_out", t.bytes_out},
                            {"bytes_in", t.bytes_in},
                            {"packets_out", t.packets_out},
                            {"packets_in", t.packets_in},
                            {"bytes_per_second", static_cast<double>(t.bytes_out + t.bytes_in) / window_seconds},
                            {"connections_opened", t.opened},
                            {"connections_failed", t.failed},
                            {"retransmits", t.retransmits},
                            {"rtt_ms", rtt(*e)},
                            {"boundary", nodes[e->source].segment != nodes[e->target].segment},
                            {"tls_conversations", e->tls}};
        // mesh: both ends have the same mesh's sidecar; mtls: and their bytes are TLS
        if (!e->mesh.empty()) {
            o["mesh"] = e->mesh;
            o["mtls"] = e->tls == e->conversations;
        }
        if (!e->protocol.empty()) {
            o["protocol"] = e->protocol;
            o["requests"] = t.requests;
            o["errors"] = t.errors;
            o["requests_per_second"] = static_cast<double>(t.requests) / window_seconds;
            o["error_rate"] = t.requests ? static_cast<double>(t.errors) / static_cast<double>(t.requests) : 0.0;
            o["p50_seconds"] = analysis::latencyQuantile(t.latency, 0.5);
            o["p99_seconds"] = analysis::latencyQuantile(t.latency, 0.99);
        }
        es.push_back(std::move(o));
    }
    j["nodes"] = std::move(ns);
    j["edges"] = std::move(es);
    return j;
}

}  // namespace netprobe::metrics
