// GET /api/v1/topology/stream (see topology_stream.hpp).
#include <netprobe/metrics/topology_stream.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <unordered_map>

#include <netprobe/analysis/topology.hpp>
#include <netprobe/metrics/exposition.hpp>

namespace netprobe::metrics {
namespace {

using Entries = std::vector<std::pair<std::string, nlohmann::json>>;

Entries keyed(const nlohmann::json& arr) {
    Entries out;
    if (!arr.is_array()) return out;
    out.reserve(arr.size());
    for (const auto& o : arr) {
        auto it = o.find("id");
        if (it == o.end() || !it->is_string()) continue;
        out.emplace_back(it->get<std::string>(), o);
    }
    std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    return out;
}

// The fields of b that differ from a's (a field of a missing in b: null); empty: equal.
nlohmann::json changedFields(const nlohmann::json& a, const nlohmann::json& b) {
    nlohmann::json d = nlohmann::json::object();
    for (auto it = b.begin(); it != b.end(); ++it) {
        auto ia = a.find(it.key());
        if (ia == a.end() || *ia != it.value()) d[it.key()] = it.value();
    }
    for (auto it = a.begin(); it != a.end(); ++it)
        if (!b.contains(it.key())) d[it.key()] = nullptr;
    return d;
}

nlohmann::json diffEntries(const Entries& a, const Entries& b) {
    auto added = nlohmann::json::array(), removed = nlohmann::json::array(), updated = nlohmann::json::array();
    std::size_t i = 0, k = 0;
    while (i < a.size() || k < b.size()) {
        if (k == b.size() || (i < a.size() && a[i].first < b[k].first)) {
            removed.push_back(a[i++].first);
        } else if (i == a.size() || b[k].first < a[i].first) {
            added.push_back(b[k++].second);
        } else {
            if (a[i].second != b[k].second) {
                auto d = changedFields(a[i].second, b[k].second);
                d["id"] = b[k].first;
                updated.push_back(std::move(d));
            }
            ++i, ++k;
        }
    }
    nlohmann::json out = nlohmann::json::object();
    if (!added.empty()) out["added"] = std::move(added);
    if (!removed.empty()) out["removed"] = std::move(removed);
    if (!updated.empty()) out["updated"] = std::move(updated);
    return out;
}

void applyEntries(Entries& e, const nlohmann::json& d) {
    if (!d.is_object()) return;
    std::unordered_map<std::string, std::size_t> at;
    at.reserve(e.size());
    for (std::size_t i = 0; i < e.size(); ++i) at.emplace(e[i].first, i);
    std::vector<bool> gone(e.size(), false);
    if (auto r = d.find("removed"); r != d.end())
        for (const auto& id : *r)
            if (auto it = at.find(id.get<std::string>()); it != at.end()) gone[it->second] = true;
    if (auto u = d.find("updated"); u != d.end()) {
        for (const auto& f : *u) {
            auto it = at.find(f.at("id").get<std::string>());
            if (it == at.end()) continue;
            auto& obj = e[it->second].second;
            for (auto x = f.begin(); x != f.end(); ++x) {
                if (x.value().is_null()) obj.erase(x.key());
                else obj[x.key()] = x.value();
            }
        }
    }
    Entries out;
    out.reserve(e.size());
    for (std::size_t i = 0; i < e.size(); ++i)
        if (!gone[i]) out.push_back(std::move(e[i]));
    if (auto a = d.find("added"); a != d.end())
        for (const auto& o : *a) out.emplace_back(o.at("id").get<std::string>(), o);
    std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    e = std::move(out);
}

std::uint64_t edgeBytes(const nlohmann::json& e) {
    return e.value("bytes_out", std::uint64_t{0}) + e.value("bytes_in", std::uint64_t{0});
}

}  // namespace

TopologyGraph topologyGraph(const nlohmann::json& doc) {
    TopologyGraph g;
    for (auto it = doc.begin(); it != doc.end(); ++it)
        if (it.key() != "nodes" && it.key() != "edges") g.meta[it.key()] = it.value();
    if (auto n = doc.find("nodes"); n != doc.end()) g.nodes = keyed(*n);
    if (auto e = doc.find("edges"); e != doc.end()) g.edges = keyed(*e);
    return g;
}

nlohmann::json topologyDocumentOf(const TopologyGraph& g) {
    nlohmann::json j = g.meta;
    auto ns = nlohmann::json::array(), es = nlohmann::json::array();
    for (const auto& [_, n] : g.nodes) ns.push_back(n);
    std::vector<const nlohmann::json*> order;
    order.reserve(g.edges.size());
    for (const auto& [_, e] : g.edges) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(),
                     [](const nlohmann::json* x, const nlohmann::json* y) { return edgeBytes(*x) > edgeBytes(*y); });
    for (const auto* e : order) es.push_back(*e);
    j["nodes"] = std::move(ns);
    j["edges"] = std::move(es);
    return j;
}

