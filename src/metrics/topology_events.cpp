// Topology events: new boundary edges (see topology_events.hpp).
#include <netprobe/metrics/topology_events.hpp>

#include <algorithm>
#include <unordered_map>

#include <netprobe/analysis/topology.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/metrics/topology.hpp>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {

namespace {
constexpr std::uint64_t kIdBase = std::uint64_t{1} << 40;
}

std::vector<std::shared_ptr<const BoundaryEdgeEvent>> BoundaryTracker::observe(const nlohmann::json& doc,
                                                                               std::chrono::system_clock::time_point now) {
    std::vector<std::shared_ptr<const BoundaryEdgeEvent>> fresh;
    const auto nodes = doc.find("nodes");
    const auto edges = doc.find("edges");
    if (nodes == doc.end() || edges == doc.end() || !nodes->is_array() || !edges->is_array()) return fresh;
    std::unordered_map<std::string, const nlohmann::json*> by_id;
    for (const auto& n : *nodes)
        if (n.contains("id") && n["id"].is_string()) by_id.emplace(n["id"].get<std::string>(), &n);
    const bool baseline = !baseline_done_;
    baseline_done_ = true;
    for (const auto& e : *edges) {
        if (!e.value("boundary", false)) continue;
        const std::string id = e.value("id", std::string());
        if (id.empty() || seen_.contains(id)) continue;
        seen_.insert(id);
        order_.push_back(id);
        while (order_.size() > opts_.max_seen) {
            seen_.erase(order_.front());
            order_.pop_front();
            ++forgotten_;
        }
        if (baseline) continue;
        auto ev = std::make_shared<BoundaryEdgeEvent>();
        ev->id = kIdBase + next_id_++;
        ev->detected_at = now;
        ev->edge = id;
        ev->source = e.value("source", std::string());
        ev->target = e.value("target", std::string());
        ev->port = e.value("port", std::uint16_t{0});
        ev->transport = e.value("transport", std::string());
        auto endOf = [&](const std::string& node, std::string& seg, std::string& ip) {
            auto it = by_id.find(node);
            if (it == by_id.end()) return;
            seg = it->second->value("segment", std::string());
            const auto ips = it->second->find("ips");
            if (ips != it->second->end() && ips->is_array() && !ips->empty() && (*ips)[0].is_string())
                ip = (*ips)[0].get<std::string>();
        };
        endOf(ev->source, ev->source_segment, ev->src_ip);
        endOf(ev->target, ev->target_segment, ev->dst_ip);
        ++total_;
        events_.push_back(ev);
        while (events_.size() > opts_.max_events) events_.pop_front();
        fresh.push_back(std::move(ev));
    }
    return fresh;
}

nlohmann::json boundaryEventJson(const BoundaryEdgeEvent& e) {
    const std::string at = rfc3339(e.detected_at);
    auto ip = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
    return {{"id", e.id},
            {"type", "new_boundary_edge"},
            {"severity", "low"},
            {"src_ip", ip(e.src_ip)},
            {"dst_ip", ip(e.dst_ip)},
            {"targets", nlohmann::json::array()},
            {"detected_at", at},
            {"first_seen", at},
            {"last_seen", at},
            {"ended_at", at},
            {"active", false},
            {"evidence",
             {{"source_segment", e.source_segment},
              {"target_segment", e.target_segment},
              {"edge", e.edge},
              {"source", e.source},
              {"target", e.target},
              {"port", e.port},
              {"transport", e.transport}}}};
}

TopologyEvents::TopologyEvents(std::shared_ptr<const analysis::Pipeline> pipeline, BoundaryTrackerOptions o)
    : pipeline_(std::move(pipeline)), tracker_(o) {
    if (pipeline_) sub_ = pipeline_->subscribe([this](const analysis::Pipeline::ViewsPtr& v) { publish(v); });
}

TopologyEvents::~TopologyEvents() { sub_.reset(); }

void TopologyEvents::publish(const analysis::Pipeline::ViewsPtr& v) {
    if (!v || !v->topology || !v->snapshot) return;
    std::lock_guard lk(mu_);
    if (v->snapshot->sequence <= last_seq_) return;
    last_seq_ = v->snapshot->sequence;
    TopologyQuery q;
    q.group_by = "workload";
    q.window_seconds = static_cast<std::size_t>(analysis::windowSeconds(*v->topology, v->topology->slots));
    q.limit = 100000;
    const auto doc = topologyDocument(v->topology.get(), v->l7.get(), q);
    (void)tracker_.observe(doc, v->snapshot->taken_at.time_since_epoch().count() ? v->snapshot->taken_at
                                                                               : std::chrono::system_clock::now());
}

std::vector<std::shared_ptr<const BoundaryEdgeEvent>> TopologyEvents::select(
    std::optional<std::chrono::system_clock::time_point> since, std::size_t limit) const {
    std::lock_guard lk(mu_);
    std::vector<std::shared_ptr<const BoundaryEdgeEvent>> out;
    const auto& evs = tracker_.events();
    for (auto it = evs.rbegin(); it != evs.rend() && out.size() < limit; ++it)
        if (!since || (*it)->detected_at >= *since) out.push_back(*it);
    return out;
}

std::string TopologyEvents::renderMetrics() const {
    std::lock_guard lk(mu_);
    ExpositionWriter w;
    w.family("netprobe_topology_new_boundary_edges_total", MetricType::Counter,
             "New boundary edges: edges between two segments not seen before since start (events of type "
             "new_boundary_edge).");
    w.sample("netprobe_topology_new_boundary_edges_total", {}, tracker_.total());
    w.family("netprobe_topology_boundary_edges_tracked", MetricType::Gauge,
             "Boundary edges remembered (seen since start, up to the bound).");
    w.sample("netprobe_topology_boundary_edges_tracked", {}, static_cast<std::uint64_t>(tracker_.tracked()));
    w.family("netprobe_topology_boundary_edges_forgotten_total", MetricType::Counter,
             "Boundary edges forgotten to keep the bound (reported again if seen again).");
    w.sample("netprobe_topology_boundary_edges_forgotten_total", {}, tracker_.forgotten());
    return w.take();
}

std::string mergeEventsJson(const std::string& security_json, bool want_security,
                            const std::vector<std::shared_ptr<const BoundaryEdgeEvent>>& topology, std::size_t limit) {
    auto doc = nlohmann::json::parse(security_json, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) doc = nlohmann::json::object();
    auto events = want_security && doc.contains("events") ? doc["events"] : nlohmann::json::array();
    for (const auto& e : topology) events.push_back(boundaryEventJson(*e));
    // newest first (RFC 3339 UTC texts of one format order as the times do)
    std::stable_sort(events.begin(), events.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
        return a.value("detected_at", std::string()) > b.value("detected_at", std::string());
    });
    if (events.size() > limit) events.erase(events.begin() + static_cast<std::ptrdiff_t>(limit), events.end());
    if (!doc.contains("enabled")) doc["enabled"] = false;  // (the security analytics')
    doc["count"] = events.size();
    doc["events"] = std::move(events);
    return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace netprobe::metrics
