// The cluster-wide topology from Prometheus (see cluster_topology.hpp).
#include <netprobe/metrics/cluster_topology.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/edge_counters.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/history/prometheus.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/metrics/topology.hpp>

namespace netprobe::metrics {
namespace {

std::string humanRate(double b) { return humanBytes(b) + "/s"; }

std::uint64_t count(double v) { return v > 0 ? static_cast<std::uint64_t>(std::llround(v)) : 0; }

}  // namespace

std::string renderEdgeCounterMetrics(const analysis::EdgeCounterView& v) {
    ExpositionWriter w;
    const std::string other = "other";
    struct Directed {
        const char* name;
        const char* help;
        std::uint64_t analysis::EdgeCounts::*to_server;
        std::uint64_t analysis::EdgeCounts::*to_client;
    };
    static constexpr Directed directed[] = {
        {"netprobe_topology_edge_bytes_total",
         "Bytes of a topology edge (client -> server:port), by direction (to_server, to_client); source and target "
         "are workloads (namespace/name) with Kubernetes, else addresses; beyond the series budget: \"other\".",
         &analysis::EdgeCounts::bytes_to_server, &analysis::EdgeCounts::bytes_to_client},
        {"netprobe_topology_edge_packets_total", "Packets of a topology edge, by direction (as the bytes).",
         &analysis::EdgeCounts::packets_to_server, &analysis::EdgeCounts::packets_to_client},
    };
    std::vector<std::string> ports;
    ports.reserve(v.edges.size());
    for (const auto& [k, _] : v.edges) ports.push_back(std::to_string(k.port));
    std::vector<std::string> transports;
    transports.reserve(v.edges.size());
    for (const auto& [k, _] : v.edges) transports.push_back(transportName(k.ip_proto));
    for (const auto& f : directed) {
        w.family(f.name, MetricType::Counter, f.help);
        for (std::size_t i = 0; i < v.edges.size(); ++i) {
            const auto& [k, c] = v.edges[i];
            for (auto [dir, field] : {std::pair{"to_server", f.to_server}, std::pair{"to_client", f.to_client}})
                w.sample(f.name,
                         {{"source", k.source}, {"target", k.target}, {"port", ports[i]}, {"transport", transports[i]},
                          {"direction", dir}},
                         c.*field);
        }
        for (auto [dir, field] : {std::pair{"to_server", f.to_server}, std::pair{"to_client", f.to_client}})
            w.sample(f.name,
                     {{"source", other}, {"target", other}, {"port", other}, {"transport", other}, {"direction", dir}},
                     v.other.*field);
    }
    struct Plain {
        const char* name;
        const char* help;
        std::uint64_t analysis::EdgeCounts::*field;
    };
    static constexpr Plain plain[] = {
        {"netprobe_topology_edge_connections_total", "Connections a topology edge's clients opened (TCP).",
         &analysis::EdgeCounts::connections},
        {"netprobe_topology_edge_connections_failed_total",
         "Connections of a topology edge that failed (SYN never answered, refused).",
         &analysis::EdgeCounts::connections_failed},
        {"netprobe_topology_edge_retransmits_total", "Segments a topology edge's ends retransmitted.",
         &analysis::EdgeCounts::retransmits},
        {"netprobe_topology_edge_requests_total", "L7 requests of a topology edge (with --l7=on).",
         &analysis::EdgeCounts::requests},
        {"netprobe_topology_edge_request_errors_total",
         "L7 requests of a topology edge that failed (HTTP 5xx, gRPC server errors, DNS server failures, ...).",
         &analysis::EdgeCounts::request_errors},
    };
    for (const auto& f : plain) {
        w.family(f.name, MetricType::Counter, f.help);
        for (std::size_t i = 0; i < v.edges.size(); ++i) {
            const auto& [k, c] = v.edges[i];
            w.sample(f.name,
                     {{"source", k.source}, {"target", k.target}, {"port", ports[i]}, {"transport", transports[i]}},
                     c.*f.field);
        }
        w.sample(f.name, {{"source", other}, {"target", other}, {"port", other}, {"transport", other}},
                 v.other.*f.field);
    }
    w.family("netprobe_topology_edges", MetricType::Gauge,
             "Topology edges the per-edge counters track (state=tracked) and those with series of their own "
             "(state=exported; the rest count as \"other\"), and those not yet established (state=pending: grown in fewer than 3 "
             "collections over 2 s and under 64 KiB; a port scan's edges stay there).");
    w.sample("netprobe_topology_edges", {{"state", "tracked"}}, static_cast<std::uint64_t>(v.tracked));
    w.sample("netprobe_topology_edges", {{"state", "exported"}}, static_cast<std::uint64_t>(v.edges.size()));
    w.sample("netprobe_topology_edges", {{"state", "pending"}}, static_cast<std::uint64_t>(v.pending));
    return w.take();
}

std::string renderPrometheusTopologyMetrics(const history::PrometheusStats& s) {
    ExpositionWriter w;
    w.family("netprobe_topology_prometheus_queries_total", MetricType::Counter,
             "Cluster topology queries to Prometheus (source=prometheus): ok, error (answered with this node's "
             "graph), skipped (not sent: the server failed moments ago).");
    w.sample("netprobe_topology_prometheus_queries_total", {{"result", "ok"}}, s.queries - s.errors);
    w.sample("netprobe_topology_prometheus_queries_total", {{"result", "error"}}, s.errors);
    w.sample("netprobe_topology_prometheus_queries_total", {{"result", "skipped"}}, s.skipped);
    return w.take();
}

std::string prometheusTopologyJson(const std::vector<history::PromEdge>& edges, const TopologyQuery& q,
                                   const std::string& target) {
    struct PNode {
        std::string name, kind, ns, workload, segment;
        double bytes_sent = 0, bytes_received = 0, requests_in = 0, errors_in = 0;
        bool client = false, server = false;
    };
    struct PEdge {
        history::PromEdge f;  // figures summed (grouping by namespace folds edges)
        std::vector<std::string> observed_by;
    };
    // "namespace/workload" ids are workloads; anything else an address
    auto nodeOf = [&](const std::string& id) {
        PNode n;
        const auto slash = id.find('/');
        if (slash != std::string::npos) {
            n.ns = id.substr(0, slash);
            n.workload = id.substr(slash + 1);
            n.kind = "workload";
            n.name = id;
        } else {
            n.kind = "host";
            n.name = id;
        }
        std::string nid = id;
        if (q.group_by == "namespace" && !n.ns.empty()) {
            nid = "ns:" + n.ns;
            n.kind = "namespace";
            n.name = n.ns;
            n.workload.clear();
        }
        return std::pair{nid, n};
    };
    // An edge's figures added to the (folded) edge a -> b, and who observed them.
    auto fold = [](PEdge& d, const std::string& a, const std::string& b, const history::PromEdge& f,
                   const std::vector<std::string>& observed_by) {
        d.f.source = a, d.f.target = b, d.f.port = f.port, d.f.transport = f.transport;
        d.f.bytes_to_server += f.bytes_to_server, d.f.bytes_to_client += f.bytes_to_client;
        d.f.packets_to_server += f.packets_to_server, d.f.packets_to_client += f.packets_to_client;
        d.f.connections += f.connections, d.f.connections_failed += f.connections_failed;
        d.f.retransmits += f.retransmits, d.f.requests += f.requests, d.f.request_errors += f.request_errors;
        for (const auto& o : observed_by)
            if (std::find(d.observed_by.begin(), d.observed_by.end(), o) == d.observed_by.end())
                d.observed_by.push_back(o);
    };
    std::map<std::string, PNode> nodes;
    std::map<std::tuple<std::string, std::string, std::uint16_t, std::string>, PEdge> out;
    for (const auto& e : edges) {
        if (e.bytes_to_server + e.bytes_to_client + e.packets_to_server + e.packets_to_client + e.connections +
                e.connections_failed + e.requests <
            0.5)
            continue;  // no growth in the window
        if (!q.protocol.empty() && q.protocol != e.transport) continue;
        auto [aid, a] = nodeOf(e.source);
        auto [bid, b] = nodeOf(e.target);
        if (!q.ns.empty() && a.ns != q.ns && b.ns != q.ns) continue;
        auto& na = nodes.try_emplace(aid, a).first->second;
        auto& nb = nodes.try_emplace(bid, b).first->second;
        na.client = nb.server = true;
        na.bytes_sent += e.bytes_to_server, na.bytes_received += e.bytes_to_client;
        nb.bytes_sent += e.bytes_to_client, nb.bytes_received += e.bytes_to_server;
        nb.requests_in += e.requests, nb.errors_in += e.request_errors;
        fold(out[{aid, bid, e.port, e.transport}], aid, bid, e, e.observed_by);
    }
    // Segments, as the node's view makes them but without subnets (the agents' series carry
    // no interface addresses): a workload's Kubernetes namespace, else its community on
    // this graph. With group_by=segment the segments are the nodes and the edges the
    // traffic between them.
    if (q.group_by != "namespace") {
        analysis::SegmentInput in;
        std::map<std::string, std::size_t> index;
        for (const auto& [id, n] : nodes) {
            index[id] = in.nodes.size();
            in.nodes.push_back(id);
            in.ns.push_back(n.ns);
        }
        for (const auto& [_, e] : out)
            in.edges.push_back({index[e.f.source], index[e.f.target], e.f.bytes_to_server + e.f.bytes_to_client});
        const auto seg = analysis::segmentGraph(in);
        for (auto& [id, n] : nodes) n.segment = seg[index[id]];
    }
    if (q.group_by == "segment") {
        std::map<std::string, PNode> segs;
        for (const auto& [id, n] : nodes) {
            auto [it, fresh] = segs.try_emplace(n.segment);
            PNode& sn = it->second;
            if (fresh) {
                sn.name = analysis::segmentName(n.segment);
                sn.kind = "segment";
                sn.segment = n.segment;
            }
            sn.bytes_sent += n.bytes_sent, sn.bytes_received += n.bytes_received;
            sn.requests_in += n.requests_in, sn.errors_in += n.errors_in;
            sn.client = sn.client || n.client;
            sn.server = sn.server || n.server;
        }
        std::map<std::tuple<std::string, std::string, std::uint16_t, std::string>, PEdge> between;
        for (const auto& [_, e] : out) {
            const std::string& a = nodes[e.f.source].segment;
            const std::string& b = nodes[e.f.target].segment;
            if (a == b) continue;  // within a segment: its figures only
            fold(between[{a, b, e.f.port, e.f.transport}], a, b, e.f, e.observed_by);
        }
        nodes = std::move(segs);
        out = std::move(between);
    }

    std::vector<PEdge*> order;
    for (auto& [_, e] : out) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(), [](const PEdge* x, const PEdge* y) {
        return x->f.bytes_to_server + x->f.bytes_to_client > y->f.bytes_to_server + y->f.bytes_to_client;
    });
    const bool truncated = order.size() > q.limit;
    if (truncated) order.resize(q.limit);
    std::map<std::string, bool> used;
    for (const PEdge* e : order) used[e->f.source] = used[e->f.target] = true;
    const double secs = static_cast<double>(std::max<std::size_t>(q.window_seconds, 1));
    auto edgeId = [](const history::PromEdge& e) {
        return e.source + "->" + e.target + ":" + std::to_string(e.port) + "/" + e.transport;
    };