nlohmann::json diffTopology(const TopologyGraph& a, const TopologyGraph& b) {
    nlohmann::json d = nlohmann::json::object();
    auto nodes = diffEntries(a.nodes, b.nodes);
    auto edges = diffEntries(a.edges, b.edges);
    auto meta = changedFields(a.meta, b.meta);
    if (!nodes.empty()) d["nodes"] = std::move(nodes);
    if (!edges.empty()) d["edges"] = std::move(edges);
    if (!meta.empty()) d["meta"] = std::move(meta);
    if (d.empty()) return nullptr;
    return d;
}

TopologyGraph applyTopologyDiff(TopologyGraph a, const nlohmann::json& d) {
    if (!d.is_object()) return a;
    if (auto n = d.find("nodes"); n != d.end()) applyEntries(a.nodes, *n);
    if (auto e = d.find("edges"); e != d.end()) applyEntries(a.edges, *e);
    if (auto m = d.find("meta"); m != d.end())
        for (auto x = m->begin(); x != m->end(); ++x) {
            if (x.value().is_null()) a.meta.erase(x.key());
            else a.meta[x.key()] = x.value();
        }
    return a;
}

std::string sseEvent(std::string_view type, std::string_view id, std::string_view data) {
    std::string out;
    out.reserve(data.size() + type.size() + id.size() + 24);
    out += "event: ";
    out += type;
    out += "\nid: ";
    out += id;
    out += "\ndata: ";
    out += data;  // JSON dumped on one line: no newline inside
    out += "\n\n";
    return out;
}

// ---- the streams ----

struct TopologyStreams::Group {
    TopologyQuery q;
    TopologyGraph graph;
    std::uint64_t seq = 0;            // the view the graph is of
    std::string snapshot;             // the snapshot event of `graph` (made on demand)
    struct Event {
        std::uint64_t from = 0, to = 0;
        std::string text;
    };
    std::deque<Event> history;        // diffs, oldest first, contiguous (from = the previous to)
    std::vector<std::shared_ptr<http::StreamChannel>> subs;
    std::chrono::steady_clock::time_point idle_since{};  // when its last stream ended
};

namespace {

std::string canonicalKey(const TopologyQuery& q) {
    return std::to_string(q.window_seconds) + "|" + q.group_by + "|" + q.ns + "|" + q.protocol + "|" +
           std::to_string(q.limit);
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TopologyStreams::TopologyStreams(std::shared_ptr<const analysis::Pipeline> pipeline, TopologyStreamOptions options)
    : pipeline_(std::move(pipeline)), opts_(std::move(options)) {
    epoch_ = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count());
    if (pipeline_) sub_ = pipeline_->subscribe([this](const analysis::Pipeline::ViewsPtr& v) { publish(v); });
}

TopologyStreams::~TopologyStreams() {
    sub_.reset();
    closeAll();
}

void TopologyStreams::closeAll() {
    std::lock_guard lk(mu_);
    for (auto& [_, g] : groups_)
        for (auto& s : g->subs) s->close();
    sweepLocked();
}

// Forgets ended streams (counting why), and groups without streams after the resume
// grace (and beyond max_idle_queries, the longest idle first).
void TopologyStreams::sweepLocked() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> idle;
    for (auto it = groups_.begin(); it != groups_.end();) {
        auto& g = *it->second;
        const bool had = !g.subs.empty();
        std::erase_if(g.subs, [&](const std::shared_ptr<http::StreamChannel>& s) {
            const auto e = s->end();
            if (e == http::StreamEnd::Open) return false;
            ++stats_.ended[http::toString(e)];
            return true;
        });
        if (g.subs.empty()) {
            if (had) g.idle_since = now;
            if (now - g.idle_since >= opts_.resume_grace) {
                it = groups_.erase(it);
                continue;
            }
            idle.emplace_back(g.idle_since, it->first);
        }
        ++it;
    }
    if (idle.size() > opts_.max_idle_queries) {
        std::sort(idle.begin(), idle.end());
        for (std::size_t i = 0; i + opts_.max_idle_queries < idle.size(); ++i) groups_.erase(idle[i].second);
    }
}

http::Response TopologyStreams::open(const http::Request& req) {
    auto q = parseTopologyQuery(req.query);
    if (!q) return http::Response::error(400, q.error());
    if (q->format != "netprobe") return http::Response::error(400, "the stream answers in the netprobe format (no format=)");
    if (q->source != "local") return http::Response::error(400, "the stream is of this node's view (no source=)");
    if (q->at_unix) return http::Response::error(400, "the stream is of the live view (no at=)");
    // Last-Event-ID: "<epoch>.<seq>" of this process, else a snapshot.
    std::optional<std::uint64_t> last;
    if (auto h = req.header("last-event-id")) {
        const auto dot = h->find('.');
        if (dot != std::string_view::npos && h->substr(0, dot) == epoch_) {
            try {
                last = std::stoull(std::string(h->substr(dot + 1)));
            } catch (...) {
            }
        }
    }
    const auto key = canonicalKey(*q);
    auto ch = std::make_shared<http::StreamChannel>(opts_.stream);
    {
        std::lock_guard lk(mu_);
        sweepLocked();
        std::size_t open = 0;
        for (const auto& [_, g] : groups_) open += g->subs.size();
        if (open >= opts_.max_streams) {
            ++stats_.ended["limit"];
            http::Response r = http::Response::error(
                503, "too many topology streams open (" + std::to_string(opts_.max_streams) + "); retry later");
            r.headers.emplace_back("Retry-After", "5");
            return r;
        }
        auto& slot = groups_[key];
        if (!slot) {
            const auto t0 = std::chrono::steady_clock::now();
            slot = std::make_unique<Group>();
            slot->q = *q;
            slot->idle_since = std::chrono::steady_clock::now();
            const auto v = pipeline_->latest();
            slot->seq = v->snapshot ? v->snapshot->sequence : 0;
            slot->graph = topologyGraph(topologyDocument(v->topology.get(), v->l7.get(), *q));
            stats_.update_seconds += secondsSince(t0);
        }
        Group& g = *slot;
        std::string first = "retry: 2000\n\n";
        bool replayed = false;
        if (last && *last == g.seq) {
            replayed = true;  // nothing missed
        } else if (last) {
            auto it = std::find_if(g.history.begin(), g.history.end(), [&](const Group::Event& e) { return e.from == *last; });
            if (it != g.history.end()) {
                for (; it != g.history.end(); ++it) {
                    first += it->text;
                    ++stats_.diffs;
                }
                replayed = true;
            }
        }
        if (!replayed) {
            if (g.snapshot.empty()) {
                auto doc = topologyDocumentOf(g.graph);
                doc["seq"] = g.seq;
                g.snapshot = sseEvent("snapshot", epoch_ + "." + std::to_string(g.seq),
                                      doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
            }
            first += g.snapshot;
            ++stats_.snapshots;
        }
        stats_.bytes += first.size();
        (void)ch->push(first);
        g.subs.push_back(ch);
    }
    http::Response r;
    r.status = 200;
    r.content_type = "text/event-stream; charset=utf-8";
    r.headers = {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}};
    r.stream = std::move(ch);
    return r;
}