    nlohmann::json j;
    j["enabled"] = true;
    j["source"] = "prometheus";
    j["prometheus"] = target;
    j["window_seconds"] = secs;
    j["group_by"] = q.group_by;
    j["truncated"] = truncated;
    auto ns = nlohmann::json::array(), es = nlohmann::json::array();
    if (q.format == "nodegraph") {
        for (const auto& [id, n] : nodes) {
            if (!used.contains(id)) continue;
            const double err = n.requests_in > 0 ? n.errors_in / n.requests_in : 0;
            ns.push_back({{"id", id},
                          {"title", n.name},
                          {"subTitle", n.kind},
                          {"mainStat", humanRate((n.bytes_sent + n.bytes_received) / secs)},
                          {"secondaryStat", n.requests_in > 0 ? std::to_string(count(n.requests_in)) + " requests"
                                                              : std::string()},
                          {"arc__ok", 1 - err},
                          {"arc__errors", err}});
        }
        for (const PEdge* e : order)
            es.push_back({{"id", edgeId(e->f)},
                          {"source", e->f.source},
                          {"target", e->f.target},
                          {"mainStat", humanRate((e->f.bytes_to_server + e->f.bytes_to_client) / secs)},
                          {"secondaryStat", std::to_string(e->f.port) + "/" + e->f.transport}});
    } else {
        for (const auto& [id, n] : nodes) {
            if (!used.contains(id)) continue;
            nlohmann::json o = {{"id", id},
                                {"name", n.name},
                                {"kind", n.kind},
                                {"bytes_sent", count(n.bytes_sent)},
                                {"bytes_received", count(n.bytes_received)},
                                {"client", n.client},
                                {"server", n.server}};
            if (!n.ns.empty()) o["namespace"] = n.ns;
            if (!n.workload.empty()) o["workload"] = n.workload;
            if (!n.segment.empty()) o["segment"] = n.segment;
            ns.push_back(std::move(o));
        }
        for (PEdge* e : order) {
            const auto& f = e->f;
            std::sort(e->observed_by.begin(), e->observed_by.end());
            nlohmann::json o = {{"id", edgeId(f)},
                                {"source", f.source},
                                {"target", f.target},
                                {"port", f.port},
                                {"transport", f.transport},
                                {"bytes_out", count(f.bytes_to_server)},
                                {"bytes_in", count(f.bytes_to_client)},
                                {"packets_out", count(f.packets_to_server)},
                                {"packets_in", count(f.packets_to_client)},
                                {"bytes_per_second", (f.bytes_to_server + f.bytes_to_client) / secs},
                                {"connections_opened", count(f.connections)},
                                {"connections_failed", count(f.connections_failed)},
                                {"retransmits", count(f.retransmits)},
                                {"observed_by", e->observed_by}};
            if (f.requests >= 0.5) {
                o["requests"] = count(f.requests);
                o["errors"] = count(f.request_errors);
                o["requests_per_second"] = f.requests / secs;
                o["error_rate"] = f.request_errors / f.requests;
            }
            es.push_back(std::move(o));
        }
    }
    j["nodes"] = std::move(ns);
    j["edges"] = std::move(es);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace netprobe::metrics