void TopologyStreams::publish(const analysis::Pipeline::ViewsPtr& v) {
    if (!v || !v->snapshot) return;
    std::lock_guard lk(mu_);
    sweepLocked();
    const std::uint64_t seq = v->snapshot->sequence;
    for (auto& [_, gp] : groups_) {
        Group& g = *gp;
        if (seq <= g.seq) continue;
        const auto t0 = std::chrono::steady_clock::now();
        auto next = topologyGraph(topologyDocument(v->topology.get(), v->l7.get(), g.q));
        auto d = diffTopology(g.graph, next);
        ++stats_.updates;
        if (d.is_null()) {  // nothing changed: no event (heartbeats keep the stream)
            stats_.update_seconds += secondsSince(t0);
            continue;
        }
        d["seq"] = seq;
        d["from"] = g.seq;
        Group::Event ev{g.seq, seq,
                        sseEvent("diff", epoch_ + "." + std::to_string(seq),
                                 d.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))};
        stats_.update_seconds += secondsSince(t0);
        for (auto& s : g.subs) {
            if (s->push(ev.text)) {
                ++stats_.diffs;
                stats_.bytes += ev.text.size();
            }
        }
        g.graph = std::move(next);
        g.seq = seq;
        g.snapshot.clear();
        g.history.push_back(std::move(ev));
        while (g.history.size() > opts_.history) g.history.pop_front();
    }
    sweepLocked();
}

TopologyStreamStats TopologyStreams::stats() const {
    std::lock_guard lk(mu_);
    TopologyStreamStats s = stats_;
    s.open = 0;
    s.queries = groups_.size();
    for (const auto& [_, g] : groups_)
        for (const auto& c : g->subs)
            if (!c->ended()) ++s.open;
    return s;
}

std::string renderTopologyStreamMetrics(const TopologyStreamStats& s) {
    ExpositionWriter w;
    w.family("netprobe_topology_streams_open", MetricType::Gauge,
             "Topology streams (GET /api/v1/topology/stream) open now.");
    w.sample("netprobe_topology_streams_open", {}, s.open);
    w.family("netprobe_topology_stream_queries", MetricType::Gauge,
             "Distinct parameter sets streamed now or kept for resuming (each computed once per view).");
    w.sample("netprobe_topology_stream_queries", {}, s.queries);
    w.family("netprobe_topology_stream_events_total", MetricType::Counter,
             "Events pushed to topology streams, by type (snapshot, diff).");
    w.sample("netprobe_topology_stream_events_total", {{"type", "snapshot"}}, s.snapshots);
    w.sample("netprobe_topology_stream_events_total", {{"type", "diff"}}, s.diffs);
    w.family("netprobe_topology_stream_bytes_total", MetricType::Counter, "Bytes pushed to topology streams.");
    w.sample("netprobe_topology_stream_bytes_total", {}, s.bytes);
    w.family("netprobe_topology_stream_updates_total", MetricType::Counter,
             "Topology diffs computed (once per streamed parameter set per view).");
    w.sample("netprobe_topology_stream_updates_total", {}, s.updates);
    w.family("netprobe_topology_stream_update_seconds_total", MetricType::Counter,
             "Time spent computing the streams' documents, diffs and events.");
    w.sample("netprobe_topology_stream_update_seconds_total", {}, s.update_seconds);
    w.family("netprobe_topology_streams_dropped_total", MetricType::Counter,
             "Topology streams ended or refused, by reason (client, slow_reader, write_timeout, limit, "
             "config_changed, shutdown, closed, not_started).");
    for (const char* r : {"client", "slow_reader", "write_timeout", "limit", "config_changed", "shutdown", "closed",
                          "not_started"}) {
        auto it = s.ended.find(r);
        w.sample("netprobe_topology_streams_dropped_total", {{"reason", r}}, it == s.ended.end() ? std::uint64_t{0} : it->second);
    }
    return w.take();
}

}  // namespace netprobe::metrics
